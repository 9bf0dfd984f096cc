"""The Xero stand-in keeps Xero's contract (tests/contracts/xero): its demo books, its limits and
headers, its tenant and token checks, idempotent replays, paging, and the process `make run`
starts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from stdnum import exceptions as stdnum_errors

from app.core.tax_ids import validate_gstin
from app.integrations.connectors.xero import XeroConnector, XeroWebhookRefused
from app.sandbox.standins.xero import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_WEBHOOK_KEY,
    XeroStandin,
)
from tests.contract_openapi import xero_documents

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTING = xero_documents()["accounting"]
API = "/api.xro/2.0"


@pytest.fixture
def standin():
    with XeroStandin(seed="demo") as server:
        yield server


def call(standin, method, path, token, tenant=None, **options) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if tenant:
        headers["xero-tenant-id"] = tenant
    headers.update(options.pop("headers", {}))
    answer = httpx.request(method, standin.url + API + path, headers=headers, **options)
    if answer.status_code in (200, 400):
        ACCOUNTING.check_response(method, path, answer.status_code, answer.content)
    return answer


def test_the_demo_books_are_an_indian_smes(standin):
    token = standin.grant_token([standin.demo])["access_token"]
    contacts = call(standin, "GET", "/Contacts", token, standin.demo).json()["Contacts"]
    names = {c["Name"] for c in contacts}
    assert {"Sahyadri Textiles LLP", "Nilgiri Logistics"} <= names and len(names) == 6
    for contact in contacts:
        validate_gstin(contact["TaxNumber"])  # raises unless checksum-valid
        assert "@" in contact["EmailAddress"]
    states = {c["Name"]: c["TaxNumber"][:2] for c in contacts}
    assert states["Sahyadri Textiles LLP"] == "27" and states["Nilgiri Logistics"] == "33"
    invoices = call(standin, "GET", "/Invoices", token, standin.demo).json()["Invoices"]
    assert len(invoices) == 10
    statuses = [i["Status"] for i in invoices]
    assert {"AUTHORISED", "PAID", "DRAFT", "VOIDED"} <= set(statuses)
    part_paid = [i for i in invoices if i["Status"] == "AUTHORISED" and i["AmountPaid"] > 0]
    assert part_paid
    today_ms = int(date.today().strftime("%s")) * 1000
    overdue = [
        i for i in invoices if i["Status"] == "AUTHORISED" and int(i["DueDate"][6:-7]) < today_ms
    ]
    assert overdue
    tax_types = {line["TaxType"] for i in invoices for line in i["LineItems"]}
    assert tax_types & {"TAX001", "TAX003", "TAX005"} and tax_types & {"TAX002", "TAX004", "TAX006"}
    assert {i["CurrencyCode"] for i in invoices} == {"INR"}
    payments = call(standin, "GET", "/Payments", token, standin.demo).json()["Payments"]
    notes = call(standin, "GET", "/CreditNotes", token, standin.demo).json()["CreditNotes"]
    assert len(payments) == 4 and len(notes) == 1
    organisation = call(standin, "GET", "/Organisation", token, standin.demo).json()
    (demo,) = organisation["Organisations"]
    assert (demo["Name"], demo["TaxNumber"], demo["BaseCurrency"]) == (
        "Demo Traders Private Limited",
        "29AAPFU0939F1ZR",
        "INR",
    )


def test_a_bad_gstin_would_be_caught_by_the_demo_check():
    with pytest.raises(stdnum_errors.ValidationError):
        validate_gstin("27AAJFS4821K1ZA")


def test_tokens_and_the_tenant_header_are_enforced(standin):
    (other,) = [t for t in standin.organisations if t != standin.demo]
    token = standin.grant_token([standin.demo])["access_token"]
    assert call(standin, "GET", "/Contacts", "not-a-token", standin.demo).status_code == 401
    assert call(standin, "GET", "/Contacts", token).status_code == 403
    assert call(standin, "GET", "/Contacts", token, other).status_code == 403
    assert call(standin, "GET", "/Contacts", token, standin.demo).status_code == 200
    standin.revoke()
    assert call(standin, "GET", "/Contacts", token, standin.demo).status_code == 401


def test_limits_answer_429_with_xeros_headers_and_every_answer_counts_down(standin):
    token = standin.grant_token()["access_token"]
    standin.per_minute = 3
    answers = [call(standin, "GET", "/Contacts", token, standin.demo) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-MinLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["X-DayLimit-Remaining"] == "4999"
    assert answers[3].headers["X-Rate-Limit-Problem"] == "minute"
    assert 0 < int(answers[3].headers["Retry-After"]) <= 61
    (other,) = [t for t in standin.organisations if t != standin.demo]
    assert call(standin, "GET", "/Contacts", token, other).status_code == 200  # per organisation
    standin.per_minute, standin.per_day = 60, 3  # the three answered above spent it
    day = call(standin, "GET", "/Contacts", token, standin.demo)
    assert (day.status_code, day.headers["X-Rate-Limit-Problem"]) == (429, "day")


def test_more_than_the_concurrent_limit_at_once_is_refused(standin):
    token = standin.grant_token()["access_token"]
    standin.concurrent = 1
    standin.slow = (1.0, 1)
    first: list[httpx.Response] = []
    waiting = threading.Thread(
        target=lambda: first.append(call(standin, "GET", "/Contacts", token, standin.demo))
    )
    waiting.start()
    while standin.in_flight.get(standin.demo, 0) == 0:
        threading.Event().wait(0.01)
    second = call(standin, "GET", "/Contacts", token, standin.demo)
    waiting.join()
    assert first[0].status_code == 200
    assert (second.status_code, second.headers["X-Rate-Limit-Problem"]) == (429, "concurrent")


def test_if_modified_since_and_pages(standin):
    token = standin.grant_token()["access_token"]
    standin.seed_bulk(standin.demo, 150, 0)
    everything = call(
        standin,
        "GET",
        "/Contacts",
        token,
        standin.demo,
        params={"page": "2", "order": "UpdatedDateUTC ASC"},
    ).json()
    assert everything["pagination"] == {
        "page": 2,
        "pageSize": 100,
        "pageCount": 2,
        "itemCount": 156,
    }
    assert len(everything["Contacts"]) == 56
    bigger = call(
        standin, "GET", "/Contacts", token, standin.demo, params={"page": "1", "pageSize": "200"}
    )
    assert len(bigger.json()["Contacts"]) == 156
    (nilgiri,) = [
        c
        for c in standin.books(standin.demo, "Contacts").values()
        if c["Name"] == "Nilgiri Logistics"
    ]
    since = max(c["UpdatedDateUTC"] for c in standin.books(standin.demo, "Contacts").values())
    standin.edit(
        standin.demo, "contact", nilgiri["ContactID"], {"EmailAddress": "ar@nilgiri.example"}
    )
    changed = call(
        standin,
        "GET",
        "/Contacts",
        token,
        standin.demo,
        headers={"If-Modified-Since": since.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]},
    ).json()["Contacts"]
    assert "ar@nilgiri.example" in [c.get("EmailAddress") for c in changed] and len(changed) <= 2


def test_a_repeated_idempotency_key_replays_and_another_body_is_refused(standin):
    token = standin.grant_token()["access_token"]
    body = {"Contacts": [{"Name": "Bidar Bidriware"}]}
    headers = {"Idempotency-Key": "contact-77"}
    first = call(standin, "PUT", "/Contacts", token, standin.demo, json=body, headers=headers)
    again = call(standin, "PUT", "/Contacts", token, standin.demo, json=body, headers=headers)
    assert first.content == again.content
    named = [
        c
        for c in standin.books(standin.demo, "Contacts").values()
        if c["Name"] == "Bidar Bidriware"
    ]
    assert len(named) == 1
    other = call(
        standin,
        "PUT",
        "/Contacts",
        token,
        standin.demo,
        json={"Contacts": [{"Name": "X"}]},
        headers=headers,
    )
    assert other.status_code == 400
    assert "different request" in other.json()["Elements"][0]["ValidationErrors"][0]["Message"]


def test_write_faults_fail_a_share_of_writes_and_a_retry_with_its_key_writes_once():
    """The fault drill's failing writes: every write fails while the share is 1 (a 429 writes
    nothing, a 500 may come after the write); reads never fail; once the faults stop, the same
    request with the same key leaves each contact in the books once."""
    with XeroStandin(seed="demo", write_faults=1.0) as server:
        token = server.grant_token()["access_token"]
        statuses = set()
        for number in range(12):
            body = {"Contacts": [{"Name": f"Faulty {number}"}]}
            headers = {"Idempotency-Key": f"faulty-{number}"}
            answer = call(
                server, "PUT", "/Contacts", token, server.demo, json=body, headers=headers
            )
            statuses.add(answer.status_code)
            if answer.status_code == 429:
                assert answer.headers["Retry-After"] == "1"
        assert statuses == {429, 500}
        assert call(server, "GET", "/Contacts", token, server.demo).status_code == 200
        assert server.stats(per_key=False)["write_faults"] == 12
        server.write_faults = 0
        for number in range(12):
            body = {"Contacts": [{"Name": f"Faulty {number}"}]}
            headers = {"Idempotency-Key": f"faulty-{number}"}
            answer = call(
                server, "PUT", "/Contacts", token, server.demo, json=body, headers=headers
            )
            assert answer.status_code == 200
        names = [c["Name"] for c in server.books(server.demo, "Contacts").values()]
        assert sorted(n for n in names if n.startswith("Faulty")) == sorted(
            f"Faulty {number}" for number in range(12)
        )


def test_validation_errors_in_both_of_xeros_forms(standin):
    token = standin.grant_token()["access_token"]
    body = {
        "Invoices": [
            {"Type": "ACCREC", "Contact": {"ContactID": "00000000-0000-0000-0000-000000000000"}}
        ]
    }
    summarized = call(standin, "PUT", "/Invoices", token, standin.demo, json=body)
    assert summarized.status_code == 400
    assert summarized.json()["Type"] == "ValidationException"
    listed = call(
        standin,
        "PUT",
        "/Invoices",
        token,
        standin.demo,
        json=body,
        params={"summarizeErrors": "false"},
    )
    assert listed.status_code == 200
    (refused,) = listed.json()["Invoices"]
    assert refused["HasErrors"] is True
    assert refused["ValidationErrors"] == [
        {"Message": "A Contact must be specified for this type of transaction."}
    ]


def test_amounts_and_dates_are_written_as_xero_writes_them(standin):
    token = standin.grant_token()["access_token"]
    answer = call(
        standin, "GET", "/Invoices", token, standin.demo, params={"InvoiceNumbers": "INV-0004"}
    )
    assert re.search(rb'"Total": ?73160.00[,}]', answer.content)  # a number, never a string
    (invoice,) = answer.json()["Invoices"]
    assert invoice["Date"].startswith("/Date(") and invoice["Date"].endswith("+0000)/")
    assert Decimal(str(invoice["TotalTax"])) == Decimal("11160.00")


def test_the_intent_to_receive_handshake_passes_a_receiver_that_checks_signatures(standin):
    connector = XeroConnector(settings={}, secrets={}, config={})

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                connector.read_webhook(body, dict(self.headers), DEFAULT_WEBHOOK_KEY)
                status = 200
            except XeroWebhookRefused as refused:
                status = refused.status
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        standin.webhook_url = f"http://127.0.0.1:{server.server_address[1]}/hooks/xero"
        answers = httpx.post(standin.url + "/_standin/xero/intent-to-receive").json()
        assert answers == {"signed": 200, "wrongly_signed": 401, "passed": True}
    finally:
        server.shutdown()


def test_make_run_points_all_three_xero_addresses_at_one_seeded_standin(app):
    from app.devserver import sandbox_provider_settings
    from app.sandbox.providers import STANDIN_MORE_SETTINGS, standin_arguments

    (entry,) = [e for e in standin_arguments("http://127.0.0.1:5000") if e[0] == "xero"]
    _, setting, extra = entry
    names = [setting, *(name for name, _ in STANDIN_MORE_SETTINGS["xero"])]
    assert sorted(names) == ["XERO_API_BASE", "XERO_IDENTITY_BASE", "XERO_LOGIN_BASE"]
    assert extra[:2] == ["--seed", "demo"]
    assert extra[-1] == "http://127.0.0.1:5000/hooks/accounting/xero"
    config = app.config
    assert (config["XERO_CLIENT_ID"], config["XERO_CLIENT_SECRET"]) == (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
    )
    # The webhook key has no default (unset, Xero's webhooks are refused); make run gives the
    # app the stand-in's.
    assert config["XERO_WEBHOOK_KEY"] is None
    assert sandbox_provider_settings()["XERO_WEBHOOK_KEY"] == DEFAULT_WEBHOOK_KEY


def test_the_standin_runs_as_a_process_with_bulk_books():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.sandbox.standins",
            "xero",
            "--port",
            "0",
            "--seed-contacts",
            "300",
            "--seed-invoices",
            "1000",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        books = json.loads(httpx.get(url + "/_standin/xero/books", timeout=30).content)
        (organisation,) = books.values()
        assert (len(organisation["Contacts"]), len(organisation["Invoices"])) == (300, 1000)
    finally:
        process.terminate()
        process.wait(10)


def test_make_run_gives_the_app_one_address_for_each_of_xeros_three_bases(tmp_path, monkeypatch):
    from app import devserver
    from app.sandbox.providers import standin_arguments

    only_xero = [e for e in standin_arguments("http://127.0.0.1:5000") if e[0] == "xero"]
    monkeypatch.setattr(devserver, "standin_arguments", lambda web: only_xero)
    providers = devserver.SandboxProviders(tmp_path / "messages", "5000")
    try:
        providers.start(sys.executable, dict(os.environ))
        names = ("XERO_LOGIN_BASE", "XERO_IDENTITY_BASE", "XERO_API_BASE")
        bases = {providers.env[name] for name in names}
        (base,) = bases
        organisation = httpx.get(base + "/_standin/xero/books", timeout=10).json()
        assert "Demo Traders Private Limited" in [o["Name"] for o in organisation.values()]
    finally:
        providers.stop()


def test_where_reads_stored_and_shown_fields(standin):
    token = standin.grant_token()["access_token"]

    def numbers(where: str) -> list[str]:
        params = {"where": where, "order": "InvoiceNumber ASC"}
        answer = call(standin, "GET", "/Invoices", token, standin.demo, params=params)
        return [i["InvoiceNumber"] for i in answer.json()["Invoices"]]

    assert numbers('Contact.Name=="Nilgiri Logistics"') == ["INV-0003", "INV-0010"]
    assert numbers('Status=="VOIDED" && Type=="ACCREC"') == ["INV-0008"]
    assert numbers('Status!="AUTHORISED" AND Status!="PAID"') == ["INV-0007", "INV-0008"]
    customers = call(
        standin, "GET", "/Contacts", token, standin.demo, params={"where": "IsCustomer==true"}
    ).json()["Contacts"]
    assert len(customers) == 6
    bad = call(standin, "GET", "/Invoices", token, standin.demo, params={"where": "Total >> 3"})
    assert bad.status_code == 400


def test_a_person_sees_the_books_and_changes_a_customer_as_the_accountant_would(standin):
    page = httpx.get(standin.url + "/_standin/xero/")
    assert page.status_code == 200 and "INV-0001" in page.text and "Save in Xero" in page.text
    tenant = next(iter(standin.organisations))
    contact_id, contact = next(iter(standin.books(tenant, "Contacts").items()))
    before = contact["UpdatedDateUTC"]
    saved = httpx.post(
        standin.url + "/_standin/xero/contact-email",
        data={"tenant": tenant, "id": contact_id, "email": "accounts@changed.example"},
    )
    assert saved.status_code == 303
    changed = standin.books(tenant, "Contacts")[contact_id]
    assert changed["EmailAddress"] == "accounts@changed.example"
    assert changed["UpdatedDateUTC"] > before  # an incremental pull sees it
    assert "accounts@changed.example" in httpx.get(standin.url + "/_standin/xero/").text
