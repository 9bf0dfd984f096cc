"""Event-triggered rules hear of what happens through the domain events: the consumer "rules"
(app.rules.services.apply_events). Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.core.events import register_consumer
from app.rules.services import CONSUMER, apply_events


def init_app(app: Flask) -> None:
    register_consumer(CONSUMER, apply_events)
