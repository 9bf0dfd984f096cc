from __future__ import annotations

from flask import Blueprint, abort, g, redirect, request, url_for
from flask_login import current_user

from app.clients import services as clients
from app.clients.models import Client
from app.clients.picker import SEARCH_FIELD, client_picker
from app.core.clock import subdivision_for, tenant_today
from app.core.form_once import once_per_form_key
from app.core.pages import render_page, toast
from app.core.request_input import row_id
from app.core.terminology import term
from app.custom_fields import services as custom_fields
from app.custom_fields.views import record_section, section_context
from app.extensions import db
from app.library import services as library
from app.library.tenant import services as my_templates
from app.projects import listing, services
from app.settings.services import AUTO_INVOICE_CHOICES, workspace_settings
from tenants.context import can, require_permission

blueprint = Blueprint("projects", __name__, url_prefix="/t/<tenant_slug>/projects")
PLAN_ROWS = 8
DUE_RULE_LABELS = {
    "days_after_start": "days after the start",
    "days_after_previous": "days after the previous one",
    "date": "on a date",
}


def _calendar() -> services.Calendar:
    return services.Calendar(g.tenant.country, subdivision_for(g.tenant.country, g.tenant.region))


def client_tab_context(client: Client) -> dict:
    """What the client page's Projects tab (templates/clients/_projects.html) shows."""
    return {"projects": services.client_projects(db.session, client)}


def _project_or_404(project_id: int):
    project = services.get_project(db.session, project_id)
    if project is None or project.client.deleted_at is not None:
        abort(404)
    return project


def _custom_url(project) -> str:
    return url_for("projects.custom_section", project_id=project.id)


def _page(project):
    milestones, next_after = services.milestone_page(
        db.session, project, row_id(request.args.get("after")) or 0
    )
    fields = custom_fields.definitions_of(db.session, ("projects", "milestones"))
    milestone_fields = fields["milestones"]
    # Read once for the page's rows, not once per milestone.
    people = (
        dict(custom_fields.member_choices(db.session))
        if any(f.field_type == "user" for f in milestone_fields)
        else {}
    )
    return render_page(
        "projects/detail.html",
        block="milestones",
        project=project,
        custom_section=section_context(
            "projects",
            project,
            url=_custom_url(project),
            may_edit=can("invoices.edit"),
            fields=fields["projects"],
        ),
        milestone_fields=milestone_fields,
        milestone_values={
            m.id: custom_fields.labelled_values(
                db.session,
                "milestones",
                m.custom_fields or {},
                live=milestone_fields,
                people=people,
            )
            for m in milestones
        },
        summary=services.summary(db.session, project),
        milestones=milestones,
        next_after=next_after,
        actions={m.id: services.next_actions(m, project) for m in milestones},
        terms=services.effective_terms(project),
    )


def _plan_page(project, status=200, plan_errors=None, plan_values=None):
    asked = request.args.get("rows", "")
    rows = int(asked) if asked.isdigit() else PLAN_ROWS
    return render_page(
        "projects/plan.html",
        status=status,
        project=project,
        plan_rows=min(rows, services.PLAN_FORM_ROWS),
        name_limit=services.MILESTONE_NAME_LIMIT,
        summary=services.summary(db.session, project),
        plan_errors=plan_errors or {},
        plan_values=plan_values or {},
        due_rules=DUE_RULE_LABELS,
        templates=library.search(db.session, per_page=500).templates,
        own_versions=my_templates.published_versions(db.session),
        made_from=my_templates.version_of(db.session, project.tenant_template_version_id),
    )


@blueprint.get("/")
@require_permission("clients.view")
def index():
    filters = listing.ProjectFilters.from_args(
        request.args, custom_fields.list_fields(db.session, "projects")
    )
    return render_page(
        "projects/index.html",
        block="project_results",
        page=listing.list_projects(db.session, filters, row_id(request.args.get("page")) or 1),
        filters=filters,
        picker=client_picker(
            db.session, request.args.get(SEARCH_FIELD), filters.client_id, every_client=True
        ),
        statuses=listing.STATUSES,
    )


@blueprint.route("/new", methods=["GET", "POST"])
@require_permission("invoices.edit")
@once_per_form_key
def new():
    client_id = row_id(request.values.get("client_id"))
    client = clients.get_client(db.session, client_id) if client_id else None
    if client is None:
        abort(404)
    workspace = workspace_settings(db.session, g.tenant.id)
    fields = custom_fields.definitions(db.session, "projects")
    values = {
        "currency": client.currency,
        "start_date": tenant_today(db.session).isoformat(),
        "requires_approval": "1" if workspace.approval_required else "",
        "auto_invoice": workspace.auto_invoice,
        **custom_fields.form_values(fields, {f.key: f.default_value for f in fields}),
    }
    errors = {}
    if request.method == "POST":
        submitted = custom_fields.submitted_from_form(fields, request.form)
        values = {**request.form.to_dict(), **custom_fields.form_values(fields, submitted)}
        try:
            project = services.create_project(
                db.session, client, request.form, current_user.id, g.tenant.currency, submitted
            )
        except services.PlanError as error:
            errors = error.errors
        else:
            toast(f"{project.name} is saved. Now plan its {term('milestones')}.")
            return redirect(url_for("projects.detail", project_id=project.id), 303)
    return render_page(
        "projects/new.html",
        status=422 if errors else 200,
        client=client,
        values=values,
        errors=errors,
        auto_invoice_choices=AUTO_INVOICE_CHOICES,
        custom_fields=fields,
        members=custom_fields.member_choices(db.session),
    )


@blueprint.get("/<int:project_id>")
@require_permission("clients.view")
def detail(project_id: int):
    return _page(_project_or_404(project_id))


@blueprint.route("/<int:project_id>/custom-fields", methods=["GET", "POST"])
@require_permission("clients.view")
def custom_section(project_id: int):
    """The project's own fields (Settings → Custom fields): shown, or edited in place."""
    project = _project_or_404(project_id)
    return record_section(
        "projects",
        project,
        url=_custom_url(project),
        page_url=url_for("projects.detail", project_id=project.id),
        title=project.name,
        may_edit=can("invoices.edit"),
    )


@blueprint.route(
    "/<int:project_id>/milestones/<int:milestone_id>/custom-fields", methods=["GET", "POST"]
)
@require_permission("clients.view")
def milestone_custom_section(project_id: int, milestone_id: int):
    """A milestone's own fields: shown, or edited in place (from the project page's row)."""
    project = _project_or_404(project_id)
    milestone = services.get_milestone(db.session, project, milestone_id)
    if milestone is None:
        abort(404)
    return record_section(
        "milestones",
        milestone,
        url=url_for(
            "projects.milestone_custom_section", project_id=project.id, milestone_id=milestone.id
        ),
        page_url=url_for("projects.detail", project_id=project.id),
        title=f"{project.name}: {milestone.name}",
        may_edit=can("invoices.edit"),
    )


@blueprint.route("/<int:project_id>/plan", methods=["GET", "POST"])
@require_permission("invoices.edit")
@once_per_form_key
def plan(project_id: int):
    project = _project_or_404(project_id)
    if request.method == "GET":
        return _plan_page(project)
    milestones, errors = services.read_plan(request.form)
    if not errors:
        try:
            count = services.replace_plan(
                db.session, project, milestones, _calendar(), actor_user_id=current_user.id
            )
        except services.PlanError as error:
            errors = error.errors
        else:
            toast(f"The plan has {count} {term('milestones')} adding up to the contract value.")
            return redirect(url_for("projects.detail", project_id=project.id), 303)
    return _plan_page(project, status=422, plan_errors=errors, plan_values=request.form.to_dict())


@blueprint.post("/<int:project_id>/template")
@require_permission("invoices.edit")
@once_per_form_key
def apply_template(project_id: int):
    project = _project_or_404(project_id)
    template_id = row_id(request.form.get("template_id"))
    version_id = row_id(request.form.get("version_id"))
    if version_id:  # one of the tenant's own templates, a published version
        template = my_templates.get_published_version(db.session, version_id)
    elif template_id:
        template = library.get_template(db.session, template_id)
    else:
        template = None
    if template is None:
        toast("Choose a template from the library.", "error")
        return redirect(url_for("projects.detail", project_id=project.id), 303)
    try:
        count = services.apply_template(
            db.session, project, template, _calendar(), actor_user_id=current_user.id
        )
    except services.PlanError as error:
        toast(" ".join(error.errors.values()), "error")
    else:
        toast(f"{template.name}: {count} {term('milestones')} on this contract value.")
    return redirect(url_for("projects.detail", project_id=project.id), 303)


@blueprint.post("/<int:project_id>/milestones/<int:milestone_id>/status")
@require_permission("clients.view")
def move(project_id: int, milestone_id: int):
    project = _project_or_404(project_id)
    milestone = services.get_milestone(db.session, project, milestone_id)
    if milestone is None:
        abort(404)
    to_status = request.form.get("status", "")
    needed = "invoices.edit" if to_status == "approved" else "clients.edit"
    if not can(needed):
        abort(403)
    try:
        raised = services.transition(
            db.session,
            milestone,
            to_status,
            user_id=current_user.id,
            project=project,
            today=tenant_today(db.session),
            note=request.form.get("note"),
        )
    except services.PlanError as error:
        toast(" ".join(error.errors.values()), "error")
        return redirect(url_for("projects.detail", project_id=project.id), 303)
    toast(f"{milestone.name}: {milestone.status.replace('_', ' ')}.")
    if raised and raised.invoice_id:
        number = raised.number
        toast(f"Invoice {number} issued." if number else "Draft invoice raised: check, then issue.")
        return redirect(url_for("invoicing.detail", invoice_id=raised.invoice_id), 303)
    if raised:
        toast(f"The invoice was not raised: {raised.refused}", "error")
    return redirect(url_for("projects.detail", project_id=project.id), 303)
