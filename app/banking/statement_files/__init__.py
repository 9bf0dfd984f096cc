"""Bank statement files read into one plain shape (`shape.py`), whatever their format: CAMT.053
(`camt053.py`), MT940 (`mt940.py`), OFX 1.x and 2.x (`ofx.py`) and the CSV exports of Indian
banks (`bank_csv.py`). Each reader keeps every good line and lists each bad one with the line
number (or entry index) it came from and the reason, in words; none of them raises on a bad
line. `read_statement` detects the format from the bytes."""

from __future__ import annotations

from app.banking.statement_files import bank_csv, camt053, mt940, ofx
from app.banking.statement_files.shape import ParsedStatement, StatementFileError

FORMAT_LABELS = {
    "camt053": "CAMT.053 (ISO 20022 XML)",
    "mt940": "MT940 (SWIFT)",
    "ofx": "OFX",
    "csv": "CSV export",
}


def detect_format(data: bytes) -> str | None:
    """The statement format of `data` from its first bytes, or None when it is none we read."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").decode("latin-1")
    if "camt.053" in data[:4096].decode("latin-1"):
        return "camt053"
    if head.startswith("OFXHEADER") or "<OFX>" in head.upper():
        return "ofx"
    if head.startswith(("{1:", ":20:")) or "\n:20:" in head or "\n:25:" in head:
        return "mt940"
    if head.startswith("<"):
        return None
    return "csv"


def read_statement(
    data: bytes, file_format: str, column_mapping: dict[str, str] | None = None
) -> ParsedStatement:
    """The statement in `data`. Raises StatementFileError when the file as a whole cannot be
    read (not that format, no statement in it, a CSV whose columns are not known yet)."""
    if file_format == "camt053":
        return camt053.read(data)
    if file_format == "mt940":
        return mt940.read(data)
    if file_format == "ofx":
        return ofx.read(data)
    if file_format == "csv":
        return bank_csv.read(data, column_mapping)
    raise StatementFileError("This file is not a bank statement format Duebook reads.")
