"""The Messages page: a tenant's outbox rows with filters in the URL, newest first, keyset
pages, counts per status of the filtered set; one message's details; a client's messages for
its timeline.

`outbox_messages` is a shared table: every query here filters by the tenant id it is given
(the bound tenant), never by anything the user sends. Order and pages follow the index
`ix_outbox_messages_tenant_created` (tenant_id, created_at), so page 400 costs what page 1
costs; the counts read at most COUNT_CAP rows, so a tenant with millions of messages does not
pay for an exact figure nobody reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import ARRAY, BigInteger, and_, func, literal, or_, select
from sqlalchemy.orm import Session, load_only

from app.clients.models import Client
from app.core.request_input import row_id
from app.outbox import secret_links
from app.outbox.models import CHANNELS, OutboxMessage
from tenants.models import Tenant

PAGE_SIZE = 50
COUNT_CAP = 10_000
# What the page calls a status, and the stored statuses behind each: "queued" is waiting or
# being sent, "failed" is the provider's failure and our own dead letters alike.
STATUS_GROUPS: dict[str, tuple[str, ...]] = {
    "queued": ("pending", "sending"),
    "sent": ("sent",),
    "delivered": ("delivered",),
    "read": ("read",),
    "failed": ("failed", "dead"),
    "bounced": ("bounced",),
    "suppressed": ("suppressed",),
}
STATUS_LABELS = {
    "queued": "Queued",
    "sent": "Sent",
    "delivered": "Delivered",
    "read": "Read",
    "failed": "Failed",
    "bounced": "Bounced",
    "suppressed": "Not sent",
}
GROUP_OF = {status: group for group, statuses in STATUS_GROUPS.items() for status in statuses}
CHANNEL_LABELS = {"email": "E-mail", "whatsapp": "WhatsApp", "sms": "SMS"}
RETRYABLE = ("dead", "failed")


@dataclass(frozen=True)
class MessageFilters:
    """What the list shows, all in the URL so a view can be bookmarked."""

    channel: str = ""
    status: str = ""
    campaign_id: int | None = None
    client_id: int | None = None
    q: str = ""

    @classmethod
    def from_args(cls, args: Mapping) -> MessageFilters:
        channel = (args.get("channel") or "").strip()
        status = (args.get("status") or "").strip()
        return cls(
            channel=channel if channel in CHANNELS else "",
            status=status if status in STATUS_GROUPS else "",
            campaign_id=row_id(args.get("campaign_id")),
            client_id=row_id(args.get("client_id")),
            q=(args.get("q") or "").strip()[:100],
        )

    def as_args(self, **changes) -> dict[str, str]:
        values = {
            "channel": self.channel,
            "status": self.status,
            "campaign_id": str(self.campaign_id) if self.campaign_id else "",
            "client_id": str(self.client_id) if self.client_id else "",
            "q": self.q,
        }
        values.update(changes)
        return {key: value for key, value in values.items() if value}


def _filtered(query, tenant_id: int, filters: MessageFilters, with_status: bool = True):
    query = query.where(OutboxMessage.of_tenant(tenant_id))
    if filters.channel:
        query = query.where(OutboxMessage.channel == filters.channel)
    if with_status and filters.status:
        query = query.where(OutboxMessage.status.in_(STATUS_GROUPS[filters.status]))
    if filters.campaign_id:
        query = query.where(OutboxMessage.campaign_id == filters.campaign_id)
    if filters.client_id:
        query = query.where(OutboxMessage.client_id == filters.client_id)
    if filters.q:
        pattern = (
            "%"
            + filters.q.lower().replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            + "%"
        )
        query = query.where(func.lower(OutboxMessage.recipient).like(pattern))
    return query


@dataclass(frozen=True)
class MessageRow:
    message: OutboxMessage
    client_name: str | None

    @property
    def status_group(self) -> str:
        return GROUP_OF.get(self.message.status, self.message.status)


@dataclass
class MessagePage:
    rows: list[MessageRow]
    next_cursor: str | None
    # status group -> count, over the filtered set (ignoring the status filter, so each count
    # says what choosing that status would show); `capped` when more than COUNT_CAP matched.
    counts: dict[str, int] = field(default_factory=dict)
    capped: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _cursor(message: OutboxMessage) -> str:
    moment = message.created_at
    micros = int(moment.timestamp()) * 1_000_000 + moment.microsecond
    return f"{micros}.{message.id}"


def _after(cursor: str | None):
    """Rows after `cursor` in (created_at DESC, id DESC) order; None for a cursor not ours."""
    raw_time, _, raw_id = (cursor or "").partition(".")
    if not (raw_time.isdigit() and raw_id.isdigit() and len(raw_time) < 19 and len(raw_id) < 19):
        return None
    micros, last_id = int(raw_time), int(raw_id)
    seconds, fraction = divmod(micros, 1_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=fraction)
    return or_(
        OutboxMessage.created_at < moment,
        and_(OutboxMessage.created_at == moment, OutboxMessage.id < last_id),
    )


def _client_names(session: Session, ids) -> dict[int, str]:
    """Names of the page's clients (a tenant table: the bound tenant's only)."""
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    # The ids as one array: one statement's text for any number of them (the page prepares it).
    wanted = func.any(literal(sorted(ids), ARRAY(BigInteger)))
    return dict(
        session.execute(select(Client.id, Client.short_name).where(Client.id == wanted)).all()
    )


def client_name(session: Session, client_id: int | None) -> str | None:
    return _client_names(session, [client_id]).get(client_id) if client_id else None


def list_messages(
    session: Session,
    tenant_id: int,
    filters: MessageFilters,
    after: str | None = None,
    page_size: int = PAGE_SIZE,
) -> MessagePage:
    # The columns the list shows, not the bodies and payloads (an HTML e-mail is many kB).
    m = OutboxMessage
    shown = load_only(
        m.id,
        m.tenant_id,
        m.channel,
        m.recipient,
        m.subject,
        m.client_id,
        m.campaign_id,
        m.status,
        m.created_at,
        raiseload=True,
    )
    query = _filtered(select(OutboxMessage).options(shown), tenant_id, filters)
    condition = _after(after)
    if condition is not None:
        query = query.where(condition)
    query = query.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    found = list(session.scalars(query.limit(page_size + 1)))
    more = len(found) > page_size
    found = found[:page_size]
    clients = _client_names(session, (m.client_id for m in found))
    rows = [MessageRow(m, clients.get(m.client_id)) for m in found]
    counts, capped = status_counts(session, tenant_id, filters)
    return MessagePage(rows, _cursor(found[-1]) if more and found else None, counts, capped)


def status_counts(session: Session, tenant_id: int, filters: MessageFilters):
    """({status group: count}, capped) over at most COUNT_CAP + 1 of the newest matching rows."""
    newest = (
        _filtered(select(OutboxMessage.status), tenant_id, filters, with_status=False)
        .order_by(OutboxMessage.created_at.desc())
        .limit(COUNT_CAP + 1)
        .subquery()
    )
    by_status = session.execute(select(newest.c.status, func.count()).group_by(newest.c.status))
    counts: dict[str, int] = {}
    for status, count in by_status:
        group = GROUP_OF.get(status, status)
        counts[group] = counts.get(group, 0) + count
    return counts, sum(counts.values()) > COUNT_CAP


def get_message(session: Session, tenant_id: int, message_id: int) -> OutboxMessage | None:
    return session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.id == message_id, OutboxMessage.of_tenant(tenant_id)
        )
    )


def shown_bodies(message: OutboxMessage) -> tuple[str, str | None]:
    """The text and HTML as the Messages pages show them: every member with messages.view
    reads these pages, so a one-time link (an invitation, a reset) appears only as words."""
    return (
        secret_links.hidden(message.body_text),
        secret_links.hidden(message.body_html, html=True),
    )


def status_history(message: OutboxMessage) -> list[tuple[str, datetime]]:
    """The moments a message reached, in order: queued, sent, delivered, read, failed ..."""
    failed_label = {"bounced": "Bounced", "dead": "Gave up"}.get(message.status, "Failed")
    moments = [
        ("Queued", message.created_at),
        ("Sent", message.sent_at),
        ("Delivered", message.delivered_at),
        ("Read", message.read_at),
        (failed_label, message.failed_at),
        ("Replied", message.replied_at),
    ]
    return sorted(((label, at) for label, at in moments if at is not None), key=lambda m: m[1])


def channel_details(message: OutboxMessage) -> dict:
    """What the recipient got besides subject and text, from the channel's payload: the
    WhatsApp template and its parameters, the SMS DLT ids, the attachments' names."""
    payload = message.payload or {}
    whatsapp = payload.get("whatsapp") or {}
    sms = payload.get("sms") or {}
    document = whatsapp.get("document")
    return {
        "attachments": [
            item.get("filename") or item.get("key", "") for item in payload.get("attachments") or []
        ],
        "whatsapp": {
            "type": whatsapp.get("type", "template"),
            "template": whatsapp.get("name"),
            "language": whatsapp.get("language"),
            "parameters": [str(value) for value in whatsapp.get("body_params") or []],
            "document": (
                document.get("filename")
                if isinstance(document, dict)
                else whatsapp.get("filename")
                if document
                else None
            ),
        }
        if message.channel == "whatsapp"
        else None,
        "sms": {
            "dlt_entity_id": sms.get("dlt_entity_id"),
            "dlt_template_id": sms.get("dlt_template_id"),
            "gateway_template_id": sms.get("gateway_template_id"),
            "variables": sms.get("variables") or {},
        }
        if message.channel == "sms"
        else None,
    }


def detail_path(tenant_slug: str, message_id: int) -> str:
    """The message page's path, built without a request (workers write notifications too)."""
    adapter = current_app.url_map.bind("localhost")
    return adapter.build("messages.detail", {"tenant_slug": tenant_slug, "message_id": message_id})


def messages_for_client(
    session: Session, tenant_id: int, client_id: int, limit: int = 50
) -> list[dict]:
    """A client's latest messages, newest first, for its timeline: plain dicts with the
    channel, recipient, subject, status, the moments it reached and the path of its page."""

    slug = session.scalar(select(Tenant.slug).where(Tenant.id == tenant_id))
    found = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.of_tenant(tenant_id), OutboxMessage.client_id == client_id)
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": m.id,
            "channel": m.channel,
            "channel_label": CHANNEL_LABELS.get(m.channel, m.channel),
            "recipient": m.recipient,
            "subject": m.subject,
            "status": m.status,
            "status_label": STATUS_LABELS.get(GROUP_OF.get(m.status, ""), m.status),
            "at": m.created_at,
            "created_at": m.created_at,
            "sent_at": m.sent_at,
            "delivered_at": m.delivered_at,
            "read_at": m.read_at,
            "failed_at": m.failed_at,
            "replied_at": m.replied_at,
            "last_error": m.last_error,
            "link": detail_path(slug, m.id),
        }
        for m in found
    ]
