"""Invoices from milestones: the GST regime from the supplier's and client's states, totals that
add up to their lines, numbers only on issue and consecutive per financial year, due dates on
business days, one live invoice per milestone, void keeps the number, and the pages."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.clients.models import Client
from app.invoicing import services
from app.invoicing.models import Invoice
from app.projects.models import Milestone, MilestoneTransition, Project
from tests.helpers import csrf_token_from, tenant_session

MH_GSTIN = "27AAPFU0939F1ZV"  # Maharashtra
KA_GSTIN = "29AAPFU0939F1ZV"  # Karnataka (the shape is what matters here)


@pytest.fixture
def books(db_session, make_tenant, make_user):
    """A tenant in Maharashtra and a factory of projects with done milestones."""
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)
    counter = iter(range(1, 1000))

    def project(amounts=("1000.00",), country="IN", gstin=MH_GSTIN, region=None,
                status="completed", approval=False, terms=("net", 30)):  # fmt: skip
        n = next(counter)
        client = Client(full_name=f"Client {n}", short_name=f"C{n}",
                        location="local" if country == "IN" else "foreign", country=country,
                        currency="INR", gstin=gstin, region=region, payment_terms=terms[0],
                        payment_days=terms[1])  # fmt: skip
        session.add(client)
        session.flush()
        value = sum(Decimal(a) for a in amounts)
        proj = Project(client_id=client.id, name=f"Project {n}", contract_value=value,
                       currency="INR", start_date=date(2027, 1, 4),
                       requires_approval=approval)  # fmt: skip
        session.add(proj)
        session.flush()
        milestones = [Milestone(project_id=proj.id, position=i, name=f"Stage {i}",
                                amount=Decimal(a), due_rule="date", due_date=date(2027, 2, 1),
                                status=status) for i, a in enumerate(amounts, start=1)]  # fmt: skip
        session.add_all(milestones)
        session.flush()
        return proj, milestones

    return tenant, session, project


def test_intra_state_supply_gets_cgst_and_sgst_that_add_up(books):
    tenant, session, project = books
    proj, milestones = project(("100.05", "333.33", "1000.00"))
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "998311")
    assert invoice.tax_regime == "intra" and invoice.place_of_supply == "27"
    first = invoice.lines[0]  # 18% of 100.05 = 18.009 -> 18.01; CGST carries the odd paisa
    assert (first.cgst, first.sgst, first.igst) == (Decimal("9.01"), Decimal("9.00"), 0)
    assert invoice.subtotal == Decimal("1433.38")
    assert invoice.cgst == sum(line.cgst for line in invoice.lines)
    assert invoice.sgst == sum(line.sgst for line in invoice.lines)
    assert invoice.total == sum(line.total for line in invoice.lines)
    assert invoice.total == invoice.subtotal + invoice.cgst + invoice.sgst
    assert invoice.igst == invoice.other_tax == 0
    assert invoice.number is None and invoice.status == "draft"
    assert all(line.hsn_sac == "998311" for line in invoice.lines)


def test_inter_state_supply_gets_igst_and_the_amount_in_words(books):
    tenant, session, project = books
    proj, milestones = project(("1000.00",), gstin=KA_GSTIN)
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    assert (invoice.tax_regime, invoice.place_of_supply) == ("inter", "29")
    assert (invoice.igst, invoice.cgst, invoice.sgst) == (Decimal("180.00"), 0, 0)
    assert invoice.total == Decimal("1180.00")
    assert invoice.amount_in_words == "Rupees One Thousand One Hundred Eighty Only"


def test_client_without_gstin_is_placed_by_its_state(books):
    tenant, session, project = books
    proj, milestones = project(gstin=None, region="Maharashtra")
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    assert invoice.tax_regime == "intra" and invoice.recipient_gstin is None


def test_foreign_client_is_a_zero_rated_export(books):
    tenant, session, project = books
    proj, milestones = project(("2500.50",), country="US", gstin=None)
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    assert invoice.tax_regime == "export" and invoice.place_of_supply is None
    assert invoice.cgst == invoice.sgst == invoice.igst == invoice.other_tax == 0
    assert invoice.total == invoice.subtotal == Decimal("2500.50")


def test_numbers_only_on_issue_consecutive_in_issue_order(books):
    tenant, session, project = books
    proj, milestones = project(("100", "200"))
    first = services.draft_from_milestones(session, tenant, proj, milestones[:1], "18", "9983")
    second = services.draft_from_milestones(session, tenant, proj, milestones[1:], "18", "9983")
    assert first.number is None and second.number is None
    services.issue(session, tenant, second, date(2027, 2, 1))
    services.issue(session, tenant, first, date(2027, 2, 2))
    assert (second.number, first.number) == ("INV/26-27/00001", "INV/26-27/00002")
    assert first.fiscal_year == second.fiscal_year == "2026-27"
    assert all(m.status == "invoiced" for m in milestones)
    moves = session.scalars(select(MilestoneTransition).where(
        MilestoneTransition.to_status == "invoiced")).all()  # fmt: skip
    assert {(m.milestone_id, m.from_status) for m in moves} == {
        (milestones[0].id, "completed"), (milestones[1].id, "completed")}  # fmt: skip
    # A new financial year starts again at 1.
    proj2, later = project(("50",))
    april = services.draft_from_milestones(session, tenant, proj2, later, "18", "9983")
    services.issue(session, tenant, april, date(2027, 4, 1))
    assert april.number == "INV/27-28/00001"
    with pytest.raises(services.InvoiceError, match="Only drafts"):
        services.issue(session, tenant, april, date(2027, 4, 2))


@pytest.mark.parametrize(("today", "due"), [
    (date(2026, 12, 27), date(2027, 1, 27)),  # +30 = 26 Jan 2027, Republic Day
    (date(2027, 2, 4), date(2027, 3, 8)),  # +30 = Saturday 6 Mar 2027
])  # fmt: skip
def test_due_date_from_net_30_rolls_to_a_business_day(books, today, due):
    tenant, session, project = books
    proj, milestones = project(terms=("net", 30))
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    services.issue(session, tenant, invoice, today)
    assert (invoice.issue_date, invoice.due_date) == (today, due)


def test_due_date_rules():
    assert services.due_date("mfi", 30, date(2027, 3, 10), "IN").day == date(2027, 4, 30)
    assert services.due_date("immediate", None, date(2027, 3, 3), "IN").day == date(2027, 3, 3)
    assert services.due_date("immediate", None, date(2027, 3, 10), "IN").day == date(2027, 3, 11)
    custom = services.due_date("custom", None, date(2027, 3, 13), "IN")
    assert custom.day == date(2027, 3, 15) and custom.note == "as agreed"  # Saturday -> Monday


def test_a_milestone_is_on_one_live_invoice_at_most(books):
    tenant, session, project = books
    proj, milestones = project()
    draft = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    with pytest.raises(services.InvoiceError, match="Already on an invoice"):
        services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    services.void(session, draft)  # a void draft frees the milestone
    again = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    services.issue(session, tenant, again, date(2027, 2, 1))
    with pytest.raises(services.InvoiceError, match="only completed milestones"):
        services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")


def test_planned_milestones_are_refused_with_a_clear_message(books):
    tenant, session, project = books
    proj, milestones = project(status="planned")
    refusal = "Stage 1 is planned: only completed milestones can be invoiced"
    with pytest.raises(services.InvoiceError, match=refusal):
        services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    approval, waiting = project(status="completed", approval=True)
    with pytest.raises(services.InvoiceError, match="needs approval first"):
        services.draft_from_milestones(session, tenant, approval, waiting, "18", "9983")


def test_void_keeps_the_number_and_frees_the_milestones(books):
    tenant, session, project = books
    proj, milestones = project(approval=True, status="approved")
    invoice = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    services.issue(session, tenant, invoice, date(2027, 2, 1))
    number = invoice.number
    services.void(session, invoice)
    assert (invoice.status, invoice.number) == ("void", number)
    assert milestones[0].status == "approved"
    with pytest.raises(services.InvoiceError, match="cannot be voided"):
        services.void(session, invoice)
    replacement = services.draft_from_milestones(session, tenant, proj, milestones, "18", "9983")
    services.issue(session, tenant, replacement, date(2027, 2, 2))
    assert replacement.number == "INV/26-27/00002"  # the voided number is not used again


def test_pages_for_finance_and_a_viewer_cannot_post(
    app, client, db_session, make_tenant, make_user, add_member, login
):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    finance, viewer = make_user(), make_user()
    add_member(tenant, finance, role="finance")
    add_member(tenant, viewer, role="viewer")
    session = tenant_session(db_session, tenant)
    customer = Client(full_name="Kaveri Builders", short_name="Kaveri", location="local",
                      country="IN", currency="INR", gstin=KA_GSTIN, payment_terms="net",
                      payment_days=30)  # fmt: skip
    session.add(customer)
    session.flush()
    proj = Project(client_id=customer.id, name="Tower A", contract_value=Decimal("1000"),
                   currency="INR", start_date=date(2027, 1, 4))  # fmt: skip
    session.add(proj)
    session.flush()
    done = Milestone(project_id=proj.id, position=1, name="Foundation", amount=Decimal("1000"),
                     due_rule="date", due_date=date(2027, 2, 1), status="completed")  # fmt: skip
    session.add(done)
    session.commit()

    login(client, finance)
    project_page = client.get(f"/t/{tenant.slug}/projects/{proj.id}").text
    assert "Raise invoice" in project_page
    token = csrf_token_from(project_page)
    created = client.post(f"/t/{tenant.slug}/invoices/from-project/{proj.id}",
                          data={"csrf_token": token, "milestone_ids": done.id})  # fmt: skip
    assert created.status_code == 303
    url = created.headers["Location"]
    page = client.get(url)
    assert page.status_code == 200
    assert "Draft — not a tax invoice yet" in page.text and ">Issue</button>" in page.text
    assert "IGST" in page.text and "CGST" not in page.text
    assert "29 – Karnataka" in page.text and KA_GSTIN in page.text
    assert "Rupees One Thousand One Hundred Eighty Only" in page.text
    assert "Tax payable on reverse charge</dt><dd>No" in page.text
    invoice_id = int(url.rstrip("/").rsplit("/", 1)[1])

    other = app.test_client()
    login(other, viewer)
    seen = other.get(url)
    assert seen.status_code == 200 and ">Issue</button>" not in seen.text
    viewer_token = csrf_token_from(other.get(f"/t/{tenant.slug}/projects/{proj.id}").text)
    for action in ("issue", "void"):
        refused = other.post(f"{url}/{action}", data={"csrf_token": viewer_token})
        assert refused.status_code == 403
    assert other.post(f"/t/{tenant.slug}/invoices/from-project/{proj.id}",
                      data={"csrf_token": viewer_token, "milestone_ids": done.id}
                      ).status_code == 403  # fmt: skip

    issued = client.post(f"{url}/issue", data={"csrf_token": token})
    assert issued.status_code == 303
    page = client.get(url).text
    assert "Tax invoice INV/26-27/00001" in page or "Tax invoice INV/" in page
    assert "Draft — not a tax invoice yet" not in page
    check = tenant_session(db_session, tenant)
    stored = check.get(Invoice, invoice_id)
    assert stored.status == "issued" and stored.number.startswith("INV/")
    assert check.get(Milestone, done.id).status == "invoiced"
