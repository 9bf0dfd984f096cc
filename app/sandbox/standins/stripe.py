"""Local stand-in for Stripe Checkout and the objects a payment leaves behind, for tests, the
`make run` sandbox and benchmarks.

Contract followed (providers.md §6.2, providers-2.md §3; shapes checked against Stripe's
published OpenAPI document of API version 2023-08-16, tests/contracts/stripe.openapi.json, and
with the official `stripe` SDK pointed at this server):
- Authentication: `Authorization: Bearer <secret key>` (or HTTP Basic with the key as user);
  else 401 `invalid_request_error`.
- `POST /v1/checkout/sessions`, form-encoded with brackets (`line_items[0][price_data]
  [unit_amount]=118000`): `mode=payment`, `success_url` (required), `cancel_url`,
  `line_items[n][price_data][currency|unit_amount|product_data][name]]` and `[quantity]`,
  `client_reference_id`, `metadata[...]`, `payment_intent_data[metadata][...]`,
  `customer_email`. Answers the `checkout.session` object (status `open`, payment_status
  `unpaid`, `payment_intent` null until paid, as since API 2022-08-01) whose `url` is this
  server's hosted page. `GET /v1/checkout/sessions/{id}` returns its current state.
- The hosted page (`GET /c/pay/{id}`) shows what is due with *Pay* and *Decline*. *Pay* makes
  the payment intent (`pi_`), its charge (`ch_`) and balance transaction (`txn_`, fee 2.9% +
  30 minor units, a made-up rule), completes the session, sends `checkout.session.completed`
  and `payment_intent.succeeded`, and redirects to `success_url` (`{CHECKOUT_SESSION_ID}`
  replaced). *Decline* sends `payment_intent.payment_failed` (card_declined) and leaves the
  session open, as Checkout does.
- Webhooks: each event (`{"id": "evt_…", "object": "event", "api_version", "created",
  "data": {"object"}, "livemode", "pending_webhooks", "request", "type"}`) is POSTed to the
  webhook URL with `Stripe-Signature: t=<now>,v1=<HMAC-SHA256 of "t.body">` under the
  endpoint's signing secret. Retried on failure like the other stand-ins.
- `Idempotency-Key` on a POST: the same key with the same parameters gets the first answer
  again (header `Idempotent-Replayed: true`, nothing new made); with other parameters a 400
  `idempotency_error`. Requests that fail validation are not remembered (Stripe saves a
  result only once the endpoint started executing).
- Lists for reconciliation: `GET /v1/events` (`type`, `types[]`, `created[gte|gt|lte|lt]`),
  `GET /v1/balance_transactions` (`payout`, `type`, `created`), `GET /v1/payouts`
  (`status`, `created`), each newest first, `limit` 1..100 (default 10), `starting_after`,
  answered as `{"object": "list", "data", "has_more", "url"}`. `GET /v1/balance`.
- Errors: `{"error": {"type", "code", "message", "param", "doc_url"}}` (400
  invalid_request_error / parameter_missing / parameter_invalid_integer, 401, 404
  resource_missing, 429 rate_limit, 500 api_error).

Sandbox operations (`/_standin/...`, also methods): pay or decline a session, refund a charge
(`charge.refunded`), open a dispute (`charge.dispute.created`), pay out the balance
(`payout.paid`), and send an event again, with an old timestamp or a wrong secret if asked
(replays and forgeries for tests).

Not implemented: Payment Links, prices and products by id, customers, subscriptions,
async payment methods, taxes, shipping, `expand[]`, `ending_before`, Connect accounts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
from decimal import Decimal
from urllib.parse import parse_qs, parse_qsl, urlencode

from .base import Fault, Request, Response, StandinServer, json_response

API_VERSION = "2023-08-16"
DEFAULT_SECRET_KEY = "sk_test_standin0000000000000000"
DEFAULT_WEBHOOK_SECRET = "whsec_standin0000000000000000000"
SESSION_SECONDS = 24 * 3600
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
SESSION = re.compile(r"^/v1/checkout/sessions/(cs_test_[A-Za-z0-9]+)$")
PAGE = re.compile(r"^/c/pay/(cs_test_[A-Za-z0-9]+)$")
ADMIN_SESSION = re.compile(r"^/_standin/checkout/(cs_test_[A-Za-z0-9]+)/(pay|decline)$")
ADMIN_CHARGE = re.compile(r"^/_standin/charges/(ch_[A-Za-z0-9]+)/(refund|dispute)$")
ADMIN_EVENT = re.compile(r"^/_standin/events/(evt_[A-Za-z0-9]+)/resend$")
LISTS = {
    "/v1/events": "events",
    "/v1/balance_transactions": "balance_transactions",
    "/v1/payouts": "payouts",
}
DOCS = "https://stripe.com/docs/error-codes"


def stripe_signature(secret: str, body: bytes, timestamp: int) -> str:
    """`Stripe-Signature` for `body` (providers.md §6.2)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def parse_form(body: bytes) -> dict:
    """A form in Stripe's bracket notation as nested dicts and lists: `a[b][0][c]=v` is
    {"a": {"b": [{"c": "v"}]}}; `a[]=v` appends. Values stay strings."""
    root: dict = {}
    for name, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
        head, _, rest = name.partition("[")
        keys = [head] + (rest[:-1].split("][") if rest.endswith("]") else [])
        node = root
        for position, key in enumerate(keys):
            last = position == len(keys) - 1
            if key == "":
                key = str(len(node))
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    raise ValueError(f"{name} mixes a value and an object")
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    items = {key: _lists(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def stripe_error(
    status: int,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> Response:
    error = {"type": error_type, "message": message}
    if code:
        error["code"] = code
        error["doc_url"] = f"{DOCS}#{code.replace('_', '-')}"
    if param:
        error["param"] = param
    return json_response(status, {"error": error}, [("Request-Id", _new_id("req_", 14))])


class _Invalid(Exception):
    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param = param
        self.code = code


def _new_id(prefix: str, length: int = 24) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def _integer(value, param: str, minimum: int = 0) -> int:
    text = str(value)
    if not re.fullmatch(r"-?\d+", text):
        raise _Invalid(f"Invalid integer: {text}", param, "parameter_invalid_integer")
    number = int(text)
    if number < minimum:
        raise _Invalid(f"This value must be greater than or equal to {minimum}.", param)
    return number


def _metadata(value, param: str) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise _Invalid("Invalid object", param)
    if len(value) > 50:
        raise _Invalid("You can only specify up to 50 metadata keys.", param)
    for key, item in value.items():
        if len(key) > 40 or len(str(item)) > 500:
            raise _Invalid(
                "Metadata keys can be 40 characters and values 500 characters long.",
                f"{param}[{key}]",
            )
    return {key: str(item) for key, item in value.items()}


def _fee(amount: int) -> int:
    return round(Decimal(amount) * Decimal("0.029")) + 30


class StripeStandin(StandinServer):
    """Stripe Checkout stand-in. See the module docstring for the contract."""

    name = "stripe"
    default_status_script = ()

    def __init__(
        self,
        *,
        secret_key: str = DEFAULT_SECRET_KEY,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
        **common,
    ) -> None:
        super().__init__(**common)
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self._state_lock = threading.RLock()
        self.reset_state()

    def reset_state(self) -> None:
        with self._state_lock:
            self.sessions: dict[str, dict] = {}
            self.intents: dict[str, dict] = {}
            self.charges: dict[str, dict] = {}
            self.events: list[dict] = []
            self.balance_transactions: list[dict] = []
            self.payouts: list[dict] = []
            self._by_key: dict[str, tuple[str, Response]] = {}

    # -- routes ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        page = PAGE.match(request.path)
        if page:
            return self._hosted_page(request, page.group(1))
        if not self._authorized(request):
            return self._unauthorized(request)
        if request.method == "POST":
            fault = self.take_fault()
            if fault:
                return fault
            if self.over_rate(self.secret_key):
                return stripe_error(
                    429,
                    "Too many requests hit the API too quickly.",
                    error_type="invalid_request_error",
                    code="rate_limit",
                )
        try:
            if request.path == "/v1/checkout/sessions" and request.method == "POST":
                return self._idempotent(request, self._create_session)
            session = SESSION.match(request.path)
            if session and request.method == "GET":
                with self._state_lock:
                    found = self.sessions.get(session.group(1))
                if found is None:
                    return self._missing("checkout.session", session.group(1), "session")
                return json_response(200, self._public(found))
            if request.path in LISTS and request.method == "GET":
                return self._list(request, LISTS[request.path])
            if request.path == "/v1/balance" and request.method == "GET":
                return json_response(200, self._balance())
        except _Invalid as exc:
            self.stats_counters.add("rejected")
            return stripe_error(400, str(exc), code=exc.code, param=exc.param)
        return stripe_error(
            404,
            f"Unrecognized request URL ({request.method}: {request.path}).",
        )

    def admin(self, request: Request) -> Response | None:
        if request.method != "POST":
            return None
        spec = json.loads(request.body or b"{}")
        session = ADMIN_SESSION.match(request.path)
        if session:
            act = self.pay if session.group(2) == "pay" else self.decline
            done = act(session.group(1))
            return json_response(200 if done else 404, done or {"error": "no such session"})
        charge = ADMIN_CHARGE.match(request.path)
        if charge:
            if charge.group(2) == "refund":
                done = self.refund(charge.group(1), spec.get("amount"))
            else:
                done = self.dispute(charge.group(1), spec.get("reason", "fraudulent"))
            return json_response(200 if done else 404, done or {"error": "no such charge"})
        event = ADMIN_EVENT.match(request.path)
        if event:
            sent = self.resend(event.group(1), spec.get("timestamp"), spec.get("secret"))
            return json_response(200 if sent else 404, {"resent": sent})
        if request.path == "/_standin/payouts":
            return json_response(200, {"payouts": self.pay_out()})
        return None

    def fault_response(self, fault: Fault) -> Response:
        if fault.status == 429:
            return stripe_error(
                429,
                fault.message or "Too many requests hit the API too quickly.",
                code="rate_limit",
            )
        if fault.status >= 500:
            return stripe_error(
                fault.status, fault.message or "An unknown error occurred", error_type="api_error"
            )
        return stripe_error(fault.status, fault.message or "Injected fault")

    # -- authentication and idempotency ------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                credential = base64.b64decode(credential).decode().partition(":")[0]
            except ValueError:
                return False
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credential.encode(), self.secret_key.encode())

    def _unauthorized(self, request: Request) -> Response:
        given = request.headers.get("authorization", "").partition(" ")[2]
        if not given:
            message = "You did not provide an API key."
        else:
            message = f"Invalid API Key provided: {given[:8]}****{given[-4:]}"
        return stripe_error(401, message)

    def _idempotent(self, request: Request, create) -> Response:
        key = request.headers.get("idempotency-key")
        if not key:
            return create(request)
        fingerprint = hashlib.sha256(
            request.path.encode()
            + b"?"
            + urlencode(sorted(parse_qsl(request.body.decode()))).encode()
        ).hexdigest()
        with self._state_lock:
            stored = self._by_key.get(key)
            if stored is None:
                answer = create(request)
                if answer.status < 400 or answer.status >= 500:
                    self._by_key[key] = (fingerprint, answer)
                self.count_key(key)
                return answer
        self.count_key(key)
        if stored[0] != fingerprint:
            return stripe_error(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                "were first used with. Try using a key other than "
                f"'{key}' if you meant to execute a different request.",
                error_type="idempotency_error",
            )
        self.stats_counters.add("duplicate_keys")
        first = stored[1]
        return Response(first.status, first.body, [*first.headers, ("Idempotent-Replayed", "true")])

    # -- checkout sessions -------------------------------------------------------------------

    def _create_session(self, request: Request) -> Response:
        try:
            form = parse_form(request.body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _Invalid(f"The form cannot be read: {exc}") from exc
        if form.get("mode") != "payment":
            raise _Invalid("This stand-in makes Checkout Sessions in payment mode only.", "mode")
        if not form.get("success_url"):
            raise _Invalid(
                "Missing required param: success_url.", "success_url", "parameter_missing"
            )
        lines = form.get("line_items")
        if not isinstance(lines, list) or not lines:
            raise _Invalid(
                "You must provide line_items in payment mode.", "line_items", "parameter_missing"
            )
        currencies, total = set(), 0
        for n, line in enumerate(lines):
            where = f"line_items[{n}]"
            price = line.get("price_data") if isinstance(line, dict) else None
            if not isinstance(price, dict):
                raise _Invalid("Give price_data (prices by id are not supported here).", where)
            currency = str(price.get("currency") or "").lower()
            if not re.fullmatch(r"[a-z]{3}", currency):
                raise _Invalid("Invalid currency.", f"{where}[price_data][currency]")
            currencies.add(currency)
            name = (price.get("product_data") or {}).get("name")
            if not name:
                raise _Invalid(
                    "Missing required param: product_data[name].",
                    f"{where}[price_data][product_data][name]",
                    "parameter_missing",
                )
            unit = _integer(price.get("unit_amount", ""), f"{where}[price_data][unit_amount]")
            quantity = _integer(line.get("quantity", ""), f"{where}[quantity]", minimum=1)
            total += unit * quantity
        if len(currencies) != 1:
            raise _Invalid("All line items must be in the same currency.", "line_items")
        metadata = _metadata(form.get("metadata"), "metadata")
        intent_data = form.get("payment_intent_data") or {}
        if not isinstance(intent_data, dict):
            raise _Invalid("Invalid object", "payment_intent_data")
        intent_metadata = _metadata(intent_data.get("metadata"), "payment_intent_data[metadata]")
        reference = form.get("client_reference_id")
        if reference is not None and not 1 <= len(reference) <= 200:
            raise _Invalid("client_reference_id is 1 to 200 characters.", "client_reference_id")
        now = int(self.clock())
        session_id = _new_id("cs_test_", 58)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": total,
            "amount_total": total,
            "automatic_tax": {"enabled": False, "status": None},
            "billing_address_collection": None,
            "cancel_url": form.get("cancel_url"),
            "client_reference_id": reference,
            "consent": None,
            "consent_collection": None,
            "created": now,
            "currency": currencies.pop(),
            "custom_fields": [],
            "custom_text": {"shipping_address": None, "submit": None},
            "customer": None,
            "customer_creation": "if_required",
            "customer_details": None,
            "customer_email": form.get("customer_email"),
            "expires_at": now + SESSION_SECONDS,
            "invoice": None,
            "livemode": False,
            "locale": None,
            "metadata": metadata,
            "mode": "payment",
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "always",
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "shipping_options": [],
            "status": "open",
            "success_url": form["success_url"],
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "url": f"{self.url}/c/pay/{session_id}",
        }
        with self._state_lock:
            self.sessions[session_id] = session
            session["_lines"] = [
                (
                    line["price_data"]["product_data"]["name"],
                    int(line["quantity"]),
                    int(line["price_data"]["unit_amount"]),
                )
                for line in lines
            ]
            session["_intent_metadata"] = intent_metadata
        self.stats_counters.add("accepted")
        return json_response(200, self._public(session))

    @staticmethod
    def _public(session: dict) -> dict:
        return {key: value for key, value in session.items() if not key.startswith("_")}

    def session(self, session_id: str) -> dict | None:
        with self._state_lock:
            found = self.sessions.get(session_id)
            return self._public(found) if found else None

    def pay(self, session_id: str) -> dict | None:
        """The sandbox payer pays: the payment intent, its charge and balance transaction, the
        session completed, and its two events. The session, or None when it is unknown;
        paying a completed session again changes nothing."""
        with self._state_lock:
            session = self.sessions.get(session_id)
            if session is None:
                return None
            if session["status"] != "open":
                return self._public(session)
            now = int(self.clock())
            amount, currency = session["amount_total"], session["currency"]
            intent = self._intent_for(session)
            charge_id, txn_id = _new_id("ch_"), _new_id("txn_")
            fee = _fee(amount)
            charge = {
                "id": charge_id,
                "object": "charge",
                "amount": amount,
                "amount_captured": amount,
                "amount_refunded": 0,
                "balance_transaction": txn_id,
                "captured": True,
                "created": now,
                "currency": currency,
                "livemode": False,
                "metadata": dict(intent["metadata"]),
                "paid": True,
                "payment_intent": intent["id"],
                "refunded": False,
                "status": "succeeded",
            }
            self.charges[charge_id] = charge
            self._add_transaction(txn_id, amount, fee, currency, "charge", "charge", charge_id)
            intent.update(
                status="succeeded",
                amount_received=amount,
                latest_charge=charge_id,
                last_payment_error=None,
            )
            session.update(status="complete", payment_status="paid", payment_intent=intent["id"])
            self._event("checkout.session.completed", self._public(session))
            self._event("payment_intent.succeeded", dict(intent))
            return self._public(session)

    def decline(self, session_id: str) -> dict | None:
        """The sandbox payer's card is declined: `payment_intent.payment_failed`; the session
        stays open for another try."""
        with self._state_lock:
            session = self.sessions.get(session_id)
            if session is None:
                return None
            if session["status"] != "open":
                return self._public(session)
            intent = self._intent_for(session)
            intent.update(
                status="requires_payment_method",
                last_payment_error={
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": "generic_decline",
                    "message": "Your card was declined.",
                },
            )
            session["payment_intent"] = intent["id"]
            self._event("payment_intent.payment_failed", dict(intent))
            return self._public(session)

    def _intent_for(self, session: dict) -> dict:
        intent = self.intents.get(session["payment_intent"] or "")
        if intent is None:
            intent = {
                "id": _new_id("pi_"),
                "object": "payment_intent",
                "amount": session["amount_total"],
                "amount_received": 0,
                "created": int(self.clock()),
                "currency": session["currency"],
                "latest_charge": None,
                "livemode": False,
                "metadata": dict(session["_intent_metadata"]),
                "status": "requires_payment_method",
            }
            self.intents[intent["id"]] = intent
        return intent

    def refund(self, charge_id: str, amount: int | None = None) -> dict | None:
        """Refund `amount` (minor units; the rest of the charge when None): `charge.refunded`
        with the charge's new totals."""
        with self._state_lock:
            charge = self.charges.get(charge_id)
            if charge is None:
                return None
            left = charge["amount"] - charge["amount_refunded"]
            amount = left if amount is None else min(int(amount), left)
            if amount <= 0:
                return dict(charge)
            refund_id = _new_id("re_")
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            self._add_transaction(
                _new_id("txn_"), -amount, 0, charge["currency"], "refund", "refund", refund_id
            )
            self._event("charge.refunded", dict(charge))
            return dict(charge)

    def dispute(self, charge_id: str, reason: str = "fraudulent") -> dict | None:
        """The payer's bank disputes the charge: `charge.dispute.created`; the amount and a
        15.00 dispute fee leave the balance."""
        with self._state_lock:
            charge = self.charges.get(charge_id)
            if charge is None:
                return None
            now = int(self.clock())
            dispute = {
                "id": _new_id("dp_"),
                "object": "dispute",
                "amount": charge["amount"],
                "charge": charge_id,
                "created": now,
                "currency": charge["currency"],
                "evidence_details": {
                    "due_by": now + 7 * 86400,
                    "has_evidence": False,
                    "past_due": False,
                    "submission_count": 0,
                },
                "is_charge_refundable": False,
                "livemode": False,
                "metadata": {},
                "payment_intent": charge["payment_intent"],
                "reason": reason,
                "status": "needs_response",
            }
            self._add_transaction(
                _new_id("txn_"),
                -charge["amount"],
                1500,
                charge["currency"],
                "adjustment",
                "dispute",
                dispute["id"],
            )
            self._event("charge.dispute.created", dispute)
            return dispute

    def pay_out(self) -> list[dict]:
        """Pay out every balance transaction not yet paid out, one payout per currency:
        `payout.paid`."""
        made = []
        with self._state_lock:
            pending: dict[str, list[dict]] = {}
            for txn in self.balance_transactions:
                if txn["_payout"] is None and txn["type"] != "payout":
                    pending.setdefault(txn["currency"], []).append(txn)
            for currency, transactions in pending.items():
                net = sum(txn["net"] for txn in transactions)
                if net <= 0:
                    continue
                now = int(self.clock())
                payout_id, txn_id = _new_id("po_"), _new_id("txn_")
                payout = {
                    "id": payout_id,
                    "object": "payout",
                    "amount": net,
                    "arrival_date": now,
                    "automatic": True,
                    "balance_transaction": txn_id,
                    "created": now,
                    "currency": currency,
                    "description": "STRIPE PAYOUT",
                    "livemode": False,
                    "metadata": {},
                    "method": "standard",
                    "reconciliation_status": "completed",
                    "source_type": "card",
                    "statement_descriptor": None,
                    "status": "paid",
                    "type": "bank_account",
                }
                for txn in transactions:
                    txn["_payout"] = payout_id
                self._add_transaction(txn_id, -net, 0, currency, "payout", "payout", payout_id)
                self.balance_transactions[-1]["_payout"] = payout_id
                self.payouts.append(payout)
                self._event("payout.paid", dict(payout))
                made.append(dict(payout))
        return made

    def _add_transaction(self, txn_id, amount, fee, currency, kind, category, source) -> None:
        now = int(self.clock())
        self.balance_transactions.append(
            {
                "id": txn_id,
                "object": "balance_transaction",
                "amount": amount,
                "available_on": now + 2 * 86400,
                "created": now,
                "currency": currency,
                "description": None,
                "exchange_rate": None,
                "fee": fee,
                "fee_details": (
                    [
                        {
                            "amount": fee,
                            "application": None,
                            "currency": currency,
                            "description": "Stripe processing fees",
                            "type": "stripe_fee",
                        }
                    ]
                    if fee
                    else []
                ),
                "net": amount - fee,
                "reporting_category": category,
                "source": source,
                "status": "pending",
                "type": kind,
                "_payout": None,
            }
        )

    # -- events ------------------------------------------------------------------------------

    def _event(self, kind: str, obj: dict) -> dict:
        event = {
            "id": _new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(self.clock()),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1 if self.webhook_url else 0,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }
        self.events.append(event)
        self._deliver(event)
        return event

    def _deliver(self, event: dict, timestamp: int | None = None, secret: str | None = None):
        if not self.webhook_url:
            return
        body = json.dumps(event, indent=2).encode()
        signed_at = int(self.clock()) if timestamp is None else int(timestamp)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": stripe_signature(secret or self.webhook_secret, body, signed_at),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        self.webhooks.post(self.webhook_url, body, headers, delay=self.status_delay)

    def resend(self, event_id: str, timestamp: int | None = None, secret: str | None = None):
        """Deliver an event again (Stripe retries and duplicates): signed now, or at
        `timestamp` (a replay), or with another `secret` (a forgery)."""
        with self._state_lock:
            event = next((item for item in self.events if item["id"] == event_id), None)
        if event is None:
            return False
        self._deliver(event, timestamp, secret)
        return True

    # -- lists -------------------------------------------------------------------------------

    def _list(self, request: Request, kind: str) -> Response:
        limit = _integer(request.arg("limit", "10"), "limit", minimum=1)
        if limit > 100:
            raise _Invalid("This value must be less than or equal to 100.", "limit")
        bounds = {}
        for name, values in request.query.items():
            bound = re.fullmatch(r"created\[(gte|gt|lte|lt)\]", name)
            if bound:
                bounds[bound.group(1)] = _integer(values[-1], name)
            elif name == "created":
                bounds["eq"] = _integer(values[-1], name)
        types = [
            values[-1]
            for name, values in request.query.items()
            if re.fullmatch(r"types\[\d*\]", name)
        ]
        if request.arg("type"):
            types.append(request.arg("type"))
        with self._state_lock:
            items = [dict(item) for item in getattr(self, kind)]
        items = [
            item
            for item in items
            if _within(item["created"], bounds)
            and (kind != "events" or not types or item["type"] in types)
            and (kind != "balance_transactions" or _matches(item, request))
            and (kind != "payouts" or request.arg("status") in (None, item["status"]))
        ]
        items.reverse()  # newest first
        after = request.arg("starting_after")
        if after:
            position = next((n for n, item in enumerate(items) if item["id"] == after), None)
            if position is None:
                return self._missing(kind[:-1], after, "starting_after")
            items = items[position + 1 :]
        page = [{k: v for k, v in item.items() if not k.startswith("_")} for item in items[:limit]]
        return json_response(
            200,
            {"object": "list", "data": page, "has_more": len(items) > limit, "url": request.path},
        )

    def _balance(self) -> dict:
        """What the balance transactions add up to, available once their day has come."""
        now = int(self.clock())
        totals: dict[str, dict[str, int]] = {}
        with self._state_lock:
            for txn in self.balance_transactions:
                sums = totals.setdefault(txn["currency"], {"available": 0, "pending": 0})
                sums["available" if txn["available_on"] <= now else "pending"] += txn["net"]
        totals = totals or {"usd": {"available": 0, "pending": 0}}
        return {
            "object": "balance",
            **{
                part: [
                    {
                        "amount": sums[part],
                        "currency": currency,
                        "source_types": {"card": sums[part]},
                    }
                    for currency, sums in totals.items()
                ]
                for part in ("available", "pending")
            },
            "livemode": False,
        }

    def _missing(self, kind: str, object_id: str, param: str) -> Response:
        return stripe_error(
            404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
        )

    # -- the hosted checkout page -----------------------------------------------------------

    def _hosted_page(self, request: Request, session_id: str) -> Response:
        with self._state_lock:
            session = self.sessions.get(session_id)
        if session is None:
            return _page(404, "Not found", "<p>This checkout does not exist.</p>")
        if request.method == "POST":
            action = parse_qs(request.body.decode("utf-8", "replace")).get("action", [""])[-1]
            if action == "pay":
                paid = self.pay(session_id)
                if paid and paid["status"] == "complete":
                    target = paid["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
                    return Response(303, b"", [("Location", target)])
            elif action == "decline":
                self.decline(session_id)
                return self._checkout_form(session, "Your card was declined. Try again.")
        if session["status"] == "complete":
            return _page(200, "Paid", "<p>This checkout is already paid. Thank you.</p>")
        return self._checkout_form(session)

    def _checkout_form(self, session: dict, notice: str = "") -> Response:
        currency = session["currency"]

        def money(minor: int) -> str:
            digits = 0 if currency in ZERO_DECIMAL else 2
            return f"{currency.upper()} {Decimal(minor).scaleb(-digits):,.{digits}f}"

        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{quantity}</td><td>{money(unit)}</td></tr>"
            for name, quantity, unit in session["_lines"]
        )
        cancel = session.get("cancel_url")
        body = (
            f"<h1>Pay {money(session['amount_total'])}</h1>"
            + (f'<p role="alert">{html.escape(notice)}</p>' if notice else "")
            + f"<table><tr><th>Item</th><th>Qty</th><th>Price</th></tr>{rows}</table>"
            + '<form method="post"><button name="action" value="pay">Pay</button> '
            + '<button name="action" value="decline">Decline</button></form>'
            + (f'<p><a href="{html.escape(cancel)}">Cancel</a></p>' if cancel else "")
            + "<p><small>Stripe sandbox: no card is charged.</small></p>"
        )
        return _page(200, "Stripe Checkout (sandbox)", body)


def _within(created: int, bounds: dict) -> bool:
    checks = {
        "gte": created >= bounds.get("gte", created),
        "gt": "gt" not in bounds or created > bounds["gt"],
        "lte": created <= bounds.get("lte", created),
        "lt": "lt" not in bounds or created < bounds["lt"],
        "eq": created == bounds.get("eq", created),
    }
    return all(checks.values())


def _matches(txn: dict, request: Request) -> bool:
    payout = request.arg("payout")
    kind = request.arg("type")
    return (payout is None or txn["_payout"] == payout) and (kind is None or txn["type"] == kind)


def _page(status: int, title: str, body: str) -> Response:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )
    return Response(status, document.encode(), [("Content-Type", "text/html; charset=utf-8")])
