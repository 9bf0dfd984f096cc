"""The outbox: write the intent with the business change, hand it to a worker after commit.

Delivery claims a row with one UPDATE (so two workers never send the same message), sends, and
marks it sent. A worker that dies mid-send leaves the row 'sending' with a lease; the sweeper
hands it out again when the lease runs out, and the Message-ID derived from the idempotency key
lets mail systems drop the rare duplicate. Redis being down loses nothing: the sweeper finds
every due row that was never handed to a worker.
"""

from __future__ import annotations

import logging
import random
import re
import smtplib
import ssl
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.messaging.models import OutboxMessage
from app.transaction_hooks import on_commit

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=5)
# A row handed to Redis but not picked up within this long is handed out again.
REDELIVERY_AFTER = timedelta(minutes=2)


def init_app(app) -> None:
    app.extensions["duebook.enqueue_deliveries"] = _enqueue_with_rq


def queue_email(
    session: Session,
    *,
    to: str,
    subject: str,
    text_body: str,
    html_body: str | None = None,
    tenant_id: int | None = None,
    idempotency_key: str,
) -> int | None:
    """Record an e-mail to send once the caller's transaction commits. A second call with the
    same key changes nothing and returns None."""
    row_id = session.execute(
        insert(OutboxMessage)
        .values(
            tenant_id=tenant_id,
            channel="email",
            idempotency_key=idempotency_key,
            recipient=to,
            subject=subject,
            body_text=text_body,
            body_html=html_body,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OutboxMessage.id)
    ).scalar()
    if row_id is not None:
        on_commit(session, enqueue_deliveries, row_id)
    return row_id


def enqueue_deliveries(ids: list[int]) -> None:
    from flask import current_app

    try:
        current_app.extensions["duebook.enqueue_deliveries"](ids)
    except Exception:  # Redis down: the rows are committed, the sweeper will deliver them
        log.warning(
            "could not hand %d outbox message(s) to the queue; the sweeper will",
            len(ids),
            exc_info=True,
        )


def _enqueue_with_rq(ids: list[int]) -> None:
    from jobs.queues import enqueue_many
    from jobs.tasks import deliver_outbox_message

    enqueue_many("messages", deliver_outbox_message, [(i,) for i in ids])


def claim(session: Session, message_id: int) -> OutboxMessage | None:
    """Take the message for sending, or None when it is not due or someone else has it."""
    now = datetime.now(UTC)
    claimed = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            OutboxMessage.next_attempt_at <= now,
            (OutboxMessage.status == "pending")
            | ((OutboxMessage.status == "sending") & (OutboxMessage.locked_until < now)),
        )
        .values(status="sending", attempts=OutboxMessage.attempts + 1, locked_until=now + LEASE)
        .returning(OutboxMessage.id)
    ).scalar()
    if claimed is None:
        return None
    return session.get(OutboxMessage, message_id, populate_existing=True)


def mark_sent(message: OutboxMessage) -> None:
    message.status, message.sent_at, message.locked_until = "sent", datetime.now(UTC), None
    message.last_error = None


def mark_failed(
    message: OutboxMessage, error: str, *, permanent: bool = False, retry_after: float | None = None
) -> None:
    message.last_error = error[:2000]
    message.locked_until = None
    if permanent or message.attempts >= MAX_ATTEMPTS:
        message.status = "dead"
        return
    message.status = "pending"
    message.enqueued_at = None
    message.next_attempt_at = datetime.now(UTC) + timedelta(
        seconds=retry_after if retry_after is not None else backoff_seconds(message.attempts)
    )


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 30 s, 60 s, 120 s ... capped at 1 hour."""
    return random.uniform(1, min(3600, 30 * 2 ** max(attempt - 1, 0)))


def due_for_delivery(session: Session, limit: int = 1000) -> list[int]:
    """Rows no worker has: handed to Redis (or written, when Redis was down) over two minutes
    ago and still pending, due retries, expired leases. Marks them enqueued so the next sweep
    does not hand them out twice."""
    now = datetime.now(UTC)
    return list(
        session.execute(
            text("""
        UPDATE public.outbox_messages SET enqueued_at = :now
        WHERE id IN (
            SELECT id FROM public.outbox_messages
            WHERE next_attempt_at <= :now
              AND ((status = 'pending' AND COALESCE(enqueued_at, created_at) < :stale)
                   OR (status = 'sending' AND locked_until < :now))
            ORDER BY next_attempt_at LIMIT :limit
            FOR UPDATE SKIP LOCKED)
        RETURNING id"""),
            {"now": now, "stale": now - REDELIVERY_AFTER, "limit": limit},
        ).scalars()
    )


def build_email(message: OutboxMessage, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    # Derived from the idempotency key: a resend after a crash carries the same Message-ID.
    local_part = re.sub(r"[^A-Za-z0-9._-]", ".", message.idempotency_key)
    email["Message-ID"] = f"<{local_part}@duebook.local>"
    email.set_content(message.body_text)
    if message.body_html:
        email.add_alternative(message.body_html, subtype="html")
    return email


def send_over_smtp(smtp_url: str, email: EmailMessage, timeout: float = 30) -> None:
    """smtp://[user:password@]host[:port][?starttls=1] or smtps://... (implicit TLS)."""
    parts = urlsplit(smtp_url)
    options = parse_qs(parts.query)
    host, port = parts.hostname or "127.0.0.1", parts.port
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(
            host, port or 465, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(host, port or 25, timeout=timeout)
    with client:
        if options.get("starttls", ["0"])[0] in {"1", "true"}:
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(email)


def is_permanent_rejection(exc: Exception) -> bool:
    """5xx answers are final (RFC 5321); 4xx and network errors are worth another try."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(500 <= code < 600 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600


def deliver(session: Session, message_id: int, *, smtp_url: str, sender: str) -> str:
    """Send one outbox message. Commits the claim before talking to the mail server, so a
    crash mid-send is visible as an expired lease rather than a lost message."""
    message = claim(session, message_id)
    session.commit()
    if message is None:
        return "skipped"
    try:
        send_over_smtp(smtp_url, build_email(message, sender))
    except (smtplib.SMTPException, OSError) as exc:
        mark_failed(message, f"{type(exc).__name__}: {exc}", permanent=is_permanent_rejection(exc))
        session.commit()
        return message.status
    mark_sent(message)
    session.commit()
    return "sent"
