"""Reading an .xlsx workbook for a client import without trusting it: a workbook is a zip file
of XML parts, and a small zip can unpack to gigabytes (a "decompression bomb").

1. `check_workbook_directory` reads only the zip's directory (the end record, then the entries'
   declared sizes) and refuses a file with too many entries, a part or a total that would
   unpack beyond the limits, or a part compressed far beyond what spreadsheet programs write.
   Nothing is decompressed: the upload request runs it.
2. `first_sheet_rows` streams the first sheet's rows (a worker runs it): every part is
   decompressed through a byte budget (its declared size, within the limits), so a directory
   that lies about sizes is caught while reading; the XML is fed to expat 64 KiB at a time,
   text is kept only up to the cell limit, and one row is built at a time. Memory is bounded
   by construction: a row (columns x cell length), the shared strings (SHARED_STRINGS_BYTES)
   and a few small parts (workbook, relationships, number formats). DTDs and entities, which
   no workbook has, are refused.

Values read as openpyxl reads them (numbers, booleans, dates by their number format, shared
and inline strings), turned into text by the caller's `cell_text`.
"""

from __future__ import annotations

import posixpath
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO
from xml.parsers import expat

from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

from app.clients.imports.limits import ImportFileError, ImportLimits
from app.core.terminology import term

READ_BLOCK = 64 * 1024
# The shared string table is the one part held whole (cells refer to it by position): about
# 60 bytes of Python per string plus its text, at most this much.
SHARED_STRINGS_BYTES = 64 * 1024 * 1024
STRING_OVERHEAD = 60
# Below this, a part's compression ratio says nothing (a few KB of styles compress well).
RATIO_FLOOR_BYTES = 1024 * 1024
_END_RECORD = b"PK\x05\x06"
_END_RECORD_FORMAT = "<4s4H2LH"  # signature, disks, entries here, entries, size, offset, comment
_END_RECORD_SEARCH = 22 + 65_535  # the record and the longest comment


class NotAWorkbook(ImportFileError):
    """Not a zip file, or a zip without a readable workbook in it (what is wrong: `detail`,
    for the logs; the user is told the same for every case)."""

    def __init__(self, detail: str = ""):
        super().__init__(
            "This is not an Excel workbook (.xlsx). Save it from Excel as .xlsx or CSV."
        )
        self.detail = detail


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:,.0f} MB"


def _entry_count(stream: IO[bytes]) -> int:
    """The number of entries the zip's end record states, read without reading the entries
    (a directory of a million entries would cost memory to list)."""
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(max(0, size - _END_RECORD_SEARCH))
    tail = stream.read()
    at = tail.rfind(_END_RECORD)
    if at < 0 or len(tail) - at < 22:
        raise NotAWorkbook("no zip end record")
    return struct.unpack(_END_RECORD_FORMAT, tail[at : at + 22])[4]


def check_workbook_directory(stream: IO[bytes], limits: ImportLimits) -> None:
    """Refuse a workbook whose directory announces a bomb (ImportFileError), or that is not
    a zip file at all (NotAWorkbook). Reads the directory only; decompresses nothing."""
    entries = _entry_count(stream)
    if entries > limits.xlsx_max_entries:
        raise ImportFileError(
            f"This workbook holds {entries:,} parts; a spreadsheet has a few dozen. "
            "Save it from Excel as .xlsx or CSV and upload that."
        )
    stream.seek(0)
    try:
        infos = zipfile.ZipFile(stream).infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise NotAWorkbook(str(error)) from error
    total = 0
    for info in infos:
        total += info.file_size
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise NotAWorkbook(f"compression method {info.compress_type}")
        if info.file_size > limits.xlsx_max_entry_bytes:
            raise ImportFileError(
                f"This workbook unpacks to {_megabytes(info.file_size)} in one part; the "
                f"limit is {_megabytes(limits.xlsx_max_entry_bytes)}. Split it into smaller "
                "files, or save it as CSV."
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR_BYTES and ratio > limits.xlsx_max_ratio:
            raise ImportFileError(
                f"This workbook cannot be imported: a part of it unpacks to {ratio:,.0f} times "
                "its size, far more than spreadsheet programs write. Open it in Excel, save "
                "it as .xlsx or CSV again, and upload that."
            )
    if total > limits.xlsx_max_total_bytes:
        raise ImportFileError(
            f"This workbook unpacks to {_megabytes(total)}; the limit is "
            f"{_megabytes(limits.xlsx_max_total_bytes)}. Split it into smaller files, or save "
            "it as CSV."
        )


class _Budget:
    """Decompressed bytes left for the whole workbook; each part also gets no more than it
    declared, so a directory that understates a part's size is caught while reading."""

    def __init__(self, limits: ImportLimits):
        self.left = limits.xlsx_max_total_bytes
        self.limits = limits

    def blocks(self, archive: zipfile.ZipFile, name: str) -> Iterator[bytes]:
        info = archive.getinfo(name)
        allowed = min(info.file_size, self.limits.xlsx_max_entry_bytes, self.left)
        with archive.open(info) as part:
            while block := part.read(READ_BLOCK):
                allowed -= len(block)
                self.left -= len(block)
                if allowed < 0:
                    raise ImportFileError(
                        "This workbook is damaged: a part of it holds more than its directory "
                        "says. Open it in Excel, save it again, and upload that."
                    )
                yield block


def _local(name: str) -> str:
    return name.rpartition(" ")[2]  # "namespace localname" from expat, or a plain name


def _refuse_dtd(*_args) -> None:
    raise NotAWorkbook("a workbook part declares a DTD or an entity")


def _parse(
    blocks: Iterator[bytes],
    start: Callable[[str, dict], None],
    end: Callable[[str], None] | None = None,
    text: Callable[[str], None] | None = None,
    ready: list | None = None,
) -> Iterator:
    """Feed one part to expat block by block; after each block, yield what the handlers put
    in `ready` (and clear it). Handlers get local names (namespaces dropped)."""
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.StartElementHandler = lambda name, attrs: start(
        _local(name), {_local(k): v for k, v in attrs.items()}
    )
    if end is not None:
        parser.EndElementHandler = lambda name: end(_local(name))
    if text is not None:
        parser.CharacterDataHandler = text
    try:
        for block in blocks:
            parser.Parse(block, False)
            if ready:
                yield from ready
                ready.clear()
        parser.Parse(b"", True)
    except expat.ExpatError as error:
        raise NotAWorkbook(f"bad XML: {error}") from error
    if ready:
        yield from ready
        ready.clear()


def _relationships(archive, budget: _Budget, part: str) -> dict[str, str]:
    """Relationship id -> the path of the part it points to, for a part's .rels file."""
    folder, base = posixpath.split(part)
    rels = posixpath.join(folder, "_rels", base + ".rels")
    if rels not in archive.NameToInfo:
        return {}
    found: dict[str, str] = {}

    def start(name: str, attrs: dict) -> None:
        if name == "Relationship" and attrs.get("Id") and attrs.get("Target"):
            target = attrs["Target"]
            path = target[1:] if target.startswith("/") else posixpath.join(folder, target)
            found[attrs["Id"]] = posixpath.normpath(path)

    for _ in _parse(budget.blocks(archive, rels), start):
        pass
    return found


def _office_document(archive, budget: _Budget) -> str:
    root = _relationships(archive, budget, "")
    for rel_id, path in root.items():
        if rel_id and path.endswith(".xml") and "workbook" in path.rsplit("/", 1)[-1]:
            return path
    return "xl/workbook.xml"


@dataclass
class _Workbook:
    path: str
    first_sheet: str
    epoch: object


def _workbook(archive, budget: _Budget) -> _Workbook:
    path = _office_document(archive, budget)
    if path not in archive.NameToInfo:
        raise NotAWorkbook("no workbook part")
    sheet_ids: list[str] = []
    epoch = [CALENDAR_WINDOWS_1900]

    def start(name: str, attrs: dict) -> None:
        if name == "sheet" and attrs.get("id"):
            sheet_ids.append(attrs["id"])
        elif name == "workbookPr" and attrs.get("date1904") in ("1", "true"):
            epoch[0] = CALENDAR_MAC_1904

    for _ in _parse(budget.blocks(archive, path), start):
        pass
    targets = _relationships(archive, budget, path)
    if not sheet_ids or targets.get(sheet_ids[0]) not in archive.NameToInfo:
        raise NotAWorkbook("no first sheet")
    return _Workbook(path, targets[sheet_ids[0]], epoch[0])


def _date_styles(archive, budget: _Budget, workbook_path: str) -> set[int]:
    """Positions of the cell formats (cellXfs) whose number format is a date."""
    path = posixpath.join(posixpath.dirname(workbook_path), "styles.xml")
    if path not in archive.NameToInfo:
        return set()
    custom: dict[int, str] = {}
    formats: list[int] = []
    inside = {"cellXfs": False}

    def start(name: str, attrs: dict) -> None:
        if name == "numFmt" and attrs.get("numFmtId", "").isdigit():
            custom[int(attrs["numFmtId"])] = attrs.get("formatCode", "")
        elif name == "cellXfs":
            inside["cellXfs"] = True
        elif name == "xf" and inside["cellXfs"]:
            number_format = attrs.get("numFmtId", "0")
            formats.append(int(number_format) if number_format.isdigit() else 0)

    def end(name: str) -> None:
        if name == "cellXfs":
            inside["cellXfs"] = False

    for _ in _parse(budget.blocks(archive, path), start, end):
        pass
    return {
        position
        for position, format_id in enumerate(formats)
        if is_date_format(custom.get(format_id) or BUILTIN_FORMATS.get(format_id) or "")
    }


def _shared_strings(archive, budget: _Budget, workbook_path: str, cap: int) -> list[str]:
    path = posixpath.join(posixpath.dirname(workbook_path), "sharedStrings.xml")
    if path not in archive.NameToInfo:
        return []
    strings: list[str] = []
    state = {"phonetic": 0, "capture": False, "length": 0, "bytes": 0}
    parts: list[str] = []

    def start(name: str, attrs: dict) -> None:
        if name == "si":
            parts.clear()
            state["length"] = 0
        elif name == "rPh":
            state["phonetic"] += 1
        elif name == "t" and not state["phonetic"]:
            state["capture"] = True

    def end(name: str) -> None:
        if name == "si":
            value = "".join(parts)
            state["bytes"] += len(value) + STRING_OVERHEAD
            if state["bytes"] > SHARED_STRINGS_BYTES:
                raise ImportFileError(
                    "This workbook holds too much text to import. Split it into smaller "
                    "files, or save it as CSV."
                )
            strings.append(value)
        elif name == "rPh":
            state["phonetic"] -= 1
        elif name == "t":
            state["capture"] = False

    def text(data: str) -> None:
        # Up to one character past the cell limit: enough for a cell to be refused as too
        # long, never more held.
        if state["capture"] and state["length"] <= cap:
            parts.append(data[: cap + 1 - state["length"]])
            state["length"] += len(parts[-1])

    for _ in _parse(budget.blocks(archive, path), start, end, text):
        pass
    return strings


@dataclass(slots=True)
class _Cell:
    column: int = 0
    kind: str = "n"
    style: int = -1
    capture: bool = False
    length: int = 0


def _column_of(reference: str | None, previous: int) -> int:
    """0-based column of a cell reference such as "AB12"; the next column without one."""
    if not reference:
        return previous + 1
    number = 0
    for char in reference:
        if "A" <= char <= "Z":
            number = number * 26 + ord(char) - 64
        else:
            break
    return number - 1 if number else previous + 1


class _SheetReader:
    """expat handlers that build one row at a time; finished rows go to `ready`."""

    def __init__(self, limits, strings, date_styles, epoch, cell_text, cell_error):
        self.limits, self.strings, self.date_styles = limits, strings, date_styles
        self.epoch, self.cell_text, self.cell_error = epoch, cell_text, cell_error
        self.ready: list[tuple[int, list[str]]] = []
        self.line = 0
        self.row: dict[int, str] = {}
        self.cell = _Cell()
        self.parts: list[str] = []
        self.inline = False

    def start(self, name: str, attrs: dict) -> None:
        if name == "c":
            style = attrs.get("s", "")
            self.cell = _Cell(
                column=_column_of(attrs.get("r"), self.cell.column),
                kind=attrs.get("t", "n"),
                style=int(style) if style.isdigit() else -1,
            )
            self.parts.clear()
        elif name == "v" or (name == "t" and self.inline):
            self.cell.capture = True
        elif name == "is":
            self.inline = True
        elif name == "row":
            number = attrs.get("r", "")
            self.line = int(number) if number.isdigit() else self.line + 1
            self.row = {}
            self.cell = _Cell(column=-1)

    def text(self, data: str) -> None:
        cell = self.cell
        if cell.capture:
            cap = self.limits.max_cell_chars
            if cell.length + len(data) > cap:
                raise self.cell_error(self.line, cell.column)
            cell.length += len(data)
            self.parts.append(data)

    def end(self, name: str) -> None:
        if name in ("v", "t"):
            self.cell.capture = False
        elif name == "is":
            self.inline = False
        elif name == "c":
            value = self._value("".join(self.parts))
            if value:
                if self.cell.column >= self.limits.max_columns:
                    raise ImportFileError(
                        f"Line {self.line} has more than {self.limits.max_columns:,} columns; "
                        f"{term('a client')} file may have at most {self.limits.max_columns:,}."
                    )
                self.row[self.cell.column] = value
        elif name == "row":
            width = max(self.row, default=-1) + 1
            self.ready.append((self.line, [self.row.get(i, "") for i in range(width)]))

    def _value(self, raw: str) -> str:
        kind = self.cell.kind
        if kind == "s":
            try:
                value = self.strings[int(raw)]
            except (ValueError, IndexError):
                return ""
            if len(value) > self.limits.max_cell_chars:
                raise self.cell_error(self.line, self.cell.column)
            return value
        if kind == "b":
            return self.cell_text(raw.strip() in ("1", "true"))
        if kind in ("str", "inlineStr", "e"):
            return raw
        if kind == "d":
            return raw[:10] if raw.endswith("T00:00:00") else raw
        if not raw:
            return ""
        try:
            number = int(raw) if raw.lstrip("-").isdigit() else float(raw)
        except ValueError:
            return raw
        if self.cell.style in self.date_styles:
            try:
                return self.cell_text(from_excel(number, self.epoch))
            except (ValueError, OverflowError):
                return raw
        return self.cell_text(number)


def first_sheet_rows(
    archive: zipfile.ZipFile,
    limits: ImportLimits,
    cell_text: Callable[[object], str],
    cell_error: Callable[[int, int], Exception],
) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of the first sheet's rows as they are read, one block at a time.
    Raises ImportFileError when a limit is passed, NotAWorkbook when a part is broken."""
    budget = _Budget(limits)
    try:
        workbook = _workbook(archive, budget)
        date_styles = _date_styles(archive, budget, workbook.path)
        strings = _shared_strings(archive, budget, workbook.path, limits.max_cell_chars)
        reader = _SheetReader(limits, strings, date_styles, workbook.epoch, cell_text, cell_error)
        yield from _parse(
            budget.blocks(archive, workbook.first_sheet),
            reader.start,
            reader.end,
            reader.text,
            reader.ready,
        )
    except (zipfile.BadZipFile, EOFError, OSError) as error:  # e.g. a CRC that does not match
        raise NotAWorkbook(str(error)) from error
