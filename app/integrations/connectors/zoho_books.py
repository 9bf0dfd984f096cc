"""Zoho Books: contacts, invoices, credit notes and customer payments for the sync engine
(providers.md §5.2; the keys read and written are those of Zoho's official .NET wrapper plus
the India edition's GST keys, checked by the tests against tests/contracts/zoho_books).

Wire protocol only: this module turns Zoho's JSON into the neutral records of
app.integrations.connectors.accounting and back, and knows nothing of Duebook's tables.

- Data centres (ZB-1): an account lives in one (`.com`, `.in` for India, `.com.au` for
  Australia, ...). The consent starts on the accounts server of the data centre the connection's
  settings name (`data_centre`, `.com` by default); Zoho sends the browser back with
  `location` and `accounts-server`, the code is exchanged there, and the token answer's
  `api_domain` is where every later call goes. Both are kept in TokenSet.extra and only ever
  accepted when they are one of Zoho's own servers (an address in a callback's query string is
  not trusted with our client secret or a tenant's token). ZOHO_ACCOUNTS_BASE (the `.com`
  server by default) is replaced by the data centre's; set to anything else (the sandbox's
  stand-in) it is used as is, and ZOHO_API_BASE, when set, takes every data centre's API.
- OAuth: authorization code with `access_type=offline&prompt=consent` (a refresh token each
  consent); no PKCE. A refresh answers a new access token and no new refresh token (Zoho does
  not rotate them), so the one we have is kept. Zoho answers a refused refresh with HTTP 200
  and `{"error": "invalid_code"}` (or `invalid_client` when the app's secret changed): both
  are TokenRevoked.
- Every API call: `Authorization: Zoho-oauthtoken <token>`, `organization_id=<book>`; answers
  are `{"code": 0, "message": "success", ...}`; any other code is Zoho refusing (its message
  is shown), code 57 or HTTP 401 the token (TokenRevoked). HTTP 429 carries no Retry-After:
  the minute's budget comes back within 60 s. A 429 that speaks of the day means the day's
  quota (Free plan 1,000; `daily_limit` in the settings for bigger plans) is spent. The exact
  words of that answer were not found in any source reached: it is recognised by "day".
- Pull: `GET /books/v3/<entity>?page=&per_page=200&sort_column=last_modified_time&
  sort_order=A`, pages followed while `page_context.has_more_page`. Incremental: the list
  filter `last_modified_time=<marker>` (records modified at or after it, so the newest record
  of the last pass is read again: the engine sees its version unchanged). Zoho's lists never
  show a deleted record: a full refresh (since=None) lists everything and the engine marks
  what is missing as deleted. A contact made inactive reads as deleted; a voided document as
  state "void". Invoices, credit notes and payments are listed in summary (no line items, no
  invoices paid), so each is read in full with one GET: a page costs up to 201 calls.
- Push: Zoho has no idempotency key. A retried write is made safe by looking first: the
  engine's `find` asks for the record by invoice number, credit note number, contact name or
  payment reference before it creates. An invoice pushed open is marked sent
  (`POST /invoices/{id}/status/sent`), a credit note open (`/status/open`).
- A payment in Zoho pays several invoices; the engine's BookPayment pays one, so each
  invoice a payment pays is a record of its own, remote id `<payment_id>:<invoice_id>`.
- India: GSTIN `gst_no`, `gst_treatment`, the state of supply as Zoho's two-letter code
  (`KA`), GST state code ("29") in the neutral record. A line's tax is the organisation's tax
  of that rate: the GST group (CGST+SGST) when the supply is in the organisation's own state,
  IGST otherwise (Zoho splits the tax itself). Australia: GST 10% by rate; a customer's ABN
  goes in the wrapper's `tax_id_value` (the Australia edition's own key for it was not found
  in any source reached).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

import httpx

from app.core.money import CURRENCIES, percent_of, to_money
from app.core.regions import GST_STATES, GST_TO_ISO, region_code
from app.integrations.connectors import Field, pooled_client
from app.integrations.connectors.accounting import (
    AccountingConnector,
    Address,
    Book,
    BookContact,
    BookCreditNote,
    BookInvoice,
    BookLine,
    BookPayment,
    BookRecord,
    Page,
    ProviderUnavailable,
    RateLimited,
    RecordRefused,
    TokenRevoked,
    TokenSet,
    Unreadable,
)

API_ROOT = "/books/v3"
DEFAULT_ACCOUNTS_BASE = "https://accounts.zoho.com"
# Data centre -> (accounts server, API domain), as Zoho's multi-DC guide lists them.
DATA_CENTRES = {
    "com": ("https://accounts.zoho.com", "https://www.zohoapis.com"),
    "in": ("https://accounts.zoho.in", "https://www.zohoapis.in"),
    "com.au": ("https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    "eu": ("https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    "jp": ("https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    "ca": ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    "sa": ("https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    "com.cn": ("https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
}
ACCOUNTS_SERVERS = {accounts for accounts, _ in DATA_CENTRES.values()}
API_DOMAINS = {api for _, api in DATA_CENTRES.values()}
SCOPES = (
    "ZohoBooks.contacts.ALL,ZohoBooks.invoices.ALL,ZohoBooks.creditnotes.ALL,"
    "ZohoBooks.customerpayments.ALL,ZohoBooks.settings.READ"
)
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Zoho sends no Retry-After with a 429; its per-minute window is over within a minute.
MINUTE_WAIT = 60.0
DAY_WAIT = 3600.0
TOKEN_REVOKED_CODE = 57
REFUSED_TOKEN_ERRORS = {"invalid_code", "invalid_client", "invalid_token"}
ACCESS_LIFETIME = 3600
# Zoho's invoice and credit note states, in the engine's words.
DOCUMENT_STATE = {
    "draft": "draft",
    "sent": "open",
    "viewed": "open",
    "overdue": "open",
    "partially_paid": "open",
    "unpaid": "open",
    "open": "open",
    "pending_approval": "draft",
    "approved": "open",
    "paid": "paid",
    "closed": "paid",
    "void": "void",
}
ISO_TO_GST = {iso: code for code, iso in GST_TO_ISO.items()}
_DECIMAL = re.compile(r'"__decimal__(-?[0-9]+(?:\.[0-9]+)?)"')


@dataclass(frozen=True)
class _Entity:
    path: str  # under /books/v3, and the list's key
    one: str  # the key of one record in an answer
    id_key: str
    number_key: str  # what `find` looks for
    detailed: bool  # the list is a summary: read each record in full


ENTITIES = {
    "contact": _Entity("contacts", "contact", "contact_id", "contact_name", False),
    "invoice": _Entity("invoices", "invoice", "invoice_id", "invoice_number", True),
    "credit_note": _Entity("creditnotes", "creditnote", "creditnote_id", "creditnote_number", True),
    "payment": _Entity("customerpayments", "payment", "payment_id", "reference_number", True),
}


class _Unreadable(ValueError):
    """A record this connector cannot put into the neutral shape (the reason in words)."""


def wire_json(data) -> bytes:
    """JSON with Decimals written as exact numbers (never through a float)."""
    text = json.dumps(data, default=_mark_decimal, separators=(",", ":"))
    return _DECIMAL.sub(r"\1", text).encode()


def _mark_decimal(value):
    if isinstance(value, Decimal):
        return f"__decimal__{value}"
    raise TypeError(f"{type(value).__name__} is not JSON")


def zoho_time(moment: datetime) -> str:
    """Zoho's timestamp format: 2026-04-01T10:15:00+0530."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


def parse_time(text) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def _money(value, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise _Unreadable(f"The {what} is not an amount.")
    try:
        return to_money(value)
    except (ValueError, TypeError, InvalidOperation) as exc:
        raise _Unreadable(f"The {what} is not an amount.") from exc


def _day(value, what: str, required: bool = True) -> date | None:
    if not value and not required:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise _Unreadable(f"The {what} is not a date (yyyy-mm-dd).") from exc


def _currency(value) -> str:
    code = str(value or "").upper()
    if code not in CURRENCIES:
        raise _Unreadable(f"The currency {value!r} is not one Duebook knows.")
    return code


def state_of_supply(zoho_code) -> str | None:
    """Zoho's place of supply ("KA") as a GST state code ("29")."""
    return ISO_TO_GST.get(str(zoho_code or "").upper()) or None


def zoho_state(gst_code: str | None) -> str | None:
    return GST_TO_ISO.get(gst_code or "")


class ZohoBooksConnector(AccountingConnector):
    provider = "zoho_books"
    title = "Zoho Books"
    description = "Keep {clients}, invoices, credit notes and payments in step with Zoho Books."
    per_minute = 100
    per_day = 1000
    page_size = 200
    uses_pkce = False
    webhook_entities = ()
    fields = (
        Field(
            "data_centre",
            "Zoho data centre",
            required=False,
            help="Where your Zoho account lives: in (India), com.au (Australia), com, eu ...",
            placeholder="in",
        ),
        Field(
            "daily_limit",
            "API calls a day",
            required=False,
            help="Your Zoho Books plan's daily API limit (Free: 1,000; Standard: 2,000 ...).",
        ),
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        limit = str(self.settings.get("daily_limit") or "")
        if limit.isdigit() and int(limit) > 0:
            self.per_day = int(limit)
        self._taxes: dict[str, list[dict]] = {}
        self._home_state: dict[str, str | None] = {}

    # -- where to call -----------------------------------------------------------------------

    @classmethod
    def clean(cls, raw: Mapping) -> tuple[dict, dict, dict]:
        settings, secrets, errors = super().clean(raw)
        centre = settings.get("data_centre", "").lstrip(".").lower()
        if centre and centre not in DATA_CENTRES:
            errors["data_centre"] = "Choose one of: " + ", ".join(DATA_CENTRES) + "."
        elif centre:
            settings["data_centre"] = centre
        limit = settings.get("daily_limit", "").replace(",", "")
        if limit and not (limit.isdigit() and int(limit) > 0):
            errors["daily_limit"] = "Enter a whole number of calls, such as 2000."
        elif limit:
            settings["daily_limit"] = limit
        return settings, secrets, errors

    def _configured_accounts(self) -> str:
        return (self.config.get("ZOHO_ACCOUNTS_BASE") or DEFAULT_ACCOUNTS_BASE).rstrip("/")

    def _accounts_server(self) -> str:
        """Where the consent starts: the data centre's accounts server (or the stand-in)."""
        configured = self._configured_accounts()
        if configured != DEFAULT_ACCOUNTS_BASE:
            return configured
        return DATA_CENTRES[self.settings.get("data_centre") or "com"][0]

    def _trusted_accounts(self, server: str | None) -> str:
        """The callback's accounts server, if it is one of Zoho's (or the configured one)."""
        server = (server or "").rstrip("/")
        if not server:
            return self._accounts_server()
        if server in ACCOUNTS_SERVERS or server == self._configured_accounts():
            return server
        raise TokenRevoked(
            "Zoho's answer named an accounts server that is not Zoho's; connect again."
        )

    def _trusted_api(self, domain: str | None) -> str:
        domain = (domain or "").rstrip("/")
        if domain in API_DOMAINS:
            return domain
        return DATA_CENTRES[self.settings.get("data_centre") or "com"][1]

    def _api_base(self) -> str:
        override = (self.config.get("ZOHO_API_BASE") or "").rstrip("/")
        if override:
            return override
        extra = self.tokens.extra if self.tokens else {}
        return self._trusted_api(extra.get("api_domain"))

    def _client_credentials(self) -> dict[str, str]:
        return {
            "client_id": self.config.get("ZOHO_CLIENT_ID") or "",
            "client_secret": self.config.get("ZOHO_CLIENT_SECRET") or "",
        }

    # -- OAuth -------------------------------------------------------------------------------

    def authorization_url(self, redirect_uri: str, state: str, code_challenge: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.config.get("ZOHO_CLIENT_ID") or "",
            "scope": SCOPES,
            "redirect_uri": redirect_uri,
            "state": state,
            "access_type": "offline",
            "prompt": "consent",
        }
        return f"{self._accounts_server()}/oauth/v2/auth?{urlencode(query)}"

    def exchange_code(
        self, code: str, redirect_uri: str, code_verifier: str, callback: dict[str, str]
    ) -> TokenSet:
        accounts = self._trusted_accounts(callback.get("accounts-server"))
        answer = self._token_call(
            accounts,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                **self._client_credentials(),
            },
        )
        if not answer.get("refresh_token"):
            raise TokenRevoked("Zoho gave no refresh token; connect again.")
        return self._token_set(answer, answer["refresh_token"], accounts, callback.get("location"))

    def refresh(self, tokens: TokenSet) -> TokenSet:
        accounts = self._trusted_accounts(tokens.extra.get("accounts_server"))
        answer = self._token_call(
            accounts,
            {
                "grant_type": "refresh_token",
                "refresh_token": tokens.refresh_token or "",
                **self._client_credentials(),
            },
        )
        # Zoho does not rotate refresh tokens: the answer has none, the one we hold stays.
        refresh_token = answer.get("refresh_token") or tokens.refresh_token
        return self._token_set(answer, refresh_token, accounts, tokens.extra.get("location"))

    def _token_set(self, answer: dict, refresh_token, accounts: str, location) -> TokenSet:
        expires_in = answer.get("expires_in")
        lifetime = expires_in if isinstance(expires_in, int) and expires_in > 0 else ACCESS_LIFETIME
        return TokenSet(
            access_token=answer["access_token"],
            refresh_token=refresh_token,
            expires_at=datetime.now(UTC) + timedelta(seconds=lifetime),
            extra={
                "api_domain": self._trusted_api(answer.get("api_domain")),
                "accounts_server": accounts,
                "location": str(location or self.settings.get("data_centre") or "com"),
            },
        )

    def _token_call(self, accounts: str, form: dict[str, str]) -> dict:
        try:
            response = pooled_client(timeout=TIMEOUT).post(
                f"{accounts}/oauth/v2/token", data=form, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"Zoho's accounts server did not answer ({exc}).") from exc
        if response.status_code >= 500:
            raise ProviderUnavailable(f"Zoho's accounts server failed ({response.status_code}).")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ProviderUnavailable("Zoho's accounts server answered something unreadable.")
        error = answer.get("error")
        if error in REFUSED_TOKEN_ERRORS or response.status_code in (400, 401):
            raise TokenRevoked(f"Zoho refused the authorisation ({error or response.status_code}).")
        if error or not isinstance(answer.get("access_token"), str):
            raise ProviderUnavailable(f"Zoho's accounts server answered an error ({error}).")
        return answer

    # -- API calls ---------------------------------------------------------------------------

    def _call(self, method: str, path: str, access: str, book: str | None, **options) -> dict:
        params = dict(options.pop("params", None) or {})
        if book is not None:
            params["organization_id"] = book
        headers = {"Authorization": f"Zoho-oauthtoken {access}", "Accept": "application/json"}
        body = options.pop("json", None)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = pooled_client(timeout=TIMEOUT).request(
                method,
                f"{self._api_base()}{API_ROOT}{path}",
                params=params,
                headers=headers,
                content=wire_json(body) if body is not None else None,
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"Zoho Books did not answer ({exc}).") from exc
        try:
            answer = json.loads(response.content, parse_float=Decimal)
        except ValueError:
            answer = None
        message = answer.get("message") if isinstance(answer, dict) else None
        code = answer.get("code") if isinstance(answer, dict) else None
        if response.status_code == 429:
            daily = "day" in str(message or "").lower()
            raise RateLimited(
                str(message or "Zoho Books asks us to slow down."),
                DAY_WAIT if daily else MINUTE_WAIT,
                daily=daily,
            )
        if response.status_code == 401 or code == TOKEN_REVOKED_CODE:
            raise TokenRevoked(str(message or "Zoho Books refused our access token."))
        if response.status_code >= 500:
            raise ProviderUnavailable(f"Zoho Books failed ({response.status_code}).")
        if not isinstance(answer, dict) or not isinstance(code, int):
            raise ProviderUnavailable("Zoho Books answered something unreadable.")
        if code != 0:
            raise RecordRefused(str(message or f"Zoho Books refused it (code {code})."))
        return answer

    def organisations(self, access: str, tokens: TokenSet) -> list[Book]:
        self.tokens = tokens
        answer = self._call("GET", "/organizations", access, None)
        books = []
        for organisation in answer.get("organizations") or []:
            if not isinstance(organisation, dict) or not organisation.get("organization_id"):
                continue
            books.append(
                Book(
                    remote_id=str(organisation["organization_id"]),
                    name=str(organisation.get("name") or organisation["organization_id"]),
                    country=_country_of(organisation),
                    currency=str(organisation.get("currency_code") or "") or None,
                )
            )
        return books

    # -- pull --------------------------------------------------------------------------------

    def pull(
        self, access: str, book: str, entity: str, since: str | None, cursor: str | None
    ) -> Page:
        kind = ENTITIES[entity]
        page_number = int(cursor) if cursor and cursor.isdigit() else 1
        params = {
            "page": page_number,
            "per_page": self.page_size,
            "sort_column": "last_modified_time",
            "sort_order": "A",
        }
        if since:
            params["last_modified_time"] = since
        if entity == "contact":
            params.update({"contact_type": "customer", "filter_by": "Status.All"})
        answer = self._call("GET", f"/{kind.path}", access, book, params=params)
        listed = answer.get(kind.path)
        context = answer.get("page_context")
        if not isinstance(listed, list) or not isinstance(context, dict):
            raise ProviderUnavailable(f"Zoho Books' list of {kind.path} is incomplete.")
        records: list[BookRecord] = []
        unreadable: list[Unreadable] = []
        newest = since
        for item in listed:
            remote_id = str(item.get(kind.id_key) or "") if isinstance(item, dict) else ""
            if not remote_id:
                unreadable.append(Unreadable(None, f"A listed {kind.one} has no id."))
                continue
            if kind.detailed:
                try:
                    item = self._call("GET", f"/{kind.path}/{remote_id}", access, book)[kind.one]
                except RecordRefused as refused:  # deleted since it was listed, say
                    unreadable.append(Unreadable(remote_id, str(refused)))
                    continue
            modified = item.get("last_modified_time")
            if isinstance(modified, str) and (newest is None or _later(modified, newest)):
                newest = modified
            try:
                records.extend(self._read(entity, item))
            except (_Unreadable, KeyError, TypeError, AttributeError) as exc:
                reason = str(exc) if isinstance(exc, _Unreadable) else "It is missing a field."
                unreadable.append(Unreadable(remote_id, reason))
        more = context.get("has_more_page") is True
        return Page(
            records=records,
            next_cursor=str(page_number + 1) if more else None,
            marker=newest if newest != since else None,
            unreadable=unreadable,
        )

    def _read(self, entity: str, item: dict) -> list[BookRecord]:
        if entity == "contact":
            return [read_contact(item)]
        if entity == "invoice":
            return [read_invoice(item)]
        if entity == "credit_note":
            return [read_credit_note(item)]
        return read_payment(item)

    # -- find and push -----------------------------------------------------------------------

    def find(self, access: str, book: str, entity: str, number: str) -> BookRecord | None:
        kind = ENTITIES[entity]
        params = {kind.number_key: number}
        if entity == "contact":
            params["filter_by"] = "Status.All"
        answer = self._call("GET", f"/{kind.path}", access, book, params=params)
        for item in answer.get(kind.path) or []:
            if isinstance(item, dict) and item.get(kind.number_key) == number:
                if kind.detailed:
                    item = self._call("GET", f"/{kind.path}/{item[kind.id_key]}", access, book)
                    item = item[kind.one]
                try:
                    return self._read(entity, item)[0]
                except (_Unreadable, IndexError) as exc:
                    raise RecordRefused(f"Zoho Books holds {number} but it is unreadable.") from exc
        return None

    def push(self, access: str, book: str, entity: str, record: BookRecord, key: str):
        kind = ENTITIES[entity]
        if entity == "contact":
            body = contact_body(record)
        elif entity == "payment":
            body = payment_body(record)
        else:
            body = self._document_body(access, book, entity, record)
        remote_id = record.remote_id.split(":", 1)[0] if record.remote_id else None
        if remote_id:
            answer = self._call("PUT", f"/{kind.path}/{remote_id}", access, book, json=body)
        else:
            answer = self._call("POST", f"/{kind.path}", access, book, json=body)
        saved = answer.get(kind.one)
        if not isinstance(saved, dict) or not saved.get(kind.id_key):
            raise ProviderUnavailable(f"Zoho Books' answer holds no {kind.one}.")
        if entity in ("invoice", "credit_note") and record.state == "open":
            saved = self._open(access, book, kind, saved)
        if entity == "payment":
            return read_payment(saved, only_invoice=record.invoice_remote_id)[0]
        return self._read(entity, saved)[0]

    def _open(self, access: str, book: str, kind: _Entity, saved: dict) -> dict:
        """A document pushed as open is approved in Zoho: an invoice marked sent, a credit
        note marked open (a draft is neither chased nor counted)."""
        if DOCUMENT_STATE.get(str(saved.get("status"))) != "draft":
            return saved
        target = "sent" if kind.one == "invoice" else "open"
        path = f"/{kind.path}/{saved[kind.id_key]}"
        self._call("POST", f"{path}/status/{target}", access, book)
        return self._call("GET", path, access, book)[kind.one]

    def _document_body(self, access: str, book: str, entity: str, record) -> dict:
        # Only an Indian invoice names its place of supply: it decides CGST+SGST or IGST.
        supply = record.place_of_supply if entity == "invoice" else None
        inter_state = supply != self._home(access, book) if supply else None
        lines = [self._line_body(access, book, line, inter_state) for line in record.lines]
        body = {
            "customer_id": record.contact_remote_id,
            "date": record.issue_date.isoformat(),
            "line_items": lines,
        }
        if entity == "invoice":
            body["invoice_number"] = record.number
            if record.due_date:
                body["due_date"] = record.due_date.isoformat()
            if record.reference:
                body["reference_number"] = record.reference
            if zoho_state(record.place_of_supply):
                body["place_of_supply"] = zoho_state(record.place_of_supply)
        else:
            body["creditnote_number"] = record.number
            if record.invoice_remote_id:
                body["invoice_id"] = record.invoice_remote_id
            if record.reason:
                body["notes"] = record.reason
        return body

    def _line_body(self, access: str, book: str, line: BookLine, inter_state: bool | None):
        body = {
            "name": line.description[:100],
            "description": line.description,
            "rate": line.unit_price,
            "quantity": line.quantity,
        }
        if line.hsn_sac:
            body["hsn_or_sac"] = line.hsn_sac
        if line.tax_rate:
            body["tax_id"] = self._tax_id(access, book, line.tax_rate, inter_state)
        return body

    def _tax_id(self, access: str, book: str, rate: Decimal, inter_state: bool | None) -> str:
        """The organisation's tax of `rate`: in India the GST group (CGST+SGST) within the
        state, IGST across states; elsewhere the tax of that rate."""
        if book not in self._taxes:
            answer = self._call("GET", "/settings/taxes", access, book)
            self._taxes[book] = [t for t in answer.get("taxes") or [] if isinstance(t, dict)]
        candidates = [
            tax
            for tax in self._taxes[book]
            if _decimal(tax.get("tax_percentage")) == rate and tax.get("tax_id")
        ]
        if inter_state is not None:
            wanted = "igst" if inter_state else "tax_group"
            candidates = [
                tax
                for tax in candidates
                if (tax.get("tax_specific_type") == "igst") == inter_state
                and (inter_state or tax.get("tax_type") == wanted)
            ]
        if not candidates:
            where = {True: " (IGST)", False: " (CGST + SGST)", None: ""}[inter_state]
            raise RecordRefused(f"Zoho Books has no tax of {rate}%{where} in this organisation.")
        return str(candidates[0]["tax_id"])

    def _home(self, access: str, book: str) -> str | None:
        """The GST state code of the organisation's own address."""
        if book not in self._home_state:
            answer = self._call("GET", f"/organizations/{book}", access, book)
            address = (answer.get("organization") or {}).get("address") or {}
            self._home_state[book] = region_code(str(address.get("state") or ""))
        return self._home_state[book]


def _later(one: str, other: str) -> bool:
    first, second = parse_time(one), parse_time(other)
    return bool(first and second and first > second)


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None and not isinstance(value, bool) else None
    except InvalidOperation:
        return None


def _country_of(organisation: dict) -> str | None:
    address = organisation.get("address") if isinstance(organisation.get("address"), dict) else {}
    country = str(address.get("country") or "").strip().lower()
    return {"india": "IN", "australia": "AU"}.get(country) or (
        country.upper() if len(country) == 2 else None
    )


def _address(data) -> Address:
    if not isinstance(data, dict):
        return Address()
    country = str(data.get("country") or "").strip()
    return Address(
        line1=str(data.get("address") or data.get("street_address1") or "") or None,
        line2=str(data.get("street_address2") or "") or None,
        city=str(data.get("city") or "") or None,
        region=str(data.get("state") or "") or None,
        postal_code=str(data.get("zip") or "") or None,
        country=country.upper() if len(country) == 2 else None,
    )


def read_contact(item: dict) -> BookContact:
    name = str(item.get("contact_name") or "").strip()
    if not name:
        raise _Unreadable("The contact has no name.")
    currency = item.get("currency_code")
    return BookContact(
        remote_id=str(item["contact_id"]),
        name=name,
        email=str(item.get("email") or "") or None,
        phone=str(item.get("phone") or item.get("mobile") or "") or None,
        tax_number=str(item.get("gst_no") or item.get("tax_id_value") or "").upper() or None,
        currency=_currency(currency) if currency else None,
        address=_address(item.get("billing_address")),
        version=str(item.get("last_modified_time") or "") or None,
        updated_at=parse_time(item.get("last_modified_time")),
        deleted=item.get("status") == "inactive",
    )


def _lines(item: dict) -> tuple[BookLine, ...]:
    lines = []
    for number, line in enumerate(item.get("line_items") or [], start=1):
        if not isinstance(line, dict):
            raise _Unreadable(f"Line {number} is not a line item.")
        quantity = _decimal(line.get("quantity"))
        rate = _decimal(line.get("rate"))
        if quantity is None or rate is None:
            raise _Unreadable(f"Line {number} has no quantity or rate.")
        net = _money(line.get("item_total", quantity * rate), f"total of line {number}")
        tax_rate = _decimal(line.get("tax_percentage")) or Decimal(0)
        lines.append(
            BookLine(
                description=str(line.get("description") or line.get("name") or ""),
                quantity=quantity,
                unit_price=rate,
                net_amount=net,
                tax_rate=tax_rate,
                tax_amount=percent_of(net, tax_rate),
                hsn_sac=str(line.get("hsn_or_sac") or "") or None,
            )
        )
    return tuple(lines)


def _state(item: dict) -> str:
    status = str(item.get("status") or "")
    if status not in DOCUMENT_STATE:
        raise _Unreadable(f"Its status {status!r} is not one Duebook knows.")
    return DOCUMENT_STATE[status]


def read_invoice(item: dict) -> BookInvoice:
    number = str(item.get("invoice_number") or "").strip()
    if not number:
        raise _Unreadable("The invoice has no number.")
    customer = str(item.get("customer_id") or "")
    if not customer:
        raise _Unreadable("The invoice has no customer.")
    total = _money(item.get("total"), "total")
    return BookInvoice(
        remote_id=str(item["invoice_id"]),
        number=number,
        contact_remote_id=customer,
        issue_date=_day(item.get("date"), "invoice date"),
        due_date=_day(item.get("due_date"), "due date", required=False),
        currency=_currency(item.get("currency_code")),
        state=_state(item),
        lines=_lines(item),
        subtotal=_money(item.get("sub_total", total), "subtotal"),
        tax_total=_money(item.get("tax_total", 0), "tax total"),
        total=total,
        amount_due=_money(item.get("balance", total), "balance"),
        place_of_supply=state_of_supply(item.get("place_of_supply")),
        reference=str(item.get("reference_number") or "") or None,
        version=str(item.get("last_modified_time") or "") or None,
        updated_at=parse_time(item.get("last_modified_time")),
    )


def read_credit_note(item: dict) -> BookCreditNote:
    number = str(item.get("creditnote_number") or "").strip()
    if not number:
        raise _Unreadable("The credit note has no number.")
    total = _money(item.get("total"), "total")
    subtotal = _money(item.get("sub_total", total), "subtotal")
    return BookCreditNote(
        remote_id=str(item["creditnote_id"]),
        number=number,
        contact_remote_id=str(item.get("customer_id") or ""),
        issue_date=_day(item.get("date"), "credit note date"),
        currency=_currency(item.get("currency_code")),
        state=_state(item),
        lines=_lines(item),
        subtotal=subtotal,
        # A credit note carries no tax_total: its tax is what the total adds to the subtotal.
        tax_total=total - subtotal,
        total=total,
        invoice_remote_id=str(item.get("invoice_id") or "") or None,
        reason=str(item.get("notes") or "") or None,
        version=str(item.get("last_modified_time") or "") or None,
        updated_at=parse_time(item.get("last_modified_time")),
    )


def read_payment(item: dict, only_invoice: str | None = None) -> list[BookPayment]:
    """One BookPayment per invoice the payment pays (`only_invoice`: just that one)."""
    paid_on = _day(item.get("date"), "payment date")
    currency = _currency(item.get("currency_code"))
    payments = []
    for applied in item.get("invoices") or []:
        if not isinstance(applied, dict) or not applied.get("invoice_id"):
            raise _Unreadable("The payment names an invoice without its id.")
        invoice_id = str(applied["invoice_id"])
        if only_invoice and invoice_id != only_invoice:
            continue
        payments.append(
            BookPayment(
                remote_id=f"{item['payment_id']}:{invoice_id}",
                invoice_remote_id=invoice_id,
                contact_remote_id=str(item.get("customer_id") or "") or None,
                paid_on=paid_on,
                amount=_money(applied.get("amount_applied"), "amount applied"),
                currency=currency,
                reference=str(item.get("reference_number") or "") or None,
                version=str(item.get("last_modified_time") or "") or None,
                updated_at=parse_time(item.get("last_modified_time")),
            )
        )
    if not payments:
        raise _Unreadable("The payment pays no invoice.")
    return payments


def contact_body(contact: BookContact) -> dict:
    body = {"contact_name": contact.name, "company_name": contact.name, "contact_type": "customer"}
    if contact.email or contact.phone:
        person = {"is_primary_contact": True}
        if contact.email:
            person["email"] = contact.email
        if contact.phone:
            person["phone"] = contact.phone
        body["contact_persons"] = [person]
    if contact.currency:
        body["currency_code"] = contact.currency
    tax_number = (contact.tax_number or "").upper()
    if tax_number and tax_number[:2] in GST_STATES and len(tax_number) == 15:
        body["gst_no"] = tax_number
        body["gst_treatment"] = "business_gst"
        body["place_of_contact"] = zoho_state(tax_number[:2])
    elif tax_number:
        body["tax_id_value"] = tax_number
    address = contact.address
    billing = {
        "address": address.line1,
        "street_address2": address.line2,
        "city": address.city,
        "state": address.region,
        "zip": address.postal_code,
        "country": address.country,
    }
    billing = {key: value for key, value in billing.items() if value}
    if billing:
        body["billing_address"] = billing
    return body


def payment_body(payment: BookPayment) -> dict:
    body = {
        "customer_id": payment.contact_remote_id,
        "payment_mode": "banktransfer",
        "amount": payment.amount,
        "date": payment.paid_on.isoformat(),
        "invoices": [{"invoice_id": payment.invoice_remote_id, "amount_applied": payment.amount}],
    }
    if payment.reference:
        body["reference_number"] = payment.reference
    return body
