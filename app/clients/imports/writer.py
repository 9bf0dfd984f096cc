"""Writing one chunk of checked import rows, set-based, in the caller's transaction (the job
commits each chunk on its own, so a crash leaves whole chunks only): the chunk's valid rows are
COPYed into a temporary table, then one UPDATE ... FROM changes the matched clients (only when
something differs), one INSERT ... SELECT adds the new ones, and one INSERT ... SELECT their
contacts; the chunk's row errors are COPYed into client_import_errors, and the import's counters
are updated. These statements pass the ORM audit listener by: the job records one audit entry
per import instead (see app.clients.imports.services)."""

from __future__ import annotations

import contextlib
import operator
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.orm import Session

from tenants.binding import quoted_schema


# A checked row of the file, as the writer takes it: its values, or its errors by column.
@dataclass(slots=True)
class RowResult:
    line: int
    values: dict
    errors: dict[str, str]
    target_id: int | None = None  # the existing client the row updates
    target_name: str | None = None  # its short name (before the update)
    contact: tuple | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


# The values clean_client returns, in the order they are written (and the client export's
# columns, in the order people read them).
CLIENT_COLUMNS = (
    "full_name",
    "short_name",
    "external_id",
    "status",
    "location",
    "country",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "gstin",
    "pan",
    "abn",
    "vat_number",
    "tin",
    "tax_registration",
    "remittance_details",
    "payment_terms",
    "payment_days",
    "payment_terms_note",
    "engagement_manager_user_id",
    "new_business_year",
    "industry_id",
    "currency",
    "credit_limit",
    "preferred_language",
    "preferred_channel",
    "tags",
)
# What an import writes: those, and the custom field values (app.custom_fields).
WRITTEN_COLUMNS = (*CLIENT_COLUMNS, "custom_fields")
_client_values = operator.itemgetter(*CLIENT_COLUMNS)


@dataclass
class ChunkStatements:
    create: sql.Composed
    copy: sql.Composed
    update: sql.Composed
    insert: sql.Composed
    contacts: sql.Composed
    errors: sql.Composed
    progress: sql.Composed
    drop: sql.SQL

    @classmethod
    def for_schema(cls, schema: str) -> ChunkStatements:
        s = sql.SQL(quoted_schema(schema))
        cols = sql.SQL(", ").join(map(sql.Identifier, WRITTEN_COLUMNS))
        c_cols = sql.SQL(", ").join(sql.Identifier("c", c) for c in WRITTEN_COLUMNS)
        r_cols = sql.SQL(", ").join(sql.Identifier("r", c) for c in WRITTEN_COLUMNS)
        # The names of the columns a row changes, from the client as it was (o) before it.
        changed = sql.SQL(", ").join(
            sql.SQL("CASE WHEN {o} IS DISTINCT FROM {r} THEN {name} END").format(
                o=sql.Identifier("o", c), r=sql.Identifier("r", c), name=sql.Literal(c)
            )
            for c in WRITTEN_COLUMNS
        )
        contact_cols = sql.SQL("contact_name, contact_job_title, contact_email, contact_phone")
        return cls(
            # Column types copied from the clients table, no constraints: checked already.
            create=sql.SQL(
                "CREATE TEMP TABLE client_import_rows ON COMMIT DROP AS "
                "SELECT 0::integer AS line, id AS target_id, {cols}, "
                "NULL::varchar(191) AS contact_name, NULL::varchar(100) AS contact_job_title, "
                "NULL::varchar(254) AS contact_email, NULL::varchar(20) AS contact_phone "
                "FROM {s}.clients WITH NO DATA"
            ).format(cols=cols, s=s),
            copy=sql.SQL(
                "COPY pg_temp.client_import_rows (line, target_id, {cols}, {contact_cols}) "
                "FROM STDIN"
            ).format(cols=cols, contact_cols=contact_cols),
            update=sql.SQL(
                "UPDATE {s}.clients AS c SET ({cols}) = ROW({r_cols}), updated_at = now(), "
                "converted_at = CASE WHEN c.status = 'prospect' AND r.status <> 'prospect' "
                "THEN now() ELSE c.converted_at END "
                "FROM pg_temp.client_import_rows AS r JOIN {s}.clients AS o ON o.id = r.target_id "
                "WHERE r.target_id IS NOT NULL AND c.id = r.target_id AND c.deleted_at IS NULL "
                "AND ({c_cols}) IS DISTINCT FROM ({r_cols}) "
                "RETURNING c.id, c.short_name, array_remove(ARRAY[{changed}], NULL)"
            ).format(s=s, cols=cols, r_cols=r_cols, c_cols=c_cols, changed=changed),
            insert=sql.SQL(
                "INSERT INTO {s}.clients ({cols}) SELECT {cols} FROM pg_temp.client_import_rows "
                "WHERE target_id IS NULL ORDER BY line RETURNING id, short_name, status"
            ).format(s=s, cols=cols),
            # A contact is added unless the client has one with that e-mail, phone or name.
            contacts=sql.SQL(
                "INSERT INTO {s}.client_contacts (client_id, full_name, job_title, email, phone) "
                "SELECT c.id, r.contact_name, r.contact_job_title, r.contact_email, "
                "r.contact_phone FROM pg_temp.client_import_rows AS r "
                "JOIN {s}.clients AS c ON lower(c.short_name) = lower(r.short_name) "
                "AND c.deleted_at IS NULL WHERE r.contact_name IS NOT NULL AND NOT EXISTS ("
                "SELECT 1 FROM {s}.client_contacts AS k WHERE k.client_id = c.id "
                "AND k.deleted_at IS NULL AND (lower(k.email) = lower(r.contact_email) "
                "OR k.phone = r.contact_phone OR lower(k.full_name) = lower(r.contact_name)))"
            ).format(s=s),
            errors=sql.SQL(
                "COPY {s}.client_import_errors (import_id, line, field, reason) FROM STDIN"
            ).format(s=s),
            progress=sql.SQL(
                "UPDATE {s}.client_imports SET processed_rows = processed_rows + %s, "
                "inserted_rows = inserted_rows + %s, updated_rows = updated_rows + %s, "
                "failed_rows = failed_rows + %s WHERE id = %s"
            ).format(s=s),
            drop=sql.SQL("DROP TABLE IF EXISTS pg_temp.client_import_rows"),
        )


@dataclass
class ChunkOutcome:
    processed: int = 0
    inserted: int = 0
    updated: int = 0
    failed: int = 0
    contacts: int = 0
    # What the chunk wrote, for its domain events: (id, short name, status) of each client
    # added, (id, short name, the columns changed) of each client updated.
    created: list[tuple[int, str, str]] = field(default_factory=list)
    changed: list[tuple[int, str, list[str]]] = field(default_factory=list)


class ChunkWrite:
    """A chunk being written, in the session's current transaction. `write_chunk` COPYs the
    valid rows into a temporary table and the row errors into client_import_errors, then
    sends the set-based statements (UPDATE ... FROM, INSERT ... SELECT, contacts, counters)
    in pipeline mode without waiting: the caller checks the next chunk while PostgreSQL
    writes this one, then calls `finish` (which waits) and commits."""

    def __init__(self, connection, outcome: ChunkOutcome):
        self.connection = connection
        self.outcome = outcome
        self.cursors: dict[str, object] = {}
        self.pipeline = None

    def send(self, statements: ChunkStatements, has_valid: bool, contacts: bool) -> None:
        if has_valid and psycopg.Pipeline.is_supported():
            self.pipeline = self.connection.pipeline()
            self.pipeline.__enter__()
        for name, statement, wanted in (
            ("updated", statements.update, has_valid),
            ("inserted", statements.insert, has_valid),
            ("contacts", statements.contacts, has_valid and contacts),
            ("drop", statements.drop, has_valid),
        ):
            if wanted:
                cursor = self.cursors[name] = self.connection.cursor()
                cursor.execute(statement)

    def finish(self, statements: ChunkStatements, import_id: int) -> ChunkOutcome:
        """Wait for the chunk's statements and write the counters; the caller commits."""
        if self.pipeline is not None:
            pipeline, self.pipeline = self.pipeline, None
            pipeline.__exit__(None, None, None)  # waits; raises what the server refused
        outcome = self.outcome
        for name, cursor in self.cursors.items():
            if name != "drop":
                setattr(outcome, name, max(cursor.rowcount, 0))
            if name == "inserted":
                outcome.created = cursor.fetchall()
            elif name == "updated":
                outcome.changed = cursor.fetchall()
            cursor.close()
        self.cursors.clear()
        with self.connection.cursor() as cursor:
            cursor.execute(
                statements.progress,
                (outcome.processed, outcome.inserted, outcome.updated, outcome.failed, import_id),
            )
        return outcome

    def abandon(self) -> None:
        """Leave pipeline mode after an error elsewhere; the caller rolls back."""
        if self.pipeline is not None:
            pipeline, self.pipeline = self.pipeline, None
            with contextlib.suppress(Exception):
                pipeline.__exit__(None, None, None)
        for cursor in self.cursors.values():
            with contextlib.suppress(Exception):
                cursor.close()
        self.cursors.clear()


def write_chunk(
    session: Session, statements: ChunkStatements, import_id: int, results: list[RowResult]
) -> ChunkWrite:
    """Start writing one chunk (see ChunkWrite); `.finish()` completes it."""
    outcome = ChunkOutcome(processed=len(results))
    valid = []
    errors = []
    for result in results:
        if result.errors:
            outcome.failed += 1
            errors.extend(
                (import_id, result.line, key, reason) for key, reason in result.errors.items()
            )
        else:
            valid.append(
                (
                    result.line,
                    result.target_id,
                    *_client_values(result.values),
                    Jsonb(result.values.get("custom_fields") or {}),
                    *(result.contact or (None, None, None, None)),
                )
            )
    connection = session.connection().connection.driver_connection
    with connection.cursor() as cursor:
        if valid:
            cursor.execute(statements.drop)
            cursor.execute(statements.create)
            with cursor.copy(statements.copy) as copy:
                write_row = copy.write_row
                for row in valid:
                    write_row(row)
        if errors:
            with cursor.copy(statements.errors) as copy:
                write_row = copy.write_row
                for row in errors:
                    write_row(row)
    write = ChunkWrite(connection, outcome)
    try:
        write.send(statements, bool(valid), any(row[-4] is not None for row in valid))
    except BaseException:
        write.abandon()
        raise
    return write
