"""Notice letters as PDFs: the statement of account every level prints (and e-mails), the
demand letter of the legal level, and for Indian micro and small suppliers the MSME Samadhaan /
MSEFC-ready pack (supplier's Udyam details, buyer, each invoice with its acceptance date, the
s.15 due date and the s.16 interest schedule by monthly rest).

Rendered by WeasyPrint like the invoice (`app.invoicing.pdf`): templates get plain, already
formatted values, never models; the only things fetched are the tenant's logo (from its own
storage folder) and `data:` URLs. A letter that goes with a message is rendered by the worker
that sends it and stored under the notice (`store_letter`); a download of a notice that has
none stored renders it there and then."""

from __future__ import annotations

import io
import re
import secrets
from datetime import date, timedelta
from decimal import Decimal

from flask import current_app, render_template
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.collections.cases.interest import (
    MSME_PROTECTED,
    acceptance_date,
    msmed_start,
    rounding_sentence,
)
from app.collections.models import CollectionLevel, CollectionNotice, CollectionSettings
from app.collections.notices.statement import (
    interest_methods,
    notice_lines,
    payment_link,
    totals,
)
from app.core.clock import tenant_today
from app.core.money import format_money
from app.core.regions import state_name
from app.core.storage import get_storage, save_in_transaction, tenant_key
from app.core.terminology import title_term
from app.invoicing.pdf import (
    LOGO_URL,
    brand_colour,
    html_to_pdf,
    logo_key,
    shows_upi_qr,
    upi_qr_image,
)
from app.settings.models import WorkspaceSettings
from app.settings.services import workspace_settings

DEMAND_DAYS = 15
BASIS_NAMES = {
    "none": "No interest",
    "simple": "Simple interest",
    "compound": "Compound interest, monthly rests",
    "msmed": "MSMED Act 2006 s.16: compound interest with monthly rests at 3 × the RBI bank rate",
}


def _day(value: date | None) -> str:
    return value.strftime("%d %b %Y") if value else "—"


def letter_filename(notice: CollectionNotice) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "-", notice.level_name).strip("-").lower() or "notice"
    return f"notice-{notice.id}-{stem}.pdf"


def msefc_pack_filename(notice: CollectionNotice) -> str:
    return f"notice-{notice.id}-msefc-pack.pdf"


def _settings(session: Session) -> CollectionSettings | None:
    return session.get(CollectionSettings, 1)


def msefc_applies(session: Session, tenant, notice: CollectionNotice) -> bool:
    """The MSEFC pack is for the legal level of an Indian supplier registered as micro or small
    (with its Udyam number)."""
    level = session.get(CollectionLevel, notice.level_id)
    settings = _settings(session)
    return bool(
        level is not None
        and level.is_legal
        and (tenant.country or "").upper() == "IN"
        and settings is not None
        and settings.msme_category in MSME_PROTECTED
        and settings.udyam_number
    )


def _supplier(tenant, workspace: WorkspaceSettings) -> dict:
    country = (tenant.country or "").upper()
    ids = []
    if country == "IN":
        if workspace.gstin:
            ids.append(("GSTIN", workspace.gstin))
        if workspace.pan:
            ids.append(("PAN", workspace.pan))
    elif country == "AU" and workspace.abn:
        ids.append(("ABN", workspace.abn))
    elif workspace.tax_number:
        ids.append(("Tax number", workspace.tax_number))
    return {
        "name": workspace.legal_name or tenant.name,
        "address": workspace.address or "",
        "ids": ids,
    }


def _recipient(client: Client) -> dict:

    region = state_name(client.region) or client.region if client.country == "IN" else client.region
    lines = [
        client.address_line1,
        client.address_line2,
        " ".join(p for p in (client.city, client.postal_code) if p),
        region,
    ]
    ids = [
        (label, value)
        for label, value in (("GSTIN", client.gstin), ("PAN", client.pan), ("ABN", client.abn))
        if value
    ]
    return {"name": client.full_name, "address": [line for line in lines if line], "ids": ids}


def letter_document(
    session: Session, tenant, notice: CollectionNotice, as_of: date | None = None
) -> dict:
    """Everything a notice's letter shows, as plain values."""

    as_of = as_of or tenant_today(session)
    country = (tenant.country or "IN").upper()
    currency = notice.currency

    def money(amount) -> str:
        return format_money(amount, currency, country)

    level = session.get(CollectionLevel, notice.level_id)
    client = session.get(Client, notice.client_id)
    lines = notice_lines(session, notice, as_of)
    sums = totals(lines, notice.fee_amount)
    workspace = workspace_settings(session, tenant.id)
    upi = None
    link = payment_link(tenant, workspace, notice, lines, sums["total"])
    if link and lines and shows_upi_qr(tenant, workspace, lines[0].invoice, sums["total"]):
        upi = {
            "link": link,
            "qr": upi_qr_image(link),
            "vpa": workspace.upi_vpa,
            "amount": money(sums["total"]),
        }
    legal = bool(level is not None and level.is_legal)
    return {
        "kind": "demand" if legal else "statement",
        "title": "Notice of demand" if legal else "Statement of account",
        "brand_colour": brand_colour(workspace.brand_colour),
        "has_logo": bool(logo_key(workspace)),
        "logo_url": LOGO_URL,
        "supplier": _supplier(tenant, workspace),
        "recipient": _recipient(client),
        "reference": f"{title_term('notice')} {notice.id} · {notice.level_name}",
        "date": _day(as_of),
        "deadline": _day(as_of + timedelta(days=DEMAND_DAYS)),
        "demand_days": DEMAND_DAYS,
        "level_name": notice.level_name,
        "lines": [
            {
                "number": line.invoice.number or "",
                "issue_date": _day(line.invoice.issue_date),
                "due_date": _day(line.invoice.due_date),
                "total": money(line.invoice.total),
                "paid": money(Decimal(line.invoice.total) - line.outstanding),
                "outstanding": money(line.outstanding),
                "interest": money(line.interest),
                "days_overdue": line.days_overdue,
            }
            for line in lines
        ],
        "interest_bases": sorted(
            {
                BASIS_NAMES.get(line.interest_detail.basis, "")
                for line in lines
                if line.interest and line.interest_detail
            }
        ),
        "interest_methods": interest_methods(lines),
        "outstanding": money(sums["outstanding"]),
        "interest": money(sums["interest"]) if sums["interest"] else None,
        "fee": money(sums["fee"]) if sums["fee"] else None,
        "total": money(sums["total"]),
        "payment_instructions": workspace.payment_instructions or "",
        "upi": upi,
    }


def msefc_document(
    session: Session, tenant, notice: CollectionNotice, as_of: date | None = None
) -> dict:
    """The MSEFC-ready pack: the letter's data plus the Udyam details, each invoice's acceptance
    and s.15 dates and its s.16 interest schedule."""

    document = letter_document(session, tenant, notice, as_of)
    settings = _settings(session)
    client = session.get(Client, notice.client_id)
    country = (tenant.country or "IN").upper()

    def money(amount) -> str:
        return format_money(amount, notice.currency, country)

    def rate(value: Decimal) -> str:
        return f"{value.normalize():f}%"

    invoices = []

    for line in notice_lines(session, notice, as_of or tenant_today(session)):
        invoice, detail = line.invoice, line.interest_detail
        starts_on, _ = msmed_start(invoice, client.payment_agreed_in_writing)
        invoices.append(
            {
                "number": invoice.number or "",
                "issue_date": _day(invoice.issue_date),
                "accepted_on": _day(acceptance_date(invoice)),
                "acceptance_note": "" if invoice.accepted_on else "(issue date)",
                "s15_due": _day(starts_on - timedelta(days=1) if starts_on else None),
                "amount": money(invoice.total),
                "paid": money(Decimal(invoice.total) - line.outstanding),
                "outstanding": money(line.outstanding),
                "interest": money(line.interest),
                "basis": detail.description if detail else "",
                "rounding": rounding_sentence(detail) if detail and detail.schedule else "",
                "schedule": [
                    {
                        "start": _day(rest.start),
                        "end": _day(rest.end),
                        "annual_rate": rate(rest.annual_rate),
                        "monthly_rate": rate((rest.annual_rate / 12).quantize(Decimal("0.0001"))),
                        "opening": money(rest.opening),
                        "interest": money(rest.interest),
                        "closing": money(rest.closing),
                    }
                    for rest in (detail.schedule if detail else ())
                ],
            }
        )
    document.update(
        {
            "title": "MSME Samadhaan / MSEFC reference",
            "udyam_number": settings.udyam_number if settings else "",
            "msme_category": (settings.msme_category or "").title() if settings else "",
            "agreed_in_writing": client.payment_agreed_in_writing,
            "invoices": invoices,
        }
    )
    return document


def render_letter(session: Session, tenant, notice: CollectionNotice) -> bytes:
    """The notice's letter (statement of account, or the demand letter of the legal level)."""
    document = letter_document(session, tenant, notice)
    template = f"pdf/notice_{document['kind']}.html"
    workspace = workspace_settings(session, tenant.id)
    return html_to_pdf(render_template(template, doc=document), workspace)


def render_msefc_pack(session: Session, tenant, notice: CollectionNotice) -> bytes:
    document = msefc_document(session, tenant, notice)
    workspace = workspace_settings(session, tenant.id)
    return html_to_pdf(render_template("pdf/notice_msefc.html", doc=document), workspace)


def store_letter(session: Session, tenant, notice: CollectionNotice) -> str:
    """Render the letter and keep it in the tenant's storage (removed again if this
    transaction rolls back). Returns its key."""
    data = render_letter(session, tenant, notice)
    name = letter_filename(notice).removesuffix(".pdf") + f".{secrets.token_hex(6)}.pdf"
    key = tenant_key(tenant.id, "notices", notice.id, name)
    save_in_transaction(session, get_storage(current_app), key, io.BytesIO(data))
    return key


def current_letter(session: Session, tenant, notice: CollectionNotice) -> bytes:
    """What a download serves: the letter as it went out when one was stored, else rendered
    now (a draft's letter shows today's amounts)."""
    if notice.letter_key and notice.letter_key.startswith(f"{tenant.schema}/"):
        try:
            with get_storage(current_app).open(notice.letter_key) as stream:
                return stream.read()
        except (FileNotFoundError, ValueError):
            pass
    return render_letter(session, tenant, notice)
