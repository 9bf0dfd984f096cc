"""Every number, share, date and long text a person types into the money forms is checked in
the service: what the form cannot take is answered with the error beside its field (never a
server error, never a silent cut), the typed value kept, and nothing saved."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.clients.models import Client
from app.library.tenant.models import TenantTemplate
from app.payments.models import Payment
from app.projects.models import Project
from tests.helpers import csrf_token_from, tenant_session

TOO_BIG = "1e309"  # past a float, and past any column
PAST_PRECISION = "1e30"  # a Decimal, but more digits than an amount holds
BAD_NUMBERS = ["-5", TOO_BIG, PAST_PRECISION, "NaN", "Infinity", "", "lots"]
BAD_DATES = ["2027-02-31", "99999-01-01", "0001-01-01", "soon", ""]


@pytest.fixture
def books(client, db_session, make_tenant, make_user, make_client, login):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)
    kaveri = make_client(session, "Kaveri Builders", "Kaveri")
    session.commit()
    login(client, owner)
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/clients/new").text)
    return client, tenant, token, kaveri.id, session


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def refused_beside(response, error_id: str, typed: str) -> None:
    assert response.status_code == 422, response.status_code
    assert f'id="{error_id}"' in response.text
    if typed:
        assert f'value="{typed}"' in response.text or f">{typed}</textarea>" in response.text


PROJECT_CASES = [("contract_value", typed) for typed in [*BAD_NUMBERS, "0", "0.001"]]
PROJECT_CASES += [("start_date", typed) for typed in BAD_DATES]
PROJECT_CASES += [("payment_days", typed) for typed in ["-1", "366", "99999999999", "1.5", "x"]]
PROJECT_CASES += [("name", "T" * 192), ("name", "T")]


@pytest.mark.parametrize(("field", "typed"), PROJECT_CASES)
def test_a_new_project_refuses_what_it_cannot_take(books, field, typed):
    http, tenant, token, client_id, session = books
    form = {
        "csrf_token": token,
        "client_id": client_id,
        "name": "Tower A",
        "contract_value": "10,00,000",
        "currency": "INR",
        "start_date": "2027-01-01",
        "payment_terms": "net",
        "payment_days": "30",
        field: typed,
    }
    response = http.post(f"/t/{tenant.slug}/projects/new", data=form)
    refused_beside(response, f"{field}-error", typed)
    assert count(session, Project) == 0


PAYMENT_CASES = [("amount", typed) for typed in [*BAD_NUMBERS, "0"]]
PAYMENT_CASES += [("received_on", typed) for typed in BAD_DATES]
PAYMENT_CASES += [("reference", "R" * 121), ("note", "N" * 2001)]


@pytest.mark.parametrize(("field", "typed"), PAYMENT_CASES)
def test_a_payment_refuses_what_it_cannot_take(books, field, typed):
    http, tenant, token, client_id, session = books
    form = {
        "csrf_token": token,
        "client_id": client_id,
        "amount": "50,000",
        "received_on": "2027-01-15",
        "method": "bank_transfer",
        "reference": "UTR123",
        field: typed,
    }
    response = http.post(f"/t/{tenant.slug}/payments/new", data=form)
    refused_beside(response, f"{field}-error", typed)
    assert count(session, Payment) == 0


LINE_CASES = [("quantity", typed) for typed in ["-1", TOO_BIG, PAST_PRECISION, "NaN", "x"]]
LINE_CASES += [("unit_price", typed) for typed in [*BAD_NUMBERS, "0.001"]]
LINE_CASES += [("tax_rate", typed) for typed in ["-1", "101", TOO_BIG, "NaN", "x"]]
LINE_CASES += [("description", "D" * 256)]


@pytest.mark.parametrize(("field", "typed"), LINE_CASES)
def test_an_invoice_line_refuses_what_it_cannot_take(books, field, typed):
    http, tenant, token, client_id, _ = books
    line = {
        "description": "Survey",
        "hsn_sac": "998311",
        "quantity": "1",
        "unit_price": "1000",
        "tax_rate": "18",
        field: typed,
    }
    response = http.post(
        f"/t/{tenant.slug}/invoices/new", data={"csrf_token": token, "client_id": client_id, **line}
    )
    refused_beside(response, f"line-0-{field}-error", typed)


CLIENT_CASES = [("credit_limit", typed) for typed in ["-1", TOO_BIG, PAST_PRECISION, "NaN", "x"]]
CLIENT_CASES += [("payment_days", typed) for typed in ["-1", "0", "366", "99999999999", "x", ""]]
CLIENT_CASES += [("new_business_year", typed) for typed in ["99999", "1999", "x"]]
CLIENT_CASES += [
    ("full_name", "F" * 192),
    ("remittance_details", "R" * 2001),
    ("tax_registration", "T" * 2001),
    ("payment_terms_note", "P" * 256),
]


@pytest.mark.parametrize(("field", "typed"), CLIENT_CASES)
def test_a_new_client_refuses_what_it_cannot_take(books, field, typed):
    http, tenant, token, _, session = books
    form = {
        "csrf_token": token,
        "full_name": "Deccan Logistics",
        "short_name": "Deccan",
        "status": "active",
        "location": "local",
        "country": "IN",
        "payment_terms": "custom" if field == "payment_terms_note" else "net",
        "payment_days": "" if field == "payment_terms_note" else "30",
        "currency": "INR",
        "preferred_language": "en",
        "preferred_channel": "email",
        field: typed,
    }
    response = http.post(f"/t/{tenant.slug}/clients/new", data=form)
    refused_beside(response, f"{field}-error", typed)
    assert count(session, Client) == 1  # Kaveri only


TEMPLATE_ITEM_CASES = [("share", typed) for typed in [*BAD_NUMBERS, "0", "101", "12.123456"]]
TEMPLATE_ITEM_CASES += [("due_days", typed) for typed in ["-1", "3651", "99999999999", "x"]]
TEMPLATE_ITEM_CASES += [("name", "M" * 192), ("description", "D" * 2001)]


@pytest.mark.parametrize(("field", "typed"), TEMPLATE_ITEM_CASES)
def test_a_template_milestone_refuses_what_it_cannot_take(books, field, typed):
    http, tenant, token, _, session = books
    base = f"/t/{tenant.slug}/library/mine"
    created = http.post(f"{base}/new", data={"csrf_token": token, "name": "Fit-out, 3 stages"})
    assert created.status_code == 303
    template_id = session.scalar(select(TenantTemplate.id))
    item = {
        "csrf_token": token,
        "name": "Handover",
        "share_kind": "percentage",
        "share": "5",
        "due_rule": "days_after_previous",
        "due_days": "30",
        field: typed,
    }
    response = http.post(
        f"{base}/{template_id}/draft/items",
        data=item,
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    refused_beside(response, f"new-{field}-error", typed)


def test_long_text_fields_carry_their_limit_and_a_counter(books):
    http, tenant, _, client_id, _ = books
    pages = {
        f"/t/{tenant.slug}/clients/new": ('name="full_name"', 'maxlength="191"'),
        f"/t/{tenant.slug}/payments/new?client_id={client_id}": ('name="note"', 'maxlength="2000"'),
        f"/t/{tenant.slug}/projects/new?client_id={client_id}": ('name="name"', 'maxlength="191"'),
        f"/t/{tenant.slug}/library/mine/new": ('name="description"', 'maxlength="2000"'),
    }
    for url, (name, limit) in pages.items():
        page = http.get(url).text
        tag = page[page.index(name) :]
        tag = tag[: tag.index(">")]
        assert limit in tag and "data-counter" in tag, url


SITE_CASES = [
    (key, typed)
    for key in ("latitude", "longitude")
    for typed in ["NaN", "sNaN", "-Infinity", TOO_BIG, "x"]
]
SITE_CASES += [("name", "S" * 192)]


@pytest.mark.parametrize(("field", "typed"), SITE_CASES)
def test_a_client_site_refuses_what_it_cannot_take(books, field, typed):
    http, tenant, token, client_id, _ = books
    form = {"csrf_token": token, "name": "Pune works", "latitude": "18.5", "longitude": "73.8"}
    response = http.post(f"/t/{tenant.slug}/clients/{client_id}/sites", data=form | {field: typed})
    refused_beside(response, f"site-{field}-error", typed)


@pytest.mark.parametrize(("field", "typed"), [("job_title", "J" * 101), ("full_name", "N" * 192)])
def test_a_contact_refuses_text_too_long_instead_of_cutting_it(books, field, typed):
    http, tenant, token, client_id, _ = books
    form = {"csrf_token": token, "full_name": "Ravi Kumar", "email": "ravi@example.com"}
    response = http.post(
        f"/t/{tenant.slug}/clients/{client_id}/contacts", data=form | {field: typed}
    )
    refused_beside(response, f"contact-{field}-error", typed)


CREDIT_CASES = [("amount", t) for t in ["-5", TOO_BIG, PAST_PRECISION, "NaN", "lots", "0", "0.001"]]
CREDIT_CASES += [("amount", "5000"), ("reason", "R" * 2001)]


@pytest.mark.parametrize(("field", "typed"), CREDIT_CASES)
def test_a_credit_note_refuses_what_it_cannot_take(books, make_invoice, field, typed):
    http, tenant, token, client_id, session = books
    invoice = make_invoice(session, tenant, session.get(Client, client_id))
    session.commit()
    form = {"csrf_token": token, "credit_amount": "100", "credit_reason": "Late delivery"}
    response = http.post(
        f"/t/{tenant.slug}/invoices/{invoice.id}/credit-notes",
        data=form | {f"credit_{field}": typed},
    )
    assert response.status_code == 422
    assert f'id="credit_{field}-error"' in response.text
