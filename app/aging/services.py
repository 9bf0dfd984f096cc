"""Aging: what clients owe, by how late it is, in the tenant's time zone.

The figures come from a summary the database maintains (migration 0013): triggers on
invoices, payment allocations and credit notes keep one entry per invoice that still owes
money and the sums per client, currency and bucket, adjusted by difference on every write.
Buckets shift as days pass with no write at all, so the summary is aged to a day
(`AgingState.as_of`): `roll` moves only the entries whose bucket changed since then (for each
boundary, the entries whose basis date lies in a range as wide as the days passed), and the
page rolls lazily when the tenant's date moved on; a daily job does the same. A change of
basis or boundaries rebuilds the summary from the base tables.

`full_recomputation` computes the same figures from the base tables alone (the scan the
summary saves): the tests compare the two after every change, the benchmark times both.

Buckets: 0 = current (not past its basis date), then one per boundary (bounds 30, 60, 90:
1-30, 31-60, 61-90 days), the last open-ended (90+). The basis date is the due date (or the
issue date, by the tenant's setting). Amounts are never added across currencies.

DSO (days sales outstanding) per currency = what is outstanding now ÷ the credit sales of
the last 90 days × 90, where credit sales are the totals of invoices issued in the 90 days
ending today (the tenant's date), drafts and voids left out; none when there were no sales.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache, cached_property

from sqlalchemy import (
    Date,
    Integer,
    String,
    bindparam,
    case,
    exists,
    func,
    select,
    text,
    true,
    tuple_,
    union,
    union_all,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from app.aging.models import (
    AgingClientOverdue,
    AgingClientRows,
    AgingEntry,
    AgingSales,
    AgingSnapshot,
    AgingState,
    AgingSummary,
    AgingTotal,
    AgingTotalChange,
)
from app.clients.models import Client
from app.clients.services import fold_counts as fold_client_counts
from app.collections.engine.services import settings_of as collection_settings
from app.collections.models import AGING_BASES, CollectionSettings
from app.invoicing.listing import fold_totals as fold_invoice_totals
from app.invoicing.models import OWING_STATUSES, CreditNote, Invoice
from app.payments.models import PaymentAllocation
from tenants.binding import bound_schema, qualified

ZERO = Decimal("0.00")
DSO_DAYS = 90
MAX_BOUNDARIES = 8
MAX_BOUNDARY_DAYS = 3650
BASIS_LABELS = {"due_date": "Due date", "issue_date": "Invoice date"}
TOP_CLIENTS = 10
COUNT_CAP = 10_000  # the report's rows are counted this far, then "10,000+"
TREND_DAYS = 30


# Buckets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Buckets:
    """Bucket boundaries in days (ascending): (30, 60, 90) gives current, 1-30, 31-60, 61-90,
    90+."""

    bounds: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.bounds) + 2

    def of(self, days: int) -> int:
        """The bucket of an invoice `days` past its basis date."""
        if days <= 0:
            return 0
        return 1 + sum(1 for bound in self.bounds if bound < days)

    # Worked out once per Buckets (a report names a bucket in every cell it fills).
    @cached_property
    def labels(self) -> tuple[str, ...]:
        labels, low = ["Current"], 1
        for bound in self.bounds:
            labels.append(f"{low}–{bound}")
            low = bound + 1
        labels.append(f"{self.bounds[-1]}+")
        return tuple(labels)

    @cached_property
    def long_labels(self) -> tuple[str, ...]:
        return ("Current", *(f"{label} days" for label in self.labels[1:]))


def parse_bounds(raw: str) -> tuple[int, ...]:
    """Boundaries as typed ("30, 60, 90"): ascending positive whole days, 1 to 8 of them.
    Raises ValueError with a message for the person."""
    parts = [p for p in raw.replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    if not parts:
        raise ValueError("Enter at least one boundary, e.g. 30, 60, 90.")
    if len(parts) > MAX_BOUNDARIES:
        raise ValueError(f"At most {MAX_BOUNDARIES} boundaries.")
    bounds = []
    for part in parts:
        if not part.strip().isdigit():
            raise ValueError(f"“{part.strip()}” is not a whole number of days.")
        bounds.append(int(part))
    if any(b <= 0 for b in bounds):
        raise ValueError("Boundaries are days after the basis date: 1 or more.")
    if any(b > MAX_BOUNDARY_DAYS for b in bounds):
        raise ValueError(f"A boundary can be at most {MAX_BOUNDARY_DAYS:,} days.")
    if any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
        raise ValueError("List the boundaries in ascending order, each once (e.g. 30, 60, 90).")
    return tuple(bounds)


# Keeping the summary current ---------------------------------------------------------------


def _call(session: Session, function: str, **params):
    """Call one of the schema's aging functions: raw SQL is not schema-translated, so the
    schema comes from the session's tenant binding."""
    args = ", ".join(f":{name}" for name in params)
    call = f"SELECT {qualified(bound_schema(session), function)}({args})"
    return session.execute(text(call), params).scalar()


def settings_of(session: Session) -> CollectionSettings:

    return collection_settings(session)


def current_state(session: Session) -> AgingState:
    return session.scalars(
        select(AgingState).where(AgingState.id == 1).execution_options(populate_existing=True)
    ).one()


def roll(session: Session, today: date) -> int:
    """Age the summary to `today` (the tenant's date): the entries whose bucket changed move
    with their amounts; then today's snapshot (if not written yet); the kept totals (aging's
    and the invoice list's) and the clients list's kept counts folded. Returns how many entries
    moved."""
    moved = _call(session, "aging_roll", day=today)
    _call(session, "aging_fold_totals")
    fold_invoice_totals(session)  # the invoice list's kept totals, on the same daily beat
    fold_client_counts(session)
    write_snapshot(session, today)
    return moved


def rebuild(session: Session, today: date, basis: str, bounds: Sequence[int]) -> None:
    """The summary again from the base tables, on `basis` with `bounds`, aged to `today`."""
    _call(session, "aging_rebuild", day=today, basis=basis, bounds=list(bounds))
    _call(session, "aging_fold_totals")
    write_snapshot(session, today, replace=True)


@cache
def _state_and_settings():
    """Where the summary stands and what the settings ask for, in one round trip (the dashboard
    asks on every visit); the settings' columns are None while their row is not written."""
    return (
        select(
            AgingState.as_of,
            AgingState.basis,
            AgingState.buckets,
            exists().where(AgingSnapshot.snapshot_on == bindparam("today", type_=Date)),
            CollectionSettings.aging_basis,
            CollectionSettings.aging_buckets,
        )
        .outerjoin(CollectionSettings, CollectionSettings.id == 1)
        .where(AgingState.id == 1)
    )


def ensure_current(session: Session, today: date) -> Buckets:
    """What a page calls first: rebuild when the settings changed underneath, roll when the
    tenant's day moved on, write today's snapshot when missing. Returns the buckets."""
    return ensure_current_with_basis(session, today)[0]


def ensure_current_with_basis(session: Session, today: date) -> tuple[Buckets, str]:
    """`ensure_current`, and the basis the summary ages by (read by the same statement, for the
    page that names it)."""
    row = session.execute(_state_and_settings(), {"today": today}).one()
    as_of, basis, bounds, has_snapshot, wanted_basis, wanted_bounds = row
    if wanted_basis is None:
        settings = settings_of(session)
        wanted_basis, wanted_bounds = settings.aging_basis, settings.aging_buckets
    if basis != wanted_basis or list(bounds) != list(wanted_bounds):
        rebuild(session, today, wanted_basis, wanted_bounds)
        bounds = wanted_bounds
    elif as_of != today:
        roll(session, today)
    elif not has_snapshot:
        write_snapshot(session, today)
    return Buckets(tuple(bounds)), wanted_basis


def update_settings(session: Session, basis: str, bounds: Sequence[int], today: date) -> bool:
    """An admin's new basis and boundaries (checked by the form): saved through the ORM (so
    audited) and the summary rebuilt. Returns False when nothing changed."""
    if basis not in AGING_BASES:
        raise ValueError(f"unknown aging basis {basis!r}")
    settings = settings_of(session)
    if settings.aging_basis == basis and list(settings.aging_buckets) == list(bounds):
        return False
    settings.aging_basis, settings.aging_buckets = basis, list(bounds)
    session.flush()
    rebuild(session, today, basis, bounds)
    return True


# Reading the summary -----------------------------------------------------------------------


@dataclass
class CurrencyAging:
    """One currency's open amounts and invoice counts per bucket."""

    currency: str
    amounts: list[Decimal]
    counts: list[int]
    credit_sales_90: Decimal = ZERO

    @property
    def outstanding(self) -> Decimal:
        return sum(self.amounts, ZERO)

    @property
    def overdue(self) -> Decimal:
        return sum(self.amounts[1:], ZERO)

    @property
    def invoice_count(self) -> int:
        return sum(self.counts)

    @property
    def dso(self) -> Decimal | None:
        return days_sales_outstanding(self.outstanding, self.credit_sales_90)

    def shares(self) -> list[int]:
        """Each bucket's share of the largest bucket, in percent (bar lengths)."""
        top = max(self.amounts, default=ZERO)
        if top <= 0:
            return [0 for _ in self.amounts]
        return [
            int((amount * 100 / top).to_integral_value(ROUND_HALF_UP)) for amount in self.amounts
        ]


def days_sales_outstanding(outstanding: Decimal, credit_sales: Decimal) -> Decimal | None:
    if credit_sales <= 0:
        return None
    return (outstanding / credit_sales * DSO_DAYS).quantize(Decimal("0.1"), ROUND_HALF_UP)


@cache
def _credit_sales_query():
    return (
        select(AgingSales.currency, func.sum(AgingSales.amount))
        .where(
            AgingSales.sale_date > bindparam("sales_after", type_=Date),
            AgingSales.sale_date <= bindparam("today", type_=Date),
        )
        .group_by(AgingSales.currency)
    )


def credit_sales(session: Session, today: date, days: int = DSO_DAYS) -> dict[str, Decimal]:
    """Totals of the invoices issued in the `days` ending `today`, per currency."""
    values = {"sales_after": today - timedelta(days=days), "today": today}
    return dict(session.execute(_credit_sales_query(), values).all())


@cache
def _totals_query():
    """Per currency and bucket, the summary's sums: the folded totals plus the changes since
    (a few rows either way, whatever the size of the summary)."""
    parts = union_all(
        select(AgingTotal.currency, AgingTotal.bucket, AgingTotal.amount, AgingTotal.invoice_count),
        select(
            AgingTotalChange.currency,
            AgingTotalChange.bucket,
            AgingTotalChange.amount,
            AgingTotalChange.invoice_count,
        ),
    ).subquery()
    return (
        select(
            parts.c.currency,
            parts.c.bucket,
            func.sum(parts.c.amount),
            func.sum(parts.c.invoice_count),
        )
        .group_by(parts.c.currency, parts.c.bucket)
        .having(func.sum(parts.c.invoice_count) != 0)
    )


def bucket_totals(session: Session, buckets: Buckets, today: date) -> list[CurrencyAging]:
    """Per currency (largest outstanding first): amounts and counts per bucket, and the credit
    sales behind DSO."""
    found: dict[str, CurrencyAging] = {}
    rows = session.execute(_totals_query())
    for currency, bucket, amount, count in rows:
        aging = found.setdefault(
            currency, CurrencyAging(currency, [ZERO] * len(buckets), [0] * len(buckets))
        )
        aging.amounts[bucket] += amount
        aging.counts[bucket] += int(count)
    for currency, amount in credit_sales(session, today).items():
        aging = found.setdefault(
            currency, CurrencyAging(currency, [ZERO] * len(buckets), [0] * len(buckets))
        )
        aging.credit_sales_90 = amount
    return sorted(found.values(), key=lambda a: (-a.outstanding, a.currency))


@dataclass
class ClientAging:
    """One client's open amounts per bucket in one currency."""

    client_id: int
    name: str
    currency: str
    amounts: list[Decimal]
    collector_user_id: int | None = None
    # A client deleted while it still owed (before deletion was refused): its money stays in
    # the report, but it has no page to link to.
    client_deleted: bool = False

    @property
    def total(self) -> Decimal:
        return sum(self.amounts, ZERO)

    @property
    def overdue(self) -> Decimal:
        return sum(self.amounts[1:], ZERO)

    @property
    def oldest_bucket(self) -> int:
        return max((i for i, a in enumerate(self.amounts) if a), default=0)


@dataclass
class AgingFilters:
    """The report's filters, from the URL (bookmarkable); bad values are dropped with a note."""

    currency: str = ""
    q: str = ""
    min_overdue: Decimal | None = None
    bucket: int | None = None
    collector_id: int | None = None
    sort: str = "overdue"
    page: int = 1
    problems: dict[str, str] = field(default_factory=dict)

    SORTS = {"overdue": "Most overdue", "total": "Largest balance", "name": "{Client} name"}

    @classmethod
    def from_args(cls, args: Mapping[str, str], buckets: Buckets) -> AgingFilters:
        filters, problems = cls(), {}
        currency = (args.get("currency") or "").strip().upper()
        if currency:
            if len(currency) == 3 and currency.isalpha():
                filters.currency = currency
            else:
                problems["currency"] = "A currency is a 3-letter code, e.g. INR."
        filters.q = (args.get("q") or "").strip()[:100]
        raw = (args.get("min_overdue") or "").replace(",", "").strip()
        if raw:
            try:
                value = Decimal(raw)
                if not value.is_finite() or value < 0:
                    raise ValueError
                filters.min_overdue = value
            except (ArithmeticError, ValueError):
                problems["min_overdue"] = "Enter an amount, e.g. 10000."
        raw = (args.get("bucket") or "").strip()
        if raw:
            if raw.isdigit() and int(raw) < len(buckets):
                filters.bucket = int(raw)
            else:
                problems["bucket"] = "Choose one of the buckets."
        raw = (args.get("collector") or "").strip()
        if raw:
            if raw.isdigit():
                filters.collector_id = int(raw)
            else:
                problems["collector"] = "Choose a collector."
        sort = args.get("sort") or "overdue"
        filters.sort = sort if sort in cls.SORTS else "overdue"
        page = args.get("page") or "1"
        filters.page = max(int(page), 1) if page.isdigit() else 1
        filters.problems = problems
        return filters

    def as_args(self) -> dict[str, str]:
        args = {
            "currency": self.currency,
            "q": self.q,
            "min_overdue": str(self.min_overdue) if self.min_overdue is not None else "",
            "bucket": str(self.bucket) if self.bucket is not None else "",
            "collector": str(self.collector_id) if self.collector_id is not None else "",
            "sort": self.sort if self.sort != "overdue" else "",
        }
        return {key: value for key, value in args.items() if value}


@dataclass
class AgingReport:
    rows: list[ClientAging]
    totals: list[CurrencyAging]
    client_count: int
    page: int
    page_size: int
    # More than COUNT_CAP rows: the count says "10,000+" and the pages go on while full.
    count_is_capped: bool = False

    @property
    def pages(self) -> int:
        return max(1, -(-self.client_count // self.page_size))

    @property
    def has_next(self) -> bool:
        if self.count_is_capped:
            return len(self.rows) == self.page_size
        return self.page < self.pages


def _client_rows_query(buckets: Buckets, filters: AgingFilters):
    amount = AgingSummary.amount
    per_bucket = [
        func.coalesce(func.sum(amount).filter(AgingSummary.bucket == i), 0).label(f"b{i}")
        for i in range(len(buckets))
    ]
    overdue = func.coalesce(func.sum(amount).filter(AgingSummary.bucket >= 1), 0)
    query = (
        select(
            AgingSummary.client_id,
            Client.full_name,
            AgingSummary.currency,
            Client.collector_user_id,
            Client.deleted_at.is_not(None).label("client_deleted"),
            *per_bucket,
            func.sum(amount).label("total"),
            overdue.label("overdue"),
        )
        .join(Client, Client.id == AgingSummary.client_id)
        .group_by(
            AgingSummary.client_id,
            Client.full_name,
            AgingSummary.currency,
            Client.collector_user_id,
            Client.deleted_at,
        )
    )
    if filters.currency:
        query = query.where(AgingSummary.currency == filters.currency)
    if filters.q:
        pattern = "%" + filters.q.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        pattern += "%"
        query = query.where(
            Client.full_name.ilike(pattern, escape="\\")
            | Client.short_name.ilike(pattern, escape="\\")
        )
    if filters.collector_id is not None:
        query = query.where(Client.collector_user_id == filters.collector_id)
    if filters.bucket is not None:
        query = query.having(func.sum(amount).filter(AgingSummary.bucket == filters.bucket) > 0)
    if filters.min_overdue is not None:
        query = query.having(overdue >= filters.min_overdue)
    return query


def _row(record, buckets: Buckets) -> ClientAging:
    return ClientAging(
        client_id=record.client_id,
        name=record.full_name,
        currency=record.currency,
        amounts=[getattr(record, f"b{i}") for i in range(len(buckets))],
        collector_user_id=record.collector_user_id,
        client_deleted=record.client_deleted,
    )


def _kept_report(filters: AgingFilters) -> bool:
    """Whether the report's totals are the kept totals' (no filter, or a currency alone)."""
    return (
        not filters.q
        and filters.min_overdue is None
        and filters.bucket is None
        and filters.collector_id is None
    )


@cache
def _overdue_page_query(bucket_count: int):
    """A page of the report in its default order (most overdue first), and how many rows it
    was chosen from. Per currency, the first `rank` clients of the past-due totals' index (and
    any owing as much as the last of them); only they are added up from the summary (by its
    key). Any client left out owes less past due than `rank` clients of its currency, so it
    sorts after the page's rows: the page is the one the whole report would show, as long as
    there were at least `rank` rows to choose from."""
    kept = union(select(AgingTotal.currency), select(AgingTotalChange.currency)).subquery()
    wanted = bindparam("currency", type_=String(3))
    currencies = (
        select(kept.c.currency).where(wanted.is_(None) | (kept.c.currency == wanted)).subquery()
    )
    owing_most = (
        select(AgingClientOverdue.client_id, AgingClientOverdue.currency)
        .where(AgingClientOverdue.currency == currencies.c.currency)
        .order_by(AgingClientOverdue.amount.desc())
        .fetch(bindparam("rank", type_=Integer), with_ties=True)
        .lateral()
    )
    leaders = select(owing_most).select_from(currencies).join(owing_most, true()).subquery()
    # Each leader's row added up by the summary's key, as a lateral subquery: joined plainly,
    # PostgreSQL (which cannot know how few leaders there are) merged them with every row.
    query = (
        _client_rows_query(Buckets(tuple(range(1, bucket_count - 1))), AgingFilters())
        .where(
            AgingSummary.client_id == leaders.c.client_id,
            AgingSummary.currency == leaders.c.currency,
        )
        .lateral()
    )
    query = select(query).select_from(leaders).join(query, true()).subquery()
    return (
        select(query, func.count().over().label("ranked"))
        .order_by(*_ORDERS["overdue"](query), query.c.client_id, query.c.currency)
        .limit(bindparam("page_size", type_=Integer))
        .offset(bindparam("skip", type_=Integer))
    )


@cache
def _row_count_query():
    """How many client rows (client and currency) there are, counting stops past COUNT_CAP:
    the kept rows, one per client and currency (grouping the summary's key cost ~6 ms at
    100,000 clients)."""
    currency = bindparam("currency", type_=String(3))
    rows = (
        select(AgingClientRows.client_id)
        .where(currency.is_(None) | (AgingClientRows.currency == currency))
        .limit(bindparam("counted", type_=Integer))
        .subquery()
    )
    return select(func.count()).select_from(rows)


_ORDERS = {
    "overdue": lambda q: (q.c.overdue.desc(), q.c.total.desc()),
    "total": lambda q: (q.c.total.desc(),),
    "name": lambda q: (func.lower(q.c.full_name),),
}


def _overdue_page(
    session: Session, buckets: Buckets, filters: AgingFilters, page_size: int
) -> list[ClientAging] | None:
    """The default page by the index, or None when fewer clients owe anything past due than
    the page reaches (the rest sort by balance: the whole report's query then)."""
    rank = filters.page * page_size
    values = {
        "rank": rank,
        "currency": filters.currency or None,
        "page_size": page_size,
        "skip": rank - page_size,
    }
    records = session.execute(_overdue_page_query(len(buckets)), values).all()
    if not records or records[0].ranked < rank:
        return None
    return [_row(r, buckets) for r in records]


def client_rows(
    session: Session, buckets: Buckets, filters: AgingFilters, page_size: int | None = 50
) -> AgingReport:
    """The AR aging report: one row per client and currency, bucket columns, sorted (most
    overdue first by default), a page of them (all with `page_size=None`), and the totals of
    every row the filters keep.

    Unfiltered (or one currency), the totals are the kept ones, the row count stops at
    COUNT_CAP ("10,000+") and the default order's page is found by the past-due totals'
    index: the page costs the same at 100,000 clients as at 100. Other filters and orders add
    up the summary by client (their count capped too)."""
    if page_size is not None and _kept_report(filters):
        # The report's own query is built only when needed: building it costs over a
        # millisecond, and the default view (a page from the past-due index, the kept totals,
        # the summary's key counted) never runs it.
        rows = None
        if filters.sort == "overdue":
            rows = _overdue_page(session, buckets, filters, page_size)
        if rows is None:
            query = _client_rows_query(buckets, filters).subquery()
            rows = _page_of(session, query, buckets, filters, page_size)
        values = {"currency": filters.currency or None, "counted": COUNT_CAP + 1}
        totals = _kept_report_totals(session, buckets, filters.currency)
        return _report(rows, totals, session.scalar(_row_count_query(), values), filters, page_size)
    query = _client_rows_query(buckets, filters).subquery()
    if page_size is None:
        rows = [_row(r, buckets) for r in session.execute(_ordered(query, filters))]
        return AgingReport(rows, _summed_totals(session, query, buckets), len(rows), 1, 1)
    rows = _page_of(session, query, buckets, filters, page_size)
    count = session.scalar(
        select(func.count()).select_from(select(query).limit(COUNT_CAP + 1).subquery())
    )
    return _report(rows, _summed_totals(session, query, buckets), count, filters, page_size)


def _ordered(query, filters: AgingFilters):
    order = _ORDERS[filters.sort](query)
    return select(query).order_by(*order, query.c.client_id, query.c.currency)


def _page_of(
    session: Session, query, buckets: Buckets, filters: AgingFilters, page_size: int
) -> list[ClientAging]:
    page = _ordered(query, filters).limit(page_size).offset((filters.page - 1) * page_size)
    return [_row(r, buckets) for r in session.execute(page)]


def _report(rows, totals, count: int, filters: AgingFilters, page_size: int) -> AgingReport:
    return AgingReport(
        rows=rows,
        totals=totals,
        client_count=min(count, COUNT_CAP),
        page=filters.page,
        page_size=page_size,
        count_is_capped=count > COUNT_CAP,
    )


def _summed_totals(session: Session, query, buckets: Buckets) -> list[CurrencyAging]:
    """The report's totals added up from its rows."""
    sums = session.execute(
        select(query.c.currency, *[func.sum(query.c[f"b{i}"]) for i in range(len(buckets))])
        .group_by(query.c.currency)
        .order_by(func.sum(query.c.total).desc(), query.c.currency)
    )
    return [CurrencyAging(r[0], list(r[1:]), [0] * len(buckets)) for r in sums]


def _kept_report_totals(session: Session, buckets: Buckets, currency: str) -> list[CurrencyAging]:
    """The report's totals of every row (of one currency) from the kept totals: the same sums
    without adding up the summary."""
    found: dict[str, CurrencyAging] = {}
    for row_currency, bucket, amount, _ in session.execute(_totals_query()):
        if currency and row_currency != currency:
            continue
        aging = found.setdefault(
            row_currency,
            CurrencyAging(row_currency, [ZERO] * len(buckets), [0] * len(buckets)),
        )
        aging.amounts[bucket] += amount
    return sorted(found.values(), key=lambda a: (-a.outstanding, a.currency))


@cache
def _top_overdue_query(bucket_count: int, limit: int):
    """For each currency the first `limit` entries of the past-due totals' index; only the
    winners are joined to their clients. Built once per shape (the dashboard asks on every
    visit)."""
    currencies = union(select(AgingTotal.currency), select(AgingTotalChange.currency)).subquery()
    ranked = (
        select(AgingClientOverdue.client_id, AgingClientOverdue.currency)
        .where(AgingClientOverdue.currency == currencies.c.currency)
        .order_by(AgingClientOverdue.amount.desc(), AgingClientOverdue.client_id)
        .limit(limit)
        .lateral()
    )
    winners = (
        select(ranked.c.client_id, ranked.c.currency).select_from(currencies).join(ranked, true())
    )
    query = (
        # The columns depend only on how many buckets there are, not where their bounds lie.
        _client_rows_query(Buckets(tuple(range(1, bucket_count - 1))), AgingFilters())
        .where(tuple_(AgingSummary.client_id, AgingSummary.currency).in_(winners))
        .subquery()
    )
    return select(query).order_by(query.c.currency, query.c.overdue.desc(), query.c.client_id)


def top_overdue_clients(
    session: Session, buckets: Buckets, limit: int = TOP_CLIENTS
) -> list[ClientAging]:
    """The clients owing the most past due, per currency (at most `limit` each)."""
    records = session.execute(_top_overdue_query(len(buckets), limit))
    return [_row(r, buckets) for r in records]


@dataclass(frozen=True)
class TrendStart:
    """Where DSO stood on the oldest snapshot inside the trend's window."""

    currency: str
    snapshot_on: date
    dso: Decimal | None


@cache
def _trend_starts_query():
    return (
        select(AgingSnapshot.currency, AgingSnapshot.snapshot_on, AgingSnapshot.dso)
        .where(AgingSnapshot.snapshot_on > bindparam("window_after", type_=Date))
        .order_by(AgingSnapshot.currency, AgingSnapshot.snapshot_on)
        .ext(distinct_on(AgingSnapshot.currency))
    )


def trend_starts(session: Session, today: date, days: int = TREND_DAYS) -> list[TrendStart]:
    """Per currency, the first snapshot of the last `days` days (what `trend` would list
    first), without reading the rest of the window."""
    values = {"window_after": today - timedelta(days=days)}
    return [TrendStart(*row) for row in session.execute(_trend_starts_query(), values)]


def client_aging(session: Session, client_id: int, buckets: Buckets) -> list[CurrencyAging]:
    """One client's buckets, per currency."""
    found: dict[str, CurrencyAging] = {}
    rows = session.execute(
        select(
            AgingSummary.currency,
            AgingSummary.bucket,
            AgingSummary.amount,
            AgingSummary.invoice_count,
        ).where(AgingSummary.client_id == client_id)
    )
    for currency, bucket, amount, count in rows:
        aging = found.setdefault(
            currency, CurrencyAging(currency, [ZERO] * len(buckets), [0] * len(buckets))
        )
        aging.amounts[bucket], aging.counts[bucket] = amount, int(count)
    return sorted(found.values(), key=lambda a: a.currency)


@dataclass(frozen=True)
class AgedInvoice:
    invoice_id: int
    number: str | None
    status: str
    currency: str
    issue_date: date | None
    due_date: date | None
    total: Decimal
    open_amount: Decimal
    days: int
    bucket: int


def invoices_of(
    session: Session, client_id: int, bucket: int | None = None, currency: str | None = None
) -> list[AgedInvoice]:
    """The drill-down: the client's invoices that owe money (in one bucket, one currency),
    oldest basis date first, with how many days past it they are on the summary's day."""
    as_of = select(AgingState.as_of).where(AgingState.id == 1).scalar_subquery()
    query = (
        select(AgingEntry, Invoice.number, Invoice.status, Invoice.total, as_of)
        .join(Invoice, Invoice.id == AgingEntry.invoice_id)
        .where(AgingEntry.client_id == client_id)
        .order_by(AgingEntry.basis_date, AgingEntry.invoice_id)
    )
    if bucket is not None:
        query = query.where(AgingEntry.bucket == bucket)
    if currency:
        query = query.where(AgingEntry.currency == currency)
    return [
        AgedInvoice(
            entry.invoice_id,
            number,
            status,
            entry.currency,
            entry.issue_date,
            entry.due_date,
            total,
            entry.amount,
            (day - entry.basis_date).days,
            entry.bucket,
        )
        for entry, number, status, total, day in session.execute(query)
    ]


# Snapshots and the trend -------------------------------------------------------------------


def write_snapshot(session: Session, today: date, replace: bool = False) -> None:
    """Today's aging per currency into the trend (Core, not the ORM: a figure the system
    keeps is not a change anyone made, so it stays out of the audit log)."""
    state = session.execute(select(AgingState.buckets)).scalar_one()
    buckets = Buckets(tuple(state))
    rows = [
        {
            "snapshot_on": today,
            "currency": a.currency,
            "buckets": list(buckets.bounds),
            "amounts": a.amounts,
            "outstanding": a.outstanding,
            "overdue": a.overdue,
            "credit_sales_90": a.credit_sales_90,
            "dso": a.dso,
        }
        for a in bucket_totals(session, buckets, today)
    ]
    if not rows:
        return
    statement = pg_insert(AgingSnapshot).values(rows)
    if replace:
        statement = statement.on_conflict_do_update(
            index_elements=["snapshot_on", "currency"],
            set_={
                c: statement.excluded[c]
                for c in ("buckets", "amounts", "outstanding", "overdue", "credit_sales_90", "dso")
            },
        )
    else:
        statement = statement.on_conflict_do_nothing()
    session.execute(statement)


def trend(session: Session, today: date, days: int = TREND_DAYS) -> dict[str, list[AgingSnapshot]]:
    """The snapshots of the last `days` days per currency, oldest first."""
    found: dict[str, list[AgingSnapshot]] = {}
    for snapshot in session.scalars(
        select(AgingSnapshot)
        .where(AgingSnapshot.snapshot_on > today - timedelta(days=days))
        .order_by(AgingSnapshot.currency, AgingSnapshot.snapshot_on)
    ):
        found.setdefault(snapshot.currency, []).append(snapshot)
    return found


# The full recomputation from the base tables ------------------------------------------------


def _open_invoices_query(today: date, basis: str, buckets: Buckets):
    """Every invoice that owes money with its open amount and bucket on `today`, computed
    from invoices, live allocations and credit notes alone."""
    applied = (
        select(
            PaymentAllocation.invoice_id,
            func.sum(PaymentAllocation.amount + PaymentAllocation.tds_amount).label("sum"),
        )
        .where(PaymentAllocation.removed_at.is_(None))
        .group_by(PaymentAllocation.invoice_id)
        .subquery()
    )
    credited = (
        select(CreditNote.invoice_id, func.sum(CreditNote.total).label("sum"))
        .group_by(CreditNote.invoice_id)
        .subquery()
    )
    first, second = (
        (Invoice.issue_date, Invoice.due_date)
        if basis == "issue_date"
        else (Invoice.due_date, Invoice.issue_date)
    )
    basis_date = func.coalesce(first, second)
    # The bucket from dates (no day arithmetic in SQL): not past the basis date -> current;
    # at most `bound` days past it -> that bound's bucket; past the last -> the last bucket.
    whens = [(basis_date >= today, 0)] + [
        (basis_date >= today - timedelta(days=bound), i + 1)
        for i, bound in enumerate(buckets.bounds)
    ]
    open_amount = (
        Invoice.total
        - func.coalesce(Invoice.written_off_amount, 0)
        - func.coalesce(applied.c.sum, 0)
        - func.coalesce(credited.c.sum, 0)
    )
    inner = (
        select(
            Invoice.id.label("invoice_id"),
            Invoice.client_id,
            Invoice.currency,
            open_amount.label("amount"),
            case(*whens, else_=len(buckets) - 1).label("bucket"),
        )
        .outerjoin(applied, applied.c.invoice_id == Invoice.id)
        .outerjoin(credited, credited.c.invoice_id == Invoice.id)
        .where(Invoice.status.in_(OWING_STATUSES), basis_date.is_not(None))
        .subquery()
    )
    return select(inner).where(inner.c.amount > 0)


def full_recomputation(
    session: Session, today: date, basis: str | None = None, bounds: Sequence[int] | None = None
) -> dict:
    """{(client_id, currency, bucket): (amount, invoice_count)} from the base tables, grouped
    in the database (one scan of invoices, allocations and credit notes)."""
    if basis is None or bounds is None:
        settings = settings_of(session)
        basis, bounds = settings.aging_basis, settings.aging_buckets
    rows = _open_invoices_query(today, basis, Buckets(tuple(bounds))).subquery()
    keys = (rows.c.client_id, rows.c.currency, rows.c.bucket)
    grouped = select(*keys, func.sum(rows.c.amount), func.count()).group_by(*keys)
    return {(c, cur, b): (amount, count) for c, cur, b, amount, count in session.execute(grouped)}


def recomputed_invoices(
    session: Session, today: date, basis: str, bounds: Sequence[int]
) -> dict[int, tuple]:
    """{invoice_id: (client_id, currency, amount, bucket)} from the base tables."""
    query = _open_invoices_query(today, basis, Buckets(tuple(bounds)))
    return {
        r.invoice_id: (r.client_id, r.currency, r.amount, r.bucket) for r in session.execute(query)
    }


def maintained_summary(session: Session) -> dict:
    """The maintained summary in the shape of `full_recomputation`."""
    rows = session.execute(
        select(
            AgingSummary.client_id,
            AgingSummary.currency,
            AgingSummary.bucket,
            AgingSummary.amount,
            AgingSummary.invoice_count,
        )
    )
    return {(c, cur, b): (amount, count) for c, cur, b, amount, count in rows}


def maintained_totals(session: Session) -> dict[str, tuple]:
    """{"currency/bucket": (amount, invoice_count)}, {"overdue client/currency": ...} and
    {"rows client/currency": (buckets,)} as the pages read them (the kept totals), for
    comparison with `totals_of`."""
    found = {
        f"{c}/{b}": (amount, count) for c, b, amount, count in session.execute(_totals_query())
    }
    for row in session.scalars(select(AgingClientOverdue)):
        found[f"overdue {row.client_id}/{row.currency}"] = (row.amount, row.invoice_count)
    for row in session.scalars(select(AgingClientRows)):
        found[f"rows {row.client_id}/{row.currency}"] = (row.bucket_rows,)
    return found


def totals_of(summary: Mapping[tuple, tuple]) -> dict[str, tuple]:
    """The same totals added up from a summary shaped as `full_recomputation`'s."""
    found: dict[str, tuple] = {}
    for (client_id, currency, bucket), (amount, count) in summary.items():
        keys = [f"{currency}/{bucket}"] + ([f"overdue {client_id}/{currency}"] if bucket else [])
        for key in keys:
            was_amount, was_count = found.get(key, (ZERO, 0))
            found[key] = (was_amount + amount, was_count + count)
        rows = f"rows {client_id}/{currency}"
        found[rows] = (found.get(rows, (0,))[0] + 1,)
    return found


def maintained_invoices(session: Session) -> dict[int, tuple]:
    return {
        e.invoice_id: (e.client_id, e.currency, e.amount, e.bucket)
        for e in session.scalars(select(AgingEntry))
    }


def recomputed_sales(session: Session) -> dict[tuple[date, str], tuple[Decimal, int]]:
    rows = session.execute(
        select(Invoice.issue_date, Invoice.currency, func.sum(Invoice.total), func.count())
        .where(Invoice.status.not_in(("draft", "void")), Invoice.issue_date.is_not(None))
        .group_by(Invoice.issue_date, Invoice.currency)
    )
    return {(d, c): (amount, count) for d, c, amount, count in rows}


def maintained_sales(session: Session) -> dict[tuple[date, str], tuple[Decimal, int]]:
    rows = session.execute(
        select(
            AgingSales.sale_date, AgingSales.currency, AgingSales.amount, AgingSales.invoice_count
        )
    )
    return {(d, c): (amount, count) for d, c, amount, count in rows}
