"""Settings → Branding (admins): the logo, the brand colour, the e-mail footer and the invoice
PDF's layout on one page, with a live preview beside the form.

As the admin types, htmx posts the form to `preview` (nothing is saved there): it answers the
preview pane, whose two frames load the e-mail and the invoice's first page for those choices
from `email_preview` and `invoice_preview`, and each field's error out of band. Those two are
documents of their own so that they can carry their inline styles under a policy of their own
(sandboxed, no scripts, images only inline), as the Messages page's e-mail view does."""

from __future__ import annotations

from base64 import b64encode

from flask import Blueprint, current_app, g, redirect, request, url_for

from app.core.pages import render_page, toast
from app.core.storage import get_storage
from app.core.terminology import worded
from app.extensions import db
from app.settings import branding, services
from tenants.context import require_permission

blueprint = Blueprint("branding", __name__, url_prefix="/t/<tenant_slug>/settings/branding")

SAMPLE_EMAIL = (
    "Dear Sample {Client},\n\n"
    "Please find attached invoice SAMPLE-0001 for the design phase.\n\n"
    "Thank you for your business."
)
# The previews are framed by this site only, run nothing and load nothing from outside.
PREVIEW_POLICY = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
)


def _preview_args(shown: branding.Branding) -> dict:
    """The choices the preview frames are to show, as their query string."""
    args = {name: getattr(shown, name) for name in branding.FIELDS}
    args["pdf_payment_details"] = "1" if shown.pdf_payment_details else ""
    return {name: value for name, value in args.items() if value is not None}


def _page(values=None, errors=None, logo_error=None, status=200):
    workspace = services.workspace_settings(db.session, g.tenant.id)
    shown, _ = branding.preview_branding(workspace, values) if values else (None, None)
    return render_page(
        "settings/branding.html",
        status=status,
        tenant=g.tenant,
        workspace=workspace,
        values=values or branding.form_values(workspace),
        errors=errors or {},
        logo_error=logo_error,
        paper_sizes=branding.PAPER_SIZES,
        logo_positions=branding.LOGO_POSITIONS,
        footer_max_chars=branding.EMAIL_FOOTER_MAX_CHARS,
        footer_max_lines=branding.EMAIL_FOOTER_MAX_LINES,
        note_max_chars=branding.PDF_FOOTER_NOTE_MAX_CHARS,
        preview_args=_preview_args(shown or branding.branding_of(workspace)),
    )


@blueprint.get("/")
@require_permission("settings.manage")
def index():
    return _page()


@blueprint.post("/")
@require_permission("settings.manage")
def save():
    workspace = services.workspace_settings(db.session, g.tenant.id)
    errors = branding.save_branding(db.session, workspace, request.form)
    if errors:
        return _page(values=request.form.to_dict(), errors=errors, status=422)
    toast("Branding saved. E-mails and new PDFs use it from now on.")
    return redirect(url_for("branding.index"), 303)


@blueprint.post("/preview")
@require_permission("settings.manage")
def preview():
    """The preview pane for the form as it stands, and each field's error; saves nothing."""
    workspace = services.workspace_settings(db.session, g.tenant.id)
    shown, errors = branding.preview_branding(workspace, request.form)
    return render_page(
        "settings/branding_preview.html",
        preview_args=_preview_args(shown),
        errors=errors,
        fields=branding.FIELDS,
    )


def _framed(html: str):
    response = current_app.make_response(html)
    response.headers["Content-Security-Policy"] = PREVIEW_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _logo_data_url(workspace) -> str | None:
    logo = branding.workspace_logo(get_storage(current_app), workspace)
    return f"data:{logo[1]};base64,{b64encode(logo[0]).decode()}" if logo else None


@blueprint.get("/preview/email")
@require_permission("settings.manage")
def email_preview():
    """A sample e-mail to a client in the branding the query string gives (invalid choices:
    the saved ones), exactly as delivery dresses one."""
    workspace = services.workspace_settings(db.session, g.tenant.id)
    shown, _ = branding.preview_branding(workspace, request.args)
    sample_email = worded(SAMPLE_EMAIL)
    text, html = branding.dress_email(
        sample_email,
        "".join(f"<p>{paragraph}</p>" for paragraph in sample_email.split("\n\n")),
        shown,
        services.sender_name(g.tenant, workspace),
        _logo_data_url(workspace),
    )
    return _framed(f"<!doctype html><html><body>{html}</body></html>")


@blueprint.get("/preview/invoice")
@require_permission("settings.manage")
def invoice_preview():
    """The first page of a sample invoice in the branding the query string gives, drawn from
    the invoice PDF's own template and style."""
    workspace = services.workspace_settings(db.session, g.tenant.id)
    shown, _ = branding.preview_branding(workspace, request.args)
    return _framed(branding.invoice_preview_html(g.tenant, workspace, shown))


@blueprint.post("/logo")
@require_permission("settings.manage")
def upload_logo():
    upload = request.files.get("logo")
    try:
        if upload is None:
            raise services.SettingsError("Choose an image file for the logo.")
        services.save_logo(db.session, get_storage(current_app), g.tenant, upload.stream)
    except services.SettingsError as error:
        return _page(logo_error=str(error), status=422)
    toast("Logo saved.")
    return redirect(url_for("branding.index"), 303)


@blueprint.post("/logo/remove")
@require_permission("settings.manage")
def remove_logo():
    services.remove_logo(db.session, get_storage(current_app), g.tenant)
    toast("Logo removed.")
    return redirect(url_for("branding.index"), 303)
