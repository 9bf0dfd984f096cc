"""Client import (CSV or XLSX: upload, column mapping, preview, background job) and export.

An import reads the stored file, checks every row with `rules.clean_client` (one ClientContext
for the whole file), and writes in chunks of CHUNK_SIZE rows, one transaction each: the chunk's
valid rows are COPYed into a temporary table, then one INSERT ... SELECT adds the new clients
and one UPDATE ... FROM changes the matched ones (only when something differs), and the chunk's
row errors are COPYed into client_import_errors, with the import's counters in the same
transaction. A crash leaves whole chunks only, and a retry resumes after the last one.

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

Export: the client list's current filters, as CSV (streamed from a server-side cursor) or XLSX,
with the same human column headers the import recognises, so an export can be imported again.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import itertools
import logging
import operator
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO

import openpyxl
import psycopg
from flask import current_app
from openpyxl.cell import WriteOnlyCell
from psycopg import sql
from sqlalchemy import String, any_, event, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from app import storage
from app.audit.models import AuditEntry
from app.clients.models import Client, ClientImport, ClientImportError, Industry
from app.clients.rules import COUNTRY_NAMES, ClientContext, clean_client, clean_contact
from app.clients.services import SORTS, ClientFilters, client_context, client_form_values
from app.clients.services import filtered_clients as filtered_clients_query
from tenants.binding import TenantSession, bound_tenant_id, schema_for_tenant_id
from tenants.models import Membership, Tenant, User

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 20 * 1024 * 1024
CHUNK_SIZE = 5_000
PREVIEW_ROWS = 20
FORMATS = ("csv", "xlsx")
JOB_TIMEOUT = 3 * 60 * 60  # seconds; a 20 MB file takes well under a minute
EDITABLE_STATUSES = ("uploaded", "mapped")
STARTABLE_STATUSES = ("mapped", "failed")
ACTIVE_STATUSES = ("queued", "running")


class ImportFileError(ValueError):
    """The file cannot be read as a table of clients; the message says what to do."""


# Fields a column can be mapped to ------------------------------------------------------------


@dataclass(frozen=True)
class ImportField:
    key: str
    label: str
    synonyms: tuple[str, ...] = ()
    contact: bool = False


FIELDS: tuple[ImportField, ...] = (
    ImportField("full_name", "Full name", ("name", "client name", "company", "company name",
                "customer", "customer name", "client", "legal name", "business name",
                "registered name", "party name", "account name")),
    ImportField("short_name", "Short name", ("short", "code", "alias", "client code",
                "customer code", "short code", "nickname", "display name", "abbreviation")),
    ImportField("external_id", "External ID", ("external", "ext id", "client id",
                "customer id", "account id", "account number", "account no", "erp id",
                "reference", "ref", "id")),
    ImportField("status", "Status", ("client status", "state of client")),
    ImportField("location", "Location", ("local or foreign", "local foreign", "domestic")),
    ImportField("country", "Country", ("country code", "nation")),
    ImportField("address_line1", "Address line 1", ("address", "address 1", "address line1",
                "street", "street address", "billing address", "addr1")),
    ImportField("address_line2", "Address line 2", ("address 2", "address line2", "addr2",
                "locality", "area")),
    ImportField("city", "City", ("town", "city town", "district")),
    ImportField("region", "State / region", ("state", "region", "province", "state code",
                "state name", "county", "territory")),
    ImportField("postal_code", "Postal code", ("pin", "pin code", "pincode", "zip",
                "zip code", "postcode", "post code", "postal")),
    ImportField("gstin", "GSTIN", ("gst", "gst no", "gst number", "gstin no", "gstin number",
                "gst in", "gstn", "gst id", "gst registration")),
    ImportField("pan", "PAN", ("pan no", "pan number", "pan card")),
    ImportField("abn", "ABN", ("abn no", "abn number", "australian business number")),
    ImportField("vat_number", "VAT number", ("vat", "vat no", "vat id", "vat reg no",
                "vat registration")),
    ImportField("tin", "TIN", ("tin no", "tin number", "tax id", "tax number",
                "tax identification number")),
    ImportField("tax_registration", "Tax registration", ("tax reg", "other tax registration")),
    ImportField("remittance_details", "Remittance details", ("remittance", "bank details",
                "remittance instructions")),
    ImportField("payment_terms", "Payment terms", ("terms", "credit terms", "terms type")),
    ImportField("payment_days", "Payment days", ("days", "credit days", "credit period",
                "net days", "due days", "payment term days", "terms days")),
    ImportField("payment_terms_note", "Payment terms note", ("terms note", "custom terms",
                "payment note")),
    ImportField("engagement_manager_user_id", "Engagement manager", ("manager",
                "account manager", "relationship manager", "client manager", "owner",
                "engagement manager email", "manager email")),
    ImportField("new_business_year", "New business year", ("client since", "since",
                "first year", "year acquired", "year")),
    ImportField("industry_id", "Industry", ("sector", "industry name", "segment")),
    ImportField("currency", "Currency", ("ccy", "currency code", "billing currency")),
    ImportField("credit_limit", "Credit limit", ("limit", "credit", "credit amount")),
    ImportField("preferred_language", "Preferred language", ("language", "lang")),
    ImportField("preferred_channel", "Preferred channel", ("channel", "contact channel",
                "preferred contact method")),
    ImportField("tags", "Tags", ("tag", "labels", "label", "groups")),
    ImportField("contact_name", "Contact name", ("contact", "contact person",
                "billing contact", "person"), contact=True),
    ImportField("contact_job_title", "Contact job title", ("designation", "job title",
                "title", "contact title", "contact designation"), contact=True),
    ImportField("contact_email", "Contact e-mail", ("email", "e-mail", "email address",
                "e-mail address", "email id", "mail", "contact email id"), contact=True),
    ImportField("contact_phone", "Contact phone", ("phone", "mobile", "telephone", "tel",
                "phone number", "mobile number", "contact number", "contact no", "whatsapp"),
                contact=True),
)  # fmt: skip
FIELD_LABELS = {f.key: f.label for f in FIELDS}
CONTACT_FIELDS = tuple(f.key for f in FIELDS if f.contact)
# The values clean_client returns, in the order they are written.
CLIENT_COLUMNS = (
    "external_id", "full_name", "short_name", "status", "location", "country",
    "address_line1", "address_line2", "city", "region", "postal_code", "gstin", "pan", "abn",
    "vat_number", "tin", "tax_registration", "remittance_details", "payment_terms",
    "payment_days", "payment_terms_note", "engagement_manager_user_id", "new_business_year",
    "industry_id", "currency", "credit_limit", "preferred_language", "preferred_channel", "tags",
)  # fmt: skip
_client_values = operator.itemgetter(*CLIENT_COLUMNS)
_CONTACT_KEYS = {"full_name": "contact_name", "job_title": "contact_job_title",
                 "email": "contact_email", "phone": "contact_phone"}  # fmt: skip
# A spreadsheet runs a cell starting with one of these as a formula; exports put a ' before.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def _normalise_header(text: str) -> str:
    return " ".join(_NOT_WORD.sub(" ", str(text).lower()).split())


_HEADER_FIELDS: dict[str, str] = {}
for _field in FIELDS:  # labels and keys first, then synonyms: "Contact name" beats "name"
    for _name in (_field.label, _field.key):
        _HEADER_FIELDS.setdefault(_normalise_header(_name), _field.key)
for _field in FIELDS:
    for _name in _field.synonyms:
        _HEADER_FIELDS.setdefault(_normalise_header(_name), _field.key)


def suggest_mapping(headers: list[str]) -> dict[str, int]:
    """Field -> column index, from the headers' names (the first column of a name wins)."""
    mapping: dict[str, int] = {}
    for index, header in enumerate(headers):
        key = _HEADER_FIELDS.get(_normalise_header(header))
        if key is not None and key not in mapping:
            mapping[key] = index
    return mapping


def clean_mapping(raw: Mapping, column_count: int) -> dict[str, int]:
    """A stored or submitted mapping, with unknown fields and columns left out."""
    mapping = {}
    for key, value in raw.items():
        if key in FIELD_LABELS and str(value).isdigit() and int(value) < column_count:
            mapping[key] = int(value)
    return mapping


def mapping_problem(mapping: Mapping) -> str | None:
    if {"full_name", "short_name"} <= mapping.keys() or "external_id" in mapping:
        return None
    return (
        "Choose the columns with the full name and the short name (or map External ID "
        "to update existing clients only)."
    )


# Reading files ---------------------------------------------------------------------------


@dataclass
class Table:
    headers: list[str]
    rows: Iterator[tuple[int, list[str]]]  # (line in the file, cells); the header is line 1
    # Rows below the header as the file states it (a workbook's dimension), when it does.
    stated_rows: int | None = None


def file_format_for(filename: str) -> str | None:
    suffix = Path(filename or "").suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else None


@contextmanager
def open_table(stream: IO[bytes], file_format: str) -> Iterator[Table]:
    """The header and the data rows of a file; blank rows are skipped (their line numbers
    are not reused)."""
    if file_format == "csv":
        handle = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        try:
            yield _csv_table(handle)
        finally:
            handle.detach()  # the caller closes the stream
    elif file_format == "xlsx":
        try:
            workbook = openpyxl.load_workbook(stream, read_only=True, data_only=True)
        except Exception as error:  # not a zip, not a workbook, a broken part...
            raise ImportFileError(
                "This is not an Excel workbook (.xlsx). Save it from Excel as .xlsx or CSV."
            ) from error
        try:
            yield _xlsx_table(workbook)
        finally:
            workbook.close()
    else:
        raise ImportFileError("Upload a .csv or .xlsx file.")


def _csv_table(handle: IO[str]) -> Table:
    try:
        first_line = handle.readline()
    except UnicodeDecodeError as error:
        raise _not_utf8() from error
    if "\x00" in first_line:
        raise _not_utf8()
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    delimiter = max(counts, key=lambda d: (counts[d], d == ","))
    # The header line is read again by the CSV reader (no seeking: storage may stream).
    reader = csv.reader(itertools.chain([first_line], handle), delimiter=delimiter)
    records = _csv_records(reader)
    header = next(records, None)
    if header is None:
        raise ImportFileError("The file is empty.")
    return Table(headers=_header(header[1]), rows=records)


def _csv_records(reader) -> Iterator[tuple[int, list[str]]]:
    line = 0
    try:
        for cells in reader:
            line += 1
            if line == 1 or any(c.strip() for c in cells):
                yield line, cells
    except UnicodeDecodeError as error:
        raise _not_utf8() from error
    except csv.Error as error:
        raise ImportFileError(f"Line {line + 1} cannot be read as CSV ({error}).") from error


def _not_utf8() -> ImportFileError:
    return ImportFileError(
        "This file is not UTF-8 text. In Excel choose Save as → CSV UTF-8, or upload the .xlsx."
    )


def _xlsx_table(workbook) -> Table:
    sheet = workbook.worksheets[0] if workbook.worksheets else None
    if sheet is None:
        raise ImportFileError("The workbook has no sheet.")
    rows = _xlsx_records(sheet)
    header = next(rows, None)
    if header is None:
        raise ImportFileError("The file is empty.")
    stated = sheet.max_row - 1 if isinstance(sheet.max_row, int) else None
    return Table(headers=_header(header[1]), rows=rows, stated_rows=stated)


def _xlsx_records(sheet) -> Iterator[tuple[int, list[str]]]:
    for line, values in enumerate(sheet.iter_rows(values_only=True), start=1):
        cells = [_cell_text(v) for v in values]
        if line == 1 or any(c.strip() for c in cells):
            yield line, cells


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _header(cells: list[str]) -> list[str]:
    headers = [" ".join(str(c).split()) for c in cells]
    while headers and not headers[-1]:
        headers.pop()
    if not headers:
        raise ImportFileError(
            "The first row is empty: it must name the columns (e.g. Name, Short name, GSTIN)."
        )
    if not suggest_mapping(headers) and any(_looks_like_data(h) for h in headers):
        raise ImportFileError(
            "The first row looks like a client, not column names. Add a header row "
            "(e.g. Name, Short name, GSTIN) and upload again."
        )
    return headers


def _looks_like_data(text: str) -> bool:
    return "@" in text or text.replace(".", "").replace(",", "").strip().isdigit()


def inspect_file(stream: IO[bytes], file_format: str) -> tuple[list[str], int]:
    """The headers and the number of data rows (for a workbook, the number its dimension
    states, so that a large one is not read twice; the job counts exactly); ImportFileError
    when the file is not usable."""
    with open_table(stream, file_format) as table:
        if next(table.rows, None) is None:
            raise ImportFileError("The file has a header row but no clients below it.")
        count = table.stated_rows or 1 + sum(1 for _ in table.rows)
    return table.headers, count


# Storage ---------------------------------------------------------------------------------
# Uploads are kept through app.storage under <tenant schema>/imports/<uuid>.<csv|xlsx>.


class _Limited:
    """A stream that refuses to yield more than `limit` bytes."""

    def __init__(self, stream: IO[bytes], limit: int):
        self.stream, self.left = stream, limit

    def read(self, size: int = -1) -> bytes:
        block = self.stream.read(size)
        self.left -= len(block)
        if self.left < 0:
            raise ImportFileError("The file is larger than 20 MB; split it into smaller files.")
        return block


def save_upload(tenant_id: int, stream: IO[bytes], file_format: str) -> str:
    """Store the upload (at most MAX_FILE_BYTES) and return its storage key."""
    key = storage.tenant_key(tenant_id, "imports", f"{uuid.uuid4().hex}.{file_format}")
    size, _ = storage.get_storage(current_app).save(key, _Limited(stream, MAX_FILE_BYTES))
    if size == 0:
        delete_upload(key)
        raise ImportFileError("The file is empty.")
    return key


def delete_upload(key: str) -> None:
    storage.get_storage(current_app).delete(key)


@contextmanager
def open_upload(tenant_id: int, key: str) -> Iterator[IO[bytes]]:
    if not key.startswith(schema_for_tenant_id(tenant_id) + "/"):
        raise ImportFileError("The uploaded file is missing; upload it again.")
    try:
        stream = storage.get_storage(current_app).open(key)
    except FileNotFoundError as error:
        raise ImportFileError("The uploaded file is missing; upload it again.") from error
    with ExitStack() as stack:
        stack.enter_context(stream)
        if not stream.seekable():  # a workbook is a zip file: it needs seeking
            spooled = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=MAX_FILE_BYTES))
            shutil.copyfileobj(stream, spooled)
            spooled.seek(0)
            stream = spooled
        yield stream


# Creating and preparing an import --------------------------------------------------------


def create_import(
    session: Session, tenant_id: int, filename: str, stream: IO[bytes], user_id: int | None
) -> ClientImport:
    file_format = file_format_for(filename)
    if file_format is None:
        raise ImportFileError(
            "Upload a .csv or .xlsx file (an old .xls workbook: save it as .xlsx first)."
        )
    key = save_upload(tenant_id, stream, file_format)
    try:
        with open_upload(tenant_id, key) as stored:
            headers, count = inspect_file(stored, file_format)
    except ImportFileError:
        delete_upload(key)
        raise
    record = ClientImport(
        status="uploaded",
        filename=Path(filename).name[:255],
        storage_key=key,
        file_format=file_format,
        headers=headers,
        mapping=suggest_mapping(headers),
        total_rows=count,
        created_by_user_id=user_id,
    )
    session.add(record)
    session.flush()
    return record


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
    """The first PREVIEW_ROWS rows checked as the import will check them (nothing written)."""
    checker = RowChecker(session, tenant, mapping)
    with (
        open_upload(tenant.id, record.storage_key) as stream,
        open_table(stream, record.file_format) as table,
    ):
        rows = []
        for row in table.rows:
            rows.append(row)
            if len(rows) == PREVIEW_ROWS:
                break
    return checker.check(rows)


# Checking rows ---------------------------------------------------------------------------


@dataclass(slots=True)
class RowResult:
    line: int
    values: dict
    errors: dict[str, str]
    target_id: int | None = None  # the existing client the row updates
    target_name: str | None = None  # its short name (before the update)
    contact: tuple | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Lookup:
    raws: list[dict]
    by_external: dict[str, int] = field(default_factory=dict)
    by_short: dict[str, int] = field(default_factory=dict)  # lower(short name) -> id
    by_full: dict[str, int] = field(default_factory=dict)
    clients: dict[int, tuple] = field(default_factory=dict)  # id -> (short, external, form)


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
        self.columns = [(key, int(index)) for key, index in self.mapping.items()
                        if key in FIELD_LABELS and key not in CONTACT_FIELDS]  # fmt: skip
        self.contact_columns = [(key, int(index)) for key, index in self.mapping.items()
                                if key in CONTACT_FIELDS]  # fmt: skip
        self.has_contacts = "contact_name" in self.mapping or any(
            key in self.mapping for key in ("contact_email", "contact_phone")
        )
        self.managers = self._managers() if "engagement_manager_user_id" in self.mapping else {}
        self.countries = {name.lower(): code for code, name in COUNTRY_NAMES.items()
                          if len(code) == 2 and code.isalpha()}  # fmt: skip
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
            if value[:1] == "'" and value[1:2] in _FORMULA_START:
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
                        results.append(RowResult(line, {}, {"external_id": (
                            f"The client with this short name has external id "
                            f"{current_external}.")}))  # fmt: skip
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
                    errors[key] = f"Another client has this {what}."
                elif value in seen:
                    errors[key] = f"Line {seen[value]} has the same {what}."
            if target_id is not None and target_id in self.seen_target and not errors:
                errors["short_name"] = (
                    f"Line {self.seen_target[target_id]} already updates this client."
                )

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

    def _contact(self, cells: list[str], values: dict, errors: dict) -> tuple | None:
        width = len(cells)
        given = {key: cells[i].strip() if i < width else "" for key, i in self.contact_columns}
        for key, value in given.items():
            if value[:1] == "'" and value[1:2] in _FORMULA_START:
                given[key] = value[1:]
        if not any(given.values()):
            return None
        raw = {contact_key: given.get(key, "") for contact_key, key in _CONTACT_KEYS.items()}
        country = values.get("country") or ""
        region = country if country in COUNTRY_NAMES else self.context.tenant_country
        contact, contact_errors = clean_contact(raw, region)
        for key, message in contact_errors.items():
            errors.setdefault(_CONTACT_KEYS.get(key, "contact_name"), message)
        return (contact["full_name"], contact["job_title"], contact["email"], contact["phone"])


# Running an import (the job) -------------------------------------------------------------


def _batches(rows: Iterable, size: int) -> Iterator[list]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class _Statements:
    create: sql.Composed
    copy: sql.Composed
    update: sql.Composed
    insert: sql.Composed
    contacts: sql.Composed
    errors: sql.Composed
    progress: sql.Composed
    drop: sql.SQL

    @classmethod
    def for_schema(cls, schema: str) -> _Statements:
        s = sql.Identifier(schema)
        cols = sql.SQL(", ").join(map(sql.Identifier, CLIENT_COLUMNS))
        c_cols = sql.SQL(", ").join(sql.Identifier("c", c) for c in CLIENT_COLUMNS)
        r_cols = sql.SQL(", ").join(sql.Identifier("r", c) for c in CLIENT_COLUMNS)
        contact_cols = sql.SQL("contact_name, contact_job_title, contact_email, contact_phone")
        return cls(
            # Column types copied from the clients table, no constraints: checked already.
            create=sql.SQL(
                "CREATE TEMP TABLE client_import_rows ON COMMIT DROP AS "
                "SELECT 0::integer AS line, id AS target_id, {cols}, "
                "NULL::varchar(191) AS contact_name, NULL::varchar(100) AS contact_job_title, "
                "NULL::varchar(254) AS contact_email, NULL::varchar(20) AS contact_phone "
                "FROM {s}.clients WITH NO DATA"
            ).format(cols=cols, s=s),
            copy=sql.SQL(
                "COPY pg_temp.client_import_rows (line, target_id, {cols}, {contact_cols}) "
                "FROM STDIN"
            ).format(cols=cols, contact_cols=contact_cols),
            update=sql.SQL(
                "UPDATE {s}.clients AS c SET ({cols}) = ROW({r_cols}), updated_at = now(), "
                "converted_at = CASE WHEN c.status = 'prospect' AND r.status <> 'prospect' "
                "THEN now() ELSE c.converted_at END "
                "FROM pg_temp.client_import_rows AS r "
                "WHERE r.target_id IS NOT NULL AND c.id = r.target_id AND c.deleted_at IS NULL "
                "AND ({c_cols}) IS DISTINCT FROM ({r_cols})"
            ).format(s=s, cols=cols, r_cols=r_cols, c_cols=c_cols),
            insert=sql.SQL(
                "INSERT INTO {s}.clients ({cols}) SELECT {cols} FROM pg_temp.client_import_rows "
                "WHERE target_id IS NULL ORDER BY line"
            ).format(s=s, cols=cols),
            # A contact is added unless the client has one with that e-mail, phone or name.
            contacts=sql.SQL(
                "INSERT INTO {s}.client_contacts (client_id, full_name, job_title, email, phone) "
                "SELECT c.id, r.contact_name, r.contact_job_title, r.contact_email, "
                "r.contact_phone FROM pg_temp.client_import_rows AS r "
                "JOIN {s}.clients AS c ON lower(c.short_name) = lower(r.short_name) "
                "AND c.deleted_at IS NULL WHERE r.contact_name IS NOT NULL AND NOT EXISTS ("
                "SELECT 1 FROM {s}.client_contacts AS k WHERE k.client_id = c.id "
                "AND k.deleted_at IS NULL AND (lower(k.email) = lower(r.contact_email) "
                "OR k.phone = r.contact_phone OR lower(k.full_name) = lower(r.contact_name)))"
            ).format(s=s),
            errors=sql.SQL(
                "COPY {s}.client_import_errors (import_id, line, field, reason) FROM STDIN"
            ).format(s=s),
            progress=sql.SQL(
                "UPDATE {s}.client_imports SET processed_rows = processed_rows + %s, "
                "inserted_rows = inserted_rows + %s, updated_rows = updated_rows + %s, "
                "failed_rows = failed_rows + %s WHERE id = %s"
            ).format(s=s),
            drop=sql.SQL("DROP TABLE IF EXISTS pg_temp.client_import_rows"),
        )


@dataclass
class ChunkOutcome:
    processed: int = 0
    inserted: int = 0
    updated: int = 0
    failed: int = 0
    contacts: int = 0


class ChunkWrite:
    """A chunk being written, in the session's current transaction. `write_chunk` COPYs the
    valid rows into a temporary table and the row errors into client_import_errors, then
    sends the set-based statements (UPDATE ... FROM, INSERT ... SELECT, contacts, counters)
    in pipeline mode without waiting: the caller checks the next chunk while PostgreSQL
    writes this one, then calls `finish` (which waits) and commits."""

    def __init__(self, connection, outcome: ChunkOutcome):
        self.connection = connection
        self.outcome = outcome
        self.cursors: dict[str, object] = {}
        self.pipeline = None

    def send(self, statements: _Statements, has_valid: bool, contacts: bool) -> None:
        if has_valid and psycopg.Pipeline.is_supported():
            self.pipeline = self.connection.pipeline()
            self.pipeline.__enter__()
        for name, statement, wanted in (
            ("updated", statements.update, has_valid),
            ("inserted", statements.insert, has_valid),
            ("contacts", statements.contacts, has_valid and contacts),
            ("drop", statements.drop, has_valid),
        ):
            if wanted:
                cursor = self.cursors[name] = self.connection.cursor()
                cursor.execute(statement)

    def finish(self, statements: _Statements, import_id: int) -> ChunkOutcome:
        """Wait for the chunk's statements and write the counters; the caller commits."""
        if self.pipeline is not None:
            pipeline, self.pipeline = self.pipeline, None
            pipeline.__exit__(None, None, None)  # waits; raises what the server refused
        outcome = self.outcome
        for name, cursor in self.cursors.items():
            if name != "drop":
                setattr(outcome, name, max(cursor.rowcount, 0))
            cursor.close()
        self.cursors.clear()
        with self.connection.cursor() as cursor:
            cursor.execute(
                statements.progress,
                (outcome.processed, outcome.inserted, outcome.updated, outcome.failed,
                 import_id),
            )  # fmt: skip
        return outcome

    def abandon(self) -> None:
        """Leave pipeline mode after an error elsewhere; the caller rolls back."""
        if self.pipeline is not None:
            pipeline, self.pipeline = self.pipeline, None
            with contextlib.suppress(Exception):
                pipeline.__exit__(None, None, None)
        for cursor in self.cursors.values():
            with contextlib.suppress(Exception):
                cursor.close()
        self.cursors.clear()


def write_chunk(
    session: Session, statements: _Statements, import_id: int, results: list[RowResult]
) -> ChunkWrite:
    """Start writing one chunk (see ChunkWrite); `.finish()` completes it."""
    outcome = ChunkOutcome(processed=len(results))
    valid = []
    errors = []
    for result in results:
        if result.errors:
            outcome.failed += 1
            errors.extend((import_id, result.line, key, reason)
                          for key, reason in result.errors.items())  # fmt: skip
        else:
            valid.append((result.line, result.target_id, *_client_values(result.values),
                          *(result.contact or (None, None, None, None))))  # fmt: skip
    connection = session.connection().connection.driver_connection
    with connection.cursor() as cursor:
        if valid:
            cursor.execute(statements.drop)
            cursor.execute(statements.create)
            with cursor.copy(statements.copy) as copy:
                write_row = copy.write_row
                for row in valid:
                    write_row(row)
        if errors:
            with cursor.copy(statements.errors) as copy:
                write_row = copy.write_row
                for row in errors:
                    write_row(row)
    write = ChunkWrite(connection, outcome)
    try:
        write.send(statements, bool(valid), any(row[-4] is not None for row in valid))
    except BaseException:
        write.abandon()
        raise
    return write


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
    session.execute(
        update(ClientImport)
        .where(ClientImport.id == import_id)
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
        statements = _Statements.for_schema(schema)
        checker = RowChecker(session, tenant, mapping)
        size = chunk_size or CHUNK_SIZE
        position = 0
        pending: list[RowResult] | None = None  # checked, to be written
        with (
            open_upload(tenant_id, key) as stream,
            open_table(stream, file_format) as table,
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
                        totals.contacts += writing.finish(statements, import_id).contacts
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
        _set_import(session, import_id, status="done", finished_at=func.now(),
                    total_rows=ClientImport.processed_rows)  # fmt: skip
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

_PENDING_KEY = "client_imports_to_enqueue"


def start_import(session: Session, record: ClientImport) -> None:
    """Queue the import; the job is handed to a worker once this transaction commits."""
    if record.status == "mapped" and mapping_problem(record.mapping):
        raise ImportFileError(mapping_problem(record.mapping))
    queued = session.execute(
        update(ClientImport)
        .where(ClientImport.id == record.id, ClientImport.status.in_(STARTABLE_STATUSES))
        .values(status="queued", error=None)
        .returning(ClientImport.id)
        .execution_options(synchronize_session=False)
    ).first()
    if queued is None:
        raise ImportFileError(
            "Save the columns first."
            if record.status == "uploaded"
            else "This import has started already."
        )
    session.refresh(record)
    tenant_id = bound_tenant_id(session)
    session.info.setdefault(_PENDING_KEY, []).append((record.id, tenant_id))


@event.listens_for(TenantSession, "after_commit")
def _enqueue_after_commit(session) -> None:
    # SQLAlchemy reports a released savepoint as a commit too; only the real one counts.
    if session.in_nested_transaction():
        return
    for import_id, tenant_id in session.info.pop(_PENDING_KEY, None) or ():
        try:
            enqueue_import(import_id, tenant_id)
        except Exception:  # Redis down: the import stays "queued" (see enqueue_import)
            log.warning("could not queue client import %s", import_id, exc_info=True)


@event.listens_for(TenantSession, "after_soft_rollback")
def _forget_rolled_back(session, previous_transaction) -> None:
    if not session.in_transaction():
        session.info.pop(_PENDING_KEY, None)


def enqueue_import(import_id: int, tenant_id: int) -> None:
    """Hand the import to a worker. Safe to call twice: the job claims a queued import once.
    (Nothing re-queues an import whose hand-over failed yet; calling this again does.)"""
    from jobs.queues import get_queue
    from jobs.tasks import run_client_import

    get_queue("bulk").enqueue(
        run_client_import, import_id, tenant_id=tenant_id, job_timeout=JOB_TIMEOUT
    )


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
    return FIELD_LABELS.get(key, key)


def csv_lines(rows: Iterable[Iterable]) -> Iterator[str]:
    """CSV text for streaming, a few hundred rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for count, row in enumerate(rows, start=1):
        writer.writerow(row)
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# Export ----------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "full_name", "short_name", "external_id", "status", "location", "country",
    "address_line1", "address_line2", "city", "region", "postal_code", "gstin", "pan", "abn",
    "vat_number", "tin", "tax_registration", "remittance_details", "payment_terms",
    "payment_days", "payment_terms_note", "engagement_manager_user_id", "new_business_year",
    "industry_id", "currency", "credit_limit", "preferred_language", "preferred_channel", "tags",
)  # fmt: skip
EXPORT_HEADERS = [FIELD_LABELS[key] for key in EXPORT_COLUMNS]


def export_query(filters: ClientFilters):
    sort_key, direction = SORTS[filters.sort]
    order = (sort_key.asc(), Client.id.asc()) if direction == "asc" else (
        sort_key.desc(), Client.id.desc())  # fmt: skip
    return (
        filtered_clients_query(filters)
        .with_only_columns(*(getattr(Client, key) for key in EXPORT_COLUMNS))
        .order_by(*order)
        .execution_options(yield_per=2000)  # a server-side cursor, 2,000 rows at a time
    )


@dataclass
class ExportNames:
    """Ids shown as names in an export (the import reads the names back)."""

    industries: dict[int, str]
    managers: dict[int, str]

    @classmethod
    def load(cls, session: Session, tenant_id: int) -> ExportNames:
        industries = dict(session.execute(select(Industry.id, Industry.name)).tuples().all())
        managers = dict(
            session.execute(
                select(User.id, User.email)
                .join(Membership, Membership.user_id == User.id)
                .where(Membership.tenant_id == tenant_id)
            )
            .tuples()
            .all()
        )
        return cls(industries, managers)


def export_rows(session: Session, filters: ClientFilters, names: ExportNames) -> Iterator[list]:
    """The filtered clients as plain values (the header row first)."""
    yield list(EXPORT_HEADERS)
    manager_at = EXPORT_COLUMNS.index("engagement_manager_user_id")
    industry_at = EXPORT_COLUMNS.index("industry_id")
    tags_at = EXPORT_COLUMNS.index("tags")
    for row in session.execute(export_query(filters)):
        values = list(row)
        if values[manager_at] is not None:
            values[manager_at] = names.managers.get(values[manager_at], "")
        if values[industry_at] is not None:
            values[industry_at] = names.industries.get(values[industry_at], "")
        values[tags_at] = ", ".join(values[tags_at] or [])
        yield values


def safe_cell(value):
    """Spreadsheet programs run a cell that starts with = + - @ as a formula: not ours."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def export_csv(session: Session, filters: ClientFilters, names: ExportNames) -> Iterator[str]:
    def text_rows():
        for row in export_rows(session, filters, names):
            yield ["" if v is None else safe_cell(v) for v in row]

    yield "\ufeff"  # a byte-order mark, so that Excel reads the file as UTF-8
    yield from csv_lines(text_rows())


def export_xlsx(
    session: Session, filters: ClientFilters, names: ExportNames, out: IO[bytes]
) -> None:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Clients")
    for row in export_rows(session, filters, names):
        cells = []
        for value in row:
            if isinstance(value, str):
                cell = WriteOnlyCell(sheet, value=value)
                cell.data_type = "s"  # never a formula, whatever it starts with
                cells.append(cell)
            else:
                cells.append(value)
        sheet.append(cells)
    workbook.save(out)


def export_filename(tenant: Tenant, file_format: str) -> str:
    from zoneinfo import ZoneInfo

    today = datetime.now(UTC).astimezone(ZoneInfo(tenant.time_zone)).date()
    return f"clients-{tenant.slug}-{today.isoformat()}.{file_format}"
