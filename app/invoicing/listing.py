"""The invoice list: filters carried in the URL, newest first, keyset pages, totals of the
filtered set. Stays quick at 100,000 invoices: the order is an index
(`ix_invoices_list`: issue_date DESC NULLS FIRST, id DESC; drafts, which have no date, first),
a page costs the same wherever it is, a page's clients, projects and amounts come in three
queries whatever its length. The totals do not read the ledger: unfiltered they are what the
database keeps (`totals` says which filters, and what a larger filtered set shows).

"overdue" as a filter is derived from the dates, not only the stored status: any invoice that
still owes money and is past its due date in the tenant's calendar (a partly paid one too, and
one the daily job has not reached yet), disputed ones excepted (collection waits for the
dispute). "open" is every invoice that still owes money.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache

from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    Numeric,
    String,
    Table,
    and_,
    case,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, load_only

from app.clients.models import SEARCH_EXPRESSION, Client
from app.core.money import to_money
from app.core.request_input import row_id
from app.custom_fields.models import CustomField, searchable_custom_values
from app.custom_fields.services import (
    FORM_PREFIX,
    ListChoice,
    filter_clause,
    sort_is_numeric,
    sort_sql,
)
from app.invoicing.balance import applied_to, settled_against_invoices
from app.invoicing.models import (
    INVOICE_STATUSES,
    OWING_STATUSES,
    CreditNote,
    Invoice,
    InvoiceTotal,
    InvoiceTotalChange,
)
from app.projects.models import Project
from tenants.binding import PLACEHOLDER_SCHEMA, bound_schema, qualified

PAGE_SIZE = 50
COUNT_CAP = 10_000  # a filter keeping more says "10,000+ invoices" instead of adding them up
# A search matching at most this many invoices reads them by id (`_narrowed_to_matches`): more
# ids cost more to fetch than the ordered walk takes to meet 51 of them.
SEARCH_NARROWS = 2_000
ZERO = Decimal("0.00")
STATUS_FILTERS = ("open", "overdue", *INVOICE_STATUSES)
CHASED_STATUSES = ("issued", "sent", "overdue", "partly_paid")  # owing, and not disputed

# What app.aging keeps as outstanding per currency (migrations 0013 and 0022), described on a
# metadata of their own: aging sits above invoicing, which reads these columns and no more.
_aging_metadata = MetaData(schema=PLACEHOLDER_SCHEMA)
_aging_totals, _aging_total_changes = (
    Table(name, _aging_metadata, Column("currency", String(3)), Column("amount", Numeric(18, 2)))
    for name in ("aging_totals", "aging_total_changes")
)


def _date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat((raw or "").strip()) if (raw or "").strip() else None
    except ValueError:
        return None


@dataclass(frozen=True)
class InvoiceFilters:
    """What the list shows, all of it in the URL so a view can be bookmarked. The invoices'
    own fields offered in lists (`fields`) add filters (cf.<key>=value), sorting
    (sort=cf.<key> or -cf.<key>; newest first otherwise) and columns (columns=key,key)."""

    status: str = ""
    client_id: int | None = None
    q: str = ""
    issued_from: date | None = None
    issued_to: date | None = None
    custom: tuple[tuple[str, str], ...] = ()
    sort: str = ""
    columns: tuple[str, ...] = ()
    fields: dict[str, CustomField] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_args(cls, args: Mapping, fields: Sequence[CustomField] = ()) -> InvoiceFilters:
        status = (args.get("status") or "").strip()
        client = (args.get("client_id") or "").strip()
        # The custom-field part read as every list reads it.
        listed = ListChoice.from_args(args, fields)
        return cls(
            status=status if status in STATUS_FILTERS else "",
            client_id=row_id(client),
            q=(args.get("q") or "").strip()[:100],
            issued_from=_date(args.get("from")),
            issued_to=_date(args.get("to")),
            custom=listed.custom,
            sort=listed.sort,
            columns=listed.columns,
            fields=listed.fields,
        )

    def as_args(self) -> dict[str, str]:
        values = {
            "status": self.status,
            "client_id": str(self.client_id) if self.client_id else "",
            "q": self.q,
            "from": self.issued_from.isoformat() if self.issued_from else "",
            "to": self.issued_to.isoformat() if self.issued_to else "",
            **ListChoice(self.custom, self.sort, self.columns).as_args(),
        }
        return {key: value for key, value in values.items() if value}

    @property
    def shown_fields(self) -> list[CustomField]:
        return [self.fields[key] for key in self.columns]

    @property
    def custom_filter(self) -> dict[str, str]:
        return dict(self.custom)


def _overdue(today: date):
    return or_(
        Invoice.status == "overdue",
        and_(Invoice.status.in_(CHASED_STATUSES), Invoice.due_date < today),
    )


def _filtered(query, filters: InvoiceFilters, today: date, session: Session | None = None):
    for key, value in filters.custom:
        query = query.where(
            filter_clause(session, Invoice.custom_fields, filters.fields[key], value)
        )
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
        # Every arm can be answered by an index: the invoice number's trigrams, the invoice's
        # custom values' (a PO number), and the clients found by their search text as an array
        # (`= ANY(ARRAY(...))`, where `IN (subquery)` could only be checked row by row). So the
        # planner may OR three bitmaps for a rare term, or walk the list in order for a common
        # one, as it judges.
        clients = select(Client.id).where(literal_column(SEARCH_EXPRESSION).like(pattern))
        query = query.where(
            or_(
                func.lower(Invoice.number).like(pattern),
                searchable_custom_values(Invoice.custom_fields).like(pattern),
                Invoice.client_id == func.any(func.array(clients.scalar_subquery())),
            )
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
    # More than COUNT_CAP invoices match the filters: no totals, "10,000+ invoices" instead.
    count_is_capped: bool = False
    count_cap: int = 0


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


def still_owed(
    status: str, total: Decimal, paid: Decimal | None, credited: Decimal | None
) -> Decimal | None:
    """What the list shows as outstanding: None for drafts, void and written-off invoices
    (nothing is owed), zero for paid ones."""
    if status in OWING_STATUSES:
        return to_money(total) - to_money(paid or 0) - to_money(credited or 0)
    return ZERO if status == "paid" else None


def days_overdue(status: str, due_date: date | None, today: date) -> int:
    """Days past the due date of an owing invoice; a disputed one waits for its dispute."""
    if status in OWING_STATUSES and status != "disputed" and due_date and due_date < today:
        return (today - due_date).days
    return 0


# What a list row shows and works out (its balance, days overdue, the cursor): read alone, not
# the invoice's other 25 columns (addresses, taxes, e-invoice fields), which 50 rows a page
# would carry from the server and load into each invoice for nothing.
LISTED_COLUMNS = (
    Invoice.id,
    Invoice.number,
    Invoice.client_id,
    Invoice.project_id,
    Invoice.status,
    Invoice.issue_date,
    Invoice.due_date,
    Invoice.currency,
    Invoice.total,
    Invoice.custom_fields,
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
        .options(load_only(*LISTED_COLUMNS))
    )
    query = _filtered(query, filters, today, session)
    if filters.q:
        query = _narrowed_to_matches(session, query, filters, today)
    if filters.sort:
        found, more, next_cursor = _custom_sorted(session, query, filters, after, page_size)
    else:
        condition = _after(after)
        if condition is not None:
            query = query.where(condition)
        query = query.order_by(Invoice.issue_date.desc().nulls_first(), Invoice.id.desc())
        found = session.execute(query.limit(page_size + 1)).all()
        more = len(found) > page_size
        found = found[:page_size]
        next_cursor = _cursor(found[-1][0]) if more and found else None
    ids = [invoice.id for invoice, _, _ in found]
    credited, paid = settled_against_invoices(session, ids)
    rows = [
        InvoiceRow(
            invoice,
            client_name,
            project_name,
            still_owed(
                invoice.status, invoice.total, paid.get(invoice.id), credited.get(invoice.id)
            ),
            days_overdue(invoice.status, invoice.due_date, today),
        )
        for invoice, client_name, project_name in found
    ]
    found_totals, capped = totals(session, filters, today)
    return InvoicePage(rows, next_cursor, found_totals, capped, COUNT_CAP)


def _narrowed_to_matches(session: Session, query, filters: InvoiceFilters, today: date):
    """A search's page read from its matches. Found first by their indexes (at most
    SEARCH_NARROWS ids), the page is those invoices sorted: a rare term (an invoice number, a
    PO number) costs a few milliseconds, where walking the list in order until 51 matched read
    all 1,000,000 invoices (1.8 s). A term more invoices share is left to the walk, which meets
    its matches early (one in every 20,000 rows or closer at 1,000,000 invoices)."""
    matching = session.scalars(
        _filtered(select(Invoice.id), filters, today, session).limit(SEARCH_NARROWS + 1)
    ).all()
    if len(matching) > SEARCH_NARROWS:
        return query
    return query.where(Invoice.id == func.any(literal(list(matching), ARRAY(BigInteger))))


def ordered_rows(session: Session, filters: InvoiceFilters, today: date):
    """Every invoice the filters keep, in the list's order, as plain columns (no pages): what
    an export reads with a server-side cursor."""
    query = (
        select(
            Invoice.id,
            Invoice.number,
            Client.full_name,
            Project.name,
            Invoice.issue_date,
            Invoice.due_date,
            Invoice.status,
            Invoice.currency,
            Invoice.total,
            Invoice.custom_fields,
        )
        .select_from(Invoice)
        .join(Client, Client.id == Invoice.client_id)
    )
    query = _filtered(
        query.outerjoin(Project, Project.id == Invoice.project_id), filters, today, session
    )
    if filters.sort:
        custom = filters.fields[filters.sort.lstrip("-").removeprefix(FORM_PREFIX)]
        key = literal_column(sort_sql(custom, "invoices"))
        if filters.sort.startswith("-"):
            return query.order_by(key.desc(), Invoice.id.desc())
        return query.order_by(key.asc(), Invoice.id.asc())
    return query.order_by(Invoice.issue_date.desc().nulls_first(), Invoice.id.desc())


def _custom_sorted(session: Session, query, filters: InvoiceFilters, after, page_size: int):
    """A page in the order of a custom field (its indexed sort expression), then id; the
    cursor carries the last row's (value, id)."""
    custom = filters.fields[filters.sort.lstrip("-").removeprefix(FORM_PREFIX)]
    key = literal_column(sort_sql(custom, "invoices"))
    descending = filters.sort.startswith("-")
    last = _decode_custom_cursor(after, sort_is_numeric(custom))
    if last is not None:
        row = tuple_(key, Invoice.id)
        query = query.where(row < tuple_(*last) if descending else row > tuple_(*last))
    order = (key.desc(), Invoice.id.desc()) if descending else (key.asc(), Invoice.id.asc())
    found = session.execute(query.add_columns(key).order_by(*order).limit(page_size + 1)).all()
    more = len(found) > page_size
    found = found[:page_size]
    next_cursor = None
    if more and found:
        value = found[-1][3]
        raw = json.dumps([str(value) if isinstance(value, Decimal) else value, found[-1][0].id])
        next_cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return [row[:3] for row in found], more, next_cursor


def _decode_custom_cursor(cursor: str | None, numeric: bool):
    if not cursor:
        return None
    try:
        value, last_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        last_id = row_id(last_id)
        value = Decimal(value) if numeric else str(value)
    except (ValueError, TypeError, InvalidOperation):
        return None
    return (value, last_id) if last_id else None


@cache
def _kept_totals_query():
    """Per currency and status: the kept count and invoiced total (migration 0023), and under
    the status None what the aging summary holds as outstanding (0022's totals: every owing
    invoice's total less its payments and credit notes). A few dozen rows, whatever the size of
    the ledger. The aging tables belong to app.aging, above this area: read through their
    description below, as balance.py reads payment allocations."""
    no_money = literal(ZERO, Numeric(18, 2))
    kept = [
        select(
            table.currency.label("currency"),
            table.status.label("status"),
            table.invoice_count.label("invoice_count"),
            table.amount.label("total"),
            no_money.label("outstanding"),
        )
        for table in (InvoiceTotal, InvoiceTotalChange)
    ]
    aging = [
        select(table.c.currency, null().cast(String(16)), literal(0), no_money, table.c.amount)
        for table in (_aging_totals, _aging_total_changes)
    ]
    parts = union_all(*kept, *aging).subquery()
    return select(
        parts.c.currency,
        parts.c.status,
        func.sum(parts.c.invoice_count),
        func.sum(parts.c.total),
        func.sum(parts.c.outstanding),
    ).group_by(parts.c.currency, parts.c.status)


def _kept_statuses(filters: InvoiceFilters) -> tuple[str, ...] | None:
    """The statuses whose kept totals are the filtered set's, or None when the set is not a
    union of whole statuses (a client, a search, dates, the derived "overdue", one owing
    status: their outstanding is not kept apart)."""
    if filters.client_id or filters.q or filters.issued_from or filters.issued_to or filters.custom:
        return None
    if not filters.status:
        return INVOICE_STATUSES
    if filters.status == "open":
        return OWING_STATUSES
    if filters.status in INVOICE_STATUSES and filters.status not in (*OWING_STATUSES, "overdue"):
        return (filters.status,)  # nothing outstanding: drafts, paid, void, written off
    return None


def _kept_totals(session: Session, statuses: tuple[str, ...]) -> list[Totals]:
    counted: dict[str, list] = {}
    outstanding: dict[str, Decimal] = {}
    for currency, status, count, total, owed in session.execute(_kept_totals_query()):
        if status is None:
            outstanding[currency] = to_money(owed)
        elif status in statuses:
            line = counted.setdefault(currency, [0, ZERO])
            line[0] += int(count)
            line[1] += to_money(total)
    owing = set(OWING_STATUSES) <= set(statuses)
    found = [
        Totals(currency, count, total, outstanding.get(currency, ZERO) if owing else ZERO)
        for currency, (count, total) in counted.items()
        if count
    ]
    return sorted(found, key=lambda t: (-t.count, t.currency))


def counted_totals(session: Session, filters: InvoiceFilters, today: date) -> list[Totals]:
    """The totals of the filtered set added up from its invoices, each owing invoice's payments
    and credit notes found through their invoice's index. What the list runs for a filtered
    set of at most COUNT_CAP invoices; over the whole ledger, the recomputation the tests
    compare the kept totals with."""
    applied = applied_to(Invoice.id)
    credited = (
        select(func.sum(CreditNote.total))
        .where(CreditNote.invoice_id == Invoice.id)
        .scalar_subquery()
    )
    owed = case(
        (
            Invoice.status.in_(OWING_STATUSES),
            Invoice.total - func.coalesce(applied, 0) - func.coalesce(credited, 0),
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
        .group_by(Invoice.currency)
        .order_by(func.count().desc(), Invoice.currency)
    )
    query = _filtered(query, filters, today, session)
    return [
        Totals(currency, count, to_money(total), to_money(outstanding))
        for currency, count, total, outstanding in session.execute(query)
    ]


def totals(session: Session, filters: InvoiceFilters, today: date) -> tuple[list[Totals], bool]:
    """Count, total and outstanding of the whole filtered set, one line per currency, and
    whether the set was too large to add up. Drafts and void invoices count in the number and
    total, never in what is outstanding.

    Without filters (the default view), for "open" and for a status that owes nothing, the
    figures are the kept totals: exact, and as quick at 1,000,000 invoices as at 10. Any other
    filter's figures are added up from its invoices, only when there are at most COUNT_CAP of
    them (counting stops there); past that the list says "10,000+ invoices" and asks for a
    narrower filter. A person filtering wants that filter's exact money, and a client's or a
    month's invoices are far fewer; the total past due over the whole ledger is the aging
    page's, which keeps it."""
    statuses = _kept_statuses(filters)
    if statuses is not None:
        return _kept_totals(session, statuses), False
    ids = _filtered(select(Invoice.id), filters, today, session).limit(COUNT_CAP + 1).subquery()
    if session.scalar(select(func.count()).select_from(ids)) > COUNT_CAP:
        return [], True
    return counted_totals(session, filters, today), False


def fold_totals(session: Session) -> None:
    """Fold the kept totals' changes into them (safe beside writers; the daily roll calls it,
    so the list reads a day's changes at most)."""
    session.execute(text(f"SELECT {qualified(bound_schema(session), 'invoice_fold_totals')}()"))
