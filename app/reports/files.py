"""A report table as the file a schedule sends: XLSX (amounts as numbers), CSV (UTF-8 with a
byte-order mark, for Excel) or a branded A4 PDF. Cells a spreadsheet would run as formulas are
neutralised."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

from flask import render_template
from openpyxl import Workbook
from openpyxl.styles import Font

from app.clients.exports import safe_cell
from app.core.money import format_money
from app.invoicing.pdf import LOGO_URL, brand_colour, html_to_pdf, logo_key
from app.reports.tables import ReportTable
from app.settings.models import WorkspaceSettings

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
PDF_TEMPLATE = "pdf/report_table.html"
# An Excel sheet's name: at most 31 characters, none of []:*?/\
SHEET_NAME_LENGTH = 31


def _cell(value):
    return safe_cell(value) if isinstance(value, str) else value


def as_csv(table: ReportTable) -> bytes:
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(table.header)
    for row in (*table.rows, *table.totals):
        writer.writerow([_cell(value) for value in row])
    return out.getvalue().encode("utf-8")


def as_xlsx(table: ReportTable) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "".join(c for c in table.title if c not in "[]:*?/\\")[:SHEET_NAME_LENGTH]
    sheet.append([table.title])
    sheet.append([table.covers])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append(table.header)
    for cell in sheet[3]:
        cell.font = Font(bold=True)
    for index, row in enumerate((*table.rows, *table.totals)):
        sheet.append([_cell(value) for value in row])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, Decimal):
                cell.number_format = "#,##0.00"
            elif isinstance(cell.value, date):
                cell.number_format = "yyyy-mm-dd"
            if index >= len(table.rows):
                cell.font = Font(bold=True)
    sheet.freeze_panes = "A4"
    sheet.column_dimensions["A"].width = 32
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def as_pdf(table: ReportTable, tenant, workspace: WorkspaceSettings) -> bytes:
    country = tenant.country or "IN"

    def shown(row: list) -> list[dict]:
        currency = row[table.currency_column] if table.currency_column is not None else None
        cells = []
        for value in row:
            if isinstance(value, Decimal) and currency:
                cells.append({"text": format_money(value, currency, country), "number": True})
            elif isinstance(value, date):
                cells.append({"text": value.strftime("%d %b %Y"), "number": False})
            else:
                cells.append({"text": str(value), "number": isinstance(value, int | Decimal)})
        return cells

    doc = {
        "title": table.title,
        "covers": table.covers,
        "tenant_name": workspace.legal_name or tenant.name,
        "brand_colour": brand_colour(workspace.brand_colour),
        "has_logo": bool(logo_key(workspace)),
        "logo_url": LOGO_URL,
        "header": table.header,
        "rows": [shown(row) for row in table.rows],
        "totals": [shown(row) for row in table.totals],
    }
    return html_to_pdf(render_template(PDF_TEMPLATE, doc=doc), workspace)


def write(table: ReportTable, kind: str, tenant, workspace: WorkspaceSettings) -> bytes:
    if kind == "csv":
        return as_csv(table)
    if kind == "xlsx":
        return as_xlsx(table)
    return as_pdf(table, tenant, workspace)
