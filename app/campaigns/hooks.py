"""What campaigns add to the pages of the areas below them: the Messages page names the
campaign a message belongs to. Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.campaigns.services import campaign_names
from app.messaging.views import register_campaign_names


def init_app(app: Flask) -> None:
    register_campaign_names(campaign_names)
