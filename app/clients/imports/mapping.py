"""The fields an import column can be mapped to (ImportField: key, label, the header names
that suggest it, whether it belongs to the contact) and the column mapping itself: suggested
from the file's headers (compared without case, spaces or punctuation; a field's label or key
beats another field's synonym), cleaned of unknown fields and columns, and checked
(`mapping_problem`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.core.terminology import worded
from app.custom_fields.models import CustomField
from app.custom_fields.services import FORM_PREFIX


@dataclass(frozen=True)
class ImportField:
    key: str
    label: str
    synonyms: tuple[str, ...] = ()
    contact: bool = False


FIELDS: tuple[ImportField, ...] = (
    ImportField(
        "full_name",
        "Full name",
        (
            "name",
            "client name",
            "company",
            "company name",
            "customer",
            "customer name",
            "client",
            "legal name",
            "business name",
            "registered name",
            "party name",
            "account name",
        ),
    ),
    ImportField(
        "short_name",
        "Short name",
        (
            "short",
            "code",
            "alias",
            "client code",
            "customer code",
            "short code",
            "nickname",
            "display name",
            "abbreviation",
        ),
    ),
    ImportField(
        "external_id",
        "External ID",
        (
            "external",
            "ext id",
            "client id",
            "customer id",
            "account id",
            "account number",
            "account no",
            "erp id",
            "reference",
            "ref",
            "id",
        ),
    ),
    ImportField("status", "Status", ("client status", "state of client")),
    ImportField("location", "Location", ("local or foreign", "local foreign", "domestic")),
    ImportField("country", "Country", ("country code", "nation")),
    ImportField(
        "address_line1",
        "Address line 1",
        (
            "address",
            "address 1",
            "address line1",
            "street",
            "street address",
            "billing address",
            "addr1",
        ),
    ),
    ImportField(
        "address_line2",
        "Address line 2",
        ("address 2", "address line2", "addr2", "locality", "area"),
    ),
    ImportField("city", "City", ("town", "city town", "district")),
    ImportField(
        "region",
        "State / region",
        ("state", "region", "province", "state code", "state name", "county", "territory"),
    ),
    ImportField(
        "postal_code",
        "Postal code",
        ("pin", "pin code", "pincode", "zip", "zip code", "postcode", "post code", "postal"),
    ),
    ImportField(
        "gstin",
        "GSTIN",
        (
            "gst",
            "gst no",
            "gst number",
            "gstin no",
            "gstin number",
            "gst in",
            "gstn",
            "gst id",
            "gst registration",
        ),
    ),
    ImportField("pan", "PAN", ("pan no", "pan number", "pan card")),
    ImportField("abn", "ABN", ("abn no", "abn number", "australian business number")),
    ImportField(
        "vat_number", "VAT number", ("vat", "vat no", "vat id", "vat reg no", "vat registration")
    ),
    ImportField(
        "tin", "TIN", ("tin no", "tin number", "tax id", "tax number", "tax identification number")
    ),
    ImportField("tax_registration", "Tax registration", ("tax reg", "other tax registration")),
    ImportField(
        "remittance_details",
        "Remittance details",
        ("remittance", "bank details", "remittance instructions"),
    ),
    ImportField("payment_terms", "Payment terms", ("terms", "credit terms", "terms type")),
    ImportField(
        "payment_days",
        "Payment days",
        (
            "days",
            "credit days",
            "credit period",
            "net days",
            "due days",
            "payment term days",
            "terms days",
        ),
    ),
    ImportField(
        "payment_terms_note", "Payment terms note", ("terms note", "custom terms", "payment note")
    ),
    ImportField(
        "engagement_manager_user_id",
        "Engagement manager",
        (
            "manager",
            "account manager",
            "relationship manager",
            "client manager",
            "owner",
            "engagement manager email",
            "manager email",
        ),
    ),
    ImportField(
        "new_business_year",
        "New business year",
        ("client since", "since", "first year", "year acquired", "year"),
    ),
    ImportField("industry_id", "Industry", ("sector", "industry name", "segment")),
    ImportField("currency", "Currency", ("ccy", "currency code", "billing currency")),
    ImportField("credit_limit", "Credit limit", ("limit", "credit", "credit amount")),
    ImportField("preferred_language", "Preferred language", ("language", "lang")),
    ImportField(
        "preferred_channel",
        "Preferred channel",
        ("channel", "contact channel", "preferred contact method"),
    ),
    ImportField("tags", "Tags", ("tag", "labels", "label", "groups")),
    ImportField(
        "contact_name",
        "Contact name",
        ("contact", "contact person", "billing contact", "person"),
        contact=True,
    ),
    ImportField(
        "contact_job_title",
        "Contact job title",
        ("designation", "job title", "title", "contact title", "contact designation"),
        contact=True,
    ),
    ImportField(
        "contact_email",
        "Contact e-mail",
        (
            "email",
            "e-mail",
            "email address",
            "e-mail address",
            "email id",
            "mail",
            "contact email id",
        ),
        contact=True,
    ),
    ImportField(
        "contact_phone",
        "Contact phone",
        (
            "phone",
            "mobile",
            "telephone",
            "tel",
            "phone number",
            "mobile number",
            "contact number",
            "contact no",
            "whatsapp",
        ),
        contact=True,
    ),
)
FIELD_LABELS = {f.key: f.label for f in FIELDS}
CONTACT_FIELDS = tuple(f.key for f in FIELDS if f.contact)
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def _normalise_header(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", str(text).lower()).split())


def header_names(fields: Iterable[ImportField]) -> dict[str, str]:
    """Normalised header -> field key, for `suggest_columns`: labels and keys first, then
    synonyms, so that "Contact name" beats "name". Shared with the other imports
    (app.payments.opening), each with its own fields."""
    fields = tuple(fields)
    names: dict[str, str] = {}
    for each in fields:
        for name in (each.label, each.key):
            names.setdefault(_normalise_header(name), each.key)
    for each in fields:
        for name in each.synonyms:
            names.setdefault(_normalise_header(name), each.key)
    return names


def suggest_columns(names: Mapping[str, str], headers: list[str]) -> dict[str, int]:
    """Field -> column index, from the headers' names (the first column of a name wins)."""
    mapping: dict[str, int] = {}
    for index, header in enumerate(headers):
        key = names.get(_normalise_header(header))
        if key is not None and key not in mapping:
            mapping[key] = index
    return mapping


def clean_columns(raw: Mapping, known: Mapping, column_count: int) -> dict[str, int]:
    """A stored or submitted mapping, with fields not in `known` and unknown columns left out."""
    mapping = {}
    for key, value in raw.items():
        if key in known and str(value).isdigit() and int(value) < column_count:
            mapping[key] = int(value)
    return mapping


_HEADER_FIELDS = header_names(FIELDS)


def custom_import_fields(fields: Sequence[CustomField]) -> tuple[ImportField, ...]:
    """The workspace's live client fields as import fields, keyed cf.<key>: a column headed by
    a field's name or key is suggested for it (an export's columns are headed by the names)."""
    return tuple(
        ImportField(FORM_PREFIX + f.key, f.label, (f.key,)) for f in fields if not f.is_archived
    )


def suggest_mapping(headers: list[str], custom: Sequence[ImportField] = ()) -> dict[str, int]:
    names = header_names((*FIELDS, *custom)) if custom else _HEADER_FIELDS
    return suggest_columns(names, headers)


def clean_mapping(
    raw: Mapping, column_count: int, custom: Sequence[ImportField] = ()
) -> dict[str, int]:
    return clean_columns(raw, {**FIELD_LABELS, **{f.key: f.label for f in custom}}, column_count)


def mapping_problem(mapping: Mapping) -> str | None:
    if {"full_name", "short_name"} <= mapping.keys() or "external_id" in mapping:
        return None
    return worded(
        "Choose the columns with the full name and the short name (or map External ID "
        "to update existing {clients} only)."
    )
