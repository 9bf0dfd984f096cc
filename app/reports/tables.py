"""Each report as one plain table (title, what it covers, a header, rows, totals), built from
the owning area's services, so a scheduled file shows what the area's page shows. Filters are
the page's URL arguments, read back by the area's own filter class."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.aging import services as aging
from app.clients.models import Client
from app.collections.cases.promises import PROMISE_VIEWS, list_promises
from app.collections.models import CollectionNotice
from app.core.terminology import term, title_term
from app.invoicing.listing import InvoiceFilters, list_invoices
from app.payments.listing import PaymentFilters
from app.payments.models import Payment
from app.payments.services import METHOD_LABELS
from app.reports.models import REPORTS
from app.reports.timing import covered_days

# Permission a member needs to receive (or schedule) each report: what its page asks.
PERMISSIONS = {
    "aging": "invoices.view",
    "dso": "invoices.view",
    "cash_received": "invoices.view",
    "promises": "notices.view",
    "collections_performance": "notices.view",
    "invoices": "invoices.view",
}
# Every promise of a view goes in the file: the list page's pages are 50 rows, a file has one.
PROMISES_IN_A_FILE = 100_000
# The newest invoices of a filtered list that go in a file; past this the file says so and
# asks for a narrower filter, as the list page does for its totals.
INVOICES_IN_A_FILE = 10_000


@dataclass
class ReportTable:
    title: str
    covers: str
    header: list[str]
    rows: list[list] = field(default_factory=list)
    # Rows after the body, in bold (totals per currency).
    totals: list[list] = field(default_factory=list)
    # The column holding each row's currency: the money columns are written in it.
    currency_column: int | None = None


def saved_filters(session: Session, report: str, args, today: date) -> dict[str, str]:
    """The filters of a report page's URL that the report understands, in their clean form
    (what the area's filter class makes of them); anything else is dropped."""
    if report == "aging":
        buckets = aging.ensure_current(session, today)
        values = aging.AgingFilters.from_args(args, buckets).as_args()
        values.pop("sort", None)
        return values
    if report == "cash_received":
        values = PaymentFilters.from_args(args).as_args()
        # The period is the schedule's (the days before each sending), never a saved one.
        return {k: v for k, v in values.items() if k in ("client_id", "method", "status")}
    if report == "invoices":
        return InvoiceFilters.from_args(args).as_args()
    if report == "promises":
        view = args.get("view", "open")
        return {"view": view if view in PROMISE_VIEWS else "open"}
    return {}


def describe_filters(report: str, filters: dict[str, str], session: Session) -> str:
    """The saved filters in words, for the schedules list and the file."""
    if not filters:
        return "no filters"
    parts = []
    for key, value in sorted(filters.items()):
        if key in ("client_id",):
            client = session.get(Client, int(value))
            parts.append(f"{term('client')} {client.short_name if client else '(deleted)'}")
        elif key == "view":
            parts.append(PROMISE_VIEWS[value].lower())
        elif key == "method":
            parts.append(f"method {METHOD_LABELS.get(value, value)}")
        elif key == "bucket":
            parts.append(f"bucket {int(value) + 1}")
        elif key == "min_overdue":
            parts.append(f"overdue at least {value}")
        elif key == "q":
            parts.append(f"matching “{value}”")
        elif key in ("from", "to"):
            parts.append(f"issued {key} {date.fromisoformat(value):%d %b %Y}")
        else:
            parts.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(parts)


def build(
    session: Session, report: str, filters: dict, frequency: str, today: date, time_zone: str
) -> ReportTable:
    """The report as the workspace's data stands on `today` (its own date); reports of what
    happened cover the days before `today` that the frequency spans."""
    builders = {
        "aging": _aging,
        "dso": _dso,
        "promises": _promises,
        "invoices": _invoices,
    }
    if report in builders:
        return builders[report](session, filters, today)
    first, last = covered_days(frequency, today)
    if report == "cash_received":
        return _cash_received(session, filters, first, last)
    return _collections_performance(session, first, last, time_zone)


def _aging(session: Session, filters: dict, today: date) -> ReportTable:
    buckets = aging.ensure_current(session, today)
    chosen = aging.AgingFilters.from_args(filters, buckets)
    report = aging.client_rows(session, buckets, chosen, page_size=None)
    table = ReportTable(
        REPORTS["aging"],
        f"On {today:%d %b %Y}",
        [title_term("client"), "Currency", *buckets.long_labels, "Total", "Overdue"],
        currency_column=1,
    )
    for row in report.rows:
        table.rows.append([row.name, row.currency, *row.amounts, row.total, row.overdue])
    for total in report.totals:
        table.totals.append(
            ["Total", total.currency, *total.amounts, total.outstanding, total.overdue]
        )
    return table


def _invoices(session: Session, filters: dict, today: date) -> ReportTable:
    chosen = InvoiceFilters.from_args(filters)
    page = list_invoices(session, chosen, today, page_size=INVOICES_IN_A_FILE)
    covers = f"On {today:%d %b %Y}"
    if page.next_cursor:
        covers += (
            f": the newest {INVOICES_IN_A_FILE:,} invoices of more; narrow the list's filter "
            "to have them all"
        )
    table = ReportTable(
        REPORTS["invoices"],
        covers,
        [
            "Number",
            title_term("client"),
            title_term("project"),
            "Issued",
            "Due",
            "Status",
            "Currency",
            "Total",
            "Owing",
        ],
        currency_column=6,
    )
    for row in page.rows:
        invoice = row.invoice
        table.rows.append(
            [
                invoice.number or "Draft",
                row.client_name,
                row.project_name or "",
                invoice.issue_date or "",
                invoice.due_date or "",
                invoice.status.replace("_", " "),
                invoice.currency,
                invoice.total,
                row.outstanding if row.outstanding is not None else "",
            ]
        )
    if not page.count_is_capped:
        for total in page.totals:
            table.totals.append(
                [
                    f"{total.count:,} invoice{'' if total.count == 1 else 's'}",
                    "",
                    "",
                    "",
                    "",
                    "",
                    total.currency,
                    total.total,
                    total.outstanding,
                ]
            )
    return table


def _dso(session: Session, filters: dict, today: date) -> ReportTable:
    buckets = aging.ensure_current(session, today)
    table = ReportTable(
        REPORTS["dso"],
        f"On {today:%d %b %Y}: owing ÷ credit sales of the last {aging.DSO_DAYS} days × "
        f"{aging.DSO_DAYS}",
        [
            "Currency",
            "Outstanding",
            "Overdue",
            f"Credit sales, {aging.DSO_DAYS} days",
            "DSO (days)",
        ],
        currency_column=0,
    )
    for row in aging.bucket_totals(session, buckets, today):
        dso = row.dso
        table.rows.append(
            [row.currency, row.outstanding, row.overdue, row.credit_sales_90, _days(dso)]
        )
    return table


def _days(dso: Decimal | None) -> str:
    # A figure, not money: kept as text so that no writer formats it as an amount.
    return "—" if dso is None else str(dso)


def _promises(session: Session, filters: dict, today: date) -> ReportTable:
    view = filters.get("view", "open")
    view = view if view in PROMISE_VIEWS else "open"
    page = list_promises(session, view, today, page_size=PROMISES_IN_A_FILE)
    table = ReportTable(
        REPORTS["promises"],
        f"{PROMISE_VIEWS[view]} on {today:%d %b %Y}",
        [title_term("client"), "Promised on", "Currency", "Amount", "Status", "Note"],
        currency_column=2,
    )
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for promise, client in page.rows:
        table.rows.append(
            [
                client.short_name,
                promise.promised_on,
                promise.currency,
                promise.amount,
                promise.status,
                promise.note or "",
            ]
        )
        sums[promise.currency] += promise.amount
    for currency, amount in sorted(sums.items()):
        table.totals.append(["Total", "", currency, amount, "", ""])
    return table


def _cash_received(session: Session, filters: dict, first: date, last: date) -> ReportTable:
    chosen = PaymentFilters.from_args(
        {**filters, "from": first.isoformat(), "to": last.isoformat()}
    )
    query = (
        select(Payment, Client.short_name)
        .join(Client, Client.id == Payment.client_id)
        .where(Payment.received_on.between(first, last))
        .order_by(Payment.received_on, Payment.id)
    )
    if chosen.status == "live":
        query = query.where(Payment.voided_at.is_(None))
    elif chosen.status == "void":
        query = query.where(Payment.voided_at.is_not(None))
    if chosen.client_id:
        query = query.where(Payment.client_id == chosen.client_id)
    if chosen.method:
        query = query.where(Payment.method == chosen.method)
    table = ReportTable(
        REPORTS["cash_received"],
        _days_text(first, last),
        ["Received on", title_term("client"), "Currency", "Amount", "Method", "Reference"],
        currency_column=2,
    )
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for payment, client_name in session.execute(query):
        table.rows.append(
            [
                payment.received_on,
                client_name,
                payment.currency,
                payment.amount,
                METHOD_LABELS.get(payment.method, payment.method),
                payment.reference or "",
            ]
        )
        sums[payment.currency] += payment.amount
    for currency, amount in sorted(sums.items()):
        table.totals.append(["Total", "", currency, amount, "", ""])
    return table


def _collections_performance(
    session: Session, first: date, last: date, time_zone: str
) -> ReportTable:
    """Notices sent in the days covered, per level and channel: how many, what they asked
    for, and how many have since been closed because their invoices were paid."""
    zone = ZoneInfo(time_zone)
    start = datetime.combine(first, time.min, tzinfo=zone)
    end = datetime.combine(last, time.max, tzinfo=zone)
    paid = func.count().filter(CollectionNotice.close_reason == "paid")
    query = (
        select(
            CollectionNotice.level_number,
            CollectionNotice.level_name,
            CollectionNotice.channel,
            CollectionNotice.currency,
            func.count(),
            func.sum(CollectionNotice.amount_due),
            paid,
        )
        .where(CollectionNotice.sent_at.between(start, end))
        .group_by(
            CollectionNotice.level_number,
            CollectionNotice.level_name,
            CollectionNotice.channel,
            CollectionNotice.currency,
        )
        .order_by(CollectionNotice.level_number, CollectionNotice.channel)
    )
    table = ReportTable(
        REPORTS["collections_performance"],
        f"{title_term('notices')} sent {_days_text(first, last)[0].lower()}"
        f"{_days_text(first, last)[1:]}",
        [
            "Level",
            "Channel",
            "Currency",
            f"{title_term('notices')} sent",
            "Amount asked",
            "Since paid",
            "Paid %",
        ],
        currency_column=2,
    )
    for _, level_name, channel, currency, sent, asked, paid_count in session.execute(query):
        share = f"{paid_count * 100 // sent} %" if sent else "—"
        table.rows.append([level_name, channel, currency, sent, asked, paid_count, share])
    return table


def _days_text(first: date, last: date) -> str:
    if first == last:
        return f"On {first:%d %b %Y}"
    return f"From {first:%d %b %Y} to {last:%d %b %Y}"
