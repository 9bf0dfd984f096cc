"""The QuickBooks stand-in keeps QuickBooks Online's published contract: Intuit's OAuth as
intuit-oauth (Intuit's own client) speaks it, answers that Intuit's XSDs allow
(tests/quickbooks_contract.py), the query language, CDC's limits, SyncToken and requestid,
the 500-a-minute limit, signed webhooks python-quickbooks accepts, and the demo books."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.objects.customer import Customer
from stdnum.in_ import gstin as gstin_check

from app.integrations.connectors.quickbooks import QuickBooksConnector
from app.sandbox.providers import STANDIN_MORE_SETTINGS, standin_arguments
from app.sandbox.standins import STANDINS
from app.sandbox.standins.__main__ import _parser, build
from app.sandbox.standins.quickbooks import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REALM,
    QuickBooksStandin,
)
from tests.quickbooks_contract import check_answer, check_entity
from tests.test_standins import Receiver

REDIRECT = "http://127.0.0.1:5000/sync/callback"
OTHER_REALM = "9130350000000007"


@pytest.fixture
def standin():
    with QuickBooksStandin(seed="demo") as server:
        yield server


@pytest.fixture
def api(standin):
    """An httpx client holding a valid access token of the demo company; every JSON answer it
    gets is checked against Intuit's XSDs."""
    access = token_for(standin, DEFAULT_REALM)["access_token"]

    def checked(answer: httpx.Response):
        if answer.headers.get("content-type", "").startswith("application/json"):
            check_answer(answer.json())

    with httpx.Client(
        base_url=f"{standin.url}/v3/company/{DEFAULT_REALM}",
        headers={"Authorization": f"Bearer {access}", "Accept": "application/json"},
        params={"minorversion": "75"},
        event_hooks={"response": [lambda r: r.read() and checked(r)]},
    ) as client:
        yield client


def token_for(standin, realm: str) -> dict:
    code = allow(standin, realm)["code"]
    answer = httpx.post(
        f"{standin.url}/oauth2/v1/tokens/bearer",
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def allow(standin, realm: str, state: str = "st") -> dict:
    form = {"client_id": DEFAULT_CLIENT_ID, "redirect_uri": REDIRECT, "state": state}
    answer = httpx.post(f"{standin.url}/connect/oauth2/allow", data={**form, "realm": realm})
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return {key: values[0] for key, values in parse_qs(location.query).items()}


def auth_client(standin) -> AuthClient:
    discovery = f"{standin.url}/.well-known/openid_configuration"
    return AuthClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, REDIRECT, environment=discovery)


# -- OAuth -------------------------------------------------------------------------------------


def test_intuits_oauth_client_connects_refreshes_and_is_refused_a_used_token(standin):
    client = auth_client(standin)
    url = urlsplit(client.get_authorization_url([Scopes.ACCOUNTING], state_token="abc"))
    page = httpx.get(f"{standin.url}{url.path}?{url.query}")
    assert page.status_code == 200 and "Allow access" in page.text
    callback = allow(standin, DEFAULT_REALM, "abc")
    assert callback["state"] == "abc" and callback["realmId"] == DEFAULT_REALM
    client.get_bearer_token(callback["code"], realm_id=callback["realmId"])
    first = client.refresh_token
    assert client.access_token and client.expires_in == 3600
    assert client.x_refresh_token_expires_in == 100 * 24 * 3600
    client.refresh()
    assert client.refresh_token != first
    with pytest.raises(AuthClientError) as refused:
        client.refresh(refresh_token=first)
    assert refused.value.status_code == 400 and b"invalid_grant" in refused.value.content
    with pytest.raises(AuthClientError):  # a code works once
        client.get_bearer_token(callback["code"])


def test_the_token_endpoint_checks_the_app_credentials(standin):
    code = allow(standin, DEFAULT_REALM)["code"]
    answer = httpx.post(
        f"{standin.url}/oauth2/v1/tokens/bearer",
        auth=(DEFAULT_CLIENT_ID, "not-the-secret"),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
    )
    assert answer.status_code == 401 and answer.json() == {"error": "invalid_client"}


def test_the_consent_page_lets_a_person_pick_the_company(standin):
    standin.add_company(OTHER_REALM, "Konkan Exports & Co")
    query = {
        "client_id": DEFAULT_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "state": "s",
        "scope": "com.intuit.quickbooks.accounting",
    }
    page = httpx.get(f"{standin.url}/connect/oauth2", params=query).text
    assert "Demo Traders Private Limited" in page and "Konkan Exports &amp; Co" in page
    assert f'value="{OTHER_REALM}"' in page and "<script" not in page
    assert allow(standin, OTHER_REALM)["realmId"] == OTHER_REALM
    unknown = httpx.get(f"{standin.url}/connect/oauth2", params={**query, "client_id": "x"})
    assert unknown.status_code == 400


def test_a_token_reads_only_its_own_company(standin):
    standin.add_company(OTHER_REALM, "Konkan Exports")
    access = token_for(standin, OTHER_REALM)["access_token"]
    answer = httpx.get(
        f"{standin.url}/v3/company/{DEFAULT_REALM}/companyinfo/{DEFAULT_REALM}",
        headers={"Authorization": f"Bearer {access}"},
    )
    assert answer.status_code == 401
    assert answer.json()["Fault"]["type"] == "AuthenticationFault"


# -- query, CDC, writes ------------------------------------------------------------------------


def test_the_query_language_in_both_forms(api):
    statement = "select * from Invoice where DocNumber = 'QB-1003'"
    by_get = api.get("/query", params={"query": statement}).json()["QueryResponse"]
    by_post = api.post(
        "/query", content=statement, headers={"Content-Type": "application/text"}
    ).json()["QueryResponse"]
    assert by_get == by_post and [i["DocNumber"] for i in by_get["Invoice"]] == ["QB-1003"]
    count = api.get("/query", params={"query": "SELECT COUNT(*) FROM Invoice"}).json()
    assert count["QueryResponse"] == {"totalCount": 10}
    paged = api.get(
        "/query",
        params={"query": "select * from Invoice ORDERBY Id STARTPOSITION 9 MAXRESULTS 5"},
    ).json()["QueryResponse"]
    assert (paged["startPosition"], paged["maxResults"], len(paged["Invoice"])) == (9, 2, 2)
    liked = api.get(
        "/query", params={"query": "select * from Customer where DisplayName like 'Nil%'"}
    ).json()["QueryResponse"]["Customer"]
    assert [c["DisplayName"] for c in liked] == ["Nilgiri Logistics"]
    nothing = api.get("/query", params={"query": "select * from Invoice where Id = '999'"})
    assert nothing.json()["QueryResponse"] == {}
    broken = api.get("/query", params={"query": "select from where"})
    assert broken.status_code == 400 and broken.json()["Fault"]["Error"][0]["code"] == "4000"


def test_inactive_customers_show_only_when_asked(standin, api):
    httpx.delete(f"{standin.url}/_standin/books/{DEFAULT_REALM}/customer/6")
    httpx.post(f"{standin.url}/_standin/books/{DEFAULT_REALM}/customer/5", json={"Active": False})
    active = api.get("/query", params={"query": "select * from Customer"}).json()
    every = api.get(
        "/query", params={"query": "select * from Customer where Active in (true, false)"}
    ).json()
    assert len(active["QueryResponse"]["Customer"]) == 4
    assert len(every["QueryResponse"]["Customer"]) == 5


def test_cdc_looks_back_thirty_days_and_stops_at_a_thousand(standin, api):
    old = (datetime.now(UTC) - timedelta(days=31)).isoformat()
    refused = api.get("/cdc", params={"entities": "Customer", "changedSince": old})
    assert refused.status_code == 400 and "30 days" in refused.json()["Fault"]["Error"][0]["Detail"]
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    standin.seed_bulk(DEFAULT_REALM, 1100, 0)
    httpx.delete(f"{standin.url}/_standin/books/{DEFAULT_REALM}/invoice/7")
    answer = api.get("/cdc", params={"entities": "Invoice,Customer", "changedSince": since})
    [invoices, customers] = [r["QueryResponse"][0] for r in answer.json()["CDCResponse"]]
    assert len(invoices["Invoice"]) == 9 + 1
    assert {"Id": "7", "status": "Deleted"}.items() <= invoices["Invoice"][-1].items()
    assert len(customers["Customer"]) == 1000 - 10


def test_sync_tokens_and_request_ids(standin, api):
    body = {"DisplayName": "Hampi Stoneware", "PrimaryEmailAddr": {"Address": "a@hampi.in"}}
    first = api.post("/customer", params={"requestid": "r-1"}, json=body).json()["Customer"]
    again = api.post("/customer", params={"requestid": "r-1"}, json=body).json()["Customer"]
    assert first == again and standin.stats()["duplicate_keys"] == 1
    update = {"Id": first["Id"], "SyncToken": "0", "sparse": True, "Notes": "Net 30"}
    changed = api.post("/customer", params={"requestid": "r-2"}, json=update).json()["Customer"]
    assert changed["SyncToken"] == "1" and changed["DisplayName"] == "Hampi Stoneware"
    stale = api.post("/customer", params={"requestid": "r-3"}, json=update)
    assert stale.status_code == 400 and stale.json()["Fault"]["Error"][0]["code"] == "5010"
    missing = api.post("/customer", json={"PrimaryEmailAddr": {"Address": "x@y.in"}})
    assert missing.json()["Fault"]["Error"][0]["code"] == "2020"


def test_payments_lower_the_invoice_balance_and_void_zeroes_it(standin, api):
    invoice = api.get("/invoice/7").json()["Invoice"]
    total = invoice["TotalAmt"]
    payment = {
        "TotalAmt": 100.0,
        "CustomerRef": invoice["CustomerRef"],
        "Line": [{"Amount": 100.0, "LinkedTxn": [{"TxnId": "7", "TxnType": "Invoice"}]}],
    }
    api.post("/payment", json=payment)
    assert api.get("/invoice/7").json()["Invoice"]["Balance"] == total - 100
    token = api.get("/invoice/8").json()["Invoice"]["SyncToken"]
    voided = api.post(
        "/invoice",
        params={"operation": "void"},
        json={"Id": "8", "SyncToken": token, "sparse": True},
    ).json()["Invoice"]
    assert voided["TotalAmt"] == 0 and voided["PrivateNote"] == "Voided"


def test_five_hundred_a_minute_per_company(standin, api):
    standin.per_minute = 3
    for _ in range(3):
        assert api.get(f"/companyinfo/{DEFAULT_REALM}").status_code == 200
    throttled = api.get(f"/companyinfo/{DEFAULT_REALM}")
    assert throttled.status_code == 429
    assert throttled.json()["Fault"]["type"] == "ThrottleExceeded"
    standin.add_company(OTHER_REALM, "Konkan Exports")
    other = token_for(standin, OTHER_REALM)["access_token"]
    answer = httpx.get(
        f"{standin.url}/v3/company/{OTHER_REALM}/companyinfo/{OTHER_REALM}",
        headers={"Authorization": f"Bearer {other}"},
    )
    assert answer.status_code == 200  # each company has its own minute


def test_the_sdk_writes_what_the_connector_reads(standin, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the stand-in is plain http
    monkeypatch.setattr(QuickBooks, "api_url_v3", f"{standin.url}/v3")
    client = auth_client(standin)
    callback = allow(standin, DEFAULT_REALM)
    client.get_bearer_token(callback["code"], realm_id=DEFAULT_REALM)
    qb = QuickBooks(
        auth_client=client,
        refresh_token=client.refresh_token,
        company_id=DEFAULT_REALM,
        minorversion=75,
    )
    customer = Customer()
    customer.DisplayName = "Tunga Agencies"
    customer.GSTIN = "29AAGFT0519M1ZK"
    customer.save(qb=qb, request_id="sdk-1")
    config = {
        "QBO_API_BASE": standin.url,
        "QBO_DISCOVERY_URL": f"{standin.url}/.well-known/openid_configuration",
        "QBO_CLIENT_ID": DEFAULT_CLIENT_ID,
        "QBO_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
    }
    connector = QuickBooksConnector(settings={}, secrets={}, config=config)
    found = connector.find(client.access_token, DEFAULT_REALM, "contact", "Tunga Agencies")
    assert found.remote_id == str(customer.Id) and found.tax_number == "29AAGFT0519M1ZK"


# -- faults, webhooks, demo books ---------------------------------------------------------------


def test_faults_revocation_and_truncation(standin, api):
    httpx.post(f"{standin.url}/_standin/faults", json={"status": 500})
    assert api.get(f"/companyinfo/{DEFAULT_REALM}").status_code == 500
    httpx.post(f"{standin.url}/_standin/malformed", json={"count": 1})
    with pytest.raises(json.JSONDecodeError):
        json.loads(api.get("/invoice/7", extensions={}).content)
    httpx.post(f"{standin.url}/_standin/revoke")
    assert api.get(f"/companyinfo/{DEFAULT_REALM}").status_code == 401


@pytest.mark.parametrize("fmt", ["cloudevents", "legacy"])
def test_changes_are_sent_as_signed_webhooks(fmt):
    receiver = Receiver()
    try:
        with QuickBooksStandin(
            seed="demo", webhook_url=receiver.url, webhook_format=fmt, verifier_token="v-tok"
        ) as standin:
            httpx.post(
                f"{standin.url}/_standin/books/{DEFAULT_REALM}/invoice/7",
                json={"DueDate": "2027-02-01"},
            )
            [call] = receiver.wait_for(1)
    finally:
        receiver.close()
    body = call["body"]
    signature = {k.lower(): v for k, v in call["headers"].items()}["intuit-signature"]
    assert QuickBooks(minorversion=75).validate_webhook_signature(body.decode(), signature, "v-tok")
    assert not QuickBooks(minorversion=75).validate_webhook_signature(
        body.decode(), signature, "other"
    )
    data = json.loads(body)
    if fmt == "legacy":
        [change] = data["eventNotifications"][0]["dataChangeEvent"]["entities"]
        assert (change["name"], change["id"], change["operation"]) == ("Invoice", "7", "Update")
    else:
        [event] = data
        assert (event["type"], event["intuitentityid"], event["intuitaccountid"]) == (
            "qbo.invoice.updated.v1",
            "7",
            DEFAULT_REALM,
        )


def test_the_demo_books_are_an_indian_smes(standin):
    books = httpx.get(f"{standin.url}/_standin/books/{DEFAULT_REALM}").json()
    customers = {c["DisplayName"]: c for c in books["Customer"].values()}
    assert len(customers) == 6
    assert customers["Sahyadri Textiles LLP"]["BillAddr"]["CountrySubDivisionCode"] == "27"
    assert customers["Nilgiri Logistics"]["BillAddr"]["City"] == "Coimbatore"
    assert all(gstin_check.is_valid(c["GSTIN"]) for c in customers.values())
    assert all(c["PrimaryEmailAddr"]["Address"] for c in customers.values())
    invoices = list(books["Invoice"].values())
    assert len(invoices) == 10 and len(books["Payment"]) == 4 and len(books["CreditMemo"]) == 1
    codes = {
        books["TaxCode"][i["Line"][0]["SalesItemLineDetail"]["TaxCodeRef"]["value"]]["Name"]
        for i in invoices
    }
    assert {"GST 18%", "IGST 18%", "GST 5%", "IGST 5%"} <= codes
    states = {
        "void"
        if i.get("PrivateNote") == "Voided"
        else "paid"
        if i["Balance"] == 0
        else "partly"
        if i["Balance"] < i["TotalAmt"]
        else "open"
        for i in invoices
    }
    assert states == {"void", "paid", "partly", "open"}
    assert all(i["CurrencyRef"]["value"] == "INR" for i in invoices)
    for name in ("Customer", "Invoice", "CreditMemo", "Payment", "TaxCode", "TaxRate"):
        for item in books[name].values():
            check_entity(name, item)


def test_it_runs_as_a_process_and_in_make_run():
    assert STANDINS["quickbooks"] is QuickBooksStandin
    args = _parser().parse_args(
        [
            "quickbooks",
            "--seed",
            "demo",
            "--customers",
            "3",
            "--invoices",
            "4",
            "--per-minute",
            "50",
        ]
    )
    standin = build(args)
    try:
        assert standin.per_minute == 50
        invoices = standin.companies[DEFAULT_REALM]["books"]["Invoice"]
        assert len(invoices) == 10 + 4
    finally:
        standin.stop()
    entry = next(e for e in standin_arguments("http://127.0.0.1:5000") if e[0] == "quickbooks")
    assert entry == (
        "quickbooks",
        "QBO_API_BASE",
        ["--seed", "demo", "--webhook-url", "http://127.0.0.1:5000/hooks/accounting/quickbooks"],
    )
    assert STANDIN_MORE_SETTINGS["quickbooks"] == [
        ("QBO_DISCOVERY_URL", "/.well-known/openid_configuration")
    ]
