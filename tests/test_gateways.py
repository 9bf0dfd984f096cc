"""Online payments land in the books exactly once: a pay request through the Razorpay stand-in,
its signed webhooks posted to the product's webhook route, and the job that applies them.
Repeats, forgeries, malformed bodies, out-of-order events, failures and refunds."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, update

from app.audit.models import AuditEntry
from app.collections.cases import promises
from app.core.events import DomainEvent
from app.core.handover import Work, enqueue
from app.gateways import services as gateways
from app.gateways.models import Checkout, GatewayEvent, GatewayPayment, ParkedGatewayWebhook
from app.integrations.connectors.razorpay import RazorpayConnector
from app.integrations.models import IntegrationConnection, ProviderAccount
from app.invoicing.models import Invoice
from app.payments import services as payments
from app.payments.models import Payment
from app.sandbox.providers import (
    RAZORPAY_WEBHOOK_TOKEN,
    connect_demo_providers,
    standin_arguments,
)
from app.sandbox.standins.razorpay import RazorpayStandin, webhook_signature
from tests.helpers import connect_gateway, csrf_token_from, tenant_session

HOOK = "/hooks/razorpay"


@pytest.fixture
def standin(app, monkeypatch):
    """The Razorpay stand-in; its webhooks are kept (not sent) for the test to post."""
    server = RazorpayStandin(webhook_url="http://127.0.0.1:9/kept").start()
    server.sent = []
    monkeypatch.setattr(
        server.webhooks,
        "post",
        lambda url, body, headers, delay=0: server.sent.append((body, headers)),
    )
    monkeypatch.setitem(app.config, "RAZORPAY_API_BASE", server.url)
    yield server
    server.stop()


def connect(app, db_session, tenant, standin) -> str:
    """Razorpay connected to the stand-in, as the integrations page leaves it; the token."""
    raw = {
        "key_id": standin.key_id,
        "key_secret": standin.key_secret,
        "webhook_secret": standin.webhook_secret,
    }
    return connect_gateway(app, db_session, tenant, RazorpayConnector, raw)


@pytest.fixture
def shop(app, db_session, make_tenant, make_user, make_client, make_invoice, standin):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    token = connect(app, db_session, tenant, standin)
    session = tenant_session(db_session, tenant)
    client = make_client(session)
    session.commit()

    def invoice(amount="1000.00", **fields) -> Invoice:
        made = make_invoice(session, tenant, client, (amount,), **fields)
        session.commit()
        return made

    def checkout(*invoices, amounts=None) -> str:
        """Start a pay request for the invoices (each for what it owes); the link id."""
        wanted = {
            i.id: Decimal(amounts[n]) if amounts else payments.outstanding(session, i)
            for n, i in enumerate(invoices)
        }
        with app.app_context():
            url = gateways.start_checkout(
                session,
                provider="razorpay",
                client_id=client.id,
                invoice_amounts=wanted,
                currency="INR",
                return_url="http://127.0.0.1/paid",
            )
        session.commit()
        return next(link["id"] for link in standin.links.values() if link["short_url"] == url)

    return SimpleNamespace(
        owner=owner,
        tenant=tenant,
        token=token,
        session=session,
        client=client,
        invoice=invoice,
        checkout=checkout,
    )


def post(client, token, body: bytes, headers: dict):
    return client.post(f"{HOOK}/{token}", data=body, headers=headers)


def deliver(client, run_jobs, token, events) -> list[int]:
    statuses = [post(client, token, body, headers).status_code for body, headers in events]
    run_jobs()
    return statuses


def fresh(session, model, key):
    return session.get(model, key, populate_existing=True)


def live_payments(session, client_id) -> list[Payment]:
    return list(
        session.scalars(
            select(Payment)
            .where(Payment.client_id == client_id, Payment.voided_at.is_(None))
            .execution_options(populate_existing=True)
        )
    )


def test_a_paid_link_marks_the_invoice_paid_closes_its_notice_and_records_the_fee(
    client, run_jobs, shop, standin, make_notice
):
    invoice = shop.invoice("1000.00")
    notice = make_notice(shop.session, shop.client, [invoice], status="sent")
    shop.session.commit()
    link = shop.checkout(invoice)
    assert standin.links[link]["amount"] == 100000  # paise
    assert standin.links[link]["reference_id"].startswith(invoice.number)

    paid = standin.pay(link)
    assert deliver(client, run_jobs, shop.token, standin.sent) == [200, 200]

    s = shop.session
    assert fresh(s, Invoice, invoice.id).status == "paid"
    assert fresh(s, type(notice), notice.id).status == "closed"
    [payment] = live_payments(s, shop.client.id)
    assert payment.amount == Decimal("1000.00") and payment.method == "upi"
    assert payment.reference == f"Razorpay {paid['id']}"
    row = s.scalar(select(GatewayPayment).where(GatewayPayment.provider_payment_id == paid["id"]))
    assert row.payment_id == payment.id and row.fee == Decimal(paid["fee"]) / 100
    assert row.fee_tax == Decimal(paid["tax"]) / 100


def test_the_same_event_three_times_and_two_events_of_one_payment_apply_once(
    client, run_jobs, shop, standin
):
    invoice = shop.invoice("1000.00")
    standin.pay(shop.checkout(invoice))
    captured, link_paid = standin.sent
    # Razorpay retries the same event (same event id); then the other event of the payment.
    statuses = deliver(client, run_jobs, shop.token, [captured, captured, captured, link_paid])
    assert statuses == [200, 200, 200, 200]
    [payment] = live_payments(shop.session, shop.client.id)
    assert payment.amount == Decimal("1000.00")
    assert payments.unapplied(shop.session, payment) == 0
    events = shop.session.scalars(select(GatewayEvent).order_by(GatewayEvent.id)).all()
    assert [e.status for e in events] == ["applied", "ignored"]


def test_a_forged_or_tampered_event_is_refused_and_changes_nothing(
    client, run_jobs, shop, standin, caplog
):
    invoice = shop.invoice("1000.00")
    standin.pay(shop.checkout(invoice))
    body, headers = standin.sent[0]
    tampered = body.replace(b'"amount":100000', b'"amount":900000')
    forged = {**headers, "X-Razorpay-Signature": "0" * 64}
    unsigned = {k: v for k, v in headers.items() if k != "X-Razorpay-Signature"}
    assert deliver(
        client, run_jobs, shop.token, [(tampered, headers), (body, forged), (body, unsigned)]
    ) == [403, 403, 403]
    assert live_payments(shop.session, shop.client.id) == []
    assert shop.session.scalar(select(func.count()).select_from(GatewayEvent)) == 0
    assert fresh(shop.session, Invoice, invoice.id).status == "issued"
    assert "bad signature" in caplog.text


def test_a_payment_for_an_invoice_another_payment_settled_becomes_credit(
    client, run_jobs, shop, standin, make_payment
):
    invoice = shop.invoice("1000.00")
    link = shop.checkout(invoice)
    make_payment(shop.session, shop.client, "1000.00", allocate_to=[invoice])  # by bank
    shop.session.commit()
    standin.pay(link)
    deliver(client, run_jobs, shop.token, standin.sent)

    s = shop.session
    online = [p for p in live_payments(s, shop.client.id) if p.reference.startswith("Razorpay")]
    assert len(online) == 1
    assert payments.unapplied(s, online[0]) == Decimal("1000.00")  # the client's credit
    assert payments.outstanding(s, fresh(s, Invoice, invoice.id)) == 0  # never overpaid


def test_a_partly_settled_invoice_takes_what_it_owes_oldest_first_and_the_rest_is_credit(
    client, run_jobs, shop, standin, make_payment
):
    older = shop.invoice("600.00")
    newer = shop.invoice("400.00")
    link = shop.checkout(older, newer)
    make_payment(shop.session, shop.client, "500.00", allocate_to=[older], reference="UTR9")
    shop.session.commit()
    standin.pay(link)
    deliver(client, run_jobs, shop.token, standin.sent)

    s = shop.session
    [online] = [p for p in live_payments(s, shop.client.id) if p.reference.startswith("Razorpay")]
    assert fresh(s, Invoice, older.id).status == "paid"
    assert fresh(s, Invoice, newer.id).status == "paid"
    assert payments.unapplied(s, online) == Decimal("500.00")


def test_a_failed_payment_changes_no_money_is_on_the_timeline_and_a_later_capture_applies(
    client, run_jobs, shop, standin, login
):
    invoice = shop.invoice("1000.00")
    link = shop.checkout(invoice)
    standin.pay(link, outcome="failed")
    [failed] = standin.sent
    deliver(client, run_jobs, shop.token, [failed])

    s = shop.session
    assert live_payments(s, shop.client.id) == []
    assert fresh(s, Invoice, invoice.id).status == "issued"
    row = s.scalar(select(GatewayPayment))
    assert row.status == "failed" and "declined" in row.failure_reason
    (event,) = s.scalars(select(DomainEvent).where(DomainEvent.type == "payment.failed")).all()
    assert (event.subject_type, event.subject_id) == ("gateway_payment", row.id)
    assert event.data == {
        "client_id": shop.client.id,
        "provider": "razorpay",
        "reason": row.failure_reason,
        "invoice_id": invoice.id,
        "amount": "1000.00",
        "currency": "INR",
    }
    timeline = s.scalars(
        select(AuditEntry).where(
            AuditEntry.subject == f"clients:{shop.client.id}",
            AuditEntry.entity == "gateway_payments",
        )
    ).all()
    assert [entry.changes["status"][1] for entry in timeline] == ["failed"]
    login(client, shop.owner)
    page = client.get(f"/t/{shop.tenant.slug}/clients/{shop.client.id}?tab=timeline").text
    assert "online payment" in page and "declined by the payer" in page

    # The payer tries again and pays; a failure of that payment reported after its capture
    # (Razorpay warns it happens) changes nothing.
    standin.sent.clear()
    paid = standin.pay(link)
    late_failure = standin.signed_event(
        "payment.failed", {"payment": {"entity": {**paid, "status": "failed"}}}
    )
    deliver(client, run_jobs, shop.token, [*standin.sent, late_failure])
    assert fresh(s, Invoice, invoice.id).status == "paid"
    assert len(live_payments(s, shop.client.id)) == 1
    assert (
        s.scalar(
            select(GatewayPayment.status).where(GatewayPayment.provider_payment_id == paid["id"])
        )
        == "captured"
    )
    failures = select(func.count()).where(DomainEvent.type == "payment.failed")
    assert s.scalar(failures) == 1  # the late failure was ignored: no event either


def test_a_refund_puts_the_invoice_back_and_a_partial_refund_keeps_the_rest(
    client, run_jobs, shop, standin
):
    invoice = shop.invoice("1000.00")
    paid = standin.pay(shop.checkout(invoice))
    deliver(client, run_jobs, shop.token, standin.sent)
    s = shop.session

    standin.sent.clear()
    standin.refund(paid["id"], 30000)  # ₹300 back
    [refund] = standin.sent
    assert deliver(client, run_jobs, shop.token, [refund, refund]) == [200, 200]
    [kept] = live_payments(s, shop.client.id)
    assert kept.amount == Decimal("700.00")
    assert fresh(s, Invoice, invoice.id).status == "partly_paid"
    assert payments.outstanding(s, fresh(s, Invoice, invoice.id)) == Decimal("300.00")

    standin.sent.clear()
    standin.refund(paid["id"])  # the rest
    deliver(client, run_jobs, shop.token, standin.sent)
    assert live_payments(s, shop.client.id) == []
    assert fresh(s, Invoice, invoice.id).status == "issued"
    row = s.scalar(select(GatewayPayment).execution_options(populate_existing=True))
    assert row.status == "refunded" and row.refunded == Decimal("1000.00")


def test_a_refund_before_its_payment_is_parked_not_applied(client, run_jobs, shop, standin):
    invoice = shop.invoice("1000.00")
    paid = standin.pay(shop.checkout(invoice))
    applied = list(standin.sent)
    standin.sent.clear()
    standin.refund(paid["id"])
    deliver(client, run_jobs, shop.token, standin.sent)  # out of order: refund first
    event = shop.session.scalar(select(GatewayEvent))
    assert event.status == "parked" and "unknown here" in event.reason

    deliver(client, run_jobs, shop.token, applied)
    assert fresh(shop.session, Invoice, invoice.id).status == "paid"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"entity":"event","event":5}', b"\xff\xfe", b'{"a":"\\u0000"}'],
)
def test_a_malformed_body_is_a_400_and_stores_nothing(client, shop, standin, body):
    headers = {"X-Razorpay-Signature": webhook_signature(body, standin.webhook_secret)}
    assert post(client, shop.token, body, headers).status_code == 400
    assert shop.session.scalar(select(func.count()).select_from(GatewayEvent)) == 0


def test_an_event_for_an_unknown_link_is_acknowledged_and_parked(client, run_jobs, shop, standin):
    body, headers = standin.signed_event(
        "payment_link.paid",
        {
            "payment_link": {"entity": {"id": "plink_Unknown0000001", "status": "paid"}},
            "payment": {"entity": {"id": "pay_Unknown00000001", "amount": 100, "currency": "INR"}},
        },
    )
    assert deliver(client, run_jobs, shop.token, [(body, headers)]) == [200]
    event = shop.session.scalar(select(GatewayEvent))
    assert event.status == "parked" and "no pay request" in event.reason
    assert live_payments(shop.session, shop.client.id) == []


def test_an_unknown_account_is_acknowledged_and_parked_a_malformed_one_refused(
    client, db_session, standin
):
    body, headers = standin.signed_event("payment.captured", {"payment": {"entity": {}}})
    assert post(client, "A" * 32, body, headers).status_code == 200
    parked = db_session.scalars(select(ParkedGatewayWebhook)).all()
    assert [p.reason for p in parked] == ["No workspace has this webhook URL."]
    assert "AAAA" not in parked[0].token_digest  # the token itself is not kept
    assert post(client, "A" * 32, b"nope", headers).status_code == 400
    assert post(client, "short", body, headers).status_code == 200
    assert db_session.scalar(select(func.count()).select_from(ParkedGatewayWebhook)) == 2


def test_one_workspaces_event_posted_to_anothers_url_is_refused(
    app, client, db_session, make_tenant, run_jobs, shop, standin
):
    other = make_tenant()
    other_standin_secret = RazorpayStandin(webhook_secret="another-secret")
    other_token = connect(app, db_session, other, other_standin_secret)
    invoice = shop.invoice("1000.00")
    standin.pay(shop.checkout(invoice))
    assert deliver(client, run_jobs, other_token, standin.sent) == [403, 403]
    assert fresh(shop.session, Invoice, invoice.id).status == "issued"


def test_checkout_options_and_refusals(app, shop, standin):
    s = shop.session
    assert [(o.provider, o.currencies) for o in gateways.checkout_options(s)] == [
        ("razorpay", ("INR",))
    ]
    invoice = shop.invoice("1000.00")
    with app.app_context(), pytest.raises(gateways.CheckoutRefused, match="owes"):
        gateways.start_checkout(
            s,
            provider="razorpay",
            client_id=shop.client.id,
            invoice_amounts={invoice.id: Decimal("1000.01")},
            currency="INR",
            return_url="http://127.0.0.1/paid",
        )
    # The interest's part is checked apart: the rest must be what the invoice owes at most,
    # and interest alone (nothing for the invoice) or below zero is refused.
    for amount, interest in (("1200.00", "199.99"), ("150.00", "150.00"), ("100.00", "-1.00")):
        with app.app_context(), pytest.raises(gateways.CheckoutRefused, match="owes"):
            gateways.start_checkout(
                s,
                provider="razorpay",
                client_id=shop.client.id,
                invoice_amounts={invoice.id: Decimal(amount)},
                interest_amounts={invoice.id: Decimal(interest)},
                currency="INR",
                return_url="http://127.0.0.1/paid",
            )
    with app.app_context():
        gateways.start_checkout(
            s,
            provider="razorpay",
            client_id=shop.client.id,
            invoice_amounts={invoice.id: Decimal("1200.00")},
            interest_amounts={invoice.id: Decimal("200.00")},
            currency="INR",
            return_url="http://127.0.0.1/paid",
        )
    (line,) = s.scalar(select(Checkout).order_by(Checkout.id.desc()).limit(1)).invoices
    assert (line.amount, line.interest, line.principal) == (
        Decimal("1200.00"),
        Decimal("200.00"),
        Decimal("1000.00"),
    )
    standin.inject_fault(400, message="The amount must be atleast INR 1.00")
    with app.app_context(), pytest.raises(gateways.CheckoutRefused, match="atleast INR 1.00"):
        gateways.start_checkout(
            s,
            provider="razorpay",
            client_id=shop.client.id,
            invoice_amounts={invoice.id: Decimal("1.00")},
            currency="INR",
            return_url="http://127.0.0.1/paid",
        )


def test_the_stored_event_is_the_exact_body_received(client, run_jobs, shop, standin):
    invoice = shop.invoice("1000.00")
    standin.pay(shop.checkout(invoice))
    body, headers = standin.sent[0]
    post(client, shop.token, body, headers)
    event = shop.session.scalar(select(GatewayEvent))
    assert event.body.encode() == body and event.event_id == headers["X-Razorpay-Event-Id"]
    assert json.loads(body)["event"] == event.event_type == "payment.captured"


def test_an_event_no_worker_applied_is_applied_by_the_sweeper(app, client, run_jobs, shop, standin):
    invoice = shop.invoice("1000.00")
    standin.pay(shop.checkout(invoice))
    real_enqueue = app.extensions["duebook.enqueue"]
    app.extensions["duebook.enqueue"] = list  # Redis gone at receipt: stored, not queued
    try:
        assert deliver(client, run_jobs, shop.token, standin.sent) == [200, 200]
    finally:
        app.extensions["duebook.enqueue"] = real_enqueue
    s = shop.session
    assert fresh(s, Invoice, invoice.id).status == "issued"
    s.execute(update(GatewayEvent).values(received_at=func.now() - timedelta(minutes=5)))
    s.commit()
    with app.app_context():
        enqueue([Work("sweep_gateway_events_all")])
    run_jobs()
    assert fresh(s, Invoice, invoice.id).status == "paid"
    assert len(live_payments(s, shop.client.id)) == 1


def test_the_integrations_page_connects_razorpay_and_its_test_binds_the_webhook_url(
    app, client, db_session, make_user, make_tenant, login, run_jobs, standin
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/integrations/razorpay/connect")
    assert page.status_code == 200 and "Webhook secret" in page.text
    form = {
        "key_id": standin.key_id,
        "key_secret": standin.key_secret,
        "webhook_secret": standin.webhook_secret,
        "csrf_token": csrf_token_from(page.text),
    }
    assert (
        client.post(f"/t/{tenant.slug}/integrations/razorpay/connect", data=form).status_code == 303
    )
    run_jobs()  # the connection's test: Razorpay accepts the keys, the webhook URL routes here
    session = tenant_session(db_session, tenant)
    connection = session.scalar(select(IntegrationConnection))
    assert connection.verification == "verified" and connection.usable
    assert "key_secret" not in json.dumps(connection.settings)
    token = connection.settings["webhook_token"]
    route = db_session.scalar(select(ProviderAccount).where(ProviderAccount.account_key == token))
    assert route.tenant_id == tenant.id
    assert f"/hooks/razorpay/{token}" in client.get(f"/t/{tenant.slug}/integrations/").text
    assert [o.provider for o in gateways.checkout_options(session)] == ["razorpay"]


def test_make_run_connects_the_demo_workspace_to_the_razorpay_standin(
    app, client, db_session, make_tenant, make_user, make_client, make_invoice, run_jobs, standin
):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)
    with app.app_context():
        connect_demo_providers(session, tenant, owner.id)
    session.commit()
    [(_, webhook_url)] = [
        extra
        for name, setting, extra in standin_arguments("http://127.0.0.1:5000")
        if (name, setting) == ("razorpay", "RAZORPAY_API_BASE")
    ]
    assert webhook_url == f"http://127.0.0.1:5000{HOOK}/{RAZORPAY_WEBHOOK_TOKEN}"
    # The demo's sandbox payer pays an invoice; the stand-in's signed webhooks settle it.
    buyer = make_client(session)
    invoice = make_invoice(session, tenant, buyer, ("250.00",))
    with app.app_context():
        url = gateways.start_checkout(
            session,
            provider="razorpay",
            client_id=buyer.id,
            invoice_amounts={invoice.id: Decimal("250.00")},
            currency="INR",
            return_url="http://127.0.0.1/paid",
        )
    session.commit()
    [link] = [each["id"] for each in standin.links.values() if each["short_url"] == url]
    standin.pay(link)
    assert deliver(client, run_jobs, RAZORPAY_WEBHOOK_TOKEN, standin.sent) == [200, 200]
    assert fresh(session, Invoice, invoice.id).status == "paid"


def test_a_promise_to_pay_is_kept_by_an_online_payment(client, run_jobs, shop, standin):
    invoice = shop.invoice("1000.00")
    today = date.today()
    promise = promises.create_promise(
        shop.session,
        shop.client,
        {"amount": "1000.00", "promised_on": (today + timedelta(days=7)).isoformat()},
        today,
    )
    shop.session.commit()
    standin.pay(shop.checkout(invoice))
    deliver(client, run_jobs, shop.token, standin.sent)
    assert fresh(shop.session, type(promise), promise.id).status == "kept"
