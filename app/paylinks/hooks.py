"""What pay links add to the areas below them: the `pay_link` of the messages message templates
write (their port `facts.register_pay_link`) and the invoice page's pay links panel. Connected
by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.invoicing.views import register_panel
from app.message_templates import facts
from app.paylinks.services import message_pay_link
from app.paylinks.views import invoice_pay_link_panel


def init_app(app: Flask) -> None:
    facts.register_pay_link(message_pay_link)
    register_panel(invoice_pay_link_panel)
