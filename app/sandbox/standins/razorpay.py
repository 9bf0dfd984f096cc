"""Local stand-in for Razorpay's Payment Links and Payments APIs and its webhooks, for tests,
the `make run` sandbox and benchmarks.

Contract followed (providers.md §6.1, providers-2.md §2, and the official razorpay-node
typings and razorpay-python test fixtures kept in tests/contracts/razorpay):
- HTTP Basic auth `key_id:key_secret` on every /v1 route; a wrong key answers 401 with
  Razorpay's error shape `{"error": {"code": "BAD_REQUEST_ERROR", "description": ...}}`.
  Header names are read case-insensitively (the SDK sends `Content-type`).
- `POST /v1/payment_links` (JSON: `amount` in paise, at least 100; `currency`;
  `reference_id` unique per link, at most 40 characters, a repeat is a 400; `description` at
  most 2,048; `customer`, `notify`, `reminder_enable`, `notes` at most 15 pairs,
  `callback_url`, `callback_method`) answers the link entity with `id` (`plink_` + 14
  characters), `short_url`, `status` "created". `GET /v1/payment_links/{id}` and
  `GET /v1/payment_links` (`{"payment_links": [...], "count": n}`) read them back.
- `GET /v1/payments?from=&to=&count=&skip=` (count at most 100, newest first) answers
  `{"entity": "collection", "count": n, "items": [...]}`; `GET /v1/payments/{id}` one payment.
- The hosted page: the link's `short_url` (`/i/<code>`) shows what is asked and two buttons,
  "Pay" and "Fail this payment" (the sandbox payer's choice). Paying captures a payment (UPI),
  marks the link paid, sends `payment.captured` and `payment_link.paid`, and sends the payer to
  the link's `callback_url` with Razorpay's query parameters and their signature
  (HMAC-SHA256 with the key secret of "plink|reference|status|payment"). Failing sends
  `payment.failed` and the link stays open.
- Webhooks: POSTed to `webhook_url` as compact JSON, `X-Razorpay-Signature` = hex
  HMAC-SHA256(webhook secret, raw body), `X-Razorpay-Event-Id` unique per event. A payment
  carries the notes of its link (how a payment finds its pay request without its link event).
- `GET /v1/settlements?from=&to=&count=&skip=` answers the settlements made in the window
  as the payments list does; a settlement is `{"id": "setl_…", "entity": "settlement",
  "amount" (paise), "status": "processed", "fees", "tax", "utr", "created_at"}` (Razorpay's
  published settlement entity). `POST /_standin/settle` settles every captured payment not
  yet settled: one settlement of what they took less their fees (and tax on them).
- `POST /_standin/pay` {"link_id", "outcome": "captured"|"failed", "method"} and
  `POST /_standin/refund` {"payment_id", "amount"?} script what a payer or the merchant did;
  `refund` sends `refund.processed` with the refund and its payment.

Not implemented: partial payments of a link, expiry, cancel, orders, settlement recon, the
payment.authorized step (payments here are captured at once, as with auto-capture).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import string
import threading
from urllib.parse import parse_qs, urlencode

from .base import Fault, Request, Response, StandinServer, json_response

DEFAULT_KEY_ID = "rzp_test_standin00000001"
DEFAULT_KEY_SECRET = "standin-razorpay-key-secret"
DEFAULT_WEBHOOK_SECRET = "standin-razorpay-webhook-secret"
MAX_COUNT = 100
_ALPHABET = string.ascii_letters + string.digits


def razorpay_id(prefix: str) -> str:
    """A Razorpay id: its prefix and 14 case-sensitive letters and digits."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(14))


def webhook_signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _error(status: int, description: str, field: str | None = None) -> Response:
    return json_response(
        status,
        {
            "error": {
                "code": "BAD_REQUEST_ERROR" if status < 500 else "SERVER_ERROR",
                "description": description,
                "source": "business" if status == 400 else "NA",
                "step": "payment_initiation" if status == 400 else "NA",
                "reason": "input_validation_failed" if status == 400 else "NA",
                "metadata": {},
                "field": field,
            }
        },
    )


class RazorpayStandin(StandinServer):
    """Razorpay stand-in. See the module docstring for the contract."""

    name = "razorpay"
    default_status_script = ()

    def __init__(
        self,
        *,
        key_id: str = DEFAULT_KEY_ID,
        key_secret: str = DEFAULT_KEY_SECRET,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
        **common,
    ) -> None:
        # Its recordings (links made, events sent) stay in memory: the record folder is the
        # sandbox inbox's, which shows the messages clients received, and these are not that.
        common.pop("record_dir", None)
        super().__init__(**common)
        self.key_id = key_id
        self.key_secret = key_secret
        self.webhook_secret = webhook_secret
        self._state_lock = threading.Lock()
        self.reset_state()

    def reset_state(self) -> None:
        with self._state_lock:
            self.links: dict[str, dict] = {}
            self.payments: dict[str, dict] = {}
            self.settlements: list[dict] = []
            self._settled: set[str] = set()
            self._codes: dict[str, str] = {}
            self._references: set[str] = set()

    # -- what a payer or the merchant does ------------------------------------------------

    def pay(self, link_id: str, outcome: str = "captured", method: str = "upi") -> dict:
        """The payer pays (`captured`) or fails (`failed`) a link; the events are sent.
        Returns the payment."""
        with self._state_lock:
            link = self.links[link_id]
            if link["status"] == "paid":
                raise ValueError("this payment link is already paid")
            payment = self._payment(link, outcome, method)
            self.payments[payment["id"]] = payment
            if outcome == "captured":
                now = int(self.clock())
                link["status"] = "paid"
                link["amount_paid"] = payment["amount"]
                link["order_id"] = payment["order_id"]
                link["updated_at"] = now
                link["payments"] = [
                    {
                        "amount": payment["amount"],
                        "created_at": payment["created_at"],
                        "method": payment["method"],
                        "payment_id": payment["id"],
                        "status": "captured",
                    }
                ]
            link_now, payment_now = dict(link), dict(payment)
        if outcome == "captured":
            self.send_event("payment.captured", {"payment": {"entity": payment_now}})
            self.send_event(
                "payment_link.paid",
                {
                    "payment_link": {"entity": link_now},
                    "order": {"entity": self._order(link_now)},
                    "payment": {"entity": payment_now},
                },
            )
        else:
            self.send_event("payment.failed", {"payment": {"entity": payment_now}})
        return payment_now

    def settle(self) -> dict | None:
        """Razorpay pays the merchant: one settlement of the captured payments not yet
        settled, less their fees (tax on the fees included in them). None when nothing is
        left to settle."""
        with self._state_lock:
            due = [
                p
                for p in self.payments.values()
                if p["status"] == "captured" and p["id"] not in self._settled
            ]
            if not due:
                return None
            fees = sum(p["fee"] or 0 for p in due)
            settlement = {
                "id": razorpay_id("setl"),
                "entity": "settlement",
                "amount": sum(p["amount"] for p in due) - fees,
                "status": "processed",
                "fees": fees,
                "tax": sum(p["tax"] or 0 for p in due),
                "utr": "".join(secrets.choice(_ALPHABET) for _ in range(16)),
                "created_at": int(self.clock()),
            }
            self._settled.update(p["id"] for p in due)
            self.settlements.append(settlement)
            return dict(settlement)

    def refund(self, payment_id: str, amount: int | None = None) -> dict:
        """The merchant refunds a captured payment (all of what is left by default); sends
        `refund.processed`. Returns the refund."""
        with self._state_lock:
            payment = self.payments[payment_id]
            left = payment["amount"] - payment["amount_refunded"]
            amount = left if amount is None else amount
            if payment["status"] not in ("captured", "refunded") or not 0 < amount <= left:
                raise ValueError("nothing of this payment can be refunded")
            payment["amount_refunded"] += amount
            full = payment["amount_refunded"] == payment["amount"]
            payment["refund_status"] = "full" if full else "partial"
            if full:
                payment["status"] = "refunded"
            refund = {
                "id": razorpay_id("rfnd"),
                "entity": "refund",
                "amount": amount,
                "currency": payment["currency"],
                "payment_id": payment_id,
                "notes": [],
                "receipt": None,
                "acquirer_data": {"arn": None},
                "created_at": int(self.clock()),
                "batch_id": None,
                "status": "processed",
                "speed_processed": "normal",
                "speed_requested": "normal",
            }
            payment_now = dict(payment)
        self.send_event(
            "refund.processed",
            {"refund": {"entity": refund}, "payment": {"entity": payment_now}},
        )
        return refund

    def signed_event(self, kind: str, payload: dict) -> tuple[bytes, dict[str, str]]:
        """The body and headers of an event as Razorpay sends it."""
        event = {
            "entity": "event",
            "account_id": "acc_" + hashlib.sha256(self.key_id.encode()).hexdigest()[:14],
            "event": kind,
            "contains": list(payload),
            "payload": payload,
            "created_at": int(self.clock()),
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": webhook_signature(body, self.webhook_secret),
            "X-Razorpay-Event-Id": razorpay_id("evt"),
        }
        return body, headers

    def send_event(self, kind: str, payload: dict) -> None:
        body, headers = self.signed_event(kind, payload)
        self.record({"event": kind, "event_id": headers["X-Razorpay-Event-Id"]})
        if self.webhook_url:
            self.webhooks.post(self.webhook_url, body, headers, delay=self.status_delay)

    # -- routes ----------------------------------------------------------------------------

    def admin(self, request: Request) -> Response | None:
        route = (request.method, request.path.rstrip("/"))
        spec = request.json() if request.method == "POST" else None
        try:
            if route == ("POST", "/_standin/pay"):
                return json_response(
                    200,
                    self.pay(
                        spec["link_id"], spec.get("outcome", "captured"), spec.get("method", "upi")
                    ),
                )
            if route == ("POST", "/_standin/settle"):
                return json_response(200, {"settlement": self.settle()})
            if route == ("POST", "/_standin/refund"):
                return json_response(200, self.refund(spec["payment_id"], spec.get("amount")))
        except (KeyError, TypeError, ValueError) as exc:
            return _error(400, f"stand-in: {exc}")
        return None

    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path.startswith("/i/"):
            return self._hosted_page(request, path)
        if not self._authorised(request):
            return _error(401, "The api key provided is invalid")
        fault = self.take_fault()
        if fault:
            return fault
        route = (request.method, path)
        if route == ("POST", "/v1/payment_links"):
            return self._create_link(request)
        if route == ("GET", "/v1/payment_links"):
            with self._state_lock:
                links = [dict(link) for link in reversed(self.links.values())]
            return json_response(200, {"payment_links": links, "count": len(links)})
        if request.method == "GET" and path.startswith("/v1/payment_links/"):
            with self._state_lock:
                link = self.links.get(path.rsplit("/", 1)[1])
            return (
                json_response(200, link) if link else _error(400, "The id provided does not exist")
            )
        if route == ("GET", "/v1/payments"):
            return self._list(request, "payments")
        if route == ("GET", "/v1/settlements"):
            return self._list(request, "settlements")
        if request.method == "GET" and path.startswith("/v1/payments/"):
            with self._state_lock:
                payment = self.payments.get(path.rsplit("/", 1)[1])
            return (
                json_response(200, payment)
                if payment
                else _error(400, "The id provided does not exist")
            )
        return _error(404, "The requested URL was not found on the server.")

    def fault_response(self, fault: Fault) -> Response:
        return _error(fault.status, fault.message or "injected fault")

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            key_id, _, key_secret = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(key_id, self.key_id) and hmac.compare_digest(
            key_secret, self.key_secret
        )

    def _create_link(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "The request body is not valid JSON")
        amount = body.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 100:
            return _error(400, "The amount must be atleast INR 1.00", "amount")
        currency = body.get("currency") or "INR"
        if not isinstance(currency, str) or len(currency) != 3:
            return _error(400, "The currency is invalid", "currency")
        reference = body.get("reference_id") or ""
        if not isinstance(reference, str) or len(reference) > 40:
            return _error(400, "The reference id may not be greater than 40 characters.")
        description = body.get("description") or ""
        if not isinstance(description, str) or len(description) > 2048:
            return _error(400, "The description may not be greater than 2048 characters.")
        notes = body.get("notes") or {}
        if not isinstance(notes, dict) or len(notes) > 15:
            return _error(400, "The notes may not have more than 15 items.", "notes")
        now = int(self.clock())
        code = "".join(secrets.choice(_ALPHABET) for _ in range(7))
        link = {
            "accept_partial": bool(body.get("accept_partial", False)),
            "amount": amount,
            "amount_paid": 0,
            "callback_method": body.get("callback_method") or "",
            "callback_url": body.get("callback_url") or "",
            "cancelled_at": 0,
            "created_at": now,
            "currency": currency,
            "customer": body.get("customer") or {},
            "description": description,
            "expire_by": body.get("expire_by") or 0,
            "expired_at": 0,
            "first_min_partial_amount": body.get("first_min_partial_amount") or 0,
            "id": razorpay_id("plink"),
            "notes": notes or None,
            "notify": body.get("notify") or {"email": False, "sms": False},
            "order_id": "",
            "payments": None,
            "reference_id": reference,
            "reminder_enable": bool(body.get("reminder_enable", False)),
            "reminders": [],
            "short_url": f"{self.url}/i/{code}",
            "status": "created",
            "updated_at": now,
            "upi_link": bool(body.get("upi_link", False)),
            "user_id": "",
        }
        with self._state_lock:
            if reference and reference in self._references:
                return _error(
                    400,
                    f"Payment Link with reference id {reference} already exists",
                    "reference_id",
                )
            if reference:
                self._references.add(reference)
            self.links[link["id"]] = link
            self._codes[code] = link["id"]
        self.stats_counters.add("accepted")
        self.record({"link": link["id"], "reference_id": reference, "amount": amount})
        return json_response(200, link)

    def _list(self, request: Request, kind: str) -> Response:
        try:
            start = int(request.arg("from", "0"))
            end = int(request.arg("to", "4765046400"))
            count = int(request.arg("count", "10"))
            skip = int(request.arg("skip", "0"))
        except ValueError:
            return _error(400, "from, to, count and skip are numbers")
        if not 1 <= count <= MAX_COUNT or skip < 0:
            return _error(400, "The count must be between 1 and 100.", "count")
        with self._state_lock:
            items = self.payments.values() if kind == "payments" else self.settlements
            chosen = [dict(p) for p in items if start <= p["created_at"] <= end]
        chosen.sort(key=lambda p: p["created_at"], reverse=True)
        page = chosen[skip : skip + count]
        return json_response(200, {"entity": "collection", "count": len(page), "items": page})

    def _payment(self, link: dict, outcome: str, method: str) -> dict:
        amount = link["amount"]
        captured = outcome == "captured"
        fee = round(amount * 0.0236) if captured else None  # 2% plus 18% GST on it
        reference = "".join(secrets.choice(string.digits) for _ in range(12))
        return {
            "id": razorpay_id("pay"),
            "entity": "payment",
            "amount": amount,
            "currency": link["currency"],
            "status": "captured" if captured else "failed",
            "order_id": link["order_id"] or razorpay_id("order"),
            "invoice_id": None,
            "international": False,
            "method": method,
            "amount_refunded": 0,
            "refund_status": None,
            "captured": captured,
            "description": link["description"],
            "card_id": None,
            "bank": None,
            "wallet": None,
            "vpa": "payer@okstandin" if method == "upi" else None,
            "email": (link.get("customer") or {}).get("email") or "void@razorpay.com",
            "contact": (link.get("customer") or {}).get("contact") or "+919000090000",
            "notes": link["notes"] or [],
            "fee": fee,
            "tax": round(fee * 18 / 118) if fee is not None else None,
            "error_code": None if captured else "BAD_REQUEST_ERROR",
            "error_description": None if captured else "Payment was declined by the payer's bank.",
            "error_source": None if captured else "bank",
            "error_step": None if captured else "payment_authorization",
            "error_reason": None if captured else "payment_declined",
            "acquirer_data": {"rrn": reference, "upi_transaction_id": reference}
            if method == "upi"
            else {},
            "created_at": int(self.clock()),
        }

    def _order(self, link: dict) -> dict:
        return {
            "id": link["order_id"],
            "entity": "order",
            "amount": link["amount"],
            "amount_paid": link["amount_paid"],
            "amount_due": link["amount"] - link["amount_paid"],
            "currency": link["currency"],
            "receipt": link["reference_id"],
            "status": "paid",
            "notes": link["notes"] or [],
            "created_at": link["created_at"],
        }

    # -- the hosted page -------------------------------------------------------------------

    def _hosted_page(self, request: Request, path: str) -> Response:
        code, _, action = path.removeprefix("/i/").partition("/")
        with self._state_lock:
            link = self.links.get(self._codes.get(code, ""))
            link = dict(link) if link else None
        if link is None:
            return _page(404, "<h1>This payment link does not exist.</h1>")
        if request.method == "POST" and action == "pay":
            outcome = (parse_qs(request.body.decode()).get("outcome") or ["captured"])[-1]
            try:
                payment = self.pay(link["id"], "failed" if outcome == "failed" else "captured")
            except ValueError:
                return _page(409, "<h1>This payment link is already paid.</h1>")
            return self._after_payment(link, payment)
        amount = f"{link['currency']} {link['amount'] / 100:,.2f}"
        if link["status"] == "paid":
            return _page(200, f"<h1>Paid</h1><p>{html.escape(amount)} was paid. Thank you.</p>")
        description = html.escape(link["description"])
        return _page(
            200,
            f"<h1>Razorpay sandbox</h1><p>{description}</p><p>Amount: <strong>"
            f"{html.escape(amount)}</strong></p>"
            f'<form method="post" action="/i/{code}/pay">'
            '<button name="outcome" value="captured">Pay</button> '
            '<button name="outcome" value="failed">Fail this payment</button></form>',
        )

    def _after_payment(self, link: dict, payment: dict) -> Response:
        if payment["status"] != "captured":
            return _page(
                200,
                "<h1>Payment failed</h1><p>Your bank declined the payment. "
                f'<a href="{html.escape(link["short_url"])}">Try again</a>.</p>',
            )
        if not link["callback_url"]:
            return _page(200, "<h1>Paid</h1><p>Thank you.</p>")
        params = {
            "razorpay_payment_id": payment["id"],
            "razorpay_payment_link_id": link["id"],
            "razorpay_payment_link_reference_id": link["reference_id"],
            "razorpay_payment_link_status": "paid",
        }
        message = "|".join((link["id"], link["reference_id"], "paid", payment["id"])).encode()
        params["razorpay_signature"] = hmac.new(
            self.key_secret.encode(), message, hashlib.sha256
        ).hexdigest()
        separator = "&" if "?" in link["callback_url"] else "?"
        return Response(
            303, b"", [("Location", link["callback_url"] + separator + urlencode(params))]
        )


def _page(status: int, body: str) -> Response:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Razorpay sandbox</title></head><body>{body}</body></html>"
    )
    return Response(status, page.encode(), [("Content-Type", "text/html; charset=utf-8")])
