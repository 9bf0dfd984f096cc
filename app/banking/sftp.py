"""Statements pulled from the bank's SFTP folder (the host-to-host service Indian banks offer:
the bank drops each day's statement into a folder on its server). A folder on Duebook's own
server would make no sense for a hosted product: the bank's server is where the files are.

Per bank account one source: host, port, user, password or private key (encrypted like
integration credentials), folder and file pattern, and the host key the person confirmed
after seeing what the server presented (never trusted on first use; a changed key is
refused). Every 30 minutes, and on "Pull now", a job lists the folder and fetches each file
not seen before (name + size + mtime), skips bytes already pulled under another name
(sha256), and imports the rest through `services.import_statement` exactly as an upload
(the lines' fingerprints stop double booking anyway). Remote files are never deleted. A
failure (address refused, network, host key, log-in) is recorded on the source with its
reason, shown on the account's page, and the next run tries again."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.banking import services
from app.banking.models import BankAccount, PulledStatementFile, SftpSource
from app.banking.statement_files import detect_format
from app.banking.statement_files.bank_csv import ColumnsUnknown
from app.banking.statement_files.shape import StatementFileError
from app.core import outbound
from app.core.crypto import SecretsUnreadable, decrypt_secrets, encrypt_secrets
from app.core.handover import hand_over
from app.integrations.connectors.sftp import (
    HostKeyChanged,
    HostKeyUnconfirmed,
    RemoteFileTooLarge,
    SftpError,
    SftpLogin,
    load_private_key,
    open_folder,
)
from app.payments.services import PaymentInvalid
from tenants.binding import bound_tenant_id

# The upload's limit (a year of a busy account): a bigger file is refused, not read.
MAX_FILE_BYTES = 16 * 1024 * 1024
PATTERN = re.compile(r"[A-Za-z0-9_.*?\[\]-]{1,120}")
FOLDER = re.compile(r"[^\x00-\x1f]{1,255}")
SECRET_FIELDS = ("password", "private_key", "private_key_passphrase")


def _allowed_networks():
    return current_app.config.get("OUTBOUND_ALLOWED_NETWORKS", ())


def source_of(session: Session, account: BankAccount) -> SftpSource | None:
    return session.scalar(select(SftpSource).where(SftpSource.bank_account_id == account.id))


def save_source(session: Session, account: BankAccount, values: dict) -> SftpSource:
    """Create or change the account's SFTP source. A secret left empty keeps the saved one;
    a new host or port forgets the confirmed host key (it belonged to another server).
    Raises PaymentInvalid with an error per field."""
    source = source_of(session, account)
    errors = {}
    host = (values.get("host") or "").strip().lower()
    username = (values.get("username") or "").strip()
    folder = (values.get("folder") or "").strip() or "/"
    pattern = (values.get("file_pattern") or "").strip() or "*"
    port_text = (values.get("port") or "").strip() or "22"
    if not host or len(host) > 255 or any(c.isspace() or c in "/@" for c in host):
        errors["host"] = "Enter the server's name or address as your bank gave it."
    elif outbound.obvious_refusal(host, _allowed_networks()):
        errors["host"] = (
            "Enter a server on the internet; private and local network addresses cannot be used."
        )
    port = int(port_text) if port_text.isdigit() else 0
    if not 1 <= port <= 65535:
        errors["port"] = "Enter a port from 1 to 65535 (SFTP is usually 22)."
    if not 1 <= len(username) <= 120:
        errors["username"] = "Enter the user name your bank gave you."
    if not FOLDER.fullmatch(folder):
        errors["folder"] = "Enter the folder the bank puts statements in, e.g. /outbox."
    if not PATTERN.fullmatch(pattern) or "/" in pattern:
        errors["file_pattern"] = "Enter a file name pattern such as *.sta, *.xml or *.csv."
    try:
        secrets = _secrets(source) if source else {}
    except SecretsUnreadable:
        secrets = {}  # a secrets key was dropped: what is entered now is all there is
    for field in SECRET_FIELDS:
        if (values.get(field) or "").strip():
            secrets[field] = values[field].strip() if field != "password" else values[field]
    # One way to log in: what was entered now replaces the other.
    if (values.get("private_key") or "").strip() and not values.get("password"):
        secrets.pop("password", None)
    elif values.get("password") and not (values.get("private_key") or "").strip():
        secrets.pop("private_key", None)
        secrets.pop("private_key_passphrase", None)
    if not (secrets.get("password") or secrets.get("private_key")):
        errors["password"] = "Enter the password, or paste a private key."
    elif secrets.get("private_key"):
        try:
            load_private_key(secrets["private_key"], secrets.get("private_key_passphrase"))
        except SftpError as refused:
            errors["private_key"] = str(refused)
    if errors:
        raise PaymentInvalid(errors)
    if source is None:
        source = SftpSource(bank_account_id=account.id)
        session.add(source)
    elif (source.host, source.port) != (host, port):
        source.host_key_type = source.host_key_fingerprint = None
        source.presented_key_type = source.presented_key_fingerprint = None
    source.host, source.port, source.username = host, port, username
    source.folder, source.file_pattern = folder, pattern
    source.secrets_ciphertext = encrypt_secrets(secrets)
    session.flush()
    return source


def _secrets(source: SftpSource) -> dict:
    return decrypt_secrets(source.secrets_ciphertext)


def confirm_host_key(session: Session, source: SftpSource, fingerprint: str) -> None:
    """Trust the key the server presented, as the person confirmed it (the fingerprint they
    saw, so a page shown before the server changed its key again confirms nothing). Raises
    PaymentInvalid."""
    if not source.presented_key_fingerprint or fingerprint != source.presented_key_fingerprint:
        raise PaymentInvalid(
            {"fingerprint": "The server presents another key now: check the connection again."}
        )
    source.host_key_type = source.presented_key_type
    source.host_key_fingerprint = source.presented_key_fingerprint
    source.last_error = None
    session.flush()


def request_pull(session: Session, source: SftpSource, check_only: bool = False) -> None:
    """A worker connects after the request commits (a request never talks to an outside
    server). `check_only`: connect, log in and list the folder, import nothing. Either way a
    source without a confirmed key only records the key the server presents."""
    hand_over(
        session, "pull_bank_statements", source.id, check_only, tenant_id=bound_tenant_id(session)
    )


@dataclass(frozen=True)
class PullOutcome:
    imported: int = 0
    skipped: int = 0
    refused: int = 0
    error: str | None = None


def _login(source: SftpSource) -> SftpLogin:
    secrets = _secrets(source)
    return SftpLogin(
        host=source.host,
        port=source.port,
        username=source.username,
        password=secrets.get("password"),
        private_key=secrets.get("private_key"),
        private_key_passphrase=secrets.get("private_key_passphrase"),
        host_key_fingerprint=source.host_key_fingerprint,
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def pull(session: Session, source_id: int, check_only: bool = False) -> PullOutcome | None:
    """List the source's folder and import each file not pulled before (`check_only`: only
    list); record the outcome on the source. The server's faults are recorded as the source's
    last error, never raised. None when the source is gone or another pull of it is running
    (its row is locked)."""
    source = session.scalar(
        select(SftpSource).where(SftpSource.id == source_id).with_for_update(skip_locked=True)
    )
    if source is None:
        return None
    source.last_attempt_at = datetime.now(UTC)
    account = session.get(BankAccount, source.bank_account_id)
    imported = skipped = refused = 0
    notes: list[str] = []
    try:
        with open_folder(_login(source), source.folder, _allowed_networks()) as folder:
            remote_files = folder.files(source.file_pattern)
            if check_only:
                notes.append(
                    f"Connected and logged in; {_plural(len(remote_files), 'file')} matching "
                    f"{source.file_pattern} in {source.folder}."
                )
                remote_files = []
            for remote in remote_files:
                if _seen(session, account, remote):
                    skipped += 1
                    continue
                try:
                    fetched = folder.fetch(remote.name, MAX_FILE_BYTES)
                except RemoteFileTooLarge as too_large:
                    _remember(session, account, remote, None, "refused", str(too_large))
                    refused += 1
                    continue
                outcome, note = _import_pulled(session, account, remote, fetched)
                imported += outcome == "imported"
                refused += outcome == "refused"
                skipped += outcome == "duplicate"
                if note:
                    notes.append(note)
    except (HostKeyUnconfirmed, HostKeyChanged) as key_problem:
        source.presented_key_type = key_problem.key_type
        source.presented_key_fingerprint = key_problem.fingerprint
        return _failed(session, source, str(key_problem), imported, skipped, refused)
    except SftpError as failure:
        return _failed(session, source, str(failure), imported, skipped, refused)
    except SecretsUnreadable:
        reason = "The saved password or key cannot be read any more: enter it again."
        return _failed(session, source, reason, imported, skipped, refused)
    if not check_only:
        notes.insert(
            0,
            f"{_plural(imported, 'new statement')} imported, "
            f"{_plural(skipped, 'file')} pulled before, {_plural(refused, 'file')} refused.",
        )
    source.last_success_at = source.last_attempt_at
    source.last_result, source.last_error = " ".join(notes), None
    session.flush()
    return PullOutcome(imported, skipped, refused)


def _failed(session, source, reason, imported, skipped, refused) -> PullOutcome:
    source.last_error = reason
    session.flush()
    return PullOutcome(imported, skipped, refused, reason)


def _seen(session: Session, account: BankAccount, remote) -> bool:
    return (
        session.scalar(
            select(PulledStatementFile.id).where(
                PulledStatementFile.bank_account_id == account.id,
                PulledStatementFile.name == remote.name[:255],
                PulledStatementFile.size == remote.size,
                PulledStatementFile.mtime == remote.mtime,
            )
        )
        is not None
    )


def _remember(session, account, remote, sha256, outcome, reason=None, import_id=None) -> None:
    session.add(
        PulledStatementFile(
            bank_account_id=account.id,
            name=remote.name[:255],
            size=remote.size,
            mtime=remote.mtime,
            sha256=sha256,
            outcome=outcome,
            reason=reason,
            import_id=import_id,
        )
    )
    session.flush()


def _import_pulled(session: Session, account: BankAccount, remote, fetched):
    """Import one fetched file in its own savepoint; (outcome, a note for the page or None).
    A CSV whose columns are not known yet is not remembered: it is pulled again once the
    person has mapped the columns on an upload."""
    if session.scalar(
        select(PulledStatementFile.id).where(
            PulledStatementFile.bank_account_id == account.id,
            PulledStatementFile.sha256 == fetched.sha256,
        )
    ):
        _remember(session, account, remote, fetched.sha256, "duplicate")
        return "duplicate", None
    file_format = detect_format(fetched.data)
    if file_format is None:
        reason = "Not a statement Duebook reads (CAMT.053, MT940, OFX or a bank's CSV)."
        _remember(session, account, remote, fetched.sha256, "refused", reason)
        return "refused", None
    try:
        with session.begin_nested():
            statement = services.import_statement(
                session, account, remote.name, fetched.data, file_format, received_by="sftp"
            )
            _remember(session, account, remote, fetched.sha256, "imported", None, statement.id)
    except ColumnsUnknown:
        return "unmapped", (
            f"{remote.name}: this bank's CSV columns are not known yet; upload one of its "
            "statements by hand and choose the columns, and the next pull imports it."
        )
    except StatementFileError as unreadable:
        _remember(session, account, remote, fetched.sha256, "refused", str(unreadable))
        return "refused", None
    return "imported", None


def recent_pulls(session: Session, account: BankAccount, limit: int = 20):
    return session.scalars(
        select(PulledStatementFile)
        .where(PulledStatementFile.bank_account_id == account.id)
        .order_by(PulledStatementFile.pulled_at.desc(), PulledStatementFile.id.desc())
        .limit(limit)
    ).all()


def scheduled_source_ids(session: Session) -> list[int]:
    """The sources the 30-minute run pulls: those whose host key a person confirmed (the
    others wait for that person, who sees the key their own check recorded)."""
    return list(
        session.scalars(
            select(SftpSource.id)
            .where(SftpSource.host_key_fingerprint.is_not(None))
            .order_by(SftpSource.id)
        )
    )
