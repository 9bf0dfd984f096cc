"""Client documents: upload, versions, download, soft delete, and the expiry warnings.

A document (title, category, optional expiry date) has numbered versions; each version is one
file in storage (`app.core.storage`), under a key inside the tenant's folder. Version numbers are
guarded by UNIQUE(document_id, version): two uploads racing for the same number cannot both
win, the loser takes the next number. Files are written before the row that points at them;
when the transaction rolls back, the files it wrote are removed again.

Documents about to expire are announced once per expiry date to the engagement manager of
their client: `Document.expiry_notice_for` records the expiry date that was announced, set in
the same transaction that queues the e-mail, so running the announcement twice sends nothing
the second time.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import unicodedata
import uuid
import zipfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import BinaryIO

from flask import render_template
from sqlalchemy import Date, Row, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Bundle, Session, selectinload

from app.clients.models import Client, Document, DocumentVersion
from app.core.events import DomainEvent, emit_many
from app.core.storage import Storage, save_in_transaction, tenant_key
from app.core.terminology import term
from app.outbox.services import queue_email
from tenants.binding import TenantNotBound, bound_tenant_id
from tenants.models import Membership, Tenant, User

MAX_FILE_BYTES = 25 * 1024 * 1024
MAX_FILE_LABEL = "25 MB"
EXPIRY_WINDOW_DAYS = 30
TITLE_LENGTH = (2, 191)
CATEGORY_LENGTH = 64
FILE_TYPES = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv",
    "txt": "text/plain",
}
FILE_TYPES_LABEL = "PDF, PNG, JPG, DOCX, XLSX, CSV or TXT"
ACCEPT = ",".join(f".{ext}" for ext in FILE_TYPES)
CATEGORIES = (
    "Contract",
    "Purchase order",
    "Tax registration",
    "KYC",
    "Insurance",
    "Certificate",
    "Licence",
    "Other",
)
_VERSION_CONSTRAINT = "uq_client_document_versions_document_id_version"
_SNIFF_BYTES = 8192


class DocumentError(ValueError):
    """What is wrong, by form field, in words the user can act on."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class UploadedFile:
    """A file as the request gave it: the name the user's computer had, and its bytes."""

    filename: str
    stream: BinaryIO


@dataclass
class CheckedFile:
    filename: str
    extension: str
    content_type: str
    stream: BinaryIO


@dataclass
class ExpiringDocument:
    document: Row  # id, title, expires_on (SHOWN_DOCUMENT)
    client: Row  # id, short_name (SHOWN_CLIENT)
    days_left: int


def expiry_badge(expires_on: date | None, today: date) -> tuple[str, str] | None:
    """("expires in 12 days", "soon") and the like, for a badge; None without an expiry."""
    if expires_on is None:
        return None
    days = (expires_on - today).days
    if days < 0:
        return "expired", "expired"
    if days == 0:
        return "expires today", "expired"
    label = "expires tomorrow" if days == 1 else f"expires in {days} days"
    return label, "soon" if days <= EXPIRY_WINDOW_DAYS else "later"


# Checking what was sent -----------------------------------------------------------------------


def clean_filename(raw: str) -> str:
    """The last part of the name the browser sent, without control characters, at most 255
    characters (keeping the extension)."""
    name = re.split(r"[/\\]", raw or "")[-1]
    name = "".join(
        ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C"
    )
    name = " ".join(name.split()).strip(" .")
    if len(name) > 255:
        stem, dot, extension = name.rpartition(".")
        name = stem[: 255 - len(extension) - 1] + dot + extension if dot else name[:255]
    return name


def _extension(filename: str) -> str:
    stem, dot, extension = filename.rpartition(".")
    return extension.lower() if dot and stem else ""


def _seekable(stream: BinaryIO) -> BinaryIO:
    """Size checks and sniffing read the file more than once: a one-way stream is copied
    (never more than the size limit and a byte) into a spooled temporary file."""
    if getattr(stream, "seekable", None) and stream.seekable():
        stream.seek(0)
        return stream
    copy = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 (returned open)
    left = MAX_FILE_BYTES + 1
    while left > 0 and (chunk := stream.read(min(left, 1024 * 1024))):
        copy.write(chunk)
        left -= len(chunk)
    copy.seek(0)
    return copy


def _size(stream: BinaryIO) -> int:
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size


def _looks_like(extension: str, stream: BinaryIO) -> bool:
    """Does the content match the extension? Decided from the bytes, not from what the
    browser claimed the type was."""
    stream.seek(0)
    head = stream.read(_SNIFF_BYTES)
    stream.seek(0)
    if extension == "pdf":
        return b"%PDF-" in head[:1024]
    if extension == "png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if extension in ("jpg", "jpeg"):
        return head.startswith(b"\xff\xd8\xff")
    if extension in ("docx", "xlsx"):
        if not head.startswith(b"PK\x03\x04"):
            return False
        part = "word/document.xml" if extension == "docx" else "xl/workbook.xml"
        try:
            with zipfile.ZipFile(stream) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return False
        finally:
            stream.seek(0)
        return "[Content_Types].xml" in names and part in names
    if extension in ("csv", "txt"):
        return _is_text(head)
    return False


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as error:
        if error.start >= len(head) - 3:  # a character cut in half by the sniffing window
            return True
    # Not UTF-8: accept a single-byte text encoding (Windows-1252 and the like) as long as
    # there are no control characters besides tab, line breaks and form feed.
    return not any(b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D) for b in head)


def check_file(upload: UploadedFile | None) -> tuple[CheckedFile | None, str | None]:
    """The file, ready to store, or the reason it cannot be."""
    if upload is None or not (upload.filename or "").strip():
        return None, "Choose a file to upload."
    filename = clean_filename(upload.filename)
    extension = _extension(filename)
    if extension not in FILE_TYPES:
        return None, f"Upload a {FILE_TYPES_LABEL} file."
    stream = _seekable(upload.stream)
    size = _size(stream)
    if size == 0:
        return None, "The file is empty."
    if size > MAX_FILE_BYTES:
        return None, f"The file is larger than {MAX_FILE_LABEL}."
    if not _looks_like(extension, stream):
        return None, f"This file's content is not a valid .{extension} file."
    return CheckedFile(filename, extension, FILE_TYPES[extension], stream), None


def check_expiry(expires_on: date | None, today: date) -> str | None:
    if expires_on is not None and expires_on < today:
        return "The expiry date cannot be in the past."
    return None


def check_document(
    *,
    title: str | None,
    category: str | None,
    expires_on: date | None,
    upload: UploadedFile | None,
    today: date,
) -> tuple[dict, dict[str, str]]:
    """Values to store (with the checked file under "file") and errors by field."""
    values, errors = {}, {}
    title = " ".join((title or "").split())
    if not title:
        errors["title"] = "Give the document a title."
    elif not TITLE_LENGTH[0] <= len(title) <= TITLE_LENGTH[1]:
        errors["title"] = "The title needs 2 to 191 characters."
    values["title"] = title
    category = " ".join((category or "").split())
    if len(category) > CATEGORY_LENGTH:
        errors["category"] = f"Keep the category to {CATEGORY_LENGTH} characters."
    values["category"] = category or None
    if problem := check_expiry(expires_on, today):
        errors["expires_on"] = problem
    values["expires_on"] = expires_on
    checked, problem = check_file(upload)
    if problem:
        errors["file"] = problem
    values["file"] = checked
    return values, errors


# Storing ------------------------------------------------------------------------------------


def upload_document(
    session: Session,
    storage: Storage,
    client: Client,
    *,
    title: str | None,
    category: str | None = None,
    expires_on: date | None = None,
    upload: UploadedFile | None,
    today: date,
    uploaded_by_user_id: int | None = None,
) -> Document:
    """A new document with its file as version 1."""
    values, errors = check_document(
        title=title, category=category, expires_on=expires_on, upload=upload, today=today
    )
    if errors:
        raise DocumentError(errors)
    document = Document(
        client_id=client.id,
        title=values["title"],
        category=values["category"],
        expires_on=values["expires_on"],
    )
    session.add(document)
    session.flush()
    _store_version(session, storage, document, values["file"], uploaded_by_user_id)
    return document


def upload_version(
    session: Session,
    storage: Storage,
    document: Document,
    *,
    upload: UploadedFile | None,
    today: date,
    expires_on: date | None = None,
    uploaded_by_user_id: int | None = None,
) -> DocumentVersion:
    """The next version of a document; a new expiry date (a renewed certificate, say) may come
    with it, and is announced again when it draws near."""
    checked, problem = check_file(upload)
    errors = {"file": problem} if problem else {}
    if expiry_problem := check_expiry(expires_on, today):
        errors["expires_on"] = expiry_problem
    if errors:
        raise DocumentError(errors)
    # Uploads of the same document queue up here rather than race for the same number.
    session.execute(select(Document.id).where(Document.id == document.id).with_for_update())
    version = _store_version(session, storage, document, checked, uploaded_by_user_id)
    if expires_on is not None and expires_on != document.expires_on:
        document.expires_on = expires_on
        session.flush()
    return version


def _store_version(
    session: Session,
    storage: Storage,
    document: Document,
    checked: CheckedFile,
    uploaded_by_user_id: int | None,
    attempts: int = 3,
) -> DocumentVersion:
    tenant_id = bound_tenant_id(session)
    if tenant_id is None:
        raise TenantNotBound("documents are stored in a tenant's folder; bind a tenant first")
    for _ in range(attempts):
        latest = session.scalar(
            select(func.max(DocumentVersion.version)).where(
                DocumentVersion.document_id == document.id
            )
        )
        number = (latest or 0) + 1
        key = tenant_key(
            tenant_id, "documents", document.id, f"{number}-{uuid.uuid4().hex}.{checked.extension}"
        )
        checked.stream.seek(0)
        size, sha256 = save_in_transaction(session, storage, key, checked.stream)
        version = DocumentVersion(
            document_id=document.id,
            version=number,
            storage_key=key,
            filename=checked.filename,
            content_type=checked.content_type,
            size_bytes=size,
            sha256=sha256,
            uploaded_by_user_id=uploaded_by_user_id,
        )
        try:
            with session.begin_nested():
                session.add(version)
        except IntegrityError as error:
            storage.delete(key)
            if getattr(error.orig.diag, "constraint_name", None) != _VERSION_CONSTRAINT:
                raise
            continue  # someone else took this number a moment ago: take the next one
        session.expire(document, ["versions"])
        return version
    raise DocumentError(
        {"file": "Others are uploading versions of this document right now. Please try again."}
    )


# Reading ------------------------------------------------------------------------------------


def list_documents(session: Session, client: Client) -> list[Document]:
    """The client's documents, each with its versions, newest first (`versions[0]`)."""
    return list(
        session.scalars(
            select(Document)
            .where(Document.client_id == client.id, Document.deleted_at.is_(None))
            .options(selectinload(Document.versions))
            .order_by(func.lower(Document.title), Document.id)
        )
    )


def get_document(session: Session, client: Client, document_id: int) -> Document | None:
    return session.scalar(
        select(Document).where(
            Document.id == document_id,
            Document.client_id == client.id,
            Document.deleted_at.is_(None),
        )
    )


def get_version(session: Session, document: Document, version: int) -> DocumentVersion | None:
    return session.scalar(
        select(DocumentVersion).where(
            DocumentVersion.document_id == document.id, DocumentVersion.version == version
        )
    )


def open_version(storage: Storage, version: DocumentVersion) -> BinaryIO:
    return storage.open(version.storage_key)


def delete_document(session: Session, document: Document) -> None:
    """Soft delete: the document disappears from lists; its rows and files stay."""
    document.deleted_at = datetime.now(UTC)
    session.flush()


# Expiry -------------------------------------------------------------------------------------


def _expiring(first_day, last_day):
    """Documents expiring from `first_day` to `last_day` (dates, or bound parameters of them)."""
    return (
        select(Document, Client)
        .join(Client, Client.id == Document.client_id)
        .where(
            Document.deleted_at.is_(None),
            Client.deleted_at.is_(None),
            Document.expires_on.between(first_day, last_day),
        )
    )


# What the dashboard's list shows of a document and its client: those columns, not whole rows
# (the two have some sixty columns, whose descriptions the driver read on every view, with or
# without a document to show).
SHOWN_DOCUMENT = Bundle("document", Document.id, Document.title, Document.expires_on)
SHOWN_CLIENT = Bundle("client", Client.id, Client.short_name)


@cache
def _expiring_soonest_first():
    return (
        _expiring(bindparam("today", type_=Date), bindparam("until", type_=Date))
        .with_only_columns(SHOWN_DOCUMENT, SHOWN_CLIENT)
        .order_by(Document.expires_on, func.lower(Client.short_name), Document.id)
    )


def expiring_documents(
    session: Session, today: date, within_days: int = EXPIRY_WINDOW_DAYS
) -> list[ExpiringDocument]:
    """Documents expiring between today and `within_days` from now, soonest first (the
    statement built once: the dashboard asks on every visit)."""
    values = {"today": today, "until": today + timedelta(days=within_days)}
    rows = session.execute(_expiring_soonest_first(), values)
    return [ExpiringDocument(d, c, (d.expires_on - today).days) for d, c in rows]


def announce_expiry_events(session: Session, today: date, until: date) -> int:
    """A document.expiring event for each document expiring from today to `until`, once per
    document and expiry date (a document given a new date is announced again), whether or not
    its client has a manager to e-mail. Returns how many were written."""
    documents = [
        document
        for document, _ in session.execute(
            # A second run at the same moment waits here, then finds these events written.
            _expiring(today, until).order_by(Document.id).with_for_update(of=Document)
        )
    ]
    announced = set(
        session.execute(
            select(DomainEvent.subject_id, DomainEvent.data["expires_on"].astext).where(
                DomainEvent.type == "document.expiring",
                DomainEvent.subject_type == "document",
                DomainEvent.subject_id.in_([document.id for document in documents]),
            )
        ).all()
    )
    return emit_many(
        session,
        "document.expiring",
        "document",
        [
            (
                document.id,
                {
                    "document_id": document.id,
                    "client_id": document.client_id,
                    "expires_on": document.expires_on.isoformat(),
                },
            )
            for document in documents
            if (document.id, document.expires_on.isoformat()) not in announced
        ],
    )


def announce_expiring_documents(
    session: Session,
    tenant: Tenant,
    today: date,
    document_url: Callable[[Document], str],
    within_days: int = EXPIRY_WINDOW_DAYS,
) -> int:
    """One e-mail per engagement manager listing their clients' documents about to expire
    that were not yet announced for their current expiry date; returns how many e-mails were
    queued. Documents of clients without a manager (or whose manager left the workspace) are
    not announced, and are announced later if a manager is assigned in time."""
    announce_expiry_events(session, today, today + timedelta(days=within_days))
    rows = session.execute(
        _expiring(today, today + timedelta(days=within_days))
        .where(
            Document.expiry_notice_for.is_distinct_from(Document.expires_on),
            Client.engagement_manager_user_id.is_not(None),
        )
        .order_by(Document.expires_on, func.lower(Client.short_name), Document.id)
        # A second run at the same moment waits here, then finds these rows announced.
        .with_for_update(of=Document)
    )
    by_manager: dict[int, list[tuple[Document, Client]]] = defaultdict(list)
    for document, client in rows:
        by_manager[client.engagement_manager_user_id].append((document, client))
    if not by_manager:
        return 0
    managers = session.scalars(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(
            User.id.in_(by_manager),
            User.active.is_(True),
            Membership.tenant_id == tenant.id,
            Membership.active.is_(True),
        )
    ).all()
    sent = 0
    for manager in sorted(managers, key=lambda m: m.id):
        items = by_manager[manager.id]
        fingerprint = hashlib.sha256(
            ",".join(f"{d.id}@{d.expires_on.isoformat()}" for d, _ in items).encode()
        ).hexdigest()[:32]
        context = {
            "manager": manager,
            "tenant": tenant,
            "within_days": within_days,
            "items": [
                {
                    "client": c.short_name,
                    "title": d.title,
                    "expires_on": d.expires_on.strftime("%d %b %Y"),
                    "days_left": (d.expires_on - today).days,
                    "url": document_url(d),
                }
                for d, c in items
            ],
        }
        count = len(items)
        subject = (
            f"{count} {term('client')} document{'s' if count != 1 else ''} about to expire · "
            f"{tenant.name}"
        )
        queue_email(
            session,
            to=manager.email,
            tenant_id=tenant.id,
            subject=subject[:255],
            text_body=render_template("email/documents_expiring.txt", **context),
            html_body=render_template("email/documents_expiring.html", **context),
            idempotency_key=f"documents-expiring:{tenant.id}:{manager.id}:{fingerprint}",
        )
        for document, _ in items:
            document.expiry_notice_for = document.expires_on
        sent += 1
    session.flush()
    return sent
