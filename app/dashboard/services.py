"""The dashboard's figures, each read from what already keeps it small, so that the page costs
the same with ten invoices or a million: receivables from the aging summary the database
maintains (no invoice is read), the DSO trend from the daily aging snapshots, cash from one
grouped query over two months of payments (payments.listing), notices and promises from
counts on their indexes asked in one round trip, and a collector's work from the counts of
their queue. Which of them a person sees is the view's business (their permissions)."""

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
    top_overdue: list[aging.ClientAging]
    dso_then: dict[str, DsoChange]  # by currency


def receivables(session: Session, today: date) -> Receivables:
    """Outstanding, overdue and the buckets per currency, the clients owing most past due and
    where DSO stood when the trend's window began; the summary brought to `today` first."""
    buckets = aging.ensure_current(session, today)
    dso_then = {
        start.currency: DsoChange(start.snapshot_on, start.dso)
        for start in aging.trend_starts(session, today)
        if start.snapshot_on < today
    }
    return Receivables(
        buckets=buckets,
        totals=aging.bucket_totals(session, buckets, today),
        top_overdue=aging.top_overdue_clients(session, buckets, limit=TOP_OVERDUE_SHOWN),
        dso_then=dso_then,
    )


@dataclass(frozen=True)
class Counts:
    """Whether the workspace has begun (until its first invoice the dashboard shows the first
    steps instead of figures that would all be zero) and the collections counts: one round
    trip for all of them."""

    has_clients: bool
    has_invoices: bool
    notices_awaiting_approval: int
    promises_due_today: int
    promises_broken: int


@cache
def _counts_query():
    """Built once, its dates bound at execution: the dashboard asks on every visit."""
    return select(
        exists().where(Client.id.is_not(None)),
        exists().where(Invoice.id.is_not(None)),
        notices.awaiting_approval_count(),
        promises.due_today_count(bindparam("today", type_=Date)),
        promises.broken_lately_count(bindparam("broken_since", type_=Date)),
    )


def counts(session: Session, today: date) -> Counts:
    values = {
        "today": today,
        "broken_since": today - timedelta(days=promises.BROKEN_LATELY_DAYS),
    }
    return Counts(*session.execute(_counts_query(), values).one())
