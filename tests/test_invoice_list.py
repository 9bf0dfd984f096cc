"""The invoice list: filters in the URL (status incl. derived "overdue" and "open", client,
search by number or client name, issue dates), newest first with keyset pages, outstanding per
row after payments and credit notes, totals of the filtered set, and the pages."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import event

from app.clients.models import Client
from app.invoicing import credits, listing, services
from app.invoicing.listing import InvoiceFilters, list_invoices
from app.payments import services as payments
from app.projects.models import Milestone, Project
from tests.helpers import tenant_session

MH_GSTIN = "27AAPFU0939F1ZV"
TODAY = date(2027, 4, 20)


@pytest.fixture
def books(db_session, make_tenant, make_user):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)
    counter = iter(range(1, 1000))

    def client(name):
        c = Client(
            full_name=name,
            short_name=name.split()[0],
            location="local",
            country="IN",
            currency="INR",
            gstin=MH_GSTIN,
            payment_terms="net",
            payment_days=30,
        )
        session.add(c)
        session.flush()
        return c

    def invoice(customer, amount="1000.00", issued_on=None):
        n = next(counter)
        proj = Project(
            client_id=customer.id,
            name=f"Project {n}",
            contract_value=Decimal(amount),
            currency="INR",
            start_date=date(2027, 1, 4),
        )
        session.add(proj)
        session.flush()
        milestone = Milestone(
            project_id=proj.id,
            position=1,
            name="Stage",
            amount=Decimal(amount),
            due_rule="date",
            due_date=date(2027, 2, 1),
            status="completed",
        )
        session.add(milestone)
        session.flush()
        inv = services.draft_from_milestones(session, tenant, proj, [milestone], "0", "9983")
        if issued_on:
            services.issue(session, tenant, inv, issued_on)
        return inv

    return tenant, session, client, invoice, owner


def _numbers(page):
    return [row.invoice.number or f"draft {row.invoice.id}" for row in page.rows]


def test_filters_totals_and_outstanding(books):
    tenant, session, client, invoice, _ = books
    acme, zenith = client("Acme Builders"), client("Zenith Foods")
    old = invoice(acme, "1000.00", date(2027, 1, 5))  # due 4 Feb: past due on TODAY
    part = invoice(acme, "500.00", date(2027, 3, 1))  # due 31 Mar: past due, partly paid
    fresh = invoice(zenith, "300.00", date(2027, 4, 15))  # not due yet
    draft = invoice(zenith, "50.00")
    payment = payments.record_payment(
        session, acme, {"amount": "200.00", "received_on": "2027-03-10", "method": "cash"}
    )
    payments.allocate(session, payment, [(part.id, "200.00", "", "", "")])
    credits.issue_credit_note(session, tenant, fresh, "100.00", "Discount", TODAY)

    everything = list_invoices(session, InvoiceFilters(), TODAY)
    assert [r.invoice.id for r in everything.rows] == [draft.id, fresh.id, part.id, old.id]
    rows = {r.invoice.id: r for r in everything.rows}
    assert rows[draft.id].outstanding is None and rows[fresh.id].outstanding == Decimal("200.00")
    assert rows[part.id].outstanding == Decimal("300.00") and rows[part.id].days_overdue > 0
    assert rows[old.id].days_overdue == (TODAY - old.due_date).days
    assert rows[fresh.id].days_overdue == 0
    [totals] = everything.totals
    assert (totals.count, totals.total, totals.outstanding) == (
        4,
        Decimal("1850.00"),
        Decimal("1500.00"),
    )

    def ids(**args):
        return {
            r.invoice.id for r in list_invoices(session, InvoiceFilters.from_args(args), TODAY).rows
        }

    assert ids(status="overdue") == {old.id, part.id}  # derived from the dates
    assert ids(status="open") == {old.id, part.id, fresh.id}
    assert ids(status="draft") == {draft.id}
    assert ids(status="partly_paid") == {part.id}
    assert ids(client_id=str(zenith.id)) == {fresh.id, draft.id}
    assert ids(q="zenith") == {fresh.id, draft.id}
    assert ids(q=old.number) == {old.id} and ids(q="00001") == {old.id, fresh.id}  # new FY
    assert ids(**{"from": "2027-02-01", "to": "2027-03-31"}) == {part.id}
    assert ids(status="bogus", client_id="x", **{"from": "nope"}) == set(rows)  # ignored
    overdue = list_invoices(session, InvoiceFilters(status="overdue"), TODAY).totals[0]
    assert (overdue.count, overdue.outstanding) == (2, Decimal("1300.00"))
    assert InvoiceFilters.from_args(
        {"status": "open", "q": " x ", "from": "2027-01-01"}
    ).as_args() == {"status": "open", "q": "x", "from": "2027-01-01"}


def test_keyset_pages_cover_everything_once_in_a_fixed_number_of_queries(books, db_session):
    tenant, session, client, invoice, _ = books
    acme = client("Acme Builders")
    made = [invoice(acme, "10.00", date(2027, 1, 5 + i % 3)) for i in range(7)]
    made += [invoice(acme, "10.00") for _ in range(2)]
    seen, after, pages = [], None, 0
    statements = []
    listener = lambda *a: statements.append(1)  # noqa: E731
    event.listen(session.get_bind(), "before_cursor_execute", listener)
    try:
        while True:
            statements.clear()
            page = list_invoices(session, InvoiceFilters(), TODAY, after=after, page_size=4)
            # Rows, what each was paid and credited (one statement), totals: no N+1.
            assert len(statements) <= 3
            seen += [r.invoice.id for r in page.rows]
            pages += 1
            if page.next_cursor is None:
                break
            after = page.next_cursor
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", listener)
    assert pages == 3 and sorted(seen) == sorted(i.id for i in made) and len(set(seen)) == 9
    keys = [(services.get_invoice(session, i).issue_date or date.max, i) for i in seen]
    assert keys == sorted(keys, reverse=True)


def test_the_list_page_the_nav_and_the_client_tab(books, client, login):
    tenant, session, make_client, invoice, owner = books
    acme = make_client("Acme Builders")
    issued = invoice(acme, "1000.00", date(2026, 9, 1))  # due 1 Oct 2026: past due now
    session.commit()
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/invoices/?status=open")
    assert page.status_code == 200
    assert 'aria-current="page">Invoices</a>' in page.text
    assert issued.number in page.text and "Acme Builders" in page.text
    assert "overdue</span>" in page.text  # days overdue next to the due date
    fragment = client.get(f"/t/{tenant.slug}/invoices/?q=acme", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert issued.number in fragment.text
    none = client.get(f"/t/{tenant.slug}/invoices/?q=nobody-at-all").text
    assert "No invoices match these filters." in none
    detail = client.get(f"/t/{tenant.slug}/clients/{acme.id}?tab=invoices").text
    assert f"/t/{tenant.slug}/invoices/client/{acme.id}" in detail
    tab = client.get(f"/t/{tenant.slug}/invoices/client/{acme.id}").text
    assert f"/t/{tenant.slug}/invoices/?client_id={acme.id}" in tab and issued.number in tab


def test_the_list_page_and_client_tab_read_no_more_for_more_rows(books, client, login):
    """The list reads only the columns its rows show (LISTED_COLUMNS): nothing the page or the
    client's tab draws may load an invoice's other columns row by row."""
    tenant, session, make_client, invoice, owner = books
    few, many = make_client("Acme Builders"), make_client("Zenith Foods")
    for books_client, issued in ((few, 1), (many, 5)):
        for day in range(issued):
            invoice(books_client, "100.00", date(2027, 1, 5 + day))
        invoice(books_client, "50.00")  # a draft too
    session.commit()
    login(client, owner)
    engine = session.get_bind()

    def statements_for(client_id: int) -> int:
        statements = []
        listener = lambda *a: statements.append(1)  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            for url in (f"invoices/?client_id={client_id}", f"invoices/client/{client_id}"):
                page = client.get(f"/t/{tenant.slug}/{url}")
                assert page.status_code == 200 and "Draft" in page.text
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return len(statements)

    assert statements_for(few.id) == statements_for(many.id)


def test_a_filter_keeping_more_than_the_cap_says_so_instead_of_adding_up(
    books, client, login, monkeypatch
):
    """A filtered view adds up its invoices only when there are at most COUNT_CAP of them
    (counting stops there); past that the page says "N+ invoices match". Unfiltered, "open"
    and a status owing nothing read the kept totals: exact whatever the size."""
    tenant, session, make_client, invoice, owner = books
    acme, zenith = make_client("Acme Builders"), make_client("Zenith Foods")
    for _ in range(3):
        invoice(acme, "100.00", date(2027, 1, 5))
    invoice(zenith, "40.00", date(2027, 1, 5))
    invoice(zenith, "7.00")  # a draft
    session.commit()
    monkeypatch.setattr(listing, "COUNT_CAP", 3)

    assert list_invoices(session, InvoiceFilters(client_id=acme.id), TODAY).totals[0].count == 3
    overdue = list_invoices(session, InvoiceFilters(status="overdue"), TODAY)
    assert overdue.count_is_capped and overdue.totals == [] and len(overdue.rows) == 4
    [everything] = list_invoices(session, InvoiceFilters(), TODAY).totals
    assert (everything.count, everything.total, everything.outstanding) == (
        5,
        Decimal("347.00"),
        Decimal("340.00"),
    )
    [drafts] = list_invoices(session, InvoiceFilters(status="draft"), TODAY).totals
    assert (drafts.count, drafts.total, drafts.outstanding) == (1, Decimal("7.00"), Decimal("0"))

    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/invoices/?from=2027-01-01").text  # 4 issued
    assert "3+ invoices match." in page and "Narrow the filters" in page
    assert "4 invoices" not in page
    assert "5 invoices" in client.get(f"/t/{tenant.slug}/invoices/").text


def test_a_search_read_by_its_matches_pages_as_the_ordered_walk_does(books, monkeypatch):
    """A rare term's page is read from its matches' ids; a common one walks the list. Either
    way the same invoices, in the same order, page after page."""
    tenant, session, client, invoice, _ = books
    acme, zenith = client("Acme Builders"), client("Zenith Traders")
    for day in range(1, 8):
        invoice(acme, "10.00", date(2027, 1, day))
        invoice(zenith, "10.00", date(2027, 1, day))

    def pages():
        seen, after = [], None
        while True:
            page = list_invoices(session, InvoiceFilters(q="acme"), TODAY, after, page_size=3)
            seen.append([row.invoice.id for row in page.rows])
            if page.next_cursor is None:
                return seen
            after = page.next_cursor

    read_by_matches = pages()
    monkeypatch.setattr(listing, "SEARCH_NARROWS", 0)  # every search walks the list now
    walked = pages()
    assert read_by_matches == walked
    assert sum(len(page) for page in walked) == 7
