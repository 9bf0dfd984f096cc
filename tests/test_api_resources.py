"""The API's projects and milestones, credit notes, promises to pay, disputes and templates:
each through its area's own rules and messages, refusals as problems, one happy path each."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from app.api import services as api_services
from app.api.models import SCOPES
from app.collections.models import Dispute, PromiseToPay
from app.core.clock import DATE_RANGE_TEXT
from app.invoicing.models import CreditNote, Invoice
from app.library import services as library
from app.projects.models import Milestone
from tests.helpers import tenant_session


@pytest.fixture
def workspace(make_tenant, make_user):
    owner = make_user(full_name="Owner")
    return make_tenant(owner=owner, name="Kaveri Traders", region="27"), owner


@pytest.fixture
def auth(db_session, workspace):
    tenant, owner = workspace
    _, secret = api_services.create_key(db_session, tenant.id, "Test", sorted(SCOPES), owner.id)
    db_session.commit()
    return {"Authorization": f"Bearer {secret}"}


def fields_of(response) -> dict[str, str]:
    assert response.mimetype == "application/problem+json", response.data
    return {e["field"]: e["message"] for e in response.json["errors"]}


def test_a_project_is_created_planned_and_its_milestones_moved_on(
    client, auth, workspace, db_session, make_client
):
    tenant, _ = workspace
    session = tenant_session(db_session, tenant)
    buyer = make_client(session)
    session.commit()
    new = {"client_id": buyer.id, "name": "Warehouse fit-out", "contract_value": "100000.00"}

    refused = client.post(
        "/api/v1/projects", json={**new, "name": "X", "payment_terms": "net"}, headers=auth
    )
    assert refused.status_code == 422
    assert fields_of(refused) == {
        "name": "Name the project (2 to 191 characters).",
        "payment_days": "Use a whole number of days from 1 to 365.",
    }
    nobody = client.post("/api/v1/projects", json={**new, "client_id": 999999}, headers=auth)
    assert fields_of(nobody) == {"client_id": "There is no client with this id."}

    created = client.post("/api/v1/projects", json=new, headers=auth)
    assert created.status_code == 201, created.json
    project = created.json
    assert (project["contract_value"], project["currency"], project["milestones"]) == (
        "100000.00",
        "INR",
        0,
    )
    plan_url = f"/api/v1/projects/{project['id']}/plan"
    plan = {
        "mode": "percentage",
        "milestones": [
            {"name": "Advance", "share": "30", "due_rule": "days_after_start", "due_days": 0},
            {"name": "Handover", "share": "60", "due_days": 30},
        ],
    }
    etag = created.headers["ETag"]
    assert client.put(plan_url, json=plan, headers=auth).status_code == 428
    short = client.put(plan_url, json=plan, headers={**auth, "If-Match": etag})
    assert short.status_code == 422
    assert fields_of(short) == {"milestones": "The percentages must add up to 100."}
    plan["milestones"][1]["share"] = "170"
    bad_row = client.put(plan_url, json=plan, headers={**auth, "If-Match": etag})
    assert fields_of(bad_row) == {
        "milestones.1.share": "Give a percentage above 0 and at most 100, e.g. 25 or 12.5."
    }
    plan["milestones"][1]["share"] = "70"
    planned = client.put(plan_url, json=plan, headers={**auth, "If-Match": etag})
    assert planned.status_code == 200, planned.json
    assert (planned.json["milestones"], planned.json["planned_total"]) == (2, "100000.00")
    assert planned.json["status"] == "planned"

    listed = client.get(
        f"/api/v1/projects/{project['id']}/milestones", query_string={"limit": 1}, headers=auth
    ).json
    first = listed["data"][0]
    assert (first["name"], first["amount"], first["status"]) == ("Advance", "30000.00", "planned")
    assert first["next_statuses"] == ["in_progress", "cancelled"]
    second = client.get(
        f"/api/v1/projects/{project['id']}/milestones",
        query_string={"cursor": listed["next_cursor"]},
        headers=auth,
    ).json["data"]
    assert [m["name"] for m in second] == ["Handover"]

    url = f"/api/v1/projects/{project['id']}/milestones/{first['id']}"
    tag = client.get(url, headers=auth).headers["ETag"]
    wrong = client.patch(url, json={"status": "approved"}, headers={**auth, "If-Match": tag})
    assert fields_of(wrong) == {"status": "A planned milestone cannot become approved."}
    moved = client.patch(url, json={"status": "in_progress"}, headers={**auth, "If-Match": tag})
    assert moved.status_code == 200
    assert moved.json["status"] == "in_progress"
    stale = client.patch(url, json={"status": "completed"}, headers={**auth, "If-Match": tag})
    assert stale.status_code == 412

    # Work has started: the plan is no longer replaced whole.
    tag = client.get(f"/api/v1/projects/{project['id']}", headers=auth).headers["ETag"]
    again = client.put(plan_url, json=plan, headers={**auth, "If-Match": tag})
    assert again.status_code == 409
    assert again.json["code"] == "plan_started"
    session = tenant_session(db_session, tenant)
    assert session.get(Milestone, first["id"]).status == "in_progress"
    # The list gives each project's status as its milestones say, the same as one project.
    (row,) = client.get("/api/v1/projects", headers=auth).json["data"]
    assert (row["id"], row["status"], row["milestones"]) == (project["id"], "in_progress", 2)


def test_a_credit_note_is_issued_at_most_for_what_is_owed(
    client, auth, workspace, db_session, make_client, make_invoice
):
    tenant, _ = workspace
    session = tenant_session(db_session, tenant)
    buyer = make_client(session)
    invoice = make_invoice(session, tenant, buyer, ("1000.00",))
    session.commit()
    url = f"/api/v1/invoices/{invoice.id}/credit-notes"

    too_much = client.post(url, json={"amount": "1500.00", "reason": ""}, headers=auth)
    assert too_much.status_code == 422
    assert fields_of(too_much) == {
        "reason": "Say why the amount is credited (e.g. a discount, a return).",
        "amount": "At most what the invoice still owes: ₹1,000.00.",
    }
    issued = client.post(url, json={"amount": "250.00", "reason": "Damaged goods"}, headers=auth)
    assert issued.status_code == 201, issued.json
    note = issued.json
    assert (note["total"], note["invoice_id"], note["number"].startswith("CN")) == (
        "250.00",
        invoice.id,
        True,
    )
    assert sum(Decimal(line["total"]) for line in note["lines"]) == Decimal("250.00")
    assert client.get(f"/api/v1/credit-notes/{note['id']}", headers=auth).json == note
    assert [
        n["id"]
        for n in client.get(
            "/api/v1/credit-notes", query_string={"invoice_id": invoice.id}, headers=auth
        ).json["data"]
    ] == [note["id"]]
    # The rest, then nothing is left to credit.
    rest = client.post(url, json={"reason": "Settled"}, headers=auth)
    assert rest.json["total"] == "750.00"
    refused = client.post(url, json={"reason": "Again"}, headers=auth)
    assert refused.status_code == 409
    assert refused.json["code"] == "invoice_not_creditable"
    session = tenant_session(db_session, tenant)
    assert session.query(CreditNote).count() == 2
    assert session.get(Invoice, invoice.id).status == "paid"


def test_a_promise_is_recorded_for_open_invoices_and_cancelled_once(
    client, auth, workspace, db_session, make_client, make_invoice
):
    tenant, _ = workspace
    session = tenant_session(db_session, tenant)
    buyer = make_client(session)
    idle = make_client(session)
    invoice = make_invoice(session, tenant, buyer, ("1000.00",))
    session.commit()
    promise = {"client_id": buyer.id, "amount": "400.00", "promised_on": "2099-01-31"}

    past = client.post(
        "/api/v1/promises",
        json={**promise, "promised_on": "2000-01-01", "invoice_ids": [invoice.id + 1000]},
        headers=auth,
    )
    assert fields_of(past) == {
        "promised_on": "The date promised cannot be in the past.",
        "invoice_ids": "Choose among the client's open invoices.",
    }
    owes_nothing = client.post(
        "/api/v1/promises", json={**promise, "client_id": idle.id}, headers=auth
    )
    assert fields_of(owes_nothing) == {
        "invoice_ids": "This client owes nothing: there is nothing to promise."
    }
    made = client.post("/api/v1/promises", json=promise, headers=auth)
    assert made.status_code == 201, made.json
    assert (made.json["invoice_ids"], made.json["amount"], made.json["status"]) == (
        [invoice.id],
        "400.00",
        "open",
    )
    url = f"/api/v1/promises/{made.json['id']}"
    cancelled = client.patch(
        url, json={"status": "cancelled"}, headers={**auth, "If-Match": made.headers["ETag"]}
    )
    assert cancelled.status_code == 200
    again = client.patch(
        url, json={"status": "cancelled"}, headers={**auth, "If-Match": cancelled.headers["ETag"]}
    )
    assert again.status_code == 409
    assert again.json["detail"] == "This promise is cancelled: it cannot be cancelled."
    session = tenant_session(db_session, tenant)
    assert session.get(PromiseToPay, made.json["id"]).status == "cancelled"


def test_a_dispute_is_opened_once_per_invoice_and_ended_with_a_note(
    client, auth, workspace, db_session, make_client, make_invoice
):
    tenant, _ = workspace
    session = tenant_session(db_session, tenant)
    buyer = make_client(session)
    invoice = make_invoice(session, tenant, buyer, ("1000.00",))
    session.commit()

    bare = client.post(
        "/api/v1/disputes",
        json={"invoice_id": invoice.id, "reason": " ", "evidence_url": "ftp://x"},
        headers=auth,
    )
    assert fields_of(bare) == {
        "reason": "Say what the client disputes.",
        "evidence_url": "Enter a web address starting with https://.",
    }
    stranger = client.post(
        "/api/v1/disputes",
        json={"invoice_id": invoice.id, "reason": "Short", "owner_user_id": 987654},
        headers=auth,
    )
    assert fields_of(stranger) == {"owner_user_id": "Choose a member of this workspace."}
    opened = client.post(
        "/api/v1/disputes", json={"invoice_id": invoice.id, "reason": "Short"}, headers=auth
    )
    assert opened.status_code == 201, opened.json
    twice = client.post(
        "/api/v1/disputes", json={"invoice_id": invoice.id, "reason": "Again"}, headers=auth
    )
    assert twice.status_code == 409
    assert twice.json["detail"] == "This invoice already has an open dispute."
    assert client.get(f"/api/v1/invoices/{invoice.id}", headers=auth).json["status"] == "disputed"

    url = f"/api/v1/disputes/{opened.json['id']}"
    tag = {**auth, "If-Match": opened.headers["ETag"]}
    no_note = client.patch(url, json={"status": "resolved", "resolution_note": ""}, headers=tag)
    assert fields_of(no_note) == {"resolution_note": "Say how the dispute ended."}
    ended = client.patch(
        url, json={"status": "rejected", "resolution_note": "Delivered intact"}, headers=tag
    )
    assert ended.status_code == 200, ended.json
    assert ended.json["status"] == "rejected"
    assert client.get(f"/api/v1/invoices/{invoice.id}", headers=auth).json["status"] != "disputed"
    session = tenant_session(db_session, tenant)
    assert session.get(Dispute, opened.json["id"]).resolution_note == "Delivered intact"


def test_templates_read_the_library_and_the_workspaces_own(client, auth, db_session):
    definition = library.read_library()[0]
    library.load_library(db_session, [definition])
    db_session.commit()
    listed = client.get("/api/v1/templates/library", headers=auth).json["data"]
    assert [t["key"] for t in listed] == [definition.key]
    one = client.get(f"/api/v1/templates/library/{listed[0]['id']}", headers=auth).json
    assert sum(Decimal(i["percentage"]) for i in one["items"]) == 100
    assert client.get("/api/v1/templates/own", headers=auth).json["data"] == []
    wrong = client.get("/api/v1/templates/library", query_string={"size": "huge"}, headers=auth)
    assert wrong.status_code == 400
    assert "size" in fields_of(wrong)


def test_a_clients_invoice_settings_change_by_the_pages_rules(
    client, auth, workspace, db_session, make_client
):
    tenant, _ = workspace
    session = tenant_session(db_session, tenant)
    buyer = make_client(session)
    session.commit()
    url = f"/api/v1/clients/{buyer.id}/invoice-settings"
    read = client.get(url, headers=auth)
    tag = {**auth, "If-Match": read.headers["ETag"]}
    custom = client.patch(url, json={"payment_terms": "custom", "payment_days": None}, headers=tag)
    assert custom.status_code == 422
    assert fields_of(custom) == {"payment_terms_note": "Describe the custom terms."}
    changed = client.patch(
        url,
        json={"payment_terms": "net", "payment_days": 45, "credit_limit": "75000"},
        headers=tag,
    )
    assert changed.status_code == 200, changed.json
    assert (changed.json["payment_days"], changed.json["credit_limit"]) == (45, "75000.00")
    assert client.patch(url, json={"payment_days": 60}, headers=tag).status_code == 412


def test_sites_are_added_changed_and_removed(client, auth, workspace, db_session, make_client):
    tenant, _ = workspace
    session = tenant_session(db_session, tenant)
    buyer = make_client(session)
    session.commit()
    url = f"/api/v1/clients/{buyer.id}/sites"
    half = client.post(url, json={"name": "Pune plant", "latitude": "18.52"}, headers=auth)
    assert fields_of(half) == {"longitude": "Give both latitude and longitude, or neither."}
    added = client.post(
        url, json={"name": "Pune plant", "latitude": "18.52", "longitude": "73.85"}, headers=auth
    )
    assert added.status_code == 201, added.json
    site_url = f"{url}/{added.json['id']}"
    renamed = client.put(
        site_url,
        json={"name": "Pune works", "site_contact_id": 999999},
        headers={**auth, "If-Match": added.headers["ETag"]},
    )
    assert fields_of(renamed) == {"site_contact_id": "Choose one of this client's contacts."}
    renamed = client.put(
        site_url, json={"name": "Pune works"}, headers={**auth, "If-Match": added.headers["ETag"]}
    )
    assert (renamed.json["name"], renamed.json["latitude"]) == ("Pune works", None)
    assert [s["name"] for s in client.get(url, headers=auth).json["data"]] == ["Pune works"]
    assert client.delete(site_url, headers=auth).status_code == 204
    assert client.get(url, headers=auth).json["data"] == []


PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def test_a_document_is_uploaded_with_the_pages_checks(
    client, auth, workspace, db_session, make_client, storage_root
):
    tenant, _ = workspace
    session = tenant_session(db_session, tenant)
    buyer = make_client(session)
    session.commit()
    url = f"/api/v1/clients/{buyer.id}/documents"

    as_json = client.post(url, json={"title": "Contract"}, headers=auth)
    assert as_json.status_code == 415
    disguised = client.post(
        url,
        data={
            "title": "Contract",
            "expires_on": "2000-01-01",
            "file": (io.BytesIO(b"MZ\x90"), "c.pdf"),
        },
        headers=auth,
    )
    assert disguised.status_code == 422
    assert fields_of(disguised) == {
        "expires_on": "The expiry date cannot be in the past.",
        "file": "This file's content is not a valid .pdf file.",
    }
    exe = client.post(url, data={"title": "Tool", "file": (io.BytesIO(PDF), "t.exe")}, headers=auth)
    assert fields_of(exe) == {"file": "Upload a PDF, PNG, JPG, DOCX, XLSX, CSV or TXT file."}
    missing = client.post(
        url, data={"title": "Contract"}, content_type="multipart/form-data", headers=auth
    )
    assert fields_of(missing) == {"file": "Choose a file to upload."}
    stray = client.post(
        url,
        data={"title": "Contract", "colour": "red", "file": (io.BytesIO(PDF), "c.pdf")},
        headers=auth,
    )
    assert fields_of(stray) == {"colour": "This field is not known here."}

    uploaded = client.post(
        url,
        data={"title": "Master agreement", "file": (io.BytesIO(PDF), "agreement.pdf")},
        headers={**auth, "Idempotency-Key": "upload-1"},
    )
    assert uploaded.status_code == 201, uploaded.json
    version = uploaded.json["versions"][0]
    assert (version["filename"], version["size_bytes"]) == ("agreement.pdf", len(PDF))
    again = client.post(
        url,
        data={"title": "Master agreement", "file": (io.BytesIO(PDF), "agreement.pdf")},
        headers={**auth, "Idempotency-Key": "upload-1"},
    )
    assert again.headers["Idempotent-Replayed"] == "true"
    listed = client.get(url, headers=auth).json["data"]
    assert [d["title"] for d in listed] == ["Master agreement"]
    assert client.delete(f"{url}/{listed[0]['id']}", headers=auth).status_code == 204
    assert client.get(url, headers=auth).json["data"] == []


def test_a_notice_is_read_given_files_and_links_and_closed(
    client,
    auth,
    workspace,
    db_session,
    make_client,
    make_contact,
    make_invoice,
    make_notice,
    storage_root,
):
    tenant, _ = workspace
    session = tenant_session(db_session, tenant)
    buyer = make_client(session)
    invoice = make_invoice(session, tenant, buyer, ("1000.00",))
    notice = make_notice(session, buyer, [invoice], contact=make_contact(session, buyer))
    session.commit()
    url = f"/api/v1/notices/{notice.id}"

    listed = client.get("/api/v1/notices", query_string={"status": "draft"}, headers=auth).json
    assert [(n["id"], n["amount_due"]) for n in listed["data"]] == [(notice.id, "1000.00")]

    bad_link = client.post(
        f"{url}/links", json={"title": " ", "url": "javascript:alert(1)"}, headers=auth
    )
    assert fields_of(bad_link) == {
        "url": "Enter a web address starting with https:// (at most 2,048 characters).",
        "title": "Give the link a title.",
    }
    link = client.post(
        f"{url}/links",
        json={"title": "Delivery note", "url": "https://drive.example.com/dn"},
        headers=auth,
    )
    assert link.status_code == 201, link.json
    empty = client.post(
        f"{url}/attachments", data={"file": (io.BytesIO(b""), "a.txt")}, headers=auth
    )
    assert fields_of(empty) == {"file": "The file is empty."}
    attached = client.post(
        f"{url}/attachments", data={"file": (io.BytesIO(PDF), "statement.pdf")}, headers=auth
    )
    assert attached.status_code == 201, attached.json
    assert (attached.json["kind"], attached.json["title"]) == ("file", "statement.pdf")

    read = client.get(url, headers=auth)
    assert [a["kind"] for a in read.json["attachments"]] == ["link", "file"]
    assert read.json["invoices"] == [
        {"invoice_id": invoice.id, "amount_due": "1000.00", "days_overdue": 30}
    ]
    assert client.delete(f"{url}/attachments/{link.json['id']}", headers=auth).status_code == 204
    read = client.get(url, headers=auth)
    assert [a["kind"] for a in read.json["attachments"]] == ["file"]

    tag = {**auth, "If-Match": read.headers["ETag"]}
    no_note = client.patch(url, json={"close_reason": "cancelled"}, headers=tag)
    assert fields_of(no_note) == {"note": "Say why the notice is cancelled."}
    closed = client.patch(
        url, json={"close_reason": "cancelled", "note": "Paid in cash"}, headers=tag
    )
    assert closed.status_code == 200, closed.json
    assert closed.json["status"] == "cancelled"
    again = client.patch(
        url,
        json={"close_reason": "paid"},
        headers={**auth, "If-Match": closed.headers["ETag"]},
    )
    assert again.status_code == 409
    assert again.json["detail"] == "This notice is cancelled; it cannot be closed."


def test_a_plan_row_falling_due_on_a_date_needs_the_date(
    client, auth, workspace, db_session, make_client
):
    tenant, _ = workspace
    session = tenant_session(db_session, tenant)
    buyer = make_client(session)
    session.commit()
    created = client.post(
        "/api/v1/projects",
        json={"client_id": buyer.id, "name": "Audit", "contract_value": "5000"},
        headers=auth,
    )
    plan = {
        "mode": "amount",
        "milestones": [{"name": "Report", "share": "5000", "due_rule": "date"}],
    }
    refused = client.put(
        f"/api/v1/projects/{created.json['id']}/plan",
        json=plan,
        headers={**auth, "If-Match": created.headers["ETag"]},
    )
    assert fields_of(refused) == {
        "milestones.0.due_date": f"Give a date {DATE_RANGE_TEXT}, as YYYY-MM-DD."
    }
