"""Raising a milestone's invoice by itself when the milestone is done, for projects that ask
for it (`Project.auto_invoice`: "draft" or "issue"; new projects take the workspace default).

A milestone is done when it reaches the status invoices are raised from: "approved" on a
project that requires approval, else "completed". The invoice is made inside a savepoint: if
the rules refuse it (the client's state is unknown, say), nothing of it is kept, the milestone
stays done, and the person is told why so they can raise it by hand once it is fixed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from app.invoicing import services
from app.invoicing.models import Invoice
from app.projects.models import Milestone, Project


@dataclass(frozen=True)
class AutoInvoice:
    invoice: Invoice | None
    refused: str | None = None


def invoice_when_done(
    session: Session,
    tenant,
    project: Project,
    milestone: Milestone,
    today: date,
    user_id: int | None,
) -> AutoInvoice | None:
    """The invoice raised for a milestone that has just become invoiceable, or None when the
    project does not raise invoices by itself (or the milestone is not done yet)."""
    wanted = "approved" if project.requires_approval else "completed"
    if project.auto_invoice == "off" or milestone.status != wanted:
        return None
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
                services.issue(session, tenant, invoice, today, user_id=user_id)
    except services.InvoiceError as error:
        return AutoInvoice(None, str(error))
    return AutoInvoice(invoice)
