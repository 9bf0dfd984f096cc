"""Client export: the client list's current filters, as CSV (streamed from a server-side
cursor) or XLSX, with the column headers the import reads, so an export imports back."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

import openpyxl
from openpyxl.cell import WriteOnlyCell
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clients.imports.files import FORMULA_START
from app.clients.imports.mapping import FIELD_LABELS
from app.clients.imports.writer import CLIENT_COLUMNS
from app.clients.models import Client, Industry
from app.clients.services import ClientFilters, filtered_clients, sort_of
from app.core.clock import local_date
from app.custom_fields.services import definitions, export_value
from tenants.models import Membership, Tenant, User


def csv_lines(rows: Iterable[Iterable]) -> Iterator[str]:
    """CSV text for streaming, a few hundred rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for count, row in enumerate(rows, start=1):
        writer.writerow(row)
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# The export's columns are the fields a client import writes, in the order a person reads them:
# an exported file imports back as it is.
EXPORT_COLUMNS = CLIENT_COLUMNS
EXPORT_HEADERS = [FIELD_LABELS[key] for key in EXPORT_COLUMNS]


def export_query(filters: ClientFilters, session: Session | None = None):
    sort_key, direction, _ = sort_of(filters)
    order = (
        (sort_key.asc(), Client.id.asc())
        if direction == "asc"
        else (sort_key.desc(), Client.id.desc())
    )
    return (
        filtered_clients(filters, session)
        .with_only_columns(*(getattr(Client, key) for key in EXPORT_COLUMNS), Client.custom_fields)
        .order_by(*order)
        .execution_options(yield_per=2000)  # a server-side cursor, 2,000 rows at a time
    )


@dataclass
class ExportNames:
    """Ids shown as names in an export (the import reads the names back)."""

    industries: dict[int, str]
    managers: dict[int, str]

    @classmethod
    def load(cls, session: Session, tenant_id: int) -> ExportNames:
        industries = dict(session.execute(select(Industry.id, Industry.name)).all())
        managers = dict(
            session.execute(
                select(User.id, User.email)
                .join(Membership, Membership.user_id == User.id)
                .where(Membership.tenant_id == tenant_id)
            ).all()
        )
        return cls(industries, managers)


def export_rows(session: Session, filters: ClientFilters, names: ExportNames) -> Iterator[list]:
    """The filtered clients as plain values (the header row first), the workspace's own
    fields last, headed by their names, in the form the import reads back."""
    fields = definitions(session, "clients")
    yield [*EXPORT_HEADERS, *(field.label for field in fields)]
    manager_at = EXPORT_COLUMNS.index("engagement_manager_user_id")
    industry_at = EXPORT_COLUMNS.index("industry_id")
    tags_at = EXPORT_COLUMNS.index("tags")
    for row in session.execute(export_query(filters, session)):
        *values, custom = row
        values.extend(export_value(field, custom.get(field.key)) for field in fields)
        if values[manager_at] is not None:
            values[manager_at] = names.managers.get(values[manager_at], "")
        if values[industry_at] is not None:
            values[industry_at] = names.industries.get(values[industry_at], "")
        values[tags_at] = ", ".join(values[tags_at] or [])
        yield values


def safe_cell(value):
    """Spreadsheet programs run a cell that starts with = + - @ as a formula: not ours."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def export_csv(session: Session, filters: ClientFilters, names: ExportNames) -> Iterator[str]:
    def text_rows():
        for row in export_rows(session, filters, names):
            yield ["" if v is None else safe_cell(v) for v in row]

    yield "\ufeff"  # a byte-order mark, so that Excel reads the file as UTF-8
    yield from csv_lines(text_rows())


def export_xlsx(
    session: Session, filters: ClientFilters, names: ExportNames, out: IO[bytes]
) -> None:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Clients")
    for row in export_rows(session, filters, names):
        cells = []
        for value in row:
            if isinstance(value, str):
                cell = WriteOnlyCell(sheet, value=value)
                cell.data_type = "s"  # never a formula, whatever it starts with
                cells.append(cell)
            else:
                cells.append(value)
        sheet.append(cells)
    workbook.save(out)


def export_filename(tenant: Tenant, file_format: str) -> str:
    today = local_date(tenant.time_zone)
    return f"clients-{tenant.slug}-{today.isoformat()}.{file_format}"
