"""Local stand-in for Zoho Books (its accounts server and the /books/v3 API), for tests, the
`make run` sandbox and benchmarks.

Contract followed (providers.md §5.2; the keys are those of Zoho's official .NET wrapper plus
the India edition's GST keys, the schemas in tests/contracts/zoho_books that the tests hold
every answer to):
- Accounts server: `GET /oauth/v2/auth` (response_type=code, client_id, scope, redirect_uri,
  state, access_type=offline, prompt) shows the consent page: the app asking for the scopes,
  the organisation to give (a choice when the account has several), "Allow access" and
  "Deny". Allowing redirects to redirect_uri with `code`, `state`, `location` (the data
  centre) and `accounts-server` (this server). `POST /oauth/v2/token` (form) checks the
  client id and secret, the code (once, within 2 minutes, for the same redirect_uri) and
  answers `access_token`, `refresh_token`, `api_domain` (this server), `token_type`,
  `expires_in` 3600; `grant_type=refresh_token` answers a new access token and no new refresh
  token (Zoho does not rotate them). Refusals are HTTP 200 with `{"error": "invalid_code"}`
  (a bad, used or revoked code or refresh token) or `{"error": "invalid_client"}`, as Zoho
  answers them.
- API: `Authorization: Zoho-oauthtoken <token>` and `organization_id` on every call (one the
  token reaches); answers `{"code": 0, "message": "success", ...}`. An unknown, expired or
  revoked token is HTTP 401 code 57. `GET /books/v3/organizations[/{id}]`,
  `GET /books/v3/settings/taxes`; contacts, invoices, creditnotes, customerpayments: list
  (`page`, `per_page` at most 200, `page_context.has_more_page`; `sort_column`
  last_modified_time|created_time, `sort_order` A|D; `last_modified_time` keeps records
  modified at or after it; exact filters contact_name, invoice_number, creditnote_number,
  reference_number; contacts `contact_type` and `filter_by` Status.All|Active|Inactive), get,
  create (POST), update (PUT); `POST /invoices/{id}/status/sent|void`,
  `POST /creditnotes/{id}/status/open|void`. Lists of invoices, credit notes and payments are
  summaries (no line items, no invoices paid), as Zoho's are.
- Totals are Zoho's: a line's tax follows its `tax_id` (an Indian GST group splits into CGST
  and SGST halves, IGST stays whole), `taxes` lists them by name, a payment lowers the balance
  of the invoices it pays (partially_paid, paid). Numbers are exact decimals on the wire.
- Limits: 100 requests a minute per organisation (`per_minute`), `per_day` when set; over
  either, HTTP 429 with no Retry-After. Error codes other than 0 and 57 are this stand-in's
  (Zoho publishes no list reached here): 4 bad input, 1001 a number or name taken, 1002 no
  such record, 44 the minute's limit, 45 the day's.
- Faults: `/_standin/faults` (the base's: 500/429/400), `POST /_standin/revoke` (every token
  of the account stops working), `POST /_standin/slow {"seconds", "count"}` (the next answers
  come late), `POST /_standin/garble {"count"}` (the next answers are cut in half).
- Books, as the accountant keeps them: `GET /_standin/books?organization_id=` (everything),
  `POST /_standin/edit {"organization_id", "entity", "id", "changes"}` (a record changed in
  Zoho: its last_modified_time moves), `POST /_standin/delete {... "id"}`,
  `POST /_standin/seed {"organization_id", "contacts", "invoices"}` (bulk books),
  `POST /_standin/limits {"per_minute", "per_day"}`.
- `seed="demo"`: one Indian organisation (Karnataka, INR) with 6 customers and 10 invoices in
  every state, 4 payments and a credit note (see `demo_books`).

Not implemented: estimates, items, recurring invoices, refunds, the refresh-token minting limit
(10 a 10 minutes), deleting through the API, v4.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode

from app.core.money import to_money
from app.core.regions import GST_TO_ISO, region_code

from .base import Fault, Request, Response, StandinServer

DEFAULT_CLIENT_ID = "1000.STANDINZOHOBOOKSCLIENT"
DEFAULT_CLIENT_SECRET = "standin-zoho-client-secret"
DEFAULT_PER_MINUTE = 100
MAX_PER_PAGE = 200
CODE_LIFETIME = 120
ACCESS_LIFETIME = 3600
IST = timezone(timedelta(hours=5, minutes=30))
ENTITY_PATHS = {
    "contacts": ("contact", "contact_id"),
    "invoices": ("invoice", "invoice_id"),
    "creditnotes": ("creditnote", "creditnote_id"),
    "customerpayments": ("payment", "payment_id"),
}
FIND_FILTERS = ("contact_name", "invoice_number", "creditnote_number", "reference_number")
SUMMARY_LEFT_OUT = ("line_items", "invoices", "taxes", "contact_persons")
_DECIMAL = re.compile(r'"__decimal__(-?[0-9]+(?:\.[0-9]+)?)"')
_GSTIN = re.compile(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$")


def _encode(value):
    if isinstance(value, Decimal):
        return f"__decimal__{value}"
    raise TypeError(f"{type(value).__name__} is not JSON")


def zoho_json(status: int, payload) -> Response:
    """JSON with amounts as exact decimals, as Zoho writes them."""
    text = json.dumps(payload, default=_encode, separators=(",", ":"))
    body = _DECIMAL.sub(r"\1", text).encode()
    return Response(status, body, [("Content-Type", "application/json;charset=UTF-8")])


def zoho_error(status: int, code: int, message: str) -> Response:
    return zoho_json(status, {"code": code, "message": message})


class Refused(Exception):
    def __init__(self, code: int, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.status = status


def _money(value, what: str) -> Decimal:
    if isinstance(value, bool):
        raise Refused(4, f"Invalid value passed for {what}")
    try:
        return to_money(value if not isinstance(value, float) else str(value))
    except (TypeError, ValueError, InvalidOperation) as exc:
        raise Refused(4, f"Invalid value passed for {what}") from exc


def _number(value, what: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise Refused(4, f"Invalid value passed for {what}") from exc
    if not number.is_finite():
        raise Refused(4, f"Invalid value passed for {what}")
    return number


def _date(value, what: str) -> str:
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError as exc:
        raise Refused(4, f"Invalid value passed for {what}") from exc


@dataclass
class Organisation:
    organization_id: str
    name: str
    state: str  # the state's name, as Zoho's address has it
    country: str
    currency: str
    taxes: list[dict]
    records: dict[str, dict[str, dict]] = field(
        default_factory=lambda: {path: {} for path in ENTITY_PATHS}
    )
    minute: tuple[int, int] = (0, 0)
    day: tuple[int, int] = (0, 0)

    def public(self) -> dict:
        return {
            "organization_id": self.organization_id,
            "name": self.name,
            "contact_name": self.name,
            "email": "accounts@example.in",
            "is_default_org": True,
            "currency_code": self.currency,
            "currency_symbol": "₹" if self.currency == "INR" else "$",
            "time_zone": "Asia/Calcutta" if self.country == "India" else "Australia/Sydney",
            "is_org_active": True,
            "address": {"state": self.state, "country": self.country},
        }


def india_taxes() -> list[dict]:
    taxes = []
    for rate in ("5", "12", "18", "28"):
        half = str(Decimal(rate) / 2)
        taxes.append(
            {
                "tax_id": f"9000000{rate.zfill(2)}01",
                "tax_name": f"GST{rate}",
                "tax_percentage": Decimal(rate),
                "tax_type": "tax_group",
                "tax_specific_type": "",
                "is_default_tax": False,
            }
        )
        taxes.append(
            {
                "tax_id": f"9000000{rate.zfill(2)}02",
                "tax_name": f"IGST{rate}",
                "tax_percentage": Decimal(rate),
                "tax_type": "tax",
                "tax_specific_type": "igst",
                "is_default_tax": False,
            }
        )
        for part in ("CGST", "SGST"):
            taxes.append(
                {
                    "tax_id": f"9000000{rate.zfill(2)}{part[0]}",
                    "tax_name": f"{part}{half.rstrip('0').rstrip('.')}",
                    "tax_percentage": Decimal(half),
                    "tax_type": "tax",
                    "tax_specific_type": part.lower(),
                    "is_default_tax": False,
                }
            )
    return taxes


def australia_taxes() -> list[dict]:
    return [
        {
            "tax_id": "900000001001",
            "tax_name": "GST",
            "tax_percentage": Decimal("10"),
            "tax_type": "tax",
            "tax_specific_type": "",
            "is_default_tax": True,
        }
    ]


class ZohoBooksStandin(StandinServer):
    """Zoho Books stand-in. See the module docstring for the contract."""

    name = "zoho_books"
    default_status_script = ()

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        per_minute: int = DEFAULT_PER_MINUTE,
        per_day: int | None = None,
        location: str = "in",
        seed: str | None = None,
        contacts: int = 0,
        invoices: int = 0,
        **common,
    ) -> None:
        common.pop("record_dir", None)
        super().__init__(**common)
        self.client_id = client_id
        self.client_secret = client_secret
        self.per_minute = per_minute
        self.per_day = per_day
        self.location = location
        self._state_lock = threading.RLock()
        self._ids = 460000000000000
        self._slow: list[float] = []
        self._garbled = 0
        self.reset_state()
        if seed == "demo":
            demo_books(self)
        if contacts or invoices:
            organisation = next(iter(self.organisations.values()), None) or self.add_organisation()
            self.seed_bulk(organisation.organization_id, contacts, invoices)

    def reset_state(self) -> None:
        with self._state_lock:
            self.organisations: dict[str, Organisation] = {}
            self.codes: dict[str, dict] = {}
            self.access_tokens: dict[str, dict] = {}
            self.refresh_tokens: dict[str, dict] = {}
            self._slow = []
            self._garbled = 0

    # -- books -----------------------------------------------------------------------------

    def next_id(self) -> str:
        with self._state_lock:
            self._ids += 1
            return str(self._ids)

    def now(self) -> str:
        return (
            datetime.fromtimestamp(self.clock(), UTC)
            .astimezone(IST)
            .strftime("%Y-%m-%dT%H:%M:%S%z")
        )

    def add_organisation(
        self,
        name: str = "Demo Traders Private Limited",
        state: str = "Karnataka",
        country: str = "India",
        currency: str = "INR",
    ) -> Organisation:
        taxes = india_taxes() if country == "India" else australia_taxes()
        organisation = Organisation(self.next_id(), name, state, country, currency, taxes)
        with self._state_lock:
            self.organisations[organisation.organization_id] = organisation
        return organisation

    def organisation(self, organization_id: str) -> Organisation:
        organisation = self.organisations.get(str(organization_id))
        if organisation is None:
            raise Refused(1002, "Organization does not exist.", 404)
        return organisation

    def record_of(self, organisation: Organisation, path: str, record_id: str) -> dict:
        record = organisation.records[path].get(record_id)
        if record is None:
            one = ENTITY_PATHS[path][0]
            raise Refused(1002, f"The {one} does not exist.", 404)
        return record

    def create(self, organisation: Organisation, path: str, body: dict) -> dict:
        with self._state_lock:
            builder = {
                "contacts": self._contact,
                "invoices": self._invoice,
                "creditnotes": self._creditnote,
                "customerpayments": self._payment,
            }[path]
            record = builder(organisation, body, None)
            organisation.records[path][record[ENTITY_PATHS[path][1]]] = record
            if path in ("customerpayments", "creditnotes"):
                self._apply_payments(organisation)
            return record

    def update(self, organisation: Organisation, path: str, record_id: str, body: dict) -> dict:
        with self._state_lock:
            existing = self.record_of(organisation, path, record_id)
            builder = {
                "contacts": self._contact,
                "invoices": self._invoice,
                "creditnotes": self._creditnote,
                "customerpayments": self._payment,
            }[path]
            record = builder(organisation, {**_writable(existing), **body}, existing)
            organisation.records[path][record_id] = record
            if path in ("customerpayments", "invoices", "creditnotes"):
                self._apply_payments(organisation)
            return record

    def set_status(self, organisation: Organisation, path: str, record_id: str, status: str):
        with self._state_lock:
            record = self.record_of(organisation, path, record_id)
            if status == "void":
                record["status"] = "void"
                record["balance"] = Decimal("0.00")
            elif record["status"] == "draft":
                record["status"] = status
            self._apply_payments(organisation)
            record["last_modified_time"] = self.now()

    def edit(self, organization_id: str, path: str, record_id: str, changes: dict) -> dict:
        """What the accountant does in Zoho: fields changed by hand, the record modified now."""
        with self._state_lock:
            organisation = self.organisation(organization_id)
            record = self.record_of(organisation, path, record_id)
            record.update(changes)
            record["last_modified_time"] = self.now()
            return record

    def delete(self, organization_id: str, path: str, record_id: str) -> None:
        with self._state_lock:
            organisation = self.organisation(organization_id)
            self.record_of(organisation, path, record_id)
            del organisation.records[path][record_id]

    def _contact(self, organisation: Organisation, body: dict, existing: dict | None) -> dict:
        name = str(body.get("contact_name") or "").strip()
        if not name:
            raise Refused(4, "Contact name is required.")
        for other in organisation.records["contacts"].values():
            if other["contact_name"] == name and other is not existing:
                raise Refused(1001, f'The contact "{name}" already exists.')
        gst_no = str(body.get("gst_no") or "").upper()
        if gst_no and not _GSTIN.match(gst_no):
            raise Refused(4, "Invalid value passed for gst_no")
        people = body.get("contact_persons") or []
        if not isinstance(people, list):
            raise Refused(4, "Invalid value passed for contact_persons")
        primary = next((p for p in people if isinstance(p, dict)), {})
        now = self.now()
        return {
            "contact_id": existing["contact_id"] if existing else self.next_id(),
            "contact_name": name,
            "company_name": str(body.get("company_name") or name),
            "contact_type": str(body.get("contact_type") or "customer"),
            "status": str(body.get("status") or "active"),
            "currency_code": str(body.get("currency_code") or organisation.currency),
            "email": str(primary.get("email") or body.get("email") or ""),
            "phone": str(primary.get("phone") or body.get("phone") or ""),
            "gst_no": gst_no,
            "gst_treatment": str(body.get("gst_treatment") or ("business_gst" if gst_no else "")),
            "place_of_contact": str(body.get("place_of_contact") or ""),
            "tax_id_value": str(body.get("tax_id_value") or ""),
            "billing_address": body.get("billing_address") or {},
            "contact_persons": [
                {
                    "contact_person_id": self.next_id(),
                    "email": str(p.get("email") or ""),
                    "phone": str(p.get("phone") or ""),
                    "is_primary_contact": bool(p.get("is_primary_contact")),
                }
                for p in people
                if isinstance(p, dict)
            ],
            "created_time": existing["created_time"] if existing else now,
            "last_modified_time": now,
        }

    def _customer(self, organisation: Organisation, body: dict) -> dict:
        customer_id = str(body.get("customer_id") or "")
        customer = organisation.records["contacts"].get(customer_id)
        if customer is None:
            raise Refused(1002, "Invalid value passed for customer_id")
        return customer

    def _lines(self, organisation: Organisation, body: dict, home_state: str | None):
        lines = body.get("line_items")
        if not isinstance(lines, list) or not lines:
            raise Refused(4, "Line items are required.")
        taxes_by_id = {tax["tax_id"]: tax for tax in organisation.taxes}
        place = body.get("place_of_supply")
        built, tax_totals = [], {}
        for number, line in enumerate(lines, start=1):
            if not isinstance(line, dict):
                raise Refused(4, f"Invalid value passed for line_items (line {number})")
            rate = _number(line.get("rate", 0), "rate")
            quantity = _number(line.get("quantity", 1), "quantity")
            item_total = to_money(rate * quantity)
            tax_id = str(line.get("tax_id") or "")
            percentage = Decimal("0")
            if tax_id:
                tax = taxes_by_id.get(tax_id)
                if tax is None:
                    raise Refused(4, "Invalid value passed for tax_id")
                if organisation.country == "India" and place:
                    intra = place == home_state
                    if intra and tax["tax_specific_type"] == "igst":
                        raise Refused(4, "IGST cannot be applied to an intra-state supply.")
                    if not intra and tax["tax_type"] == "tax_group":
                        raise Refused(4, "Only IGST can be applied to an inter-state supply.")
                percentage = tax["tax_percentage"]
                for name, share in _split(tax, organisation.taxes):
                    amount = to_money(item_total * share / 100)
                    tax_totals[name] = tax_totals.get(name, Decimal("0.00")) + amount
            built.append(
                {
                    "line_item_id": str(line.get("line_item_id") or self.next_id()),
                    "name": str(line.get("name") or line.get("description") or ""),
                    "description": str(line.get("description") or ""),
                    "rate": rate,
                    "quantity": quantity,
                    "item_total": item_total,
                    "tax_id": tax_id,
                    "tax_percentage": percentage,
                    "hsn_or_sac": str(line.get("hsn_or_sac") or ""),
                }
            )
        taxes = [{"tax_name": name, "tax_amount": amount} for name, amount in tax_totals.items()]
        return built, taxes

    def _document(self, organisation, body, existing, kind: str) -> dict:
        number_key, id_key = f"{kind}_number", f"{kind}_id"
        number = str(body.get(number_key) or "").strip()
        if not number:
            raise Refused(4, f"{kind.capitalize()} number is required.")
        path = "invoices" if kind == "invoice" else "creditnotes"
        for other in organisation.records[path].values():
            if other[number_key] == number and other is not existing:
                raise Refused(1001, f"{kind.capitalize()} number {number} already exists.")
        customer = self._customer(organisation, body)
        place = body.get("place_of_supply") or ""
        if place and place not in GST_TO_ISO.values():
            raise Refused(4, "Invalid value passed for place_of_supply")
        home = GST_TO_ISO.get(_gst_code(organisation.state))
        lines, taxes = self._lines(organisation, {**body, "place_of_supply": place}, home)
        sub_total = sum((line["item_total"] for line in lines), Decimal("0.00"))
        tax_total = sum((tax["tax_amount"] for tax in taxes), Decimal("0.00"))
        now = self.now()
        record = {
            id_key: existing[id_key] if existing else self.next_id(),
            number_key: number,
            "customer_id": customer["contact_id"],
            "customer_name": customer["contact_name"],
            "status": existing["status"] if existing else "draft",
            "date": _date(body.get("date") or now[:10], "date"),
            "currency_code": customer["currency_code"] or organisation.currency,
            "reference_number": str(body.get("reference_number") or ""),
            "place_of_supply": place,
            "gst_no": customer["gst_no"],
            "gst_treatment": customer["gst_treatment"],
            "line_items": lines,
            "taxes": taxes,
            "sub_total": sub_total,
            "tax_total": tax_total,
            "total": sub_total + tax_total,
            "balance": sub_total + tax_total,
            "notes": str(body.get("notes") or ""),
            "created_time": existing["created_time"] if existing else now,
            "last_modified_time": now,
        }
        if kind == "invoice":
            due = body.get("due_date")
            record["due_date"] = _date(due, "due_date") if due else record["date"]
        else:
            # A credit note shows its taxes by name and no tax_total (Zoho's credit note).
            del record["tax_total"]
            record["invoice_id"] = str(body.get("invoice_id") or "")
        return record

    def _invoice(self, organisation, body, existing) -> dict:
        return self._document(organisation, body, existing, "invoice")

    def _creditnote(self, organisation, body, existing) -> dict:
        return self._document(organisation, body, existing, "creditnote")

    def _payment(self, organisation, body, existing) -> dict:
        customer = self._customer(organisation, body)
        amount = _money(body.get("amount"), "amount")
        applied = body.get("invoices")
        if not isinstance(applied, list) or not applied:
            raise Refused(4, "Invoices to apply the payment to are required.")
        invoices, total_applied = [], Decimal("0.00")
        for entry in applied:
            invoice_id = str(entry.get("invoice_id") or "") if isinstance(entry, dict) else ""
            invoice = organisation.records["invoices"].get(invoice_id)
            if invoice is None:
                raise Refused(1002, "Invalid value passed for invoice_id")
            if invoice["customer_id"] != customer["contact_id"]:
                raise Refused(4, "The invoice belongs to another customer.")
            if invoice["status"] in ("draft", "void"):
                raise Refused(4, f"Invoice {invoice['invoice_number']} is not open.")
            share = _money(entry.get("amount_applied"), "amount_applied")
            total_applied += share
            invoices.append(
                {
                    "invoice_id": invoice_id,
                    "invoice_number": invoice["invoice_number"],
                    "amount_applied": share,
                }
            )
        if total_applied > amount:
            raise Refused(4, "The amount applied is more than the payment.")
        now = self.now()
        return {
            "payment_id": existing["payment_id"] if existing else self.next_id(),
            "payment_number": existing["payment_number"]
            if existing
            else str(len(organisation.records["customerpayments"]) + 1),
            "customer_id": customer["contact_id"],
            "customer_name": customer["contact_name"],
            "payment_mode": str(body.get("payment_mode") or "banktransfer"),
            "amount": amount,
            "unused_amount": amount - total_applied,
            "date": _date(body.get("date") or now[:10], "date"),
            "reference_number": str(body.get("reference_number") or ""),
            "currency_code": customer["currency_code"] or organisation.currency,
            "invoice_numbers": ",".join(i["invoice_number"] for i in invoices),
            "invoices": invoices,
            "created_time": existing["created_time"] if existing else now,
            "last_modified_time": now,
        }

    def _apply_payments(self, organisation: Organisation) -> None:
        """Every invoice's balance and status from the payments and the open credit notes
        applied to it."""
        paid: dict[str, Decimal] = {}
        for payment in organisation.records["customerpayments"].values():
            for entry in payment["invoices"]:
                paid[entry["invoice_id"]] = (
                    paid.get(entry["invoice_id"], 0) + entry["amount_applied"]
                )
        credited: dict[str, Decimal] = {}
        for note in organisation.records["creditnotes"].values():
            if note.get("invoice_id") and note["status"] == "open":
                credited[note["invoice_id"]] = credited.get(note["invoice_id"], 0) + note["total"]
        for invoice_id, invoice in organisation.records["invoices"].items():
            if invoice["status"] in ("draft", "void"):
                continue
            received = paid.get(invoice_id, Decimal("0.00"))
            balance = max(
                invoice["total"] - received - credited.get(invoice_id, 0), Decimal("0.00")
            )
            status = "paid" if balance == 0 else "partially_paid" if received else "sent"
            if status == "sent" and invoice.get("due_date", "9999") < self.now()[:10]:
                status = "overdue"
            if (balance, status) != (invoice["balance"], invoice["status"]):
                invoice["balance"] = to_money(balance)
                invoice["status"] = status
                invoice["last_modified_time"] = self.now()

    def seed_bulk(self, organization_id: str, contacts: int, invoices: int) -> None:
        """`contacts` customers and `invoices` open invoices spread over them (benchmarks)."""
        organisation = self.organisation(organization_id)
        made = []
        for index in range(contacts):
            made.append(
                self.create(organisation, "contacts", {"contact_name": f"Bulk Customer {index:06}"})
            )
        tax = next(t for t in organisation.taxes if t["tax_type"] != "tax_group")
        for index in range(invoices):
            customer = made[index % len(made)] if made else self._first_contact(organisation)
            invoice = self.create(
                organisation,
                "invoices",
                {
                    "invoice_number": f"BULK-{index:07}",
                    "customer_id": customer["contact_id"],
                    "line_items": [
                        {
                            "name": "Goods",
                            "rate": Decimal(100 + index % 900),
                            "quantity": 1,
                            "tax_id": tax["tax_id"],
                        }
                    ],
                },
            )
            self.set_status(organisation, "invoices", invoice["invoice_id"], "sent")

    def _first_contact(self, organisation: Organisation) -> dict:
        if not organisation.records["contacts"]:
            return self.create(organisation, "contacts", {"contact_name": "Bulk Customer"})
        return next(iter(organisation.records["contacts"].values()))

    # -- routes ----------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        if request.path.startswith("/_standin/"):
            return response
        with self._state_lock:
            delay = self._slow.pop(0) if self._slow else 0.0
            garble = self._garbled > 0
            if garble:
                self._garbled -= 1
        if delay:
            time.sleep(delay)
        if garble:
            response.body = response.body[: len(response.body) // 2]
        return response

    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == "/oauth/v2/auth":
            return self._consent(request)
        if path == "/oauth/v2/token" and request.method == "POST":
            return self._token(request)
        if not path.startswith("/books/v3/"):
            return zoho_error(404, 5, "Invalid URL Passed")
        try:
            return self._api(request, path[len("/books/v3/") :])
        except Refused as refused:
            return zoho_error(refused.status, refused.code, str(refused))

    def fault_response(self, fault: Fault) -> Response:
        if fault.status == 429:
            return zoho_error(429, 44, fault.message or "API call limit exceeded for the minute.")
        return zoho_error(fault.status, 1, fault.message or "injected fault")

    # -- OAuth -----------------------------------------------------------------------------

    def _consent(self, request: Request) -> Response:
        source = (
            request.form()
            if request.method == "POST"
            else {name: values[-1] for name, values in request.query.items()}
        )
        if source.get("client_id") != self.client_id or source.get("response_type") != "code":
            return Response(
                400, b"Invalid client or response type.", [("Content-Type", "text/plain")]
            )
        redirect_uri = source.get("redirect_uri") or ""
        if not redirect_uri:
            return Response(400, b"redirect_uri is required.", [("Content-Type", "text/plain")])
        if request.method == "POST":
            return self._consent_answer(source, redirect_uri)
        return self._consent_page(source)

    def _consent_page(self, source: dict) -> Response:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
            for name, value in source.items()
        )
        choices = "".join(
            f'<label><input type="radio" name="organization_id" value="{org.organization_id}"'
            f"{' checked' if index == 0 else ''}> {html.escape(org.name)}</label><br>"
            for index, org in enumerate(self.organisations.values())
        )
        scopes = "".join(
            f"<li>{html.escape(scope)}</li>" for scope in (source.get("scope") or "").split(",")
        )
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Zoho Accounts (stand-in)</title></head><body>
<h1>Duebook is asking for access to your Zoho Books</h1>
<p>It will be able to:</p><ul>{scopes}</ul>
<form method="post" action="/oauth/v2/auth">{hidden}
<fieldset><legend>Organisation</legend>{choices or "<p>No organisation yet.</p>"}</fieldset>
<button type="submit" name="decision" value="allow">Allow access</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form></body></html>"""
        return Response(200, page.encode(), [("Content-Type", "text/html; charset=utf-8")])

    def _consent_answer(self, source: dict, redirect_uri: str) -> Response:
        query = {"state": source.get("state") or ""}
        if source.get("decision") != "allow":
            query["error"] = "access_denied"
        else:
            chosen = source.get("organization_id") or ""
            if chosen not in self.organisations:
                return Response(400, b"Choose an organisation.", [("Content-Type", "text/plain")])
            code = "1000." + secrets.token_hex(16) + "." + secrets.token_hex(16)
            with self._state_lock:
                self.codes[code] = {
                    "redirect_uri": redirect_uri,
                    "organisations": [chosen],
                    "expires": self.clock() + CODE_LIFETIME,
                }
            query.update({"code": code, "location": self.location, "accounts-server": self.url})
        separator = "&" if "?" in redirect_uri else "?"
        return Response(302, b"", [("Location", f"{redirect_uri}{separator}{urlencode(query)}")])

    def _token(self, request: Request) -> Response:
        form = request.form()
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return zoho_json(200, {"error": "invalid_client"})
        grant = form.get("grant_type")
        with self._state_lock:
            if grant == "authorization_code":
                granted = self.codes.pop(form.get("code") or "", None)
                if (
                    granted is None
                    or granted["expires"] < self.clock()
                    or granted["redirect_uri"] != form.get("redirect_uri")
                ):
                    return zoho_json(200, {"error": "invalid_code"})
                refresh_token = "1000." + secrets.token_hex(24)
                self.refresh_tokens[refresh_token] = {"organisations": granted["organisations"]}
                answer = {"refresh_token": refresh_token}
            elif grant == "refresh_token":
                refresh_token = form.get("refresh_token") or ""
                if refresh_token not in self.refresh_tokens:
                    return zoho_json(200, {"error": "invalid_code"})
                answer = {}
            else:
                return zoho_json(200, {"error": "unsupported_grant_type"})
            access_token = "1000." + secrets.token_hex(24)
            self.access_tokens[access_token] = {
                "refresh_token": refresh_token,
                "organisations": self.refresh_tokens[refresh_token]["organisations"],
                "expires": self.clock() + ACCESS_LIFETIME,
            }
        return zoho_json(
            200,
            {
                "access_token": access_token,
                **answer,
                "api_domain": self.url,
                "token_type": "Bearer",
                "expires_in": ACCESS_LIFETIME,
            },
        )

    def grant(self, organization_id: str) -> tuple[str, str]:
        """(access token, refresh token) reaching one organisation, as a consent gives them
        (tests that are not about OAuth start from here)."""
        refresh_token = "1000." + secrets.token_hex(24)
        access_token = "1000." + secrets.token_hex(24)
        with self._state_lock:
            self.refresh_tokens[refresh_token] = {"organisations": [organization_id]}
            self.access_tokens[access_token] = {
                "refresh_token": refresh_token,
                "organisations": [organization_id],
                "expires": self.clock() + ACCESS_LIFETIME,
            }
        return access_token, refresh_token

    def revoke(self) -> None:
        with self._state_lock:
            self.access_tokens.clear()
            self.refresh_tokens.clear()

    # -- API -------------------------------------------------------------------------------

    def _authorised(self, request: Request) -> dict | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Zoho-oauthtoken "):
            return None
        with self._state_lock:
            token = self.access_tokens.get(header[len("Zoho-oauthtoken ") :])
        if token is None or token["expires"] < self.clock():
            return None
        return token

    def _over_limit(self, organisation: Organisation) -> Response | None:
        now = self.clock()
        with self._state_lock:
            minute, count = organisation.minute
            if minute != int(now // 60):
                minute, count = int(now // 60), 0
            day, daily = organisation.day
            if day != int(now // 86400):
                day, daily = int(now // 86400), 0
            if self.per_day and daily >= self.per_day:
                self.stats_counters.add("throttled")
                return zoho_error(
                    429, 45, "You have reached the maximum number of API calls for the day."
                )
            if self.per_minute and count >= self.per_minute:
                self.stats_counters.add("throttled")
                return zoho_error(429, 44, "API call limit exceeded for the minute.")
            organisation.minute = (minute, count + 1)
            organisation.day = (day, daily + 1)
        return None

    def _api(self, request: Request, route: str) -> Response:
        token = self._authorised(request)
        if token is None:
            return zoho_error(401, 57, "You are not authorized to perform this operation")
        fault = self.take_fault()
        if fault:
            return fault
        if route == "organizations" and request.method == "GET":
            reachable = [self.organisations[o] for o in token["organisations"]]
            return zoho_json(
                200,
                {"code": 0, "message": "success", "organizations": [o.public() for o in reachable]},
            )
        organization_id = request.arg("organization_id") or ""
        if organization_id not in token["organisations"]:
            raise Refused(6041, "This user is not associated with the organization_id.", 401)
        organisation = self.organisation(organization_id)
        limited = self._over_limit(organisation)
        if limited:
            return limited
        parts = route.split("/")
        if parts == ["organizations", organization_id] and request.method == "GET":
            return _ok({"organization": organisation.public()})
        if parts == ["settings", "taxes"] and request.method == "GET":
            return _ok({"taxes": [dict(tax) for tax in organisation.taxes]})
        if parts[0] not in ENTITY_PATHS:
            return zoho_error(404, 5, "Invalid URL Passed")
        path, (one, _) = parts[0], ENTITY_PATHS[parts[0]]
        if len(parts) == 1 and request.method == "GET":
            return self._list(request, organisation, path)
        if len(parts) == 1 and request.method == "POST":
            record = self.create(organisation, path, _body(request))
            self.stats_counters.add("accepted")
            return _ok({one: record}, f"The {one} has been created.", 201)
        if len(parts) == 2 and request.method == "GET":
            return _ok({one: self.record_of(organisation, path, parts[1])})
        if len(parts) == 2 and request.method == "PUT":
            record = self.update(organisation, path, parts[1], _body(request))
            return _ok({one: record}, f"The {one} has been updated.")
        if len(parts) == 4 and parts[2] == "status" and request.method == "POST":
            allowed = {"invoices": ("sent", "void"), "creditnotes": ("open", "void")}
            if parts[3] not in allowed.get(path, ()):
                return zoho_error(404, 5, "Invalid URL Passed")
            self.set_status(organisation, path, parts[1], parts[3])
            return _ok({}, f"The {one} status has been changed.")
        return zoho_error(405, 37, "The HTTP method is not allowed for the requested resource")

    def _list(self, request: Request, organisation: Organisation, path: str) -> Response:
        try:
            page = int(request.arg("page", "1"))
            per_page = int(request.arg("per_page", str(MAX_PER_PAGE)))
        except ValueError as exc:
            raise Refused(4, "Invalid value passed for page or per_page") from exc
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise Refused(4, "Invalid value passed for page or per_page")
        column = request.arg("sort_column", "created_time")
        if column not in ("last_modified_time", "created_time"):
            raise Refused(4, "Invalid value passed for sort_column")
        order = request.arg("sort_order", "D")
        with self._state_lock:
            records = [dict(r) for r in organisation.records[path].values()]
        since = request.arg("last_modified_time")
        if since:
            moment = _parse_time(since)
            if moment is None:
                raise Refused(4, "Invalid value passed for last_modified_time")
            records = [r for r in records if _parse_time(r["last_modified_time"]) >= moment]
        for name in FIND_FILTERS:
            wanted = request.arg(name)
            if wanted is not None:
                records = [r for r in records if r.get(name) == wanted]
        if path == "contacts":
            kind = request.arg("contact_type")
            if kind:
                records = [r for r in records if r["contact_type"] == kind]
            status = (request.arg("filter_by") or "Status.All").removeprefix("Status.").lower()
            if status != "all":
                records = [r for r in records if r["status"] == status]
        records.sort(
            key=lambda r: (_parse_time(r[column]), int(r[ENTITY_PATHS[path][1]])),
            reverse=order == "D",
        )
        chosen = records[(page - 1) * per_page : page * per_page]
        if path != "contacts":
            chosen = [{k: v for k, v in r.items() if k not in SUMMARY_LEFT_OUT} for r in chosen]
        return _ok(
            {
                path: chosen,
                "page_context": {
                    "page": page,
                    "per_page": per_page,
                    "has_more_page": len(records) > page * per_page,
                    "report_name": path.capitalize(),
                    "applied_filter": request.arg("filter_by") or "Status.All",
                    "sort_column": column,
                    "sort_order": order,
                },
            }
        )

    # -- admin -----------------------------------------------------------------------------

    def admin(self, request: Request) -> Response | None:
        route = (request.method, request.path.rstrip("/"))
        try:
            spec = _body(request) if request.method == "POST" and request.body else {}
            if route == ("POST", "/_standin/revoke"):
                self.revoke()
                return zoho_json(200, {"revoked": True})
            if route == ("POST", "/_standin/slow"):
                with self._state_lock:
                    self._slow += [float(spec["seconds"])] * int(spec.get("count", 1))
                return zoho_json(200, {"queued": True})
            if route == ("POST", "/_standin/garble"):
                with self._state_lock:
                    self._garbled += int(spec.get("count", 1))
                return zoho_json(200, {"queued": True})
            if route == ("POST", "/_standin/limits"):
                self.per_minute = int(spec.get("per_minute") or 0) or None
                self.per_day = int(spec.get("per_day") or 0) or None
                return zoho_json(200, {"per_minute": self.per_minute, "per_day": self.per_day})
            if route == ("GET", "/_standin/books"):
                return zoho_json(200, self.books(request.arg("organization_id")))
            if route == ("POST", "/_standin/edit"):
                record = self.edit(
                    spec["organization_id"], spec["entity"], str(spec["id"]), spec["changes"]
                )
                return zoho_json(200, record)
            if route == ("POST", "/_standin/delete"):
                self.delete(spec["organization_id"], spec["entity"], str(spec["id"]))
                return zoho_json(200, {"deleted": True})
            if route == ("POST", "/_standin/seed"):
                organization_id = (
                    spec.get("organization_id")
                    or self.add_organisation(
                        spec.get("name") or "Bulk Books Private Limited"
                    ).organization_id
                )
                self.seed_bulk(
                    organization_id, int(spec.get("contacts", 0)), int(spec.get("invoices", 0))
                )
                return zoho_json(200, {"organization_id": organization_id})
        except Refused as refused:
            return zoho_error(refused.status, refused.code, str(refused))
        except (KeyError, TypeError, ValueError) as exc:
            return zoho_error(400, 4, f"stand-in: {exc}")
        return None

    def books(self, organization_id: str | None = None) -> dict:
        with self._state_lock:
            chosen = [
                o
                for o in self.organisations.values()
                if organization_id in (None, o.organization_id)
            ]
            return {
                o.organization_id: {
                    "organization": o.public(),
                    **json.loads(json.dumps(o.records, default=str)),
                }
                for o in chosen
            }


def _ok(payload: dict, message: str = "success", status: int = 200) -> Response:
    return zoho_json(status, {"code": 0, "message": message, **payload})


def _body(request: Request) -> dict:
    try:
        body = json.loads(request.body or b"null", parse_float=Decimal)
    except ValueError as exc:
        raise Refused(4, "Invalid JSON passed in the request body") from exc
    if not isinstance(body, dict):
        raise Refused(4, "Invalid JSON passed in the request body")
    return body


def _writable(record: dict) -> dict:
    """A record's own fields, as an update starts from them."""
    kept = dict(record)
    for derived in ("taxes", "sub_total", "tax_total", "total", "balance", "invoice_numbers"):
        kept.pop(derived, None)
    return kept


def _split(tax: dict, taxes: list[dict]) -> list[tuple[str, Decimal]]:
    """A tax as the parts Zoho shows on a document: a GST group as its CGST and SGST halves."""
    if tax["tax_type"] != "tax_group":
        return [(tax["tax_name"], tax["tax_percentage"])]
    half = tax["tax_percentage"] / 2
    label = str(half.normalize()) if half == half.to_integral() else str(half)
    return [(f"CGST{label}", half), (f"SGST{label}", half)]


def _gst_code(state_name: str) -> str | None:
    return region_code(state_name)


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    except (TypeError, ValueError):
        return None


# The demo organisation's customers: (name, city, GST state code, GSTIN or None, e-mail).
# Sahyadri Textiles LLP and Nilgiri Logistics are clients of the demo workspace already, so the
# first sync's match review has them to match by name.
DEMO_CUSTOMERS = (
    ("Sahyadri Textiles LLP", "Pune", "27", "27AAKFS4821M1ZQ", "accounts@sahyadritextiles.in"),
    ("Nilgiri Logistics", "Coimbatore", "33", "33AAJFN7315K1Z4", "billing@nilgirilogistics.in"),
    ("Kaveri Foods Private Limited", "Mysuru", "29", "29AACCK6124L1ZA", "finance@kaverifoods.in"),
    ("Malnad Coffee Traders", "Chikkamagaluru", "29", "29AAPFM3307B1ZF", "office@malnadcoffee.in"),
    ("Deccan Steel Works", "Hyderabad", "36", "36AABCD9052E1ZT", "ap@deccansteel.in"),
    ("Ananya Rao", "Bengaluru", "29", None, "ananya.rao@example.in"),
)
# (number, customer index, days ago issued, days to pay, rate, amount, what happens to it)
DEMO_INVOICES = (
    ("DT-1001", 2, 60, 30, 18, "50000.00", "paid"),
    ("DT-1002", 0, 45, 30, 18, "120000.00", "part"),
    ("DT-1003", 1, 70, 30, 12, "36000.00", "sent"),  # overdue by now
    ("DT-1004", 3, 5, 30, 5, "24000.00", "sent"),
    ("DT-1005", 4, 40, 15, 18, "80000.00", "paid"),
    ("DT-1006", 5, 1, 15, 18, "8500.00", "draft"),
    ("DT-1007", 2, 30, 30, 18, "15000.00", "void"),
    ("DT-1008", 2, 50, 30, 18, "42000.00", "sent"),  # overdue, a credit note against it
    ("DT-1009", 0, 10, 30, 5, "65000.00", "sent"),
    ("DT-1010", 1, 20, 30, 18, "90000.00", "part"),
)


def demo_books(standin: ZohoBooksStandin) -> Organisation:
    """The sandbox's books: Demo Traders Private Limited (Bengaluru, Karnataka, INR), the
    customers above, invoices in every state (intra-state CGST+SGST, inter-state IGST), four
    payments and a credit note."""
    organisation = standin.add_organisation()
    today = datetime.fromtimestamp(standin.clock(), IST).date()
    customers = []
    for name, city, state, gstin, email in DEMO_CUSTOMERS:
        body = {
            "contact_name": name,
            "contact_type": "customer",
            "contact_persons": [{"email": email, "is_primary_contact": True}],
            "billing_address": {"city": city, "state": GST_TO_ISO[state], "country": "IN"},
            "place_of_contact": GST_TO_ISO[state],
        }
        if gstin:
            body.update({"gst_no": gstin, "gst_treatment": "business_gst"})
        else:
            body["gst_treatment"] = "consumer"
        customers.append(standin.create(organisation, "contacts", body))
    by_number = {}
    for number, who, issued, terms, rate, amount, fate in DEMO_INVOICES:
        customer = customers[who]
        state = DEMO_CUSTOMERS[who][2]
        intra = state == "29"
        tax = next(
            t
            for t in organisation.taxes
            if t["tax_percentage"] == rate
            and (t["tax_type"] == "tax_group" if intra else t["tax_specific_type"] == "igst")
        )
        day = today - timedelta(days=issued)
        invoice = standin.create(
            organisation,
            "invoices",
            {
                "invoice_number": number,
                "customer_id": customer["contact_id"],
                "date": day.isoformat(),
                "due_date": (day + timedelta(days=terms)).isoformat(),
                "place_of_supply": GST_TO_ISO[state],
                "line_items": [
                    {
                        "name": "Supply of goods",
                        "description": f"Goods as per order {number}",
                        "rate": Decimal(amount),
                        "quantity": 1,
                        "tax_id": tax["tax_id"],
                        "hsn_or_sac": "5208",
                    }
                ],
            },
        )
        if fate != "draft":
            standin.set_status(organisation, "invoices", invoice["invoice_id"], "sent")
        if fate == "void":
            standin.set_status(organisation, "invoices", invoice["invoice_id"], "void")
        if fate in ("paid", "part"):
            total = invoice["total"]
            paid = total if fate == "paid" else to_money(total / 2)
            standin.create(
                organisation,
                "customerpayments",
                {
                    "customer_id": customer["contact_id"],
                    "amount": paid,
                    "date": (day + timedelta(days=10)).isoformat(),
                    "reference_number": f"UTR{number[-4:]}000123",
                    "invoices": [{"invoice_id": invoice["invoice_id"], "amount_applied": paid}],
                },
            )
        by_number[number] = invoice
    credited = by_number["DT-1008"]
    note = standin.create(
        organisation,
        "creditnotes",
        {
            "creditnote_number": "CN-0001",
            "customer_id": credited["customer_id"],
            "invoice_id": credited["invoice_id"],
            "date": (today - timedelta(days=15)).isoformat(),
            "place_of_supply": "KA",
            "notes": "Damaged cartons returned",
            "line_items": [
                {
                    "name": "Returned goods",
                    "rate": Decimal("2000.00"),
                    "quantity": 1,
                    "tax_id": credited["line_items"][0]["tax_id"],
                }
            ],
        },
    )
    standin.set_status(organisation, "creditnotes", note["creditnote_id"], "open")
    return organisation
