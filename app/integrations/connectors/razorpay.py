"""Razorpay: Payment Links, payments and signed webhooks (providers.md §6.1, providers-2.md §2).

Wire protocol only: this module knows Razorpay's JSON and nothing of invoices or payments in
Duebook (app.gateways turns what it reads into money).

- Requests: HTTP Basic auth with the key id and key secret, JSON bodies, amounts in the
  currency's smallest unit (paise). The base URL is RAZORPAY_API_BASE from the app config,
  never from a tenant, so tests and `make run` talk to the local stand-in.
- A pay request is one Payment Link whose `reference_id` is the attempt's own reference (unique
  per link, at most 40 characters: Razorpay refuses a second link with it, so a create retried
  after a timeout can never make two live links) and whose `description` names the invoices.
- Webhooks: `X-Razorpay-Signature` is the hex HMAC-SHA256 of the raw body with the webhook
  secret the tenant set in Razorpay's dashboard (not the key secret). Razorpay sends no tenant
  of ours, so each connection gets an unguessable path token (`/hooks/razorpay/<token>`, the
  URL the tenant pastes into the dashboard): the token finds the workspace and its secret
  before anything in the body is believed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx

from app.integrations.connectors import (
    WEBHOOK_TOKEN_SHAPE,
    Connector,
    DeliveryError,
    Field,
    Outgoing,
    Sent,
    kept_webhook_token,
    pooled_client,
    public_url,
)
from app.integrations.connectors.gateway import (
    GatewayRefusal,
    PaymentEvent,
    PayoutReport,
    WebhookRefused,
    checkout_number,
)
from app.integrations.connectors.wire import BadWebhookBody, check_shape, read_json

PAYMENT_LINKS_PATH = "/v1/payment_links"
PAYMENTS_PATH = "/v1/payments"
SETTLEMENTS_PATH = "/v1/settlements"
# Razorpay settles to Indian bank accounts: a settlement's day is its day in India.
SETTLEMENT_ZONE = ZoneInfo("Asia/Kolkata")
WEBHOOK_PATH = "/hooks/razorpay"
SIGNATURE_HEADER = "X-Razorpay-Signature"
EVENT_ID_HEADER = "X-Razorpay-Event-Id"
KEY_ID_SHAPE = re.compile(r"rzp_(test|live)_[A-Za-z0-9]{6,32}")
# Razorpay's documented limits: reference_id at most 40 characters, description 2,048.
REFERENCE_LIMIT = 40
DESCRIPTION_LIMIT = 2048
# GET /v1/payments pages hold at most 100 items.
PAGE_SIZE = 100
TIMEOUT = httpx.Timeout(20.0, connect=5.0)
# The events Duebook acts on, as the spine's kinds; anything else is acknowledged and ignored.
EVENTS = {
    "payment_link.paid": "paid",
    "payment.captured": "paid",
    "payment.failed": "failed",
    "refund.processed": "refunded",
}
# How Razorpay names a payment method, as Duebook's payment methods.
BOOK_METHODS = {"upi": "upi", "card": "card", "netbanking": "bank_transfer"}
# The key of our checkout id in a link's notes (Razorpay copies them onto its payments).
CHECKOUT_NOTE = "duebook_checkout"

_ID = str
_ENTITY_PAYMENT = {
    "id": _ID,
    "amount": int,
    "currency": str,
    "status": str,
    "method": str,
    "order_id": str,
    "fee": int,
    "tax": int,
    "created_at": int,
    "notes": (dict, list),  # Razorpay sends [] for no notes
    "error_description": str,
    "acquirer_data": dict,
}
_EVENT = {
    "entity": str,
    "account_id": str,
    "event": str,
    "created_at": int,
    "payload": {
        "payment": {"entity": _ENTITY_PAYMENT},
        "payment_link": {"entity": {"id": _ID, "reference_id": str, "status": str}},
        "refund": {"entity": {"id": _ID, "amount": int, "payment_id": _ID, "status": str}},
    },
}


@dataclass(frozen=True)
class PaymentLink:
    id: str
    short_url: str
    status: str


def to_minor(amount: Decimal) -> int:
    """An amount in the smallest unit Razorpay counts (paise for INR; two decimals)."""
    return int((amount * 100).to_integral_value())


def from_minor(value: int) -> Decimal:
    return (Decimal(value) / 100).quantize(Decimal("0.01"))


def signature_of(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def valid_signature(body: bytes, signature: str, secret: str) -> bool:
    """Constant-time check of `X-Razorpay-Signature` over the exact bytes received."""
    if not secret or not signature:
        return False
    return hmac.compare_digest(signature_of(body, secret), signature.strip().lower())


def read_event(body: bytes | str) -> dict:
    """The event of a webhook body, or BadWebhookBody: not JSON, nested too deeply, a NUL
    character, not an event object, or a field of the wrong type."""
    data = read_json(body)
    check_shape(data, _EVENT)
    if data.get("entity") != "event" or not isinstance(data.get("event"), str):
        raise BadWebhookBody("The body is not a Razorpay event.")
    return data


def entity(event: dict, name: str) -> dict | None:
    """The `payload.<name>.entity` of an event, if it carries one."""
    holder = (event.get("payload") or {}).get(name) or {}
    return holder.get("entity") if isinstance(holder.get("entity"), dict) else None


def _money(value) -> Decimal | None:
    return from_minor(value) if isinstance(value, int) else None


def payment_event(payment: dict, *, event_id: str, event_type: str, kind: str) -> PaymentEvent:
    """A payment entity (of a webhook, or of GET /v1/payments) in the spine's shape."""
    notes = payment.get("notes") if isinstance(payment.get("notes"), dict) else {}
    method = str(payment.get("method") or "")[:32] or None
    created = payment.get("created_at")
    return PaymentEvent(
        provider="razorpay",
        event_id=event_id,
        event_type=event_type,
        kind=kind,
        payment_id=str(payment.get("id") or "")[:64] or None,
        checkout_id=checkout_number(notes.get(CHECKOUT_NOTE)),
        amount=_money(payment.get("amount")),
        currency=str(payment.get("currency") or "")[:3].upper() or None,
        fee=_money(payment.get("fee")),
        fee_tax=_money(payment.get("tax")),
        method=method,
        book_method=BOOK_METHODS.get(method or "", "other"),
        failure_reason=(
            str(payment.get("error_description") or "The payment failed.")[:500]
            if kind == "failed"
            else None
        ),
        occurred_at=datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None,
    )


def event_from(data: dict, event_id: str) -> PaymentEvent:
    """A verified event (read by `read_event`) in the spine's shape."""
    event_type = data["event"]
    kind = EVENTS.get(event_type, "other")
    if kind == "refunded":
        refund = entity(data, "refund") or {}
        return PaymentEvent(
            provider="razorpay",
            event_id=event_id,
            event_type=event_type,
            kind=kind,
            payment_id=str(refund.get("payment_id") or "")[:64] or None,
            refund_id=str(refund.get("id") or "")[:64] or None,
            refund_amount=_money(refund.get("amount")),
        )
    payment = entity(data, "payment")
    if kind == "other" or payment is None:
        # Stored all the same when it is an event Duebook acts on: the job says what it lacks.
        return PaymentEvent("razorpay", event_id, event_type, kind)
    made = payment_event(payment, event_id=event_id, event_type=event_type, kind=kind)
    link = entity(data, "payment_link")
    if link is not None and link.get("id"):
        # The link is the pay request itself: the notes are not asked.
        return replace(made, provider_checkout=str(link["id"]), checkout_id=None)
    return made


def event_key(body: bytes, event_id: str | None) -> str:
    """Razorpay names each event in a header; a body without it is keyed by its digest, so an
    exact repeat is still recognised."""
    return (event_id or "").strip()[:128] or hashlib.sha256(body).hexdigest()


class RazorpayConnector(Connector):
    provider = "razorpay"
    channel = "payments"
    # The shape of the webhook path token `clean` makes, checked before any look-up.
    token_shape = WEBHOOK_TOKEN_SHAPE
    title = "Razorpay"
    description = (
        "{Clients} pay invoices through Razorpay Payment Links (UPI, cards, netbanking); "
        "each payment is applied to its invoices when Razorpay reports it."
    )
    fields = (
        Field(
            "key_id",
            "Key id",
            placeholder="rzp_live_XXXXXXXXXXXXXX",
            help="Razorpay dashboard, Account & Settings, API keys.",
        ),
        Field(
            "key_secret",
            "Key secret",
            secret=True,
            help="Shown once by Razorpay when the key is made. Kept encrypted, never shown again.",
        ),
        Field(
            "webhook_secret",
            "Webhook secret",
            secret=True,
            help="The secret you typed when adding the webhook URL below in Razorpay's "
            "dashboard (events payment_link.paid, payment.captured, payment.failed, "
            "refund.processed).",
        ),
    )

    @classmethod
    def clean(cls, raw):
        settings, secrets_, errors = super().clean(raw)
        key_id = settings.get("key_id", "")
        if key_id and not KEY_ID_SHAPE.fullmatch(key_id):
            errors["key_id"] = "A Razorpay key id starts rzp_live_ or rzp_test_."
        settings["webhook_token"] = kept_webhook_token(raw)
        return settings, secrets_, errors

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = pooled_client(
                base_url=self.config["RAZORPAY_API_BASE"].rstrip("/"),
                auth=(self.settings["key_id"], self.secrets["key_secret"]),
                headers={"Accept": "application/json"},
                timeout=TIMEOUT,
            )
        return self._client

    def account_key(self) -> str | None:
        return self.settings.get("webhook_token")

    def report_url(self) -> str:
        """The webhook URL the tenant gives Razorpay: BASE_URL plus this connection's token."""
        return public_url(self.config, f"{WEBHOOK_PATH}/{self.account_key()}")

    def valid_signature(self, body: bytes, signature: str) -> bool:
        return valid_signature(body, signature, self.secrets.get("webhook_secret", ""))

    # -- the payments spine's interface (app.integrations.connectors.gateway) ---------------

    def read_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        if not self.valid_signature(body, headers.get(SIGNATURE_HEADER, "")):
            raise WebhookRefused("bad signature")
        return event_from(read_event(body), event_key(body, headers.get(EVENT_ID_HEADER)))

    @staticmethod
    def event_from_stored(body: bytes | str, event_id: str) -> PaymentEvent:
        return event_from(read_event(body), event_id)

    def start_checkout(
        self,
        *,
        checkout_id: int,
        lines: list[tuple[int, str, Decimal]],
        currency: str,
        payer_name: str,
        return_url: str,
    ) -> tuple[str, str]:
        """One Payment Link for the lines (invoice id, number, amount); (plink id, URL)."""
        numbers = [number for _, number, _ in lines]
        link = self.create_payment_link(
            amount=sum((amount for _, _, amount in lines), Decimal("0.00")),
            currency=currency,
            reference_id=_reference(numbers, checkout_id),
            description=f"Invoice {', '.join(numbers)}",
            customer={"name": payer_name},
            callback_url=return_url,
            notes={CHECKOUT_NOTE: checkout_id},
        )
        return link.id, link.short_url

    def payments_on(self, start: datetime, end: datetime) -> list[PaymentEvent]:
        """The payments made in [start, end), as the spine reads a webhook of each (captured
        ones as paid, failed as failed; refunds are not listed by this call)."""
        kinds = {"captured": "paid", "refunded": "paid", "failed": "failed"}
        found = []
        for payment in self.payments_between(int(start.timestamp()), int(end.timestamp()) - 1):
            kind = kinds.get(str(payment.get("status")))
            if kind and payment.get("id"):
                found.append(
                    payment_event(
                        payment,
                        event_id=f"reconciliation:{payment['id']}:{kind}",
                        event_type=f"payment.{payment.get('status')}",
                        kind=kind,
                    )
                )
        return found

    def payouts_on(self, start: datetime, end: datetime) -> list[PayoutReport]:
        """The settlements created in [start, end) (Razorpay gives no arrival date: a
        settlement is the transfer itself, so its day is the day it was made)."""
        found = []
        for item in self._collection(
            SETTLEMENTS_PATH, int(start.timestamp()), int(end.timestamp()) - 1
        ):
            report = _settlement(item)
            if report is not None:
                found.append(report)
        return found

    def send(self, outgoing: Outgoing) -> Sent:
        raise DeliveryError("A payment gateway sends no messages.", permanent=True)

    def test_connection(self) -> str:
        # The cheapest read the keys allow: one payment of the account.
        response = self._get(PAYMENTS_PATH, {"count": 1})
        if response.status_code == 401:
            raise DeliveryError("Razorpay refused the key id and key secret.", permanent=True)
        if response.status_code >= 400:
            raise DeliveryError(f"Razorpay answered {response.status_code}; try again later.")
        return "Razorpay accepted the key id and key secret."

    def create_payment_link(
        self,
        *,
        amount: Decimal,
        currency: str,
        reference_id: str,
        description: str,
        customer: dict,
        callback_url: str | None,
        notes: dict,
    ) -> PaymentLink:
        """A Payment Link for `amount`; GatewayRefusal with Razorpay's reason when refused."""
        body = {
            "amount": to_minor(amount),
            "currency": currency,
            "accept_partial": False,
            "reference_id": reference_id[:REFERENCE_LIMIT],
            "description": description[:DESCRIPTION_LIMIT],
            "customer": {key: value for key, value in customer.items() if value},
            # The workspace sends its own messages with the link; Razorpay sends none.
            "notify": {"sms": False, "email": False},
            "reminder_enable": False,
            "notes": {str(k)[:256]: str(v)[:256] for k, v in list(notes.items())[:15]},
        }
        if callback_url:
            body["callback_url"] = callback_url
            body["callback_method"] = "get"
        try:
            response = self.client.post(PAYMENT_LINKS_PATH, json=body)
        except httpx.TransportError as exc:
            raise GatewayRefusal("Razorpay could not be reached; try again shortly.") from exc
        answer = _json(response)
        if response.status_code >= 400:
            raise GatewayRefusal(_error_text(answer, response.status_code))
        if not isinstance(answer.get("id"), str) or not isinstance(answer.get("short_url"), str):
            raise GatewayRefusal("Razorpay's answer had no payment link.")
        return PaymentLink(answer["id"], answer["short_url"], str(answer.get("status") or ""))

    def payments_between(self, start: int, end: int) -> Iterator[dict]:
        """Every payment created from `start` to `end` (Unix seconds), page by page; for the
        daily reconciliation. DeliveryError when Razorpay cannot answer."""
        return self._collection(PAYMENTS_PATH, start, end)

    def _collection(self, path: str, start: int, end: int) -> Iterator[dict]:
        """Every item of a `{"entity": "collection", "items": [...]}` list created from
        `start` to `end` (Unix seconds), page by page."""
        skip = 0
        while True:
            params = {"from": start, "to": end, "count": PAGE_SIZE, "skip": skip}
            response = self._get(path, params)
            if response.status_code >= 400:
                raise DeliveryError(_error_text(_json(response), response.status_code))
            items = _json(response).get("items")
            if not isinstance(items, list):
                raise DeliveryError(f"Razorpay's answer to {path} had no items.")
            yield from (item for item in items if isinstance(item, dict))
            if len(items) < PAGE_SIZE:
                return
            skip += PAGE_SIZE

    def _get(self, path: str, params: dict) -> httpx.Response:
        try:
            return self.client.get(path, params=params)
        except httpx.TransportError as exc:
            raise DeliveryError(f"Razorpay unreachable: {type(exc).__name__}: {exc}") from exc


def _settlement(item: dict) -> PayoutReport | None:
    """A settlement entity (`setl_…`, amount in paise, status created|processed|failed, utr,
    created_at) as a payout; None for an item without an id, amount or time."""
    amount, created = item.get("amount"), item.get("created_at")
    if not isinstance(item.get("id"), str) or not isinstance(amount, int) or amount <= 0:
        return None
    if not isinstance(created, int):
        return None
    utr = item.get("utr")
    return PayoutReport(
        payout_id=item["id"][:64],
        amount=from_minor(amount),
        currency="INR",
        arrival_date=datetime.fromtimestamp(created, SETTLEMENT_ZONE).date(),
        status=str(item.get("status") or "")[:16],
        bank_reference=utr[:64] if isinstance(utr, str) and utr else None,
    )


def _reference(numbers: list[str], checkout_id: int) -> str:
    """The link's reference_id: the invoice number(s) and this attempt (a reference is unique
    per link, so a second attempt for one invoice needs its own), at most 40 characters."""
    suffix = f" #{checkout_id}"
    joined = ",".join(numbers)
    if len(joined) + len(suffix) > REFERENCE_LIMIT:
        joined = f"{len(numbers)} invoices"
    return f"{joined}{suffix}"


def _json(response: httpx.Response) -> dict:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _error_text(answer: dict, status: int) -> str:
    error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
    description = str(error.get("description") or "").strip()
    return (
        f"Razorpay refused the request: {description}"
        if description
        else (f"Razorpay answered {status}.")
    )
