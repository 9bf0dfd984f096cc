"""Custom fields on projects, milestones, payments and notices, the same way as on clients and
invoices: each form takes them with errors beside the field (and writes nothing when one is
refused), the record's page shows and edits them in place, the projects and payments lists
filter, sort and show them, the API reads and writes them (422 per field), the audit log says
their changes, and receipts and notices read them as template variables."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.collections.models import CollectionLevel, CollectionSettings
from app.custom_fields import services
from app.message_templates.models import MessageTemplate
from app.outbox.models import OutboxMessage
from app.payments.models import Payment
from app.projects import services as projects
from app.projects.models import Milestone, Project
from tests.helpers import csrf_token_from, tenant_session


@pytest.fixture
def books(db_session, make_tenant, make_user, make_client):
    owner = make_user(full_name="Owner Asha")
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant, owner.id)
    customer = make_client(session, name="Kaveri Builders", short_name="Kaveri", region="27")
    session.commit()
    return tenant, owner, session, customer


def add_field(session, entity, **raw):
    return services.save_field(session, entity, {"field_type": "text", **raw})


def form_key(page: str) -> str:
    found = re.search(r'name="form_key" value="([^"]+)"', page)
    return found.group(1) if found else ""


def problem_fields(response) -> dict[str, str]:
    assert response.status_code == 422, response.json
    return {e["field"]: e["message"] for e in response.json["errors"]}


@pytest.fixture
def api_auth(db_session, books):
    from app.api import services as api_services
    from app.api.models import SCOPES

    tenant, owner, _, _ = books
    _, secret = api_services.create_key(db_session, tenant.id, "Test", sorted(SCOPES), owner.id)
    db_session.commit()
    return {"Authorization": f"Bearer {secret}"}


def _project(session, customer, name="Warehouse", **custom) -> Project:
    project = Project(
        client_id=customer.id,
        name=name,
        contract_value=Decimal("100000.00"),
        currency="INR",
        start_date=date(2027, 1, 4),
        custom_fields=custom,
    )
    session.add(project)
    session.flush()
    return project


# Projects -------------------------------------------------------------------------------------


def test_the_project_form_takes_its_fields_and_refuses_bad_ones_beside_them(client, books, login):
    tenant, owner, session, customer = books
    add_field(session, "projects", label="PO number", required="1", pattern="PO-[0-9]{3}")
    add_field(session, "projects", label="Site", field_type="choice", choices="Pune\nNashik")
    add_field(session, "projects", label="Budget", field_type="money", max="500000")
    session.commit()
    login(client, owner)
    url = f"/t/{tenant.slug}/projects/new"
    page = client.get(f"{url}?client_id={customer.id}").text
    assert 'name="cf.po_number"' in page and 'name="cf.site"' in page
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": form_key(page),
        "client_id": customer.id,
        "name": "Warehouse fit-out",
        "contract_value": "250000",
        "currency": "INR",
        "start_date": "2027-04-01",
        "auto_invoice": "off",
        "cf.po_number": "PO-12",
        "cf.site": "Mumbai",
        "cf.budget": "600000",
    }
    refused = client.post(url, data=data)
    assert refused.status_code == 422
    assert 'id="cf-po_number-error"' in refused.text and "expected form" in refused.text
    assert "Choose from the list (Pune, Nashik)." in refused.text
    assert "Give 500000 or less." in refused.text
    assert 'value="PO-12"' in refused.text  # what was typed comes back
    assert session.scalars(select(Project)).all() == []
    data.update(
        {
            "form_key": form_key(refused.text),
            "cf.po_number": "PO-123",
            "cf.site": "pune",
            "cf.budget": "250000",
        }
    )
    saved = client.post(url, data=data)
    assert saved.status_code == 303, saved.text
    project = session.scalar(select(Project))
    assert project.custom_fields == {"po_number": "PO-123", "site": "pune", "budget": "250000.00"}
    shown = client.get(saved.headers["Location"]).text
    assert "PO-123" in shown and "Pune" in shown and "250,000.00" in shown

    # Changed in place on the project page: a bad value is refused beside it, nothing written.
    section = f"/t/{tenant.slug}/projects/{project.id}/custom-fields"
    token = csrf_token_from(client.get(section + "?edit=1").text)
    refused = client.post(section, data={"csrf_token": token, "cf.po_number": ""})
    assert refused.status_code == 422 and "PO number is required." in refused.text
    session.refresh(project)
    assert project.custom_fields["po_number"] == "PO-123"
    changed = client.post(
        section,
        data={
            "csrf_token": token,
            "cf.po_number": "PO-777",
            "cf.site": "nashik",
            "cf.budget": "250000",
        },
        headers={"HX-Request": "true"},
    )
    assert changed.status_code == 200 and "PO-777" in changed.text and "Nashik" in changed.text
    session.refresh(project)
    assert project.custom_fields == {"po_number": "PO-777", "site": "nashik", "budget": "250000.00"}
    # Without htmx the saved form goes back to the project's page.
    again = client.post(section, data={"csrf_token": token, "cf.po_number": "PO-778"})
    assert again.status_code == 303 and again.headers["Location"].endswith(
        f"/projects/{project.id}"
    )

    page = client.get(f"/t/{tenant.slug}/audit/?action=update").text
    assert "po number PO-123 → PO-777" in page and "site Pune → Nashik" in page


def test_the_projects_list_filters_sorts_and_shows_a_project_field(client, books, login):
    tenant, owner, session, customer = books
    add_field(
        session,
        "projects",
        label="Region",
        field_type="choice",
        choices="North\nSouth",
        in_lists="1",
    )
    add_field(session, "projects", label="Score", field_type="number", in_lists="1")
    _project(session, customer, "Alpha", region="north", score="30")
    _project(session, customer, "Bravo", region="south", score="5")
    _project(session, customer, "Charlie", region="north", score="100")
    _project(session, customer, "Delta")
    session.commit()
    login(client, owner)
    url = f"/t/{tenant.slug}/projects/"
    page = client.get(
        url, query_string={"cf.region": "north", "sort": "-cf.score", "columns": "score"}
    )
    shown = re.findall(r">(Alpha|Bravo|Charlie|Delta)</a>", page.text)
    assert shown == ["Charlie", "Alpha"]
    assert '<th scope="col">Score</th>' in page.text and ">100</td>" in page.text
    lowest = client.get(url, query_string={"sort": "cf.score"}).text
    # Numbers sort as numbers (5 before 30 before 100); a project without one comes first.
    assert re.findall(r">(Alpha|Bravo|Charlie|Delta)</a>", lowest) == [
        "Delta",
        "Bravo",
        "Alpha",
        "Charlie",
    ]
    nothing = client.get(url, query_string={"cf.region": "west"}).text
    assert "No projects match these filters." in nothing
    # The filter form asks htmx for the results alone: the same rows and columns.
    fragment = client.get(
        url,
        query_string={"cf.region": "south", "columns": "region"},
        headers={"HX-Request": "true"},
    ).text
    assert "<html" not in fragment and ">Bravo</a>" in fragment and ">South</td>" in fragment


def test_the_api_reads_and_writes_project_and_milestone_fields_422_per_field(
    client, books, api_auth
):
    tenant, owner, session, customer = books
    add_field(session, "projects", label="PO number", required="1")
    add_field(session, "milestones", label="Sign-off", field_type="date")
    session.commit()
    new = {"client_id": customer.id, "name": "Fit-out", "contract_value": "1000.00"}
    refused = client.post(
        "/api/v1/projects", json={**new, "custom_fields": {"colour": "red"}}, headers=api_auth
    )
    assert problem_fields(refused) == {
        "custom_fields.po_number": "PO number is required.",
        "custom_fields.colour": "There is no such field.",
    }
    assert session.scalars(select(Project)).all() == []
    created = client.post(
        "/api/v1/projects", json={**new, "custom_fields": {"po_number": "PO-1"}}, headers=api_auth
    )
    assert created.status_code == 201, created.json
    assert created.json["custom_fields"] == {"po_number": "PO-1"}
    url = created.headers["Location"]
    read = client.get(url, headers=api_auth)
    refused = client.patch(
        url,
        json={"custom_fields": {"po_number": None}},
        headers={**api_auth, "If-Match": read.headers["ETag"]},
    )
    assert problem_fields(refused) == {"custom_fields.po_number": "PO number is required."}
    changed = client.patch(
        url,
        json={"custom_fields": {"po_number": "PO-2"}},
        headers={**api_auth, "If-Match": read.headers["ETag"]},
    )
    assert changed.status_code == 200 and changed.json["custom_fields"] == {"po_number": "PO-2"}

    project = session.get(Project, created.json["id"])
    milestone = Milestone(
        project_id=project.id,
        position=1,
        name="Design",
        amount=Decimal("1000.00"),
        due_rule="date",
        due_date=date(2027, 5, 1),
    )
    session.add(milestone)
    session.commit()
    m_url = f"{url}/milestones/{milestone.id}"
    read = client.get(m_url, headers=api_auth)
    assert read.json["custom_fields"] == {}
    refused = client.patch(
        m_url,
        json={"custom_fields": {"sign_off": "2027-02-30"}},
        headers={**api_auth, "If-Match": read.headers["ETag"]},
    )
    assert "custom_fields.sign_off" in problem_fields(refused)
    changed = client.patch(
        m_url,
        json={"custom_fields": {"sign_off": "2027-05-02"}},
        headers={**api_auth, "If-Match": read.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["custom_fields"] == {"sign_off": "2027-05-02"}
    assert changed.json["status"] == "planned"  # no status sent: it stays where it was


# Milestones -----------------------------------------------------------------------------------


def test_milestone_fields_start_at_their_default_show_on_the_project_page_and_are_edited(
    client, books, login
):
    tenant, owner, session, customer = books
    add_field(session, "milestones", label="Stage gate", default_value="G1")
    add_field(session, "milestones", label="Hours", field_type="number", min="0")
    project = _project(session, customer)
    plan = [
        projects.PlannedMilestone(
            name="Design", due_rule="days_after_start", due_days=10, percentage=Decimal("100")
        )
    ]
    projects.replace_plan(session, project, plan, projects.Calendar("IN", "MH"))
    project_url = f"/t/{tenant.slug}/projects/{project.id}"
    session.commit()
    milestone = session.scalar(select(Milestone))
    assert milestone.custom_fields == {"stage_gate": "G1"}
    login(client, owner)
    page = client.get(project_url).text
    assert "Stage gate: G1" in page
    url = f"{project_url}/milestones/{milestone.id}/custom-fields"
    form = client.get(url + "?edit=1").text
    assert 'name="cf.hours"' in form and "<html" in form  # a page of its own without htmx
    token = csrf_token_from(form)
    refused = client.post(url, data={"csrf_token": token, "cf.hours": "-3"})
    assert refused.status_code == 422 and "Give 0 or more." in refused.text
    session.refresh(milestone)
    assert milestone.custom_fields == {"stage_gate": "G1"}
    saved = client.post(url, data={"csrf_token": token, "cf.hours": "12", "cf.stage_gate": "G2"})
    assert saved.status_code == 303
    session.refresh(milestone)
    assert milestone.custom_fields == {"stage_gate": "G2", "hours": "12"}
    assert "Stage gate: G2 · Hours: 12" in client.get(saved.headers["Location"]).text


def test_the_project_page_shows_its_own_fields_and_each_milestones_member_by_name(
    client, books, login
):
    tenant, owner, session, customer = books
    add_field(session, "projects", label="PO number")
    add_field(session, "milestones", label="Site lead", field_type="user")
    project = _project(session, customer, po_number="PO-7")
    plan = [
        projects.PlannedMilestone(
            name=name, due_rule="days_after_start", due_days=10, percentage=Decimal("50")
        )
        for name in ("Design", "Build")
    ]
    projects.replace_plan(session, project, plan, projects.Calendar("IN", "MH"))
    for milestone in session.scalars(select(Milestone)):
        milestone.custom_fields = {"site_lead": owner.id}
    session.commit()
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/projects/{project.id}").text
    assert "PO number" in page and "PO-7" in page
    assert page.count(f"Site lead: {owner.full_name}") == 2  # every row, by name


# Payments -------------------------------------------------------------------------------------


def test_the_payment_form_takes_its_fields_and_a_gateway_payment_starts_at_the_defaults(
    client, books, login
):
    from app.payments import services as payments

    tenant, owner, session, customer = books
    add_field(session, "payments", label="Cheque bank", required="1", default_value="HDFC")
    add_field(session, "payments", label="Deposited", field_type="date")
    session.commit()
    login(client, owner)
    url = f"/t/{tenant.slug}/payments/new"
    page = client.get(f"{url}?client_id={customer.id}").text
    assert 'name="cf.cheque_bank"' in page and 'value="HDFC"' in page
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": form_key(page),
        "client_id": customer.id,
        "amount": "5000",
        "received_on": "2027-03-01",
        "method": "cheque",
        "reference": "CHQ 001122",
        "cf.cheque_bank": "",
        "cf.deposited": "2027-13-01",
    }
    refused = client.post(url, data=data)
    assert refused.status_code == 422
    assert "Cheque bank is required." in refused.text and 'id="cf-deposited-error"' in refused.text
    assert session.scalars(select(Payment)).all() == []
    data.update(
        {
            "form_key": form_key(refused.text),
            "cf.cheque_bank": "ICICI",
            "cf.deposited": "2027-03-02",
        }
    )
    saved = client.post(url, data=data)
    assert saved.status_code == 303, saved.text
    payment = session.scalar(select(Payment))
    assert payment.custom_fields == {"cheque_bank": "ICICI", "deposited": "2027-03-02"}
    detail = client.get(saved.headers["Location"]).text
    assert "ICICI" in detail and "2027-03-02" in detail
    section = f"/t/{tenant.slug}/payments/{payment.id}/custom-fields"
    token = csrf_token_from(detail)
    refused = client.post(section, data={"csrf_token": token, "cf.deposited": "someday"})
    assert refused.status_code == 422
    session.refresh(payment)
    assert payment.custom_fields["deposited"] == "2027-03-02"

    # Cash that arrives on its own (a gateway, the bank) is never refused for a missing field.
    arrived = payments.record_payment(
        session,
        customer,
        {"amount": "10", "received_on": "2027-03-03", "method": "upi", "reference": "UTR9"},
    )
    assert arrived.custom_fields == {"cheque_bank": "HDFC"}


def test_the_payments_list_filters_sorts_shows_and_exports_a_payment_field(
    client, books, login, make_payment
):
    tenant, owner, session, customer = books
    add_field(session, "payments", label="Bank", in_lists="1")
    for amount, bank in (("100", "Canara"), ("200", "axis"), ("300", "Canara"), ("400", None)):
        payment = make_payment(session, customer, amount, reference=f"UTR{amount}")
        payment.custom_fields = {"bank": bank} if bank else {}
    session.commit()
    login(client, owner)
    url = f"/t/{tenant.slug}/payments/"
    page = client.get(url, query_string={"cf.bank": "Canara", "columns": "bank"}).text
    assert re.findall(r"<td>(UTR\d+)</td>", page) == ["UTR300", "UTR100"]
    assert '<th scope="col">Bank</th>' in page and ">Canara</td>" in page
    fragment = client.get(
        url, query_string={"cf.bank": "axis", "columns": "bank"}, headers={"HX-Request": "true"}
    ).text
    assert "<html" not in fragment and ">axis</td>" in fragment and "UTR200" in fragment
    by_bank = client.get(url, query_string={"sort": "cf.bank"}).text
    assert re.findall(r"<td>(UTR\d+)</td>", by_bank) == ["UTR400", "UTR200", "UTR100", "UTR300"]
    exported = client.get(f"/t/{tenant.slug}/payments/export.csv", query_string={"cf.bank": "axis"})
    rows = list(csv.reader(io.StringIO(exported.data.decode("utf-8-sig"))))
    assert rows[0][-1] == "Bank" and [row[-1] for row in rows[1:]] == ["axis"]


def test_the_api_reads_and_changes_a_payments_fields_422_per_field(
    client, books, api_auth, make_payment
):
    _, _, session, customer = books
    add_field(session, "payments", label="Deposited", field_type="date")
    payment = make_payment(session, customer, "500")
    session.commit()
    url = f"/api/v1/payments/{payment.id}"
    read = client.get(url, headers=api_auth)
    assert read.json["custom_fields"] == {}
    refused = client.patch(
        url,
        json={"custom_fields": {"deposited": "2027-02-30"}},
        headers={**api_auth, "If-Match": read.headers["ETag"]},
    )
    assert "custom_fields.deposited" in problem_fields(refused)
    assert (
        client.patch(
            url, json={"amount": "1.00"}, headers={**api_auth, "If-Match": "*"}
        ).status_code
        == 422
    )
    changed = client.patch(
        url,
        json={"custom_fields": {"deposited": "2027-03-04"}},
        headers={**api_auth, "If-Match": read.headers["ETag"]},
    )
    assert changed.status_code == 200 and changed.json["custom_fields"] == {
        "deposited": "2027-03-04"
    }
    assert changed.json["amount"] == "500.00"


# Notices and templates --------------------------------------------------------------------------


def test_a_notices_fields_are_edited_on_its_page_and_its_message_says_them(
    app, client, books, login, make_contact, make_invoice, make_notice
):
    from app.collections.notices import services as notices
    from app.collections.notices import statement
    from app.core.clock import tenant_today

    tenant, owner, session, customer = books
    add_field(session, "notices", label="Case reference", pattern="CR-[0-9]+")
    contact = make_contact(session, customer)
    with app.app_context():
        invoice = make_invoice(session, tenant, customer, issued_on=date(2026, 7, 1))
    notice = make_notice(session, customer, [invoice], contact=contact)
    session.commit()
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/notices/{notice.id}").text
    assert "More details" in page
    url = f"/t/{tenant.slug}/notices/{notice.id}/custom-fields"
    token = csrf_token_from(page)
    refused = client.post(url, data={"csrf_token": token, "cf.case_reference": "nope"})
    assert refused.status_code == 422 and "This is not in the expected form." in refused.text
    session.refresh(notice)
    assert notice.custom_fields == {}
    saved = client.post(url, data={"csrf_token": token, "cf.case_reference": "CR-42"})
    assert saved.status_code == 303
    assert "CR-42" in client.get(f"/t/{tenant.slug}/notices/{notice.id}").text

    session.refresh(notice)
    level = session.get(CollectionLevel, notice.level_id)
    session.add(
        MessageTemplate(
            name="Reminder",
            channel="email",
            purpose=level.template_purpose,
            language="en",
            subject="Reminder",
            body="Our case {{ notice.custom.case_reference }}{{ notice.custom.gone }}.",
        )
    )
    session.flush()
    with app.app_context():
        lines = statement.notice_lines(session, notice, tenant_today(session))
        composed = notices._compose_notice(session, tenant, notice, level, lines, contact)
    assert composed.text.startswith("Our case CR-42.")


def test_a_receipt_reads_the_payments_fields(
    app, books, db_session, make_contact, make_invoice, make_notice, make_payment
):
    tenant, _, session, customer = books
    add_field(session, "payments", label="Bank", default_value="Canara")
    make_contact(session, customer)
    session.get(CollectionSettings, 1).thank_you = True
    with app.app_context():
        invoice = make_invoice(session, tenant, customer, issued_on=date(2026, 7, 1))
        make_notice(session, customer, [invoice], status="sent")
        session.add(
            MessageTemplate(
                name="Thanks",
                channel="email",
                purpose="receipt",
                language="en",
                subject="Thank you",
                body="Received {{ payment.amount }} by {{ payment.custom.bank }}.",
            )
        )
        session.flush()
        make_payment(session, customer, str(invoice.total), allocate_to=[invoice])
        session.commit()
    receipt = db_session.scalar(
        select(OutboxMessage).where(OutboxMessage.payload["purpose"].astext == "receipt")
    )
    assert receipt is not None and "by Canara." in receipt.body_text
