"""SMS through Twilio Programmable Messaging (REST API 2010-04-01, providers.md §7.2).

Plain `httpx`: the product does not depend on Twilio's SDK (the tests use the SDK as the
oracle for the request signature). Status callbacks are asked for per message
(`StatusCallback` = BASE_URL + /hooks/twilio/status) and verified with `X-Twilio-Signature`
against the auth token of the connection the callback's AccountSid belongs to.

Idempotency: Twilio's Messages API takes no idempotency key (the SDK's `messages.create`
sends none; `I-Twilio-Idempotency-Token` is a header Twilio puts on the webhooks it sends, not
one it reads), so a request that timed out after Twilio took it is sent again on retry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import parse_qs, urlsplit

import httpx

from app.integrations.connectors import (
    Connector,
    DeliveryError,
    Field,
    Outgoing,
    Sent,
    StatusUpdate,
    pooled_client,
    retry_after_seconds,
)
from app.integrations.connectors.wire import BadWebhookBody

STATUS_PATH = "/hooks/twilio/status"
# Twilio releases one message segment a second from a long code number (three from a US
# toll-free number, more from a short code) and queues the rest for at most 10 hours before
# failing them (error 21611). Pacing at one message a second per sender keeps Twilio's queue
# short and the statuses honest; a Messaging Service is paced the same, conservatively.
MESSAGES_PER_SECOND = 1.0
DEFAULT_BASE_URL = "http://127.0.0.1:5000"
TIMEOUT = httpx.Timeout(15.0, connect=5.0)
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
MESSAGE_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")  # SM... for an SMS, MM... for an MMS
SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
E164 = re.compile(r"\+[1-9]\d{6,14}")
# MessageStatus -> our status; queued/accepted/scheduled/sending say nothing new.
STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
    "canceled": "failed",
}


def status_callback_url(config) -> str:
    """Where Twilio reports statuses. Behind a proxy BASE_URL must be the public URL: it is
    the URL Twilio signs, and the receiver rebuilds it from BASE_URL, never from the request."""
    return (config.get("BASE_URL") or DEFAULT_BASE_URL).rstrip("/") + STATUS_PATH


class TwilioConnector(Connector):
    provider = "twilio"
    channel = "sms"
    title = "SMS (Twilio)"
    description = "Send SMS worldwide from your Twilio number or Messaging Service."
    fields = (
        Field(
            "account_sid", "Account SID", placeholder="AC…", help="Twilio Console, Account Info."
        ),
        Field(
            "auth_token",
            "Auth token",
            secret=True,
            help="Kept encrypted and never shown again; it also checks Twilio's callbacks.",
        ),
        Field(
            "sender",
            "From",
            placeholder="+15005550006",
            help="Your Twilio number in international format, or a Messaging Service SID (MG…).",
        ),
    )

    @classmethod
    def clean(cls, raw):
        settings, secrets, errors = super().clean(raw)
        if settings.get("account_sid") and not ACCOUNT_SID.fullmatch(settings["account_sid"]):
            errors["account_sid"] = "The Account SID is AC followed by 32 letters and digits."
        # `sender` stays as typed (the edit form shows it); the send path reads the parsed form.
        sender = settings.get("sender", "")
        if SERVICE_SID.fullmatch(sender):
            settings["messaging_service_sid"] = sender
        elif E164.fullmatch(sender.replace(" ", "")):
            settings["sender"] = settings["from_number"] = sender.replace(" ", "")
        elif sender:
            errors["sender"] = "Give a number such as +15005550006, or a SID starting MG."
        return settings, secrets, errors

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._client: httpx.Client | None = None

    @property
    def sid(self) -> str:
        return self.settings["account_sid"]

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = pooled_client(
                base_url=self.config["TWILIO_API_BASE"].rstrip("/"),
                auth=(self.sid, self.secrets["auth_token"]),
                headers={"Accept": "application/json"},
                timeout=TIMEOUT,
            )
        return self._client

    def account_key(self) -> str:
        return self.sid

    def rate_limit(self) -> tuple[str, float]:
        sender = self.settings.get("from_number") or self.settings.get("messaging_service_sid")
        return f"twilio:{self.sid}:{sender}", MESSAGES_PER_SECOND

    def send(self, outgoing: Outgoing) -> Sent:
        if not outgoing.text.strip():
            raise DeliveryError("An SMS needs a text.", permanent=True)
        form = {
            "To": outgoing.recipient,
            "Body": outgoing.text,
            "StatusCallback": outgoing.status_callback_url or status_callback_url(self.config),
        }
        if self.settings.get("messaging_service_sid"):
            form["MessagingServiceSid"] = self.settings["messaging_service_sid"]
        else:
            form["From"] = self.settings["from_number"]
        try:
            response = self.client.post(f"/2010-04-01/Accounts/{self.sid}/Messages.json", data=form)
        except httpx.TransportError as exc:
            raise DeliveryError(f"Twilio unreachable: {type(exc).__name__}: {exc}") from exc
        answer = _json(response)
        if response.status_code in (200, 201) and answer.get("sid"):
            return Sent(provider_message_id=str(answer["sid"]))
        code = answer.get("code")
        error = f"Twilio {response.status_code} (error {code}): {answer.get('message', '')}"
        if response.status_code in (409, 429) or code == 20429 or response.status_code >= 500:
            raise DeliveryError(
                error, retry_after=retry_after_seconds(response.headers.get("Retry-After"))
            )
        # 400 (21211 invalid number, 21610 the recipient replied STOP ...), 401, 403, 404:
        # sending the same request again cannot succeed.
        raise DeliveryError(error, permanent=True)

    def test_connection(self) -> str:
        """Fetch the account itself (`GET /2010-04-01/Accounts/{AccountSid}.json`): Twilio
        answers it only to that account's own SID and auth token, so a pass proves the
        credentials control the account whose status callbacks get routed here."""
        try:
            response = self.client.get(f"/2010-04-01/Accounts/{self.sid}.json")
        except httpx.TransportError as exc:
            raise DeliveryError(f"Twilio unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code in (401, 403, 404):
            raise DeliveryError("Twilio refused the Account SID and auth token.", permanent=True)
        if response.status_code >= 500 or response.status_code == 429:
            raise DeliveryError(f"Twilio answered {response.status_code}; try again later.")
        account = _json(response)
        if not response.is_success or account.get("sid") != self.sid:
            raise DeliveryError("Twilio did not confirm this account.", permanent=True)
        if account.get("status") not in (None, "active"):
            raise DeliveryError(f"The Twilio account is {account['status']}.", permanent=True)
        return "Twilio accepted the Account SID and auth token."


def _json(response: httpx.Response) -> dict:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


# Signatures and status callbacks ----------------------------------------------------------


def compute_signature(auth_token: str, url: str, params) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(auth token, URL + each parameter name followed by
    its value, names sorted, a repeated name's distinct values sorted)). `params` is a dict
    or a MultiDict (form posts can repeat a name)."""
    lists = (
        params.to_dict(flat=False)
        if hasattr(params, "to_dict")
        else {name: [value] for name, value in params.items()}
    )
    payload = url + "".join(
        name + value for name in sorted(lists) for value in sorted(set(lists[name]))
    )
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _port_variants(url: str) -> list[str]:
    """The URL as given, without its port and with the scheme's default port: Twilio is not
    consistent about which of these it signs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    default = 443 if parts.scheme == "https" else 80
    without = parts._replace(netloc=host).geturl()
    with_port = parts._replace(netloc=f"{host}:{parts.port or default}").geturl()
    return list(dict.fromkeys([url, without, with_port]))


def valid_signature(auth_token: str, url: str, params, signature: str) -> bool:
    if not auth_token or not signature:
        return False
    return any(
        hmac.compare_digest(compute_signature(auth_token, candidate, params), signature)
        for candidate in _port_variants(url)
    )


def check_status_callback(raw: bytes | str, form) -> None:
    """wire.BadWebhookBody unless this is a form Twilio sends: UTF-8 without NUL
    characters, with a well-formed AccountSid and MessageSid (or SmsSid) and a MessageStatus
    (or SmsStatus). Checked at receipt and again before a stored callback is applied."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadWebhookBody("The body is not UTF-8 text.") from exc
    pairs = form.items(multi=True) if hasattr(form, "getlist") else form.items()
    if "\x00" in raw or any("\x00" in name + value for name, value in pairs):
        raise BadWebhookBody("The body contains a NUL character.")
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if (
        not ACCOUNT_SID.fullmatch(form.get("AccountSid") or "")
        or not MESSAGE_SID.fullmatch(sid)
        or not (form.get("MessageStatus") or form.get("SmsStatus"))
    ):
        raise BadWebhookBody("Not a Twilio status callback.")


def process_webhook(session, event) -> list[StatusUpdate]:
    """The status update in one stored (and verified) status callback."""
    form = {name: values[-1] for name, values in parse_qs(event.body).items()}
    check_status_callback(event.body, form)
    status = STATUSES.get(form.get("MessageStatus") or form.get("SmsStatus") or "")
    sid = form.get("MessageSid") or form.get("SmsSid")
    if status is None:
        return []
    error = None
    if status == "failed":
        error = f"{form.get('MessageStatus')} (Twilio error {form.get('ErrorCode') or 'unknown'})"
    return [StatusUpdate("twilio", sid, status, event.received_at, error)]
