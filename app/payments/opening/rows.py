"""Checking the rows of an opening-balance file: each row is an open invoice of the old books
(number, dates, client, amounts, what was already paid). A row is checked on its own (dates
real, due on or after the invoice date, total = amount before tax + tax within a paisa, paid
no more than the total, total above zero) and against the file's earlier rows and the
invoices already here (a number is used once; an OPENING invoice of that number means the
row was imported before). The client is found by GSTIN, external id, short name or full
name, else it will be created (checked by the client rules when it is written)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import String, any_, func, literal, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from app.clients.imports.files import FORMULA_START
from app.clients.models import Client
from app.core.clock import tenant_today
from app.core.money import CURRENCIES, to_money
from app.core.terminology import worded
from app.invoicing.models import OPENING_SERIES, Invoice
from tenants.models import Tenant

NUMBER_MAX = 16  # invoices.number
TOLERANCE = Decimal("0.01")
LARGEST = Decimal("1e16")  # NUMERIC(18, 2)
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d-%b-%Y", "%d %b %Y", "%d/%m/%y")
_NOT_AMOUNT = re.compile(r"[^0-9.\-]")


@dataclass
class OpeningRow:
    line: int
    values: dict = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    client_id: int | None = None  # the client it matched; None: created on import
    client_label: str = ""
    already_imported: bool = False


def parse_date(text: str) -> date | None:
    """A day as books write it: ISO (also what a workbook's date cells read as), or day first
    (dd/mm/yyyy, dd-mm-yyyy, dd.mm.yyyy, 05-Dec-2026)."""
    text = text.strip()
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def parse_amount(text: str) -> Decimal | None:
    """An amount as books write it (₹ 1,18,000.00; 1 180.5; (250) for a negative one)."""
    text = text.strip()
    negative = text.startswith("(") and text.endswith(")")
    digits = _NOT_AMOUNT.sub("", text)
    if not digits or digits.count(".") > 1:
        return None
    try:
        amount = to_money(Decimal(digits))
    except (InvalidOperation, ValueError):
        return None
    return -amount if negative else amount


def _name_key(text: str) -> str:
    return " ".join(text.split()).lower()


@dataclass
class RowChecker:
    """Checks rows batch by batch; remembers the file's earlier numbers to find duplicates."""

    session: Session
    tenant: Tenant
    mapping: Mapping
    seen_numbers: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.today = tenant_today(self.session)

    def _raw(self, cells: list[str]) -> dict[str, str]:
        width = len(cells)
        raw = {
            key: cells[int(index)].strip() if int(index) < width else ""
            for key, index in self.mapping.items()
        }
        for key, value in raw.items():
            if value[:1] == "'" and value[1:2] in FORMULA_START:
                raw[key] = value[1:]
        return raw

    def check(self, rows: list[tuple[int, list[str]]]) -> list[OpeningRow]:
        raws = [self._raw(cells) for _, cells in rows]
        clients = self._clients(raws)
        existing = self._existing_numbers([raw.get("number", "") for raw in raws])
        return [
            self._check_one(line, raw, clients, existing)
            for (line, _), raw in zip(rows, raws, strict=True)
        ]

    def _clients(self, raws: list[dict]) -> dict[str, tuple[int, str, str]]:
        """Match key -> (client id, its short name, its currency) for the clients (not
        deleted) the rows may name: "gstin:", "ext:", "short:" and "full:" keys."""
        names = {_name_key(r["client"]) for r in raws if r.get("client")}
        gstins = {r["client_gstin"].upper() for r in raws if r.get("client_gstin")}
        gstins |= {n.upper() for n in names}
        found: dict[str, tuple[int, str, str]] = {}
        if not names:
            return found
        texts = ARRAY(String)
        table = Client.__table__.c
        rows = self.session.execute(
            select(
                table.id,
                table.short_name,
                table.full_name,
                table.external_id,
                table.gstin,
                table.currency,
            ).where(
                table.deleted_at.is_(None),
                or_(
                    table.gstin == any_(literal(sorted(gstins), texts)),
                    func.lower(table.external_id) == any_(literal(sorted(names), texts)),
                    func.lower(table.short_name) == any_(literal(sorted(names), texts)),
                    func.lower(table.full_name) == any_(literal(sorted(names), texts)),
                ),
            )
        )
        for client in rows:
            match = (client.id, client.short_name, client.currency)
            if client.gstin:
                found[f"gstin:{client.gstin}"] = match
            if client.external_id:
                found[f"ext:{client.external_id.lower()}"] = match
            found[f"short:{client.short_name.lower()}"] = match
            found[f"full:{client.full_name.lower()}"] = match
        return found

    def _check_one(self, line, raw, clients, existing) -> OpeningRow:
        row = OpeningRow(line)
        errors, values = row.errors, row.values
        number = raw.get("number", "")
        if not number:
            errors["number"] = "The invoice number is required."
        elif len(number) > NUMBER_MAX:
            errors["number"] = f"An invoice number has at most {NUMBER_MAX} characters."
        elif existing.get(number) == OPENING_SERIES:
            row.already_imported = True
            errors["number"] = "Already imported: this invoice is in Duebook; nothing changed."
        elif number in existing:
            errors["number"] = "A Duebook invoice has this number."
        elif number in self.seen_numbers:
            errors["number"] = f"Line {self.seen_numbers[number]} has the same invoice number."
        values["number"] = number

        for key, label in (("issue_date", "invoice date"), ("due_date", "due date")):
            text = raw.get(key, "")
            day = parse_date(text) if text else None
            if not text:
                errors[key] = f"The {label} is required."
            elif day is None:
                errors[key] = f"{text} is not a date (use 31/03/2026 or 2026-03-31)."
            values[key] = day
        if values["issue_date"] and values["issue_date"] > self.today:
            errors["issue_date"] = (
                "The invoice date is after today: bring in invoices already issued."
            )
        if (
            values["issue_date"]
            and values["due_date"]
            and values["due_date"] < values["issue_date"]
        ):
            errors["due_date"] = "The due date is before the invoice date."

        self._check_amounts(raw, values, errors)
        self._match_client(raw, clients, row)

        currency = (raw.get("currency") or "").upper() or row.values.pop("client_currency", "")
        currency = currency or self.tenant.currency
        if currency not in CURRENCIES:
            errors["currency"] = f"{currency} is not a currency code (e.g. INR, USD)."
        values["currency"] = currency
        values["reference"] = raw.get("reference", "")[:120] or None
        if not errors:
            self.seen_numbers[number] = line
        return row

    def _check_amounts(self, raw: dict, values: dict, errors: dict) -> None:
        amounts = {}
        for key, label in (
            ("subtotal", "amount before tax"),
            ("tax", "tax"),
            ("total", "total"),
            ("paid", "amount already paid"),
        ):
            text = raw.get(key, "")
            amount = parse_amount(text) if text else None
            if text and amount is None:
                errors[key] = f"{text} is not an amount."
            elif amount is not None and amount < 0:
                errors[key] = f"The {label} cannot be negative."
            elif amount is not None and amount >= LARGEST:
                errors[key] = f"The {label} is larger than any invoice can be."
            amounts[key] = amount
        total, subtotal, tax = amounts["total"], amounts["subtotal"], amounts["tax"]
        if total is None and "total" not in errors:
            errors["total"] = "The total is required."
        elif total is not None and total <= 0 and "total" not in errors:
            errors["total"] = "The total must be more than zero."
        if total is not None and not errors:
            if subtotal is None and tax is None:
                subtotal, tax = total, Decimal("0.00")
            elif subtotal is None:
                subtotal = total - tax
            elif tax is None:
                tax = total - subtotal
            if abs(subtotal + tax - total) > TOLERANCE or subtotal < 0 or tax < 0:
                errors["total"] = (
                    f"The total {total} is not the amount before tax {subtotal} plus the tax {tax}."
                )
            else:
                tax = total - subtotal  # within a paisa: the total as the books state it
        paid = amounts["paid"] or Decimal("0.00")
        if total is not None and "paid" not in errors and paid > total:
            errors["paid"] = f"Already paid ({paid}) is more than the total ({total})."
        values.update(subtotal=subtotal, tax=tax, total=total, paid=paid)

    def _match_client(self, raw: dict, clients: dict, row: OpeningRow) -> None:
        name = " ".join(raw.get("client", "").split())
        gstin = raw.get("client_gstin", "").upper()
        if not name:
            row.errors["client"] = worded("The {client} is required.")
            return
        key = name.lower()
        for candidate in (
            f"gstin:{gstin}" if gstin else "",
            f"gstin:{name.upper()}",
            f"ext:{key}",
            f"short:{key}",
            f"full:{key}",
        ):
            if candidate in clients:
                row.client_id, row.client_label, currency = clients[candidate]
                row.values["client_currency"] = currency
                break
        else:
            row.client_label = name
        row.values["client"] = name
        row.values["client_gstin"] = gstin

    def _existing_numbers(self, numbers: list[str]) -> dict[str, str]:
        wanted = sorted({n for n in numbers if n})
        if not wanted:
            return {}
        rows = self.session.execute(
            select(Invoice.number, Invoice.series).where(
                Invoice.number == any_(literal(wanted, ARRAY(String)))
            )
        )
        return {number: series for number, series in rows}
