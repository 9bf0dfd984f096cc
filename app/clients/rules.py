"""The client record's data rules, in one place for the forms, the inline edits and the import.

Each `clean_*` function takes raw values (strings, as a form or a spreadsheet gives them) and
returns the values to store and the errors by field, in words a user can act on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

import phonenumbers
from babel.core import Locale
from email_validator import EmailNotValidError, validate_email
from stdnum import exceptions as stdnum_errors
from stdnum.eu import vat as eu_vat
from stdnum.in_ import gstin as in_gstin
from stdnum.in_ import pan as in_pan
from stdnum.util import get_cc_module

from app.clients.models import CHANNELS, CONTACT_ROLES, LOCATIONS, PAYMENT_TERMS, STATUSES
from app.core.money import CURRENCIES
from app.core.regions import GST_STATES, region_code
from app.core.tax_ids import check_abn, check_gstin_and_pan, stdnum_message
from app.core.terminology import term, title_term, worded

LANGUAGES = {
    "en": "English",
    "hi": "Hindi",
    "bn": "Bengali",
    "gu": "Gujarati",
    "kn": "Kannada",
    "ml": "Malayalam",
    "mr": "Marathi",
    "ta": "Tamil",
    "te": "Telugu",
    "fil": "Filipino",
}
COUNTRY_NAMES = Locale("en").territories
EU_COUNTRIES = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()
)
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9 _-]{0,39}$")
PH_TIN_PATTERN = re.compile(r"^\d{9}(\d{3}|\d{5})?$")
MAX_TAGS = 20
# The longest text each field holds (as the forms' maxlength too); a longer one is an error
# beside its field, never cut.
TEXT_LIMITS = {
    "full_name": 191,
    "short_name": 191,
    "name": 191,
    "address_line1": 191,
    "address_line2": 191,
    "city": 100,
    "region": 64,
    "postal_code": 16,
    "external_id": 64,
    "tax_registration": 2000,
    "remittance_details": 2000,
    "payment_terms_note": 255,
    "job_title": 100,
    "email": 254,
}
MAX_CREDIT_LIMIT = Decimal("9999999999999999.99")
FIRST_NEW_BUSINESS_YEAR = 2015
# A new client's terms when nothing says otherwise (an import without terms columns): Net 30,
# as the new-client form proposes.
DEFAULT_PAYMENT_DAYS = 30


@dataclass
class ClientContext:
    """What the rules need to know about the tenant, looked up once per form or import."""

    tenant_country: str
    tenant_currency: str
    today: date
    industries: dict[str, int] = field(default_factory=dict)  # lower(name) -> id
    industry_ids: frozenset[int] = frozenset()
    member_ids: frozenset[int] = frozenset()  # users who may be engagement manager


def _text(values: Mapping, key: str) -> str:
    value = values.get(key)
    return "" if value is None else str(value).strip()


def _optional(text: str) -> str | None:
    return text or None


def _limited_text(values: Mapping, key: str, errors: dict[str, str]) -> str:
    text = _text(values, key)
    limit = TEXT_LIMITS[key]
    if len(text) > limit:
        errors[key] = f"At most {limit:,} characters (this has {len(text):,})."
    return text


def clean_client(values: Mapping, context: ClientContext) -> tuple[dict, dict[str, str]]:
    """Check a whole client record. Returns (values to store, errors by field)."""
    out: dict = {}
    errors: dict[str, str] = {}

    for key, label in (("full_name", "Full name"), ("short_name", "Short name")):
        name = " ".join(_text(values, key).split())
        if not name:
            errors[key] = f"{label} is required."
        elif not 2 <= len(name) <= 191:
            errors[key] = f"{label} must be 2 to 191 characters."
        out[key] = name

    status = _text(values, "status").lower().replace(" ", "_") or "active"
    if status not in STATUSES:
        errors["status"] = "Choose prospect, active, on hold or inactive."
    out["status"] = status

    location = _text(values, "location").lower()
    if location not in LOCATIONS:
        errors["location"] = "Choose Local or Foreign."
    out["location"] = location

    country = _text(values, "country").upper() or (
        context.tenant_country if location == "local" else ""
    )
    if not country:
        errors["country"] = worded("Country is required for a foreign {client}.")
    elif country not in COUNTRY_NAMES or not country.isalpha() or len(country) != 2:
        errors["country"] = "Use a two-letter country code, e.g. IN, AU, GB."
    elif location == "local" and country != context.tenant_country:
        errors["country"] = (
            f"A local {term('client')} is in {COUNTRY_NAMES[context.tenant_country]}; "
            "choose Foreign for another country."
        )
    elif location == "foreign" and country == context.tenant_country:
        errors["country"] = (
            f"{title_term('a client')} in {COUNTRY_NAMES[country]} is Local, not Foreign."
        )
    out["country"] = country

    for key in ("address_line1", "address_line2", "city", "postal_code", "external_id"):
        out[key] = _optional(_limited_text(values, key, errors))

    _clean_region(values, out, errors)
    _clean_tax_ids(values, out, errors)
    for key in ("tax_registration", "remittance_details"):
        out[key] = _optional(_limited_text(values, key, errors))
    _clean_payment_terms(values, out, errors)
    _clean_commercial(values, context, out, errors)
    return out, errors


def _clean_region(values: Mapping, out: dict, errors: dict) -> None:
    text = _text(values, "region")
    if out["country"] == "IN" and text:
        code = region_code(text)
        if code is None:
            errors["region"] = "Use an Indian state's GST code or name, e.g. 29 or Karnataka."
        out["region"] = code
    else:
        if len(text) > 64:
            errors["region"] = "At most 64 characters."
        out["region"] = _optional(text)


def _clean_tax_ids(values: Mapping, out: dict, errors: dict) -> None:
    country = out["country"]
    gstin_text, pan_text = _text(values, "gstin"), _text(values, "pan")
    if country == "IN":
        ids = check_gstin_and_pan(gstin_text, pan_text)
        errors.update(ids.errors)
        state = ids.gstin_state
        if state is not None:
            if out.get("region") is None and "region" not in errors:
                out["region"] = state  # the GSTIN says where the client is registered
            elif out.get("region") and out["region"] != state:
                errors["gstin"] = (
                    f"This GSTIN is registered in {GST_STATES.get(state, state)} ({state}), "
                    f"but the billing state is {GST_STATES.get(out['region'])} "
                    f"({out['region']})."
                )
        gstin, pan = ids.gstin, ids.pan
    else:
        gstin = in_gstin.compact(gstin_text) if gstin_text else ""
        pan = in_pan.compact(pan_text) if pan_text else ""
        if gstin:
            errors["gstin"] = worded("A GSTIN belongs to {a client} in India.")
        if pan:
            errors["pan"] = worded("A PAN belongs to {a client} in India.")
    out["gstin"], out["pan"] = gstin or None, pan or None

    abn, problem = check_abn(_text(values, "abn"))
    if abn and country != "AU":
        errors["abn"] = worded("An ABN belongs to {a client} in Australia.")
    elif problem:
        errors["abn"] = problem
    out["abn"] = abn or None

    vat = _text(values, "vat_number").upper().replace(" ", "")
    if vat:
        module = eu_vat if country in EU_COUNTRIES else get_cc_module(country.lower(), "vat")
        if module is None:
            if len(vat) > 20:
                errors["vat_number"] = "At most 20 characters."
        else:
            try:
                vat = module.validate(vat)
            except stdnum_errors.ValidationError as error:
                errors["vat_number"] = stdnum_message(error, "VAT number")
    out["vat_number"] = vat or None

    tin = _text(values, "tin")
    if tin and country == "PH":
        digits = re.sub(r"[\s-]", "", tin)
        if not PH_TIN_PATTERN.match(digits):
            errors["tin"] = "A Philippine TIN has 9 digits, plus a 3 or 5 digit branch code."
        tin = digits
    elif len(tin) > 32:
        errors["tin"] = "At most 32 characters."
    out["tin"] = tin or None


def _clean_payment_terms(values: Mapping, out: dict, errors: dict) -> None:
    terms = _text(values, "payment_terms").lower() or "net"
    if terms not in PAYMENT_TERMS:
        errors["payment_terms"] = "Choose Net, MFI, Custom or Immediate."
    days_text = _text(values, "payment_days")
    days = None
    if terms in ("net", "mfi"):
        if not days_text:
            errors["payment_days"] = worded("Say how many days the {client} has to pay.")
        elif not days_text.isdigit() or not 1 <= int(days_text) <= 365:
            errors["payment_days"] = "Use a whole number of days from 1 to 365."
        else:
            days = int(days_text)
    elif days_text:
        errors["payment_days"] = "Payment days apply to Net and MFI terms only."
    note = _text(values, "payment_terms_note")
    if terms == "custom" and not note:
        errors["payment_terms_note"] = "Describe the custom terms."
    elif len(note) > TEXT_LIMITS["payment_terms_note"]:
        errors["payment_terms_note"] = f"At most {TEXT_LIMITS['payment_terms_note']} characters."
    out.update(payment_terms=terms, payment_days=days, payment_terms_note=_optional(note))


def _clean_commercial(values: Mapping, context: ClientContext, out: dict, errors: dict) -> None:
    manager = _text(values, "engagement_manager_user_id")
    out["engagement_manager_user_id"] = None
    if manager:
        if not manager.isdigit() or int(manager) not in context.member_ids:
            errors["engagement_manager_user_id"] = "Choose a member of this workspace."
        else:
            out["engagement_manager_user_id"] = int(manager)

    year = _text(values, "new_business_year")
    out["new_business_year"] = None
    if year:
        if not (year.isdigit() and len(year) == 4):
            errors["new_business_year"] = "Use a four-digit year."
        elif not FIRST_NEW_BUSINESS_YEAR <= int(year) <= context.today.year:
            errors["new_business_year"] = (
                f"Use a year from {FIRST_NEW_BUSINESS_YEAR} to {context.today.year}."
            )
        else:
            out["new_business_year"] = int(year)

    industry = _text(values, "industry_id") or _text(values, "industry")
    out["industry_id"] = None
    if industry:
        if industry.isdigit() and int(industry) in context.industry_ids:
            out["industry_id"] = int(industry)
        elif industry.lower() in context.industries:
            out["industry_id"] = context.industries[industry.lower()]
        else:
            errors["industry_id"] = "Choose an industry from the list (admins can add one)."

    currency = _text(values, "currency").upper() or context.tenant_currency
    if currency not in CURRENCIES:
        errors["currency"] = "Use a three-letter currency code, e.g. INR, AUD, USD."
    out["currency"] = currency

    limit = _text(values, "credit_limit").replace(",", "")
    out["credit_limit"] = None
    if limit:
        try:
            amount = Decimal(limit)
        except InvalidOperation:
            errors["credit_limit"] = "Use an amount, e.g. 500000 or 500000.50."
        else:
            if (
                not amount.is_finite()
                or amount < 0
                or amount > MAX_CREDIT_LIMIT
                or amount != amount.quantize(Decimal("0.01"))
            ):
                errors["credit_limit"] = "Use a positive amount with at most two decimals."
            else:
                out["credit_limit"] = amount.quantize(Decimal("0.01"))

    language = _text(values, "preferred_language").lower() or "en"
    if language not in LANGUAGES:
        errors["preferred_language"] = "Choose a language from the list."
    out["preferred_language"] = language

    channel = _text(values, "preferred_channel").lower() or "email"
    if channel not in CHANNELS:
        errors["preferred_channel"] = "Choose e-mail, WhatsApp, SMS or letter."
    out["preferred_channel"] = channel

    out["tags"], tag_error = clean_tags(_text(values, "tags"))
    if tag_error:
        errors["tags"] = tag_error


def clean_tags(text: str) -> tuple[list[str], str | None]:
    tags = []
    for raw in text.split(","):
        tag = " ".join(raw.split()).lower()
        if tag and tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        return tags[:MAX_TAGS], f"At most {MAX_TAGS} tags."
    bad = [t for t in tags if not TAG_PATTERN.match(t)]
    if bad:
        return tags, f"Tags use letters, digits, spaces, - and _ (up to 40): {', '.join(bad)}."
    return tags, None


def clean_contact(values: Mapping, default_region: str) -> tuple[dict, dict[str, str]]:
    out: dict = {}
    errors: dict[str, str] = {}
    name = " ".join(_text(values, "full_name").split())
    if not 2 <= len(name) <= 191:
        errors["full_name"] = "Name is required (2 to 191 characters)."
    out["full_name"] = name
    out["job_title"] = _optional(_limited_text(values, "job_title", errors))

    roles = values.getlist("roles") if hasattr(values, "getlist") else values.get("roles") or []
    if isinstance(roles, str):
        roles = [r.strip().lower() for r in roles.split(",") if r.strip()]
    if any(r not in CONTACT_ROLES for r in roles):
        errors["roles"] = "Roles are billing, primary and escalation."
    out["roles"] = sorted(set(roles) & set(CONTACT_ROLES))

    email = _text(values, "email")
    out["email"] = None
    if email:
        try:
            out["email"] = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as error:
            errors["email"] = f"This e-mail address is not valid: {error}"

    out["phone"], phone_error = clean_phone(_text(values, "phone"), default_region)
    if phone_error:
        errors["phone"] = phone_error
    if not out["email"] and not out["phone"] and "email" not in errors and "phone" not in errors:
        errors["email"] = "Give an e-mail address or a phone number."

    language = _text(values, "preferred_language").lower()
    if language and language not in LANGUAGES:
        errors["preferred_language"] = "Choose a language from the list."
    out["preferred_language"] = language or None
    return out, errors


def clean_phone(text: str, default_region: str) -> tuple[str | None, str | None]:
    """A phone number in E.164 (+919876543210); local numbers are read in `default_region`."""
    if not text:
        return None, None
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None, "This is not a phone number."
    if not phonenumbers.is_valid_number(number):
        return None, "This phone number is not valid; include the country code for abroad."
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def clean_site(values: Mapping) -> tuple[dict, dict[str, str]]:
    out: dict = {}
    errors: dict[str, str] = {}
    name = " ".join(_text(values, "name").split())
    if not 2 <= len(name) <= 191:
        errors["name"] = "Name the site (2 to 191 characters)."
    out["name"] = name
    for key, limit in (
        ("address_line1", 191),
        ("address_line2", 191),
        ("city", 100),
        ("region", 64),
        ("postal_code", 16),
    ):
        text = _text(values, key)
        if len(text) > limit:
            errors[key] = f"At most {limit} characters."
        out[key] = _optional(text)
    country = _text(values, "country").upper()
    if country and country not in COUNTRY_NAMES:
        errors["country"] = "Use a two-letter country code."
    out["country"] = country or None
    coordinates = {}
    for key, bound in (("latitude", 90), ("longitude", 180)):
        text = _text(values, key)
        coordinates[key] = None
        if text:
            try:
                value = Decimal(text)
            except InvalidOperation:
                errors[key] = "Use decimal degrees, e.g. 12.971599."
                continue
            if not value.is_finite() or not -bound <= value <= bound:
                errors[key] = f"Use a value from -{bound} to {bound}."
            else:
                coordinates[key] = value.quantize(Decimal("0.000001"))
    if (coordinates["latitude"] is None) != (coordinates["longitude"] is None) and not (
        errors.keys() & {"latitude", "longitude"}
    ):
        errors["longitude" if coordinates["longitude"] is None else "latitude"] = (
            "Give both latitude and longitude, or neither."
        )
    out.update(coordinates)
    contact = _text(values, "site_contact_id")
    out["site_contact_id"] = int(contact) if contact.isdigit() else None
    return out, errors
