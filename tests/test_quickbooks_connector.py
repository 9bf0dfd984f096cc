"""The QuickBooks Online connector against the QuickBooks stand-in: OAuth, pull (query pages,
CDC, deletions, unreadable records), push (create, update, idempotent retry, stale SyncToken),
errors, webhooks and the India / Australia tax mapping. Every entity body the connector sent
is checked against Intuit's XSDs (tests/quickbooks_contract.py) when each test ends, and
python-quickbooks, pointed at the stand-in, reads what the connector wrote."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from intuitlib.client import AuthClient
from quickbooks import QuickBooks
from quickbooks.objects.customer import Customer

from app.integrations.connectors import quickbooks as qbo_module
from app.integrations.connectors.accounting import (
    AccountingError,
    Address,
    BookContact,
    BookInvoice,
    BookLine,
    BookPayment,
    ProviderUnavailable,
    RateLimited,
    RecordRefused,
    TokenRevoked,
)
from app.integrations.connectors.gateway import WebhookRefused
from app.integrations.connectors.quickbooks import QuickBooksConnector
from app.sandbox.standins.quickbooks import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REALM,
    QuickBooksStandin,
    gstin,
)
from tests.quickbooks_contract import check_entity

REDIRECT = "http://127.0.0.1:5000/sync/callback"
ENTITY_PATHS = {
    "customer": "Customer",
    "invoice": "Invoice",
    "creditmemo": "CreditMemo",
    "payment": "Payment",
}
AU_REALM = "9130350000000002"


@pytest.fixture
def standin():
    with QuickBooksStandin(seed="demo") as server:
        yield server
        # The contract: every entity the connector wrote is one Intuit's XSD allows.
        for entry in server.recorded():
            entity = entry["path"].rsplit("/", 1)[-1]
            if entry["method"] == "POST" and entity in ENTITY_PATHS:
                check_entity(ENTITY_PATHS[entity], json.loads(entry["body"]))


def config_for(server) -> dict:
    return {
        "QBO_API_BASE": server.url,
        "QBO_DISCOVERY_URL": f"{server.url}/.well-known/openid_configuration",
        "QBO_CLIENT_ID": DEFAULT_CLIENT_ID,
        "QBO_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
    }


@pytest.fixture
def connector(standin):
    return QuickBooksConnector(settings={}, secrets={}, config=config_for(standin))


def consent(connector, standin, realm=DEFAULT_REALM, state="s-1") -> dict:
    """Clicks through the stand-in's consent page; the callback's query string."""
    url = connector.authorization_url(REDIRECT, state, "")
    page = httpx.get(url)
    assert page.status_code == 200 and "Allow access" in page.text
    form = {
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "state": state,
        "realm": realm,
    }
    answer = httpx.post(f"{standin.url}/connect/oauth2/allow", data=form)
    assert answer.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}


@pytest.fixture
def tokens(connector, standin):
    callback = consent(connector, standin)
    return connector.exchange_code(callback["code"], REDIRECT, "", callback)


def line(net: str, rate: str, description: str = "Consulting") -> BookLine:
    net_amount = Decimal(net)
    return BookLine(
        description=description,
        quantity=Decimal("1"),
        unit_price=net_amount,
        net_amount=net_amount,
        tax_rate=Decimal(rate),
        tax_amount=(net_amount * Decimal(rate) / 100).quantize(Decimal("0.01")),
    )


def invoice(number: str, contact: str, *lines: BookLine, place: str | None = "29", **more):
    subtotal = sum((item.net_amount for item in lines), Decimal("0.00"))
    tax = sum((item.tax_amount for item in lines), Decimal("0.00"))
    fields = {
        "remote_id": None,
        "number": number,
        "contact_remote_id": contact,
        "issue_date": date(2026, 11, 2),
        "due_date": date(2026, 12, 2),
        "currency": "INR",
        "state": "open",
        "lines": lines,
        "subtotal": subtotal,
        "tax_total": tax,
        "total": subtotal + tax,
        "amount_due": subtotal + tax,
        "place_of_supply": place,
    }
    return BookInvoice(**{**fields, **more})


def books(standin, name, realm=DEFAULT_REALM) -> dict:
    return httpx.get(f"{standin.url}/_standin/books/{realm}").json()[name]


def customer_id(standin, name: str) -> str:
    return next(c["Id"] for c in books(standin, "Customer").values() if c["DisplayName"] == name)


# -- OAuth -------------------------------------------------------------------------------------


def test_authorization_url_asks_intuit_for_accounting_access_without_pkce(connector, standin):
    url = urlsplit(connector.authorization_url(REDIRECT, "state-42", "ignored-challenge"))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{standin.url}/connect/oauth2"
    assert query == {
        "client_id": DEFAULT_CLIENT_ID,
        "response_type": "code",
        "scope": "com.intuit.quickbooks.accounting",
        "redirect_uri": REDIRECT,
        "state": "state-42",
    }
    assert QuickBooksConnector.uses_pkce is False


def test_the_consented_company_is_the_one_book(connector, standin):
    standin.add_company("9130350000000009", "Second Company Pvt Ltd")
    callback = consent(connector, standin, realm="9130350000000009", state="xyz")
    assert callback["state"] == "xyz"
    tokens = connector.exchange_code(callback["code"], REDIRECT, "", callback)
    assert tokens.extra == {"realm_id": "9130350000000009"}
    assert tokens.expires_at > datetime.now(UTC) + timedelta(minutes=55)
    [book] = connector.organisations(tokens.access_token, tokens)
    assert (book.remote_id, book.name, book.country) == (
        "9130350000000009",
        "Second Company Pvt Ltd",
        "IN",
    )


def test_a_callback_without_a_company_is_refused(connector, standin):
    callback = consent(connector, standin)
    del callback["realmId"]
    with pytest.raises(AccountingError, match="which company"):
        connector.exchange_code(callback["code"], REDIRECT, "", callback)


def test_refresh_rotates_the_refresh_token_and_the_old_one_is_dead(connector, tokens):
    fresh = connector.refresh(tokens)
    assert fresh.refresh_token != tokens.refresh_token
    assert fresh.access_token != tokens.access_token
    assert fresh.extra == tokens.extra
    with pytest.raises(TokenRevoked, match="invalid_grant"):
        connector.refresh(tokens)
    assert connector.refresh(fresh).refresh_token


def test_tokens_revoked_mid_run_need_reconnecting(connector, standin, tokens):
    connector.pull(tokens.access_token, DEFAULT_REALM, "contact", None, None)
    httpx.post(f"{standin.url}/_standin/revoke")
    with pytest.raises(TokenRevoked):
        connector.pull(tokens.access_token, DEFAULT_REALM, "invoice", None, None)
    with pytest.raises(TokenRevoked):
        connector.refresh(tokens)


# -- pull --------------------------------------------------------------------------------------


def test_a_full_pass_pages_by_query_and_gives_its_start_as_the_marker(connector, standin, tokens):
    connector.page_size = 4
    first = connector.pull(tokens.access_token, DEFAULT_REALM, "contact", None, None)
    assert len(first.records) == 4 and first.next_cursor and first.marker is None
    second = connector.pull(tokens.access_token, DEFAULT_REALM, "contact", None, first.next_cursor)
    assert second.next_cursor is None and second.marker
    names = {record.name for record in first.records + second.records}
    assert len(names) == 6 and {"Sahyadri Textiles LLP", "Nilgiri Logistics"} <= names
    sahyadri = next(r for r in first.records if r.name == "Sahyadri Textiles LLP")
    assert sahyadri.tax_number == gstin("27", "AAPFS4821K")
    assert sahyadri.address.city == "Pune" and sahyadri.address.region == "27"
    assert sahyadri.email == "accounts@sahyadritextiles.in" and sahyadri.version == "0"
    queries = [e["body"] for e in standin.recorded() if e["path"].endswith("/query")]
    assert "STARTPOSITION 1 MAXRESULTS 4" in queries[0] and "STARTPOSITION 5" in queries[1]
    assert all(e["query"]["minorversion"] == "75" for e in standin.recorded())


def test_invoice_states_amounts_and_payments_read_from_the_books(connector, tokens):
    access = tokens.access_token
    invoices = {
        i.number: i for i in connector.pull(access, DEFAULT_REALM, "invoice", None, None).records
    }
    assert len(invoices) == 10
    assert invoices["QB-1001"].state == "open"
    assert invoices["QB-1001"].total == Decimal("147500.00")  # 125,000 + 18% GST
    assert invoices["QB-1002"].state == "paid" and invoices["QB-1002"].amount_due == 0
    partly = invoices["QB-1006"]
    assert partly.state == "open" and partly.amount_due == partly.total / 2
    assert invoices["QB-1010"].state == "void" and invoices["QB-1010"].total == 0
    assert invoices["QB-1008"].due_date < date.today()  # overdue
    payments = connector.pull(access, DEFAULT_REALM, "payment", None, None).records
    assert len(payments) == 4
    paid = next(p for p in payments if p.invoice_remote_id == invoices["QB-1002"].remote_id)
    assert paid.amount == Decimal("56640.00") and paid.currency == "INR"
    [credit] = connector.pull(access, DEFAULT_REALM, "credit_note", None, None).records
    assert credit.number == "CN-1001" and credit.total == Decimal("5900.00")


def test_incremental_pull_reads_changes_and_deletions_by_cdc(connector, standin, tokens):
    access = tokens.access_token
    since = connector.pull(access, DEFAULT_REALM, "invoice", None, None).marker
    later = time.time() + 5  # the accountant's edits come after the marker's second
    standin.clock = lambda: later
    invoices = books(standin, "Invoice")
    first, second = sorted(invoices, key=int)[:2]
    httpx.post(
        f"{standin.url}/_standin/books/{DEFAULT_REALM}/invoice/{first}",
        json={"DueDate": "2027-01-31"},
    )
    httpx.delete(f"{standin.url}/_standin/books/{DEFAULT_REALM}/invoice/{second}")
    page = connector.pull(access, DEFAULT_REALM, "invoice", since, None)
    assert any(e["path"].endswith("/cdc") for e in standin.recorded())
    changed = {record.remote_id: record for record in page.records}
    assert set(changed) == {first, second}
    assert changed[first].due_date == date(2027, 1, 31) and changed[first].version == "1"
    assert changed[second].deleted is True
    assert page.next_cursor is None and page.marker >= since


def test_a_full_cdc_answer_does_not_advance_the_marker(connector, standin, tokens):
    access = tokens.access_token
    since = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    standin.seed_bulk(DEFAULT_REALM, 1000, 0)
    page = connector.pull(access, DEFAULT_REALM, "contact", since, None)
    assert len(page.records) == 1000  # CDC's cap: possibly cut short
    assert page.marker is None and page.next_cursor
    seen = {record.remote_id for record in page.records}
    cursor, marker = page.next_cursor, None
    while cursor:
        more = connector.pull(access, DEFAULT_REALM, "contact", since, cursor)
        seen |= {record.remote_id for record in more.records}
        cursor, marker = more.next_cursor, more.marker
    assert len(seen) == 1006 and marker


def test_a_marker_older_than_cdc_reaches_goes_by_query(connector, standin, tokens):
    old = (datetime.now(UTC) - timedelta(days=45)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    page = connector.pull(tokens.access_token, DEFAULT_REALM, "contact", old, None)
    assert len(page.records) == 6 and page.marker
    assert not any(e["path"].endswith("/cdc") for e in standin.recorded())


def test_an_unreadable_record_is_listed_and_the_rest_of_the_page_read(connector, standin, tokens):
    target = sorted(books(standin, "Invoice"), key=int)[0]
    httpx.post(
        f"{standin.url}/_standin/books/{DEFAULT_REALM}/invoice/{target}",
        json={"CurrencyRef": {"value": "RUPEES"}},
    )
    page = connector.pull(tokens.access_token, DEFAULT_REALM, "invoice", None, None)
    assert len(page.records) == 9
    [problem] = page.unreadable
    assert problem.remote_id == target and "RUPEES" in problem.reason


def test_a_payment_of_two_invoices_becomes_two_payments(connector, standin, tokens):
    open_ones = [
        i
        for i in books(standin, "Invoice").values()
        if i["Balance"] and i["CustomerRef"]["value"] == customer_id(standin, "Nilgiri Logistics")
    ]
    assert len(open_ones) == 1
    sahyadri = [i for i in books(standin, "Invoice").values() if i["DocNumber"] == "QB-1001"]
    both = [open_ones[0], sahyadri[0]]
    for item in both:  # one customer's two invoices
        item["CustomerRef"] = {"value": "1"}
    httpx.post(
        f"{standin.url}/_standin/books/{DEFAULT_REALM}/invoice/{both[0]['Id']}",
        json={"CustomerRef": {"value": "1"}},
    )
    answer = httpx.post(
        f"{standin.url}/_standin/books/{DEFAULT_REALM}/payment",
        json={
            "TotalAmt": 1500.0,
            "CustomerRef": {"value": "1"},
            "PaymentRefNum": "NEFT-77",
            "Line": [
                {"Amount": 1000.0, "LinkedTxn": [{"TxnId": both[0]["Id"], "TxnType": "Invoice"}]},
                {"Amount": 500.0, "LinkedTxn": [{"TxnId": both[1]["Id"], "TxnType": "Invoice"}]},
            ],
        },
    ).json()
    payment_id = answer["Payment"]["Id"]
    records = connector.pull(tokens.access_token, DEFAULT_REALM, "payment", None, None).records
    mine = sorted(
        (r for r in records if r.remote_id.startswith(f"{payment_id}:")), key=lambda r: r.amount
    )
    assert [(r.remote_id, r.amount) for r in mine] == [
        (f"{payment_id}:{both[1]['Id']}", Decimal("500.00")),
        (f"{payment_id}:{both[0]['Id']}", Decimal("1000.00")),
    ]
    assert all(r.reference == "NEFT-77" for r in mine)
    # Duebook changes one of the two: the other invoice's line stays in the QBO payment.
    smaller = BookPayment(**{**mine[0].__dict__, "amount": Decimal("400.00")})
    saved = connector.push(tokens.access_token, DEFAULT_REALM, "payment", smaller, "pay-9")
    assert saved.remote_id == mine[0].remote_id and saved.amount == Decimal("400.00")
    stored = books(standin, "Payment")[payment_id]
    assert stored["TotalAmt"] == 1400.0
    assert sorted(line["Amount"] for line in stored["Line"]) == [400.0, 1000.0]


# -- push --------------------------------------------------------------------------------------


def test_a_new_client_is_created_and_the_sdk_reads_it_back(connector, standin, tokens, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the stand-in is plain http
    contact = BookContact(
        remote_id=None,
        name="Tungabhadra Steel Works",
        email="accounts@tungabhadra.in",
        phone="+91 80 4000 1234",
        tax_number=gstin("29", "AAKFT1234E"),
        address=Address(
            line1="12 KIADB Road", city="Ballari", region="29", postal_code="583101", country="IN"
        ),
    )
    saved = connector.push(tokens.access_token, DEFAULT_REALM, "contact", contact, "c-1")
    assert saved.remote_id and saved.version == "0"
    stored = books(standin, "Customer")[saved.remote_id]
    assert stored["GSTIN"] == contact.tax_number and stored["BillAddr"]["City"] == "Ballari"

    fresh = connector.refresh(tokens)
    QuickBooks.api_url_v3 = f"{standin.url}/v3"
    auth = AuthClient(
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        REDIRECT,
        environment=config_for(standin)["QBO_DISCOVERY_URL"],
    )
    try:
        client = QuickBooks(
            auth_client=auth,
            refresh_token=fresh.refresh_token,
            company_id=DEFAULT_REALM,
            minorversion=75,
        )
        read = Customer.get(saved.remote_id, qb=client)
    finally:
        QuickBooks.api_url_v3 = "https://quickbooks.api.intuit.com/v3"
    assert read.DisplayName == "Tungabhadra Steel Works"
    assert read.PrimaryEmailAddr.Address == "accounts@tungabhadra.in"
    assert read.BillAddr.PostalCode == "583101"


def test_an_update_sends_the_sync_token_and_a_stale_one_is_retried_once(connector, standin, tokens):
    access = tokens.access_token
    sahyadri = connector.find(access, DEFAULT_REALM, "contact", "Sahyadri Textiles LLP")
    assert sahyadri.version == "0"
    # The accountant changes the customer in QuickBooks meanwhile: our SyncToken goes stale.
    httpx.post(
        f"{standin.url}/_standin/books/{DEFAULT_REALM}/customer/{sahyadri.remote_id}",
        json={"Notes": "Call before delivery"},
    )
    changed = BookContact(**{**sahyadri.__dict__, "email": "ar@sahyadri.in"})
    saved = connector.push(access, DEFAULT_REALM, "contact", changed, "c-2")
    assert saved.email == "ar@sahyadri.in" and saved.version == "2"
    stored = books(standin, "Customer")[sahyadri.remote_id]
    assert stored["Notes"] == "Call before delivery"  # sparse: the accountant's note stays
    writes = [e for e in standin.recorded() if e["path"].endswith("/customer")]
    assert [json.loads(e["body"])["SyncToken"] for e in writes] == ["0", "1"]


def test_a_retried_push_with_the_same_key_creates_one_invoice(connector, standin, tokens):
    access = tokens.access_token
    contact = customer_id(standin, "Kaveri Agro Foods Private Limited")
    new = invoice("DB-2026-001", contact, line("1000.00", "18"))
    first = connector.push(access, DEFAULT_REALM, "invoice", new, "inv-41")
    again = connector.push(access, DEFAULT_REALM, "invoice", new, "inv-41")
    assert first.remote_id == again.remote_id
    numbered = [i for i in books(standin, "Invoice").values() if i["DocNumber"] == "DB-2026-001"]
    assert len(numbered) == 1
    found = connector.find(access, DEFAULT_REALM, "invoice", "DB-2026-001")
    assert found.remote_id == first.remote_id and found.total == Decimal("1180.00")
    assert connector.find(access, DEFAULT_REALM, "invoice", "DB-NONE") is None


def test_a_payment_is_applied_to_its_invoice(connector, standin, tokens):
    access = tokens.access_token
    target = connector.find(access, DEFAULT_REALM, "invoice", "QB-1001")
    payment = BookPayment(
        remote_id=None,
        invoice_remote_id=target.remote_id,
        contact_remote_id=None,
        paid_on=date(2026, 12, 1),
        amount=Decimal("47500.00"),
        currency="INR",
        reference="UTR-1",
    )
    saved = connector.push(access, DEFAULT_REALM, "payment", payment, "pay-1")
    assert saved.remote_id.endswith(f":{target.remote_id}")
    assert saved.contact_remote_id == target.contact_remote_id
    after = connector.find(access, DEFAULT_REALM, "invoice", "QB-1001")
    assert after.amount_due == Decimal("100000.00")


def test_refusals_carry_quickbooks_words(connector, standin, tokens):
    access = tokens.access_token
    with pytest.raises(RecordRefused, match="Invalid Reference Id"):
        connector.push(
            access, DEFAULT_REALM, "invoice", invoice("X-1", "999", line("10", "18")), "bad-1"
        )
    duplicate = BookContact(remote_id=None, name="Nilgiri Logistics")
    with pytest.raises(RecordRefused, match="Duplicate Name Exists"):
        connector.push(access, DEFAULT_REALM, "contact", duplicate, "bad-2")
    with pytest.raises(RecordRefused, match="no tax code of 7.00%"):
        connector.push(
            access, DEFAULT_REALM, "invoice", invoice("X-2", "1", line("10", "7")), "bad-3"
        )


# -- errors ------------------------------------------------------------------------------------


def test_a_429_waits_sixty_seconds(connector, standin, tokens):
    httpx.post(f"{standin.url}/_standin/faults", json={"status": 429})
    with pytest.raises(RateLimited) as caught:
        connector.pull(tokens.access_token, DEFAULT_REALM, "contact", None, None)
    assert caught.value.retry_after == 60 and not caught.value.daily
    standin.per_minute = 2
    connector.pull(tokens.access_token, DEFAULT_REALM, "contact", None, None)
    with pytest.raises(RateLimited):
        for _ in range(3):
            connector.pull(tokens.access_token, DEFAULT_REALM, "contact", None, None)


@pytest.mark.parametrize("fault", ["500", "timeout", "truncated"])
def test_an_unusable_answer_fails_the_page(connector, standin, tokens, monkeypatch, fault):
    if fault == "500":
        httpx.post(f"{standin.url}/_standin/faults", json={"status": 500})
    elif fault == "timeout":
        monkeypatch.setattr(qbo_module, "TIMEOUT", httpx.Timeout(0.3))
        httpx.post(f"{standin.url}/_standin/delay", json={"seconds": 1.0})
    else:
        httpx.post(f"{standin.url}/_standin/malformed", json={"count": 1})
    with pytest.raises(ProviderUnavailable):
        connector.pull(tokens.access_token, DEFAULT_REALM, "invoice", None, None)
    page = connector.pull(tokens.access_token, DEFAULT_REALM, "invoice", None, None)
    assert len(page.records) == 10  # the next try reads the page


# -- webhooks ----------------------------------------------------------------------------------

VECTOR_BODY = (
    b'[{"specversion":"1.0","id":"x","type":"qbo.invoice.created.v1",'
    b'"intuitentityid":"95","intuitaccountid":"310687"}]'
)
VECTOR_SIGNATURE = "j+2EYH8NmBw/rph0jGIJ+S/m1dQpsCoyWXEh1Z+bRIE="


def test_the_reference_signature_is_accepted_and_a_flipped_byte_refused(connector):
    [notice] = connector.read_webhook(
        VECTOR_BODY, {"intuit-signature": VECTOR_SIGNATURE}, "verifier"
    )
    assert (notice.book_id, notice.entity, notice.remote_id) == ("310687", "invoice", "95")
    tampered = VECTOR_BODY.replace(b'"95"', b'"96"')
    with pytest.raises(WebhookRefused):
        connector.read_webhook(tampered, {"intuit-signature": VECTOR_SIGNATURE}, "verifier")


def test_legacy_and_cloudevents_deliveries_give_the_same_notices(connector, standin):
    changes = [
        (DEFAULT_REALM, "Customer", "7", "Update"),
        ("4620816365", "Invoice", "12", "Create"),
        (DEFAULT_REALM, "Item", "3", "Create"),
    ]
    standin.clock = lambda: 1_764_000_000.123  # one change, told in both formats
    seen = []
    for fmt in ("legacy", "cloudevents"):
        body = standin.webhook_body(changes, fmt)
        headers = {"intuit-signature": qbo_module.signature(body, standin.verifier_token)}
        seen.append(connector.read_webhook(body, headers, standin.verifier_token))
    assert seen[0] == seen[1]
    assert [(n.book_id, n.entity, n.remote_id) for n in seen[0]] == [
        (DEFAULT_REALM, "contact", "7"),
        ("4620816365", "invoice", "12"),
    ]


# -- tax ---------------------------------------------------------------------------------------


def test_india_intra_state_is_cgst_and_sgst_inter_state_igst(connector, standin, tokens):
    access = tokens.access_token
    kaveri = customer_id(standin, "Kaveri Agro Foods Private Limited")
    within = connector.push(
        access,
        DEFAULT_REALM,
        "invoice",
        invoice("DB-IN-1", kaveri, line("1000.00", "18"), place="29"),
        "t-1",
    )
    across = connector.push(
        access,
        DEFAULT_REALM,
        "invoice",
        invoice("DB-IN-2", kaveri, line("1000.00", "18"), place="27"),
        "t-2",
    )
    stored = books(standin, "Invoice")
    codes = books(standin, "TaxCode")
    rates = books(standin, "TaxRate")

    def tax_lines(record):
        item = stored[record.remote_id]
        code = item["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"]["value"]
        lines = item["TxnTaxDetail"]["TaxLine"]
        return codes[code]["Name"], sorted(
            (rates[t["TaxLineDetail"]["TaxRateRef"]["value"]]["Name"], t["Amount"]) for t in lines
        )

    assert tax_lines(within) == ("GST 18%", [("CGST 9%", 90.0), ("SGST 9%", 90.0)])
    assert tax_lines(across) == ("IGST 18%", [("IGST 18%", 180.0)])
    for record, place in ((within, "29"), (across, "27")):
        assert record.place_of_supply == place
        assert record.lines[0].tax_rate == Decimal("18.00") and record.tax_total == Decimal(
            "180.00"
        )
        assert record.total == Decimal("1180.00")


def test_australia_abn_and_ten_percent_gst_both_ways(standin):
    standin.add_company(
        AU_REALM, "Harbour Supplies Pty Ltd", country="AU", state="NSW", city="Sydney"
    )
    connector = QuickBooksConnector(settings={}, secrets={}, config=config_for(standin))
    callback = consent(connector, standin, realm=AU_REALM)
    access = connector.exchange_code(callback["code"], REDIRECT, "", callback).access_token
    contact = BookContact(
        remote_id=None,
        name="Bondi Cafe Co",
        tax_number="53004085616",
        currency="AUD",
        address=Address(city="Sydney", region="NSW", country="AU"),
    )
    saved = connector.push(access, AU_REALM, "contact", contact, "au-1")
    assert saved.tax_number == "53004085616"
    assert books(standin, "Customer", AU_REALM)[saved.remote_id]["BusinessNumber"] == "53004085616"
    bill = invoice("AU-1", saved.remote_id, line("200.00", "10"), place=None, currency="AUD")
    pushed = connector.push(access, AU_REALM, "invoice", bill, "au-2")
    assert pushed.tax_total == Decimal("20.00") and pushed.total == Decimal("220.00")
    [read] = connector.pull(access, AU_REALM, "invoice", None, None).records
    assert read.lines[0].tax_rate == Decimal("10.00") and read.currency == "AUD"
