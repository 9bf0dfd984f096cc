"""What invoicing does when projects move on: a milestone that is done raises its invoice,
in the same transaction, when its project asks for that (`app.invoicing.auto`); and when a
client is about to be deleted: its invoices still owing hold it. It also draws the branding
page's invoice preview (`app.settings.branding`'s port). Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.core import signals
from app.invoicing.auto import invoice_when_done
from app.invoicing.balance import deletion_blockers
from app.invoicing.pdf import invoice_preview_html
from app.settings import branding


def init_app(app: Flask) -> None:
    signals.milestone_done.connect(raise_invoice_of_done_milestone)
    signals.client_deletion_asked.connect(invoices_holding_client)
    branding.register_invoice_preview(invoice_preview_html)


def raise_invoice_of_done_milestone(
    session,
    *,
    tenant_id: int,
    project_id: int,
    milestone_id: int,
    user_id: int | None,
    **facts,
) -> signals.MilestoneInvoice | None:
    return invoice_when_done(session, tenant_id, project_id, milestone_id, user_id)


def invoices_holding_client(session, *, client_id: int, **facts) -> list[signals.DeletionBlocker]:
    return deletion_blockers(session, client_id)
