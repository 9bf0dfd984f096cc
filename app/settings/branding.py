"""The workspace's branding, on one settings page with a live preview: its logo (kept by
`app.settings.services`), its colour, the footer of every e-mail its clients get, and the
invoice PDF's layout (paper size, where the logo sits, whether the payment details are printed,
a note at the foot of each page).

`clean_branding` is the one place the rules live; the page and its preview show its errors by
field. `preview_branding` reads unsaved choices for the preview and saves nothing. The e-mail
dress (`dress_email`) is rendered here, below the areas that send e-mail, so that delivery and
the preview render the very same thing. The invoice preview is invoicing's to draw: it fills
the port `register_invoice_preview` when the app is made (settings sits below invoicing)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from flask import current_app, render_template
from sqlalchemy.orm import Session

from app.core.storage import Storage
from app.settings.models import WorkspaceSettings
from app.settings.services import BRAND_COLOUR, LOGO_MAX_BYTES, logo_content_type
from tenants.binding import schema_for_tenant_id

PAPER_SIZES = (("A4", "A4 (210 × 297 mm)"), ("letter", "US Letter (8.5 × 11 in)"))
LOGO_POSITIONS = (("left", "Left, above your name"), ("right", "Right, above the title"))
EMAIL_FOOTER_MAX_CHARS = 500
EMAIL_FOOTER_MAX_LINES = 6
PDF_FOOTER_NOTE_MAX_CHARS = 120
FIELDS = (
    "brand_colour",
    "email_footer",
    "pdf_paper_size",
    "pdf_logo_position",
    "pdf_payment_details",
    "pdf_footer_note",
)
EMAIL_TEMPLATE = "email/_branded.html"
# The logo's Content-ID inside an e-mail (RFC 2392): the HTML part shows it as cid:<this>.
EMAIL_LOGO_CID = "workspace-logo@duebook.local"
# Control characters a footer has no use for (tabs and line breaks are handled apart).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Branding:
    """A workspace's branding as plain values: what the PDFs and e-mails dress themselves in."""

    brand_colour: str = "#1f5f8b"
    email_footer: str | None = None
    pdf_paper_size: str = "A4"
    pdf_logo_position: str = "left"
    pdf_payment_details: bool = True
    pdf_footer_note: str | None = None


def branding_of(workspace: WorkspaceSettings) -> Branding:
    return Branding(**{name: getattr(workspace, name) for name in FIELDS})


def form_values(workspace: WorkspaceSettings) -> dict[str, str]:
    values = {name: getattr(workspace, name) for name in FIELDS}
    values["pdf_payment_details"] = "1" if workspace.pdf_payment_details else ""
    return {name: "" if value is None else str(value) for name, value in values.items()}


def _footer(values: Mapping, errors: dict) -> str | None:
    text = _CONTROL.sub("", (values.get("email_footer") or "").replace("\r\n", "\n"))
    lines = [line.strip() for line in text.strip().split("\n")]
    if len(lines) > EMAIL_FOOTER_MAX_LINES:
        errors["email_footer"] = f"At most {EMAIL_FOOTER_MAX_LINES} lines."
    footer = "\n".join(lines).strip()
    if len(footer) > EMAIL_FOOTER_MAX_CHARS:
        errors["email_footer"] = f"At most {EMAIL_FOOTER_MAX_CHARS} characters."
    return footer or None


def clean_branding(values: Mapping) -> tuple[dict, dict[str, str]]:
    """The branding from a submitted form, and the errors by field."""
    errors: dict[str, str] = {}
    colour = (values.get("brand_colour") or "").strip().lower()
    if not BRAND_COLOUR.match(colour):
        errors["brand_colour"] = "A colour as #rrggbb, e.g. #1f5f8b."
    paper = values.get("pdf_paper_size") or "A4"
    if paper not in dict(PAPER_SIZES):
        errors["pdf_paper_size"] = "Choose A4 or US Letter."
    position = values.get("pdf_logo_position") or "left"
    if position not in dict(LOGO_POSITIONS):
        errors["pdf_logo_position"] = "Choose left or right."
    note = " ".join(_CONTROL.sub("", values.get("pdf_footer_note") or "").split())
    if len(note) > PDF_FOOTER_NOTE_MAX_CHARS:
        errors["pdf_footer_note"] = f"At most {PDF_FOOTER_NOTE_MAX_CHARS} characters."
    out = {
        "brand_colour": colour,
        "email_footer": _footer(values, errors),
        "pdf_paper_size": paper,
        "pdf_logo_position": position,
        "pdf_payment_details": bool(values.get("pdf_payment_details")),
        "pdf_footer_note": note or None,
    }
    return out, errors


def save_branding(session: Session, workspace: WorkspaceSettings, values: Mapping) -> dict:
    """Apply the branding when every choice is valid (the audit log records the change, as
    for every flush of the request); otherwise change nothing and return the errors."""
    out, errors = clean_branding(values)
    if errors:
        return errors
    for name, value in out.items():
        setattr(workspace, name, value)
    session.flush()
    return {}


def preview_branding(workspace: WorkspaceSettings, values: Mapping) -> tuple[Branding, dict]:
    """The branding as the form stands, saved nowhere: each valid choice as typed, each
    invalid one as saved (its error is shown beside it), so the preview never breaks."""
    out, errors = clean_branding(values)
    valid = {name: value for name, value in out.items() if name not in errors}
    return replace(branding_of(workspace), **valid), errors


# The e-mail's dress --------------------------------------------------------------------------


def dress_email(
    text: str, html: str | None, branding: Branding, sender: str, logo_src: str | None
) -> tuple[str, str | None]:
    """A message to a client as it leaves: the HTML part under a band in the brand colour
    with the logo (else the sender's name), the footer under both parts. The footer is the
    workspace's plain text, escaped in the HTML (the template autoescapes it)."""
    if branding.email_footer:
        text = f"{text.rstrip()}\n\n-- \n{branding.email_footer}\n"
    if html is None:
        return text, None
    dressed = render_template(
        EMAIL_TEMPLATE,
        body=html,
        colour=branding.brand_colour,
        sender=sender,
        logo_src=logo_src,
        footer_lines=(branding.email_footer or "").split("\n") if branding.email_footer else [],
    )
    return text, dressed


def workspace_logo(storage: Storage, workspace: WorkspaceSettings) -> tuple[bytes, str] | None:
    """The logo's bytes and type, read from the workspace's own folder only; None when it has
    none or the file is gone (the e-mail then shows the sender's name)."""
    key = workspace.logo_key
    if not key or not key.startswith(f"{schema_for_tenant_id(workspace.tenant_id)}/"):
        return None
    try:
        with storage.open(key) as stream:
            data = stream.read(LOGO_MAX_BYTES + 1)
    except (FileNotFoundError, ValueError):
        current_app.logger.warning("logo %s is missing; the e-mail shows the name instead", key)
        return None
    if len(data) > LOGO_MAX_BYTES:
        return None
    return data, logo_content_type(key)


# The invoice preview: a port invoicing fills -------------------------------------------------

# (the tenant, its settings row, the branding to show) -> the invoice's first page as HTML.
InvoicePreview = Callable[[object, WorkspaceSettings, Branding], str]
_invoice_preview: list[InvoicePreview] = []


def register_invoice_preview(draw: InvoicePreview) -> None:
    _invoice_preview[:] = [draw]


def invoice_preview_html(tenant, workspace: WorkspaceSettings, branding: Branding) -> str:
    if not _invoice_preview:
        raise RuntimeError("no invoice preview registered (app.invoicing.hooks)")
    return _invoice_preview[0](tenant, workspace, branding)
