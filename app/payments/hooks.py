"""What payments adds to the pages of the areas below it: the client page's Payments tab.
Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.clients.views import register_tab
from app.payments.views import client_tab_context


def init_app(app: Flask) -> None:
    register_tab("payments", client_tab_context)
