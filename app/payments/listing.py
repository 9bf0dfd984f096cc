"""The payments list: filters carried in the URL (client, received between two dates, method,
live or void, with cash left unapplied), newest first in numbered pages, totals of the filtered
set per currency, and the same filtered set as CSV.

A payment's unapplied cash (the client's credit) is its amount less the cash of its live
allocations (to invoices and to their interest), computed for the rows of a page by one
aggregate joined to it. The totals must not add up every payment on each view (they grew with
the workspace), so they come from where they are already small:
- received payments, all of them or between two dates: from the cash the database keeps per
  day and currency (`payment_days`, migrations 0022 and 0024), whatever the number of payments;
- one client's payments: added up from that client's own (an index walk);
- any other filter (a method, void payments, only those with cash left): added up over the
  newest COUNT_CAP + 1 matches at most; beyond that the list says "10,000+" and asks for a
  narrower filter instead of totals it would take seconds to add up."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import cache

from sqlalchemy import Date, bindparam, func, or_, select
from sqlalchemy.orm import Session

from app.clients.exports import safe_cell
from app.clients.models import Client
from app.core.money import to_money
from app.core.request_input import row_id
from app.custom_fields.models import CustomField
from app.custom_fields.services import ListChoice, definitions, export_value
from app.payments.models import PAYMENT_METHODS, Payment, PaymentAllocation, PaymentDay

PAGE_SIZE = 50
COUNT_CAP = 10_000
STATUSES = {"live": "Received", "void": "Void", "all": "Any, void included"}


def _date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat((raw or "").strip()) if (raw or "").strip() else None
    except ValueError:
        return None


@dataclass(frozen=True)
class PaymentFilters:
    """What the list shows, all of it in the URL so a view can be bookmarked and exported.
    By default void payments are left out (they did not happen). The payments' own fields
    offered in lists add filters, the order and columns (`listed`)."""

    client_id: int | None = None
    received_from: date | None = None
    received_to: date | None = None
    method: str = ""
    status: str = "live"
    unallocated: bool = False
    listed: ListChoice = field(default_factory=ListChoice)

    @classmethod
    def from_args(cls, args: Mapping, fields: Sequence[CustomField] = ()) -> PaymentFilters:
        method = (args.get("method") or "").strip()
        status = (args.get("status") or "").strip()
        return cls(
            client_id=row_id(args.get("client_id")),
            received_from=_date(args.get("from")),
            received_to=_date(args.get("to")),
            method=method if method in PAYMENT_METHODS else "",
            status=status if status in STATUSES else "live",
            unallocated=args.get("unallocated") == "1",
            listed=ListChoice.from_args(args, fields),
        )

    def as_args(self) -> dict[str, str]:
        values = {
            "client_id": str(self.client_id) if self.client_id else "",
            "from": self.received_from.isoformat() if self.received_from else "",
            "to": self.received_to.isoformat() if self.received_to else "",
            "method": self.method,
            "status": "" if self.status == "live" else self.status,
            "unallocated": "1" if self.unallocated else "",
        }
        return {key: value for key, value in values.items() if value} | self.listed.as_args()


def _applied():
    """The cash of a payment's live allocations, asked per payment row (an index probe each):
    a page of 50 reads 50 payments' allocations, not every allocation of the workspace."""
    return (
        select(
            func.coalesce(func.sum(PaymentAllocation.amount + PaymentAllocation.interest_amount), 0)
        )
        .where(PaymentAllocation.payment_id == Payment.id, PaymentAllocation.removed_at.is_(None))
        .correlate(Payment)
        .scalar_subquery()
    )


def _filtered(filters: PaymentFilters, session: Session):
    unapplied = Payment.amount - _applied()
    query = select(Payment, Client.short_name, unapplied.label("unapplied")).join(
        Client, Client.id == Payment.client_id
    )
    if filters.status == "live":
        query = query.where(Payment.voided_at.is_(None))
    elif filters.status == "void":
        query = query.where(Payment.voided_at.is_not(None))
    if filters.client_id:
        query = query.where(Payment.client_id == filters.client_id)
    if filters.received_from:
        query = query.where(Payment.received_on >= filters.received_from)
    if filters.received_to:
        query = query.where(Payment.received_on <= filters.received_to)
    if filters.method:
        query = query.where(Payment.method == filters.method)
    if filters.unallocated:
        query = query.where(Payment.voided_at.is_(None), unapplied > 0)
    return query.where(*filters.listed.clauses(session, Payment.custom_fields))


def _order(filters: PaymentFilters) -> tuple:
    """Newest first, or by the chosen field (its indexed sort expression), then id."""
    custom = filters.listed.order("payments")
    if custom is None:
        return Payment.received_on.desc(), Payment.id.desc()
    return custom, Payment.id.desc() if filters.listed.sort.startswith("-") else Payment.id.asc()


@dataclass(frozen=True)
class PaymentRow:
    payment: Payment
    client_name: str
    unapplied: Decimal


@dataclass(frozen=True)
class Totals:
    currency: str
    count: int
    amount: Decimal
    unapplied: Decimal


@dataclass
class PaymentPage:
    rows: list[PaymentRow]
    page: int
    pages: int
    totals: list[Totals]
    # More than COUNT_CAP payments match a filter whose totals are not kept: no totals shown.
    capped: bool = False


def _rows(session: Session, query) -> Iterator[PaymentRow]:
    for payment, client_name, unapplied in session.execute(query):
        # A void payment has nothing left to apply: its allocations were taken back.
        left = to_money(unapplied) if payment.voided_at is None else to_money(0)
        yield PaymentRow(payment, client_name, left)


@cache
def _kept_totals_query():
    """The totals of received payments between two dates (either end open), per currency, from
    the days the database keeps."""
    after, until = bindparam("after", type_=Date), bindparam("until", type_=Date)
    return (
        select(
            PaymentDay.currency,
            func.sum(PaymentDay.payment_count),
            func.sum(PaymentDay.amount),
            func.sum(PaymentDay.unapplied),
        )
        .where(
            or_(after.is_(None), PaymentDay.received_on >= after),
            or_(until.is_(None), PaymentDay.received_on <= until),
        )
        .group_by(PaymentDay.currency)
        .order_by(PaymentDay.currency)
    )


def _kept(filters: PaymentFilters) -> bool:
    """Whether the filtered set's totals are kept by the database: received payments, at most
    bounded by dates."""
    return filters.status == "live" and not (
        filters.client_id or filters.method or filters.unallocated or filters.listed.custom
    )


def _totals(session: Session, filters: PaymentFilters) -> tuple[list[Totals], bool]:
    """The filtered set's totals per currency, and whether they were left out because more
    than COUNT_CAP payments match (see the module's docstring)."""
    kept = _kept(filters)
    if kept:
        values = {"after": filters.received_from, "until": filters.received_to}
        rows = session.execute(_kept_totals_query(), values)
    else:
        filtered = _filtered(filters, session)
        if not filters.client_id:
            filtered = filtered.order_by(Payment.received_on.desc(), Payment.id.desc()).limit(
                COUNT_CAP + 1
            )
        filtered = filtered.subquery()
        rows = session.execute(
            select(
                filtered.c.currency,
                func.count(),
                func.sum(filtered.c.amount),
                func.coalesce(
                    func.sum(filtered.c.unapplied).filter(filtered.c.voided_at.is_(None)), 0
                ),
            )
            .group_by(filtered.c.currency)
            .order_by(filtered.c.currency)
        )
    totals = [
        Totals(currency, int(count), to_money(amount), to_money(unapplied))
        for currency, count, amount, unapplied in rows
    ]
    if not (kept or filters.client_id) and sum(t.count for t in totals) > COUNT_CAP:
        return [], True
    return totals, False


def list_payments(
    session: Session, filters: PaymentFilters, page: int = 1, page_size: int = PAGE_SIZE
) -> PaymentPage:
    """One page of the filtered payments, newest first, and the filtered set's totals."""
    totals, capped = _totals(session, filters)
    count = COUNT_CAP + 1 if capped else sum(t.count for t in totals)
    pages = max(1, -(-count // page_size))
    page = min(max(page, 1), pages)
    query = (
        _filtered(filters, session)
        .order_by(*_order(filters))
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return PaymentPage(list(_rows(session, query)), page, pages, totals, capped)


@dataclass(frozen=True)
class MonthlyCash:
    """Live cash received in one currency this month (from its first day on: what the list
    filtered from that day shows) and in the whole of last month."""

    currency: str
    this_month: Decimal
    last_month: Decimal


def month_starts(today: date) -> tuple[date, date]:
    """The first day of `today`'s month and of the month before."""
    this_month = today.replace(day=1)
    return this_month, (this_month - timedelta(days=1)).replace(day=1)


@cache
def _cash_by_month_query():
    in_this_month = PaymentDay.received_on >= bindparam("this_month", type_=Date)
    return (
        select(
            PaymentDay.currency,
            func.coalesce(func.sum(PaymentDay.amount).filter(in_this_month), 0),
            func.coalesce(func.sum(PaymentDay.amount).filter(~in_this_month), 0),
        )
        .where(PaymentDay.received_on >= bindparam("last_month", type_=Date))
        .group_by(PaymentDay.currency)
    )


def cash_by_month(session: Session, today: date) -> list[MonthlyCash]:
    """This month's cash against last month's, per currency (largest this month first): one
    grouped query over the daily cash totals of two months (voided payments are not in them).
    The statement is built once (the dashboard asks on every visit)."""
    this_month, last_month = month_starts(today)
    values = {"this_month": this_month, "last_month": last_month}
    rows = session.execute(_cash_by_month_query(), values)
    found = [MonthlyCash(c, to_money(now), to_money(before)) for c, now, before in rows]
    return sorted(found, key=lambda m: (-m.this_month, m.currency))


EXPORT_HEADER = (
    "Received on",
    "Client",
    "Amount",
    "Currency",
    "Method",
    "Reference",
    "Unapplied",
    "Void on",
    "Void reason",
    "Note",
)


def export_csv(session: Session, filters: PaymentFilters, method_labels: Mapping) -> bytes:
    """The filtered payments (every page), in the list's order, as CSV for a spreadsheet, with
    a column for each of the payments' own fields (values as an import would read them)."""
    fields = definitions(session, "payments")
    out = io.StringIO()
    out.write("\ufeff")  # a byte-order mark, so that Excel reads the file as UTF-8
    writer = csv.writer(out)
    writer.writerow((*EXPORT_HEADER, *(f.label for f in fields)))
    query = _filtered(filters, session).order_by(*_order(filters))
    for row in _rows(session, query):
        payment = row.payment
        values = (
            payment.received_on.isoformat(),
            row.client_name,
            to_money(payment.amount),
            payment.currency,
            method_labels.get(payment.method, payment.method),
            payment.reference or "",
            row.unapplied,
            payment.voided_at.date().isoformat() if payment.voided_at else "",
            payment.void_reason or "",
            payment.note or "",
            *(export_value(f, (payment.custom_fields or {}).get(f.key)) for f in fields),
        )
        writer.writerow([safe_cell(value) for value in values])
    return out.getvalue().encode("utf-8")
