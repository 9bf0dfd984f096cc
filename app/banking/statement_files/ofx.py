"""OFX statements, 1.x (SGML: the header lines, then tags whose leaf elements are not closed)
and 2.x (XML). Both are read by one tolerant tag reader that keeps the line number each
<STMTTRN> starts on, so a bad transaction is listed with it and the rest are kept. No entity
is expanded beyond the five XML ones (html.unescape of plain text), no DTD read. Transaction
fields: TRNTYPE, DTPOSTED (YYYYMMDD[HHMMSS][.XXX][[+5:30:IST]], the bank's own day is kept),
TRNAMT (signed), FITID (the bank's id: the dedupe key), NAME, MEMO."""

from __future__ import annotations

import contextlib
import html
import re
from datetime import date

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

TOKEN = re.compile(r"<(/?)([A-Za-z0-9.]+)>([^<]*)")


def _day(raw: str | None, what: str) -> date:
    digits = (raw or "").strip()[:8]
    if len(digits) != 8 or not digits.isdigit():
        raise BadLine(f"The {what} “{(raw or '').strip()}” is not a date (YYYYMMDD).")
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise BadLine(f"The {what} “{raw.strip()}” is not a date.") from None


def read(data: bytes) -> ParsedStatement:
    text = data.decode("utf-8", errors="replace")
    if "<OFX>" not in text.upper():
        raise StatementFileError("This OFX file has no <OFX> element.")
    parsed = ParsedStatement(file_format="ofx")
    line_starts = [m.start() for m in re.finditer("\n", text)]
    path: list[str] = []
    transaction: dict | None = None
    transaction_line = 0
    for match in TOKEN.finditer(text):
        closing, name, value = (
            match.group(1),
            match.group(2).upper(),
            html.unescape(match.group(3)).strip(),
        )
        if closing:
            # SGML leaves are never closed: close up to the named element if it is open.
            if name in path:
                while path and path.pop() != name:
                    pass
            if name == "STMTTRN" and transaction is not None:
                found = transaction
                parsed.keep(
                    transaction_line, lambda t=found, at=transaction_line: _line(t, at, parsed)
                )
                transaction = None
            continue
        if value:  # a leaf: <NAME>value
            if transaction is not None:
                transaction[name] = value
            else:
                _statement_field(parsed, path, name, value)
            continue
        path.append(name)
        if name == "STMTTRN":
            transaction = {}
            transaction_line = _line_number(line_starts, match.start())
    if transaction is not None:  # an unclosed last transaction (a cut file) still counts
        parsed.keep(transaction_line, lambda: _line(transaction, transaction_line, parsed))
    return parsed


def _line_number(line_starts: list[int], offset: int) -> int:
    low, high = 0, len(line_starts)
    while low < high:  # how many newlines come before `offset`
        middle = (low + high) // 2
        if line_starts[middle] < offset:
            low = middle + 1
        else:
            high = middle
    return low + 1


def _statement_field(parsed: ParsedStatement, path: list[str], name: str, value: str) -> None:
    if name == "CURDEF":
        parsed.currency = value
    elif name == "ACCTID":
        parsed.account = parsed.account or value
    elif name == "DTSTART":
        parsed.period_from = _safe_day(value)
    elif name == "DTEND":
        parsed.period_to = _safe_day(value)
    elif name == "BALAMT" and path and path[-1] == "LEDGERBAL":
        with contextlib.suppress(BadLine):
            parsed.closing_balance = money(value, "balance")


def _safe_day(value: str) -> date | None:
    try:
        return _day(value, "date")
    except BadLine:
        return None


def _line(fields: dict, number: int, parsed: ParsedStatement) -> StatementLine:
    signed = money(fields.get("TRNAMT"))
    if signed == 0:
        raise BadLine("The amount (TRNAMT) is zero.")
    return StatementLine(
        source_line=number,
        booked_on=_day(fields.get("DTPOSTED"), "posting date (DTPOSTED)"),
        value_on=_safe_day(fields["DTUSER"]) if fields.get("DTUSER") else None,
        amount=abs(signed),
        direction=CREDIT if signed > 0 else DEBIT,
        currency=fields.get("CURRENCY") or parsed.currency,
        bank_reference=one_of(fields.get("FITID"), fields.get("REFNUM")),
        narration=" ".join(part for part in (fields.get("NAME"), fields.get("MEMO")) if part),
        counterparty_name=fields.get("NAME"),
    )
