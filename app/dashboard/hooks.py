"""What the dashboard adds to the areas below it: its widgets, offered on the workflow
settings page for the workspace to choose from. Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.dashboard.widgets import WIDGETS
from app.settings.workflow import register_dashboard_widgets


def init_app(app: Flask) -> None:
    register_dashboard_widgets([widget.choice for widget in WIDGETS])
