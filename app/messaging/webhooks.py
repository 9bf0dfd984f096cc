"""Inbound webhooks (provider status reports, inbound messages): verify, store, acknowledge.

A receiver checks the provider's signature over the raw body, finds the tenant through the
provider account key (never guessing), and calls `record_webhook`, which stores the body
under a unique (provider, event key) and hands it to a worker after commit; a duplicate is
acknowledged and ignored. Nothing slow happens in the request. The worker calls the
provider's processor, which turns the body into `StatusUpdate`s (and handles inbound
messages), and `apply_status_updates` moves each message forward, never back.

A provider URL is public, so a body is hostile until proven otherwise, signed or not: each
receiver caps its size and reads it with the connectors' wire checks
(`app.integrations.connectors.wire`), which refuse (4xx, a short reason, nothing stored) what
no provider sends. The worker checks a stored body the same way before it applies anything,
so a body is applied whole or not at all."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from importlib import import_module

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.core.handover import Work, hand_over
from app.core.signals import announce_message_failed, announce_messages_reported
from app.integrations.connectors import StatusUpdate
from app.integrations.connectors.wire import BadWebhookBody
from app.integrations.models import ProviderAccount
from app.messaging.models import WebhookEvent
from app.outbox.models import OutboxMessage

log = logging.getLogger(__name__)

# provider -> "module:function(session, event) -> list[StatusUpdate]"
PROCESSORS = {
    "whatsapp_cloud": "app.messaging.inbound:process_whatsapp_webhook",
    "msg91": "app.integrations.connectors.msg91:process_webhook",
    "twilio": "app.integrations.connectors.twilio_sms:process_webhook",
    "email_bounce": "app.messaging.bounces:process_webhook",
}
# Delivery statuses in the order a message goes through them; a report only moves a message
# up this order (see apply_status_updates).
_RANK = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}


def tenant_for_account(session: Session, provider: str, account_key: str) -> ProviderAccount | None:
    return session.scalar(
        select(ProviderAccount).where(
            ProviderAccount.provider == provider, ProviderAccount.account_key == account_key
        )
    )


def record_webhook(
    session: Session,
    provider: str,
    body: bytes | str,
    tenant_id: int | None,
    event_key: str | None = None,
) -> int | None:
    """Store an inbound event once; returns its id, or None for a duplicate."""
    raw = body.decode() if isinstance(body, bytes) else body
    key = event_key or hashlib.sha256(raw.encode()).hexdigest()
    event_id = session.execute(
        insert(WebhookEvent)
        .values(provider=provider, event_key=key[:128], tenant_id=tenant_id, body=raw)
        .on_conflict_do_nothing(index_elements=["provider", "event_key"])
        .returning(WebhookEvent.id)
    ).scalar()
    if event_id is not None:
        hand_over(session, "process_webhook_event", event_id, tenant_id=tenant_id)
    return event_id


def processing_jobs(rows: list[tuple[int, int | None]]) -> list[Work]:
    """The jobs that process stored (event_id, tenant_id) events, one each."""
    return [Work("process_webhook_event", (event_id,), tenant_id) for event_id, tenant_id in rows]


def process_event(session: Session, event_id: int, tenant_id: int | None) -> int:
    """Apply one stored event (once: the row is locked and marked processed in the same
    transaction). Returns how many messages moved."""
    event = session.scalar(
        select(WebhookEvent)
        .where(WebhookEvent.id == event_id, WebhookEvent.processed_at.is_(None))
        .with_for_update(skip_locked=True)
    )
    if event is None or event.tenant_id != tenant_id:
        return 0
    module_name, _, function = PROCESSORS[event.provider].partition(":")
    event.processed_at = datetime.now(UTC)
    try:
        updates = getattr(import_module(module_name), function)(session, event)
    except BadWebhookBody as refusal:
        # Stored before receivers checked bodies: refused whole (a processor checks the body
        # before it changes anything), marked processed so that it is not retried forever.
        log.warning("webhook event %s refused: %s", event.id, refusal)
        event.error = str(refusal)
        return 0
    return apply_status_updates(session, tenant_id, updates)


def unprocessed_events(session: Session, older_than: timedelta = timedelta(minutes=2)):
    """(id, tenant_id) of events no worker processed (Redis was down, a worker died)."""
    cutoff = datetime.now(UTC) - older_than
    return [
        tuple(row)
        for row in session.execute(
            select(WebhookEvent.id, WebhookEvent.tenant_id)
            .where(WebhookEvent.processed_at.is_(None), WebhookEvent.received_at < cutoff)
            .order_by(WebhookEvent.id)
            .limit(5000)
        )
    ]


def _rank(column):
    return case(_RANK, value=column, else_=5)


# A failure report ('failed', 'bounced') counts only for a message on its way, never for one
# the provider confirmed delivered or read (a late MSG91 FAILED must not undo a DELIVERED).
_FAILABLE = ("sending", "sent")
# A message that failed, bounced or was given up on, then reported delivered or read, did
# arrive after all: the arrival wins.
_NOT_ARRIVED = ("failed", "bounced", "dead")


def apply_status_updates(session: Session, tenant_id: int | None, updates) -> int:
    """The one status rule for every provider (WhatsApp, MSG91, Twilio, e-mail bounces): a
    message only moves forward, pending < sending < sent < delivered < read, however late,
    twice or out of order its reports arrive; 'read' implies delivered. A failure moves only
    a message not yet delivered (_FAILABLE); reported after delivery it is logged (the report
    stays among the stored webhook events) and changes nothing. A delivery or read reported
    after a failure proves the message arrived."""
    moved = 0
    for item in updates:
        moved += _apply(session, tenant_id, item)
    return moved


def _apply(session: Session, tenant_id: int | None, item: StatusUpdate) -> int:
    match = (OutboxMessage.provider_message_id == item.provider_message_id) & (
        OutboxMessage.provider == item.provider
    )
    if item.idempotency_key:
        match = match | (OutboxMessage.idempotency_key == item.idempotency_key)
    owner = OutboxMessage.of_tenant(tenant_id)
    values: dict = {"status": item.status}
    if item.status in _RANK:
        allowed = (_rank(OutboxMessage.status) < _RANK[item.status]) | (
            OutboxMessage.status.in_(_NOT_ARRIVED) & (_RANK[item.status] >= _RANK["delivered"])
        )
        if item.status in ("delivered", "read"):
            values["delivered_at"] = func.coalesce(OutboxMessage.delivered_at, item.at)
        if item.status == "read":
            values["read_at"] = func.coalesce(OutboxMessage.read_at, item.at)
        if item.status == "sent":
            values["sent_at"] = func.coalesce(OutboxMessage.sent_at, item.at)
    elif item.status in ("failed", "bounced"):
        allowed = OutboxMessage.status.in_(_FAILABLE)
        values.update(failed_at=item.at, last_error=(item.error or item.status)[:2000])
    else:
        return 0
    result = session.execute(
        update(OutboxMessage)
        .where(match, owner, allowed)
        .values(**values)
        .returning(
            OutboxMessage.id, OutboxMessage.created_by, OutboxMessage.status, OutboxMessage.channel
        ),
        execution_options={"synchronize_session": False},
    ).all()
    if item.status in ("failed", "bounced"):
        for message_id, created_by, _, channel in result:
            _announce_failure(session, tenant_id, message_id, channel, created_by, item)
        if not result:
            log.info(
                "%s report %s for %s %s changed nothing (delivered already, or not ours)",
                item.provider,
                item.status,
                item.provider_message_id,
                item.idempotency_key or "",
            )
    if result and tenant_id is not None:
        # What these messages carry (a collection notice, say) follows their status.
        announce_messages_reported(
            session, tenant_id=tenant_id, message_ids=[row[0] for row in result], status=item.status
        )
    return len(result)


def _announce_failure(
    session, tenant_id, message_id, channel, created_by, item: StatusUpdate
) -> None:
    """Tell whoever listens (the sender's notifications) that the message did not arrive."""
    log.info("message %s %s: %s", message_id, item.status, item.error)
    reason = item.error or (
        "It bounced." if item.status == "bounced" else "The provider failed it."
    )
    announce_message_failed(
        session,
        tenant_id=tenant_id,
        message_id=message_id,
        channel=channel,
        status=item.status,
        reason=reason,
        created_by=created_by,
    )
