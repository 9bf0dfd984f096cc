"""The Xero connector against the Xero stand-in, every exchange checked against Xero's official
OpenAPI documents (tests/contracts/xero, via tests/contract_openapi.py), and Xero's own SDK
(xero-python) pointed at the stand-in reading what the connector wrote and writing what it
reads."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import pytest
from xero_python.accounting import AccountingApi
from xero_python.accounting import Contact as SdkContact
from xero_python.accounting import Contacts as SdkContacts
from xero_python.accounting import Invoice as SdkInvoice
from xero_python.accounting import Invoices as SdkInvoices
from xero_python.accounting import LineItem as SdkLineItem
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token

from app.integrations import connectors
from app.integrations.connectors.accounting import (
    Address,
    BookContact,
    BookCreditNote,
    BookInvoice,
    BookLine,
    BookPayment,
    ProviderUnavailable,
    RateLimited,
    RecordRefused,
    TokenRevoked,
    TokenSet,
)
from app.integrations.connectors.xero import XeroConnector, XeroWebhookRefused
from app.sandbox.standins.xero import XeroStandin
from tests.contract_openapi import ContractBroken, ContractTransport, xero_documents

DOCUMENTS = xero_documents()
ACCOUNTING, IDENTITY, WEBHOOKS = (DOCUMENTS[k] for k in ("accounting", "identity", "webhooks"))
# providers.md §0.4: Xero's intent-to-receive body, its key and its signature.
VECTOR_BODY = (
    b'{"events":[],"lastEventSequence":0,"firstEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}'
)
VECTOR_KEY = "webhook_key"
VECTOR_SIGNATURE = "iFfwymzvzVY6ZMm3MZSjG6QdYjH7Dherzk2q5D3M2gU="
TODAY = date.today()


@pytest.fixture
def standin():
    with XeroStandin(seed="demo", refresh_grace=0) as server:
        yield server


@pytest.fixture
def wire(standin, monkeypatch) -> ContractTransport:
    """Every request the connector sends and every answer it gets, checked against the
    documents as it passes (the token endpoint is checked by the OAuth test itself)."""
    transport = ContractTransport(
        {standin.url + "/api.xro/2.0": ACCOUNTING, standin.url: IDENTITY},
        unchecked=("/connect/token",),
    )
    monkeypatch.setattr(connectors, "_transport", transport)
    return transport


def config_for(standin: XeroStandin, **more) -> dict:
    return {
        "XERO_LOGIN_BASE": standin.url,
        "XERO_IDENTITY_BASE": standin.url,
        "XERO_API_BASE": standin.url,
        "XERO_CLIENT_ID": standin.client_id,
        "XERO_CLIENT_SECRET": standin.client_secret,
        "XERO_TIMEOUT_SECONDS": 2,
        **more,
    }


@pytest.fixture
def connector(standin, wire) -> XeroConnector:
    return XeroConnector(settings={}, secrets={}, config=config_for(standin))


@pytest.fixture
def access(standin) -> str:
    return standin.grant_token()["access_token"]


def by_number(standin: XeroStandin, number: str) -> list[dict]:
    return [
        i for i in standin.books(standin.demo, "Invoices").values() if i["InvoiceNumber"] == number
    ]


def contact_named(standin, name: str) -> dict:
    (found,) = [c for c in standin.books(standin.demo, "Contacts").values() if c["Name"] == name]
    return found


def line(net: str, rate: str, tax: str) -> BookLine:
    return BookLine(
        description="Cotton yarn, 40s count",
        quantity=Decimal("2"),
        unit_price=Decimal(net) / 2,
        net_amount=Decimal(net),
        tax_rate=Decimal(rate),
        tax_amount=Decimal(tax),
        hsn_sac="5205",
    )


def invoice_for(contact_id: str, number: str, *lines: BookLine, place="29", currency="INR"):
    subtotal = sum((x.net_amount for x in lines), Decimal("0.00"))
    tax = sum((x.tax_amount for x in lines), Decimal("0.00"))
    return BookInvoice(
        remote_id=None,
        number=number,
        contact_remote_id=contact_id,
        issue_date=TODAY,
        due_date=TODAY + timedelta(days=30),
        currency=currency,
        state="open",
        lines=lines,
        subtotal=subtotal,
        tax_total=tax,
        total=subtotal + tax,
        amount_due=subtotal + tax,
        place_of_supply=place,
    )


def sdk_for(standin: XeroStandin, access: str) -> AccountingApi:
    """xero-python pointed at the stand-in (providers.md §0.2)."""
    token = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 1800,
        "scope": "accounting.transactions accounting.contacts",
    }
    client = ApiClient(
        Configuration(oauth2_token=OAuth2Token(client_id="x", client_secret="y")),
        oauth2_token_getter=lambda: token,
        oauth2_token_saver=lambda t: None,
    )
    client.set_oauth2_token(token)
    return AccountingApi(client, base_url=standin.url + "/api.xro/2.0")


# -- OAuth and organisations ---------------------------------------------------------------


def test_the_consent_link_asks_for_a_code_with_pkce_and_the_documented_scopes(connector):
    url = connector.authorization_url("https://duebook.example/cb", "st4te", "ch4llenge")
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.path == "/identity/connect/authorize"
    assert query["response_type"] == "code"
    assert query["code_challenge"] == "ch4llenge"
    assert query["code_challenge_method"] == "S256"
    assert query["state"] == "st4te"
    assert query["redirect_uri"] == "https://duebook.example/cb"
    scopes = query["scope"].split()
    assert {"offline_access", "accounting.transactions", "accounting.contacts"} <= set(scopes)
    flows = ACCOUNTING.spec["components"]["securitySchemes"]["OAuth2"]["flows"]
    documented = set(flows["authorizationCode"]["scopes"]) | {"offline_access"}
    assert set(scopes) <= documented, set(scopes) - documented


def test_consent_exchange_and_rotating_refresh(standin, connector, wire):
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    url = connector.authorization_url(
        "https://duebook.example/cb", "s1", challenge.rstrip(b"=").decode()
    )
    page = httpx.get(url)
    assert "Demo Traders Private Limited" in page.text and "Harbour Supplies" in page.text
    form = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    allowed = httpx.post(
        standin.url + "/identity/connect/authorize",
        data={**form, "tenant": standin.demo, "decision": "allow"},
    )
    assert allowed.status_code == 302
    back = {k: v[0] for k, v in parse_qs(urlsplit(allowed.headers["location"]).query).items()}
    assert back["state"] == "s1"
    with pytest.raises(TokenRevoked):  # a verifier that is not the challenge's
        connector.exchange_code(back["code"], "https://duebook.example/cb", "w" * 64, back)
    again = httpx.post(
        standin.url + "/identity/connect/authorize",
        data={**form, "tenant": standin.demo, "decision": "allow"},
    )
    code = parse_qs(urlsplit(again.headers["location"]).query)["code"][0]
    tokens = connector.exchange_code(code, "https://duebook.example/cb", verifier, {})
    assert tokens.expires_at > datetime.now(UTC) + timedelta(minutes=25)
    # The token endpoint's answer is the document's AccessToken; a refresh, its RefreshToken.
    token_answer = [r for q, r in wire.exchanges if q.url.path == "/connect/token"][-1]
    IDENTITY.check_component("AccessToken", token_answer.json())
    books = connector.organisations(tokens.access_token, tokens)
    assert [(b.name, b.country, b.currency) for b in books] == [
        ("Demo Traders Private Limited", "IN", "INR")
    ]
    renewed = connector.refresh(tokens)
    refresh_form = dict(parse_qsl(wire.exchanges[-1][0].content.decode()))
    IDENTITY.check_component("RefreshToken", refresh_form)
    assert renewed.refresh_token != tokens.refresh_token
    with pytest.raises(TokenRevoked):  # the old one, once used, is spent
        connector.refresh(tokens)
    assert connector.organisations(renewed.access_token, renewed)[0].remote_id == standin.demo


def test_a_cancelled_consent_returns_access_denied(standin, connector):
    url = connector.authorization_url("https://duebook.example/cb", "s2", "c" * 43)
    form = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    answer = httpx.post(
        standin.url + "/identity/connect/authorize", data={**form, "decision": "cancel"}
    )
    assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["access_denied"]


def test_tokens_revoked_mid_run(standin, connector):
    tokens = standin.grant_token()
    token_set = TokenSet(tokens["access_token"], tokens["refresh_token"], datetime.now(UTC))
    first = connector.pull(tokens["access_token"], standin.demo, "contact", None, None)
    assert first.records
    standin.revoke()
    with pytest.raises(TokenRevoked):
        connector.pull(tokens["access_token"], standin.demo, "invoice", None, None)
    with pytest.raises(TokenRevoked):
        connector.refresh(token_set)


# -- pull ------------------------------------------------------------------------------------


def read_all(connector, access, standin, entity, since=None, between_pages=None):
    """Every page of one pass: (records, the marker to keep, the pages)."""
    pages, cursor, marker = [], None, None
    while True:
        page = connector.pull(access, standin.demo, entity, since, cursor)
        pages.append(page)
        marker = page.marker or marker
        cursor = page.next_cursor
        if cursor is None:
            return [r for p in pages for r in p.records], marker, pages
        if between_pages:
            between_pages(len(pages))


def test_pull_pages_in_change_order_and_asks_only_for_changes_after(
    standin, connector, access, wire
):
    standin.seed_bulk(standin.demo, 230, 0)
    records, marker, pages = read_all(connector, access, standin, "contact")
    assert {r.remote_id for r in records} == set(standin.books(standin.demo, "Contacts"))
    assert len(pages) == 3 and len(records) <= 236 + 2 * 2  # at most two read twice a page
    for page in pages:
        stamps = [r.updated_at for r in page.records]
        assert stamps == sorted(stamps)
    stamps = [r.updated_at for r in records]
    assert marker == max(stamps).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    asked = [r.headers.get("If-Modified-Since") for r in wire.sent("GET", "/Contacts")]
    assert asked[0] is None and asked[1] < asked[2]
    assert all(
        parse_qs(r.url.query.decode())["order"] == ["UpdatedDateUTC ASC"]
        for r in wire.sent("GET", "/Contacts")
    )
    # The accountant renames one contact: the next pass asks with the marker and gets it.
    sahyadri = contact_named(standin, "Sahyadri Textiles LLP")
    standin.edit(standin.demo, "contact", sahyadri["ContactID"], {"Name": "Sahyadri Textiles"})
    later = connector.pull(access, standin.demo, "contact", marker, None)
    assert wire.sent("GET", "/Contacts")[-1].headers["If-Modified-Since"] == marker
    assert "Sahyadri Textiles" in [r.name for r in later.records]
    assert len(later.records) <= 2  # the change, and at most the record at the marker itself
    assert later.marker > marker


def test_a_change_during_a_pass_does_not_hide_an_unread_record(standin, connector, access):
    standin.seed_bulk(standin.demo, 250, 0)
    oldest = min(
        standin.books(standin.demo, "Contacts").values(), key=lambda c: c["UpdatedDateUTC"]
    )

    def accountant_edits(pages_read):
        if pages_read == 1:  # a record of the first page moves to the end of the order
            standin.edit(standin.demo, "contact", oldest["ContactID"], {"Name": "Moved To The End"})

    records, _, _ = read_all(connector, access, standin, "contact", between_pages=accountant_edits)
    assert {r.remote_id for r in records} == set(standin.books(standin.demo, "Contacts"))
    assert "Moved To The End" in [r.name for r in records]


def test_a_page_of_records_changed_at_one_instant_is_followed_by_page_number(
    standin, connector, access, wire
):
    standin.seed_bulk(standin.demo, 150, 0)
    same = datetime(2026, 1, 1, tzinfo=UTC)
    for contact in standin.books(standin.demo, "Contacts").values():
        contact["UpdatedDateUTC"] = same
    records, _, pages = read_all(
        connector, access, standin, "contact", since="2025-12-31T00:00:00.000"
    )
    assert len(records) == 156 and len(pages) == 2
    assert parse_qs(wire.sent("GET", "/Contacts")[-1].url.query.decode())["page"] == ["2"]


def test_pull_reads_states_deletions_credit_allocations_and_payments(standin, connector, access):
    invoices = connector.pull(access, standin.demo, "invoice", None, None).records
    states = {i.number: i.state for i in invoices}
    assert states["INV-0007"] == "draft"
    assert states["INV-0008"] == "void"
    assert states["INV-0002"] == "paid"
    assert states["INV-0001"] == "open"
    first = next(i for i in invoices if i.number == "INV-0001")
    assert first.amount_due == first.total - Decimal("100000.00")
    note = connector.pull(access, standin.demo, "credit_note", None, None).records[0]
    assert note.invoice_remote_id == next(i.remote_id for i in invoices if i.number == "INV-0009")
    assert note.total == Decimal("4480.00")
    payments = connector.pull(access, standin.demo, "payment", None, None).records
    assert len(payments) == 4 and all(p.currency == "INR" for p in payments)
    # The accountant archives a contact and deletes a payment: both come back as deleted.
    nilgiri = contact_named(standin, "Nilgiri Logistics")
    standin.edit(standin.demo, "contact", nilgiri["ContactID"], {"ContactStatus": "ARCHIVED"})
    contacts = connector.pull(access, standin.demo, "contact", None, None).records
    assert next(c for c in contacts if c.name == "Nilgiri Logistics").deleted
    deleted = connector.push(
        access,
        standin.demo,
        "payment",
        BookPayment(
            remote_id=payments[0].remote_id,
            invoice_remote_id=payments[0].invoice_remote_id,
            contact_remote_id=None,
            paid_on=payments[0].paid_on,
            amount=payments[0].amount,
            currency="INR",
            deleted=True,
        ),
        "delete-payment-1",
    )
    assert deleted.deleted
    again = connector.pull(access, standin.demo, "payment", None, None).records
    assert next(p for p in again if p.remote_id == payments[0].remote_id).deleted


def test_an_unreadable_record_is_listed_with_its_reason_and_the_rest_are_read(
    standin, connector, access
):
    malnad = contact_named(standin, "Malnad Coffee Traders")
    standin.edit(standin.demo, "contact", malnad["ContactID"], {"Name": ""})
    page = connector.pull(access, standin.demo, "contact", None, None)
    assert [(u.remote_id, u.reason) for u in page.unreadable] == [
        (malnad["ContactID"], "The contact has no name.")
    ]
    assert len(page.records) == 5
    (odd,) = by_number(standin, "INV-0010")
    standin.edit(standin.demo, "invoice", odd["InvoiceID"], {"InvoiceNumber": ""})
    invoices = connector.pull(access, standin.demo, "invoice", None, None)
    assert [(u.remote_id, u.reason) for u in invoices.unreadable] == [
        (odd["InvoiceID"], "The document has no number.")
    ]
    assert len(invoices.records) == 9


# -- push ------------------------------------------------------------------------------------


def new_customer(connector, access, standin, name="Hampi Handlooms", key="contact-1"):
    return connector.push(
        access,
        standin.demo,
        "contact",
        BookContact(
            remote_id=None,
            name=name,
            email="accounts@hampi.example",
            phone="+91 80 4123 4567",
            tax_number="29AAGCH1234B1Z0",
            currency="INR",
            address=Address(
                line1="12 Temple Road",
                city="Hosapete",
                region="Karnataka",
                postal_code="583201",
                country="IN",
            ),
        ),
        key,
    )


def test_push_creates_updates_and_a_retried_write_makes_one_record(
    standin, connector, access, wire
):
    contact = new_customer(connector, access, standin)
    assert contact.remote_id and contact.tax_number == "29AAGCH1234B1Z0"
    invoice = invoice_for(contact.remote_id, "DB-2026-0042", line("10000.00", "18", "1800.00"))
    first = connector.push(access, standin.demo, "invoice", invoice, "invoice-42")
    retried = connector.push(access, standin.demo, "invoice", invoice, "invoice-42")
    assert first == retried
    assert len(by_number(standin, "DB-2026-0042")) == 1
    assert standin.stats()["duplicate_keys"] == 1
    create = wire.sent("PUT", "/Invoices")[0]
    assert create.headers["Idempotency-Key"] == "invoice-42"
    assert parse_qs(create.url.query.decode())["summarizeErrors"] == ["false"]
    body = json.loads(create.content)["Invoices"][0]
    assert body["Status"] == "AUTHORISED" and body["LineAmountTypes"] == "Exclusive"
    assert body["LineItems"][0]["TaxAmount"] == 1800.00
    assert first.state == "open" and first.total == Decimal("11800.00")
    # Lookup first: the number finds it, as the name finds the contact.
    assert (
        connector.find(access, standin.demo, "invoice", "DB-2026-0042").remote_id == first.remote_id
    )
    assert (
        connector.find(access, standin.demo, "contact", "Hampi Handlooms").remote_id
        == contact.remote_id
    )
    assert connector.find(access, standin.demo, "invoice", "DB-NOPE") is None
    # An update goes to the invoice's own URL.
    later = TODAY + timedelta(days=45)
    changed = connector.push(
        access,
        standin.demo,
        "invoice",
        BookInvoice(**{**first.__dict__, "due_date": later, "place_of_supply": "29"}),
        "invoice-42-v2",
    )
    assert changed.due_date == later
    assert wire.sent("POST", f"/Invoices/{first.remote_id}")


def test_payments_and_credit_notes_reach_the_books_once(standin, connector, access):
    contact = new_customer(connector, access, standin)
    invoice = connector.push(
        access,
        standin.demo,
        "invoice",
        invoice_for(contact.remote_id, "DB-2026-0050", line("20000.00", "18", "3600.00")),
        "invoice-50",
    )
    payment = BookPayment(
        remote_id=None,
        invoice_remote_id=invoice.remote_id,
        contact_remote_id=contact.remote_id,
        paid_on=TODAY,
        amount=Decimal("5000.00"),
        currency="INR",
        reference="DB-PAY-77",
    )
    paid = connector.push(access, standin.demo, "payment", payment, "payment-77")
    assert connector.push(access, standin.demo, "payment", payment, "payment-77") == paid
    assert connector.find(access, standin.demo, "payment", "DB-PAY-77").remote_id == paid.remote_id
    books_invoice = standin.books(standin.demo, "Invoices")[invoice.remote_id]
    assert books_invoice["AmountPaid"] == Decimal("5000.00")
    assert len(books_invoice["Payments"]) == 1
    note = BookCreditNote(
        remote_id=None,
        number="DB-CN-0003",
        contact_remote_id=contact.remote_id,
        issue_date=TODAY,
        currency="INR",
        state="open",
        lines=(line("1000.00", "18", "180.00"),),
        subtotal=Decimal("1000.00"),
        tax_total=Decimal("180.00"),
        total=Decimal("1180.00"),
        invoice_remote_id=invoice.remote_id,
        reason="Short supply",
    )
    credited = connector.push(access, standin.demo, "credit_note", note, "credit-3")
    assert credited.invoice_remote_id == invoice.remote_id
    assert connector.push(access, standin.demo, "credit_note", note, "credit-3") == credited
    assert books_invoice["AmountDue"] == Decimal("23600.00") - Decimal("5000.00") - Decimal(
        "1180.00"
    )


def test_a_refused_record_carries_xeros_words(standin, connector, access):
    invoice = invoice_for(
        "00000000-0000-0000-0000-000000000000", "DB-X-1", line("100.00", "18", "18.00")
    )
    with pytest.raises(RecordRefused, match="A Contact must be specified"):
        connector.push(access, standin.demo, "invoice", invoice, "bad-1")
    (due,) = by_number(standin, "INV-0010")
    with pytest.raises(RecordRefused, match="exceeds the amount outstanding"):
        connector.push(
            access,
            standin.demo,
            "payment",
            BookPayment(None, due["InvoiceID"], None, TODAY, Decimal("99999999.00"), "INR"),
            "bad-2",
        )
    odd_rate = invoice_for(due["Contact"]["ContactID"], "DB-X-2", line("100.00", "7", "7.00"))
    with pytest.raises(RecordRefused, match="no tax rate for 7%"):
        connector.push(access, standin.demo, "invoice", odd_rate, "bad-3")
    taken = BookContact(remote_id=None, name="Nilgiri Logistics")
    with pytest.raises(RecordRefused, match="already assigned to another contact"):
        connector.push(access, standin.demo, "contact", taken, "bad-4")


# -- tax ---------------------------------------------------------------------------------------


def test_india_gst_within_the_state_and_across_states_both_ways(standin, connector, access):
    sahyadri = contact_named(standin, "Sahyadri Textiles LLP")["ContactID"]
    inter = connector.push(
        access,
        standin.demo,
        "invoice",
        invoice_for(sahyadri, "DB-IN-1", line("50000.00", "18", "9000.00"), place="27"),
        "in-1",
    )
    intra = connector.push(
        access,
        standin.demo,
        "invoice",
        invoice_for(sahyadri, "DB-IN-2", line("50000.00", "12", "6000.00"), place="29"),
        "in-2",
    )
    (inter_books,), (intra_books,) = by_number(standin, "DB-IN-1"), by_number(standin, "DB-IN-2")
    assert inter_books["LineItems"][0]["TaxType"] == "TAX006"  # IGST 18%
    assert intra_books["LineItems"][0]["TaxType"] == "TAX003"  # CGST 6% + SGST 6%
    assert (inter.place_of_supply, inter.lines[0].tax_rate) == (None, Decimal("18"))
    assert (intra.place_of_supply, intra.lines[0].tax_rate) == ("29", Decimal("12"))
    assert inter.tax_total == Decimal("9000.00") and intra.total == Decimal("56000.00")


def test_australia_gst_and_abn_both_ways(standin, connector, access):
    (harbour,) = [t for t in standin.organisations if t != standin.demo]
    contact = connector.push(
        access,
        harbour,
        "contact",
        BookContact(remote_id=None, name="Bondi Surf Co", tax_number="53004085616", currency="AUD"),
        "au-contact",
    )
    pushed = connector.push(
        access,
        harbour,
        "invoice",
        invoice_for(
            contact.remote_id,
            "DB-AU-1",
            line("1000.00", "10", "100.00"),
            line("200.00", "0", "0.00"),
            place=None,
            currency="AUD",
        ),
        "au-1",
    )
    stored = standin.books(harbour, "Invoices")[pushed.remote_id]
    assert [x["TaxType"] for x in stored["LineItems"]] == ["OUTPUT", "EXEMPTOUTPUT"]
    assert standin.books(harbour, "Contacts")[contact.remote_id]["TaxNumber"] == "53004085616"
    assert [x.tax_rate for x in pushed.lines] == [Decimal("10"), Decimal("0")]
    assert pushed.total == Decimal("1300.00") and pushed.place_of_supply is None
    pulled = connector.pull(access, harbour, "contact", None, None).records
    assert [(c.name, c.tax_number) for c in pulled] == [("Bondi Surf Co", "53004085616")]


# -- limits and failures -----------------------------------------------------------------------


def test_rate_limits_become_rate_limited_with_the_wait(standin, connector, access):
    standin.inject_fault(429, retry_after=37)
    with pytest.raises(RateLimited) as minute:
        connector.pull(access, standin.demo, "contact", None, None)
    assert (minute.value.retry_after, minute.value.daily) == (37, False)
    standin.per_day = 1  # spent by the calls so far
    with pytest.raises(RateLimited) as day:
        connector.pull(access, standin.demo, "contact", None, None)
    assert day.value.daily and day.value.retry_after > 0
    standin.per_day, standin.per_minute = 5000, 1
    with pytest.raises(RateLimited) as per_minute:
        connector.pull(access, standin.demo, "contact", None, None)
    assert not per_minute.value.daily and 0 < per_minute.value.retry_after <= 61


@pytest.mark.parametrize("fault", ["500", "slow", "truncated"])
def test_a_failing_answer_is_provider_unavailable_and_the_page_is_read_next_time(
    standin, connector, access, fault
):
    if fault == "500":
        standin.inject_fault(500)
    elif fault == "slow":
        standin.slow = (3.0, 1)  # the connector waits 2 s (XERO_TIMEOUT_SECONDS)
    else:
        standin.truncate = 1
    with pytest.raises(ProviderUnavailable):
        connector.pull(access, standin.demo, "invoice", None, None)
    assert len(connector.pull(access, standin.demo, "invoice", None, None).records) == 10


# -- webhooks ----------------------------------------------------------------------------------


def test_webhook_signature_reference_vector_and_a_flipped_byte(connector):
    headers = {"x-xero-signature": VECTOR_SIGNATURE}
    assert connector.read_webhook(VECTOR_BODY, headers, VECTOR_KEY) == []
    flipped = VECTOR_BODY.replace(b"S0m3", b"S0m4")
    with pytest.raises(XeroWebhookRefused) as refused:
        connector.read_webhook(flipped, headers, VECTOR_KEY)
    assert refused.value.status == 401
    with pytest.raises(XeroWebhookRefused):
        connector.read_webhook(VECTOR_BODY, {}, VECTOR_KEY)


def test_the_standins_events_become_notices(standin, connector):
    from tests.test_standins import Receiver

    receiver = Receiver()
    try:
        standin.webhook_url = receiver.url + "/hooks/xero"
        (invoice,) = by_number(standin, "INV-0004")
        standin.edit(standin.demo, "invoice", invoice["InvoiceID"], {"Reference": "PO 991"})
        (call,) = receiver.wait_for(1)
        body = json.loads(call["body"])
        WEBHOOKS.check_component("WebhookEvent", body)
        notices = connector.read_webhook(call["body"], call["headers"], standin.webhook_key)
        assert [(n.book_id, n.entity, n.remote_id) for n in notices] == [
            (standin.demo, "invoice", invoice["InvoiceID"])
        ]
        assert notices[0].event_id
    finally:
        receiver.close()


# -- the SDK as the oracle ---------------------------------------------------------------------


def test_xeros_sdk_reads_what_the_connector_wrote(standin, connector, access):
    contact = new_customer(connector, access, standin)
    invoice = connector.push(
        access,
        standin.demo,
        "invoice",
        invoice_for(contact.remote_id, "DB-SDK-1", line("3000.00", "18", "540.00"), place="29"),
        "sdk-1",
    )
    connector.push(
        access,
        standin.demo,
        "payment",
        BookPayment(None, invoice.remote_id, None, TODAY, Decimal("1000.00"), "INR", "DB-PAY-SDK"),
        "sdk-pay-1",
    )
    sdk = sdk_for(standin, access)
    (read,) = sdk.get_invoices(standin.demo, invoice_numbers=["DB-SDK-1"]).invoices
    assert (str(read.type), str(read.status)) == ("ACCREC", "AUTHORISED")
    assert read.line_items[0].tax_type == "TAX005"
    assert Decimal(str(read.total)) == Decimal("3540.00")
    assert Decimal(str(read.amount_due)) == Decimal("2540.00")
    assert read.due_date == TODAY + timedelta(days=30)
    (person,) = sdk.get_contacts(standin.demo, where='Name=="Hampi Handlooms"').contacts
    assert (
        person.tax_number == "29AAGCH1234B1Z0" and person.email_address == "accounts@hampi.example"
    )
    (money,) = sdk.get_payments(standin.demo, where='Reference=="DB-PAY-SDK"').payments
    assert Decimal(str(money.amount)) == Decimal("1000.00") and money.account.code == "090"


def test_the_connector_reads_what_xeros_sdk_wrote(standin, connector, access):
    sdk = sdk_for(standin, access)
    marker = connector.pull(access, standin.demo, "invoice", None, None).marker
    made = sdk.create_contacts(
        standin.demo,
        SdkContacts(contacts=[SdkContact(name="Udupi Spices", tax_number="29AAFCU5055K1ZO")]),
    ).contacts[0]
    sdk.create_invoices(
        standin.demo,
        SdkInvoices(
            invoices=[
                SdkInvoice(
                    type="ACCREC",
                    contact=SdkContact(contact_id=made.contact_id),
                    invoice_number="XR-77",
                    date=TODAY,
                    due_date=TODAY + timedelta(days=15),
                    status="AUTHORISED",
                    line_items=[
                        SdkLineItem(
                            description="Pepper, 50 kg",
                            quantity=1.0,
                            unit_amount=8000.0,
                            account_code="200",
                            tax_type="TAX001",
                            tax_amount=400.0,
                        )
                    ],
                )
            ]
        ),
    )
    (pulled,) = connector.pull(access, standin.demo, "invoice", marker, None).records[-1:]
    assert (pulled.number, pulled.state, pulled.total) == ("XR-77", "open", Decimal("8400.00"))
    assert (pulled.lines[0].tax_rate, pulled.place_of_supply) == (Decimal("5"), "29")
    contacts = connector.pull(access, standin.demo, "contact", None, None).records
    assert "Udupi Spices" in [c.name for c in contacts]


def test_the_contract_check_can_fail():
    with pytest.raises(ContractBroken):
        ACCOUNTING.check_request(
            "PUT", "/Invoices", "", {"xero-tenant-id": "x"}, b'{"Invoices":[{"Type":"BOGUS"}]}'
        )
    with pytest.raises(ContractBroken):  # a field Xero does not declare
        ACCOUNTING.check_request(
            "PUT",
            "/Invoices",
            "",
            {"xero-tenant-id": "x"},
            b'{"Invoices":[{"PlaceOfSupply":"29"}]}',
        )
    with pytest.raises(ContractBroken):
        ACCOUNTING.check_request("GET", "/Invoices", "Page=1", {"xero-tenant-id": "x"}, b"")
    with pytest.raises(ContractBroken):
        ACCOUNTING.check_request("GET", "/Invoices", "", {}, b"")
    with pytest.raises(ContractBroken):
        ACCOUNTING.check_response("GET", "/Invoices", 200, b'{"Invoices":[{"Total":"12"}]}')


def test_voiding_an_invoice_and_the_books_refusing_one_with_payments(standin, connector, access):
    open_one = connector.find(access, standin.demo, "invoice", "INV-0010")
    voided = connector.push(
        access, standin.demo, "invoice", BookInvoice(**{**open_one.__dict__, "state": "void"}), "v1"
    )
    assert voided.state == "void"
    assert standin.books(standin.demo, "Invoices")[open_one.remote_id]["Status"] == "VOIDED"
    part_paid = connector.find(access, standin.demo, "invoice", "INV-0001")
    with pytest.raises(RecordRefused, match="cannot be voided as it has payments"):
        connector.push(
            access,
            standin.demo,
            "invoice",
            BookInvoice(**{**part_paid.__dict__, "state": "void"}),
            "v2",
        )
