"""Invoice and credit note PDFs: the printed tax invoice, rendered by WeasyPrint from plain data
and stored in the tenant's storage by a worker, and the credit note (adjustment note in
Australia), rendered on demand.

- The templates (`templates/invoicing/pdf.html`, `templates/pdf/credit_note.html`, both on
  `templates/pdf/_tax_document.html`) get dicts and strings, never models: money is formatted
  here for the tenant's locale, so a worker renders exactly what a request would. Their style
  (`templates/pdf/tax_document.css`) is parsed once per brand colour, and WeasyPrint's font
  configuration is kept per thread: both were remade for every PDF (bench/README.md).
- WeasyPrint fetches nothing on its own: `_fetcher` serves the tenant's logo from the tenant's
  storage, the vendored Noto fonts of India's scripts (`templates/pdf/fonts.css`, added to
  every PDF) and `data:` URLs, and refuses `file:`, `http(s):` and everything else.
- Indian tenants with a UPI VPA get a UPI QR code on INR invoices (the NPCI deep link, with
  the amount still owed and the invoice number prefilled), drawn from a PNG of one pixel per
  module without interpolation: as sharp as an SVG and much cheaper to render.
- Issuing asks for the PDF and a sweep catches what never reached a worker
  (`app.invoicing.pdf_requests`). The download view renders on demand what is missing or out
  of date, so a download never fails for want of a worker.
- A stored PDF's key carries the amount due it was rendered for (the QR and the balance line
  show it), so after a payment or a credit note the next download renders a fresh one. Keys
  also carry a random part: a file written by a transaction that rolls back is removed
  (`save_in_transaction`) without touching a file a committed row points at.
- Drafts (marked DRAFT) and void invoices (marked VOID) are rendered on the fly, never stored.
"""

from __future__ import annotations

import atexit
import functools
import io
import logging
import re
import secrets
import threading
from base64 import b64encode
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import segno
from flask import current_app, render_template
from sqlalchemy.orm import Session
from stdnum.au import abn as au_abn

from app.clients.models import Client
from app.core.money import format_money, to_money
from app.core.regions import state_name
from app.core.storage import delete_after_commit, get_storage, save_in_transaction, tenant_key
from app.core.terminology import worded
from app.custom_fields.services import labelled_values
from app.invoicing.balance import outstanding
from app.invoicing.credits import credit_notes_of_invoice
from app.invoicing.models import CreditNote, Invoice
from app.invoicing.pdf_requests import UNSTORED_STATUSES, is_storable
from app.settings.branding import Branding, branding_of
from app.settings.models import WorkspaceSettings
from app.settings.services import workspace_settings
from tenants.binding import bound_tenant_id, schema_for_tenant_id

log = logging.getLogger(__name__)

TEMPLATE = "invoicing/pdf.html"
CREDIT_NOTE_TEMPLATE = "pdf/credit_note.html"
STYLESHEET = "pdf/tax_document.css"  # of both, parsed once per brand colour
TAX_INVOICE_COUNTRIES = ("IN", "AU")
LOGO_TYPES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}
LOGO_URL = "tenant-asset:logo"
FONTS_STYLESHEET = "pdf/fonts.css"
FONT_URL = "vendored-font:"
# India's scripts, each in its Noto Sans face (static/vendor/fonts): family -> file stem.
SCRIPT_FONTS = {
    f"Noto Sans {script}": f"NotoSans{script}"
    for script in ("Devanagari", "Bengali", "Gujarati", "Tamil", "Telugu", "Kannada")
}
FONT_FILES = frozenset(
    f"{stem}-{weight}.ttf" for stem in SCRIPT_FONTS.values() for weight in ("Regular", "Bold")
)
# DejaVu Sans first: it has Latin and the rupee sign; a glyph it lacks comes from the
# script's own face.
FONT_STACK = ", ".join(f'"{family}"' for family in ("DejaVu Sans", *SCRIPT_FONTS))
MAX_LOGO_BYTES = 2 * 1024 * 1024
QR_MASK = 4  # any of 0-7 is valid: see upi_qr_image
UPI_NOTE_LENGTH = 50  # apps show at most about this much of `tn`
# An issued invoice without a PDF this long after issue is one no worker rendered.
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
DEFAULT_COLOUR = "#1f5f8b"
_DUE_IN_KEY = re.compile(r"\.due-([0-9]+\.[0-9]{2})\.[0-9a-f]+\.pdf$")
_per_thread = threading.local()


# The environment ---------------------------------------------------------------------------


def fast_font_subsetting() -> bool:
    """Whether WeasyPrint subsets fonts with HarfBuzz (Debian's libharfbuzz-subset0, HarfBuzz
    4.1+). Without it WeasyPrint falls back to fontTools, about four times slower per PDF.
    WeasyPrint looks the library up once, at import, with cffi's dlopen (`text/ffi.py`), and
    `pdf/fonts.py` uses it when present and new enough; this asks the same two questions."""
    # WeasyPrint takes ~0.65 s to import: only a process that renders a PDF pays it.
    from weasyprint.text.ffi import (
        harfbuzz,
        harfbuzz_subset,
    )

    return harfbuzz_subset is not None and bool(harfbuzz.hb_version_atleast(4, 1, 0))


# Plain data for the template ---------------------------------------------------------------


def brand_colour(value: str | None) -> str:
    # The column is checked by the database; checked again because it goes into CSS.
    return value if value and _COLOUR.fullmatch(value) else DEFAULT_COLOUR


def _day(value: date | None) -> str:
    return value.strftime("%d %b %Y") if value else "—"


def pdf_filename(invoice: Invoice | CreditNote) -> str:
    """INV/26-27/00001 -> INV-26-27-00001.pdf (CN/... alike); a draft -> draft-<id>.pdf."""
    stem = re.sub(r"[^A-Za-z0-9-]+", "-", invoice.number).strip("-") if invoice.number else ""
    return f"{stem or f'draft-{invoice.id}'}.pdf"


def shows_upi_qr(
    tenant, workspace: WorkspaceSettings, invoice: Invoice, amount_due: Decimal
) -> bool:
    return bool(
        (tenant.country or "").upper() == "IN"
        and workspace.upi_vpa
        and invoice.currency == "INR"
        and invoice.number
        and invoice.status not in UNSTORED_STATUSES
        and amount_due > 0
    )


def payee_name(tenant, workspace: WorkspaceSettings) -> str:
    return workspace.legal_name or tenant.name


def upi_link(tenant, workspace: WorkspaceSettings, invoice: Invoice, amount_due: Decimal) -> str:
    """The NPCI UPI deep link (UPI Linking Specification): payee address and name, the amount
    still owed with two decimals, INR, a note and the invoice number as the reference. Every
    value is percent-encoded (a space is %20, `/` in the number is %2F): UPI apps parse the
    query themselves and not all of them read `+` as a space."""
    note = f"Invoice {invoice.number}"[:UPI_NOTE_LENGTH]
    params = [
        ("pa", workspace.upi_vpa.strip()),
        ("pn", payee_name(tenant, workspace)),
        ("am", f"{to_money(amount_due):.2f}"),
        ("cu", "INR"),
        ("tn", note),
        ("tr", invoice.number),
    ]
    # `@` stays readable in the VPA; everything else that is not unreserved is encoded.
    query = "&".join(
        f"{name}={quote(value, safe='@' if name == 'pa' else '')}" for name, value in params
    )
    return f"upi://pay?{query}"


def upi_qr_image(link: str) -> str:
    """The QR code as a `data:` URL of a PNG with one pixel per module, drawn by the
    template at its printed size with `image-rendering: pixelated` (no interpolation: sharp
    edges at any size, as a vector would be). Measured: an inline SVG of the same code cost
    ~60 ms more per PDF (WeasyPrint parses the HTML and the SVG path in Python), twice the
    rest of the template's overhead over a plain invoice (bench/README.md, invoice_pdf)."""
    # Error correction M: survives a crease or a smudge on paper, still small enough to scan.
    # A fixed mask pattern: scanners read all eight, and scoring the eight to pick the "best"
    # (segno's default) was most of this function's ~10 ms per invoice.
    code = segno.make(link, error="m", micro=False, mask=QR_MASK)
    return code.png_data_uri(scale=1, border=2)


def _tax_id(country: str, abn: str | None) -> str | None:
    if not abn:
        return None
    if country == "AU":
        try:
            return au_abn.format(abn)
        except Exception:
            return abn
    return abn


def _supplier(tenant, workspace: WorkspaceSettings, invoice: Invoice) -> dict:
    country = (tenant.country or "").upper()
    ids = []
    if country == "IN":
        gstin = invoice.supplier_gstin or workspace.gstin
        if gstin:
            ids.append(("GSTIN", gstin))
        if workspace.pan:
            ids.append(("PAN", workspace.pan))
    elif country == "AU" and workspace.abn:
        ids.append(("ABN", _tax_id("AU", workspace.abn)))
    if workspace.tax_number and not ids:
        ids.append((TAX_NUMBER_NAMES.get(country, "Tax number"), workspace.tax_number))
    return {
        "name": workspace.legal_name or tenant.name,
        "trading_name": tenant.name
        if workspace.legal_name and workspace.legal_name != tenant.name
        else None,
        "address": workspace.address or "",
        "ids": ids,
    }


def _recipient(client, invoice: Invoice, supplier_country: str) -> dict:

    lines = [
        client.address_line1,
        client.address_line2,
        " ".join(p for p in (client.city, client.postal_code) if p),
        state_name(client.region) or client.region if client.country == "IN" else client.region,
        client.country if client.country != supplier_country else None,
    ]
    ids = []
    if invoice.recipient_gstin:
        ids.append(("GSTIN", invoice.recipient_gstin))
    elif supplier_country == "IN" and client.country == "IN":
        ids.append(("GSTIN", "Unregistered"))
    if client.abn:
        ids.append(("ABN", _tax_id("AU", client.abn)))
    elif client.tax_registration and not invoice.recipient_gstin:
        ids.append(("Tax id", client.tax_registration))
    return {"name": client.full_name, "address": [line for line in lines if line], "ids": ids}


TAX_COLUMNS = {
    "intra": [("CGST", "cgst"), ("SGST", "sgst")],
    "inter": [("IGST", "igst")],
    "export": [("IGST", "igst")],
    "au_gst": [("GST", "other_tax")],
    "other": [("Tax", "other_tax")],
}
# What a country calls its one plain tax and a supplier's tax id where the invoice has no
# columns or ids of its own for them (the Philippines: VAT, and the BIR's TIN).
OTHER_TAX_NAMES = {"PH": "VAT"}
TAX_NUMBER_NAMES = {"PH": "TIN"}


def _tax_document(session: Session, tenant, invoice: Invoice, lines, totals) -> dict:
    """What the invoice and its credit notes print alike: the parties, the supply, the lines
    and the tax totals, with the taxes in the invoice's columns (CGST + SGST, IGST, GST...).
    `lines` are invoice or credit note lines; `totals` the invoice or the note."""

    country = (tenant.country or "").upper()
    currency = invoice.currency
    workspace = workspace_settings(session, tenant.id)

    def money(amount) -> str:
        return format_money(amount, currency, country)

    columns = TAX_COLUMNS[invoice.tax_regime]
    if invoice.tax_regime == "other" and country in OTHER_TAX_NAMES:
        columns = [(OTHER_TAX_NAMES[country], "other_tax")]
    # A quantity column only when some line has a quantity other than one: milestone lines are
    # one of each, and credit note lines have none (they credit an amount).
    quantities = [getattr(line, "quantity", None) for line in lines]
    rows = [
        {
            "position": line.position,
            "description": line.description,
            "hsn_sac": line.hsn_sac or "",
            "quantity": f"{quantity.normalize():f}" if quantity is not None else "",
            "taxable_value": money(line.taxable_value),
            "rate": f"{line.tax_rate:.2f}%",
            "taxes": [money(getattr(line, field)) for _, field in columns],
            "total": money(line.total),
        }
        for line, quantity in zip(lines, quantities, strict=True)
    ]
    return {
        "country": country,
        "has_logo": bool(logo_key(workspace)),
        "logo_url": LOGO_URL,
        **_layout(branding_of(workspace)),
        "supplier": _supplier(tenant, workspace, invoice),
        "recipient": _recipient(session.get(Client, invoice.client_id), invoice, country),
        "place_of_supply": (
            f"{invoice.place_of_supply} – {state_name(invoice.place_of_supply)}"
            if invoice.place_of_supply
            else None
        ),
        "reverse_charge": "Yes" if invoice.reverse_charge else "No",
        "regime": invoice.tax_regime,
        "tax_labels": [label for label, _ in columns],
        "lines": rows,
        "show_quantity": any(q is not None and q != 1 for q in quantities),
        "totals": [("Taxable value", money(totals.subtotal))]
        + [(label, money(getattr(totals, field))) for label, field in columns],
        "total": money(totals.total),
        "amount_in_words": totals.amount_in_words,
    }


def _layout(branding: Branding) -> dict:
    """The workspace's layout choices that every tax document honours (the payment details'
    choice is the invoice's alone: a credit note has nothing to pay)."""
    return {
        "brand_colour": brand_colour(branding.brand_colour),
        "paper_size": branding.pdf_paper_size,
        "logo_position": branding.pdf_logo_position,
        "footer_note": branding.pdf_footer_note,
    }


def invoice_document(session: Session, tenant, invoice: Invoice) -> dict:
    """Everything the printed invoice shows, as plain values."""

    document = _tax_document(session, tenant, invoice, invoice.lines, invoice)
    country = document["country"]

    def money(amount) -> str:
        return format_money(amount, invoice.currency, country)

    issued = invoice.status not in ("draft",)
    amount_due = outstanding(session, invoice) if issued else to_money(invoice.total)
    notes = credit_notes_of_invoice(session, invoice.id) if issued else []
    credited = sum((to_money(note.total) for note in notes), Decimal("0.00"))
    written_off = to_money(invoice.written_off_amount or 0)
    # What the amount due is short of the total by, less credit notes and write-off: cash + TDS.
    paid = to_money(invoice.total) - amount_due - credited - written_off
    workspace = workspace_settings(session, tenant.id)
    prints_payment_details = workspace.pdf_payment_details
    upi = None
    if prints_payment_details and shows_upi_qr(tenant, workspace, invoice, amount_due):
        link = upi_link(tenant, workspace, invoice, amount_due)
        upi = {
            "link": link,
            "qr": upi_qr_image(link),
            "vpa": workspace.upi_vpa,
            "amount": money(amount_due),
        }
    lut = invoice.lut_reference or workspace.lut_reference
    return document | {
        "title": "Tax invoice" if country in TAX_INVOICE_COUNTRIES else "Invoice",
        "mark": {"draft": "DRAFT", "void": "VOID"}.get(invoice.status),
        "number": invoice.number or "Draft",
        "issue_date": _day(invoice.issue_date),
        "due_date": _day(invoice.due_date),
        "export_note": (
            "Supply meant for export under LUT without payment of IGST"
            + (f" (LUT {lut})" if lut else "")
            if invoice.tax_regime == "export"
            else None
        ),
        "total_label": "Total (GST inclusive)" if invoice.tax_regime == "au_gst" else "Total",
        "paid": money(paid) if paid > 0 else None,
        "credit_notes": [
            {"number": note.number, "date": _day(note.issue_date), "amount": money(note.total)}
            for note in notes
        ],
        "credited": money(credited) if notes else None,
        "written_off": money(written_off) if written_off > 0 else None,
        # The balance line shows once anything has reduced what the invoice asks for.
        "shows_balance": paid > 0 or bool(notes) or written_off > 0,
        "amount_due": money(amount_due),
        "amount_due_value": amount_due,
        "payment_instructions": (
            (workspace.payment_instructions or "") if prints_payment_details else ""
        ),
        "upi": upi,
        # The workspace's own invoice fields marked "print on the invoice", filled in.
        "custom_rows": labelled_values(
            session, "invoices", invoice.custom_fields or {}, only_printed=True
        ),
    }


def credit_note_title(tenant) -> str:
    # The ATO's name for the document that records a decreasing GST adjustment (GST Act
    # s.29-75) is "adjustment note"; GST India (CGST Act s.34) and everyone else: credit note.
    return "Adjustment note" if (tenant.country or "").upper() == "AU" else "Credit note"


def credit_note_document(session: Session, tenant, note: CreditNote) -> dict:
    """Everything the printed credit note shows, as plain values: the invoice's parties, supply
    and tax columns, the invoice it reduces (number and date) and why."""
    invoice = session.get(Invoice, note.invoice_id)
    document = _tax_document(session, tenant, invoice, note.lines, note)
    adjustment = invoice.tax_regime == "au_gst"
    legal_note = None
    if document["country"] == "IN":
        legal_note = (
            f"Credit note under section 34 of the CGST Act, 2017: it reduces the "
            f"taxable value and tax of invoice {invoice.number}."
        )
    return document | {
        "title": credit_note_title(tenant),
        "mark": None,
        "number": note.number,
        "issue_date": _day(note.issue_date),
        "invoice_number": invoice.number,
        "invoice_date": _day(invoice.issue_date),
        "reason": note.reason,
        "total_label": "Total adjustment (GST inclusive)" if adjustment else "Total credited",
        "legal_note": legal_note,
    }


# Rendering ---------------------------------------------------------------------------------


def logo_key(workspace: WorkspaceSettings) -> str | None:
    key = workspace.logo_key
    # Only a file in this tenant's own folder, whatever the column says.
    if key and key.startswith(f"{schema_for_tenant_id(workspace.tenant_id)}/"):
        return key
    return None


def _logo_bytes(workspace: WorkspaceSettings) -> tuple[bytes, str] | None:
    key = logo_key(workspace)
    if key is None:
        return None
    try:
        with get_storage(current_app).open(key) as stream:
            data = stream.read(MAX_LOGO_BYTES + 1)
    except (FileNotFoundError, ValueError):
        log.warning(
            "logo %s of tenant %s is missing; rendering without it", key, workspace.tenant_id
        )
        return None
    if len(data) > MAX_LOGO_BYTES:
        log.warning(
            "logo of tenant %s is over %d bytes; rendering without it",
            workspace.tenant_id,
            MAX_LOGO_BYTES,
        )
        return None
    head = data[:16].lstrip()
    mime = next((m for magic, m in LOGO_TYPES.items() if data.startswith(magic)), None)
    if mime is None and (head.startswith(b"<svg") or head.startswith(b"<?xml")):
        mime = "image/svg+xml"
    if mime is None:
        return None
    return data, mime


def _fetcher_for(workspace: WorkspaceSettings | None):
    """WeasyPrint's only way out: the tenant's logo (none without a workspace), the vendored
    fonts and inline `data:` URLs, nothing else (`file:`, `http(s):` and the rest are refused
    before any handler sees them)."""
    # WeasyPrint takes ~0.65 s to import: only a process that renders a PDF pays it.
    from weasyprint.urls import (
        URLFetcher,
        URLFetcherResponse,
    )

    class TenantAssetFetcher(URLFetcher):
        def fetch(self, url, headers=None):
            if url == LOGO_URL:
                logo = _logo_bytes(workspace) if workspace is not None else None
                if logo is None:
                    raise ValueError("no logo")
                return URLFetcherResponse(url, logo[0], {"Content-Type": logo[1]})
            if url.startswith(FONT_URL):
                return URLFetcherResponse(url, _vendored_font(url.removeprefix(FONT_URL)))
            return super().fetch(url, headers)

    return TenantAssetFetcher(allowed_protocols={"data"}, allow_redirects=False)


@functools.cache
def _vendored_font(name: str) -> bytes:
    """A font file of static/vendor/fonts, by its name from FONT_FILES only (nothing else of
    the disk is reachable this way); read once per process."""
    if name not in FONT_FILES:
        raise ValueError(f"no vendored font {name!r}")
    return (Path(current_app.static_folder) / "vendor" / "fonts" / name).read_bytes()


def _font_config():
    """WeasyPrint's font configuration, made once per thread and kept. By default WeasyPrint
    makes one for every PDF: fontconfig's configuration and font list loaded again and a new
    Pango font map whose font and shaping caches start cold, ~10 ms of each invoice (a tenth of
    it: bench/README.md, invoice_pdf). One per thread because Pango objects are not
    thread-safe. The fonts of India's scripts (`fonts.css`'s `@font-face` rules) are added to
    it once, when it is made; no page declares a web font of its own, so it does not grow."""
    config = getattr(_per_thread, "font_config", None)
    if config is None:
        # WeasyPrint takes ~0.65 s to import: only a process that renders a PDF pays it.
        from weasyprint import CSS
        from weasyprint.text.fonts import (
            FontConfiguration,
        )

        config = FontConfiguration()
        CSS(string=_fonts_css(), font_config=config, url_fetcher=_fetcher_for(None))
        _per_thread.font_config = config
        if threading.current_thread() is threading.main_thread():
            # Its fonts sit in a temporary folder it removes when it is dropped: dropped here,
            # before the interpreter tears down the modules that removal needs.
            atexit.register(_per_thread.__dict__.pop, "font_config", None)
    return config


@functools.lru_cache(maxsize=64)
def _parsed_stylesheet(css: str):
    # WeasyPrint only reads a parsed stylesheet, so one can serve every PDF of every thread.
    # WeasyPrint takes ~0.65 s to import: only a process that renders a PDF pays it.
    from weasyprint import CSS

    return CSS(string=css)


def tax_document_css(colour: str, paper_size: str = "A4") -> str:
    # Both values are the workspace's checked choices: a #rrggbb colour, "A4" or "letter".
    return current_app.jinja_env.get_template(STYLESHEET).render(brand=colour, paper=paper_size)


def tax_document_stylesheet(colour: str, paper_size: str = "A4"):
    """The invoice's and credit note's style in the brand colour on the chosen paper, parsed
    once per colour and size rather than with every PDF (keyed by its text, so an edited file
    is parsed anew)."""
    return _parsed_stylesheet(tax_document_css(colour, paper_size))


def _fonts_css() -> str:
    return current_app.jinja_env.get_template(FONTS_STYLESHEET).render(
        faces=SCRIPT_FONTS.items(), font_url=FONT_URL, stack=FONT_STACK
    )


def fonts_stylesheet():
    """The font family of every PDF (`templates/pdf/fonts.css`), parsed once (its faces are
    in the thread's font configuration, `_font_config`)."""
    return _parsed_stylesheet(_fonts_css())


def html_to_pdf(html: str, workspace: WorkspaceSettings, stylesheet=None) -> bytes:
    """The page as PDF; it may show the workspace's logo and nothing else from outside, in
    fonts that write India's scripts as well as Latin."""
    # WeasyPrint takes ~0.65 s to import: only a process that renders a PDF pays it.
    from weasyprint import HTML

    stylesheets = [fonts_stylesheet()]
    if stylesheet is not None:
        stylesheets.append(stylesheet)
    return HTML(string=html, url_fetcher=_fetcher_for(workspace)).write_pdf(
        stylesheets=stylesheets, font_config=_font_config()
    )


def tax_document_pdf(template: str, document: dict, workspace: WorkspaceSettings) -> bytes:
    """An invoice or credit note document (`invoice_document`, `credit_note_document`) as PDF."""
    html = render_template(template, doc=document)
    stylesheet = tax_document_stylesheet(document["brand_colour"], document["paper_size"])
    return html_to_pdf(html, workspace, stylesheet)


def render_pdf(session: Session, tenant, invoice: Invoice) -> bytes:
    """The invoice as PDF bytes (A4 or US Letter, as the workspace chose). Needs an app
    context (templates, storage)."""
    document = invoice_document(session, tenant, invoice)
    return tax_document_pdf(TEMPLATE, document, workspace_settings(session, tenant.id))


def render_credit_note_pdf(session: Session, tenant, note: CreditNote) -> bytes:
    """The credit note (an adjustment note in Australia) as PDF bytes, rendered on demand: a
    note never changes once issued, and it is rendered only when someone asks for it."""
    document = credit_note_document(session, tenant, note)
    return tax_document_pdf(CREDIT_NOTE_TEMPLATE, document, workspace_settings(session, tenant.id))


# The branding page's preview ---------------------------------------------------------------

PREVIEW_STYLESHEET = "pdf/page_preview.css"
# A page's size in the browser's preview, as @page sets it for WeasyPrint.
PAPER_DIMENSIONS = {"A4": ("210mm", "297mm"), "letter": ("215.9mm", "279.4mm")}
SAMPLE_LINES = (
    ("Design phase: drawings and approvals", Decimal("40000.00")),
    ("Build phase: first {milestone}", Decimal("25000.00")),
)
SAMPLE_RATES = {"IN": Decimal("18"), "AU": Decimal("10")}
SAMPLE_REGIMES = {"IN": "intra", "AU": "au_gst"}


def _sample_document(tenant, workspace: WorkspaceSettings, branding: Branding) -> dict:
    """A made-up invoice from this workspace to a sample client, as plain values in the shape
    `invoice_document` gives the template: what the preview shows, nothing read from records."""
    country = (tenant.country or "").upper()
    currency = tenant.currency or "INR"
    regime = SAMPLE_REGIMES.get(country, "other")
    rate = SAMPLE_RATES.get(country, Decimal("0"))
    columns = TAX_COLUMNS[regime]

    def money(amount) -> str:
        return format_money(amount, currency, country)

    def taxes_of(amount: Decimal) -> list[Decimal]:
        tax = to_money(amount * rate / 100)
        halves = to_money(tax / 2)
        return [halves, tax - halves] if len(columns) == 2 else [tax]

    lines, subtotal, tax_totals = [], Decimal("0.00"), [Decimal("0.00")] * len(columns)
    for position, (description, amount) in enumerate(SAMPLE_LINES, start=1):
        taxes = taxes_of(amount)
        subtotal += amount
        tax_totals = [total + tax for total, tax in zip(tax_totals, taxes, strict=True)]
        lines.append(
            {
                "position": position,
                "description": worded(description),
                "hsn_sac": "998311",
                "quantity": "",
                "taxable_value": money(amount),
                "rate": f"{rate:.2f}%",
                "taxes": [money(tax) for tax in taxes],
                "total": money(amount + sum(taxes)),
            }
        )
    total = subtotal + sum(tax_totals)
    logo = _logo_bytes(workspace)
    upi = None
    if branding.pdf_payment_details and country == "IN" and workspace.upi_vpa:
        link = f"upi://pay?pa={quote(workspace.upi_vpa, safe='@')}&am={total:.2f}&cu=INR"
        upi = {"link": link, "qr": upi_qr_image(link), "vpa": workspace.upi_vpa}
        upi["amount"] = money(total)
    instructions = workspace.payment_instructions or "Your payment instructions print here."
    return {
        "country": country,
        **_layout(branding),
        "has_logo": logo is not None,
        "logo_url": f"data:{logo[1]};base64,{b64encode(logo[0]).decode()}" if logo else None,
        "supplier": _supplier(tenant, workspace, SimpleNamespace(supplier_gstin=None)),
        "recipient": {
            "name": worded("Sample {Client} Pvt Ltd"),
            "address": ["1 Sample Road"],
            "ids": [],
        },
        "place_of_supply": None,
        "reverse_charge": "No",
        "regime": regime,
        "tax_labels": [label for label, _ in columns],
        "lines": lines,
        "show_quantity": False,
        "totals": [("Taxable value", money(subtotal))]
        + [(label, money(tax)) for (label, _), tax in zip(columns, tax_totals, strict=True)],
        "total": money(total),
        "amount_in_words": None,
        "title": "Tax invoice" if country in TAX_INVOICE_COUNTRIES else "Invoice",
        "mark": None,
        "number": "SAMPLE-0001",
        "issue_date": _day(date.today()),
        "due_date": _day(date.today()),
        "export_note": None,
        "total_label": "Total",
        "shows_balance": False,
        "credit_notes": [],
        "custom_rows": [],
        "payment_instructions": instructions if branding.pdf_payment_details else "",
        "upi": upi,
    }


def invoice_preview_html(tenant, workspace: WorkspaceSettings, branding: Branding) -> str:
    """The first page of a sample invoice in `branding` (saved or not) as one HTML document:
    the invoice's own template and style, plus a screen style that draws the page at its paper
    size with the footer note at its foot. HTML rather than a PNG from WeasyPrint: it takes a
    few milliseconds where a WeasyPrint render takes a tenth of a second or more (and
    WeasyPrint writes no PNG since version 53), so the preview keeps up with typing."""
    document = _sample_document(tenant, workspace, branding)
    width, height = PAPER_DIMENSIONS[document["paper_size"]]
    css = tax_document_css(document["brand_colour"], document["paper_size"])
    page_css = current_app.jinja_env.get_template(PREVIEW_STYLESHEET).render(
        width=width, height=height
    )
    return render_template(TEMPLATE, doc=document, preview_css=css + page_css)


# Storing -----------------------------------------------------------------------------------


def stored_pdf_is_current(invoice: Invoice, amount_due: Decimal) -> bool:
    """The stored PDF was rendered for this amount due (the key says which)."""
    if not invoice.pdf_key:
        return False
    found = _DUE_IN_KEY.search(invoice.pdf_key)
    return found is not None and Decimal(found.group(1)) == to_money(amount_due)


def store_pdf(session: Session, tenant, invoice: Invoice) -> bytes:
    """Render the issued invoice, store it in the tenant's storage and point the invoice at
    it (the previous file is deleted once this transaction commits). Returns the PDF."""
    if not is_storable(invoice):
        raise ValueError(f"a {invoice.status} invoice is rendered on the fly, not stored")
    if bound_tenant_id(session) != tenant.id:
        raise ValueError("the session is not bound to this invoice's tenant")
    document = invoice_document(session, tenant, invoice)
    data = tax_document_pdf(TEMPLATE, document, workspace_settings(session, tenant.id))
    stem = pdf_filename(invoice).removesuffix(".pdf")
    due = document["amount_due_value"]
    name = f"{stem}.due-{due:.2f}.{secrets.token_hex(6)}.pdf"
    key = tenant_key(tenant.id, "invoices", invoice.id, name)
    storage = get_storage(current_app)
    save_in_transaction(session, storage, key, io.BytesIO(data))
    if invoice.pdf_key and invoice.pdf_key != key:
        delete_after_commit(session, storage, invoice.pdf_key)
    invoice.pdf_key = key
    invoice.pdf_rendered_at = datetime.now(UTC)
    session.flush()
    return data


def read_stored_pdf(invoice: Invoice) -> bytes | None:
    if not invoice.pdf_key:
        return None
    try:
        with get_storage(current_app).open(invoice.pdf_key) as stream:
            return stream.read()
    except (FileNotFoundError, ValueError):
        return None


def current_pdf(session: Session, tenant, invoice: Invoice) -> bytes:
    """What a download serves: the stored PDF when it is current; else rendered now (and
    stored, for an issued invoice). Drafts and void invoices are always rendered now."""
    if not is_storable(invoice):
        return render_pdf(session, tenant, invoice)
    if stored_pdf_is_current(invoice, outstanding(session, invoice)):
        data = read_stored_pdf(invoice)
        if data is not None:
            return data
    return store_pdf(session, tenant, invoice)


def render_and_store(session: Session, tenant, invoice_id: int) -> str | None:
    """The worker's part: store the PDF of an issued invoice unless a current one is stored.
    Returns the key, or None when there is nothing to store (a draft, void, or gone)."""
    invoice = session.get(Invoice, invoice_id)
    if invoice is None or not is_storable(invoice):
        return None
    if stored_pdf_is_current(invoice, outstanding(session, invoice)):
        return invoice.pdf_key
    store_pdf(session, tenant, invoice)
    return invoice.pdf_key


# Handing the job to a worker after commit --------------------------------------------------


def warn_if_slow_font_subsetting() -> bool:
    """For the worker's start: say loudly when PDFs will take the slow font path."""
    fast = fast_font_subsetting()
    if not fast:
        log.warning(
            "WeasyPrint has no HarfBuzz subsetting library (Debian: libharfbuzz-subset0, "
            "HarfBuzz 4.1+): invoice PDFs fall back to fontTools and render about 4x slower. "
            "Run `make system-packages` as root, or install it with your package manager."
        )
    return fast
