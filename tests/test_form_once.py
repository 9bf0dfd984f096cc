"""One submission per form (issue #14, finding 5): a create form submitted twice with the same
one-time key creates one record and answers the repeat with the first result; concurrent
repeats wait for the first and never answer 500; a submission with errors does not use the key
up; "Create client" twice from two tabs (two keys) is a form error, not a server error."""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, select, text

from app.auth import services as accounts
from app.clients.models import Client, Contact
from app.collections.models import PromiseToPay
from app.core import form_once
from app.core.form_once import FormSubmission
from app.extensions import db
from app.invoicing import services as invoicing
from app.invoicing.models import CreditNote, Invoice
from app.payments.models import Payment
from app.projects.models import Milestone, Project
from tenants import services as tenants
from tenants.binding import TenantSession, bind_tenant, schema_for_tenant_id
from tenants.models import User
from tests.helpers import PASSWORD, csrf_token_from, tenant_session, unique

MH_GSTIN = "27AAPFU0939F1ZV"


def key_of(page: str, action: str | None = None) -> str:
    """The one-time key of the page's form (the form posting to `action`, if given)."""
    start = page.index(f'action="{action}"') if action else 0
    return re.search(r'name="form_key" value="([^"]+)"', page[start:]).group(1)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def books(db_session, make_tenant, make_user, client, login):
    """An owner logged in to a tenant with a client, and an issued invoice of a project."""
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
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
    project = Project(
        client_id=customer.id,
        name="Tower A",
        contract_value=Decimal("1000.00"),
        currency="INR",
        start_date=date(2027, 1, 4),
    )
    session.add(project)
    session.flush()
    milestone = Milestone(
        project_id=project.id,
        position=1,
        name="Slab",
        amount=Decimal("1000.00"),
        due_rule="date",
        due_date=date(2027, 2, 1),
        status="completed",
    )
    session.add(milestone)
    session.flush()
    invoice = invoicing.draft_from_milestones(session, tenant, project, [milestone], "18", "9983")
    invoicing.issue(session, tenant, invoice, date(2027, 2, 1))
    session.commit()
    login(client, owner)
    return client, tenant, session, customer, invoice


def submit_twice(http, url: str, data: dict):
    first = http.post(url, data=data)
    again = http.post(url, data=data)
    assert first.status_code == 303, first.text
    assert again.status_code == 303 and again.headers["Location"] == first.headers["Location"]
    return first


def test_a_double_clicked_record_payment_records_one_payment(books):
    http, tenant, session, customer, _ = books
    url = f"/t/{tenant.slug}/payments/new"
    page = http.get(f"{url}?client_id={customer.id}").text
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": key_of(page),
        "client_id": customer.id,
        "amount": "500",
        "received_on": "2027-03-01",
        "method": "upi",
        "reference": "UTR1",
    }
    first = submit_twice(http, url, data)
    assert count(session, Payment) == 1
    assert "This form was submitted already." in http.get(first.headers["Location"]).text


def test_a_double_submitted_new_client_creates_one_client(books):
    http, tenant, session, _, _ = books
    url = f"/t/{tenant.slug}/clients/new"
    page = http.get(url).text
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": key_of(page),
        "full_name": "Godavari Traders",
        "short_name": "Godavari",
        "location": "local",
        "payment_terms": "net",
        "payment_days": "30",
    }
    submit_twice(http, url, data)
    assert count(session, Client) == 2  # the fixture's and this one


def test_a_double_submitted_invoice_by_hand_makes_one_draft(books):
    http, tenant, session, customer, _ = books
    url = f"/t/{tenant.slug}/invoices/new"
    page = http.get(f"{url}?client_id={customer.id}").text
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": key_of(page),
        "client_id": customer.id,
        "description": "Survey",
        "hsn_sac": "998311",
        "quantity": "1",
        "unit_price": "100",
        "tax_rate": "18",
    }
    before = count(session, Invoice)
    submit_twice(http, url, data)
    assert count(session, Invoice) == before + 1


def test_a_double_submitted_credit_note_issues_one(books):
    http, tenant, session, _, invoice = books
    url = f"/t/{tenant.slug}/invoices/{invoice.id}"
    page = http.get(url).text
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": key_of(page, f"{url}/credit-notes"),
        "credit_amount": "118.00",
        "credit_reason": "Late delivery",
    }
    submit_twice(http, f"{url}/credit-notes", data)
    assert count(session, CreditNote) == 1


def test_a_double_submitted_plan_from_a_template_applies_once(books, db_session):
    from app.library import services as library
    from app.library.models import LibraryTemplate

    http, tenant, session, customer, _ = books
    library.load_library(db_session)
    db_session.commit()
    template = db_session.scalars(
        select(LibraryTemplate).where(LibraryTemplate.industry == "construction")
    ).first()
    project = Project(
        client_id=customer.id,
        name="Tower B",
        contract_value=Decimal("100000"),
        currency="INR",
        start_date=date(2027, 1, 4),
    )
    session.add(project)
    session.commit()
    url = f"/t/{tenant.slug}/projects/{project.id}"
    page = http.get(f"{url}/plan").text
    data = {
        "csrf_token": csrf_token_from(page),
        "template_id": template.id,
        "form_key": key_of(page, f"{url}/template"),
    }
    plan = select(Milestone.id).where(Milestone.project_id == project.id)
    assert http.post(f"{url}/template", data=data).status_code == 303
    planned = set(session.scalars(plan))
    assert len(planned) == len(template.items)
    assert http.post(f"{url}/template", data=data).status_code == 303
    assert set(session.scalars(plan)) == planned  # applied once: not replaced by a second plan


def test_double_submitted_contact_and_promise_create_one_each(books):
    http, tenant, session, customer, invoice = books
    client_url = f"/t/{tenant.slug}/clients/{customer.id}"
    page = http.get(f"{client_url}?tab=contacts").text
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": key_of(page, f"{client_url}/contacts"),
        "full_name": "Ravi Kumar",
        "email": "ravi@example.com",
        "roles": "billing",
    }
    submit_twice(http, f"{client_url}/contacts", data)
    assert count(session, Contact) == 1

    promises_url = f"/t/{tenant.slug}/clients/{customer.id}/promises"
    page = http.get(f"{client_url}?tab=collections").text
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": key_of(page, promises_url),
        "amount": "1180",
        "promised_on": "2099-01-31",
        "invoice_ids": invoice.id,
    }
    submit_twice(http, promises_url, data)
    assert count(session, PromiseToPay) == 1


def test_a_form_with_errors_keeps_its_key_for_the_corrected_submission(books):
    http, tenant, session, customer, _ = books
    url = f"/t/{tenant.slug}/payments/new"
    page = http.get(f"{url}?client_id={customer.id}").text
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": key_of(page),
        "client_id": customer.id,
        "amount": "-5",
        "received_on": "2027-03-01",
        "method": "upi",
        "reference": "UTR1",
    }
    assert http.post(url, data=data).status_code == 422
    assert http.post(url, data={**data, "amount": "500"}).status_code == 303
    assert count(session, Payment) == 1


def test_add_line_does_not_use_the_key_up(books):
    http, tenant, session, customer, _ = books
    url = f"/t/{tenant.slug}/invoices/new"
    page = http.get(f"{url}?client_id={customer.id}").text
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": key_of(page),
        "client_id": customer.id,
        "description": "Survey",
        "hsn_sac": "998311",
        "quantity": "1",
        "unit_price": "100",
        "tax_rate": "18",
    }
    before = count(session, Invoice)
    assert http.post(url, data={**data, "add_line": "1"}).status_code == 200
    assert http.post(url, data=data).status_code == 303
    assert count(session, Invoice) == before + 1


def test_a_malformed_key_is_refused_and_creates_nothing(books):
    http, tenant, session, customer, _ = books
    url = f"/t/{tenant.slug}/payments/new"
    page = http.get(f"{url}?client_id={customer.id}").text
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": "no good\x00",
        "client_id": customer.id,
        "amount": "500",
        "received_on": "2027-03-01",
        "method": "upi",
    }
    assert http.post(url, data=data).status_code == 400
    assert count(session, Payment) == 0


def test_keys_older_than_a_week_are_removed_by_later_submissions(db_session, make_tenant):
    tenant = make_tenant()
    session = tenant_session(db_session, tenant)
    for key, days in (("old-key-000000000000", 8), ("recent-key-0000000000", 6)):
        session.add(
            FormSubmission(key=key, result_url="/x", created_at=func.now() - timedelta(days=days))
        )
    session.flush()
    assert form_once.claim(session, form_once.new_form_key()) is None
    assert set(session.scalars(select(FormSubmission.key))) >= {"recent-key-0000000000"}
    assert session.get(FormSubmission, "old-key-000000000000") is None


# Concurrent submissions, each with its own connection and committed transactions ------------


def _waiting_for_locks(engine, expected: int) -> None:
    """Wait until `expected` other backends of this database wait for a lock (no assertion on
    time: a synchronisation point so both requests are past their checks)."""
    for _ in range(600):
        with engine.connect() as conn:
            waiting = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        if waiting >= expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"{expected} requests never got to wait for a lock")


def test_concurrent_claims_of_one_key_wait_for_the_first_and_get_its_result(app):
    tenant_id = 910_000_000 + os.getpid() % 100_000
    schema = schema_for_tenant_id(tenant_id)
    with app.app_context():
        engine = db.engine
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            tenants.provision_schema(conn, schema)
        try:
            for first_commits in (True, False):
                key = form_once.new_form_key()
                answers: dict[str, str | None] = {}
                first = TenantSession(db, bind=engine)
                bind_tenant(first, tenant_id)
                assert form_once.claim(first, key) is None

                def second_claim(key: str, answers: dict) -> None:
                    with TenantSession(db, bind=engine) as session:
                        bind_tenant(session, tenant_id)
                        answers["second"] = form_once.claim(session, key)
                        session.commit()

                thread = threading.Thread(target=second_claim, args=(key, answers))
                thread.start()
                _waiting_for_locks(engine, 1)
                assert "second" not in answers  # it waits for the first transaction
                if first_commits:
                    form_once.complete(first, key, "/t/x/payments/7")
                    first.commit()
                else:
                    first.rollback()  # e.g. the form had errors: the key is free again
                first.close()
                thread.join(30)
                assert not thread.is_alive()
                assert answers["second"] == ("/t/x/payments/7" if first_commits else None)
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def committed_owner(app, redis):
    """An owner and a tenant whose rows are committed (requests on other connections see them),
    removed after."""
    with app.app_context():
        owner = accounts.create_user(
            db.session,
            email=f"{unique('once')}@example.com",
            full_name="Once Owner",
            password=PASSWORD,
        )
        tenant = tenants.create_tenant(
            db.session,
            slug=unique("once"),
            name="Once Co",
            country="IN",
            time_zone="Asia/Kolkata",
            currency="INR",
            owner=owner,
        )
        ids = (owner.id, tenant.id, tenant.slug, tenant.schema)
        db.session.commit()
        db.session.remove()
    owner_id, tenant_id, slug, schema = ids
    try:
        yield owner_id, tenant_id, slug, schema
    finally:
        with app.app_context(), db.engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(text("DELETE FROM tenants WHERE id = :id"), {"id": tenant_id})
            conn.execute(delete(User).where(User.id == owner_id))


@pytest.mark.parametrize("same_key", [True, False], ids=["double-click", "two-tabs"])
def test_create_client_posted_twice_at_once_never_answers_500(
    app, committed_owner, login, same_key
):
    """Both requests pass the name check before either writes (the test holds the clients
    table until both wait); then one creates the client and the other answers with the first
    result (same key) or a form error (another key): one client, never a server error."""
    owner_id, tenant_id, slug, schema = committed_owner
    with app.app_context():
        owner = db.session.get(User, owner_id)
        db.session.remove()
    browsers = [app.test_client(), app.test_client()]
    forms = []
    for http in browsers:
        login(http, owner)
        page = http.get(f"/t/{slug}/clients/new").text
        forms.append(
            {
                "csrf_token": csrf_token_from(page),
                "form_key": key_of(page),
                "full_name": "Narmada Steel",
                "short_name": "Narmada",
                "location": "local",
                "payment_terms": "net",
                "payment_days": "30",
            }
        )
    if same_key:
        forms[1]["form_key"] = forms[0]["form_key"]

    answers, errors = [], []

    def submit(http, data) -> None:
        try:
            answers.append(http.post(f"/t/{slug}/clients/new", data=data))
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    with app.app_context():
        engine = db.engine
    with engine.connect() as holder:
        holder.exec_driver_sql(f'LOCK TABLE "{schema}".clients IN SHARE ROW EXCLUSIVE MODE')
        threads = [
            threading.Thread(target=submit, args=pair) for pair in zip(browsers, forms, strict=True)
        ]
        for thread in threads:
            thread.start()
        _waiting_for_locks(engine, 2)
        holder.rollback()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    statuses = sorted(answer.status_code for answer in answers)
    with engine.connect() as conn:
        stored = conn.scalars(text(f'SELECT id FROM "{schema}".clients')).all()
    assert len(stored) == 1
    created = f"/t/{slug}/clients/{stored[0]}"
    if same_key:
        assert statuses == [303, 303]
        assert all(answer.headers["Location"].endswith(created) for answer in answers)
    else:
        assert statuses == [303, 422]
        refused = next(answer for answer in answers if answer.status_code == 422)
        assert "Another client has this full name." in refused.text
