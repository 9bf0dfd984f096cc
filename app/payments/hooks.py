"""What payments adds to the pages of the areas below it: the client page's Payments tab, the
invoice page's payments and its "Record payment". Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.clients.views import register_tab
from app.invoicing.views import register_panel
from app.payments.views import client_tab_context, invoice_panel


def init_app(app: Flask) -> None:
    register_tab("payments", client_tab_context)
    register_panel(invoice_panel)
