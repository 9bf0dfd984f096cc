"""The payer's whole journey: the pay link of an invoice, the Pay button of the connected
gateway, the gateway's checkout (the Razorpay stand-in), its signed webhook, and the page then
saying the invoice is paid. The pay page and the gateways area meet only in
app/paylinks/checkout.py; this test fails if that seam is cut or miswired."""

from __future__ import annotations

import html
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.collections.cases.interest_claims import interest_claims, settle_claim
from app.collections.models import CollectionNotice, InterestSettlement
from app.collections.notices import services as notices
from app.invoicing.models import Invoice
from app.paylinks import services as paylinks
from app.payments import services as payments
from tests.helpers import csrf_token_from, tenant_session
from tests.test_gateways import HOOK, connect, standin  # noqa: F401  (the stand-in fixture)
from tests.test_notices import make_books


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


class Chased:
    """A client on late-payment interest whose ₹1,00,000 invoice a sent notice chased, paying
    it all from the invoice's pay link through the Razorpay stand-in."""

    def __init__(self, app, client, db_session, make_tenant, make_user, request, server):
        self.client, self.standin = client, server
        self.books = make_books(app, db_session, make_tenant, make_user, request)
        books, session = self.books, self.books.session
        books.client.late_interest_mode, books.client.late_interest_rate = "compound", Decimal(18)
        self.invoice = books.invoice("100000.00")
        self.notice = books.notice([self.invoice], status="approved")
        session.commit()
        self.token = connect(app, db_session, books.tenant, server)
        with app.app_context():
            sent = notices.send_notices(session, books.tenant, [self.notice.id])
            assert sent == {self.notice.id: "queued"}
            session.commit()
            link = paylinks.link_for_invoice(session, self.invoice)
            self.path = "/pay/" + paylinks.make_token(books.tenant.id, link)
        session.commit()
        self.claimed = interest_claims(session, invoice_ids=[self.invoice.id])[
            self.invoice.id
        ].unpaid
        assert self.claimed > 0

    def start(self) -> dict:
        """Press the Pay button; the stand-in's payment link it opened."""
        page = self.client.get(self.path)
        started = self.client.post(
            f"{self.path}/checkout/razorpay",
            data={"csrf_token": csrf_token_from(page.text), "currency": "INR"},
        )
        assert started.status_code == 303, html.unescape(started.text)
        return next(
            link for link in self.standin.links.values() if link["short_url"] == started.location
        )

    def pay(self, opened: dict, run_jobs) -> None:
        self.standin.pay(opened["id"])
        for body, headers in self.standin.sent * 2:  # every event delivered twice
            posted = self.client.post(f"{HOOK}/{self.token}", data=body, headers=headers)
            assert posted.status_code == 200
        run_jobs()
        self.books.session.expire_all()

    def settlements(self) -> list[InterestSettlement]:
        return list(
            self.books.session.scalars(
                select(InterestSettlement).where(InterestSettlement.invoice_id == self.invoice.id)
            )
        )


@pytest.fixture
def chased(app, client, db_session, make_tenant, make_user, storage_root, request, standin):  # noqa: F811
    return Chased(app, client, db_session, make_tenant, make_user, request, standin)


def test_interest_a_notice_claimed_is_paid_online_with_the_invoice_and_settles_the_claim(
    chased, run_jobs
):
    """The pay page asks for the invoice and the interest the notice claimed, the stand-in
    takes it all, and the payment pays the invoice and settles the claim as a hand-recorded
    one would; the webhooks delivered twice book it once."""
    session, invoice = chased.books.session, chased.invoice
    total = Decimal("100000.00") + chased.claimed
    opened = chased.start()
    assert opened["amount"] == int(total * 100)
    chased.pay(opened, run_jobs)

    paid = session.get(Invoice, invoice.id)
    assert paid.status == "paid" and payments.outstanding(session, paid) == Decimal("0.00")
    (payment,) = payments.client_payments(session, chased.books.client.id)
    assert payment.amount == total and payments.unapplied(session, payment) == Decimal("0.00")
    (settlement,) = chased.settlements()
    assert settlement.kind == "paid" and settlement.amount == chased.claimed
    assert settlement.notice_id == chased.notice.id and settlement.allocation_id is not None
    assert interest_claims(session, invoice_ids=[invoice.id]) == {}
    assert session.get(CollectionNotice, chased.notice.id).status == "closed"
    after = html.unescape(chased.client.get(chased.path).text)
    assert f"Invoice {invoice.number} is paid: there is nothing to pay on it." in after
    assert "Pay with UPI" not in after


def test_interest_waived_while_the_payer_was_paying_becomes_the_clients_credit(chased, run_jobs):
    """The pay request asked for the interest, then the tenant waived it before the money
    came: the invoice is paid, nothing is settled as paid, and the interest's part of the
    payment stays the client's credit."""
    session = chased.books.session
    opened = chased.start()
    settle_claim(
        session,
        chased.invoice,
        {"kind": "waived", "amount": chased.claimed, "reason": "Goodwill"},
        "IN",
        chased.books.owner.id,
    )
    session.commit()
    chased.pay(opened, run_jobs)

    assert session.get(Invoice, chased.invoice.id).status == "paid"
    (payment,) = payments.client_payments(session, chased.books.client.id)
    assert payments.unapplied(session, payment) == chased.claimed
    assert [s.kind for s in chased.settlements()] == ["waived"]
