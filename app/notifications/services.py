"""In-app notifications: something a user of this workspace should look at (a failed
delivery, a broken promise, a new lead). One row per user; the same event notifies a user
once (a dedupe key), however many times a worker or a webhook reports it.

Notifications is a consumer of the domain events (app.core.events; `apply_events`, registered
by the hooks): it reads each event at its own position, after the change committed, and the
dedupe key makes an event read twice notify once. What no event carries yet (a failed
delivery, a lost integration) still comes by a signal, in the sender's transaction.

The session must be bound to the tenant: notifications are a tenant table, so a user sees
only the workspace's own, and every query here also filters by the user."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.core.events import DomainEvent
from app.core.money import format_money
from app.core.terminology import title_term
from app.integrations.catalogue import entry_for
from app.integrations.models import IntegrationConnection
from app.messaging.listing import CHANNEL_LABELS, detail_path
from app.notifications import preferences
from app.notifications.models import KINDS, Notification
from app.outbox.models import OutboxMessage
from tenants.binding import PLACEHOLDER_SCHEMA, bound_tenant_id, schema_for_tenant_id
from tenants.models import Membership, Tenant

RECENT = 50
# The bell shows "99+" past this: counting further costs time and says nothing more.
COUNT_CAP = 99
# Who hears of a broken promise when the client has neither collector nor manager.
FALLBACK_ROLES = ("finance", "admin", "owner")


def notify(
    session: Session,
    user_ids: Iterable[int],
    kind: str,
    title: str,
    body: str | None = None,
    link: str | None = None,
    dedupe_key: str | None = None,
    tenant_id: int | None = None,
) -> int:
    """Tell these users of the bound tenant (or, given `tenant_id`, of that workspace: a change
    that concerns two workspaces is made in a session bound to one), each as their preferences
    say (app.notifications.preferences: the bell, an e-mail at once or daily, or nothing).
    Returns how many new notifications were written (a user already told about `dedupe_key`
    is not told again)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    translate = _in_schema_of(tenant_id) if tenant_id is not None else {}
    tenant_id = tenant_id if tenant_id is not None else bound_tenant_id(session)
    # How each wants to hear of it (their choice, their role's, or the bell alone).
    deliveries = preferences.deliveries_for(session, tenant_id, user_ids, kind, translate)
    rows = [
        {
            "user_id": user_id,
            "kind": kind,
            "title": title[:255],
            "body": body,
            "link": link[:500] if link else None,
            "dedupe_key": dedupe_key,
            "digest_due": delivery == "digest",
        }
        for user_id, delivery in deliveries.items()
        if delivery != "off"
    ]
    if not rows:
        return 0
    written = session.execute(
        insert(Notification)
        .values(rows)
        .on_conflict_do_nothing(
            index_elements=["user_id", "dedupe_key"], index_where=text("dedupe_key IS NOT NULL")
        )
        .returning(Notification.id, Notification.user_id),
        execution_options=translate,
    ).all()
    at_once = [(row_id, user_id) for row_id, user_id in written if deliveries[user_id] == "email"]
    if at_once:
        preferences.send_at_once(session, tenant_id, at_once, title[:255], body, link)
    return len(written)


def _in_schema_of(tenant_id: int) -> dict:
    return {"schema_translate_map": {PLACEHOLDER_SCHEMA: schema_for_tenant_id(tenant_id)}}


def unread_count(session: Session, user_id: int) -> int:
    """Unread notifications of this user, counted up to COUNT_CAP + 1."""
    unread = (
        select(Notification.id)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .limit(COUNT_CAP + 1)
        .subquery()
    )
    return session.scalar(select(func.count()).select_from(unread)) or 0


def recent(session: Session, user_id: int, limit: int = RECENT) -> list[Notification]:
    """This user's latest notifications, unread first, newest first."""
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.user_id == user_id)
            .order_by(
                Notification.read_at.is_not(None),
                Notification.created_at.desc(),
                Notification.id.desc(),
            )
            .limit(limit)
        )
    )


def mark_read(session: Session, user_id: int, notification_id: int) -> bool:
    """Mark one of this user's notifications read. False when it is not theirs (or not
    there); reading one already read is fine."""
    found = session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.user_id == user_id)
        .values(read_at=func.coalesce(Notification.read_at, datetime.now(UTC)))
        .returning(Notification.id),
        execution_options={"synchronize_session": False},
    ).first()
    return found is not None


def mark_all_read(session: Session, user_id: int) -> int:
    return session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=datetime.now(UTC)),
        execution_options={"synchronize_session": False},
    ).rowcount


def _admins(session: Session, tenant_id: int) -> list[int]:

    return list(
        session.scalars(
            select(Membership.user_id)
            .where(
                Membership.tenant_id == tenant_id,
                Membership.active.is_(True),
                Membership.role.in_(("owner", "admin")),
            )
            .order_by(Membership.user_id)
        )
    )


def _is_member(session: Session, tenant_id: int, user_id: int) -> bool:

    return (
        session.scalar(
            select(Membership.id).where(
                Membership.tenant_id == tenant_id,
                Membership.user_id == user_id,
                Membership.active.is_(True),
            )
        )
        is not None
    )


def notify_delivery_failed(
    session: Session, tenant_id: int | None, message_id: int, created_by: int | None, reason: str
) -> int:
    """A message of this tenant will not arrive (dead-lettered, failed or bounced): tell who
    sent it or, when nobody did (automatic messages) or they have left, the workspace's
    admins and owners. Once per message and user."""
    if tenant_id is None:  # platform e-mail (password resets ...): nobody in a workspace to tell
        return 0

    found = session.execute(
        select(OutboxMessage.channel, OutboxMessage.recipient, OutboxMessage.subject, Tenant.slug)
        .join(Tenant, Tenant.id == OutboxMessage.tenant_id)
        .where(OutboxMessage.id == message_id, OutboxMessage.of_tenant(tenant_id))
    ).first()
    if found is None:
        return 0
    channel, recipient, subject, slug = found
    if created_by is not None and _is_member(session, tenant_id, created_by):
        users = [created_by]
    else:
        users = _admins(session, tenant_id)
    what = f"“{subject}”" if subject else "A message"
    return notify(
        session,
        users,
        "delivery_failed",
        title=f"{CHANNEL_LABELS.get(channel, channel)} to {recipient} could not be delivered",
        body=f"{what}: {reason}"[:2000],
        link=detail_path(slug, message_id),
        dedupe_key=f"delivery_failed:{message_id}",
    )


def notify_integration_lost(
    session: Session, tenant_id: int, connection_id: int, title: str, reason: str
) -> int:
    """A connection of workspace `tenant_id` lost its provider account to a workspace that
    proved it controls it: tell that workspace's owners and admins (those who can manage
    integrations), once per connection. The session is the other workspace's."""

    slug = session.scalar(select(Tenant.slug).where(Tenant.id == tenant_id))
    return notify(
        session,
        _admins(session, tenant_id),
        "info",
        title=f"{title} needs attention",
        body=reason,
        link=f"/t/{slug}/integrations/",
        dedupe_key=f"integration_lost:{connection_id}",
        tenant_id=tenant_id,
    )


# The domain events consumer -----------------------------------------------------------------


# Past this many payments for one person in one batch of events (a bank statement matched, a
# sync's first read of the books), one notification counts them instead of one each.
PAYMENTS_SPELLED_OUT = 3


def apply_events(session: Session, events: Sequence[DomainEvent]) -> None:
    """What notifications does with a batch of domain events, in the batch's transaction: a
    broken promise, a dispute and a new lead told to the client's people; money that came in
    without anyone recording it (a gateway's webhook, a bank match: not the books, where a
    person recorded it, nor an API call); a failed sync told to the admins. Who caused an event
    is never told of it."""
    slug = session.scalar(select(Tenant.slug).where(Tenant.id == bound_tenant_id(session)))
    payments: dict[int, list[DomainEvent]] = {}
    for event in events:
        if event.type == "promise.broken":
            notify_promise_broken(session, event.subject_id, event.data)
        elif event.type == "dispute.opened":
            _tell_client_people(
                session,
                event,
                "dispute_opened",
                "disputed an invoice",
                event.data.get("reason"),
                f"/t/{slug}/invoices/{event.data['invoice_id']}",
            )
        elif event.type == "lead.received" and event.data["source"] != "import":
            _tell_client_people(
                session,
                event,
                "new_lead",
                "came in as a lead",
                f"From {event.data['source']}.",
                f"/t/{slug}/clients/{event.data['client_id']}",
            )
        elif event.type == "payment.received" and event.user_id is None and not event.source:
            client = session.get(Client, event.data["client_id"])
            if client is not None:
                for user_id in people_to_tell(session, client):
                    payments.setdefault(user_id, []).append(event)
        elif event.type == "sync.finished" and event.data["status"] == "failed":
            connection = session.get(IntegrationConnection, event.data["connection_id"])
            if connection is not None and (connection.settings or {}).get("needs_reconnect"):
                continue  # the lost access is told once, by its own notification
            entry = entry_for(event.data["provider"])
            notify(
                session,
                [u for u in _admins(session, bound_tenant_id(session)) if u != event.user_id],
                "sync_failed",
                title=f"A sync with {entry.title if entry else event.data['provider']} failed",
                body="Open the sync page to see why and to try again.",
                link=f"/t/{slug}/sync/",
                dedupe_key=f"sync_failed:{event.data['run_id']}",
            )
    for user_id, received in payments.items():
        _tell_payments(session, user_id, received, slug)


def _tell_client_people(
    session: Session,
    event: DomainEvent,
    kind: str,
    happened: str,
    body: str | None,
    link: str,
) -> None:
    client = session.get(Client, event.data["client_id"])
    if client is None:
        return
    notify(
        session,
        [u for u in people_to_tell(session, client) if u != event.user_id],
        kind,
        title=f"{client.short_name} {happened}",
        body=body,
        link=link,
        dedupe_key=f"{kind}:{event.id}",
    )


def _tell_payments(session: Session, user_id: int, received: list[DomainEvent], slug) -> None:
    country = session.scalar(select(Tenant.country).where(Tenant.id == bound_tenant_id(session)))
    if len(received) > PAYMENTS_SPELLED_OUT:
        notify(
            session,
            [user_id],
            "payment_received",
            title=f"{len(received)} payments came in",
            body="Recorded from the gateway, the books or the bank.",
            link=f"/t/{slug}/payments/",
            dedupe_key=f"payments_received:{received[0].id}-{received[-1].id}",
        )
        return
    names = dict(
        session.execute(
            select(Client.id, Client.short_name).where(
                Client.id.in_({event.data["client_id"] for event in received})
            )
        ).all()
    )
    for event in received:
        amount = format_money(event.data["amount"], event.data["currency"], country)
        notify(
            session,
            [user_id],
            "payment_received",
            title=f"{names.get(event.data['client_id'], title_term('a client'))} paid {amount}",
            body=f"Received on {date.fromisoformat(event.data['received_on']):%d %b %Y}.",
            link=f"/t/{slug}/payments/{event.data['payment_id']}",
            dedupe_key=f"payment_received:{event.data['payment_id']}",
        )


def people_to_tell(session: Session, client: Client) -> list[int]:
    """The client's collector, else its engagement manager, else the workspace's finance
    people, admins and owners — active members only."""
    active = select(Membership.user_id).where(
        Membership.tenant_id == bound_tenant_id(session), Membership.active.is_(True)
    )
    for user_id in (client.collector_user_id, client.engagement_manager_user_id):
        if user_id is not None and session.scalar(active.where(Membership.user_id == user_id)):
            return [user_id]
    return list(
        session.scalars(
            active.where(Membership.role.in_(FALLBACK_ROLES)).order_by(Membership.user_id)
        )
    )


def notify_promise_broken(session: Session, promise_id: int, facts: dict) -> int:
    """A promise to pay passed its day unpaid (and collection resumed): tell the client's
    collector (see people_to_tell), once per promise."""
    client = session.get(Client, facts["client_id"])
    if client is None:
        return 0
    slug = session.scalar(select(Tenant.slug).where(Tenant.id == bound_tenant_id(session)))
    currency = facts["currency"]
    promised_for = date.fromisoformat(facts["promised_for"])
    return notify(
        session,
        people_to_tell(session, client),
        "broken_promise",
        title=f"{client.short_name} broke a promise to pay",
        body=(
            f"{currency} {Decimal(facts['amount']):,} was promised by "
            f"{promised_for:%d %b %Y}; {currency} {Decimal(facts['unpaid']):,} did not come. "
            "Collection has resumed."
        ),
        link=f"/t/{slug}/clients/{client.id}?tab=collections",
        dedupe_key=f"broken_promise:{promise_id}",
    )
