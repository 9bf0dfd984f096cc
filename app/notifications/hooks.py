"""What notifications does when something happens elsewhere: it listens to the signals of
the lower areas (`app.core.signals`) and writes in their transaction. Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.core import signals
from app.notifications.services import notify_delivery_failed


def init_app(app: Flask) -> None:
    signals.message_failed.connect(tell_sender_message_failed)


def tell_sender_message_failed(
    session, *, tenant_id: int | None, message_id: int, created_by: int | None, reason: str, **facts
) -> None:
    notify_delivery_failed(session, tenant_id, message_id, created_by, reason)
