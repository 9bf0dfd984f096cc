"""The payer's whole journey: the pay link of an invoice, the Pay button of the connected
gateway, the gateway's checkout (the Razorpay stand-in), its signed webhook, and the page then
saying the invoice is paid. The pay page and the gateways area meet only in
app/paylinks/checkout.py; this test fails if that seam is cut or miswired."""

from __future__ import annotations

import html
from datetime import date
from decimal import Decimal

from app.invoicing.models import Invoice
from app.paylinks import services as paylinks
from app.payments import services as payments
from tests.helpers import csrf_token_from, tenant_session
from tests.test_gateways import HOOK, connect, standin  # noqa: F401  (the stand-in fixture)


def test_an_invoice_paid_from_its_pay_link_through_razorpay_is_paid_once(
    app,
    client,
    db_session,
    make_tenant,
    make_user,
    make_client,
    make_invoice,
    make_notice,
    run_jobs,
    standin,  # noqa: F811
):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27", upi_vpa="udyam@okhdfc")
    token = connect(app, db_session, tenant, standin)
    session = tenant_session(db_session, tenant)
    with app.app_context():
        customer = make_client(session, name="Kaveri Builders")
        invoice = make_invoice(session, tenant, customer, ("1180.00",), due_on=date(2027, 2, 15))
        notice = make_notice(session, customer, [invoice], status="sent")
        link = paylinks.link_for_invoice(session, invoice)
        path = "/pay/" + paylinks.make_token(tenant.id, link)
    session.commit()

    page = client.get(path)
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Pay with UPI, card or netbanking (Razorpay)" in text and "₹1,180.00" in text

    started = client.post(
        f"{path}/checkout/razorpay",
        data={"csrf_token": csrf_token_from(page.text), "currency": "INR"},
    )
    assert started.status_code == 303
    opened = next(link for link in standin.links.values() if link["short_url"] == started.location)
    assert opened["amount"] == 118000 and opened["currency"] == "INR"
    assert invoice.number in opened["reference_id"]

    standin.pay(opened["id"])
    assert standin.sent, "the stand-in sent no webhook"
    for body, headers in standin.sent * 2:  # every event delivered twice
        assert client.post(f"{HOOK}/{token}", data=body, headers=headers).status_code == 200
    run_jobs()

    session.expire_all()
    paid = session.get(Invoice, invoice.id)
    assert paid.status == "paid" and payments.outstanding(session, paid) == Decimal("0.00")
    assert len(payments.client_payments(session, customer.id)) == 1
    assert session.get(type(notice), notice.id).status == "closed"
    after = html.unescape(client.get(path).text)
    assert "paid" in after.lower() and "Pay with UPI" not in after
