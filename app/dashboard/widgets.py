"""The dashboard's widgets: each a named part of the page with the permissions it needs and
the one function that reads its figures. The workspace chooses which show and in what order
(Settings → Workflow, stored on its settings); a widget that does not show is not read at all,
so hiding one saves its queries. Until the workspace's first invoice the figures of invoices
would all be zero: those widgets wait (the page shows the first steps instead)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy.orm import Session

from app.aging import services as aging
from app.clients import documents
from app.collections.cases import promises
from app.collections.notices.services import AWAITING_APPROVAL_SHOWN
from app.collections.work import services as work
from app.dashboard import services
from app.payments import listing as payments
from app.settings.workflow import WidgetChoice
from tenants.context import can

EXPIRING_SHOWN = 10


@dataclass
class Reading:
    """What the widgets of one visit read from: the day, the counts asked first, the person,
    and the aging buckets (brought to today once, for the first widget that needs them)."""

    session: Session
    today: date
    counts: services.Counts
    user_id: int
    _buckets: aging.Buckets | None = field(default=None, repr=False)

    def buckets(self) -> aging.Buckets:
        if self._buckets is None:
            self._buckets = aging.ensure_current(self.session, self.today)
        return self._buckets


@dataclass(frozen=True)
class Widget:
    choice: WidgetChoice
    permissions: tuple[str, ...]
    needs_invoices: bool
    read: Callable[[Reading], dict]

    @property
    def name(self) -> str:
        return self.choice.name

    def allowed(self) -> bool:
        return all(can(permission) for permission in self.permissions)


def _receivables(reading: Reading) -> dict:
    return {"receivables": services.receivables(reading.session, reading.buckets(), reading.today)}


def _top_overdue(reading: Reading) -> dict:
    return {"top_overdue": services.top_overdue(reading.session, reading.buckets())}


def _cash(reading: Reading) -> dict:
    this_month, last_month = payments.month_starts(reading.today)
    return {
        "cash": payments.cash_by_month(reading.session, reading.today),
        "this_month": this_month,
        "last_month": last_month,
        "last_month_end": this_month - timedelta(days=1),
    }


def _collections(reading: Reading) -> dict:
    # Its counts came with the first query of the visit (services.counts).
    return {
        "collections": reading.counts,
        "broken_lately_days": promises.BROKEN_LATELY_DAYS,
        "awaiting_approval_shown": AWAITING_APPROVAL_SHOWN,
    }


def _my_work(reading: Reading) -> dict:
    return {
        "my_work": work.queue_counts(reading.session, reading.user_id, reading.today),
        "work_titles": work.SECTION_TITLES,
    }


def _documents(reading: Reading) -> dict:
    if not can("clients.view"):
        return {}  # the tile only says what it is for
    return {
        "expiring": documents.expiring_documents(reading.session, reading.today),
        "expiring_shown": EXPIRING_SHOWN,
        "expiry_window_days": documents.EXPIRY_WINDOW_DAYS,
        "expiry_badge": documents.expiry_badge,
    }


def _nothing(reading: Reading) -> dict:
    return {}


WIDGETS = (
    Widget(
        WidgetChoice(
            "receivables",
            "Receivables",
            "Outstanding and overdue per currency, by how late it is, and DSO.",
        ),
        ("invoices.view",),
        True,
        _receivables,
    ),
    Widget(
        WidgetChoice(
            "top_overdue", "Top overdue {clients}", "The five {clients} owing the most past due."
        ),
        ("invoices.view",),
        True,
        _top_overdue,
    ),
    Widget(
        WidgetChoice("cash", "Cash collected", "Payments received this month and last month."),
        ("invoices.view",),
        True,
        _cash,
    ),
    Widget(
        WidgetChoice(
            "collections",
            "Collections",
            "{Notices} waiting for approval, promises to pay due today and broken lately.",
        ),
        ("notices.view",),
        True,
        _collections,
    ),
    Widget(
        WidgetChoice(
            "my_work", "My work today", "A collector's calls, visits and follow-ups for the day."
        ),
        ("notices.view", "collections.work"),
        True,
        _my_work,
    ),
    Widget(
        WidgetChoice("documents", "Documents", "{Client} documents expiring in the next days."),
        (),
        False,
        _documents,
    ),
    Widget(
        WidgetChoice("invite_team", "Invite your team", "A link to invite colleagues (admins)."),
        ("users.manage",),
        False,
        _nothing,
    ),
)
BY_NAME = {widget.name: widget for widget in WIDGETS}
NAMES = tuple(BY_NAME)
