"""The AR aging report as CSV, XLSX and PDF: one row per client and currency, a column per
bucket, totals per currency. Cells a spreadsheet would run as formulas are neutralised."""

from __future__ import annotations

import csv
import io
from datetime import date

from flask import render_template
from openpyxl import Workbook
from openpyxl.styles import Font

from app.aging.services import AgingReport, Buckets
from app.clients.exports import safe_cell
from app.core.money import format_money
from app.invoicing.pdf import LOGO_URL, brand_colour, html_to_pdf, logo_key
from app.settings.models import WorkspaceSettings

PDF_TEMPLATE = "pdf/aging_report.html"


def _header(buckets: Buckets) -> list[str]:
    return ["Client", "Currency", *buckets.long_labels, "Total", "Overdue"]


def _rows(report: AgingReport, buckets: Buckets):
    for row in report.rows:
        yield [safe_cell(row.name), row.currency, *row.amounts, row.total, row.overdue]
    for total in report.totals:
        yield [
            f"Total {total.currency}",
            total.currency,
            *total.amounts,
            total.outstanding,
            total.overdue,
        ]


def report_csv(report: AgingReport, buckets: Buckets) -> bytes:
    out = io.StringIO()
    out.write("\ufeff")  # a byte-order mark, so that Excel reads the file as UTF-8
    writer = csv.writer(out)
    writer.writerow(_header(buckets))
    writer.writerows(_rows(report, buckets))
    return out.getvalue().encode("utf-8")


def report_xlsx(report: AgingReport, buckets: Buckets, today: date) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = f"Aging {today.isoformat()}"
    sheet.append(_header(buckets))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for values in _rows(report, buckets):
        sheet.append(values)
        for cell in sheet[sheet.max_row][2:]:
            cell.number_format = "#,##0.00"
    sheet.freeze_panes = "C2"
    sheet.column_dimensions["A"].width = 40
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def report_pdf(
    tenant,
    workspace: WorkspaceSettings,
    report: AgingReport,
    buckets: Buckets,
    today: date,
    filters_text: str,
) -> bytes:
    """The report printed on A4 landscape, branded like the invoice (logo, brand colour), from
    plain already-formatted values."""

    def money(amount, currency):
        return format_money(amount, currency, tenant.country or "IN")

    doc = {
        "title": "Accounts receivable aging",
        "tenant_name": workspace.legal_name or tenant.name,
        "brand_colour": brand_colour(workspace.brand_colour),
        "has_logo": bool(logo_key(workspace)),
        "logo_url": LOGO_URL,
        "as_of": today.strftime("%d %b %Y"),
        "filters": filters_text,
        "labels": buckets.long_labels,
        "rows": [
            {
                "name": r.name,
                "currency": r.currency,
                "amounts": [money(a, r.currency) if a else "—" for a in r.amounts],
                "total": money(r.total, r.currency),
            }
            for r in report.rows
        ],
        "totals": [
            {
                "currency": t.currency,
                "amounts": [money(a, t.currency) for a in t.amounts],
                "total": money(t.outstanding, t.currency),
            }
            for t in report.totals
        ],
    }
    return html_to_pdf(render_template(PDF_TEMPLATE, doc=doc), workspace)
