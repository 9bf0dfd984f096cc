"""What a workspace's own fields are (their definitions) and how records keep their values.

A record keeps the values of its custom fields in one JSONB column `custom_fields` ({key:
value}), on each of the tables in ENTITY_TABLES, with a GIN index (jsonb_path_ops) for
equality and containment filters. A field offered in lists also gets an expression index on
its sort expression (`services.ensure_list_index`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    cast,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from tenants.base import TenantModel, sql_list, utcnow_column

# The records that take custom fields, and the table each lives in.
ENTITY_TABLES = {
    "clients": "clients",
    "contacts": "client_contacts",
    "projects": "projects",
    "milestones": "milestones",
    "invoices": "invoices",
    "notices": "collection_notices",
    "payments": "payments",
}
FIELD_TYPES = (
    "text",
    "long_text",
    "number",
    "money",
    "date",
    "yes_no",
    "choice",
    "choices",
    "user",
    "url",
    "email",
    "phone",
)


class CustomField(TenantModel):
    """One field a workspace added to one kind of record. Never deleted: archiving hides it
    from forms and lists while the values records hold stay as they were."""

    __tablename__ = "custom_fields"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    entity: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(100))
    field_type: Mapped[str] = mapped_column(String(16))
    required: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # The value a new record starts with, stored as the field stores its values (JSON).
    default_value = mapped_column(JSONB)
    help_text: Mapped[str | None] = mapped_column(String(255))
    # min / max (number, money, date), min_length / max_length and pattern (text kinds).
    validation: Mapped[dict] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"), default=dict
    )
    position: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    section: Mapped[str | None] = mapped_column(String(60))
    # [{"value": "gold", "label": "Gold", "archived": false}, ...]: a removed choice is
    # archived, so the records holding it still show it (marked archived).
    choices: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"), default=list)
    # Offered in lists (column, filter, sort): the field's sort expression gets an index.
    in_lists: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    print_on_invoice: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        UniqueConstraint("entity", "key"),
        CheckConstraint(f"entity IN ({sql_list(ENTITY_TABLES)})", name="entity"),
        CheckConstraint(f"field_type IN ({sql_list(FIELD_TYPES)})", name="field_type"),
        CheckConstraint("key ~ '^[a-z][a-z0-9_]{0,39}$'", name="key"),
        Index("ix_custom_fields_entity_position", "entity", "position"),
    )

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


# A record's custom values as one text for search as you type (every value, not the keys: a
# search for "po" should not find every record that has a "po_number"); immutable, so a
# trigram index can hold it. Choices read as their codes, which are their labels in lower case.
CUSTOM_VALUES_TEXT = "coalesce(jsonb_path_query_array(custom_fields, '$.*')::text, '')"


def searchable_custom_values(column) -> ColumnElement:
    """lower(CUSTOM_VALUES_TEXT) over `column`, written so that it is the expression a trigram
    index on it holds (the path inline, not a bound parameter)."""
    values = func.jsonb_path_query_array(column, literal_column("'$.*'"))
    return func.lower(func.coalesce(cast(values, Text), ""))


def custom_values_column() -> Mapped[dict]:
    """The `custom_fields` column a record of ENTITY_TABLES keeps its custom values in."""
    return mapped_column(JSONB, server_default=text("'{}'::jsonb"), default=dict)


def index_custom_values(model) -> Index:
    """The GIN index (jsonb_path_ops: containment `@>` only, a third of the default's size)
    that makes `custom_fields @> '{"key": value}'` filters fast."""
    return Index(
        f"ix_{model.__tablename__}_custom_fields",
        model.custom_fields,
        postgresql_using="gin",
        postgresql_ops={"custom_fields": "jsonb_path_ops"},
    )
