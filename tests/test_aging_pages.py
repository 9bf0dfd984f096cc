"""Aging pages: the dashboard and the AR aging report show the right figures (per currency, in
the tenant's locale), filters, the drill-down as a fragment and as a page, CSV/XLSX/PDF
exports, the client fragment, the settings form, permissions and other tenants' ids."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from openpyxl import load_workbook

from app.aging import services as aging
from app.core.clock import local_date
from tests.helpers import csrf_token_from
from tests.test_aging import Books


@pytest.fixture
def shop(db_session, make_tenant, make_user, client, login):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    books = Books(db_session, tenant)
    today = local_date(tenant.time_zone)
    acme = books.client("Acme Builders")
    zen = books.client("Zenith Exports", currency="USD")
    books.invoice(acme, "150000.00", due=today - timedelta(days=45))  # 31-60
    books.invoice(acme, "2500.50", due=today + timedelta(days=10))  # current
    late = books.invoice(acme, "10000.00", due=today - timedelta(days=120))  # 90+
    books.pay(acme, late, "4000.00")
    books.invoice(zen, "1200.00", due=today - timedelta(days=5))  # 1-30
    books.session.commit()
    login(client, owner)
    return tenant, books, acme, zen, f"/t/{tenant.slug}/aging"


def test_dashboard_shows_buckets_top_clients_dso_and_trend(client, shop):
    tenant, books, acme, zen, base = shop
    page = client.get(f"{base}/")
    assert page.status_code == 200
    html = page.text
    assert "₹1,58,500.50 outstanding" in html  # Indian grouping, INR and USD apart
    assert "$1,200.00 outstanding" in html
    assert "₹1,56,000.00" in html  # overdue INR: 1,50,000 + 6,000
    assert "Acme Builders" in html and "Zenith Exports" in html
    assert "DSO" in html and "Trend as a table (1 day)" in html
    assert 'role="img"' in html


def test_report_filters_drill_down_and_page(client, shop):
    tenant, books, acme, zen, base = shop
    html = client.get(f"{base}/report").text
    assert "2 client rows" in html and "₹1,50,000.00" in html and "$1,200.00" in html
    html = client.get(f"{base}/report?currency=USD").text
    assert "1 client row" in html and "Acme Builders" not in html
    html = client.get(f"{base}/report?q=acme&min_overdue=100000").text
    assert "Acme Builders" in html and "Zenith" not in html
    assert "No client matches" in client.get(f"{base}/report?bucket=1&currency=INR").text
    bad = client.get(f"{base}/report?min_overdue=lots").text
    assert "Enter an amount" in bad and "2 client rows" in bad
    fragment = client.get(
        f"{base}/clients/{acme.id}/invoices?bucket=4&currency=INR", headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert (
        "₹6,000.00" in fragment.text and "120" in fragment.text and "₹1,50,000" not in fragment.text
    )
    full = client.get(f"{base}/clients/{acme.id}/invoices")
    assert "<html" in full.text and "₹1,50,000.00" in full.text and "₹2,500.50" in full.text


def test_each_amount_of_the_report_opens_the_invoices_behind_it(client, shop):
    """Every amount in a client's row links to that client's invoices of its bucket, and the
    row's total to all of them: following the report's own links, not hand-made URLs."""
    tenant, books, acme, zen, base = shop
    html = client.get(f"{base}/report?currency=INR").text
    row = html[html.index(f'id="aging-row-{acme.id}-INR"') :]
    row = row[: row.index("</tr>")]
    links = [unescape(link) for link in re.findall(r'href="([^"]+)"', row)[1:]]
    assert len(links) == 4  # current, 31-60, 90+ and the total; empty buckets have none
    current, days_31_60, over_90, total = (
        client.get(link, headers={"HX-Request": "true"}).text for link in links
    )
    assert "₹2,500.50" in current and "₹1,50,000.00" not in current
    assert "₹1,50,000.00" in days_31_60 and "₹6,000.00" not in days_31_60
    assert "₹6,000.00" in over_90 and "₹1,50,000.00" not in over_90
    assert all(amount in total for amount in ("₹2,500.50", "₹1,50,000.00", "₹6,000.00"))


def test_exports(client, shop):
    tenant, books, acme, zen, base = shop
    response = client.get(f"{base}/report.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0] == [
        "Client",
        "Currency",
        "Current",
        "1–30 days",
        "31–60 days",
        "61–90 days",
        "90+ days",
        "Total",
        "Overdue",
    ]
    assert [
        "Acme Builders",
        "INR",
        "2500.50",
        "0",
        "150000.00",
        "0",
        "6000.00",
        "158500.50",
        "156000.00",
    ] in rows
    assert [
        "Total INR",
        "INR",
        "2500.50",
        "0",
        "150000.00",
        "0",
        "6000.00",
        "158500.50",
        "156000.00",
    ] in rows
    response = client.get(f"{base}/report.xlsx?currency=USD")
    sheet = load_workbook(io.BytesIO(response.data)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[1][:2] == ["Zenith Exports", "USD"] and values[1][3] == Decimal("1200.00")
    assert len(values) == 3  # header, Zenith, total
    response = client.get(f"{base}/report.pdf")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    assert client.get(f"{base}/report.exe").status_code == 404


def test_client_fragment_and_other_tenants_ids(client, shop, make_tenant, db_session):
    tenant, books, acme, zen, base = shop
    ours = {acme.id, zen.id}
    html = client.get(f"{base}/clients/{acme.id}").text
    assert "<html" not in html and "₹1,58,500.50" in html
    other = Books(db_session, make_tenant())
    stranger = other.client("Stranger Ltd")
    other.session.commit()
    missing = stranger.id if stranger.id not in ours else 999999
    assert client.get(f"{base}/clients/{missing}").status_code == 404
    assert client.get(f"{base}/clients/{missing}/invoices").status_code == 404


def test_settings_form_validates_and_rebuilds(client, shop):
    tenant, books, acme, zen, base = shop
    page = client.get(f"{base}/settings")
    assert page.status_code == 200 and 'value="30, 60, 90"' in page.text
    token = csrf_token_from(page.text)
    refused = client.post(
        f"{base}/settings", data={"csrf_token": token, "basis": "due_date", "buckets": "60, 30"}
    )
    assert refused.status_code == 422 and "ascending" in refused.text
    assert 'aria-invalid="true"' in refused.text
    saved = client.post(
        f"{base}/settings",
        data={"csrf_token": token, "basis": "due_date", "buckets": "15, 45, 100"},
    )
    assert saved.status_code == 302
    html = client.get(f"{base}/report").text
    assert "46–100 days" in html and "100+ days" in html
    rows = list(csv.reader(io.StringIO(client.get(f"{base}/report.csv").data.decode("utf-8-sig"))))
    # 45 days late is now in 16-45, 120 days in 100+.
    assert [
        "Acme Builders",
        "INR",
        "2500.50",
        "0",
        "150000.00",
        "0",
        "6000.00",
        "158500.50",
        "156000.00",
    ] in rows
    assert rows[0][3:7] == ["1–15 days", "16–45 days", "46–100 days", "100+ days"]


def test_permissions(client, shop, make_user, add_member, login):
    tenant, books, acme, zen, base = shop
    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    client.get("/logout")
    login(client, viewer)
    assert client.get(f"{base}/").status_code == 200
    assert client.get(f"{base}/report.csv").status_code == 200
    assert client.get(f"{base}/settings").status_code == 403
    outsider = make_user()
    client.get("/logout")
    login(client, outsider)
    assert client.get(f"{base}/").status_code == 404


def test_report_counts_its_rows_up_to_the_cap(client, shop, monkeypatch):
    """Past COUNT_CAP client rows the report says "N+ client rows" and pages on while a page
    is full, filtered or not (counting every row grew with the clients)."""
    tenant, books, acme, zen, base = shop
    monkeypatch.setattr(aging, "COUNT_CAP", 1)
    html = client.get(f"{base}/report").text
    assert "1+ client rows, page 1." in html and "2 client rows" not in html
    assert "₹1,50,000.00" in html and "$1,200.00" in html  # the totals of every row still
    html = client.get(f"{base}/report?sort=name").text
    assert "1+ client rows, page 1." in html
    html = client.get(f"{base}/report?currency=USD").text
    assert "1 client row." in html


def test_the_collector_filter_offers_the_collectors_named_on_clients(client, shop, make_user):
    tenant, books, acme, zen, base = shop
    asha = make_user(full_name="Asha Rao")
    make_user(full_name="Ravi Iyer")
    acme.collector_user_id = asha.id
    books.session.commit()
    html = client.get(f"{base}/report").text
    assert f'<option value="{asha.id}">Asha Rao</option>' in html
    assert "Ravi Iyer" not in html  # a user, but nobody's collector
    html = client.get(f"{base}/report?collector={asha.id}").text
    assert "Acme Builders" in html and "Zenith Exports" not in html
