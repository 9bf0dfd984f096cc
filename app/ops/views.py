"""The ops page (admins): queue depths, this workspace's backlog, its failed jobs, retry."""

from __future__ import annotations

from flask import Blueprint, abort, g, redirect, url_for

from app.core.pages import render_page, toast
from app.extensions import db
from app.ops import services
from tenants.context import require_permission

blueprint = Blueprint("ops", __name__, url_prefix="/t/<tenant_slug>/ops")


@blueprint.get("/")
@require_permission("ops.view")
def view():
    return render_page(
        "ops/index.html",
        queues=services.queue_depths(),
        backlog=services.outbox_backlog(db.session, g.tenant.id),
        webhooks=services.unprocessed_webhooks(db.session, g.tenant.id),
        failed=services.failed_jobs(g.tenant.id),
    )


@blueprint.post("/jobs/<job_id>/retry")
@require_permission("ops.view")
def retry_job(job_id: str):
    if not services.retry_failed_job(g.tenant.id, job_id):
        abort(404)
    toast("The job is back in its queue; a worker will run it again shortly.")
    return redirect(url_for("ops.view"), 303)
