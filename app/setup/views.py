"""The first-run setup's pages (admins): one page per step, each saved or skipped, then on to
the next open step; the dashboard once none is left."""

from __future__ import annotations

from email.utils import parseaddr

from flask import Blueprint, abort, current_app, g, redirect, request, url_for

from app.core.pages import render_page, toast
from app.core.storage import get_storage
from app.core.terminology import worded
from app.extensions import db
from app.integrations import services as integrations
from app.settings import services as settings
from app.setup import services
from tenants.context import require_permission

blueprint = Blueprint("setup", __name__, url_prefix="/t/<tenant_slug>/setup")


def _step_or_404(step_name: str) -> services.Step:
    step = services.BY_NAME.get(step_name)
    if step is None:
        abort(404)
    return step


def _onwards():
    """To the next step still open, else to the dashboard."""
    step = services.progress(db.session, g.tenant.id).next_open()
    if step is None:
        return redirect(url_for("dashboard.home"), 303)
    return redirect(url_for("setup.step", step_name=step.name), 303)


def _page(step: services.Step, values=None, errors=None, status=200, block=None, checked=False):
    """The step's page; on the e-mail step of a workspace with its own mail server, the "Your
    domain" panel, which asks for its DNS check once shown (`checked`: run it now, for that
    ask)."""
    workspace = settings.workspace_settings(db.session, g.tenant.id)
    # The e-mail step checks the DNS of the workspace's own mail domain, when it sends through
    # its own server; through the platform's, its domain's DNS plays no part.
    mail_server = integrations.sending_mail_server(db.session) if step.name == "email" else None
    return render_page(
        "setup/step.html",
        block=block,
        status=status,
        own_mail_server=mail_server,
        domain_report=integrations.mail_domain_report(mail_server)
        if mail_server and checked
        else None,
        domain_check_url=url_for("setup.check_domain") if mail_server else None,
        tenant=g.tenant,
        workspace=workspace,
        step=step,
        steps=services.STEPS,
        number=services.STEPS.index(step) + 1,
        progress=services.progress(db.session, g.tenant.id),
        values=values or settings.form_values(g.tenant, workspace),
        errors=errors or {},
        mail_address=parseaddr(
            mail_server.settings["from_address"] if mail_server else current_app.config["MAIL_FROM"]
        )[1],
    )


@blueprint.get("/")
@require_permission("settings.manage")
def index():
    step = services.progress(db.session, g.tenant.id).resume_at()
    if step is None:
        toast("Your workspace is set up. You can change any of it under Settings.")
        return redirect(url_for("dashboard.home"))
    return redirect(url_for("setup.step", step_name=step.name))


@blueprint.get("/<step_name>")
@require_permission("settings.manage")
def step(step_name: str):
    return _page(_step_or_404(step_name))


@blueprint.post("/<step_name>")
@require_permission("settings.manage")
def save(step_name: str):
    step = _step_or_404(step_name)
    if not step.fields:
        abort(405)  # the clients step is done on the clients pages
    upload = request.files.get("logo")
    logo = upload.stream if upload is not None and upload.filename else None
    errors = services.save_step(
        db.session, get_storage(current_app), g.tenant, step, request.form, logo
    )
    if errors:
        return _page(step, values=request.form.to_dict(), errors=errors, status=422)
    toast(f"{worded(step.title)}: saved.")
    return _onwards()


@blueprint.post("/email/domain-check")
@require_permission("settings.manage")
def check_domain():
    """ "Check again" on the e-mail step's "Your domain" panel: the panel for htmx, else the
    whole step."""
    return _page(services.BY_NAME["email"], block="mail_domain", checked=True)


@blueprint.post("/<step_name>/skip")
@require_permission("settings.manage")
def skip(step_name: str):
    step = _step_or_404(step_name)
    services.skip_step(db.session, g.tenant.id, step)
    return _onwards()
