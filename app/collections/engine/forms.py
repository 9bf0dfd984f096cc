"""The collection forms: raw form values in, clean values and per-field errors out (the
same cleaners serve the pages and the services, so a rule is written once)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from app.collections.models import (
    GROUPINGS,
    INTEREST_ROUNDINGS,
    LEVEL_CHANNELS,
    LEVEL_TRIGGERS,
    MSME_CATEGORIES,
    MSME_RATE_BASES,
    NOTICE_PURPOSES,
)
from app.core.terminology import worded

UDYAM_NUMBER = re.compile(r"^UDYAM-[A-Z]{2}-\d{2}-\d{7}$")
CHANNEL_LABELS = {
    "email": "E-mail",
    "whatsapp": "WhatsApp",
    "sms": "SMS",
    "letter": "Letter",
    "call": "Call (task)",
    "visit": "Visit (task)",
}
TRIGGER_LABELS = {
    "before_due": "days before the due date",
    "after_due": "days after the due date",
    "after_previous": "days after the previous level",
}
PURPOSE_LABELS = {
    "notice_1": "1st notice",
    "notice_2": "2nd notice",
    "notice_final": "Final notice",
    "notice_legal": "Legal notice",
}
GROUPING_LABELS = {
    "client": "One notice per client (all its invoices at that level)",
    "invoice": "One notice per invoice",
}
MSME_CATEGORY_LABELS = {"micro": "Micro", "small": "Small", "medium": "Medium"}
RATE_BASIS_LABELS = {
    "per_rest": "Bank rate in force at each monthly rest",
    "appointed_day": "Bank rate on the appointed day",
}
INTEREST_ROUNDING_LABELS = {
    "each_rest": "Round each monthly rest to the paisa",
    "at_end": "Round once, at the end",
}


def _flag(values: Mapping, name: str) -> bool:
    return str(values.get(name, "")).strip().lower() in ("1", "on", "true", "yes", "y")


def _text(values: Mapping, name: str) -> str:
    return str(values.get(name, "") or "").strip()


def _whole(values: Mapping, name: str, low: int, high: int, errors: dict, label: str) -> int | None:
    raw = _text(values, name)
    if not raw:
        errors[name] = f"Enter {label}."
        return None
    try:
        number = int(raw)
    except ValueError:
        errors[name] = f"Enter {label} as a whole number."
        return None
    if not low <= number <= high:
        errors[name] = f"Enter {label} from {low} to {high}."
        return None
    return number


def _amount(values: Mapping, name: str, errors: dict, required: bool) -> Decimal | None:
    raw = _text(values, name).replace(",", "")
    if not raw:
        if required:
            errors[name] = "Enter an amount."
        return None
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        errors[name] = "Enter an amount such as 100 or 99.50."
        return None
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        errors[name] = "Enter zero or more, with at most two decimals."
        return None
    if amount >= Decimal("1e16"):
        errors[name] = "That amount is too large."
        return None
    return amount.quantize(Decimal("0.01"))


def clean_settings(values: Mapping) -> tuple[dict, dict[str, str]]:
    errors: dict[str, str] = {}
    out: dict = {"auto_send": _flag(values, "auto_send"), "thank_you": _flag(values, "thank_you")}
    out["run_hour"] = _whole(values, "run_hour", 0, 23, errors, "the hour")
    out["tolerance_amount"] = _amount(values, "tolerance_amount", errors, required=True)
    grouping = _text(values, "grouping")
    if grouping not in GROUPINGS:
        errors["grouping"] = worded("Choose how {notices} are grouped.")
    out["grouping"] = grouping
    out["visit_radius_m"] = _whole(values, "visit_radius_m", 1, 100_000, errors, "the radius")
    udyam = _text(values, "udyam_number").upper()
    if udyam and not UDYAM_NUMBER.match(udyam):
        errors["udyam_number"] = "Enter the Udyam number as UDYAM-XX-00-0000000."
    out["udyam_number"] = udyam or None
    category = _text(values, "msme_category")
    if category and category not in MSME_CATEGORIES:
        errors["msme_category"] = "Choose micro, small or medium."
    elif category and not udyam and "udyam_number" not in errors:
        errors["udyam_number"] = "An MSME category needs the Udyam registration number."
    out["msme_category"] = category or None
    basis = _text(values, "msme_rate_basis") or "per_rest"
    if basis not in MSME_RATE_BASES:
        errors["msme_rate_basis"] = "Choose how the bank rate is applied."
    out["msme_rate_basis"] = basis
    rounding = _text(values, "interest_rounding") or "each_rest"
    if rounding not in INTEREST_ROUNDINGS:
        errors["interest_rounding"] = "Choose how interest is rounded."
    out["interest_rounding"] = rounding
    return out, errors


def clean_policy(values: Mapping) -> tuple[dict, dict[str, str]]:
    errors: dict[str, str] = {}
    name = _text(values, "name")
    if not name:
        errors["name"] = "Enter a name."
    elif len(name) > 100:
        errors["name"] = "Use at most 100 characters."
    description = _text(values, "description")
    if len(description) > 2000:
        errors["description"] = "Use at most 2,000 characters."
    return {"name": name, "description": description or None}, errors


def clean_level(values: Mapping) -> tuple[dict, dict[str, str]]:
    errors: dict[str, str] = {}
    out: dict = {}
    name = _text(values, "name")
    if not name:
        errors["name"] = "Enter a name."
    elif len(name) > 60:
        errors["name"] = "Use at most 60 characters."
    out["name"] = name
    trigger = _text(values, "trigger")
    if trigger not in LEVEL_TRIGGERS:
        errors["trigger"] = "Choose when this level falls due."
    out["trigger"] = trigger
    out["trigger_days"] = _whole(values, "trigger_days", 0, 3650, errors, "the days")
    getlist = getattr(values, "getlist", None)
    chosen = getlist("channels") if getlist else values.get("channels") or []
    channels = [channel for channel in LEVEL_CHANNELS if channel in chosen]
    if not channels or len(channels) != len(set(chosen)):
        errors["channels"] = "Choose at least one channel from the list."
    out["channels"] = channels
    purpose = _text(values, "template_purpose")
    if purpose not in NOTICE_PURPOSES:
        errors["template_purpose"] = "Choose the message template."
    out["template_purpose"] = purpose
    out["min_gap_days"] = _whole(values, "min_gap_days", 0, 365, errors, "the minimum gap")
    out["fee_amount"] = _amount(values, "fee_amount", errors, required=False)
    out["requires_approval"] = _flag(values, "requires_approval")
    out["is_legal"] = _flag(values, "is_legal")
    return out, errors


def level_values(level) -> dict:
    """A level as form values (for the edit form)."""
    return {
        "name": level.name,
        "trigger": level.trigger,
        "trigger_days": str(level.trigger_days),
        "channels": list(level.channels),
        "template_purpose": level.template_purpose,
        "min_gap_days": str(level.min_gap_days),
        "fee_amount": "" if level.fee_amount is None else str(level.fee_amount),
        "requires_approval": level.requires_approval,
        "is_legal": level.is_legal,
    }


def settings_values(settings) -> dict:
    return {
        "auto_send": settings.auto_send,
        "thank_you": settings.thank_you,
        "run_hour": str(settings.run_hour),
        "tolerance_amount": str(settings.tolerance_amount),
        "grouping": settings.grouping,
        "visit_radius_m": str(settings.visit_radius_m),
        "udyam_number": settings.udyam_number or "",
        "msme_category": settings.msme_category or "",
        "msme_rate_basis": settings.msme_rate_basis,
        "interest_rounding": settings.interest_rounding,
    }
