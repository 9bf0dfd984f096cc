"""The sandbox's providers for `make run`: which stand-ins to start and with what, and the
demo workspace's connections to them. The stand-ins know the same approved WhatsApp templates
and DLT-registered SMS texts as every workspace's default message templates, so what the demo
sends is accepted exactly as a provider that approved them would."""

from __future__ import annotations

import re

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.crypto import encrypt_secrets
from app.integrations.connectors.whatsapp import waba_account_key
from app.integrations.models import IntegrationConnection, ProviderAccount
from app.message_templates import defaults
from app.message_templates.models import MessageTemplate
from app.sandbox.standins import razorpay as razorpay_standin
from app.sandbox.standins import stripe as stripe_standin
from app.sandbox.standins import webhook_receiver
from app.sandbox.standins.msg91 import DEFAULT_AUTHKEY
from app.sandbox.standins.whatsapp import (
    DEFAULT_DISPLAY_NUMBER,
    DEFAULT_PHONE_NUMBER_ID,
    DEFAULT_TOKEN,
    DEFAULT_WABA_ID,
)
from app.webhooks.models import WebhookEndpoint

# The secret path of the demo workspace's MSG91 delivery-report URL.
MSG91_REPORT_TOKEN = "sandbox-msg91-delivery-reports01"  # the shape of a generated token
# The secret path of the demo workspace's Stripe webhook URL.
STRIPE_WEBHOOK_TOKEN = "sandbox-stripe-webhook-events001"
# The secret path of the demo workspace's Razorpay webhook URL.
RAZORPAY_WEBHOOK_TOKEN = "sandbox-razorpay-webhook-token01"
# Purposes whose WhatsApp template carries the invoice PDF as its document header.
WITH_DOCUMENT = ("invoice", "notice_1", "notice_2", "notice_final", "notice_legal")
_EXPRESSION = re.compile(r"{{\s*(.+?)\s*}}")


def sms_template_id(purpose: str) -> str:
    return f"sandbox-{purpose}"


def dlt_template_id(purpose: str) -> str:
    """A made-up 19-digit DLT template id, one per purpose."""
    return "11070000000000" + str(defaults.PURPOSES.index(purpose) + 1).zfill(5)


def _dlt_content(body: str) -> str:
    """The SMS text as registered on the DLT portal: each variable becomes ##varN##."""
    counter = iter(range(1, 100))
    return _EXPRESSION.sub(lambda _: f"##var{next(counter)}##", body)


# Settings besides its base URL that point the app at a stand-in: (setting, path on it).
# QuickBooks' OAuth endpoints are found through a discovery document of their own; Zoho's
# API and its accounts server are one stand-in.
STANDIN_MORE_SETTINGS = {
    "quickbooks": [("QBO_DISCOVERY_URL", "/.well-known/openid_configuration")],
    "zoho_books": [("ZOHO_API_BASE", "")],
    "xero": [("XERO_LOGIN_BASE", ""), ("XERO_IDENTITY_BASE", "")],
    "google_calendar": [("GOOGLE_ACCOUNTS_BASE", ""), ("GOOGLE_OAUTH_BASE", "")],
    "microsoft_graph": [("MICROSOFT_LOGIN_BASE", "")],
}


def standin_arguments(web_url: str) -> list[tuple[str, str, list[str]]]:
    """(stand-in, config setting that points the app at it, extra arguments) for each. A
    provider with several base URLs served by one stand-in names each setting, comma-separated
    (Xero: its consent page, token endpoint and API)."""
    whatsapp = [
        "--webhook-url",
        f"{web_url}/hooks/whatsapp",
        "--phone-number-id",
        DEFAULT_PHONE_NUMBER_ID,
        "--token",
        DEFAULT_TOKEN,
    ]
    for purpose, (approved, _) in defaults.WHATSAPP.items():
        header = "#DOCUMENT" if purpose in WITH_DOCUMENT else ""
        whatsapp += ["--template", f"duebook_{purpose}@en{header}={approved}"]
    msg91 = ["--webhook-url", f"{web_url}/hooks/msg91/{MSG91_REPORT_TOKEN}"]
    for purpose, body in defaults.SMS.items():
        msg91 += ["--template", f"{sms_template_id(purpose)}={_dlt_content(body)}"]
    return [
        ("whatsapp", "WHATSAPP_API_BASE", whatsapp),
        ("msg91", "MSG91_API_BASE", msg91),
        ("twilio", "TWILIO_API_BASE", []),
        (
            "stripe",
            "STRIPE_API_BASE",
            ["--webhook-url", f"{web_url}/hooks/stripe/{STRIPE_WEBHOOK_TOKEN}"],
        ),
        (
            "razorpay",
            "RAZORPAY_API_BASE",
            ["--webhook-url", f"{web_url}/hooks/razorpay/{RAZORPAY_WEBHOOK_TOKEN}"],
        ),
        ("zoho_books", "ZOHO_ACCOUNTS_BASE", ["--seed", "demo"]),
        (
            "quickbooks",
            "QBO_API_BASE",
            ["--seed", "demo", "--webhook-url", f"{web_url}/hooks/accounting/quickbooks"],
        ),
        (
            "xero",
            "XERO_API_BASE",
            ["--seed", "demo", "--webhook-url", f"{web_url}/hooks/accounting/xero"],
        ),
        # Duebook never calls Tally: the agent does (`make tally-agent`); the setting lets the
        # Tally page show the way to it.
        ("tally", "TALLY_STANDIN_URL", ["--seed", "demo"]),
        # Members' calendars: each stand-in is its provider's consent page, token endpoint
        # and API at once.
        ("google_calendar", "GOOGLE_CALENDAR_API_BASE", []),
        ("microsoft_graph", "MICROSOFT_GRAPH_BASE", []),
        # The demo workspace's webhook endpoint (every event) posts here; its page shows them.
        ("webhook_receiver", "WEBHOOK_RECEIVER_URL", ["--secret", webhook_receiver.DEMO_SECRET]),
    ]


def connect_demo_providers(session: Session, tenant, user_id: int) -> None:
    """Connect the demo workspace to the sandbox WhatsApp number and the MSG91, Razorpay and
    Stripe accounts, and give its default SMS templates the ids the stand-in knows.
    Idempotent."""

    connections = {
        "whatsapp_cloud": (
            {
                "phone_number_id": DEFAULT_PHONE_NUMBER_ID,
                "waba_id": DEFAULT_WABA_ID,
                "display_phone_number": DEFAULT_DISPLAY_NUMBER,
            },
            {"access_token": DEFAULT_TOKEN},
            [DEFAULT_PHONE_NUMBER_ID, waba_account_key(DEFAULT_WABA_ID)],
        ),
        "msg91": (
            {
                "sender_id": "DUEBKS",
                "entity_id": "1101000000000000001",
                "webhook_token": MSG91_REPORT_TOKEN,
            },
            {"authkey": DEFAULT_AUTHKEY},
            [MSG91_REPORT_TOKEN],
        ),
        "stripe": (
            {"webhook_token": STRIPE_WEBHOOK_TOKEN},
            {
                "secret_key": stripe_standin.DEFAULT_SECRET_KEY,
                "webhook_secret": stripe_standin.DEFAULT_WEBHOOK_SECRET,
            },
            [STRIPE_WEBHOOK_TOKEN],
        ),
        "razorpay": (
            {"key_id": razorpay_standin.DEFAULT_KEY_ID, "webhook_token": RAZORPAY_WEBHOOK_TOKEN},
            {
                "key_secret": razorpay_standin.DEFAULT_KEY_SECRET,
                "webhook_secret": razorpay_standin.DEFAULT_WEBHOOK_SECRET,
            },
            [RAZORPAY_WEBHOOK_TOKEN],
        ),
    }
    for provider, (settings, secrets, account_keys) in connections.items():
        exists = session.scalar(
            select(IntegrationConnection.id).where(
                IntegrationConnection.provider == provider,
                IntegrationConnection.status != "disconnected",
            )
        )
        if exists:
            continue
        # Verified: the stand-ins accept exactly these credentials (a real workspace's
        # connection is verified by its first test, services.verify_and_bind).
        connection = IntegrationConnection(
            provider=provider,
            settings=settings,
            secrets_ciphertext=encrypt_secrets(secrets),
            connected_by=user_id,
            verification="verified",
        )
        session.add(connection)
        session.flush()
        session.add_all(
            [
                ProviderAccount(
                    provider=provider,
                    account_key=key,
                    tenant_id=tenant.id,
                    connection_id=connection.id,
                )
                for key in account_keys
            ]
        )
    defaults.ensure_defaults(session)
    sms_without_ids = select(MessageTemplate).where(
        MessageTemplate.channel == "sms", MessageTemplate.gateway_template_id.is_(None)
    )
    for template in session.scalars(sms_without_ids):
        if template.purpose in defaults.SMS:
            template.gateway_template_id = sms_template_id(template.purpose)
            template.dlt_template_id = dlt_template_id(template.purpose)
    # The stand-in approved them all (a real workspace learns this from the template sync).
    whatsapp_unsynced = select(MessageTemplate).where(
        MessageTemplate.channel == "whatsapp", MessageTemplate.provider_status.is_(None)
    )
    for template in session.scalars(whatsapp_unsynced):
        template.provider_status = "approved"
    receiver_url = current_app.config.get("WEBHOOK_RECEIVER_URL")
    if receiver_url:
        connect_demo_webhook_receiver(session, f"{receiver_url}/duebook", user_id)
    session.flush()


DEMO_ENDPOINT_DESCRIPTION = "The sandbox's webhook receiver (make run)"


def connect_demo_webhook_receiver(session: Session, url: str, user_id: int) -> None:
    """An endpoint for every event at the sandbox receiver, signed with the secret the receiver
    checks. `make run` starts the receiver on a new port each time: the endpoint follows it."""
    endpoint = session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.description == DEMO_ENDPOINT_DESCRIPTION)
    )
    if endpoint is None:
        endpoint = WebhookEndpoint(
            description=DEMO_ENDPOINT_DESCRIPTION,
            event_types=None,
            created_by=user_id,
            secrets_ciphertext=encrypt_secrets({"current": webhook_receiver.DEMO_SECRET}),
        )
        session.add(endpoint)
    endpoint.url = url
