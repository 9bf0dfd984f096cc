"""The Stripe connector (app/integrations/connectors/stripe_gateway.py): webhook signatures,
amounts in minor units, idempotent creates, Stripe's errors, and the events it reads.

Oracles: the official `stripe` SDK (it signs headers our verifier must accept, and verifies
what the stand-in signs) and the providers' signature vector (providers-2.md table 0, V5).
The stand-in (app/sandbox/standins/stripe.py) answers the connector; tests/test_stripe_standin.py
checks both against Stripe's published API document.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import stripe
from sqlalchemy import select

from app.core.crypto import decrypt_secrets
from app.integrations.connectors import DeliveryError
from app.integrations.connectors.stripe_gateway import (
    API_VERSION,
    CheckoutLine,
    StripeConnector,
    StripeError,
    WebhookRefused,
    event_from,
    from_minor,
    to_minor,
    verify_signature,
)
from app.integrations.connectors.wire import BadWebhookBody
from app.integrations.models import ProviderAccount
from app.sandbox.standins import StripeStandin
from tests.test_integrations import connection_of, post_form
from tests.test_standins import Receiver

SECRET = "whsec_test_receivables"
# providers-2.md table 0, V5 (computed with stripe 16.1.0)
V5_BODY = (
    b'{"id":"evt_T1","object":"event","type":"payment_intent.succeeded","data":{"object":'
    b'{"id":"pi_T1","object":"payment_intent","amount":118000,"currency":"inr"}}}'
)
V5_HEADER = "t=1768471200,v1=998bde43921a05fb56d0833cc14984fb390f605f86ad86559d8a2ec2ad34b0a3"
V5_TIME = 1768471200


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def standin(receiver):
    with StripeStandin(webhook_url=receiver.url + "/hooks/stripe/token") as server:
        yield server


def connector_for(standin: StripeStandin, **secrets) -> StripeConnector:
    keys = {"secret_key": standin.secret_key, "webhook_secret": standin.webhook_secret}
    return StripeConnector(
        settings={"webhook_token": "t" * 32},
        secrets={**keys, **secrets},
        config={"STRIPE_API_BASE": standin.url, "BASE_URL": "https://app.example"},
    )


def create(connector: StripeConnector, key: str = "checkout-1", **overrides):
    options = {
        "lines": [CheckoutLine("Invoice INV-1001", Decimal("1180.00"))],
        "currency": "USD",
        "checkout_id": "41",
        "invoice_ids": [7, 9],
        "success_url": "https://app.example/pay/done?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://app.example/pay",
        "idempotency_key": key,
        **overrides,
    }
    return connector.create_checkout_session(**options)


def signed_now(body: bytes, secret: str = SECRET, at: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=int(time.time()) if at is None else at
    )


# -- signatures ----------------------------------------------------------------------------


def test_the_published_vector_is_accepted_and_one_changed_byte_is_refused():
    verify_signature(V5_BODY, V5_HEADER, "whsec_test_receivables", now=V5_TIME + 10)
    with pytest.raises(WebhookRefused, match="does not match"):
        tampered = V5_BODY.replace(b"118000", b"118001")
        verify_signature(tampered, V5_HEADER, "whsec_test_receivables", now=V5_TIME + 10)


def test_a_header_the_sdk_signs_is_accepted_and_a_forged_one_refused():
    body = json.dumps({"id": "evt_1", "object": "event", "type": "charge.refunded"}).encode()
    verify_signature(body, signed_now(body), SECRET)
    forged = signed_now(body, secret="whsec_someone_else_entirely")
    with pytest.raises(WebhookRefused, match="does not match"):
        verify_signature(body, forged, SECRET)
    # The oracle agrees on both.
    stripe.WebhookSignature.verify_header(body, signed_now(body), SECRET, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body, forged, SECRET, tolerance=300)


def test_a_signature_outside_the_300_second_tolerance_is_a_replay_and_refused():
    body = b'{"id":"evt_2","object":"event"}'
    now = 1_800_000_000
    verify_signature(body, signed_now(body, at=now - 299), SECRET, now=now)
    with pytest.raises(WebhookRefused, match="outside the 300 s tolerance"):
        verify_signature(body, signed_now(body, at=now - 301), SECRET, now=now)
    # Stricter than the SDK, which checks only the past: a signature from the future is a
    # wrong clock or a forged timestamp.
    with pytest.raises(WebhookRefused, match="ahead"):
        verify_signature(body, signed_now(body, at=now + 301), SECRET, now=now)
    stale = signed_now(body, at=int(time.time()) - 301)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), stale, SECRET, tolerance=300)


def test_any_of_several_v1_signatures_may_match_while_a_secret_is_rolled():
    body = b'{"id":"evt_3","object":"event"}'
    old = signed_now(body, secret="whsec_the_old_secret_00000")
    new = signed_now(body)
    timestamp, old_v1 = old.split(",")
    header = f"{timestamp},{old_v1},{new.split(',')[1]},v0=ignored"
    verify_signature(body, header, SECRET)
    with pytest.raises(WebhookRefused):
        verify_signature(body, f"{timestamp},{old_v1}", SECRET)
    # Another scheme never stands in for v1.
    with pytest.raises(WebhookRefused, match="malformed"):
        verify_signature(body, new.replace("v1=", "v0="), SECRET)


@pytest.mark.parametrize(
    "header",
    [None, "", "v1=abc", "t=abc,v1=abc", "t=1,t=2,v1=abc", "garbage"],
)
def test_a_missing_or_malformed_header_is_refused(header):
    with pytest.raises(WebhookRefused, match="missing or malformed"):
        verify_signature(b"{}", header, SECRET)


def test_without_a_signing_secret_every_webhook_is_refused():
    body = b"{}"
    with pytest.raises(WebhookRefused, match="No webhook signing secret"):
        verify_signature(body, signed_now(body), None)


def test_a_signed_body_that_is_not_an_event_is_refused_before_it_is_read():
    connector = StripeConnector(settings={}, secrets={"webhook_secret": SECRET}, config={})
    for body in (b"not json", b'{"id": 5, "type": "x", "data": {"object": {}}}', b"[]"):
        with pytest.raises(BadWebhookBody):
            connector.verify_webhook(body, signed_now(body))
    odd = b'{"id":"evt_4","type":"charge.refunded","data":{"object":{"amount":"ten"}}}'
    with pytest.raises(BadWebhookBody, match="wrong type"):
        connector.verify_webhook(odd, signed_now(odd))


# -- money ------------------------------------------------------------------------------------


def test_amounts_travel_in_the_currencys_minor_unit():
    assert to_minor(Decimal("1180.00"), "USD") == 118000
    assert to_minor(Decimal("1000"), "JPY") == 1000
    assert to_minor(Decimal("1.50"), "KWD") == 1500
    assert from_minor(1000, "jpy") == Decimal("1000")
    assert from_minor(118000, "INR") == Decimal("1180.00")
    with pytest.raises(ValueError, match="JPY has 0 decimal places"):
        to_minor(Decimal("10.50"), "JPY")
    with pytest.raises(ValueError, match="multiples of 0.010"):
        to_minor(Decimal("1.005"), "KWD")


def test_a_yen_checkout_asks_stripe_for_whole_yen(standin):
    session = create(
        connector_for(standin),
        lines=[CheckoutLine("Invoice INV-7", Decimal("15000")), CheckoutLine("Fee", Decimal(500))],
        currency="JPY",
    )
    stored = standin.session(session.session_id)
    assert (stored["amount_total"], stored["currency"]) == (15500, "jpy")
    page = httpx.get(session.url)
    assert "JPY 15,500" in page.text
    standin.pay(session.session_id)
    events = connector_for(standin).events_between(
        datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC) + timedelta(minutes=5)
    )
    assert {(event.type, event.amount, event.currency) for event in events} == {
        ("checkout.session.completed", Decimal(15500), "JPY"),
        ("payment_intent.succeeded", Decimal(15500), "JPY"),
    }


# -- creating a checkout --------------------------------------------------------------------


def test_a_checkout_session_carries_our_references_into_every_event(standin, receiver):
    connector = connector_for(standin)
    session = create(connector)
    assert session.url == f"{standin.url}/c/pay/{session.session_id}"
    paid = httpx.post(session.url, data={"action": "pay"})
    assert paid.status_code == 303
    assert paid.headers["location"].endswith(f"session={session.session_id}")
    calls = receiver.wait_for(2)
    events = [
        connector.verify_webhook(call["body"], call["headers"]["Stripe-Signature"])
        for call in calls
    ]
    completed = next(e for e in events if e.type == "checkout.session.completed")
    succeeded = next(e for e in events if e.type == "payment_intent.succeeded")
    assert completed.checkout_session_id == session.session_id
    assert completed.status == "paid"
    assert completed.payment_id == succeeded.payment_id == succeeded.payment_intent_id
    for event in (completed, succeeded):
        assert event.handled
        assert (event.amount, event.currency) == (Decimal("1180.00"), "USD")
        assert event.checkout_id == "41"
        assert event.invoice_ids == ("7", "9")
    assert succeeded.charge_id and succeeded.charge_id.startswith("ch_")


def test_many_invoices_spread_over_several_metadata_keys(standin):
    invoice_ids = list(range(100_000, 100_200))  # 200 ids of 6 digits: over 500 characters
    session = create(connector_for(standin), invoice_ids=invoice_ids)
    metadata = standin.session(session.session_id)["metadata"]
    assert all(len(value) <= 500 for value in metadata.values())
    assert len(metadata) > 2
    standin.pay(session.session_id)
    event = event_from(standin.events[-1])
    assert event.invoice_ids == tuple(map(str, invoice_ids))


def test_a_create_retried_with_its_key_gives_back_the_first_session(standin):
    connector = connector_for(standin)
    first = create(connector, key="checkout-41-attempt")
    again = create(connector, key="checkout-41-attempt")
    assert again == first
    assert len(standin.sessions) == 1
    assert standin.stats()["duplicate_keys"] == 1
    with pytest.raises(StripeError) as reused:
        create(connector, key="checkout-41-attempt", currency="EUR")
    assert reused.value.error_type == "idempotency_error"
    assert reused.value.permanent
    assert len(standin.sessions) == 1


def test_a_create_that_failed_on_stripes_side_is_retried_safely(standin):
    connector = connector_for(standin)
    standin.inject_fault(500, message="An unknown error occurred")
    with pytest.raises(StripeError) as failed:
        create(connector, key="checkout-42")
    assert not failed.value.permanent
    assert "Stripe 500 (api_error): An unknown error occurred" in str(failed.value)
    session = create(connector, key="checkout-42")
    assert list(standin.sessions) == [session.session_id]


def test_every_request_pins_the_api_version_and_every_post_carries_its_key(standin, monkeypatch):
    seen: list[httpx.Request] = []
    from app.integrations import connectors

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request):
            seen.append(request)
            return super().handle_request(request)

    monkeypatch.setattr(connectors, "_transport", Recording())
    connector = connector_for(standin)
    create(connector, key="checkout-43")
    connector.test_connection()
    assert [request.headers["Stripe-Version"] for request in seen] == [API_VERSION] * 2
    assert seen[0].headers["Idempotency-Key"] == "checkout-43"
    assert seen[0].headers["Authorization"] == f"Bearer {standin.secret_key}"
    with pytest.raises(ValueError, match="Idempotency-Key"):
        connector._request("POST", "/v1/checkout/sessions", {"mode": "payment"})


# -- errors -----------------------------------------------------------------------------------


def test_a_wrong_secret_key_is_refused_with_stripes_words(standin):
    connector = connector_for(standin, secret_key="sk_test_wrong000000000000")
    with pytest.raises(DeliveryError) as refused:
        connector.test_connection()
    assert refused.value.permanent
    assert "Stripe refused the secret key: Invalid API Key provided: sk_test_****0000" in str(
        refused.value
    )
    assert connector_for(standin).test_connection() == "Stripe accepted the secret key (test mode)."


def test_stripes_refusals_name_the_parameter_and_are_not_retried(standin):
    with pytest.raises(StripeError) as refused:
        create(connector_for(standin), success_url="")
    error = refused.value
    assert (error.status, error.error_type, error.param) == (
        400,
        "invalid_request_error",
        "success_url",
    )
    assert error.permanent
    assert "Missing required param: success_url." in str(error)


def test_rate_limits_are_retried_after_the_wait_stripe_asks(standin):
    standin.inject_fault(429, retry_after=2)
    with pytest.raises(StripeError) as limited:
        create(connector_for(standin))
    assert not limited.value.permanent
    assert limited.value.retry_after == 2
    assert limited.value.code == "rate_limit"


@pytest.mark.parametrize(
    ("status", "should_retry", "permanent"),
    [(500, "false", True), (400, "true", False), (409, None, False), (402, None, True)],
)
def test_stripe_should_retry_decides_over_the_status(monkeypatch, status, should_retry, permanent):
    from app.integrations import connectors

    def answer(request):
        headers = {"Stripe-Should-Retry": should_retry} if should_retry else {}
        body = {"error": {"type": "card_error", "message": "Your card was declined."}}
        return httpx.Response(status, json=body, headers=headers)

    monkeypatch.setattr(connectors, "_transport", httpx.MockTransport(answer))
    connector = StripeConnector(
        settings={},
        secrets={"secret_key": "sk_test_x"},
        config={"STRIPE_API_BASE": "http://127.0.0.1:9"},
    )
    with pytest.raises(StripeError) as refused:
        create(connector)
    assert refused.value.permanent is permanent
    assert "Your card was declined." in str(refused.value)


def test_stripe_unreachable_is_worth_retrying():
    connector = StripeConnector(
        settings={},
        secrets={"secret_key": "sk_test_x"},
        config={"STRIPE_API_BASE": "http://127.0.0.1:9"},
    )
    with pytest.raises(StripeError, match="Stripe unreachable") as unreachable:
        create(connector)
    assert not unreachable.value.permanent


def test_amounts_that_cannot_be_charged_never_reach_stripe(standin):
    connector = connector_for(standin)
    with pytest.raises(ValueError, match="JPY has 0 decimal places"):
        create(connector, lines=[CheckoutLine("INV-8", Decimal("10.50"))], currency="JPY")
    with pytest.raises(ValueError, match="positive"):
        create(connector, lines=[CheckoutLine("INV-8", Decimal("0"))])
    assert standin.stats()["requests"] == 0


# -- refunds, disputes, failures and the reconciliation lists --------------------------------


def test_failure_refund_and_dispute_events_say_what_happened(standin, receiver):
    connector = connector_for(standin)
    session = create(connector)
    declined = httpx.post(session.url, data={"action": "decline"})
    assert "Your card was declined" in declined.text
    standin.pay(session.session_id)
    charge_id = next(iter(standin.charges))
    standin.refund(charge_id, 18000)
    standin.refund(charge_id)
    standin.dispute(charge_id, "product_not_received")
    calls = receiver.wait_for(6)
    events = [connector.verify_webhook(c["body"], c["headers"]["Stripe-Signature"]) for c in calls]
    failed, *_ = [e for e in events if e.type == "payment_intent.payment_failed"]
    assert failed.failure_message == "Your card was declined."
    assert failed.invoice_ids == ("7", "9")
    partial, full = [e for e in events if e.type == "charge.refunded"]
    assert partial.refund.refunded_total == Decimal("180.00")
    assert not partial.refund.fully_refunded
    assert full.refund.refunded_total == Decimal("1180.00") and full.refund.fully_refunded
    assert partial.charge_id == charge_id and partial.payment_id == failed.payment_id
    (dispute,) = [e for e in events if e.type == "charge.dispute.created"]
    assert dispute.dispute.reason == "product_not_received"
    assert dispute.dispute.amount == Decimal("1180.00")
    assert dispute.dispute.evidence_due_by > datetime.now(UTC)
    assert dispute.charge_id == charge_id and dispute.payment_id == failed.payment_id


def test_the_reconciliation_lists_page_through_everything(standin, monkeypatch):
    from app.integrations.connectors import stripe_gateway

    monkeypatch.setattr(stripe_gateway, "PAGE_SIZE", 2)  # several pages from a few items
    connector = connector_for(standin)
    for n in range(3):
        standin.pay(create(connector, key=f"k{n}").session_id)
    start, end = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1)
    events = list(connector.events_between(start, end))
    transactions = list(connector.balance_transactions_between(start, end))
    (payout,) = standin.pay_out()
    payouts = list(connector.payouts_between(start, end))
    paid_out = list(connector.balance_transactions_between(start, end, payout=payout["id"]))
    assert len(events) == 6 and len({event.event_id for event in events}) == 6
    assert len(transactions) == 3
    assert all(t.fee == Decimal("34.52") and t.net == Decimal("1145.48") for t in transactions)
    assert {t.source for t in transactions} == set(standin.charges)
    assert [(p.payout_id, p.amount, p.status) for p in payouts] == [
        (payout["id"], Decimal("3436.44"), "paid")
    ]
    assert len(paid_out) == 4  # three charges and the payout itself
    with pytest.raises(ValueError, match="aware"):
        list(connector.payouts_between(datetime(2026, 1, 1), end))


# -- connecting ----------------------------------------------------------------------------


def test_the_connect_form_checks_the_keys_and_keeps_the_webhook_url():
    settings, secrets, errors = StripeConnector.clean(
        {"secret_key": "pk_live_abc", "webhook_secret": "secret"}
    )
    assert set(errors) == {"secret_key", "webhook_secret"}
    settings, secrets, errors = StripeConnector.clean({"secret_key": "sk_live_" + "a" * 24})
    assert not errors and "webhook_secret" not in secrets  # pasted after the endpoint exists
    token = settings["webhook_token"]
    again, _, _ = StripeConnector.clean(
        {"secret_key": "sk_live_" + "a" * 24, "webhook_secret": "whsec_" + "b" * 32, **settings}
    )
    assert again["webhook_token"] == token
    connector = StripeConnector(
        settings=again, secrets={}, config={"BASE_URL": "https://a.example"}
    )
    assert connector.report_url() == f"https://a.example/hooks/stripe/{token}"
    assert connector.account_keys() == [token]


@pytest.fixture
def admin(client, make_user, make_tenant, login):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    return tenant


def test_a_workspace_connects_stripe_on_the_integrations_page(
    app, admin, client, db_session, monkeypatch, run_jobs, standin
):
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", standin.url)
    form = {"secret_key": standin.secret_key, "webhook_secret": ""}
    assert post_form(client, admin, "stripe/connect", form).status_code == 303
    run_jobs()  # the worker's check: Stripe accepts the key, the webhook URL routes here
    connection = connection_of(db_session, admin, "stripe")
    assert connection.verification == "verified"
    token = connection.settings["webhook_token"]
    assert decrypt_secrets(connection.secrets_ciphertext, keys=app.config["SECRETS_KEYS"]) == {
        "secret_key": standin.secret_key
    }
    routes = db_session.scalars(
        select(ProviderAccount).where(ProviderAccount.tenant_id == admin.id)
    ).all()
    assert [(r.provider, r.account_key) for r in routes] == [("stripe", token)]
    page = client.get(f"/t/{admin.slug}/integrations/")
    card = page.text[page.text.index('id="integration-stripe"') :].split("</article>")[0]
    assert f"/hooks/stripe/{token}" in card
    assert "Webhook endpoint URL (add it in Stripe" in card
    # A gateway sends no messages: its card shows no message delivery figures.
    assert "No messages yet" not in card and "Success rate" not in card
    assert standin.secret_key not in page.text
    # The signing secret is pasted once the endpoint exists; the key is kept.
    signing = {"secret_key": "", "webhook_secret": standin.webhook_secret}
    assert post_form(client, admin, "stripe/connect", signing).status_code == 303
    db_session.expire_all()
    connection = connection_of(db_session, admin, "stripe")
    assert decrypt_secrets(connection.secrets_ciphertext, keys=app.config["SECRETS_KEYS"]) == {
        "secret_key": standin.secret_key,
        "webhook_secret": standin.webhook_secret,
    }
    assert connection.settings["webhook_token"] == token
