"""The distinct values of an indexed column, by a loose index scan.

PostgreSQL answers `SELECT DISTINCT column` by reading every row, even when an index on the
column holds the values in order. A filter offering "every value in use" (business units,
kinds of audited record) then costs a scan of the table on each view. Asking the index for the
smallest value, then for the smallest value after it, and so on, costs one probe per distinct
value instead: a handful, whatever the size of the table."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import InstrumentedAttribute


def distinct_values(column: InstrumentedAttribute) -> Select:
    """A statement listing the non-null values of `column`, each once, in order. `column`
    must lead an index (a partial one on `column IS NOT NULL` will do)."""
    first = select(func.min(column).label("value")).where(column.is_not(None))
    values = first.cte(f"distinct_{column.key}", recursive=True)
    after = select(func.min(column)).where(column > values.c.value).scalar_subquery()
    values = values.union_all(select(after).where(values.c.value.is_not(None)))
    return select(values.c.value).where(values.c.value.is_not(None)).order_by(values.c.value)
