"""Reading an uploaded client file: the formats (CSV, XLSX), parsing one into a Table (the
header row, then the data rows with their line numbers) as a stream of rows within the
ImportLimits, the check that the first row names the columns, `check_upload` (what the upload
request may check: a workbook's zip directory, nothing decompressed) and `inspect_file` (what
a worker reads: the headers, the exact row count, the first rows for the preview); and the
stored upload (save, open, delete through app.core.storage), at most MAX_FILE_BYTES.
ImportFileError carries the message for the user when a file (or a step of an import) cannot
go on."""

from __future__ import annotations

import csv
import io
import itertools
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO

from flask import current_app
from openpyxl.utils.cell import get_column_letter

from app.clients.imports.limits import ImportFileError, ImportLimits
from app.clients.imports.mapping import suggest_mapping
from app.clients.imports.xlsx import NotAWorkbook, check_workbook_directory, first_sheet_rows
from app.core import storage
from app.core.terminology import term
from tenants.binding import schema_for_tenant_id

MAX_FILE_BYTES = 20 * 1024 * 1024
FORMATS = ("csv", "xlsx")
# A spreadsheet runs a cell starting with one of these as a formula; exports put a ' before.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def current_limits() -> ImportLimits:
    return ImportLimits.from_config(current_app.config)


# Reading files ---------------------------------------------------------------------------


@dataclass
class Table:
    headers: list[str]
    rows: Iterator[tuple[int, list[str]]]  # (line in the file, cells); the header is line 1


@dataclass
class FileSummary:
    headers: list[str]
    total_rows: int
    first_rows: list[tuple[int, list[str]]]


def file_format_for(filename: str) -> str | None:
    suffix = Path(filename or "").suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else None


def check_upload(stream: IO[bytes], file_format: str, limits: ImportLimits) -> None:
    """What the upload request checks before the file is kept: a workbook's zip directory
    (declared sizes, entry count, compression ratio; nothing is decompressed). Parsing is a
    worker's job (`inspect_file`)."""
    if file_format == "xlsx":
        check_workbook_directory(stream, limits)


@contextmanager
def open_table(stream: IO[bytes], file_format: str, limits: ImportLimits) -> Iterator[Table]:
    """The header and the data rows of a file, read as they are used (never the whole file
    at once); blank rows are skipped (their line numbers are not reused). Raises
    ImportFileError, also while rows are read, once the file passes one of the limits."""
    if file_format == "csv":
        handle = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        try:
            yield _table(_csv_rows(handle, limits), limits)
        finally:
            handle.detach()  # the caller closes the stream
    elif file_format == "xlsx":
        check_workbook_directory(stream, limits)
        stream.seek(0)
        try:
            archive = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            raise NotAWorkbook(str(error)) from error
        with archive:
            rows = first_sheet_rows(archive, limits, _cell_text, _cell_too_long(limits))
            yield _table(rows, limits)
    else:
        raise ImportFileError("Upload a .csv or .xlsx file.")


def _table(rows: Iterator[tuple[int, list[str]]], limits: ImportLimits) -> Table:
    header = next(rows, None)
    if header is None:
        raise ImportFileError("The file is empty.")
    line, cells = header
    headers = _header(cells if line == 1 else [])
    return Table(headers=headers, rows=_data_rows(rows, limits))


def _data_rows(rows, limits: ImportLimits) -> Iterator[tuple[int, list[str]]]:
    for count, (line, cells) in enumerate(rows, start=1):
        if count > limits.max_rows:
            raise ImportFileError(
                f"The file has more than {limits.max_rows:,} rows below the header; an import "
                f"takes at most {limits.max_rows:,}. Split it into smaller files."
            )
        if any(c.strip() for c in cells):
            yield line, cells


def _cell_too_long(limits: ImportLimits):
    def error(line: int, column: int) -> ImportFileError:
        return ImportFileError(
            f"Line {line}, column {get_column_letter(column + 1)}: a cell holds more than "
            f"{limits.max_cell_chars:,} characters, longer than any {term('client')} field. "
            "Shorten it and upload again."
        )

    return error


class _RecordBudget:
    """The lines of a CSV file, refused once one record (which may span lines inside quotes)
    is longer than the limits allow: the CSV reader holds a whole record in memory, so a
    20 MB line of commas would be millions of cells before any check could count them."""

    def __init__(self, handle: IO[str], limit: int):
        self.lines, self.limit, self.used, self.record = iter(handle), limit, 0, 1

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.used += len(line)
        if self.used > self.limit:
            raise ImportFileError(
                f"Line {self.record} is longer than {term('a client')} file's row can be (more "
                f"than {self.limit:,} characters). Check that it is a CSV file of "
                f"{term('clients')}."
            )
        return line

    def next_record(self, number: int) -> None:
        self.used, self.record = 0, number


def _csv_rows(handle: IO[str], limits: ImportLimits) -> Iterator[tuple[int, list[str]]]:
    budget = _RecordBudget(handle, limits.max_row_chars)
    try:
        first_line = next(budget, "")
    except UnicodeDecodeError as error:
        raise _not_utf8() from error
    if "\x00" in first_line:
        raise _not_utf8()
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    delimiter = max(counts, key=lambda d: (counts[d], d == ","))
    budget.next_record(1)
    budget.used = len(first_line)
    # The header line is read again by the CSV reader (no seeking: storage may stream).
    reader = csv.reader(itertools.chain([first_line], budget), delimiter=delimiter)
    line = 0
    too_long = _cell_too_long(limits)
    try:
        for cells in reader:
            line += 1
            budget.next_record(line + 1)
            while cells and not cells[-1]:
                cells.pop()
            if len(cells) > limits.max_columns:
                raise ImportFileError(
                    f"Line {line} has more than {limits.max_columns:,} columns; "
                    f"{term('a client')} file may have at most {limits.max_columns:,}."
                )
            for column, cell in enumerate(cells):
                if len(cell) > limits.max_cell_chars:
                    raise too_long(line, column)
            yield line, cells
    except UnicodeDecodeError as error:
        raise _not_utf8() from error
    except csv.Error as error:
        raise ImportFileError(f"Line {line + 1} cannot be read as CSV ({error}).") from error


def _not_utf8() -> ImportFileError:
    return ImportFileError(
        "This file is not UTF-8 text. In Excel choose Save as → CSV UTF-8, or upload the .xlsx."
    )


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
            f"The first row looks like {term('a client')}, not column names. Add a header row "
            "(e.g. Name, Short name, GSTIN) and upload again."
        )
    return headers


def _looks_like_data(text: str) -> bool:
    return "@" in text or text.replace(".", "").replace(",", "").strip().isdigit()


def inspect_file(
    stream: IO[bytes], file_format: str, limits: ImportLimits, keep_rows: int
) -> FileSummary:
    """The headers, the exact number of data rows and the first `keep_rows` of them, read
    row by row within the limits (a worker's job); ImportFileError when the file is not
    usable."""
    with open_table(stream, file_format, limits) as table:
        first_rows = list(itertools.islice(table.rows, keep_rows))
        if not first_rows:
            raise ImportFileError(f"The file has a header row but no {term('clients')} below it.")
        total = len(first_rows) + sum(1 for _ in table.rows)
    return FileSummary(table.headers, total, first_rows)


# Storage ---------------------------------------------------------------------------------
# Uploads are kept through app.core.storage under <tenant schema>/imports/<uuid>.<csv|xlsx>.


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
