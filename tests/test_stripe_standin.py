"""The Stripe stand-in and the connector keep Stripe's published contract.

Contract: Stripe's OpenAPI document of API version 2023-08-16 (tests/contracts/
stripe.openapi.json, trimmed; see tests/contracts/SOURCE.txt), checked with jsonschema as the
WhatsApp and Twilio contract tests do. A form body carries only strings, so the schema's
integers and booleans are matched against their form spelling ("118000", "true").
Oracle: the official `stripe` SDK, pointed at the stand-in (providers.md §0.2).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import stripe
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from app.integrations import connectors
from app.integrations.connectors.stripe_gateway import (
    CheckoutLine,
    StripeConnector,
    WebhookRefused,
)
from app.sandbox.standins import StripeStandin
from app.sandbox.standins.stripe import parse_form
from tests.test_standins import Receiver

ROOT = Path(__file__).resolve().parent.parent
SPEC = json.loads((ROOT / "tests" / "contracts" / "stripe.openapi.json").read_text())


def _nullable(node):
    """OpenAPI 3.0's `nullable: true` in JSON Schema: `type: [t, "null"]` (and null among an
    `enum`), or a null alternative beside an `anyOf` (Stripe's expandable fields)."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


COMPONENTS = _nullable(SPEC["components"])


def _form_types():
    """Types as a form spells them: integers and booleans arrive as strings."""
    checker = Draft202012Validator.TYPE_CHECKER.redefine_many(
        {
            "integer": lambda _, value: (
                isinstance(value, str) and bool(re.fullmatch(r"-?\d+", value))
            ),
            "boolean": lambda _, value: value in ("true", "false"),
        }
    )
    return validators.extend(Draft202012Validator, type_checker=checker)


FormValidator = _form_types()


def check_answer(component_or_schema, instance) -> None:
    schema = (
        {"$ref": f"#/components/schemas/{component_or_schema}"}
        if isinstance(component_or_schema, str)
        else _nullable(component_or_schema)
    )
    Draft202012Validator({**schema, "components": COMPONENTS}).validate(instance)


def answer_schema(path: str, method: str = "get", status: str = "200") -> dict:
    return SPEC["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


def check_form(schema: dict, pairs: list[tuple[str, str]]) -> None:
    form = parse_form(urlencode(pairs).encode())
    FormValidator({**_nullable(schema), "components": COMPONENTS}).validate(form)


def check_query(path: str, request: httpx.Request) -> None:
    """Each query parameter is one the operation declares, shaped as its schema says."""
    declared = {p["name"]: p for p in SPEC["paths"][path]["get"]["parameters"]}
    query = parse_form(request.url.query)
    for name, value in query.items():
        assert name in declared, f"{path} takes no parameter {name}"
        FormValidator({**_nullable(declared[name]["schema"]), "components": COMPONENTS}).validate(
            value
        )


class Recording(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request):
        self.requests.append(request)
        return super().handle_request(request)


@pytest.fixture
def sent(monkeypatch) -> list[httpx.Request]:
    transport = Recording()
    monkeypatch.setattr(connectors, "_transport", transport)
    return transport.requests


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def standin(receiver):
    with StripeStandin(webhook_url=receiver.url + "/hooks/stripe/token") as server:
        yield server


def connector_for(standin: StripeStandin) -> StripeConnector:
    return StripeConnector(
        settings={"webhook_token": "t" * 32},
        secrets={"secret_key": standin.secret_key, "webhook_secret": standin.webhook_secret},
        config={"STRIPE_API_BASE": standin.url},
    )


def checkout(connector: StripeConnector, key: str = "checkout-1"):
    return connector.create_checkout_session(
        lines=[CheckoutLine("Invoice INV-1001", Decimal("1180.00"))],
        currency="USD",
        checkout_id="41",
        invoice_ids=[7, 9],
        success_url="https://app.example/done?session={CHECKOUT_SESSION_ID}",
        cancel_url="https://app.example/pay",
        customer_email="ap@client.example",
        idempotency_key=key,
    )


def sdk(standin: StripeStandin, key: str | None = None) -> stripe.StripeClient:
    return stripe.StripeClient(
        key or standin.secret_key,
        base_addresses={"api": standin.url},
        max_network_retries=0,
    )


# -- the contract ----------------------------------------------------------------------------


def test_the_connectors_checkout_request_is_one_stripe_documents(standin, sent):
    checkout(connector_for(standin))
    (request,) = sent
    assert (request.method, request.url.path) == ("POST", "/v1/checkout/sessions")
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    body = SPEC["paths"]["/v1/checkout/sessions"]["post"]["requestBody"]
    schema = body["content"]["application/x-www-form-urlencoded"]["schema"]
    pairs = parse_qsl(request.content.decode(), keep_blank_values=True)
    check_form(schema, pairs)
    # The check can fail: a name Stripe does not take, or text where it wants a number.
    with pytest.raises(ValidationError):
        check_form(schema, [*pairs, ("invoice", "7")])
    with pytest.raises(ValidationError):
        check_form(schema, [*pairs, ("line_items[0][price_data][unit_amount]", "11.80")])
    assert request.headers["Stripe-Version"] == SPEC["info"]["version"]


def test_the_connectors_list_requests_are_ones_stripe_documents(standin, sent):
    connector = connector_for(standin)
    standin.pay(checkout(connector).session_id)
    start, end = datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1)
    list(connector.events_between(start, end))
    list(connector.balance_transactions_between(start, end, payout="po_123"))
    list(connector.payouts_between(start, end))
    connector.test_connection()
    paths = [request.url.path for request in sent[1:]]
    assert paths == ["/v1/events", "/v1/balance_transactions", "/v1/payouts", "/v1/balance"]
    for request in sent[1:4]:
        check_query(request.url.path, request)
        assert parse_form(request.url.query)["created"]["gte"] == str(int(start.timestamp()))
    with pytest.raises(AssertionError):
        check_query("/v1/payouts", httpx.Request("GET", "http://x/v1/payouts?payout=po_1"))


def test_the_standins_answers_are_what_stripe_documents(standin):
    connector = connector_for(standin)
    session = checkout(connector)
    client = httpx.Client(
        base_url=standin.url, headers={"Authorization": f"Bearer {standin.secret_key}"}
    )
    with client:
        opened = client.get(f"/v1/checkout/sessions/{session.session_id}").json()
        check_answer("checkout.session", opened)
        assert opened["status"] == "open" and opened["payment_intent"] is None
        standin.pay(session.session_id)
        charge_id = next(iter(standin.charges))
        standin.refund(charge_id, 100)
        standin.pay_out()
        standin.dispute(charge_id)
        standin.inject_fault(429)
        limited = client.post(
            "/v1/checkout/sessions", data={"mode": "payment"}, headers={"Idempotency-Key": "x"}
        )
        paid = client.get(f"/v1/checkout/sessions/{session.session_id}").json()
        answers = {
            "/v1/events": client.get("/v1/events", params={"limit": 3}).json(),
            "/v1/balance_transactions": client.get("/v1/balance_transactions").json(),
            "/v1/payouts": client.get("/v1/payouts").json(),
            "/v1/balance": client.get("/v1/balance").json(),
        }
        missing = client.get("/v1/checkout/sessions/cs_test_nothere")
        invalid = client.post(
            "/v1/checkout/sessions", data={"mode": "payment"}, headers={"Idempotency-Key": "y"}
        )
        unauthorized = httpx.get(f"{standin.url}/v1/balance")
    check_answer("checkout.session", paid)
    assert (paid["status"], paid["payment_status"]) == ("complete", "paid")
    for path, answer in answers.items():
        check_answer(answer_schema(path), answer)
    assert answers["/v1/events"]["has_more"] and len(answers["/v1/events"]["data"]) == 3
    assert {e["type"] for e in standin.events} >= {
        "checkout.session.completed",
        "payment_intent.succeeded",
        "charge.refunded",
        "charge.dispute.created",
        "payout.paid",
    }
    for response, status in ((missing, 404), (invalid, 400), (unauthorized, 401), (limited, 429)):
        assert response.status_code == status
        check_answer(answer_schema("/v1/balance", status="default"), response.json())
    with pytest.raises(ValidationError):  # the check can fail
        check_answer("checkout.session", {**paid, "payment_status": "settled"})


def test_every_event_the_standin_sends_is_a_documented_event(standin, receiver):
    connector = connector_for(standin)
    session = checkout(connector)
    standin.decline(session.session_id)
    standin.pay(session.session_id)
    standin.refund(next(iter(standin.charges)))
    calls = receiver.wait_for(4)
    assert len(calls) == 4
    for call in calls:
        check_answer("event", json.loads(call["body"]))
        assert call["path"] == "/hooks/stripe/token"


# -- the SDK as the oracle -----------------------------------------------------------------


def test_the_sdk_accepts_what_the_standin_signs_and_refuses_forged_or_stale(standin, receiver):
    connector = connector_for(standin)
    standin.pay(checkout(connector).session_id)
    event_id = standin.events[0]["id"]
    standin.resend(event_id, timestamp=int(time.time()) - 400)
    standin.resend(event_id, secret="whsec_not_the_endpoints_secret")
    fresh, _, stale, forged = receiver.wait_for(4)
    event = stripe.Webhook.construct_event(
        fresh["body"].decode(), fresh["headers"]["Stripe-Signature"], standin.webhook_secret
    )
    assert event.id == event_id and event.type == "checkout.session.completed"
    assert connector.verify_webhook(fresh["body"], fresh["headers"]["Stripe-Signature"])
    for call in (stale, forged):
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(
                call["body"].decode(), call["headers"]["Stripe-Signature"], standin.webhook_secret
            )
        with pytest.raises(WebhookRefused):
            connector.verify_webhook(call["body"], call["headers"]["Stripe-Signature"])


def test_the_sdk_creates_and_retrieves_a_checkout_session_at_the_standin(standin):
    client = sdk(standin)
    created = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": "jpy",
                        "unit_amount": 15000,
                        "product_data": {"name": "Invoice INV-7"},
                    },
                    "quantity": 2,
                }
            ],
            "client_reference_id": "41",
            "metadata": {"duebook_checkout": "41"},
            "success_url": "https://app.example/done",
        },
        options={"idempotency_key": "sdk-1"},
    )
    assert created.url == f"{standin.url}/c/pay/{created.id}"
    assert (created.amount_total, created.currency) == (30000, "jpy")
    standin.pay(created.id)
    fetched = client.v1.checkout.sessions.retrieve(created.id)
    assert (fetched.id, fetched.status, fetched.payment_status) == (created.id, "complete", "paid")
    assert fetched.metadata["duebook_checkout"] == "41"
    with pytest.raises(stripe.AuthenticationError):
        sdk(standin, key="sk_test_wrong000000000000").v1.checkout.sessions.retrieve(created.id)
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(
            params={"mode": "payment", "success_url": "https://app.example/other"},
            options={"idempotency_key": "sdk-1"},
        )


# -- the process `make run` starts ---------------------------------------------------------


def test_make_run_starts_the_standin_and_points_the_app_and_its_webhooks_at_it():
    from app.sandbox.providers import STRIPE_WEBHOOK_TOKEN, standin_arguments

    (extra,) = [
        extra
        for name, setting, extra in standin_arguments("http://127.0.0.1:5000")
        if (name, setting) == ("stripe", "STRIPE_API_BASE")
    ]
    assert extra == ["--webhook-url", f"http://127.0.0.1:5000/hooks/stripe/{STRIPE_WEBHOOK_TOKEN}"]


def test_the_standin_runs_as_a_process_and_serves_its_checkout_page():
    process = subprocess.Popen(
        [sys.executable, "-m", "app.sandbox.standins", "stripe", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        from app.sandbox.standins.stripe import DEFAULT_SECRET_KEY

        session = httpx.post(
            f"{url}/v1/checkout/sessions",
            headers={"Authorization": f"Bearer {DEFAULT_SECRET_KEY}"},
            data={
                "mode": "payment",
                "success_url": "https://app.example/done",
                "line_items[0][price_data][currency]": "usd",
                "line_items[0][price_data][unit_amount]": "5000",
                "line_items[0][price_data][product_data][name]": "Invoice INV-9",
                "line_items[0][quantity]": "1",
            },
        ).json()
        page = httpx.get(session["url"])
        assert "Pay USD 50.00" in page.text and 'value="pay"' in page.text
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_the_sandbox_operations_answer_over_http_for_scripts_and_benchmarks(standin, receiver):
    session = checkout(connector_for(standin))
    admin = f"{standin.url}/_standin"
    paid = httpx.post(f"{admin}/checkout/{session.session_id}/pay").json()
    assert (paid["status"], paid["payment_status"]) == ("complete", "paid")
    charge_id = next(iter(standin.charges))
    refunded = httpx.post(f"{admin}/charges/{charge_id}/refund", json={"amount": 100}).json()
    assert (refunded["amount_refunded"], refunded["refunded"]) == (100, False)
    (payout,) = httpx.post(f"{admin}/payouts").json()["payouts"]
    assert payout["amount"] == 118000 - 3452 - 100
    disputed = httpx.post(f"{admin}/charges/{charge_id}/dispute", json={"reason": "duplicate"})
    assert disputed.json()["reason"] == "duplicate"
    first = standin.events[0]["id"]
    stale = int(time.time()) - 1000
    assert httpx.post(f"{admin}/events/{first}/resend", json={"timestamp": stale}).json()
    assert httpx.post(f"{admin}/checkout/cs_test_unknown/decline").status_code == 404
    assert httpx.post(f"{admin}/events/evt_unknown/resend").status_code == 404
    calls = receiver.wait_for(6)
    assert calls[-1]["headers"]["Stripe-Signature"].startswith(f"t={stale},v1=")
    assert json.loads(calls[-1]["body"])["id"] == first
