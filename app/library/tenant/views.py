"""My templates: the tenant's own plan templates (cloned or started blank), their versions,
archiving and restoring, and the draft editor (inline row edits and drag-to-reorder with htmx).

An archived template's pages still open, read-only, so that a project's link to the version it
was made from keeps working; its draft cannot be edited (see `_editable_template_or_404`).
"""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, abort, g, make_response, redirect, request, url_for
from flask_login import current_user

from app.core.form_once import once_per_form_key
from app.core.pages import render_page, toast
from app.core.request_input import row_id
from app.core.terminology import term, title_term
from app.extensions import db
from app.library import services as library
from app.library.tenant import services
from app.library.views import DUE_RULE_LABELS, money, parse_value
from tenants.context import can, require_permission

blueprint = Blueprint("my_templates", __name__, url_prefix="/t/<tenant_slug>/library/mine")
DUE_RULE_CHOICES = {
    "on_start": "At the start",
    "days_after_start": "Days after the start",
    "days_after_previous": "Days after the previous {milestone}",
}


def _template_or_404(tenant_template_id: int):
    """A template to read, archived or not."""
    template = services.get_template(db.session, tenant_template_id, include_archived=True)
    if template is None:
        abort(404)
    return template


def _editable_template_or_404(tenant_template_id: int):
    """A template whose draft may be changed. An archived one is refused with 409 Conflict and a
    page saying it is archived and must be restored first (for htmx, also an error toast, as
    htmx does not show a 409's body): a bare 404 would suggest it is gone, yet it is there and its
    pages open."""
    template = _template_or_404(tenant_template_id)
    if template.deleted_at is not None:
        if request.headers.get("HX-Request"):
            toast(f"{template.name} is archived: restore it to edit it.", "error")
        body, status = render_page(
            "library/archived.html", block="refusal", status=409, my_template=template
        )
        abort(make_response(body, status))
    return template


def _draft_or_404(template):
    draft = services.get_draft(db.session, template)
    if draft is None:
        abort(404)
    return draft


def _item_or_404(draft, item_id: int):
    item = services.get_draft_item(db.session, draft, item_id)
    if item is None:
        abort(404)
    return item


@blueprint.get("/")
@require_permission("clients.view")
def index():
    return render_page(
        "library/mine.html",
        templates=services.list_templates(db.session),
        archived=services.archived_templates(db.session),
        drafts=services.templates_with_drafts(db.session),
        published=services.templates_published(db.session),
        industry_labels=library.industry_labels(),
    )


@blueprint.route("/new", methods=["GET", "POST"])
@require_permission("invoices.edit")
@once_per_form_key
def new():
    """A template started blank: name and details here, then the milestones in the editor."""
    values, errors, status = {}, {}, 200
    if request.method == "POST":
        try:
            template = services.start_blank(db.session, request.form, current_user.id)
        except services.TemplateError as error:
            values, errors, status = request.form.to_dict(), error.errors, 422
        else:
            toast(
                f"{template.name} is started: add its {term('milestones')}, then publish version 1."
            )
            return redirect(url_for("my_templates.editor", tenant_template_id=template.id), 303)
    return render_page(
        "library/new_template.html",
        status=status,
        values=values,
        errors=errors,
        industries=library.industry_labels(),
    )


@blueprint.post("/from-library/<int:template_id>")
@require_permission("invoices.edit")
@once_per_form_key
def clone(template_id: int):
    source = library.get_template(db.session, template_id)
    if source is None:
        abort(404)
    template = services.clone_from_library(db.session, source, current_user.id)
    toast(f"{template.name} is now in your templates as version 1.")
    return redirect(url_for("my_templates.detail", tenant_template_id=template.id), 303)


def _version_page(template, version):
    raw = request.args.get("value")
    value, error = parse_value(raw)
    try:
        items = library.preview(version, value, g.tenant.currency)
    except library.PlanShapeError as shape:  # fixed amounts above the sample value
        items, error = [], str(shape)
    return render_page(
        "library/tenant_template.html",
        block="version_preview",
        status=422 if error else 200,
        my_template=template,
        version=version,
        items=items,
        value=value,
        raw_value=raw if error else None,
        error=error,
        money=money,
        rule_labels=DUE_RULE_LABELS,
        total=sum((i.amount for i in items), Decimal(0)),
        draft=services.get_draft(db.session, template),
        versions=[v for v in template.versions if v.is_published],
        industry_label=library.industry_labels().get(template.industry, template.industry),
    )


@blueprint.get("/<int:tenant_template_id>")
@require_permission("clients.view")
def detail(tenant_template_id: int):
    template = _template_or_404(tenant_template_id)
    version = services.get_version(db.session, template, template.current_version)
    if version is None:  # started blank and not published yet: nothing to preview
        return render_page(
            "library/tenant_template.html",
            my_template=template,
            version=None,
            versions=[],
            draft=services.get_draft(db.session, template),
            industry_label=library.industry_labels().get(template.industry, template.industry),
        )
    return _version_page(template, version)


@blueprint.get("/<int:tenant_template_id>/versions/<int:version>")
@require_permission("clients.view")
def version(tenant_template_id: int, version: int):
    template = _template_or_404(tenant_template_id)
    found = services.get_version(db.session, template, version)
    if found is None:
        abort(404)
    return _version_page(template, found)


@blueprint.post("/<int:tenant_template_id>/archive")
@require_permission("invoices.edit")
def archive(tenant_template_id: int):
    template = _template_or_404(tenant_template_id)
    services.archive(db.session, template)
    toast(
        f"{template.name} is archived: it is no longer offered for new {term('projects')}. "
        f"{title_term('projects')} made from it keep their plan. Restore it from the archived "
        "templates."
    )
    return redirect(url_for("my_templates.index"), 303)


@blueprint.post("/<int:tenant_template_id>/restore")
@require_permission("invoices.edit")
def restore(tenant_template_id: int):
    template = _template_or_404(tenant_template_id)
    services.restore(db.session, template)
    toast(f"{template.name} is restored: it is back in your templates.")
    return redirect(url_for("my_templates.detail", tenant_template_id=template.id), 303)


# The editor ---------------------------------------------------------------------------------


def _editor(template, draft, status=200, block=None, **context):
    context.setdefault(
        "new_values",
        {"share_kind": "percentage", "due_rule": "days_after_previous", "due_days": "30"},
    )
    context.setdefault("new_errors", {})
    context.setdefault("publish_errors", {})
    context.setdefault("details_errors", {})
    return render_page(
        "library/editor.html",
        block=block,
        status=status,
        my_template=template,
        draft=draft,
        check=services.check_plan(draft.items),
        rules=DUE_RULE_CHOICES,
        rule_labels=DUE_RULE_LABELS,
        money=money,
        **context,
    )


def _draft_answer(template, draft, status=200, **context):
    """After a change: for htmx the whole draft (rows, totals, publish check) in place of the
    one that was there, wherever the request came from; otherwise back to the editor, or the
    editor with the errors."""
    if request.headers.get("HX-Request"):
        body, status = _editor(template, draft, status=status, block="draft_body", **context)
        return body, status, {"HX-Retarget": "#draft-body", "HX-Reswap": "innerHTML"}
    if status < 400:
        return redirect(url_for("my_templates.editor", tenant_template_id=template.id), 303)
    return _editor(template, draft, status=status, **context)


@blueprint.get("/<int:tenant_template_id>/draft")
@require_permission("invoices.edit")
def editor(tenant_template_id: int):
    template = _editable_template_or_404(tenant_template_id)
    draft = services.get_draft(db.session, template)
    if draft is None:  # nothing to edit yet: the template page offers to start a draft
        return redirect(url_for("my_templates.detail", tenant_template_id=template.id), 303)
    editing = row_id(request.args.get("edit"))
    found = services.get_draft_item(db.session, draft, editing) if editing else None
    if found is None:
        return _editor(template, draft)
    return _editor(template, draft, editing_id=found.id, values=_item_values(found), errors={})


@blueprint.post("/<int:tenant_template_id>/draft")
@require_permission("invoices.edit")
def start_draft(tenant_template_id: int):
    template = _editable_template_or_404(tenant_template_id)
    services.start_draft(db.session, template, current_user.id)
    return redirect(url_for("my_templates.editor", tenant_template_id=template.id), 303)


@blueprint.post("/<int:tenant_template_id>/draft/discard")
@require_permission("invoices.edit")
def discard(tenant_template_id: int):
    template = _editable_template_or_404(tenant_template_id)
    services.discard_draft(db.session, _draft_or_404(template))
    toast("The draft is discarded; the published versions are as they were.")
    return redirect(url_for("my_templates.detail", tenant_template_id=template.id), 303)


@blueprint.post("/<int:tenant_template_id>/details")
@require_permission("invoices.edit")
def details(tenant_template_id: int):
    template = _editable_template_or_404(tenant_template_id)
    draft = _draft_or_404(template)
    try:
        services.update_details(db.session, template, request.form)
    except services.TemplateError as error:
        return _editor(
            template,
            draft,
            status=422,
            details_errors=error.errors,
            details_values=request.form.to_dict(),
        )
    toast("Name and description saved.")
    return redirect(url_for("my_templates.editor", tenant_template_id=template.id), 303)


@blueprint.post("/<int:tenant_template_id>/draft/items")
@require_permission("invoices.edit")
def add_item(tenant_template_id: int):
    template = _editable_template_or_404(tenant_template_id)
    draft = _draft_or_404(template)
    try:
        item = services.add_item(db.session, draft, request.form)
    except services.TemplateError as error:
        return _draft_answer(
            template, draft, status=422, new_values=request.form.to_dict(), new_errors=error.errors
        )
    toast(f"{item.name} added.")
    return _draft_answer(template, draft)


@blueprint.route("/<int:tenant_template_id>/draft/items/<int:item_id>", methods=["GET", "POST"])
@require_permission("invoices.edit")
def item(tenant_template_id: int, item_id: int):
    """One milestone of the draft: shown, or (?edit=1 / POST) edited in place."""
    template = _editable_template_or_404(tenant_template_id)
    draft = _draft_or_404(template)
    found = _item_or_404(draft, item_id)
    if request.method == "GET":
        if not request.args.get("edit"):
            return render_page(
                "library/_item.html", item=found, editing=False, **_row_context(template)
            )
        return render_page(
            "library/_item.html",
            item=found,
            editing=True,
            values=_item_values(found),
            errors={},
            **_row_context(template),
        )
    try:
        services.update_item(db.session, found, request.form)
    except services.TemplateError as error:
        if not request.headers.get("HX-Request"):
            return _editor(
                template,
                draft,
                status=422,
                editing_id=found.id,
                values=request.form.to_dict(),
                errors=error.errors,
            )
        return render_page(
            "library/_item.html",
            status=422,
            item=found,
            editing=True,
            values=request.form.to_dict(),
            errors=error.errors,
            **_row_context(template),
        )
    toast(f"{found.name} saved.")
    # The whole draft: the totals and the publish check change with the row.
    return _draft_answer(template, draft)


@blueprint.post("/<int:tenant_template_id>/draft/items/<int:item_id>/delete")
@require_permission("invoices.edit")
def remove_item(tenant_template_id: int, item_id: int):
    template = _editable_template_or_404(tenant_template_id)
    draft = _draft_or_404(template)
    found = _item_or_404(draft, item_id)
    name = found.name
    services.remove_item(db.session, draft, found)
    toast(f"{name} removed.")
    return _draft_answer(template, draft)


def _ids(values) -> list[int]:
    return [found for found in map(row_id, values) if found]


@blueprint.post("/<int:tenant_template_id>/draft/order")
@require_permission("invoices.edit")
def order(tenant_template_id: int):
    """The new order: every item id in order (after a drag), or one item moved a place up or
    down (the buttons, which work without a mouse and without scripts)."""
    template = _editable_template_or_404(tenant_template_id)
    draft = _draft_or_404(template)
    current = [i.id for i in sorted(draft.items, key=lambda i: i.position)]
    ids = _ids(request.form.getlist("item"))
    moved = _ids([request.form.get("move", "")])
    if moved and moved[0] in current:
        ids, at = list(current), current.index(moved[0])
        to = at - 1 if request.form.get("direction") == "up" else at + 1
        if 0 <= to < len(ids):
            ids[at], ids[to] = ids[to], ids[at]
    try:
        services.reorder(db.session, draft, ids, actor_user_id=current_user.id)
    except services.TemplateError as error:
        return _draft_answer(template, draft, status=422, order_error=error.errors["order"])
    return _draft_answer(template, draft)


@blueprint.post("/<int:tenant_template_id>/draft/publish")
@require_permission("invoices.edit")
def publish(tenant_template_id: int):
    template = _editable_template_or_404(tenant_template_id)
    draft = _draft_or_404(template)
    try:
        services.publish(db.session, template, draft, current_user.id, request.form.get("note"))
    except services.TemplateError as error:
        return _editor(
            template,
            draft,
            status=422,
            publish_errors=error.errors,
            publish_note=request.form.get("note", ""),
        )
    toast(
        f"Version {draft.number} is published. {title_term('projects')} made from earlier "
        "versions keep theirs."
    )
    return redirect(url_for("my_templates.detail", tenant_template_id=template.id), 303)


def _item_values(item) -> dict:
    amount = item.fixed_amount is not None
    share = item.fixed_amount if amount else item.percentage.normalize()
    return {
        "name": item.name,
        "description": item.description,
        "deliverables": item.deliverables,
        "share_kind": "amount" if amount else "percentage",
        "share": f"{share:f}",
        "due_rule": item.due_rule,
        "due_days": str(item.due_days),
        "is_retention": "1" if item.is_retention else "",
    }


def _row_context(template) -> dict:
    return {
        "my_template": template,
        "rules": DUE_RULE_CHOICES,
        "rule_labels": DUE_RULE_LABELS,
        "money": money,
        "editable": can("invoices.edit"),
    }
