"""The invoice list: filters carried in the URL, newest first, keyset pages, totals of the
filtered set. Stays quick at 100,000 invoices: the order is an index
(`ix_invoices_list`: issue_date DESC NULLS FIRST, id DESC; drafts, which have no date, first),
a page costs the same wherever it is, a page's clients, projects and amounts come in three
queries whatever its length, and the totals are one aggregate over the filtered set.

"overdue" as a filter is derived from the dates, not only the stored status: any invoice that
still owes money and is past its due date in the tenant's calendar (a partly paid one too, and
one the daily job has not reached yet), disputed ones excepted (collection waits for the
dispute). "open" is every invoice that still owes money.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import and_, case, func, literal_column, or_, select
from sqlalchemy.orm import Session

from app.clients.models import SEARCH_EXPRESSION, Client
from app.core.money import to_money
from app.core.request_input import row_id
from app.invoicing.balance import applied_per_invoice, applied_to_invoices, credited_to_invoices
from app.invoicing.models import INVOICE_STATUSES, OWING_STATUSES, CreditNote, Invoice
from app.projects.models import Project

PAGE_SIZE = 50
ZERO = Decimal("0.00")
STATUS_FILTERS = ("open", "overdue", *INVOICE_STATUSES)
CHASED_STATUSES = ("issued", "sent", "overdue", "partly_paid")  # owing, and not disputed


def _date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat((raw or "").strip()) if (raw or "").strip() else None
    except ValueError:
        return None


@dataclass(frozen=True)
class InvoiceFilters:
    """What the list shows, all of it in the URL so a view can be bookmarked."""

    status: str = ""
    client_id: int | None = None
    q: str = ""
    issued_from: date | None = None
    issued_to: date | None = None

    @classmethod
    def from_args(cls, args: Mapping) -> InvoiceFilters:
        status = (args.get("status") or "").strip()
        client = (args.get("client_id") or "").strip()
        return cls(
            status=status if status in STATUS_FILTERS else "",
            client_id=row_id(client),
            q=(args.get("q") or "").strip()[:100],
            issued_from=_date(args.get("from")),
            issued_to=_date(args.get("to")),
        )

    def as_args(self) -> dict[str, str]:
        values = {
            "status": self.status,
            "client_id": str(self.client_id) if self.client_id else "",
            "q": self.q,
            "from": self.issued_from.isoformat() if self.issued_from else "",
            "to": self.issued_to.isoformat() if self.issued_to else "",
        }
        return {key: value for key, value in values.items() if value}


def _overdue(today: date):
    return or_(
        Invoice.status == "overdue",
        and_(Invoice.status.in_(CHASED_STATUSES), Invoice.due_date < today),
    )


def _filtered(query, filters: InvoiceFilters, today: date):
    if filters.status == "open":
        query = query.where(Invoice.status.in_(OWING_STATUSES))
    elif filters.status == "overdue":
        query = query.where(_overdue(today))
    elif filters.status:
        query = query.where(Invoice.status == filters.status)
    if filters.client_id:
        query = query.where(Invoice.client_id == filters.client_id)
    if filters.issued_from:
        query = query.where(Invoice.issue_date >= filters.issued_from)
    if filters.issued_to:
        query = query.where(Invoice.issue_date <= filters.issued_to)
    if filters.q:
        pattern = (
            "%"
            + filters.q.lower().replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            + "%"
        )
        # Both sides use a trigram index: the invoice number's, and the clients' search text.
        clients = select(Client.id).where(literal_column(SEARCH_EXPRESSION).like(pattern))
        query = query.where(
            or_(func.lower(Invoice.number).like(pattern), Invoice.client_id.in_(clients))
        )
    return query


@dataclass(frozen=True)
class InvoiceRow:
    invoice: Invoice
    client_name: str
    project_name: str | None
    outstanding: Decimal | None  # None for drafts and void invoices: nothing is owed
    days_overdue: int


@dataclass(frozen=True)
class Totals:
    currency: str
    count: int
    total: Decimal
    outstanding: Decimal


@dataclass
class InvoicePage:
    rows: list[InvoiceRow]
    next_cursor: str | None
    totals: list[Totals] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(t.count for t in self.totals)


def _cursor(invoice: Invoice) -> str:
    day = invoice.issue_date.isoformat() if invoice.issue_date else "draft"
    return f"{day}.{invoice.id}"


def _after(cursor: str | None):
    """The keyset condition for the rows after `cursor` in (issue_date DESC NULLS FIRST,
    id DESC) order; None when the cursor is not one of ours (the first page then)."""
    day, _, raw_id = (cursor or "").partition(".")
    last_id = row_id(raw_id)
    if last_id is None:
        return None
    if day == "draft":
        return or_(
            and_(Invoice.issue_date.is_(None), Invoice.id < last_id),
            Invoice.issue_date.is_not(None),
        )
    last_day = _date(day)
    if last_day is None:
        return None
    return or_(
        Invoice.issue_date < last_day, and_(Invoice.issue_date == last_day, Invoice.id < last_id)
    )


def list_invoices(
    session: Session,
    filters: InvoiceFilters,
    today: date,
    after: str | None = None,
    page_size: int = PAGE_SIZE,
) -> InvoicePage:
    query = (
        select(Invoice, Client.full_name, Project.name)
        .join(Client, Client.id == Invoice.client_id)
        .outerjoin(Project, Project.id == Invoice.project_id)
    )
    query = _filtered(query, filters, today)
    condition = _after(after)
    if condition is not None:
        query = query.where(condition)
    query = query.order_by(Invoice.issue_date.desc().nulls_first(), Invoice.id.desc())
    found = session.execute(query.limit(page_size + 1)).all()
    more = len(found) > page_size
    found = found[:page_size]
    ids = [invoice.id for invoice, _, _ in found]
    paid = applied_to_invoices(session, ids)
    credited = credited_to_invoices(session, ids)
    rows = []
    for invoice, client_name, project_name in found:
        owed = None
        days = 0
        if invoice.status in OWING_STATUSES:
            owed = (
                to_money(invoice.total)
                - to_money(paid.get(invoice.id) or 0)
                - to_money(credited.get(invoice.id) or 0)
            )
            if invoice.due_date and invoice.due_date < today and invoice.status != "disputed":
                days = (today - invoice.due_date).days
        elif invoice.status == "paid":
            owed = ZERO
        rows.append(InvoiceRow(invoice, client_name, project_name, owed, days))
    next_cursor = _cursor(found[-1][0]) if more and found else None
    return InvoicePage(rows, next_cursor, totals(session, filters, today))


def totals(session: Session, filters: InvoiceFilters, today: date) -> list[Totals]:
    """Count, total and outstanding of the whole filtered set, one line per currency. Drafts and
    void invoices count in the number and total, never in what is outstanding."""
    paid = applied_per_invoice().subquery()
    credited = (
        select(
            CreditNote.invoice_id.label("invoice_id"), func.sum(CreditNote.total).label("amount")
        )
        .group_by(CreditNote.invoice_id)
        .subquery()
    )
    owed = case(
        (
            Invoice.status.in_(OWING_STATUSES),
            Invoice.total - func.coalesce(paid.c.amount, 0) - func.coalesce(credited.c.amount, 0),
        ),
        else_=0,
    )
    query = (
        select(
            Invoice.currency,
            func.count(),
            func.coalesce(func.sum(Invoice.total), 0),
            func.coalesce(func.sum(owed), 0),
        )
        .select_from(Invoice)
        .outerjoin(paid, paid.c.invoice_id == Invoice.id)
        .outerjoin(credited, credited.c.invoice_id == Invoice.id)
        .group_by(Invoice.currency)
        .order_by(func.count().desc())
    )
    query = _filtered(query, filters, today)
    return [
        Totals(currency, count, to_money(total), to_money(outstanding))
        for currency, count, total, outstanding in session.execute(query)
    ]
