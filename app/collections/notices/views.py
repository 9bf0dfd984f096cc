"""The notice pages: the list with finance's filters and bulk approval, a notice with its
invoices, interest, history, message status, actions, notes and attachments, its letters as
PDFs, and the fragments the client and invoice pages include."""

from __future__ import annotations

import io
import logging

from flask import Blueprint, abort, current_app, g, redirect, request, send_file, url_for
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import DateField

from app.clients.documents import MAX_FILE_BYTES, MAX_FILE_LABEL, UploadedFile
from app.clients.models import Client
from app.clients.picker import SEARCH_FIELD, client_picker
from app.collections.cases import interest_claims
from app.collections.models import CollectionLevel
from app.collections.notices import letters, statement
from app.collections.notices import services as notices
from app.collections.notices.forms import (
    CloseForm,
    FileForm,
    LinkForm,
    NotesForm,
    ResendForm,
    ResponseForm,
    show_errors,
)
from app.core.clock import tenant_today
from app.core.pages import render_page, toast
from app.core.prepared import prepared_statements
from app.core.storage import get_storage
from app.core.terminology import term, title_term, worded
from app.custom_fields.views import record_section, section_context
from app.extensions import db
from app.invoicing.models import Invoice
from tenants.context import can, require_permission

log = logging.getLogger(__name__)

blueprint = Blueprint("notices", __name__, url_prefix="/t/<tenant_slug>/notices")
UPLOAD_REQUEST_LIMIT = MAX_FILE_BYTES + 1024 * 1024
BAD_DATE = "Enter the date as YYYY-MM-DD."


@blueprint.url_value_preprocessor
def _limit_upload_size(endpoint, values):
    # Before CSRFProtect reads the form, so the limit applies to that first read.
    if request.method == "POST":
        request.max_content_length = UPLOAD_REQUEST_LIMIT


def _notice_or_404(notice_id: int):
    notice = notices.get_notice(db.session, notice_id)
    if notice is None:
        abort(404)
    return notice


def _may_approve_legal() -> bool:
    return can(notices.LEGAL_APPROVAL)


def _back(notice_id: int):
    return redirect(url_for("notices.detail", notice_id=notice_id), 303)


# The list -----------------------------------------------------------------------------------


@blueprint.get("/")
@require_permission("notices.view")
def index():
    filters = notices.clean_filters(request.args)
    searching = bool((request.args.get(SEARCH_FIELD) or "").strip())
    # The list's filters are choices (no text to search); only the client picker searches.
    with prepared_statements(db.session, enabled=not searching):
        page = notices.list_notices(db.session, filters, tenant_today(db.session))
        notices.follow_notices(db.session, g.tenant.id, [row.notice for row in page.rows])
        return render_page(
            "notices/index.html",
            block="notice_results",
            filters=filters,
            page=page,
            choices=notices.filter_choices(db.session),
            picker=client_picker(
                db.session, request.args.get(SEARCH_FIELD), filters.client_id, every_client=True
            ),
            statuses=notices.STATUS_LABELS,
            next_steps=notices.NEXT_STEPS,
            channels=notices.CHANNEL_LABELS,
            overdue_ranges=notices.OVERDUE_RANGES,
            may_approve_legal=_may_approve_legal(),
        )


@blueprint.post("/approve")
@require_permission("notices.manage")
def approve_selected():
    ids = [int(v) for v in request.form.getlist("notice_ids") if v.isdigit() and len(v) < 19]
    if not ids:
        toast("Select the drafts to approve.", "error")
        return redirect(url_for("notices.index", **request.args), 303)
    approved, refused = notices.approve_many(
        db.session, g.tenant.id, ids, current_user.id, may_approve_legal=_may_approve_legal()
    )
    if approved:
        toast(
            f"{len(approved)} {term('notice' if len(approved) == 1 else 'notices')} approved "
            "and sent."
        )
    refusal = worded(notices.LEGAL_APPROVAL_REFUSAL)
    legal = sum(1 for why in refused.values() if why == refusal)
    if len(refused) > legal:
        toast(f"{len(refused) - legal} not approved: only drafts can be approved.", "error")
    if legal:
        toast(
            f"{legal} legal {term('notice' if legal == 1 else 'notices')} not approved: only "
            "owners, admins and finance can approve them.",
            "error",
        )
    return redirect(url_for("notices.index", **request.args), 303)


# One notice ---------------------------------------------------------------------------------


def _page(notice, status: int = 200, **forms):
    session = db.session
    notices.follow_notices(session, g.tenant.id, [notice])
    today = tenant_today(session)
    lines = statement.notice_lines(session, notice, today)
    message = notices.outbox_message(session, g.tenant.id, notice.message_id)
    names = notices.user_names(
        session,
        [notice.approved_by, notice.assigned_user_id] + [a.created_by for a in notice.attachments],
    )
    forms.setdefault("response_form", ResponseForm(formdata=None))
    forms.setdefault("close_form", CloseForm(formdata=None))
    forms.setdefault("notes_form", NotesForm(formdata=None, notes=notice.notes))
    forms.setdefault("file_form", FileForm(formdata=None))
    forms.setdefault("link_form", LinkForm(formdata=None))
    forms.setdefault("resend_form", ResendForm(formdata=None, contact_id=str(notice.contact_id)))
    forms["resend_form"].contact_id.choices = [
        (str(c.id), f"{c.full_name} · {c.email if notice.channel == 'email' else c.phone}")
        for c in notices.resend_contacts(session, notice)
    ]
    forms["response_form"].response_date.render_kw = {"max": today.isoformat()}
    return render_page(
        "notices/detail.html",
        status=status,
        notice=notice,
        client=session.get(Client, notice.client_id),
        level=session.get(CollectionLevel, notice.level_id),
        lines=lines,
        sums=statement.totals(lines, notice.fee_amount),
        interest_methods=statement.interest_methods(lines),
        claims=interest_claims.interest_claims(
            session, invoice_ids=[item.invoice_id for item in notice.items]
        ),
        message=message,
        names=names,
        next_step=notices.next_step(notice),
        next_steps=notices.NEXT_STEPS,
        statuses=notices.STATUS_LABELS,
        channels=notices.CHANNEL_LABELS,
        close_labels=notices.CLOSE_LABELS,
        attachments=[a for a in notice.attachments if a.removed_at is None],
        msefc=letters.msefc_applies(session, g.tenant, notice),
        may_send=_may_approve_legal() or not notices.is_legal_stage(session, notice),
        failed=message is not None and message.status in notices.FAILED_MESSAGE_STATUSES,
        custom_section=section_context(
            "notices", notice, url=_custom_url(notice.id), may_edit=can("notices.manage")
        ),
        **forms,
    )


def _custom_url(notice_id: int) -> str:
    return url_for("notices.custom_section", notice_id=notice_id)


@blueprint.route("/<int:notice_id>/custom-fields", methods=["GET", "POST"])
@require_permission("notices.view")
def custom_section(notice_id: int):
    """The notice's own fields (Settings → Custom fields): shown, or edited in place. Filled
    in before the notice goes out, its message can say them ({{ notice.custom.<key> }})."""
    notice = _notice_or_404(notice_id)
    return record_section(
        "notices",
        notice,
        url=_custom_url(notice.id),
        page_url=url_for("notices.detail", notice_id=notice.id),
        title=f"{title_term('notice')}: {notice.level_name}",
        may_edit=can("notices.manage"),
    )


@blueprint.get("/<int:notice_id>")
@require_permission("notices.view")
def detail(notice_id: int):
    return _page(_notice_or_404(notice_id))


def _act(notice_id: int, action, done: str):
    """Run one lifecycle action; a refusal is shown on the page (409), nothing changed. A
    legal-stage notice that the person may not let go out is a 403."""
    notice = _notice_or_404(notice_id)
    try:
        action(notice)
    except notices.LegalApprovalRequired:
        abort(403)
    except notices.NoticeError as error:
        toast(str(error), "error")
        return _page(notice, status=409)
    toast(done)
    return _back(notice.id)


@blueprint.post("/<int:notice_id>/approve")
@require_permission("notices.manage")
def approve(notice_id: int):
    def run(notice):
        notices.approve(db.session, notice, current_user.id, may_approve_legal=_may_approve_legal())
        notices.request_sending(db.session, g.tenant.id, [notice.id])

    return _act(notice_id, run, "Approved; it goes out in a moment.")


@blueprint.post("/<int:notice_id>/send")
@require_permission("notices.manage")
def send_now(notice_id: int):
    def run(notice):
        if notice.status == "draft":
            notices.approve(
                db.session, notice, current_user.id, may_approve_legal=_may_approve_legal()
            )
        elif notice.status != "approved" or notice.channel in notices.TASK_CHANNELS:
            raise notices.NoticeError("Only an approved message or letter can be sent.")
        else:
            notices.check_may_send(db.session, notice, _may_approve_legal())
        notices.request_sending(db.session, g.tenant.id, [notice.id])

    return _act(notice_id, run, "Sending; the status follows on this page.")


@blueprint.post("/<int:notice_id>/resend")
@require_permission("notices.manage")
def resend(notice_id: int):
    def run(notice, form):
        raw = form.contact_id.data or ""
        notices.resend(
            db.session,
            g.tenant,
            notice,
            current_user.id,
            int(raw) if raw.isdigit() and len(raw) < 19 else None,
            may_approve_legal=_may_approve_legal(),
        )

    done = "Queued again as a new message; the status follows on this page."
    return _form_action(notice_id, "resend_form", ResendForm(), run, done)


@blueprint.post("/<int:notice_id>/posted")
@require_permission("notices.manage")
def mark_posted(notice_id: int):
    return _act(notice_id, lambda n: notices.mark_sent(db.session, n), "Marked posted.")


@blueprint.post("/<int:notice_id>/escalate")
@require_permission("notices.manage")
def escalate(notice_id: int):
    return _act(
        notice_id,
        lambda n: notices.escalate(db.session, n, tenant_today(db.session)),
        "Escalated: the next level is taken at the next run.",
    )


def _form_action(notice_id: int, form_name: str, form, action, done: str):
    """A form's action: errors next to their fields (422), else back to the notice."""
    notice = _notice_or_404(notice_id)
    form.validate()
    errors = {
        name: BAD_DATE if isinstance(f, DateField) else f.errors[0]
        for name, f in form._fields.items()
        if f.errors
    }
    if not errors:
        try:
            action(notice, form)
        except notices.LegalApprovalRequired:
            abort(403)
        except notices.NoticeError as error:
            errors = error.errors
        else:
            toast(done)
            return _back(notice.id)
    for field in form:
        field.errors = []
    show_errors(form, errors)
    if "" in errors:
        toast(errors[""], "error")
    return _page(notice, status=422, **{form_name: form})


@blueprint.post("/<int:notice_id>/response")
@require_permission("notices.manage")
def record_response(notice_id: int):
    def run(notice, form):
        notices.record_response(
            db.session,
            notice,
            responded_on=form.response_date.data,
            note=form.response_note.data,
            today=tenant_today(db.session),
        )

    return _form_action(notice_id, "response_form", ResponseForm(), run, "Response recorded.")


@blueprint.post("/<int:notice_id>/close")
@require_permission("notices.manage")
def close(notice_id: int):
    def run(notice, form):
        notices.close(
            db.session,
            notice,
            form.reason.data,
            form.note.data,
            current_user.full_name,
            tenant_today(db.session),
        )

    return _form_action(notice_id, "close_form", CloseForm(), run, "Notice closed.")


@blueprint.post("/<int:notice_id>/notes")
@require_permission("notices.manage")
def save_notes(notice_id: int):
    def run(notice, form):
        notices.save_notes(db.session, notice, form.notes.data)

    return _form_action(notice_id, "notes_form", NotesForm(), run, "Notes saved.")


# Attachments --------------------------------------------------------------------------------


@blueprint.post("/<int:notice_id>/attachments")
@require_permission("notices.manage")
def upload(notice_id: int):
    def run(notice, form):
        data = form.file.data
        upload = (
            UploadedFile(filename=data.filename, stream=data.stream)
            if data is not None and getattr(data, "filename", None)
            else None
        )
        notices.add_file(
            db.session,
            get_storage(current_app),
            notice,
            title=form.title.data,
            upload=upload,
            user_id=current_user.id,
        )

    return _form_action(notice_id, "file_form", FileForm(), run, "File attached.")


@blueprint.post("/<int:notice_id>/links")
@require_permission("notices.manage")
def add_link(notice_id: int):
    def run(notice, form):
        notices.add_link(
            db.session, notice, title=form.title.data, url=form.url.data, user_id=current_user.id
        )

    return _form_action(notice_id, "link_form", LinkForm(), run, "Link added.")


def _attachment_or_404(notice, attachment_id: int):
    attachment = notices.get_attachment(db.session, notice, attachment_id)
    if attachment is None:
        abort(404)
    return attachment


@blueprint.post("/<int:notice_id>/attachments/<int:attachment_id>/remove")
@require_permission("notices.manage")
def remove_attachment(notice_id: int, attachment_id: int):
    notice = _notice_or_404(notice_id)
    attachment = _attachment_or_404(notice, attachment_id)
    notices.remove_attachment(db.session, attachment, current_user.id)
    toast(f"{attachment.title} removed.")
    return _back(notice.id)


@blueprint.get("/<int:notice_id>/attachments/<int:attachment_id>/download")
@require_permission("notices.view")
def download_attachment(notice_id: int, attachment_id: int):
    notice = _notice_or_404(notice_id)
    attachment = _attachment_or_404(notice, attachment_id)
    if attachment.kind != "file":
        abort(404)
    try:
        stream = get_storage(current_app).open(attachment.storage_key)
    except (FileNotFoundError, ValueError):
        log.error("file of notice attachment %s is missing", attachment.id)
        abort(404)
    response = send_file(
        stream,
        mimetype=attachment.content_type,
        as_attachment=True,
        download_name=attachment.filename,
        etag=attachment.sha256,
    )
    return _locked_down(response)


def _locked_down(response):
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@blueprint.errorhandler(RequestEntityTooLarge)
def upload_too_large(error):
    notice_id = (request.view_args or {}).get("notice_id")
    notice = notices.get_notice(db.session, notice_id) if notice_id else None
    if notice is None:
        abort(413)
    form = FileForm(formdata=None)
    form.file.errors = [f"The file is larger than {MAX_FILE_LABEL}."]
    return _page(notice, status=422, file_form=form)


# Letters ------------------------------------------------------------------------------------


def _pdf(data: bytes, filename: str):
    response = send_file(
        io.BytesIO(data), mimetype="application/pdf", as_attachment=True, download_name=filename
    )
    return _locked_down(response)


@blueprint.get("/<int:notice_id>/letter.pdf")
@require_permission("notices.view")
def letter_pdf(notice_id: int):
    notice = _notice_or_404(notice_id)
    data = letters.current_letter(db.session, g.tenant, notice)
    return _pdf(data, letters.letter_filename(notice))


@blueprint.get("/<int:notice_id>/msefc-pack.pdf")
@require_permission("notices.view")
def msefc_pack_pdf(notice_id: int):
    notice = _notice_or_404(notice_id)
    if not letters.msefc_applies(db.session, g.tenant, notice):
        abort(404)
    data = letters.render_msefc_pack(db.session, g.tenant, notice)
    return _pdf(data, letters.msefc_pack_filename(notice))


# Fragments for the client and invoice pages -------------------------------------------------


def _fragment(rows, empty: str, **context):
    return render_page(
        "notices/_notices_fragment.html",
        rows=rows,
        empty=empty,
        statuses=notices.STATUS_LABELS,
        channels=notices.CHANNEL_LABELS,
        next_steps=notices.NEXT_STEPS,
        next_step=notices.next_step,
        **context,
    )


@blueprint.get("/client/<int:client_id>")
@require_permission("notices.view")
def client_notices(client_id: int):
    client = db.session.get(Client, client_id)
    if client is None or client.deleted_at is not None:
        abort(404)
    rows = notices.notices_of(db.session, client_id=client.id)
    return _fragment(rows, worded("No {notices} for this {client} yet."), client=client)


@blueprint.get("/invoice/<int:invoice_id>")
@require_permission("notices.view")
def invoice_notices(invoice_id: int):
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None:
        abort(404)
    rows = notices.notices_of(db.session, invoice_id=invoice.id)
    return _fragment(rows, worded("No {notices} for this invoice yet."), invoice=invoice)
