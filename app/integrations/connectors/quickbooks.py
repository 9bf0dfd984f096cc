"""QuickBooks Online (QBO) Accounting API v3 as an accounting connector (providers.md §4).

OAuth 2.0: the endpoints come from Intuit's discovery document (QBO_DISCOVERY_URL), the
platform's app credentials from the config (QBO_CLIENT_ID, QBO_CLIENT_SECRET) and go to the
token endpoint as HTTP Basic, scope `com.intuit.quickbooks.accounting`. No PKCE: Intuit's
OAuth client (intuit-oauth) sends no code challenge and Intuit documents none for web apps.
The consent picks one company; the callback's `realmId` is kept in TokenSet.extra and is the
only Book. Refresh tokens rotate: every refresh answer carries the one to keep.

Data calls go to QBO_API_BASE/v3/company/<realmId>/..., each with `minorversion=75` (Intuit no
longer serves older minor versions).

Pull:
- the first pass (`since` None) pages with the query language,
  `select * from Invoice ORDERBY Id STARTPOSITION n MAXRESULTS 1000`; customers are asked with
  `where Active in (true, false)` because QBO hides inactive (deleted) customers otherwise. The
  cursor is "<next start position>@<marker>": the marker is the time the pass began, returned
  with every page, so changes made during the pass are asked for again next time.
- later passes ask change data capture (`/cdc?entities=Invoice&changedSince=<since>`), which
  also reports deletions (`status: Deleted` -> deleted=True). CDC has no paging and answers at
  most 1,000 objects: an answer with exactly 1,000 may be cut short, so it does NOT advance the
  marker; its records are kept and the pass goes on by query paging over
  `where Metadata.LastUpdatedTime >= '<since>'` (every live change, in pages) and only the last
  of those pages gives the new marker. CDC looks back 30 days at most: an older `since` goes
  the query way from the start. Deletions older than CDC's reach are found by a full refresh.
- a Payment applied to several invoices becomes one BookPayment per invoice it pays, with
  remote_id "<PaymentId>:<InvoiceId>" (the neutral shape pays one invoice); lines applied to
  credit memos are not payments of money and are left out. Updating one of them rewrites
  only its own line of the QBO payment. A deleted payment (CDC) comes back once, as
  remote_id "<PaymentId>" with deleted=True: QBO no longer says which invoices it paid, so
  every "<PaymentId>:..." record is gone.
- QBO has no draft invoices (a saved invoice is posted) and marks a voided one by zeroing it
  with the private note "Voided": that reads as state "void".

Push: a create carries `requestid=<key>`, QBO's idempotency key (the same key gives back the
first answer); an update sends Id + SyncToken (sparse); a stale SyncToken (error 5010) reads
the record again and retries once with the fresh token, then fails loudly. `find` looks the
record up by DocNumber (DisplayName for customers, PaymentRefNum for payments).

Tax: a line's TaxCodeRef names a TaxCode whose TaxRates add up to the line's rate (India: a
"GST 18%" code is CGST 9% + SGST 9% for a sale inside the books' state, "IGST 18%" one rate
for a sale to another state; Australia: "GST" 10%). The codes and rates are read once per
connector per company. QBO's API has no place-of-supply element (Finance.xsd), so the state
code the tax follows travels as the invoice's ShipAddr.CountrySubDivisionCode. A customer's
tax number is the XSD's `GSTIN` (India) or `BusinessNumber` (the ABN in Australia).

Errors: a Fault's code and words become RecordRefused (validation) with QBO's Detail; 401 or
invalid_grant -> TokenRevoked; 429 -> RateLimited(60): Intuit says to wait 60 seconds; 5xx,
timeouts and unreadable bodies -> ProviderUnavailable.

Webhooks: `intuit-signature` is base64(HMAC-SHA256(verifier token, raw body)), checked with
hmac.compare_digest. The legacy payload (`{"eventNotifications": [...]}`) and the CloudEvents
one (a JSON array) give the same Notices, with the event id
"<realm>:<entity>:<id>:<UTC time>" so one change told twice is one event; a delivery may span
several companies and yields notices for each. A Payment notice names the payment, not the
"<PaymentId>:<InvoiceId>" records it becomes: the engine pulls it by CDC.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from urllib.parse import urlencode

import httpx

from app.integrations.connectors import pooled_client
from app.integrations.connectors.accounting import (
    AccountingConnector,
    AccountingError,
    Address,
    Book,
    BookContact,
    BookCreditNote,
    BookInvoice,
    BookLine,
    BookPayment,
    BookRecord,
    Notice,
    Page,
    ProviderUnavailable,
    RateLimited,
    RecordRefused,
    TokenRevoked,
    TokenSet,
    Unreadable,
)
from app.integrations.connectors.gateway import WebhookRefused
from app.integrations.connectors.wire import BadWebhookBody, check_shape, read_json

MINOR_VERSION = "75"
SCOPE = "com.intuit.quickbooks.accounting"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
CDC_CAP = 1000  # objects in one CDC answer; exactly this many may mean it was cut short
CDC_REACH = timedelta(days=30)
RETRY_AFTER_429 = 60.0  # Intuit: "wait 60 seconds before retrying"
STALE_SYNC_TOKEN = "5010"
TWO_PLACES = Decimal("0.01")

# Our entity -> the QBO entity (its JSON key, query name and URL segment in lower case).
ENTITY_NAMES = {
    "contact": "Customer",
    "invoice": "Invoice",
    "credit_note": "CreditMemo",
    "payment": "Payment",
}
# Webhook entity names (legacy "Customer", CloudEvents "qbo.customer.created.v1") -> ours.
WEBHOOK_ENTITIES = {name.lower(): entity for entity, name in ENTITY_NAMES.items()}
# The field `find` looks a record up by.
FIND_FIELDS = {
    "contact": "DisplayName",
    "invoice": "DocNumber",
    "credit_note": "DocNumber",
    "payment": "PaymentRefNum",
}
CURRENCY_SHAPE = re.compile(r"[A-Z]{3}")
GSTIN_SHAPE = re.compile(r"\d{2}[A-Z0-9]{13}")

_discovery: dict[str, dict] = {}
_discovery_lock = threading.Lock()


class _StaleSyncToken(AccountingError):
    """QBO refused an update because the record changed since we read it (Fault 5010)."""


def money(value) -> Decimal:
    return Decimal(str(value if value is not None else 0)).quantize(TWO_PLACES, ROUND_HALF_UP)


def _amount(value: Decimal) -> float:
    """A JSON number for QBO (its decimals are xs:decimal): exact to the cent as a float."""
    return float(money(value))


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    """QBO's datetime form, to the millisecond, as CDC's changedSince and the query language
    take it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+00:00"


def _answer_time(data: dict) -> str:
    """The marker an answer gives: QuickBooks' own time of it (our clock is not Intuit's, and a
    marker ahead of Intuit's would skip changes), ours when it gives none."""
    return _stamp(_time(str(data.get("time") or "")) or datetime.now(UTC))


def _quoted(value: str) -> str:
    """A string literal of QBO's query language (a quote escaped with a backslash)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def signature(body: bytes, verifier_token: str) -> str:
    """The `intuit-signature` header of a webhook body."""
    digest = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class QuickBooksConnector(AccountingConnector):
    provider = "quickbooks"
    title = "QuickBooks Online"
    description = "Keeps {clients}, invoices, credit notes and payments in step with QuickBooks."
    per_minute = 500
    page_size = 1000
    uses_pkce = False
    webhook_entities = ("contact", "invoice", "payment", "credit_note")

    def __init__(self, *, settings, secrets, config):
        super().__init__(settings=settings, secrets=secrets, config=config)
        # Per company: {tax code id: (rate, is IGST)} and the company's state, read once.
        self._tax_codes: dict[str, dict[str, tuple[Decimal, bool]]] = {}
        self._company_state: dict[str, str | None] = {}

    # -- OAuth -----------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        return pooled_client(timeout=TIMEOUT)

    def discovery(self) -> dict:
        url = self.config["QBO_DISCOVERY_URL"]
        with _discovery_lock:
            known = _discovery.get(url)
        if known:
            return known
        document = self._json(self._send("GET", url))
        if not isinstance(document, dict) or "token_endpoint" not in document:
            raise ProviderUnavailable("QuickBooks' discovery document is not readable.")
        with _discovery_lock:
            _discovery[url] = document
        return document

    def authorization_url(self, redirect_uri: str, state: str, code_challenge: str) -> str:
        query = {
            "client_id": self.config["QBO_CLIENT_ID"],
            "response_type": "code",
            "scope": SCOPE,
            "redirect_uri": redirect_uri,
            "state": state,
        }
        return f"{self.discovery()['authorization_endpoint']}?{urlencode(query)}"

    def exchange_code(self, code, redirect_uri, code_verifier, callback) -> TokenSet:
        realm = (callback.get("realmId") or "").strip()
        if not realm:
            raise AccountingError("QuickBooks did not say which company was connected.")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        return self._token(form, {"realm_id": realm})

    def refresh(self, tokens: TokenSet) -> TokenSet:
        if not tokens.refresh_token:
            raise TokenRevoked("QuickBooks gave no refresh token: connect again.")
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        return self._token(form, tokens.extra)

    def _token(self, form: dict, extra: dict) -> TokenSet:
        credentials = f"{self.config['QBO_CLIENT_ID']}:{self.config['QBO_CLIENT_SECRET']}"
        headers = {
            "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
            "Accept": "application/json",
        }
        answer = self._send("POST", self.discovery()["token_endpoint"], data=form, headers=headers)
        if answer.status_code in (400, 401):
            error = self._json_or_empty(answer).get("error") or f"HTTP {answer.status_code}"
            raise TokenRevoked(f"QuickBooks refused the sign-in ({error}): connect again.")
        data = self._checked(answer)
        try:
            lifetime = int(data["expires_in"])
            access = str(data["access_token"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable("QuickBooks' token answer is not readable.") from exc
        return TokenSet(
            access_token=access,
            refresh_token=data.get("refresh_token"),
            expires_at=datetime.now(UTC) + timedelta(seconds=lifetime),
            extra=dict(extra),
        )

    # -- HTTP ------------------------------------------------------------------------------

    def _send(self, method: str, url: str, **options) -> httpx.Response:
        try:
            return self._client().request(method, url, **options)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable("QuickBooks did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"QuickBooks could not be reached ({exc}).") from exc

    @staticmethod
    def _json(answer: httpx.Response):
        try:
            return answer.json()
        except ValueError as exc:
            raise ProviderUnavailable("QuickBooks' answer is not readable JSON.") from exc

    @classmethod
    def _json_or_empty(cls, answer: httpx.Response) -> dict:
        try:
            data = answer.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _checked(self, answer: httpx.Response) -> dict:
        """The JSON object of an answer, or the error it means."""
        if answer.status_code == 401:
            raise TokenRevoked("QuickBooks no longer accepts our access: connect again.")
        if answer.status_code == 429:
            raise RateLimited("QuickBooks asks us to slow down.", RETRY_AFTER_429)
        if answer.status_code >= 500:
            raise ProviderUnavailable(f"QuickBooks answered HTTP {answer.status_code}.")
        data = self._json(answer)
        if not isinstance(data, dict):
            raise ProviderUnavailable("QuickBooks' answer is not a JSON object.")
        fault = data.get("Fault")
        if fault or answer.status_code >= 400:
            raise self._fault_error(fault if isinstance(fault, dict) else {}, answer.status_code)
        return data

    @staticmethod
    def _fault_error(fault: dict, status: int) -> AccountingError:
        errors = fault.get("Error") or [{}]
        first = errors[0] if isinstance(errors, list) and isinstance(errors[0], dict) else {}
        code = str(first.get("code") or "")
        words = (
            ": ".join(str(part) for part in (first.get("Message"), first.get("Detail")) if part)
            or f"QuickBooks refused the request (HTTP {status})."
        )
        if code == STALE_SYNC_TOKEN:
            return _StaleSyncToken(words)
        if fault.get("type") == "AuthenticationFault" or status == 403:
            return TokenRevoked(f"QuickBooks refused our access: {words}")
        return RecordRefused(f"{words} (QuickBooks error {code})" if code else words)

    def _api(self, access: str, realm: str, method: str, path: str, **options) -> dict:
        base = self.config["QBO_API_BASE"].rstrip("/")
        params = {"minorversion": MINOR_VERSION, **options.pop("params", {})}
        headers = {"Authorization": f"Bearer {access}", "Accept": "application/json"}
        headers.update(options.pop("headers", {}))
        url = f"{base}/v3/company/{realm}/{path}"
        return self._checked(self._send(method, url, params=params, headers=headers, **options))

    def _query(self, access: str, realm: str, statement: str) -> dict:
        return self._query_answer(access, realm, statement)["QueryResponse"]

    def _query_answer(self, access: str, realm: str, statement: str) -> dict:
        data = self._api(
            access,
            realm,
            "POST",
            "query",
            content=statement.encode(),
            headers={"Content-Type": "application/text"},
        )
        if not isinstance(data.get("QueryResponse"), dict):
            raise ProviderUnavailable("QuickBooks' query answer has no QueryResponse.")
        return data

    # -- books -----------------------------------------------------------------------------

    def organisations(self, access: str, tokens: TokenSet) -> list[Book]:
        realm = tokens.extra.get("realm_id")
        if not realm:
            raise AccountingError("These tokens do not name a QuickBooks company.")
        info = self._company(access, realm)
        address = info.get("CompanyAddr") or {}
        return [
            Book(
                remote_id=realm,
                name=info.get("CompanyName") or f"QuickBooks company {realm}",
                country=info.get("Country") or address.get("Country"),
            )
        ]

    def _company(self, access: str, realm: str) -> dict:
        info = self._api(access, realm, "GET", f"companyinfo/{realm}").get("CompanyInfo")
        if not isinstance(info, dict):
            raise ProviderUnavailable("QuickBooks' company answer has no CompanyInfo.")
        self._company_state[realm] = (info.get("CompanyAddr") or {}).get("CountrySubDivisionCode")
        return info

    def _codes(self, access: str, realm: str) -> dict[str, tuple[Decimal, bool]]:
        """{tax code id: (its total rate in percent, whether it is IGST)}."""
        if realm not in self._tax_codes:
            rates = {
                str(rate.get("Id")): (money(rate.get("RateValue")), str(rate.get("Name", "")))
                for rate in self._query(access, realm, "select * from TaxRate").get("TaxRate", [])
            }
            codes = {}
            for code in self._query(access, realm, "select * from TaxCode").get("TaxCode", []):
                details = (code.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []
                parts = [rates.get(str((d.get("TaxRateRef") or {}).get("value"))) for d in details]
                parts = [part for part in parts if part]
                total = sum((rate for rate, _ in parts), Decimal("0.00"))
                igst = any(name.upper().startswith("IGST") for _, name in parts)
                codes[str(code.get("Id"))] = (total, igst)
            self._tax_codes[realm] = codes
        return self._tax_codes[realm]

    def _code_for(self, access: str, realm: str, rate: Decimal, inter_state: bool) -> str:
        codes = self._codes(access, realm)
        matching = [code for code, (total, _) in codes.items() if total == money(rate)]
        if not matching:
            raise RecordRefused(f"The books have no tax code of {money(rate)}%.")
        # India: one rate has an IGST code (a sale to another state) and a CGST+SGST one.
        wanted = [code for code in matching if codes[code][1] == inter_state]
        return (wanted or matching)[0]

    # -- pull ------------------------------------------------------------------------------

    def pull(self, access, book, entity, since, cursor) -> Page:
        name = ENTITY_NAMES[entity]
        if cursor:
            start_text, _, rest = cursor.partition("@")
            marker, _, changed_since = rest.partition("@")
            return self._query_page(access, book, entity, int(start_text), marker, changed_since)
        changed = _time(since) if since else None
        if changed is None or datetime.now(UTC) - changed >= CDC_REACH - timedelta(hours=1):
            return self._query_page(access, book, entity, 1, None, since or "")
        data = self._api(
            access, book, "GET", "cdc", params={"entities": name, "changedSince": since}
        )
        marker = _answer_time(data)
        objects = []
        for response in data.get("CDCResponse") or []:
            for part in response.get("QueryResponse") or []:
                objects.extend(part.get(name) or [])
        records, unreadable = self._read_all(access, book, entity, objects)
        if len(objects) >= CDC_CAP:
            # Possibly cut short: keep what came, go on by query paging, marker unchanged.
            return Page(records, f"1@{marker}@{since}", None, unreadable)
        return Page(records, None, marker, unreadable)

    def _query_page(self, access, book, entity, start, marker, changed_since) -> Page:
        """One page of a query pass; the first page's answer time is the pass's marker."""
        name = ENTITY_NAMES[entity]
        conditions = []
        if entity == "contact":
            conditions.append("Active IN (true, false)")
        if changed_since:
            conditions.append(f"Metadata.LastUpdatedTime >= {_quoted(changed_since)}")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        statement = (
            f"SELECT * FROM {name}{where} ORDERBY Id "
            f"STARTPOSITION {start} MAXRESULTS {self.page_size}"
        )
        data = self._query_answer(access, book, statement)
        marker = marker or _answer_time(data)
        objects = data["QueryResponse"].get(name) or []
        records, unreadable = self._read_all(access, book, entity, objects)
        if len(objects) >= self.page_size:
            cursor = f"{start + len(objects)}@{marker}@{changed_since}"
            return Page(records, cursor, None, unreadable)
        return Page(records, None, marker, unreadable)

    def _read_all(self, access, book, entity, objects) -> tuple[list[BookRecord], list[Unreadable]]:
        records: list[BookRecord] = []
        unreadable: list[Unreadable] = []
        for item in objects:
            remote_id = str(item.get("Id")) if isinstance(item, dict) and item.get("Id") else None
            try:
                if not isinstance(item, dict) or not remote_id:
                    raise ValueError("the record has no Id")
                records.extend(self._read(access, book, entity, item))
            except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
                unreadable.append(Unreadable(remote_id, str(exc) or "the record is not readable"))
        return records, unreadable

    def _read(self, access, book, entity, item: dict) -> list[BookRecord]:
        remote_id = str(item["Id"])
        meta = item.get("MetaData") or {}
        common = {
            "version": str(item["SyncToken"]) if "SyncToken" in item else None,
            "updated_at": _time(meta.get("LastUpdatedTime")),
        }
        if item.get("status") == "Deleted":
            return [self._deleted(entity, remote_id, common["updated_at"])]
        if entity == "contact":
            return [self.read_customer(item, common)]
        if entity == "payment":
            return self.read_payment(item, common)
        return [self.read_document(access, book, entity, item, common)]

    @staticmethod
    def _deleted(entity: str, remote_id: str, updated_at: datetime | None) -> BookRecord:
        """A record CDC reports deleted: only its id and deletion matter to the engine."""
        day = (updated_at or datetime.now(UTC)).date()
        gone = {"remote_id": remote_id, "updated_at": updated_at, "deleted": True}
        if entity == "contact":
            return BookContact(name="", **gone)
        if entity == "payment":
            return BookPayment(
                invoice_remote_id="",
                contact_remote_id=None,
                paid_on=day,
                amount=Decimal("0.00"),
                currency="",
                **gone,
            )
        document = {
            "number": "",
            "contact_remote_id": "",
            "issue_date": day,
            "currency": "",
            "state": "void",
            "lines": (),
            "subtotal": Decimal("0.00"),
            "tax_total": Decimal("0.00"),
            "total": Decimal("0.00"),
            **gone,
        }
        if entity == "invoice":
            return BookInvoice(due_date=None, amount_due=Decimal("0.00"), **document)
        return BookCreditNote(**document)

    @staticmethod
    def read_customer(item: dict, common: dict) -> BookContact:
        name = (item.get("DisplayName") or "").strip()
        if not name:
            raise ValueError("the customer has no display name")
        currency = (item.get("CurrencyRef") or {}).get("value")
        if currency and not CURRENCY_SHAPE.fullmatch(currency):
            raise ValueError(f"unknown currency {currency!r}")
        address = item.get("BillAddr") or {}
        return BookContact(
            remote_id=str(item["Id"]),
            name=name,
            email=(item.get("PrimaryEmailAddr") or {}).get("Address"),
            phone=(item.get("PrimaryPhone") or {}).get("FreeFormNumber"),
            tax_number=item.get("GSTIN") or item.get("BusinessNumber"),
            currency=currency,
            address=Address(
                line1=address.get("Line1"),
                line2=address.get("Line2"),
                city=address.get("City"),
                region=address.get("CountrySubDivisionCode"),
                postal_code=address.get("PostalCode"),
                country=address.get("Country"),
            ),
            deleted=item.get("Active") is False,
            **common,
        )

    def read_document(self, access, book, entity, item: dict, common: dict):
        number = (item.get("DocNumber") or "").strip()
        if not number:
            raise ValueError("the document has no number (DocNumber)")
        contact = (item.get("CustomerRef") or {}).get("value")
        if not contact:
            raise ValueError("the document names no customer")
        currency = (item.get("CurrencyRef") or {}).get("value") or ""
        if not CURRENCY_SHAPE.fullmatch(currency):
            raise ValueError(f"unknown currency {currency!r}")
        codes = self._codes(access, book)
        lines = []
        for line in item.get("Line") or []:
            detail = line.get("SalesItemLineDetail")
            if line.get("DetailType") != "SalesItemLineDetail" or not isinstance(detail, dict):
                continue  # subtotal and discount lines carry no goods
            net = money(line.get("Amount"))
            code = str((detail.get("TaxCodeRef") or {}).get("value") or "")
            rate = codes.get(code, (Decimal("0.00"), False))[0]
            quantity = Decimal(str(detail.get("Qty", 1)))
            price = detail.get("UnitPrice")
            lines.append(
                BookLine(
                    description=line.get("Description") or "",
                    quantity=quantity,
                    unit_price=money(price if price is not None else net / (quantity or 1)),
                    net_amount=net,
                    tax_rate=rate,
                    tax_amount=money(net * rate / 100),
                )
            )
        subtotal = sum((line.net_amount for line in lines), Decimal("0.00"))
        tax_total = money((item.get("TxnTaxDetail") or {}).get("TotalTax"))
        total = money(item.get("TotalAmt"))
        voided = str(item.get("PrivateNote") or "").startswith("Voided") and total == 0
        fields = {
            "remote_id": str(item["Id"]),
            "number": number,
            "contact_remote_id": str(contact),
            "issue_date": date.fromisoformat(item["TxnDate"]),
            "currency": currency,
            "lines": tuple(lines),
            "subtotal": subtotal,
            "tax_total": tax_total,
            "total": total,
            **common,
        }
        if entity == "credit_note":
            remaining = money(item.get("RemainingCredit", total))
            state = "void" if voided else ("paid" if total and not remaining else "open")
            return BookCreditNote(state=state, reason=item.get("PrivateNote"), **fields)
        balance = money(item.get("Balance"))
        state = "void" if voided else ("paid" if balance == 0 else "open")
        due = item.get("DueDate")
        return BookInvoice(
            state=state,
            due_date=date.fromisoformat(due) if due else None,
            amount_due=Decimal("0.00") if voided else balance,
            place_of_supply=(item.get("ShipAddr") or {}).get("CountrySubDivisionCode"),
            **fields,
        )

    @staticmethod
    def read_payment(item: dict, common: dict) -> list[BookPayment]:
        currency = (item.get("CurrencyRef") or {}).get("value") or ""
        if not CURRENCY_SHAPE.fullmatch(currency):
            raise ValueError(f"unknown currency {currency!r}")
        paid_on = date.fromisoformat(item["TxnDate"])
        contact = (item.get("CustomerRef") or {}).get("value")
        payments = []
        for line in item.get("Line") or []:
            for link in line.get("LinkedTxn") or []:
                if link.get("TxnType") != "Invoice":
                    continue  # money moved from a credit memo, not received
                invoice = str(link["TxnId"])
                payments.append(
                    BookPayment(
                        remote_id=f"{item['Id']}:{invoice}",
                        invoice_remote_id=invoice,
                        contact_remote_id=str(contact) if contact else None,
                        paid_on=paid_on,
                        amount=money(line.get("Amount")),
                        currency=currency,
                        reference=item.get("PaymentRefNum"),
                        **common,
                    )
                )
        if not payments:
            raise ValueError("the payment is not applied to any invoice")
        return payments

    # -- find and push ---------------------------------------------------------------------

    def find(self, access, book, entity, number) -> BookRecord | None:
        name = ENTITY_NAMES[entity]
        where = f"{FIND_FIELDS[entity]} = {_quoted(number)}"
        if entity == "contact":
            where += " AND Active IN (true, false)"
        objects = self._query(access, book, f"SELECT * FROM {name} WHERE {where}").get(name) or []
        records, _ = self._read_all(access, book, entity, objects[:1])
        return records[0] if records else None

    def push(self, access, book, entity, record, key):
        name = ENTITY_NAMES[entity]
        remote_id = record.remote_id.split(":")[0] if record.remote_id else None
        params = {"requestid": key}
        if remote_id and getattr(record, "state", None) == "void":
            params["operation"] = "void"
        try:
            data = self._write(access, book, entity, record, remote_id, record.version, params)
        except _StaleSyncToken:
            if not remote_id:
                raise
            fresh = self._api(access, book, "GET", f"{name.lower()}/{remote_id}").get(name) or {}
            # A new requestid: QuickBooks may keep the refusal under the first one.
            params["requestid"] = f"{key}:fresh"
            token = str(fresh.get("SyncToken", record.version))
            try:
                data = self._write(access, book, entity, record, remote_id, token, params)
            except _StaleSyncToken as exc:
                raise RecordRefused(f"{exc} (the record kept changing in QuickBooks)") from exc
        saved = data.get(name)
        if not isinstance(saved, dict):
            raise ProviderUnavailable(f"QuickBooks' answer has no {name}.")
        records, unreadable = self._read_all(access, book, entity, [saved])
        if not records:
            raise ProviderUnavailable(f"QuickBooks' answer is not readable: {unreadable[0].reason}")
        if entity == "payment":
            wanted = f"{saved.get('Id')}:{record.invoice_remote_id}"
            return next((r for r in records if r.remote_id == wanted), records[0])
        return records[0]

    def _write(self, access, book, entity, record, remote_id, sync_token, params) -> dict:
        name = ENTITY_NAMES[entity]
        body = self._body(access, book, entity, record)
        if remote_id:
            body.update({"Id": remote_id, "SyncToken": sync_token or "0", "sparse": True})
        return self._api(access, book, "POST", name.lower(), params=params, json=body)

    def _body(self, access, book, entity, record) -> dict:
        if entity == "contact":
            return self.customer_body(record)
        if entity == "payment":
            return self.payment_body(access, book, record)
        if record.state == "draft":
            raise RecordRefused("QuickBooks Online has no draft invoices; approve it first.")
        return self.document_body(access, book, record)

    @staticmethod
    def customer_body(contact: BookContact) -> dict:
        body: dict = {"DisplayName": contact.name, "Active": not contact.deleted}
        if contact.email:
            body["PrimaryEmailAddr"] = {"Address": contact.email}
        if contact.phone:
            body["PrimaryPhone"] = {"FreeFormNumber": contact.phone}
        if contact.tax_number:
            field_name = "GSTIN" if GSTIN_SHAPE.fullmatch(contact.tax_number) else "BusinessNumber"
            body[field_name] = contact.tax_number
        address = contact.address
        bill = {
            "Line1": address.line1,
            "Line2": address.line2,
            "City": address.city,
            "CountrySubDivisionCode": address.region,
            "PostalCode": address.postal_code,
            "Country": address.country,
        }
        bill = {name: value for name, value in bill.items() if value}
        if bill:
            body["BillAddr"] = bill
        return body

    def document_body(self, access, book, document) -> dict:
        state = self._company_state.get(book)
        if book not in self._company_state:
            state = (self._company(access, book).get("CompanyAddr") or {}).get(
                "CountrySubDivisionCode"
            )
        place = getattr(document, "place_of_supply", None)
        inter_state = bool(place and state and place != state)
        lines = [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": _amount(line.net_amount),
                "Description": line.description,
                "SalesItemLineDetail": {
                    "Qty": float(line.quantity),
                    "UnitPrice": _amount(line.unit_price),
                    "TaxCodeRef": {
                        "value": self._code_for(access, book, line.tax_rate, inter_state)
                    },
                },
            }
            for line in document.lines
        ]
        body = {
            "DocNumber": document.number,
            "TxnDate": document.issue_date.isoformat(),
            "CustomerRef": {"value": document.contact_remote_id},
            "CurrencyRef": {"value": document.currency},
            "Line": lines,
        }
        if isinstance(document, BookInvoice):
            if document.due_date:
                body["DueDate"] = document.due_date.isoformat()
            if place:
                body["ShipAddr"] = {"CountrySubDivisionCode": place}
        elif document.reason:
            body["PrivateNote"] = document.reason
        return body

    def payment_body(self, access, book, payment: BookPayment) -> dict:
        contact = payment.contact_remote_id
        if not contact:
            invoice = self._api(access, book, "GET", f"invoice/{payment.invoice_remote_id}")
            contact = ((invoice.get("Invoice") or {}).get("CustomerRef") or {}).get("value")
        ours = {
            "Amount": _amount(payment.amount),
            "LinkedTxn": [{"TxnId": payment.invoice_remote_id, "TxnType": "Invoice"}],
        }
        lines = [ours]
        if payment.remote_id:
            # One QBO payment may pay several invoices (each one of our payments): an update
            # replaces the Line list, so the lines for the other invoices are sent unchanged.
            current = self._api(access, book, "GET", f"payment/{payment.remote_id.split(':')[0]}")
            lines += [
                line
                for line in (current.get("Payment") or {}).get("Line") or []
                if not any(
                    str(link.get("TxnId")) == payment.invoice_remote_id
                    for link in line.get("LinkedTxn") or []
                )
            ]
        body = {
            "TotalAmt": _amount(sum((money(line["Amount"]) for line in lines), Decimal("0"))),
            "CustomerRef": {"value": contact},
            "TxnDate": payment.paid_on.isoformat(),
            "CurrencyRef": {"value": payment.currency},
            "Line": lines,
        }
        if payment.reference:
            body["PaymentRefNum"] = payment.reference
        return body

    # -- webhooks --------------------------------------------------------------------------

    def read_webhook(self, body: bytes, headers, signing_key: str) -> list[Notice]:
        given = headers.get("intuit-signature") or ""
        if not signing_key or not hmac.compare_digest(given, signature(body, signing_key)):
            raise WebhookRefused("The intuit-signature does not match the body.")
        data = read_json(body)
        notices: list[Notice] = []
        if isinstance(data, list):
            check_shape(data, [{"type": str, "intuitentityid": str, "intuitaccountid": str}])
            for event in data:
                kind = str(event.get("type", "")).split(".")
                if len(kind) >= 2:
                    notices += self._notice(
                        event.get("intuitaccountid"),
                        kind[1],
                        event.get("intuitentityid"),
                        event.get("time"),
                    )
        elif isinstance(data, dict):
            shape = [{"realmId": str, "dataChangeEvent": {"entities": [{"name": str}]}}]
            check_shape(data.get("eventNotifications"), shape, "eventNotifications")
            for notification in data["eventNotifications"]:
                for change in (notification.get("dataChangeEvent") or {}).get("entities") or []:
                    notices += self._notice(
                        notification.get("realmId"),
                        change.get("name", ""),
                        change.get("id"),
                        change.get("lastUpdated"),
                    )
        else:
            raise BadWebhookBody("The body is neither a list of events nor a notification.")
        return notices

    @staticmethod
    def _notice(realm, entity_name: str, remote_id, when) -> list[Notice]:
        entity = WEBHOOK_ENTITIES.get(entity_name.lower())
        if not (entity and realm and remote_id):
            return []  # an entity we do not sync (Item, Vendor ...)
        moment = _time(str(when)) if when else None
        stamp = _stamp(moment) if moment else ""
        event_id = f"{realm}:{entity}:{remote_id}:{stamp}"
        return [
            Notice(book_id=str(realm), entity=entity, remote_id=str(remote_id), event_id=event_id)
        ]
