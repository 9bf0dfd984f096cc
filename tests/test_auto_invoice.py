"""Invoices raised by themselves when a milestone is done, for projects that ask for it; new
projects take the workspace's approval and auto-invoice defaults."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.clients.models import Client
from app.invoicing.models import Invoice
from app.projects import services
from app.projects.models import Milestone
from app.settings.services import workspace_settings
from tests.helpers import csrf_token_from, tenant_session

INDIA = services.Calendar("IN")


@pytest.fixture
def workspace(client, db_session, make_tenant, make_user, login):
    """A Karnataka workspace, signed in as its owner, and a factory of projects with two
    planned milestones of 600 and 400 for a client (with or without a known state)."""
    owner = make_user()
    tenant = make_tenant(owner=owner, region="Karnataka")
    login(client, owner)
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/").text)
    session = tenant_session(db_session, tenant)

    def project(auto_invoice: str, approval: bool = False, region: str | None = "29"):
        customer = Client(
            full_name="Kaveri Builders",
            short_name="Kaveri",
            location="local",
            country="IN",
            currency="INR",
            region=region,
            payment_terms="net",
            payment_days=30,
        )
        session.add(customer)
        session.flush()
        made = services.create_project(
            session,
            customer,
            {
                "name": "Tower A",
                "contract_value": "1000",
                "start_date": "2027-01-04",
                "requires_approval": "1" if approval else "",
                "auto_invoice": auto_invoice,
            },
            owner.id,
            "INR",
        )
        plan = [
            services.PlannedMilestone(
                name=name, percentage=Decimal(share), due_rule="days_after_start", due_days=30
            )
            for name, share in (("Design", "60"), ("Build", "40"))
        ]
        services.replace_plan(session, made, plan, INDIA)
        first = session.scalars(
            select(Milestone).where(Milestone.project_id == made.id).order_by(Milestone.position)
        ).first()
        return made, first

    def move(project_, milestone, status):
        return client.post(
            f"/t/{tenant.slug}/projects/{project_.id}/milestones/{milestone.id}/status",
            data={"csrf_token": token, "status": status},
        )

    def fresh():
        # A request leaves the shared test connection unbound: read with a new bound session.
        return tenant_session(db_session, tenant)

    return tenant, fresh, project, move


def invoices_of(session, project) -> list[Invoice]:
    return list(session.scalars(select(Invoice).where(Invoice.project_id == project.id)))


def test_completing_a_milestone_issues_its_invoice(workspace):
    tenant, fresh, project, move = workspace
    made, first = project("issue")
    move(made, first, "in_progress")
    done = move(made, first, "completed")
    session = fresh()
    [invoice] = invoices_of(session, made)
    assert done.headers["Location"].endswith(f"/invoices/{invoice.id}")
    assert invoice.status == "issued" and invoice.number
    assert (invoice.subtotal, invoice.cgst, invoice.sgst) == (
        Decimal("600.00"),
        Decimal("54.00"),
        Decimal("54.00"),
    )
    assert session.get(Milestone, first.id).status == "invoiced"


def test_with_approval_the_draft_comes_on_approval_not_on_completion(workspace):
    tenant, fresh, project, move = workspace
    made, first = project("draft", approval=True)
    move(made, first, "in_progress")
    move(made, first, "completed")
    assert invoices_of(fresh(), made) == []
    move(made, first, "approved")
    [invoice] = invoices_of(fresh(), made)
    assert (invoice.status, invoice.number) == ("draft", None)


def test_projects_that_do_not_ask_get_no_invoice(workspace):
    tenant, fresh, project, move = workspace
    made, first = project("off")
    move(made, first, "in_progress")
    move(made, first, "completed")
    assert invoices_of(fresh(), made) == []


def test_a_refused_invoice_leaves_the_milestone_done_and_says_why(workspace, client):
    tenant, fresh, project, move = workspace
    made, first = project("issue", region=None)  # no state: the GST split cannot be known
    move(made, first, "in_progress")
    done = move(made, first, "completed")
    assert done.headers["Location"].endswith(f"/projects/{made.id}")
    session = fresh()
    assert session.scalar(select(func.count()).select_from(Invoice)) == 0
    assert session.get(Milestone, first.id).status == "completed"
    page = client.get(done.headers["Location"]).text
    assert "The invoice was not raised" in page


def test_new_projects_take_the_workspace_defaults(workspace, client, db_session):
    tenant, fresh, project, move = workspace
    made, _ = project("off")
    stored = workspace_settings(db_session, tenant.id)
    stored.approval_required, stored.auto_invoice = True, "issue"
    db_session.commit()
    page = client.get(f"/t/{tenant.slug}/projects/new?client_id={made.client_id}").text
    assert 'name="requires_approval" value="1" checked' in page
    assert '<option value="issue" selected>' in page
