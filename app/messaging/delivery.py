"""Delivering outbox messages: one job takes a batch of one tenant's message ids.

For each message, in this order: claim it (one UPDATE for the batch); refuse what may not be
sent (consent withdrawn, unsubscribed, a bounced address, a closed WhatsApp session window,
no connected channel); put back what may not be sent *now* (outside the tenant's sending
window in the recipient's time zone, over the tenant's or the provider's rate, over a daily
cap); wait for a rate slot; send through the channel's connector; record the outcome. Each
outcome is committed before the next message is sent, so a killed worker leaves at most the
one message it was sending in doubt."""

from __future__ import annotations

import logging
import time as clock
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.business_days import is_business_day, subdivision_for
from app.messaging import services
from app.messaging.channels import Attachment, Connector, DeliveryError, Outgoing
from app.messaging.channels.registry import connector_class
from app.messaging.channels.smtp import SmtpConnector
from app.messaging.models import OutboxMessage
from app.messaging.ratelimit import RateLimiter, next_utc_midnight
from tenants.binding import bound_tenant_id

log = logging.getLogger(__name__)

WHATSAPP_SESSION = timedelta(hours=24)
# Waiting longer than this for a rate slot puts the message back instead of holding a worker.
MAX_RATE_WAIT = 2.0


@dataclass
class ChannelRoute:
    connector: Connector
    connection_id: int | None  # None: the platform's own e-mail
    successes: int = 0
    failures: int = 0
    last_error: str | None = None


class Routes:
    """The connector for each channel of the bound tenant, built once per batch."""

    def __init__(self, session: Session, tenant_id: int | None, config):
        self.session, self.tenant_id, self.config = session, tenant_id, config
        self.routes: dict[str, ChannelRoute | None] = {}

    def get(self, channel: str) -> ChannelRoute | None:
        if channel not in self.routes:
            self.routes[channel] = self._build(channel)
        return self.routes[channel]

    def _build(self, channel: str) -> ChannelRoute | None:
        if self.tenant_id is not None:
            from app.integrations.crypto import decrypt_secrets
            from app.integrations.models import IntegrationConnection
            from app.messaging.channels.registry import providers_for

            providers = providers_for(channel)
            connection = self.session.scalar(
                select(IntegrationConnection)
                .where(IntegrationConnection.provider.in_(providers),
                       IntegrationConnection.status == "enabled")
                .order_by(IntegrationConnection.id)
                .limit(1)
            )  # fmt: skip
            if connection is not None:
                connector = connector_class(connection.provider)(
                    settings=connection.settings,
                    secrets=decrypt_secrets(connection.secrets_ciphertext),
                    config=self.config,
                )
                return ChannelRoute(connector, connection.id)
        if channel == "email":
            return ChannelRoute(SmtpConnector.platform(self.config), None)
        return None

    def record_health(self) -> None:
        """One UPDATE per connection for the batch: success and failure counts, last error."""
        from app.integrations.models import IntegrationConnection

        now = datetime.now(UTC)
        for route in self.routes.values():
            if route is None or route.connection_id is None:
                continue
            if not (route.successes or route.failures):
                continue
            values = {
                "success_count": IntegrationConnection.success_count + route.successes,
                "failure_count": IntegrationConnection.failure_count + route.failures,
            }
            if route.successes:
                values["last_success_at"] = now
            if route.failures:
                values["last_error_at"], values["last_error"] = now, route.last_error
            self.session.execute(
                update(IntegrationConnection)
                .where(IntegrationConnection.id == route.connection_id)
                .values(**values)
            )
            route.successes = route.failures = 0
        self.session.commit()

    def close(self) -> None:
        for route in self.routes.values():
            if route is not None:
                route.connector.close()


def deliver_batch(session: Session, message_ids: list[int], redis) -> Counter:
    """Deliver these messages of the bound tenant (or of no tenant). Returns outcome counts."""
    config = current_app.config
    tenant_id = bound_tenant_id(session)
    tenant = _tenant(session, tenant_id)
    lease = timedelta(seconds=config["MESSAGE_LEASE_SECONDS"])
    claimed = claim_batch(session, message_ids, tenant_id, lease)
    session.commit()
    outcomes = Counter(skipped=len(message_ids) - len(claimed))
    routes = Routes(session, tenant_id, config)
    limiter = RateLimiter(redis)
    contacts = _contacts_of(session, claimed)
    try:
        for message in claimed:
            outcome = _deliver_one(session, message, tenant, routes, limiter, config, contacts)
            outcomes[outcome] += 1
    finally:
        routes.record_health()
        routes.close()
    return outcomes


def claim_batch(
    session: Session, message_ids: list[int], tenant_id: int | None, lease: timedelta
) -> list[OutboxMessage]:
    """Take the due, unclaimed messages among these ids (of this tenant only) in one UPDATE."""
    now = datetime.now(UTC)
    tenant_match = (OutboxMessage.tenant_id.is_(None) if tenant_id is None
                    else OutboxMessage.tenant_id == tenant_id)  # fmt: skip
    rows = session.scalars(
        update(OutboxMessage)
        .where(
            OutboxMessage.id.in_(message_ids),
            tenant_match,
            OutboxMessage.next_attempt_at <= now,
            (OutboxMessage.status == "pending")
            | ((OutboxMessage.status == "sending") & (OutboxMessage.locked_until < now)),
        )
        .values(status="sending", attempts=OutboxMessage.attempts + 1, locked_until=now + lease)
        .returning(OutboxMessage),
        execution_options={"synchronize_session": False},
    ).all()
    for row in rows:
        session.expunge(row)  # plain snapshots: later commits must not reload them
    return sorted(rows, key=lambda row: row.id)


def _contacts_of(session: Session, messages: list[OutboxMessage]) -> dict:
    """The batch's contacts in one query, as they are now (a consent given or withdrawn until
    this moment counts). Detached: the commits after each message must not reload them."""
    ids = {m.contact_id for m in messages if m.contact_id is not None}
    if not ids:
        return {}
    from app.clients.models import Contact

    found = session.scalars(select(Contact).where(Contact.id.in_(ids))).all()
    for contact in found:
        session.expunge(contact)
    return {contact.id: contact for contact in found}


def _deliver_one(session, message, tenant, routes: Routes, limiter: RateLimiter, config,
                 contacts: dict) -> str:  # fmt: skip
    refusal = consent_refusal(message, contacts.get(message.contact_id))
    if refusal:
        return _finish(session, message, status="suppressed", last_error=refusal)
    now = datetime.now(UTC)
    if message.windowed and tenant is not None:
        opens = window_opens_at(tenant, message.recipient_time_zone, now)
        if opens is not None:
            return _put_back(session, message, opens, "waits for the sending window")
    route = routes.get(message.channel)
    if route is None:
        return _finish(session, message, status="suppressed",
                       last_error=f"No {message.channel} channel is connected.")  # fmt: skip
    wait = _reserve_rates(limiter, message, route.connector, config)
    if isinstance(wait, tuple):
        return _put_back(session, message, *wait)
    if wait > 0:
        clock.sleep(wait)
    try:
        sent = route.connector.send(_outgoing(message, tenant))
    except DeliveryError as exc:
        route.failures += 1
        route.last_error = str(exc)[:2000]
        return _failed(session, message, exc)
    route.successes += 1
    return _finish(session, message, status="sent", sent_at=datetime.now(UTC),
                   provider=route.connector.provider,
                   provider_message_id=sent.provider_message_id, last_error=None)  # fmt: skip


def _reserve_rates(limiter, message, connector, config) -> float | tuple[datetime, str]:
    """Seconds to wait for a slot in every bucket that applies (booked in one round trip), or
    when to try again and why."""
    now = datetime.now(UTC)
    buckets = [(f"tenant:{message.tenant_id}:{message.channel}",
                config["TENANT_MESSAGES_PER_SECOND"])]  # fmt: skip
    provider_rate = connector.rate_limit()
    if provider_rate:
        buckets.append(provider_rate)
    wait = limiter.reserve_all(buckets, MAX_RATE_WAIT)
    if wait < 0:
        return now + timedelta(seconds=-wait), "over the sending rate; a moment later"
    cap = connector.daily_cap()
    if cap and not limiter.take_daily(*cap):
        return next_utc_midnight(now), "the provider's daily limit is used up; tomorrow"
    return wait


_OUTBOX = OutboxMessage.__table__


def _finish(session, message, **values) -> str:
    """Record the outcome and commit it before the next message is sent. A table-level UPDATE:
    the ORM's bulk-update bookkeeping costs more than the statement here."""
    values.setdefault("locked_until", None)
    session.connection().execute(update(_OUTBOX).where(_OUTBOX.c.id == message.id).values(**values))
    session.commit()
    return values["status"]


def _put_back(session, message, until: datetime, reason: str) -> str:
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message.id)
        .values(status="pending", locked_until=None, enqueued_at=None, next_attempt_at=until,
                attempts=OutboxMessage.attempts - 1, last_error=reason),
        execution_options={"synchronize_session": False},
    )  # fmt: skip
    session.commit()
    return "deferred"


def _failed(session, message, exc: DeliveryError) -> str:
    error = str(exc)[:2000]
    if exc.bounced:
        # The address itself was refused: no retry, and no more mail to it until it changes.
        if message.tenant_id is not None and message.contact_id is not None:
            from app.messaging.bounces import mark_bounced

            mark_bounced(session, message.contact_id, message.recipient, error)
        from app.notifications.services import notify_delivery_failed

        notify_delivery_failed(session, message.tenant_id, message.id, message.created_by, error)
        return _finish(session, message, status="bounced", last_error=error,
                       failed_at=datetime.now(UTC))  # fmt: skip
    if exc.permanent or message.attempts >= services.MAX_ATTEMPTS:
        from app.notifications.services import notify_delivery_failed

        # Written before _finish commits, so the dead letter and its notification go together.
        notify_delivery_failed(session, message.tenant_id, message.id, message.created_by, error)
        outcome = _finish(session, message, status="dead", last_error=error,
                          failed_at=datetime.now(UTC))  # fmt: skip
        log.warning("message %s dead-lettered: %s", message.id, error)
        return outcome
    delay = (
        exc.retry_after
        if exc.retry_after is not None
        else services.backoff_seconds(message.attempts)
    )
    return _finish(session, message, status="pending", last_error=error, enqueued_at=None,
                   next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay))  # fmt: skip


def consent_refusal(message: OutboxMessage, contact) -> str | None:
    """Why this message may not go to its contact now, or None. Checked at send time: an
    opt-out or a bounce recorded after the message was queued still stops it."""
    if message.contact_id is None:
        return None
    from app.clients.services import may_contact

    if contact is None or contact.deleted_at is not None:
        return "The contact was deleted."
    if not may_contact(contact, message.channel):
        return f"{contact.full_name} has not agreed to {message.channel} messages, or opted out."
    if message.channel == "email" and contact.email_bounced_at is not None:
        return f"{contact.email} bounced ({contact.email_bounce_reason or 'hard bounce'})."
    whatsapp = (message.payload or {}).get("whatsapp") or {}
    if message.channel == "whatsapp" and whatsapp.get("type", "template") != "template":
        last = contact.whatsapp_last_inbound_at
        if last is None or datetime.now(UTC) - last > WHATSAPP_SESSION:
            return "Free-form WhatsApp messages need a message from the contact in the last 24 h."
    return None


def window_opens_at(tenant, recipient_time_zone: str | None, now: datetime) -> datetime | None:
    """None when `now` is inside the tenant's sending window (between its start and end time
    in the recipient's time zone, on a business day of the tenant's calendar unless the
    tenant sends every day); else when it next opens."""
    zone = ZoneInfo(recipient_time_zone or tenant.time_zone)
    local = now.astimezone(zone)
    start, end = tenant.send_window_start, tenant.send_window_end
    subdivision = subdivision_for(tenant.country, tenant.region)

    def open_day(day) -> bool:
        if not tenant.send_on_business_days_only:
            return True
        return is_business_day(day, tenant.country, subdivision)

    if open_day(local.date()) and start <= local.time().replace(tzinfo=None) < end:
        return None
    day = local.date()
    if not (open_day(day) and local.time().replace(tzinfo=None) < start):
        day += timedelta(days=1)
        while not open_day(day):
            day += timedelta(days=1)
    return datetime.combine(day, start if isinstance(start, time) else time(9), zone).astimezone(
        UTC
    )


def _tenant(session: Session, tenant_id: int | None):
    if tenant_id is None:
        return None
    from tenants.models import Tenant

    return session.get(Tenant, tenant_id)


def _outgoing(message: OutboxMessage, tenant) -> Outgoing:
    payload = message.payload or {}
    headers = dict(payload.get("headers") or {})
    if message.channel == "email" and message.contact_id is not None and tenant is not None:
        from app.messaging.unsubscribe import headers_for

        headers.update(headers_for(tenant.id, message.contact_id))  # RFC 8058 one-click
    return Outgoing(
        message_id=message.id, idempotency_key=message.idempotency_key,
        tenant_id=message.tenant_id, channel=message.channel, recipient=message.recipient,
        subject=message.subject, text=message.body_text, html=message.body_html,
        payload=payload, attachments=_attachments(message.tenant_id, payload),
        headers=headers,
    )  # fmt: skip


def _attachments(tenant_id: int | None, payload: dict) -> list[Attachment]:
    """Files named by storage key in the payload, read from the tenant's own folder only."""
    items = payload.get("attachments") or []
    if not items:
        return []
    from app.storage import check_key, get_storage
    from tenants.binding import schema_for_tenant_id

    storage = get_storage(current_app)
    own_prefix = f"{schema_for_tenant_id(tenant_id)}/" if tenant_id is not None else None
    files = []
    for item in items:
        key = check_key(item["key"])
        if own_prefix is None or not key.startswith(own_prefix):
            raise DeliveryError(f"attachment {key!r} is not this tenant's", permanent=True)
        try:
            with storage.open(key) as stream:
                data = stream.read()
        except FileNotFoundError as exc:
            raise DeliveryError(f"attachment {item['filename']} is missing") from exc
        files.append(
            Attachment(item["filename"], item.get("content_type", "application/octet-stream"), data)
        )
    return files
