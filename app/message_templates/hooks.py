"""What message templates add to the pages of the areas below them: the invoice page's form
that sends the invoice or a reminder. Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.invoicing.views import register_panel
from app.message_templates.views import invoice_send_panel


def init_app(app: Flask) -> None:
    register_panel(invoice_send_panel)
