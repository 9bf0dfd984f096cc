"""The one plain shape every statement reader gives: the statement (account, dates, balances)
and its lines, plus the lines that could not be read with where and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

CREDIT = "credit"
DEBIT = "debit"
MAX_AMOUNT = Decimal("9999999999999999.99")


class StatementFileError(ValueError):
    """The file as a whole cannot be read; the message says why, for the person."""


class BadLine(ValueError):
    """One line (or entry) cannot be read; the message says why."""


@dataclass
class StatementLine:
    source_line: int  # the file's line number, or the entry's index for XML formats
    booked_on: date
    amount: Decimal  # always positive; `direction` says which way the money went
    direction: str
    currency: str | None = None
    value_on: date | None = None
    bank_reference: str | None = None
    narration: str = ""
    counterparty_name: str | None = None
    counterparty_account: str | None = None
    running_balance: Decimal | None = None
    end_to_end_id: str | None = None


@dataclass
class SkippedLine:
    source_line: int
    reason: str


@dataclass
class ParsedStatement:
    file_format: str
    account: str | None = None
    currency: str | None = None
    period_from: date | None = None
    period_to: date | None = None
    opening_balance: Decimal | None = None
    closing_balance: Decimal | None = None
    lines: list[StatementLine] = field(default_factory=list)
    bad_lines: list[SkippedLine] = field(default_factory=list)
    # The file's column headers, for a CSV whose columns the person must map first.
    headers: list[str] = field(default_factory=list)

    def keep(self, source_line: int, read) -> None:
        """Read one line with `read()` (returns a StatementLine, or None for a line that is not
        a transaction); a BadLine is listed with its line number instead."""
        try:
            line = read()
        except BadLine as bad:
            self.bad_lines.append(SkippedLine(source_line, str(bad)))
            return
        if line is not None:
            self.lines.append(line)


def money(text: str | None, what: str = "amount") -> Decimal:
    """A positive amount as banks write it: `1,18,000.00`, `118000,00` (MT940), `-5.00`."""
    raw = (text or "").strip().replace(" ", "")
    if not raw:
        raise BadLine(f"The {what} is missing.")
    if "," in raw and "." not in raw and raw.count(",") == 1 and len(raw.split(",")[1]) <= 2:
        raw = raw.replace(",", ".")  # a decimal comma (MT940, European exports)
    raw = raw.replace(",", "")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise BadLine(f"“{text.strip()}” is not an {what}.") from None
    if not value.is_finite() or abs(value) > MAX_AMOUNT:
        raise BadLine(f"“{text.strip()}” is not an {what}.")
    return value.quantize(Decimal("0.01"))


def one_of(*values: str | None) -> str | None:
    """The first value that is not empty, trimmed."""
    for value in values:
        if value and value.strip():
            return value.strip()
    return None


DATE_FORMATS = (
    "%d/%m/%Y",
    "%d/%m/%y",
    "%d-%m-%Y",
    "%d-%m-%y",
    "%d %b %Y",
    "%d-%b-%Y",
    "%d-%b-%y",
    "%d %b %y",
    "%Y-%m-%d",
    "%d.%m.%Y",
)


def day(text: str | None, what: str = "date") -> date:
    """A date as Indian bank exports write it (day first), or ISO."""
    raw = (text or "").strip()
    if not raw:
        raise BadLine(f"The {what} is missing.")
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    raise BadLine(f"“{raw}” is not a {what} (expected e.g. 15/01/2025 or 15 Jan 2025).")
