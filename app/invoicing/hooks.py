"""What invoicing does when projects move on: a milestone that is done raises its invoice,
in the same transaction, when its project asks for that (`app.invoicing.auto`). Connected by
`create_app`."""

from __future__ import annotations

from flask import Flask

from app.core import signals
from app.invoicing.auto import invoice_when_done


def init_app(app: Flask) -> None:
    signals.milestone_done.connect(raise_invoice_of_done_milestone)


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
