"""The workspace's own fields (app.custom_fields) as fields a rule's conditions may name:
"custom.<key>" on clients and invoices (and "client.custom.<key>" on invoices, through
`conditions.resolve`), each read from the record's `custom_fields` JSONB by a typed SQL
expression, so the one select per rule and the evaluator over one record read them alike.

Definitions are read from the session of the request or job (the app's session, bound to the
workspace); with none bound (a script), a rule sees no custom field."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, Date, Numeric, Text, cast, func, select, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY

from app.clients.models import Client
from app.custom_fields import services as custom_fields
from app.custom_fields.models import CustomField
from app.extensions import db
from app.invoicing.models import Invoice
from app.rules.conditions import Field
from tenants.binding import bound_tenant_id

# A custom field's kind as the rules' operators know it.
RULE_TYPES = {
    "text": "text",
    "long_text": "text",
    "url": "text",
    "email": "text",
    "phone": "text",
    "number": "number",
    "money": "money",
    "date": "date",
    "yes_no": "bool",
    "choice": "choice",
    "choices": "tags",
    "user": "user",
}
_MODELS = {"clients": Client, "invoices": Invoice}


def _expression(model, definition: CustomField):
    value = model.custom_fields[definition.key]
    kind = definition.field_type
    if kind in ("number", "money"):
        return cast(value.astext, Numeric)
    if kind == "date":
        return cast(value.astext, Date)
    if kind == "yes_no":
        return value.as_boolean()
    if kind == "user":
        return cast(value.astext, BigInteger)
    if kind == "choices":
        elements = select(func.jsonb_array_elements_text(value)).correlate(model)
        return type_coerce(func.array(elements.scalar_subquery()), ARRAY(Text))
    return value.astext


def _field(entity: str, definition: CustomField) -> Field:
    expression = _expression(_MODELS[entity], definition)
    return Field(
        path=f"custom.{definition.key}",
        label=definition.label,
        type=RULE_TYPES[definition.field_type],
        expression=lambda today: expression,
        choices=tuple(
            (choice["value"], choice["label"])
            for choice in definition.choices or []
            if not choice.get("archived")
        ),
    )


def _session():
    session = db.session
    return session if bound_tenant_id(session) is not None else None


class WorkspaceCustomFields:
    """`conditions.CustomFieldResolver` over the bound workspace's live custom fields."""

    def fields(self, entity: str) -> Sequence[Field]:
        session = _session()
        if session is None or entity not in _MODELS:
            return ()
        return [_field(entity, d) for d in custom_fields.definitions(session, entity)]

    def resolve(self, entity: str, key: str) -> Field | None:
        session = _session()
        if session is None or entity not in _MODELS:
            return None
        for definition in custom_fields.definitions(session, entity):
            if definition.key == key:
                return _field(entity, definition)
        return None
