"""Raising a milestone's invoice by itself when the milestone is done, for projects that ask
for it (`Project.auto_invoice`: "draft" or "issue"; new projects take the workspace default).

A milestone is done when it reaches the status invoices are raised from: "approved" on a
project that requires approval, else "completed"; projects announce it
(`signals.milestone_done`) and `app.invoicing.hooks` answers with what is raised here. The
invoice is made inside a savepoint: if the rules refuse it (the client's state is unknown,
say), nothing of it is kept, the milestone stays done, and the person is told why so they can
raise it by hand once it is fixed."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.core.clock import tenant_today
from app.core.signals import MilestoneInvoice
from app.invoicing import services
from app.projects.models import Milestone, Project
from tenants.models import Tenant


def invoice_when_done(
    session: Session, tenant_id: int, project_id: int, milestone_id: int, user_id: int | None
) -> MilestoneInvoice | None:
    """The invoice raised for a milestone that has just become done, or None when the project
    does not raise invoices by itself."""
    project = session.get(Project, project_id)
    if project.auto_invoice == "off":
        return None
    milestone = session.get(Milestone, milestone_id)
    tenant = session.get(Tenant, tenant_id)
    try:
        with session.begin_nested():
            invoice = services.draft_from_milestones(
                session,
                tenant,
                project,
                [milestone],
                hsn_sac=services.DEFAULT_SAC,
            )
            if project.auto_invoice == "issue":
                services.issue(session, tenant, invoice, tenant_today(session), user_id=user_id)
    except services.InvoiceError as error:
        return MilestoneInvoice(refused=str(error))
    return MilestoneInvoice(invoice_id=invoice.id, number=invoice.number)
