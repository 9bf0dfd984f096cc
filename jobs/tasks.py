"""Job functions. Each is a few lines that call a service."""

from __future__ import annotations

from flask import current_app

from app.messaging import services as messaging
from jobs.context import job
from jobs.queues import enqueue_many


@job
def deliver_outbox_message(session, message_id: int) -> str:
    config = current_app.config
    return messaging.deliver(
        session, message_id, smtp_url=config["SMTP_URL"], sender=config["MAIL_FROM"]
    )


@job
def sweep_outbox(session) -> int:
    """Hand out what no worker has: intents written while Redis was down, retries now due,
    messages whose worker died mid-send."""
    ids = messaging.due_for_delivery(session)
    session.commit()
    if ids:
        enqueue_many("messages", deliver_outbox_message, [(i,) for i in ids])
    return len(ids)
