"""What a client file may hold before it is refused, and the error that says why.

The limits keep one upload from costing every other tenant: a client import rarely exceeds a
few tens of thousands of rows and a few dozen columns, and a spreadsheet program never writes
a workbook that unpacks to hundreds of times its size. Each is a setting (the environment
variable is the setting's name, see app.config); the defaults are below."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

MB = 1024 * 1024


class ImportFileError(ValueError):
    """The file cannot be read as a table of clients; the message says what to do."""


@dataclass(frozen=True)
class ImportLimits:
    max_rows: int = 50_000  # IMPORT_MAX_ROWS: rows below the header
    max_columns: int = 100  # IMPORT_MAX_COLUMNS: an import knows 33 fields
    # IMPORT_MAX_CELL_CHARS: longer than any client field (remittance details included).
    max_cell_chars: int = 4_000
    # A workbook's zip directory, checked before anything is unpacked:
    xlsx_max_entries: int = 1_000  # IMPORT_XLSX_MAX_ENTRIES: Excel writes a few dozen parts
    xlsx_max_entry_bytes: int = 100 * MB  # IMPORT_XLSX_MAX_ENTRY_BYTES: one part, unpacked
    xlsx_max_total_bytes: int = 200 * MB  # IMPORT_XLSX_MAX_TOTAL_BYTES: all parts, unpacked
    # IMPORT_XLSX_MAX_RATIO: unpacked / packed size of a part over 1 MB. Excel's sheets
    # compress 5-20 times; the bomb of issue 14 was 600 times.
    xlsx_max_ratio: int = 100

    @classmethod
    def from_config(cls, config: Mapping) -> ImportLimits:
        return cls(
            **{f.name: int(config.get(setting_name(f.name), f.default)) for f in fields(cls)}
        )

    @property
    def max_row_chars(self) -> int:
        """The longest a row can be within the column and cell limits (separators and
        quotes included): a CSV record past it is refused before it is split into cells."""
        return self.max_columns * (self.max_cell_chars + 3)


def setting_name(field_name: str) -> str:
    return f"IMPORT_{field_name.upper()}"
