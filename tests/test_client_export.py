"""Client export: the list as filtered, as CSV and XLSX, nothing deleted, nothing of another
tenant; and an export imports again without changing anything."""

from __future__ import annotations

import csv
import io
import re

import openpyxl
import pytest
from sqlalchemy import func, select

from app.clients import services
from app.clients.models import Client, ClientImport
from tests.helpers import csrf_token_from, tenant_session


@pytest.fixture(autouse=True)
def _own_storage(storage_root):
    """Files of this test go to a folder of its own."""
    return storage_root


def add_clients(session, tenant, *rows: dict) -> list[Client]:
    context = services.client_context(session, tenant)
    made = []
    for row in rows:
        raw = {"location": "local", "payment_terms": "net", "payment_days": "30", **row}
        made.append(services.create_client(session, context, raw))
    session.commit()
    return made


@pytest.fixture
def clients_of_two_tenants(db_session, make_user, make_tenant):
    owner = make_user(full_name="Asha Owner")
    tenant = make_tenant(owner=owner, name="Kaveri Builders")
    session = tenant_session(db_session, tenant)
    add_clients(
        session,
        tenant,
        {
            "full_name": "Vip One Pvt Ltd",
            "short_name": "VIP1",
            "tags": "vip, north",
            "credit_limit": "500000",
            "gstin": "27AAPFU0939F1ZV",
            "industry": "Logistics",
        },
        {
            "full_name": '=HYPERLINK("http://evil.example")',
            "short_name": "VIP2",
            "tags": "vip",
            "engagement_manager_user_id": str(owner.id),
        },
        {"full_name": "Plain Client", "short_name": "PLAIN"},
        {"full_name": "Vip Prospect", "short_name": "VIPP", "tags": "vip", "status": "prospect"},
    )
    [gone] = add_clients(
        session, tenant, {"full_name": "Vip Gone", "short_name": "GONE", "tags": "vip"}
    )
    services.delete_client(session, gone)
    session.commit()
    session.close()

    other_owner = make_user()
    other = make_tenant(owner=other_owner, name="Other Traders")
    other_session = tenant_session(db_session, other)
    add_clients(
        other_session, other, {"full_name": "Other Vip", "short_name": "OVIP", "tags": "vip"}
    )
    other_session.close()
    return {"tenant": tenant, "owner": owner, "other": other, "other_owner": other_owner}


def csv_rows(response) -> list[dict]:
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def xlsx_rows(response) -> list[dict]:
    sheet = openpyxl.load_workbook(io.BytesIO(response.get_data()), read_only=True).worksheets[0]
    header, *rows = list(sheet.iter_rows(values_only=True))
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_export_has_exactly_the_filtered_clients(
    app, clients_of_two_tenants, make_user, add_member, login
):
    tenant = clients_of_two_tenants["tenant"]
    viewer = make_user()
    add_member(tenant, viewer, role="viewer")  # export needs clients.view only
    browser = app.test_client()
    login(browser, viewer)

    response = browser.get(f"/t/{tenant.slug}/clients/export.csv?tag=vip")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert re.search(r'filename="clients-[\w-]+-\d{4}-\d{2}-\d{2}\.csv"', disposition)
    rows = csv_rows(response)
    assert sorted(r["Short name"] for r in rows) == ["VIP1", "VIP2"]
    first = next(r for r in rows if r["Short name"] == "VIP1")
    assert first["Full name"] == "Vip One Pvt Ltd" and first["GSTIN"] == "27AAPFU0939F1ZV"
    assert first["Tags"] == "vip, north" and first["Credit limit"] == "500000.00"
    assert first["Industry"] == "Logistics" and first["State / region"] == "27"
    second = next(r for r in rows if r["Short name"] == "VIP2")
    assert second["Full name"].startswith("'=")  # not a formula in a spreadsheet
    assert second["Engagement manager"] == clients_of_two_tenants["owner"].email

    response = browser.get(f"/t/{tenant.slug}/clients/export.xlsx?tag=vip")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].endswith(".xlsx")
    rows = xlsx_rows(response)
    assert sorted(r["Short name"] for r in rows) == ["VIP1", "VIP2"]
    first = next(r for r in rows if r["Short name"] == "VIP1")
    assert first["Payment days"] == 30 and float(first["Credit limit"]) == 500000
    second = next(r for r in rows if r["Short name"] == "VIP2")
    assert second["Full name"] == '=HYPERLINK("http://evil.example")'  # text, not a formula

    everyone = csv_rows(browser.get(f"/t/{tenant.slug}/clients/export.csv"))
    assert sorted(r["Short name"] for r in everyone) == ["PLAIN", "VIP1", "VIP2"]
    sorted_by_short = csv_rows(browser.get(f"/t/{tenant.slug}/clients/export.csv?sort=-short"))
    assert [r["Short name"] for r in sorted_by_short] == ["VIP2", "VIP1", "PLAIN"]
    prospects = xlsx_rows(browser.get(f"/t/{tenant.slug}/clients/export.xlsx?prospects=1"))
    assert [r["Short name"] for r in prospects] == ["VIPP"]
    searched = csv_rows(browser.get(f"/t/{tenant.slug}/clients/export.csv?q=plain"))
    assert [r["Short name"] for r in searched] == ["PLAIN"]


def test_another_tenants_member_cannot_export(app, clients_of_two_tenants, login):
    tenant = clients_of_two_tenants["tenant"]
    browser = app.test_client()
    login(browser, clients_of_two_tenants["other_owner"])
    for fmt in ("csv", "xlsx"):
        assert browser.get(f"/t/{tenant.slug}/clients/export.{fmt}").status_code == 404
    other = clients_of_two_tenants["other"]
    rows = csv_rows(browser.get(f"/t/{other.slug}/clients/export.csv?tag=vip"))
    assert [r["Short name"] for r in rows] == ["OVIP"]


def test_an_export_imports_again_without_changes(
    app, db_session, clients_of_two_tenants, login, run_jobs
):
    tenant = clients_of_two_tenants["tenant"]
    browser = app.test_client()
    login(browser, clients_of_two_tenants["owner"])
    for fmt in ("csv", "xlsx"):
        exported = browser.get(f"/t/{tenant.slug}/clients/export.{fmt}").get_data()
        page = browser.get(f"/t/{tenant.slug}/clients/imports/new")
        response = browser.post(
            f"/t/{tenant.slug}/clients/imports/new",
            data={
                "file": (io.BytesIO(exported), f"export.{fmt}"),
                "csrf_token": csrf_token_from(page.text),
            },
            content_type="multipart/form-data",
        )
        assert response.status_code == 303, response.text
        run_jobs()  # a worker reads the upload (headers, rows, preview)
        detail_url = response.headers["Location"]
        page = browser.get(detail_url)
        # Every exported column is recognised by its header.
        mapping = dict(
            re.findall(
                r'name="(map_[a-z_0-9]+)"[^>]*>(?:(?!</select>).)*?'
                r'<option selected value="(\d+)"',
                page.text,
                re.S,
            )
        )
        assert len(mapping) == 29, mapping
        mapping["csrf_token"] = csrf_token_from(page.text)
        response = browser.post(detail_url, data=mapping)
        assert response.status_code == 303
        browser.post(f"{detail_url}/start", data={"csrf_token": csrf_token_from(page.text)})
        run_jobs()

        session = tenant_session(db_session, tenant)
        record = session.scalar(select(ClientImport).order_by(ClientImport.id.desc()).limit(1))
        assert record.status == "done"
        assert (
            record.processed_rows,
            record.inserted_rows,
            record.updated_rows,
            record.failed_rows,
        ) == (3, 0, 0, 0), fmt
        assert session.scalar(select(func.count(Client.id))) == 5
        session.close()
