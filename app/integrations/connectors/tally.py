"""TallyPrime as a set of books for the sync engine, reached in one of two ways:

- **through the agent** the workspace runs on the Tally computer (agent_relay): every call is an
  XML request (tally_xml) posted to the relay and answered by Tally through the agent;
- **from files** a person exported from Tally and uploaded (a ledgers export and a day book):
  the same readers, the same mapping and the same links, read-only (what goes to Tally then
  goes as an import file the person downloads; see app.sync.tally_files).

The books are one Tally company, known by its GUID. Every request names the company by name
(SVCURRENTCOMPANY): Tally answers only for a company it has loaded, so a company closed or
switched mid-sync fails the request instead of mixing two companies' books; and each run first
checks that the company loaded under that name is the one chosen (same GUID).

Paging: customers (ledgers under Sundry Debtors) come in one answer. Vouchers are asked for a
period at a time, so Tally is never asked for the whole day book at once: a month per page on a
full pass, a financial year per page on an incremental one (which asks only for vouchers whose
AlterID is above the marker, so its pages are small). The cursor is the start of the next
period and the highest AlterID seen so far in the pass ("20250401|1234"): the pass's marker is
that running highest, whatever order the months' AlterIDs come in.

Receipts and credit notes name the bill they settle by the invoice's number; the number -> GUID
map of sales vouchers is read once per run when a page needs a bill it does not know.

Pushing: a new customer becomes a party ledger (Tally gives it its own GUID, read back by
name); an invoice a sales voucher, a payment a receipt against the invoice's bill, a credit
note a credit note against it; each voucher carries a GUID and REMOTEID derived from our
stable key, so a retry alters the same voucher instead of creating a second. A push sends one
record per import: Tally's counters do not say which of several failed."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from app.core.handover import redis_connection
from app.core.storage import storage_for
from app.integrations import agent_relay
from app.integrations.connectors import Field
from app.integrations.connectors.accounting import (
    AccountingConnector,
    Book,
    BookContact,
    BookCreditNote,
    BookInvoice,
    BookPayment,
    BooksOffline,
    Page,
    ProviderUnavailable,
    RecordRefused,
    Unreadable,
)
from app.integrations.connectors.tally_xml import (
    LedgerNames,
    VoucherContext,
    bills_request,
    companies_request,
    credit_note_voucher_xml,
    debtors_request,
    import_envelope,
    ledger_request,
    party_ledger_xml,
    read_bills,
    read_companies,
    read_import_result,
    read_ledgers,
    read_vouchers,
    receipt_voucher_xml,
    remote_guid,
    sales_voucher_xml,
    voucher_request,
    vouchers_request,
)

# The voucher types each entity is read from.
ENTITY_KINDS = {"invoice": "Sales", "credit_note": "Credit Note", "payment": "Receipt"}
# An agent reports its health every minute; one not heard from for this long is not running.
AGENT_SILENT_AFTER = timedelta(minutes=3)
# Records per page when reading an uploaded file.
FILE_PAGE = 500


def financial_year_start(day: date) -> date:
    """India's financial year begins on 1 April."""
    return date(day.year - (day.month < 4), 4, 1)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def _cursor(start: date, highest: int | None) -> str:
    return f"{start:%Y%m%d}|{highest or 0}"


def _read_cursor(cursor: str | None) -> tuple[date | None, int]:
    if not cursor:
        return None, 0
    start, _, highest = cursor.partition("|")
    return date(int(start[:4]), int(start[4:6]), int(start[6:8])), int(highest or 0)


class TallyConnector(AccountingConnector):
    provider = "tally"
    title = "Tally"
    description = (
        "Keeps TallyPrime and Duebook in step through a small agent on the Tally computer, or "
        "through XML files exported and imported by hand."
    )
    uses_oauth = False
    # The agent passes one request at a time to Tally on the office desktop: no rate limit to
    # pace under, and nothing to fetch ahead in parallel with it.
    per_minute = 0
    links_by_name = True
    fields = (
        Field("sales_ledger", "Sales ledger", required=False, placeholder="Sales"),
        Field("cgst_ledger", "CGST ledger", required=False, placeholder="CGST"),
        Field("sgst_ledger", "SGST ledger", required=False, placeholder="SGST"),
        Field("igst_ledger", "IGST ledger", required=False, placeholder="IGST"),
        Field(
            "bank_ledger",
            "Ledger receipts go to",
            required=False,
            placeholder="Cash",
            help="The bank or cash ledger that payments recorded in Duebook are received into.",
        ),
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.names = LedgerNames.from_settings(self.settings)
        self.answer_timeout = float(self.config.get("TALLY_ANSWER_SECONDS", 120))
        # A run reading an uploaded file: {"keys": [storage keys], "names": [file names]}.
        self.upload = self.settings.get("upload")
        self._lock = threading.RLock()
        self._company: Book | None = None
        self._bills: dict[str, str] | None = None
        self._ledgers: dict[str, BookContact] = {}
        self._file: dict[str, list] | None = None
        self._agent_answered = False
        # Taken now, in the app's context: a page fetcher's thread calls Tally too.
        self._redis = redis_connection() if self.upload is None else None

    # -- what the engine asks first ------------------------------------------------------------

    @classmethod
    def reachable(cls, settings: dict) -> str | None:
        agent = settings.get("agent")
        if not agent:
            return "No agent is paired: pair one on the Tally page, or exchange files by hand."
        return None

    @property
    def can_push(self) -> bool:
        return self.upload is None

    @property
    def complete(self) -> bool:
        return self.upload is None

    def test_connection(self) -> str:
        return "Connected through the agent on the Tally computer; the next sync checks it."

    # -- the relay ------------------------------------------------------------------------------

    def ask(self, request: bytes) -> bytes:
        """Tally's answer to `request`, through the agent."""
        if self.upload is not None:
            raise ProviderUnavailable("This run reads an uploaded file; Tally is not asked.")
        agent = self.settings.get("agent") or {}
        seen = agent.get("seen_at")
        if not agent:
            raise BooksOffline("no agent is paired with this workspace")
        # Checked at the first request only: the settings are those of the run's start, and
        # from then on each answer shows the agent running (a run may last longer than this).
        if (
            not self._agent_answered
            and seen
            and datetime.now(UTC) - datetime.fromisoformat(seen) > AGENT_SILENT_AFTER
        ):
            raise BooksOffline(
                f"the agent on {agent.get('machine') or 'the Tally computer'} was last heard "
                f"from at {datetime.fromisoformat(seen):%Y-%m-%d %H:%M} UTC: is it running?"
            )
        tenant_id, connection_id = self.relay
        work_id = agent_relay.post_work(tenant_id, connection_id, request, redis=self._redis)
        answer = agent_relay.wait_answer(
            tenant_id, connection_id, work_id, self.answer_timeout, redis=self._redis
        )
        if answer is None:
            raise BooksOffline(
                f"the agent did not answer within {self.answer_timeout:.0f} seconds: is it "
                "running on the Tally computer?"
            )
        self._agent_answered = True
        if answer.startswith(b"<AGENTERROR>"):
            words = answer.decode("utf-8", "replace").removeprefix("<AGENTERROR>")
            raise BooksOffline(words.removesuffix("</AGENTERROR>"))
        return answer

    # -- the company ----------------------------------------------------------------------------

    def organisations(self, access: str, tokens) -> list[Book]:
        return read_companies(self.ask(companies_request()))

    def company(self, book: str) -> Book:
        """The chosen company, checked to be the one Tally has loaded under its name."""
        with self._lock:
            if self._company is not None:
                return self._company
            if self.upload is not None:
                self._company = self._settings_company(book)
                return self._company
            loaded = self.organisations("", None)
            found = next((company for company in loaded if company.remote_id == book), None)
            if found is None:
                name = self.settings.get("book_name") or book
                open_now = ", ".join(company.name for company in loaded) or "none"
                raise BooksOffline(
                    f"the company {name!r} is not open in Tally (open now: {open_now}). Open it "
                    "in Tally; nothing is read from another company."
                )
            self._company = found
            return found

    def _settings_company(self, book: str) -> Book:
        books_from = self.settings.get("book_from")
        return Book(
            remote_id=book,
            name=self.settings.get("book_name") or book,
            region=self.settings.get("book_region"),
            books_from=date.fromisoformat(books_from) if books_from else None,
        )

    def context(self, book: str) -> VoucherContext:
        """What a voucher reader needs, copied under the lock: a page fetcher's thread reads
        vouchers while the run's thread reads customers."""
        company = self.company(book)
        with self._lock:
            ledger_guids = {ledger.name: guid for guid, ledger in self._ledgers.items()}
            bills = dict(self._bills or {})
        return VoucherContext(
            ledger_guids=ledger_guids,
            bill_guids=bills,
            company_state=company.region or self.settings.get("book_region"),
            currency=company.currency or "INR",
            names=self.names,
        )

    def books_period(self, book: str) -> tuple[date, date]:
        """From the company's first day to the end of this financial year."""
        company = self.company(book)
        today = date.today()
        first = company.books_from or financial_year_start(today - timedelta(days=366))
        return first, date(financial_year_start(today).year + 1, 3, 31)

    def bills(self, book: str) -> dict[str, str]:
        """Every sales voucher's number -> GUID, read once per run."""
        with self._lock:
            if self._bills is None:
                self._bills = read_bills(
                    self.ask(bills_request(self.company(book).name, self.books_period(book)))
                )
            return self._bills

    # -- pulling --------------------------------------------------------------------------------

    def pull(self, access: str, book: str, entity: str, since, cursor) -> Page:
        if self.upload is not None:
            return self._pull_file(book, entity, cursor)
        company = self.company(book)
        after = int(since) if since else None
        if entity == "contact":
            reading = read_ledgers(
                self.ask(debtors_request(company.name, after_alter_id=after)), groups=None
            )
            records, unreadable = self._split(reading)
            with self._lock:
                self._ledgers.update((record.remote_id, record) for record in records)
            return Page(records, None, reading.marker or since, unreadable)
        start, highest = _read_cursor(cursor)
        first, last = self.books_period(book)
        start = start or first
        end = min(self._period_end(start, incremental=after is not None), last)
        request = vouchers_request(
            company.name, (ENTITY_KINDS[entity],), period=(start, end), after_alter_id=after
        )
        answer = self.ask(request)
        records, unreadable, marker = self._vouchers(book, answer)
        if marker is not None:
            highest = max(highest, int(marker))
        following = end + timedelta(days=1)
        next_cursor = _cursor(following, highest) if following <= last else None
        pass_marker = str(highest) if highest else since
        return Page(records, next_cursor, pass_marker, unreadable)

    @staticmethod
    def _period_end(start: date, incremental: bool) -> date:
        if incremental:
            return date(financial_year_start(start).year + 1, 3, 31)
        return _next_month(start) - timedelta(days=1)

    def _vouchers(self, book: str, answer: bytes):
        """Records of a voucher answer; when a receipt or credit note names a bill this run has
        not seen, the sales vouchers' bills are read and the answer read again."""
        context = self.context(book)
        reading = read_vouchers(answer, context)
        records, unreadable = self._split(reading)
        if self._bills is None and any("which is unknown" in u.reason for u in unreadable):
            self.bills(book)
            context = self.context(book)
            reading = read_vouchers(answer, context)
            records, unreadable = self._split(reading)
        with self._lock:
            if self._bills is not None:
                self._bills.update(context.bill_guids)
        return records, unreadable, reading.marker

    @staticmethod
    def _split(items: Iterable) -> tuple[list, list[Unreadable]]:
        records, unreadable = [], []
        for item in items:
            (unreadable if isinstance(item, Unreadable) else records).append(item)
        return records, unreadable

    def _pull_file(self, book: str, entity: str, cursor: str | None) -> Page:
        """A page of the uploaded files' records (read once, at the first page of the run)."""
        records = self._file_records(book)[entity]
        start = int(cursor or 0)
        end = start + FILE_PAGE
        page = records[start:end]
        return Page(
            [item for item in page if not isinstance(item, Unreadable)],
            str(end) if end < len(records) else None,
            None,
            [item for item in page if isinstance(item, Unreadable)],
        )

    def _file_records(self, book: str) -> dict[str, list]:
        with self._lock:
            if self._file is not None:
                return self._file
            storage = storage_for(self.config)
            keys = self.upload.get("keys") or []
            found: dict[str, list] = {entity: [] for entity in ("contact", *ENTITY_KINDS)}
            # Ledgers first (vouchers name their party by name), then every file's bills (a
            # receipt may come before its invoice), then the vouchers.
            for key in keys:
                with storage.open(key) as source:
                    for item in read_ledgers(source):
                        if isinstance(item, Unreadable) and "not a debtor" in item.reason:
                            continue  # a full ledger export holds banks, taxes, expenses too
                        found["contact"].append(item)
                        if isinstance(item, BookContact):
                            self._ledgers[item.remote_id] = item
            bills: dict[str, str] = {}
            for key in keys:
                with storage.open(key) as source:
                    bills.update(read_bills(source))
            self._bills = bills
            context = self.context(book)
            by_kind = {
                BookInvoice: "invoice",
                BookCreditNote: "credit_note",
                BookPayment: "payment",
            }
            for key in keys:
                with storage.open(key) as source:
                    for item in read_vouchers(source, context):
                        entity = by_kind.get(type(item), "invoice")
                        found[entity].append(item)
            self._file = found
            return found

    # -- finding and pushing --------------------------------------------------------------------

    def find(self, access: str, book: str, entity: str, number: str):
        company = self.company(book)
        if entity == "contact":
            return self._ledger(company, name=number)
        answer = self.ask(voucher_request(company.name, ENTITY_KINDS[entity], number))
        records, _, _ = self._vouchers(book, answer)
        return records[0] if records else None

    def _ledger(self, company: Book, *, guid=None, name=None) -> BookContact | None:
        with self._lock:
            known = self._ledgers.get(guid) if guid is not None else None
        if known is not None:
            return known
        reading = read_ledgers(
            self.ask(ledger_request(company.name, guid=guid, name=name)), groups=None
        )
        found = next((item for item in reading if isinstance(item, BookContact)), None)
        if found is not None:
            with self._lock:
                self._ledgers[found.remote_id] = found
        return found

    def _party(self, company: Book, guid: str) -> BookContact:
        party = self._ledger(company, guid=guid)
        if party is None:
            raise RecordRefused(
                "Its customer's ledger is no longer in Tally (deleted or merged there)."
            )
        return party

    def _import(self, company: Book, message: str, action: str, masters: bool = False):
        outcome = read_import_result(
            self.ask(import_envelope([message], company=company.name, masters=masters)),
            action=action,
        )
        if not outcome.ok:
            raise RecordRefused(f"Tally refused it: {outcome.refusal}")
        return outcome

    def push(self, access: str, book: str, entity: str, record, key: str):
        company = self.company(book)
        state = company.region or self.settings.get("book_region") or ""
        action = "Create" if record.remote_id is None else "Alter"
        if entity == "contact":
            return self._push_contact(company, record, key)
        if entity == "invoice":
            party = self._party(company, record.contact_remote_id)
            message = sales_voucher_xml(
                record,
                party=party.name,
                key=key,
                names=self.names,
                company_state=state,
                party_gstin=party.tax_number,
                action=action,
            )
            self._import(company, message, action)
            guid = record.remote_id or remote_guid(key)
            with self._lock:
                self.bills(book)[record.number] = guid
            return replace(record, remote_id=guid, version=None)
        bill = self._bill_number(book, record.invoice_remote_id)
        if entity == "credit_note":
            party = self._party(company, record.contact_remote_id)
            message = credit_note_voucher_xml(
                record,
                party=party.name,
                invoice_number=bill,
                key=key,
                names=self.names,
                company_state=state,
                party_gstin=party.tax_number,
                action=action,
            )
            self._import(company, message, action)
            return replace(record, remote_id=record.remote_id or remote_guid(key), version=None)
        party = self._party(company, record.contact_remote_id)
        message = receipt_voucher_xml(
            record, party=party.name, invoice_number=bill, key=key, names=self.names, action=action
        )
        self._import(company, message, action)
        receipt = record.remote_id.partition("/")[0] if record.remote_id else remote_guid(key)
        return replace(record, remote_id=f"{receipt}/{bill}", version=None)

    def _bill_number(self, book: str, invoice_guid: str | None) -> str:
        number = next(
            (number for number, guid in self.bills(book).items() if guid == invoice_guid), None
        )
        if number is None:
            raise RecordRefused("Its invoice is not in Tally (deleted there, or never sent).")
        return number

    def _push_contact(self, company: Book, record: BookContact, key: str) -> BookContact:
        """A new party ledger, or the linked one altered under the name Tally knows it by
        (Tally keys masters by name: a name changed in Duebook is not carried over)."""
        if record.remote_id is not None:
            current = self._party(company, record.remote_id)
            record = replace(record, name=current.name)
        self._import(
            company,
            party_ledger_xml(record, key=key),
            "Create" if record.remote_id is None else "Alter",
            masters=True,
        )
        with self._lock:
            self._ledgers.pop(record.remote_id or "", None)
        written = self._ledger(company, name=record.name)
        if written is None:
            raise RecordRefused(f"Tally took the ledger {record.name!r} but does not list it.")
        if written.remote_id is None:
            raise RecordRefused(f"Tally's ledger {record.name!r} has no GUID.")
        return written
