"""Outbound webhooks hear of what happens through the domain events: the consumer "webhooks"
turns each batch into deliveries (app.webhooks.services.add_deliveries). Connected by
`create_app`."""

from __future__ import annotations

from flask import Flask

from app.core.events import register_consumer
from app.webhooks.services import CONSUMER, add_deliveries


def init_app(app: Flask) -> None:
    register_consumer(CONSUMER, add_deliveries)
