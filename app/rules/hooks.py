"""Event-triggered rules hear of what happens through the domain events: the consumer "rules"
(app.rules.services.apply_events); and the conditions learn the workspace's custom fields
(app.rules.custom). Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.core.events import register_consumer
from app.rules.conditions import set_custom_field_resolver
from app.rules.custom import WorkspaceCustomFields
from app.rules.services import CONSUMER, apply_events


def init_app(app: Flask) -> None:
    register_consumer(CONSUMER, apply_events)
    set_custom_field_resolver(WorkspaceCustomFields())
