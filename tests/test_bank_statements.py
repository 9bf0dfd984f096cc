"""Bank statement files read into one shape: CAMT.053, MT940, OFX 1.x (SGML) and 2.x (XML),
and the CSV exports of HDFC, ICICI, SBI and Axis (or any CSV, through a column mapping).
In each format a bad line is listed with its line number (or entry index) and reason while
the good lines are kept; a hostile XML file is refused, not expanded."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from app.banking.references import narration_keys, transfer_references
from app.banking.statement_files import detect_format, read_statement
from app.banking.statement_files.bank_csv import ColumnsUnknown, check_mapping
from app.banking.statement_files.shape import StatementFileError

FIXTURES = Path(__file__).parent / "fixtures" / "bank"


def read(name: str, mapping=None):
    data = (FIXTURES / name).read_bytes()
    return read_statement(data, detect_format(data), mapping)


def summary(parsed):
    return [
        (line.source_line, line.booked_on, line.amount, line.direction, line.bank_reference)
        for line in parsed.lines
    ]


def test_camt053_entries_balances_batches_and_a_bad_entry():
    parsed = read("camt053.xml")
    assert (parsed.file_format, parsed.account, parsed.currency) == (
        "camt053",
        "50100012345678",
        "INR",
    )
    assert (parsed.opening_balance, parsed.closing_balance) == (
        Decimal("100000.00"),
        Decimal("213000.00"),
    )
    assert (parsed.period_from, parsed.period_to) == (date(2025, 1, 1), date(2025, 1, 31))
    assert summary(parsed) == [
        (1, date(2025, 1, 15), Decimal("118000.00"), "credit", "HDFCR52025011512345678"),
        (2, date(2025, 1, 16), Decimal("5000.00"), "debit", "CHG0001"),
        # One entry batching two transfers: a line each, with their own references.
        (4, date(2025, 1, 18), Decimal("60000.00"), "credit", "BATCH-0001-1"),
        (4, date(2025, 1, 18), Decimal("40000.00"), "credit", "BATCH-0001-2"),
    ]  # the pending entry 5 is not money on the account yet
    first = parsed.lines[0]
    assert (first.counterparty_name, first.counterparty_account) == (
        "Ravi Kumar and Sons",
        "000401234567",
    )
    assert first.narration == "INV/26-27/00001" and first.end_to_end_id == "E2E-INV-1"
    assert [(b.source_line, b.reason) for b in parsed.bad_lines] == [
        (3, "Entry 3: credit or debit (CdtDbtInd) is “SIDEWAYS”.")
    ]


def test_camt053_with_an_entity_bomb_is_refused_without_expanding_it():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><x>&b;</x></Document>'
    )
    assert detect_format(bomb) == "camt053"
    with pytest.raises(StatementFileError, match="declares XML entities"):
        read_statement(bomb, "camt053")


def test_mt940_lines_with_their_narration_and_a_bad_line_by_number():
    parsed = read("statement.sta")
    assert (parsed.account, parsed.currency) == ("50100012345678", "INR")
    assert (parsed.opening_balance, parsed.closing_balance) == (
        Decimal("100000.00"),
        Decimal("215500.00"),
    )
    assert summary(parsed) == [
        (6, date(2025, 1, 15), Decimal("118000.00"), "credit", "HDFCR52025011512345678"),
        (8, date(2025, 1, 16), Decimal("5000.00"), "debit", "CHG0001"),
        (12, date(2025, 1, 17), Decimal("2500.00"), "credit", "UPI501712345678"),
    ]
    assert parsed.lines[0].narration == "NEFT CR-HDFC0000001-RAVI KUMAR AND SONS-INV/26-27/00001"
    assert [b.source_line for b in parsed.bad_lines] == [10]
    assert "cannot be read" in parsed.bad_lines[0].reason


@pytest.mark.parametrize("name", ["statement_v1.ofx", "statement_v2.ofx"])
def test_ofx_sgml_and_xml(name):
    parsed = read(name)
    assert (parsed.file_format, parsed.account, parsed.currency) == ("ofx", "50100012345678", "INR")
    assert parsed.closing_balance == Decimal("213000.00")
    first = parsed.lines[0]
    assert (first.booked_on, first.amount, first.direction, first.bank_reference) == (
        date(2025, 1, 15),
        Decimal("118000.00"),
        "credit",
        "HDFC2025011500001",
    )  # the bank's own day, whatever its time zone
    assert "INV/26-27/00001" in first.narration
    assert len(parsed.bad_lines) == 1


def test_ofx_bad_lines_carry_their_line_numbers():
    v1, v2 = read("statement_v1.ofx"), read("statement_v2.ofx")
    assert [(line.source_line, line.direction) for line in v1.lines] == [
        (17, "credit"),
        (25, "debit"),
    ]
    assert [(b.source_line, b.reason) for b in v1.bad_lines] == [
        (32, "The posting date (DTPOSTED) “2025XX17” is not a date (YYYYMMDD).")
    ]
    assert v2.lines[0].counterparty_name == "RAVI KUMAR & SONS"
    assert [(b.source_line, b.reason) for b in v2.bad_lines] == [
        (20, "“not-money” is not an amount.")
    ]


def test_hdfc_csv_preamble_footer_indian_grouping_and_bad_lines():
    parsed = read("hdfc.csv")
    assert summary(parsed) == [
        (7, date(2025, 1, 15), Decimal("118000.00"), "credit", "0000501512345678"),
        (8, date(2025, 1, 16), Decimal("50000.00"), "credit", "SBINN52025011612345678"),
        (9, date(2025, 1, 17), Decimal("5000.00"), "debit", None),  # 000000000000: none
        (12, date(2025, 1, 19), Decimal("2500.00"), "credit", "0000501912345671"),
    ]
    assert parsed.lines[0].running_balance == Decimal("218000.00")
    assert [(b.source_line, b.reason) for b in parsed.bad_lines] == [
        (10, "“abc” is not an amount."),
        (11, "“32/01/25” is not a transaction date (expected e.g. 15/01/2025 or 15 Jan 2025)."),
    ]  # the summary block below the lines is not read as lines


def test_icici_sbi_and_axis_csv():
    icici, sbi, axis = read("icici.csv"), read("sbi.csv"), read("axis.csv")
    assert summary(icici) == [
        (4, date(2025, 1, 20), Decimal("75000.00"), "credit", None),
        (5, date(2025, 1, 21), Decimal("3200.00"), "debit", None),
    ]
    assert [b.source_line for b in icici.bad_lines] == [6]
    assert summary(sbi)[0] == (
        4,
        date(2025, 1, 15),
        Decimal("9440.00"),
        "credit",
        "TRANSFER FROM 12345",
    )
    assert summary(axis) == [
        (2, date(2025, 1, 23), Decimal("236000.00"), "credit", None),
        (3, date(2025, 1, 24), Decimal("59.00"), "debit", None),
    ]
    assert [(b.source_line, b.reason) for b in axis.bad_lines] == [
        (4, "Dr/Cr is “XX”: expected Dr or Cr.")
    ]


def test_an_unknown_csv_asks_for_its_columns_then_reads_with_them():
    with pytest.raises(ColumnsUnknown) as unknown:
        read("custom.csv")
    assert unknown.value.headers == ["When", "What", "In", "Out", "Left"]
    assert set(check_mapping({"booked_on": "When"})) == {"narration", "credit"}
    mapping = {
        "booked_on": "When",
        "narration": "What",
        "credit": "In",
        "debit": "Out",
        "balance": "Left",
    }
    assert check_mapping(mapping) == {}
    parsed = read("custom.csv", mapping)
    assert summary(parsed) == [
        (2, date(2025, 1, 26), Decimal("1500.00"), "credit", None),
        (3, date(2025, 1, 27), Decimal("10.00"), "debit", None),
    ]


def test_format_detection_and_a_file_that_is_no_statement():
    assert [
        detect_format((FIXTURES / n).read_bytes())
        for n in (
            "camt053.xml",
            "statement.sta",
            "statement_v1.ofx",
            "statement_v2.ofx",
            "hdfc.csv",
        )
    ] == ["camt053", "mt940", "ofx", "ofx", "csv"]
    assert detect_format(b"<html><body>hello</body></html>") is None


def test_narration_references():
    narration = "UPI-RAVI KUMAR-ravi@okhdfcbank-HDFC0000001-501512345678-INV/26-27/00001"
    assert transfer_references(narration) == ["501512345678"]
    assert "INV262700001" in narration_keys(narration)
    assert transfer_references("NEFT CR-SBIN0000001-ACME-SBINN52025011612345678") == [
        "SBINN52025011612345678"
    ]
    assert transfer_references("RTGS CR-IOBA0000001-INITECH LLP-IOBAR52025012300313124") == [
        "IOBAR52025012300313124"
    ]
