"""Who owns each synced field: the books, Duebook, or either (the side that changed it since
the two last agreed wins; both changed it: a conflict for a person).

Defaults follow what each side is for: the books own the ledger (an invoice's number, dates,
lines, totals and state; the payments recorded there), Duebook owns collection data (which is
not synced at all) and the payments recorded in Duebook; a customer's details (name, e-mail,
phone, tax number, address) are kept by either side. A workspace changes the customer fields
on the connection's settings page; the ledger stays the books'."""

from __future__ import annotations

from app.sync.mapping import CONTACT_FIELDS, CONTACT_LABELS

OWNERS = ("books", "duebook", "either")
OWNER_LABELS = {
    "books": "The books win",
    "duebook": "Duebook wins",
    "either": "Latest change wins (both changed: ask me)",
}
DEFAULT_CONTACT_OWNER = "either"


def contact_owners(settings: dict) -> dict[str, str]:
    chosen = (settings or {}).get("ownership", {}).get("contact", {})
    return {
        name: chosen.get(name) if chosen.get(name) in OWNERS else DEFAULT_CONTACT_OWNER
        for name in CONTACT_FIELDS
    }


def clean_contact_owners(raw) -> tuple[dict[str, str], dict[str, str]]:
    """(owners by field, errors by field) from the settings form."""
    owners, errors = {}, {}
    for name in CONTACT_FIELDS:
        value = (raw.get(f"owner_{name}") or DEFAULT_CONTACT_OWNER).strip()
        if value not in OWNERS:
            errors[f"owner_{name}"] = f"Choose who owns “{CONTACT_LABELS[name]}”."
        owners[name] = value
    return owners, errors
