"""Local stand-in for Xero's identity service and the part of its Accounting API the Xero
connector uses, for tests, the `make run` sandbox and benchmarks.

Contract followed (providers.md §3; Xero's OpenAPI documents xero_accounting.yaml,
xero-identity.yaml and xero-webhooks.yaml, copied trimmed into tests/contracts/xero, whose
tests check every answer here against them; xero-python, Xero's SDK, reads and writes here):
- OAuth 2.0: `GET /identity/connect/authorize` shows the consent page (the app asks for access;
  the person picks one organisation when there are several; "Allow access" redirects to
  `redirect_uri` with `code`, `state` and `scope`, "Cancel" with `error=access_denied`).
  `POST /connect/token` checks the client (HTTP Basic or form), the code's redirect_uri and
  the PKCE verifier (S256), and answers `{id_token, access_token, expires_in: 1800,
  token_type: "Bearer", refresh_token}` (the identity document's AccessToken; the granted
  scope is the one asked for). Refresh tokens rotate: a used one is
  answered again with the same new tokens for `refresh_grace` seconds (Xero: 30 minutes, for a
  lost answer), then with 400 `invalid_grant`, as is a revoked one.
- `GET /connections` (also `/Connections`, as the SDK spells it) lists the organisations the
  token reaches; `DELETE /connections/{id}` disconnects one (204).
- `/api.xro/2.0/{Contacts,Invoices,CreditNotes,Payments}`: GET lists (If-Modified-Since on
  UpdatedDateUTC, `where` with `==`/`!=` clauses joined by `&&`/`AND`, `order`, `page` of
  100 or `pageSize` up to 1,000, IDs, InvoiceNumbers, ContactIDs, Statuses, includeArchived),
  GET by id, PUT creates, POST creates or updates, POST by id updates; payments are deleted
  with `{"Status": "DELETED"}`; `PUT /CreditNotes/{id}/Allocations`; `GET /Organisation`.
  Dates leave as `/Date(ms+0000)/`; amounts as JSON numbers (kept as Decimal inside).
  Only properties the document declares are answered (Xero adds Id, Status, ProviderName and
  DateTimeUTC to its wrappers, which the document does not declare).
- Validation as Xero words it: with `summarizeErrors=false` a refused record comes back in a
  200 with `HasErrors`/`ValidationErrors`; otherwise a 400 ValidationException with Elements.
- `Idempotency-Key` (at most 128 characters): a repeated key with the same request answers the
  first answer again and changes nothing; with another request, 400.
- `xero-tenant-id` is required (403 without it, or for an organisation the token does not
  reach); a bad or revoked token is 401.
- Limits per organisation: 60 a minute, 5,000 a day, 5 at once (constructor arguments and
  `--per-minute`/`--per-day`/`--concurrent`); over one, 429 with `Retry-After` and
  `X-Rate-Limit-Problem` (minute, day or concurrent); every answer carries
  `X-MinLimit-Remaining`, `X-DayLimit-Remaining` and `X-AppMinLimit-Remaining`.
- Webhooks: each change to a contact, invoice or credit note is POSTed to `webhook_url` as
  Xero's event body, signed `x-xero-signature` = base64(HMAC-SHA256(webhook key, body)).
  `POST /_standin/xero/intent-to-receive` sends the handshake (one correctly and one wrongly
  signed delivery with no events) and answers the two statuses the receiver gave.

Sandbox operations (`/_standin/xero/...`): `books` (GET: every organisation's records as JSON),
`edit` (POST {tenant, entity, id, changes}: an accountant's change, e.g. a name or a status),
`add-invoice`, `add-contact`, `revoke` (every token, as a disconnect in Xero does), `slow`
({seconds, count}: answers that late), `truncate` ({count}: bodies cut short), besides the
base's `/_standin/faults` (500/429) and stats.

Not implemented: accounts payable, bank transactions, items, attachments, history, tracking,
multi-currency rates, `summaryOnly`, `searchTerm`, `unitdp`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import random
import re
import secrets
import threading
import time
import uuid
from collections import deque
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from urllib.parse import urlencode

import httpx

from app.core.tax_ids import gstin_check_character

from .base import Fault, Request, Response, StandinServer, json_response

DEFAULT_CLIENT_ID = "SANDBOXXEROCLIENTID0000000000000"
DEFAULT_CLIENT_SECRET = "sandbox-xero-client-secret-000000000000000000"
DEFAULT_WEBHOOK_KEY = "sandbox-xero-webhook-key"
ACCESS_SECONDS = 1800
CODE_SECONDS = 300
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
API = "/api.xro/2.0"
CENT = Decimal("0.01")
ENTITIES = {
    "Contacts": ("ContactID", "contact"),
    "Invoices": ("InvoiceID", "invoice"),
    "CreditNotes": ("CreditNoteID", "credit_note"),
    "Payments": ("PaymentID", "payment"),
}
WEBHOOK_CATEGORIES = {"Contacts": "CONTACT", "Invoices": "INVOICE", "CreditNotes": "CREDITNOTE"}
# Accounts of a new organisation's chart the stand-in knows: code -> (type, name).
ACCOUNTS = {
    "090": ("BANK", "Business Bank Account"),
    "091": ("BANK", "Business Savings Account"),
    "200": ("REVENUE", "Sales"),
    "260": ("OTHERINCOME", "Other Revenue"),
}
# Tax rates per country: TaxType -> percent. India's are the custom rates an Indian
# organisation keeps (Xero has no GST of its own there): CGST+SGST within the state, IGST across.
TAX_RATES = {
    "IN": {
        "NONE": Decimal("0"),
        "TAX001": Decimal("5"),
        "TAX002": Decimal("5"),
        "TAX003": Decimal("12"),
        "TAX004": Decimal("12"),
        "TAX005": Decimal("18"),
        "TAX006": Decimal("18"),
        "TAX007": Decimal("28"),
        "TAX008": Decimal("28"),
    },
    "AU": {"OUTPUT": Decimal("10"), "EXEMPTOUTPUT": Decimal("0"), "BASEXCLUDED": Decimal("0")},
}
MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
CLAUSE = re.compile(r"^\s*([A-Za-z.]+)\s*(==|!=)\s*(.+?)\s*$")
BY_ID = re.compile(r"^/(Contacts|Invoices|CreditNotes|Payments)/([0-9a-fA-F-]{36})$")
ALLOCATIONS = re.compile(r"^/CreditNotes/([0-9a-fA-F-]{36})/Allocations$")


def xero_signature(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def ms_date(value) -> str:
    if isinstance(value, datetime):
        moment = value.astimezone(UTC)
    else:
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


def _wire(value):
    """A record as Xero writes it: dates in the MS form, amounts as numbers (marked for
    `_dumps`), nothing null."""
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items() if v is not None and not k.startswith("_")}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    if isinstance(value, datetime | date):
        return ms_date(value)
    return value


def _dumps(payload) -> bytes:
    def text(value):
        if isinstance(value, Decimal):
            return f"\x00{value}\x00"
        raise TypeError(f"{type(value).__name__} is not JSON")

    encoded = json.dumps(_wire(payload), default=text, ensure_ascii=False)
    return re.sub(r'"\\u0000(-?[0-9.E+]+)\\u0000"', r"\1", encoded).encode()


def xero_response(status: int, payload, headers=None) -> Response:
    return Response(
        status, _dumps(payload), [("Content-Type", "application/json"), *(headers or [])]
    )


def _money(value) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise _Refused("An amount is missing.")
    try:
        return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise _Refused(f"'{value}' is not a valid amount.") from None


def _date(value, what: str) -> date:
    text = str(value or "").strip()
    match = MS_DATE.match(text)
    try:
        if match:
            return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC).date()
        return datetime.fromisoformat(text).date() if "T" in text else date.fromisoformat(text)
    except ValueError:
        raise _Refused(f"{what} '{text}' is not a valid date.") from None


class _Refused(Exception):
    """One record's validation error, in Xero's words."""


def demo_gstin(state: str, pan: str) -> str:
    first = f"{state}{pan}1Z"
    return first + gstin_check_character(first)


class XeroStandin(StandinServer):
    """Xero stand-in. See the module docstring for the contract."""

    name = "xero"
    default_status_script = ()

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        webhook_key: str = DEFAULT_WEBHOOK_KEY,
        per_minute: int = 60,
        per_day: int = 5000,
        concurrent: int = 5,
        refresh_grace: float = 1800.0,
        seed: str | None = None,
        seed_contacts: int = 0,
        seed_invoices: int = 0,
        write_faults: float = 0.0,
        **common,
    ) -> None:
        super().__init__(**common)
        self.write_faults = write_faults
        # Seeded: a drill that fails the same writes can be run again.
        self._fault_dice = random.Random(19)
        self.write_faults_answered = 0
        self.client_id = client_id
        self.client_secret = client_secret
        self.webhook_key = webhook_key
        self.per_minute = per_minute
        self.per_day = per_day
        self.concurrent = concurrent
        self.refresh_grace = refresh_grace
        self._state = threading.RLock()
        self._seed = (seed, seed_contacts, seed_invoices)
        self.reset_state()

    # -- state ---------------------------------------------------------------------------------

    def reset_state(self) -> None:
        with self._state:
            self.organisations: dict[str, dict] = {}
            self.codes: dict[str, dict] = {}
            self.access_tokens: dict[str, dict] = {}
            self.refresh_tokens: dict[str, dict] = {}
            self.grants: dict[str, dict] = {}
            self.by_key: dict[tuple[str, str], tuple[str, Response]] = {}
            self.minute_calls: dict[str, deque] = {}
            self.day_calls: dict[str, tuple[date, int]] = {}
            self.in_flight: dict[str, int] = {}
            self.slow: tuple[float, int] = (0.0, 0)
            self.truncate = 0
            self._sequence = 0
            self._last_stamp: datetime | None = None
            seed, contacts, invoices = self._seed
            # Seeding announces nothing: the subscriber is not listening yet.
            self._announce = False
            self.demo = self.add_organisation(
                "Demo Traders Private Limited", "IN", "INR", "29AAPFU0939F1ZR"
            )
            if seed == "demo":
                self.add_organisation(
                    "Harbour Supplies Pty Ltd", "AU", "AUD", "51824753556", region="NSW"
                )
                self._seed_demo(self.demo)
            if contacts or invoices:
                self.seed_bulk(self.demo, contacts, invoices)
            self._announce = True

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def add_organisation(
        self, name: str, country: str, currency: str, tax_number: str, region: str | None = None
    ) -> str:
        tenant = str(uuid.uuid4())
        with self._state:
            self.organisations[tenant] = {
                "OrganisationID": tenant,
                "Name": name,
                "LegalName": name,
                "PaysTax": True,
                "Version": "AU" if country == "AU" else "GLOBAL",
                "OrganisationType": "COMPANY",
                "BaseCurrency": currency,
                "CountryCode": country,
                "IsDemoCompany": False,
                "OrganisationStatus": "ACTIVE",
                "TaxNumber": tax_number,
                "FinancialYearEndDay": 31,
                "FinancialYearEndMonth": 3 if country == "IN" else 6,
                "CreatedDateUTC": self.now(),
                "Timezone": "INDIASTANDARDTIME" if country == "IN" else "AUSEASTERNSTANDARDTIME",
                "ShortCode": "!" + secrets.token_hex(2),
                "Addresses": [
                    {"AddressType": "POBOX", "Region": region or "Karnataka", "Country": country}
                ],
                "_books": {entity: {} for entity in ENTITIES},
                # Contacts with a sales invoice: Xero's IsCustomer.
                "_customers": set(),
            }
        return tenant

    def books(self, tenant: str, collection: str) -> dict[str, dict]:
        return self.organisations[tenant]["_books"][collection]

    def _touch(self, tenant: str, collection: str, record: dict, created: bool) -> None:
        """Stamps UpdatedDateUTC (strictly increasing, so If-Modified-Since never loses a change
        made in the same millisecond) and tells the webhook subscriber."""
        with self._state:
            now = self.now()
            moment = now.replace(microsecond=now.microsecond // 1000 * 1000)
            last = self._last_stamp
            if last is not None and moment <= last:
                moment = last + timedelta(milliseconds=1)
            self._last_stamp = moment
            record["UpdatedDateUTC"] = moment
        category = WEBHOOK_CATEGORIES.get(collection)
        if category and self.webhook_url and self._announce:
            id_field = ENTITIES[collection][0]
            event = {
                "resourceUrl": f"{self.url}{API}/{collection}/{record[id_field]}",
                "resourceId": record[id_field],
                "eventDateUtc": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
                "eventType": "CREATE" if created else "UPDATE",
                "eventCategory": category,
                "tenantId": tenant,
                "tenantType": "ORGANISATION",
            }
            self.send_events([event])

    def send_events(self, events: list[dict], key: str | None = None) -> None:
        with self._state:
            self._sequence += 1
            sequence = self._sequence
        body = json.dumps(
            {
                "events": events,
                "firstEventSequence": sequence,
                "lastEventSequence": sequence,
                "entropy": secrets.token_hex(10).upper(),
            },
            separators=(",", ":"),
        ).encode()
        signature = xero_signature(key or self.webhook_key, body)
        self.webhooks.post(
            self.webhook_url,
            body,
            {"Content-Type": "application/json", "x-xero-signature": signature},
        )

    # -- dispatch ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        if path == "/identity/connect/authorize":
            return self._authorize(request)
        if path == "/connect/token" and request.method == "POST":
            return self._token(request)
        if path.lower().startswith("/connections"):
            return self._connections(request)
        if path.startswith(API + "/") or path == API:
            return self._api(request, path[len(API) :])
        return json_response(404, {"Title": "Not found", "Status": 404})

    def fault_response(self, fault: Fault) -> Response:
        if fault.status == 429:
            # The base adds Retry-After when the fault names one.
            wait = [] if fault.retry_after is not None else [("Retry-After", "60")]
            return Response(429, b"", [("X-Rate-Limit-Problem", "minute"), *wait])
        return json_response(
            fault.status,
            {"Title": "An error occurred", "Detail": fault.message or "injected fault"},
        )

    # -- consent page and tokens ---------------------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        values = (
            request.form()
            if request.method == "POST"
            else {k: v[-1] for k, v in request.query.items()}
        )
        if values.get("client_id") != self.client_id:
            return _page(400, "<h1>Unknown app</h1><p>No Xero app has this client id.</p>")
        redirect = values.get("redirect_uri") or ""
        if values.get("response_type") != "code" or not redirect.startswith(
            ("http://", "https://")
        ):
            return _page(400, "<h1>Bad request</h1><p>response_type=code and a redirect_uri.</p>")
        if values.get("code_challenge") and values.get("code_challenge_method") != "S256":
            return _page(400, "<h1>Bad request</h1><p>code_challenge_method must be S256.</p>")
        state = values.get("state") or ""
        if request.method == "POST":
            separator = "&" if "?" in redirect else "?"
            if values.get("decision") != "allow":
                query = urlencode({"error": "access_denied", "state": state})
                return Response(302, b"", [("Location", f"{redirect}{separator}{query}")])
            tenant = values.get("tenant")
            if tenant not in self.organisations:
                return _page(400, "<h1>Pick an organisation</h1>")
            code = secrets.token_urlsafe(24)
            with self._state:
                self.codes[code] = {
                    "redirect_uri": redirect,
                    "challenge": values.get("code_challenge"),
                    "scope": values.get("scope") or "",
                    "tenant": tenant,
                    "expires": self.clock() + CODE_SECONDS,
                }
            query = urlencode({"code": code, "scope": values.get("scope") or "", "state": state})
            return Response(302, b"", [("Location", f"{redirect}{separator}{query}")])
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in values.items()
        )
        organisations = list(self.organisations.values())
        choices = "".join(
            f'<p><label><input type="radio" name="tenant" value="{o["OrganisationID"]}"'
            f"{' checked' if n == 0 else ''}> {html.escape(o['Name'])}</label></p>"
            for n, o in enumerate(organisations)
        )
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in (values.get("scope") or "").split())
        return _page(
            200,
            "<h1>Duebook wants access to your Xero organisation</h1>"
            f"<p>It asks to:</p><ul>{scopes}</ul>"
            f'<form method="post" action="/identity/connect/authorize">{hidden}'
            f"<fieldset><legend>Organisation</legend>{choices}</fieldset>"
            '<button name="decision" value="allow">Allow access</button> '
            '<button name="decision" value="cancel">Cancel</button></form>',
        )

    def _client_ok(self, request: Request, form: dict) -> bool:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client, _, secret = base64.b64decode(credential).decode().partition(":")
            except ValueError:
                return False
        else:
            client, secret = form.get("client_id", ""), form.get("client_secret", "")
        return hmac.compare_digest(client, self.client_id) and hmac.compare_digest(
            secret, self.client_secret
        )

    def _token(self, request: Request) -> Response:
        form = request.form()
        if not self._client_ok(request, form):
            return json_response(400, {"error": "invalid_client"})
        grant = form.get("grant_type")
        with self._state:
            if grant == "authorization_code":
                code = self.codes.pop(form.get("code", ""), None)
                if code is None or code["expires"] < self.clock():
                    return json_response(400, {"error": "invalid_grant"})
                if code["redirect_uri"] != form.get("redirect_uri"):
                    return json_response(400, {"error": "invalid_grant"})
                if code["challenge"]:
                    verifier = form.get("code_verifier", "")
                    digest = hashlib.sha256(verifier.encode()).digest()
                    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                    if not hmac.compare_digest(expected, code["challenge"]):
                        return json_response(400, {"error": "invalid_grant"})
                grant_id = str(uuid.uuid4())
                self.grants[grant_id] = {
                    "tenants": {str(uuid.uuid4()): code["tenant"]},
                    "scope": code["scope"],
                    "revoked": False,
                    "created": self.now(),
                }
                return json_response(200, self._issue(grant_id))
            if grant == "refresh_token":
                token = self.refresh_tokens.get(form.get("refresh_token", ""))
                if token is None or self.grants[token["grant"]]["revoked"]:
                    return json_response(400, {"error": "invalid_grant"})
                if token["used"] is not None:
                    used_at, answer = token["used"]
                    if self.clock() - used_at <= self.refresh_grace:
                        return json_response(200, answer)
                    return json_response(400, {"error": "invalid_grant"})
                answer = self._issue(token["grant"])
                token["used"] = (self.clock(), answer)
                return json_response(200, answer)
        return json_response(400, {"error": "unsupported_grant_type"})

    def _issue(self, grant_id: str) -> dict:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.access_tokens[access] = {"grant": grant_id, "expires": self.clock() + ACCESS_SECONDS}
        self.refresh_tokens[refresh] = {"grant": grant_id, "used": None}
        return {
            "id_token": secrets.token_urlsafe(16),
            "access_token": access,
            "expires_in": ACCESS_SECONDS,
            "token_type": "Bearer",
            "refresh_token": refresh,
        }

    def revoke(self) -> None:
        with self._state:
            for grant in self.grants.values():
                grant["revoked"] = True

    def grant_token(self, tenants: list[str] | None = None) -> dict:
        """Tokens reaching `tenants` (default: every organisation), as if consent was given:
        for tests and the sandbox."""
        with self._state:
            grant_id = str(uuid.uuid4())
            self.grants[grant_id] = {
                "tenants": {str(uuid.uuid4()): t for t in tenants or list(self.organisations)},
                "scope": "offline_access accounting.transactions accounting.contacts",
                "revoked": False,
                "created": self.now(),
            }
            return self._issue(grant_id)

    def _grant_of(self, request: Request) -> dict | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._state:
            access = self.access_tokens.get(token) if scheme.lower() == "bearer" else None
            if access is None or access["expires"] < self.clock():
                return None
            grant = self.grants[access["grant"]]
            return None if grant["revoked"] else grant

    def _connections(self, request: Request) -> Response:
        grant = self._grant_of(request)
        if grant is None:
            return _unauthorized()
        parts = request.path.strip("/").split("/")
        if request.method == "DELETE" and len(parts) == 2:
            with self._state:
                if grant["tenants"].pop(parts[1], None) is None:
                    return Response(404)
            return Response(204)
        if request.method != "GET" or len(parts) != 1:
            return json_response(405, {"Title": "Method not allowed"})
        created = grant["created"].strftime("%Y-%m-%dT%H:%M:%S.%f")
        return json_response(
            200,
            [
                {
                    "id": connection,
                    "authEventId": connection,
                    "tenantId": tenant,
                    "tenantType": "ORGANISATION",
                    "tenantName": self.organisations[tenant]["Name"],
                    "createdDateUtc": created,
                    "updatedDateUtc": created,
                }
                for connection, tenant in grant["tenants"].items()
                if tenant in self.organisations
            ],
        )

    # -- the accounting API ------------------------------------------------------------------

    def _api(self, request: Request, path: str) -> Response:
        grant = self._grant_of(request)
        if grant is None:
            return _unauthorized()
        tenant = request.headers.get("xero-tenant-id", "")
        if tenant not in grant["tenants"].values() or tenant not in self.organisations:
            return json_response(
                403,
                {
                    "Type": None,
                    "Title": "Forbidden",
                    "Status": 403,
                    "Detail": "AuthenticationUnsuccessful",
                },
            )
        limited = self._over_limit(tenant)
        if limited:
            return limited
        with self._state:
            self.in_flight[tenant] = self.in_flight.get(tenant, 0) + 1
        try:
            fault = self.take_fault() or self._write_fault(request, path, tenant)
            response = fault or self._route(request, path, tenant)
            delay = 0.0
            with self._state:
                seconds, count = self.slow
                if count:
                    delay, self.slow = seconds, (seconds, count - 1)
                if self.truncate and response.body:
                    self.truncate -= 1
                    response = Response(
                        response.status, response.body[: len(response.body) // 2], response.headers
                    )
            if delay:
                time.sleep(delay)
        finally:
            with self._state:
                self.in_flight[tenant] -= 1
        response.headers += self._remaining(tenant)
        return response

    def _write_fault(self, request: Request, path: str, tenant: str) -> Response | None:
        if request.method not in ("PUT", "POST") or not self.write_faults:
            return None
        with self._state:
            if self._fault_dice.random() >= self.write_faults:
                return None
            kind = self._fault_dice.choice(("429", "500 before", "500 after"))
            self.write_faults_answered += 1
        self.stats_counters.add("failed")
        if kind == "429":
            self.stats_counters.add("throttled")
            return Response(429, b"", [("Retry-After", "1"), ("X-Rate-Limit-Problem", "minute")])
        if kind == "500 after":
            self._route(request, path, tenant)  # written; the answer is lost
        return json_response(500, {"Title": "An error occurred", "Detail": "write fault"})

    def stats(self, per_key: bool = True) -> dict:
        return {**super().stats(per_key), "write_faults": self.write_faults_answered}

    def _over_limit(self, tenant: str) -> Response | None:
        now = time.monotonic()
        today = self.now().date()
        with self._state:
            calls = self.minute_calls.setdefault(tenant, deque())
            while calls and calls[0] <= now - 60:
                calls.popleft()
            day, used = self.day_calls.get(tenant, (today, 0))
            if day != today:
                day, used = today, 0
            problem, wait = None, 0
            if used >= self.per_day:
                tomorrow = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
                problem, wait = "day", int((tomorrow - self.now()).total_seconds()) + 1
            elif len(calls) >= self.per_minute:
                problem, wait = "minute", int(calls[0] + 60 - now) + 1
            elif self.in_flight.get(tenant, 0) >= self.concurrent:
                problem, wait = "concurrent", 1
            if problem is None:
                calls.append(now)
                self.day_calls[tenant] = (day, used + 1)
                return None
        self.stats_counters.add("throttled")
        return Response(
            429,
            b"",
            [("Retry-After", str(wait)), ("X-Rate-Limit-Problem", problem)]
            + self._remaining(tenant),
        )

    def _remaining(self, tenant: str) -> list[tuple[str, str]]:
        with self._state:
            minute = max(0, self.per_minute - len(self.minute_calls.get(tenant, ())))
            day = max(0, self.per_day - self.day_calls.get(tenant, (None, 0))[1])
        return [
            ("X-MinLimit-Remaining", str(minute)),
            ("X-DayLimit-Remaining", str(day)),
            ("X-AppMinLimit-Remaining", "9999"),
        ]

    def _route(self, request: Request, path: str, tenant: str) -> Response:
        method = request.method
        if path == "/Organisation" and method == "GET":
            return xero_response(200, {"Organisations": [self.organisations[tenant]]})
        allocation = ALLOCATIONS.match(path)
        if allocation and method == "PUT":
            return self._idempotent(
                request, tenant, lambda: self._allocate(request, tenant, allocation.group(1))
            )
        by_id = BY_ID.match(path)
        collection = by_id.group(1) if by_id else path.lstrip("/")
        if collection not in ENTITIES:
            return json_response(404, {"Title": "Resource not found", "Status": 404})
        if method == "GET":
            if by_id:
                record = self.books(tenant, collection).get(by_id.group(2).lower())
                if record is None:
                    return json_response(404, {"Title": "Resource not found", "Status": 404})
                return xero_response(200, {collection: [self._public(tenant, collection, record)]})
            return self._list(request, tenant, collection)
        if method in ("PUT", "POST"):
            return self._idempotent(
                request,
                tenant,
                lambda: self._write(request, tenant, collection, by_id.group(2) if by_id else None),
            )
        return json_response(405, {"Title": "Method not allowed"})

    def _idempotent(self, request: Request, tenant: str, write) -> Response:
        key = request.headers.get("idempotency-key")
        if not key:
            return write()
        if len(key) > 128:
            return _validation_exception(["The Idempotency-Key is longer than 128 characters."])
        fingerprint = hashlib.sha256(
            f"{request.method} {request.path}?{sorted(request.query.items())}".encode()
            + request.body
        ).hexdigest()
        with self._state:
            stored = self.by_key.get((tenant, key))
            self.count_key(key)
            if stored is None:
                answer = write()
                if answer.status < 500:
                    self.by_key[(tenant, key)] = (fingerprint, answer)
                return answer
        if stored[0] != fingerprint:
            return _validation_exception(
                ["This Idempotency-Key was already used with a different request."]
            )
        self.stats_counters.add("duplicate_keys")
        return stored[1]

    def _list(self, request: Request, tenant: str, collection: str) -> Response:
        records = list(self.books(tenant, collection).values())
        since_text = request.headers.get("if-modified-since")
        if since_text:
            try:
                since = datetime.fromisoformat(since_text.replace("Z", "+00:00"))
            except ValueError:
                return _validation_exception([f"If-Modified-Since '{since_text}' is not a date."])
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
            records = [r for r in records if r["UpdatedDateUTC"] >= since]
        if collection == "Contacts" and request.arg("includeArchived") != "true":
            records = [r for r in records if r.get("ContactStatus") != "ARCHIVED"]
        lists = {
            "IDs": ENTITIES[collection][0],
            "InvoiceNumbers": "InvoiceNumber",
            "Statuses": "Status",
        }
        for parameter, name in lists.items():
            wanted = request.arg(parameter)
            if wanted:
                values = {v.strip().lower() for v in wanted.split(",")}
                records = [r for r in records if str(r.get(name, "")).lower() in values]
        contact_ids = request.arg("ContactIDs")
        if contact_ids:
            values = {v.strip().lower() for v in contact_ids.split(",")}
            records = [r for r in records if r["Contact"]["ContactID"] in values]
        # Filter and sort the stored records, and dress only the page as Xero shows it: a
        # benchmark's 50,000 invoices are read a page at a time.
        where = request.arg("where")
        if where:
            try:
                test = _where(where)
            except ValueError as error:
                return _validation_exception([str(error)])
            records = [
                r for r in records if test(r, lambda r=r: self._public(tenant, collection, r))
            ]
        order = (request.arg("order") or "").split()
        if order:
            reverse = len(order) > 1 and order[1].upper() == "DESC"
            id_field = ENTITIES[collection][0]
            records.sort(
                key=lambda r: (_sort_key(r.get(order[0])), str(r.get(id_field))),
                reverse=reverse,
            )
        size = PAGE_SIZE
        if request.arg("pageSize"):
            size = max(1, min(MAX_PAGE_SIZE, int(request.arg("pageSize"))))
        page_text = request.arg("page")
        payload: dict = {}
        if page_text:
            page = max(1, int(page_text))
            total = len(records)
            records = records[(page - 1) * size : page * size]
            payload["pagination"] = {
                "page": page,
                "pageSize": size,
                "pageCount": (total + size - 1) // size,
                "itemCount": total,
            }
        payload[collection] = [self._public(tenant, collection, r) for r in records]
        return xero_response(200, payload)

    # -- records as Xero shows them ------------------------------------------------------------

    def _public(self, tenant: str, collection: str, record: dict) -> dict:
        if collection == "Contacts":
            customer = record["ContactID"] in self.organisations[tenant]["_customers"]
            return {**record, "IsCustomer": customer, "IsSupplier": False}
        if collection in ("Invoices", "CreditNotes"):
            contact = self.books(tenant, "Contacts").get(record["Contact"]["ContactID"], {})
            return {
                **record,
                "Contact": {"ContactID": contact.get("ContactID"), "Name": contact.get("Name")},
            }
        if collection == "Payments":
            invoice = self.books(tenant, "Invoices")[record["_invoice"]]
            contact = self.books(tenant, "Contacts").get(invoice["Contact"]["ContactID"], {})
            return {
                **record,
                "Invoice": {
                    "InvoiceID": invoice["InvoiceID"],
                    "InvoiceNumber": invoice["InvoiceNumber"],
                    "Type": invoice["Type"],
                    "CurrencyCode": invoice["CurrencyCode"],
                    "Contact": {"ContactID": contact.get("ContactID"), "Name": contact.get("Name")},
                },
            }
        return record

    # -- writes --------------------------------------------------------------------------------

    def _write(
        self, request: Request, tenant: str, collection: str, record_id: str | None
    ) -> Response:
        try:
            body = json.loads(request.body or b"null", parse_float=Decimal)
        except ValueError:
            return _validation_exception(["The request body is not JSON."])
        if collection == "Payments" and record_id is None and request.method == "POST":
            items = [body]  # the single-payment POST takes one Payment, not a list
        elif collection == "Payments" and record_id:
            items = [body]
        else:
            items = (body or {}).get(collection) if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return _validation_exception([f"The body holds no list of {collection}."])
        summarize = request.arg("summarizeErrors", "true") != "false"
        answers, refused = [], False
        for item in items:
            if record_id:
                item = {**item, ENTITIES[collection][0]: record_id}
            try:
                with self._state:
                    saved = self._save(
                        tenant, collection, item, create_only=request.method == "PUT"
                    )
                answers.append(self._public(tenant, collection, saved))
                self.stats_counters.add("accepted")
            except _Refused as error:
                refused = True
                self.stats_counters.add("rejected")
                answers.append(
                    {
                        **{
                            k: v
                            for k, v in item.items()
                            if k in ("Name", "InvoiceNumber", "CreditNoteNumber", "Reference")
                        },
                        "HasErrors"
                        if collection in ("Invoices", "CreditNotes")
                        else "HasValidationErrors": True,
                        "ValidationErrors": [{"Message": str(error)}],
                    }
                )
        if refused and (summarize or collection == "Payments" and request.method == "POST"):
            messages = [e["Message"] for a in answers for e in a.get("ValidationErrors", [])]
            return _validation_exception(messages)
        return xero_response(200, {collection: answers})

    def _save(self, tenant: str, collection: str, item: dict, create_only: bool) -> dict:
        id_field = ENTITIES[collection][0]
        books = self.books(tenant, collection)
        record_id = str(item.get(id_field) or "").lower() or None
        existing = books.get(record_id) if record_id else None
        if record_id and existing is None:
            raise _Refused(f"No {collection[:-1]} was found with the id {record_id}.")
        if existing and create_only:
            raise _Refused(f"PUT creates; {record_id} exists already. Use POST to update it.")
        save = {
            "Contacts": self._save_contact,
            "Invoices": self._save_document,
            "CreditNotes": self._save_document,
            "Payments": self._save_payment,
        }[collection]
        record = save(tenant, collection, item, existing)
        books[record[id_field]] = record
        self._touch(tenant, collection, record, created=existing is None)
        return record

    def _save_contact(self, tenant, collection, item, existing) -> dict:
        record = dict(existing or {"ContactID": str(uuid.uuid4()), "ContactStatus": "ACTIVE"})
        name = str(item.get("Name", record.get("Name") or "")).strip()
        if not name:
            raise _Refused("The contact name must be specified.")
        for other in self.books(tenant, "Contacts").values():
            if (
                other["ContactID"] != record["ContactID"]
                and other.get("ContactStatus") == "ACTIVE"
                and other["Name"].lower() == name.lower()
            ):
                raise _Refused(
                    f"The contact name {name} is already assigned to another contact. The "
                    "contact name must be unique across all active contacts."
                )
        record["Name"] = name
        for field in ("EmailAddress", "TaxNumber", "DefaultCurrency", "FirstName", "LastName"):
            if field in item:
                record[field] = item[field] or None
        if "ContactStatus" in item:
            if item["ContactStatus"] not in ("ACTIVE", "ARCHIVED"):
                raise _Refused(f"'{item['ContactStatus']}' is not a contact status.")
            record["ContactStatus"] = item["ContactStatus"]
        email = record.get("EmailAddress")
        if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            raise _Refused("Email address must be valid.")
        if "Addresses" in item:
            record["Addresses"] = [
                {k: v for k, v in a.items() if v} for a in item["Addresses"] or []
            ]
        if "Phones" in item:
            record["Phones"] = [{k: v for k, v in p.items() if v} for p in item["Phones"] or []]
        return record

    def _save_document(self, tenant, collection, item, existing) -> dict:
        invoice = collection == "Invoices"
        kind = "ACCREC" if invoice else "ACCRECCREDIT"
        number_field = "InvoiceNumber" if invoice else "CreditNoteNumber"
        id_field = "InvoiceID" if invoice else "CreditNoteID"
        organisation = self.organisations[tenant]
        record = dict(existing or {id_field: str(uuid.uuid4()), "Status": "DRAFT"})
        status = item.get("Status", record["Status"])
        if status not in ("DRAFT", "SUBMITTED", "AUTHORISED", "VOIDED", "DELETED"):
            raise _Refused(f"'{status}' is not a status a {kind} can be given.")
        if existing:
            paid = existing.get("AmountPaid", 0) or existing.get("AmountCredited", 0)
            if existing["Status"] in ("PAID", "VOIDED", "DELETED"):
                # Xero still lets the reference and due date of a paid document change.
                if set(item) - {id_field, "Status", "Reference", "DueDate"} or (
                    status != existing["Status"]
                ):
                    raise _Refused(
                        "This document cannot be edited as it has been paid, voided or deleted."
                    )
                if "Reference" in item:
                    record["Reference"] = item["Reference"] or None
                if invoice and item.get("DueDate"):
                    record["DueDate"] = _date(item["DueDate"], "Due Date")
                return record
            if status == "VOIDED" and paid:
                raise _Refused(
                    "This document cannot be voided as it has payments or credit allocated."
                )
            if status == "DELETED" and existing["Status"] not in ("DRAFT", "SUBMITTED"):
                raise _Refused(
                    "Only a draft or submitted document can be deleted; void it instead."
                )
            if paid and "LineItems" in item:
                raise _Refused("Invoice not of valid status for modification")
            if status in ("VOIDED", "DELETED"):
                record["Status"] = status
                if invoice:
                    record["AmountDue"] = Decimal("0.00")
                return record
        elif item.get("Type", kind) != kind:
            raise _Refused(
                f"This stand-in keeps sales documents only ({kind}), not {item.get('Type')}."
            )
        record["Type"] = kind
        contact = item.get("Contact") or record.get("Contact")
        contact_id = str((contact or {}).get("ContactID") or "").lower()
        contacts = self.books(tenant, "Contacts")
        if not contact_id and (contact or {}).get("Name"):
            found = [c for c in contacts.values() if c["Name"].lower() == contact["Name"].lower()]
            contact_id = (
                found[0]["ContactID"]
                if found
                else self._save(tenant, "Contacts", {"Name": contact["Name"]}, create_only=True)[
                    "ContactID"
                ]
            )
        if contact_id not in contacts:
            raise _Refused("A Contact must be specified for this type of transaction.")
        record["Contact"] = {"ContactID": contact_id}
        if invoice:
            organisation["_customers"].add(contact_id)
        number = str(item.get(number_field) or record.get(number_field) or "").strip()
        if not number:
            number = f"{'INV' if invoice else 'CN'}-{len(self.books(tenant, collection)) + 1:04d}"
        for other in self.books(tenant, collection).values():
            if (
                other[id_field] != record[id_field]
                and other.get(number_field) == number
                and other["Status"] != "DELETED"
            ):
                raise _Refused(f"{'Invoice' if invoice else 'Credit Note'} # must be unique.")
        record[number_field] = number
        record["Date"] = (
            _date(item["Date"], "Date")
            if "Date" in item
            else record.get("Date") or self.now().date()
        )
        if invoice:
            if "DueDate" in item:
                record["DueDate"] = _date(item["DueDate"], "Due Date")
            if status == "AUTHORISED" and not record.get("DueDate"):
                raise _Refused("Due Date is required.")
        currency = (
            item.get("CurrencyCode") or record.get("CurrencyCode") or organisation["BaseCurrency"]
        )
        if currency != organisation["BaseCurrency"]:
            raise _Refused(f"The currency {currency} has not been enabled for this organisation.")
        record["CurrencyCode"] = currency
        record["CurrencyRate"] = Decimal("1")
        if "Reference" in item:
            record["Reference"] = item["Reference"] or None
        amounts = item.get("LineAmountTypes", record.get("LineAmountTypes") or "Exclusive")
        if amounts not in ("Exclusive", "Inclusive", "NoTax"):
            raise _Refused(f"'{amounts}' is not a LineAmountTypes value.")
        record["LineAmountTypes"] = amounts
        if "LineItems" in item or not existing:
            record["LineItems"] = self._lines(
                organisation, item.get("LineItems") or [], amounts, status
            )
        subtotal = sum(
            (
                line["LineAmount"] - (line["TaxAmount"] if amounts == "Inclusive" else 0)
                for line in record["LineItems"]
            ),
            Decimal("0.00"),
        )
        tax = sum((line["TaxAmount"] for line in record["LineItems"]), Decimal("0.00"))
        record.update(SubTotal=subtotal, TotalTax=tax, Total=subtotal + tax)
        record["Status"] = status
        if invoice:
            record.setdefault("AmountPaid", Decimal("0.00"))
            record.setdefault("AmountCredited", Decimal("0.00"))
            record["AmountDue"] = record["Total"] - record["AmountPaid"] - record["AmountCredited"]
        else:
            record.setdefault("Allocations", [])
            allocated = sum((a["Amount"] for a in record["Allocations"]), Decimal("0.00"))
            record["RemainingCredit"] = record["Total"] - allocated
        record["HasErrors"] = False
        return record

    def _lines(self, organisation: dict, lines: list, amounts: str, status: str) -> list[dict]:
        if status == "AUTHORISED" and not lines:
            raise _Refused("A document must have at least one line item to be approved.")
        rates = TAX_RATES.get(organisation["CountryCode"], {"NONE": Decimal("0")})
        saved = []
        for number, line in enumerate(lines, start=1):
            if not isinstance(line, dict):
                raise _Refused(f"Line {number} is not a line item.")
            description = str(line.get("Description") or "").strip()
            if not description:
                raise _Refused("Description cannot be empty.")
            quantity = Decimal(str(line.get("Quantity", 1)))
            unit = _money(line.get("UnitAmount", 0))
            amount = (quantity * unit).quantize(CENT, rounding=ROUND_HALF_UP)
            if (
                line.get("LineAmount") is not None
                and abs(_money(line["LineAmount"]) - amount) > CENT
            ):
                raise _Refused(
                    f"The line total {line['LineAmount']} does not match the quantity times "
                    f"the unit amount ({amount})."
                )
            account = line.get("AccountCode")
            if status == "AUTHORISED" and not account:
                raise _Refused("Account code must be specified.")
            if account and ACCOUNTS.get(account, ("",))[0] not in ("REVENUE", "OTHERINCOME"):
                raise _Refused(f"Account code '{account}' is not a valid code for this document.")
            tax_type = line.get("TaxType") or next(iter(rates))
            if tax_type not in rates:
                raise _Refused(
                    f"The TaxType code '{tax_type}' does not exist or cannot be used for this "
                    "type of transaction."
                )
            if amounts == "NoTax":
                tax = Decimal("0.00")
            elif line.get("TaxAmount") is not None:
                tax = _money(line["TaxAmount"])
            elif amounts == "Inclusive":
                tax = (amount * rates[tax_type] / (100 + rates[tax_type])).quantize(
                    CENT, rounding=ROUND_HALF_UP
                )
            else:
                tax = (amount * rates[tax_type] / 100).quantize(CENT, rounding=ROUND_HALF_UP)
            saved.append(
                {
                    "LineItemID": line.get("LineItemID") or str(uuid.uuid4()),
                    "Description": description,
                    "Quantity": quantity,
                    "UnitAmount": unit,
                    "AccountCode": account,
                    "TaxType": tax_type,
                    "TaxAmount": tax,
                    "LineAmount": amount,
                }
            )
        return saved

    def _save_payment(self, tenant, collection, item, existing) -> dict:
        invoices = self.books(tenant, "Invoices")
        if existing:
            if item.get("Status") != "DELETED" or set(item) - {"PaymentID", "Status"}:
                raise _Refused("A payment can only be deleted (Status DELETED), not changed.")
            if existing["Status"] == "DELETED":
                return existing
            invoice = invoices[existing["_invoice"]]
            invoice["AmountPaid"] -= existing["Amount"]
            invoice["AmountDue"] += existing["Amount"]
            invoice["Status"] = "AUTHORISED"
            invoice["Payments"] = [
                p for p in invoice.get("Payments", []) if p["PaymentID"] != existing["PaymentID"]
            ]
            self._touch(tenant, "Invoices", invoice, created=False)
            return {**existing, "Status": "DELETED"}
        target = item.get("Invoice") or {}
        invoice = invoices.get(str(target.get("InvoiceID") or "").lower())
        if invoice is None and (target.get("InvoiceNumber") or item.get("InvoiceNumber")):
            wanted = target.get("InvoiceNumber") or item.get("InvoiceNumber")
            invoice = next((i for i in invoices.values() if i["InvoiceNumber"] == wanted), None)
        if invoice is None:
            raise _Refused("Invoice could not be found.")
        if invoice["Status"] != "AUTHORISED":
            raise _Refused("Payment can only be applied to an approved (AUTHORISED) invoice.")
        code = (item.get("Account") or {}).get("Code") or item.get("Code")
        if ACCOUNTS.get(code, ("",))[0] != "BANK":
            raise _Refused(
                f"Account code '{code}' is not a bank account or is not enabled for payments."
            )
        amount = _money(item.get("Amount"))
        if amount <= 0:
            raise _Refused("Payment amount must be greater than zero.")
        if amount > invoice["AmountDue"]:
            raise _Refused("Payment amount exceeds the amount outstanding on this document.")
        paid_on = _date(item.get("Date") or self.now().date().isoformat(), "Date")
        payment = {
            "PaymentID": str(uuid.uuid4()),
            "Date": paid_on,
            "Amount": amount,
            "Reference": item.get("Reference") or None,
            "CurrencyRate": Decimal("1"),
            "IsReconciled": False,
            "Status": "AUTHORISED",
            "PaymentType": "ACCRECPAYMENT",
            "Account": {"AccountID": _account_id(code), "Code": code},
            "HasAccount": True,
            "HasValidationErrors": False,
            "_invoice": invoice["InvoiceID"],
        }
        invoice["AmountPaid"] += amount
        invoice["AmountDue"] -= amount
        invoice.setdefault("Payments", []).append(
            {
                "PaymentID": payment["PaymentID"],
                "Date": paid_on,
                "Amount": amount,
                "Reference": payment["Reference"],
            }
        )
        if invoice["AmountDue"] == 0:
            invoice["Status"] = "PAID"
            invoice["FullyPaidOnDate"] = paid_on
        self._touch(tenant, "Invoices", invoice, created=False)
        return payment

    def _allocate(self, request: Request, tenant: str, note_id: str) -> Response:
        try:
            body = json.loads(request.body or b"null", parse_float=Decimal)
            items = body["Allocations"]
        except (ValueError, KeyError, TypeError):
            return _validation_exception(["The body holds no list of Allocations."])
        answers = []
        with self._state:
            note = self.books(tenant, "CreditNotes").get(note_id.lower())
            try:
                if note is None:
                    raise _Refused("Credit note could not be found.")
                for item in items:
                    answers.append(self._allocation(tenant, note, item))
            except _Refused as error:
                return _validation_exception([str(error)])
        return xero_response(200, {"Allocations": answers})

    def _allocation(self, tenant: str, note: dict, item: dict) -> dict:
        invoice = self.books(tenant, "Invoices").get(
            str((item.get("Invoice") or {}).get("InvoiceID") or "").lower()
        )
        if invoice is None:
            raise _Refused("Invoice could not be found.")
        if note["Status"] != "AUTHORISED" or invoice["Status"] != "AUTHORISED":
            raise _Refused("Both the credit note and the invoice must be approved (AUTHORISED).")
        if invoice["Contact"]["ContactID"] != note["Contact"]["ContactID"]:
            raise _Refused("The credit note and the invoice belong to different contacts.")
        amount = _money(item.get("Amount"))
        if amount <= 0 or amount > note["RemainingCredit"] or amount > invoice["AmountDue"]:
            raise _Refused("The amount allocated exceeds the remaining credit or the amount due.")
        when = _date(item.get("Date") or self.now().date().isoformat(), "Date")
        allocation = {
            "AllocationID": str(uuid.uuid4()),
            "Amount": amount,
            "Date": when,
            "Invoice": {
                "InvoiceID": invoice["InvoiceID"],
                "InvoiceNumber": invoice["InvoiceNumber"],
            },
        }
        note["Allocations"].append(allocation)
        note["RemainingCredit"] -= amount
        if note["RemainingCredit"] == 0:
            note["Status"] = "PAID"
        invoice["AmountCredited"] += amount
        invoice["AmountDue"] -= amount
        if invoice["AmountDue"] == 0:
            invoice["Status"] = "PAID"
            invoice["FullyPaidOnDate"] = when
        self._touch(tenant, "CreditNotes", note, created=False)
        self._touch(tenant, "Invoices", invoice, created=False)
        return {**allocation, "CreditNote": {"CreditNoteID": note["CreditNoteID"]}}

    # -- sandbox operations --------------------------------------------------------------------

    def admin(self, request: Request) -> Response | None:
        route = request.path.removeprefix("/_standin/xero/")
        if route == request.path:
            return None
        spec = (
            json.loads(request.body or b"{}", parse_float=Decimal)
            if request.method == "POST" and route != "contact-email"
            else {}
        )
        if route == "" and request.method == "GET":
            return self.books_page()
        if route == "contact-email" and request.method == "POST":
            return self.change_email(request.form())
        tenant = spec.get("tenant") or request.arg("tenant") or self.demo
        if route == "books" and request.method == "GET":
            return xero_response(200, self.dump())
        if route == "edit":
            try:
                record = self.edit(tenant, spec["entity"], spec["id"], spec.get("changes") or {})
            except (KeyError, _Refused) as error:
                return json_response(400, {"error": str(error)})
            return xero_response(200, record)
        if route in ("add-contact", "add-invoice"):
            collection = "Contacts" if route == "add-contact" else "Invoices"
            try:
                with self._state:
                    record = self._save(tenant, collection, spec.get("record") or {}, True)
            except _Refused as error:
                return json_response(400, {"error": str(error)})
            return xero_response(200, self._public(tenant, collection, record))
        if route == "revoke":
            self.revoke()
            return json_response(200, {"revoked": True})
        if route == "slow":
            with self._state:
                self.slow = (float(spec.get("seconds", 5)), int(spec.get("count", 1)))
            return json_response(200, {"slow": True})
        if route == "truncate":
            with self._state:
                self.truncate = int(spec.get("count", 1))
            return json_response(200, {"truncate": True})
        if route == "intent-to-receive":
            return json_response(200, self.intent_to_receive())
        return None

    def books_page(self) -> Response:
        """The books as a person sees them in the sandbox (`/_standin/xero/`): each
        organisation's invoices with what they still owe, its payments and its customers, and a
        form to change a customer's e-mail as the accountant would in Xero."""
        sections = []
        for tenant, books in self.dump().items():
            names = {c["ContactID"]: c["Name"] for c in books["Contacts"]}
            numbers = {i["InvoiceID"]: i.get("InvoiceNumber") for i in books["Invoices"]}
            rows = "".join(
                _row(
                    i.get("InvoiceNumber"),
                    names.get(i["Contact"]["ContactID"]),
                    i["Status"],
                    i.get("Total"),
                    i.get("AmountDue"),
                )
                for i in books["Invoices"]
            )
            paid = "".join(
                _row(
                    str(p.get("Date"))[:30],
                    numbers.get(p["Invoice"]["InvoiceID"]),
                    p.get("Amount"),
                    p.get("Reference"),
                    p.get("Status"),
                )
                for p in books["Payments"]
            )
            people = "".join(
                "<tr>"
                + _cells(c["Name"], c.get("TaxNumber"))
                + "<td><form method=post action='/_standin/xero/contact-email'>"
                + f"<input type=hidden name=tenant value='{html.escape(tenant)}'>"
                + f"<input type=hidden name=id value='{html.escape(c['ContactID'])}'>"
                + "<label>E-mail <input name=email "
                + f"value='{html.escape(c.get('EmailAddress') or '')}'></label> "
                + "<button>Save in Xero</button></form></td></tr>"
                for c in books["Contacts"]
            )
            sections.append(
                f"<h2>{html.escape(books['Name'])}</h2><h3>Invoices</h3><table>"
                + _row("Number", "Customer", "Status", "Total", "Amount due", head=True)
                + rows
                + "</table><h3>Payments</h3><table>"
                + _row("Date", "Invoice", "Amount", "Reference", "Status", head=True)
                + (paid or "<tr><td colspan=5>None</td></tr>")
                + "</table><h3>Customers</h3><table>"
                + _row("Name", "Tax number", "E-mail", head=True)
                + people
                + "</table>"
            )
        style = (
            "<style>body{font-family:system-ui;margin:1rem}table{border-collapse:collapse;"
            "display:block;overflow-x:auto}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;"
            "text-align:left}.n{text-align:right}</style>"
        )
        return _page(
            200,
            f"{style}<h1>Xero (sandbox stand-in): your books</h1>"
            "<p>What Xero holds. Duebook reads and writes it through the Accounting API.</p>"
            + "".join(sections),
        )

    def change_email(self, form: dict) -> Response:
        try:
            self.edit(
                form.get("tenant") or self.demo,
                "Contacts",
                form.get("id", ""),
                {"EmailAddress": (form.get("email") or "").strip()},
            )
        except _Refused as error:
            return _page(400, f"<p>{html.escape(str(error))}</p>")
        return Response(303, b"", [("Location", "/_standin/xero/")])

    def edit(self, tenant: str, entity: str, record_id: str, changes: dict) -> dict:
        """An accountant's change in Xero: the fields given replace the record's (a status, a
        name, a due date), as the books' own screens would, stamped and announced."""
        collection = {v[1]: k for k, v in ENTITIES.items()}.get(entity, entity)
        with self._state:
            record = self.books(tenant, collection).get(record_id.lower())
            if record is None:
                raise _Refused(f"No {entity} {record_id}.")
            for name, value in changes.items():
                if name in ("Date", "DueDate"):
                    value = _date(value, name)
                elif isinstance(value, Decimal):
                    value = _money(value)
                record[name] = value
            self._touch(tenant, collection, record, created=False)
            return self._public(tenant, collection, record)

    def dump(self) -> dict:
        with self._state:
            return {
                tenant: {
                    "Name": organisation["Name"],
                    **{
                        collection: [self._public(tenant, collection, r) for r in records.values()]
                        for collection, records in organisation["_books"].items()
                    },
                }
                for tenant, organisation in self.organisations.items()
            }

    def intent_to_receive(self) -> dict:
        """Xero's handshake: deliveries with no events, one signed with the key and one not;
        a receiver passes when it answers 200 and 401."""
        answers = {}
        for label, key in (
            ("signed", self.webhook_key),
            ("wrongly_signed", self.webhook_key + "x"),
        ):
            body = json.dumps(
                {
                    "events": [],
                    "lastEventSequence": 0,
                    "firstEventSequence": 0,
                    "entropy": secrets.token_hex(10).upper(),
                },
                separators=(",", ":"),
            ).encode()
            headers = {
                "Content-Type": "application/json",
                "x-xero-signature": xero_signature(key, body),
            }
            try:
                answers[label] = httpx.post(
                    self.webhook_url, content=body, headers=headers, timeout=5
                ).status_code
            except httpx.HTTPError as error:
                answers[label] = str(error)
        answers["passed"] = answers.get("signed") == 200 and answers.get("wrongly_signed") == 401
        return answers

    # -- seeds ---------------------------------------------------------------------------------

    def _seed_demo(self, tenant: str) -> None:
        """A small set of books an Indian SME keeps in Xero: six customers (two the demo
        workspace already has), ten invoices (open, partly paid, paid, overdue, a draft, a void),
        four payments and a credit note; intra-state (CGST+SGST) and inter-state (IGST)."""
        today = self.now().date()
        customers = [
            (
                "Sahyadri Textiles LLP",
                "accounts@sahyadri.example",
                "Pune",
                "Maharashtra",
                "411001",
                demo_gstin("27", "AAJFS4821K"),
            ),
            (
                "Nilgiri Logistics",
                "accounts@nilgiri.example",
                "Coimbatore",
                "Tamil Nadu",
                "641001",
                demo_gstin("33", "AAHFN7316M"),
            ),
            (
                "Tungabhadra Agro Foods Pvt Ltd",
                "finance@tungabhadra.example",
                "Hubballi",
                "Karnataka",
                "580020",
                demo_gstin("29", "AAECT5567P"),
            ),
            (
                "Malnad Coffee Traders",
                "ap@malnadcoffee.example",
                "Chikkamagaluru",
                "Karnataka",
                "577101",
                demo_gstin("29", "ABNPM2290Q"),
            ),
            (
                "Deccan Steel Fabricators",
                "payables@deccansteel.example",
                "Hyderabad",
                "Telangana",
                "500018",
                demo_gstin("36", "AACCD8843R"),
            ),
            (
                "Konkan Marine Exports",
                "accounts@konkanmarine.example",
                "Panaji",
                "Goa",
                "403001",
                demo_gstin("30", "AAGFK1198S"),
            ),
        ]
        ids = {}
        with self._state:
            for name, email, city, region, postcode, gstin in customers:
                address = {
                    "AddressLine1": "Plot 7, Industrial Area",
                    "City": city,
                    "Region": region,
                    "PostalCode": postcode,
                    "Country": "India",
                }
                contact = self._save(
                    tenant,
                    "Contacts",
                    {
                        "Name": name,
                        "EmailAddress": email,
                        "TaxNumber": gstin,
                        "DefaultCurrency": "INR",
                        "Addresses": [
                            {"AddressType": "POBOX", **address},
                            {"AddressType": "STREET", **address},
                        ],
                    },
                    True,
                )
                ids[name.split()[0]] = contact["ContactID"]
            # (number, customer, days ago issued, net amount, GST rate, intra-state, status)
            invoices = [
                ("INV-0001", "Sahyadri", 125, "240000.00", "18", False, "AUTHORISED"),
                ("INV-0002", "Sahyadri", 70, "85000.00", "18", False, "AUTHORISED"),
                ("INV-0003", "Nilgiri", 60, "150000.00", "12", False, "AUTHORISED"),
                ("INV-0004", "Tungabhadra", 5, "62000.00", "18", True, "AUTHORISED"),
                ("INV-0005", "Malnad", 45, "38000.00", "5", True, "AUTHORISED"),
                ("INV-0006", "Deccan", 50, "210000.00", "18", False, "AUTHORISED"),
                ("INV-0007", "Konkan", 2, "95000.00", "28", False, "DRAFT"),
                ("INV-0008", "Tungabhadra", 30, "12000.00", "18", True, "AUTHORISED"),
                ("INV-0009", "Malnad", 20, "46000.00", "12", True, "AUTHORISED"),
                ("INV-0010", "Nilgiri", 8, "72000.00", "18", False, "AUTHORISED"),
            ]
            saved = {}
            for number, who, days, net, rate, intra, status in invoices:
                tax_type = {
                    ("5", True): "TAX001",
                    ("5", False): "TAX002",
                    ("12", True): "TAX003",
                    ("12", False): "TAX004",
                    ("18", True): "TAX005",
                    ("18", False): "TAX006",
                    ("28", True): "TAX007",
                    ("28", False): "TAX008",
                }[(rate, intra)]
                amount = Decimal(net)
                issued = today - timedelta(days=days)
                saved[number] = self._save(
                    tenant,
                    "Invoices",
                    {
                        "Type": "ACCREC",
                        "Contact": {"ContactID": ids[who]},
                        "InvoiceNumber": number,
                        "Date": issued.isoformat(),
                        "DueDate": (issued + timedelta(days=30)).isoformat(),
                        "Status": status,
                        "LineAmountTypes": "Exclusive",
                        "LineItems": [
                            {
                                "Description": "Supply as per purchase order",
                                "Quantity": 1,
                                "UnitAmount": amount,
                                "AccountCode": "200",
                                "TaxType": tax_type,
                                "TaxAmount": (amount * Decimal(rate) / 100).quantize(CENT),
                            }
                        ],
                    },
                    True,
                )
            self._save(
                tenant,
                "Invoices",
                {"InvoiceID": saved["INV-0008"]["InvoiceID"], "Status": "VOIDED"},
                False,
            )
            for number, amount, days in (
                ("INV-0001", "100000.00", 90),
                ("INV-0002", "100300.00", 40),
                ("INV-0005", "39900.00", 15),
                ("INV-0006", "50000.00", 10),
            ):
                self._save(
                    tenant,
                    "Payments",
                    {
                        "Invoice": {"InvoiceID": saved[number]["InvoiceID"]},
                        "Account": {"Code": "090"},
                        "Date": (today - timedelta(days=days)).isoformat(),
                        "Amount": Decimal(amount),
                        "Reference": f"NEFT {number}",
                    },
                    True,
                )
            note = self._save(
                tenant,
                "CreditNotes",
                {
                    "Type": "ACCRECCREDIT",
                    "Contact": {"ContactID": ids["Malnad"]},
                    "CreditNoteNumber": "CN-0001",
                    "Date": (today - timedelta(days=10)).isoformat(),
                    "Status": "AUTHORISED",
                    "Reference": "Two bags returned damaged",
                    "LineAmountTypes": "Exclusive",
                    "LineItems": [
                        {
                            "Description": "Goods returned",
                            "Quantity": 1,
                            "UnitAmount": Decimal("4000.00"),
                            "AccountCode": "200",
                            "TaxType": "TAX003",
                            "TaxAmount": Decimal("480.00"),
                        }
                    ],
                },
                True,
            )
            self._allocation(
                tenant,
                note,
                {
                    "Invoice": {"InvoiceID": saved["INV-0009"]["InvoiceID"]},
                    "Amount": Decimal("4480.00"),
                },
            )

    def seed_bulk(self, tenant: str, contacts: int, invoices: int) -> None:
        """Many records fast (a benchmark's books): plain records made in memory, no
        validation, no webhooks; UpdatedDateUTC increases with each."""
        base = self.now() - timedelta(days=1)
        books = self.organisations[tenant]["_books"]
        country = self.organisations[tenant]["CountryCode"]
        tax_type, rate = ("TAX005", Decimal("18")) if country == "IN" else ("OUTPUT", Decimal("10"))
        with self._state:
            ids = []
            for n in range(contacts):
                contact_id = str(uuid.uuid4())
                ids.append(contact_id)
                books["Contacts"][contact_id] = {
                    "ContactID": contact_id,
                    "ContactStatus": "ACTIVE",
                    "Name": f"Bulk Customer {n + 1:05d}",
                    "EmailAddress": f"customer{n + 1}@bulk.example",
                    "UpdatedDateUTC": base + timedelta(milliseconds=n),
                }
            for n in range(invoices):
                invoice_id = str(uuid.uuid4())
                contact_id = ids[n % len(ids)] if ids else self._bulk_contact(tenant)
                self.organisations[tenant]["_customers"].add(contact_id)
                net = Decimal(1000 + n % 9000).quantize(CENT)
                tax = (net * rate / 100).quantize(CENT)
                issued = (base - timedelta(days=n % 90)).date()
                books["Invoices"][invoice_id] = {
                    "InvoiceID": invoice_id,
                    "Type": "ACCREC",
                    "Contact": {"ContactID": contact_id},
                    "InvoiceNumber": f"BULK-{n + 1:06d}",
                    "Date": issued,
                    "DueDate": issued + timedelta(days=30),
                    "Status": "AUTHORISED",
                    "LineAmountTypes": "Exclusive",
                    "LineItems": [
                        {
                            "LineItemID": str(uuid.uuid4()),
                            "Description": "Goods",
                            "Quantity": Decimal("1"),
                            "UnitAmount": net,
                            "AccountCode": "200",
                            "TaxType": tax_type,
                            "TaxAmount": tax,
                            "LineAmount": net,
                        }
                    ],
                    "CurrencyCode": self.organisations[tenant]["BaseCurrency"],
                    "CurrencyRate": Decimal("1"),
                    "SubTotal": net,
                    "TotalTax": tax,
                    "Total": net + tax,
                    "AmountDue": net + tax,
                    "AmountPaid": Decimal("0.00"),
                    "AmountCredited": Decimal("0.00"),
                    "HasErrors": False,
                    "UpdatedDateUTC": base + timedelta(milliseconds=contacts + n),
                }
            self._last_stamp = base + timedelta(milliseconds=contacts + invoices)

    def _bulk_contact(self, tenant: str) -> str:
        contact_id = str(uuid.uuid4())
        self.books(tenant, "Contacts")[contact_id] = {
            "ContactID": contact_id,
            "ContactStatus": "ACTIVE",
            "Name": "Bulk Customer",
            "UpdatedDateUTC": self.now() - timedelta(days=2),
        }
        return contact_id


def _account_id(code: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"xero-account-{code}"))


def _sort_key(value):
    if isinstance(value, datetime):
        return (0, value.timestamp(), "")
    if isinstance(value, date):
        return (0, datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp(), "")
    if isinstance(value, Decimal | int):
        return (0, float(value), "")
    return (1, 0, str(value or ""))


_MISSING = object()


def _field(record: dict, path: list[str]):
    found = record
    for step in path:
        if not isinstance(found, dict) or step not in found:
            return _MISSING
        found = found[step]
    return found


def _where(text: str):
    """Xero's `where` as a test: clauses `Field==value` or `Field!=value` (a "string" with \\"
    escapes, true/false, a number or Guid("…")), joined by && or AND."""
    clauses = []
    for part in re.split(r"\s*(?:&&|\bAND\b)\s*", text):
        match = CLAUSE.match(part)
        if not match:
            raise ValueError(f"The where clause '{part}' cannot be read.")
        name, operator, raw = match.groups()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            value = re.sub(r"\\(.)", r"\1", raw[1:-1])
        elif raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        elif raw.startswith('Guid("') and raw.endswith('")'):
            value = raw[6:-2].lower()
        else:
            try:
                value = Decimal(raw)
            except InvalidOperation:
                raise ValueError(f"The value {raw} in the where clause cannot be read.") from None
        clauses.append((name.split("."), operator, value))

    def test(record: dict, shown) -> bool:
        """`shown()`: the record as Xero shows it, for a field only that view has."""
        for path, operator, value in clauses:
            found = _field(record, path)
            if found is _MISSING:  # a field only the shown record has (IsCustomer, Contact.Name)
                found = _field(shown(), path)
                found = None if found is _MISSING else found
            if isinstance(value, str) and isinstance(found, str):
                equal = found.lower() == value.lower()
            else:
                equal = found == value
            if equal != (operator == "=="):
                return False
        return True

    return test


def _validation_exception(messages: list[str]) -> Response:
    return xero_response(
        400,
        {
            "ErrorNumber": 10,
            "Type": "ValidationException",
            "Message": "A validation exception occurred",
            "Elements": [{"ValidationErrors": [{"Message": m} for m in messages]}],
        },
    )


def _unauthorized() -> Response:
    return json_response(
        401,
        {
            "Type": None,
            "Title": "Unauthorized",
            "Status": 401,
            "Detail": "AuthenticationUnsuccessful",
        },
        [("WWW-Authenticate", 'Bearer error="invalid_token"')],
    )


def _cells(*values, head: bool = False) -> str:
    tag = "th" if head else "td"
    return "".join(
        f"<{tag}>{html.escape('' if value is None else str(value))}</{tag}>" for value in values
    )


def _row(*values, head: bool = False) -> str:
    return f"<tr>{_cells(*values, head=head)}</tr>"


def _page(status: int, body: str) -> Response:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Xero sandbox</title></head><body>{body}</body></html>"
    )
    return Response(status, page.encode(), [("Content-Type", "text/html; charset=utf-8")])
