"""Xero: contacts, sales invoices (ACCREC), credit notes (ACCRECCREDIT) and their payments, for
the sync engine (providers.md §3; Xero's OpenAPI documents, tests/contracts/xero/).

Wire protocol only: this module speaks the accounting connectors' neutral shapes
(app.integrations.connectors.accounting) and knows nothing of Duebook's clients or invoices.

- OAuth 2.0 authorization code with PKCE (S256): consent at XERO_LOGIN_BASE, tokens at
  XERO_IDENTITY_BASE (client id and secret of the platform's Xero app, HTTP Basic). Refresh
  tokens rotate: every refresh answers a new one, and the old one then fails with
  `invalid_grant`, which is TokenRevoked. Access tokens last 30 minutes.
- One consent can reach several organisations: `GET /connections` lists them (tenantId,
  tenantName); every accounting call names its organisation in `xero-tenant-id`.
- Pulls ask with `If-Modified-Since: <marker>` and `order=UpdatedDateUTC ASC`, 100 records a
  page (the document states no maximum for pageSize, so none is asked for); each next page
  asks again from the newest change read (see `pull`); the marker is the newest UpdatedDateUTC
  read. Dates arrive in Microsoft's JSON form
  `/Date(1539993600000+0000)/`; amounts are read as Decimal, never float.
- Writes carry `Idempotency-Key` (Xero replays the first answer to a retried key) and
  `summarizeErrors=false`, so a refused record answers with its ValidationErrors, which become
  RecordRefused in Xero's own words.
- Tax: LineAmountTypes Exclusive, each line with its TaxType and its TaxAmount. Australia:
  OUTPUT (GST on Income, 10%) or EXEMPTOUTPUT (GST Free Income); the ABN is the contact's
  TaxNumber. India: Xero has no GST of its own, so an Indian organisation keeps custom tax rates,
  one per GST rate and kind (INDIA_TAX_TYPES: CGST+SGST within the supplier's state, IGST
  across states); the GSTIN is the contact's TaxNumber. The supplier's state is the connection
  setting `state_code`, else the first two digits of the organisation's own GSTIN.
- Webhooks: `x-xero-signature` is base64(HMAC-SHA256(webhook key, raw body)); an intent-to-
  receive delivery has no events; a refused signature is answered 401, as Xero requires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

import httpx

from app.core.money import CURRENCIES, to_money
from app.integrations.connectors import Field, pooled_client, retry_after_seconds
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

SCOPES = (
    "openid profile email offline_access accounting.transactions accounting.contacts "
    # The organisation's country, currency and GSTIN (GET /Organisation).
    "accounting.settings.read"
)
ACCOUNTING_PATH = "/api.xro/2.0"
SIGNATURE_HEADER = "x-xero-signature"
# Xero's sandbox bank account ("Business Bank Account") in a new organisation's chart.
DEFAULT_PAYMENT_ACCOUNT = "090"
# Xero's default sales account ("Sales") in a new organisation's chart.
DEFAULT_SALES_ACCOUNT = "200"
HUNDRED = Decimal(100)
MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")

# (kind, rate percent) -> the custom TaxType an Indian organisation keeps for it.
INDIA_TAX_TYPES = {
    ("intra", Decimal("0")): "NONE",
    ("intra", Decimal("5")): "TAX001",
    ("inter", Decimal("5")): "TAX002",
    ("intra", Decimal("12")): "TAX003",
    ("inter", Decimal("12")): "TAX004",
    ("intra", Decimal("18")): "TAX005",
    ("inter", Decimal("18")): "TAX006",
    ("intra", Decimal("28")): "TAX007",
    ("inter", Decimal("28")): "TAX008",
}
INDIA_TAX_NAMES = {
    "NONE": "No GST",
    "TAX001": "GST 5% (CGST 2.5% + SGST 2.5%)",
    "TAX002": "IGST 5%",
    "TAX003": "GST 12% (CGST 6% + SGST 6%)",
    "TAX004": "IGST 12%",
    "TAX005": "GST 18% (CGST 9% + SGST 9%)",
    "TAX006": "IGST 18%",
    "TAX007": "GST 28% (CGST 14% + SGST 14%)",
    "TAX008": "IGST 28%",
}
AUSTRALIA_TAX_TYPES = {Decimal("10"): "OUTPUT", Decimal("0"): "EXEMPTOUTPUT"}
INVOICE_STATES = {
    "DRAFT": "draft",
    "SUBMITTED": "draft",
    "AUTHORISED": "open",
    "PAID": "paid",
    "VOIDED": "void",
    "DELETED": "void",
}
# Neutral entity -> (collection, id field, number field, the filter that keeps sales only).
COLLECTIONS = {
    "contact": ("Contacts", "ContactID", "Name", None),
    "invoice": ("Invoices", "InvoiceID", "InvoiceNumber", 'Type=="ACCREC"'),
    "credit_note": ("CreditNotes", "CreditNoteID", "CreditNoteNumber", 'Type=="ACCRECCREDIT"'),
    "payment": ("Payments", "PaymentID", "Reference", 'PaymentType=="ACCRECPAYMENT"'),
}
WEBHOOK_ENTITIES = {"CONTACT": "contact", "INVOICE": "invoice", "CREDITNOTE": "credit_note"}
COUNTRY_NAMES = {"india": "IN", "australia": "AU", "new zealand": "NZ", "united kingdom": "GB"}


class XeroWebhookRefused(WebhookRefused):
    """Xero's intent-to-receive check wants 401 (not 403) for a wrong signature."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.status = 401


def signature_of(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def read_ms_date(value) -> datetime | None:
    """Xero's `/Date(1539993600000+0000)/` (milliseconds since 1970, UTC) or an ISO date-time
    (read as UTC when it names no zone), or None when absent."""
    if value in (None, ""):
        return None
    text = str(value)
    match = MS_DATE.match(text)
    if match:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def marker_of(moment: datetime) -> str:
    """A change marker as If-Modified-Since takes it: UTC, to the millisecond."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    )


def _dumps(payload) -> bytes:
    """JSON with each Decimal written as the number it is (json.dumps would need a float)."""

    def text(value):
        if isinstance(value, Decimal):
            return f"\x00{value}\x00"
        raise TypeError(f"{type(value).__name__} is not JSON")

    encoded = json.dumps(payload, default=text, ensure_ascii=False)
    return re.sub(r'"\\u0000(-?[0-9.]+)\\u0000"', r"\1", encoded).encode()


def _where_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _amount(value, what: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{what} is missing")
    try:
        return to_money(value)
    except (TypeError, ValueError, InvalidOperation):
        raise ValueError(f"{what} is not an amount: {value!r}") from None


def _day(value, what: str) -> date:
    moment = read_ms_date(value)
    if moment is None:
        raise ValueError(f"{what} is missing")
    return moment.date()


class XeroConnector(AccountingConnector):
    provider = "xero"
    title = "Xero"
    description = (
        "Keeps {clients}, invoices, credit notes and payments in step with your Xero "
        "organisation, both ways."
    )
    per_minute = 60
    per_day = 5000
    page_size = 100
    uses_pkce = True
    webhook_entities = ("contact", "invoice", "credit_note")
    fields = (
        Field(
            "payment_account_code",
            "Bank account code for payments",
            required=False,
            placeholder=DEFAULT_PAYMENT_ACCOUNT,
            help="The code of the bank account in Xero's chart of accounts that payments "
            "recorded in Duebook go to.",
        ),
        Field(
            "sales_account_code",
            "Sales account code",
            required=False,
            placeholder=DEFAULT_SALES_ACCOUNT,
            help="The revenue account invoice lines are posted to.",
        ),
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._client: httpx.Client | None = None
        self._organisations: dict[str, dict] = {}

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = pooled_client(
                timeout=httpx.Timeout(float(self.config.get("XERO_TIMEOUT_SECONDS", 30)))
            )
        return self._client

    # -- OAuth -------------------------------------------------------------------------------

    def authorization_url(self, redirect_uri: str, state: str, code_challenge: str) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config["XERO_CLIENT_ID"],
                "redirect_uri": redirect_uri,
                "scope": SCOPES,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{self.config['XERO_LOGIN_BASE'].rstrip('/')}/identity/connect/authorize?{query}"

    def exchange_code(self, code, redirect_uri, code_verifier, callback) -> TokenSet:
        return self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            }
        )

    def refresh(self, tokens: TokenSet) -> TokenSet:
        if not tokens.refresh_token:
            raise TokenRevoked("Xero gave no refresh token; connect the organisation again.")
        return self._token({"grant_type": "refresh_token", "refresh_token": tokens.refresh_token})

    def _token(self, form: dict) -> TokenSet:
        url = f"{self.config['XERO_IDENTITY_BASE'].rstrip('/')}/connect/token"
        try:
            response = self.client.post(
                url,
                data=form,
                auth=(self.config["XERO_CLIENT_ID"], self.config["XERO_CLIENT_SECRET"]),
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"Xero's sign-in service did not answer ({exc}).") from exc
        answer = self._json(response) if response.status_code < 500 else {}
        if response.status_code == 400 and answer.get("error") == "invalid_grant":
            raise TokenRevoked(
                "Xero no longer accepts this connection's sign-in (invalid_grant); "
                "connect the organisation again."
            )
        if response.status_code != 200 or not answer.get("access_token"):
            raise ProviderUnavailable(
                f"Xero's sign-in service answered {response.status_code} "
                f"({answer.get('error') or 'no access token'})."
            )
        extra = {"scope": answer["scope"]} if answer.get("scope") else {}
        return TokenSet(
            access_token=answer["access_token"],
            refresh_token=answer.get("refresh_token"),
            expires_at=datetime.now(UTC) + timedelta(seconds=int(answer.get("expires_in", 1800))),
            extra=extra,
        )

    def organisations(self, access: str, tokens: TokenSet) -> list[Book]:
        url = f"{self.config['XERO_API_BASE'].rstrip('/')}/connections"
        answer = self._send("GET", url, access)
        if not isinstance(answer, list):
            raise ProviderUnavailable("Xero's list of organisations was not a list.")
        books = []
        for connection in answer:
            if connection.get("tenantType") != "ORGANISATION" or not connection.get("tenantId"):
                continue
            organisation = self._organisation(access, connection["tenantId"])
            books.append(
                Book(
                    remote_id=connection["tenantId"],
                    name=connection.get("tenantName") or organisation.get("Name") or "Xero",
                    country=organisation.get("CountryCode"),
                    currency=organisation.get("BaseCurrency"),
                )
            )
        return books

    def _organisation(self, access: str, book: str) -> dict:
        if book not in self._organisations:
            answer = self._api("GET", "/Organisation", access, book)
            self._organisations[book] = (answer.get("Organisations") or [{}])[0]
        return self._organisations[book]

    # -- pull and find -----------------------------------------------------------------------

    def pull(self, access, book, entity, since, cursor) -> Page:
        """One page, oldest change first. The cursor is `<If-Modified-Since>|<page>`: each next
        page asks again from just before the newest change read (keyset paging), so a record
        changed during the pass, which Xero moves to the end of the order, cannot shift an
        unread record onto a page already read. Only when a whole page shares one time is
        the next one asked by page number."""
        collection, id_field, _, sales_only = COLLECTIONS[entity]
        asked_since, page = since, 1
        if cursor:
            asked_since, _, page_text = cursor.rpartition("|")
            asked_since, page = asked_since or None, int(page_text)
        params = {"order": "UpdatedDateUTC ASC", "page": str(page)}
        if sales_only:
            params["where"] = sales_only
        if entity == "contact":
            params["includeArchived"] = "true"
        headers = {"If-Modified-Since": asked_since} if asked_since else {}
        answer = self._api("GET", f"/{collection}", access, book, params=params, headers=headers)
        items = answer.get(collection)
        if not isinstance(items, list):
            raise ProviderUnavailable(f"Xero's answer held no list of {collection}.")
        records, unreadable, stamps = [], [], []
        for item in items:
            if not isinstance(item, dict):
                unreadable.append(Unreadable(None, "The record is not an object."))
                continue
            try:
                updated = read_ms_date(item.get("UpdatedDateUTC"))
                if updated:
                    stamps.append(updated)
                if entity == "contact" and item.get("IsSupplier") and not item.get("IsCustomer"):
                    continue  # a supplier only: nothing to collect from it
                records.append(self._read(entity, item, access, book))
            except (ValueError, TypeError, KeyError) as error:
                unreadable.append(Unreadable(item.get(id_field), str(error)))
        next_cursor = None
        if len(items) >= self.page_size:
            # A millisecond before the newest change: whether Xero counts the instant itself
            # as "since" or not, nothing at that time is missed (a few are read twice).
            restart = max(stamps) - timedelta(milliseconds=1) if stamps else None
            if restart and min(stamps) < restart:
                next_cursor = f"{marker_of(restart)}|1"
            else:
                next_cursor = f"{asked_since or ''}|{page + 1}"
        return Page(
            records=records,
            next_cursor=next_cursor,
            marker=marker_of(max(stamps)) if stamps else None,
            unreadable=unreadable,
        )

    def find(self, access, book, entity, number) -> BookRecord | None:
        collection, _, number_field, _ = COLLECTIONS[entity]
        if entity == "invoice":
            params = {"InvoiceNumbers": number}
        else:
            params = {"where": f'{number_field}=="{_where_text(number)}"'}
        answer = self._api("GET", f"/{collection}", access, book, params=params)
        for item in answer.get(collection) or []:
            if entity == "invoice" and item.get("Type") != "ACCREC":
                continue
            if entity == "credit_note" and item.get("Type") != "ACCRECCREDIT":
                continue
            if entity == "payment" and item.get("Status") == "DELETED":
                continue
            try:
                return self._read(entity, item, access, book)
            except (ValueError, TypeError, KeyError) as error:
                raise RecordRefused(f"Xero holds {number} but it cannot be read: {error}") from None
        return None

    def _read(self, entity: str, item: dict, access: str, book: str) -> BookRecord:
        if entity == "contact":
            return self._read_contact(item)
        if entity == "payment":
            return self._read_payment(item)
        return self._read_document(entity, item, access, book)

    def _read_contact(self, item: dict) -> BookContact:
        name = (item.get("Name") or "").strip()
        if not name:
            raise ValueError("The contact has no name.")
        currency = item.get("DefaultCurrency")
        if currency and currency not in CURRENCIES:
            raise ValueError(f"Unknown currency {currency}.")
        phones = [p for p in item.get("Phones") or [] if (p.get("PhoneNumber") or "").strip()]
        phone = None
        if phones:
            first = phones[0]
            phone = " ".join(
                part
                for part in (
                    f"+{first['PhoneCountryCode'].lstrip('+')}"
                    if first.get("PhoneCountryCode")
                    else "",
                    first.get("PhoneAreaCode") or "",
                    first["PhoneNumber"].strip(),
                )
                if part
            )
        addresses = {a.get("AddressType"): a for a in item.get("Addresses") or []}
        where = addresses.get("POBOX") or addresses.get("STREET") or {}
        if not any(where.get(k) for k in ("AddressLine1", "City", "PostalCode")):
            where = addresses.get("STREET") or {}
        country = (where.get("Country") or "").strip()
        updated = read_ms_date(item.get("UpdatedDateUTC"))
        return BookContact(
            remote_id=item["ContactID"],
            name=name,
            email=(item.get("EmailAddress") or "").strip() or None,
            phone=phone,
            tax_number=(item.get("TaxNumber") or "").replace(" ", "") or None,
            currency=currency or None,
            address=Address(
                line1=where.get("AddressLine1") or None,
                line2=", ".join(
                    where[k]
                    for k in ("AddressLine2", "AddressLine3", "AddressLine4")
                    if where.get(k)
                )
                or None,
                city=where.get("City") or None,
                region=where.get("Region") or None,
                postal_code=where.get("PostalCode") or None,
                country=COUNTRY_NAMES.get(
                    country.lower(), country.upper() if len(country) == 2 else None
                ),
            ),
            version=marker_of(updated) if updated else None,
            updated_at=updated,
            deleted=item.get("ContactStatus") in ("ARCHIVED", "GDPRREQUEST"),
        )

    def _read_document(self, entity: str, item: dict, access: str, book: str):
        kind = "ACCREC" if entity == "invoice" else "ACCRECCREDIT"
        if item.get("Type") != kind:
            raise ValueError(f"Not a sales document ({item.get('Type')}).")
        number_field = "InvoiceNumber" if entity == "invoice" else "CreditNoteNumber"
        number = (item.get(number_field) or "").strip()
        if not number:
            raise ValueError("The document has no number.")
        contact = (item.get("Contact") or {}).get("ContactID")
        if not contact:
            raise ValueError(f"{number} names no contact.")
        currency = item.get("CurrencyCode") or self._organisation(access, book).get("BaseCurrency")
        if currency not in CURRENCIES:
            raise ValueError(f"{number}: unknown currency {currency}.")
        status = item.get("Status")
        if status not in INVOICE_STATES:
            raise ValueError(f"{number}: unknown status {status}.")
        inclusive = item.get("LineAmountTypes") == "Inclusive"
        lines, kinds = [], set()
        for position, line in enumerate(item.get("LineItems") or [], start=1):
            tax = _amount(line.get("TaxAmount") or 0, f"{number} line {position} tax")
            amount = _amount(line.get("LineAmount") or 0, f"{number} line {position} amount")
            net = amount - tax if inclusive else amount
            quantity = Decimal(str(line.get("Quantity") if line.get("Quantity") is not None else 1))
            tax_type = line.get("TaxType") or "NONE"
            rate, line_kind = self._rate_of(tax_type, net, tax)
            if line_kind:
                kinds.add(line_kind)
            lines.append(
                BookLine(
                    description=line.get("Description") or "",
                    quantity=quantity,
                    unit_price=to_money(net / quantity) if quantity else net,
                    net_amount=net,
                    tax_rate=rate,
                    tax_amount=tax,
                    hsn_sac=None,
                )
            )
        updated = read_ms_date(item.get("UpdatedDateUTC"))
        common = {
            "remote_id": item[f"{'Invoice' if entity == 'invoice' else 'CreditNote'}ID"],
            "number": number,
            "contact_remote_id": contact,
            "issue_date": _day(item.get("Date"), f"{number} date"),
            "currency": currency,
            "state": INVOICE_STATES[status],
            "lines": tuple(lines),
            "subtotal": _amount(item.get("SubTotal"), f"{number} subtotal"),
            "tax_total": _amount(item.get("TotalTax") or 0, f"{number} tax"),
            "total": _amount(item.get("Total"), f"{number} total"),
            "version": marker_of(updated) if updated else None,
            "updated_at": updated,
            "deleted": status == "DELETED",
        }
        if entity == "credit_note":
            allocations = [a for a in item.get("Allocations") or [] if not a.get("IsDeleted")]
            invoices = {(a.get("Invoice") or {}).get("InvoiceID") for a in allocations}
            return BookCreditNote(
                **common,
                invoice_remote_id=invoices.pop() if len(invoices) == 1 else None,
                reason=item.get("Reference") or None,
            )
        place = None
        if kinds == {"intra"}:
            place = self._home_state(access, book)
        return BookInvoice(
            **common,
            due_date=_day(item["DueDate"], f"{number} due date") if item.get("DueDate") else None,
            amount_due=_amount(
                item.get("AmountDue") if item.get("AmountDue") is not None else 0,
                f"{number} amount due",
            ),
            place_of_supply=place,
            reference=item.get("Reference") or None,
        )

    def _rate_of(self, tax_type: str, net: Decimal, tax: Decimal) -> tuple[Decimal, str | None]:
        for (kind, rate), known in INDIA_TAX_TYPES.items():
            if known == tax_type and tax_type != "NONE":
                return rate, kind
        for rate, known in AUSTRALIA_TAX_TYPES.items():
            if known == tax_type:
                return rate, None
        if not net or not tax:
            return Decimal("0"), None
        return to_money(tax * HUNDRED / net), None

    def _read_payment(self, item: dict) -> BookPayment:
        invoice = item.get("Invoice") or {}
        if not invoice.get("InvoiceID"):
            raise ValueError("The payment names no invoice.")
        currency = invoice.get("CurrencyCode")
        if currency not in CURRENCIES:
            raise ValueError(f"Unknown currency {currency}.")
        updated = read_ms_date(item.get("UpdatedDateUTC"))
        return BookPayment(
            remote_id=item["PaymentID"],
            invoice_remote_id=invoice["InvoiceID"],
            contact_remote_id=(invoice.get("Contact") or {}).get("ContactID"),
            paid_on=_day(item.get("Date"), "The payment date"),
            amount=_amount(item.get("Amount"), "The payment amount"),
            currency=currency,
            reference=item.get("Reference") or None,
            version=marker_of(updated) if updated else None,
            updated_at=updated,
            deleted=item.get("Status") == "DELETED",
        )

    # -- push --------------------------------------------------------------------------------

    def push(self, access, book, entity, record, key):
        if entity == "contact":
            body = {"Contacts": [self._contact_body(record)]}
            answer = self._write("POST", "/Contacts", access, book, body, key, "Contacts")
            return self._read_contact(answer)
        if entity == "invoice":
            document = self._invoice_body(record, access, book)
            if record.remote_id:
                path, method = f"/Invoices/{record.remote_id}", "POST"
            else:
                path, method = "/Invoices", "PUT"
            answer = self._write(
                method, path, access, book, {"Invoices": [document]}, key, "Invoices"
            )
            return self._read_document("invoice", answer, access, book)
        if entity == "credit_note":
            return self._push_credit_note(access, book, record, key)
        if entity == "payment":
            return self._push_payment(access, book, record, key)
        raise ValueError(f"Xero does not sync {entity}")

    def _contact_body(self, contact: BookContact) -> dict:
        body: dict = {"Name": contact.name}
        if contact.remote_id:
            body["ContactID"] = contact.remote_id
        if contact.deleted:
            body["ContactStatus"] = "ARCHIVED"
        if contact.email:
            body["EmailAddress"] = contact.email
        if contact.tax_number:
            body["TaxNumber"] = contact.tax_number
        if contact.currency:
            body["DefaultCurrency"] = contact.currency
        if contact.phone:
            body["Phones"] = [{"PhoneType": "DEFAULT", "PhoneNumber": contact.phone}]
        address = contact.address
        if any((address.line1, address.city, address.postal_code)):
            fields = {
                "AddressLine1": address.line1,
                "AddressLine2": address.line2,
                "City": address.city,
                "Region": address.region,
                "PostalCode": address.postal_code,
                "Country": address.country,
            }
            filled = {name: value for name, value in fields.items() if value}
            # POBOX is the postal (billing) address invoices are sent to; STREET the premises.
            body["Addresses"] = [
                {"AddressType": "POBOX", **filled},
                {"AddressType": "STREET", **filled},
            ]
        return body

    def _lines(self, record, access: str, book: str) -> list[dict]:
        country = self.settings.get("country") or self._organisation(access, book).get(
            "CountryCode"
        )
        kind = None
        if country == "IN":
            home = self._home_state(access, book)
            place = getattr(record, "place_of_supply", None) or home
            kind = "intra" if place == home else "inter"
        account = self.settings.get("sales_account_code") or DEFAULT_SALES_ACCOUNT
        lines = []
        for line in record.lines:
            rate = line.tax_rate or Decimal("0")
            if country == "IN":
                tax_type = INDIA_TAX_TYPES.get((kind, rate)) or INDIA_TAX_TYPES.get(("intra", rate))
                if rate and (kind, rate) not in INDIA_TAX_TYPES:
                    tax_type = None
            elif country == "AU":
                tax_type = AUSTRALIA_TAX_TYPES.get(rate)
            else:
                tax_type = "NONE" if not rate else None
            if tax_type is None:
                raise RecordRefused(
                    f"{record.number}: the Xero organisation has no tax rate for {rate}% "
                    f"({'IGST' if kind == 'inter' else 'GST'})."
                )
            lines.append(
                {
                    "Description": line.description or record.number,
                    "Quantity": line.quantity,
                    "UnitAmount": line.unit_price,
                    "LineAmount": line.net_amount,
                    "AccountCode": account,
                    "TaxType": tax_type,
                    "TaxAmount": line.tax_amount,
                }
            )
        return lines

    def _invoice_body(self, invoice: BookInvoice, access: str, book: str) -> dict:
        if invoice.state == "void" or invoice.deleted:
            if not invoice.remote_id:
                raise RecordRefused(f"{invoice.number} is void and Xero never had it: not sent.")
            # Xero voids an approved invoice; a draft is deleted instead.
            return {
                "InvoiceID": invoice.remote_id,
                "Status": "DELETED" if invoice.state == "draft" else "VOIDED",
            }
        body = {
            "Type": "ACCREC",
            "Contact": {"ContactID": invoice.contact_remote_id},
            "InvoiceNumber": invoice.number,
            "Date": invoice.issue_date.isoformat(),
            "CurrencyCode": invoice.currency,
            "Status": "DRAFT" if invoice.state == "draft" else "AUTHORISED",
            "LineAmountTypes": "Exclusive",
            "LineItems": self._lines(invoice, access, book),
        }
        if invoice.remote_id:
            body["InvoiceID"] = invoice.remote_id
        if invoice.due_date:
            body["DueDate"] = invoice.due_date.isoformat()
        if invoice.reference:
            body["Reference"] = invoice.reference
        return body

    def _push_credit_note(self, access, book, note: BookCreditNote, key: str) -> BookCreditNote:
        body = {
            "Type": "ACCRECCREDIT",
            "Contact": {"ContactID": note.contact_remote_id},
            "CreditNoteNumber": note.number,
            "Date": note.issue_date.isoformat(),
            "CurrencyCode": note.currency,
            "Status": "DRAFT" if note.state == "draft" else "AUTHORISED",
            "LineAmountTypes": "Exclusive",
            "LineItems": self._lines(note, access, book),
        }
        if note.reason:
            body["Reference"] = note.reason
        if note.remote_id:
            body["CreditNoteID"] = note.remote_id
            if note.state == "void" or note.deleted:
                body = {"CreditNoteID": note.remote_id, "Status": "VOIDED"}
            path, method = f"/CreditNotes/{note.remote_id}", "POST"
        else:
            path, method = "/CreditNotes", "PUT"
        answer = self._write(
            method, path, access, book, {"CreditNotes": [body]}, key, "CreditNotes"
        )
        allocated = {
            (a.get("Invoice") or {}).get("InvoiceID") for a in answer.get("Allocations") or []
        }
        if (
            note.invoice_remote_id
            and note.invoice_remote_id not in allocated
            and answer.get("Status") == "AUTHORISED"
        ):
            allocation = {
                "Invoice": {"InvoiceID": note.invoice_remote_id},
                "Amount": note.total,
                "Date": note.issue_date.isoformat(),
            }
            self._write(
                "PUT",
                f"/CreditNotes/{answer['CreditNoteID']}/Allocations",
                access,
                book,
                {"Allocations": [allocation]},
                f"{key}:allocation",
                "Allocations",
            )
            answer = self._api("GET", f"/CreditNotes/{answer['CreditNoteID']}", access, book)
            answer = (answer.get("CreditNotes") or [{}])[0]
        return self._read_document("credit_note", answer, access, book)

    def _push_payment(self, access, book, payment: BookPayment, key: str) -> BookPayment:
        if payment.remote_id:
            if payment.deleted:
                answer = self._write(
                    "POST",
                    f"/Payments/{payment.remote_id}",
                    access,
                    book,
                    {"Status": "DELETED"},
                    key,
                    "Payments",
                )
                return self._read_payment(answer)
            # Xero never changes a recorded payment (only deletes it): it stands as it is.
            answer = self._api("GET", f"/Payments/{payment.remote_id}", access, book)
            return self._read_payment((answer.get("Payments") or [{}])[0])
        body = {
            "Invoice": {"InvoiceID": payment.invoice_remote_id},
            "Account": {
                "Code": self.settings.get("payment_account_code") or DEFAULT_PAYMENT_ACCOUNT
            },
            "Date": payment.paid_on.isoformat(),
            "Amount": payment.amount,
        }
        if payment.reference:
            body["Reference"] = payment.reference
        answer = self._write(
            "PUT", "/Payments", access, book, {"Payments": [body]}, key, "Payments"
        )
        return self._read_payment(answer)

    def _home_state(self, access: str, book: str) -> str | None:
        if self.settings.get("state_code"):
            return self.settings["state_code"]
        gstin = (self._organisation(access, book).get("TaxNumber") or "").strip()
        return gstin[:2] if len(gstin) == 15 else None

    # -- webhooks ----------------------------------------------------------------------------

    def read_webhook(self, body: bytes, headers, signing_key: str) -> list[Notice]:
        given = ""
        for name, value in headers.items():
            if name.lower() == SIGNATURE_HEADER:
                given = value
        expected = signature_of(body, signing_key)
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise XeroWebhookRefused("The x-xero-signature does not match the body.")
        payload = read_json(body)
        check_shape(payload, {"events": [dict]})
        if not isinstance(payload.get("events"), list):
            raise BadWebhookBody("The body has no events list.")
        notices = []
        for event in payload["events"]:
            entity = WEBHOOK_ENTITIES.get(str(event.get("eventCategory")))
            if entity is None or not event.get("tenantId") or not event.get("resourceId"):
                continue
            if entity == "credit_note" and (event.get("data") or {}).get("Type") == "ACCPAYCREDIT":
                continue
            identity = "|".join(
                str(event.get(name) or "")
                for name in ("tenantId", "eventCategory", "resourceId", "eventType", "eventDateUtc")
            )
            notices.append(
                Notice(
                    book_id=event["tenantId"],
                    entity=entity,
                    remote_id=event["resourceId"],
                    event_id=hashlib.sha256(identity.encode()).hexdigest()[:40],
                )
            )
        return notices

    # -- HTTP --------------------------------------------------------------------------------

    def _api(self, method, path, access, book, *, params=None, headers=None, body=None):
        url = f"{self.config['XERO_API_BASE'].rstrip('/')}{ACCOUNTING_PATH}{path}"
        return self._send(method, url, access, book=book, params=params, headers=headers, body=body)

    def _write(self, method, path, access, book, body, key, collection) -> dict:
        # Writes to a collection take summarizeErrors (one record by id and the single-payment
        # POST do not, per the document).
        by_id = path.count("/") > 1 and not path.endswith("/Allocations")
        takes_summary = not by_id and (method, path) != ("POST", "/Payments")
        params = {"summarizeErrors": "false"} if takes_summary else None
        answer = self._api(
            method,
            path,
            access,
            book,
            params=params,
            headers={"Idempotency-Key": key[:128]},
            body=body,
        )
        items = answer.get(collection) if isinstance(answer, dict) else None
        if not items or not isinstance(items[0], dict):
            raise ProviderUnavailable(f"Xero's answer held no {collection}.")
        item = items[0]
        errors = [e.get("Message") for e in item.get("ValidationErrors") or [] if e.get("Message")]
        if errors or item.get("HasErrors") or item.get("HasValidationErrors"):
            raise RecordRefused("; ".join(errors) or "Xero refused the record.")
        return item

    def _send(self, method, url, access, *, book=None, params=None, headers=None, body=None):
        request_headers = {"Authorization": f"Bearer {access}", "Accept": "application/json"}
        if book:
            request_headers["xero-tenant-id"] = book
        request_headers.update(headers or {})
        content = None
        if body is not None:
            content = _dumps(body)
            request_headers["Content-Type"] = "application/json"
        try:
            response = self.client.request(
                method, url, params=params, headers=request_headers, content=content
            )
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable("Xero did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"Xero could not be reached ({exc}).") from exc
        status = response.status_code
        if status == 429:
            problem = (response.headers.get("X-Rate-Limit-Problem") or "").lower()
            daily = "day" in problem
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise RateLimited(
                f"Xero's {'daily' if daily else 'per-minute'} limit for this organisation is "
                "used up.",
                wait if wait is not None else (3600.0 if daily else 60.0),
                daily=daily,
            )
        if status in (401, 403):
            raise TokenRevoked(
                "Xero refused this connection's access to the organisation "
                f"({self._words(response) or status}); connect it again."
            )
        if status >= 500:
            raise ProviderUnavailable(f"Xero answered {status}; it will be tried again.")
        answer = self._json(response)
        if status == 404:
            raise RecordRefused("Xero has no such record.")
        if status == 400:
            raise RecordRefused(self._words(response, answer) or "Xero refused the request.")
        if status >= 300:
            raise ProviderUnavailable(f"Xero answered {status}.")
        return answer

    @staticmethod
    def _json(response: httpx.Response):
        try:
            return json.loads(response.content, parse_float=Decimal)
        except ValueError as exc:
            raise ProviderUnavailable(
                "Xero's answer was cut short or is not JSON; the page will be read again."
            ) from exc

    @staticmethod
    def _words(response: httpx.Response, answer=None) -> str:
        """Xero's own words for a refusal: each ValidationError's Message, else its Message or
        Detail."""
        if answer is None:
            try:
                answer = json.loads(response.content, parse_float=Decimal)
            except ValueError:
                return response.text[:200]
        if not isinstance(answer, dict):
            return ""
        messages = []
        for element in answer.get("Elements") or []:
            messages += [e.get("Message") for e in element.get("ValidationErrors") or []]
        messages = [m for m in messages if m]
        return "; ".join(messages) or answer.get("Message") or answer.get("Detail") or ""
