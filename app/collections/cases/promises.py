"""Promises to pay: the client promises an amount by a date for some of its open invoices (all
of them unless chosen). The daily run does not chase those invoices while the promise is open
and its date has not passed.

A promise is kept when the cash and TDS allocated to its invoices since it was made reach the
amount, or when all of its invoices are settled (paid, credited, written off or void) — checked
the moment a payment is allocated (`check_after_payment`, in the payment's transaction). It is
broken when its date has passed and it was not kept (`mark_broken`, by the daily run): the
ladder resumes at once. Each is a domain event (promise.kept, promise.broken); notifications
reads promise.broken and tells the client's collector."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.collections.cases.services import CaseError, CaseInvalid, read_amount, read_date, read_text
from app.collections.models import PromiseToPay
from app.core.events import emit
from app.core.money import to_money
from app.core.terminology import worded
from app.invoicing.balance import open_invoices, outstanding
from app.invoicing.models import Invoice
from app.payments.models import PaymentAllocation

ZERO = Decimal("0.00")
DUE_SOON_DAYS = 7
ENDED_STATUSES = ("paid", "void", "written_off")


def paid_on(session: Session, invoice_ids: Sequence[int]) -> Decimal:
    """Cash and TDS allocated (live) to these invoices, in all."""
    if not invoice_ids:
        return ZERO
    total = session.scalar(
        select(
            func.coalesce(func.sum(PaymentAllocation.amount + PaymentAllocation.tds_amount), 0)
        ).where(
            PaymentAllocation.invoice_id.in_(list(invoice_ids)),
            PaymentAllocation.removed_at.is_(None),
        )
    )
    return to_money(total)


def covered_invoice_ids(session: Session, promise: PromiseToPay) -> list[int]:
    """The invoices a promise covers (all the client's open ones when none were named)."""
    if promise.invoice_ids:
        return list(promise.invoice_ids)
    return [o.invoice.id for o in open_invoices(session, promise.client_id)]


def paid_since(session: Session, promise: PromiseToPay) -> Decimal:
    return paid_on(session, covered_invoice_ids(session, promise)) - to_money(promise.paid_before)


def _all_settled(session: Session, invoice_ids: Sequence[int]) -> bool:
    invoices = session.scalars(select(Invoice).where(Invoice.id.in_(list(invoice_ids))))
    return all(i.status in ENDED_STATUSES or outstanding(session, i) <= 0 for i in invoices)


def is_kept(session: Session, promise: PromiseToPay) -> bool:
    ids = covered_invoice_ids(session, promise)
    return paid_since(session, promise) >= to_money(promise.amount) or _all_settled(session, ids)


# Making and ending --------------------------------------------------------------------------


def create_promise(
    session: Session, client: Client, values, today: date, user_id: int | None = None
) -> PromiseToPay:
    """A promise from form values: amount, promised_on (today or later), invoice_ids (a list
    of ids among the client's open invoices; empty = all of them), note. The covered invoices
    are stored by id, so an invoice issued later is not covered."""
    errors: dict[str, str] = {}
    amount = read_amount(values.get("amount"), "amount", errors)
    promised_on = read_date(values.get("promised_on"), "promised_on", errors, "date")
    if promised_on is None and "promised_on" not in errors:
        errors["promised_on"] = worded("Enter the date the {client} promised to pay by.")
    elif promised_on is not None and promised_on < today:
        errors["promised_on"] = "The date promised cannot be in the past."
    note = read_text(values.get("note"), "note", errors)
    open_ = {o.invoice.id: o for o in open_invoices(session, client.id)}
    chosen = [int(i) for i in (values.get("invoice_ids") or []) if str(i).strip().isdigit()]
    if not open_:
        errors["invoice_ids"] = worded("This {client} owes nothing: there is nothing to promise.")
    elif any(i not in open_ for i in chosen):
        errors["invoice_ids"] = worded("Choose among the {client}'s open invoices.")
    covered = [open_[i] for i in (chosen or open_)] if "invoice_ids" not in errors else []
    currencies = {o.invoice.currency for o in covered}
    if len(currencies) > 1:
        errors["invoice_ids"] = "Choose invoices in one currency: a promise is in one currency."
    if errors:
        raise CaseInvalid(errors)
    ids = [o.invoice.id for o in covered]
    promise = PromiseToPay(
        client_id=client.id,
        invoice_ids=ids,
        amount=amount,
        currency=currencies.pop(),
        promised_on=promised_on,
        note=note,
        paid_before=paid_on(session, ids),
        created_by=user_id,
    )
    session.add(promise)
    session.flush()
    return promise


def cancel_promise(session: Session, promise: PromiseToPay) -> PromiseToPay:
    if promise.status != "open":
        raise CaseError(f"This promise is {promise.status}: it cannot be cancelled.")
    promise.status = "cancelled"
    promise.resolved_at = datetime.now(UTC)
    session.flush()
    return promise


def check_after_payment(session: Session, client_id: int, user_id: int | None) -> None:
    """Mark the client's open promises kept when the money promised has arrived (called in
    the transaction that allocated it)."""
    promises = session.scalars(
        select(PromiseToPay)
        .where(PromiseToPay.client_id == client_id, PromiseToPay.status == "open")
        .with_for_update()
    )
    for promise in promises:
        if is_kept(session, promise):
            promise.status = "kept"
            promise.resolved_at = datetime.now(UTC)
            _announce(session, promise, "promise.kept")
    session.flush()


def mark_broken(session: Session, today: date) -> list[PromiseToPay]:
    """Open promises whose date has passed (before `today`, the tenant's date): kept ones are
    marked kept (money may have come by a route that did not check), the rest broken (the
    promise.broken event tells the client's collector). Returns the broken ones."""
    broken = []
    promises = session.scalars(
        select(PromiseToPay)
        .where(PromiseToPay.status == "open", PromiseToPay.promised_on < today)
        .order_by(PromiseToPay.id)
        .with_for_update(skip_locked=True)
    )
    for promise in promises:
        promise.status = "kept" if is_kept(session, promise) else "broken"
        promise.resolved_at = datetime.now(UTC)
        if promise.status == "broken":
            broken.append(promise)
            unpaid = to_money(promise.amount) - max(paid_since(session, promise), ZERO)
            _announce(session, promise, "promise.broken", unpaid=format(unpaid, "f"))
        else:
            _announce(session, promise, "promise.kept")
    session.flush()
    return broken


def _announce(session: Session, promise: PromiseToPay, type_: str, **facts) -> None:
    emit(
        session,
        type_,
        "promise",
        promise.id,
        {
            "promise_id": promise.id,
            "client_id": promise.client_id,
            "amount": format(to_money(promise.amount), "f"),
            "currency": promise.currency,
            "promised_for": promise.promised_on.isoformat(),
            **facts,
        },
    )


# Reading ------------------------------------------------------------------------------------


def get_promise(session: Session, promise_id: int) -> PromiseToPay | None:
    return session.get(PromiseToPay, promise_id)


def client_promises(session: Session, client_id: int) -> list[PromiseToPay]:
    """The client's promises, open first, then newest."""
    return list(
        session.scalars(
            select(PromiseToPay)
            .where(PromiseToPay.client_id == client_id)
            .order_by(
                (PromiseToPay.status != "open"),
                PromiseToPay.promised_on.desc(),
                PromiseToPay.id.desc(),
            )
        )
    )


PROMISE_VIEWS = {
    "open": "Open",
    "due_today": "Due today",
    "due_soon": "Due within a week",
    "broken": "Broken",
}
# The dashboard counts the promises broken this recently: older ones are history, not work.
BROKEN_LATELY_DAYS = 30


PAGE_SIZE = 50


@dataclass
class PromisePage:
    rows: list[tuple[PromiseToPay, Client]]
    page: int
    has_next: bool


def list_promises(
    session: Session, view: str, today: date, page: int = 1, page_size: int = PAGE_SIZE
) -> PromisePage:
    """One page of the promises of the list page: open (by date), due today, due soon (open,
    due within a week), or broken (the latest promised date first). Each view walks its
    partial index in order and stops after the page: no count, "Next" while there is more."""
    query = select(PromiseToPay, Client).join(Client, Client.id == PromiseToPay.client_id)
    if view == "broken":
        query = query.where(PromiseToPay.status == "broken").order_by(
            PromiseToPay.promised_on.desc(), PromiseToPay.id.desc()
        )
    else:
        query = query.where(PromiseToPay.status == "open")
        if view == "due_today":
            query = query.where(PromiseToPay.promised_on == today)
        elif view == "due_soon":
            query = query.where(PromiseToPay.promised_on <= today + timedelta(DUE_SOON_DAYS))
        query = query.order_by(PromiseToPay.promised_on, PromiseToPay.id)
    page = max(page, 1)
    found = [
        tuple(row)
        for row in session.execute(query.limit(page_size + 1).offset((page - 1) * page_size))
    ]
    return PromisePage(found[:page_size], page, len(found) > page_size)


def due_today_count(today):
    """Open promises due `today` (a date, or a bound parameter of one), as a scalar subquery on
    the open promises' index (a page asks it along with other counts in one round trip)."""
    return (
        select(func.count())
        .select_from(PromiseToPay)
        .where(PromiseToPay.status == "open", PromiseToPay.promised_on == today)
        .scalar_subquery()
    )


def broken_lately_count(broken_since):
    """Promises broken since `broken_since` (a date, or a bound parameter of one: the caller's
    today less BROKEN_LATELY_DAYS), as a scalar subquery on the broken promises' index."""
    return (
        select(func.count())
        .select_from(PromiseToPay)
        .where(
            PromiseToPay.status == "broken",
            PromiseToPay.promised_on >= broken_since,
        )
        .scalar_subquery()
    )
