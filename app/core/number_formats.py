"""Invoice number formats and the financial years they count in: pure rules, no database
(the settings page checks a format typed there; invoicing takes numbers with it).

GST Rule 46 (India): a tax invoice carries "a consecutive serial number not exceeding sixteen
characters, in one or multiple series, containing alphabets or numerals or special characters
hyphen or dash and slash symbolised as "-" and "/" respectively, and any combination thereof,
unique for a financial year". Each series therefore counts from 1 again in every financial year.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

MAX_NUMBER_LENGTH = 16  # GST Rule 46
ALLOWED_NUMBER = re.compile(r"^[A-Za-z0-9/-]*$")
SERIES_PATTERN = re.compile(r"^[A-Za-z0-9/-]{1,8}$")  # the column is String(8)
MAX_SEQUENCE = 2**31 - 1  # the counter is an INTEGER column
FIELDS = ("series", "fy", "fy_short", "seq")
SEQ_SPEC = re.compile(r"^(?:0([1-9][0-9]?))?d?$")


class NumberFormatError(ValueError):
    """A number format that could make a number GST Rule 46 does not allow."""


class NumberingExhausted(RuntimeError):
    """The series has used every number its format can show this financial year."""


# Financial years ----------------------------------------------------------------------------

# Month the financial year starts in, by country; elsewhere the calendar year.
FISCAL_YEAR_START_MONTH = {"IN": 4, "AU": 7}


def fiscal_year_of(day: date, country: str) -> str:
    """The financial year `day` (a date in the tenant's own calendar) falls in: India April to
    March and Australia July to June, both written "2026-27"; elsewhere the calendar year,
    "2026"."""
    start_month = FISCAL_YEAR_START_MONTH.get(country.upper())
    if start_month is None:
        return f"{day.year}"
    first_year = day.year if day.month >= start_month else day.year - 1
    return f"{first_year}-{(first_year + 1) % 100:02d}"


def fiscal_year_at(moment: datetime, country: str, time_zone: str) -> str:
    """The financial year of an instant, read in the tenant's time zone (an invoice issued at
    01:30 IST on 1 April belongs to the new year although UTC still says 31 March)."""
    if moment.tzinfo is None:
        raise ValueError("pass an aware datetime: the financial year depends on the time zone")
    return fiscal_year_of(moment.astimezone(ZoneInfo(time_zone)).date(), country)


def fiscal_year_length(country: str) -> int:
    return len(fiscal_year_of(date(2000, 1, 1), country))


# The number format --------------------------------------------------------------------------


@dataclass(frozen=True)
class NumberFormat:
    """A template such as "{series}/{fy}/{seq:04d}" or "{series}-{fy_short}-{seq:05d}".

    Fields: {series}, {fy} (e.g. "2026-27", or "2026" for a calendar year), {fy_short}
    ("26-27", "26") and {seq} (the number within the series and year, required once; "{seq:05d}"
    pads it to 5 digits and then allows 1 to 99999; a bare "{seq}" may grow to 10 digits). The
    text between fields may hold only letters, digits, "-" and "/".

    Checked when made: the LONGEST number the format can produce — a series of
    `series_length` characters, a financial year of `fiscal_year_length` characters and the
    largest number the sequence may reach — must have at most 16 characters. Use
    `NumberFormat.for_series(template, series, country)` to check for one actual series.
    """

    template: str
    series_length: int = 8
    fiscal_year_length: int = 7
    seq_width: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        seen = []
        for literal, name, spec, conversion in _parse(self.template):
            if not ALLOWED_NUMBER.match(literal):
                bad = sorted({c for c in literal if not ALLOWED_NUMBER.match(c)})
                raise NumberFormatError(
                    f"An invoice number may hold only letters, digits, '-' and '/'; "
                    f"this format has {' '.join(repr(c) for c in bad)}."
                )
            if name is None:
                continue
            if name not in FIELDS:
                raise NumberFormatError(
                    f"Unknown field {{{name}}}; use {', '.join('{' + f + '}' for f in FIELDS)}."
                )
            if conversion:
                raise NumberFormatError(f"{{{name}}} takes no conversion (!{conversion}).")
            if name == "seq":
                match = SEQ_SPEC.match(spec)
                if not match:
                    raise NumberFormatError(
                        f"{{seq:{spec}}} is not a number width; write {{seq}} or e.g. {{seq:05d}}."
                    )
                object.__setattr__(self, "seq_width", int(match.group(1) or 0))
            elif spec:
                raise NumberFormatError(f"{{{name}}} takes no format (:{spec}).")
            seen.append(name)
        if seen.count("seq") != 1:
            raise NumberFormatError("The format needs the number {seq} exactly once.")
        if self.seq_width and 10**self.seq_width - 1 > MAX_SEQUENCE:
            raise NumberFormatError("{seq} may have at most 9 digits of padding.")
        longest = self.longest_example()
        if len(longest) > MAX_NUMBER_LENGTH:
            raise NumberFormatError(
                f"This format can make numbers of {len(longest)} characters, such as "
                f"{longest!r}; GST Rule 46 allows at most {MAX_NUMBER_LENGTH}. Use a shorter "
                "series, {fy_short} instead of {fy}, or fewer digits."
            )

    @classmethod
    def for_series(cls, template: str, series: str, country: str) -> NumberFormat:
        """The format checked for one series in one country's financial years."""
        _check_series(series)
        return cls(
            template, series_length=len(series), fiscal_year_length=fiscal_year_length(country)
        )

    @property
    def max_sequence(self) -> int:
        """The largest number the format shows without growing past its width."""
        return 10**self.seq_width - 1 if self.seq_width else MAX_SEQUENCE

    def longest_example(self) -> str:
        fy = ("2026-2027" if self.fiscal_year_length >= 9 else "2026-27")[
            : self.fiscal_year_length
        ].ljust(self.fiscal_year_length, "9")
        return self._fill("S" * self.series_length, fy, self.max_sequence)

    def _fill(self, series: str, fiscal_year: str, number: int) -> str:
        return self.template.format(
            series=series, fy=fiscal_year, fy_short=fiscal_year[2:], seq=number
        )

    def check(self, series: str, fiscal_year: str) -> None:
        """Refuse a series or year longer than the format was checked for."""
        _check_series(series)
        if len(series) > self.series_length:
            raise NumberFormatError(
                f"The series {series!r} is longer than the {self.series_length} characters "
                "this format was checked for."
            )
        if len(fiscal_year) > self.fiscal_year_length or not ALLOWED_NUMBER.match(fiscal_year):
            raise NumberFormatError(f"{fiscal_year!r} does not fit this format's financial year.")

    def render(self, series: str, fiscal_year: str, number: int) -> str:
        self.check(series, fiscal_year)
        if not 1 <= number <= self.max_sequence:
            raise NumberingExhausted(
                f"Number {number} does not fit the format {self.template!r} "
                f"(1 to {self.max_sequence})."
            )
        rendered = self._fill(series, fiscal_year, number)
        assert len(rendered) <= MAX_NUMBER_LENGTH and ALLOWED_NUMBER.match(rendered), rendered
        return rendered


def _parse(template: str):
    try:
        return list(string.Formatter().parse(template))
    except ValueError as error:
        raise NumberFormatError(f"The format {template!r} is not readable: {error}.") from None


def _check_series(series: str) -> None:
    if not SERIES_PATTERN.match(series or ""):
        raise NumberFormatError(
            f"A series is 1 to 8 letters, digits, '-' or '/'; {series!r} is not."
        )
