"""The client's timeline of happenings, read from the domain events (`app.core.events`).

The "timeline" consumer files each event about a client under that client (`client_timeline`:
the event's id and the client's, nothing copied), once, whatever area wrote the event: the
areas above clients never write timeline rows of their own. The client page then says each
happening in a sentence ("Invoice INV/26-27/00009 issued: ₹1,18,000.00, due 04 Jan 2027")
with a link to its record, beside the audit log's changes. A change the audit log recorded in
the same transaction as an event (an invoice's status moving as it was issued) is that
happening's detail, not a line of its own: both carry the transaction's start time.

A client's own "created" and "updated" events are left to the audit log, which says them with
the fields' old and new values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from flask import url_for
from sqlalchemy import BigInteger, ForeignKey, Index, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.clients.models import Client
from app.core.events import DomainEvent
from app.core.money import format_money
from app.core.terminology import title_term, worded
from tenants.base import TenantModel
from tenants.models import User

# The event types a client's timeline tells (the rest: the client's own record, which the audit
# log words; a sync run or a webhook test, which belong to no client), in the order that picks
# the happening a transaction's changes are shown beneath: a payment recorded also marks its
# invoice paid and moves its milestones, and the changes are the payment's.
TOLD_TYPES = (
    "payment.received",
    "payment.reversed",
    "payment.failed",
    "invoice.issued",
    "invoice.voided",
    "invoice.sent",
    "invoice.paid",
    "dispute.opened",
    "dispute.resolved",
    "promise.kept",
    "promise.broken",
    "notice.created",
    "notice.sent",
    "notice.escalated",
    "notice.closed",
    "document.expiring",
    "lead.received",
    "project.status_changed",
    "milestone.status_changed",
)
_RANK = {kind: rank for rank, kind in enumerate(TOLD_TYPES)}
CONSUMER = "timeline"


class ClientTimelineEntry(TenantModel):
    """One event filed under the client it is about."""

    __tablename__ = "client_timeline"

    event_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.domain_events.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tenant.clients.id", ondelete="CASCADE")
    )

    __table_args__ = (Index("ix_client_timeline_client_event", "client_id", "event_id"),)


def file_events(session: Session, events: Sequence[DomainEvent]) -> None:
    """The consumer: each told event under its client. The event's id is the key, so an event
    seen twice (a batch applied again after a crash) is filed once; a client id that names no
    client (a record removed since) is passed over."""
    wanted = {
        event.id: event.data["client_id"]
        for event in events
        if event.type in TOLD_TYPES and event.data.get("client_id")
    }
    if not wanted:
        return
    known = set(session.scalars(select(Client.id).where(Client.id.in_(set(wanted.values())))))
    rows = [
        {"event_id": event_id, "client_id": client_id}
        for event_id, client_id in wanted.items()
        if client_id in known
    ]
    if rows:
        session.execute(insert(ClientTimelineEntry).values(rows).on_conflict_do_nothing())


def events_of(session: Session, client_id: int, limit: int = 100) -> list[DomainEvent]:
    """The client's newest happenings, newest first."""
    return list(
        session.scalars(
            select(DomainEvent)
            .join(ClientTimelineEntry, ClientTimelineEntry.event_id == DomainEvent.id)
            .where(ClientTimelineEntry.client_id == client_id)
            .order_by(ClientTimelineEntry.event_id.desc())
            .limit(limit)
        )
    )


@dataclass
class Happening:
    """An event said in words: who, what, where to see it; `details` are the audit log's
    actions of the same transaction (its old and new values), shown beneath."""

    occurred_at: datetime
    actor: str
    sentence: str
    link: str | None
    tone: str = "neutral"
    details: list = field(default_factory=list)


_STATUS_WORDS = {
    "planned": "planned",
    "in_progress": "in progress",
    "delivered": "delivered (every {milestone} done)",
    "completed": "completed",
    "approved": "approved",
    "invoiced": "invoiced",
    "partly_paid": "partly paid",
    "paid": "paid",
    "cancelled": "cancelled",
}
_CLOSED_WORDS = {
    "paid": "paid",
    "written_off": "written off",
    "void": "its invoice voided",
    "cancelled": "cancelled",
    "client_archived": "client archived",
}


def _date(value: str | None) -> str:
    return date.fromisoformat(value).strftime("%d %b %Y") if value else ""


def _money(data: dict, key: str, country: str | None) -> str:
    return format_money(data[key], data["currency"], country)


def _invoice(data: dict) -> str:
    return f"Invoice {data.get('number') or '(draft)'}"


def describe(event: DomainEvent, country: str | None) -> tuple[str, str | None, str]:
    """(sentence, link, tone) of a told event."""
    data, kind = event.data, event.type
    invoice_link = (
        url_for("invoicing.detail", invoice_id=data["invoice_id"])
        if data.get("invoice_id")
        else None
    )
    if kind == "project.status_changed":
        status = worded(_STATUS_WORDS.get(data["status"], data["status"]))
        return (
            f"{title_term('project')} {data.get('name') or ''} is {status}",
            url_for("projects.detail", project_id=data["project_id"]),
            "good" if data["status"] == "paid" else "neutral",
        )
    if kind == "milestone.status_changed":
        return (
            f"{title_term('milestone')} {data.get('name') or ''}: "
            f"{_STATUS_WORDS.get(data.get('previous') or '', data.get('previous') or 'new')} → "
            f"{_STATUS_WORDS.get(data['status'], data['status'])}",
            url_for("projects.detail", project_id=data["project_id"]),
            "neutral",
        )
    if kind == "invoice.issued":
        due = f", due {_date(data['due_date'])}" if data.get("due_date") else ""
        return (
            f"{_invoice(data)} issued: {_money(data, 'total', country)}{due}",
            invoice_link,
            "neutral",
        )
    if kind == "invoice.sent":
        way = "marked as sent" if data["channel"] == "manual" else f"sent by {data['channel']}"
        return f"{_invoice(data)} {way}", invoice_link, "neutral"
    if kind == "invoice.paid":
        return f"{_invoice(data)} paid in full", invoice_link, "good"
    if kind == "invoice.voided":
        return f"{_invoice(data)} voided", invoice_link, "bad"
    if kind == "payment.received":
        return (
            f"Payment of {_money(data, 'amount', country)} received on "
            f"{_date(data['received_on'])} ({data['method'].replace('_', ' ')})",
            url_for("payments.detail", payment_id=data["payment_id"]),
            "good",
        )
    if kind == "payment.failed":
        amount = f" of {_money(data, 'amount', country)}" if data.get("amount") else ""
        reason = f": {data['reason']}" if data.get("reason") else ""
        return f"An online payment{amount} failed{reason}", invoice_link, "bad"
    if kind == "payment.reversed":
        reason = f": {data['reason']}" if data.get("reason") else ""
        return (
            f"Payment of {_money(data, 'amount', country)} taken back{reason}",
            url_for("payments.detail", payment_id=data["payment_id"]),
            "bad",
        )
    if kind.startswith("notice."):
        link = url_for("notices.detail", notice_id=data["notice_id"])
        level = data["level"]
        if kind == "notice.created":
            return f"{title_term('notice')} drawn up: {level}", link, "neutral"
        if kind == "notice.sent":
            return f"{title_term('notice')} sent by {data['channel']}: {level}", link, "neutral"
        if kind == "notice.escalated":
            return f"{title_term('notice')} escalated: {level}", link, "bad"
        reason = _CLOSED_WORDS.get(data.get("reason") or "", data.get("reason") or "closed")
        return f"{title_term('notice')} closed ({reason}): {level}", link, "neutral"
    if kind in ("promise.kept", "promise.broken"):
        promised = (
            f"promise to pay {_money(data, 'amount', country)} by {_date(data['promised_for'])}"
        )
        link = url_for("cases.client_collections", client_id=data["client_id"])
        if kind == "promise.kept":
            return f"Kept the {promised}", link, "good"
        return (
            f"Broke the {promised}: {_money(data, 'unpaid', country)} did not come",
            link,
            "bad",
        )
    if kind == "dispute.opened":
        reason = f": {data['reason']}" if data.get("reason") else ""
        return f"Disputed an invoice{reason}", invoice_link, "bad"
    if kind == "dispute.resolved":
        outcome = "the invoice stands" if data["outcome"] == "rejected" else "resolved"
        return f"Dispute ended: {outcome}", invoice_link, "neutral"
    if kind == "document.expiring":
        return (
            f"A document expires on {_date(data['expires_on'])}",
            url_for("clients.detail", client_id=data["client_id"], tab="documents"),
            "bad",
        )
    if kind == "lead.received":
        return f"Came in as a lead ({data['source']})", None, "neutral"
    return kind, None, "neutral"


def told(session: Session, story: list[tuple], country: str | None) -> list[tuple]:
    """A timeline already grouped into the audit log's actions ("action", moment, Action)
    with its events ("event", moment, DomainEvent): each event becomes a ("happening", moment,
    Happening) in words, and an action of the same moment moves beneath it as its detail."""
    events = [entry for kind, _, entry in story if kind == "event"]
    if not events:
        return story
    ids = {event.user_id for event in events} - {None}
    people = dict(session.execute(select(User.id, User.full_name).where(User.id.in_(ids))).all())
    moments = {event.occurred_at for event in events}
    # The event of each moment its changes go beneath.
    leading: dict[datetime, DomainEvent] = {}
    for event in events:
        kept = leading.get(event.occurred_at)
        if kept is None or (_RANK[event.type], event.id) < (_RANK[kept.type], kept.id):
            leading[event.occurred_at] = event
    details: dict[datetime, list] = {}
    for kind, moment, entry in story:
        if kind == "action" and moment in moments:
            details.setdefault(moment, []).append(entry)
    out = []
    for kind, moment, entry in story:
        if kind == "action" and moment in moments:
            continue
        if kind != "event":
            out.append((kind, moment, entry))
            continue
        sentence, link, tone = describe(entry, country)
        happening = Happening(
            occurred_at=moment,
            actor=people.get(entry.user_id, "Duebook") if entry.user_id else "Duebook",
            sentence=sentence,
            link=link,
            tone=tone,
        )
        if leading[moment] is entry:
            happening.details = details.get(moment, [])
        out.append(("happening", moment, happening))
    return out
