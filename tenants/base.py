"""Declarative bases: one for the shared schema, one for the per-tenant placeholder schema."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tenants.binding import PLACEHOLDER_SCHEMA

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class SharedModel(DeclarativeBase):
    """Tables of the shared schema (`public`): what belongs to no single tenant. Declared without
    a schema name, as Alembic recommends for the default schema; tenant migrations keep
    `public` on their search path, and tenant tables never share a shared table's name."""

    metadata = MetaData(naming_convention=NAMING)


class TenantModel(DeclarativeBase):
    """Tables that every tenant schema has. No foreign keys into the shared schema: ids only,
    checked in code, so schemas can later be spread over nodes (Citus schema sharding)."""

    metadata = MetaData(schema=PLACEHOLDER_SCHEMA, naming_convention=NAMING)


def utcnow_column(**kwargs) -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), **kwargs)


def sql_list(values) -> str:
    """Values as an SQL list for CHECK constraints: ('a', 'b')."""
    return ", ".join(repr(v) for v in values)
