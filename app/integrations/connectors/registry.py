"""Which class implements each provider. Imported lazily: a worker that never sends SMS never
imports the SMS connectors."""

from __future__ import annotations

from importlib import import_module

from app.integrations.connectors import Connector

# provider -> (channel, "module:Class")
CONNECTORS = {
    "smtp": ("email", "app.integrations.connectors.smtp:SmtpConnector"),
    "whatsapp_cloud": ("whatsapp", "app.integrations.connectors.whatsapp:WhatsAppCloudConnector"),
    "msg91": ("sms", "app.integrations.connectors.msg91:Msg91Connector"),
    "twilio": ("sms", "app.integrations.connectors.twilio_sms:TwilioConnector"),
}


def providers_for(channel: str) -> list[str]:
    return [provider for provider, (of, _) in CONNECTORS.items() if of == channel]


def connector_class(provider: str) -> type[Connector]:
    module_name, _, class_name = CONNECTORS[provider][1].partition(":")
    return getattr(import_module(module_name), class_name)
