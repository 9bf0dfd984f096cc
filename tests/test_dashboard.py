"""The workspace dashboard (issue 16, finding 3): outstanding and overdue with the aging
buckets, cash this month against last, DSO and its trend, promises due today and broken,
notices waiting for approval, top overdue clients and a collector's work, each figure linking
to the list behind it with its filter; tiles only for what the role may see; first steps in
an empty workspace instead of zeros."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, insert, select, text, true

from app.aging.models import AgingSnapshot
from app.collections.models import CollectionNotice, PromiseToPay
from app.core.clock import local_date
from tenants import roles
from tenants.binding import quoted_schema
from tests.helpers import tenant_session
from tests.test_aging import Books

# The columns a draft is copied by (its id and times are the table's own).
NOTICE_COPIED = (
    "client_id",
    "policy_id",
    "level_id",
    "level_number",
    "level_name",
    "channel",
    "currency",
    "status",
    "run_date",
    "amount_due",
)


def month_starts(today):
    this_month = today.replace(day=1)
    return this_month, (this_month - timedelta(days=1)).replace(day=1)


def _tile(html: str, tile_id: str) -> str:
    found = re.search(rf'<article class="tile" id="{tile_id}">(.*?)</article>', html, re.S)
    assert found, f"no {tile_id} tile"
    return found.group(1)


def _count(tile: str, href: str) -> int:
    """The figure next to the link to `href` in a tile's list."""
    found = re.search(rf'<a href="{re.escape(href)}">[^<]*</a><strong>(\d+)</strong>', tile)
    assert found, f"no figure linking to {href}"
    return int(found.group(1))


@pytest.fixture
def books_open(db_session, make_tenant, make_user, add_member, make_payment, make_notice):
    owner, collector = make_user(), make_user(full_name="Kiran Collector")
    tenant = make_tenant(owner=owner)
    add_member(tenant, collector, role="collector")
    books = Books(db_session, tenant)
    session = books.session
    today = local_date(tenant.time_zone)
    this_month, last_month = month_starts(today)
    acme = books.client("Acme Builders", collector_user_id=collector.id)
    zen = books.client("Zenith Exports", currency="USD")
    big = books.invoice(acme, "150000.00", due=today - timedelta(days=45))  # 31-60
    books.invoice(acme, "2500.50", due=today + timedelta(days=10))  # current, issued later
    late = books.invoice(acme, "10000.00", due=today - timedelta(days=120))  # 90+
    books.invoice(zen, "1200.00", due=today - timedelta(days=5))  # 1-30
    make_payment(session, acme, "4000.00", this_month.isoformat(), allocate_to=[late])
    make_payment(session, acme, "7000.00", last_month.isoformat(), reference="UTR2")
    make_notice(session, acme, [big], status="draft")
    make_notice(session, acme, [late], status="draft")
    make_notice(session, acme, [late], channel="sms", status="approved")
    for days, status in ((0, "open"), (3, "open"), (-5, "broken"), (-60, "broken")):
        session.add(
            PromiseToPay(
                client_id=acme.id,
                amount=Decimal("1000.00"),
                currency="INR",
                promised_on=today + timedelta(days=days),
                status=status,
            )
        )
    # Where the trend's window began: DSO was 80 ten days ago.
    session.add(
        AgingSnapshot(
            snapshot_on=today - timedelta(days=10),
            currency="INR",
            buckets=[30, 60, 90],
            amounts=[0, 0, 0, 0, 0],
            outstanding=Decimal("1"),
            overdue=Decimal("0"),
            credit_sales_90=Decimal("1"),
            dso=Decimal("80.0"),
        )
    )
    acme_id = acme.id
    session.commit()
    return tenant, owner, collector, acme_id, today


def test_dashboard_shows_receivables_cash_dso_and_top_clients_linked(client, login, books_open):
    tenant, owner, collector, acme_id, today = books_open
    login(client, owner)
    html = client.get(f"/t/{tenant.slug}/").text
    base = f"/t/{tenant.slug}"

    receivables = _tile(html, "receivables")
    assert "Outstanding and overdue amounts will appear here" not in html
    # INR: 1,50,000 + 2,500.50 + 6,000 outstanding; 1,50,000 + 6,000 overdue. USD apart.
    assert (
        f'<a href="{base}/aging/report?currency=INR"><strong>₹1,58,500.50</strong>' in receivables
    )
    assert f'<a href="{base}/invoices/?status=overdue"><strong>₹1,56,000.00</strong>' in receivables
    assert "$1,200.00" in receivables
    buckets = re.findall(r'bucket=(\d)">([^<]+)</a><span>([^<]+)</span>', receivables)
    inr = [(b, label, amount) for b, label, amount in buckets if "₹" in amount]
    assert inr == [
        ("0", "Current", "₹2,500.50"),
        ("1", "1–30 days", "₹0.00"),
        ("2", "31–60 days", "₹1,50,000.00"),
        ("3", "61–90 days", "₹0.00"),
        ("4", "90+ days", "₹6,000.00"),
    ]
    assert f"{base}/aging/report?currency=INR&amp;bucket=2" in receivables
    # DSO: 1,58,500.50 outstanding over 1,50,000 of sales in 90 days; up from 80 ten days ago.
    assert "<strong>95.1 days</strong>" in receivables
    assert "up from 80.0 on" in receivables

    top = _tile(html, "top-overdue")
    assert top.index("Acme Builders") < top.index("Zenith Exports")
    assert f"{base}/aging/clients/{acme_id}/invoices?currency=INR" in top
    assert "₹1,56,000.00" in top and "$1,200.00" in top

    cash = _tile(html, "cash")
    this_month, last_month = month_starts(today)
    assert f'{base}/payments/?from={this_month.isoformat()}">This month' in cash
    end = (this_month - timedelta(days=1)).isoformat()
    assert f"{base}/payments/?from={last_month.isoformat()}&amp;to={end}" in cash
    assert re.search(r"This month</a></dt>\s*<dd><strong>₹4,000.00</strong>", cash)
    assert re.search(r"\)</a></dt>\s*<dd>₹7,000.00</dd>", cash)

    collections = _tile(html, "collections")
    assert _count(collections, f"{base}/notices/?status=draft") == 2
    assert _count(collections, f"{base}/promises/?view=due_today") == 1
    assert _count(collections, f"{base}/promises/?view=broken") == 1  # the one 60 days ago is old
    assert "First steps" not in html


def test_the_lists_behind_the_figures_apply_the_filter(client, login, books_open):
    tenant, owner, *_ = books_open
    login(client, owner)
    due_today = client.get(f"/t/{tenant.slug}/promises/?view=due_today")
    assert due_today.status_code == 200 and "Due today" in due_today.text
    assert due_today.text.count("₹1,000.00") == 1  # the one due in 3 days is not listed


def test_past_a_hundred_drafts_the_dashboard_says_100_plus(client, login, db_session, books_open):
    """A daily run that drafted hundreds of notices is not counted row by row on every visit:
    the figure stops at 100+ (the list behind it counts them all)."""
    tenant, owner, *_ = books_open
    session = tenant_session(db_session, tenant)

    def copy_a_draft(times: int) -> None:
        columns = [CollectionNotice.__table__.c[name] for name in NOTICE_COPIED]
        draft = select(*columns).where(CollectionNotice.status == "draft").limit(1).subquery()
        copies = (
            select(*draft.c)
            .select_from(draft)
            .join(func.generate_series(1, times).table_valued("n"), true())
        )
        session.execute(insert(CollectionNotice).from_select(list(NOTICE_COPIED), copies))
        session.commit()

    login(client, owner)
    copy_a_draft(98)
    collections = _tile(client.get(f"/t/{tenant.slug}/").text, "collections")
    assert _count(collections, f"/t/{tenant.slug}/notices/?status=draft") == 100  # 2 + 98
    copy_a_draft(1)
    collections = _tile(client.get(f"/t/{tenant.slug}/").text, "collections")
    assert re.search(r'status=draft">[^<]*</a><strong>100\+</strong>', collections)


def test_a_collector_sees_their_work(client, login, books_open):
    tenant, owner, collector, acme_id, today = books_open
    login(client, collector)
    html = client.get(f"/t/{tenant.slug}/").text
    work = _tile(html, "my-work")
    # Acme (theirs) broke a promise 5 days ago and nobody has been in touch for 14 days.
    assert _count(work, f"/t/{tenant.slug}/work/#broken_promises") == 1
    assert _count(work, f"/t/{tenant.slug}/work/#no_contact") == 1
    assert "Calls and visits due" not in work  # empty sections are left out


def test_a_viewer_without_notices_permission_sees_no_collections_tiles(
    client, login, books_open, make_user, add_member, monkeypatch
):
    tenant, *_ = books_open
    viewer = make_user()
    add_member(tenant, viewer, role="viewer")
    login(client, viewer)
    html = client.get(f"/t/{tenant.slug}/").text
    assert 'id="collections"' in html and 'id="my-work"' not in html  # viewers do not collect

    monkeypatch.setitem(roles.PERMISSIONS, "viewer", roles.PERMISSIONS["viewer"] - {"notices.view"})
    html = client.get(f"/t/{tenant.slug}/").text
    assert 'id="receivables"' in html
    assert 'id="collections"' not in html and "/notices/" not in html and "/promises/" not in html


def test_an_empty_workspace_shows_first_steps_not_zeros(client, login, make_tenant, make_user):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    html = client.get(f"/t/{tenant.slug}/").text
    steps = re.search(r'id="first-steps">(.*?)</section>', html, re.S).group(1)
    assert f'href="/t/{tenant.slug}/clients/new"' in steps
    assert f'href="/t/{tenant.slug}/invoices/new"' in steps
    assert f'href="/t/{tenant.slug}/opening-balances/"' in steps
    assert 'id="receivables"' not in html and 'id="cash"' not in html
    assert "₹0.00" not in html


def test_top_overdue_clients_are_the_five_owing_most_past_due(
    db_session, client, login, make_tenant, make_user
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    books = Books(db_session, tenant)
    today = local_date(tenant.time_zone)
    for number, amount in enumerate(("500", "7000", "300", "9000", "100", "8000", "2000")):
        books.invoice(books.client(f"Client {number}"), amount, due=today - timedelta(days=40))
    owing_later = books.client("Not yet due")
    books.invoice(owing_later, "99999", due=today + timedelta(days=5))
    books.session.commit()
    login(client, owner)
    top = _tile(client.get(f"/t/{tenant.slug}/").text, "top-overdue")
    assert re.findall(r">(Client \d|Not yet due)</a>", top) == [
        "Client 3",
        "Client 5",
        "Client 1",
        "Client 6",
        "Client 0",
    ]


def test_the_dashboards_statements_are_planned_once_per_connection(
    client, login, db_session, books_open
):
    """The dashboard's fixed statements are prepared on the server (the work queue's counts
    cost more to plan than to run), and so are the aging page's and report's, an invoice's and
    a client's page's, and the lists' (clients, invoices, notices, messages) while they are not
    searching; a search's statements are not (a generic plan cannot use the trigram index)."""

    def prepared() -> set[str]:
        found = db_session.execute(text("SELECT statement FROM pg_prepared_statements"))
        return {statement for (statement,) in found}

    def new_on(url: str) -> set[str]:
        before = prepared()
        assert client.get(f"/t/{tenant.slug}/{url}").status_code == 200
        return prepared() - before

    tenant, owner, _, acme_id, _ = books_open
    login(client, owner)
    assert any("aging_sales" in statement for statement in new_on(""))
    assert new_on("clients/?q=Acme") == set()
    assert new_on("invoices/?q=Acme") == set()
    assert new_on("") == set()  # the second visit runs what it prepared
    # The aging page shares the dashboard's statements; its trend's is its own.
    assert any("aging_snapshots.buckets" in statement for statement in new_on("aging/"))
    invoice_id = db_session.execute(
        text(f"SELECT min(id) FROM {quoted_schema(tenant.schema)}.invoices")
    ).scalar()
    assert any("invoice_lines" in statement for statement in new_on(f"invoices/{invoice_id}"))
    assert any("industries" in statement for statement in new_on(f"clients/{acme_id}"))
    assert any("client_counts" in statement for statement in new_on("clients/"))
    assert any("invoice_totals" in statement for statement in new_on("invoices/"))
    assert new_on("aging/report?q=Acme") == set()
    assert new_on("aging/report?sort=name") != set()  # a sort the pages before had not run
    assert new_on("notices/?client_q=Acme") == set()
    assert new_on("notices/") != set()
    assert new_on("messages/?q=acme") == set()
    assert new_on("messages/") != set()
