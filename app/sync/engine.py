"""One sync run: pull what changed in the books, push what changed in Duebook, entity by
entity (contacts, invoices, credit notes, payments), committing after every page and every
pushed record, so that a run killed at any moment resumes from its last committed page and
nothing is half-written.

Exactly once, both ways:
- pulled: a record of the books is linked once (`sync_links` unique on the remote id); an
  invoice whose number Duebook already has for the same client is linked, not created again;
- pushed: before creating a record in the books the connector looks for it under our number
  or reference (`find`), and every write carries an idempotency key stable across retries, so
  a crash between the provider's write and our link is found and linked by the next run.

A pulled record Duebook cannot accept is skipped with the reason in the run's problems, and
the rest of the page goes in (each record in its own savepoint). A page's new records (no link
yet: the first sync, a file) go in set-based: its new customers through the clients' own
`create_clients`, its new invoices with their lines by multi-row INSERTs (app.invoicing.bulk),
their audit entries and events in bulk; records already linked go one by one (their updates
and conflicts).

A page that fails (5xx, a timeout, a malformed answer) is retried with backoff, then fails the
run, whose next attempt starts at that page. A 429 is waited out; a long wait (or the day's
quota spent) pauses the run until the time the provider gave (`waiting`, resumed by the
sweeper). A refused token turns the connection into "needs reconnecting" and tells the admins,
once."""

from __future__ import annotations

import logging
import re
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import func, insert, inspect, select, update
from sqlalchemy.orm import Session, make_transient_to_detached

from app.audit.services import SOURCE_KEY, insert_audited
from app.clients.models import Client
from app.clients.services import client_context
from app.core.clock import local_date
from app.core.events import emit
from app.core.signals import announce_integration_lost
from app.extensions import db
from app.integrations.connectors.accounting import (
    BookContact,
    BookCreditNote,
    BookInvoice,
    BookPayment,
    BooksOffline,
    ProviderUnavailable,
    RecordRefused,
    TokenRevoked,
)
from app.integrations.models import IntegrationConnection
from app.invoicing.balance import outstanding
from app.invoicing.bulk import insert_invoices
from app.invoicing.credits import issue_credit_note
from app.invoicing.models import Invoice
from app.invoicing.services import InvoiceError
from app.payments import services as payments
from app.payments.models import Payment, PaymentAllocation
from app.settings.models import WorkspaceSettings
from app.sync import mapping, outgoing
from app.sync.books import Books, PageFetcher, WaitLonger
from app.sync.mapping import NotAccepted
from app.sync.models import (
    ACTIVE_RUN_STATUSES,
    SyncConflict,
    SyncLink,
    SyncMatch,
    SyncProblem,
    SyncRun,
    SyncState,
)
from app.sync.ownership import contact_owners
from app.sync.reconciliation import build_report
from tenants.binding import bound_tenant_id
from tenants.models import Tenant

log = logging.getLogger(__name__)

PULL_ORDER = ("contact", "invoice", "credit_note", "payment")
PUSH_ORDER = ("contact", "invoice", "credit_note", "payment")
# The run's counters a page adds to.
PAGE_COUNTERS = ("read", "created", "updated", "conflicts", "skipped")
# A problem list longer than this per run is cut (the counts still count every record).
PROBLEM_LIMIT = 1000
ENTITY_WORDS = {
    "contact": "customers",
    "invoice": "invoices",
    "credit_note": "credit notes",
    "payment": "payments",
}


def source_label(provider: str) -> str:
    return {
        "xero": "Xero",
        "quickbooks": "QuickBooks",
        "zoho_books": "Zoho Books",
        "tally": "Tally",
    }.get(provider, provider)


def _now() -> datetime:
    return datetime.now(UTC)


class Run:
    def __init__(self, session: Session, run: SyncRun, connection: IntegrationConnection):
        self.session = session
        self.run = run
        self.connection = connection
        # Kept as a plain number: the connection's row is expired by every page's commit, and
        # reading its id would load it again.
        self.connection_id = connection.id
        self.settings = dict(connection.settings or {})
        self.tenant = session.get(Tenant, connection_tenant_id(session))
        self.today = local_date(self.tenant.time_zone)
        self.title = source_label(connection.provider)
        self.books = Books(session, connection)
        self.calls_before = run.requests
        self.problems = session.scalar(
            select(func.count()).select_from(SyncProblem).where(SyncProblem.run_id == run.id)
        )
        # Pages the provider did not answer (left for the next run), in words.
        self.unfinished: list[str] = []
        self._client_context = None
        self._applying_review = False
        # The full pass being read: its new links are marked seen by it as they are written.
        self._seen_in_pass: int | None = None
        self.forget_page()

    # Bookkeeping -----------------------------------------------------------------------------

    def beat(self, stage: str | None = None) -> None:
        if stage:
            self.run.stage = stage
        self.run.heartbeat_at = _now()

    def commit(self) -> None:
        self.beat()
        self.run.requests = self.calls_before + self.books.calls
        self.session.commit()

    def problem(self, entity, direction, reason, remote_id=None, local_id=None, label=None):
        self.run.failed += 1
        if self.problems >= PROBLEM_LIMIT:
            return
        self.problems += 1
        self.session.add(
            SyncProblem(
                run_id=self.run.id,
                entity=entity,
                direction=direction,
                remote_id=remote_id,
                local_id=local_id,
                label=(label or "")[:191] or None,
                reason=reason,
            )
        )

    def link_of(self, entity: str, *, remote_id=None, local_id=None) -> SyncLink | None:
        if remote_id is not None and (entity, remote_id) in (self._page_links or {}):
            link = self._page_links[(entity, remote_id)]
            if link is not None and inspect(link).detached:
                self.session.add(link)  # written by `write_links` in this page
            return link
        query = select(SyncLink).where(
            SyncLink.connection_id == self.connection_id, SyncLink.entity == entity
        )
        if remote_id is not None:
            query = query.where(SyncLink.remote_id == remote_id)
        else:
            query = query.where(SyncLink.local_id == local_id)
        return self.session.scalar(query)

    def link(self, entity, local_id, record, origin: str, agreed: dict) -> SyncLink:
        link = self.new_link(entity, local_id, record, origin, agreed)
        # Written by the next flush: the savepoint's end, or the commit.
        self.session.add(link)
        return link

    def new_link(self, entity, local_id, record, origin: str, agreed: dict) -> SyncLink:
        """A link, known to the page's look-ups, not yet added to the session."""
        link = SyncLink(
            connection_id=self.connection_id,
            entity=entity,
            local_id=local_id,
            remote_id=record.remote_id,
            remote_version=record.version,
            origin=origin,
            agreed=agreed,
            books=mapping.books_facts(record),
            seen_in_run=self._seen_in_pass or (self.run.id if self.run.full else None),
        )
        if self._page_links is not None:
            self._page_links[(entity, record.remote_id)] = link
        return link

    def link_new_invoice(self, invoice: Invoice, record: BookInvoice) -> None:
        """The link of an invoice not flushed yet: added once the invoice has its id."""
        link = self.new_link("invoice", None, record, "books", mapping.book_invoice_values(record))
        self._unsettled.append((link, invoice))

    def settle(self) -> None:
        """The new invoices held back are written set-based (a multi-row INSERT per table,
        their audit entries in bulk: app.invoicing.bulk), then their links, with the ids they
        got."""
        if not self._unsettled:
            return
        insert_invoices(self.session, [invoice for _, invoice in self._unsettled])
        for link, invoice in self._unsettled:
            link.local_id = invoice.id
        self.write_links([link for link, _ in self._unsettled])
        self._unsettled = []

    def write_links(self, links: list[SyncLink]) -> None:
        """New links written set-based (COPY and one INSERT, as the invoices are: the ORM's
        multi-row INSERT of a page's links cost more than the invoices themselves). Each is
        left as a detached row with its id; `link_of` puts one back in the session when the
        page reads its record again (a change to it is then an UPDATE)."""
        for link, row in zip(links, insert_audited(self.session, SyncLink, links), strict=True):
            link.id = row.id
            make_transient_to_detached(link)

    # A page's look-ups, made at once ----------------------------------------------------------

    def read_page_ahead(self, entity: str, records) -> None:
        """What a page's records will look up, read in one query per kind instead of one or
        more per record (a page of 100 invoices at one call a second must go in within that
        second): their links and those of their customers and invoices, the linked clients and
        invoices (into the session, where `session.get` finds them), the invoices already
        numbered as theirs, and the customers left out at the review. Kept until the page is
        committed, or until a record is refused (its savepoint undone, the rest of the page
        asks the database again)."""
        wanted: dict[str, set[str]] = {}
        for record in records:
            wanted.setdefault(entity, set()).add(record.remote_id)
            for kind, name in (("contact", "contact_remote_id"), ("invoice", "invoice_remote_id")):
                if getattr(record, name, None):
                    wanted.setdefault(kind, set()).add(getattr(record, name))
        links: dict[tuple[str, str], SyncLink | None] = {
            (kind, remote_id): None for kind, ids in wanted.items() for remote_id in ids
        }
        for kind, ids in wanted.items():
            for link in self.session.scalars(
                select(SyncLink).where(
                    SyncLink.connection_id == self.connection_id,
                    SyncLink.entity == kind,
                    SyncLink.remote_id.in_(ids),
                )
            ):
                links[(kind, link.remote_id)] = link
        linked = {
            kind: [link.local_id for (of, _), link in links.items() if link and of == kind]
            for kind in ("contact", "invoice")
        }
        # Held here: the session keeps only weak references to what it loaded.
        self._page_objects = [*links.values()]
        if linked["contact"]:
            self._page_objects += self.session.scalars(
                select(Client).where(Client.id.in_(linked["contact"]))
            ).all()
        if linked["invoice"]:
            self._page_objects += self.session.scalars(
                select(Invoice).where(Invoice.id.in_(linked["invoice"]))
            ).all()
        if entity == "invoice":
            self._page_workspace = self.session.get(WorkspaceSettings, self.tenant.id)
            self._page_numbers = {}
            numbers = {record.number for record in records if record.number}
            for invoice in self.session.scalars(
                select(Invoice).where(Invoice.number.in_(numbers)).order_by(Invoice.id)
            ):
                self._page_numbers.setdefault(invoice.number, invoice)
        if entity == "contact":
            self._page_skipped = set(
                self.session.scalars(
                    select(SyncMatch.remote_id).where(
                        SyncMatch.connection_id == self.connection_id,
                        SyncMatch.remote_id.in_(wanted.get("contact", ())),
                        SyncMatch.decision == "skip",
                    )
                )
            )
        self._page_links = links

    def forget_page(self) -> None:
        self._page_links: dict[tuple[str, str], SyncLink | None] | None = None
        self._page_numbers: dict[str, Invoice] | None = None
        self._page_skipped: set[str] | None = None
        self._page_workspace: WorkspaceSettings | None = None
        self._page_objects: list = []
        # New invoices of the page and their links, until `settle` writes them.
        self._unsettled: list[tuple[SyncLink, Invoice]] = []

    def invoice_numbered(self, number: str) -> Invoice | None:
        if self._page_numbers is not None:
            return self._page_numbers.get(number)
        return self.session.scalar(select(Invoice).where(Invoice.number == number))

    def skipped_at_review(self, remote_id: str) -> bool:
        if self._page_skipped is not None:
            return remote_id in self._page_skipped
        skipped = self.session.scalar(
            select(SyncMatch.id).where(
                SyncMatch.connection_id == self.connection_id,
                SyncMatch.remote_id == remote_id,
                SyncMatch.decision == "skip",
            )
        )
        return skipped is not None

    def client_context(self):
        """The workspace's context for new clients, once per run (industries and members)."""
        if self._client_context is None:
            self._client_context = client_context(self.session, self.tenant)
        return self._client_context

    def key(self, entity: str, local_id: int) -> str:
        return record_key(self.tenant.id, self.connection_id, entity, local_id)

    # The run --------------------------------------------------------------------------------

    def execute(self) -> None:
        if not self.settings.get("matched_at"):
            self.propose_matches()
            return
        # The invoices' pages are fetched while the review's customers go in and the customers'
        # changes are read: the pass is then paced by the provider alone.
        invoices = self.fetch_ahead("invoice")
        try:
            self.apply_matches()
            self.pull("contact")
        except BaseException:
            if invoices is not None:
                invoices.close()
            raise
        self.pull("invoice", invoices)
        for entity in PULL_ORDER[2:]:
            self.pull(entity)
        for entity in PUSH_ORDER:
            self.push(entity)
        if self.run.full:
            build_report(self.session, self.connection, self.run)

    # First connection: the review of customers -----------------------------------------------

    def propose_matches(self) -> None:
        """Every customer of the books with the client it would be linked to (same tax id, else
        e-mail, else name) or "create"; nothing is written on either side until a person
        confirms (services.confirm_matches). This is the contacts' first pass (resumable like
        any, its change marker kept): the run after the review applies the decisions from what
        was read here and then asks only for what changed since."""
        state = self.state("contact")
        if state.pass_run_id is None:
            state.pass_run_id, state.cursor, state.pass_marker = self.run.id, None, None
            state.pass_full = True
        self.commit()
        clients = self.session.scalars(select(Client).where(Client.deleted_at.is_(None))).all()
        by_tax, by_email, by_name = {}, {}, {}
        for client in clients:
            values = mapping.client_values(self.session, client)
            if values["tax_number"]:
                by_tax.setdefault(values["tax_number"].upper(), client)
            if values["email"]:
                by_email.setdefault(values["email"], client)
            by_name.setdefault(_name_key(client.full_name), client)
            by_name.setdefault(_name_key(client.short_name), client)
        taken = set(
            self.session.scalars(
                select(SyncMatch.local_id).where(
                    SyncMatch.connection_id == self.connection_id, SyncMatch.local_id.is_not(None)
                )
            )
        )
        while True:
            self.beat("pull contact")
            page = self.books.call("pull", "contact", None, state.cursor)
            for unreadable in page.unreadable:
                self.run.read += 1
                self.problem("contact", "pull", unreadable.reason, remote_id=unreadable.remote_id)
            known = set(
                self.session.scalars(
                    select(SyncMatch.remote_id).where(
                        SyncMatch.connection_id == self.connection_id,
                        SyncMatch.remote_id.in_([r.remote_id for r in page.records]),
                    )
                )
            )
            # Written in one executemany per page, as plain rows: a thousand matches added as
            # objects cost the review's run most of its time in the unit of work's flush.
            matches = []
            for record in page.records:
                self.run.read += 1
                if record.deleted or record.remote_id in known:
                    continue
                values = mapping.contact_values(record)
                client, reason = None, None
                for index, key, label in (
                    (by_tax, (values["tax_number"] or "").upper(), "same tax number"),
                    (by_email, values["email"] or "", "same e-mail"),
                    (by_name, _name_key(values["name"] or ""), "same name"),
                ):
                    found = index.get(key) if key else None
                    if found is not None and found.id not in taken:
                        client, reason = found, label
                        break
                if client is not None:
                    taken.add(client.id)
                matches.append(
                    {
                        "connection_id": self.connection_id,
                        "remote_id": record.remote_id,
                        "remote_name": (values["name"] or "(no name)")[:191],
                        "remote_facts": mapping.contact_to_json(record),
                        "local_id": client.id if client else None,
                        "reason": reason,
                        "decision": "link" if client else "create",
                    }
                )
                known.add(record.remote_id)  # read twice in a page: one match
            if matches:
                self.session.execute(insert(SyncMatch), matches)
            if page.marker:
                state.pass_marker = page.marker
            state.cursor = page.next_cursor
            if page.next_cursor is None:
                state.marker = state.pass_marker or state.marker
                state.pass_run_id = state.cursor = None
                self.commit()
                break
            self.commit()
        self.run.status = "review"
        self.run.stage = "waiting for the review"

    def apply_matches(self) -> None:
        """The first run after the review: each customer read for it is linked or created as
        the person decided (from what was read then; the contacts' pass that follows asks only
        for changes since)."""
        # Read as plain rows: matches loaded as objects would be expired by each chunk's
        # commit and read back one by one.
        pending = self.session.execute(
            select(SyncMatch.id, SyncMatch.decision, SyncMatch.remote_facts)
            .where(SyncMatch.connection_id == self.connection_id, SyncMatch.applied.is_(False))
            .order_by(SyncMatch.id)
        ).all()
        if not pending:
            return
        self.beat("apply the review")
        self._applying_review = True
        for start in range(0, len(pending), 200):
            chunk = pending[start : start + 200]
            self.take_page(
                "contact",
                [
                    mapping.contact_from_json(match.remote_facts)
                    for match in chunk
                    if match.decision != "skip"
                ],
            )
            self.session.execute(
                update(SyncMatch)
                .where(SyncMatch.id.in_([match.id for match in chunk]))
                .values(applied=True)
                .execution_options(synchronize_session=False)
            )
            self.commit()
        self._applying_review = False
        self.commit()

    # Pulling --------------------------------------------------------------------------------

    def state(self, entity: str) -> SyncState:
        state = self.session.get(SyncState, (self.connection_id, entity))
        if state is None:
            state = SyncState(connection_id=self.connection_id, entity=entity)
            self.session.add(state)
            self.session.flush()
        return state

    def begin_pass(self, entity: str) -> SyncState:
        """The entity's pass: a new one, or the one in progress (resumed at its page)."""
        state = self.state(entity)
        if state.pass_run_id is None:
            state.pass_run_id = self.run.id
            state.cursor = None
            state.pass_marker = None
            state.pass_full = self.run.full or state.marker is None
        self.commit()
        return state

    def fetch_ahead(self, entity: str) -> PageFetcher | None:
        """A fetcher of the entity's pass (SYNC_FETCH_AHEAD pages ahead; 0: none)."""
        ahead = int(current_app.config.get("SYNC_FETCH_AHEAD", 200))
        if ahead <= 0:
            return None
        state = self.begin_pass(entity)
        since = None if state.pass_full else state.marker
        return PageFetcher(self.books, entity, since, state.cursor, ahead=ahead)

    def pull(self, entity: str, fetcher: PageFetcher | None = None) -> None:
        state = self.begin_pass(entity)
        # The pass's state as plain values: each page's commit expires the row, and reading it
        # back would cost a query a page.
        full, pass_run_id, cursor = state.pass_full, state.pass_run_id, state.cursor
        since = None if full else state.marker
        fetcher = fetcher or self.fetch_ahead(entity)
        self._seen_in_pass = pass_run_id if full else None
        try:
            while True:
                self.beat(f"pull {entity}")
                try:
                    page, fetcher = self.next_page(fetcher, entity, since, cursor)
                except BooksOffline:
                    raise
                except ProviderUnavailable as trouble:
                    self.page_failed(entity, "pull", trouble)
                    return
                for unreadable in page.unreadable:
                    self.run.read += 1
                    self.problem(entity, "pull", unreadable.reason, remote_id=unreadable.remote_id)
                self.take_page(entity, page.records)
                if full and page.records:
                    self.session.execute(
                        update(SyncLink)
                        .where(
                            SyncLink.connection_id == self.connection_id,
                            SyncLink.entity == entity,
                            SyncLink.remote_id.in_([r.remote_id for r in page.records]),
                            SyncLink.seen_in_run.is_distinct_from(pass_run_id),
                        )
                        .values(seen_in_run=pass_run_id)
                    )
                if page.marker:
                    state.pass_marker = page.marker
                state.cursor = cursor = page.next_cursor
                if cursor is None:
                    if full and self.books.connector.complete:
                        self.deleted_in_books(entity, pass_run_id)
                    state.marker = state.pass_marker or state.marker
                    state.pass_run_id = None
                    state.cursor = None
                    self.commit()
                    return
                self.commit()
        finally:
            self._seen_in_pass = None
            if fetcher is not None:
                fetcher.close()

    def next_page(self, fetcher: PageFetcher | None, entity: str, since, cursor):
        """(The page at `cursor`, the fetcher still in use.) A fetcher whose token the provider
        refused is dropped: this thread refreshes the token and fetches the rest itself."""
        if fetcher is not None:
            try:
                return fetcher.take(cursor), fetcher
            except (TokenRevoked, LookupError):
                fetcher.close()
        return self.books.call("pull", entity, since, cursor), None

    def take_page(self, entity: str, records) -> None:
        """A page of records of the books applied in one savepoint (two statements fewer per
        record than a savepoint each). When one is refused, the page is undone and applied
        again record by record, each in its own savepoint, so that the refused one is listed
        and the rest go in."""
        self.read_page_ahead(entity, records)
        if entity == "contact":
            records = self.create_new_customers(records)
        # Counted here and added to the run once the page is in: the run's row is not written
        # again with every record's flush.
        tally = dict.fromkeys(PAGE_COUNTERS, 0)
        try:
            with self.session.begin_nested():
                for record in records:
                    tally["read"] += 1
                    tally[counter_of(getattr(self, f"take_{entity}")(record))] += 1
                self.settle()
        except NotAccepted:
            self.forget_page()
            self.read_page_ahead(entity, records)
            for record in records:
                self.run.read += 1
                self.take(entity, record)
        else:
            for name, count in tally.items():
                setattr(self.run, name, getattr(self.run, name) + count)
        self.forget_page()

    def create_new_customers(self, records: list[BookContact]) -> list[BookContact]:
        """The page's customers Duebook does not have yet (no link, not one of ours, not left
        out at the review, read once in the page) created set-based, each refused one listed
        with its reason; the records left for `take_contact` (links, deletions, the rest)."""
        times_read = Counter(record.remote_id for record in records)
        new, rest = [], []
        for record in records:
            is_new = (
                times_read[record.remote_id] == 1
                and not record.deleted
                and self.link_of("contact", remote_id=record.remote_id) is None
                and not self.skipped_at_review(record.remote_id)
                and self.our_client(record, mapping.contact_values(record)) is None
            )
            (new if is_new else rest).append(record)
        outcomes = mapping.create_clients_from(
            self.session, self.tenant, new, self.client_context()
        )
        links = []
        for record, outcome in zip(new, outcomes, strict=True):
            self.run.read += 1
            if isinstance(outcome, NotAccepted):
                self.problem(
                    "contact", "pull", str(outcome), remote_id=record.remote_id, label=record.name
                )
                continue
            links.append(
                self.new_link("contact", outcome, record, "books", mapping.contact_values(record))
            )
            self.run.created += 1
        self.write_links(links)
        return rest

    def take(self, entity: str, record) -> None:
        """Apply one record of the books in a savepoint: a refused one is listed, the rest go on."""
        label = getattr(record, "number", None) or getattr(record, "name", None)
        try:
            with self.session.begin_nested():
                outcome = getattr(self, f"take_{entity}")(record)
                self.settle()
        except NotAccepted as refusal:
            self.forget_page()
            self.problem(entity, "pull", str(refusal), remote_id=record.remote_id, label=label)
            return
        counter = counter_of(outcome)
        setattr(self.run, counter, getattr(self.run, counter) + 1)

    def take_contact(self, record: BookContact) -> str:
        link = self.link_of("contact", remote_id=record.remote_id)
        remote = mapping.contact_values(record)
        if link is None:
            if record.deleted:
                return "skipped"
            if self.skipped_at_review(record.remote_id):
                return "skipped"
            ours = self.our_client(record, remote)
            if ours is not None:
                self.link("contact", ours.id, record, "duebook", remote)
                return "updated"
            client = mapping.create_client_from(
                self.session, self.tenant, record, self.client_context()
            )
            self.link("contact", client.id, record, "books", remote)
            return "created"
        link.books = mapping.books_facts(record)
        link.remote_version = record.version
        client = self.session.get(Client, link.local_id)
        if client is None or record.deleted:
            return "skipped"
        return self.merge_contact(link, client, remote)

    def our_client(self, record: BookContact, remote: dict) -> Client | None:
        """The unlinked client a customer of the books is, when the connector says the books
        may hold customers Duebook wrote without hearing back (same tax number, else name).
        Never during the review's decisions: "create" there is the person's word."""
        if not self.books.connector.links_by_name or self._applying_review:
            return None
        linked = select(SyncLink.local_id).where(
            SyncLink.connection_id == self.connection_id, SyncLink.entity == "contact"
        )
        candidates = self.session.scalars(
            select(Client).where(
                Client.deleted_at.is_(None),
                Client.id.not_in(linked),
                func.lower(Client.full_name) == (record.name or "").strip().lower(),
            )
        ).all()
        tax = (remote.get("tax_number") or "").upper()
        for client in candidates:
            theirs = (mapping.client_values(self.session, client)["tax_number"] or "").upper()
            if not tax or not theirs or tax == theirs:
                return client
        return None

    def merge_contact(self, link: SyncLink, client: Client, remote: dict) -> str:
        """Per field, by its owner: the books' change applied, Duebook's kept for the push, a
        change on both sides (to different values) kept as a conflict."""
        local = mapping.client_values(self.session, client)
        agreed = dict(link.agreed or {})
        owners = contact_owners(self.settings)
        held = self.open_conflict_fields("contact", client.id)
        apply, clash = set(), {}
        for name, owner in owners.items():
            if name in held or remote[name] == local[name]:
                if remote[name] == local[name]:
                    agreed[name] = remote[name]
                continue
            books_changed = remote[name] != agreed.get(name)
            duebook_changed = local[name] != agreed.get(name)
            if owner == "books" or (owner == "either" and books_changed and not duebook_changed):
                apply.add(name)
            elif owner == "either" and books_changed and duebook_changed:
                clash[name] = {
                    "agreed": agreed.get(name),
                    "duebook": local[name],
                    "books": remote[name],
                }
        mapping.apply_contact(self.session, self.tenant, client, remote, apply)
        for name in apply:
            agreed[name] = remote[name]
        link.agreed = agreed
        if clash:
            self.keep_conflict(link, client.full_name, clash)
            return "conflict"
        return "updated" if apply else "skipped"

    def open_conflict_fields(self, entity: str, local_id: int) -> set[str]:
        conflict = self.session.scalar(
            select(SyncConflict).where(
                SyncConflict.connection_id == self.connection_id,
                SyncConflict.entity == entity,
                SyncConflict.local_id == local_id,
                SyncConflict.status == "open",
            )
        )
        return set(conflict.fields) if conflict else set()

    def keep_conflict(self, link: SyncLink, label: str, fields: dict) -> None:
        self.session.add(
            SyncConflict(
                connection_id=self.connection_id,
                entity=link.entity,
                local_id=link.local_id,
                remote_id=link.remote_id,
                label=label[:191],
                fields=fields,
            )
        )
        self.session.flush()

    def client_for(self, contact_remote_id: str | None, what: str) -> Client:
        link = self.link_of("contact", remote_id=contact_remote_id) if contact_remote_id else None
        client = self.session.get(Client, link.local_id) if link else None
        if client is None:
            raise NotAccepted(
                f"{what}: its customer is not in Duebook (see that customer's line, or the review)."
            )
        return client

    def take_invoice(self, record: BookInvoice) -> str:
        link = self.link_of("invoice", remote_id=record.remote_id)
        if link is None:
            if record.deleted or record.state == "draft":
                return "skipped"  # a draft is not chased until the books approve it
            client = self.client_for(record.contact_remote_id, f"Invoice {record.number}")
            same = self.invoice_numbered(record.number)
            if same is not None:
                # One of this page's new invoices is another record's of the books.
                if (
                    any(invoice is same for _, invoice in self._unsettled)
                    or same.client_id != client.id
                    or self.link_of("invoice", local_id=same.id)
                ):
                    raise NotAccepted(
                        f"Invoice {record.number}: Duebook has another invoice with this number."
                    )
                self.link(
                    "invoice", same.id, record, "duebook", mapping.book_invoice_values(record)
                )
                return "updated"
            invoice = mapping.invoice_from(
                self.session, self.tenant, client, record, self.today, self._page_workspace
            )
            if self._page_numbers is not None:
                self._page_numbers[record.number] = invoice
            self.link_new_invoice(invoice, record)
            return "created"
        if link.local_id is None:
            self.settle()  # read twice in this page: the first is written now
        link.books = mapping.books_facts(record)
        link.remote_version = record.version
        invoice = self.session.get(Invoice, link.local_id)
        if invoice is None:
            return "skipped"
        remote = mapping.book_invoice_values(record)
        if record.deleted:
            remote["state"] = "void"
        agreed = dict(link.agreed or {})
        # The books' "paid" arrives as their payments (Duebook's status follows those); the
        # number and currency of an invoice never change.
        changed = {
            name
            for name in remote
            if remote[name] != agreed.get(name)
            and name not in ("number", "currency")
            and (name != "state" or remote[name] == "void")
        }
        if not changed:
            return "skipped"
        mapping.apply_invoice(self.session, self.tenant, invoice, _voided(record), changed)
        link.agreed = {**agreed, **{name: remote[name] for name in changed}}
        return "updated"

    def take_credit_note(self, record: BookCreditNote) -> str:
        link = self.link_of("credit_note", remote_id=record.remote_id)
        if link is not None:
            link.books = mapping.books_facts(record)
            link.remote_version = record.version
            return "skipped"
        if record.deleted or record.state in ("draft", "void"):
            return "skipped"
        invoice_link = (
            self.link_of("invoice", remote_id=record.invoice_remote_id)
            if record.invoice_remote_id
            else None
        )
        invoice = self.session.get(Invoice, invoice_link.local_id) if invoice_link else None
        if invoice is None:
            raise NotAccepted(
                f"Credit note {record.number} is not allocated to an invoice Duebook has: "
                "allocate it to one invoice in the books."
            )
        try:
            note = issue_credit_note(
                self.session,
                self.tenant,
                invoice,
                str(record.total),
                record.reason or f"Credit note {record.number} in {self.title}",
                record.issue_date,  # the note's own date, as the books have it
            )
        except InvoiceError as error:
            raise NotAccepted(f"Credit note {record.number}: {error}") from None
        self.link("credit_note", note.id, record, "books", mapping.credit_note_values(record))
        return "created"

    def take_payment(self, record: BookPayment) -> str:
        link = self.link_of("payment", remote_id=record.remote_id)
        if link is None and record.deleted:
            return self.payment_deleted_whole(record)
        if link is not None:
            link.books = mapping.books_facts(record)
            payment = self.books_payment(link)
            if payment is None:
                return "skipped"
            if record.deleted:
                payments.void_payment(
                    self.session, payment, f"Deleted in {self.title}: the books own this payment."
                )
                return "updated"
            remote = mapping.book_payment_values(record)
            if remote == (link.agreed or {}):
                return "skipped"
            payments.void_payment(
                self.session, payment, f"Changed in {self.title}: recorded again as it is there."
            )
            self.session.delete(link)
            self.session.flush()
        elif record.deleted:
            return "skipped"
        invoice_link = self.link_of("invoice", remote_id=record.invoice_remote_id)
        invoice = self.session.get(Invoice, invoice_link.local_id) if invoice_link else None
        if invoice is None:
            raise NotAccepted(
                f"A payment of {record.amount} {record.currency} is for an invoice Duebook "
                "does not have."
            )
        ours = self.our_allocation(record, invoice)
        if ours is not None:
            self.link("payment", ours.id, record, "duebook", mapping.book_payment_values(record))
            return "updated"
        if record.currency.upper() != invoice.currency:
            raise NotAccepted(
                f"A payment in {record.currency.upper()} on invoice {invoice.number}, which is in "
                f"{invoice.currency}."
            )
        values = {
            "amount": str(record.amount),
            "received_on": record.paid_on,
            "method": "other",
            "reference": record.reference or "",
            "note": f"Recorded in {self.title}.",
        }
        try:
            payment = payments.record_payment_for_invoice(self.session, invoice, values)
        except payments.PaymentInvalid as error:
            said = " ".join(error.errors.values()) if hasattr(error, "errors") else str(error)
            raise NotAccepted(f"Payment on invoice {invoice.number}: {said}") from None
        allocation = self.session.scalar(
            select(PaymentAllocation).where(PaymentAllocation.payment_id == payment.id)
        )
        if allocation is None:
            raise NotAccepted(f"Payment on invoice {invoice.number}: nothing left to apply.")
        self.link("payment", allocation.id, record, "books", mapping.book_payment_values(record))
        return "created"

    def our_allocation(self, record: BookPayment, invoice: Invoice) -> PaymentAllocation | None:
        """Duebook's own payment on `invoice` that an unlinked payment of the books is, by the
        "DB-<allocation>" its reference ends with (what a push writes), when the connector says
        the books may hold payments Duebook wrote without hearing back."""
        found = _OUR_REFERENCE.search(record.reference or "")
        if not self.books.connector.links_by_name or found is None:
            return None
        allocation = self.session.get(PaymentAllocation, int(found.group(1)))
        if allocation is None or allocation.invoice_id != invoice.id:
            return None
        if self.link_of("payment", local_id=allocation.id) is not None:
            return None
        return allocation

    def books_payment(self, link: SyncLink) -> Payment | None:
        """The live payment a payment link stands for, when the books recorded it (only those
        follow what the books do with them)."""
        if link.origin != "books":
            return None
        allocation = self.session.get(PaymentAllocation, link.local_id)
        payment = self.session.get(Payment, allocation.payment_id) if allocation else None
        return payment if payment is not None and payment.voided_at is None else None

    def payment_deleted_whole(self, record: BookPayment) -> str:
        """A payment that paid several invoices is one record per invoice here
        ("<payment>:<invoice>"); deleted in the books it comes back as the payment alone."""
        parts = self.session.scalars(
            select(SyncLink).where(
                SyncLink.connection_id == self.connection_id,
                SyncLink.entity == "payment",
                SyncLink.remote_id.startswith(f"{record.remote_id}:", autoescape=True),
            )
        ).all()
        voided = 0
        for part in parts:
            part.books = {**(part.books or {}), "deleted": True}
            payment = self.books_payment(part)
            if payment is not None:
                payments.void_payment(
                    self.session, payment, f"Deleted in {self.title}: the books own this payment."
                )
                voided += 1
        return "updated" if voided else "skipped"

    def deleted_in_books(self, entity: str, pass_run_id: int) -> None:
        """After a complete full pass: a linked record the books no longer list was deleted
        there. Invoices are voided when nothing is paid on them; payments the books recorded are
        voided; customers stay (a client is not deleted because the books archived it)."""
        gone = self.session.scalars(
            select(SyncLink).where(
                SyncLink.connection_id == self.connection_id,
                SyncLink.entity == entity,
                (SyncLink.seen_in_run.is_(None)) | (SyncLink.seen_in_run != pass_run_id),
            )
        ).all()
        for link in gone:
            link.books = {**(link.books or {}), "deleted": True}
            if entity == "invoice":
                invoice = self.session.get(Invoice, link.local_id)
                if invoice is not None and invoice.status != "void":
                    record = BookInvoice(
                        remote_id=link.remote_id,
                        number=invoice.number,
                        contact_remote_id="",
                        issue_date=invoice.issue_date,
                        due_date=invoice.due_date,
                        currency=invoice.currency,
                        state="void",
                        lines=(),
                        subtotal=invoice.subtotal,
                        tax_total=Decimal(0),
                        total=invoice.total,
                        amount_due=Decimal(0),
                    )
                    try:
                        with self.session.begin_nested():
                            mapping.apply_invoice(
                                self.session, self.tenant, invoice, record, {"state"}
                            )
                        self.run.updated += 1
                    except NotAccepted as refusal:
                        self.problem("invoice", "pull", str(refusal), link.remote_id, invoice.id)
            elif entity == "payment":
                payment = self.books_payment(link)
                if payment is not None:
                    payments.void_payment(
                        self.session, payment, f"No longer in {self.title}: deleted there."
                    )
                    self.run.updated += 1

    # Pushing --------------------------------------------------------------------------------

    def push(self, entity: str) -> None:
        if not self.books.connector.can_push:
            return
        self.beat(f"push {entity}")
        try:
            getattr(self, f"push_{entity}s")()
        except BooksOffline:
            raise
        except ProviderUnavailable as trouble:
            self.page_failed(entity, "push", trouble)
            return
        self.commit()

    def page_failed(self, entity: str, direction: str, trouble: Exception) -> None:
        """The provider did not answer usefully even after the retries: this page (or the rest
        of this push) is left for the next run, which starts from it; the run goes on with the
        other entities."""
        self.session.rollback()
        words = ENTITY_WORDS[entity]
        reason = (
            f"{self.title} did not answer usefully while Duebook read its {words} ({trouble}). "
            "The next sync reads them again from there."
            if direction == "pull"
            else f"{self.title} did not answer usefully while Duebook sent {words} ({trouble}). "
            "The next sync sends the rest."
        )
        self.problem(entity, direction, reason)
        self.unfinished.append(reason)
        self.commit()

    def send(self, entity: str, local_id: int, record, label: str):
        """Find-then-write one record; the record as the books now hold it, or None (listed)."""
        try:
            if record.remote_id is None:
                found = self.books.call("find", entity, _find_key(record))
                if found is not None:
                    return found
            return self.books.call("push", entity, record, self.key(entity, local_id))
        except RecordRefused as refusal:
            self.problem(entity, "push", str(refusal), local_id=local_id, label=label)
            self.session.commit()
            return None

    def push_contacts(self) -> None:
        """Clients linked to the books whose Duebook-side fields changed since they agreed."""
        owners = contact_owners(self.settings)
        links = self.session.scalars(
            select(SyncLink).where(
                SyncLink.connection_id == self.connection_id, SyncLink.entity == "contact"
            )
        ).all()
        # Every linked client is compared, so their clients, billing contacts and open
        # conflicts are read in one query each (not three per client), before any push.
        ids = [link.local_id for link in links]
        clients = {
            client.id: client
            for client in self.session.scalars(select(Client).where(Client.id.in_(ids)))
        }
        contacts = mapping.billing_contacts(self.session, ids)
        held_fields: dict[int, set[str]] = {}
        for conflict in self.session.scalars(
            select(SyncConflict)
            .where(
                SyncConflict.connection_id == self.connection_id,
                SyncConflict.entity == "contact",
                SyncConflict.status == "open",
            )
            .order_by(SyncConflict.id)
        ):
            held_fields.setdefault(conflict.local_id, set(conflict.fields))
        due = []
        for link in links:
            client = clients.get(link.local_id)
            if client is None or client.deleted_at is not None:
                continue
            local = mapping.client_values(self.session, client, contacts.get(client.id))
            agreed = link.agreed or {}
            held = held_fields.get(client.id, set())
            changed = {
                name
                for name in local
                if name not in held and owners[name] != "books" and local[name] != agreed.get(name)
            }
            if changed:
                due.append((link, client, local, changed))
        for link, client, local, changed in due:
            agreed = link.agreed or {}
            record = mapping.book_contact(client, local, link.remote_id, link.remote_version)
            written = self.send("contact", client.id, record, client.full_name)
            if written is None:
                continue
            link.agreed = {**agreed, **{name: local[name] for name in changed}}
            link.remote_version = written.version
            link.books = mapping.books_facts(written)
            self.run.updated += 1
            self.commit()

    def contact_id_for(self, client: Client) -> str | None:
        """The books' id of the client, pushing it first when it is not linked yet."""
        link = self.link_of("contact", local_id=client.id)
        if link is not None:
            return link.remote_id
        values = mapping.client_values(self.session, client)
        record = mapping.book_contact(client, values, None)
        written = self.send("contact", client.id, record, client.full_name)
        if written is None:
            return None
        self.link("contact", client.id, written, "duebook", values)
        self.run.created += 1
        self.commit()
        return written.remote_id

    def push_invoices(self) -> None:
        """Invoices issued in Duebook since the connection, not in the books yet."""
        ids = self.session.scalars(outgoing.invoices_to_push(self.connection)).all()
        for invoice_id in ids:
            invoice = self.session.get(Invoice, invoice_id)
            client = self.session.get(Client, invoice.client_id)
            contact_id = self.contact_id_for(client)
            if contact_id is None:
                continue
            owed = outstanding(self.session, invoice)
            record = mapping.book_invoice(invoice, contact_id, owed)
            written = self.send("invoice", invoice.id, record, invoice.number)
            if written is None:
                continue
            self.link(
                "invoice", invoice.id, written, "duebook", mapping.book_invoice_values(written)
            )
            self.run.created += 1
            self.commit()

    def push_credit_notes(self) -> None:
        notes = self.session.scalars(outgoing.credit_notes_to_push(self.connection)).all()
        for note in notes:
            invoice_link = self.link_of("invoice", local_id=note.invoice_id)
            contact_link = self.link_of("contact", local_id=note.client_id)
            if invoice_link is None or contact_link is None:
                continue  # its invoice is not in the books: nothing to credit there
            record = mapping.book_credit_note(note, contact_link.remote_id, invoice_link.remote_id)
            written = self.send("credit_note", note.id, record, note.number)
            if written is None:
                continue
            self.link(
                "credit_note", note.id, written, "duebook", mapping.credit_note_values(written)
            )
            self.run.created += 1
            self.commit()

    def push_payments(self) -> None:
        """Money recorded in Duebook (each allocation to an invoice the books have) since the
        connection: the books' own payments came from there and are linked already."""
        rows = self.session.execute(outgoing.allocations_to_push(self.connection)).all()
        for allocation, payment in rows:
            invoice_link = self.link_of("invoice", local_id=allocation.invoice_id)
            contact_link = self.link_of("contact", local_id=payment.client_id)
            record = mapping.book_payment(
                allocation,
                payment,
                invoice_link.remote_id,
                contact_link.remote_id if contact_link else None,
            )
            record = mapping.with_our_reference(record, allocation.id)
            written = self.send("payment", allocation.id, record, f"payment {payment.id}")
            if written is None:
                continue
            self.link(
                "payment", allocation.id, written, "duebook", mapping.book_payment_values(written)
            )
            self.run.created += 1
            self.commit()


def record_key(tenant_id: int, connection_id: int, entity: str, local_id: int) -> str:
    """Our idempotency key of a write: the same for every retry of the same record (Tally's
    vouchers take their GUID from it, in a push and in an import file alike)."""
    return f"duebook-{tenant_id}-{connection_id}-{entity}-{local_id}"


def counter_of(outcome: str) -> str:
    """The run's counter a record's outcome adds to."""
    return {"created": "created", "updated": "updated", "conflict": "conflicts"}.get(
        outcome, "skipped"
    )


def _name_key(name: str) -> str:
    words = "".join(ch if ch.isalnum() else " " for ch in (name or "").lower()).split()
    return " ".join(words)


def _find_key(record) -> str:
    if isinstance(record, BookContact):
        return record.name
    if isinstance(record, BookPayment):
        return record.reference or ""
    return record.number


_OUR_REFERENCE = re.compile(r"\bDB-(\d{1,18})$")


def _voided(record: BookInvoice) -> BookInvoice:
    return replace(record, state="void") if record.deleted else record


def connection_tenant_id(session: Session) -> int:
    return bound_tenant_id(session)


# Entry points --------------------------------------------------------------------------------


@contextmanager
def _one_worker(session: Session, connection_id: int):
    """Yields whether this worker holds the connection's run lock: a PostgreSQL advisory lock
    held by a database connection of its own for as long as the run lasts (the run's session
    commits often and may get another pooled connection each time). A killed worker's
    connection closes with it, and its lock with it, so the run can be resumed at once."""
    key = f"sync:{bound_tenant_id(session)}:{connection_id}"
    with db.engine.connect() as holder:
        taken = bool(holder.scalar(select(func.pg_try_advisory_lock(func.hashtext(key)))))
        holder.commit()
        try:
            yield taken
        finally:
            if taken:
                holder.scalar(select(func.pg_advisory_unlock(func.hashtext(key))))
                holder.commit()


def perform(session: Session, run_id: int) -> str:
    """Carry out run `run_id` of the bound tenant (the job's body). Returns what happened."""
    run = session.get(SyncRun, run_id)
    if run is None or run.status not in ACTIVE_RUN_STATUSES:
        return "skipped: not active"
    connection_id = run.connection_id
    session.commit()
    with _one_worker(session, connection_id) as taken:
        if not taken:
            return "skipped: another worker is running it"
        try:
            return _perform(session, run_id)
        finally:
            session.rollback()


def _perform(session: Session, run_id: int) -> str:
    run = session.get(SyncRun, run_id)
    connection = session.get(IntegrationConnection, run.connection_id)
    if run.status not in ACTIVE_RUN_STATUSES:
        return "skipped: not active"
    if connection is None or connection.status != "enabled":
        return _finish(session, run, "failed", "The connection is disconnected or disabled.")
    session.info[SOURCE_KEY] = f"{source_label(connection.provider)} sync"
    run.status = "running"
    run.started_at = run.started_at or _now()
    run.resume_at = None
    run.attempts += 1
    run.heartbeat_at = _now()
    session.commit()
    try:
        worker = Run(session, run, connection)
        worker.execute()
    except WaitLonger as wait:
        session.rollback()
        run = session.get(SyncRun, run_id)
        run.status = "waiting"
        run.resume_at = _now() + timedelta(seconds=max(wait.seconds, 1))
        run.error = (
            f"{source_label(connection.provider)}'s daily limit is used up; resuming at "
            if wait.daily
            else f"{source_label(connection.provider)} asked us to slow down; resuming at "
        ) + run.resume_at.strftime("%H:%M UTC.")
        session.commit()
        return "waiting"
    except TokenRevoked as revoked:
        session.rollback()
        return _needs_reconnecting(session, run_id, str(revoked))
    except ProviderUnavailable as trouble:
        session.rollback()
        run = session.get(SyncRun, run_id)
        return _finish(
            session,
            run,
            "failed",
            f"{source_label(connection.provider)} did not answer usefully ({trouble}). The next "
            "run continues from the last page that went in.",
        )
    run = session.get(SyncRun, run_id)
    if run.status == "review":
        session.commit()
        return "review"
    unfinished = " ".join(worker.unfinished) or None
    return _finish(session, run, "done", unfinished)


def _finish(session: Session, run: SyncRun, status: str, error: str | None) -> str:
    run.status = status
    run.error = error
    run.finished_at = _now()
    run.stage = None
    connection = session.get(IntegrationConnection, run.connection_id)
    if connection is not None:
        announce_finished(session, run, connection)
        values = (
            {"last_success_at": run.finished_at}
            if status == "done"
            else {"last_error_at": run.finished_at, "last_error": error}
        )
        session.execute(
            update(IntegrationConnection)
            .where(IntegrationConnection.id == connection.id)
            .values(**values)
        )
    session.commit()
    return status if error is None else f"{status}: {error}"


def announce_finished(session: Session, run: SyncRun, connection: IntegrationConnection) -> None:
    """The sync.finished event of a run that ended (its status set): done or failed."""
    emit(
        session,
        "sync.finished",
        "sync_run",
        run.id,
        {
            "run_id": run.id,
            "connection_id": connection.id,
            "provider": connection.provider,
            "status": run.status,
            "created": run.created or 0,
            "updated": run.updated or 0,
            "failed": run.failed or 0,
        },
        run.requested_by,
    )


def _needs_reconnecting(session: Session, run_id: int, reason: str) -> str:
    run = session.get(SyncRun, run_id)
    connection = session.get(IntegrationConnection, run.connection_id)
    title = source_label(connection.provider)
    said = (
        f"{title} no longer accepts Duebook's access ({reason}). Reconnect {title} on the "
        "integrations page; nothing syncs until then."
    )
    first = not (connection.settings or {}).get("needs_reconnect")
    connection.settings = {**(connection.settings or {}), "needs_reconnect": True}
    if first:
        announce_integration_lost(
            session,
            tenant_id=connection_tenant_id(session),
            connection_id=connection.id,
            provider=connection.provider,
            title=title,
            reason=said,
        )
    return _finish(session, run, "failed", said)


def behind(session: Session, connection: IntegrationConnection) -> int:
    """Duebook records waiting to go to the books (invoices and payments not pushed yet)."""
    waiting = 0
    for query in (outgoing.invoices_to_push(connection), outgoing.allocations_to_push(connection)):
        waiting += session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return waiting


def stale_after() -> timedelta:
    return timedelta(seconds=current_app.config.get("SYNC_STALE_SECONDS", 120))
