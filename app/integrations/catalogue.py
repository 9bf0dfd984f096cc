"""The connectors a tenant can connect, by category, as the integrations page lists them.

An entry with a connector ("module:Class") can be connected: its class gives the form fields,
the checks and the test. An entry without one is shown as coming later. A new connector
(accounting, payments, lead sources ...) plugs in by giving its entry the class that
implements it; the page, the stored credentials and the health figures need nothing else.

Connector classes are imported only when asked for. One that cannot be imported (not
installed on this server yet) is shown as not available instead of breaking the page."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import import_module

from app.integrations.connectors import Connector
from app.integrations.connectors.registry import CONNECTORS as CHANNEL_CONNECTORS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Category:
    key: str
    title: str
    description: str  # "{clients}": the workspace's word, filled where it is shown


@dataclass(frozen=True)
class Entry:
    provider: str
    category: str
    title: str
    description: str  # "{clients}": the workspace's word, filled where it is shown
    connector: str | None = None  # "module:Class"; None: coming later

    @property
    def planned(self) -> bool:
        return self.connector is None

    def connector_class(self) -> type[Connector] | None:
        """The class, or None when it is planned or not importable on this server."""
        if self.connector is None:
            return None
        module_name, _, class_name = self.connector.partition(":")
        try:
            return getattr(import_module(module_name), class_name)
        except (ImportError, AttributeError):
            log.info(
                "connector %s is not available: %s does not import",
                self.provider,
                self.connector,
                exc_info=True,
            )
            return None

    @property
    def channel(self) -> str | None:
        """The messaging channel it sends on (email, whatsapp, sms), if it is one."""
        return CHANNEL_CONNECTORS[self.provider][0] if self.provider in CHANNEL_CONNECTORS else None


CATEGORIES = (
    Category(
        "messaging", "Messaging", "How your invoices, reminders and campaigns reach {clients}."
    ),
    Category("accounting", "Accounting", "Keep your books in step with Duebook."),
    Category("payments", "Payments", "Let {clients} pay online and match what they pay."),
    Category("leads", "Leads", "New enquiries arrive as prospects."),
    Category("calendars", "Calendars", "{Milestones} and follow-ups in your calendar."),
    Category("storage", "Storage", "Documents kept in your own cloud storage."),
)


# Shown for a messaging connector whose class is not importable here; otherwise the class's own
# title and description are shown.
_MESSAGING_NAMES = {
    "smtp": ("E-mail via your SMTP server", "Send e-mail from your own mail server."),
    "whatsapp_cloud": ("WhatsApp Business", "Messages through the WhatsApp Business Cloud API."),
    "msg91": ("SMS India (MSG91)", "Text messages in India with your DLT-registered sender."),
    "twilio": ("SMS (Twilio)", "Text messages through Twilio."),
}

# Messaging connectors come from the channel registry: a new channel connector needs only its
# line there. Every other category lists its providers here.
ENTRIES = (
    *(
        Entry(provider, "messaging", *_MESSAGING_NAMES.get(provider, (provider, "")), path)
        for provider, (_, path) in CHANNEL_CONNECTORS.items()
    ),
    Entry(
        "xero",
        "accounting",
        "Xero",
        "Customers, invoices, credit notes and payments kept in step with Xero.",
        "app.integrations.connectors.xero:XeroConnector",
    ),
    Entry(
        "quickbooks",
        "accounting",
        "QuickBooks Online",
        "Customers, invoices, credit notes and payments kept in step with QuickBooks.",
        "app.integrations.connectors.quickbooks:QuickBooksConnector",
    ),
    Entry(
        "tally",
        "accounting",
        "Tally",
        "TallyPrime's debtors, bills and receipts kept in step through an agent on the Tally "
        "computer, or XML files exchanged by hand.",
        "app.integrations.connectors.tally:TallyConnector",
    ),
    Entry(
        "zoho_books",
        "accounting",
        "Zoho Books",
        "Customers, invoices, credit notes and payments kept in step with Zoho Books.",
        "app.integrations.connectors.zoho_books:ZohoBooksConnector",
    ),
    Entry(
        "stripe",
        "payments",
        "Stripe",
        "Card payments and payment links.",
        "app.integrations.connectors.stripe_gateway:StripeConnector",
    ),
    Entry(
        "razorpay",
        "payments",
        "Razorpay",
        "Payment links and UPI collections.",
        "app.integrations.connectors.razorpay:RazorpayConnector",
    ),
    Entry(
        "facebook_lead_ads",
        "leads",
        "Facebook Lead Ads",
        "Leads from your Facebook and Instagram forms.",
    ),
    Entry("google_calendar", "calendars", "Google Calendar", "Due dates and follow-ups."),
    Entry("google_drive", "storage", "Google Drive", "Invoices and documents in your Drive."),
)

BY_PROVIDER = {entry.provider: entry for entry in ENTRIES}


def entry_for(provider: str) -> Entry | None:
    return BY_PROVIDER.get(provider)


def by_category() -> list[tuple[Category, list[Entry]]]:
    return [
        (category, [entry for entry in ENTRIES if entry.category == category.key])
        for category in CATEGORIES
    ]
