"""Custom fields on lower areas' pages: the audit log says a change of a record's custom values
field by field, with each field's name. Connected by `create_app`."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask
from sqlalchemy.orm import Session

from app.audit.wording import register_sub_fields
from app.custom_fields.models import ENTITY_TABLES
from app.custom_fields.services import definitions, display_value, member_choices

ENTITY_OF_TABLE = {table: entity for entity, table in ENTITY_TABLES.items()}


def init_app(app: Flask) -> None:
    register_sub_fields("custom_fields", changed_custom_values)


def changed_custom_values(
    session: Session, table: str, old: Mapping, new: Mapping
) -> list[tuple[str, str, str]]:
    """(the field's name, old value, new value) in words of each field whose value changed,
    archived fields named too; a key no field has any more is said as it was stored."""
    entity = ENTITY_OF_TABLE.get(table)
    fields = {f.key: f for f in definitions(session, entity, archived=True)} if entity else {}
    people = (
        dict(member_choices(session))
        if any(f.field_type == "user" for f in fields.values())
        else {}
    )
    changes = []
    for key in sorted(old.keys() | new.keys(), key=lambda k: (k not in fields, k)):
        if old.get(key) == new.get(key):
            continue
        field = fields.get(key)
        label = field.label if field is not None else key.replace("_", " ")

        def said(value, field=field):
            if value in (None, "", []):
                return "(none)"
            return display_value(field, value, people) if field is not None else str(value)

        changes.append((label, said(old.get(key)), said(new.get(key))))
    return changes
