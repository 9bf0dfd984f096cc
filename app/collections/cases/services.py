"""What promises, disputes and holds share: the errors they raise (one message per field, for
the form) and the reading of what a person typed (dates, amounts, text)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import select

from app.collections.models import BankRate
from app.core.money import to_money

MAX_TEXT = 2000
MAX_URL = 2048


class CaseError(ValueError):
    """A request the rules refuse as a whole; the message says why, for the person."""


class CaseInvalid(ValueError):
    """A form with errors, one message per field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def read_date(raw, field: str, errors: dict[str, str], label: str) -> date | None:
    """A date from a form (YYYY-MM-DD, what <input type=date> sends) or a `date`."""
    if isinstance(raw, date) or raw is None:
        return raw
    text = str(raw).strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[field] = f"Enter the {label} as YYYY-MM-DD."
        return None


def read_amount(raw, field: str, errors: dict[str, str]) -> Decimal | None:
    """A positive amount of money; people write 1,00,000 or 100,000."""
    if isinstance(raw, float):
        raise TypeError("amounts must not be floats")
    text = str(raw if raw is not None else "").replace(",", "").strip()
    if not text:
        errors[field] = "Enter the amount."
        return None
    try:
        value = to_money(text)
    except (ValueError, InvalidOperation):
        errors[field] = f"“{raw}” is not an amount."
        return None
    if value <= 0:
        errors[field] = "The amount must be more than zero."
    elif value > Decimal("9999999999999999.99"):
        errors[field] = "The amount is too large."
    return value


def read_text(
    raw, field: str, errors: dict[str, str], *, required: str | None = None, limit: int = MAX_TEXT
) -> str | None:
    """Trimmed text, None when empty; `required` is the message when it must be given."""
    text = (raw or "").strip()
    if not text:
        if required:
            errors[field] = required
        return None
    if len(text) > limit:
        errors[field] = f"Keep it to {limit:,} characters."
    return text


def read_url(raw, field: str, errors: dict[str, str]) -> str | None:
    url = read_text(raw, field, errors, limit=MAX_URL)
    if url and not url.lower().startswith(("https://", "http://")):
        errors[field] = "Enter a web address starting with https://."
    return url


# A client's collection terms, an invoice's acceptance, the bank rate -------------------------

INTEREST_MODE_LABELS = {
    "none": "No late-payment interest",
    "simple": "Contractual, simple",
    "compound": "Contractual, compound (monthly rests)",
    "msmed": "MSMED Act s.16 (3 x RBI bank rate, compound monthly)",
}
MAX_INTEREST_RATE = Decimal("100")


def update_collection_terms(
    session, client, values, policy_ids: set[int], member_ids: set[int]
) -> None:
    """A client's collection policy (empty = the workspace's default), collector, late-payment
    interest (mode and rate) and whether payment terms were agreed in writing."""
    errors: dict[str, str] = {}
    policy_raw = str(values.get("collection_policy_id") or "").strip()
    policy_id = int(policy_raw) if policy_raw.isdigit() else None
    if policy_raw and policy_id not in policy_ids:
        errors["collection_policy_id"] = "Choose one of the workspace's policies."
    collector_raw = str(values.get("collector_user_id") or "").strip()
    collector_id = int(collector_raw) if collector_raw.isdigit() else None
    if collector_raw and collector_id not in member_ids:
        errors["collector_user_id"] = "Choose a member of this workspace."
    mode = str(values.get("late_interest_mode") or "none")
    if mode not in INTEREST_MODE_LABELS:
        errors["late_interest_mode"] = "Choose how late-payment interest is charged."
    rate = None
    rate_raw = str(values.get("late_interest_rate") or "").strip().rstrip("%").strip()
    if rate_raw:
        try:
            rate = Decimal(rate_raw)
        except InvalidOperation:
            errors["late_interest_rate"] = "Enter the rate as a number of % a year, e.g. 18."
        else:
            if not rate.is_finite() or rate <= 0 or rate > MAX_INTEREST_RATE:
                errors["late_interest_rate"] = "The rate is between 0 and 100 % a year."
            elif rate != rate.quantize(Decimal("0.001")):
                errors["late_interest_rate"] = "Use at most three decimals."
    if mode in ("simple", "compound") and rate is None and "late_interest_rate" not in errors:
        errors["late_interest_rate"] = "Contractual interest needs a rate (% a year)."
    if errors:
        raise CaseInvalid(errors)
    client.collection_policy_id = policy_id
    client.collector_user_id = collector_id
    client.late_interest_mode = mode
    client.late_interest_rate = rate
    client.payment_agreed_in_writing = values.get("payment_agreed_in_writing") in ("1", "on", True)
    session.flush()


def set_acceptance(session, invoice, raw, today: date) -> None:
    """The day the client accepted the work (MSMED s.15 counts from it); empty = the issue
    date counts."""
    errors: dict[str, str] = {}
    accepted = read_date(raw, "accepted_on", errors, "acceptance date")
    if accepted is not None and accepted > today:
        errors["accepted_on"] = "The acceptance date cannot be in the future."
    if invoice.status in ("draft", "void"):
        errors["accepted_on"] = f"A {invoice.status} invoice has no acceptance date."
    if errors:
        raise CaseInvalid(errors)
    invoice.accepted_on = accepted
    session.flush()


def add_bank_rate(session, values, user_id: int | None = None):
    """A new RBI bank rate from a date: effective_from (one rate per date), rate (% a year,
    more than 0 and under 50, two decimals), note."""

    errors: dict[str, str] = {}
    day = read_date(values.get("effective_from"), "effective_from", errors, "date")
    if day is None and "effective_from" not in errors:
        errors["effective_from"] = "Enter the date the rate applies from."
    rate = None
    raw = str(values.get("rate") or "").strip().rstrip("%").strip()
    if not raw:
        errors["rate"] = "Enter the bank rate (% a year)."
    else:
        try:
            rate = Decimal(raw)
        except InvalidOperation:
            errors["rate"] = "Enter the rate as a number, e.g. 5.50."
        else:
            if not rate.is_finite() or rate <= 0 or rate >= 50:
                errors["rate"] = "The bank rate is more than 0 and under 50 %."
            elif rate != rate.quantize(Decimal("0.01")):
                errors["rate"] = "Use at most two decimals."
    note = read_text(values.get("note"), "note", errors, limit=255)
    if (
        day is not None
        and "effective_from" not in errors
        and session.scalar(select(BankRate.id).where(BankRate.effective_from == day))
    ):
        errors["effective_from"] = "A rate is already recorded from that date: delete it first."
    if errors:
        raise CaseInvalid(errors)
    bank_rate = BankRate(effective_from=day, rate=rate, note=note, created_by=user_id)
    session.add(bank_rate)
    session.flush()
    return bank_rate
