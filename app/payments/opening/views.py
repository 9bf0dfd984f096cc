"""Opening balances pages: upload a file of open invoices, map its columns, preview, import
(a job; the page polls), and download the rows left out."""

from __future__ import annotations

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField

from app.clients import exports
from app.clients.imports import files as import_files
from app.clients.imports.views import (
    NOT_IN_FILE,
    REQUEST_LIMIT,
    UploadForm,
    ascii_stem,
    form_key_or_none,
)
from app.core.pages import render_page, toast, wants_fragment
from app.extensions import db
from app.form_choices import as_choices
from app.payments.opening import columns
from app.payments.opening import services as opening
from tenants.context import require_permission

blueprint = Blueprint("opening_balances", __name__, url_prefix="/t/<tenant_slug>/opening-balances")
PERMISSION = "invoices.edit"
STATUS_LABELS = {
    "reading": "Reading the file",
    "unreadable": "The file cannot be imported",
    "uploaded": "Columns to check",
    "mapped": "Ready to import",
    "queued": "Waiting for a worker",
    "running": "Importing",
    "done": "Finished",
    "failed": "Stopped",
}


def mapping_form(record, data=None) -> FlaskForm:
    choices = as_choices(
        [(NOT_IN_FILE, "— not in the file —")]
        + [(str(i), header or f"Column {i + 1}") for i, header in enumerate(record.headers)]
    )
    attributes = {
        f"map_{f.key}": SelectField(
            f.label + ("" if f.key in columns.REQUIRED else " (optional)"),
            choices=choices,
            default=str(record.mapping[f.key]) if f.key in (record.mapping or {}) else "",
        )
        for f in columns.FIELDS
    }
    return type("OpeningMappingForm", (FlaskForm,), attributes)(formdata=data)


def _submitted_mapping(form, record) -> dict[str, int]:
    raw = {f.key: form[f"map_{f.key}"].data for f in columns.FIELDS}
    return columns.clean_mapping(
        {k: v for k, v in raw.items() if v != NOT_IN_FILE}, len(record.headers)
    )


def _import_or_404(opening_import_id: int):
    record = opening.get_import(db.session, opening_import_id)
    if record is None:
        abort(404)
    return record


@blueprint.url_value_preprocessor
def _limit_upload_size(endpoint, values) -> None:
    if endpoint == "opening_balances.index":
        request.max_content_length = REQUEST_LIMIT


@blueprint.route("/", methods=["GET", "POST"])
@require_permission(PERMISSION)
def index():
    form = UploadForm()
    form.file.label.text = "File of open invoices"
    status = 200
    if form.validate_on_submit():
        upload = form.file.data
        try:
            record = opening.create_import(
                db.session,
                g.tenant.id,
                upload.filename or "",
                upload.stream,
                current_user.id,
                upload_key=form_key_or_none(form.upload_key.data),
            )
        except import_files.ImportFileError as error:
            form.file.errors = [*form.file.errors, str(error)]
        else:
            return redirect(url_for(".detail", opening_import_id=record.id), 303)
    if request.method == "POST":
        status = 422
    return render_page(
        "opening_balances/index.html",
        status=status,
        form=form,
        imports=opening.recent_imports(db.session),
        status_labels=STATUS_LABELS,
    )


def _progress_context(record) -> dict:
    return {
        "record": record,
        "status_label": STATUS_LABELS.get(record.status, record.status),
        "active": record.status in (*opening.ACTIVE_STATUSES, "reading"),
        "stuck": opening.is_stuck(record, g.tenant.id),
    }


def _detail(record, form=None, status=200):
    form = form or mapping_form(record)
    rows, problem = [], None
    if record.status in opening.EDITABLE_STATUSES:
        mapping = _submitted_mapping(form, record)
        problem = columns.mapping_problem(mapping)
        if problem is None:
            rows = opening.preview(db.session, g.tenant, mapping, record)
    return render_page(
        "opening_balances/detail.html",
        status=status,
        form=form,
        fields=columns.FIELDS,
        field_labels=columns.FIELD_LABELS,
        rows=rows,
        problem=problem,
        **_progress_context(record),
    )


@blueprint.route("/<int:opening_import_id>", methods=["GET", "POST"])
@require_permission(PERMISSION)
def detail(opening_import_id: int):
    record = _import_or_404(opening_import_id)
    if request.method == "GET":
        return _detail(record)
    if record.status not in opening.EDITABLE_STATUSES:
        toast("This import has started; its columns can no longer change.", "error")
        return redirect(url_for(".detail", opening_import_id=record.id), 303)
    form = mapping_form(record, request.form)
    if form.validate_on_submit():
        mapping = _submitted_mapping(form, record)
        problem = columns.mapping_problem(mapping)
        if problem is None:
            opening.save_mapping(db.session, record, mapping)
            toast("Columns saved. Check the preview, then start the import.")
            return redirect(url_for(".detail", opening_import_id=record.id), 303)
        form.map_number.errors = [*form.map_number.errors, problem]
    return _detail(record, form=form, status=422)


@blueprint.post("/<int:opening_import_id>/start")
@require_permission(PERMISSION)
def start(opening_import_id: int):
    record = _import_or_404(opening_import_id)
    try:
        opening.start_import(db.session, record)
    except import_files.ImportFileError as error:
        toast(str(error), "error")
    else:
        toast(f"Importing {record.filename}. You can leave this page; it goes on.")
    return redirect(url_for(".detail", opening_import_id=record.id), 303)


@blueprint.get("/<int:opening_import_id>/progress")
@require_permission(PERMISSION)
def progress(opening_import_id: int):
    record = _import_or_404(opening_import_id)
    if not wants_fragment():
        return redirect(url_for(".detail", opening_import_id=record.id))
    if request.args.get("reading") and record.status != "reading":
        # Read (or refused): the whole page changes, to the columns and the preview.
        return Response("", headers={"HX-Refresh": "true"})
    return render_template("opening_balances/_progress.html", **_progress_context(record))


@blueprint.get("/<int:opening_import_id>/errors.csv")
@require_permission(PERMISSION)
def errors(opening_import_id: int):
    record = _import_or_404(opening_import_id)
    rows = [["line", "field", "reason"]] + [
        [
            error.line,
            exports.safe_cell(columns.FIELD_LABELS.get(error.field or "", error.field or "")),
            exports.safe_cell(error.reason),
        ]
        for error in opening.import_errors(db.session, record.id)
    ]
    stem = record.filename.rsplit(".", 1)[0] or "opening-balances"
    return Response(
        "\ufeff" + "".join(exports.csv_lines(rows)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{ascii_stem(stem)}-problems.csv"'},
    )
