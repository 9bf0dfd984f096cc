"""Connectors: every provider (SMTP, WhatsApp Cloud API, MSG91, Twilio ...) is a connector class
behind one interface. The delivery code builds the connector of the tenant's enabled
connection for a message's channel (or the platform's e-mail), hands it an `Outgoing`, and
gets back a `Sent` with the provider's message id or a `DeliveryError` that says whether to
retry. Nothing outside a connector knows which provider it talks to.

A connector's base URL comes from the app config (`WHATSAPP_API_BASE` ...), never from a
tenant, so tests and `make run` point every connector at a local stand-in."""

from __future__ import annotations

import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from threading import Lock
from typing import ClassVar

import httpx


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header as seconds (it is a number or an HTTP date), or None."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


_transport: httpx.HTTPTransport | None = None
_transport_lock = Lock()


def pooled_client(**options) -> httpx.Client:
    """An HTTP client for a connector, over one connection pool shared by the whole process.
    A client that builds its own transport loads the CA store (~20 ms, a sixth of a worker's
    time when every delivery batch opened one), and its keep-alive connections died with the
    batch. Closing a pooled client is neither needed nor allowed: it would close the pool."""
    global _transport
    with _transport_lock:
        if _transport is None:
            _transport = httpx.HTTPTransport()
    return httpx.Client(transport=_transport, **options)


# The secret path of a connection's webhook URL (`/hooks/<provider>/<token>`): what
# secrets.token_urlsafe(24) makes.
WEBHOOK_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{32}")


def kept_webhook_token(raw: Mapping) -> str:
    """The connect form's webhook token when it is one we made, else a fresh one: reconnecting
    keeps the URL the tenant already gave the provider, and nothing typed in its place is
    taken as a token."""
    kept = str(raw.get("webhook_token") or "")
    return kept if WEBHOOK_TOKEN_SHAPE.fullmatch(kept) else secrets.token_urlsafe(24)


def public_url(config: Mapping, path: str) -> str:
    """An address of ours a provider calls (a webhook or report URL): BASE_URL, the public
    address (make run's own when unset), plus `path`."""
    return (config.get("BASE_URL") or "http://127.0.0.1:5000").rstrip("/") + path


@dataclass(frozen=True)
class Field:
    """One input of the connect form. Secret fields are encrypted at rest and never shown."""

    name: str
    label: str
    secret: bool = False
    required: bool = True
    help: str = ""
    placeholder: str = ""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class InlineImage:
    """An image the HTML part shows as cid:<content_id> (RFC 2392), e.g. the sender's logo."""

    content_id: str
    content_type: str
    data: bytes


@dataclass
class Outgoing:
    """What a connector needs to send one outbox message."""

    message_id: int
    idempotency_key: str
    tenant_id: int | None
    channel: str
    recipient: str  # an e-mail address, or a phone number in E.164 (+919876543210)
    subject: str
    text: str
    html: str | None = None
    payload: dict = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    inline_images: list[InlineImage] = field(default_factory=list)
    # Where the provider should report this message's status, for providers that take it per
    # message (Twilio's StatusCallback); None when the provider is configured once.
    status_callback_url: str | None = None
    # Headers every e-mail of this message carries (List-Unsubscribe, Reply-To ...).
    headers: dict[str, str] = field(default_factory=dict)
    # The display name of an e-mail's From: the sender name the workspace chose, else (unless
    # its own mail account names itself) its name. The address stays the connector's own.
    sender_name: str | None = None
    workspace_name: str | None = None


@dataclass
class Sent:
    provider_message_id: str | None


class DeliveryError(Exception):
    """The provider did not take the message. `permanent`: retrying cannot help (a 4xx other
    than 409/429, a 5xx SMTP reply); `retry_after`: seconds the provider asked us to wait;
    `bounced`: the recipient's address itself was refused (a hard bounce)."""

    bounced = False

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass
class StatusUpdate:
    """A provider's word on a message it took: sent, delivered, read, failed or bounced."""

    provider: str
    provider_message_id: str
    status: str
    at: datetime
    error: str | None = None
    # Our idempotency key when the provider echoes it (WhatsApp's biz_opaque_callback_data):
    # finds the message even if the report overtakes the commit of its provider id.
    idempotency_key: str | None = None


class Connector(ABC):
    provider: ClassVar[str]  # "smtp", "whatsapp_cloud", "msg91", "twilio"
    channel: ClassVar[str]  # "email", "whatsapp", "sms"
    title: ClassVar[str]
    description: ClassVar[str]  # "{clients}": the workspace's word, filled where it is shown
    fields: ClassVar[tuple[Field, ...]] = ()

    def __init__(self, *, settings: Mapping, secrets: Mapping, config: Mapping):
        self.settings = dict(settings)
        self.secrets = dict(secrets)
        self.config = config

    @classmethod
    def clean(cls, raw: Mapping) -> tuple[dict, dict, dict]:
        """(settings, secrets, errors by field name) from the connect form."""
        settings, secrets, errors = {}, {}, {}
        for item in cls.fields:
            value = (raw.get(item.name) or "").strip()
            if item.required and not value:
                errors[item.name] = f"{item.label} is required."
            elif value:
                (secrets if item.secret else settings)[item.name] = value
        return settings, secrets, errors

    def destination_errors(self) -> dict[str, str]:
        """Errors by field for a server address the tenant entered that is refused outright (a
        private or local address: app.core.outbound); the binding check is at connect time."""
        return {}

    def account_key(self) -> str | None:
        """The key a provider's webhooks carry that routes them to this tenant, if any."""
        return None

    def account_keys(self) -> list[str]:
        """Every key that routes this account's webhooks here (the main one first)."""
        key = self.account_key()
        return [key] if key else []

    def rate_limit(self) -> tuple[str, float] | None:
        """(bucket, messages per second) the provider allows the account or number."""
        return None

    def daily_cap(self) -> tuple[str, int] | None:
        """(bucket, messages per day) the provider allows, if it caps them."""
        return None

    @abstractmethod
    def send(self, outgoing: Outgoing) -> Sent:
        """Hand the message to the provider or raise DeliveryError."""

    @abstractmethod
    def test_connection(self) -> str:
        """Check the credentials with a harmless call; a line for the page, or DeliveryError."""
