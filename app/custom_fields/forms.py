"""The admin form of a custom field: what it shows for each kind of value. Checking is in
services.save_field."""

from __future__ import annotations

from app.custom_fields.models import CustomField
from app.custom_fields.services import choices_text, form_value

# The validation inputs each kind offers.
VALIDATION_INPUTS = {
    "text": ("min_length", "max_length", "pattern"),
    "long_text": ("min_length", "max_length", "pattern"),
    "number": ("min", "max"),
    "money": ("min", "max"),
    "date": ("min", "max"),
}


def field_form_values(field: CustomField) -> dict:
    """The admin form filled in from a saved field."""
    values = {
        "label": field.label,
        "key": field.key,
        "field_type": field.field_type,
        "help_text": field.help_text or "",
        "section": field.section or "",
        "required": "1" if field.required else "",
        "in_lists": "1" if field.in_lists else "",
        "print_on_invoice": "1" if field.print_on_invoice else "",
        "choices": choices_text(field),
        "default_value": form_value(field, field.default_value),
    }
    if isinstance(values["default_value"], list):
        values["default_value"] = ", ".join(values["default_value"])
    values.update({name: str(value) for name, value in (field.validation or {}).items()})
    return values
