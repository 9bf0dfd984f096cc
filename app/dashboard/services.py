"""The dashboard's figures, each read from what already keeps it small, so that the page costs
the same with ten invoices or a million: receivables from the aging summary the database
maintains (no invoice is read), the DSO trend from the daily aging snapshots, cash from one
grouped query over two months of payments (payments.listing), notices and promises from
counts on their indexes asked in one round trip, and a collector's work from the counts of
their queue. Which of them a person sees is the widgets' business (app.dashboard.widgets):
their permissions, and the workspace's choice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import cache

from sqlalchemy import Date, bindparam, exists, select
from sqlalchemy.orm import Session

from app.aging import services as aging
from app.clients.models import Client
from app.collections.cases import promises
from app.collections.notices import services as notices
from app.invoicing.models import Invoice

TOP_OVERDUE_SHOWN = 5


@dataclass(frozen=True)
class DsoChange:
    """DSO at the oldest snapshot of the trend's window, to set against today's."""

    since: date
    dso: Decimal | None


@dataclass
class Receivables:
    buckets: aging.Buckets
    totals: list[aging.CurrencyAging]  # per currency, largest outstanding first
    dso_then: dict[str, DsoChange]  # by currency


def receivables(session: Session, buckets: aging.Buckets, today: date) -> Receivables:
    """Outstanding, overdue and the buckets per currency, and where DSO stood when the
    trend's window began; `buckets` from `aging.ensure_current` (the summary brought to
    `today`)."""
    dso_then = {
        start.currency: DsoChange(start.snapshot_on, start.dso)
        for start in aging.trend_starts(session, today)
        if start.snapshot_on < today
    }
    return Receivables(
        buckets=buckets, totals=aging.bucket_totals(session, buckets, today), dso_then=dso_then
    )


def top_overdue(session: Session, buckets: aging.Buckets) -> list[aging.ClientAging]:
    """The clients owing the most past due, per currency."""
    return aging.top_overdue_clients(session, buckets, limit=TOP_OVERDUE_SHOWN)


@dataclass(frozen=True)
class Counts:
    """Whether the workspace has begun (until its first invoice the dashboard shows the first
    steps instead of figures that would all be zero) and, when the collections widget shows,
    its counts: one round trip for all of them."""

    has_clients: bool
    has_invoices: bool
    notices_awaiting_approval: int | None = None
    promises_due_today: int | None = None
    promises_broken: int | None = None


@cache
def _counts_query(with_collections: bool):
    """Built once for each shape, its dates bound at execution: the dashboard asks on every
    visit."""
    columns = [exists().where(Client.id.is_not(None)), exists().where(Invoice.id.is_not(None))]
    if with_collections:
        columns += [
            notices.awaiting_approval_count(),
            promises.due_today_count(bindparam("today", type_=Date)),
            promises.broken_lately_count(bindparam("broken_since", type_=Date)),
        ]
    return select(*columns)


def counts(session: Session, today: date, with_collections: bool) -> Counts:
    values = {}
    if with_collections:
        values = {
            "today": today,
            "broken_since": today - timedelta(days=promises.BROKEN_LATELY_DAYS),
        }
    return Counts(*session.execute(_counts_query(with_collections), values).one())
