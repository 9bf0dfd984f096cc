"""Payments: record what a client paid, allocate it across the client's invoices (cash and TDS
deducted at source), un-allocate, and the client's balance.

Derived, never stored: what an invoice still owes (`app.invoicing.balance.outstanding`: its total
less its live allocations' cash and TDS, credit notes and write-off); a payment's unapplied cash
(the client's credit) is its amount less its live allocations' cash, that applied to invoices
and that applied to their late-payment interest (`allocate_to_interest`). Allocating locks the
payment and the invoices (SELECT ... FOR UPDATE) before reading those figures, so two concurrent
allocations wait for each other and cannot overspend a payment or overpay an invoice.

Every change settles the invoice (`app.invoicing.balance.settle`): its status (issued -> partly
paid -> paid, and back) and its milestones (invoiced -> partly_paid -> paid, and back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.core.clock import DATE_RANGE_TEXT, typed_date
from app.core.money import allocate_oldest_first, format_money, to_money
from app.core.signals import (
    announce_payment_recorded,
    announce_payment_voided,
)
from app.core.terminology import term, worded
from app.custom_fields.services import ValuesInvalid, values_for_new_record
from app.invoicing.balance import PAYABLE_STATUSES, OpenInvoice, open_invoices, outstanding, settle
from app.invoicing.models import Invoice
from app.payments.models import PAYMENT_METHODS, Payment, PaymentAllocation

ZERO = Decimal("0.00")
NOTE_LIMIT = 2000
METHOD_LABELS = {
    "bank_transfer": "Bank transfer",
    "upi": "UPI",
    "cheque": "Cheque",
    "cash": "Cash",
    "card": "Card",
    "other": "Other",
}


class PaymentError(ValueError):
    """A request the payment rules refuse; the message says why, for the person."""


class PaymentInvalid(ValueError):
    """A payment form with errors, one message per field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


# Reading ------------------------------------------------------------------------------------


def unapplied(session: Session, payment: Payment) -> Decimal:
    """The payment's cash not allocated to any invoice or its interest: the client's credit."""
    applied = session.scalar(
        select(
            func.coalesce(func.sum(PaymentAllocation.amount + PaymentAllocation.interest_amount), 0)
        ).where(PaymentAllocation.payment_id == payment.id, PaymentAllocation.removed_at.is_(None))
    )
    return to_money(payment.amount) - to_money(applied)


def live_allocations(session: Session, payment: Payment) -> list[PaymentAllocation]:
    return list(
        session.scalars(
            select(PaymentAllocation)
            .where(
                PaymentAllocation.payment_id == payment.id, PaymentAllocation.removed_at.is_(None)
            )
            .order_by(PaymentAllocation.id)
        )
    )


def all_allocations(session: Session, payment: Payment) -> list[PaymentAllocation]:
    return list(
        session.scalars(
            select(PaymentAllocation)
            .where(PaymentAllocation.payment_id == payment.id)
            .order_by(PaymentAllocation.id)
        )
    )


def suggest_allocation(
    session: Session, payment: Payment
) -> tuple[list[tuple[int, Decimal]], Decimal]:
    """The payment's unapplied cash over the client's open invoices, oldest first:
    ([(invoice_id, amount), ...], left over as credit)."""
    items = [(o.invoice.id, o.outstanding) for o in open_invoices(session, payment.client_id)]
    return allocate_oldest_first(max(unapplied(session, payment), ZERO), items)


def get_payment(session: Session, payment_id: int) -> Payment | None:
    return session.get(Payment, payment_id)


def client_payments(session: Session, client_id: int) -> list[Payment]:
    return list(
        session.scalars(
            select(Payment)
            .where(Payment.client_id == client_id)
            .order_by(Payment.received_on.desc(), Payment.id.desc())
        )
    )


def invoice_allocations(
    session: Session, invoice_id: int
) -> list[tuple[PaymentAllocation, Payment]]:
    """The live allocations to an invoice with their payments, oldest payment first: what the
    invoice page lists under what was paid."""
    return list(
        session.execute(
            select(PaymentAllocation, Payment)
            .join(Payment, Payment.id == PaymentAllocation.payment_id)
            .where(
                PaymentAllocation.invoice_id == invoice_id,
                PaymentAllocation.removed_at.is_(None),
            )
            .order_by(Payment.received_on, Payment.id, PaymentAllocation.id)
        ).all()
    )


def tds_awaiting_certificate(session: Session, client_id: int) -> list[PaymentAllocation]:
    return list(
        session.scalars(
            select(PaymentAllocation)
            .join(Payment, Payment.id == PaymentAllocation.payment_id)
            .where(
                Payment.client_id == client_id,
                PaymentAllocation.removed_at.is_(None),
                PaymentAllocation.tds_amount > 0,
                PaymentAllocation.tds_certificate_received_on.is_(None),
            )
            .order_by(PaymentAllocation.id)
        )
    )


@dataclass
class Balance:
    outstanding: Decimal
    credit: Decimal
    tds_awaiting: Decimal
    open: list[OpenInvoice] = field(default_factory=list)
    tds_pending: list[PaymentAllocation] = field(default_factory=list)

    @property
    def net(self) -> Decimal:
        """What the client owes once its unapplied credit is set against its invoices."""
        return self.outstanding - self.credit


def client_balance(session: Session, client: Client) -> Balance:
    """Outstanding over open invoices, unapplied credit over live payments, TDS deducted whose
    certificate has not come yet."""
    open_ = open_invoices(session, client.id)
    credit = ZERO
    for payment in client_payments(session, client.id):
        if payment.voided_at is None:
            credit += unapplied(session, payment)
    pending = tds_awaiting_certificate(session, client.id)
    return Balance(
        outstanding=sum((o.outstanding for o in open_), ZERO),
        credit=credit,
        tds_awaiting=sum((to_money(a.tds_amount) for a in pending), ZERO),
        open=open_,
        tds_pending=pending,
    )


# Recording ----------------------------------------------------------------------------------


def _amount(raw, label: str, allow_zero: bool = True) -> Decimal:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return ZERO
    if isinstance(raw, float):
        raise PaymentError(f"{label}: amounts must not be floats.")
    if isinstance(raw, str):
        raw = raw.replace(",", "").strip()  # grouping as people write it: 20,00,000 or 2,000,000
    try:
        value = to_money(raw)
    except (TypeError, ValueError):
        raise PaymentError(f"{label}: “{raw}” is not an amount.") from None
    if value < 0:
        raise PaymentError(f"{label}: an amount cannot be negative.")
    if value > Decimal("9999999999999999.99"):
        raise PaymentError(f"{label}: the amount is too large.")
    return value


def record_payment(
    session: Session, client: Client, values: dict, custom: Mapping | None = None
) -> Payment:
    """A payment of `client`: amount (> 0, the cash received), received_on (a date, not in the
    future is not enforced here), method, reference, note; its own fields' values in `custom`
    ({key: value}, from a person's form: checked, errors as "cf.<key>"). None (a gateway's,
    the bank's or the sync's payment) starts them at their defaults: a required field must
    not stop cash that arrives on its own. Raises PaymentInvalid."""
    errors: dict[str, str] = {}
    try:
        custom_values = values_for_new_record(session, "payments", custom)
    except ValuesInvalid as invalid:
        errors.update(invalid.errors)
    amount = None
    raw_amount = values.get("amount")
    if raw_amount in (None, ""):
        errors["amount"] = "Enter the amount received."
    else:
        try:
            amount = _amount(raw_amount, "Amount")
        except PaymentError as error:
            errors["amount"] = str(error).removeprefix("Amount: ")
        else:
            if amount <= 0:
                errors["amount"] = "The amount received must be more than zero."
    received = values.get("received_on")
    if isinstance(received, str):
        text = received.strip()
        received = typed_date(text) if text else None
        if text and received is None:
            errors["received_on"] = f"Enter a date {DATE_RANGE_TEXT}, as YYYY-MM-DD."
    if received is None and "received_on" not in errors:
        errors["received_on"] = "Enter the date the payment was received."
    method = (values.get("method") or "").strip()
    if method not in PAYMENT_METHODS:
        errors["method"] = "Choose how the payment was made."
    reference = (values.get("reference") or "").strip()
    if len(reference) > 120:
        errors["reference"] = "Keep the reference to 120 characters."
    if method in ("bank_transfer", "upi", "cheque") and not reference:
        errors["reference"] = "Enter the transaction or cheque reference."
    note = (values.get("note") or "").strip()
    if len(note) > NOTE_LIMIT:
        errors["note"] = f"Keep the note to {NOTE_LIMIT:,} characters (it has {len(note):,})."
    if errors:
        raise PaymentInvalid(errors)
    payment = Payment(
        client_id=client.id,
        received_on=received,
        amount=amount,
        currency=client.currency or "INR",
        method=method,
        reference=reference or None,
        note=note or None,
        custom_fields=custom_values,
    )
    session.add(payment)
    session.flush()
    announce_payment_recorded(session, payment)
    return payment


def record_payment_for_invoice(
    session: Session,
    invoice: Invoice,
    values: dict,
    user_id: int | None = None,
    custom: Mapping | None = None,
) -> Payment:
    """A payment of the invoice's client, applied to that invoice: its cash up to what the
    invoice still owes, with the TDS the client deducted (tds_amount, tds_section, tds_rate)
    when given; cash beyond that stays on the payment as the client's credit. Raises
    PaymentInvalid, one message per field (nothing written)."""
    if invoice.status not in PAYABLE_STATUSES:
        raise PaymentInvalid(
            {
                "amount": f"Invoice {_label(invoice)} is {invoice.status.replace('_', ' ')}: "
                "it cannot take a payment."
            }
        )
    client = session.get(Client, invoice.client_id)
    payment = record_payment(session, client, values, custom)
    tds = values.get("tds_amount") or ""
    try:
        owed = outstanding(session, invoice)
        cash = min(to_money(payment.amount), max(owed - _amount(tds, "TDS"), ZERO))
        if owed <= 0:
            raise PaymentError(
                f"Invoice {_label(invoice)} owes nothing now: record the payment from the "
                f"{term('client')}'s Payments tab to keep it as the {term('client')}'s credit."
            )
        row = (invoice.id, cash, tds, values.get("tds_section"), values.get("tds_rate"))
        allocate(session, payment, [row], user_id=user_id)
    except PaymentError as error:
        field = "tds_amount" if str(error).startswith("TDS") else "amount"
        raise PaymentInvalid({field: str(error)}) from None
    return payment


# Allocating ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    invoice_id: int
    amount: Decimal
    tds_amount: Decimal
    tds_section: str | None
    tds_rate: Decimal | None


def _row(raw: Sequence) -> Row:
    invoice_id, amount, tds_amount, section, rate = (list(raw) + [None] * 5)[:5]
    try:
        invoice_id = int(invoice_id)
    except (TypeError, ValueError):
        raise PaymentError("Choose an invoice for each allocation.") from None
    cash = _amount(amount, "Cash")
    tds = _amount(tds_amount, "TDS")
    section = (section or "").strip().upper() or None
    rate_value = None
    if rate not in (None, ""):
        try:
            rate_value = to_money(rate)
        except (TypeError, ValueError):
            raise PaymentError(f"TDS rate: “{rate}” is not a percentage.") from None
        if not Decimal(0) < rate_value <= Decimal(100):
            raise PaymentError("TDS rate: give a percentage above 0 and at most 100.")
    if tds > 0 and (section is None or rate_value is None):
        raise PaymentError("TDS needs its section (e.g. 194C, 194J) and its rate.")
    if section is not None and len(section) > 8:
        raise PaymentError("TDS section: at most 8 characters, e.g. 194J.")
    if tds == 0:
        section, rate_value = None, None
    return Row(invoice_id, cash, tds, section, rate_value)


def _lock_payment(session: Session, payment: Payment) -> Payment:
    return session.scalars(
        select(Payment)
        .where(Payment.id == payment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _lock_invoices(session: Session, ids: Iterable[int]) -> dict[int, Invoice]:
    invoices = session.scalars(
        select(Invoice)
        .where(Invoice.id.in_(sorted(set(ids))))
        .order_by(Invoice.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {invoice.id: invoice for invoice in invoices}


def _label(invoice: Invoice) -> str:
    return invoice.number or f"draft #{invoice.id}"


def allocate(
    session: Session, payment: Payment, rows: Sequence[Sequence], user_id: int | None = None
) -> list[PaymentAllocation]:
    """Apply parts of `payment` to invoices: rows of (invoice_id, cash, tds_amount, tds_section,
    tds_rate). Rows with neither cash nor TDS are skipped. Refused (PaymentError, nothing
    written): more cash than the payment has unapplied, more than an invoice owes, another
    client's invoice, a draft or void invoice, a negative amount, TDS without section or rate."""
    parsed = [_row(raw) for raw in rows]
    parsed = [row for row in parsed if row.amount > 0 or row.tds_amount > 0]
    if not parsed:
        raise PaymentError("Enter an amount for at least one invoice.")
    if len({row.invoice_id for row in parsed}) != len(parsed):
        raise PaymentError("Each invoice can appear once in an allocation.")
    payment = _lock_payment(session, payment)  # first the payment, then invoices by id
    if payment.voided_at is not None:
        raise PaymentError("This payment is void; it cannot be allocated.")
    invoices = _lock_invoices(session, [row.invoice_id for row in parsed])
    for row in parsed:
        invoice = invoices.get(row.invoice_id)
        if invoice is None or invoice.client_id != payment.client_id:
            raise PaymentError(worded("That invoice is not one of this {client}'s invoices."))
        if invoice.status == "draft":
            raise PaymentError(
                f"Invoice {_label(invoice)} is a draft: issue it before allocating a payment to it."
            )
        if invoice.status not in PAYABLE_STATUSES:
            raise PaymentError(
                f"Invoice {_label(invoice)} is "
                f"{invoice.status.replace('_', ' ')}: it cannot take a payment."
            )
        if invoice.currency != payment.currency:
            raise PaymentError(
                f"Invoice {_label(invoice)} is in {invoice.currency}, the "
                f"payment in {payment.currency}."
            )
    for row in parsed:
        invoice = invoices[row.invoice_id]
        left = outstanding(session, invoice)  # credit notes count too
        if row.amount + row.tds_amount > left:
            raise PaymentError(
                f"Invoice {_label(invoice)} owes {format_money(left, invoice.currency)}; "
                f"{format_money(row.amount + row.tds_amount, invoice.currency)} is more than that."
            )
    available = unapplied(session, payment)
    cash = sum((row.amount for row in parsed), ZERO)
    if cash > available:
        raise PaymentError(
            f"This payment has {format_money(available, payment.currency)} left to allocate; "
            f"{format_money(cash, payment.currency)} is more than that."
        )
    created = []
    for row in parsed:
        allocation = PaymentAllocation(
            payment_id=payment.id,
            invoice_id=row.invoice_id,
            amount=row.amount,
            tds_amount=row.tds_amount,
            tds_section=row.tds_section,
            tds_rate=row.tds_rate,
        )
        session.add(allocation)
        created.append(allocation)
    session.flush()
    for invoice in invoices.values():
        settle(session, invoice, user_id)
    return created


def allocate_to_interest(
    session: Session, payment: Payment, invoice_id: int, amount: Decimal
) -> PaymentAllocation:
    """Apply `amount` of the payment's unapplied cash to an invoice's late-payment interest
    (how much interest is owed is the caller's to check: collections). The invoice's balance
    does not change. Refused (PaymentError): a void payment, another client's invoice, another
    currency, more than the payment has unapplied."""
    payment = _lock_payment(session, payment)
    if payment.voided_at is not None:
        raise PaymentError("This payment is void; it cannot be allocated.")
    invoice = session.get(Invoice, invoice_id)
    if invoice is None or invoice.client_id != payment.client_id:
        raise PaymentError(worded("That invoice is not one of this {client}'s invoices."))
    if invoice.currency != payment.currency:
        raise PaymentError(
            f"Invoice {_label(invoice)} is in {invoice.currency}, "
            f"the payment in {payment.currency}."
        )
    available = unapplied(session, payment)
    if amount > available:
        raise PaymentError(
            f"This payment has {format_money(available, payment.currency)} left to allocate; "
            f"{format_money(amount, payment.currency)} is more than that."
        )
    allocation = PaymentAllocation(
        payment_id=payment.id,
        invoice_id=invoice.id,
        amount=ZERO,
        tds_amount=ZERO,
        interest_amount=amount,
    )
    session.add(allocation)
    session.flush()
    return allocation


def unallocate(
    session: Session, allocation: PaymentAllocation, user_id: int | None = None
) -> PaymentAllocation:
    """Take an allocation back: it stays as history with `removed_at`; the invoice owes again."""
    _lock_payment(session, allocation.payment)
    invoice = _lock_invoices(session, [allocation.invoice_id])[allocation.invoice_id]
    session.refresh(allocation)
    if allocation.removed_at is not None:
        raise PaymentError("That allocation was already removed.")
    allocation.removed_at = datetime.now(UTC)
    session.flush()
    settle(session, invoice, user_id)
    return allocation


def void_payment(
    session: Session, payment: Payment, reason: str, user_id: int | None = None
) -> Payment:
    """Void a payment that did not happen after all (a bounced cheque, a reversed transfer, an
    entry made in error): its live allocations are taken back, so every invoice it settled
    owes again and its status and milestones follow. The payment and its allocations stay
    as history."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise PaymentError("Say why the payment is void, e.g. cheque bounced.")
    if len(reason) > 255:
        raise PaymentError("Keep the reason to 255 characters.")
    payment = _lock_payment(session, payment)
    if payment.voided_at is not None:
        raise PaymentError("This payment is already void.")
    allocations = live_allocations(session, payment)
    invoices = _lock_invoices(session, {a.invoice_id for a in allocations})
    now = datetime.now(UTC)
    for allocation in allocations:
        allocation.removed_at = now
    payment.voided_at, payment.void_reason = now, reason
    session.flush()
    announce_payment_voided(session, payment, user_id)
    for invoice in invoices.values():
        settle(session, invoice, user_id)
    return payment


def mark_tds_certificate(
    session: Session, allocation: PaymentAllocation, received_on: date | None
) -> PaymentAllocation:
    if allocation.removed_at is not None:
        raise PaymentError("That allocation was removed.")
    if to_money(allocation.tds_amount) <= 0:
        raise PaymentError("No TDS was deducted on that allocation.")
    if received_on is None:
        raise PaymentError("Enter the date the TDS certificate was received.")
    allocation.tds_certificate_received_on = received_on
    session.flush()
    return allocation
