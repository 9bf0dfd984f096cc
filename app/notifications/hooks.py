"""What notifications does when something happens elsewhere: it listens to the signals of
the lower areas (`app.core.signals`) and writes in their transaction. Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.core import signals
from app.notifications.services import notify_delivery_failed, notify_integration_lost


def init_app(app: Flask) -> None:
    signals.message_failed.connect(tell_sender_message_failed)
    signals.integration_lost.connect(tell_admins_integration_lost)


def tell_sender_message_failed(
    session, *, tenant_id: int | None, message_id: int, created_by: int | None, reason: str, **facts
) -> None:
    notify_delivery_failed(session, tenant_id, message_id, created_by, reason)


def tell_admins_integration_lost(
    session, *, tenant_id: int, connection_id: int, title: str, reason: str, **facts
) -> None:
    notify_integration_lost(session, tenant_id, connection_id, title, reason)
