"""Issue 16, findings 4 and 5: payments and projects in view, and invoices dated and changed
by the user. The payments list (filters, CSV export with the same filters), recording a payment
from its invoice, the invoice page's statement that adds up, an issue date chosen within the
series' order, a draft changed before it is issued, the projects list."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from app.core.clock import tenant_today
from app.invoicing import credits
from app.invoicing import services as invoicing
from app.invoicing.models import Invoice
from app.payments import listing
from app.payments import services as payments
from app.payments.models import PaymentAllocation
from app.projects import listing as project_listing
from app.projects.models import Milestone, Project
from tests.helpers import csrf_token_from, tenant_session


@pytest.fixture
def shop(app, client, db_session, make_tenant, make_user, make_client, login):
    """A logged-in owner of a workspace in Maharashtra, and its tenant-bound session."""
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)
    login(client, owner)
    return tenant, session, f"/t/{tenant.slug}", db_session


def _figures(page: str) -> dict[str, Decimal]:
    """The invoice page's "What is owed" statement: label -> amount (deductions negative)."""
    block = page[page.index('id="invoice-statement"') :]
    block = block[: block.index("</dl>")]
    figures = {}
    for label, amount in re.findall(r"<dt>([^<]+)</dt><dd[^>]*>(.*?)</dd>", block):
        text = re.sub(r"<[^>]+>", "", amount)
        value = Decimal(re.sub(r"[^\d.]", "", text))
        figures[label] = -value if "−" in text else value
    return figures


def test_the_payments_list_filters_pages_and_exports(
    shop, client, make_client, make_invoice, make_payment
):
    tenant, session, base, db = shop
    asha = make_client(session, name="Asha Foods", short_name="Asha")
    ravi = make_client(session, name="Ravi Steel", short_name="Ravi")
    invoice = make_invoice(session, tenant, asha, ("1000.00",), issued_on=date(2026, 4, 10))
    make_payment(session, asha, "1000.00", "2026-05-01", allocate_to=[invoice], reference="UTR-A")
    make_payment(session, ravi, "250.00", "2026-06-15", reference="UTR-R")
    bounced = make_payment(session, ravi, "400.00", "2026-06-20", reference="CHQ-9")
    payments.void_payment(session, bounced, "Cheque bounced")
    session.commit()

    page = client.get(f"{base}/payments/")
    assert page.status_code == 200
    assert "UTR-A" in page.text and "UTR-R" in page.text
    assert "CHQ-9" not in page.text  # a void payment did not happen: not listed by default
    assert "2 payments" in page.text and "₹1,250.00" in page.text  # totals of the filtered set
    assert "not yet allocated <strong>₹250.00" in page.text
    assert 'href="/t/' + tenant.slug + '/payments/"' in client.get(f"{base}/").text  # in the nav

    by_client = client.get(f"{base}/payments/?client_id={ravi.id}").text
    assert "UTR-R" in by_client and "UTR-A" not in by_client
    waiting = client.get(f"{base}/payments/?unallocated=1").text
    assert "UTR-R" in waiting and "UTR-A" not in waiting
    assert "not yet allocated <strong>₹250.00" in waiting
    in_may = client.get(f"{base}/payments/?from=2026-05-01&to=2026-05-31").text
    assert "UTR-A" in in_may and "UTR-R" not in in_may
    assert "1 payment</dt>" in in_may and "not yet allocated <strong>₹0.00" in in_may
    from_june = client.get(f"{base}/payments/?from=2026-06-01").text
    assert "1 payment</dt>" in from_june and "received ₹250.00" in from_june
    void = client.get(f"{base}/payments/?status=void").text
    assert "CHQ-9" in void and "UTR-R" not in void
    assert "UTR-A" not in client.get(f"{base}/payments/?method=cash").text
    fragment = client.get(f"{base}/payments/?client_id={ravi.id}", headers={"HX-Request": "true"})
    assert "UTR-R" in fragment.text and "<html" not in fragment.text

    export = client.get(f"{base}/payments/export.csv?client_id={ravi.id}&status=all")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["Received on", "Client", "Amount"]
    assert [(r[0], r[2], r[5], r[6], r[8]) for r in rows[1:]] == [
        ("2026-06-20", "400.00", "CHQ-9", "0.00", "Cheque bounced"),
        ("2026-06-15", "250.00", "UTR-R", "250.00", ""),
    ]


def test_a_payment_recorded_from_the_invoice_is_allocated_to_it(
    shop, client, make_client, make_invoice
):
    tenant, session, base, db = shop
    buyer = make_client(session)
    invoice = make_invoice(session, tenant, buyer, ("1000.00",), issued_on=date(2026, 4, 10))
    session.commit()

    page = client.get(f"{base}/invoices/{invoice.id}").text
    record = f"{base}/payments/new?invoice_id={invoice.id}"
    assert f'href="{record}"' in page  # "Record payment" on the invoice
    form = client.get(record)
    assert form.status_code == 200 and 'name="amount" type="text" value="1000.00"' in form.text
    token = csrf_token_from(form.text)
    values = {"csrf_token": token, "invoice_id": invoice.id, "received_on": "2026-05-02"}
    values |= {"method": "upi", "reference": "UTR77", "amount": ""}
    missing = client.post(f"{base}/payments/new", data=values)
    assert missing.status_code == 422 and "Enter the amount received." in missing.text
    values |= {"amount": "880", "tds_amount": "20", "tds_section": "194J", "tds_rate": "2"}
    made = client.post(f"{base}/payments/new", data=values)
    assert made.status_code == 303 and made.headers["Location"].endswith(f"/invoices/{invoice.id}")

    check = tenant_session(db, tenant)
    (allocation,) = check.query(PaymentAllocation).filter_by(invoice_id=invoice.id).all()
    assert (allocation.amount, allocation.tds_amount) == (Decimal("880.00"), Decimal("20.00"))
    assert payments.outstanding(check, check.get(Invoice, invoice.id)) == Decimal("100.00")
    assert check.get(Invoice, invoice.id).status == "partly_paid"
    page = client.get(f"{base}/invoices/{invoice.id}").text
    assert "UTR77" in page and "₹20.00 (194J)" in page  # the payment listed on its invoice

    rest = {"csrf_token": token, "invoice_id": invoice.id, "received_on": "2026-05-09"}
    rest |= {"method": "cash", "amount": "150"}
    assert client.post(f"{base}/payments/new", data=rest).status_code == 303
    paid = tenant_session(db, tenant).get(Invoice, invoice.id)
    assert paid.status == "paid" and payments.outstanding(tenant_session(db, tenant), paid) == 0
    again = client.post(f"{base}/payments/new", data=rest | {"amount": "10"})
    assert again.status_code == 422 and "owes nothing now" in again.text
    tab = client.get(f"{base}/clients/{buyer.id}?tab=payments").text
    assert "₹50.00" in tab  # what was paid beyond the invoice is the client's credit
    assert f"{base}/payments/new?client_id={buyer.id}" in tab  # Record payment on the client


def test_the_invoice_page_statement_adds_up(shop, client, make_client, make_invoice):
    tenant, session, base, db = shop
    buyer = make_client(session)
    invoice = make_invoice(session, tenant, buyer, ("1000.00",), issued_on=date(2026, 4, 10))
    credits.issue_credit_note(session, tenant, invoice, "100", "Short supply", date(2026, 4, 20))
    payment = payments.record_payment(
        session,
        buyer,
        {"amount": "300", "received_on": "2026-05-01", "method": "upi", "reference": "U1"},
    )
    payments.allocate(session, payment, [(invoice.id, "300", "20", "194C", "2")])
    session.commit()

    page = client.get(f"{base}/invoices/{invoice.id}").text
    figures = _figures(page)
    assert figures == {
        "Invoice total": Decimal("1000.00"),
        "Credit notes": Decimal("-100.00"),
        "Payments (cash and TDS)": Decimal("-320.00"),
        "Written off": Decimal("-0.00"),
        "Still owed": Decimal("580.00"),
    }
    owed = figures.pop("Still owed")
    assert sum(figures.values()) == owed
    assert "Payments applied" in page and "₹320.00" in page


def test_issue_date_is_chosen_within_the_series_order(shop, client, make_client, make_invoice):
    tenant, session, base, db = shop
    today = tenant_today(session)
    buyer = make_client(session)
    first = make_invoice(session, tenant, buyer, ("500.00",), issued_on=today - timedelta(days=10))
    draft = invoicing.draft_by_hand(
        session, tenant, buyer, [invoicing.ManualLine("Survey", "", "1", "1000", "0")]
    )
    session.commit()
    url = f"{base}/invoices/{draft.id}"
    token = csrf_token_from(client.get(url).text)
    assert 'id="issue_date" name="issue_date" type="date"' in client.get(url).text

    too_early = client.post(
        f"{url}/issue",
        data={"csrf_token": token, "issue_date": (today - timedelta(days=20)).isoformat()},
    )
    assert too_early.status_code == 422
    assert 'id="issue_date-error"' in too_early.text
    assert first.issue_date.strftime("%d %b %Y") in too_early.text
    future = client.post(
        f"{url}/issue",
        data={"csrf_token": token, "issue_date": (today + timedelta(days=3)).isoformat()},
    )
    assert future.status_code == 422 and "cannot be dated after today" in future.text
    garbled = client.post(f"{url}/issue", data={"csrf_token": token, "issue_date": "31/02"})
    assert garbled.status_code == 422 and 'value="31/02"' in garbled.text  # what was typed stays
    assert tenant_session(db, tenant).get(Invoice, draft.id).status == "draft"

    chosen = today - timedelta(days=5)
    issued = client.post(
        f"{url}/issue", data={"csrf_token": token, "issue_date": chosen.isoformat()}
    )
    assert issued.status_code == 303
    invoice = tenant_session(db, tenant).get(Invoice, draft.id)
    assert (invoice.status, invoice.issue_date) == ("issued", chosen)
    assert invoice.due_date >= chosen + timedelta(days=30)  # the client's Net 30 from that date
    assert invoice.number > first.number  # numbers follow dates


def test_a_draft_is_changed_and_an_issued_invoice_is_not(shop, client, make_client):
    tenant, session, base, db = shop
    first = make_client(session)
    second = make_client(session, name="Second", short_name="Two")
    draft = invoicing.draft_by_hand(
        session, tenant, first, [invoicing.ManualLine("Survey", "", "1", "1000", "18")]
    )
    session.commit()
    url = f"{base}/invoices/{draft.id}/edit"
    form = client.get(url)
    assert form.status_code == 200 and 'value="Survey"' in form.text
    assert f'href="{url}"' in client.get(f"{base}/invoices/{draft.id}").text
    token = csrf_token_from(form.text)
    line = {"hsn_sac": "", "quantity": ["2", ""], "tax_rate": ["18", ""], "milestone_id": ["", ""]}
    bad = client.post(
        url,
        data={
            "csrf_token": token,
            "client_id": second.id,
            "description": ["Design", ""],
            "unit_price": ["-5", ""],
            **line,
        },
    )
    assert bad.status_code == 422 and "A price above 0" in bad.text and 'value="Design"' in bad.text
    saved = client.post(
        url,
        data={
            "csrf_token": token,
            "client_id": second.id,
            "description": ["Design", ""],
            "unit_price": ["1500", ""],
            **line,
        },
    )
    assert saved.status_code == 303
    check = tenant_session(db, tenant)
    changed = check.get(Invoice, draft.id)
    assert changed.client_id == second.id
    assert [(li.description, li.taxable_value) for li in changed.lines] == [
        ("Design", Decimal("3000.00"))
    ]
    assert changed.total == Decimal("3540.00")  # 18% GST worked out again

    invoicing.issue(check, tenant, changed, tenant_today(check))
    check.commit()
    refused = client.post(
        url,
        data={"csrf_token": token, "client_id": first.id, "description": "X", "unit_price": "1"},
    )
    assert refused.status_code == 303
    assert tenant_session(db, tenant).get(Invoice, draft.id).total == Decimal("3540.00")
    with pytest.raises(invoicing.InvoiceError):
        invoicing.update_draft(check, tenant, changed, first, [])


def test_the_projects_list_filters_by_client_and_status(shop, client, make_client, monkeypatch):
    tenant, session, base, db = shop
    asha = make_client(session, name="Asha Foods", short_name="Asha")
    ravi = make_client(session, name="Ravi Steel", short_name="Ravi")
    for owner, name, statuses in (
        (asha, "Warehouse", ("completed", "planned")),
        (ravi, "Rolling mill", ("planned",)),
        (ravi, "Office fit-out", ("paid", "paid")),
    ):
        project = Project(
            client_id=owner.id,
            name=name,
            contract_value=Decimal("1000"),
            currency="INR",
            start_date=date(2026, 4, 1),
        )
        session.add(project)
        session.flush()
        for position, status in enumerate(statuses, start=1):
            session.add(
                Milestone(
                    project_id=project.id,
                    position=position,
                    name=f"Stage {position}",
                    amount=Decimal("1000") / len(statuses),
                    due_rule="date",
                    due_date=date(2026, 5, 1),
                    status=status,
                )
            )
    session.commit()

    page = client.get(f"{base}/projects/")
    assert page.status_code == 200
    assert all(n in page.text for n in ("Warehouse", "Rolling mill", "Office fit-out"))
    assert 'href="/t/' + tenant.slug + '/projects/"' in page.text  # in the nav
    by_client = client.get(f"{base}/projects/?client_id={ravi.id}").text
    assert "Rolling mill" in by_client and "Warehouse" not in by_client
    started = client.get(f"{base}/projects/?status=in_progress").text
    assert "Warehouse" in started and "Rolling mill" not in started
    assert "Office fit-out" in client.get(f"{base}/projects/?status=paid").text
    assert "Office fit-out" not in client.get(f"{base}/projects/?status=not_started").text
    assert "3 projects" in page.text and "2 projects" in by_client
    # Past the cap the list stops counting and says so.
    monkeypatch.setattr(project_listing, "COUNT_CAP", 2)
    assert "2+ projects" in client.get(f"{base}/projects/").text
    assert "1 project<" in client.get(f"{base}/projects/?status=paid").text


def test_a_filter_matching_too_many_payments_asks_for_a_narrower_one(
    shop, client, make_client, make_payment, monkeypatch
):
    """Totals the database does not keep are added up over at most COUNT_CAP payments: past
    that the list says so instead of adding up every payment of the workspace on each view."""
    tenant, session, base, db = shop
    asha = make_client(session, name="Asha Foods", short_name="Asha")
    for number, day in enumerate(("2026-05-01", "2026-05-02", "2026-05-03")):
        make_payment(session, asha, "100.00", day, reference=f"UTR-{number}")
    session.commit()
    monkeypatch.setattr(listing, "COUNT_CAP", 2)
    capped = client.get(f"{base}/payments/?method=upi").text
    assert "More than 2 payments match" in capped and "payment-totals" in capped
    assert "3 payments" not in capped
    # Received payments by date and one client's payments are totalled whatever their number.
    assert "3 payments" in client.get(f"{base}/payments/").text
    assert "3 payments" in client.get(f"{base}/payments/?client_id={asha.id}").text
