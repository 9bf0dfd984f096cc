"""Promises to pay (kept by a payment, broken by the daily run with a notice to the collector),
disputes (one open per invoice, the invoice disputed meanwhile, resolved or rejected with a
note), holds (active between their dates unless released), the bank-rate table, and their
pages: the client's Collections tab, the Disputes and Promises lists, permissions, and another
tenant's ids answering 404."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.collections.cases import disputes, holds, promises
from app.collections.cases import services as cases
from app.collections.cases.services import CaseError, CaseInvalid
from app.collections.models import BankRate, Dispute, PromiseToPay
from app.core.events import run_consumers
from app.notifications.models import Notification
from app.notifications.services import people_to_tell
from app.payments import services as payments
from tests.helpers import csrf_token_from, tenant_session

TODAY = date(2027, 3, 10)


@pytest.fixture
def desk(db_session, make_tenant, make_user, make_client, make_invoice):
    """A tenant with its owner, a client with a collector, and a maker of issued invoices."""
    owner = make_user(full_name="Owner O")
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)

    def new_client(**fields):
        return make_client(session, **fields)

    def issued(client, amount="1000.00", day=date(2027, 2, 1)):
        return make_invoice(session, tenant, client, (amount,), issued_on=day)

    class Desk:
        pass

    d = Desk()
    d.session, d.tenant, d.owner, d.new_client, d.issued = (
        session,
        tenant,
        owner,
        new_client,
        issued,
    )
    d.client = new_client()
    return d


def pay(session, client, invoice, amount, day="2027-03-05"):
    payment = payments.record_payment(
        session, client, {"amount": amount, "received_on": day, "method": "upi", "reference": "UTR"}
    )
    payments.allocate(session, payment, [(invoice.id, Decimal(amount), Decimal("0"))])
    return payment


# Promises ----------------------------------------------------------------------------------


def test_a_promise_checks_its_fields_and_covers_the_open_invoices(desk):
    s, client = desk.session, desk.client
    with pytest.raises(CaseInvalid) as refused:
        promises.create_promise(s, client, {"amount": "500", "promised_on": "2027-03-20"}, TODAY)
    assert "owes nothing" in refused.value.errors["invoice_ids"]
    first, second = desk.issued(client, "1000.00"), desk.issued(client, "600.00")
    other = desk.issued(desk.new_client())
    pay(s, client, first, "100.00")
    with pytest.raises(CaseInvalid) as refused:
        promises.create_promise(
            s,
            client,
            {"amount": "-1", "promised_on": "2027-03-01", "invoice_ids": [str(other.id)]},
            TODAY,
        )
    assert set(refused.value.errors) == {"amount", "promised_on", "invoice_ids"}
    assert "past" in refused.value.errors["promised_on"]
    promise = promises.create_promise(
        s, client, {"amount": "1,000", "promised_on": "2027-03-20"}, TODAY, desk.owner.id
    )
    assert sorted(promise.invoice_ids) == sorted([first.id, second.id])
    assert promise.paid_before == Decimal("100.00") and promise.currency == "INR"
    assert promise.status == "open"


def test_a_payment_keeps_a_promise_only_once_the_amount_has_come(desk):
    s, client = desk.session, desk.client
    invoice = desk.issued(client, "1000.00")
    promise = promises.create_promise(
        s,
        client,
        {"amount": "600", "promised_on": "2027-03-20", "invoice_ids": [str(invoice.id)]},
        TODAY,
    )
    pay(s, client, invoice, "400.00")
    assert promise.status == "open"  # 400 of 600
    pay(s, client, invoice, "200.00")
    s.refresh(promise)
    assert promise.status == "kept" and promise.resolved_at is not None


def test_settling_all_covered_invoices_keeps_a_promise_of_more(desk):
    s, client = desk.session, desk.client
    invoice = desk.issued(client, "300.00")
    promise = promises.create_promise(
        s, client, {"amount": "500", "promised_on": "2027-03-20"}, TODAY
    )
    pay(s, client, invoice, "300.00")
    s.refresh(promise)
    assert promise.status == "kept"


def test_the_daily_run_breaks_an_unpaid_promise_and_tells_the_collector(
    desk, make_user, add_member
):
    s = desk.session
    collector = make_user(full_name="Collector C")
    add_member(desk.tenant, collector, role="collector")
    s.commit()
    client = desk.new_client(collector_user_id=collector.id)
    invoice = desk.issued(client, "1000.00")
    broken = promises.create_promise(
        s, client, {"amount": "500", "promised_on": "2027-03-10"}, TODAY
    )
    later = promises.create_promise(
        s, client, {"amount": "500", "promised_on": "2027-03-12"}, TODAY
    )
    pay(s, client, invoice, "100.00")
    assert promises.mark_broken(s, date(2027, 3, 10)) == []  # the promised day itself is fine
    assert promises.mark_broken(s, date(2027, 3, 11)) == [broken]
    assert (broken.status, later.status) == ("broken", "open")
    run_consumers(s)  # notifications reads the promise.broken event
    told = s.scalars(select(Notification).where(Notification.kind == "broken_promise")).all()
    assert [n.user_id for n in told] == [collector.id]
    assert client.short_name in told[0].title and "?tab=collections" in told[0].link
    assert "INR 500.00 was promised by 10 Mar 2027; INR 400.00 did not come" in told[0].body
    assert promises.mark_broken(s, date(2027, 3, 12)) == []  # once
    run_consumers(s)
    broken_told = select(func.count()).select_from(Notification)
    assert s.scalar(broken_told.where(Notification.kind == "broken_promise")) == 1
    # No collector nor manager: the finance people, admins and owners hear of it.
    nobody = desk.new_client()
    desk.issued(nobody)
    promises.create_promise(s, nobody, {"amount": "5", "promised_on": "2027-03-10"}, TODAY)
    assert people_to_tell(s, nobody) == [desk.owner.id]
    assert len(promises.mark_broken(s, date(2027, 3, 11))) == 1


def test_cancel_a_promise(desk):
    s, client = desk.session, desk.client
    desk.issued(client)
    promise = promises.create_promise(
        s, client, {"amount": "5", "promised_on": "2027-03-20"}, TODAY
    )
    promises.cancel_promise(s, promise)
    assert promise.status == "cancelled"
    with pytest.raises(CaseError):
        promises.cancel_promise(s, promise)


# Disputes ----------------------------------------------------------------------------------


def test_a_dispute_pauses_the_invoice_and_ends_with_a_note(desk):
    s, client = desk.session, desk.client
    invoice = desk.issued(client, "1000.00")
    with pytest.raises(CaseInvalid) as refused:
        disputes.open_dispute(s, invoice, {"reason": " ", "evidence_url": "ftp://x"})
    assert set(refused.value.errors) == {"reason", "evidence_url"}
    dispute = disputes.open_dispute(
        s,
        invoice,
        {
            "reason": "Wrong rate",
            "evidence": "Mail of 2 Mar",
            "evidence_url": "https://example.com/mail",
        },
        desk.owner.id,
    )
    assert invoice.status == "disputed" and dispute.owner_user_id == desk.owner.id
    with pytest.raises(CaseError, match="already has an open dispute"):
        disputes.open_dispute(s, invoice, {"reason": "Again"})
    with pytest.raises(CaseInvalid) as refused:
        disputes.end_dispute(s, dispute, "resolved", "", TODAY)
    assert "resolution_note" in refused.value.errors
    disputes.end_dispute(s, dispute, "rejected", "The rate is in the contract", TODAY)
    assert dispute.status == "rejected" and invoice.status == "overdue"  # due 3 Mar, unpaid
    # A new dispute may follow once the first has ended.
    second = disputes.open_dispute(s, invoice, {"reason": "Still disputed"})
    pay(s, client, invoice, "400.00")
    disputes.end_dispute(s, second, "resolved", "Credit agreed", TODAY)
    assert invoice.status == "partly_paid"


def test_the_database_allows_one_open_dispute_per_invoice(desk):
    from sqlalchemy.exc import IntegrityError

    s, client = desk.session, desk.client
    invoice = desk.issued(client)
    disputes.open_dispute(s, invoice, {"reason": "One"})
    with pytest.raises(IntegrityError), s.begin_nested():
        s.add(Dispute(client_id=client.id, invoice_id=invoice.id, reason="Two"))
        s.flush()


# Holds -------------------------------------------------------------------------------------


def test_holds_are_active_between_their_dates_until_released(desk):
    s, client = desk.session, desk.client
    invoice = desk.issued(client)
    with pytest.raises(CaseInvalid) as refused:
        holds.place_hold(
            s,
            client,
            {
                "reason": "",
                "starts_on": "2027-03-09",
                "ends_on": "2027-03-01",
                "invoice_id": "999999",
            },
            TODAY,
        )
    assert set(refused.value.errors) == {"reason", "starts_on", "ends_on", "invoice_id"}
    whole = holds.place_hold(
        s, client, {"reason": "Owner travelling", "ends_on": "2027-03-15"}, TODAY
    )
    assert whole.starts_on == TODAY and whole.invoice_id is None
    one = holds.place_hold(
        s,
        client,
        {"reason": "Awaiting PO", "invoice_id": str(invoice.id), "starts_on": "2027-03-12"},
        TODAY,
    )
    assert holds.is_active(whole, TODAY) and not holds.is_active(whole, date(2027, 3, 16))
    assert not holds.is_active(one, TODAY) and holds.is_active(one, date(2028, 1, 1))
    assert holds.active_holds(s, client.id, TODAY) == [whole]
    holds.release_hold(s, whole, desk.owner.id, TODAY)
    assert not holds.is_active(whole, TODAY) and holds.active_holds(s, client.id, TODAY) == []
    with pytest.raises(CaseError):
        holds.release_hold(s, whole)


def test_bank_rates_are_validated(desk):
    s = desk.session
    with pytest.raises(CaseInvalid) as refused:
        cases.add_bank_rate(s, {"effective_from": "", "rate": "55"})
    assert set(refused.value.errors) == {"effective_from", "rate"}
    with pytest.raises(CaseInvalid) as refused:
        cases.add_bank_rate(s, {"effective_from": "2025-12-05", "rate": "5.555"})
    assert "already recorded" in refused.value.errors["effective_from"]
    assert "two decimals" in refused.value.errors["rate"]
    rate = cases.add_bank_rate(s, {"effective_from": "2027-04-01", "rate": "5.25%"})
    assert rate.rate == Decimal("5.25")


# Pages -------------------------------------------------------------------------------------


def test_collections_tab_records_promises_disputes_holds_and_terms(
    desk, client, login, make_user, add_member
):
    s, c = desk.session, desk.client
    invoice = desk.issued(c, "1000.00", date.today() - timedelta(days=60))
    finance = make_user()
    add_member(desk.tenant, finance, role="finance")
    s.commit()
    login(client, finance)
    base = f"/t/{desk.tenant.slug}"
    tab = client.get(f"{base}/clients/{c.id}?tab=collections")
    assert tab.status_code == 200 and "Owed, with interest to date" in tab.text
    assert invoice.number in tab.text and "Record a promise to pay" in tab.text
    token = csrf_token_from(tab.text)
    htmx = {"HX-Request": "true"}
    refused = client.post(
        f"{base}/clients/{c.id}/promises",
        headers=htmx,
        data={"csrf_token": token, "amount": "", "promised_on": ""},
    )
    assert refused.status_code == 422 and 'id="promise-amount-error"' in refused.text
    assert 'id="promise-promised_on-error"' in refused.text and "<html" not in refused.text
    soon = (date.today() + timedelta(days=3)).isoformat()
    made = client.post(
        f"{base}/clients/{c.id}/promises",
        data={"csrf_token": token, "amount": "500", "promised_on": soon},
    )
    assert made.status_code == 303
    promise = s.scalars(select(PromiseToPay).where(PromiseToPay.client_id == c.id)).one()
    assert promise.created_by == finance.id and promise.invoice_ids == [invoice.id]
    assert c.short_name in client.get(f"{base}/promises/?view=due_soon").text
    assert c.short_name in client.get(f"{base}/promises/").text
    assert c.short_name not in client.get(f"{base}/promises/?view=broken").text
    # Terms: compound interest needs a rate; then interest shows on the tab.
    refused = client.post(
        f"{base}/clients/{c.id}/collection-terms",
        data={"csrf_token": token, "late_interest_mode": "compound"},
    )
    assert refused.status_code == 422 and 'id="terms-late_interest_rate-error"' in refused.text
    client.post(
        f"{base}/clients/{c.id}/collection-terms",
        data={
            "csrf_token": token,
            "late_interest_mode": "simple",
            "late_interest_rate": "18",
            "collector_user_id": str(finance.id),
        },
    )
    s.refresh(c)
    assert (c.late_interest_mode, c.late_interest_rate) == ("simple", Decimal("18.000"))
    assert c.collector_user_id == finance.id and c.payment_agreed_in_writing is False
    assert (
        "Contractual simple interest at 18% a year"
        in client.get(f"{base}/clients/{c.id}/collections").text
    )
    # Acceptance date, then a dispute and a hold.
    client.post(
        f"{base}/invoices/{invoice.id}/acceptance",
        data={"csrf_token": token, "accepted_on": invoice.issue_date.isoformat()},
    )
    s.refresh(invoice)
    assert invoice.accepted_on == invoice.issue_date
    refused = client.post(
        f"{base}/clients/{c.id}/disputes",
        data={"csrf_token": token, "invoice_id": str(invoice.id), "reason": ""},
    )
    assert refused.status_code == 422 and 'id="dispute-reason-error"' in refused.text
    client.post(
        f"{base}/clients/{c.id}/disputes",
        data={
            "csrf_token": token,
            "invoice_id": str(invoice.id),
            "reason": "Scope",
            "owner_user_id": str(desk.owner.id),
        },
    )
    dispute = s.scalars(select(Dispute).where(Dispute.invoice_id == invoice.id)).one()
    assert dispute.owner_user_id == desk.owner.id
    listed = client.get(f"{base}/disputes/?owner={desk.owner.id}").text
    assert invoice.number in listed and "Owner O" in listed
    assert invoice.number not in client.get(f"{base}/disputes/?owner={finance.id}").text
    client.post(
        f"{base}/disputes/{dispute.id}/resolve",
        data={"csrf_token": token, "outcome": "resolved", "resolution_note": "Agreed"},
    )
    s.refresh(dispute)
    assert dispute.status == "resolved" and dispute.resolved_by == finance.id
    client.post(f"{base}/clients/{c.id}/holds", data={"csrf_token": token, "reason": "Audit"})
    hold = holds.client_holds(s, c.id)[0]
    assert holds.is_active(hold, hold.starts_on)
    client.post(f"{base}/holds/{hold.id}/release", data={"csrf_token": token})
    s.refresh(hold)
    assert hold.released_by == finance.id
    client.post(f"{base}/promises/{promise.id}/cancel", data={"csrf_token": token})
    s.refresh(promise)
    assert promise.status == "cancelled"


def test_viewers_see_but_cannot_act_and_bank_rates_are_for_admins(
    desk, client, login, make_user, add_member
):
    s, c = desk.session, desk.client
    desk.issued(c)
    viewer, finance = make_user(), make_user()
    add_member(desk.tenant, viewer, role="viewer")
    add_member(desk.tenant, finance, role="finance")
    s.commit()
    base = f"/t/{desk.tenant.slug}"
    login(client, viewer)
    tab = client.get(f"{base}/clients/{c.id}/collections")
    assert tab.status_code == 200 and "Record a promise to pay" not in tab.text
    token = csrf_token_from(client.get(f"{base}/bank-rates/").text)
    assert (
        client.post(
            f"{base}/clients/{c.id}/holds", data={"csrf_token": token, "reason": "x"}
        ).status_code
        == 403
    )
    login(client, finance)
    page = client.get(f"{base}/bank-rates/")
    assert page.status_code == 200 and "Add a rate" not in page.text
    token = csrf_token_from(page.text)
    assert (
        client.post(
            f"{base}/bank-rates/",
            data={"csrf_token": token, "rate": "5", "effective_from": "2027-04-01"},
        ).status_code
        == 403
    )
    login(client, desk.owner)
    page = client.get(f"{base}/bank-rates/").text
    token = csrf_token_from(page)
    assert "In force today" in page and "Add a rate" in page
    refused = client.post(f"{base}/bank-rates/", data={"csrf_token": token, "rate": "abc"})
    assert refused.status_code == 422 and 'id="rate-rate-error"' in refused.text
    assert 'id="rate-effective_from-error"' in refused.text
    added = client.post(
        f"{base}/bank-rates/",
        data={"csrf_token": token, "rate": "5.10", "effective_from": "2027-04-01"},
    )
    assert added.status_code == 303
    rate = s.scalars(select(BankRate).where(BankRate.effective_from == date(2027, 4, 1))).one()
    assert (
        client.post(f"{base}/bank-rates/{rate.id}/delete", data={"csrf_token": token}).status_code
        == 303
    )
    assert s.scalar(select(BankRate.id).where(BankRate.id == rate.id)) is None


def test_the_invoice_page_disputes_through_the_dispute_record(desk, client, login):
    s, c = desk.session, desk.client
    invoice = desk.issued(c)
    s.commit()
    login(client, desk.owner)
    url = f"/t/{desk.tenant.slug}/invoices/{invoice.id}"
    token = csrf_token_from(client.get(url).text)
    client.post(
        f"{url}/dispute",
        data={"csrf_token": token, "dispute_reason": "Wrong rate", "dispute_evidence": "PO 17"},
    )
    dispute = s.scalars(select(Dispute).where(Dispute.invoice_id == invoice.id)).one()
    assert (dispute.reason, dispute.evidence, dispute.owner_user_id) == (
        "Wrong rate",
        "PO 17",
        desk.owner.id,
    )
    refused = client.post(f"{url}/resolve", data={"csrf_token": token, "resolution_note": ""})
    assert refused.status_code == 422 and 'id="resolution_note-error"' in refused.text
    client.post(
        f"{url}/resolve",
        data={
            "csrf_token": token,
            "outcome": "rejected",
            "resolution_note": "Rate as per contract",
        },
    )
    s.refresh(dispute)
    s.refresh(invoice)
    assert dispute.status == "rejected" and invoice.status != "disputed"


def test_another_tenants_ids_are_not_found(desk, client, login, make_tenant, make_user, db_session):
    s, c = desk.session, desk.client
    invoice = desk.issued(c)
    promise = promises.create_promise(s, c, {"amount": "5", "promised_on": "2027-03-20"}, TODAY)
    dispute = disputes.open_dispute(s, invoice, {"reason": "x"})
    hold = holds.place_hold(s, c, {"reason": "x"}, TODAY)
    rate = cases.add_bank_rate(s, {"effective_from": "2027-05-01", "rate": "5"})
    s.commit()
    other_owner = make_user()
    other = make_tenant(owner=other_owner)
    login(client, other_owner)
    base = f"/t/{other.slug}"
    token = csrf_token_from(client.get(f"{base}/bank-rates/").text)
    for method, path in [
        ("get", f"/clients/{c.id}/collections"),
        ("post", f"/clients/{c.id}/promises"),
        ("post", f"/clients/{c.id}/disputes"),
        ("post", f"/clients/{c.id}/holds"),
        ("post", f"/clients/{c.id}/collection-terms"),
        ("post", f"/invoices/{invoice.id}/acceptance"),
        ("post", f"/promises/{promise.id}/cancel"),
        ("post", f"/disputes/{dispute.id}/resolve"),
        ("post", f"/holds/{hold.id}/release"),
        ("post", f"/bank-rates/{rate.id}/delete"),
    ]:
        response = getattr(client, method)(
            base + path, data={"csrf_token": token, "reason": "x", "amount": "1"}
        )
        assert response.status_code == 404, (method, path, response.status_code)
    s = tenant_session(db_session, desk.tenant)  # the requests bound the connection to B
    assert s.get(PromiseToPay, promise.id).status == "open"
    assert holds.get_hold(s, hold.id).released_at is None


def test_the_promises_list_pages_through_each_view_in_order(desk, client, login):
    """The list shows a page at a time (it drew up to 500 promises on each view), each view in
    its order: open ones soonest first, broken ones the latest date first."""
    today = date(2027, 3, 1)
    for number in range(promises.PAGE_SIZE + 3):
        desk.session.add(
            PromiseToPay(
                client_id=desk.client.id,
                amount=Decimal("100.00") + number,
                currency="INR",
                promised_on=today + timedelta(days=number),
                status="open",
            )
        )
    for days_ago in (40, 5):
        desk.session.add(
            PromiseToPay(
                client_id=desk.client.id,
                amount=Decimal("7.00") + days_ago,
                currency="INR",
                promised_on=today - timedelta(days=days_ago),
                status="broken",
            )
        )
    desk.session.flush()

    first = promises.list_promises(desk.session, "open", today)
    assert len(first.rows) == promises.PAGE_SIZE and first.has_next
    assert [p.promised_on for p, _ in first.rows] == sorted(p.promised_on for p, _ in first.rows)
    second = promises.list_promises(desk.session, "open", today, page=2)
    assert len(second.rows) == 3 and not second.has_next
    assert second.rows[0][0].promised_on > first.rows[-1][0].promised_on
    broken = promises.list_promises(desk.session, "broken", today)
    assert [p.amount for p, _ in broken.rows] == [Decimal("12.00"), Decimal("47.00")]

    desk.session.commit()
    login(client, desk.owner)
    page = client.get(f"/t/{desk.tenant.slug}/promises/?page=2").text
    assert "Page 2" in page and "← Previous" in page and "Next →" not in page
