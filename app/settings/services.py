"""Workspace settings: who the tenant is on its invoices (legal name, address, tax ids), how
it is paid (UPI, bank instructions), its brand (logo, colour). The billing defaults for new
projects are on the workflow page (app.settings.workflow).

`clean_settings` is the one place the rules live; the page shows its errors next to the
fields. The logo is kept in the tenant's storage; only PNG and JPEG are taken (an SVG can
carry script, and the logo is served back to browsers)."""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import BinaryIO

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.core.number_formats import NumberFormat, NumberFormatError
from app.core.regions import GST_STATES, region_code
from app.core.storage import Storage, delete_after_commit, save_in_transaction, tenant_key
from app.core.tax_ids import check_abn, check_gstin_and_pan
from app.settings.models import WorkspaceSettings
from tenants.models import Tenant

AUTO_INVOICE_CHOICES = (
    ("off", "No: I raise invoices myself"),
    ("draft", "Yes, as a draft I check and issue"),
    ("issue", "Yes, issued at once"),
)
# NPCI's virtual payment address: a handle, "@", and the payment service provider's name.
UPI_VPA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,255}@[A-Za-z][A-Za-z0-9]{1,63}$")
BRAND_COLOUR = re.compile(r"^#[0-9a-f]{6}$")
LOGO_MAX_BYTES = 1024 * 1024
LOGO_TYPES = {b"\x89PNG\r\n\x1a\n": ("png", "image/png"), b"\xff\xd8\xff": ("jpg", "image/jpeg")}
FIELDS = (
    "legal_name",
    "address",
    "region",
    "gstin",
    "pan",
    "abn",
    "tax_number",
    "lut_reference",
    "upi_vpa",
    "payment_instructions",
    "brand_colour",
    "invoice_number_format",
    "send_window_start",
    "send_window_end",
    "send_on_business_days_only",
    "sender_name",
    "reply_to",
)
# A display name that a mail header cannot be made to carry a second header or address with.
SENDER_NAME_REFUSED = re.compile(r"[\r\n<>@\"]")


class SettingsError(ValueError):
    """A request the settings rules refuse; the message says why."""


def workspace_settings(session: Session, tenant_id: int) -> WorkspaceSettings:
    """The workspace's settings row, made with the defaults on first use (a new tenant has
    none: the tenancy core that creates it knows nothing of settings). The row is looked up by
    its key, the tenant id, so a request or job that asks again gets the one already loaded."""
    found = session.get(WorkspaceSettings, tenant_id)
    if found is None:
        session.execute(
            insert(WorkspaceSettings)
            .values(tenant_id=tenant_id)
            .on_conflict_do_nothing(index_elements=[WorkspaceSettings.tenant_id])
        )
        found = session.get(WorkspaceSettings, tenant_id)
    return found


def form_values(tenant: Tenant, workspace: WorkspaceSettings) -> dict[str, str]:
    values = {name: getattr(workspace, name) for name in FIELDS if name != "region"}
    values["region"] = tenant.region
    values["send_on_business_days_only"] = "1" if workspace.send_on_business_days_only else ""
    for name in ("send_window_start", "send_window_end"):
        values[name] = getattr(workspace, name).strftime("%H:%M")
    return {name: "" if value is None else str(value) for name, value in values.items()}


def _text(values: Mapping, name: str, limit: int, errors: dict) -> str | None:
    text = (values.get(name) or "").strip()
    if len(text) > limit:
        errors[name] = f"At most {limit} characters."
    return text or None


def _clean_indian_ids(values: Mapping, out: dict, errors: dict) -> None:
    ids = check_gstin_and_pan(values.get("gstin") or "", values.get("pan") or "")
    errors.update(ids.errors)
    state = ids.gstin_state
    if state is not None:
        if out["region"] is None:
            out["region"] = GST_STATES[state]  # the GSTIN says where the workspace is
        elif region_code(out["region"]) != state:
            errors["gstin"] = (
                f"This GSTIN is registered in {GST_STATES[state]} ({state}), but the "
                f"workspace's state is {out['region']}."
            )
    out["gstin"], out["pan"] = ids.gstin or None, ids.pan or None


def clean_settings(values: Mapping, tenant: Tenant) -> tuple[dict, dict[str, str]]:
    """The settings from a submitted form, and the errors by field. Tax ids are checked for
    the workspace's country: GSTIN and PAN in India, ABN in Australia, a plain tax number
    anywhere else."""
    errors: dict[str, str] = {}
    out: dict = {
        "legal_name": _text(values, "legal_name", 191, errors),
        "address": _text(values, "address", 1000, errors),
        "tax_number": _text(values, "tax_number", 32, errors),
        "lut_reference": _text(values, "lut_reference", 64, errors),
        "payment_instructions": _text(values, "payment_instructions", 1000, errors),
        "gstin": None,
        "pan": None,
        "abn": None,
        "upi_vpa": None,
    }
    region = _text(values, "region", 64, errors)
    country = tenant.country.upper()
    if country == "IN" and region:
        code = region_code(region)
        if code is None:
            errors["region"] = "Choose an Indian state or union territory, e.g. Karnataka or 29."
        else:
            region = GST_STATES[code]
    out["region"] = region

    if country == "IN":
        _clean_indian_ids(values, out, errors)
        vpa = (values.get("upi_vpa") or "").strip()
        if vpa and not UPI_VPA.match(vpa):
            errors["upi_vpa"] = "A UPI ID looks like name@bank, e.g. acme@okhdfcbank."
        out["upi_vpa"] = vpa or None
    else:
        for name in ("gstin", "pan", "upi_vpa"):
            if (values.get(name) or "").strip():
                errors[name] = "Only for workspaces in India."
    abn, problem = check_abn(values.get("abn") or "")
    if abn and country != "AU":
        errors["abn"] = "Only for workspaces in Australia."
    elif problem:
        errors["abn"] = problem
    out["abn"] = abn or None

    # The colour comes with the setup's brand step; Settings → Branding saves its own form.
    if "brand_colour" in values:
        colour = (values.get("brand_colour") or "").strip().lower()
        if not BRAND_COLOUR.match(colour):
            errors["brand_colour"] = "A colour as #rrggbb, e.g. #1f5f8b."
        out["brand_colour"] = colour

    number_format = (values.get("invoice_number_format") or "").strip()
    if number_format:
        try:
            NumberFormat.for_series(number_format, "INV", country)
        except NumberFormatError as error:
            errors["invoice_number_format"] = str(error)
    out["invoice_number_format"] = number_format or None

    _clean_send_window(values, out, errors)
    _clean_sender(values, out, errors)
    return out, errors


def _clean_sender(values: Mapping, out: dict, errors: dict) -> None:
    """Who the workspace's e-mail comes from, in the clients' eyes: a display name, and the
    address their replies go to."""
    name = _text(values, "sender_name", 100, errors)
    if name and SENDER_NAME_REFUSED.search(name):
        errors["sender_name"] = "A name only, without an e-mail address, quotes or < >."
    out["sender_name"] = name
    reply_to = (values.get("reply_to") or "").strip()
    out["reply_to"] = None
    if reply_to:
        try:
            out["reply_to"] = validate_email(reply_to, check_deliverability=False).normalized
        except EmailNotValidError as error:
            errors["reply_to"] = f"This e-mail address is not valid: {error}"


def sender_name(tenant: Tenant, workspace: WorkspaceSettings) -> str:
    """The name the workspace's e-mail comes from: the one it chose, else its legal name, else
    its name."""
    return workspace.sender_name or workspace.legal_name or tenant.name


def _clean_send_window(values: Mapping, out: dict, errors: dict) -> None:
    """Reminders and campaigns go out only between these times of the recipient's day."""
    for name in ("send_window_start", "send_window_end"):
        raw = (values.get(name) or "").strip()
        try:
            out[name] = time.fromisoformat(raw)
        except ValueError:
            errors[name] = "A time of day as HH:MM, e.g. 09:00."
    if not errors.keys() & {"send_window_start", "send_window_end"} and (
        out["send_window_start"] >= out["send_window_end"]
    ):
        errors["send_window_end"] = "The window must end after it starts (the same day)."
    out["send_on_business_days_only"] = bool(values.get("send_on_business_days_only"))


def save_settings(session: Session, tenant: Tenant, values: Mapping) -> dict[str, str]:
    """Apply the settings when they are all valid; otherwise change nothing and return the
    errors by field."""
    out, errors = clean_settings(values, tenant)
    if errors:
        return errors
    tenant.region = out.pop("region")  # part of the workspace's identity, kept on the tenant
    workspace = workspace_settings(session, tenant.id)
    for name, value in out.items():
        setattr(workspace, name, value)
    session.flush()
    return {}


@dataclass(frozen=True)
class Logo:
    key: str
    content_type: str


def logo_content_type(key: str) -> str:
    return "image/png" if key.endswith(".png") else "image/jpeg"


def save_logo(session: Session, storage: Storage, tenant: Tenant, stream: BinaryIO) -> Logo:
    """Store a new logo and point the workspace at it; the previous file goes once this
    commits."""
    data = stream.read(LOGO_MAX_BYTES + 1)
    if not data:
        raise SettingsError("Choose an image file for the logo.")
    if len(data) > LOGO_MAX_BYTES:
        raise SettingsError("The logo must be at most 1 MB.")
    kind = next((kind for magic, kind in LOGO_TYPES.items() if data.startswith(magic)), None)
    if kind is None:
        raise SettingsError("The logo must be a PNG or JPEG image.")
    extension, content_type = kind
    key = tenant_key(tenant.id, "branding", f"logo-{secrets.token_hex(6)}.{extension}")
    save_in_transaction(session, storage, key, io.BytesIO(data))
    workspace = workspace_settings(session, tenant.id)
    previous, workspace.logo_key = workspace.logo_key, key
    session.flush()
    if previous:
        delete_after_commit(session, storage, previous)
    return Logo(key, content_type)


def remove_logo(session: Session, storage: Storage, tenant: Tenant) -> None:
    workspace = workspace_settings(session, tenant.id)
    previous, workspace.logo_key = workspace.logo_key, None
    session.flush()
    if previous:
        delete_after_commit(session, storage, previous)
