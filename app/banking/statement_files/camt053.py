"""CAMT.053 (ISO 20022 bank-to-customer statement), any version: read with defusedxml, which
refuses entity declarations and external references (no billion laughs, no file or network
reads). Paths: Document/BkToCstmrStmt/Stmt{Acct, Bal*, Ntry*{NtryDtls/TxDtls*}}. A bad entry
is listed by its index (the n-th Ntry of the file); v02's <Sts>BOOK</Sts> and v08's
<Sts><Cd>BOOK</Cd></Sts> both read; only booked entries become lines."""

from __future__ import annotations

from datetime import date, datetime
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

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


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(element: Element | None, path: str) -> Element | None:
    """The first element at `path` (local names separated by /), namespaces ignored."""
    for name in path.split("/"):
        if element is None:
            return None
        element = next((child for child in element if _local(child.tag) == name), None)
    return element


def _all(element: Element | None, name: str) -> list[Element]:
    return [child for child in element if _local(child.tag) == name] if element is not None else []


def _text(element: Element | None, path: str) -> str | None:
    found = _find(element, path)
    return found.text.strip() if found is not None and found.text else None


def _date(element: Element | None, path: str) -> date | None:
    """<Dt>2025-01-15</Dt> or <DtTm>2025-01-15T10:31:00+05:30</DtTm>: the bank's own day."""
    raw = _text(element, f"{path}/Dt") or _text(element, f"{path}/DtTm")
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw[:10]).date()
    except ValueError:
        raise BadLine(f"“{raw}” is not a date.") from None


def read(data: bytes) -> ParsedStatement:
    try:
        root = fromstring(data)
    except DefusedXmlException:
        raise StatementFileError(
            "This CAMT.053 file declares XML entities or external references, which bank "
            "statements never need; it was refused."
        ) from None
    except ParseError as error:
        raise StatementFileError(f"This CAMT.053 file is not well-formed XML ({error}).") from None
    statements = [s for s in root.iter() if _local(s.tag) == "Stmt"]
    if not statements:
        raise StatementFileError("This XML file holds no CAMT.053 statement (no <Stmt>).")
    parsed = ParsedStatement(file_format="camt053")
    index = 0
    for statement in statements:
        account = _find(statement, "Acct")
        parsed.account = parsed.account or one_of(
            _text(account, "Id/IBAN"), _text(account, "Id/Othr/Id")
        )
        parsed.currency = parsed.currency or _text(account, "Ccy")
        period = _find(statement, "FrToDt")
        if period is not None:
            start, end = _text(period, "FrDtTm"), _text(period, "ToDtTm")
            parsed.period_from = parsed.period_from or (
                date.fromisoformat(start[:10]) if start else None
            )
            parsed.period_to = date.fromisoformat(end[:10]) if end else parsed.period_to
        for balance in _all(statement, "Bal"):
            code = _text(balance, "Tp/CdOrPrtry/Cd")
            try:
                amount = money(_text(balance, "Amt"), "balance")
            except BadLine:
                continue
            if _text(balance, "CdtDbtInd") == "DBIT":
                amount = -amount
            if code in ("OPBD", "PRCD") and parsed.opening_balance is None:
                parsed.opening_balance = amount
            elif code == "CLBD":
                parsed.closing_balance = amount
        for entry in _all(statement, "Ntry"):
            index += 1
            for line_read in _entry_lines(entry, index, parsed.currency):
                parsed.keep(index, line_read)
    return parsed


def _entry_lines(entry: Element, index: int, currency: str | None):
    """One reader per line the entry makes: an entry batching several transactions (TxDtls
    with their own amounts) makes one line each, else the entry is one line."""
    details = _all(_find(entry, "NtryDtls"), "TxDtls")
    own_amounts = [
        d
        for d in details
        if _find(d, "AmtDtls/TxAmt/Amt") is not None or _find(d, "Amt") is not None
    ]
    if len(details) > 1 and len(own_amounts) == len(details):
        return [lambda d=d: _line(entry, d, index, currency, batched=True) for d in details]
    return [lambda: _line(entry, details[0] if details else None, index, currency, batched=False)]


def _line(entry, tx, index, currency, batched) -> StatementLine | None:
    status = _text(entry, "Sts/Cd") or _text(entry, "Sts")
    if status and status != "BOOK":
        return None  # pending or information only: not money on the account yet
    indicator = _text(entry, "CdtDbtInd")
    if indicator not in ("CRDT", "DBIT"):
        raise BadLine(f"Entry {index}: credit or debit (CdtDbtInd) is “{indicator or ''}”.")
    amount_element = _find(entry, "Amt")
    if batched:  # (an Element with no children is falsy: test for None, never `or`)
        amount_element = _find(tx, "AmtDtls/TxAmt/Amt")
        amount_element = _find(tx, "Amt") if amount_element is None else amount_element
    amount = money(amount_element.text if amount_element is not None else None)
    if amount <= 0:
        raise BadLine(f"Entry {index}: the amount must be more than zero.")
    booked = _date(entry, "BookgDt") or _date(entry, "ValDt")
    if booked is None:
        raise BadLine(f"Entry {index}: the booking date is missing.")
    remittance = " ".join(t.text.strip() for t in _all(_find(tx, "RmtInf"), "Ustrd") if t.text)
    structured = _text(tx, "RmtInf/Strd/CdtrRefInf/Ref")
    narration = " ".join(
        part for part in (remittance, structured, _text(entry, "AddtlNtryInf")) if part
    )
    party = "Dbtr" if indicator == "CRDT" else "Cdtr"
    return StatementLine(
        source_line=index,
        booked_on=booked,
        value_on=_date(entry, "ValDt"),
        amount=amount,
        direction=CREDIT if indicator == "CRDT" else DEBIT,
        currency=(amount_element.get("Ccy") if amount_element is not None else None) or currency,
        bank_reference=one_of(
            _text(tx, "Refs/AcctSvcrRef") if batched else None, _text(entry, "AcctSvcrRef")
        ),
        end_to_end_id=one_of(_text(tx, "Refs/EndToEndId"), _text(tx, "Refs/TxId")),
        narration=narration,
        counterparty_name=one_of(
            _text(tx, f"RltdPties/{party}/Nm"), _text(tx, f"RltdPties/{party}/Pty/Nm")
        ),
        counterparty_account=one_of(
            _text(tx, f"RltdPties/{party}Acct/Id/IBAN"),
            _text(tx, f"RltdPties/{party}Acct/Id/Othr/Id"),
        ),
    )
