"""Reading the invoicing forms. The hand-made invoice has a variable number of line rows (added
and removed with htmx), so it is read from the request's lists rather than a fixed WTForms
form; each row's inputs share a name (description, hsn_sac, quantity, unit_price, tax_rate),
so the n-th value of each list belongs to the n-th row. The rules are in services."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from app.invoicing.models import Invoice
from app.invoicing.services import ManualLine

LINE_FIELDS = ("description", "hsn_sac", "quantity", "unit_price", "tax_rate", "milestone_id")
MAX_LINES = 100
BLANK_ROWS = 3


def manual_lines(form) -> list[ManualLine]:
    """The line rows of a submitted hand-made invoice, in page order (at most MAX_LINES)."""
    columns = {name: form.getlist(name) for name in LINE_FIELDS}
    count = min(max((len(values) for values in columns.values()), default=0), MAX_LINES)
    return [
        ManualLine(
            **{
                name: (columns[name][i] if i < len(columns[name]) else "") or ""
                for name in LINE_FIELDS
            }
        )
        for i in range(count)
    ]


def lines_of(invoice: Invoice) -> list[ManualLine]:
    """A draft's lines as the edit form shows them."""
    return [
        ManualLine(
            description=line.description,
            hsn_sac=line.hsn_sac or "",
            quantity=f"{line.quantity.normalize():f}",
            unit_price=str(line.unit_price),
            tax_rate=f"{line.tax_rate.normalize():f}",
            milestone_id=str(line.milestone_id or ""),
        )
        for line in invoice.lines
    ]


def line_rows(lines: list[ManualLine], errors: Mapping[str, str], default_rate: str):
    """What the template shows per row: a key for element ids, the values, the row's errors."""
    if not lines:
        lines = [ManualLine(tax_rate=default_rate) for _ in range(BLANK_ROWS)]
    return [
        {
            "key": str(i),
            "line": line,
            "errors": {
                f: errors[f"lines.{i}.{f}"] for f in LINE_FIELDS if f"lines.{i}.{f}" in errors
            },
        }
        for i, line in enumerate(lines)
    ]


def new_row(default_rate: str) -> dict:
    """A blank row added by htmx: a random key keeps its element ids unique on the page."""
    return {
        "key": "n" + secrets.token_hex(4),
        "line": ManualLine(tax_rate=default_rate),
        "errors": {},
    }
