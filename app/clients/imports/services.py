"""Client import (CSV or XLSX: upload, column mapping, preview, background job): the import
records and their lifecycle, the row checks, the jobs and their queueing.

The upload request only stores the file (after checking a workbook's zip directory) and
queues a read job on "bulk" (`read_import_file`): a worker reads the file within the
ImportLimits, keeps its headers, row count and first rows, and the page (polling) then shows
the columns and the preview, which checks those kept rows; no request parses a file. Status:
reading -> uploaded (or unreadable, with the reason) -> mapped -> queued -> running -> done or
failed.

An import reads the stored file (app.clients.imports.files), checks every row with
`rules.clean_client` (one ClientContext for the whole file), and writes in chunks of CHUNK_SIZE
rows, one transaction each (app.clients.imports.writer: the valid rows through COPY and
set-based statements, the row errors through COPY, with the import's counters in the same
transaction). A crash leaves whole chunks only, and a retry resumes after the last one. The
fields a column can be mapped to, and the mapping, are in app.clients.imports.mapping.

A row matches an existing client (not deleted) by external id first, then by short name
(case-insensitive): it updates that client instead of adding one, so a re-run of the same file
adds nothing. For a matched client an empty cell keeps the current value. Duplicates inside the
file are errors on the later line; a valid row goes in whatever the other rows hold.

Audit: the ORM audit listener records what a session flushes; COPY and INSERT ... SELECT pass
it by, so the rows an import writes have no audit entry each. Instead every import records ONE
audit entry when it finishes: entity "client_imports", entity_id the import id, action "update",
changes {"inserted": [null, N], "updated": [null, M], "failed": [null, K]} (plus "contacts" when
the file has contacts), subject "client_imports:<id>", actor the user who uploaded the file.
The upload itself is audited as usual (an "insert" of the client_imports row, by its uploader);
saving the columns, starting, progress and status are plain UPDATEs, not audited one by one.

Export lives in app/clients/exports.py, with the same column headers, so an export imports back.
"""

from __future__ import annotations

import gc
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException
from sqlalchemy import String, any_, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry
from app.clients.imports.files import (
    FORMULA_START,
    ImportFileError,
    check_upload,
    current_limits,
    delete_upload,
    file_format_for,
    inspect_file,
    open_table,
    open_upload,
    save_upload,
)
from app.clients.imports.mapping import (
    CONTACT_FIELDS,
    FIELD_LABELS,
    custom_import_fields,
    mapping_problem,
    suggest_mapping,
)
from app.clients.imports.writer import ChunkOutcome, ChunkStatements, RowResult, write_chunk
from app.clients.models import Client, ClientImport, ClientImportError
from app.clients.rules import (
    COUNTRY_NAMES,
    DEFAULT_PAYMENT_DAYS,
    ClientContext,
    clean_client,
    clean_contact,
)
from app.clients.services import announce_clients_imported, client_context, client_form_values
from app.core.handover import hand_over, redis_connection
from app.core.terminology import term
from app.custom_fields.services import (
    FORM_PREFIX,
    clean_values,
    custom_error_name,
    definitions,
)
from tenants.binding import bound_tenant_id, schema_for_tenant_id
from tenants.models import Membership, Tenant, User

log = logging.getLogger(__name__)

CHUNK_SIZE = 5_000
# A chunk is also cut at this many characters of cells, so that what a chunk holds in memory
# is bounded whatever its rows hold (5,000 rows of 100 cells of 4,000 characters would not be).
CHUNK_CHARS = 20_000_000
PREVIEW_ROWS = 20
JOB_TIMEOUT = 3 * 60 * 60  # seconds; a 20 MB file takes well under a minute
# Reading a file for the preview: 50,000 rows take a few seconds; a file that needs more
# than this is refused (the job is stopped by RQ, the import marked unreadable).
READ_JOB_TIMEOUT = 120
EDITABLE_STATUSES = ("uploaded", "mapped")
STARTABLE_STATUSES = ("mapped", "failed")
ACTIVE_STATUSES = ("queued", "running")
_CONTACT_KEYS = {
    "full_name": "contact_name",
    "job_title": "contact_job_title",
    "email": "contact_email",
    "phone": "contact_phone",
}


# Creating and preparing an import --------------------------------------------------------


def create_import(
    session: Session,
    tenant_id: int,
    filename: str,
    stream: IO[bytes],
    user_id: int | None,
    upload_key: str | None = None,
) -> ClientImport:
    """Keep the upload and queue a worker to read it (`read_import_file`): the request checks
    only what costs nothing (the name, the size, a workbook's zip directory). The upload form's
    one-time key makes a double submit return the import the first submit made."""
    file_format = file_format_for(filename)
    if file_format is None:
        raise ImportFileError(
            "Upload a .csv or .xlsx file (an old .xls workbook: save it as .xlsx first)."
        )
    if upload_key:
        earlier = _import_with_upload_key(session, upload_key)
        if earlier is not None:
            return earlier
    key = save_upload(tenant_id, stream, file_format)
    try:
        with open_upload(tenant_id, key) as stored:
            check_upload(stored, file_format, current_limits())
        record = ClientImport(
            status="reading",
            filename=Path(filename).name[:255],
            storage_key=key,
            file_format=file_format,
            headers=[],
            mapping={},
            total_rows=0,
            created_by_user_id=user_id,
            upload_key=upload_key or None,
        )
        with session.begin_nested():
            session.add(record)
            session.flush()
    except ImportFileError:
        delete_upload(key)
        raise
    except IntegrityError:  # the same form's other submit made its import meanwhile
        delete_upload(key)
        return _import_with_upload_key(session, upload_key)
    _hand_over_read(session, record.id, tenant_id)
    return record


def _import_with_upload_key(session: Session, upload_key: str) -> ClientImport | None:
    return session.scalar(select(ClientImport).where(ClientImport.upload_key == upload_key))


def read_import_file(session: Session, import_id: int) -> str | None:
    """What the read job does: read the stored file row by row within the limits, and keep
    its headers, suggested mapping, exact row count and first rows (for the preview); or mark
    it unreadable with the reason. Returns the new status, None when it was not waiting.

    Memory is bounded by construction (see import_xlsx and ImportLimits: one row at a time,
    PREVIEW_ROWS kept) rather than by an OS limit: the worker is RQ's SimpleWorker, which runs
    jobs in its own process, so an RLIMIT_AS would cap that whole process (its other jobs, its
    connection pool) and stay lowered after this job. Time is bounded by READ_JOB_TIMEOUT."""

    custom = custom_import_fields(definitions(session, "clients"))
    return read_stored_upload(
        session,
        ClientImport,
        import_id,
        lambda headers: suggest_mapping(headers, custom),
        "Reading this file took too long. Split it into smaller files, or save it as CSV, and "
        "upload again.",
    )


def read_stored_upload(
    session: Session, model, import_id: int, suggest: Callable[[list[str]], dict], too_slow: str
) -> str | None:
    """The read job of any import of an uploaded file (`model`: its import record, with the
    same status, storage and preview columns): the file's headers, the columns `suggest`
    proposes, its exact row count and first rows; or "unreadable" with the reason (`too_slow`
    when the job ran out of time). None when the record was not waiting to be read."""
    tenant_id = bound_tenant_id(session)
    record = session.get(model, import_id)
    if record is None or record.status != "reading":
        return None
    key, file_format = record.storage_key, record.file_format
    try:
        with open_upload(tenant_id, key) as stream:
            summary = inspect_file(stream, file_format, current_limits(), PREVIEW_ROWS)
    except (ImportFileError, JobTimeoutException) as error:
        message = too_slow if isinstance(error, JobTimeoutException) else str(error)
        set_import_fields(
            session, model, import_id, status="unreadable", error=message, finished_at=func.now()
        )
        session.commit()
        delete_upload(key)
        return "unreadable"
    set_import_fields(
        session,
        model,
        import_id,
        status="uploaded",
        headers=summary.headers,
        mapping=suggest(summary.headers),
        total_rows=summary.total_rows,
        preview_rows=[[line, cells] for line, cells in summary.first_rows],
    )
    session.commit()
    return "uploaded"


def get_import(session: Session, import_id: int) -> ClientImport | None:
    return session.get(ClientImport, import_id)


def save_mapping(session: Session, record: ClientImport, mapping: dict[str, int]) -> None:
    if record.status not in EDITABLE_STATUSES:
        raise ImportFileError("This import has started; its columns can no longer change.")
    # A plain UPDATE: an import's steps are not audited one by one (see the module docstring).
    session.execute(
        update(ClientImport)
        .where(ClientImport.id == record.id)
        .values(mapping=mapping, status="mapped")
        .execution_options(synchronize_session=False)
    )
    session.refresh(record)


def preview(session: Session, tenant: Tenant, record: ClientImport, mapping: dict) -> list:
    """The first rows, as the worker read them, checked as the import will check them
    (nothing written, the file not opened)."""
    checker = RowChecker(session, tenant, mapping)
    return checker.check([(line, cells) for line, cells in record.preview_rows or []])


# Checking rows ---------------------------------------------------------------------------


@dataclass
class _Lookup:
    raws: list[dict]
    by_external: dict[str, int] = field(default_factory=dict)
    by_short: dict[str, int] = field(default_factory=dict)  # lower(short name) -> id
    by_full: dict[str, int] = field(default_factory=dict)
    clients: dict[int, tuple] = field(default_factory=dict)  # id -> (short, external, form)
    custom: dict[int, dict] = field(default_factory=dict)  # id -> its custom field values


def _name_key(text: str) -> str:
    # As clean_client normalises a name (spaces collapsed), compared without case.
    return " ".join(text.split()).lower()


@dataclass
class RowChecker:
    """Checks rows chunk by chunk; remembers the file's earlier rows to find duplicates."""

    session: Session
    tenant: Tenant
    mapping: Mapping
    context: ClientContext | None = None
    seen_full: dict[str, int] = field(default_factory=dict)
    seen_short: dict[str, int] = field(default_factory=dict)
    seen_external: dict[str, int] = field(default_factory=dict)
    seen_target: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.context is None:
            self.context = client_context(self.session, self.tenant)
        self.columns = [
            (key, int(index))
            for key, index in self.mapping.items()
            if key in FIELD_LABELS and key not in CONTACT_FIELDS
        ]
        self.contact_columns = [
            (key, int(index)) for key, index in self.mapping.items() if key in CONTACT_FIELDS
        ]
        # The workspace's own fields: read once, every row checked by custom_fields' rules.
        self.custom_fields = definitions(self.session, "clients", archived=True)
        live = {f.key for f in self.custom_fields if not f.is_archived}
        self.custom_columns = [
            (key.removeprefix(FORM_PREFIX), int(index))
            for key, index in self.mapping.items()
            if key.startswith(FORM_PREFIX) and key.removeprefix(FORM_PREFIX) in live
        ]
        self.has_contacts = "contact_name" in self.mapping or any(
            key in self.mapping for key in ("contact_email", "contact_phone")
        )
        self.managers = self._managers() if "engagement_manager_user_id" in self.mapping else {}
        self.countries = {
            name.lower(): code
            for code, name in COUNTRY_NAMES.items()
            if len(code) == 2 and code.isalpha()
        }
        self.countries.update({"uk": "GB", "usa": "US", "u.s.a.": "US", "uae": "AE"})

    def _managers(self) -> dict[str, str]:
        """A manager may be given by e-mail or (when unique) full name."""
        members = self.session.execute(
            select(User.id, User.email, User.full_name)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.tenant_id == self.tenant.id, Membership.active.is_(True))
        ).all()
        names: dict[str, list[int]] = {}
        for user_id, _, name in members:
            names.setdefault(name.lower(), []).append(user_id)
        found = {name: str(ids[0]) for name, ids in names.items() if len(ids) == 1}
        found.update({email.lower(): str(user_id) for user_id, email, _ in members})
        return found

    def _raw(self, cells: list[str]) -> dict[str, str]:
        width = len(cells)
        raw = {key: cells[i].strip() if i < width else "" for key, i in self.columns}
        for key, value in raw.items():
            if value[:1] == "'" and value[1:2] in FORMULA_START:
                raw[key] = value[1:]  # as an export wrote it, so as not to be run as a formula
        country = raw.get("country")
        if country and len(country) > 2:
            raw["country"] = self.countries.get(country.lower(), country)
        manager = raw.get("engagement_manager_user_id")
        if manager and not manager.isdigit():
            raw["engagement_manager_user_id"] = self.managers.get(manager.lower(), manager)
        return raw

    def lookup(self, rows: list[tuple[int, list[str]]]) -> _Lookup:
        """The rows' raw values, and the clients (not deleted) they may match or clash with,
        as plain values: checking them needs no database (nor a lazy load)."""
        raws = [self._raw(cells) for _, cells in rows]
        found = _Lookup(raws)
        externals, shorts, fulls = set(), set(), set()
        for raw in raws:
            if raw.get("external_id"):
                externals.add(raw["external_id"])
            if raw.get("short_name"):
                shorts.add(_name_key(raw["short_name"]))
            if raw.get("full_name"):
                fulls.add(_name_key(raw["full_name"]))
        if not (externals or shorts or fulls):
            return found
        text_array = ARRAY(String)
        table = Client.__table__.c
        # Plain rows (no ORM objects): client_form_values only reads their attributes.
        clients = self.session.execute(
            select(Client.__table__).where(
                table.deleted_at.is_(None),
                or_(
                    table.external_id == any_(literal(sorted(externals), text_array)),
                    func.lower(table.short_name) == any_(literal(sorted(shorts), text_array)),
                    func.lower(table.full_name) == any_(literal(sorted(fulls), text_array)),
                ),
            )
        )
        for client in clients:
            if client.external_id:
                found.by_external[client.external_id] = client.id
            found.by_short[client.short_name.lower()] = client.id
            found.by_full[client.full_name.lower()] = client.id
            found.clients[client.id] = (
                client.short_name,
                client.external_id,
                client_form_values(client),
            )
            found.custom[client.id] = client.custom_fields
        return found

    def check(self, rows: list[tuple[int, list[str]]]) -> list[RowResult]:
        return self.clean(rows, self.lookup(rows))

    def clean(self, rows: list[tuple[int, list[str]]], found: _Lookup) -> list[RowResult]:
        """Every row through clean_client, matched and checked for clashes (no database)."""
        by_external, by_short, by_full = found.by_external, found.by_short, found.by_full
        context = self.context
        tenant_country = context.tenant_country
        unique_checks = (
            ("full_name", by_full, self.seen_full, "full name"),
            ("short_name", by_short, self.seen_short, "short name"),
            ("external_id", by_external, self.seen_external, "external id"),
        )
        results = []
        for (line, cells), raw in zip(rows, found.raws, strict=True):
            external = raw.get("external_id", "")
            target_id = by_external.get(external) if external else None
            if target_id is None and raw.get("short_name"):
                target_id = by_short.get(_name_key(raw["short_name"]))
                if target_id is not None and external:
                    current_external = found.clients[target_id][1]
                    if current_external not in (None, external):
                        results.append(
                            RowResult(
                                line,
                                {},
                                {
                                    "external_id": (
                                        f"The {term('client')} with this short name has "
                                        f"external id {current_external}."
                                    )
                                },
                            )
                        )
                        continue
            if target_id is not None:
                target_name, _, merged = found.clients[target_id]
                merged = dict(merged)
                merged.update((k, v) for k, v in raw.items() if v)
                values, errors = clean_client(merged, context)
            else:
                target_name = None
                if not raw.get("location"):
                    country = (raw.get("country") or tenant_country).upper()
                    raw["location"] = "local" if country == tenant_country else "foreign"
                if not raw.get("payment_terms") and not raw.get("payment_days"):
                    raw["payment_days"] = str(DEFAULT_PAYMENT_DAYS)
                values, errors = clean_client(raw, context)

            full = values["full_name"].lower()
            short = values["short_name"].lower()
            external = values["external_id"]
            keys = {"full_name": full, "short_name": short, "external_id": external}
            for key, existing, seen, what in unique_checks:
                value = keys[key]
                if not value or key in errors:
                    continue
                owner = existing.get(value)
                if owner is not None and owner != target_id:
                    errors[key] = f"Another {term('client')} has this {what}."
                elif value in seen:
                    errors[key] = f"Line {seen[value]} has the same {what}."
            if target_id is not None and target_id in self.seen_target and not errors:
                errors["short_name"] = (
                    f"Line {self.seen_target[target_id]} already updates this {term('client')}."
                )

            self._custom(cells, values, errors, found.custom.get(target_id))
            contact = None
            if self.contact_columns:
                contact = self._contact(cells, values, errors)
            results.append(RowResult(line, values, errors, target_id, target_name, contact))
            if not errors:
                self.seen_full[full] = self.seen_short[short] = line
                if external:
                    self.seen_external[external] = line
                if target_id is not None:
                    self.seen_target[target_id] = line
        return results

    def _custom(self, cells: list[str], values: dict, errors: dict, current: dict | None) -> None:
        """The row's custom values into values["custom_fields"] (a matched client's others
        kept; an empty cell keeps the current value), their errors as "cf.<key>"."""
        width = len(cells)
        given = {}
        for key, i in self.custom_columns:
            cell = cells[i].strip() if i < width else ""
            if cell[:1] == "'" and cell[1:2] in FORMULA_START:
                cell = cell[1:]
            if cell:
                given[key] = cell
        custom, problems = clean_values(
            self.session, "clients", given, current=current, fields=self.custom_fields
        )
        values["custom_fields"] = custom
        for key, problem in problems.items():
            errors.setdefault(custom_error_name(key), problem)

    def _contact(self, cells: list[str], values: dict, errors: dict) -> tuple | None:
        width = len(cells)
        given = {key: cells[i].strip() if i < width else "" for key, i in self.contact_columns}
        for key, value in given.items():
            if value[:1] == "'" and value[1:2] in FORMULA_START:
                given[key] = value[1:]
        if not any(given.values()):
            return None
        raw = {contact_key: given.get(key, "") for contact_key, key in _CONTACT_KEYS.items()}
        if not raw["full_name"]:
            # A client file often has only the accounts e-mail or phone: the contact is then
            # the client itself (rules.clean_contact needs a name to show in the contact list).
            raw["full_name"] = values.get("full_name") or raw["email"].partition("@")[0]
        country = values.get("country") or ""
        region = country if country in COUNTRY_NAMES else self.context.tenant_country
        contact, contact_errors = clean_contact(raw, region)
        for key, message in contact_errors.items():
            errors.setdefault(_CONTACT_KEYS.get(key, "contact_name"), message)
        return (contact["full_name"], contact["job_title"], contact["email"], contact["phone"])


# Running an import (the job) -------------------------------------------------------------


def _batches(rows: Iterable, size: int, max_chars: int = CHUNK_CHARS) -> Iterator[list]:
    """Rows in chunks of `size`, or fewer when their cells reach `max_chars` characters."""
    batch, chars = [], 0
    for row in rows:
        batch.append(row)
        chars += sum(map(len, row[1]))
        if len(batch) == size or chars >= max_chars:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The checks make a few dicts per row and keep a chunk of them: Python's cycle collector
    would walk them again and again (a fifth of the checking time) for no garbage, as rows
    hold no reference cycles. Reference counting still frees everything; the collector runs
    again when the import is over."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _set_import(session: Session, import_id: int, **values) -> None:
    set_import_fields(session, ClientImport, import_id, **values)


def set_import_fields(session: Session, model, import_id: int, **values) -> None:
    """Update an import record by id without loading it (the job commits chunk by chunk)."""
    session.execute(
        update(model)
        .where(model.id == import_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def run_import(session: Session, import_id: int, chunk_size: int | None = None) -> str | None:
    """What the job does: claim a queued import, check and write its rows chunk by chunk
    (resuming after the chunks an earlier attempt committed), then record the outcome.
    Returns the final status, or None when the import was not waiting for a worker."""
    tenant_id = bound_tenant_id(session)
    if tenant_id is None:
        raise RuntimeError("run_import needs a session bound to the import's tenant")
    claimed = session.execute(
        update(ClientImport)
        .where(ClientImport.id == import_id, ClientImport.status == "queued")
        .values(status="running", error=None, finished_at=None)
        .returning(ClientImport.processed_rows)
        .execution_options(synchronize_session=False)
    ).first()
    session.commit()
    if claimed is None:
        return None
    already_done = claimed[0]
    totals = ChunkOutcome()
    try:
        record = session.get(ClientImport, import_id)
        tenant = session.get(Tenant, tenant_id)
        mapping, file_format, key = dict(record.mapping), record.file_format, record.storage_key
        user_id = record.created_by_user_id
        schema = schema_for_tenant_id(tenant_id)
        statements = ChunkStatements.for_schema(schema)
        checker = RowChecker(session, tenant, mapping)
        size = chunk_size or CHUNK_SIZE
        position = 0
        pending: list[RowResult] | None = None  # checked, to be written
        with (
            open_upload(tenant_id, key) as stream,
            open_table(stream, file_format, current_limits()) as table,
            _no_cyclic_gc(),
        ):
            for batch in itertools.chain(_batches(table.rows, size), [None]):
                # Chunk k is checked while PostgreSQL writes chunk k-1: the look-up first,
                # then chunk k-1 is sent, then the (CPU-bound) checks, then chunk k-1 is
                # finished and committed on its own.
                found = checker.lookup(batch) if batch else None
                writing = None
                if pending is not None:
                    writing = write_chunk(session, statements, import_id, pending)
                    pending = None
                try:
                    results = checker.clean(batch, found) if batch else None
                    if writing is not None:
                        written = writing.finish(statements, import_id)
                        totals.contacts += written.contacts
                        announce_clients_imported(
                            session, written.created, written.changed, user_id
                        )
                except BaseException:
                    if writing is not None:
                        writing.abandon()
                    raise
                if writing is not None:
                    session.commit()
                if batch is None:
                    break
                if position + len(batch) <= already_done:
                    # Written by an earlier attempt: checked again only so that later rows
                    # still find their duplicates.
                    position += len(batch)
                    continue
                if position < already_done:
                    results = results[already_done - position :]
                position += len(batch)
                pending = results
        record = session.get(ClientImport, import_id, populate_existing=True)
        _set_import(
            session,
            import_id,
            status="done",
            finished_at=func.now(),
            total_rows=ClientImport.processed_rows,
        )
        changes = {
            "inserted": [None, record.inserted_rows],
            "updated": [None, record.updated_rows],
            "failed": [None, record.failed_rows],
        }
        if checker.has_contacts:
            changes["contacts"] = [None, totals.contacts]
        session.add(
            AuditEntry(
                actor_user_id=user_id,
                action="update",
                entity="client_imports",
                entity_id=str(import_id),
                subject=f"client_imports:{import_id}",
                changes=changes,
            )
        )
        session.commit()
        return "done"
    except Exception as error:
        session.rollback()
        if isinstance(error, ImportFileError):
            message = str(error)
        else:
            log.exception("client import %s of tenant %s failed", import_id, tenant_id)
            message = (
                "The import stopped unexpectedly. The rows counted so far are saved; "
                "retry to continue with the rest."
            )
        _set_import(session, import_id, status="failed", error=message, finished_at=func.now())
        session.commit()
        return "failed"


# Queueing --------------------------------------------------------------------------------


def start_import(session: Session, record: ClientImport, form_key: str | None = None) -> None:
    """Queue the import; the job is handed to a worker once this transaction commits. An
    import no worker has any more (the hand-over to Redis failed, or the worker died) may be
    started again too: it resumes after its last committed chunk.

    The start form's one-time key is kept with the transition, in the same conditional
    UPDATE: the same form posted again (a double click, even while the first post is still
    being handed to Redis) changes nothing, and is answered as the first post was."""
    if record.status == "mapped" and mapping_problem(record.mapping):
        raise ImportFileError(mapping_problem(record.mapping))
    if form_key and record.start_key == form_key:
        return
    startable = STARTABLE_STATUSES
    if is_stuck(record, bound_tenant_id(session)):
        startable = (*STARTABLE_STATUSES, *ACTIVE_STATUSES)
    conditions = [ClientImport.id == record.id, ClientImport.status.in_(startable)]
    if form_key:
        conditions.append(ClientImport.start_key.is_distinct_from(form_key))
    queued = session.execute(
        update(ClientImport)
        .where(*conditions)
        .values(status="queued", error=None, start_key=form_key or None)
        .returning(ClientImport.id)
        .execution_options(synchronize_session=False)
    ).first()
    session.refresh(record)
    if queued is None:
        if form_key and record.start_key == form_key:
            return  # the other post of this form started it
        raise ImportFileError(
            "Save the columns first."
            if record.status in ("reading", "uploaded")
            else "This import has started already."
        )
    _hand_over_run(session, record.id, bound_tenant_id(session))


# Each under its own job id: the page asks Redis whether that job is still there (is_stuck),
# and offers to start again an import whose hand-over failed. Safe to hand over twice: the
# read job reads an import that is still "reading" only, the run claims a queued import once.


def job_id_for(import_id: int, tenant_id: int) -> str:
    return f"client-import-{tenant_id}-{import_id}"


def read_job_id_for(import_id: int, tenant_id: int) -> str:
    return f"client-import-read-{tenant_id}-{import_id}"


def _hand_over_read(session: Session, import_id: int, tenant_id: int) -> None:
    job_id = read_job_id_for(import_id, tenant_id)
    hand_over(
        session,
        "read_client_import_file",
        import_id,
        tenant_id=tenant_id,
        job_id=job_id,
        timeout=READ_JOB_TIMEOUT,
    )


def _hand_over_run(session: Session, import_id: int, tenant_id: int) -> None:
    job_id = job_id_for(import_id, tenant_id)
    hand_over(
        session,
        "run_client_import",
        import_id,
        tenant_id=tenant_id,
        job_id=job_id,
        timeout=JOB_TIMEOUT,
    )


def is_stuck(record: ClientImport, tenant_id: int) -> bool:
    """Being read, queued or running by its own account, but no worker has its job: Redis lost the
    hand-over, or the worker died (RQ then marks the abandoned job failed)."""

    if record.status == "reading":
        job_id = read_job_id_for(record.id, tenant_id)
    elif record.status in ACTIVE_STATUSES:
        job_id = job_id_for(record.id, tenant_id)
    else:
        return False
    try:
        job = Job.fetch(job_id, connection=redis_connection())
    except NoSuchJobError:
        return True
    except RedisError:
        return False  # cannot tell: do not offer to start it twice
    return job.get_status() not in ("queued", "scheduled", "deferred", "started")


def import_errors(session: Session, import_id: int) -> Iterator[ClientImportError]:
    return session.scalars(
        select(ClientImportError)
        .where(ClientImportError.import_id == import_id)
        .order_by(ClientImportError.line, ClientImportError.id)
        .execution_options(yield_per=1000)
    )


def error_label(record: ClientImport, key: str | None) -> str:
    """An error's field as the user knows it: the file's column, else the field's name."""
    if not key:
        return ""
    index = (record.mapping or {}).get(key)
    headers = record.headers or []
    if index is not None and 0 <= int(index) < len(headers) and headers[int(index)]:
        return headers[int(index)]
    return FIELD_LABELS.get(key, key.removeprefix(FORM_PREFIX))
