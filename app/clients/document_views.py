"""A client's documents: the Documents tab (a fragment for htmx, a page otherwise), uploads,
new versions, downloads and soft deletes."""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import DateField, StringField
from wtforms.validators import Optional

from app.clients import documents, services
from app.core.clock import tenant_today
from app.core.pages import render_page, toast
from app.core.storage import get_storage
from app.extensions import db
from tenants.context import can, require_permission

log = logging.getLogger(__name__)

blueprint = Blueprint(
    "client_documents", __name__, url_prefix="/t/<tenant_slug>/clients/<int:client_id>/documents"
)
# The request body of an upload may hold the largest file and the few other fields; anything
# bigger is refused before it is read (and before it is spooled to disk).
UPLOAD_REQUEST_LIMIT = documents.MAX_FILE_BYTES + 1024 * 1024
FILE_HINT = f"{documents.FILE_TYPES_LABEL}; up to {documents.MAX_FILE_LABEL}."
BAD_DATE = "Enter the date as YYYY-MM-DD."


class DocumentForm(FlaskForm):
    # The token is checked for every POST by CSRFProtect and sits in the form as a plain
    # hidden input (the version forms of one page would otherwise repeat id="csrf_token").
    class Meta:
        csrf = False

    title = StringField("Title", render_kw={"maxlength": documents.TITLE_LENGTH[1]})
    category = StringField(
        "Category (optional)",
        render_kw={"list": "document-categories", "maxlength": documents.CATEGORY_LENGTH},
    )
    expires_on = DateField("Expires on (optional)", validators=[Optional()])
    file = FileField("File", description=FILE_HINT, render_kw={"accept": documents.ACCEPT})


class VersionForm(FlaskForm):
    """Prefixed with the document id, so that every row's fields have their own ids."""

    class Meta:
        csrf = False

    file = FileField("New version", description=FILE_HINT, render_kw={"accept": documents.ACCEPT})
    expires_on = DateField("New expiry date (optional)", validators=[Optional()])


@blueprint.url_value_preprocessor
def _limit_upload_size(endpoint, values):
    # Runs before CSRFProtect reads the form, so the limit applies to that first read.
    if request.method == "POST":
        request.max_content_length = UPLOAD_REQUEST_LIMIT


def _storage():
    return get_storage(current_app)


def _client_or_404(client_id: int):
    client = services.get_client(db.session, client_id)
    if client is None:
        abort(404)
    return client


def _document_or_404(client, document_id: int):
    document = documents.get_document(db.session, client, document_id)
    if document is None:
        abort(404)
    return document


def _client_url(client_id: int) -> str:
    return url_for("clients.detail", client_id=client_id, tab="documents")


def _back_to_documents(client_id: int):
    """htmx swaps the tab fragment; a plain form post goes back to where the tab lives."""
    if request.headers.get("HX-Request"):
        return redirect(url_for("client_documents.index", client_id=client_id), 303)
    return redirect(_client_url(client_id), 303)


def _page(client, form=None, version_forms=None, status=200):
    today = tenant_today(db.session)
    form = form or DocumentForm(formdata=None)
    form.expires_on.render_kw = {"min": today.isoformat()}
    rows = documents.list_documents(db.session, client)
    version_forms = version_forms or {}
    for document in rows:
        version_form = version_forms.setdefault(
            document.id, VersionForm(formdata=None, prefix=f"v{document.id}")
        )
        version_form.expires_on.render_kw = {"min": today.isoformat()}
    return render_page(
        "clients/documents.html",
        block="documents_tab",
        status=status,
        client=client,
        documents=rows,
        form=form,
        version_forms=version_forms,
        today=today,
        expiry_badge=documents.expiry_badge,
        categories=documents.CATEGORIES,
        client_url=_client_url(client.id),
    )


def _uploaded(field) -> documents.UploadedFile | None:
    data = field.data
    if data is None or not getattr(data, "filename", None):
        return None
    return documents.UploadedFile(filename=data.filename, stream=data.stream)


def _show_errors(form, errors: dict[str, str]) -> None:
    for name, message in errors.items():
        getattr(form, name).errors = [message]


@blueprint.get("/")
@require_permission("clients.view")
def index(client_id: int):
    return _page(_client_or_404(client_id))


@blueprint.post("/")
@require_permission("clients.edit")
def upload(client_id: int):
    client = _client_or_404(client_id)
    form = DocumentForm()
    form.validate()  # parses the date; the rules are the service's
    today = tenant_today(db.session)
    fields = {
        "title": form.title.data,
        "category": form.category.data,
        "expires_on": form.expires_on.data,
        "upload": _uploaded(form.file),
    }
    if form.expires_on.errors:
        _, errors = documents.check_document(today=today, **{**fields, "expires_on": None})
        errors["expires_on"] = BAD_DATE
    else:
        try:
            document = documents.upload_document(
                db.session,
                _storage(),
                client,
                today=today,
                uploaded_by_user_id=current_user.id,
                **fields,
            )
        except documents.DocumentError as error:
            errors = error.errors
        else:
            toast(f"{document.title} uploaded.")
            return _back_to_documents(client.id)
    for f in form:
        f.errors = []
    _show_errors(form, errors)
    return _page(client, form=form, status=422)


@blueprint.post("/<int:document_id>/versions")
@require_permission("clients.edit")
def upload_version(client_id: int, document_id: int):
    client = _client_or_404(client_id)
    document = _document_or_404(client, document_id)
    form = VersionForm(prefix=f"v{document.id}")
    form.validate()
    errors = {"expires_on": BAD_DATE} if form.expires_on.errors else {}
    if not errors:
        try:
            version = documents.upload_version(
                db.session,
                _storage(),
                document,
                upload=_uploaded(form.file),
                today=tenant_today(db.session),
                expires_on=form.expires_on.data,
                uploaded_by_user_id=current_user.id,
            )
        except documents.DocumentError as error:
            errors = error.errors
        else:
            toast(f"{document.title}: version {version.version} uploaded.")
            return _back_to_documents(client.id)
    for f in form:
        f.errors = []
    _show_errors(form, errors)
    return _page(client, version_forms={document.id: form}, status=422)


@blueprint.get("/<int:document_id>/versions/<int:version>/download")
@require_permission("clients.view")
def download(client_id: int, document_id: int, version: int):
    client = _client_or_404(client_id)
    document = _document_or_404(client, document_id)
    found = documents.get_version(db.session, document, version)
    if found is None:
        abort(404)
    try:
        stream = documents.open_version(_storage(), found)
    except FileNotFoundError:
        log.error(
            "file of document %s version %s is missing: %s", document.id, version, found.storage_key
        )
        abort(404)
    response = send_file(
        stream,
        mimetype=found.content_type,
        as_attachment=True,
        download_name=found.filename,
        etag=found.sha256,
        last_modified=found.uploaded_at,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    # Never rendered as a page of this site, even if a browser were talked into it.
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@blueprint.post("/<int:document_id>/delete")
@require_permission("clients.edit")
def delete(client_id: int, document_id: int):
    client = _client_or_404(client_id)
    document = _document_or_404(client, document_id)
    documents.delete_document(db.session, document)
    toast(f"{document.title} deleted.")
    return _back_to_documents(client.id)


@blueprint.errorhandler(RequestEntityTooLarge)
def upload_too_large(error):
    """A body over the limit is refused unread: the form says so next to the file field."""
    client_id = (request.view_args or {}).get("client_id")
    client = services.get_client(db.session, client_id) if client_id else None
    if client is None or not can("clients.edit"):
        return render_template(
            "errors/page.html", code=413, title="Too large", text="That upload is too large."
        ), 413
    message = f"The file is larger than {documents.MAX_FILE_LABEL}."
    document_id = (request.view_args or {}).get("document_id")
    document = documents.get_document(db.session, client, document_id) if document_id else None
    if document is not None:
        form = VersionForm(formdata=None, prefix=f"v{document.id}")
        form.file.errors = [message]
        return _page(client, version_forms={document.id: form}, status=422)
    form = DocumentForm(formdata=None)
    form.file.errors = [message]
    return _page(client, form=form, status=422)
