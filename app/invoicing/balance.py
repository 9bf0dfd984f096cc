"""An invoice's balance: what it still owes, and settling it when that changes.

What is owed is derived, never stored: the invoice's total less the cash and TDS applied to it
by live payment allocations, less its credit notes, less what was written off. Settling sets
the invoice's status from that balance (paid, partly paid, or back to overdue / sent / issued;
a dispute holds) and moves its milestones along (invoiced -> partly_paid -> paid, and back).

Payments are recorded and allocated by `app.payments`, which sits above invoicing: invoicing
reads only the sums the allocations applied to each invoice, through the description of their
table below, and never imports the payments area.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    Date,
    DateTime,
    MetaData,
    Numeric,
    ScalarSelect,
    Select,
    String,
    Table,
    bindparam,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from app.core.clock import tenant_today
from app.core.money import format_money, to_money
from app.core.signals import DeletionBlocker, announce_invoice_balance_changed
from app.invoicing.models import CreditNote, Invoice, InvoiceLine
from app.projects.models import Milestone
from app.projects.services import record_move
from tenants.binding import PLACEHOLDER_SCHEMA, bound_tenant_id
from tenants.models import Tenant

ZERO = Decimal("0.00")
# Invoices that can take a payment (issued, not void, not a draft, not written off): their
# balance decides their status.
PAYABLE_STATUSES = ("issued", "sent", "partly_paid", "paid", "overdue", "disputed")
PAID_MILESTONE_STATUSES = ("invoiced", "partly_paid", "paid")

# The columns of app.payments.models.PaymentAllocation that a balance reads, described on a
# metadata of their own (the model's metadata declares the table; migrations read that one).
_allocations = Table(
    "payment_allocations",
    MetaData(schema=PLACEHOLDER_SCHEMA),
    Column("invoice_id", BigInteger),
    Column("amount", Numeric(18, 2)),
    Column("tds_amount", Numeric(18, 2)),
    Column("removed_at", DateTime(timezone=True)),
)


def applied_per_invoice() -> Select:
    """(invoice_id, amount): the cash and TDS that live allocations applied to each invoice."""
    return (
        select(
            _allocations.c.invoice_id.label("invoice_id"),
            func.sum(_allocations.c.amount + _allocations.c.tds_amount).label("amount"),
        )
        .where(_allocations.c.removed_at.is_(None))
        .group_by(_allocations.c.invoice_id)
    )


def applied_to(invoice_id) -> ScalarSelect:
    """The cash and TDS live allocations applied to the invoice `invoice_id` (a column, for a
    correlated subquery: one probe of the allocations' invoice index), NULL for none."""
    return (
        select(func.sum(_allocations.c.amount + _allocations.c.tds_amount))
        .where(_allocations.c.invoice_id == invoice_id, _allocations.c.removed_at.is_(None))
        .scalar_subquery()
    )


def applied_to_invoices(session: Session, invoice_ids: Iterable[int]) -> dict[int, Decimal]:
    """The payments applied to each invoice (absent: none)."""
    ids = list(invoice_ids)
    if not ids:
        return {}
    rows = session.execute(applied_per_invoice().where(_allocations.c.invoice_id.in_(ids)))
    return {invoice_id: to_money(total) for invoice_id, total in rows}


def credited_to_invoices(session: Session, invoice_ids: Iterable[int]) -> dict[int, Decimal]:
    """The total of the credit notes of each invoice (absent: none)."""
    ids = list(invoice_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(CreditNote.invoice_id, func.sum(CreditNote.total))
        .where(CreditNote.invoice_id.in_(ids))
        .group_by(CreditNote.invoice_id)
    )
    return {invoice_id: to_money(total) for invoice_id, total in rows}


@cache
def _settled_statement():
    """`settled_against_invoices`' statement, built once: ("credited" | "paid", invoice id,
    amount) for the invoices in :ids (one array, so its text is the same for every page)."""
    wanted = func.any(bindparam("ids", type_=ARRAY(BigInteger)))
    credits = (
        select(literal_column("'credited'"), CreditNote.invoice_id, func.sum(CreditNote.total))
        .where(CreditNote.invoice_id == wanted)
        .group_by(CreditNote.invoice_id)
    )
    payments = (
        select(
            literal_column("'paid'"),
            _allocations.c.invoice_id,
            func.sum(_allocations.c.amount + _allocations.c.tds_amount),
        )
        .where(_allocations.c.invoice_id == wanted, _allocations.c.removed_at.is_(None))
        .group_by(_allocations.c.invoice_id)
    )
    return union_all(credits, payments)


def settled_against_invoices(
    session: Session, invoice_ids: Iterable[int]
) -> tuple[dict[int, Decimal], dict[int, Decimal]]:
    """`credited_to_invoices` and `applied_to_invoices` of the same invoices in one statement
    (a page of invoices shows both: one round trip and one plan instead of two)."""
    ids = list(invoice_ids)
    if not ids:
        return {}, {}
    found: dict[str, dict[int, Decimal]] = {"credited": {}, "paid": {}}
    for kind, invoice_id, total in session.execute(_settled_statement(), {"ids": ids}):
        found[kind][invoice_id] = to_money(total)
    return found["credited"], found["paid"]


@dataclass(frozen=True)
class Statement:
    """An invoice's money as the invoice page states it, each part shown so that they add up:
    total - credit notes - payments (cash and TDS) - written off = still owed."""

    total: Decimal
    credited: Decimal
    paid: Decimal
    written_off: Decimal

    @property
    def owed(self) -> Decimal:
        return self.total - self.credited - self.paid - self.written_off


def statement(session: Session, invoice: Invoice) -> Statement:
    return statements(session, [invoice])[invoice.id]


def statements(session: Session, invoices: Iterable[Invoice]) -> dict[int, Statement]:
    """`statement` of each invoice, in two statements for all of them rather than two each."""
    invoices = list(invoices)
    ids = [invoice.id for invoice in invoices]
    credited, paid = settled_against_invoices(session, ids)
    return {
        invoice.id: Statement(
            total=to_money(invoice.total),
            credited=credited.get(invoice.id, ZERO),
            paid=paid.get(invoice.id, ZERO),
            written_off=to_money(invoice.written_off_amount or ZERO),
        )
        for invoice in invoices
    }


def outstanding(session: Session, invoice: Invoice) -> Decimal:
    """What the invoice still owes: its total less the live allocations' cash and TDS, its
    credit notes, and what was written off."""
    return statement(session, invoice).owed


def outstanding_of(session: Session, invoices: Iterable[Invoice]) -> dict[int, Decimal]:
    """`outstanding` of each invoice (a client's pay page lists every invoice it owes)."""
    return {invoice_id: found.owed for invoice_id, found in statements(session, invoices).items()}


@dataclass(frozen=True)
class ClientOwing:
    """What one client's open invoices in one currency still owe: in all, past their due date
    on `today`, and the oldest due date among those past it."""

    client_id: int
    currency: str
    owed: Decimal
    overdue: Decimal
    oldest_due: date | None


def owing_per_client(session: Session, client_ids: Iterable[int], today: date) -> list[ClientOwing]:
    """`open_invoices`' figures for several clients in one statement, added up per client and
    currency in the database (a collector's queue asks for dozens of clients). Read from the
    open amount kept for each owing invoice (`_open_amounts`) rather than worked out from
    every invoice's allocations and credit notes: 50 clients with 200 open invoices each took
    20-30 ms that way. The table's index on client, currency and due date includes the
    amount (tenant revision 0036): the sums read that index alone, never the table."""
    ids = sorted(set(client_ids))
    if not ids:
        return []
    rows = session.execute(_owing_per_client(), {"client_ids": ids, "today": today})
    return [
        ClientOwing(client_id, currency, to_money(owed), to_money(overdue), oldest_due)
        for client_id, currency, owed, overdue, oldest_due in rows
    ]


# The open amount of each invoice that still owes money (owing status, amount > 0), kept in
# the same transaction by triggers on invoices, allocations and credit notes (tenant migration
# 0013; the aging area's `AgingEntry` reads the same table for its buckets). Described here on
# a metadata of its own, as the allocations above are: the money of an invoice is invoicing's
# to know, wherever the table that keeps it is declared.
_open_amounts = Table(
    "aging_entries",
    MetaData(schema=PLACEHOLDER_SCHEMA),
    Column("invoice_id", BigInteger),
    Column("client_id", BigInteger),
    Column("currency", String(3)),
    Column("due_date", Date),
    Column("amount", Numeric(18, 2)),
)


@cache
def _owing_per_client() -> Select:
    past_due = _open_amounts.c.due_date < bindparam("today", type_=Date)
    return (
        select(
            _open_amounts.c.client_id,
            _open_amounts.c.currency,
            func.sum(_open_amounts.c.amount),
            func.coalesce(func.sum(_open_amounts.c.amount).filter(past_due), 0),
            func.min(_open_amounts.c.due_date).filter(past_due),
        )
        .where(_open_amounts.c.client_id.in_(bindparam("client_ids", expanding=True)))
        .group_by(_open_amounts.c.client_id, _open_amounts.c.currency)
    )


@dataclass(frozen=True)
class OpenInvoice:
    invoice: Invoice
    outstanding: Decimal


def open_invoices(session: Session, client_id: int) -> list[OpenInvoice]:
    """The client's issued (not void) invoices that still owe something (after payments and
    credit notes), oldest issue first."""
    invoices = list(
        session.scalars(
            select(Invoice)
            .where(Invoice.client_id == client_id, Invoice.status.in_(PAYABLE_STATUSES))
            .order_by(Invoice.issue_date, Invoice.id)
        )
    )
    credited, applied = settled_against_invoices(session, [i.id for i in invoices])
    result = []
    for invoice in invoices:
        owed = to_money(invoice.total) - applied.get(invoice.id, ZERO)
        owed -= credited.get(invoice.id, ZERO)
        if owed > 0:
            result.append(OpenInvoice(invoice, owed))
    return result


def deletion_blockers(session: Session, client_id: int) -> list[DeletionBlocker]:
    """invoicing's answer when a client is about to be deleted: its invoices that still owe
    money hold it (deleted, it would stop being chased while the books still count it)."""
    owing = open_invoices(session, client_id)
    if not owing:
        return []
    per_currency: dict[str, Decimal] = {}
    for each in owing:
        currency = each.invoice.currency
        per_currency[currency] = per_currency.get(currency, ZERO) + each.outstanding
    country = session.get(Tenant, bound_tenant_id(session)).country
    amounts = " and ".join(
        format_money(amount, currency, country) for currency, amount in sorted(per_currency.items())
    )
    count = len(owing)
    return [
        DeletionBlocker(
            holds=f"{count} open invoice{'' if count == 1 else 's'} owing {amounts}",
            remedy=f"Settle or write off {'it' if count == 1 else 'them'} (with the reason)",
            tab="invoices",
        )
    ]


def status_after_settling(
    session: Session, invoice: Invoice, paid: Decimal, left: Decimal, today: date | None = None
) -> str:
    """The status of an owing invoice from its money: paid when nothing is left (payments and
    credit notes together), disputed while a dispute is open, partly paid once something was
    paid, else its resting status (overdue past due, sent, issued)."""
    if left <= 0 and to_money(invoice.total) > 0:
        return "paid"
    if invoice.status == "disputed":
        return "disputed"
    if paid > 0:
        return "partly_paid"
    return invoice.resting_status(today or tenant_today(session))


def settle(session: Session, invoice: Invoice, user_id: int | None) -> None:
    """The invoice's status from what it still owes (payments and credit notes), and its
    milestones to match: paid, partly paid, or back to overdue / sent / issued when nothing is
    paid any more (`status_after_settling`; a dispute holds). Called after every change of
    what is owed."""
    if invoice.status not in PAYABLE_STATUSES:
        return
    left = outstanding(session, invoice)
    paid = applied_to_invoices(session, [invoice.id]).get(invoice.id, ZERO)
    status = status_after_settling(session, invoice, paid, left)
    invoice.status = status
    target = "paid" if status == "paid" else "partly_paid" if paid > 0 else "invoiced"
    milestone_ids = select(InvoiceLine.milestone_id).where(
        InvoiceLine.invoice_id == invoice.id, InvoiceLine.milestone_id.is_not(None)
    )
    milestones = session.scalars(
        select(Milestone)
        .where(Milestone.id.in_(milestone_ids))
        .order_by(Milestone.id)
        .with_for_update()
    )
    label = invoice.number or f"draft #{invoice.id}"
    note = f"invoice {label} {status.replace('_', ' ')}"
    for milestone in milestones:
        if milestone.status in PAID_MILESTONE_STATUSES and milestone.status != target:
            record_move(session, milestone, target, user_id, note)
    session.flush()
    announce_invoice_balance_changed(session, invoice, left, user_id)
