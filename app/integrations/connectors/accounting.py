"""What every accounting connector (Xero, QuickBooks Online, Zoho Books; Tally after them) tells
the sync engine (app.sync), in one provider-neutral shape, so that the engine links, compares
and applies records the same way for every book and knows no provider's JSON.

The engine owns the tokens (it stores them encrypted, refreshes them under a lock before they
expire, and turns a revoked one into "needs reconnecting"); a connector is handed the current
access token with every call. The engine owns the schedule, the paging state, the external-id
map and the conflicts; a connector owns its provider's URLs, JSON, paging marker, idempotency
mechanism and error words.

An accounting connector:
- `authorization_url(redirect_uri, state, code_challenge)`: where the admin consents (PKCE
  S256 when `uses_pkce`);
- `exchange_code(code, redirect_uri, code_verifier, callback)` -> TokenSet (the callback's
  query string is given whole: QuickBooks puts its realmId there, Zoho its accounts server);
- `refresh(tokens)` -> TokenSet (TokenRevoked when the provider refuses the refresh token);
- `organisations(access, tokens)` -> the books the consent reaches (Xero's tenants,
  QuickBooks' realm, Zoho's organisations), for the admin to pick one;
- `pull(access, book, entity, since, cursor)` -> Page: one page of records changed since the
  change marker `since` (None: everything), starting at `cursor` (None: the first page);
- `find(access, book, entity, number)`: the record the books hold under our number or name,
  or None (a push looks first, so a retried job never writes a second invoice);
- `push(access, book, entity, record, key)` -> the record as the books now hold it: creates
  when `record.remote_id` is None, else updates (with `record.version` where the provider
  checks it); `key` is our idempotency key for the write, stable across retries;
- `read_webhook(body, headers, signing_key)` -> list of Notices (WebhookRefused when the
  signature does not prove the provider sent it), for providers with webhooks.

Errors: RateLimited (wait `retry_after` seconds; `daily`: the day's quota is spent),
TokenRevoked, ProviderUnavailable (5xx, timeout, a malformed or truncated answer: this page
fails, the run resumes from it later), RecordRefused (the books refused this one record; the
words are the provider's, shown in the run's problem list).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar

from app.integrations.connectors import Connector, DeliveryError, Outgoing, Sent

# The entities synced, in the order a run takes them (a payment needs its invoice, an invoice
# its contact).
ENTITIES = ("contact", "invoice", "credit_note", "payment")

# An invoice's or credit note's state in the books, in the engine's words: draft (not yet
# approved: not chased), open (approved, money owed), paid (nothing owed), void (cancelled).
DOCUMENT_STATES = ("draft", "open", "paid", "void")


class AccountingError(Exception):
    """Base of what an accounting connector raises; the message is in words for the page."""


class RateLimited(AccountingError):
    def __init__(self, message: str, retry_after: float, *, daily: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.daily = daily


class TokenRevoked(AccountingError):
    """The provider refuses our tokens (revoked, expired refresh token, app disconnected): the
    connection needs the admin to reconnect; retrying cannot help."""


class ProviderUnavailable(AccountingError):
    """The provider did not answer usefully (5xx, timeout, malformed or truncated body)."""


class BooksOffline(ProviderUnavailable):
    """The books cannot be reached at all just now (Tally's agent is not running): retrying
    in place cannot help, so the run stops and says so; the next run starts where it did."""


class RecordRefused(AccountingError):
    """The books refused one record we pushed (a validation error); the others go on."""


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_at: datetime
    # What else the provider returned that later calls need (Zoho's api_domain, QuickBooks'
    # realmId from the callback), kept with the tokens.
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Book:
    """One set of books the consent reaches: a Xero organisation, a QuickBooks company, a Zoho
    Books organisation."""

    remote_id: str
    name: str
    country: str | None = None  # ISO 3166 alpha-2
    currency: str | None = None  # the books' base currency
    region: str | None = None  # India: the state's GST code, which decides CGST+SGST or IGST
    books_from: date | None = None  # the first day the books hold (Tally's "books beginning")


@dataclass(frozen=True)
class Address:
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None  # ISO 3166 alpha-2 when the provider gives one


@dataclass(frozen=True)
class BookContact:
    """A customer in the books. `tax_number`: the GSTIN in India, the ABN in Australia."""

    remote_id: str | None
    name: str
    email: str | None = None
    phone: str | None = None
    tax_number: str | None = None
    currency: str | None = None
    address: Address = field(default_factory=Address)
    version: str | None = None  # the provider's change marker of this record
    updated_at: datetime | None = None
    deleted: bool = False
    # The credit period the books give this customer, in days (Tally's BILLCREDITPERIOD).
    payment_days: int | None = None


@dataclass(frozen=True)
class BookLine:
    description: str
    quantity: Decimal
    unit_price: Decimal
    net_amount: Decimal  # quantity x unit price, before tax
    tax_rate: Decimal  # percent
    tax_amount: Decimal
    hsn_sac: str | None = None


@dataclass(frozen=True)
class BookInvoice:
    remote_id: str | None
    number: str
    contact_remote_id: str
    issue_date: date
    due_date: date | None
    currency: str
    state: str  # DOCUMENT_STATES
    lines: tuple[BookLine, ...]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    amount_due: Decimal
    place_of_supply: str | None = None  # India: the state code the tax follows
    reference: str | None = None
    version: str | None = None
    updated_at: datetime | None = None
    deleted: bool = False


@dataclass(frozen=True)
class BookCreditNote:
    remote_id: str | None
    number: str
    contact_remote_id: str
    issue_date: date
    currency: str
    state: str  # DOCUMENT_STATES
    lines: tuple[BookLine, ...]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    # The invoice it is allocated to in the books, when it is allocated to exactly one.
    invoice_remote_id: str | None = None
    reason: str | None = None
    version: str | None = None
    updated_at: datetime | None = None
    deleted: bool = False


@dataclass(frozen=True)
class BookPayment:
    """Money received against one invoice."""

    remote_id: str | None
    invoice_remote_id: str
    contact_remote_id: str | None
    paid_on: date
    amount: Decimal
    currency: str
    reference: str | None = None
    version: str | None = None
    updated_at: datetime | None = None
    deleted: bool = False


BookRecord = BookContact | BookInvoice | BookCreditNote | BookPayment


@dataclass(frozen=True)
class Unreadable:
    """A record of a page the connector could not read into the neutral shape (a missing name,
    an unknown currency): skipped with the reason, the rest of the page goes in."""

    remote_id: str | None
    reason: str


@dataclass(frozen=True)
class Page:
    records: list[BookRecord]
    # Where the next page starts, in the connector's own words; None: this was the last.
    next_cursor: str | None
    # The change marker to ask with next time once every page of this pass is in (Xero: the
    # newest UpdatedDateUTC seen; QuickBooks: the CDC time of the request); None: unchanged.
    marker: str | None = None
    unreadable: list[Unreadable] = field(default_factory=list)


@dataclass(frozen=True)
class Notice:
    """One change a provider's webhook tells of: the engine pulls the record afterwards."""

    book_id: str  # Xero tenantId, QuickBooks realmId
    entity: str
    remote_id: str
    event_id: str


class AccountingConnector(Connector):
    channel = "accounting"
    # Requests the provider allows per minute and per day for one set of books; the engine
    # paces its calls under them instead of waiting for a 429.
    per_minute: ClassVar[int] = 60
    per_day: ClassVar[int | None] = None
    page_size: ClassVar[int] = 100
    uses_pkce: ClassVar[bool] = True
    # False: the books are reached without OAuth tokens (Tally, through the workspace's agent).
    uses_oauth: ClassVar[bool] = True
    # Entities this provider's webhooks announce (Xero: contacts and invoices, no payments).
    webhook_entities: ClassVar[tuple[str, ...]] = ()
    # The connection's current tokens, set by the engine before it calls organisations, pull,
    # find or push: a provider whose later calls need what the consent returned reads it from
    # their `extra` (Zoho Books: the api_domain of the account's data centre).
    tokens: TokenSet | None = None
    # (workspace id, connection id), set by the engine for a connector that reaches the books
    # through the workspace's agent relay.
    relay: tuple[int, int] | None = None

    # True: the books may hold customers and payments Duebook wrote without hearing back (a
    # file a person imported into Tally): an unlinked customer is linked to the unlinked client
    # of the same tax number or name, and a payment carrying our reference to our payment,
    # instead of each coming back as a second one.
    links_by_name: ClassVar[bool] = False

    @classmethod
    def reachable(cls, settings: dict) -> str | None:
        """Why the books cannot be synced on a schedule now (no agent paired), or None."""
        return None

    @property
    def can_push(self) -> bool:
        """False when this connection only reads (a file a person uploaded): nothing is sent."""
        return True

    @property
    def complete(self) -> bool:
        """False when a pass may hold only part of the books (an uploaded file): what it does
        not list is not taken as deleted."""
        return True

    def send(self, outgoing: Outgoing) -> Sent:
        raise DeliveryError("An accounting connection sends no messages.", permanent=True)

    def test_connection(self) -> str:
        return "Connected through the provider's consent screen; the next sync checks it."

    def authorization_url(self, redirect_uri: str, state: str, code_challenge: str) -> str:
        raise NotImplementedError

    def exchange_code(
        self, code: str, redirect_uri: str, code_verifier: str, callback: dict[str, str]
    ) -> TokenSet:
        raise NotImplementedError

    def refresh(self, tokens: TokenSet) -> TokenSet:
        raise NotImplementedError

    def organisations(self, access: str, tokens: TokenSet) -> list[Book]:
        raise NotImplementedError

    def pull(
        self, access: str, book: str, entity: str, since: str | None, cursor: str | None
    ) -> Page:
        raise NotImplementedError

    def find(self, access: str, book: str, entity: str, number: str) -> BookRecord | None:
        raise NotImplementedError

    def push(self, access: str, book: str, entity: str, record: BookRecord, key: str):
        raise NotImplementedError

    def read_webhook(self, body: bytes, headers, signing_key: str) -> list[Notice]:
        raise NotImplementedError
