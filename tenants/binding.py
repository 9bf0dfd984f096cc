"""Binding a session to one tenant's schema.

Tenant tables are declared in the placeholder schema ``tenant``. A session bound to a tenant
applies ``schema_translate_map={"tenant": "tenant_<id>"}`` to the connection of each of its
transactions (SQLAlchemy 2.0 changes a Connection's options in place, and the Connection object
lives only as long as the transaction), so nothing stays on the pooled DBAPI connection and all
tenants share one compiled-statement cache. SQL that names the placeholder schema on a
connection with no translation raises ``TenantNotBound`` before it reaches the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from flask_sqlalchemy.session import Session as FlaskSQLAlchemySession
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import scoped_session

PLACEHOLDER_SCHEMA = "tenant"
SCHEMA_KEY = "tenant_schema"
TENANT_ID_KEY = "tenant_id"
ACTOR_KEY = "actor_user_id"
# The moment of a session's transaction as the product records it: set the first time something
# in the transaction asks (an audited flush, a domain event written), forgotten when it ends.
# Every audit entry and event of one transaction carries it, so the audit log shows a request's
# changes as one action and the client timeline puts a happening and its changes together.
MOMENT_KEY = "duebook.moment"
# Set on a session whose changes come from elsewhere than a person at a page (an API key, a
# sync run): its audit entries and domain events name it as their source.
SOURCE_KEY = "duebook.source"
_TOUCHED_SCHEMAS = "duebook_tenant_schemas"
_PLACEHOLDER_IN_SQL = re.compile(r'(?<![\w"])"?tenant"?\.')
# The schema names raw SQL may carry: plain lowercase identifiers, as tenant schemas are
# (tenant_<id>) and the scratch and benchmark schemas made beside them.
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class TenantNotBound(RuntimeError):
    """A tenant table was queried by a session that is not bound to a tenant."""


class TenantSession(FlaskSQLAlchemySession):
    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        # Tests join an outer transaction by configuring `bind`; honour it.
        if bind is None and self.bind is not None:
            return self.bind
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


def transaction_moment(session) -> datetime:
    return session.info.setdefault(MOMENT_KEY, datetime.now(UTC))


@event.listens_for(TenantSession, "after_transaction_end")
def _forget_moment(session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(MOMENT_KEY, None)


def schema_for_tenant_id(tenant_id: int) -> str:
    return f"tenant_{int(tenant_id)}"


def quoted_schema(schema: str) -> str:
    """`schema` as raw SQL names it: `text()` and COPY are not schema-translated, so raw SQL
    names a tenant's schema itself, always through here. A name that is not a plain lowercase
    identifier is refused rather than escaped, so nothing else can reach the statement."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"{schema!r} is not a schema name")
    return f'"{schema}"'


def qualified(schema: str, name: str) -> str:
    """`"tenant_7".clients`: a table or function of `schema`, for raw SQL."""
    return f"{quoted_schema(schema)}.{name}"


def bound_schema(session) -> str:
    """The schema of the tenant `session` is bound to, for raw SQL that works on its tables."""
    if isinstance(session, scoped_session):
        session = session()
    schema = session.info.get(SCHEMA_KEY)
    if schema is None:
        raise TenantNotBound("raw SQL on a tenant's tables: bind a tenant first")
    return schema


def bind_tenant(session, tenant_id: int, actor_user_id: int | None = None) -> None:
    """Bind `session` to a tenant for the rest of its life. One tenant per session, ever."""
    if isinstance(session, scoped_session):
        session = session()
    schema = schema_for_tenant_id(tenant_id)
    current = session.info.get(SCHEMA_KEY)
    if current is not None and current != schema:
        raise RuntimeError(f"session already bound to {current}; open a new session instead")
    session.info[SCHEMA_KEY] = schema
    session.info[TENANT_ID_KEY] = int(tenant_id)
    session.info[ACTOR_KEY] = actor_user_id
    if session.in_transaction():
        _apply_translation(session.connection(), schema)


@contextmanager
def tenant_context(session, tenant_id: int | None, actor_user_id: int | None = None) -> Iterator:
    """Work as one tenant outside a request (a job, a command, a script, a response streamed
    after its request): `session` bound to the tenant's schema (None: platform work, no
    tenant), committed when the block ends, rolled back when it raises, and ended afterwards
    (removed when it is a scoped session), since a session serves one tenant only."""
    if tenant_id is not None:
        bind_tenant(session, tenant_id, actor_user_id)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.remove() if isinstance(session, scoped_session) else session.close()


def bound_tenant_id(session) -> int | None:
    return session.info.get(TENANT_ID_KEY)


def _apply_translation(connection, schema: str | None) -> None:
    if schema is None:
        connection.execution_options(schema_translate_map=None)
        return
    connection.execution_options(schema_translate_map={PLACEHOLDER_SCHEMA: schema})
    connection.info.setdefault(_TOUCHED_SCHEMAS, set()).add(schema)


@event.listens_for(TenantSession, "after_begin")
def _translate_schema_for_transaction(session, transaction, connection):
    _apply_translation(connection, session.info.get(SCHEMA_KEY))


@event.listens_for(Engine, "before_cursor_execute")
def _refuse_unbound_tenant_sql(conn, cursor, statement, parameters, context, executemany):
    if conn.get_execution_options().get("schema_translate_map"):
        return
    if _PLACEHOLDER_IN_SQL.search(statement):
        raise TenantNotBound(
            "a tenant table was queried with no tenant bound; call bind_tenant() first"
        )


def recycle_connections_after(engine: Engine, max_schemas: int) -> None:
    """Replace a pooled connection once it has touched `max_schemas` tenant schemas.

    PostgreSQL keeps the catalog entries of every schema a backend touched until it
    disconnects (~175 KiB each), so a long-lived connection serving many tenants grows
    without bound; raising DisconnectionError at checkout makes the pool open a fresh one.
    """

    def retire_connection_with_large_catalog_cache(dbapi_connection, record, proxy):
        if len(record.info.get(_TOUCHED_SCHEMAS, ())) >= max_schemas:
            raise DisconnectionError("connection touched many tenant schemas; reconnecting")

    event.listen(engine.pool, "checkout", retire_connection_with_large_catalog_cache)
