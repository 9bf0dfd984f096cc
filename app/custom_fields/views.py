"""Settings → Custom fields (admins): the fields of each kind of record, added, changed,
archived, restored and reordered in place with htmx."""

from __future__ import annotations

from flask import Blueprint, abort, g, redirect, request, url_for

from app.core.pages import render_page, toast, wants_fragment
from app.core.terminology import worded
from app.custom_fields import services
from app.custom_fields.forms import VALIDATION_INPUTS, field_form_values
from app.custom_fields.models import ENTITY_TABLES
from app.extensions import db
from tenants.context import require_permission

blueprint = Blueprint(
    "custom_fields", __name__, url_prefix="/t/<tenant_slug>/settings/custom-fields"
)


@blueprint.app_template_global("custom_shown")
def custom_shown(field, value) -> str:
    """A stored value as a list cell shows it (a member by name, read once per request)."""
    people = {}
    if field.field_type == "user":
        if "custom_field_people" not in g:
            g.custom_field_people = dict(services.member_choices(db.session))
        people = g.custom_field_people
    return services.display_value(field, value, people)


def section_context(
    entity: str,
    record,
    *,
    url: str,
    may_edit: bool,
    editing: bool = False,
    submitted=None,
    errors=None,
    fields=None,
) -> dict:
    """What templates/custom_fields/_section.html shows of `record`'s own fields: its values,
    or (editing) its form with the errors beside the fields. `url`: the record's
    custom-fields address (`record_section` answers it); `fields`: the entity's live
    definitions when the caller read them already."""
    if fields is None:
        fields = services.definitions(db.session, entity)
    stored = record.custom_fields or {}
    rows = services.labelled_values(db.session, entity, stored, live=fields)
    return {
        "id": f"custom-{entity}-{record.id}",
        "url": url,
        "may_edit": may_edit and bool(fields),
        "editing": editing,
        "fields": fields,
        "rows": rows,
        "form_values": services.form_values(fields, submitted or stored),
        "errors": errors or {},
        "members": services.member_choices(db.session)
        if editing and any(f.field_type == "user" for f in fields)
        else [],
    }


def record_section(entity: str, record, *, url: str, page_url: str, title: str, may_edit: bool):
    """A record's own fields, shown (GET) or edited in place (GET ?edit=1, POST): the answer of
    each area's …/custom-fields route. htmx swaps the section; without it the section comes
    on a page of its own, and a saved form goes back to the record's page (`page_url`)."""
    editing = request.method == "POST" or request.args.get("edit") == "1"
    if editing and not may_edit:
        abort(403)
    submitted, errors = None, {}
    if request.method == "POST":
        submitted = services.submitted_from_form(
            services.definitions(db.session, entity), request.form
        )
        try:
            services.change_record_values(db.session, entity, record, submitted)
        except services.ValuesInvalid as invalid:
            errors = invalid.errors
        else:
            toast("Details saved.")
            if not wants_fragment():
                return redirect(page_url, 303)
            submitted, editing = None, False
    return render_page(
        "custom_fields/section_page.html",
        block="section",
        status=422 if errors else 200,
        title=title,
        page_url=page_url,
        custom_section=section_context(
            entity,
            record,
            url=url,
            may_edit=may_edit,
            editing=editing,
            submitted=submitted,
            errors=errors,
        ),
    )


def _entity(value: str | None) -> str:
    return value if value in ENTITY_TABLES else "clients"


def _page(entity: str, *, new_values=None, new_errors=None, editing=None, status=200, **extra):
    return render_page(
        "custom_fields/index.html",
        block="field_list",
        status=status,
        entity=entity,
        entities=services.ENTITY_LABELS,
        type_labels=services.TYPE_LABELS,
        validation_inputs=VALIDATION_INPUTS,
        fields=services.definitions(db.session, entity, archived=True),
        new_values=new_values or {"field_type": "text"},
        new_errors=new_errors or {},
        editing=editing,
        **extra,
    )


def _field_or_404(custom_field_id: int):
    field = services.get_field(db.session, custom_field_id)
    if field is None:
        abort(404)
    return field


@blueprint.get("/")
@require_permission("settings.manage")
def index():
    return _page(_entity(request.args.get("entity")))


@blueprint.post("/")
@require_permission("settings.manage")
def create():
    entity = _entity(request.form.get("entity"))
    try:
        field = services.save_field(db.session, entity, request.form)
    except services.FieldError as error:
        return _page(entity, new_values=request.form.to_dict(), new_errors=error.errors, status=422)
    toast(f"“{field.label}” added to {worded(services.ENTITY_LABELS[entity].lower())}.")
    return _after_change(entity)


@blueprint.route("/<int:custom_field_id>", methods=["GET", "POST"])
@require_permission("settings.manage")
def edit(custom_field_id: int):
    """The field's row as a form (GET), saved (POST)."""
    field = _field_or_404(custom_field_id)
    if request.method == "GET":
        return _page(field.entity, editing={"id": field.id, "values": field_form_values(field)})
    try:
        services.save_field(db.session, field.entity, request.form, field)
    except services.FieldError as error:
        values = {**request.form.to_dict(), "key": field.key, "field_type": field.field_type}
        return _page(
            field.entity,
            editing={"id": field.id, "values": values, "errors": error.errors},
            status=422,
        )
    toast(f"“{field.label}” saved.")
    return _after_change(field.entity)


@blueprint.post("/<int:custom_field_id>/archive")
@require_permission("settings.manage")
def archive(custom_field_id: int):
    field = _field_or_404(custom_field_id)
    services.archive_field(field)
    toast(f"“{field.label}” archived; the values records hold are kept.")
    return _after_change(field.entity)


@blueprint.post("/<int:custom_field_id>/restore")
@require_permission("settings.manage")
def restore(custom_field_id: int):
    field = _field_or_404(custom_field_id)
    services.restore_field(field)
    toast(f"“{field.label}” is back on forms and lists.")
    return _after_change(field.entity)


@blueprint.post("/<int:custom_field_id>/move")
@require_permission("settings.manage")
def move(custom_field_id: int):
    field = _field_or_404(custom_field_id)
    services.move_field(db.session, field, -1 if request.form.get("step") == "up" else 1)
    return _after_change(field.entity)


def _after_change(entity: str):
    db.session.flush()
    if request.headers.get("HX-Request"):
        return _page(entity)
    return redirect(url_for("custom_fields.index", entity=entity), 303)
