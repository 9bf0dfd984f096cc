"""The Zoho Books connector against the Zoho Books stand-in: consent on the account's data
centre, tokens that are not rotated, organisations, paged and incremental pulls, find-first
pushes, Zoho's errors in the engine's words, and India's and Australia's GST both ways. Every
request the connector sends and every answer it reads is held to Zoho's contract (the schemas
derived from Zoho's official .NET wrapper: tests/zoho_books_contract.py). Zoho ships no Python
SDK for Books, so there is no official client to point at the stand-in."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.core.tax_ids import validate_gstin
from app.integrations.connectors import zoho_books
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
from app.integrations.connectors.zoho_books import ZohoBooksConnector
from app.sandbox.standins.zoho_books import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    ZohoBooksStandin,
)
from tests.zoho_books_contract import check_exchanges, recording

REDIRECT = "http://127.0.0.1:5000/integrations/accounting/callback"


class Clock:
    """The stand-in's clock: records changed later are modified later."""

    def __init__(self):
        self.now = datetime(2026, 11, 2, 4, 30, tzinfo=UTC).timestamp()

    def __call__(self):
        return self.now

    def tick(self, seconds=60):
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def standin(clock):
    with ZohoBooksStandin(seed="demo", clock=clock) as server:
        exchanges = recording(server)
        yield server
        # Every request the connector sent and every answer it got, against Zoho's contract.
        check_exchanges(exchanges)


@pytest.fixture
def org(standin):
    return next(iter(standin.organisations))


def connector_for(standin, **settings):
    return ZohoBooksConnector(
        settings=settings,
        secrets={},
        config={
            "ZOHO_CLIENT_ID": DEFAULT_CLIENT_ID,
            "ZOHO_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "ZOHO_ACCOUNTS_BASE": standin.url,
            "ZOHO_API_BASE": standin.url,
        },
    )


@pytest.fixture
def books(standin, org):
    """(connector, access token) reaching the demo organisation."""
    access, refresh = standin.grant(org)
    connector = connector_for(standin, data_centre="in")
    connector.tokens = TokenSet(access, refresh, datetime.now(UTC), {"api_domain": standin.url})
    return connector, access


def pull_all(connector, access, org, entity, since=None):
    records, unreadable, cursor, marker, pages = [], [], None, None, 0
    while True:
        page = connector.pull(access, org, entity, since, cursor)
        pages += 1
        records += page.records
        unreadable += page.unreadable
        marker = page.marker or marker
        cursor = page.next_cursor
        if cursor is None:
            return records, unreadable, marker, pages


def consent(standin, url, choose=None):
    """A person on the stand-in's consent page: picks the organisation, allows access."""
    with httpx.Client() as browser:
        page = browser.get(url)
        assert page.status_code == 200 and "Allow access" in page.text
        query = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
        form = {**query, "decision": "allow", "organization_id": choose}
        answer = browser.post(f"{standin.url}/oauth/v2/auth", data=form)
    assert answer.status_code == 302
    return {k: v[-1] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}


# -- OAuth -----------------------------------------------------------------------------------


def _connector(**config):
    return ZohoBooksConnector(
        settings=config.pop("settings", {}),
        secrets={},
        config={"ZOHO_CLIENT_ID": "1000.ABC", **config},
    )


@pytest.mark.parametrize(
    ("centre", "server"),
    [
        ("in", "https://accounts.zoho.in"),
        ("com.au", "https://accounts.zoho.com.au"),
        (None, "https://accounts.zoho.com"),
    ],
)
def test_consent_starts_on_the_accounts_server_of_the_connections_data_centre(centre, server):
    settings = {"data_centre": centre} if centre else {}
    url = _connector(settings=settings).authorization_url(REDIRECT, "st4te", "challenge")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{server}/oauth/v2/auth"
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "response_type": "code",
        "client_id": "1000.ABC",
        "scope": "ZohoBooks.contacts.ALL,ZohoBooks.invoices.ALL,ZohoBooks.creditnotes.ALL,"
        "ZohoBooks.customerpayments.ALL,ZohoBooks.settings.READ",
        "redirect_uri": REDIRECT,
        "state": "st4te",
        "access_type": "offline",
        "prompt": "consent",
    }
    # Zoho's web-server flow takes no PKCE: the connector says so and sends no challenge.
    assert ZohoBooksConnector.uses_pkce is False


def test_consent_exchange_keeps_the_accounts_server_and_the_api_domain(standin, org):
    connector = connector_for(standin, data_centre="in")
    callback = consent(standin, connector.authorization_url(REDIRECT, "s1", ""), choose=org)
    assert callback["state"] == "s1" and callback["location"] == "in"
    tokens = connector.exchange_code(callback["code"], REDIRECT, "", callback)
    assert tokens.refresh_token and tokens.access_token
    assert tokens.extra["accounts_server"] == standin.url
    assert tokens.extra["location"] == "in"
    # The stand-in's own address is not a Zoho API domain: the data centre's is kept, and
    # ZOHO_API_BASE (set here) is where the calls go.
    assert tokens.extra["api_domain"] == "https://www.zohoapis.in"
    connector.tokens = tokens
    (book,) = connector.organisations(tokens.access_token, tokens)
    assert (book.remote_id, book.name, book.country, book.currency) == (
        org,
        "Demo Traders Private Limited",
        "IN",
        "INR",
    )
    # A code works once.
    with pytest.raises(TokenRevoked):
        connector.exchange_code(callback["code"], REDIRECT, "", callback)


def test_a_callback_naming_a_foreign_accounts_server_gets_no_client_secret(standin, org):
    connector = connector_for(standin)
    callback = consent(standin, connector.authorization_url(REDIRECT, "s", ""), choose=org)
    forged = {**callback, "accounts-server": "https://accounts.evil.example"}
    with pytest.raises(TokenRevoked, match="not Zoho's"):
        connector.exchange_code(callback["code"], REDIRECT, "", forged)
    # Zoho's own servers are trusted without ZOHO_ACCOUNTS_BASE naming them.
    assert connector._trusted_accounts("https://accounts.zoho.com.au") == (
        "https://accounts.zoho.com.au"
    )


def test_api_domain_is_only_ever_one_of_zohos():
    connector = _connector(settings={"data_centre": "com.au"})
    kept = connector._token_set(
        {"access_token": "a", "api_domain": "https://www.zohoapis.in"}, "r", "x", "in"
    )
    assert kept.extra["api_domain"] == "https://www.zohoapis.in"
    forged = connector._token_set(
        {"access_token": "a", "api_domain": "https://api.evil.example"}, "r", "x", "au"
    )
    assert forged.extra["api_domain"] == "https://www.zohoapis.com.au"
    # Without a stand-in override, calls follow the stored domain (ZB-1: never a fixed .com).
    connector.tokens = kept
    assert connector._api_base() == "https://www.zohoapis.in"


def test_refresh_keeps_the_refresh_token_and_a_revoked_one_needs_reconnecting(standin, org):
    access, refresh = standin.grant(org)
    connector = connector_for(standin)
    old = TokenSet(access, refresh, datetime.now(UTC), {"accounts_server": standin.url})
    fresh = connector.refresh(old)
    assert fresh.refresh_token == refresh  # Zoho does not rotate refresh tokens
    assert fresh.access_token != access
    assert fresh.expires_at > datetime.now(UTC)
    connector.tokens = fresh
    assert connector.organisations(fresh.access_token, fresh)
    standin.revoke()
    with pytest.raises(TokenRevoked, match="invalid_code"):
        connector.refresh(fresh)


def test_a_changed_client_secret_is_a_refused_authorisation(standin, org):
    access, refresh = standin.grant(org)
    connector = connector_for(standin)
    connector.config = {**connector.config, "ZOHO_CLIENT_SECRET": "wrong"}
    with pytest.raises(TokenRevoked, match="invalid_client"):
        connector.refresh(TokenSet(access, refresh, datetime.now(UTC), {}))


def test_the_daily_limit_and_data_centre_settings_are_checked():
    settings, _, errors = ZohoBooksConnector.clean({"data_centre": ".in", "daily_limit": "5,000"})
    assert settings == {"data_centre": "in", "daily_limit": "5000"} and errors == {}
    assert ZohoBooksConnector(settings=settings, secrets={}, config={}).per_day == 5000
    assert ZohoBooksConnector(settings={}, secrets={}, config={}).per_day == 1000
    _, _, errors = ZohoBooksConnector.clean({"data_centre": "moon", "daily_limit": "lots"})
    assert set(errors) == {"data_centre", "daily_limit"}


# -- pull ------------------------------------------------------------------------------------


def test_pull_reads_the_indian_customers_with_gstin_across_pages(books, org):
    connector, access = books
    connector.page_size = 4
    contacts, unreadable, marker, pages = pull_all(connector, access, org, "contact")
    assert pages == 2 and unreadable == []
    by_name = {c.name: c for c in contacts}
    assert len(by_name) == 6
    sahyadri = by_name["Sahyadri Textiles LLP"]
    assert sahyadri.tax_number == "27AAKFS4821M1ZQ"
    validate_gstin(sahyadri.tax_number)
    assert sahyadri.email == "accounts@sahyadritextiles.in"
    assert sahyadri.address.city == "Pune"
    assert by_name["Nilgiri Logistics"].tax_number.startswith("33")
    assert by_name["Ananya Rao"].tax_number is None
    assert marker and all(c.version for c in contacts)


def test_pull_invoices_maps_states_tax_and_place_of_supply(books, org):
    connector, access = books
    invoices, unreadable, _, _ = pull_all(connector, access, org, "invoice")
    assert unreadable == []
    by_number = {i.number: i for i in invoices}
    states = {n: i.state for n, i in by_number.items()}
    assert states["DT-1001"] == "paid"
    assert states["DT-1002"] == "open" and by_number["DT-1002"].amount_due == Decimal("70800.00")
    assert states["DT-1003"] == "open"  # overdue in Zoho: still money owed
    assert states["DT-1006"] == "draft"
    assert states["DT-1007"] == "void"
    intra = by_number["DT-1001"]  # Kaveri Foods, Karnataka to Karnataka: CGST + SGST
    assert intra.place_of_supply == "29"
    assert (intra.subtotal, intra.tax_total, intra.total) == (
        Decimal("50000.00"),
        Decimal("9000.00"),
        Decimal("59000.00"),
    )
    (line,) = intra.lines
    assert (line.tax_rate, line.tax_amount, line.hsn_sac) == (
        Decimal("18"),
        Decimal("9000.00"),
        "5208",
    )
    inter = by_number["DT-1002"]  # Sahyadri Textiles, Maharashtra: IGST
    assert inter.place_of_supply == "27" and inter.tax_total == Decimal("21600.00")
    for invoice in invoices:
        for amount in (invoice.total, invoice.amount_due, invoice.tax_total):
            assert isinstance(amount, Decimal) and amount.as_tuple().exponent == -2


def test_pull_payments_one_record_per_invoice_paid(books, standin, org):
    connector, access = books
    payments, unreadable, _, _ = pull_all(connector, access, org, "payment")
    assert unreadable == [] and len(payments) == 4
    organisation = standin.organisations[org]
    invoice_ids = {
        i["invoice_number"]: i["invoice_id"] for i in organisation.records["invoices"].values()
    }
    paid = {p.invoice_remote_id: p for p in payments}
    assert paid[invoice_ids["DT-1001"]].amount == Decimal("59000.00")
    assert paid[invoice_ids["DT-1002"]].amount == Decimal("70800.00")
    for payment in payments:
        payment_id, invoice_id = payment.remote_id.split(":")
        assert (
            invoice_id == payment.invoice_remote_id
            and payment_id in organisation.records["customerpayments"]
        )
    # A payment that pays two invoices is two records.
    contact = organisation.records["invoices"][invoice_ids["DT-1003"]]["customer_id"]
    both = standin.create(
        organisation,
        "customerpayments",
        {
            "customer_id": contact,
            "amount": Decimal("1000.00"),
            "invoices": [
                {"invoice_id": invoice_ids["DT-1003"], "amount_applied": Decimal("600.00")},
                {"invoice_id": invoice_ids["DT-1010"], "amount_applied": Decimal("400.00")},
            ],
        },
    )
    payments, _, _, _ = pull_all(connector, access, org, "payment")
    split = sorted(p.amount for p in payments if p.remote_id.startswith(both["payment_id"]))
    assert split == [Decimal("400.00"), Decimal("600.00")]


def test_credit_notes_are_read_with_the_invoice_they_credit(books, standin, org):
    connector, access = books
    (note,), _, _, _ = pull_all(connector, access, org, "credit_note")
    organisation = standin.organisations[org]
    dt1008 = next(
        i for i in organisation.records["invoices"].values() if i["invoice_number"] == "DT-1008"
    )
    assert (note.number, note.state, note.invoice_remote_id) == (
        "CN-0001",
        "open",
        dt1008["invoice_id"],
    )
    assert note.total == Decimal("2360.00") and note.reason == "Damaged cartons returned"


def test_incremental_pull_reads_only_what_changed_since_the_marker(books, standin, org, clock):
    connector, access = books
    _, _, first, _ = pull_all(connector, access, org, "invoice")
    organisation = standin.organisations[org]
    one, other = list(organisation.records["invoices"])[:2]
    clock.tick()
    standin.edit(org, "invoices", one, {"reference_number": "PO-77"})
    _, _, second, _ = pull_all(connector, access, org, "invoice", since=first)
    assert second > first
    clock.tick()
    standin.edit(org, "invoices", other, {"reference_number": "PO-78"})
    records, _, third, _ = pull_all(connector, access, org, "invoice", since=second)
    # The filter is "modified at or after": the newest record of the last pass is read again
    # (the engine finds its version unchanged), then what changed since; nothing else.
    assert {r.remote_id: r.reference for r in records} == {one: "PO-77", other: "PO-78"}
    assert third > second
    # Nothing changed since: the marker stays where it is.
    records, _, marker, _ = pull_all(connector, access, org, "invoice", since=third)
    assert [r.remote_id for r in records] == [other] and marker is None


def test_inactive_contacts_read_as_deleted_and_deleted_ones_vanish_from_a_full_refresh(
    books, standin, org
):
    connector, access = books
    organisation = standin.organisations[org]
    ids = list(organisation.records["contacts"])
    standin.edit(org, "contacts", ids[0], {"status": "inactive"})
    standin.delete(org, "contacts", ids[1])
    contacts, _, _, _ = pull_all(connector, access, org, "contact")
    by_id = {c.remote_id: c for c in contacts}
    assert by_id[ids[0]].deleted is True
    assert ids[1] not in by_id  # the engine's full refresh finds it missing
    assert not any(c.deleted for i, c in by_id.items() if i != ids[0])


def test_an_unreadable_record_is_listed_with_its_reason_and_the_rest_is_read(books, standin, org):
    connector, access = books
    organisation = standin.organisations[org]
    contact_ids = list(organisation.records["contacts"])
    standin.edit(org, "contacts", contact_ids[2], {"contact_name": ""})
    invoice_ids = list(organisation.records["invoices"])
    standin.edit(org, "invoices", invoice_ids[3], {"currency_code": "XYZ"})
    contacts, unreadable, _, _ = pull_all(connector, access, org, "contact")
    assert len(contacts) == 5
    assert [(u.remote_id, u.reason) for u in unreadable] == [
        (contact_ids[2], "The contact has no name.")
    ]
    invoices, unreadable, _, _ = pull_all(connector, access, org, "invoice")
    assert len(invoices) == 9
    assert [(u.remote_id, u.reason) for u in unreadable] == [
        (invoice_ids[3], "The currency 'XYZ' is not one Duebook knows.")
    ]


def test_a_record_deleted_between_list_and_read_is_listed_and_the_page_goes_on(books, standin, org):
    connector, access = books
    organisation = standin.organisations[org]
    gone = next(iter(organisation.records["invoices"]))
    handle = standin.handle

    def delete_after_listing(request):
        answer = handle(request)
        if request.path == "/books/v3/invoices" and gone in organisation.records["invoices"]:
            standin.delete(org, "invoices", gone)
        return answer

    standin.handle = delete_after_listing
    page = connector.pull(access, org, "invoice", None, None)
    assert [(u.remote_id, u.reason) for u in page.unreadable] == [
        (gone, "The invoice does not exist.")
    ]
    assert len(page.records) == 9


# -- push ------------------------------------------------------------------------------------


def _contact_id(standin, org, name):
    return next(
        c["contact_id"]
        for c in standin.organisations[org].records["contacts"].values()
        if c["contact_name"] == name
    )


def _invoice(number, contact, place, rate="18", state="open", remote_id=None):
    net = Decimal("10000.00")
    tax = (net * Decimal(rate) / 100).quantize(Decimal("0.01"))
    return BookInvoice(
        remote_id=remote_id,
        number=number,
        contact_remote_id=contact,
        issue_date=datetime(2026, 11, 1).date(),
        due_date=datetime(2026, 12, 1).date(),
        currency="INR",
        state=state,
        lines=(
            BookLine(
                "Dyed cotton fabric",
                Decimal("100"),
                Decimal("100.00"),
                net,
                Decimal(rate),
                tax,
                "5208",
            ),
        ),
        subtotal=net,
        tax_total=tax,
        total=net + tax,
        amount_due=net + tax,
        place_of_supply=place,
    )


def test_push_a_contact_creates_then_updates_it_and_find_looks_it_up(books, standin, org):
    connector, access = books
    new = BookContact(
        remote_id=None,
        name="Tungabhadra Agro Mills",
        email="accounts@tungabhadra.in",
        phone="+918022334455",
        tax_number="29AACCK6124L1ZA",
        address=Address(line1="12 Mill Road", city="Hospet", region="KA", country="IN"),
    )
    created = connector.push(access, org, "contact", new, "key-1")
    assert created.remote_id and created.tax_number == "29AACCK6124L1ZA"
    held = standin.organisations[org].records["contacts"][created.remote_id]
    assert (held["gst_no"], held["place_of_contact"], held["email"]) == (
        "29AACCK6124L1ZA",
        "KA",
        "accounts@tungabhadra.in",
    )
    renamed = BookContact(**{**new.__dict__, "remote_id": created.remote_id, "phone": "+91801"})
    updated = connector.push(access, org, "contact", renamed, "key-2")
    assert updated.remote_id == created.remote_id and updated.phone == "+91801"
    assert connector.find(access, org, "contact", "Tungabhadra Agro Mills").remote_id == (
        created.remote_id
    )
    assert connector.find(access, org, "contact", "Nobody Here") is None


def test_push_invoice_intra_state_is_cgst_and_sgst_and_is_marked_sent(books, standin, org):
    connector, access = books
    kaveri = _contact_id(standin, org, "Kaveri Foods Private Limited")
    pushed = connector.push(access, org, "invoice", _invoice("DB-0001", kaveri, "29"), "k")
    assert pushed.state == "open" and pushed.total == Decimal("11800.00")
    held = standin.organisations[org].records["invoices"][pushed.remote_id]
    assert held["status"] == "sent" and held["place_of_supply"] == "KA"
    assert held["taxes"] == [
        {"tax_name": "CGST9", "tax_amount": Decimal("900.00")},
        {"tax_name": "SGST9", "tax_amount": Decimal("900.00")},
    ]


def test_push_invoice_inter_state_is_igst(books, standin, org):
    connector, access = books
    nilgiri = _contact_id(standin, org, "Nilgiri Logistics")
    pushed = connector.push(access, org, "invoice", _invoice("DB-0002", nilgiri, "33", "12"), "k")
    held = standin.organisations[org].records["invoices"][pushed.remote_id]
    assert held["place_of_supply"] == "TN"
    assert held["taxes"] == [{"tax_name": "IGST12", "tax_amount": Decimal("1200.00")}]
    assert pushed.place_of_supply == "33" and pushed.tax_total == Decimal("1200.00")


def test_a_retried_invoice_push_finds_the_first_and_never_makes_a_second(books, standin, org):
    connector, access = books
    kaveri = _contact_id(standin, org, "Kaveri Foods Private Limited")
    invoice = _invoice("DB-0003", kaveri, "29")
    first = connector.push(access, org, "invoice", invoice, "key-DB-0003")
    # The job died before it saved the remote id; its retry looks first (Zoho has no
    # idempotency key), finds the invoice and updates it instead of creating one.
    found = connector.find(access, org, "invoice", "DB-0003")
    assert found.remote_id == first.remote_id and found.total == first.total
    again = connector.push(
        access, org, "invoice", _invoice("DB-0003", kaveri, "29", remote_id=found.remote_id), "k"
    )
    assert again.remote_id == first.remote_id
    # A create that skipped the look-up is refused by the number, not written twice.
    with pytest.raises(RecordRefused, match="DB-0003 already exists"):
        connector.push(access, org, "invoice", invoice, "key-DB-0003")
    numbers = [i["invoice_number"] for i in standin.organisations[org].records["invoices"].values()]
    assert numbers.count("DB-0003") == 1


def test_push_a_payment_pays_the_invoice_in_the_books(books, standin, org):
    connector, access = books
    kaveri = _contact_id(standin, org, "Kaveri Foods Private Limited")
    invoice = connector.push(access, org, "invoice", _invoice("DB-0004", kaveri, "29"), "k")
    payment = BookPayment(
        remote_id=None,
        invoice_remote_id=invoice.remote_id,
        contact_remote_id=kaveri,
        paid_on=datetime(2026, 11, 2).date(),
        amount=Decimal("5000.00"),
        currency="INR",
        reference="UTR998877",
    )
    pushed = connector.push(access, org, "payment", payment, "pay-1")
    assert pushed.remote_id.endswith(f":{invoice.remote_id}")
    assert pushed.amount == Decimal("5000.00")
    held = standin.organisations[org].records["invoices"][invoice.remote_id]
    assert (held["status"], held["balance"]) == ("partially_paid", Decimal("6800.00"))
    assert connector.find(access, org, "payment", "UTR998877").remote_id == pushed.remote_id


def test_push_a_credit_note_against_an_invoice_opens_it(books, standin, org):
    connector, access = books
    kaveri = _contact_id(standin, org, "Kaveri Foods Private Limited")
    invoice = connector.push(access, org, "invoice", _invoice("DB-0005", kaveri, "29"), "k")
    note = BookCreditNote(
        remote_id=None,
        number="DCN-01",
        contact_remote_id=kaveri,
        issue_date=datetime(2026, 11, 2).date(),
        currency="INR",
        state="open",
        lines=invoice.lines,
        subtotal=invoice.subtotal,
        tax_total=invoice.tax_total,
        total=invoice.total,
        invoice_remote_id=invoice.remote_id,
        reason="Rate difference",
    )
    pushed = connector.push(access, org, "credit_note", note, "cn-1")
    assert (pushed.state, pushed.invoice_remote_id, pushed.total) == (
        "open",
        invoice.remote_id,
        Decimal("11800.00"),
    )


def test_a_refused_record_carries_zohos_words(books, standin, org):
    connector, access = books
    with pytest.raises(RecordRefused, match="Invalid value passed for customer_id"):
        connector.push(access, org, "invoice", _invoice("DB-0006", "404", "29"), "k")
    kaveri = _contact_id(standin, org, "Kaveri Foods Private Limited")
    with pytest.raises(RecordRefused, match=r"no tax of 7%"):
        connector.push(access, org, "invoice", _invoice("DB-0007", kaveri, "29", "7"), "k")


# -- errors ----------------------------------------------------------------------------------


def test_429_is_rate_limited_for_a_minute_without_retry_after(books, standin, org):
    connector, access = books
    standin.per_minute = 2
    connector.pull(access, org, "contact", None, None)
    connector.pull(access, org, "contact", None, None)
    with pytest.raises(RateLimited) as limited:
        connector.pull(access, org, "contact", None, None)
    assert (limited.value.retry_after, limited.value.daily) == (60.0, False)


def test_the_days_quota_spent_is_a_daily_rate_limit(books, standin, org):
    connector, access = books
    standin.per_day = 1
    connector.pull(access, org, "contact", None, None)
    with pytest.raises(RateLimited) as limited:
        connector.pull(access, org, "contact", None, None)
    assert limited.value.daily is True and limited.value.retry_after >= 3600


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_is_provider_unavailable(books, standin, org, status):
    connector, access = books
    standin.inject_fault(status)
    with pytest.raises(ProviderUnavailable):
        connector.pull(access, org, "invoice", None, None)
    assert connector.pull(access, org, "contact", None, None).records  # the next call is fine


def test_a_truncated_answer_is_provider_unavailable(books, standin, org):
    connector, access = books
    with httpx.Client() as admin:
        admin.post(f"{standin.url}/_standin/garble", json={"count": 1})
    with pytest.raises(ProviderUnavailable, match="unreadable"):
        connector.pull(access, org, "contact", None, None)


def test_a_slow_answer_times_out_as_provider_unavailable(books, standin, org, monkeypatch):
    connector, access = books
    monkeypatch.setattr(zoho_books, "TIMEOUT", httpx.Timeout(0.3))
    with httpx.Client() as admin:
        admin.post(f"{standin.url}/_standin/slow", json={"seconds": 1.5})
    with pytest.raises(ProviderUnavailable, match="did not answer"):
        connector.pull(access, org, "contact", None, None)


def test_a_token_revoked_mid_run_needs_reconnecting(books, standin, org):
    connector, access = books
    page = connector.pull(access, org, "contact", None, None)
    assert page.records
    standin.revoke()
    with pytest.raises(TokenRevoked, match="not authorized"):
        connector.pull(access, org, "invoice", None, None)


# -- Australia -------------------------------------------------------------------------------


def test_australia_abn_and_gst_10_percent_both_ways(standin):
    organisation = standin.add_organisation(
        "Harbour Supplies Pty Ltd", "New South Wales", "Australia", "AUD"
    )
    org = organisation.organization_id
    access, _ = standin.grant(org)
    connector = connector_for(standin, data_centre="com.au")
    contact = connector.push(
        access,
        org,
        "contact",
        BookContact(
            remote_id=None, name="Bondi Cafe Pty Ltd", tax_number="51824753556", currency="AUD"
        ),
        "k",
    )
    assert contact.tax_number == "51824753556"
    net = Decimal("250.00")
    invoice = BookInvoice(
        remote_id=None,
        number="AU-0001",
        contact_remote_id=contact.remote_id,
        issue_date=datetime(2026, 11, 2).date(),
        due_date=None,
        currency="AUD",
        state="open",
        lines=(
            BookLine(
                "Coffee beans", Decimal("5"), Decimal("50.00"), net, Decimal("10"), Decimal("25.00")
            ),
        ),
        subtotal=net,
        tax_total=Decimal("25.00"),
        total=Decimal("275.00"),
        amount_due=Decimal("275.00"),
    )
    pushed = connector.push(access, org, "invoice", invoice, "k")
    assert (pushed.tax_total, pushed.total, pushed.currency) == (
        Decimal("25.00"),
        Decimal("275.00"),
        "AUD",
    )
    (line,) = pushed.lines
    assert (line.tax_rate, line.tax_amount) == (Decimal("10"), Decimal("25.00"))
    assert pushed.place_of_supply is None
    held = organisation.records["invoices"][pushed.remote_id]
    assert held["taxes"] == [{"tax_name": "GST", "tax_amount": Decimal("25.00")}]


def test_amounts_go_on_the_wire_as_exact_decimals():
    body = zoho_books.wire_json({"rate": Decimal("0.10"), "n": [Decimal("123456789.01")]})
    assert body == b'{"rate":0.10,"n":[123456789.01]}'
    assert json.loads(body, parse_float=Decimal)["rate"] == Decimal("0.10")
