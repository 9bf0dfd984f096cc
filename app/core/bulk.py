"""Writing many rows of a tenant table at once with PostgreSQL's COPY, inside the session's
transaction. COPY is raw SQL: the schema comes from the session's tenant binding, and the
row-by-row audit recorder does not see these rows (callers write one audit entry instead)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from psycopg import sql
from sqlalchemy import Table
from sqlalchemy.orm import Session

from tenants.binding import bound_schema, qualified


def copy_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence]
) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.SQL(qualified(bound_schema(session), table.name)),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
    )
    cursor = session.connection().connection.driver_connection.cursor()
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
