"""Stripe in the payments spine: a foreign client pays a USD invoice through a Checkout Session
of the Stripe stand-in, and the signed webhooks apply it once; repeats and out-of-order events
change nothing more; forged and stale webhooks are refused; a refund puts the invoice back; a
dispute takes the money back and opens a dispute on the invoice. The official `stripe` SDK
signs an event our receiver accepts."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from types import SimpleNamespace

import pytest
import stripe
from sqlalchemy import func, select

from app.collections.models import Dispute
from app.gateways import services as gateways
from app.gateways.models import GatewayEvent, GatewayPayment, ParkedGatewayWebhook
from app.integrations.connectors.stripe_gateway import StripeConnector
from app.invoicing.models import Invoice
from app.payments import services as payments
from app.sandbox.standins.stripe import StripeStandin
from tests.helpers import connect_gateway, tenant_session
from tests.test_gateways import fresh, live_payments

HOOK = "/hooks/stripe"


@pytest.fixture
def stripe_standin(app, monkeypatch):
    """The Stripe stand-in; its webhooks are kept (not sent) for the test to post."""
    server = StripeStandin(webhook_url="http://127.0.0.1:9/kept").start()
    server.sent = []
    monkeypatch.setattr(
        server.webhooks,
        "post",
        lambda url, body, headers, delay=0: server.sent.append((body, headers)),
    )
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", server.url)
    yield server
    server.stop()


def connect_stripe(app, db_session, tenant, standin) -> str:
    """Stripe connected to the stand-in, as the integrations page leaves it; the token."""
    raw = {"secret_key": standin.secret_key, "webhook_secret": standin.webhook_secret}
    return connect_gateway(app, db_session, tenant, StripeConnector, raw)


@pytest.fixture
def abroad(app, db_session, make_tenant, make_user, make_client, make_invoice, stripe_standin):
    """A workspace with Stripe connected and a client in the United States billed in USD."""
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    token = connect_stripe(app, db_session, tenant, stripe_standin)
    session = tenant_session(db_session, tenant)
    client = make_client(
        session, country="US", location="foreign", currency="USD", gstin=None, region=None
    )
    session.commit()

    def invoice(amount="1180.00") -> Invoice:
        made = make_invoice(session, tenant, client, (amount,), currency="USD")
        session.commit()
        return made

    def checkout(*invoices) -> str:
        """A Checkout Session for what the invoices owe; its id at the stand-in."""
        with app.app_context():
            url = gateways.start_checkout(
                session,
                provider="stripe",
                client_id=client.id,
                invoice_amounts={i.id: payments.outstanding(session, i) for i in invoices},
                currency="USD",
                return_url="http://127.0.0.1/paid",
            )
        session.commit()
        return next(s["id"] for s in stripe_standin.sessions.values() if s["url"] == url)

    return SimpleNamespace(
        owner=owner, tenant=tenant, token=token, session=session, client=client, invoice=invoice,
        checkout=checkout,
    )  # fmt: skip


def deliver(client, run_jobs, token, events) -> list[int]:
    statuses = [
        client.post(f"{HOOK}/{token}", data=body, headers=headers).status_code
        for body, headers in events
    ]
    run_jobs()
    return statuses


def event_count(session) -> int:
    return session.scalar(select(func.count()).select_from(GatewayEvent))


def the_gateway_payment(session) -> GatewayPayment:
    return session.scalars(select(GatewayPayment).execution_options(populate_existing=True)).one()


def test_a_usd_invoice_paid_through_stripe_is_paid_once_and_its_notice_closed(
    client, run_jobs, abroad, stripe_standin, make_notice
):
    invoice = abroad.invoice("1180.00")
    notice = make_notice(abroad.session, abroad.client, [invoice], status="sent")
    abroad.session.commit()
    session_id = abroad.checkout(invoice)
    assert stripe_standin.sessions[session_id]["amount_total"] == 118000  # cents
    assert stripe_standin.sessions[session_id]["currency"] == "usd"

    stripe_standin.pay(session_id)
    kinds = [json.loads(body)["type"] for body, _ in stripe_standin.sent]
    assert kinds == ["checkout.session.completed", "payment_intent.succeeded"]
    assert deliver(client, run_jobs, abroad.token, stripe_standin.sent) == [200, 200]

    s = abroad.session
    assert fresh(s, Invoice, invoice.id).status == "paid"
    assert fresh(s, type(notice), notice.id).status == "closed"
    [payment] = live_payments(s, abroad.client.id)
    intent = stripe_standin.sessions[session_id]["payment_intent"]
    assert (payment.amount, payment.currency, payment.method) == (Decimal("1180.00"), "USD", "card")
    assert payment.reference == f"Stripe {intent}"
    row = the_gateway_payment(s)
    assert (row.provider_payment_id, row.payment_id, row.status) == (intent, payment.id, "captured")
    # Stripe's events do not carry the fee (the balance transaction is not expanded): the
    # daily reconciliation reads it.
    assert row.fee is None


def test_duplicate_and_out_of_order_events_apply_the_payment_once(
    client, run_jobs, abroad, stripe_standin
):
    invoice = abroad.invoice("500.00")
    session_id = abroad.checkout(invoice)
    stripe_standin.decline(session_id)  # payment_intent.payment_failed
    stripe_standin.pay(session_id)
    failed, completed, succeeded = stripe_standin.sent
    # The success first, each three times, then the failure that happened before it.
    statuses = deliver(client, run_jobs, abroad.token, [succeeded, completed] * 3 + [failed])
    assert statuses == [200] * 7
    s = abroad.session
    assert len(live_payments(s, abroad.client.id)) == 1
    assert fresh(s, Invoice, invoice.id).status == "paid"
    assert the_gateway_payment(s).status == "captured"
    assert event_count(s) == 3


def test_a_failure_then_a_success_of_one_payment_intent_is_on_the_timeline_then_paid(
    client, run_jobs, abroad, stripe_standin
):
    invoice = abroad.invoice("500.00")
    session_id = abroad.checkout(invoice)
    stripe_standin.decline(session_id)
    deliver(client, run_jobs, abroad.token, stripe_standin.sent)
    row = the_gateway_payment(abroad.session)
    assert (row.status, row.failure_reason) == ("failed", "Your card was declined.")
    assert live_payments(abroad.session, abroad.client.id) == []
    stripe_standin.sent.clear()
    stripe_standin.pay(session_id)
    deliver(client, run_jobs, abroad.token, stripe_standin.sent)
    assert the_gateway_payment(abroad.session).status == "captured"
    assert fresh(abroad.session, Invoice, invoice.id).status == "paid"


def test_forged_and_stale_webhooks_are_refused_and_store_nothing(
    client, run_jobs, abroad, stripe_standin
):
    invoice = abroad.invoice("500.00")
    stripe_standin.pay(abroad.checkout(invoice))
    event_id = json.loads(stripe_standin.sent[0][0])["id"]
    stripe_standin.sent.clear()
    stripe_standin.resend(event_id, secret="whsec_someoneelse0000000000000")
    stripe_standin.resend(event_id, timestamp=int(time.time()) - 301)  # a replay
    stripe_standin.resend(event_id, timestamp=int(time.time()) + 301)
    body, headers = stripe_standin.sent[0]
    tampered = body.replace(b"118000", b"118001").replace(b"50000", b"50001")
    unsigned = {key: value for key, value in headers.items() if key != "Stripe-Signature"}
    events = [*stripe_standin.sent, (tampered, headers), (body, unsigned)]
    assert deliver(client, run_jobs, abroad.token, events) == [403] * 5
    assert event_count(abroad.session) == 0
    assert fresh(abroad.session, Invoice, invoice.id).status == "issued"


def test_a_refund_puts_the_invoice_back_and_a_repeat_or_an_older_total_changes_nothing(
    client, run_jobs, abroad, stripe_standin
):
    invoice = abroad.invoice("1000.00")
    stripe_standin.pay(abroad.checkout(invoice))
    deliver(client, run_jobs, abroad.token, stripe_standin.sent)
    [charge_id] = stripe_standin.charges
    stripe_standin.sent.clear()
    stripe_standin.refund(charge_id, 40000)  # USD 400.00 of 1,000.00
    stripe_standin.refund(charge_id)  # the rest
    part, rest = stripe_standin.sent
    assert deliver(client, run_jobs, abroad.token, [part, part]) == [200, 200]
    s = abroad.session
    assert payments.outstanding(s, fresh(s, Invoice, invoice.id)) == Decimal("400.00")
    [kept] = live_payments(s, abroad.client.id)
    assert kept.amount == Decimal("600.00")
    # The later total arrives, then the older one again (a retry): only the new part counts.
    deliver(client, run_jobs, abroad.token, [rest, part])
    row = the_gateway_payment(s)
    assert (row.status, row.refunded) == ("refunded", Decimal("1000.00"))
    assert live_payments(s, abroad.client.id) == []
    assert payments.outstanding(s, fresh(s, Invoice, invoice.id)) == Decimal("1000.00")


def test_a_dispute_takes_the_money_back_and_opens_a_dispute_on_the_invoice(
    client, run_jobs, abroad, stripe_standin
):
    invoice = abroad.invoice("1000.00")
    stripe_standin.pay(abroad.checkout(invoice))
    deliver(client, run_jobs, abroad.token, stripe_standin.sent)
    [charge_id] = stripe_standin.charges
    stripe_standin.sent.clear()
    stripe_standin.dispute(charge_id, reason="fraudulent")
    disputed = stripe_standin.sent[0]
    assert deliver(client, run_jobs, abroad.token, [disputed, disputed]) == [200, 200]
    s = abroad.session
    assert fresh(s, Invoice, invoice.id).status == "disputed"
    [dispute] = s.scalars(select(Dispute).where(Dispute.invoice_id == invoice.id)).all()
    assert dispute.status == "open" and "Stripe" in dispute.reason
    assert "fraudulent" in dispute.reason and "$1,000.00" in dispute.reason
    assert live_payments(s, abroad.client.id) == []
    assert the_gateway_payment(s).status == "disputed"


def test_an_event_the_official_sdk_signs_is_accepted_and_applied(
    client, run_jobs, abroad, stripe_standin
):
    invoice = abroad.invoice("250.00")
    stripe_standin.pay(abroad.checkout(invoice))
    body, _ = stripe_standin.sent[1]  # payment_intent.succeeded
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), stripe_standin.webhook_secret, timestamp=int(time.time())
    )
    assert deliver(client, run_jobs, abroad.token, [(body, {"Stripe-Signature": header})]) == [200]
    assert fresh(abroad.session, Invoice, invoice.id).status == "paid"


def test_an_unknown_token_is_parked_and_a_body_that_is_no_event_refused(
    client, db_session, abroad, stripe_standin
):
    invoice = abroad.invoice("250.00")
    stripe_standin.pay(abroad.checkout(invoice))
    body, headers = stripe_standin.sent[0]
    assert client.post(f"{HOOK}/{'B' * 32}", data=body, headers=headers).status_code == 200
    parked = db_session.scalars(select(ParkedGatewayWebhook)).all()
    assert [(p.provider, p.event_id) for p in parked] == [("stripe", json.loads(body)["id"])]
    assert client.post(f"{HOOK}/{'B' * 32}", data=b"{nope", headers=headers).status_code == 400
    assert client.post(f"{HOOK}/{abroad.token}", data=b"[]", headers=headers).status_code == 403


def test_stripe_offers_the_foreign_clients_currencies_and_refuses_others(app, abroad):
    [option] = gateways.checkout_options(abroad.session)
    assert option.provider == "stripe"
    assert {"USD", "EUR", "GBP", "AUD", "SGD", "AED", "INR"} <= set(option.currencies)
    invoice = abroad.invoice("100.00")
    with app.app_context(), pytest.raises(gateways.CheckoutRefused, match="XOF"):
        gateways.start_checkout(
            abroad.session,
            provider="stripe",
            client_id=abroad.client.id,
            invoice_amounts={invoice.id: Decimal("100.00")},
            currency="XOF",
            return_url="http://127.0.0.1/paid",
        )


def test_one_workspaces_stripe_event_posted_to_anothers_url_is_refused(
    app, client, db_session, make_tenant, run_jobs, abroad, stripe_standin
):
    other = make_tenant()
    elsewhere = StripeStandin(webhook_secret="whsec_anotherworkspace000000000")
    other_token = connect_stripe(app, db_session, other, elsewhere)
    invoice = abroad.invoice("100.00")
    stripe_standin.pay(abroad.checkout(invoice))
    assert deliver(client, run_jobs, other_token, stripe_standin.sent) == [403, 403]
    assert event_count(tenant_session(db_session, other)) == 0
    assert fresh(abroad.session, Invoice, invoice.id).status == "issued"
