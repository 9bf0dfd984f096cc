"""Payments: recorded with per-field errors, allocated oldest first (editable) to the exact
paisa, cash + TDS settling invoices, over-payment as credit, un-allocation restoring what an
invoice owes and its statuses, refusals, TDS certificates, the client's payments tab."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from app.clients.models import Client
from app.invoicing import services as invoicing
from app.payments import services
from app.payments.models import PaymentAllocation
from app.projects.models import Milestone, Project
from tests.factories import invoice_milestones
from tests.helpers import csrf_token_from, tenant_session

MH_GSTIN = "27AAPFU0939F1ZV"


@pytest.fixture
def books(db_session, make_tenant, make_user, make_client, make_invoice):
    """A tenant in Maharashtra, a client, and a factory of issued invoices (no tax, so that an
    invoice's total is its milestones' sum)."""
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)

    def new_client():
        return make_client(session)

    def issued(client, amount="1000.00", day=date(2027, 2, 1)):
        invoice = make_invoice(
            session, tenant, client, (amount,), issued_on=day, due_on=date(2027, 2, 1)
        )
        (milestone,) = invoice_milestones(session, invoice)
        return invoice, milestone

    client = new_client()
    return session, client, issued, new_client


def pay(session, client, amount, day="2027-03-01"):
    values = {"amount": amount, "received_on": day, "method": "upi", "reference": "UTR1"}
    return services.record_payment(session, client, values)


def test_recording_checks_each_field(books):
    session, client, _, _ = books
    with pytest.raises(services.PaymentInvalid) as refused:
        services.record_payment(
            session, client, {"amount": "-5", "received_on": "1 March", "method": "barter"}
        )
    errors = refused.value.errors
    assert set(errors) == {"amount", "received_on", "method"}
    assert "cannot be negative" in errors["amount"]
    payment = pay(session, client, "1234.56")
    assert payment.amount == Decimal("1234.56") and payment.currency == "INR"
    assert pay(session, client, "20,00,000").amount == Decimal("2000000.00")  # Indian grouping


def test_oldest_first_suggestion_and_allocation_adds_up_exactly(books):
    session, client, issued, _ = books
    newer, _ = issued(client, "300.00", date(2027, 2, 10))
    older, _ = issued(client, "200.10", date(2027, 2, 1))
    payment = pay(session, client, "350.20")
    suggestion, left = services.suggest_allocation(session, payment)
    assert suggestion == [(older.id, Decimal("200.10")), (newer.id, Decimal("150.10"))]
    assert left == Decimal("0.00")
    services.allocate(session, payment, [(i, a, "0", None, None) for i, a in suggestion])
    assert services.unapplied(session, payment) == Decimal("0.00")
    assert services.outstanding(session, older) == Decimal("0.00")
    assert services.outstanding(session, newer) == Decimal("149.90")
    assert sum(a.amount for a in services.live_allocations(session, payment)) == payment.amount


def test_part_payment_then_unallocate_restores_everything(books):
    session, client, issued, _ = books
    invoice, milestone = issued(client, "1000.00")
    payment = pay(session, client, "400.00")
    [allocation] = services.allocate(session, payment, [(invoice.id, "400.00", "", "", "")])
    assert (invoice.status, milestone.status) == ("partly_paid", "partly_paid")
    assert services.outstanding(session, invoice) == Decimal("600.00")
    services.unallocate(session, allocation)
    assert allocation.removed_at is not None  # kept as history
    assert (invoice.status, milestone.status) == ("issued", "invoiced")
    assert services.outstanding(session, invoice) == Decimal("1000.00")
    assert services.unapplied(session, payment) == Decimal("400.00")
    with pytest.raises(services.PaymentError, match="already removed"):
        services.unallocate(session, allocation)


def test_cash_plus_tds_settles_the_invoice_and_tds_waits_for_its_certificate(books):
    session, client, issued, _ = books
    invoice, milestone = issued(client, "1000.00")
    payment = pay(session, client, "900.00")
    [allocation] = services.allocate(
        session, payment, [(invoice.id, "900.00", "100.00", "194J", "10")]
    )
    assert (invoice.status, milestone.status) == ("paid", "paid")
    balance = services.client_balance(session, client)
    assert balance.outstanding == Decimal("0.00") and balance.tds_awaiting == Decimal("100.00")
    assert [a.id for a in balance.tds_pending] == [allocation.id]
    services.mark_tds_certificate(session, allocation, date(2027, 6, 15))
    balance = services.client_balance(session, client)
    assert balance.tds_awaiting == Decimal("0.00") and balance.tds_pending == []


def test_over_payment_becomes_credit(books):
    session, client, issued, _ = books
    invoice, _ = issued(client, "500.00")
    payment = pay(session, client, "800.00")
    suggestion, left = services.suggest_allocation(session, payment)
    assert suggestion == [(invoice.id, Decimal("500.00"))] and left == Decimal("300.00")
    services.allocate(session, payment, [(invoice.id, "500.00", None, None, None)])
    balance = services.client_balance(session, client)
    assert (balance.outstanding, balance.credit, balance.net) == (
        Decimal("0.00"),
        Decimal("300.00"),
        Decimal("-300.00"),
    )


def test_voiding_a_payment_makes_its_invoices_owe_again(books):
    session, client, issued, _ = books
    first, first_milestone = issued(client, "600.00")
    second, second_milestone = issued(client, "400.00")
    payment = pay(session, client, "1200.00")  # 200.00 more than both: client credit
    services.allocate(
        session, payment, [(first.id, "600.00", "", "", ""), (second.id, "300.00", "", "", "")]
    )
    assert (first.status, second.status) == ("paid", "partly_paid")
    with pytest.raises(services.PaymentError, match="Say why"):
        services.void_payment(session, payment, "  ")
    services.void_payment(session, payment, "Cheque   bounced")
    assert payment.voided_at is not None and payment.void_reason == "Cheque bounced"
    assert (first.status, second.status) == ("issued", "issued")
    assert (first_milestone.status, second_milestone.status) == ("invoiced", "invoiced")
    balance = services.client_balance(session, client)
    assert (balance.outstanding, balance.credit) == (Decimal("1000.00"), Decimal("0.00"))
    assert all(a.removed_at is not None for a in services.all_allocations(session, payment))
    with pytest.raises(services.PaymentError, match="already void"):
        services.void_payment(session, payment, "again")
    with pytest.raises(services.PaymentError):
        services.allocate(session, payment, [(first.id, "10.00", "", "", "")])


def test_refusals_say_why(books):
    session, client, issued, new_client = books
    invoice, _ = issued(client, "500.00")
    payment = pay(session, client, "300.00")
    with pytest.raises(services.PaymentError, match="has ₹300.00 left to allocate"):
        services.allocate(session, payment, [(invoice.id, "400.00", None, None, None)])
    with pytest.raises(services.PaymentError, match="owes ₹500.00"):
        services.allocate(session, payment, [(invoice.id, "300.00", "250.00", "194C", "2")])
    with pytest.raises(services.PaymentError, match="section .* and its rate"):
        services.allocate(session, payment, [(invoice.id, "100.00", "10.00", "", "")])
    with pytest.raises(services.PaymentError, match="cannot be negative"):
        services.allocate(session, payment, [(invoice.id, "-1.00", None, None, None)])
    other_invoice, _ = issued(new_client(), "100.00")
    with pytest.raises(services.PaymentError, match="not one of this client's invoices"):
        services.allocate(session, payment, [(other_invoice.id, "50.00", None, None, None)])
    void_invoice, _ = issued(client, "100.00")
    invoicing.void(session, void_invoice)
    with pytest.raises(services.PaymentError, match="is void"):
        services.allocate(session, payment, [(void_invoice.id, "50.00", None, None, None)])
    assert session.query(PaymentAllocation).count() == 0
    assert services.outstanding(session, invoice) == Decimal("500.00")


def test_pages_record_allocate_and_the_client_tab(
    app, client, db_session, make_tenant, make_user, add_member, login
):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    viewer = make_user()
    add_member(tenant, viewer, role="viewer")
    session = tenant_session(db_session, tenant)
    customer = Client(
        full_name="Kaveri Builders",
        short_name="Kaveri",
        location="local",
        country="IN",
        currency="INR",
        gstin=MH_GSTIN,
        payment_terms="net",
        payment_days=30,
    )
    session.add(customer)
    session.flush()
    proj = Project(
        client_id=customer.id,
        name="Tower A",
        contract_value=Decimal("1000"),
        currency="INR",
        start_date=date(2027, 1, 4),
    )
    session.add(proj)
    session.flush()
    done = Milestone(
        project_id=proj.id,
        position=1,
        name="Foundation",
        amount=Decimal("1000"),
        due_rule="date",
        due_date=date(2027, 2, 1),
        status="completed",
    )
    session.add(done)
    session.flush()
    invoice = invoicing.draft_from_milestones(session, tenant, proj, [done], "0", "9983")
    invoicing.issue(session, tenant, invoice, date(2027, 2, 1))
    session.commit()
    base = f"/t/{tenant.slug}/payments"

    login(client, owner)
    form = client.get(f"{base}/new?client_id={customer.id}")
    assert form.status_code == 200
    token = csrf_token_from(form.text)
    bad = client.post(
        f"{base}/new?client_id={customer.id}",
        data={
            "csrf_token": token,
            "amount": "",
            "received_on": "2027-03-01",
            "method": "upi",
            "reference": "UTR9",
        },
    )
    assert bad.status_code == 422 and "Enter the amount received." in bad.text
    made = client.post(
        f"{base}/new?client_id={customer.id}",
        data={
            "csrf_token": token,
            "amount": "1500",
            "received_on": "2027-03-01",
            "method": "upi",
            "reference": "UTR9",
        },
    )
    assert made.status_code == 303
    url = made.headers["Location"]
    page = client.get(url).text
    assert f'name="cash_{invoice.id}" value="1000.00"' in page  # the oldest-first suggestion
    over = client.post(
        f"{url}/allocate",
        data={"csrf_token": token, "invoice_ids": invoice.id, f"cash_{invoice.id}": "1200"},
    )
    assert over.status_code == 422 and "owes ₹1,000.00" in over.text
    done_ = client.post(
        f"{url}/allocate",
        data={"csrf_token": token, "invoice_ids": invoice.id, f"cash_{invoice.id}": "1000.00"},
    )
    assert done_.status_code == 303
    tab = client.get(f"/t/{tenant.slug}/clients/{customer.id}?tab=payments").text
    assert "Unapplied credit</dt><dd>₹500.00" in tab
    assert "Balance</dt><dd><strong>-₹500.00" in tab
    check = tenant_session(db_session, tenant)
    assert check.get(Milestone, done.id).status == "paid"

    unexplained = client.post(f"{url}/void", data={"csrf_token": token, "reason": ""})
    assert unexplained.status_code == 422 and 'id="void-reason-error"' in unexplained.text
    voided = client.post(f"{url}/void", data={"csrf_token": token, "reason": "Reversed by bank"})
    assert voided.status_code == 303
    assert "Voided" in client.get(url).text and "Reversed by bank" in client.get(url).text
    tab = client.get(f"/t/{tenant.slug}/clients/{customer.id}?tab=payments").text
    assert "Outstanding on invoices</dt><dd>₹1,000.00" in tab
    assert "Unapplied credit</dt><dd>₹0.00" in tab

    other = app.test_client()
    login(other, viewer)
    assert other.get(url).status_code == 200
    viewer_token = csrf_token_from(other.get(url).text)
    refused = other.post(
        f"{base}/new?client_id={customer.id}",
        data={
            "csrf_token": viewer_token,
            "amount": "5",
            "received_on": "2027-03-01",
            "method": "cash",
        },
    )
    assert refused.status_code == 403
    assert other.get(f"{base}/new?client_id={customer.id}").status_code == 403
