"""Bank statements: import a file into a bank account (each line once), match its credits
(`matching.py`), apply sure matches when the workspace allows it, and settle the review
queue: accept the suggestion, split across invoices, keep as a client's credit, or ignore.

Booking a line records a payment through `app.payments.services` exactly as a hand-typed one
(so invoices settle, notices close and promises are kept through the same signals), with the
line locked first and its `payment_id` unique: a line books one payment at most.

Fingerprint of a line (unique per bank account, so an overlapping statement uploaded again
adds only its new lines): the bank's own reference when it gives one (CAMT AcctSvcrRef, OFX
FITID, MT940 bank reference, a CSV's reference column), with direction and amount, since
some banks reuse a reference for a transfer and its reversal; else the booking date,
direction, amount, narration (spaces and case ignored) and running balance. Two identical
lines without a reference or balance (two equal fees on one day) are told apart by their
order of occurrence within the file, which an overlapping statement repeats."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.banking import matching
from app.banking.models import (
    WAITING_STATUSES,
    BankAccount,
    BankingSettings,
    StatementImport,
    StatementLine,
)
from app.banking.references import narration_keys, transfer_references
from app.banking.statement_files import read_statement
from app.banking.statement_files.bank_csv import check_mapping
from app.banking.statement_files.shape import StatementFileError
from app.clients import services as clients
from app.core import signals
from app.core.terminology import worded
from app.invoicing.models import Invoice
from app.payments import services as payments
from app.payments.services import PaymentError, PaymentInvalid
from tenants.binding import bound_schema, bound_tenant_id, qualified

MAX_BAD_LINES_KEPT = 1000
ANALYZE_AFTER_LINES = 1000


class BankingError(ValueError):
    """A request the banking rules refuse; the message says why, for the person."""


def banking_settings(session: Session) -> BankingSettings:
    settings = session.get(BankingSettings, 1)
    if settings is None:
        settings = BankingSettings(id=1, apply_sure_matches=False)
        session.add(settings)
        session.flush()
    return settings


def add_bank_account(
    session: Session, name: str, account_number: str, currency: str
) -> BankAccount:
    errors = {}
    name, number = (name or "").strip(), "".join((account_number or "").split())
    currency = (currency or "INR").strip().upper()
    if not 2 <= len(name) <= 120:
        errors["name"] = "Name the account (2 to 120 characters), e.g. HDFC current account."
    if not 4 <= len(number) <= 64:
        errors["account_number"] = "Enter the account number as the statement shows it."
    elif session.scalar(select(BankAccount.id).where(BankAccount.account_number == number)):
        errors["account_number"] = "This account is already set up."
    if len(currency) != 3 or not currency.isalpha():
        errors["currency"] = "Enter the account's currency as three letters, e.g. INR."
    if errors:
        raise PaymentInvalid(errors)
    account = BankAccount(name=name, account_number=number, currency=currency)
    session.add(account)
    session.flush()
    return account


def save_column_mapping(session: Session, account: BankAccount, mapping: dict[str, str]) -> None:
    """Keep the CSV columns the person chose for this account. Raises PaymentInvalid."""
    errors = check_mapping(mapping)
    if errors:
        raise PaymentInvalid(errors)
    account.column_mapping = {role: name for role, name in mapping.items() if name}
    session.flush()


def line_fingerprint(line, occurrence: int) -> str:
    if line.bank_reference:
        basis = ["ref", line.bank_reference.strip().upper(), line.direction, str(line.amount)]
    else:
        narration = "".join(line.narration.split()).upper()
        balance = "" if line.running_balance is None else str(line.running_balance)
        basis = [
            "line",
            line.booked_on.isoformat(),
            line.direction,
            str(line.amount),
            narration,
            balance,
            str(occurrence),
        ]
    return hashlib.sha256("\x1f".join(basis).encode()).hexdigest()


def _same_account(statement_account: str | None, account: BankAccount) -> bool:
    if not statement_account:
        return True
    ours = "".join(account.account_number.split()).lstrip("0")
    theirs = "".join(statement_account.split()).lstrip("0")
    return ours.endswith(theirs[-8:]) or theirs.endswith(ours[-8:])


def import_statement(
    session: Session,
    account: BankAccount,
    filename: str,
    data: bytes,
    file_format: str,
    user_id: int | None = None,
    received_by: str = "upload",
) -> StatementImport:
    """Read the file into the account and match its credits (`received_by`: "upload", or
    "sftp" for a file the SFTP pull fetched). Raises StatementFileError (the file as a whole
    cannot be read; nothing written), ColumnsUnknown for a CSV to map first."""
    parsed = read_statement(data, file_format, account.column_mapping)
    if not _same_account(parsed.account, account):
        raise StatementFileError(
            f"This statement is for account {parsed.account}, not {account.name} "
            f"({account.account_number})."
        )
    if parsed.currency and parsed.currency != account.currency:
        raise StatementFileError(
            f"This statement is in {parsed.currency}; {account.name} is in {account.currency}."
        )
    statement = StatementImport(
        bank_account_id=account.id,
        filename=filename[:255],
        file_format=file_format,
        statement_account=(parsed.account or "")[:64] or None,
        period_from=parsed.period_from,
        period_to=parsed.period_to,
        opening_balance=parsed.opening_balance,
        closing_balance=parsed.closing_balance,
        lines_read=len(parsed.lines) + len(parsed.bad_lines),
        bad_lines=[
            {"line": bad.source_line, "reason": bad.reason}
            for bad in sorted(parsed.bad_lines, key=lambda b: b.source_line)[:MAX_BAD_LINES_KEPT]
        ],
        uploaded_by_user_id=user_id,
        received_by=received_by,
    )
    session.add(statement)
    session.flush()
    seen: Counter = Counter()
    rows = []
    for line in parsed.lines:
        base = line_fingerprint(line, 0)
        seen[base] += 1
        rows.append(
            {
                "bank_account_id": account.id,
                "import_id": statement.id,
                "source_line": line.source_line,
                "booked_on": line.booked_on,
                "value_on": line.value_on,
                "amount": line.amount,
                "direction": line.direction,
                "currency": account.currency,
                "bank_reference": (line.bank_reference or "")[:255] or None,
                "narration": line.narration,
                "counterparty_name": (line.counterparty_name or "")[:255] or None,
                "counterparty_account": (line.counterparty_account or "")[:64] or None,
                "running_balance": line.running_balance,
                "transfer_references": [
                    r[:40] for r in transfer_references(line.narration, line.bank_reference)
                ],
                "narration_keys": narration_keys(line.narration, line.end_to_end_id),
                "fingerprint": line_fingerprint(line, seen[base] - 1),
                "status": "unmatched" if line.direction == "credit" else "debit",
            }
        )
    added = 0
    if rows:
        # One statement compiled once, sent in pages of 1,000 rows (SQLAlchemy's
        # insertmanyvalues), so 17 values a row stay under PostgreSQL's 65,535 parameters.
        added = len(
            session.execute(
                insert(StatementLine)
                .on_conflict_do_nothing(constraint="uq_statement_lines_fingerprint")
                .returning(StatementLine.id),
                rows,
            ).all()
        )
    statement.lines_added = added
    session.flush()
    if added >= ANALYZE_AFTER_LINES:
        # Matching plans its joins from the table's statistics: without them a big import
        # looks like a few lines and gets nested loops over the open invoices (minutes
        # instead of a second). ANALYZE counts this transaction's own new rows.
        table = qualified(bound_schema(session), StatementLine.__tablename__)
        session.execute(text(f"ANALYZE {table}"))
    match_and_apply(session, statement, user_id)
    return statement


def match_and_apply(session: Session, statement: StatementImport, user_id: int | None) -> None:
    signals.statement_lines_added.send(
        session, tenant_id=bound_tenant_id(session), import_id=statement.id
    )
    matching.match_lines(session, statement.id)
    if not banking_settings(session).apply_sure_matches:
        return
    sure = session.scalars(
        select(StatementLine)
        .where(
            StatementLine.import_id == statement.id,
            StatementLine.status == "suggested",
            StatementLine.confidence >= matching.SURE,
        )
        .order_by(StatementLine.id)
    ).all()
    for line in sure:
        try:
            with session.begin_nested():
                accept(session, line, user_id)
        except (BankingError, PaymentError, PaymentInvalid):
            continue  # e.g. two lines paying one invoice: the second waits for a person


@dataclass(frozen=True)
class ImportSummary:
    lines_read: int
    lines_added: int
    already_imported: int
    bad: int
    debits: int
    booked: int
    waiting: int


def import_summary(session: Session, statement: StatementImport) -> ImportSummary:
    counts = dict(
        session.execute(
            select(StatementLine.status, func.count())
            .where(StatementLine.import_id == statement.id)
            .group_by(StatementLine.status)
        ).all()
    )
    good = statement.lines_read - len(statement.bad_lines)
    return ImportSummary(
        lines_read=statement.lines_read,
        lines_added=statement.lines_added,
        already_imported=good - statement.lines_added,
        bad=len(statement.bad_lines),
        debits=counts.get("debit", 0),
        booked=sum(counts.get(s, 0) for s in ("applied", "recorded", "credited")),
        waiting=sum(counts.get(s, 0) for s in WAITING_STATUSES),
    )


def review_queue(session: Session, limit: int = 100) -> list[StatementLine]:
    return session.scalars(
        select(StatementLine)
        .where(StatementLine.status.in_(WAITING_STATUSES))
        .order_by(
            StatementLine.confidence.desc().nulls_last(), StatementLine.booked_on, StatementLine.id
        )
        .limit(limit)
    ).all()


def _lock_waiting(session: Session, line: StatementLine) -> StatementLine:
    line = session.scalars(
        select(StatementLine)
        .where(StatementLine.id == line.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if line.status not in WAITING_STATUSES:
        raise BankingError("This line was already dealt with.")
    if line.direction != "credit":
        raise BankingError("Only money received can be matched.")
    return line


def _payment_values(line: StatementLine) -> dict:
    references = line.transfer_references or []
    reference = references[0] if references else (line.bank_reference or f"Bank line {line.id}")
    method = (
        "upi"
        if line.narration.upper().lstrip().startswith(("UPI", "BY TRANSFER-UPI"))
        else "bank_transfer"
    )
    return {
        "amount": str(line.amount),
        "received_on": line.booked_on.isoformat(),
        "method": method,
        "reference": reference[:120],
        "note": f"From the bank statement: {line.narration}"[:2000],
    }


def _resolve(line: StatementLine, status: str, user_id: int | None) -> None:
    line.status = status
    line.resolved_at = datetime.now(UTC)
    line.resolved_by_user_id = user_id


def split_parts(
    session: Session, numbers: list[str], amounts: list[str]
) -> list[tuple[int, Decimal]]:
    """(invoice id, amount) of each row of the split form, rows left blank skipped; BankingError
    naming the first row that is not an invoice number with an amount above zero."""
    parts = []
    for number, amount in zip(numbers, amounts, strict=False):
        if not number.strip() and not amount.strip():
            continue
        invoice_id = session.scalar(select(Invoice.id).where(Invoice.number == number.strip()))
        try:
            value = Decimal(amount.replace(",", "").strip())
        except InvalidOperation:
            value = None
        if invoice_id is None or value is None or value <= 0:
            raise BankingError(f"“{number}” for “{amount}”: enter an invoice number and an amount.")
        parts.append((invoice_id, value.quantize(Decimal("0.01"))))
    return parts


def split(
    session: Session, line: StatementLine, parts: list[tuple[int, Decimal]], user_id: int | None
) -> StatementLine:
    """Book the line as one payment of the invoices' client applied across `parts` (invoice
    id, amount); what the parts leave is the client's credit. Raises BankingError,
    PaymentError (nothing written: the caller's savepoint or request rolls back)."""
    line = _lock_waiting(session, line)
    invoices = [session.get(Invoice, invoice_id) for invoice_id, _ in parts]
    if not parts or any(invoice is None for invoice in invoices):
        raise BankingError("Choose the invoices this money pays.")
    client_ids = {invoice.client_id for invoice in invoices}
    if len(client_ids) != 1:
        raise BankingError(
            worded("One bank credit pays one {client}'s invoices: choose invoices of one {client}.")
        )
    if sum(amount for _, amount in parts) > line.amount:
        raise BankingError("The parts add up to more than the amount received.")
    client = clients.get_client(session, client_ids.pop())
    if client is None:
        raise BankingError(worded("That {client} no longer exists."))
    payment = payments.record_payment(session, client, _payment_values(line))
    payments.allocate(
        session,
        payment,
        [(invoice_id, amount, "0", None, None) for invoice_id, amount in parts],
        user_id=user_id,
    )
    line.payment_id, line.client_id = payment.id, client.id
    _resolve(line, "applied", user_id)
    session.flush()
    return line


def accept(session: Session, line: StatementLine, user_id: int | None) -> StatementLine:
    """Book the suggested match: the line pays its invoice, up to what the invoice owes."""
    line = _lock_waiting(session, line)
    if line.invoice_id is None:
        raise BankingError("This line has no suggested invoice: split it or keep it as credit.")
    invoice = session.get(Invoice, line.invoice_id)
    owed = payments.outstanding(session, invoice)
    if owed <= 0:
        raise BankingError(f"Invoice {invoice.number} owes nothing now: keep this as credit.")
    return split(session, line, [(invoice.id, min(owed, line.amount))], user_id)


def keep_as_credit(
    session: Session, line: StatementLine, client_id: int, user_id: int | None
) -> StatementLine:
    line = _lock_waiting(session, line)
    client = clients.get_client(session, client_id)
    if client is None:
        raise BankingError(worded("Choose the {client} who sent this money."))
    payment = payments.record_payment(session, client, _payment_values(line))
    line.payment_id, line.client_id, line.invoice_id = payment.id, client.id, None
    _resolve(line, "credited", user_id)
    session.flush()
    return line


def ignore(session: Session, line: StatementLine, user_id: int | None) -> StatementLine:
    line = _lock_waiting(session, line)
    _resolve(line, "ignored", user_id)
    session.flush()
    return line
