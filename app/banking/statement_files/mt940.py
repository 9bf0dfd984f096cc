"""MT940 (SWIFT customer statement). The file is cut into tags here, keeping the line number
each starts on; each :61: statement line is read by the `mt-940` library's own field reader
(`mt940.tags.Statement`: value date, entry date, debit/credit mark, amount, type, customer
and bank references), and the :86: that follows it is its narration. A :61: the library
cannot read is listed with its line number and the rest of the file is still read."""

from __future__ import annotations

import logging
import re
from datetime import date
from decimal import Decimal

from mt940 import models as mt940_models
from mt940 import tags as mt940_tags

from app.banking.statement_files.shape import (
    CREDIT,
    DEBIT,
    BadLine,
    ParsedStatement,
    StatementFileError,
    StatementLine,
    money,
    one_of,
)

CENT = Decimal("0.01")
TAG = re.compile(r"^:(\d{2}[A-Z]?):(.*)$")
BALANCE = re.compile(r"^([CD])(\d{6})([A-Z]{3})([\d,]+)$")
_statement_tag = mt940_tags.Statement()
# The library logs an error (and each regex it tried) for a line it cannot read; our bad-line
# list already says so, with the line number.
logging.getLogger("mt940").setLevel(logging.CRITICAL)


def _tags(text: str) -> list[tuple[int, str, str]]:
    """(line number, tag, value) in file order; continuation lines join their tag's value."""
    found: list[list] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if line.startswith("{") or line in ("-}", "-", ""):
            # SWIFT block wrappers ({1:…}{2:…}{4:) and the end of a message.
            head = line.rsplit("{4:", 1)
            if len(head) == 2 and head[1]:
                line = head[1]
            else:
                continue
        match = TAG.match(line)
        if match:
            found.append([number, match.group(1), match.group(2)])
        elif found:
            found[-1][2] += "\n" + line
    return [(n, t, v) for n, t, v in found]


def _balance(value: str) -> tuple[date, str, object] | None:
    match = BALANCE.match(value.strip())
    if not match:
        return None
    sign, yymmdd, currency, amount = match.groups()
    try:
        on = date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
        value = money(amount, "balance")
    except (ValueError, BadLine):
        return None
    return on, currency, -value if sign == "D" else value


def read(data: bytes) -> ParsedStatement:
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    tags = _tags(text)
    if not any(tag == "61" for _, tag, _ in tags) and not any(tag == "25" for _, tag, _ in tags):
        raise StatementFileError("This MT940 file has no account (:25:) and no entries (:61:).")
    parsed = ParsedStatement(file_format="mt940")
    pending: list[list] = []  # [line number, :61: value, :86: narration]
    for number, tag, value in tags:
        if tag == "25":
            parsed.account = parsed.account or value.strip()
        elif tag in ("60F", "60M"):
            balance = _balance(value)
            if balance and parsed.opening_balance is None:
                parsed.period_from, parsed.currency, parsed.opening_balance = balance
        elif tag in ("62F", "62M"):
            balance = _balance(value)
            if balance:
                parsed.period_to, parsed.currency, parsed.closing_balance = balance
        elif tag == "61":
            pending.append([number, value, ""])
        elif tag == "86" and pending and not pending[-1][2]:
            pending[-1][2] = " ".join(value.split("\n")).strip()
    for number, value, narration in pending:
        parsed.keep(number, lambda v=value, n=narration, at=number: _line(v, n, at, parsed))
    return parsed


def _line(value: str, narration: str, number: int, parsed: ParsedStatement) -> StatementLine:
    transactions = mt940_models.Transactions()
    try:
        fields = _statement_tag(transactions, _statement_tag.parse(transactions, value))
    except (RuntimeError, ValueError):
        raise BadLine(f"This :61: line cannot be read: “{value.splitlines()[0][:60]}”.") from None
    mark = fields["status"]
    if mark not in ("C", "D", "RC", "RD"):
        raise BadLine(f"Credit or debit mark “{mark}” is not C, D, RC or RD.")
    amount = abs(fields["amount"].amount).quantize(CENT)
    if amount <= 0:
        raise BadLine("The amount must be more than zero.")
    # A reversal of a credit (RC) takes money out; a reversal of a debit (RD) puts it back.
    credit = mark in ("C", "RD")
    entry = fields.get("entry_date") or fields["date"]
    return StatementLine(
        source_line=number,
        booked_on=date(entry.year, entry.month, entry.day),
        value_on=date(fields["date"].year, fields["date"].month, fields["date"].day),
        amount=amount,
        direction=CREDIT if credit else DEBIT,
        currency=parsed.currency,
        bank_reference=one_of(fields.get("bank_reference"), _reference(fields)),
        narration=one_of(narration, fields.get("extra_details")) or "",
    )


def _reference(fields: dict) -> str | None:
    reference = (fields.get("customer_reference") or "").strip()
    return None if reference.upper() == "NONREF" else reference
