"""Local stand-ins for the messaging providers (WhatsApp Cloud API, MSG91, Twilio) and the
payment gateways (Razorpay, Stripe) and the accounting books (Xero, QuickBooks Online, Zoho
Books, TallyPrime), the calendars (Google Calendar, Outlook through Microsoft Graph), and a
receiver of the outbound webhooks Duebook itself sends.

They follow each provider's published contract (see each module's docstring and
the shared reference providers.md §1 and §7), bind 127.0.0.1 only, and serve tests, the
`make run` sandbox (recorded messages for the inbox page) and benchmarks. Run one as a process
with `python -m app.sandbox.standins <name> --port N ...` (a name of STANDINS below).
"""

from .base import StandinServer, parse_script
from .google_calendar import GoogleCalendarStandin
from .microsoft_graph import MicrosoftGraphStandin
from .msg91 import Msg91Standin
from .quickbooks import QuickBooksStandin
from .razorpay import RazorpayStandin
from .stripe import StripeStandin, stripe_signature
from .tally import TallyStandin
from .twilio import TwilioStandin, twilio_signature
from .webhook_receiver import WebhookReceiverStandin
from .whatsapp import WhatsAppStandin, hub_signature, verify_webhook
from .xero import XeroStandin, xero_signature
from .zoho_books import ZohoBooksStandin

STANDINS = {
    "whatsapp": WhatsAppStandin,
    "msg91": Msg91Standin,
    "twilio": TwilioStandin,
    "stripe": StripeStandin,
    "razorpay": RazorpayStandin,
    "zoho_books": ZohoBooksStandin,
    "quickbooks": QuickBooksStandin,
    "xero": XeroStandin,
    "tally": TallyStandin,
    "google_calendar": GoogleCalendarStandin,
    "microsoft_graph": MicrosoftGraphStandin,
    "webhook_receiver": WebhookReceiverStandin,
}

__all__ = [
    "STANDINS",
    "GoogleCalendarStandin",
    "MicrosoftGraphStandin",
    "Msg91Standin",
    "QuickBooksStandin",
    "RazorpayStandin",
    "StandinServer",
    "StripeStandin",
    "TallyStandin",
    "TwilioStandin",
    "WebhookReceiverStandin",
    "WhatsAppStandin",
    "ZohoBooksStandin",
    "XeroStandin",
    "hub_signature",
    "parse_script",
    "stripe_signature",
    "twilio_signature",
    "verify_webhook",
    "xero_signature",
]
