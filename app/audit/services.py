"""Recording and reading the audit log.

Every flush of a tenant-bound session writes one audit row per inserted, updated or deleted
record: the tenant's own tables, and the shared records that belong to the bound tenant
(memberships, invitations). Nobody has to remember to call anything, except a set-based write
of new records, which passes the flush by: it goes through `insert_audited`, which writes the
records and the same entries the flush would have written for them.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from functools import cache
from types import SimpleNamespace

from psycopg.types.json import Jsonb
from sqlalchemy import event, insert, inspect, select
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry
from app.audit.wording import fields_kept_together
from app.core.distinct_values import distinct_values
from tenants.base import TenantModel
from tenants.binding import (
    ACTOR_KEY,
    SOURCE_KEY,
    TenantSession,
    bound_tenant_id,
    quoted_schema,
    schema_for_tenant_id,
    transaction_moment,
)

HIDDEN_FIELD_MARKERS = ("password", "token", "secret")
# Shown by the entry itself (its record id, its tenant): not repeated among the fields.
IMPLIED_FIELDS = frozenset({"id", "tenant_id"})
PAGE_SIZE = 50


def _is_audited(obj) -> bool:
    return _is_audited_model(type(obj))


def _is_audited_model(model) -> bool:
    explicit = getattr(model, "__audited__", None)
    return explicit if explicit is not None else issubclass(model, TenantModel)


def _belongs_to(obj, tenant_id: int) -> bool:
    if isinstance(obj, TenantModel):
        return True
    return getattr(obj, "tenant_id", None) == tenant_id


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


def _hidden(key: str) -> bool:
    return any(marker in key for marker in HIDDEN_FIELD_MARKERS)


def _shown(key: str, value):
    return "(hidden)" if _hidden(key) else _plain(value)


def _changes(obj, action: str) -> dict:
    state = inspect(obj)
    changes = {}
    for attr in state.mapper.column_attrs:
        key = attr.key
        if key in IMPLIED_FIELDS:
            continue
        history = state.attrs[key].history
        if action == "insert":
            value = getattr(obj, key, None)
            if value is not None:
                changes[key] = [None, _shown(key, value)]
        elif action == "delete":
            old = (
                history.unchanged[0]
                if history.unchanged
                else (history.deleted[0] if history.deleted else None)
            )
            changes[key] = [_shown(key, old), None]
        elif history.has_changes():
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if old != new:
                changes[key] = [_shown(key, old), _shown(key, new)]
    if action == "update" and changes:
        # Unchanged fields said with a changed one ("Net 30 → Net 45" needs the terms too).
        for key in fields_kept_together(obj.__tablename__, changes):
            if key in state.mapper.column_attrs:
                value = _shown(key, getattr(obj, key, None))
                changes[key] = [value, value]
    return changes


def _entity_id(obj) -> str:
    # New rows have their key values already, but no identity until the flush completes.
    key = inspect(obj).mapper.primary_key_from_instance(obj)
    return "/".join(str(part) for part in key)


def _record_flush(session: Session, flush_context) -> None:
    tenant_id = bound_tenant_id(session)
    if tenant_id is None:
        return
    rows = []
    for action, objects in (
        ("insert", session.new),
        ("update", session.dirty),
        ("delete", session.deleted),
    ):
        for obj in objects:
            if not _is_audited(obj) or not _belongs_to(obj, tenant_id):
                continue
            if action == "update" and not session.is_modified(obj, include_collections=False):
                continue
            changes = _changes(obj, action)
            if action == "update" and not changes:
                continue
            entity_id = _entity_id(obj)
            subject = (
                obj.audit_subject()
                if hasattr(obj, "audit_subject")
                else f"{obj.__tablename__}:{entity_id}"
            )
            rows.append(
                {
                    "subject": subject,
                    "actor_user_id": session.info.get(ACTOR_KEY),
                    "actor_ip": session.info.get("actor_ip"),
                    "source": session.info.get(SOURCE_KEY),
                    "action": action,
                    "entity": obj.__tablename__,
                    "entity_id": entity_id,
                    "changes": changes,
                }
            )
    if rows:
        moment = transaction_moment(session)
        for row in rows:
            row["occurred_at"] = moment
        session.execute(insert(AuditEntry), rows)


def insert_audited(session: Session, model: type[TenantModel], objects, **derived) -> list:
    """Write `objects` (transient, of `model`) by multi-row INSERT ... RETURNING, in the
    session's transaction, with the audit entries the flush listener would have written for
    them one by one (a multi-row INSERT passes it by): the rows written, in the objects'
    order. Each row has the columns its object was given (one left out gets its default) and
    the `derived` ones (column: how to compute it from the object)."""
    table = model.__table__
    columns = {column.key for column in table.c}
    # A multi-row INSERT names the same columns in every row: one statement per set of given
    # columns (objects built alike, as a page's are, make one).
    batches: dict[tuple[str, ...], list[tuple[int, dict]]] = {}
    for position, obj in enumerate(objects):
        given = inspect(obj).dict
        values = {key: given[key] for key in columns & given.keys()}
        values.update((key, compute(obj)) for key, compute in derived.items())
        batches.setdefault(tuple(sorted(values)), []).append((position, values))
    written: list = [None] * len(objects)
    audited: list = [None] * len(objects)
    for batch in batches.values():
        rows = _copy_and_insert(session, table, [values for _, values in batch])
        for (position, values), row in zip(batch, rows, strict=True):
            written[position] = row
            # As the listener sees an object after its flush: the values it was given, as
            # given (10, not the column's 10.000), and the database's for the rest.
            audited[position] = {**row._mapping, **values}
    if _is_audited_model(model):
        _record_inserts(session, model, audited)
    return written


def _copy_and_insert(session: Session, table, rows: list[dict]) -> list:
    """Rows alike (the same columns) written as the clients import writes a chunk: COPYed into
    a temporary table (no SQL text to build and parse per value), then one INSERT ... SELECT
    ... RETURNING. The rows written, in `rows`' order: the SELECT hands them over in that
    order and the identity numbers them as they come (what SQLAlchemy's own ordered multi-row
    INSERT relies on), so sorted by id they are in that order."""
    names = list(rows[0])
    target = f"{quoted_schema(schema_for_tenant_id(bound_tenant_id(session)))}.{table.name}"
    columns = ", ".join(f'"{name}"' for name in names)
    staging = f"pg_temp.bulk_{table.name}"
    connection = session.connection()
    connection.exec_driver_sql(
        f"CREATE TEMP TABLE {staging} ON COMMIT DROP AS "
        f"SELECT 0::integer AS bulk_order, {columns} FROM {target} WITH NO DATA"
    )
    driver = connection.connection.driver_connection
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {staging} (bulk_order, {columns}) FROM STDIN") as copy,
    ):
        for position, values in enumerate(rows):
            copy.write_row((position, *(_copyable(values[name]) for name in names)))
    written = connection.exec_driver_sql(
        f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {staging} ORDER BY bulk_order "
        "RETURNING *"
    ).all()
    connection.exec_driver_sql(f"DROP TABLE {staging}")
    return sorted(written, key=lambda row: row.id)


def _copyable(value):
    return Jsonb(value) if isinstance(value, dict) else value


def _record_inserts(session: Session, model: type[TenantModel], records: list[dict]) -> None:
    """The audit entries of new records (each as its columns' values)."""
    if not records:
        return
    moment = transaction_moment(session)
    table = model.__tablename__
    keys = [column.key for column in model.__table__.c if column.key not in IMPLIED_FIELDS]
    # `_shown` per key, decided once for the model rather than once per record and column.
    hidden = {key for key in keys if _hidden(key)}
    # audit_subject reads only column attributes.
    subject_of = getattr(model, "audit_subject", None)
    facts = {
        "actor_user_id": session.info.get(ACTOR_KEY),
        "actor_ip": session.info.get("actor_ip"),
        "source": session.info.get(SOURCE_KEY),
        "action": "insert",
        "entity": table,
        "occurred_at": moment,
    }
    names = [*facts, "subject", "entity_id", "changes"]
    target = f"{quoted_schema(schema_for_tenant_id(bound_tenant_id(session)))}.audit_log"
    driver = session.connection().connection.driver_connection
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {target} ({', '.join(names)}) FROM STDIN") as copy,
    ):
        for values in records:
            changes = {
                key: [None, "(hidden)" if key in hidden else _plain(values[key])]
                for key in keys
                if values[key] is not None
            }
            copy.write_row(
                (
                    *facts.values(),
                    subject_of(SimpleNamespace(**values))
                    if subject_of
                    else f"{table}:{values['id']}",
                    str(values["id"]),
                    Jsonb(changes),
                )
            )


# after_flush still sees the pre-flush history, and the new rows already have their keys.
event.listen(TenantSession, "after_flush", _record_flush)


def search_entries(
    session: Session,
    *,
    entity: str | None = None,
    action: str | None = None,
    actor_user_id: int | None = None,
    since: date | None = None,
    until: date | None = None,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """Newest first, one page at a time (keyset pagination on id)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(PAGE_SIZE)
    if entity:
        query = query.where(AuditEntry.entity == entity)
    if action:
        query = query.where(AuditEntry.action == action)
    if actor_user_id:
        query = query.where(AuditEntry.actor_user_id == actor_user_id)
    if since:
        query = query.where(AuditEntry.occurred_at >= datetime.combine(since, time.min))
    if until:
        query = query.where(AuditEntry.occurred_at < datetime.combine(until, time.max))
    if before_id:
        query = query.where(AuditEntry.id < before_id)
    return list(session.scalars(query))


@cache
def _audited_entities_query():
    return distinct_values(AuditEntry.entity)


def audited_entities(session: Session) -> list[str]:
    """The kinds of record in the log (the filter's choices): a few dozen, found on the
    (entity, entity_id) index rather than by reading the whole log on each view."""
    return list(session.scalars(_audited_entities_query()))
