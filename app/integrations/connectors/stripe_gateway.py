"""Card payments through Stripe: Checkout Sessions, signed webhooks and the lists the daily
reconciliation reads (providers.md §6.2, providers-2.md §3). The module is not named `stripe`
so that it never shadows Stripe's own SDK, which the tests use as the oracle.

Plain `httpx`, like the other connectors: form-encoded bodies in Stripe's bracket notation
(`line_items[0][price_data][currency]=usd`), the secret key as a Bearer token, the API version
pinned by `Stripe-Version` (the one of the published document the contract tests check us
against), and an `Idempotency-Key` on every POST, given by the caller and derived from our own
record, so that a create retried after a timeout gives back the first session instead of a
second one (Stripe keeps the first answer for a key at least 24 hours).

Amounts travel in the currency's minor unit: cents for USD, none for the zero-decimal
currencies (JPY 1000 is `1000`), and thousandths for the three-decimal ones, which Stripe
takes only in multiples of ten (KWD 1.50 is `1500`).

Webhooks: Stripe signs the raw body with the endpoint's signing secret
(`Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, several `v1` while
a secret is rolled). `verify_signature` accepts a body only when one `v1` matches and `t` is
within 300 seconds of now either way (Stripe's SDK checks only the past; a signature dated
in the future is refused too). Each connection has its own webhook URL
(`/hooks/stripe/<token>`): the token finds the workspace, the signature proves Stripe sent it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import NamedTuple
from urllib.parse import urlencode

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
    retry_after_seconds,
)
from app.integrations.connectors.gateway import (
    DisputeFacts,
    GatewayRefusal,
    PaymentEvent,
    PayoutReport,
    WebhookRefused,
    checkout_number,
)
from app.integrations.connectors.wire import BadWebhookBody, check_shape, read_json

API_VERSION = "2023-08-16"
WEBHOOK_PATH = "/hooks/stripe"
WEBHOOK_TOLERANCE_SECONDS = 300
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
PAGE_SIZE = 100  # Stripe's largest page
SECRET_KEY_SHAPE = re.compile(r"(sk|rk)_(test|live)_[A-Za-z0-9]{10,247}")
SIGNING_SECRET_SHAPE = re.compile(r"whsec_[A-Za-z0-9+/=]{10,250}")

# Stripe's lists (docs.stripe.com/currencies): currencies it takes in whole units, and those
# with three decimals (amounts a multiple of ten). Every other currency has two decimals.
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())

# Our keys in a session's metadata (Stripe: 50 keys, keys up to 40 characters, values up to
# 500). The metadata is copied onto the payment intent, so every event of the payment carries
# it. Invoice ids go comma-separated, over as many keys as they need.
CHECKOUT_KEY = "duebook_checkout"
INVOICES_KEY = "duebook_invoices"
METADATA_VALUE_LIMIT = 500

# The events Duebook acts on, as the payments spine's kinds.
KINDS = {
    "checkout.session.completed": "paid",
    "payment_intent.succeeded": "paid",
    "payment_intent.payment_failed": "failed",
    "charge.refunded": "refunded",
    "charge.dispute.created": "disputed",
}
HANDLED_EVENTS = frozenset(KINDS)
SIGNATURE_HEADER = "Stripe-Signature"


# Money ------------------------------------------------------------------------------------


def minor_unit_exponent(currency: str) -> int:
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    return 3 if code in THREE_DECIMAL else 2


def to_minor(amount: Decimal, currency: str) -> int:
    """`amount` in the currency's smallest unit, as Stripe takes it; ValueError when it cannot
    be charged exactly (JPY 10.50, or a three-decimal amount that is not a multiple of ten)."""
    exponent = minor_unit_exponent(currency)
    minor = Decimal(amount).scaleb(exponent)
    if minor != minor.to_integral_value():
        raise ValueError(
            f"{currency.upper()} {amount} cannot be charged: {currency.upper()} has "
            f"{exponent} decimal places."
        )
    if exponent == 3 and minor % 10:
        raise ValueError(f"Stripe takes {currency.upper()} amounts in multiples of 0.010.")
    return int(minor)


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-minor_unit_exponent(currency))


# Wire format --------------------------------------------------------------------------------


def form_pairs(params: Mapping, prefix: str = "") -> list[tuple[str, str]]:
    """Nested parameters as Stripe's form fields: `a[b][0][c]=v`; None is left out, booleans
    are `true`/`false` (the encoding of Stripe's own SDK)."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            pairs += form_pairs(value, name)
        elif isinstance(value, list | tuple):
            pairs += form_pairs({str(n): item for n, item in enumerate(value)}, name)
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        else:
            pairs.append((name, str(value)))
    return pairs


def _timestamp(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("Give an aware datetime: Stripe's times are UTC.")
    return int(moment.timestamp())


def _time(seconds) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if isinstance(seconds, int) else None


# Errors -------------------------------------------------------------------------------------


class StripeError(DeliveryError):
    """Stripe refused a request (or could not be reached). The message carries Stripe's own
    words; `permanent` says whether sending the same request again can help (409, 429, 5xx
    and unreachable: yes, with the same Idempotency-Key; 400, 401, 402, 403, 404: no), unless
    Stripe said so itself with `Stripe-Should-Retry`."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        permanent: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message, permanent=permanent, retry_after=retry_after)
        self.status = status
        self.error_type = error_type
        self.code = code
        self.param = param


def _error_from(response: httpx.Response) -> StripeError:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    error = answer.get("error") if isinstance(answer, dict) else None
    error = error if isinstance(error, dict) else {}
    status = response.status_code
    said = str(error.get("message") or response.reason_phrase or "no message")
    kind = ", ".join(str(part) for part in (error.get("type"), error.get("code")) if part)
    if status == 401:
        text = f"Stripe refused the secret key: {said}"
    else:
        text = f"Stripe {status}{f' ({kind})' if kind else ''}: {said}"
    should_retry = response.headers.get("Stripe-Should-Retry")
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    else:
        retryable = status in (409, 429) or status >= 500
    return StripeError(
        text,
        status=status,
        error_type=error.get("type"),
        code=error.get("code"),
        param=error.get("param"),
        permanent=not retryable,
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
    )


# Webhooks -----------------------------------------------------------------------------------


def sign_webhook(body: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` Stripe sends with `body` (the stand-in signs with this)."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    body: bytes,
    header: str | None,
    secret: str | None,
    *,
    now: float | None = None,
    tolerance: int = WEBHOOK_TOLERANCE_SECONDS,
) -> None:
    """WebhookRefused unless `header` signs `body` with `secret` within `tolerance` seconds."""
    if not secret:
        raise WebhookRefused("No webhook signing secret is saved for this Stripe connection.")
    timestamps, signatures = [], []
    for item in (header or "").split(","):
        scheme, _, value = item.strip().partition("=")
        if scheme == "t":
            timestamps.append(value)
        elif scheme == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
        raise WebhookRefused("The Stripe-Signature header is missing or malformed.")
    timestamp = int(timestamps[0])
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > tolerance:
        raise WebhookRefused(
            f"The signature is {int(abs(skew))} s {'old' if skew > 0 else 'ahead'}, "
            f"outside the {tolerance} s tolerance (a replay or a wrong clock)."
        )
    expected = sign_webhook(body, secret, timestamp).partition(",v1=")[2]
    # Every v1 is compared, so the time taken does not say which one matched.
    matched = [hmac.compare_digest(expected, candidate) for candidate in signatures]
    if not any(matched):
        raise WebhookRefused("The Stripe-Signature does not match the body.")


@dataclass(frozen=True)
class Refund:
    """A charge's refunds so far (`charge.refunded` says the total, not the latest part)."""

    refunded_total: Decimal
    fully_refunded: bool


@dataclass(frozen=True)
class Dispute:
    dispute_id: str
    amount: Decimal
    reason: str
    status: str  # warning_needs_response, needs_response, under_review, won, lost ...
    evidence_due_by: datetime | None


@dataclass(frozen=True)
class StripeEvent:
    """What the payments code needs from one Stripe event. Money is in major units
    (Decimal), currencies in upper case, provider ids as Stripe gives them; a field the
    event does not carry is None. Both `checkout.session.completed` and
    `payment_intent.succeeded` arrive for one payment: `payment_id` (the payment intent) is
    the key that makes it count once."""

    event_id: str
    type: str
    created: datetime | None
    livemode: bool
    object_id: str | None  # the id of `data.object`: cs_, pi_, ch_ or dp_
    payment_intent_id: str | None
    charge_id: str | None
    checkout_session_id: str | None
    amount: Decimal | None
    currency: str | None
    fee: Decimal | None  # when the charge's balance transaction is in the event (expanded)
    status: str | None  # payment_status of a session, status of an intent, charge or dispute
    failure_message: str | None
    client_reference_id: str | None
    metadata: dict[str, str] = field(default_factory=dict)
    refund: Refund | None = None
    dispute: Dispute | None = None

    @property
    def handled(self) -> bool:
        return self.type in HANDLED_EVENTS

    @property
    def payment_id(self) -> str | None:
        return self.payment_intent_id or self.charge_id

    @property
    def checkout_id(self) -> str | None:
        return self.metadata.get(CHECKOUT_KEY) or self.client_reference_id

    @property
    def invoice_ids(self) -> tuple[str, ...]:
        return invoice_ids_from(self.metadata)


_EVENT_SHAPE = {
    "id": str,
    "type": str,
    "created": int,
    "livemode": bool,
    "data": {"object": dict},
}
_OBJECT_SHAPE = {
    "id": str,
    "amount": int,
    "amount_total": int,
    "amount_received": int,
    "amount_refunded": int,
    "currency": str,
    "metadata": dict,
    "payment_intent": (str, dict),
    "latest_charge": (str, dict),
    "charge": (str, dict),
    "balance_transaction": (str, dict),
    "refunded": bool,
    "reason": str,
    "status": str,
    "payment_status": str,
    "client_reference_id": str,
}


_INVOICES_KEYS = re.compile(rf"{INVOICES_KEY}(?:_(\d+))?")


def invoice_ids_from(metadata: Mapping[str, str]) -> tuple[str, ...]:
    """The invoice ids `_metadata_for` spread over `duebook_invoices`, `duebook_invoices_2` ..."""
    chunks = {}
    for key, value in metadata.items():
        match = _INVOICES_KEYS.fullmatch(key)
        if match:
            chunks[int(match.group(1) or 1)] = value
    joined = ",".join(chunks[n] for n in sorted(chunks))
    return tuple(part for part in joined.split(",") if part)


def _metadata_for(checkout_id: str, invoice_ids: Sequence, extra: Mapping | None) -> dict:
    metadata = {str(key): str(value) for key, value in (extra or {}).items()}
    metadata[CHECKOUT_KEY] = str(checkout_id)
    chunks, current = [], ""
    for invoice_id in map(str, invoice_ids):
        if current and len(current) + 1 + len(invoice_id) > METADATA_VALUE_LIMIT:
            chunks.append(current)
            current = ""
        current = f"{current},{invoice_id}" if current else invoice_id
    if current:
        chunks.append(current)
    for n, chunk in enumerate(chunks, start=1):
        metadata[INVOICES_KEY if n == 1 else f"{INVOICES_KEY}_{n}"] = chunk
    if len(metadata) > 50:
        raise ValueError("Too many invoices for one Stripe payment (metadata holds 50 keys).")
    return metadata


def _id(value) -> str | None:
    """An expandable field: an id, or the object it names when expanded."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


def event_from(data: dict) -> StripeEvent:
    """A StripeEvent from the JSON of an event (a webhook body, or an item of /v1/events);
    BadWebhookBody when it is not shaped like one."""
    check_shape(data, _EVENT_SHAPE, "event")
    if not data.get("id") or not data.get("type"):
        raise BadWebhookBody("The event has no id or type.")
    obj = data["data"].get("object")
    if not isinstance(obj, dict):
        raise BadWebhookBody("The event carries no object.")
    check_shape(obj, _OBJECT_SHAPE, "event.data.object")
    kind = obj.get("object")
    currency = (obj.get("currency") or "").upper() or None
    metadata = {str(k): str(v) for k, v in (obj.get("metadata") or {}).items() if v is not None}

    def money(minor) -> Decimal | None:
        return from_minor(minor, currency) if isinstance(minor, int) and currency else None

    session_id = intent_id = charge_id = None
    amount_minor = obj.get("amount")
    status = obj.get("status")
    failure = refund = dispute = fee = None
    if kind == "checkout.session":
        session_id, intent_id = obj.get("id"), _id(obj.get("payment_intent"))
        amount_minor, status = obj.get("amount_total"), obj.get("payment_status")
    elif kind == "payment_intent":
        intent_id, charge_id = obj.get("id"), _id(obj.get("latest_charge"))
        if data["type"] == "payment_intent.succeeded" and obj.get("amount_received"):
            amount_minor = obj["amount_received"]
        error = obj.get("last_payment_error")
        if isinstance(error, dict):
            failure = str(error.get("message") or error.get("code") or "declined")
    elif kind == "charge":
        charge_id, intent_id = obj.get("id"), _id(obj.get("payment_intent"))
        refund = Refund(money(obj.get("amount_refunded") or 0), bool(obj.get("refunded")))
        transaction = obj.get("balance_transaction")
        if isinstance(transaction, dict) and isinstance(transaction.get("fee"), int):
            fee = money(transaction["fee"])
        failure = obj.get("failure_message")
    elif kind == "dispute":
        charge_id, intent_id = _id(obj.get("charge")), _id(obj.get("payment_intent"))
        evidence = obj.get("evidence_details")
        due = evidence.get("due_by") if isinstance(evidence, dict) else None
        dispute = Dispute(
            str(obj.get("id")),
            money(amount_minor),
            str(obj.get("reason") or ""),
            str(status or ""),
            _time(due),
        )
    return StripeEvent(
        event_id=data["id"],
        type=data["type"],
        created=_time(data.get("created")),
        livemode=bool(data.get("livemode")),
        object_id=obj.get("id"),
        payment_intent_id=intent_id,
        charge_id=charge_id,
        checkout_session_id=session_id,
        amount=money(amount_minor),
        currency=currency,
        fee=fee,
        status=status,
        failure_message=failure,
        client_reference_id=obj.get("client_reference_id"),
        metadata=metadata,
        refund=refund,
        dispute=dispute,
    )


def payment_event(event: StripeEvent, fees: Mapping[str, Decimal] | None = None) -> PaymentEvent:
    """A StripeEvent in the payments spine's shape. The fee is the one of the charge's balance
    transaction: in the event when Stripe expanded it, else from `fees` (charge id -> fee)
    when the caller read the balance transactions, else None."""
    kind = KINDS.get(event.type, "other")
    if kind == "paid" and event.type == "checkout.session.completed" and event.status != "paid":
        kind = "other"  # a session completed for a payment still on its way is not money yet
    fee = event.fee
    if fee is None and fees and event.charge_id:
        fee = fees.get(event.charge_id)
    refunded_total = event.refund.refunded_total if event.refund else None
    return PaymentEvent(
        provider="stripe",
        event_id=event.event_id,
        event_type=event.type,
        kind=kind,
        payment_id=(event.payment_id or "")[:64] or None,
        checkout_id=checkout_number(event.checkout_id),
        provider_checkout=event.checkout_session_id,
        amount=event.amount,
        currency=event.currency,
        fee=fee,
        method="card",
        book_method="card",
        failure_reason=(event.failure_message or "The card was declined.")[:500]
        if kind == "failed"
        else None,
        # `charge.refunded` tells the charge's refunded total, not the refund just made:
        # each total is one step, so a repeat or an older report of a total is no new refund.
        refund_id=f"{event.charge_id}:{to_minor(refunded_total, event.currency)}"
        if kind == "refunded" and refunded_total is not None and event.currency
        else None,
        refunded_total=refunded_total,
        dispute=DisputeFacts(
            event.dispute.dispute_id,
            event.dispute.amount,
            event.dispute.reason,
            event.dispute.evidence_due_by,
        )
        if event.dispute
        else None,
        occurred_at=event.created,
    )


# Reconciliation lists -----------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceTransaction:
    """A movement of the Stripe balance: a charge (with its fee), a refund, a dispute, a
    payout ... `source` is the id of what caused it (ch_, re_, dp_, po_)."""

    transaction_id: str
    type: str
    reporting_category: str
    amount: Decimal
    fee: Decimal
    net: Decimal
    currency: str
    source: str | None
    status: str
    created: datetime | None
    available_on: datetime | None


@dataclass(frozen=True)
class Payout:
    payout_id: str
    amount: Decimal
    currency: str
    status: str  # pending, in_transit, paid, failed, canceled (a paid one can still fail)
    arrival_date: date | None
    created: datetime | None
    reconciliation_status: str | None  # completed once its balance transactions are final
    balance_transaction: str | None


def _balance_transaction(item: dict) -> BalanceTransaction:
    currency = str(item.get("currency") or "").upper()
    return BalanceTransaction(
        transaction_id=str(item["id"]),
        type=str(item.get("type") or ""),
        reporting_category=str(item.get("reporting_category") or ""),
        amount=from_minor(int(item.get("amount") or 0), currency),
        fee=from_minor(int(item.get("fee") or 0), currency),
        net=from_minor(int(item.get("net") or 0), currency),
        currency=currency,
        source=_id(item.get("source")),
        status=str(item.get("status") or ""),
        created=_time(item.get("created")),
        available_on=_time(item.get("available_on")),
    )


def _payout(item: dict) -> Payout:
    currency = str(item.get("currency") or "").upper()
    arrival = _time(item.get("arrival_date"))
    return Payout(
        payout_id=str(item["id"]),
        amount=from_minor(int(item.get("amount") or 0), currency),
        currency=currency,
        status=str(item.get("status") or ""),
        arrival_date=arrival.date() if arrival else None,
        created=_time(item.get("created")),
        reconciliation_status=item.get("reconciliation_status"),
        balance_transaction=_id(item.get("balance_transaction")),
    )


# The connector ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckoutLine:
    name: str  # what the payer sees, e.g. "Invoice INV-1001"
    amount: Decimal  # per unit, in major units of the session's currency
    quantity: int = 1


class CheckoutSession(NamedTuple):
    session_id: str
    url: str


class StripeConnector(Connector):
    provider = "stripe"
    title = "Stripe"
    # The shape of the webhook path token `clean` makes, checked before any look-up.
    token_shape = WEBHOOK_TOKEN_SHAPE
    description = (
        "Let {clients} abroad pay invoices by card in their own currency through Stripe "
        "Checkout; payments, refunds and disputes come back by webhook."
    )
    fields = (
        Field(
            "secret_key",
            "Secret key",
            secret=True,
            placeholder="sk_live_…",
            help="Stripe Dashboard, Developers, API keys: the secret key, or a restricted key "
            "that may write Checkout Sessions and read balance, events and payouts. Kept "
            "encrypted and never shown again.",
        ),
        Field(
            "webhook_secret",
            "Webhook signing secret",
            secret=True,
            required=False,
            placeholder="whsec_…",
            help="After saving, add a webhook endpoint in Stripe with the URL shown here, "
            "then paste its signing secret. Until then no payment is recorded by itself.",
        ),
    )

    @classmethod
    def clean(cls, raw):
        settings, secrets_, errors = super().clean(raw)
        if secrets_.get("secret_key") and not SECRET_KEY_SHAPE.fullmatch(secrets_["secret_key"]):
            errors["secret_key"] = "A Stripe secret key starts with sk_live_, sk_test_ or rk_."
        signing = secrets_.get("webhook_secret")
        if signing and not SIGNING_SECRET_SHAPE.fullmatch(signing):
            errors["webhook_secret"] = "A webhook signing secret starts with whsec_."
        settings["webhook_token"] = kept_webhook_token(raw)
        return settings, secrets_, errors

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = pooled_client(
                base_url=self.config["STRIPE_API_BASE"].rstrip("/"),
                headers={
                    "Authorization": f"Bearer {self.secrets['secret_key']}",
                    "Stripe-Version": API_VERSION,
                    "Accept": "application/json",
                },
                timeout=TIMEOUT,
            )
        return self._client

    def account_key(self) -> str | None:
        return self.settings.get("webhook_token")

    # The integrations card shows the URL below under this label.
    report_url_label = (
        "Webhook endpoint URL (add it in Stripe, Developers, Webhooks, with the events "
        + ", ".join(sorted(HANDLED_EVENTS))
        + ")"
    )

    def report_url(self) -> str:
        """The webhook endpoint URL the tenant adds in Stripe: BASE_URL, the public address,
        plus this connection's token."""
        return public_url(self.config, f"{WEBHOOK_PATH}/{self.account_key()}")

    def send(self, outgoing: Outgoing) -> Sent:
        # The Connector interface is shared with the messaging connectors; a gateway has no
        # channel, so the delivery code never picks it.
        raise DeliveryError("Stripe takes payments; it does not send messages.", permanent=True)

    # -- requests ------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, params: Mapping, idempotency_key: str | None = None
    ) -> dict:
        pairs = form_pairs(params)
        try:
            if method == "POST":
                if not idempotency_key:
                    raise ValueError("Every POST to Stripe carries an Idempotency-Key.")
                response = self.client.post(
                    path,
                    content=urlencode(pairs).encode(),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "Idempotency-Key": idempotency_key,
                    },
                )
            else:
                response = self.client.request(method, path, params=pairs)
        except httpx.TransportError as exc:
            raise StripeError(f"Stripe unreachable: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise _error_from(response)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise StripeError(f"Stripe answered {path} with something that is not an object.")
        return answer

    def test_connection(self) -> str:
        """Read the balance (`GET /v1/balance`): harmless, and answered only to a key of the
        account."""
        balance = self._request("GET", "/v1/balance", {})
        mode = "live" if balance.get("livemode") else "test"
        return f"Stripe accepted the secret key ({mode} mode)."

    def create_checkout_session(
        self,
        *,
        lines: Sequence[CheckoutLine],
        currency: str,
        checkout_id: str,
        invoice_ids: Sequence,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
        customer_email: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> CheckoutSession:
        """A Checkout Session (mode=payment) for `lines` in `currency`; the payer pays at
        `url`. `checkout_id` (ours) is its client_reference_id; it and the invoice ids are in
        the metadata of the session and of its payment intent, so every event of the payment
        names them. StripeError when Stripe refuses; ValueError when an amount cannot be
        charged in the currency."""
        if not lines:
            raise ValueError("A checkout needs at least one line.")
        if not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise ValueError(f"{currency!r} is not an ISO 4217 currency code.")
        items = []
        for line in lines:
            if line.amount <= 0 or line.quantity < 1:
                raise ValueError(f"{line.name}: the amount and quantity must be positive.")
            items.append(
                {
                    "price_data": {
                        "currency": currency.lower(),
                        "unit_amount": to_minor(line.amount, currency),
                        "product_data": {"name": line.name[:250]},
                    },
                    "quantity": line.quantity,
                }
            )
        tags = _metadata_for(checkout_id, invoice_ids, metadata)
        params = {
            "mode": "payment",
            "line_items": items,
            "client_reference_id": str(checkout_id),
            "metadata": tags,
            "payment_intent_data": {"metadata": tags},
            "success_url": success_url,
            "cancel_url": cancel_url,
            "customer_email": customer_email,
        }
        session = self._request("POST", "/v1/checkout/sessions", params, idempotency_key)
        if not session.get("id") or not session.get("url"):
            raise StripeError("Stripe created a Checkout Session without an id or a URL.")
        return CheckoutSession(str(session["id"]), str(session["url"]))

    def retrieve_checkout_session(self, session_id: str) -> dict:
        return self._request("GET", f"/v1/checkout/sessions/{session_id}", {})

    # -- the payments spine's interface (app.integrations.connectors.gateway) ---------------

    def read_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        return payment_event(self.verify_webhook(body, headers.get(SIGNATURE_HEADER)))

    @staticmethod
    def event_from_stored(body: bytes | str, event_id: str) -> PaymentEvent:
        return payment_event(event_from(read_json(body)))

    def start_checkout(
        self,
        *,
        checkout_id: int,
        lines: list[tuple[int, str, Decimal]],
        currency: str,
        payer_name: str,
        return_url: str,
    ) -> tuple[str, str]:
        """One Checkout Session for the lines (invoice id, number, amount); (cs id, URL).
        The Idempotency-Key is this connection's token and our checkout id: unique per
        workspace, and a retried create gives back the first session."""
        try:
            made = self.create_checkout_session(
                lines=[CheckoutLine(f"Invoice {number}", amount) for _, number, amount in lines],
                currency=currency,
                checkout_id=str(checkout_id),
                invoice_ids=[invoice_id for invoice_id, _, _ in lines],
                success_url=return_url,
                cancel_url=return_url,
                idempotency_key=f"duebook-checkout-{self.account_key()}-{checkout_id}",
            )
        except StripeError as refusal:
            raise GatewayRefusal(
                "Stripe could not be reached; try again shortly."
                if refusal.status is None
                else f"Stripe refused the payment: {refusal}"
            ) from refusal
        except ValueError as refusal:
            raise GatewayRefusal(str(refusal)) from refusal
        return made.session_id, made.url

    def payments_on(self, start: datetime, end: datetime) -> list[PaymentEvent]:
        """The window's events of payments, refunds and disputes, each with its charge's fee
        read from the balance transactions of the same window."""
        fees = {
            txn.source: txn.fee
            for txn in self.balance_transactions_between(start, end)
            if txn.type == "charge" and txn.source
        }
        return [payment_event(event, fees) for event in self.events_between(start, end)]

    def payouts_on(self, start: datetime, end: datetime) -> list[PayoutReport]:
        """The payouts created in the window, each with the day Stripe expects it in the
        bank (a payout without one is not yet scheduled and left for a later run)."""
        return [
            PayoutReport(
                payout_id=payout.payout_id[:64],
                amount=payout.amount,
                currency=payout.currency,
                arrival_date=payout.arrival_date,
                status=payout.status[:16],
            )
            for payout in self.payouts_between(start, end)
            if payout.arrival_date is not None and payout.amount > 0
        ]

    def verify_webhook(self, body: bytes, signature_header: str | None) -> StripeEvent:
        """The event in a webhook to this connection's URL: WebhookRefused (forged, stale or
        unsigned) or BadWebhookBody (not an event) before anything is read from it."""
        verify_signature(body, signature_header, self.secrets.get("webhook_secret"))
        return event_from(read_json(body))

    # -- lists for the daily reconciliation ------------------------------------------------

    def _pages(self, path: str, params: Mapping) -> Iterator[dict]:
        params = {**params, "limit": PAGE_SIZE}
        while True:
            page = self._request("GET", path, params)
            items = page.get("data")
            if not isinstance(items, list):
                raise StripeError(f"Stripe's list {path} has no data.")
            yield from items
            if not page.get("has_more") or not items:
                return
            params["starting_after"] = items[-1]["id"]

    def events_between(
        self, start: datetime, end: datetime, types: Sequence[str] = tuple(HANDLED_EVENTS)
    ) -> Iterator[StripeEvent]:
        """Events created in [start, end), newest first (Stripe keeps 30 days of them)."""
        window = {"created": {"gte": _timestamp(start), "lt": _timestamp(end)}}
        for item in self._pages("/v1/events", {**window, "types": sorted(types)}):
            yield event_from(item)

    def balance_transactions_between(
        self, start: datetime, end: datetime, payout: str | None = None
    ) -> Iterator[BalanceTransaction]:
        window = {"created": {"gte": _timestamp(start), "lt": _timestamp(end)}}
        for item in self._pages("/v1/balance_transactions", {**window, "payout": payout}):
            yield _balance_transaction(item)

    def payouts_between(self, start: datetime, end: datetime) -> Iterator[Payout]:
        window = {"created": {"gte": _timestamp(start), "lt": _timestamp(end)}}
        for item in self._pages("/v1/payouts", window):
            yield _payout(item)
