"""Late-payment interest on an invoice, as of a day: none, contractual (simple or compound with
monthly rests, at the client's `late_interest_rate` % a year), or MSMED Act 2006 s.16.

MSMED s.16 applies only when the tenant is a registered micro or small enterprise
(`CollectionSettings.msme_category` micro/small; a medium one gets none): compound interest
with monthly rests at three times the RBI bank rate (`BankRate`, dated). The rate is the one in
force on each rest's first day (`msme_rate_basis` "per_rest") or the one on the first day of
interest for the whole period ("appointed_day"). Interest runs from the day after the agreed
date, the agreed date being min(due date, acceptance + 45 days) when the client agreed terms in
writing, else from the appointed day: the day after 15 days from acceptance (acceptance + 16).
Acceptance is `invoices.accepted_on`, else the issue date. Contractual interest runs from the
day after the due date.

How the figure is made (one rule for every basis):
- Days are counted inclusively: interest "as of" a day includes that day, and the first day of
  interest is `starts_on`.
- Rests are calendar months from `starts_on` (2 May -> 1 Jun, 2 Jun -> 1 Jul, ...; a start on the
  31st rests on the last day of shorter months). A month's rate is the annual rate / 12.
- The principal is what the invoice owed over time: its total less payments allocated to it
  (cash + TDS, from the payment's `received_on`), its credit notes (from their issue date) and a
  write-off (from its day). Inside a rest, interest is simple and pro rata by days on what was
  owed each day: balance x monthly rate x days / days of that full rest. So a partial last rest
  earns days / days-in-that-month of a month's interest, and a payment mid-rest lowers the
  interest from its day on.
- Compound: the interest of each rest is added to the balance that earns interest in the next
  rests (monthly capitalisation). Simple: interest is on the principal only.
- Rounding (`CollectionSettings.interest_rounding`): "each_rest" (the default) rounds the interest
  of each rest to the paisa (half up) before it is capitalised or added up; "at_end" keeps every
  rest's interest unrounded and rounds the total once. They can differ by a paisa or so:
  ₹2,50,000 at 16.5% compound over six full rests is ₹21,347.13 rounded at each rest and
  ₹21,347.12 rounded once. The notice's statement, its letter and the MSEFC pack say which
  was used (`rounding_sentence`).
- Once the principal is nil (paid, credited or written off), interest stops: what accrued until
  then is what the late payment cost. Void and draft invoices carry none. Interest a notice
  demanded stays owed until it is paid, waived or written off (`interest_claims`).
"""

from __future__ import annotations

from bisect import bisect_right
from calendar import monthrange
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.collections.models import BankRate, CollectionSettings
from app.core.money import CENT, to_money
from app.core.terminology import worded
from app.invoicing.models import CreditNote, Invoice
from app.payments.models import Payment, PaymentAllocation

ZERO = Decimal("0.00")
MSME_PROTECTED = ("micro", "small")
MSMED_MULTIPLE = 3
MSMED_AGREED_CAP_DAYS = 45
MSMED_APPOINTED_AFTER_DAYS = 15
# Statuses whose invoice never carries interest.
NO_INTEREST_STATUSES = ("draft", "void")


@dataclass(frozen=True)
class InterestRest:
    """One monthly rest: its first and last day (inclusive), the annual rate applied, the
    principal owed on its first day, the balance earning interest on its first day (principal
    plus interest capitalised so far), the interest of the rest, and the balance at its end
    (principal on its last day plus all interest so far). closing - opening - interest = minus
    what was paid or credited during the rest."""

    start: date
    end: date
    annual_rate: Decimal
    principal: Decimal
    opening: Decimal
    interest: Decimal
    closing: Decimal


@dataclass(frozen=True)
class Interest:
    amount: Decimal
    basis: str  # "none" | "simple" | "compound" | "msmed"
    starts_on: date | None
    description: str
    schedule: tuple[InterestRest, ...]
    rounding: str = "each_rest"  # INTEREST_ROUNDINGS


def no_interest(description: str) -> Interest:
    return Interest(ZERO, "none", None, description, ())


def rounding_sentence(interest: Interest) -> str:
    """How the figure was rounded (and compounded), in one sentence for the client."""
    compounded = interest.basis in ("compound", "msmed")
    if interest.rounding == "at_end":
        return (
            "Interest was compounded monthly without rounding, and the total rounded once to "
            "the nearest 0.01."
            if compounded
            else "Interest was worked out for each monthly rest without rounding, and the total "
            "rounded once to the nearest 0.01."
        )
    return (
        "Interest was compounded monthly, each month's interest rounded to the nearest 0.01 "
        "before being added to the balance."
        if compounded
        else "Interest was worked out for each monthly rest, each rounded to the nearest 0.01."
    )


# Dates -----------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """The same day `months` calendar months later (the month's last day when it is shorter)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def acceptance_date(invoice: Invoice) -> date | None:
    return invoice.accepted_on or invoice.issue_date


def msmed_start(invoice: Invoice, agreed_in_writing: bool) -> tuple[date | None, str]:
    """The first day of MSMED interest and why (s.15 with s.2(b))."""
    accepted = acceptance_date(invoice)
    if accepted is None:
        return None, "The invoice has no acceptance or issue date."
    if agreed_in_writing:
        cap = accepted + timedelta(days=MSMED_AGREED_CAP_DAYS)
        agreed = min(invoice.due_date, cap) if invoice.due_date else cap
        why = (
            "the agreed date (45 days from acceptance at most)"
            if agreed == cap and (invoice.due_date is None or invoice.due_date > cap)
            else "the agreed date"
        )
        return agreed + timedelta(days=1), f"from the day after {why}, {agreed:%d %b %Y}"
    appointed = accepted + timedelta(days=MSMED_APPOINTED_AFTER_DAYS + 1)
    return appointed, (
        f"from the appointed day, {appointed:%d %b %Y} (no payment terms agreed in writing: "
        "15 days from acceptance)"
    )


# Bank rate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateTable:
    """The dated bank rate: the rate in force on a day is the last one effective on or before
    it (None before the first)."""

    days: tuple[date, ...]
    rates: tuple[Decimal, ...]

    @classmethod
    def of(cls, rows: Iterable) -> RateTable:
        pairs = sorted((r if isinstance(r, tuple) else (r.effective_from, r.rate)) for r in rows)
        return cls(tuple(d for d, _ in pairs), tuple(Decimal(r) for _, r in pairs))

    def on(self, day: date) -> Decimal | None:
        i = bisect_right(self.days, day)
        return self.rates[i - 1] if i else None


def bank_rates(session: Session) -> RateTable:
    return RateTable.of(session.scalars(select(BankRate)))


# The schedule ---------------------------------------------------------------------------


def _round(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def schedule(
    total: Decimal,
    reductions: Sequence[tuple[date, Decimal]],
    starts_on: date,
    as_of: date,
    rate_for_rest,
    compound: bool,
    round_each_rest: bool = True,
) -> tuple[InterestRest, ...]:
    """The monthly rests from `starts_on` to `as_of` (inclusive) on an invoice of `total`
    reduced by (day, amount) movements; `rate_for_rest(first_day)` gives the annual rate (%)
    of a rest. Stops once the principal is nil. Without `round_each_rest` a rest's interest
    (and so its closing balance) is left unrounded: the caller rounds the total once."""
    changes: dict[date, Decimal] = defaultdict(lambda: ZERO)
    principal = to_money(total)
    for day, amount in reductions:
        if day < starts_on:
            principal -= to_money(amount)
        else:
            changes[day] += to_money(amount)
    change_days = sorted(changes)
    rests: list[InterestRest] = []
    carried = ZERO  # interest capitalised so far (compound) or accrued so far (simple)
    k = 0
    with localcontext() as ctx:
        ctx.prec = 40
        while principal > 0:
            start = add_months(starts_on, k)
            if start > as_of:
                break
            full_end = add_months(starts_on, k + 1) - timedelta(days=1)
            end = min(full_end, as_of)
            rest_days = (full_end - start).days + 1
            annual = rate_for_rest(start)
            monthly = annual / Decimal(1200)
            opening_principal = principal
            base = carried if compound else ZERO
            opening = principal + base
            accrued = Decimal(0)
            day = start
            # Segments between principal changes: a reduction on a day lowers that day's balance;
            # the rest ends the day before the principal is nil.
            for change_day in [d for d in change_days if start <= d <= end] + [end + timedelta(1)]:
                if change_day > day:
                    accrued += (principal + base) * monthly * (change_day - day).days / rest_days
                    day = change_day
                if change_day <= end:
                    principal -= changes[change_day]
                    if principal <= 0:
                        end = change_day - timedelta(days=1)
                        break
            principal = max(principal, ZERO)
            if end < start:  # paid off on the rest's first day
                break
            interest = _round(accrued) if round_each_rest else accrued
            carried += interest
            rests.append(
                InterestRest(
                    start, end, annual, opening_principal, opening, interest, principal + carried
                )
            )
            k += 1
    return tuple(rests)


# One invoice, many invoices -------------------------------------------------------------


def _settings(session: Session) -> CollectionSettings:
    return session.get(CollectionSettings, 1) or CollectionSettings(
        msme_category=None, msme_rate_basis="per_rest", interest_rounding="each_rest"
    )


def _reductions(session: Session, invoice_ids: Sequence[int]) -> dict[int, list]:
    """(day, amount) that lowered each invoice: live allocations (cash + TDS) on the payment's
    day, credit notes on their day. One query per table."""
    found: dict[int, list] = defaultdict(list)
    if not invoice_ids:
        return found
    rows = session.execute(
        select(
            PaymentAllocation.invoice_id,
            Payment.received_on,
            PaymentAllocation.amount + PaymentAllocation.tds_amount,
        )
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .where(
            PaymentAllocation.invoice_id.in_(invoice_ids), PaymentAllocation.removed_at.is_(None)
        )
    )
    for invoice_id, day, amount in rows:
        found[invoice_id].append((day, amount))
    rows = session.execute(
        select(CreditNote.invoice_id, CreditNote.issue_date, CreditNote.total).where(
            CreditNote.invoice_id.in_(invoice_ids)
        )
    )
    for invoice_id, day, amount in rows:
        found[invoice_id].append((day, amount))
    return found


def _no_interest_reason(invoice: Invoice, client: Client) -> str | None:
    """Why the invoice carries no interest whatever the dates and rates, if it does not."""
    if invoice.status in NO_INTEREST_STATUSES:
        return f"A {invoice.status} invoice carries no interest."
    if (client.late_interest_mode or "none") == "none":
        return worded("No late-payment interest for this {client}.")
    return None


def _compute(
    invoice: Invoice,
    client: Client,
    settings: CollectionSettings,
    rates: RateTable,
    reductions: Sequence[tuple[date, Decimal]],
    as_of: date,
) -> Interest:
    reason = _no_interest_reason(invoice, client)
    if reason:
        return no_interest(reason)
    mode = client.late_interest_mode
    movements = list(reductions)
    if invoice.written_off_amount and invoice.written_off_at is not None:
        movements.append((invoice.written_off_at.date(), invoice.written_off_amount))
    if mode == "msmed":
        if settings.msme_category not in MSME_PROTECTED:
            return no_interest(
                "MSMED Act interest is for suppliers registered as micro or small enterprises."
            )
        starts_on, why = msmed_start(invoice, client.payment_agreed_in_writing)
        if starts_on is None:
            return no_interest(why)
        fixed = rates.on(starts_on)
        if fixed is None:  # later rests then have one too (a rate on or before their day)
            return no_interest(f"No RBI bank rate is recorded for {starts_on:%d %b %Y}.")
        per_rest = settings.msme_rate_basis != "appointed_day"

        def rate_for_rest(day: date) -> Decimal:
            return MSMED_MULTIPLE * (rates.on(day) if per_rest else fixed)

        basis_words = (
            "the bank rate in force at each monthly rest"
            if per_rest
            else f"the bank rate on the first day ({fixed}%)"
        )
        description = (
            f"MSMED Act s.16: compound interest with monthly rests at three times {basis_words}, "
            f"{why}."
        )
        compound = True
    else:
        start_from = invoice.due_date or invoice.issue_date
        rate = client.late_interest_rate
        if start_from is None:
            return no_interest("The invoice has no due date.")
        if not rate:
            return no_interest(worded("No late-payment interest rate is set for this {client}."))
        starts_on = start_from + timedelta(days=1)
        compound = mode == "compound"
        description = (
            f"Contractual {'compound (monthly rests)' if compound else 'simple'} interest at "
            f"{rate.normalize():f}% a year from {starts_on:%d %b %Y}."
        )

        def rate_for_rest(day: date) -> Decimal:
            return Decimal(rate)

    rounding = settings.interest_rounding or "each_rest"
    rests = schedule(
        invoice.total,
        movements,
        starts_on,
        as_of,
        rate_for_rest,
        compound,
        round_each_rest=rounding != "at_end",
    )
    amount = _round(sum((r.interest for r in rests), ZERO))
    return Interest(amount, mode, starts_on, description, rests, rounding)


def invoice_interest(
    session: Session,
    invoice: Invoice,
    as_of: date,
    *,
    client: Client | None = None,
    settings: CollectionSettings | None = None,
    rates: RateTable | Iterable | None = None,
) -> Interest:
    """The late-payment interest on `invoice` as of `as_of` (inclusive). `rates` may be a
    RateTable, BankRate rows or (effective_from, rate) pairs; read from the database if None."""
    client = client or session.get(Client, invoice.client_id)
    settings = settings or _settings(session)
    if rates is None:
        rates = bank_rates(session)
    elif not isinstance(rates, RateTable):
        rates = RateTable.of(rates)
    reductions = _reductions(session, [invoice.id]).get(invoice.id, [])
    return _compute(invoice, client, settings, rates, reductions, as_of)


def interest_for_invoices(
    session: Session, invoices: Sequence[Invoice], as_of: date
) -> dict[int, Interest]:
    """`invoice_interest` for many invoices, reading each table once (clients, settings, bank
    rates, allocations, credit notes)."""
    invoices = list(invoices)
    if not invoices:
        return {}
    client_ids = {i.client_id for i in invoices}
    clients = {c.id: c for c in session.scalars(select(Client).where(Client.id.in_(client_ids)))}
    found = {}
    charging = []
    for invoice in invoices:
        reason = _no_interest_reason(invoice, clients[invoice.client_id])
        if reason:
            found[invoice.id] = no_interest(reason)
        else:
            charging.append(invoice)
    if charging:
        # Settings, rates and what reduced each invoice are read only when some invoice can
        # carry interest (most clients have none: the pay page asks on every visit).
        settings = _settings(session)
        rates = bank_rates(session)
        reductions = _reductions(session, [i.id for i in charging])
        for i in charging:
            found[i.id] = _compute(
                i, clients[i.client_id], settings, rates, reductions.get(i.id, []), as_of
            )
    return {i.id: found[i.id] for i in invoices}  # in the invoices' order
