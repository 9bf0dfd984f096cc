"""Invoice export: the invoice list as filtered, every page of it, as CSV and XLSX, with the
invoices' own live fields in columns headed by their labels (an archived choice by its label,
as the client export writes it), formula-looking text kept as text, invoices.view required,
nothing of another tenant."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from decimal import Decimal

import openpyxl
import pytest

from app.core.clock import tenant_today
from app.custom_fields import services as custom_fields
from tenants import roles
from tests.helpers import tenant_session

EVIL = '=HYPERLINK("http://evil.example")'
HEADERS = [
    "Number",
    "Client",
    "Project",
    "Issue date",
    "Due date",
    "Status",
    "Currency",
    "Total",
    "Owing",
    "Days overdue",
    "PO number",
    "Tier",
]


@pytest.fixture
def books(db_session, make_user, make_tenant, make_client, make_invoice, make_payment):
    owner = make_user()
    tenant = make_tenant(owner=owner, name="Kaveri Builders", region="27")
    session = tenant_session(db_session, tenant)
    custom_fields.save_field(
        session, "invoices", {"label": "PO number", "field_type": "text", "in_lists": "y"}
    )
    tier = custom_fields.save_field(
        session,
        "invoices",
        {"label": "Tier", "field_type": "choice", "choices": "Gold\nSilver"},
    )
    retired = custom_fields.save_field(
        session, "invoices", {"label": "Old note", "field_type": "text"}
    )
    acme = make_client(session, "Acme")
    beta = make_client(session, "Beta")
    owing = make_invoice(session, tenant, acme, ("1000.00",), issued_on=date(2025, 1, 10))
    make_payment(session, acme, "400.00", "2025-02-01", allocate_to=[owing])
    paid = make_invoice(session, tenant, acme, ("250.00",), issued_on=date(2025, 3, 1))
    make_payment(session, acme, "250.00", "2025-03-05", allocate_to=[paid], reference="UTR2")
    other_client = make_invoice(session, tenant, beta, ("99.50",), issued_on=date(2025, 2, 1))
    owing.custom_fields = {"po_number": EVIL, "tier": "silver", "old_note": "kept, not shown"}
    paid.custom_fields = {"po_number": "PO-7", "tier": "gold"}
    session.flush()
    # Silver is taken off the list, Old note archived: values stay, Old note leaves the files.
    custom_fields.save_field(session, "invoices", {"label": "Tier", "choices": "Gold"}, tier)
    custom_fields.archive_field(retired)
    session.commit()
    today = tenant_today(session)
    facts = {
        "tenant": tenant,
        "owner": owner,
        "acme": acme.id,
        "owing": (owing.number, owing.due_date),
        "paid": paid.number,
        "other_client": other_client.number,
        "today": today,
    }
    session.close()

    other_owner = make_user()
    other = make_tenant(owner=other_owner, name="Other Traders", region="27")
    other_session = tenant_session(db_session, other)
    elsewhere = make_invoice(
        other_session, other, make_client(other_session, "Elsewhere"), issued_on=date(2025, 1, 5)
    )
    other_session.commit()
    facts.update(other_slug=other.slug, other_owner=other_owner, elsewhere=elsewhere.number)
    other_session.close()
    return facts


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")  # Excel reads it as UTF-8
    return list(csv.reader(io.StringIO(text[1:])))


def xlsx_rows(response) -> list[tuple]:
    assert response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(response.get_data()), read_only=True)
    return list(book.worksheets[0].iter_rows(values_only=True))


def test_the_export_is_the_filtered_list_with_its_own_fields(
    app, books, make_user, add_member, login
):
    tenant = books["tenant"]
    viewer = make_user()
    add_member(tenant, viewer, role="viewer")
    browser = app.test_client()
    login(browser, viewer)
    base = f"/t/{tenant.slug}/invoices/export"
    owing_number, due = books["owing"]

    response = browser.get(f"{base}.csv")
    assert re.search(
        r'filename="invoices-[\w-]+-\d{4}-\d{2}-\d{2}\.csv"',
        response.headers["Content-Disposition"],
    )
    header, *rows = csv_rows(response)
    assert header == HEADERS  # live fields only: the archived "Old note" is not a column
    # Newest first, as the list shows them.
    assert [row[0] for row in rows] == [books["paid"], books["other_client"], owing_number]
    owing = rows[2]
    assert owing[1].startswith("Acme") and owing[2].startswith("Project")
    assert owing[3:10] == [
        "2025-01-10",
        due.isoformat(),
        "Partly paid",
        "INR",
        "1000.00",
        "600.00",
        str((books["today"] - due).days),
    ]
    assert owing[10] == "'" + EVIL  # not a formula in a spreadsheet
    assert owing[11] == "Silver"  # taken off the list, still the invoice's value
    assert rows[0][5:12] == ["Paid", "INR", "250.00", "0.00", "0", "PO-7", "Gold"]
    assert rows[1][10:] == ["", ""]

    # The page's filters: client, status, custom field, search, issue dates.
    by_client = csv_rows(browser.get(f"{base}.csv?client_id={books['acme']}"))
    assert [row[0] for row in by_client[1:]] == [books["paid"], owing_number]
    still_owed = csv_rows(browser.get(f"{base}.csv?status=open"))
    assert [row[0] for row in still_owed[1:]] == [books["other_client"], owing_number]
    by_po = csv_rows(browser.get(f"{base}.csv?cf.po_number=PO-7"))
    assert [row[0] for row in by_po[1:]] == [books["paid"]]
    searched = csv_rows(browser.get(f"{base}.csv?q=beta"))
    assert [row[0] for row in searched[1:]] == [books["other_client"]]
    dated = csv_rows(browser.get(f"{base}.csv?from=2025-02-01&to=2025-02-28"))
    assert [row[0] for row in dated[1:]] == [books["other_client"]]

    response = browser.get(f"{base}.xlsx?client_id={books['acme']}")
    assert response.headers["Content-Disposition"].endswith(".xlsx")
    header, paid, owing = xlsx_rows(response)
    assert list(header) == HEADERS
    assert paid[0] == books["paid"] and owing[0] == owing_number
    assert owing[3] == datetime(2025, 1, 10)  # a date cell, not text
    assert (Decimal(str(owing[7])), Decimal(str(owing[8]))) == (Decimal(1000), Decimal(600))
    assert owing[10] == EVIL
    book = openpyxl.load_workbook(io.BytesIO(response.get_data()))
    assert book.worksheets[0].cell(row=3, column=11).data_type == "s"  # text, never a formula
    assert owing[11] == "Silver"


def test_the_list_offers_the_export_with_its_filters(app, books, login):
    tenant = books["tenant"]
    browser = app.test_client()
    login(browser, books["owner"])
    page = browser.get(f"/t/{tenant.slug}/invoices/?status=open&cf.po_number=PO-7").text
    for fmt in ("csv", "xlsx"):
        link = re.search(rf'href="([^"]*/invoices/export\.{fmt}[^"]*)"', page).group(1)
        assert "status=open" in link and "cf.po_number=PO-7" in link


def test_export_needs_invoices_view(app, books, make_user, add_member, login, monkeypatch):
    tenant = books["tenant"]
    member = make_user()
    add_member(tenant, member, role="viewer")
    # Every role has invoices.view today: a viewer without it stands for a role that would not.
    monkeypatch.setitem(
        roles.PERMISSIONS, "viewer", roles.PERMISSIONS["viewer"] - {"invoices.view"}
    )
    browser = app.test_client()
    login(browser, member)
    for fmt in ("csv", "xlsx"):
        assert browser.get(f"/t/{tenant.slug}/invoices/export.{fmt}").status_code == 403


def test_another_tenants_member_cannot_export(app, books, login):
    tenant = books["tenant"]
    browser = app.test_client()
    login(browser, books["other_owner"])
    for fmt in ("csv", "xlsx"):
        assert browser.get(f"/t/{tenant.slug}/invoices/export.{fmt}").status_code == 404
    own = csv_rows(browser.get(f"/t/{books['other_slug']}/invoices/export.csv"))
    assert own == [HEADERS[:10], own[1]] and own[1][0] == books["elsewhere"]
