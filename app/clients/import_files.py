"""Reading an uploaded client file: the formats (CSV, XLSX), parsing one into a Table (the
header row, then the data rows with their line numbers), the check that the first row names the
columns, `inspect_file`; and the stored upload (save, open, delete through app.storage), at most
MAX_FILE_BYTES. ImportFileError carries the message for the user when a file (or a step of an
import) cannot go on."""

from __future__ import annotations

import csv
import io
import itertools
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO

import openpyxl
from flask import current_app

from app import storage
from app.clients.import_mapping import suggest_mapping
from tenants.binding import schema_for_tenant_id

MAX_FILE_BYTES = 20 * 1024 * 1024
FORMATS = ("csv", "xlsx")
# A spreadsheet runs a cell starting with one of these as a formula; exports put a ' before.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ImportFileError(ValueError):
    """The file cannot be read as a table of clients; the message says what to do."""


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
