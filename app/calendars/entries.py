"""What a member's calendar holds, whichever way it reaches them (the ICS feed, Google
Calendar, Outlook): milestones falling due, invoices falling due, promises to pay, and their
own follow-up calls and field visits, as all-day entries.

Each entry has a UID that never changes ("<kind>-<id>@<workspace slug>.duebook") and a
fingerprint of what it says. `versions` keeps, per UID, a SEQUENCE raised whenever the
fingerprint changes and when that happened, so a calendar app that sees the entry again updates
it instead of adding a second one, and an unchanged feed is byte for byte the same (its ETag
holds). An entry that stops being due (the invoice is paid, the promise kept) leaves the
calendar.

Who sees what: a collector (who works clients but does not supervise) sees the clients named
theirs; every other member sees the workspace's dates, as their pages do. Follow-ups and
visits are tasks, so everyone sees only their own (as on the collector's queue)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, exists, or_, select, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from app.calendars.models import CalendarEntryVersion
from app.clients.models import Client
from app.collections.models import CollectionActivity, CollectionNotice, PromiseToPay
from app.collections.work.services import OPEN_TASK_STATUSES
from app.core.clock import tenant_today
from app.core.money import format_money
from app.core.terminology import term, title_term
from app.invoicing.models import OWING_STATUSES, Invoice
from app.projects.models import Milestone, Project
from tenants.roles import role_grants

# Milestones not yet on an invoice: once invoiced, the invoice's own due date takes over.
MILESTONE_DUE_STATUSES = ("planned", "in_progress", "completed", "approved")
# How far back and ahead a calendar reaches: overdue items of the last weeks stay visible;
# a year ahead covers every plan's next dates without sending a project's whole history.
DAYS_BACK = 60
DAYS_AHEAD = 400
# At most this many entries of each kind (the nearest first), so a feed stays a feed.
MAX_PER_KIND = 2000


@dataclass(frozen=True)
class Entry:
    uid: str
    kind: str
    day: date
    summary: str
    description: str
    # The entry's page, relative to the workspace (/t/<slug>/...).
    path: str

    @property
    def fingerprint(self) -> str:
        text = "\x1f".join((self.day.isoformat(), self.summary, self.description, self.path))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Versioned:
    entry: Entry
    sequence: int
    changed_at: datetime


def sees_own_clients_only(role: str) -> bool:
    return role_grants(role, "collections.work") and not role_grants(role, "collections.supervise")


def entries_for(session: Session, tenant, user_id: int, role: str) -> list[Entry]:
    """The member's entries in the bound workspace, by day then UID."""
    today = tenant_today(session)
    first, last = today - timedelta(days=DAYS_BACK), today + timedelta(days=DAYS_AHEAD)
    own = sees_own_clients_only(role)
    slug, country = tenant.slug, tenant.country
    found = [
        *_milestones(session, slug, country, user_id, own, first, last),
        *_invoices(session, slug, country, user_id, own, first, last),
        *_promises(session, slug, country, user_id, own, first, last),
        *_follow_ups(session, slug, user_id, first, last),
        *_visits(session, slug, country, user_id, first, last),
    ]
    return sorted(found, key=lambda entry: (entry.day, entry.uid))


def versions(session: Session, entries: list[Entry]) -> list[Versioned]:
    """Each entry with its SEQUENCE and LAST-MODIFIED: new UIDs start at 0, a changed
    fingerprint raises the sequence and moves the time, an unchanged one keeps both. One
    statement; concurrent feeds of the same workspace agree (the upsert locks the row)."""
    if not entries:
        return []
    table = CalendarEntryVersion.__table__
    statement = insert(table).values(
        [{"uid": entry.uid, "fingerprint": entry.fingerprint} for entry in entries]
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.uid],
        set_={
            "fingerprint": statement.excluded.fingerprint,
            "sequence": table.c.sequence + 1,
            "changed_at": statement.excluded.changed_at,
        },
        where=table.c.fingerprint != statement.excluded.fingerprint,
    )
    session.execute(statement)
    rows = session.execute(
        select(table.c.uid, table.c.sequence, table.c.changed_at).where(
            table.c.uid.in_([entry.uid for entry in entries])
        )
    )
    known = {uid: (sequence, changed_at) for uid, sequence, changed_at in rows}
    return [Versioned(entry, *known[entry.uid]) for entry in entries]


def _uid(kind: str, record_id: int, slug: str) -> str:
    return f"{kind}-{record_id}@{slug}.duebook"


def _of_collector(user_id: int, own: bool):
    return Client.collector_user_id == user_id if own else true()


def _milestones(session, slug, country, user_id, own, first, last) -> list[Entry]:
    rows = session.execute(
        select(Milestone, Project.name, Project.currency, Client.full_name)
        .join(Project, Project.id == Milestone.project_id)
        .join(Client, Client.id == Project.client_id)
        .where(
            Milestone.status.in_(MILESTONE_DUE_STATUSES),
            Milestone.due_date.between(first, last),
            Project.deleted_at.is_(None),
            Client.deleted_at.is_(None),
            _of_collector(user_id, own),
        )
        .order_by(Milestone.due_date, Milestone.id)
        .limit(MAX_PER_KIND)
    )
    return [
        Entry(
            uid=_uid("milestone", milestone.id, slug),
            kind="milestone",
            day=milestone.due_date,
            summary=f"{title_term('milestone')} due: {milestone.name} ({client_name})",
            description=(
                f"{title_term('project')} {project_name}, {term('milestone')} "
                f"{milestone.position}: {milestone.name}, "
                f"{format_money(milestone.amount, currency, country)}. "
                f"Status: {milestone.status.replace('_', ' ')}."
            ),
            path=f"/projects/{milestone.project_id}",
        )
        for milestone, project_name, currency, client_name in rows
    ]


def _invoices(session, slug, country, user_id, own, first, last) -> list[Entry]:
    rows = session.execute(
        select(Invoice, Client.full_name)
        .join(Client, Client.id == Invoice.client_id)
        .where(
            Invoice.status.in_(OWING_STATUSES),
            Invoice.due_date.between(first, last),
            Client.deleted_at.is_(None),
            _of_collector(user_id, own),
        )
        .order_by(Invoice.due_date, Invoice.id)
        .limit(MAX_PER_KIND)
    )
    return [
        Entry(
            uid=_uid("invoice", invoice.id, slug),
            kind="invoice",
            day=invoice.due_date,
            summary=f"Invoice {invoice.number} due: {client_name}",
            description=(
                f"Invoice {invoice.number} of {client_name}, "
                f"{format_money(invoice.total, invoice.currency, country)}, "
                f"falls due. Status: {invoice.status.replace('_', ' ')}."
            ),
            path=f"/invoices/{invoice.id}",
        )
        for invoice, client_name in rows
    ]


def _promises(session, slug, country, user_id, own, first, last) -> list[Entry]:
    rows = session.execute(
        select(PromiseToPay, Client.full_name)
        .join(Client, Client.id == PromiseToPay.client_id)
        .where(
            PromiseToPay.status == "open",
            PromiseToPay.promised_on.between(first, last),
            Client.deleted_at.is_(None),
            _of_collector(user_id, own),
        )
        .order_by(PromiseToPay.promised_on, PromiseToPay.id)
        .limit(MAX_PER_KIND)
    )
    return [
        Entry(
            uid=_uid("promise", promise.id, slug),
            kind="promise",
            day=promise.promised_on,
            summary=f"Promise to pay: {client_name}, "
            f"{format_money(promise.amount, promise.currency, country)}",
            description=(
                f"{client_name} promised to pay "
                f"{format_money(promise.amount, promise.currency, country)} by this day."
                + (f" Note: {promise.note}" if promise.note else "")
            ),
            path=f"/clients/{promise.client_id}",
        )
        for promise, client_name in rows
    ]


def _follow_ups(session, slug, user_id, first, last) -> list[Entry]:
    """Follow-ups the member set (or on the clients they collect), while nobody has called or
    visited the client since."""
    later = aliased(CollectionActivity)
    rows = session.execute(
        select(CollectionActivity, Client.full_name)
        .join(Client, Client.id == CollectionActivity.client_id)
        .where(
            CollectionActivity.follow_up_on.between(first, last),
            Client.deleted_at.is_(None),
            or_(CollectionActivity.user_id == user_id, Client.collector_user_id == user_id),
            ~exists().where(
                later.client_id == CollectionActivity.client_id,
                later.occurred_at > CollectionActivity.occurred_at,
            ),
        )
        .order_by(CollectionActivity.follow_up_on, CollectionActivity.id)
        .limit(MAX_PER_KIND)
    )
    return [
        Entry(
            uid=_uid("follow-up", activity.id, slug),
            kind="follow_up",
            day=activity.follow_up_on,
            summary=f"Follow up: {client_name}",
            description=(
                f"Follow up on the {activity.kind} with {client_name} "
                f"({activity.outcome.replace('_', ' ')})."
                + (f" Note: {activity.note}" if activity.note else "")
            ),
            path=f"/clients/{activity.client_id}",
        )
        for activity, client_name in rows
    ]


def _visits(session, slug, country, user_id, first, last) -> list[Entry]:
    """Field visits the daily run made the member's task (assigned to them, or on a client
    they collect when nobody is assigned), from the day they fall due."""
    rows = session.execute(
        select(CollectionNotice, Client.full_name)
        .join(Client, Client.id == CollectionNotice.client_id)
        .where(
            CollectionNotice.channel == "visit",
            CollectionNotice.status.in_(OPEN_TASK_STATUSES),
            CollectionNotice.run_date.between(first, last),
            Client.deleted_at.is_(None),
            or_(
                CollectionNotice.assigned_user_id == user_id,
                and_(
                    CollectionNotice.assigned_user_id.is_(None),
                    Client.collector_user_id == user_id,
                ),
            ),
        )
        .order_by(CollectionNotice.run_date, CollectionNotice.id)
        .limit(MAX_PER_KIND)
    )
    return [
        Entry(
            uid=_uid("visit", notice.id, slug),
            kind="visit",
            day=notice.run_date,
            summary=f"Field visit: {client_name}",
            description=(
                f"Visit {client_name} ({notice.level_name}): "
                f"{format_money(notice.amount_due, notice.currency, country)} owed."
            ),
            path=f"/notices/{notice.id}",
        )
        for notice, client_name in rows
    ]
