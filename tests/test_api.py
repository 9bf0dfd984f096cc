"""The public JSON API (/api/v1): keys, problem details, the clients resource through the
clients' own rules, lists, idempotent POSTs, conditional changes, rate limits, and the OpenAPI
document the routes are generated with."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.api import services as api_services
from app.api.models import SCOPES, ApiKey
from app.audit.models import AuditEntry
from app.clients.models import Client
from app.core.events import DomainEvent
from tests.helpers import csrf_token_from, tenant_session

ALL_SCOPES = sorted(SCOPES)


@pytest.fixture
def workspace(make_tenant, make_user):
    owner = make_user(full_name="Owner")
    return make_tenant(owner=owner, name="Kaveri Traders", region="27"), owner


@pytest.fixture
def api_key(db_session, workspace):
    """A live key of `workspace` with the scopes asked for (all by default)."""

    def make(scopes=ALL_SCOPES, tenant=None) -> str:
        tenant_, owner = workspace
        _, secret = api_services.create_key(
            db_session, (tenant or tenant_).id, "Test key", list(scopes), owner.id
        )
        db_session.commit()
        return secret

    return make


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


NEW_CLIENT = {
    "full_name": "Acme Industries Private Limited",
    "short_name": "Acme",
    "location": "local",
    "currency": "INR",
    "payment_terms": "net",
    "payment_days": 30,
}


def test_a_call_without_a_live_key_is_refused_as_a_problem(client, api_key, db_session):
    for headers in ({}, bearer("dbk_live_forged"), {"Authorization": "Basic abc"}):
        response = client.get("/api/v1/clients", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.json["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    secret = api_key()
    assert client.get("/api/v1/clients", headers=bearer(secret)).status_code == 200
    key = db_session.scalar(
        select(ApiKey).where(ApiKey.secret_digest == api_services.secret_digest(secret))
    )
    api_services.revoke_key(db_session, key)
    db_session.commit()
    assert client.get("/api/v1/clients", headers=bearer(secret)).status_code == 401


def test_a_key_does_only_what_its_scopes_allow(client, api_key):
    secret = api_key(["clients:read"])
    assert client.get("/api/v1/clients", headers=bearer(secret)).status_code == 200
    refused = client.post("/api/v1/clients", json=NEW_CLIENT, headers=bearer(secret))
    assert refused.status_code == 403
    assert refused.json["code"] == "insufficient_scope"
    assert client.get("/api/v1/invoices", headers=bearer(secret)).status_code == 403


def test_last_used_is_noted_at_most_once_a_minute(client, api_key, db_session):
    secret = api_key()
    client.get("/api/v1/clients", headers=bearer(secret))
    key = db_session.scalar(
        select(ApiKey).where(ApiKey.secret_digest == api_services.secret_digest(secret))
    )
    db_session.refresh(key)
    first = key.last_used_at
    assert first is not None
    client.get("/api/v1/clients", headers=bearer(secret))
    db_session.refresh(key)
    assert key.last_used_at == first
    key.last_used_at = first - timedelta(minutes=2)
    db_session.commit()
    client.get("/api/v1/clients", headers=bearer(secret))
    db_session.refresh(key)
    assert key.last_used_at > first - timedelta(minutes=2)


def test_creating_a_client_uses_the_pages_rules_and_emits_its_event(
    client, api_key, workspace, db_session
):
    tenant, _ = workspace
    secret = api_key()
    created = client.post("/api/v1/clients", json=NEW_CLIENT, headers=bearer(secret))
    assert created.status_code == 201, created.json
    body = created.json
    assert (body["full_name"], body["country"], body["payment_days"]) == (
        NEW_CLIENT["full_name"],
        "IN",
        30,
    )
    assert created.headers["Location"].endswith(f"/api/v1/clients/{body['id']}")
    session = tenant_session(db_session, tenant)
    event = session.scalar(select(DomainEvent).where(DomainEvent.type == "client.created"))
    assert event.data == {"client_id": body["id"], "name": NEW_CLIENT["short_name"]}

    # The same name again: the page's own message, by field, with a code.
    again = client.post("/api/v1/clients", json=NEW_CLIENT, headers=bearer(secret))
    assert again.status_code == 422
    assert again.mimetype == "application/problem+json"
    errors = {e["field"]: e for e in again.json["errors"]}
    assert errors["full_name"]["code"] == "taken"
    assert errors["full_name"]["message"] == "Another client has this full name."

    wrong = client.post(
        "/api/v1/clients",
        json={
            **NEW_CLIENT,
            "full_name": "Other Co",
            "short_name": "Oth",
            "gstin": "27AAAAA0000A1Z5",
            "colour": "red",
        },
        headers=bearer(secret),
    )
    assert wrong.status_code == 422
    assert {e["field"]: e["code"] for e in wrong.json["errors"]} == {"colour": "unknown_field"}
    bad_gstin = client.post(
        "/api/v1/clients",
        json={
            **NEW_CLIENT,
            "full_name": "Other Co",
            "short_name": "Oth",
            "gstin": "27AAAAA0000A1Z5",
        },
        headers=bearer(secret),
    )
    assert bad_gstin.status_code == 422
    assert [e["field"] for e in bad_gstin.json["errors"]] == ["gstin"]


def test_bad_bodies_and_parameters_get_problems_never_a_500(client, api_key):
    secret = api_key()
    headers = bearer(secret)
    assert client.post("/api/v1/clients", data="not json", headers=headers).status_code == 415
    answer = client.post(
        "/api/v1/clients", data="[1", headers=headers, content_type="application/json"
    )
    assert answer.status_code == 400 and answer.json["code"] == "bad_request"
    missing = client.post("/api/v1/clients", json={}, headers=headers)
    assert {e["field"]: e["code"] for e in missing.json["errors"]} == {
        "full_name": "required",
        "short_name": "required",
        "location": "required",
    }
    unknown = client.get("/api/v1/clients?colour=red", headers=headers)
    assert unknown.status_code == 400
    assert unknown.json["errors"][0] == {
        "field": "colour",
        "code": "unknown_field",
        "message": "This field is not known here.",
    }
    assert (
        client.get("/api/v1/clients?cursor=zzz", headers=headers).json["errors"][0]["code"]
        == "invalid_cursor"
    )
    assert client.get(f"/api/v1/clients/{2**64}", headers=headers).status_code == 404
    nowhere = client.get("/api/v1/nowhere", headers=headers)
    assert (nowhere.status_code, nowhere.mimetype) == (404, "application/problem+json")


def test_lists_filter_sort_page_by_cursor_and_pick_fields(
    client, api_key, workspace, db_session, make_client
):
    tenant, _ = workspace
    session = tenant_session(db_session, tenant)
    made = [make_client(session, name=f"Firm {letter}") for letter in "EDCBA"]
    make_client(session, name="Lead", status="prospect")
    session.commit()
    secret = api_key()
    seen, cursor = [], None
    while True:
        url = "/api/v1/clients?sort=name&limit=2&status=active&fields=full_name"
        page = client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=bearer(secret))
        assert page.status_code == 200, page.json
        assert all(set(item) == {"id", "full_name"} for item in page.json["data"])
        seen += [item["full_name"] for item in page.json["data"]]
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(c.full_name for c in made)
    bad = client.get("/api/v1/clients?fields=secret", headers=bearer(secret))
    assert bad.status_code == 400 and bad.json["errors"][0]["field"] == "fields"


def test_a_post_with_an_idempotency_key_is_done_once(client, api_key, workspace, db_session):
    tenant, _ = workspace
    secret = api_key()
    headers = {**bearer(secret), "Idempotency-Key": "order-42"}
    first = client.post("/api/v1/clients", json=NEW_CLIENT, headers=headers)
    second = client.post("/api/v1/clients", json=NEW_CLIENT, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json == first.json
    assert second.headers["Idempotent-Replayed"] == "true"
    session = tenant_session(db_session, tenant)
    assert len(session.scalars(select(Client)).all()) == 1
    other = client.post(
        "/api/v1/clients", json={**NEW_CLIENT, "short_name": "Acme 2"}, headers=headers
    )
    assert other.status_code == 422 and other.json["code"] == "idempotency_key_reused"


def test_a_change_needs_the_current_etag(client, api_key, workspace, db_session):
    secret = api_key()
    created = client.post("/api/v1/clients", json=NEW_CLIENT, headers=bearer(secret))
    url = f"/api/v1/clients/{created.json['id']}"
    etag = client.get(url, headers=bearer(secret)).headers["ETag"]
    assert etag == created.headers["ETag"]
    change = {"city": "Pune"}
    assert client.patch(url, json=change, headers=bearer(secret)).status_code == 428
    done = client.patch(url, json=change, headers={**bearer(secret), "If-Match": etag})
    assert done.status_code == 200 and done.json["city"] == "Pune"
    session = tenant_session(db_session, workspace[0])
    updated = session.scalar(select(DomainEvent).where(DomainEvent.type == "client.updated"))
    assert updated.data["fields"] == ["city"]
    stale = client.patch(url, json={"city": "Goa"}, headers={**bearer(secret), "If-Match": etag})
    assert stale.status_code == 412 and stale.json["code"] == "precondition_failed"
    assert client.get(url, headers=bearer(secret)).json["city"] == "Pune"
    refused = client.patch(
        url,
        json={"payment_terms": "custom"},
        headers={**bearer(secret), "If-Match": done.headers["ETag"]},
    )
    assert refused.status_code == 422
    assert {e["field"]: e["message"] for e in refused.json["errors"]}.keys() >= {"payment_days"}
    gone = client.delete(url, headers=bearer(secret))
    assert gone.status_code == 204
    assert client.get(url, headers=bearer(secret)).status_code == 404


def test_contacts_are_added_changed_and_removed_by_the_pages_rules(client, api_key):
    secret = api_key()
    made = client.post("/api/v1/clients", json=NEW_CLIENT, headers=bearer(secret)).json
    contacts = f"/api/v1/clients/{made['id']}/contacts"
    refused = client.post(contacts, json={"full_name": "Ravi Kumar"}, headers=bearer(secret))
    assert refused.status_code == 422
    assert refused.json["errors"] == [
        {
            "field": "email",
            "code": "invalid",
            "message": "Give an e-mail address or a phone number.",
        }
    ]
    added = client.post(
        contacts,
        json={"full_name": "Ravi Kumar", "phone": "98123 45678", "roles": ["billing"]},
        headers=bearer(secret),
    )
    assert added.status_code == 201 and added.json["phone"] == "+919812345678"
    url = f"{contacts}/{added.json['id']}"
    changed = client.patch(
        url,
        json={"email": "Ravi@Kaveri.example"},
        headers={**bearer(secret), "If-Match": added.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.json
    assert (changed.json["email"], changed.json["phone"], changed.json["roles"]) == (
        "Ravi@kaveri.example",
        "+919812345678",
        ["billing"],
    )
    stale = client.patch(
        url,
        json={"job_title": "CFO"},
        headers={**bearer(secret), "If-Match": added.headers["ETag"]},
    )
    assert stale.status_code == 412
    listed = client.get(f"/api/v1/clients/{made['id']}", headers=bearer(secret)).json
    assert [c["email"] for c in listed["contacts"]] == ["Ravi@kaveri.example"]
    assert client.delete(url, headers=bearer(secret)).status_code == 204
    assert (
        client.get(f"/api/v1/clients/{made['id']}", headers=bearer(secret)).json["contacts"] == []
    )


def test_invoices_payments_and_events_read_as_money_strings(
    client, api_key, workspace, db_session, make_client, make_invoice, make_payment
):
    tenant, _ = workspace
    session = tenant_session(db_session, tenant)
    buyer = make_client(session)
    invoice = make_invoice(session, tenant, buyer, ("1000.00", "250.50"))
    make_payment(session, buyer, "400.00", allocate_to=[invoice])
    session.commit()
    secret = api_key()
    got = client.get(f"/api/v1/invoices/{invoice.id}", headers=bearer(secret)).json
    assert (got["total"], got["amount_due"], got["currency"]) == ("1250.50", "850.50", "INR")
    assert [line["unit_price"] for line in got["lines"]] == ["1000.00", "250.50"]
    listed = client.get(f"/api/v1/payments?client_id={buyer.id}", headers=bearer(secret)).json
    assert listed["data"][0]["allocations"] == [
        {
            "invoice_id": invoice.id,
            "amount": "400.00",
            "tds_amount": "0.00",
            "interest_amount": "0.00",
        }
    ]
    events = client.get("/api/v1/events?type=invoice.issued", headers=bearer(secret)).json
    assert [(e["subject_id"], e["version"]) for e in events["data"]] == [(invoice.id, 1)]
    pdf = client.get(f"/api/v1/invoices/{invoice.id}/pdf", headers=bearer(secret))
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")


def test_a_key_over_its_rate_limit_is_told_when_to_come_back(app, client, api_key):
    secret = api_key()
    usual, app.config["API_RATE_LIMIT"] = app.config["API_RATE_LIMIT"], "2 per minute"
    try:
        answers = [client.get("/api/v1/clients", headers=bearer(secret)) for _ in range(3)]
    finally:
        app.config["API_RATE_LIMIT"] = usual
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json["code"] == "rate_limited"
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
    other = api_key()
    assert client.get("/api/v1/clients", headers=bearer(other)).status_code == 200


def test_the_openapi_document_is_generated_from_the_routes(app, client):
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"] == "3.1.0"
    routes = {
        (method.lower(), rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in ("api", "api_oauth")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {
        (method, "/api/v1" + path.removeprefix("/api/v1").replace("{", "<int:").replace("}", ">"))
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert documented == routes
    new_client = document["components"]["schemas"]["NewClient"]
    assert new_client["additionalProperties"] is False
    assert set(new_client["required"]) == {"full_name", "short_name", "location"}
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    assert "<script>" not in page.text


def test_admins_make_a_key_shown_once_and_revoke_it(client, workspace, login, db_session):
    tenant, owner = workspace
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/settings/api-keys/")
    assert page.status_code == 200
    refused = client.post(
        f"/t/{tenant.slug}/settings/api-keys/",
        data={"name": "E", "csrf_token": csrf_token_from(page.text)},
    )
    assert refused.status_code == 422
    assert "Choose at least one" in refused.text and "2 to 100 characters" in refused.text
    made = client.post(
        f"/t/{tenant.slug}/settings/api-keys/",
        data={
            "name": "ERP export",
            "scopes": ["clients:read"],
            "csrf_token": csrf_token_from(page.text),
        },
    )
    assert made.status_code == 201
    secret = made.text.split('id="new-key">')[1].split("<")[0]
    assert secret.startswith("dbk_live_")
    assert client.get("/api/v1/clients", headers=bearer(secret)).status_code == 200
    listing = client.get(f"/t/{tenant.slug}/settings/api-keys/")
    assert secret not in listing.text and "ERP export" in listing.text
    key = db_session.scalar(select(ApiKey).where(ApiKey.tenant_id == tenant.id))
    made_entry = tenant_session(db_session, tenant).scalar(
        select(AuditEntry).where(AuditEntry.entity == "api_keys", AuditEntry.action == "insert")
    )
    assert made_entry.actor_user_id == owner.id
    assert made_entry.changes["name"][1] == "ERP export"
    assert key.secret_digest not in str(made_entry.changes)
    client.post(
        f"/t/{tenant.slug}/settings/api-keys/{key.id}/revoke",
        data={"csrf_token": csrf_token_from(listing.text)},
    )
    assert client.get("/api/v1/clients", headers=bearer(secret)).status_code == 401


def test_a_new_client_takes_the_pages_defaults_for_what_is_left_out(client, api_key):
    """The README's curl: a name and a location make a client, on the terms the new-client page
    starts from (Net 30, the workspace's currency)."""
    secret = api_key()
    made = client.post(
        "/api/v1/clients",
        json={"full_name": "Bare Minimum Traders", "short_name": "Bare", "location": "local"},
        headers=bearer(secret),
    )
    assert made.status_code == 201, made.json
    body = made.json
    assert (body["payment_terms"], body["payment_days"], body["currency"]) == ("net", 30, "INR")
    cash = client.post(
        "/api/v1/clients",
        json={
            "full_name": "Cash Only Traders",
            "short_name": "Cash",
            "location": "local",
            "payment_terms": "immediate",
        },
        headers=bearer(secret),
    )
    assert cash.status_code == 201, cash.json
    assert cash.json["payment_days"] is None
