"""What notifications does when something happens elsewhere: it reads the domain events
(`app.core.events`, as the "notifications" consumer), and listens to the signals of the lower
areas (`app.core.signals`) for what no event carries, writing in their transaction. Connected
by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.core import signals
from app.core.events import register_consumer
from app.notifications.services import (
    apply_events,
    notify_delivery_failed,
    notify_integration_lost,
)


def init_app(app: Flask) -> None:
    register_consumer("notifications", apply_events)
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
