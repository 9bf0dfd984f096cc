"""CSV statement exports of Indian banks. The header row is found by its names (banks put
their name, the account and the period above it), in either order of dates, and read by
role: booking date, value date, narration, reference, withdrawal / deposit (HDFC, ICICI,
SBI) or one amount with a Dr/Cr column (Axis), closing balance. Known headers:

- HDFC: Date, Narration, Chq./Ref.No., Value Dt, Withdrawal Amt., Deposit Amt., Closing Balance
  (DD/MM/YY; a `********` rule and a STATEMENT SUMMARY below the lines);
- ICICI: S No., Value Date, Transaction Date, Cheque Number, Transaction Remarks,
  Withdrawal Amount (INR ), Deposit Amount (INR ), Balance (INR );
- SBI: Txn Date, Value Date, Description, Ref No./Cheque No., Debit, Credit, Balance (15 Jan 2024);
- Axis: Tran Date, Value Date, CHQNO, Transaction Particulars, Amount(INR), DR|CR, Balance(INR).

Any other file: the person maps its columns once (`mapping`: role -> header as written), and
the mapping is saved with the bank account for its next statement."""

from __future__ import annotations

import csv
import io
import re

from app.banking.statement_files.shape import (
    CREDIT,
    DEBIT,
    BadLine,
    ParsedStatement,
    StatementFileError,
    StatementLine,
    day,
    money,
)

# Roles a column can play, and the names banks give them (compared as letters and digits).
ROLE_LABELS = {
    "booked_on": "Transaction date",
    "value_on": "Value date",
    "narration": "Narration / description",
    "reference": "Reference / cheque number",
    "debit": "Withdrawal (debit) amount",
    "credit": "Deposit (credit) amount",
    "amount": "Amount (with a Dr/Cr column)",
    "dr_cr": "Dr/Cr column",
    "balance": "Balance",
}
ALIASES = {
    "booked_on": ("transactiondate", "txndate", "trandate", "date", "postingdate", "transdate"),
    "value_on": ("valuedt", "valuedate"),
    "narration": (
        "narration",
        "transactionremarks",
        "description",
        "transactionparticulars",
        "particulars",
        "remarks",
        "details",
    ),
    "reference": (
        "chqrefno",
        "refnochequeno",
        "chequenumber",
        "chqno",
        "chequeno",
        "referenceno",
        "refno",
        "utr",
        "utrnumber",
    ),
    "debit": (
        "withdrawalamt",
        "withdrawalamountinr",
        "withdrawalamount",
        "debit",
        "debitamount",
        "withdrawal",
        "withdrawals",
    ),
    "credit": (
        "depositamt",
        "depositamountinr",
        "depositamount",
        "credit",
        "creditamount",
        "deposit",
        "deposits",
    ),
    "amount": ("amountinr", "amount", "transactionamount"),
    "dr_cr": ("drcr", "crdr", "debitcredit", "type"),
    "balance": ("closingbalance", "balanceinr", "balance", "bal", "runningbalance"),
}
MAX_ROWS = 100_000
HEADER_SEARCH_ROWS = 40


class ColumnsUnknown(StatementFileError):
    """A CSV whose columns Duebook does not know: the person maps them first."""

    def __init__(self, headers: list[str]):
        super().__init__(
            "Tell Duebook which column holds what; it will remember it for this account."
        )
        self.headers = headers


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _rows(data: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = []
    try:
        for row in csv.reader(io.StringIO(text), dialect):
            rows.append(row)
            if len(rows) > MAX_ROWS:
                raise StatementFileError(
                    f"This file has more than {MAX_ROWS:,} rows: "
                    "split it by month and upload each part."
                )
    except csv.Error as error:
        raise StatementFileError(
            f"Line {len(rows) + 1} of this CSV cannot be read ({error}); nothing was imported."
        ) from None
    return rows


def _roles_by_name(headers: list[str]) -> dict[str, int]:
    keys = [_key(h) for h in headers]
    roles: dict[str, int] = {}
    for role, aliases in ALIASES.items():
        for alias in aliases:
            if alias in keys and keys.index(alias) not in roles.values():
                roles[role] = keys.index(alias)
                break
    return roles


def _usable(roles: dict[str, int]) -> bool:
    has_money = ("credit" in roles and "debit" in roles) or ("amount" in roles and "dr_cr" in roles)
    return "booked_on" in roles and "narration" in roles and has_money


def _header_row(
    rows: list[list[str]], mapping: dict[str, str] | None
) -> tuple[int, dict[str, int]]:
    for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        cells = [cell.strip() for cell in row]
        if mapping:
            if all(name in cells for name in mapping.values() if name):
                return index, {role: cells.index(name) for role, name in mapping.items() if name}
        else:
            roles = _roles_by_name(cells)
            if _usable(roles):
                return index, roles
    if mapping:
        raise StatementFileError(
            "This file does not have the columns saved for this account ("
            + ", ".join(name for name in mapping.values() if name)
            + "). Map its columns again."
        )
    guess = next((r for r in rows[:HEADER_SEARCH_ROWS] if sum(1 for c in r if c.strip()) >= 3), [])
    raise ColumnsUnknown([cell.strip() for cell in guess if cell.strip()])


def check_mapping(mapping: dict[str, str]) -> dict[str, str]:
    """Errors per role of a column mapping the person chose (empty: it can read a statement)."""
    chosen = {role: name for role, name in mapping.items() if name}
    errors = {}
    if "booked_on" not in chosen:
        errors["booked_on"] = "Choose the column with the transaction date."
    if "narration" not in chosen:
        errors["narration"] = "Choose the column with the narration."
    if not (
        ("credit" in chosen and "debit" in chosen) or ("amount" in chosen and "dr_cr" in chosen)
    ):
        errors["credit"] = (
            "Choose the withdrawal and deposit columns, or one amount column and its Dr/Cr column."
        )
    names = list(chosen.values())
    if len(set(names)) != len(names):
        errors["mapping"] = "Each column can play one part only."
    return errors


def read(data: bytes, mapping: dict[str, str] | None = None) -> ParsedStatement:
    rows = _rows(data)
    header_index, roles = _header_row(rows, mapping)
    parsed = ParsedStatement(file_format="csv", headers=[c.strip() for c in rows[header_index]])
    for index, row in enumerate(rows[header_index + 1 :], start=header_index + 2):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("*"):
            continue  # blank rows and HDFC's ******** rule
        if "statementsummary" in _key(" ".join(cells)):
            break  # HDFC's summary block ends the lines
        parsed.keep(index, lambda c=cells, at=index: _line(c, roles, at))
    dates = [line.booked_on for line in parsed.lines]
    if dates:
        parsed.period_from, parsed.period_to = min(dates), max(dates)
    return parsed


def _cell(cells: list[str], roles: dict[str, int], role: str) -> str:
    at = roles.get(role)
    return cells[at] if at is not None and at < len(cells) else ""


def _line(cells: list[str], roles: dict[str, int], number: int) -> StatementLine:
    booked = day(_cell(cells, roles, "booked_on"), "transaction date")
    if "amount" in roles and "dr_cr" in roles:
        amount = money(_cell(cells, roles, "amount"))
        mark = _key(_cell(cells, roles, "dr_cr"))
        if mark in ("cr", "credit", "c"):
            direction = CREDIT
        elif mark in ("dr", "debit", "d"):
            direction = DEBIT
        else:
            raise BadLine(f"Dr/Cr is “{_cell(cells, roles, 'dr_cr')}”: expected Dr or Cr.")
    else:
        debit_text, credit_text = _cell(cells, roles, "debit"), _cell(cells, roles, "credit")
        debit = money(debit_text) if _key(debit_text) not in ("", "000") else None
        credit = money(credit_text) if _key(credit_text) not in ("", "000") else None
        if debit and credit:
            raise BadLine("Both withdrawal and deposit are filled in: expected one of them.")
        if not (debit or credit):
            raise BadLine("Neither withdrawal nor deposit has an amount.")
        amount, direction = (credit, CREDIT) if credit else (debit, DEBIT)
    amount = abs(amount)
    if amount <= 0:
        raise BadLine("The amount must be more than zero.")
    balance_text = _cell(cells, roles, "balance")
    value_text = _cell(cells, roles, "value_on")
    reference = _cell(cells, roles, "reference")
    return StatementLine(
        source_line=number,
        booked_on=booked,
        value_on=day(value_text, "value date") if value_text else None,
        amount=amount,
        direction=direction,
        # HDFC writes 000000000000, ICICI "-", when a line has no reference.
        bank_reference=reference if reference.strip("0 -") else None,
        narration=_cell(cells, roles, "narration"),
        running_balance=_balance(balance_text),
    )


def _balance(text: str):
    if not text:
        return None
    negative = text.strip().upper().endswith(("DR", "D"))
    try:
        value = money(re.sub(r"(?i)\s*(cr|dr)$", "", text.strip()), "balance")
    except BadLine:
        return None
    return -value if negative else value
