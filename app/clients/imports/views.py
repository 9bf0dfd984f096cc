"""Client files: import (upload, map the columns, preview, run as a job, error report) and
export of the client list as filtered (CSV or XLSX)."""

from __future__ import annotations

import re
import secrets

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from werkzeug.routing import BuildError
from wtforms import HiddenField, SelectField

from app.clients import exports
from app.clients.imports import files as import_files
from app.clients.imports import mapping as import_mapping
from app.clients.imports import services as imports
from app.clients.services import ClientFilters
from app.core.downloads import csv_download, xlsx_download
from app.core.pages import render_page, toast, wants_fragment
from app.custom_fields.services import definitions, list_fields
from app.extensions import db
from app.form_choices import as_choices
from tenants.context import require_permission

blueprint = Blueprint("client_files", __name__, url_prefix="/t/<tenant_slug>/clients")

# Room for the form fields around the file; a larger request is refused before it is read.
REQUEST_LIMIT = import_files.MAX_FILE_BYTES + 1024 * 1024
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
NOT_IN_FILE = ""
# A form's one-time key (upload, start): a double submit carries the same one.
FORM_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_form_key() -> str:
    return secrets.token_urlsafe(18)


def form_key_or_none(value: str | None) -> str | None:
    return value if value and FORM_KEY.match(value) else None


class UploadForm(FlaskForm):
    file = FileField(
        "{Client} file",  # the workspace's word, filled where it is shown
        validators=[FileRequired("Choose a .csv or .xlsx file.")],
        description=(
            "A .csv (UTF-8; comma, semicolon or tab separated) or .xlsx file of up to 20 MB. "
            "The first row names the columns."
        ),
        render_kw={
            "accept": ".csv,.xlsx,text/csv,"
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        },
    )
    upload_key = HiddenField(default=new_form_key)


def _custom_import_fields():
    return import_mapping.custom_import_fields(definitions(db.session, "clients"))


def _input_name(key: str) -> str:
    return "map_" + key.replace(".", "_")


def mapping_form(record, data=None) -> FlaskForm:
    """One select per field (the workspace's own client fields too), each offering the file's
    columns."""
    choices = as_choices(
        [(NOT_IN_FILE, "— not in the file —")]
        + [(str(i), header or f"Column {i + 1}") for i, header in enumerate(record.headers)]
    )
    attributes = {
        _input_name(f.key): SelectField(
            f.label,
            choices=choices,
            default=str(record.mapping[f.key]) if f.key in (record.mapping or {}) else "",
        )
        for f in (*import_mapping.FIELDS, *_custom_import_fields())
    }
    form_class = type("MappingForm", (FlaskForm,), attributes)
    return form_class(formdata=data)


def _submitted_mapping(form, record) -> dict[str, int]:
    custom = _custom_import_fields()
    raw = {f.key: form[_input_name(f.key)].data for f in (*import_mapping.FIELDS, *custom)}
    return import_mapping.clean_mapping(
        {k: v for k, v in raw.items() if v != NOT_IN_FILE}, len(record.headers), custom
    )


def _import_or_404(import_id: int):
    record = imports.get_import(db.session, import_id)
    if record is None:
        abort(404)
    return record


def _clients_list_url() -> str | None:
    try:
        return url_for("clients.index")
    except BuildError:  # the client list is not there (yet)
        return None


@blueprint.url_value_preprocessor
def _limit_upload_size(endpoint, values) -> None:
    if endpoint == "client_files.new_import":
        request.max_content_length = REQUEST_LIMIT


@blueprint.route("/imports/new", methods=["GET", "POST"])
@require_permission("clients.edit")
def new_import():
    form = UploadForm()
    status = 200
    if form.validate_on_submit():
        upload = form.file.data
        try:
            record = imports.create_import(
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
            return redirect(url_for("client_files.import_detail", import_id=record.id), 303)
    if request.method == "POST":
        status = 422
    return render_page("clients/import_new.html", status=status, form=form)


def _detail(record, form=None, status=200):
    form = form or mapping_form(record)
    rows, problem, file_error, upload_form = [], None, None, None
    if record.status == "unreadable":
        # The worker refused the file: the reason next to a new upload.
        upload_form = UploadForm(formdata=None)
        upload_form.file.errors = [record.error or "This file cannot be imported."]
    if record.status in imports.EDITABLE_STATUSES:
        mapping = _submitted_mapping(form, record)
        problem = import_mapping.mapping_problem(mapping)
        try:
            rows = imports.preview(db.session, g.tenant, record, mapping)
        except import_files.ImportFileError as error:
            file_error = str(error)
    return render_page(
        "clients/import_detail.html",
        status=status,
        form=form,
        client_fields=[f for f in import_mapping.FIELDS if not f.contact],
        contact_fields=[f for f in import_mapping.FIELDS if f.contact],
        custom_fields=[(_input_name(f.key), f) for f in _custom_import_fields()],
        rows=rows,
        problem=problem,
        file_error=file_error,
        field_labels=import_mapping.FIELD_LABELS,
        upload_form=upload_form,
        **_progress_context(record),
    )


def _progress_context(record) -> dict:
    processed = record.processed_rows or 0
    unchanged = (
        processed
        - (record.inserted_rows or 0)
        - (record.updated_rows or 0)
        - (record.failed_rows or 0)
    )
    return {
        "record": record,
        "status_label": STATUS_LABELS.get(record.status, record.status),
        "active": record.status in (*imports.ACTIVE_STATUSES, "reading"),
        "stuck": imports.is_stuck(record, g.tenant.id),
        "unchanged": max(unchanged, 0),
        "clients_url": _clients_list_url(),
        "form_key": new_form_key(),
    }


@blueprint.route("/imports/<int:import_id>", methods=["GET", "POST"])
@require_permission("clients.edit")
def import_detail(import_id: int):
    record = _import_or_404(import_id)
    if request.method == "GET":
        return _detail(record)
    if record.status not in imports.EDITABLE_STATUSES:
        toast("This import has started; its columns can no longer change.", "error")
        return redirect(url_for("client_files.import_detail", import_id=record.id), 303)
    form = mapping_form(record, request.form)
    if form.validate_on_submit():
        mapping = _submitted_mapping(form, record)
        problem = import_mapping.mapping_problem(mapping)
        if problem is None:
            imports.save_mapping(db.session, record, mapping)
            toast("Columns saved. Check the preview, then start the import.")
            return redirect(url_for("client_files.import_detail", import_id=record.id), 303)
        form.map_full_name.errors = [*form.map_full_name.errors, problem]
    return _detail(record, form=form, status=422)


@blueprint.post("/imports/<int:import_id>/start")
@require_permission("clients.edit")
def start_import(import_id: int):
    record = _import_or_404(import_id)
    try:
        # A repeat of the same form changes nothing and is answered as the first post was.
        imports.start_import(db.session, record, form_key_or_none(request.form.get("form_key")))
    except import_files.ImportFileError as error:
        toast(str(error), "error")
    else:
        toast(f"Importing {record.filename}. You can leave this page; it goes on.")
    return redirect(url_for("client_files.import_detail", import_id=record.id), 303)


@blueprint.get("/imports/<int:import_id>/progress")
@require_permission("clients.edit")
def import_progress(import_id: int):
    record = _import_or_404(import_id)
    if not wants_fragment():
        return redirect(url_for("client_files.import_detail", import_id=record.id))
    if record.status == "reading":
        return render_template("clients/_import_reading.html", **_progress_context(record))
    if request.args.get("reading"):
        # Read (or refused): the whole page changes, to the columns and the preview.
        return Response("", headers={"HX-Refresh": "true"})
    return render_template("clients/_import_progress.html", **_progress_context(record))


@blueprint.get("/imports/<int:import_id>/errors.csv")
@require_permission("clients.edit")
def import_errors(import_id: int):
    record = _import_or_404(import_id)
    rows = [["line", "field", "reason"]] + [
        [
            error.line,
            exports.safe_cell(imports.error_label(record, error.field)),
            exports.safe_cell(error.reason),
        ]
        for error in imports.import_errors(db.session, record.id)
    ]
    stem = record.filename.rsplit(".", 1)[0] or "clients"
    return Response(
        "\ufeff" + "".join(exports.csv_lines(rows)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{ascii_stem(stem)}-errors.csv"'},
    )


def ascii_stem(text: str) -> str:
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in text)
    return cleaned.strip("-")[:80] or "clients"


@blueprint.get("/export.<any(csv, xlsx):fmt>")
@require_permission("clients.view")
def export(fmt: str):
    args = request.args.to_dict()
    filters = ClientFilters.from_args(args, list_fields(db.session, "clients"))
    names = exports.ExportNames.load(db.session, g.tenant.id)
    filename = exports.export_filename(g.tenant, fmt)
    if fmt == "xlsx":
        return xlsx_download(
            lambda out: exports.export_xlsx(db.session, filters, names, out), filename
        )
    return csv_download(
        g.tenant.id,
        # The fields again, read by the stream's own session (the request's are gone with it).
        lambda session: exports.export_csv(
            session, ClientFilters.from_args(args, list_fields(session, "clients")), names
        ),
        filename,
    )
