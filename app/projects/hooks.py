"""What projects adds to the pages of the areas below it: the client page's Projects tab.
Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.clients.views import register_tab
from app.projects.views import client_tab_context


def init_app(app: Flask) -> None:
    register_tab("projects", client_tab_context)
