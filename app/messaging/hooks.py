"""What messaging adds to the pages of the areas below it: the client page's timeline shows
the messages sent to the client. Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.clients.views import register_timeline_source
from app.messaging.views import client_timeline_messages


def init_app(app: Flask) -> None:
    register_timeline_source(client_timeline_messages)
