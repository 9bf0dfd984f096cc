"""Local stand-in for QuickBooks Online's Accounting API v3 and Intuit's OAuth 2.0, for tests,
the `make run` sandbox and benchmarks.

Contract followed (providers.md §4; entity shapes: Intuit's XSDs kept in
tests/contracts/quickbooks, which the tests validate every body against):
- OAuth: `GET /.well-known/openid_configuration` (the discovery document intuit-oauth's
  AuthClient reads), `GET /connect/oauth2` (the consent page: the app asking for access, a
  company picker when there are several, "Allow access" -> redirect_uri?code&state&realmId),
  `POST /oauth2/v1/tokens/bearer` (HTTP Basic client auth; authorization_code or
  refresh_token; every refresh rotates the refresh token and the old one stops working;
  a refused grant answers 400 {"error": "invalid_grant"}), `POST /oauth2/v1/tokens/revoke`.
- Data, `/v3/company/{realm}/...`, Bearer token of that company (else 401 AuthenticationFault):
  `query` (GET ?query= or POST application/text) with a small parser for
  `SELECT *|COUNT(*) FROM E [WHERE f op v [AND ...]] [ORDERBY f [ASC|DESC]]
  [STARTPOSITION n] [MAXRESULTS m]` (ops =, <, >, <=, >=, IN, LIKE; MAXRESULTS at most 1,000;
  inactive customers only when asked with `Active IN (true, false)` or `Active = false`);
  `cdc?entities=&changedSince=` (30 days back at most; 1,000 objects at most, the rest cut
  off; deletions as `{"Id", "status": "Deleted"}`); `customer|invoice|creditmemo|payment`
  create (POST without Id), sparse or full update (Id + SyncToken; a stale SyncToken answers
  Fault 5010), `operation=void|delete`, read by id; `companyinfo/{realm}`; each POST with a
  `requestid` seen before for the company replays the first answer.
- Invoice totals are computed as QBO does: lines, tax from the TaxCode's TaxRates
  (TxnTaxDetail.TaxLine), TotalAmt, Balance less the payments linked to it.
- 500 requests a minute per company (`per_minute`), then 429 with QBO's ThrottleExceeded
  fault. Faults: the base's `/_standin/faults`; `POST /_standin/revoke` drops every token
  (mid-run revocation); `POST /_standin/delay {"seconds", "count"}` holds the next answers
  (a timeout); `POST /_standin/malformed {"count"}` cuts the next answers short.
- Books as the accountant sees them: `GET /_standin/books/{realm}` dumps them;
  `POST /_standin/books/{realm}/{entity}` creates and `POST /_standin/books/{realm}/{entity}/{id}`
  changes a record (fields merged, SyncToken bumped), `DELETE` on it deletes it, each change
  sent as a webhook; `POST /_standin/seed {"realm", "customers", "invoices"}` adds bulk books.
- Webhooks to `webhook_url`, signed `intuit-signature` = base64(HMAC-SHA256(verifier token,
  body)), in the CloudEvents format (a JSON array) or the legacy one (`webhook_format`).

Not implemented: batch, attachments, reports, estimates, multicurrency exchange rates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
from copy import deepcopy
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from stdnum import luhn

from .base import Fault, Request, Response, StandinServer, json_response

DEFAULT_CLIENT_ID = "duebook-sandbox-qbo-client"
DEFAULT_CLIENT_SECRET = "duebook-sandbox-qbo-secret"
DEFAULT_VERIFIER_TOKEN = "standin-qbo-verifier-token"
DEFAULT_REALM = "9130350000000001"
ACCESS_LIFETIME = 3600
REFRESH_LIFETIME = 100 * 24 * 3600
MAX_RESULTS = 1000
CDC_CAP = 1000
CDC_REACH = timedelta(days=30)
ENTITIES = {
    "customer": "Customer",
    "invoice": "Invoice",
    "creditmemo": "CreditMemo",
    "payment": "Payment",
}
QUERYABLE = (*ENTITIES.values(), "TaxCode", "TaxRate", "CompanyInfo")
GSTIN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
TWO = Decimal("0.01")
VERBS = {"Create": "created", "Update": "updated", "Delete": "deleted", "Void": "voided"}

QUERY = re.compile(
    r"^\s*select\s+(?P<what>\*|count\(\*\))\s+from\s+(?P<entity>\w+)"
    r"(?:\s+where\s+(?P<where>.*?))?"
    r"(?:\s+orderby\s+(?P<order>[\w.]+)(?:\s+(?P<direction>asc|desc))?)?"
    r"(?:\s+startposition\s+(?P<start>\d+))?"
    r"(?:\s+maxresults\s+(?P<max>\d+))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
CONDITION = re.compile(
    r"\s*(?P<field>[\w.]+)\s*(?P<op>>=|<=|=|<|>|\bin\b|\blike\b)\s*"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\([^)]*\)|[\w.:+-]+)\s*(?P<joint>\band\b|$)",
    re.IGNORECASE,
)


class QueryError(ValueError):
    pass


def gstin(state: str, pan: str) -> str:
    """A checksum-valid GSTIN: state code, PAN, entity number 1, 'Z', check character."""
    body = f"{state}{pan}1Z"
    return body + luhn.calc_check_digit(body, GSTIN_ALPHABET)


def intuit_signature(body: bytes, verifier_token: str) -> str:
    return base64.b64encode(
        hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    ).decode()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _money(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(TWO, ROUND_HALF_UP)


def _number(value: Decimal) -> float | int:
    return float(value)


def fault(code: str, message: str, detail: str, kind: str = "ValidationFault") -> dict:
    return {
        "Fault": {"Error": [{"Message": message, "Detail": detail, "code": code}], "type": kind},
        "time": _stamp(datetime.now(UTC)),
    }


class QuickBooksStandin(StandinServer):
    name = "quickbooks"
    default_status_script = ()

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        verifier_token: str = DEFAULT_VERIFIER_TOKEN,
        webhook_format: str = "cloudevents",
        per_minute: int = 500,
        seed: str | None = None,
        **options,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.verifier_token = verifier_token
        self.webhook_format = webhook_format
        self.per_minute = per_minute
        self._state_lock = threading.RLock()
        super().__init__(**options)
        self.reset_state()
        if seed == "demo":
            self.seed_demo()

    # -- state -----------------------------------------------------------------------------

    def reset_state(self) -> None:
        with self._state_lock:
            self.companies: dict[str, dict] = getattr(self, "companies", {})
            for realm in list(self.companies):
                self._blank_books(realm)
            self._codes: dict[str, tuple[str, str, str]] = {}
            self._access: dict[str, tuple[str, float]] = {}
            self._refresh: dict[str, tuple[str, float]] = {}
            self._minute: dict[str, tuple[int, int]] = {}
            self._delays: list[float] = []
            self._malformed = 0
            if not self.companies:
                self.add_company(DEFAULT_REALM, "Demo Traders Private Limited")

    def add_company(
        self, realm: str, name: str, country: str = "IN", state: str = "29", city: str = "Bengaluru"
    ) -> None:
        with self._state_lock:
            self.companies[realm] = {
                "Id": "1",
                "SyncToken": "0",
                "CompanyName": name,
                "LegalName": name,
                "Country": country,
                "CompanyAddr": {"City": city, "CountrySubDivisionCode": state, "Country": country},
                "MetaData": {"CreateTime": _stamp(self._now())},
            }
            self._blank_books(realm)

    def _blank_books(self, realm: str) -> None:
        company = self.companies[realm]
        company["books"] = {name: {} for name in (*ENTITIES.values(), "TaxCode", "TaxRate")}
        company["deleted"] = {name: {} for name in ENTITIES.values()}
        company["next_id"] = 1
        company["requests"] = {}
        if company["Country"] == "IN":
            rates = [
                ("CGST 9%", 9),
                ("SGST 9%", 9),
                ("IGST 18%", 18),
                ("CGST 2.5%", 2.5),
                ("SGST 2.5%", 2.5),
                ("IGST 5%", 5),
                ("Exempt 0%", 0),
            ]
            codes = [
                ("GST 18%", [1, 2]),
                ("IGST 18%", [3]),
                ("GST 5%", [4, 5]),
                ("IGST 5%", [6]),
                ("Exempt", [7]),
            ]
        else:
            rates = [("GST (sales)", 10), ("GST free", 0)]
            codes = [("GST", [1]), ("FRE", [2])]
        for number, (name, value) in enumerate(rates, 1):
            company["books"]["TaxRate"][str(number)] = {
                "Id": str(number),
                "Name": name,
                "RateValue": value,
                "Active": True,
                "SyncToken": "0",
            }
        for number, (name, parts) in enumerate(codes, 1):
            details = [
                {
                    "TaxRateRef": {"value": str(part), "name": rates[part - 1][0]},
                    "TaxTypeApplicable": "TaxOnAmount",
                    "TaxOrder": 0,
                }
                for part in parts
            ]
            company["books"]["TaxCode"][str(number)] = {
                "Id": str(number),
                "Name": name,
                "Active": True,
                "Taxable": True,
                "SyncToken": "0",
                "SalesTaxRateList": {"TaxRateDetail": details},
            }

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # -- dispatch --------------------------------------------------------------------------

    def fault_response(self, fault_: Fault) -> Response:
        if fault_.status == 429:
            return json_response(429, self._throttled())
        return json_response(
            fault_.status,
            fault(
                "10000",
                fault_.message or "An application error has occurred",
                "injected",
                "SystemFault",
            ),
        )

    @staticmethod
    def _throttled() -> dict:
        return fault(
            "003001",
            "message=ThrottleExceeded; errorCode=003001; statusCode=429",
            "The request limit was reached.",
            "ThrottleExceeded",
        )

    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == "/.well-known/openid_configuration":
            return json_response(200, self.discovery())
        if path == "/connect/oauth2":
            return self._consent(request)
        if path == "/connect/oauth2/allow" and request.method == "POST":
            return self._allow(request)
        if path == "/oauth2/v1/tokens/bearer" and request.method == "POST":
            return self._token(request)
        if path == "/oauth2/v1/tokens/revoke" and request.method == "POST":
            token = (request.json() or {}).get("token") if request.body else None
            with self._state_lock:
                self._refresh.pop(token or "", None)
                self._access.pop(token or "", None)
            return Response(200)
        match = re.fullmatch(r"/v3/company/(\w+)/(.+)", path)
        if not match:
            return json_response(404, {"error": "no such route"})
        realm, rest = match.groups()
        return self._data(request, realm, rest)

    def discovery(self) -> dict:
        return {
            "issuer": "https://oauth.platform.intuit.com/op/v1",
            "authorization_endpoint": f"{self.url}/connect/oauth2",
            "token_endpoint": f"{self.url}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{self.url}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{self.url}/oauth2/v1/tokens/revoke",
            "jwks_uri": f"{self.url}/op/v1/jwks",
            "response_types_supported": ["code"],
            "scopes_supported": [
                "openid",
                "email",
                "profile",
                "address",
                "phone",
                "com.intuit.quickbooks.accounting",
            ],
        }

    # -- OAuth -----------------------------------------------------------------------------

    def _consent(self, request: Request) -> Response:
        client_id = request.arg("client_id")
        redirect_uri = request.arg("redirect_uri") or ""
        if client_id != self.client_id or request.arg("response_type") != "code":
            return _page(400, "<h1>Unknown application</h1><p>The client_id is not known.</p>")
        if not redirect_uri.startswith(("http://", "https://")):
            return _page(400, "<h1>No redirect</h1><p>redirect_uri is missing.</p>")
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(request.arg(name) or "")}">'
            for name in ("client_id", "redirect_uri", "state", "scope")
        )
        with self._state_lock:
            choices = [(realm, company["CompanyName"]) for realm, company in self.companies.items()]
        picker = "".join(
            f'<p><label><input type="radio" name="realm" value="{realm}"'
            f"{' checked' if n == 0 else ''}> {html.escape(name)}</label></p>"
            for n, (realm, name) in enumerate(choices)
        )
        body = (
            "<h1>Intuit QuickBooks (stand-in)</h1>"
            "<p><strong>Duebook</strong> wants to read and change your QuickBooks books "
            f"({html.escape(request.arg('scope') or '')}).</p>"
            f'<form method="post" action="/connect/oauth2/allow">{hidden}'
            f"<fieldset><legend>Choose a company</legend>{picker}</fieldset>"
            '<button type="submit">Allow access</button></form>'
        )
        return _page(200, body)

    def _allow(self, request: Request) -> Response:
        form = request.form()
        realm = form.get("realm", "")
        if form.get("client_id") != self.client_id or realm not in self.companies:
            return _page(400, "<h1>Not allowed</h1><p>Unknown application or company.</p>")
        code = secrets.token_urlsafe(24)
        with self._state_lock:
            self._codes[code] = (realm, form.get("redirect_uri", ""), form.get("client_id", ""))
        query = urlencode({"code": code, "state": form.get("state", ""), "realmId": realm})
        return Response(302, b"", [("Location", f"{form.get('redirect_uri')}?{query}")])

    def _token(self, request: Request) -> Response:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given, f"Basic {expected}"):
            return json_response(401, {"error": "invalid_client"})
        form = request.form()
        now = self.clock()
        with self._state_lock:
            if form.get("grant_type") == "authorization_code":
                grant = self._codes.pop(form.get("code", ""), None)
                if not grant or grant[1] != form.get("redirect_uri"):
                    return json_response(400, {"error": "invalid_grant"})
                realm = grant[0]
            elif form.get("grant_type") == "refresh_token":
                held = self._refresh.pop(form.get("refresh_token", ""), None)
                if not held or held[1] < now:
                    return json_response(400, {"error": "invalid_grant"})
                realm = held[0]
            else:
                return json_response(400, {"error": "unsupported_grant_type"})
            access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            self._access[access] = (realm, now + ACCESS_LIFETIME)
            self._refresh[refresh] = (realm, now + REFRESH_LIFETIME)
        return json_response(
            200,
            {
                "token_type": "bearer",
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": ACCESS_LIFETIME,
                "x_refresh_token_expires_in": REFRESH_LIFETIME,
            },
        )

    def revoke_all(self) -> None:
        with self._state_lock:
            self._access.clear()
            self._refresh.clear()

    # -- data ------------------------------------------------------------------------------

    def _data(self, request: Request, realm: str, rest: str) -> Response:
        header = request.headers.get("authorization", "")
        with self._state_lock:
            held = self._access.get(header.removeprefix("Bearer ").strip())
            if not held or held[0] != realm or held[1] < self.clock():
                return json_response(
                    401,
                    fault(
                        "3200",
                        "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                        "Token expired or revoked",
                        "AuthenticationFault",
                    ),
                )
        if self._over_minute(realm):
            self.stats_counters.add("throttled")
            return json_response(429, self._throttled())
        injected = self.take_fault()
        if injected:
            return injected
        self.record(
            {
                "method": request.method,
                "path": request.path,
                "query": {k: v[-1] for k, v in request.query.items()},
                "realm": realm,
                "body": request.body.decode("utf-8", "replace"),
            }
        )
        try:
            answer = self._route(request, realm, rest)
        except QueryError as exc:
            answer = json_response(400, fault("4000", "Error parsing query", str(exc)))
        return self._held_back(answer)

    def _held_back(self, answer: Response) -> Response:
        with self._state_lock:
            delay = self._delays.pop(0) if self._delays else 0
            cut = self._malformed > 0
            self._malformed -= 1 if cut else 0
        if delay:
            time.sleep(delay)
        if cut:
            answer.body = answer.body[: max(1, len(answer.body) // 2)]
        return answer

    def _over_minute(self, realm: str) -> bool:
        minute = int(time.monotonic() // 60)
        with self._state_lock:
            window, count = self._minute.get(realm, (minute, 0))
            if window != minute:
                count = 0
            if count >= self.per_minute:
                return True
            self._minute[realm] = (minute, count + 1)
        return False

    def _route(self, request: Request, realm: str, rest: str) -> Response:
        company = self.companies.get(realm)
        if company is None:
            return json_response(
                403,
                fault(
                    "3100",
                    "ApplicationAuthorizationFailed",
                    "No such company",
                    "AuthorizationFault",
                ),
            )
        parts = rest.split("/")
        if parts == ["query"]:
            statement = request.arg("query") if request.method == "GET" else request.body.decode()
            return json_response(
                200,
                {"QueryResponse": self.query(realm, statement or ""), "time": _stamp(self._now())},
            )
        if parts == ["cdc"] and request.method == "GET":
            return self._cdc(realm, request)
        if parts == ["companyinfo", realm]:
            info = {k: v for k, v in company.items() if k[0].isupper()}
            return json_response(200, {"CompanyInfo": info, "time": _stamp(self._now())})
        name = ENTITIES.get(parts[0])
        if name is None:
            return json_response(400, fault("4001", "Unsupported entity", parts[0]))
        if len(parts) == 2 and request.method == "GET":
            with self._state_lock:
                item = company["books"][name].get(parts[1])
            if item is None:
                return json_response(
                    400, fault("610", "Object Not Found", f"{name} {parts[1]} is not found")
                )
            return json_response(200, {name: item, "time": _stamp(self._now())})
        if len(parts) == 1 and request.method == "POST":
            return self._write(realm, name, request)
        return json_response(404, {"error": "no such route"})

    def _write(self, realm: str, name: str, request: Request) -> Response:
        key = request.arg("requestid")
        with self._state_lock:
            company = self.companies[realm]
            if key and key in company["requests"]:
                self.stats_counters.add("duplicate_keys")
                return deepcopy(company["requests"][key])
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                return json_response(
                    400,
                    fault(
                        "2500",
                        "Request has invalid or unsupported property",
                        "The body is not JSON",
                    ),
                )
            status, answer = self.save(realm, name, body, request.arg("operation"))
            response = json_response(status, answer)
            if status == 200 and key:
                company["requests"][key] = deepcopy(response)
                self.count_key(key)
            if status == 200:
                self.stats_counters.add("accepted")
            else:
                self.stats_counters.add("rejected")
        return response

    def save(self, realm: str, name: str, body: dict, operation: str | None = None):
        """Creates or changes one record as QBO does: (status, answer JSON)."""
        with self._state_lock:
            company = self.companies[realm]
            records = company["books"][name]
            now = _stamp(self._now())
            if body.get("Id"):
                current = records.get(str(body["Id"]))
                if current is None:
                    return 400, fault(
                        "610",
                        "Object Not Found",
                        "Object Not Found : Something you're trying to use has "
                        "been made inactive. Check the fields with accounts, "
                        "customers, items, vendors or employees.",
                    )
                if str(body.get("SyncToken")) != current["SyncToken"]:
                    return 400, fault(
                        "5010",
                        "Stale Object Error",
                        f"Stale Object Error : You and {company['CompanyName']} "
                        "were working on this at the same time. "
                        f"{company['CompanyName']} finished before you did, so "
                        "your work was not saved.",
                    )
                if operation == "delete":
                    del records[current["Id"]]
                    company["deleted"][name][current["Id"]] = now
                    self._relink(realm, current, None)
                    self._notify(realm, name, current["Id"], "Delete")
                    return 200, {
                        name: {"Id": current["Id"], "status": "Deleted", "domain": "QBO"},
                        "time": now,
                    }
                merged = (
                    {**current, **body}
                    if body.get("sparse")
                    else {**body, "MetaData": current["MetaData"]}
                )
                merged.pop("sparse", None)
                if operation == "void":
                    merged["PrivateNote"] = "Voided"
                    for line in merged.get("Line", []):
                        line["Amount"] = 0
                merged["SyncToken"] = str(int(current["SyncToken"]) + 1)
                merged["MetaData"] = {**current["MetaData"], "LastUpdatedTime": now}
                action = "Void" if operation == "void" else "Update"
            else:
                merged = dict(body)
                merged["Id"] = str(company["next_id"])
                merged["SyncToken"] = "0"
                merged["MetaData"] = {"CreateTime": now, "LastUpdatedTime": now}
                current = None
                action = "Create"
            merged["domain"] = "QBO"
            problem = self._check(realm, name, merged)
            if problem:
                return 400, problem
            if not body.get("Id"):
                company["next_id"] += 1
            self._complete(realm, name, merged)
            records[merged["Id"]] = merged
            if name == "Payment":
                self._relink(realm, current, merged)
            self._notify(realm, name, merged["Id"], action)
            return 200, {name: deepcopy(merged), "time": now}

    def _check(self, realm: str, name: str, item: dict) -> dict | None:
        books = self.companies[realm]["books"]
        if name == "Customer":
            display = (item.get("DisplayName") or "").strip()
            if not display:
                return fault(
                    "2020",
                    "Required param missing, need to supply the required value for the API",
                    "Required parameter DisplayName is missing",
                )
            if any(
                c["DisplayName"].lower() == display.lower() and c["Id"] != item["Id"]
                for c in books["Customer"].values()
            ):
                return fault(
                    "6240",
                    "Duplicate Name Exists Error",
                    f"The name supplied already exists. : Id={item['Id']}",
                )
            return None
        customer = str((item.get("CustomerRef") or {}).get("value") or "")
        if customer not in books["Customer"]:
            return fault(
                "2500",
                "Invalid Reference Id",
                f"Invalid Reference Id : Customer assigned to this transaction has "
                f"been deleted or is not found: {customer}",
            )
        if name == "Payment":
            if item.get("TotalAmt") is None:
                return fault(
                    "2020",
                    "Required param missing, need to supply the required value for the API",
                    "Required parameter TotalAmt is missing",
                )
            for line in item.get("Line") or []:
                for link in line.get("LinkedTxn") or []:
                    if (
                        link.get("TxnType") == "Invoice"
                        and str(link.get("TxnId")) not in books["Invoice"]
                    ):
                        return fault(
                            "2500",
                            "Invalid Reference Id",
                            f"Invalid Reference Id : Invoice {link.get('TxnId')}",
                        )
            return None
        if not item.get("Line"):
            return fault(
                "2020",
                "Required param missing, need to supply the required value for the API",
                "Required parameter Line is missing in the request",
            )
        number = item.get("DocNumber")
        if number and any(
            d.get("DocNumber") == number and d["Id"] != item["Id"] for d in books[name].values()
        ):
            return fault(
                "6140",
                "Duplicate Document Number Error",
                f"Duplicate Document Number Error : You must specify a different "
                f"number. This number has already been used. DocNumber={number}",
            )
        for line in item["Line"]:
            code = ((line.get("SalesItemLineDetail") or {}).get("TaxCodeRef") or {}).get("value")
            if code is not None and str(code) not in books["TaxCode"]:
                return fault(
                    "2500",
                    "Invalid Reference Id",
                    f"Invalid Reference Id : Tax code {code} is not found",
                )
        return None

    def _complete(self, realm: str, name: str, item: dict) -> None:
        """Totals QBO computes: tax lines, TotalAmt and (invoices) Balance."""
        if name == "Customer":
            item.setdefault("Active", True)
            return
        if name == "Payment":
            item["TotalAmt"] = _number(_money(item["TotalAmt"]))
            item.setdefault("TxnDate", self._now().date().isoformat())
            item.setdefault("CurrencyRef", {"value": self._currency(realm)})
            return
        books = self.companies[realm]["books"]
        item.setdefault("TxnDate", self._now().date().isoformat())
        item.setdefault("CurrencyRef", {"value": self._currency(realm)})
        lines = [line for line in item["Line"] if line.get("DetailType") != "SubTotalLineDetail"]
        subtotal, taxes = Decimal("0.00"), {}
        for number, line in enumerate(lines, 1):
            line["Id"] = str(number)
            line["LineNum"] = number
            detail = line.get("SalesItemLineDetail") or {}
            amount = _money(line.get("Amount"))
            line["Amount"] = _number(amount)
            subtotal += amount
            code = books["TaxCode"].get(str((detail.get("TaxCodeRef") or {}).get("value")))
            for part in (code or {}).get("SalesTaxRateList", {}).get("TaxRateDetail", []):
                rate_id = part["TaxRateRef"]["value"]
                taxes.setdefault(rate_id, Decimal("0.00"))
                taxes[rate_id] += amount
        tax_lines, total_tax = [], Decimal("0.00")
        for rate_id, base in taxes.items():
            rate = Decimal(str(books["TaxRate"][rate_id]["RateValue"]))
            amount = _money(base * rate / 100)
            total_tax += amount
            tax_lines.append(
                {
                    "Amount": _number(amount),
                    "DetailType": "TaxLineDetail",
                    "TaxLineDetail": {
                        "TaxRateRef": {"value": rate_id},
                        "PercentBased": True,
                        "TaxPercent": float(rate),
                        "NetAmountTaxable": _number(base),
                    },
                }
            )
        item["Line"] = [
            *lines,
            {
                "Amount": _number(subtotal),
                "DetailType": "SubTotalLineDetail",
                "SubTotalLineDetail": {},
            },
        ]
        item["TxnTaxDetail"] = {"TotalTax": _number(total_tax), "TaxLine": tax_lines}
        total = subtotal + total_tax
        item["TotalAmt"] = _number(total)
        if name == "Invoice":
            item["Balance"] = _number(max(total - self._paid(realm, item["Id"]), Decimal("0")))
        else:
            item.setdefault("RemainingCredit", _number(total))

    def _currency(self, realm: str) -> str:
        return "INR" if self.companies[realm]["Country"] == "IN" else "AUD"

    def _paid(self, realm: str, invoice_id: str) -> Decimal:
        paid = Decimal("0.00")
        for payment in self.companies[realm]["books"]["Payment"].values():
            for line in payment.get("Line") or []:
                if any(
                    str(link.get("TxnId")) == invoice_id and link.get("TxnType") == "Invoice"
                    for link in line.get("LinkedTxn") or []
                ):
                    paid += _money(line.get("Amount"))
        return paid

    def _relink(self, realm: str, before: dict | None, after: dict | None) -> None:
        """Recomputes the balance of every invoice a payment paid before or pays now."""
        invoices = self.companies[realm]["books"]["Invoice"]
        touched = set()
        for payment in (before, after):
            for line in (payment or {}).get("Line") or []:
                touched.update(str(link.get("TxnId")) for link in line.get("LinkedTxn") or [])
        for invoice_id in touched & set(invoices):
            invoice = invoices[invoice_id]
            owed = _money(invoice["TotalAmt"]) - self._paid(realm, invoice_id)
            invoice["Balance"] = _number(max(owed, Decimal("0")))

    # -- query and CDC ---------------------------------------------------------------------

    def query(self, realm: str, statement: str) -> dict:
        match = QUERY.match(statement)
        if not match:
            raise QueryError(f"The query is not understood: {statement[:200]}")
        entity = next((n for n in QUERYABLE if n.lower() == match["entity"].lower()), None)
        if entity is None:
            raise QueryError(f"Unknown entity {match['entity']}")
        conditions = self._conditions(match["where"] or "")
        with self._state_lock:
            company = self.companies[realm]
            if entity == "CompanyInfo":
                items = [{k: v for k, v in company.items() if k[0].isupper()}]
            else:
                items = list(company["books"][entity].values())
        if entity == "Customer" and not any(f.lower() == "active" for f, _, _ in conditions):
            items = [item for item in items if item.get("Active", True)]
        items = [item for item in items if all(_holds(item, *c) for c in conditions)]
        if match["what"].lower() != "*":
            return {"totalCount": len(items)}
        order = match["order"] or "Id"
        items.sort(
            key=lambda item: _sort_key(_field(item, order)),
            reverse=(match["direction"] or "").lower() == "desc",
        )
        start = max(1, int(match["start"] or 1))
        limit = min(MAX_RESULTS, int(match["max"] or 100))
        page = deepcopy(items[start - 1 : start - 1 + limit])
        if not page:
            return {}
        return {entity: page, "startPosition": start, "maxResults": len(page)}

    @staticmethod
    def _conditions(where: str) -> list[tuple[str, str, object]]:
        conditions, position = [], 0
        while position < len(where):
            match = CONDITION.match(where, position)
            if not match or match.end() == position:
                raise QueryError(f"The WHERE clause is not understood near: {where[position:]}")
            conditions.append((match["field"], match["op"].lower(), _value(match["value"])))
            position = match.end()
        return conditions

    def _cdc(self, realm: str, request: Request) -> Response:
        since_text = request.arg("changedSince") or ""
        names = [n.strip() for n in (request.arg("entities") or "").split(",") if n.strip()]
        try:
            since = _parse_time(since_text)
        except ValueError:
            return json_response(
                400,
                fault(
                    "2030", "Invalid query parameter", f"changedSince is not a date: {since_text}"
                ),
            )
        if since < self._now() - CDC_REACH:
            return json_response(
                400,
                fault(
                    "2030",
                    "Invalid query parameter",
                    "changedSince cannot be more than 30 days in the past",
                ),
            )
        unknown = [n for n in names if n not in ENTITIES.values()]
        if not names or unknown:
            return json_response(
                400,
                fault("2030", "Invalid query parameter", f"Unknown entities: {unknown or names}"),
            )
        left, responses = CDC_CAP, []
        with self._state_lock:
            company = self.companies[realm]
            for name in names:
                changed = [
                    item
                    for item in company["books"][name].values()
                    if _parse_time(item["MetaData"]["LastUpdatedTime"]) >= since
                ]
                changed.sort(key=lambda item: item["MetaData"]["LastUpdatedTime"])
                changed += [
                    {
                        "domain": "QBO",
                        "status": "Deleted",
                        "Id": item_id,
                        "MetaData": {"LastUpdatedTime": when},
                    }
                    for item_id, when in company["deleted"][name].items()
                    if _parse_time(when) >= since
                ]
                changed = deepcopy(changed[:left])
                left -= len(changed)
                part = {name: changed, "startPosition": 1, "maxResults": len(changed)}
                responses.append({"QueryResponse": [part if changed else {}]})
        return json_response(200, {"CDCResponse": responses, "time": _stamp(self._now())})

    # -- webhooks --------------------------------------------------------------------------

    def _notify(self, realm: str, name: str, item_id: str, operation: str) -> None:
        if not self.webhook_url:
            return
        body = self.webhook_body([(realm, name, item_id, operation)])
        headers = {
            "Content-Type": "application/json",
            "intuit-signature": intuit_signature(body, self.verifier_token),
        }
        self.webhooks.post(self.webhook_url, body, headers)

    def webhook_body(self, changes: list[tuple[str, str, str, str]], fmt: str | None = None):
        """The webhook body telling of `changes` [(realm, entity, id, operation)]."""
        now = self._now()
        if (fmt or self.webhook_format) == "legacy":
            by_realm: dict[str, list] = {}
            for realm, name, item_id, operation in changes:
                by_realm.setdefault(realm, []).append(
                    {
                        "name": name,
                        "id": item_id,
                        "operation": operation,
                        "lastUpdated": _stamp(now),
                    }
                )
            payload = {
                "eventNotifications": [
                    {"realmId": realm, "dataChangeEvent": {"entities": entities}}
                    for realm, entities in by_realm.items()
                ]
            }
        else:
            payload = [
                {
                    "specversion": "1.0",
                    "id": secrets.token_hex(16),
                    "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
                    "type": f"qbo.{name.lower()}.{VERBS[operation]}.v1",
                    "datacontenttype": "application/json",
                    "time": _stamp(now),
                    "intuitentityid": item_id,
                    "intuitaccountid": realm,
                    "data": {},
                }
                for realm, name, item_id, operation in changes
            ]
        return json.dumps(payload, separators=(",", ":")).encode()

    # -- admin -----------------------------------------------------------------------------

    def admin(self, request: Request) -> Response | None:
        path = request.path.rstrip("/")
        spec = request.json() if request.method == "POST" and request.body else {}
        if path == "/_standin/revoke" and request.method == "POST":
            self.revoke_all()
            return json_response(200, {"revoked": True})
        if path == "/_standin/delay" and request.method == "POST":
            with self._state_lock:
                self._delays += [float(spec.get("seconds", 5))] * int(spec.get("count", 1))
            return json_response(200, {"queued": True})
        if path == "/_standin/malformed" and request.method == "POST":
            with self._state_lock:
                self._malformed += int(spec.get("count", 1))
            return json_response(200, {"queued": True})
        if path == "/_standin/seed" and request.method == "POST":
            realm = spec.get("realm") or DEFAULT_REALM
            self.seed_bulk(realm, int(spec.get("customers", 0)), int(spec.get("invoices", 0)))
            return json_response(200, {"seeded": True})
        match = re.fullmatch(r"/_standin/books/(\w+)(?:/(\w+)(?:/(\w+))?)?", path)
        if not match or match[1] not in self.companies:
            return None
        realm, entity, item_id = match.groups()
        if entity is None and request.method == "GET":
            with self._state_lock:
                books = deepcopy(self.companies[realm]["books"])
            return json_response(200, books)
        name = ENTITIES.get((entity or "").lower())
        if name is None:
            return json_response(404, {"error": f"no entity {entity}"})
        if item_id is None and request.method == "POST":
            status, answer = self.save(realm, name, spec)
            return json_response(status, answer)
        with self._state_lock:
            current = self.companies[realm]["books"][name].get(item_id or "")
        if current is None:
            return json_response(404, {"error": "no such record"})
        token = {"Id": item_id, "SyncToken": current["SyncToken"]}
        if request.method == "DELETE":
            status, answer = self.save(realm, name, token, "delete")
        else:
            status, answer = self.save(
                realm, name, {**spec, **token, "sparse": True}, spec.pop("operation", None)
            )
        return json_response(status, answer)

    # -- seeding ---------------------------------------------------------------------------

    def seed_demo(self, realm: str = DEFAULT_REALM) -> None:
        """A small set of an Indian SME's books (Karnataka, state 29, INR): six customers,
        ten invoices (open, partly paid, paid, overdue, voided; intra-state CGST+SGST and
        inter-state IGST), four payments and a credit note. QBO has no draft invoices. The
        books' starting state: no webhooks are sent for it."""
        hook, self.webhook_url = self.webhook_url, None
        try:
            self._seed_demo(realm)
        finally:
            self.webhook_url = hook

    def _seed_demo(self, realm: str) -> None:
        customers = [
            ("Sahyadri Textiles LLP", "Pune", "27", "AAPFS4821K", "accounts@sahyadritextiles.in"),
            ("Nilgiri Logistics", "Coimbatore", "33", "AAPFN7314L", "billing@nilgirilogistics.in"),
            (
                "Kaveri Agro Foods Private Limited",
                "Mysuru",
                "29",
                "AAECK5532M",
                "finance@kaveriagro.in",
            ),
            ("Deccan Fasteners", "Hubballi", "29", "AAJFD9021P", "accounts@deccanfasteners.in"),
            ("Malabar Spice Exports", "Kochi", "32", "AAHFM6610Q", "payables@malabarspice.in"),
            ("Ganga Packaging Works", "Kanpur", "09", "AAGFG3307R", "ap@gangapackaging.in"),
        ]
        ids = []
        for name, city, state, pan, email in customers:
            _, answer = self.save(
                realm,
                "Customer",
                {
                    "DisplayName": name,
                    "CompanyName": name,
                    "GSTIN": gstin(state, pan),
                    "GSTRegistrationType": "GST_REG_REG",
                    "PrimaryEmailAddr": {"Address": email},
                    "BillAddr": {"City": city, "CountrySubDivisionCode": state, "Country": "IN"},
                },
            )
            ids.append((answer["Customer"]["Id"], state))
        today = self._now().date()
        plan = [  # (customer, days ago issued, net amount, rate)
            (0, 20, "125000.00", 18),
            (0, 75, "48000.00", 18),
            (1, 10, "62000.00", 18),
            (1, 50, "21500.00", 5),
            (2, 5, "34000.00", 18),
            (2, 40, "90000.00", 5),
            (3, 15, "15600.00", 18),
            (3, 90, "27500.00", 18),
            (4, 30, "54000.00", 5),
            (5, 12, "38250.00", 18),
        ]
        invoices = []
        for number, (who, days, amount, rate) in enumerate(plan, 1):
            customer, state = ids[who]
            _, answer = self.save(
                realm,
                "Invoice",
                self._invoice_body(
                    realm,
                    f"QB-{1000 + number}",
                    customer,
                    state,
                    today - timedelta(days=days),
                    Decimal(amount),
                    rate,
                ),
            )
            invoices.append(answer["Invoice"])
        for invoice, share in (
            (invoices[1], 1),
            (invoices[3], 1),
            (invoices[5], 0.5),
            (invoices[7], 0.4),
        ):
            paid = _money(Decimal(str(invoice["TotalAmt"])) * Decimal(str(share)))
            self.save(
                realm,
                "Payment",
                {
                    "TotalAmt": _number(paid),
                    "CustomerRef": invoice["CustomerRef"],
                    "TxnDate": today.isoformat(),
                    "PaymentRefNum": f"UTR{invoice['Id']:0>8}",
                    "Line": [
                        {
                            "Amount": _number(paid),
                            "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}],
                        }
                    ],
                },
            )
        void = invoices[9]
        self.save(
            realm,
            "Invoice",
            {"Id": void["Id"], "SyncToken": void["SyncToken"], "sparse": True},
            "void",
        )
        credit = self._invoice_body(
            realm,
            "CN-1001",
            ids[2][0],
            ids[2][1],
            today - timedelta(days=3),
            Decimal("5000.00"),
            18,
        )
        credit.pop("DueDate")
        credit["PrivateNote"] = "Short supply on QB-1005"
        self.save(realm, "CreditMemo", credit)

    def _invoice_body(self, realm, number, customer, state, issued: date, net: Decimal, rate):
        home = self.companies[realm]["CompanyAddr"]["CountrySubDivisionCode"]
        code = {(18, True): "1", (18, False): "2", (5, True): "3", (5, False): "4"}[
            (rate, state == home)
        ]
        return {
            "DocNumber": number,
            "TxnDate": issued.isoformat(),
            "DueDate": (issued + timedelta(days=30)).isoformat(),
            "CustomerRef": {"value": customer},
            "CurrencyRef": {"value": "INR"},
            "ShipAddr": {"CountrySubDivisionCode": state},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": _number(net),
                    "Description": "Goods as per order",
                    "SalesItemLineDetail": {
                        "Qty": 1,
                        "UnitPrice": _number(net),
                        "TaxCodeRef": {"value": code},
                    },
                }
            ],
        }

    def seed_bulk(self, realm: str, customers: int, invoices: int) -> None:
        """`customers` customers and `invoices` open invoices spread over them (benchmarks);
        no webhooks are sent for them."""
        hook, self.webhook_url = self.webhook_url, None
        try:
            made = []
            for n in range(customers):
                _, answer = self.save(realm, "Customer", {"DisplayName": f"Bulk customer {n + 1}"})
                made.append(answer["Customer"]["Id"])
            day = self._now().date()
            for n in range(invoices if made else 0):
                self.save(
                    realm,
                    "Invoice",
                    self._invoice_body(
                        realm,
                        f"BULK-{n + 1}",
                        made[n % len(made)],
                        "29",
                        day,
                        Decimal("1000.00"),
                        18,
                    ),
                )
        finally:
            self.webhook_url = hook


def _page(status: int, body: str) -> Response:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>QuickBooks stand-in</title></head><body>{body}</body></html>"
    )
    return Response(status, document.encode(), [("Content-Type", "text/html; charset=utf-8")])


def _value(text: str):
    if text.startswith("'"):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if text.startswith("("):
        return [_value(part.strip()) for part in text[1:-1].split(",") if part.strip()]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _field(item: dict, path: str):
    value = item
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        key = next((k for k in value if k.lower() == part.lower()), None)
        value = value.get(key) if key else None
    return value


def _sort_key(value):
    if isinstance(value, str) and value.isdigit():
        return (0, int(value), "")
    return (1, 0, str(value or ""))


def _holds(item: dict, field_path: str, op: str, wanted) -> bool:
    value = _field(item, field_path)
    if field_path.lower() == "active" and value is None:
        value = True
    if op == "in":
        return value in wanted
    if op == "like":
        pattern = "^" + re.escape(str(wanted)).replace("%", ".*") + "$"
        return bool(re.match(pattern, str(value or ""), re.IGNORECASE))
    if field_path.lower().endswith("time") and value:
        value, wanted = _parse_time(str(value)), _parse_time(str(wanted))
    elif isinstance(wanted, str) and isinstance(value, int | float):
        wanted = float(wanted)
    if op == "=":
        return value == wanted
    if value is None:
        return False
    return {"<": value < wanted, ">": value > wanted, "<=": value <= wanted, ">=": value >= wanted}[
        op
    ]
