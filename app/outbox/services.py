"""The outbox, the write side of messages: write the intent with the business change, hand it
to a worker after commit.

Every message (e-mail, WhatsApp, SMS) is a row of `outbox_messages` written in the caller's
transaction; after commit the ids go to RQ in batches, one job per tenant and queue
(`messages` for transactional messages, `bulk` for campaigns). Delivery claims a row with one
UPDATE (so two workers never send the same message) and sends it (app.messaging.delivery). A
worker that dies mid-send leaves the row 'sending' with a lease; the sweeper hands it out
again when the lease runs out, and the provider's idempotency key (or the e-mail's
Message-ID), derived from our idempotency key, lets the provider drop the rare duplicate.
Redis being down loses nothing: the sweeper finds every due row that was never handed to a
worker.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import zip_longest

import phonenumbers
from flask import current_app
from phonenumbers import timezone as phone_zones
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.core.handover import Work, hand_over_gathered
from app.outbox.models import CHANNELS, QUEUES, OutboxMessage
from app.outbox.secret_links import SECRET_LINK, seal_link

# Ids per delivery job: big enough that a job's fixed costs (binding the tenant, building the
# connector, the claim, RQ's own bookkeeping) are shared (100 instead of 50 took ~10% off a
# worker's time per message, 250 instead of 100 another ~7%). A killed worker's unsent rest
# waits for its lease (MESSAGE_LEASE_SECONDS) to run out, and a batch too slow for its lease
# hands its rest back (delivery.LEASE_SHARE_FOR_SENDING).
BATCH_SIZE = 250


def queue_message(
    session: Session,
    *,
    channel: str,
    to: str,
    subject: str,
    text_body: str,
    idempotency_key: str,
    html_body: str | None = None,
    payload: dict | None = None,
    tenant_id: int | None = None,
    client_id: int | None = None,
    contact_id: int | None = None,
    campaign_id: int | None = None,
    created_by: int | None = None,
    queue: str = "messages",
    windowed: bool = False,
    recipient_time_zone: str | None = None,
    not_before: datetime | None = None,
    secret_link: str | None = None,
) -> int | None:
    """Record a message to send once the caller's transaction commits. A second call with the
    same key changes nothing and returns None. Consent, the sending window and rate limits
    are checked when it is sent, not here: a contact can opt out in between.

    A message with a one-time link is written with `secret_links.SECRET_LINK` where the link
    goes, and the link given as `secret_link`: it is stored sealed, filled in only at send
    time and erased afterwards, so nobody but the recipient can read it."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    values = dict(
        tenant_id=tenant_id,
        channel=channel,
        queue=queue,
        idempotency_key=idempotency_key,
        recipient=to,
        subject=subject[:255],
        body_text=text_body,
        body_html=html_body,
        payload=payload,
        client_id=client_id,
        contact_id=contact_id,
        campaign_id=campaign_id,
        created_by=created_by,
        windowed=windowed,
        recipient_time_zone=recipient_time_zone,
    )
    if secret_link is not None:
        if SECRET_LINK not in text_body:
            raise ValueError("a message with a one-time link needs SECRET_LINK in its text")
        if any(secret_link in part for part in (subject, text_body, html_body or "")):
            raise ValueError("the one-time link itself must not be in the message")
        values.update(carries_secret=True, sealed_secret=seal_link(secret_link))
    if not_before is not None:
        values["next_attempt_at"] = not_before
    row_id = session.execute(
        insert(OutboxMessage)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OutboxMessage.id)
    ).scalar()
    if row_id is not None and (not_before is None or not_before <= datetime.now(UTC)):
        deliver_after_commit(session, row_id, tenant_id, queue)
    return row_id


def queue_email(
    session: Session,
    *,
    to: str,
    subject: str,
    text_body: str,
    html_body: str | None = None,
    tenant_id: int | None = None,
    idempotency_key: str,
    **extra,
) -> int | None:
    return queue_message(
        session,
        channel="email",
        to=to,
        subject=subject,
        text_body=text_body,
        html_body=html_body,
        tenant_id=tenant_id,
        idempotency_key=idempotency_key,
        **extra,
    )


def recipient_time_zone(phone: str | None, client_country: str | None, tenant) -> str | None:
    """The recipient's time zone for the sending window: the tenant's when the phone number
    (else the client) is in the tenant's country; else the phone number's region's when that
    region has one time zone; else unknown (the window then uses the tenant's zone)."""
    if phone:
        try:
            number = phonenumbers.parse(phone)
        except phonenumbers.NumberParseException:
            number = None
        if number is not None:
            if phonenumbers.region_code_for_number(number) == (tenant.country or "").upper():
                return tenant.time_zone
            zones = phone_zones.time_zones_for_number(number)
            if len(zones) == 1 and zones[0] != phone_zones.UNKNOWN_TIMEZONE:
                return zones[0]
    if client_country and client_country.upper() == (tenant.country or "").upper():
        return tenant.time_zone
    return None


def deliver_after_commit(
    session: Session, message_id: int, tenant_id: int | None, queue: str
) -> None:
    """Hand the message to a worker once this transaction commits, batched with the others
    the transaction wrote (`delivery_jobs`)."""
    hand_over_gathered(session, (message_id, tenant_id, queue), delivery_jobs)


def delivery_batches(rows) -> list[tuple[str, int | None, list[int]]]:
    """(queue, tenant_id, ids) batches of at most BATCH_SIZE ids each, the tenants taking
    turns. When one hand-over carries several tenants' messages (the sweeper after Redis was
    down, scheduled messages falling due together), a big backlog of one tenant then does not
    hold the others' back, and the workers do not all queue for one tenant's provider rate
    while the others' messages wait."""
    grouped: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    for message_id, tenant_id, queue in rows:
        grouped[(queue, tenant_id)].append(message_id)
    per_tenant = [
        [
            (queue, tenant_id, ids[start : start + BATCH_SIZE])
            for start in range(0, len(ids), BATCH_SIZE)
        ]
        for (queue, tenant_id), ids in grouped.items()
    ]
    return [batch for turn in zip_longest(*per_tenant) for batch in turn if batch is not None]


def delivery_jobs(rows) -> list[Work]:
    """The delivery jobs for committed (id, tenant_id, queue) rows, one per batch."""
    return [
        Work("deliver_outbox_messages", (ids,), tenant_id, queue=queue_name)
        for queue_name, tenant_id, ids in delivery_batches(rows)
    ]


def due_for_delivery(
    session: Session, limit: int = 5000, redelivery_after: timedelta | None = None
) -> list[tuple[int, int | None, str]]:
    """(id, tenant_id, queue) of rows no worker has: handed to Redis (or written, when Redis
    was down) a while ago and still pending, due retries and put-back messages, expired
    leases. Marks them enqueued so the next sweep does not hand them out twice."""
    now = datetime.now(UTC)
    if redelivery_after is None:
        redelivery_after = timedelta(seconds=current_app.config["MESSAGE_REDELIVERY_SECONDS"])
    return [
        tuple(row)
        for row in session.execute(
            text("""
        UPDATE public.outbox_messages SET enqueued_at = :now
        WHERE id IN (
            SELECT id FROM public.outbox_messages
            WHERE next_attempt_at <= :now
              AND ((status = 'pending' AND COALESCE(enqueued_at, created_at) < :stale)
                   OR (status = 'pending' AND enqueued_at IS NULL AND next_attempt_at > created_at)
                   OR (status = 'sending' AND locked_until < :now))
            ORDER BY next_attempt_at LIMIT :limit
            FOR UPDATE SKIP LOCKED)
        RETURNING id, tenant_id, queue"""),
            {"now": now, "stale": now - redelivery_after, "limit": limit},
        )
    ]


def retry_message(session: Session, tenant_id: int, message_id: int) -> OutboxMessage | None:
    """A dead letter (or a provider-failed message) of this tenant, sent again from scratch."""
    message = session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.id == message_id,
            OutboxMessage.of_tenant(tenant_id),
            OutboxMessage.status.in_(("dead", "failed")),
        )
    )
    if message is None or message.secret_erased:
        return None
    message.status, message.attempts, message.last_error = "pending", 0, None
    message.next_attempt_at, message.enqueued_at = datetime.now(UTC), None
    message.failed_at = None
    message.provider_message_id = None
    deliver_after_commit(session, message.id, tenant_id, message.queue)
    return message
