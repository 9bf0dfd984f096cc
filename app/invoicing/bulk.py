"""Writing many new invoices with their lines at once (a sync's page of invoices from the
books): a multi-row INSERT ... RETURNING per table instead of the ORM's unit of work, and their
audit entries written in bulk (app.audit.services.record_inserts), the same entries the flush
listener would have written for them one by one."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import insert, inspect
from sqlalchemy.orm import Session

from app.audit.services import record_inserts
from app.invoicing.models import Invoice, InvoiceLine


def insert_invoices(session: Session, invoices: Sequence[Invoice]) -> None:
    """Write `invoices`, built with their lines and not added to the session, in the session's
    transaction; each gets the id the database gave it."""
    if not invoices:
        return
    written = _insert(session, Invoice, invoices)
    for invoice, row in zip(invoices, written, strict=True):
        invoice.id = row.id
    lines = [line for invoice in invoices for line in invoice.lines]
    written_lines = _insert(session, InvoiceLine, lines, invoice_id=lambda line: line.invoice.id)
    record_inserts(session, Invoice, written)
    record_inserts(session, InvoiceLine, written_lines)


def _insert(session: Session, model, objects: Sequence, **derived: Callable) -> list:
    """The rows written for `objects` (transient), in their order: the columns each was given
    (a column left out gets its default), plus the `derived` ones (column: how to compute it)."""
    table = model.__table__
    columns = set(table.c.keys())
    # A multi-row INSERT names the same columns in every row: one statement per set of given
    # columns (the objects of a page are built alike, so one in practice).
    batches: dict[tuple[str, ...], list[tuple[int, dict]]] = {}
    for position, obj in enumerate(objects):
        given = inspect(obj).dict
        values = {key: given[key] for key in columns & given.keys()}
        values.update((key, compute(obj)) for key, compute in derived.items())
        batches.setdefault(tuple(sorted(values)), []).append((position, values))
    written: list = [None] * len(objects)
    for batch in batches.values():
        rows = session.execute(
            insert(table).returning(*table.c, sort_by_parameter_order=True),
            [values for _, values in batch],
        ).all()
        for (position, _), row in zip(batch, rows, strict=True):
            written[position] = row
    return written
