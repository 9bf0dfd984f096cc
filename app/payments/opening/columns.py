"""The fields a column of an opening-balance file can be mapped to, suggested from the headers
by the client import's mapping helpers (app.clients.imports.mapping)."""

from __future__ import annotations

from collections.abc import Mapping

from app.clients.imports.mapping import ImportField, clean_columns, header_names, suggest_columns

FIELDS: tuple[ImportField, ...] = (
    ImportField(
        "number",
        "Invoice number",
        ("invoice no", "invoice", "inv no", "bill no", "voucher no", "number", "doc no"),
    ),
    ImportField(
        "issue_date",
        "Invoice date",
        ("date", "bill date", "voucher date", "issue date", "inv date"),
    ),
    ImportField("due_date", "Due date", ("due", "due on", "payment due", "due by")),
    ImportField(
        "client",
        "Client",
        (
            "client name",
            "customer",
            "customer name",
            "party",
            "party name",
            "party's name",
            "buyer",
            "name",
            "short name",
            "client code",
            "external id",
        ),
    ),
    ImportField("client_gstin", "Client GSTIN", ("gstin", "gst no", "gst number", "party gstin")),
    ImportField("currency", "Currency", ("ccy", "currency code")),
    ImportField(
        "subtotal",
        "Amount before tax",
        ("taxable value", "taxable amount", "amount", "net amount", "value", "subtotal"),
    ),
    ImportField("tax", "Tax", ("tax amount", "gst", "gst amount", "total tax", "vat")),
    ImportField(
        "total",
        "Total",
        ("invoice total", "total amount", "gross amount", "invoice amount", "bill amount"),
    ),
    ImportField(
        "paid", "Already paid", ("paid", "amount paid", "received", "amount received", "receipts")
    ),
    ImportField("reference", "PO / reference", ("po", "po number", "reference", "ref", "order no")),
)
FIELD_LABELS = {f.key: f.label for f in FIELDS}
REQUIRED = ("number", "issue_date", "due_date", "client", "total")
_HEADER_FIELDS = header_names(FIELDS)


def suggest_mapping(headers: list[str]) -> dict[str, int]:
    return suggest_columns(_HEADER_FIELDS, headers)


def clean_mapping(raw: Mapping, column_count: int) -> dict[str, int]:
    return clean_columns(raw, FIELD_LABELS, column_count)


def mapping_problem(mapping: Mapping) -> str | None:
    missing = [FIELD_LABELS[key] for key in REQUIRED if key not in mapping]
    if not missing:
        return None
    return "Choose the columns with the " + ", ".join(missing).lower() + "."
