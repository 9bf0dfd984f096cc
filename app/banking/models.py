"""Bank accounts, the statements imported into them and their lines, each line matched to
an invoice (or not) and what became of it.

A line is recorded once per bank account: `fingerprint` is unique per account (see
`services.line_fingerprint`), so an overlapping statement uploaded again adds only what is
new. A line books at most one payment (`payment_id` unique), taken with the line locked."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import TenantModel, sql_list, utcnow_column

DIRECTIONS = ("credit", "debit")
# debit: money out, not matched; unmatched / suggested: waiting in the review queue; applied:
# booked as a payment to invoices; recorded: the payment was already recorded by hand (its
# UTR); credited: booked as the client's credit; ignored: not a client's payment; settlement:
# a payment gateway's payout (its payments were booked from the gateway, nothing to book).
LINE_STATUSES = (
    "debit",
    "unmatched",
    "suggested",
    "applied",
    "recorded",
    "credited",
    "ignored",
    "settlement",
)
WAITING_STATUSES = ("unmatched", "suggested")
RECEIVED_BY = ("upload", "sftp")
# imported: read into the account; duplicate: the same bytes as a file pulled before (renamed
# or touched on the server); refused: not a statement Duebook reads (the reason says why).
PULLED_FILE_OUTCOMES = ("imported", "duplicate", "refused")


class BankingSettings(TenantModel):
    """The workspace's one row of bank-matching choices."""

    __tablename__ = "banking_settings"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("1"))
    apply_sure_matches: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)


class BankAccount(TenantModel):
    __tablename__ = "bank_accounts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    account_number: Mapped[str] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    # The CSV columns the person chose (role -> header as written), reused next time.
    column_mapping: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = utcnow_column()


class StatementImport(TenantModel):
    __tablename__ = "statement_imports"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    bank_account_id: Mapped[int] = mapped_column(ForeignKey("tenant.bank_accounts.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    file_format: Mapped[str] = mapped_column(String(16))
    statement_account: Mapped[str | None] = mapped_column(String(64))
    period_from: Mapped[date | None] = mapped_column(Date)
    period_to: Mapped[date | None] = mapped_column(Date)
    opening_balance: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    closing_balance: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    lines_read: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    lines_added: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # [{"line": 12, "reason": "..."}]: the lines left out, in file order.
    bad_lines: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    uploaded_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    # "upload" (a person's file) or "sftp" (pulled from the bank's SFTP folder).
    received_by: Mapped[str] = mapped_column(String(8), server_default="upload")
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        CheckConstraint(f"received_by IN ({sql_list(RECEIVED_BY)})", name="received_by"),
    )


class StatementLine(TenantModel):
    __tablename__ = "statement_lines"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    bank_account_id: Mapped[int] = mapped_column(ForeignKey("tenant.bank_accounts.id"))
    import_id: Mapped[int] = mapped_column(ForeignKey("tenant.statement_imports.id"))
    source_line: Mapped[int] = mapped_column(Integer)
    booked_on: Mapped[date] = mapped_column(Date)
    value_on: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    direction: Mapped[str] = mapped_column(String(6))
    currency: Mapped[str] = mapped_column(String(3))
    bank_reference: Mapped[str | None] = mapped_column(String(255))
    narration: Mapped[str] = mapped_column(Text, server_default="")
    counterparty_name: Mapped[str | None] = mapped_column(String(255))
    counterparty_account: Mapped[str | None] = mapped_column(String(64))
    running_balance: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    transfer_references: Mapped[list[str]] = mapped_column(
        ARRAY(String(40)), server_default=text("'{}'")
    )
    narration_keys: Mapped[list[str]] = mapped_column(
        ARRAY(String(16)), server_default=text("'{}'")
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.invoices.id"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.clients.id"))
    confidence: Mapped[int | None] = mapped_column(SmallInteger)
    match_reason: Mapped[str | None] = mapped_column(Text)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.payments.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        UniqueConstraint("bank_account_id", "fingerprint", name="uq_statement_lines_fingerprint"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(f"direction IN ({sql_list(DIRECTIONS)})", name="direction"),
        CheckConstraint(f"status IN ({sql_list(LINE_STATUSES)})", name="status"),
        Index("ix_statement_lines_import_id", "import_id", "id"),
        Index(
            "ix_statement_lines_waiting",
            "booked_on",
            "id",
            postgresql_where=text(f"status IN ({sql_list(WAITING_STATUSES)})"),
        ),
        Index(
            "uq_statement_lines_payment_id",
            "payment_id",
            unique=True,
            postgresql_where=text("payment_id IS NOT NULL"),
        ),
    )


class SftpSource(TenantModel):
    """The bank's SFTP folder a bank account's statements are pulled from (one per account).
    Secrets (password, private key and its passphrase) are encrypted like integration
    credentials. `host_key_fingerprint` is the key the person confirmed; `presented_*` the
    last key the server showed, waiting for confirmation when it differs."""

    __tablename__ = "sftp_sources"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    bank_account_id: Mapped[int] = mapped_column(ForeignKey("tenant.bank_accounts.id"), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, server_default=text("22"))
    username: Mapped[str] = mapped_column(String(120))
    secrets_ciphertext: Mapped[str | None] = mapped_column(Text)
    folder: Mapped[str] = mapped_column(String(255))
    file_pattern: Mapped[str] = mapped_column(String(120))
    host_key_type: Mapped[str | None] = mapped_column(String(40))
    host_key_fingerprint: Mapped[str | None] = mapped_column(String(80))
    presented_key_type: Mapped[str | None] = mapped_column(String(40))
    presented_key_fingerprint: Mapped[str | None] = mapped_column(String(80))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the last successful attempt did, in words ("2 statements imported ...").
    last_result: Mapped[str | None] = mapped_column(Text)
    # Why the last attempt failed, in words; None after a successful one.
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (CheckConstraint("port BETWEEN 1 AND 65535", name="port_range"),)


class PulledStatementFile(TenantModel):
    """A remote file seen once: name, size and modification time (so it is not fetched again)
    and its sha256 (so the same bytes under another name or time are not imported again)."""

    __tablename__ = "pulled_statement_files"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    bank_account_id: Mapped[int] = mapped_column(ForeignKey("tenant.bank_accounts.id"))
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[int] = mapped_column(BigInteger)
    # None for a file refused unread (too large).
    sha256: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.statement_imports.id"))
    pulled_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        UniqueConstraint(
            "bank_account_id", "name", "size", "mtime", name="uq_pulled_statement_files_listing"
        ),
        CheckConstraint(f"outcome IN ({sql_list(PULLED_FILE_OUTCOMES)})", name="outcome"),
        Index("ix_pulled_statement_files_sha256", "bank_account_id", "sha256"),
        Index("ix_pulled_statement_files_pulled_at", "bank_account_id", "pulled_at"),
    )
