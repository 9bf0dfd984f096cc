"""The client form's fields, grouped in the sections the client page edits one at a time.

Validation is not here: app/clients/rules.py checks values from any source (form, inline edit,
import) the same way. These specs only say how each field is shown."""

from __future__ import annotations

from dataclasses import dataclass

from app.clients.rules import COUNTRY_NAMES, LANGUAGES, TEXT_LIMITS


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    kind: str = "text"  # text, select, textarea, number
    hint: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    dynamic_choices: str = ""  # filled per request: "industries", "members"

    @property
    def max_length(self) -> int | None:
        """The form's maxlength (with a counter) for free text; the rules check it too."""
        return TEXT_LIMITS.get(self.name) if self.kind in ("text", "textarea") else None


STATUS_CHOICES = (
    ("prospect", "Prospect"),
    ("active", "Active"),
    ("on_hold", "On hold"),
    ("inactive", "Inactive"),
)
LOCATION_CHOICES = (("local", "Local"), ("foreign", "Foreign"))
TERMS_CHOICES = (
    ("net", "Net"),
    ("mfi", "MFI (monthly, first invoice)"),
    ("custom", "Custom"),
    ("immediate", "Immediate"),
)
CHANNEL_CHOICES = (
    ("email", "E-mail"),
    ("whatsapp", "WhatsApp"),
    ("sms", "SMS"),
    ("letter", "Letter"),
)
COUNTRY_CHOICES = tuple(
    sorted(
        ((code, name) for code, name in COUNTRY_NAMES.items() if len(code) == 2 and code.isalpha()),
        key=lambda choice: choice[1],
    )
)

# Titles, labels, hints and choices write the nouns as "{client}": the workspace's word, filled
# where they are shown (app.core.terminology).
SECTIONS: dict[str, tuple[str, tuple[FieldSpec, ...]]] = {
    "identity": (
        "{Client}",
        (
            FieldSpec("full_name", "Full name", hint="The legal name, as on invoices."),
            FieldSpec("short_name", "Short name", hint="What your team calls them; unique."),
            FieldSpec("status", "Status", "select", choices=STATUS_CHOICES),
            FieldSpec(
                "external_id",
                "External id",
                hint="Their id in your accounting system; imports match on it.",
            ),
        ),
    ),
    "address": (
        "Billing address",
        (
            FieldSpec("location", "Location", "select", choices=LOCATION_CHOICES),
            FieldSpec("country", "Country", "select", choices=COUNTRY_CHOICES),
            FieldSpec("address_line1", "Address"),
            FieldSpec("address_line2", "Address (line 2)"),
            FieldSpec("city", "City"),
            FieldSpec(
                "region",
                "State or region",
                hint="For India, the state's GST code or name, e.g. 29 or Karnataka.",
            ),
            FieldSpec("postal_code", "PIN or postal code"),
        ),
    ),
    "tax": (
        "Tax registration",
        (
            FieldSpec("gstin", "GSTIN", hint="15 characters; its state must match the address."),
            FieldSpec("pan", "PAN", hint="Taken from the GSTIN when left empty."),
            FieldSpec("abn", "ABN", hint="Australian {clients}."),
            FieldSpec(
                "vat_number", "VAT number", hint="With the country prefix, e.g. DE123456789."
            ),
            FieldSpec("tin", "TIN", hint="Philippines: 9 digits and branch code; elsewhere free."),
            FieldSpec("tax_registration", "Other registration details", "textarea"),
            FieldSpec(
                "remittance_details",
                "Remittance details",
                "textarea",
                hint="Where and how this {client} pays you.",
            ),
        ),
    ),
    "terms": (
        "Payment terms",
        (
            FieldSpec("payment_terms", "Terms", "select", choices=TERMS_CHOICES),
            FieldSpec("payment_days", "Payment days", "number", hint="For Net and MFI terms."),
            FieldSpec("payment_terms_note", "Custom terms", hint="Required for Custom terms."),
        ),
    ),
    "commercial": (
        "Account",
        (
            FieldSpec(
                "engagement_manager_user_id",
                "Engagement manager",
                "select",
                dynamic_choices="members",
                hint="Gets this {client}'s reports and {notices}; told by e-mail.",
            ),
            FieldSpec("industry_id", "Industry", "select", dynamic_choices="industries"),
            FieldSpec("new_business_year", "New-business year", "number"),
            FieldSpec("currency", "Currency", hint="Three letters, e.g. INR, USD."),
            FieldSpec("credit_limit", "Credit limit"),
            FieldSpec(
                "preferred_language",
                "Preferred language",
                "select",
                choices=tuple(LANGUAGES.items()),
            ),
            FieldSpec("preferred_channel", "Preferred channel", "select", choices=CHANNEL_CHOICES),
            FieldSpec("tags", "Tags", hint="Separated by commas, e.g. key account, north."),
        ),
    ),
}

ALL_FIELDS = tuple(spec for _, specs in SECTIONS.values() for spec in specs)
CONTACT_FIELDS = (
    FieldSpec("full_name", "Name"),
    FieldSpec("job_title", "Job title"),
    FieldSpec("email", "E-mail"),
    FieldSpec("phone", "Phone", hint="Local numbers are read in your country; +country otherwise."),
    FieldSpec(
        "preferred_language",
        "Language",
        "select",
        choices=(("", "Same as the {client}"), *LANGUAGES.items()),
    ),
)
SITE_FIELDS = (
    FieldSpec("name", "Site name"),
    FieldSpec("address_line1", "Address"),
    FieldSpec("address_line2", "Address (line 2)"),
    FieldSpec("city", "City"),
    FieldSpec("region", "State or region"),
    FieldSpec("postal_code", "PIN or postal code"),
    FieldSpec("country", "Country", "select", choices=(("", "—"), *COUNTRY_CHOICES)),
    FieldSpec("latitude", "Latitude", hint="Decimal degrees, e.g. 12.971599."),
    FieldSpec("longitude", "Longitude", hint="Decimal degrees, e.g. 77.594563."),
)
