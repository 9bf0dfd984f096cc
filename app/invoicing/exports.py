"""Invoice export: the invoice list as filtered and ordered on the page, every page of it, as
CSV (streamed from a server-side cursor) or XLSX (a write-only workbook, spooled to disk past
a few megabytes), with the invoices' own live fields last, headed by their labels. Written as
the client export writes: the same safe cells, the same value forms."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import IO

import openpyxl
from openpyxl.cell import WriteOnlyCell
from sqlalchemy.orm import Session

from app.clients.exports import csv_lines, safe_cell
from app.core.clock import local_date
from app.custom_fields.services import definitions, export_value
from app.invoicing.balance import settled_against_invoices
from app.invoicing.listing import InvoiceFilters, days_overdue, ordered_rows, still_owed
from tenants.models import Tenant

EXPORT_HEADERS = [
    "Number",
    "Client",
    "Project",
    "Issue date",
    "Due date",
    "Status",
    "Currency",
    "Total",
    "Owing",
    "Days overdue",
]
# Rows read from the cursor at a time; each batch's payments and credit notes come in two
# queries, as a page of the list's do.
BATCH = 2000


def export_rows(
    session: Session, filters: InvoiceFilters, today: date, status_labels: dict[str, str]
) -> Iterator[list]:
    """The header row, then each filtered invoice as plain values (dates as dates, money as
    Decimal, blanks as None)."""
    fields = definitions(session, "invoices")
    yield [*EXPORT_HEADERS, *(field.label for field in fields)]
    query = ordered_rows(session, filters, today).execution_options(yield_per=BATCH)
    for batch in session.execute(query).partitions():
        ids = [row.id for row in batch]
        credited, paid = settled_against_invoices(session, ids)
        for row in batch:
            yield [
                row.number,
                row.full_name,
                row.name,
                row.issue_date,
                row.due_date,
                status_labels.get(row.status, row.status),
                row.currency,
                row.total,
                still_owed(row.status, row.total, paid.get(row.id), credited.get(row.id)),
                days_overdue(row.status, row.due_date, today),
                *(export_value(field, row.custom_fields.get(field.key)) for field in fields),
            ]


def export_csv(
    session: Session, filters: InvoiceFilters, today: date, status_labels: dict[str, str]
) -> Iterator[str]:
    def text_rows():
        for row in export_rows(session, filters, today, status_labels):
            yield ["" if value is None else safe_cell(value) for value in row]

    yield "\ufeff"  # a byte-order mark, so that Excel reads the file as UTF-8
    yield from csv_lines(text_rows())


def export_xlsx(
    session: Session,
    filters: InvoiceFilters,
    today: date,
    status_labels: dict[str, str],
    out: IO[bytes],
) -> None:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Invoices")
    for row in export_rows(session, filters, today, status_labels):
        cells = []
        for value in row:
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # never a formula, whatever it starts with
            elif isinstance(value, date):
                cell.number_format = "yyyy-mm-dd"
            elif isinstance(value, Decimal):
                cell.number_format = "#,##0.00"
            cells.append(cell)
        sheet.append(cells)
    workbook.save(out)


def export_filename(tenant: Tenant, file_format: str) -> str:
    today = local_date(tenant.time_zone)
    return f"invoices-{tenant.slug}-{today.isoformat()}.{file_format}"
