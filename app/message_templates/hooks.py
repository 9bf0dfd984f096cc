"""What message templates add to the areas below them: the invoice page's form that sends the
invoice or a reminder, the writing of such a message again when it goes out
(`app.outbox.composing`), and what the regional settings page says of the messages' wording.
Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.invoicing.views import register_panel
from app.message_templates.defaults import regional_effect
from app.message_templates.invoice_mail import COMPOSER, compose_invoice_message
from app.message_templates.views import invoice_send_panel
from app.outbox.composing import register_composer
from app.settings.regional import register_effect


def init_app(app: Flask) -> None:
    register_panel(invoice_send_panel)
    register_composer(COMPOSER, compose_invoice_message)
    register_effect("messages", regional_effect)
