"""Inbound webhooks (provider status reports, inbound messages): verify, store, acknowledge.

A receiver checks the provider's signature over the raw body, finds the tenant through the
provider account key (never guessing), and calls `record_webhook`, which stores the body
under a unique (provider, event key) and hands it to a worker after commit; a duplicate is
acknowledged and ignored. Nothing slow happens in the request. The worker calls the
provider's processor, which turns the body into `StatusUpdate`s (and handles inbound
messages), and `apply_status_updates` moves each message forward, never back."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from importlib import import_module

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.messaging.channels import StatusUpdate
from app.messaging.models import OutboxMessage, ProviderAccount, WebhookEvent
from app.transaction_hooks import on_commit

log = logging.getLogger(__name__)

# provider -> "module:function(session, event) -> list[StatusUpdate]"
PROCESSORS = {
    "whatsapp_cloud": "app.messaging.channels.whatsapp:process_webhook",
    "msg91": "app.messaging.channels.msg91:process_webhook",
    "twilio": "app.messaging.channels.twilio_sms:process_webhook",
    "email_bounce": "app.messaging.bounces:process_webhook",
}
_RANK = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}


def tenant_for_account(session: Session, provider: str, account_key: str) -> ProviderAccount | None:
    return session.scalar(
        select(ProviderAccount).where(
            ProviderAccount.provider == provider, ProviderAccount.account_key == account_key
        )
    )


def record_webhook(
    session: Session, provider: str, body: bytes | str, tenant_id: int | None,
    event_key: str | None = None,
) -> int | None:  # fmt: skip
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
        on_commit(session, enqueue_processing, (event_id, tenant_id))
    return event_id


def enqueue_processing(rows: list[tuple[int, int | None]]) -> None:
    from rq import Queue

    from jobs.queues import get_queue
    from jobs.tasks import process_webhook_event

    try:
        get_queue("messages").enqueue_many(
            [Queue.prepare_data(process_webhook_event, args=(event_id,),
                                kwargs={"tenant_id": tenant_id}) for event_id, tenant_id in rows]
        )  # fmt: skip
    except Exception:  # Redis down: stored already; the sweeper processes it
        log.warning("could not queue %d webhook event(s); the sweeper will", len(rows),
                    exc_info=True)  # fmt: skip


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
    updates = getattr(import_module(module_name), function)(session, event)
    moved = apply_status_updates(session, tenant_id, updates)
    event.processed_at = datetime.now(UTC)
    return moved


def unprocessed_events(session: Session, older_than: timedelta = timedelta(minutes=2)):
    """(id, tenant_id) of events no worker processed (Redis was down, a worker died)."""
    cutoff = datetime.now(UTC) - older_than
    return [tuple(row) for row in session.execute(
        select(WebhookEvent.id, WebhookEvent.tenant_id)
        .where(WebhookEvent.processed_at.is_(None), WebhookEvent.received_at < cutoff)
        .order_by(WebhookEvent.id).limit(5000)
    )]  # fmt: skip


def _rank(column):
    return case(_RANK, value=column, else_=5)


def apply_status_updates(session: Session, tenant_id: int | None, updates) -> int:
    """Move each message forward: sent < delivered < read. A report never moves a message
    back (reports arrive late, twice, out of order); 'read' implies delivered; 'failed' and
    'bounced' are final, except that a later 'read' proves the message arrived after all."""
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
    owner = (OutboxMessage.tenant_id.is_(None) if tenant_id is None
             else OutboxMessage.tenant_id == tenant_id)  # fmt: skip
    values: dict = {"status": item.status}
    if item.status in _RANK:
        allowed = (_rank(OutboxMessage.status) < _RANK[item.status]) | (
            (OutboxMessage.status.in_(("failed", "bounced", "dead"))) & (item.status == "read")
        )
        if item.status in ("delivered", "read"):
            values["delivered_at"] = func.coalesce(OutboxMessage.delivered_at, item.at)
        if item.status == "read":
            values["read_at"] = func.coalesce(OutboxMessage.read_at, item.at)
        if item.status == "sent":
            values["sent_at"] = func.coalesce(OutboxMessage.sent_at, item.at)
    elif item.status in ("failed", "bounced"):
        allowed = OutboxMessage.status.in_(("sending", "sent", "delivered"))
        values.update(failed_at=item.at, last_error=(item.error or item.status)[:2000])
    else:
        return 0
    result = session.execute(
        update(OutboxMessage)
        .where(match, owner, allowed)
        .values(**values)
        .returning(OutboxMessage.id, OutboxMessage.created_by, OutboxMessage.status),
        execution_options={"synchronize_session": False},
    ).all()
    if item.status in ("failed", "bounced"):
        for message_id, created_by, _ in result:
            _announce_failure(session, tenant_id, message_id, created_by, item)
    if result and tenant_id is not None:
        # A collection notice carried by one of these messages follows its status.
        from app.collections.notices import follow_messages

        follow_messages(session, tenant_id, [row[0] for row in result])
    return len(result)


def _announce_failure(session, tenant_id, message_id, created_by, item: StatusUpdate) -> None:
    """Tell whoever sent the message (or the workspace's admins) that it did not arrive."""
    from app.notifications.services import notify_delivery_failed

    log.info("message %s %s: %s", message_id, item.status, item.error)
    reason = item.error or (
        "It bounced." if item.status == "bounced" else "The provider failed it."
    )
    notify_delivery_failed(session, tenant_id, message_id, created_by, reason)
