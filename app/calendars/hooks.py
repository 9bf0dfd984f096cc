"""How members' connected calendars are said in the audit log, and pushing to them when what
they show changes: a flush that writes a milestone,
project, invoice, promise, collector's activity, notice or client of a workspace where a member
has a calendar connected hands over one push job for the workspace after the commit (a rolled
back change pushes nothing). Connected by `create_app`."""

from __future__ import annotations

import contextlib

from flask import Flask, has_app_context
from sqlalchemy import event, exists, select
from sqlalchemy.orm import Session

from app.audit.wording import Wording, register_wording
from app.calendars.models import CalendarConnection
from app.clients.models import Client
from app.collections.models import CollectionActivity, CollectionNotice, PromiseToPay
from app.core.handover import HAND_OVER_FAILURES, Work, hand_over_gathered, redis_connection
from app.invoicing.models import Invoice
from app.projects.models import Milestone, Project
from tenants.binding import TenantSession, bound_tenant_id

SHOWN_IN_CALENDARS = (
    Milestone,
    Project,
    Invoice,
    PromiseToPay,
    CollectionActivity,
    CollectionNotice,
    Client,
)
# Set once per transaction: whether this transaction already decided (pushed or not).
_DECIDED_KEY = "calendars.push_decided"
# While a push job of the workspace is queued and not started, a new change adds no other.
QUEUED_SECONDS = 300


def init_app(app: Flask) -> None:
    register_wording(
        "calendar_connections",
        Wording(
            noun="connected calendar",
            name_field="calendar_name",
            labels={
                "provider": "calendar service",
                "status": "status",
                "calendar_name": "calendar",
                "last_error": "last error",
            },
            choices={
                "provider": {"google_calendar": "Google Calendar", "outlook_calendar": "Outlook"},
                "status": {
                    "connected": "connected",
                    "needs_reconnect": "needs reconnecting",
                    "disconnected": "disconnected",
                },
            },
            people_fields=frozenset({"user_id"}),
        ),
    )
    # Listening on the session class once, however many apps a process makes (tests).
    if not event.contains(TenantSession, "after_flush", _after_flush):
        event.listen(TenantSession, "after_flush", _after_flush)
        event.listen(TenantSession, "after_transaction_end", _forget_decision)


def _after_flush(session: Session, _context) -> None:
    tenant_id = bound_tenant_id(session)
    if tenant_id is None or session.info.get(_DECIDED_KEY):
        return
    changed = (*session.new, *session.dirty, *session.deleted)
    if not any(isinstance(record, SHOWN_IN_CALENDARS) for record in changed):
        return
    session.info[_DECIDED_KEY] = True
    connected = session.scalar(select(exists().where(CalendarConnection.status == "connected")))
    if connected:
        hand_over_gathered(session, tenant_id, push_jobs)


def _forget_decision(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(_DECIDED_KEY, None)


def queued_key(tenant_id: int) -> str:
    return f"calendars:queued:{tenant_id}"


def forget_queued(tenant_id: int) -> None:
    """Said by the push job as it starts: a change committed from now on queues another."""
    with contextlib.suppress(*HAND_OVER_FAILURES):  # else the key expires by itself
        redis_connection().delete(queued_key(tenant_id))


def push_jobs(tenant_ids: list[int]) -> list[Work]:
    """One push per workspace, unless one is queued and not started yet (it will see these
    changes too). Outside the app (a script) there is nothing to queue with: the hand-over
    logs the work and the sweep pushes it."""
    works = []
    for tenant_id in sorted(set(tenant_ids)):
        if not has_app_context():
            works.append(Work("push_calendars", tenant_id=tenant_id))
            continue
        try:
            fresh = redis_connection().set(queued_key(tenant_id), 1, nx=True, ex=QUEUED_SECONDS)
        except HAND_OVER_FAILURES:
            fresh = True  # queue it anyway; the hand-over logs if Redis is gone
        if fresh:
            works.append(Work("push_calendars", tenant_id=tenant_id))
    return works
