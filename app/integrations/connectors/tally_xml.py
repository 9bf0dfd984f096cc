"""TallyPrime's XML, read and written: the envelopes Duebook sends Tally (through the agent on
the SME's desktop, part 2), the answers Tally gives, and the same XML as files a person exports
from Tally or imports into it by hand. Pure functions, no HTTP: the caller carries the bytes.

Tally publishes prose and samples, no schema (shared reference providers.md §5.1); the forms
used here are the ones TallyPrime documents (`TALLYREQUEST` Export / Import, `TYPE` Collection
/ Data, a TDL collection in `DESC`) and that community integrations send (tally-database-loader:
a collection with FETCH and SYSTEM Formulae filters, `SVFROMDATE`/`SVTODATE` for a period).
tests/contracts/tally/envelopes.xsd is the project-written schema every request and answer in
the tests is checked against.

Requests: `companies_request`, `debtors_request`, `vouchers_request` (a date range and/or
AlterID above a marker, so a large day book is asked for a period at a time), `voucher_request`
(one voucher by number, for find-before-push), `import_envelope` (masters or vouchers).

Readers stream: the bytes are cleaned a chunk at a time (UTF-8 or UTF-16 with or without a
byte-order mark; the control-character references such as `&#4;` that real Tally writes are
dropped; a DOCTYPE is refused, so no entity is expanded and nothing outside the answer is
fetched) and fed to libxml2's push parser (lxml), which builds the elements in C and hands
Python only the records asked for, each dropped from the tree once read. They yield the neutral
records of accounting.py, or `Unreadable` with the reason and Tally's own identifiers. A
`Reading` is iterated once; afterwards its `marker` is the highest ALTERID seen (the change
marker to ask with next time).

How a voucher is tied to its records:
- a contact's remote id is its ledger's GUID; a voucher names its party ledger by name only,
  so the party is found by the voucher's PARTYLEDGERGUID (computed in Tally by our request)
  and else by the ledger name in `VoucherContext.ledger_guids` (a hand-exported day book);
- an invoice's remote id is its sales voucher's GUID; a receipt's bill-wise allocation names
  the bill (the invoice number), found in `VoucherContext.bill_guids` (the reader adds every
  sales voucher it reads there, so invoices read first link the receipts read after them);
- a payment's remote id is "<receipt GUID>/<bill>": one receipt may settle several bills.

Writers give a sales voucher for a BookInvoice, a receipt for a BookPayment (bill-wise Agst Ref)
and a party ledger under Sundry Debtors for a new client. A voucher's REMOTEID and GUID are
derived from our stable key (`remote_guid`), so importing it again alters the same voucher.
`read_import_result` turns Tally's counters into one outcome for the one record an import
envelope carried (Tally's counters do not say which of several vouchers failed, so a push sends
one record per envelope; a file for hand import may hold many).
"""

from __future__ import annotations

import codecs
import io
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache, lru_cache
from typing import BinaryIO
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from app.core.regions import region_code, state_name
from app.integrations.connectors.accounting import (
    Address,
    Book,
    BookContact,
    BookCreditNote,
    BookInvoice,
    BookLine,
    BookPayment,
    ProviderUnavailable,
    Unreadable,
)

CENT = Decimal("0.01")
ZERO = Decimal(0)
ONE = Decimal(1)
SUNDRY_DEBTORS = "Sundry Debtors"
# Voucher types by their TDL test: a company's own types ("Sales - Export") count as their base.
VOUCHER_KINDS = {"Sales": "$$IsSales", "Receipt": "$$IsReceipt", "Credit Note": "$$IsCreditNote"}
# A fixed namespace: the same key gives the same GUID in every process, on every retry.
_GUID_NAMESPACE = uuid.UUID("6f1b7c1e-3d0a-4c8e-9a51-4c0d0e7b2a19")
_TEXT_ENCODING = "utf-8"
_CHUNK = 64 * 1024


class TallyXmlError(ProviderUnavailable):
    """Tally's answer (or an uploaded file) is not XML we can read: malformed, truncated, or an
    encoding we cannot decode. The message says where."""


class TallyRequestFailed(ProviderUnavailable):
    """Tally answered with STATUS 0 instead of data or an import result: the company named is
    not open, or a request it cannot evaluate. `words` are Tally's."""

    def __init__(self, words: str):
        super().__init__(f"Tally refused the request: {words}")
        self.words = words
        # TallyPrime answers only with a company loaded; asking for one that is not open (or
        # closed mid-sync, or switched to another) fails here instead of mixing two books.
        self.company_not_open = "company" in words.lower()


# -- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerNames:
    """The ledgers a company posts sales, GST and receipts to. Tally companies name them as they
    like; the connection's settings may override each (`sales_ledger`, `cgst_ledger`,
    `sgst_ledger`, `igst_ledger`, `bank_ledger`). A tax ledger name may hold `{rate}`, e.g.
    "Output CGST @{rate}%", for companies that keep one ledger per rate; the rate written
    there is the ledger's own (half the GST rate for CGST and SGST)."""

    sales: str = "Sales"
    cgst: str = "CGST"
    sgst: str = "SGST"
    igst: str = "IGST"
    bank: str = "Cash"
    # What each ledger name stands for on a voucher (`role`), kept: every entry asks, and a
    # company posts to a handful of ledgers.
    _roles: dict[str, str | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_settings(cls, settings: Mapping | None) -> LedgerNames:
        settings = settings or {}
        chosen = {
            name: str(settings[f"{name}_ledger"]).strip()
            for name in ("sales", "cgst", "sgst", "igst", "bank")
            if str(settings.get(f"{name}_ledger") or "").strip()
        }
        return cls(**chosen)

    def tax_ledger(self, head: str, rate: Decimal) -> str:
        return getattr(self, head).replace("{rate}", _plain_number(rate))

    def tax_head(self, ledger: str) -> str | None:
        """The GST head ("cgst", "sgst" or "igst") a ledger's name stands for, else None.
        Beyond the configured names, a ledger named like "Output CGST 9%" (or UTGST, which
        stands for SGST in a union territory) is recognised, as most companies name them so."""
        for head in ("cgst", "sgst", "igst"):
            if _ledger_pattern(getattr(self, head)).fullmatch(ledger.strip()):
                return head
        found = _GST_WORD.search(ledger.upper())
        if found:
            return {"UTGST": "sgst"}.get(found.group(1), found.group(1).lower())
        return None

    def is_sales(self, ledger: str) -> bool:
        lowered = ledger.strip().lower()
        return lowered == self.sales.lower() or lowered.startswith("sales")

    def role(self, ledger: str) -> str | None:
        """What a ledger other than the party's is on a sales voucher or credit note: a GST
        head ("cgst", "sgst" or "igst"), "sales", "rounding", or None (one Duebook cannot map)."""
        if ledger not in self._roles:
            if head := self.tax_head(ledger):
                self._roles[ledger] = head
            elif self.is_sales(ledger):
                self._roles[ledger] = "sales"
            elif "round" in ledger.lower():
                self._roles[ledger] = "rounding"
            else:
                self._roles[ledger] = None
        return self._roles[ledger]


_GST_WORD = re.compile(r"\b(CGST|SGST|UTGST|IGST)\b")


@cache
def _ledger_pattern(template: str) -> re.Pattern:
    """A ledger name template ("Output CGST @{rate}%") as a pattern matching its ledgers."""
    rate = r"\d+(?:\.\d+)?"
    return re.compile(re.escape(template).replace(re.escape("{rate}"), rate), re.IGNORECASE)


@dataclass
class VoucherContext:
    """What a voucher reader needs beyond the voucher: the ledgers read before it (name ->
    GUID), the bills known (invoice number -> sales voucher GUID; the reader adds to it), the
    company's state (GST code) and currency, and its ledger names."""

    ledger_guids: dict[str, str] = field(default_factory=dict)
    bill_guids: dict[str, str] = field(default_factory=dict)
    company_state: str | None = None
    currency: str = "INR"
    names: LedgerNames = field(default_factory=LedgerNames)


# -- small conversions -----------------------------------------------------------------------


def remote_guid(key: str) -> str:
    """The REMOTEID and GUID we give the voucher or ledger written for our stable key."""
    return str(uuid.uuid5(_GUID_NAMESPACE, key))


def tally_date(day: date) -> str:
    return day.strftime("%Y%m%d")


def _parse_date(text: str | None) -> date | None:
    """Tally's YYYYMMDD (a voucher's DATE), or the "1-Apr-2025" a bill's due date is given as."""
    text = (text or "").strip()
    if len(text) == 8 and text.isdigit():
        # The common case, on every voucher: taken apart by hand, as strptime is slow.
        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            return None
    for pattern in ("%d-%b-%Y", "%d-%b-%y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


def _amount(text: str | None) -> Decimal:
    """Tally's amount text ("-118000.00", " 9000"), to 2 places. A foreign-currency amount
    ("$100 @ ₹ 83/$ = ₹ 8300") is refused: Duebook reads the company's base currency only."""
    cleaned = (text or "0").strip().replace(",", "")
    try:
        return Decimal(cleaned or "0").quantize(CENT, ROUND_HALF_UP)
    except InvalidOperation:
        raise ValueError(
            f"the amount {text!r} is not a plain amount in the base currency"
        ) from None


_LEADING_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d+)?)")


def _leading_number(text: str | None) -> Decimal | None:
    """The number a quantity or rate begins with: "10 Nos" -> 10, "1000.00/Nos" -> 1000.00."""
    found = _LEADING_NUMBER.match(text) if text else None
    return Decimal(found.group(1)) if found else None


def _plain_number(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _money(value: Decimal) -> str:
    return format(value.quantize(CENT, ROUND_HALF_UP), "f")


def _yes(text: str | None) -> bool:
    return (text or "").strip().lower() == "yes"


def _yes_no(flag: bool) -> str:
    return "Yes" if flag else "No"


_DAYS = re.compile(r"\s*(\d+)\s*(?:days?)?\s*", re.IGNORECASE)


@lru_cache(maxsize=256)  # every bill of a company says "30 Days" or one of a few others
def _days(period: str | None) -> int | None:
    found = _DAYS.fullmatch(period) if period else None
    return int(found.group(1)) if found else None


# -- reading: bytes to clean chunks ----------------------------------------------------------

# Character references XML 1.0 forbids (every control character but tab, newline and return):
# Tally writes `&#4;` before reserved names, and a raw control character can slip in from a
# narration typed in Tally. Either stops an XML parser dead, so they go before it sees them.
_BAD_REFERENCE = re.compile(
    rb"&#(?:0*(?:[0-8]|1[124-9]|2\d|3[01])|x0*(?:[0-8]|[bBcCeEfF]|1[0-9a-fA-F]));"
)
_BAD_CHARACTERS = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])
_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>")
# Entities are declared in a document type declaration, and only there: refusing it refuses
# entity expansion and external references (DTDs, entities) before the parser sees any.
_DOCUMENT_TYPE = re.compile(rb"<!(?:DOCTYPE|ENTITY)")
_DOCUMENT_TYPE_SPAN = len(b"<!DOCTYPE") - 1


def _encoding(head: bytes) -> tuple[str, int]:
    """The encoding of a document by its first bytes, and the length of its byte-order mark."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    # No mark: "<" followed by a zero byte is UTF-16 as Tally's older releases write it.
    if len(head) >= 2 and head[0] != 0 and head[1] == 0:
        return "utf-16-le", 0
    if len(head) >= 2 and head[0] == 0 and head[1] != 0:
        return "utf-16-be", 0
    return "utf-8", 0


def _clean_chunks(source: bytes | BinaryIO) -> Iterator[bytes]:
    """Tally's bytes as clean UTF-8, a chunk at a time so that memory stays flat: UTF-16
    transcoded, the XML declaration removed (its encoding no longer holds), forbidden control
    characters and their references dropped. UTF-8 stays bytes (the parser checks it is valid
    UTF-8, saying where it is not). A document type declaration is refused."""
    source = source if hasattr(source, "read") else io.BytesIO(source)
    head = source.read(_CHUNK)
    encoding, skip = _encoding(head)
    decoder = None if encoding == "utf-8" else codecs.getincrementaldecoder(encoding)()
    pending, carry, before = head[skip:], b"", b""
    declaration = True
    while True:
        raw = pending or source.read(_CHUNK)
        pending = b""
        final = not raw
        if decoder is not None:
            try:
                raw = decoder.decode(raw, final=final).encode(_TEXT_ENCODING)
            except UnicodeDecodeError as error:
                raise TallyXmlError(
                    f"Tally's XML is not valid {encoding.upper()} text "
                    f"(byte {error.start} of a chunk): {error.reason}"
                ) from None
        chunk = carry + raw
        # A reference cut at the chunk's end waits for the rest of it.
        cut = chunk.rfind(b"&")
        if not final and cut != -1 and b";" not in chunk[cut:]:
            chunk, carry = chunk[:cut], chunk[cut:]
        else:
            carry = b""
        if declaration and chunk.strip():
            chunk = _DECLARATION.sub(b"", chunk, count=1)
            declaration = False
        if b"&#" in chunk:
            chunk = _BAD_REFERENCE.sub(b"", chunk)
        chunk = chunk.translate(None, _BAD_CHARACTERS)
        window = before + chunk
        if b"<!" in window and _DOCUMENT_TYPE.search(window):
            raise TallyXmlError(
                "Tally's XML holds a document type declaration (<!DOCTYPE or <!ENTITY), refused "
                "for safety: Tally writes none, and entities are not expanded."
            )
        before = chunk[-_DOCUMENT_TYPE_SPAN:]
        if chunk:
            yield chunk
        if final:
            return


# -- reading: clean chunks to elements -------------------------------------------------------

# Besides the records asked for, what the reader watches for: Tally's STATUS (0: the request
# failed) in the HEADER, the words it gives then (LINEERROR, or a DATA holding only text), and
# the ENVELOPE's end; the HEADER and a hand export's TALLYMESSAGE wrappers end early and often,
# so what has been read is dropped from the tree as it goes.
_ANSWER_TAGS = ("ENVELOPE", "HEADER", "STATUS", "DATA", "LINEERROR", "TALLYMESSAGE")
_POSITION_SUFFIX = re.compile(r",? line \d+, column \d+$")


def _parser(tags: frozenset[str]) -> etree.XMLPullParser:
    """libxml2's push parser (lxml), handing Python only the ends of elements named in `tags`
    or watched for; a chunk's elements are built in C, without a Python call per element."""
    return etree.XMLPullParser(
        events=("end",),
        tag=(*tags, *_ANSWER_TAGS),
        # The chunks are UTF-8 whatever the document declared (its declaration is gone).
        encoding=_TEXT_ENCODING,
        # No DTD reaches the parser (_clean_chunks refuses one), so no entity is declared;
        # should one be, only an internal one could be expanded, within libxml2's limits, and
        # nothing is loaded, from disk or network. An undeclared entity is an error with its
        # line and column (with resolve_entities=False libxml2 reports it at line 0).
        resolve_entities="internal",
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _elements(source: bytes | BinaryIO, tags: frozenset[str]) -> Iterator:
    """Each complete element named in `tags`, wherever it sits in the document (a collection
    export's DATA/COLLECTION, a hand export's REQUESTDATA/TALLYMESSAGE), handed over before
    the next chunk is read. After each chunk every element already read is dropped from the
    tree (`_drop_read`), so that 20,000 vouchers take the memory of a chunk's worth. Raises
    TallyXmlError for malformed XML and TallyRequestFailed when Tally answered with an error."""
    parser = _parser(tags)
    root = None
    status = None
    words = []
    chunks = _clean_chunks(source)
    try:
        while True:
            chunk = next(chunks, None)
            if chunk is None:
                parser.close()
            else:
                parser.feed(chunk)
            for _, element in parser.read_events():
                tag = element.tag
                if root is None:
                    root = element.getroottree().getroot()
                if next(element.iterancestors(*tags), None) is not None:
                    if tag in tags:  # a record inside a record: both are handed over
                        yield element
                    continue
                text = element.text
                if tag in ("LINEERROR", "DATA") and text and text.strip():
                    words.append(text.strip())
                if tag in tags:
                    yield element
                elif tag == "STATUS" and _parent_tag(element) == "HEADER":
                    status = (text or "").strip()
                elif tag == "ENVELOPE" and status == "0":
                    raise TallyRequestFailed(" ".join(words) or "no reason given")
            if chunk is None:
                return
            if root is not None:
                _drop_read(root, tags)
    except etree.XMLSyntaxError as error:
        line, column = error.position
        raise TallyXmlError(
            f"Tally's XML is malformed or cut short at line {max(line, 1)}, column {column}: "
            f"{_POSITION_SUFFIX.sub('', error.msg or str(error))}"
        ) from None


def _parent_tag(element) -> str | None:
    parent = element.getparent()
    return None if parent is None else parent.tag


def _drop_read(root, tags: frozenset[str]) -> None:
    """Removes what has been read: the elements still open are the chain of last children from
    the root, so every child before the last is complete (and was handed over, or was not
    asked for). A record still open (named in `tags`) is left whole."""
    node = root
    while node.tag not in tags and len(node):
        if len(node) > 1:
            del node[:-1]
        node = node[-1]


def _texts(element) -> dict[str, str | None]:
    """An element's children by name in one pass (lxml makes a Python object per child it
    hands out, so each is touched once), each one's text as written: the first child of a name
    wins, as `find` would give it. A repeated part (TAG.LIST) is there by name too, so that
    asking whether a record has one costs nothing."""
    return {child.tag: child.text for child in reversed(element)}


def _text(texts: dict[str, str | None], tag: str) -> str:
    text = texts.get(tag)
    return text.strip() if text else ""


# -- reading: companies and ledgers ----------------------------------------------------------


def read_companies(source: bytes | BinaryIO) -> list[Book]:
    """The companies Tally has loaded (a company must be loaded for Tally to answer at all)."""
    books = []
    for element in _elements(source, frozenset({"COMPANY"})):
        texts = _texts(element)
        name = _text(texts, "NAME") or element.get("NAME", "").strip()
        if not name:  # an import answer's CMPINFO counts companies in a COMPANY element
            continue
        state = _text(texts, "STATENAME")
        books.append(
            Book(
                remote_id=_text(texts, "GUID") or name,
                name=name,
                country="IN" if _text(texts, "COUNTRYNAME").lower() in ("", "india") else None,
                currency=_text(texts, "BASECURRENCYNAME") or "INR",
                region=region_code(state) if state else None,
                books_from=_parse_date(texts.get("BOOKSFROM")),
            )
        )
    return books


class Reading:
    """One pass over an answer: iterate it once for its records and Unreadables; then `marker`
    is the highest ALTERID seen (None when nothing carried one)."""

    def __init__(self, items: Iterator):
        self._items = items
        self._highest: int | None = None

    @property
    def marker(self) -> str | None:
        return None if self._highest is None else str(self._highest)

    def __iter__(self):
        for alter_id, item in self._items:
            if alter_id is not None and (self._highest is None or alter_id > self._highest):
                self._highest = alter_id
            yield item


def _alter_id(texts: dict[str, str | None]) -> int | None:
    text = _text(texts, "ALTERID")
    return int(text) if text.isdigit() else None


def read_ledgers(
    source: bytes | BinaryIO, *, groups: frozenset[str] | None = frozenset({SUNDRY_DEBTORS})
) -> Reading:
    """Ledgers -> BookContact (remote id: GUID; version: ALTERID). A hand export holds every
    ledger: one whose group is not in `groups` is skipped with the reason. `groups=None` takes
    every ledger, for the answer to `debtors_request` (Tally already chose Sundry Debtors and
    its sub-groups)."""
    return Reading(_ledgers(source, groups))


def _ledgers(source, groups):
    lowered = None if groups is None else {group.lower() for group in groups}
    for element in _elements(source, frozenset({"LEDGER"})):
        texts = _texts(element)
        alter_id = _alter_id(texts)
        yield alter_id, _ledger(element, texts, alter_id, lowered)


def _ledger(element, texts, alter_id: int | None, groups) -> BookContact | Unreadable:
    name = (element.get("NAME") or _text(texts, "NAME")).strip()
    guid = _text(texts, "GUID") or None
    parent = _text(texts, "PARENT")
    label = f"Ledger {name!r} (GUID {guid or 'none'})"
    if not name:
        return Unreadable(guid, f"{label}: it has no name.")
    if groups is not None and parent.lower() not in groups:
        return Unreadable(guid, f"{label}: it is under {parent or 'no group'!r}, not a debtor.")
    lines = [
        (node.text or "").strip() for node in element.iter("ADDRESS") if (node.text or "").strip()
    ]
    country = _text(texts, "COUNTRYNAME")
    tax_number = _text(texts, "PARTYGSTIN").replace(" ", "").upper() or None
    return BookContact(
        remote_id=guid,
        name=name,
        email=_text(texts, "EMAIL") or None,
        phone=_text(texts, "LEDGERMOBILE") or _text(texts, "LEDGERPHONE") or None,
        tax_number=tax_number,
        currency="INR",
        address=Address(
            line1=lines[0] if lines else None,
            line2=", ".join(lines[1:]) or None,
            region=_text(texts, "LEDSTATENAME") or _text(texts, "STATENAME") or None,
            postal_code=_text(texts, "PINCODE") or None,
            country="IN" if country.lower() in ("", "india") else None,
        ),
        version=str(alter_id) if alter_id is not None else None,
        deleted=_yes(texts.get("ISDELETED")),
        payment_days=_days(texts.get("BILLCREDITPERIOD")),
    )


# -- reading: vouchers -----------------------------------------------------------------------


def read_vouchers(source: bytes | BinaryIO, context: VoucherContext) -> Reading:
    """Sales vouchers -> BookInvoice, receipts -> one BookPayment per bill they settle, credit
    notes -> BookCreditNote; anything else, or anything unmappable -> Unreadable naming the
    voucher by number, date and GUID."""
    return Reading(_vouchers(source, context))


def _vouchers(source, context: VoucherContext):
    for element in _elements(source, frozenset({"VOUCHER"})):
        voucher = _Voucher(element)
        alter_id = _alter_id(voucher.texts)
        for item in _voucher(voucher, context, alter_id):
            yield alter_id, item


class _Voucher:
    """A voucher's children read once (`_texts`), what names it, and its entries."""

    __slots__ = ("element", "texts", "number", "guid", "day")

    def __init__(self, element):
        self.element = element
        self.texts = _texts(element)
        self.number = _text(self.texts, "VOUCHERNUMBER")
        self.guid = _text(self.texts, "GUID") or element.get("REMOTEID") or None
        self.day = _parse_date(self.texts.get("DATE"))

    def text(self, tag: str) -> str:
        return _text(self.texts, tag)

    def entries(self, *tags: str) -> list[_Entry]:
        return [
            _entry(node)
            for tag in tags
            if tag in self.texts
            for node in self.element.iterchildren(tag)
        ]

    @property
    def label(self) -> str:
        """How an Unreadable names the voucher: by number, date and GUID."""
        day = self.day.strftime("%d-%b-%Y") if self.day else "no date"
        return f"Voucher {self.number or '(no number)'} of {day} (GUID {self.guid or 'none'})"


def _voucher_kind(texts: dict[str, str | None], voucher_type: str) -> str | None:
    """Sales, Receipt or Credit Note; a company's own type ("Sales - Export") is told by the
    base type Tally exports with it, else by its name (`voucher_type`: VCHTYPE)."""
    for name in (texts.get("VOUCHERTYPEORIGNAME"), texts.get("VOUCHERTYPENAME"), voucher_type):
        if name:
            lowered = name.strip().lower()
            for kind, prefix in _KIND_PREFIXES:
                if lowered.startswith(prefix):
                    return kind
    return None


_KIND_PREFIXES = tuple((kind, kind.lower()) for kind in VOUCHER_KINDS)


@dataclass(slots=True)
class _Entry:
    """A ledger or inventory entry: what every entry is read for (the party's, a tax's or a
    line's). What only a line needs is read from `node` and `texts` when it becomes one
    (`_gst_rate`, `_line`)."""

    ledger: str
    amount: Decimal  # Tally's sign: a debit is negative
    bills: list[tuple[str, str, Decimal, str | None]]  # (name, type, amount, credit period)
    node: etree._Element
    texts: dict[str, str | None]


def _entry(node) -> _Entry:
    texts = _texts(node)
    bills = []
    if "BILLALLOCATIONS.LIST" in texts:
        for bill in node.iterchildren("BILLALLOCATIONS.LIST"):
            bill_texts = _texts(bill)
            bills.append(
                (
                    _text(bill_texts, "NAME"),
                    _text(bill_texts, "BILLTYPE"),
                    _amount(bill_texts.get("AMOUNT")),
                    _text(bill_texts, "BILLCREDITPERIOD") or None,
                )
            )
    return _Entry(
        ledger=_text(texts, "LEDGERNAME") or _text(texts, "STOCKITEMNAME"),
        amount=_amount(texts.get("AMOUNT")),
        bills=bills,
        node=node,
        texts=texts,
    )


def _gst_rate(entry: _Entry) -> Decimal | None:
    """The line's own GST rate (RATEDETAILS), if Tally gives one."""
    if "RATEDETAILS.LIST" not in entry.texts:
        return None
    rates = {}
    for detail in entry.node.iterchildren("RATEDETAILS.LIST"):
        texts = _texts(detail)
        rates[_text(texts, "GSTRATEDUTYHEAD")] = _leading_number(texts.get("GSTRATE"))
    # TallyPrime lists every head on every line (Integrated 18, Central 9, State 9 alike),
    # whichever is charged: the Integrated rate is the whole GST rate, else Central + State.
    gst_rate = rates.get("Integrated Tax")
    if gst_rate is None and None not in (rates.get("Central Tax"), rates.get("State Tax")):
        gst_rate = rates["Central Tax"] + rates["State Tax"]
    return gst_rate


def _line(entry: _Entry, net: Decimal, rate: Decimal, tax: Decimal) -> BookLine:
    texts = entry.texts
    described = (
        [
            (text.text or "").strip()
            for text in entry.node.iter("BASICUSERDESCRIPTION")
            if (text.text or "").strip()
        ]
        if "BASICUSERDESCRIPTION.LIST" in texts
        else ()
    )
    price = _leading_number(texts.get("RATE"))
    return BookLine(
        description=" ".join(described) or entry.ledger,
        quantity=_leading_number(texts.get("BILLEDQTY") or texts.get("ACTUALQTY")) or ONE,
        unit_price=price if price is not None else net,
        net_amount=net,
        tax_rate=rate,
        tax_amount=tax,
        hsn_sac=_text(texts, "GSTHSNNAME") or None,
    )


def _voucher(voucher: _Voucher, context: VoucherContext, alter_id: int | None):
    kind = _voucher_kind(voucher.texts, voucher.element.get("VCHTYPE", ""))
    guid = voucher.guid
    if kind is None:
        type_name = voucher.text("VOUCHERTYPENAME") or voucher.element.get("VCHTYPE", "")
        yield Unreadable(
            guid, f"{voucher.label}: a {type_name or 'untyped'} voucher is not synced."
        )
        return
    if not guid or not voucher.number or voucher.day is None:
        yield Unreadable(guid, f"{voucher.label}: it has no GUID, number or date.")
        return
    try:
        if kind == "Receipt":
            yield from _receipt(voucher, context, alter_id)
        else:
            yield _document(voucher, context, kind, alter_id)
    except _Unmappable as reason:
        yield Unreadable(guid, f"{voucher.label}: {reason}")
    except ValueError as error:
        yield Unreadable(guid, f"{voucher.label}: {error}")


class _Unmappable(Exception):
    pass


def _party(voucher: _Voucher, context: VoucherContext) -> tuple[str, str]:
    party = voucher.text("PARTYLEDGERNAME")
    if not party:
        raise _Unmappable("it names no party ledger.")
    remote = voucher.text("PARTYLEDGERGUID") or context.ledger_guids.get(party)
    if not remote:
        raise _Unmappable(f"its party ledger {party!r} is not among the Sundry Debtors read.")
    return party, remote


_LEDGER_ENTRIES = ("ALLLEDGERENTRIES.LIST", "LEDGERENTRIES.LIST")
_INVENTORY_ENTRIES = ("ALLINVENTORYENTRIES.LIST", "INVENTORYENTRIES.LIST")


def _document(voucher: _Voucher, context: VoucherContext, kind: str, alter_id: int | None):
    party, contact = _party(voucher, context)
    names = context.names
    ledger_entries = voucher.entries(*_LEDGER_ENTRIES)
    inventory = voucher.entries(*_INVENTORY_ENTRIES)
    taxes = {"cgst": Decimal(0), "sgst": Decimal(0), "igst": Decimal(0)}
    sales, party_entries, rounding = [], [], Decimal(0)
    for entry in ledger_entries:
        if entry.ledger == party:
            party_entries.append(entry)
            continue
        role = names.role(entry.ledger)
        if role == "sales":
            sales.append(entry)
        elif role == "rounding":
            # Sales credit the round-off, credit notes debit it; either way it adds to the total.
            rounding += entry.amount if kind == "Sales" else -entry.amount
        elif role:
            taxes[role] += abs(entry.amount)
        else:
            raise _Unmappable(
                f"the ledger {entry.ledger!r} is neither the party, a sales ledger nor a GST "
                "ledger (set the ledger names in the connection's settings)."
            )
    if not party_entries:
        raise _Unmappable(f"it has no entry for its party ledger {party!r}.")
    line_entries = inventory or sales
    if not line_entries:
        raise _Unmappable("it has no sales ledger or stock item lines.")
    tax_total = taxes["cgst"] + taxes["sgst"] + taxes["igst"]
    if taxes["igst"] and (taxes["cgst"] or taxes["sgst"]):
        raise _Unmappable("it charges both IGST and CGST/SGST.")
    place = _place_of_supply(voucher, context, tax_total, taxes["igst"] > 0)
    lines = _lines(line_entries, tax_total)
    subtotal = sum((line.net_amount for line in lines), Decimal(0))
    total = abs(sum((entry.amount for entry in party_entries), Decimal(0)))
    if subtotal + tax_total + rounding != total:
        raise _Unmappable(
            f"its lines ({_money(subtotal)}) and GST ({_money(tax_total)}) do not add up to "
            f"the party's amount ({_money(total)})."
        )
    state = "open"
    if _yes(voucher.text("ISCANCELLED")):
        state = "void"
    elif _yes(voucher.text("ISOPTIONAL")):
        state = "draft"
    bills = [bill for entry in party_entries for bill in entry.bills]
    guid, number, day = voucher.guid, voucher.number, voucher.day
    common = {
        "remote_id": guid,
        "number": number,
        "contact_remote_id": contact,
        "issue_date": day,
        "currency": context.currency,
        "state": state,
        "lines": tuple(lines),
        "subtotal": subtotal,
        "tax_total": tax_total,
        "total": total,
        "version": str(alter_id) if alter_id is not None else None,
        "deleted": _yes(voucher.text("ISDELETED")),
    }
    if kind == "Credit Note":
        against = [name for name, bill_type, _, _ in bills if bill_type.lower() == "agst ref"]
        invoice = context.bill_guids.get(against[0]) if len(against) == 1 else None
        if len(against) == 1 and invoice is None:
            raise _Unmappable(f"it is set against the bill {against[0]!r}, which is unknown.")
        return BookCreditNote(
            **common, invoice_remote_id=invoice, reason=voucher.text("NARRATION") or None
        )
    context.bill_guids[number] = guid
    return BookInvoice(
        **common,
        due_date=_due_date(day, bills),
        # Payments come as receipts; what is still owed is the engine's sum, not Tally's.
        amount_due=Decimal(0) if state == "void" else total,
        place_of_supply=place,
        reference=voucher.text("REFERENCE") or None,
    )


# A voucher's place of supply is a state's name; a company's vouchers name a few states.
_region = lru_cache(maxsize=256)(region_code)


def _place_of_supply(voucher, context, tax_total: Decimal, inter_state: bool) -> str | None:
    named = voucher.text("PLACEOFSUPPLY")
    place = _region(named) if named else None
    gstin = voucher.text("PARTYGSTIN").upper()
    if place is None and len(gstin) >= 2:
        place = _region(gstin[:2])
    if tax_total and place is None:
        raise _Unmappable(
            "it charges GST but gives neither a place of supply nor the party's GSTIN."
        )
    crosses = place != context.company_state
    if tax_total and place and context.company_state and inter_state != crosses:
        kind = "IGST" if inter_state else "CGST/SGST"
        raise _Unmappable(
            f"it charges {kind} for a supply to {state_name(place) or place} from "
            f"{state_name(context.company_state) or context.company_state}."
        )
    return place


def _lines(entries: list[_Entry], tax_total: Decimal) -> list[BookLine]:
    """Lines with their share of the voucher's GST. A line's rate is its own (RATEDETAILS)
    when Tally gives it, else the voucher's; its tax is net x rate, the last line taking the
    rounding so the lines add up to what the GST ledgers hold."""
    nets = [abs(entry.amount) for entry in entries]
    subtotal = sum(nets, Decimal(0))
    voucher_rate = None  # worked out only for a line without a rate of its own
    rates, taxes = [], []
    for entry, net in zip(entries, nets, strict=True):
        rate = _gst_rate(entry)
        if rate is None:
            if voucher_rate is None:
                voucher_rate = (tax_total * 100 / subtotal).quantize(CENT) if subtotal else ZERO
            rate = voucher_rate
        rates.append(rate.normalize() if rate == rate.to_integral() else rate)
        taxes.append((net * rate / 100).quantize(CENT, ROUND_HALF_UP))
    if taxes:
        taxes[-1] += tax_total - sum(taxes, ZERO)
    return [
        _line(entry, net, rate, tax)
        for entry, net, rate, tax in zip(entries, nets, rates, taxes, strict=True)
    ]


def _due_date(day: date, bills) -> date | None:
    for _, bill_type, _, period in bills:
        if bill_type.lower() != "new ref" or not period:
            continue
        days = _days(period)
        if days is not None:
            return day + timedelta(days=days)
        return _parse_date(period)
    return None


def _receipt(voucher: _Voucher, context: VoucherContext, alter_id: int | None):
    party, contact = _party(voucher, context)
    party_entries = [entry for entry in voucher.entries(*_LEDGER_ENTRIES) if entry.ledger == party]
    bills = [bill for entry in party_entries for bill in entry.bills]
    if not bills:
        raise _Unmappable("it is not allocated bill-wise to any invoice.")
    guid, number = voucher.guid, voucher.number
    deleted = _yes(voucher.text("ISCANCELLED")) or _yes(voucher.text("ISDELETED"))
    for name, bill_type, amount, _ in bills:
        if bill_type.lower() != "agst ref":
            yield Unreadable(
                guid,
                f"{voucher.label}: {_money(abs(amount))} is a {bill_type or 'bill'} ({name!r}), "
                "not set against an invoice.",
            )
            continue
        invoice = context.bill_guids.get(name)
        if invoice is None:
            yield Unreadable(
                guid, f"{voucher.label}: it settles the bill {name!r}, which is unknown."
            )
            continue
        yield BookPayment(
            remote_id=f"{guid}/{name}",
            invoice_remote_id=invoice,
            contact_remote_id=contact,
            paid_on=voucher.day,
            amount=abs(amount),
            currency=context.currency,
            reference=number,
            version=str(alter_id) if alter_id is not None else None,
            deleted=deleted,
        )


# -- requests --------------------------------------------------------------------------------


def _export(
    collection: str,
    body: str,
    *,
    company: str | None,
    period: tuple[date, date] | None = None,
    formulae: Mapping[str, str] | None = None,
) -> bytes:
    variables = ["<SVEXPORTFORMAT>$$SysName:XML</SVEXPORTFORMAT>"]
    if company:
        variables.append(f"<SVCURRENTCOMPANY>{escape(company)}</SVCURRENTCOMPANY>")
    if period:
        variables.append(f"<SVFROMDATE>{tally_date(period[0])}</SVFROMDATE>")
        variables.append(f"<SVTODATE>{tally_date(period[1])}</SVTODATE>")
    systems = "".join(
        f'<SYSTEM TYPE="Formulae" NAME={quoteattr(name)}>{escape(expression)}</SYSTEM>'
        for name, expression in (formulae or {}).items()
    )
    return (
        "<ENVELOPE><HEADER><VERSION>1</VERSION><TALLYREQUEST>Export</TALLYREQUEST>"
        f"<TYPE>Collection</TYPE><ID>{collection}</ID></HEADER><BODY><DESC>"
        f"<STATICVARIABLES>{''.join(variables)}</STATICVARIABLES><TDL><TDLMESSAGE>"
        f'<COLLECTION NAME="{collection}" ISMODIFY="No">{body}</COLLECTION>{systems}'
        "</TDLMESSAGE></TDL></DESC></BODY></ENVELOPE>"
    ).encode(_TEXT_ENCODING)


def companies_request() -> bytes:
    """The companies loaded in Tally (no company named: the list is Tally-wide)."""
    return _export(
        "DuebookCompanies",
        "<TYPE>Company</TYPE>"
        "<FETCH>Name,GUID,StateName,CountryName,BaseCurrencyName,BooksFrom</FETCH>",
        company=None,
    )


def debtors_request(company: str, *, after_alter_id: int | None = None) -> bytes:
    """Ledgers under Sundry Debtors (and its sub-groups), changed after `after_alter_id`."""
    formulae = {"DuebookAfterMarker": f"$AlterID > {after_alter_id}"} if after_alter_id else {}
    filters = f"<FILTER>{','.join(formulae)}</FILTER>" if formulae else ""
    return _export(
        "DuebookDebtors",
        "<TYPE>Ledger</TYPE><CHILDOF>$$GroupSundryDebtors</CHILDOF><BELONGSTO>Yes</BELONGSTO>"
        "<FETCH>Name,GUID,AlterID,Parent,Address,LedStateName,PinCode,CountryName,Email,"
        "LedgerMobile,LedgerPhone,PartyGSTIN,BillCreditPeriod</FETCH>" + filters,
        company=company,
        formulae=formulae,
    )


def ledger_request(company: str, *, guid: str | None = None, name: str | None = None) -> bytes:
    """The one ledger with this GUID (or name), wherever it sits: a push needs a party's name
    (vouchers name their party ledger by name) and a new ledger's GUID (Tally gives masters
    their own)."""
    if (guid is None) == (name is None):
        raise ValueError("ask for a ledger by its GUID or by its name")
    field, value = ("$Guid", guid) if guid is not None else ("$Name", name)
    formulae = {"DuebookOneLedger": f'$$IsEqual:{field}:"{value.replace(chr(34), "")}"'}
    return _export(
        "DuebookLedger",
        "<TYPE>Ledger</TYPE><FETCH>Name,GUID,AlterID,Parent,Address,LedStateName,PinCode,"
        "CountryName,Email,LedgerMobile,LedgerPhone,PartyGSTIN</FETCH>"
        f"<FILTER>{','.join(formulae)}</FILTER>",
        company=company,
        formulae=formulae,
    )


def bills_request(company: str, period: tuple[date, date]) -> bytes:
    """Every sales voucher's number and GUID in `period`: the bills a receipt or credit note
    is set against are named by number, and their invoices are known by GUID."""
    formulae = {"DuebookVoucherKinds": f"{VOUCHER_KINDS['Sales']}:$VoucherTypeName"}
    return _export(
        "DuebookBills",
        "<TYPE>Voucher</TYPE><FETCH>VoucherNumber,GUID,VoucherTypeName</FETCH>"
        f"<FILTER>{','.join(formulae)}</FILTER>",
        company=company,
        period=period,
        formulae=formulae,
    )


def read_bills(source: bytes | BinaryIO) -> dict[str, str]:
    """Sales voucher number -> GUID, from the answer to `bills_request` (or any voucher list)."""
    bills = {}
    for element in _elements(source, frozenset({"VOUCHER"})):
        texts = _texts(element)
        number, guid = _text(texts, "VOUCHERNUMBER"), _text(texts, "GUID")
        if number and guid and _voucher_kind(texts, element.get("VCHTYPE", "")) == "Sales":
            bills[number] = guid
    return bills


def vouchers_request(
    company: str,
    kinds: tuple[str, ...] = tuple(VOUCHER_KINDS),
    *,
    period: tuple[date, date] | None = None,
    after_alter_id: int | None = None,
) -> bytes:
    """Vouchers of `kinds` (Sales, Receipt, Credit Note) in `period` (Tally answers one period
    at a time, so a large day book is asked for month by month) changed after
    `after_alter_id`. The party ledger's GUID is computed by Tally (PARTYLEDGERGUID)."""
    unknown = set(kinds) - set(VOUCHER_KINDS)
    if unknown:
        raise ValueError(f"voucher kinds not synced: {sorted(unknown)}")
    formulae = {
        "DuebookVoucherKinds": " OR ".join(
            f"{VOUCHER_KINDS[kind]}:$VoucherTypeName" for kind in kinds
        )
    }
    if after_alter_id:
        formulae["DuebookAfterMarker"] = f"$AlterID > {after_alter_id}"
    return _voucher_collection(company, formulae, period)


def voucher_request(company: str, kind: str, number: str) -> bytes:
    """The voucher of `kind` numbered `number`, if Tally has it (find before push)."""
    quoted = number.replace('"', "")
    formulae = {
        "DuebookVoucherKinds": f"{VOUCHER_KINDS[kind]}:$VoucherTypeName",
        "DuebookVoucherNumber": f'$$IsEqual:$VoucherNumber:"{quoted}"',
    }
    return _voucher_collection(company, formulae, None)


def _voucher_collection(company, formulae, period) -> bytes:
    return _export(
        "DuebookVouchers",
        "<TYPE>Voucher</TYPE><FETCH>*,AllLedgerEntries,AllInventoryEntries</FETCH>"
        "<COMPUTE>PartyLedgerGuid : $Guid:Ledger:$PartyLedgerName</COMPUTE>"
        f"<FILTER>{','.join(formulae)}</FILTER>",
        company=company,
        period=period,
        formulae=formulae,
    )


# -- writing ---------------------------------------------------------------------------------


def import_envelope(messages: list[str], *, company: str | None, masters: bool = False) -> bytes:
    """An import request (or a file a person imports through Tally's Import > Transactions /
    Masters) holding the TALLYMESSAGE fragments the writers below give."""
    variables = (
        f"<STATICVARIABLES><SVCURRENTCOMPANY>{escape(company)}</SVCURRENTCOMPANY></STATICVARIABLES>"
        if company
        else ""
    )
    return (
        "<ENVELOPE><HEADER><VERSION>1</VERSION><TALLYREQUEST>Import</TALLYREQUEST>"
        f"<TYPE>Data</TYPE><ID>{'All Masters' if masters else 'Vouchers'}</ID></HEADER>"
        f"<BODY><DESC>{variables}</DESC><DATA>{''.join(messages)}</DATA></BODY></ENVELOPE>"
    ).encode(_TEXT_ENCODING)


def party_ledger_xml(contact: BookContact, *, key: str) -> str:
    """A party ledger under Sundry Debtors for a new client, with its credit period (ACTION
    Create; Tally alters a ledger of the same name instead of making a second, masters being
    unique by name)."""
    credit_days = contact.payment_days
    address = contact.address
    lines = [part for part in (address.line1, address.line2, address.city) if part]
    state = address.region
    if contact.tax_number and not state:
        state = state_name(contact.tax_number[:2]) or None
    parts = [
        f"<GUID>{remote_guid(key)}</GUID>",
        f"<PARENT>{SUNDRY_DEBTORS}</PARENT>",
        "<ISBILLWISEON>Yes</ISBILLWISEON>",
    ]
    if lines:
        parts.append(
            "<ADDRESS.LIST>"
            + "".join(f"<ADDRESS>{escape(line)}</ADDRESS>" for line in lines)
            + "</ADDRESS.LIST>"
        )
    optional = (
        ("LEDSTATENAME", state),
        ("PINCODE", address.postal_code),
        ("COUNTRYNAME", "India" if (address.country or "IN") == "IN" else address.country),
        ("EMAIL", contact.email),
        ("LEDGERMOBILE", contact.phone),
        ("GSTREGISTRATIONTYPE", "Regular" if contact.tax_number else "Unregistered"),
        ("PARTYGSTIN", contact.tax_number),
        ("BILLCREDITPERIOD", f"{credit_days} Days" if credit_days else None),
    )
    parts += [f"<{tag}>{escape(value)}</{tag}>" for tag, value in optional if value]
    return (
        f"<TALLYMESSAGE><LEDGER NAME={quoteattr(contact.name)} "
        f'REMOTEID="{remote_guid(key)}" ACTION="Create">'
        f"<NAME>{escape(contact.name)}</NAME>{''.join(parts)}</LEDGER></TALLYMESSAGE>"
    )


def _ledger_entry(ledger: str, amount: Decimal, *, inner: str = "", hsn: str | None = None) -> str:
    """`amount` in Tally's sign: a debit negative (and deemed positive)."""
    return (
        f"<ALLLEDGERENTRIES.LIST><LEDGERNAME>{escape(ledger)}</LEDGERNAME>"
        f"<ISDEEMEDPOSITIVE>{_yes_no(amount < 0)}</ISDEEMEDPOSITIVE>"
        + (f"<GSTHSNNAME>{escape(hsn)}</GSTHSNNAME>" if hsn else "")
        + f"<AMOUNT>{_money(amount)}</AMOUNT>{inner}</ALLLEDGERENTRIES.LIST>"
    )


def _bill(name: str, bill_type: str, amount: Decimal, days: int | None = None) -> str:
    period = f"<BILLCREDITPERIOD>{days} Days</BILLCREDITPERIOD>" if days is not None else ""
    return (
        f"<BILLALLOCATIONS.LIST><NAME>{escape(name)}</NAME><BILLTYPE>{bill_type}</BILLTYPE>"
        f"{period}<AMOUNT>{_money(amount)}</AMOUNT></BILLALLOCATIONS.LIST>"
    )


def _voucher_open(kind: str, key: str, action: str, day: date, number: str) -> str:
    if action not in ("Create", "Alter"):
        raise ValueError(f"an import action is Create or Alter, not {action!r}")
    guid = remote_guid(key)
    return (
        f'<TALLYMESSAGE><VOUCHER REMOTEID="{guid}" VCHTYPE="{kind}" ACTION="{action}">'
        f"<DATE>{tally_date(day)}</DATE><GUID>{guid}</GUID>"
        f"<VOUCHERTYPENAME>{kind}</VOUCHERTYPENAME>"
        f"<VOUCHERNUMBER>{escape(number)}</VOUCHERNUMBER>"
    )


def sales_voucher_xml(
    invoice: BookInvoice,
    *,
    party: str,
    key: str,
    names: LedgerNames,
    company_state: str,
    party_gstin: str | None = None,
    action: str = "Create",
) -> str:
    """A sales voucher for `invoice`, bill-wise (a New Ref named by the invoice number, with
    its credit period), one sales ledger entry per line, GST on the CGST and SGST ledgers
    when the place of supply is the company's state, else on IGST, one entry per ledger (per
    rate when the ledger names carry `{rate}`). `action` is Alter when `find` saw it in Tally."""
    days = (invoice.due_date - invoice.issue_date).days if invoice.due_date else None
    reference = f"<REFERENCE>{escape(invoice.reference)}</REFERENCE>" if invoice.reference else ""
    return _document_xml(
        "Sales",
        invoice,
        party=party,
        key=key,
        names=names,
        place=invoice.place_of_supply or (party_gstin[:2] if party_gstin else company_state),
        company_state=company_state,
        party_gstin=party_gstin,
        action=action,
        bill=_bill(invoice.number, "New Ref", -invoice.total, days),
        extra=reference
        + f"<ISOPTIONAL>{_yes_no(invoice.state == 'draft')}</ISOPTIONAL>"
        + f"<ISCANCELLED>{_yes_no(invoice.state == 'void')}</ISCANCELLED>",
    )


def credit_note_voucher_xml(
    note: BookCreditNote,
    *,
    party: str,
    invoice_number: str,
    key: str,
    names: LedgerNames,
    company_state: str,
    place_of_supply: str | None = None,
    party_gstin: str | None = None,
    action: str = "Create",
) -> str:
    """A credit note set against its invoice's bill (Agst Ref), the sales and GST ledgers
    debited as the invoice credited them, under the invoice's place of supply."""
    narration = f"<NARRATION>{escape(note.reason)}</NARRATION>" if note.reason else ""
    return _document_xml(
        "Credit Note",
        note,
        party=party,
        key=key,
        names=names,
        place=place_of_supply or (party_gstin[:2] if party_gstin else company_state),
        company_state=company_state,
        party_gstin=party_gstin,
        action=action,
        bill=_bill(invoice_number, "Agst Ref", note.total),
        extra=narration + f"<ISCANCELLED>{_yes_no(note.state == 'void')}</ISCANCELLED>",
    )


def _document_xml(
    kind, document, *, party, key, names, place, company_state, party_gstin, action, bill, extra
) -> str:
    """A sales voucher (party debited, sales and GST credited) or a credit note (the other
    way round): Tally's sign is negative for a debit."""
    sign = Decimal(1) if kind == "Sales" else Decimal(-1)
    intra = place == company_state
    entries = []
    taxes: dict[str, Decimal] = {}
    for line in document.lines:
        description = (
            "<BASICUSERDESCRIPTION.LIST>"
            f"<BASICUSERDESCRIPTION>{escape(line.description)}</BASICUSERDESCRIPTION>"
            "</BASICUSERDESCRIPTION.LIST>"
        )
        entries.append(
            _ledger_entry(
                names.sales,
                sign * line.net_amount,
                inner=description + _rate_details(line.tax_rate, intra),
                hsn=line.hsn_sac,
            )
        )
        heads = (("cgst", 2), ("sgst", 2)) if intra else (("igst", 1),)
        shares = _split(line.tax_amount, len(heads))
        for (head, parts), share in zip(heads, shares, strict=True):
            ledger = names.tax_ledger(head, line.tax_rate / parts)
            taxes[ledger] = taxes.get(ledger, Decimal(0)) + share
    party_entry = _ledger_entry(party, -sign * document.total, inner=bill)
    tax_entries = [
        _ledger_entry(ledger, sign * amount) for ledger, amount in taxes.items() if amount
    ]
    return (
        _voucher_open(kind, key, action, document.issue_date, document.number)
        + f"<PARTYLEDGERNAME>{escape(party)}</PARTYLEDGERNAME>"
        + (f"<PARTYGSTIN>{escape(party_gstin)}</PARTYGSTIN>" if party_gstin else "")
        + f"<PLACEOFSUPPLY>{escape(state_name(place) or place)}</PLACEOFSUPPLY>"
        + extra
        + party_entry
        + "".join(entries)
        + "".join(tax_entries)
        + "</VOUCHER></TALLYMESSAGE>"
    )


def _rate_details(rate: Decimal, intra: bool) -> str:
    heads = (
        (("Central Tax", rate / 2), ("State Tax", rate / 2))
        if intra
        else (("Integrated Tax", rate),)
    )
    return "".join(
        f"<RATEDETAILS.LIST><GSTRATEDUTYHEAD>{head}</GSTRATEDUTYHEAD>"
        f"<GSTRATE>{_plain_number(value)}</GSTRATE></RATEDETAILS.LIST>"
        for head, value in heads
    )


def _split(amount: Decimal, parts: int) -> list[Decimal]:
    """`amount` in `parts` shares of whole paise, the first taking the odd paisa."""
    share = (amount / parts).quantize(CENT, ROUND_HALF_UP)
    shares = [share] * parts
    shares[0] = amount - share * (parts - 1)
    return shares


def receipt_voucher_xml(
    payment: BookPayment,
    *,
    party: str,
    invoice_number: str,
    key: str,
    names: LedgerNames,
    action: str = "Create",
) -> str:
    """A receipt for `payment`: the bank (or cash) ledger debited, the party credited and the
    amount set against the invoice's bill (Agst Ref), so Tally's outstanding falls with it."""
    number = payment.reference or f"RCPT-{remote_guid(key)[:8]}"
    return (
        _voucher_open("Receipt", key, action, payment.paid_on, number)
        + f"<PARTYLEDGERNAME>{escape(party)}</PARTYLEDGERNAME>"
        + _ledger_entry(
            party, payment.amount, inner=_bill(invoice_number, "Agst Ref", payment.amount)
        )
        + _ledger_entry(names.bank, -payment.amount)
        + "</VOUCHER></TALLYMESSAGE>"
    )


# -- the import result -----------------------------------------------------------------------

_COUNTERS = (
    "CREATED",
    "ALTERED",
    "DELETED",
    "COMBINED",
    "IGNORED",
    "ERRORS",
    "CANCELLED",
    "EXCEPTIONS",
)


@dataclass(frozen=True)
class ImportOutcome:
    """What became of the one record an import carried. `ok`: Tally took it (`voucher_id`:
    its LASTVCHID, or LASTMID for a master); else `refusal` is Tally's words. `duplicate`: an
    Alter that Tally reports as created (a second voucher; the push must be checked by hand)."""

    ok: bool
    voucher_id: str | None
    refusal: str | None
    counters: dict[str, int]
    duplicate: bool = False


def read_import_result(source: bytes | BinaryIO, *, action: str = "Create") -> ImportOutcome:
    """Tally's answer to an import (TallyPrime's IMPORTRESULT in an ENVELOPE, or the older bare
    RESPONSE). Success is no ERRORS, no EXCEPTIONS, no LINEERROR and something created, altered
    or combined (providers.md §5.1); EXCEPTIONS with nothing created is a failure (TY-1)."""
    counters = dict.fromkeys(_COUNTERS, 0)
    last = {"LASTVCHID": None, "LASTMID": None}
    errors: list[str] = []
    seen = False
    for element in _elements(source, frozenset({*_COUNTERS, *last, "LINEERROR"})):
        text = (element.text or "").strip()
        if element.tag == "LINEERROR":
            errors.append(text)
        elif element.tag in last:
            last[element.tag] = text if text not in ("", "0") else None
        else:
            seen = True
            counters[element.tag] = int(text) if text.lstrip("-").isdigit() else 0
    if not seen and not errors:
        raise TallyXmlError("Tally's answer to the import holds no import result.")
    done = counters["CREATED"] + counters["ALTERED"] + counters["COMBINED"]
    voucher_id = last["LASTVCHID"] or last["LASTMID"]
    if errors or counters["ERRORS"] or counters["EXCEPTIONS"] or not done:
        if errors:
            words = " ".join(errors)
        elif counters["EXCEPTIONS"]:
            words = (
                f"Tally raised {counters['EXCEPTIONS']} exception(s) and created nothing; "
                "the voucher was not imported."
            )
        elif counters["ERRORS"]:
            words = f"Tally reported {counters['ERRORS']} error(s) without saying which."
        else:
            words = "Tally created, altered and combined nothing."
        return ImportOutcome(False, voucher_id, words, counters)
    duplicate = action == "Alter" and counters["CREATED"] > 0
    return ImportOutcome(True, voucher_id, None, counters, duplicate)
