"""The Zoho Books stand-in keeps Zoho's contract on its own: its accounts server, organisation
checks, envelope and error codes, paging, the per-organisation limit without Retry-After, its
faults, the demo books and the accountant's admin routes. Every answer is held to the schemas
derived from Zoho's official .NET wrapper (tests/zoho_books_contract.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.core.tax_ids import validate_gstin
from app.sandbox.standins.zoho_books import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    ZohoBooksStandin,
)
from tests.zoho_books_contract import check_answer, check_exchanges, check_record, recording

ROOT = Path(__file__).resolve().parents[1]
REDIRECT = "http://127.0.0.1:5000/callback"


@pytest.fixture
def standin():
    with ZohoBooksStandin(seed="demo") as server:
        exchanges = recording(server)
        yield server
        # The requests are the tests' own (some bad on purpose); the answers are Zoho's.
        assert check_exchanges(exchanges, requests=False) == len(exchanges)


@pytest.fixture
def org(standin):
    return next(iter(standin.organisations))


@pytest.fixture
def api(standin, org):
    access, _ = standin.grant(org)
    with httpx.Client(
        base_url=f"{standin.url}/books/v3",
        headers={"Authorization": f"Zoho-oauthtoken {access}"},
        params={"organization_id": org},
    ) as client:
        yield client


def read(response) -> dict:
    return json.loads(response.content, parse_float=Decimal)


# -- accounts server -------------------------------------------------------------------------


def _authorise(standin, client, choose, **extra):
    query = {
        "response_type": "code",
        "client_id": DEFAULT_CLIENT_ID,
        "scope": "ZohoBooks.invoices.ALL",
        "redirect_uri": REDIRECT,
        "state": "xyz",
        "access_type": "offline",
        "prompt": "consent",
        **extra,
    }
    page = client.get(f"{standin.url}/oauth/v2/auth", params=query)
    answer = client.post(
        f"{standin.url}/oauth/v2/auth",
        data={**query, "decision": "allow", "organization_id": choose},
    )
    return page, answer


def test_consent_page_offers_each_organisation_and_redirects_with_the_data_centre(standin, org):
    second = standin.add_organisation("Second Books LLP", "Maharashtra").organization_id
    with httpx.Client() as client:
        page, answer = _authorise(standin, client, second)
    assert "Demo Traders Private Limited" in page.text and "Second Books LLP" in page.text
    assert "ZohoBooks.invoices.ALL" in page.text
    location = urlsplit(answer.headers["location"])
    query = {k: v[-1] for k, v in parse_qs(location.query).items()}
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert query["state"] == "xyz" and query["location"] == "in"
    assert query["accounts-server"] == standin.url
    token = httpx.post(
        f"{standin.url}/oauth/v2/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT,
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },
    ).json()
    assert token["api_domain"] == standin.url and token["expires_in"] == 3600
    organisations = httpx.get(
        f"{standin.url}/books/v3/organizations",
        headers={"Authorization": f"Zoho-oauthtoken {token['access_token']}"},
    ).json()["organizations"]
    # The token reaches the organisation the person picked.
    assert [o["organization_id"] for o in organisations] == [second]


def test_denying_access_sends_the_person_back_with_access_denied(standin):
    with httpx.Client() as client:
        answer = client.post(
            f"{standin.url}/oauth/v2/auth",
            data={
                "response_type": "code",
                "client_id": DEFAULT_CLIENT_ID,
                "redirect_uri": REDIRECT,
                "state": "s",
                "decision": "deny",
            },
        )
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["error"] == ["access_denied"] and "code" not in query


def test_the_token_endpoint_refuses_as_zoho_does(standin, org):
    with httpx.Client() as client:
        _, answer = _authorise(standin, client, org)
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": "wrong",
    }
    token_url = f"{standin.url}/oauth/v2/token"
    assert httpx.post(token_url, data=form).json() == {"error": "invalid_client"}
    other_redirect = {**form, "client_secret": DEFAULT_CLIENT_SECRET, "redirect_uri": "http://x"}
    assert httpx.post(token_url, data=other_redirect).json() == {"error": "invalid_code"}
    # The code is spent by the refused attempt with the wrong redirect too: once only.
    good = {**form, "client_secret": DEFAULT_CLIENT_SECRET}
    assert httpx.post(token_url, data=good).json() == {"error": "invalid_code"}


def test_refresh_answers_a_new_access_token_and_no_new_refresh_token(standin, org):
    _, refresh = standin.grant(org)
    answer = httpx.post(
        f"{standin.url}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },
    ).json()
    assert answer["access_token"] and "refresh_token" not in answer


# -- the API ---------------------------------------------------------------------------------


def test_every_call_needs_a_token_and_an_organisation_it_reaches(standin, org, api):
    assert api.get("/contacts").status_code == 200
    anonymous = httpx.get(f"{standin.url}/books/v3/contacts", params={"organization_id": org})
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, 57)
    other = standin.add_organisation("Not Granted Pvt Ltd").organization_id
    refused = api.get("/contacts", params={"organization_id": other})
    assert refused.status_code == 401 and refused.json()["code"] != 0
    missing = api.get("/contacts", params={"organization_id": ""})
    assert missing.status_code == 401


def test_lists_page_with_page_context_and_are_summaries(api):
    first = read(api.get("/invoices", params={"per_page": 4, "sort_column": "created_time"}))
    assert first["code"] == 0 and first["message"] == "success"
    assert len(first["invoices"]) == 4 and first["page_context"]["has_more_page"] is True
    assert "line_items" not in first["invoices"][0]
    last = read(api.get("/invoices", params={"per_page": 4, "page": 3}))
    assert len(last["invoices"]) == 2 and last["page_context"]["has_more_page"] is False
    one = read(api.get(f"/invoices/{first['invoices'][0]['invoice_id']}"))["invoice"]
    assert one["line_items"] and isinstance(one["total"], Decimal)
    too_many = api.get("/invoices", params={"per_page": 201})
    assert too_many.status_code == 400 and too_many.json()["code"] == 4


def test_the_minute_limit_per_organisation_answers_429_without_retry_after(standin, api):
    standin.per_minute = 3
    for _ in range(3):
        assert api.get("/contacts").status_code == 200
    limited = api.get("/contacts")
    assert limited.status_code == 429 and "retry-after" not in limited.headers
    assert limited.json()["code"] != 0


def test_a_write_without_what_zoho_requires_is_refused_in_its_words(api):
    answer = api.post("/invoices", json={"invoice_number": "X-1", "customer_id": "1"})
    assert answer.status_code == 400
    assert answer.json() == {"code": 1002, "message": "Invalid value passed for customer_id"}
    assert api.post("/contacts", json={}).json()["message"] == "Contact name is required."
    assert api.post("/contacts", content=b"{not json").json()["code"] == 4


def test_faults_garbling_and_revocation(standin, api):
    standin.inject_fault(503)
    assert api.get("/contacts").status_code == 503
    httpx.post(f"{standin.url}/_standin/garble", json={"count": 1})
    cut = api.get("/contacts")
    with pytest.raises(ValueError):
        json.loads(cut.content)
    assert api.get("/contacts").status_code == 200
    httpx.post(f"{standin.url}/_standin/revoke")
    assert api.get("/contacts").json()["code"] == 57


# -- the demo books and the accountant's routes ----------------------------------------------


def test_demo_books_are_an_indian_smes(standin, org):
    books = httpx.get(f"{standin.url}/_standin/books", params={"organization_id": org}).json()
    demo = books[org]
    assert demo["organization"]["name"] == "Demo Traders Private Limited"
    assert demo["organization"]["currency_code"] == "INR"
    contacts = {c["contact_name"]: c for c in demo["contacts"].values()}
    assert len(contacts) == 6
    assert contacts["Sahyadri Textiles LLP"]["place_of_contact"] == "MH"
    assert contacts["Nilgiri Logistics"]["place_of_contact"] == "TN"
    for contact in contacts.values():
        assert contact["email"]
        if contact["gst_no"]:
            validate_gstin(contact["gst_no"])
    statuses = sorted(i["status"] for i in demo["invoices"].values())
    assert statuses == sorted(
        [
            "paid",
            "paid",
            "partially_paid",
            "partially_paid",
            "overdue",
            "overdue",
            "sent",
            "sent",
            "draft",
            "void",
        ]
    )
    taxes = {t["tax_name"][:4] for i in demo["invoices"].values() for t in i["taxes"]}
    assert {"CGST", "SGST", "IGST"} <= taxes
    assert len(demo["customerpayments"]) == 4 and len(demo["creditnotes"]) == 1


def test_an_edit_in_the_books_moves_last_modified_time_and_a_delete_removes(standin, org, api):
    invoice = read(api.get("/invoices", params={"per_page": 1}))["invoices"][0]
    edited = httpx.post(
        f"{standin.url}/_standin/edit",
        json={
            "organization_id": org,
            "entity": "invoices",
            "id": invoice["invoice_id"],
            "changes": {"reference_number": "Changed by the accountant"},
        },
    ).json()
    assert edited["reference_number"] == "Changed by the accountant"
    since = edited["last_modified_time"]
    changed = read(api.get("/invoices", params={"last_modified_time": since}))["invoices"]
    assert invoice["invoice_id"] in {i["invoice_id"] for i in changed}
    httpx.post(
        f"{standin.url}/_standin/delete",
        json={"organization_id": org, "entity": "invoices", "id": invoice["invoice_id"]},
    )
    assert api.get(f"/invoices/{invoice['invoice_id']}").json()["code"] == 1002


def test_bulk_seeding_for_benchmarks(standin):
    answer = httpx.post(f"{standin.url}/_standin/seed", json={"contacts": 30, "invoices": 450})
    seeded = standin.organisations[answer.json()["organization_id"]]
    assert len(seeded.records["contacts"]) == 30 and len(seeded.records["invoices"]) == 450
    assert all(i["status"] == "sent" for i in seeded.records["invoices"].values())


def test_the_contract_refuses_a_private_dialect():
    # The check the stand-in's answers pass is one that can fail.
    with pytest.raises(AssertionError, match="gstin"):
        check_record("contact", {"contact_name": "A", "gstin": "29AACCK6124L1ZA"})
    with pytest.raises(AssertionError, match="not a key"):
        check_answer("/books/v3/contacts", b'{"code":0,"message":"success","customers":[]}')


# -- as a process under make run -------------------------------------------------------------


def test_make_run_points_both_zoho_addresses_at_the_standin():
    from app.sandbox.providers import STANDIN_MORE_SETTINGS, standin_arguments

    (setting,) = [s for name, s, _ in standin_arguments("http://x") if name == "zoho_books"]
    assert setting == "ZOHO_ACCOUNTS_BASE"
    assert STANDIN_MORE_SETTINGS["zoho_books"] == [("ZOHO_API_BASE", "")]


def test_the_standin_runs_as_a_process_with_the_demo_books():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.sandbox.standins",
            "zoho_books",
            "--port",
            "0",
            "--seed",
            "demo",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = process.stdout.readline().decode().strip()
        books = httpx.get(f"{url}/_standin/books").json()
        (demo,) = books.values()
        assert len(demo["invoices"]) == 10
        page = httpx.get(
            f"{url}/oauth/v2/auth",
            params={"response_type": "code", "client_id": DEFAULT_CLIENT_ID, "redirect_uri": "x"},
        )
        assert "Allow access" in page.text
    finally:
        process.terminate()
        process.wait(10)
