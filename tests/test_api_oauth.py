"""OAuth 2 client credentials (RFC 6749 §4.4) for server-to-server integrations: an admin makes
an OAuth client on the API keys page (its secret shown once); Authlib's own OAuth 2 client, the
oracle, trades the id and secret for a bearer token and calls /api/v1 and the OData feed with
it. Tokens carry the scopes asked for (within the client's), expire, and stop working when the
client is revoked; refusals are RFC 6749 §5.2's JSON errors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from sqlalchemy import func, select, update

from app.api import services as api_services
from app.api.models import ApiAccessToken, ApiKey
from tests.helpers import csrf_token_from, tenant_session

TOKEN_URL = "http://localhost/api/v1/oauth/token"


@pytest.fixture
def workspace(db_session, make_tenant, make_user, make_client):
    owner = make_user(full_name="Owner")
    tenant = make_tenant(owner=owner, name="Kaveri Traders", region="27")
    make_client(tenant_session(db_session, tenant), name="Acme")
    tenant_session(db_session, tenant).commit()
    return tenant, owner


def made_on_the_page(client, login, tenant, owner, scopes) -> tuple[str, str, str]:
    """An OAuth client made by the admin on the API keys page: its id, secret and the page."""
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/settings/api-keys/")
    refused = client.post(
        f"/t/{tenant.slug}/settings/api-keys/oauth-clients",
        data={"name": "E", "csrf_token": csrf_token_from(page.text)},
    )
    assert refused.status_code == 422
    # The errors sit in the OAuth client's form, not the key's.
    assert 'id="client-name-error"' in refused.text and 'id="name-error"' not in refused.text
    assert "Choose at least one" in refused.text
    made = client.post(
        f"/t/{tenant.slug}/settings/api-keys/oauth-clients",
        data={"name": "Warehouse ERP", "scopes": scopes, "csrf_token": csrf_token_from(page.text)},
    )
    assert made.status_code == 201, made.text
    client_id = made.text.split('id="new-client-id">')[1].split("<")[0]
    secret = made.text.split('id="new-client-secret">')[1].split("<")[0]
    return client_id, secret, made.text


def oauth_session(app, client_id: str, secret: str, method="client_secret_basic"):
    """Authlib's OAuth 2 client, speaking HTTP to the app in this process."""
    return OAuth2Client(
        client_id,
        secret,
        token_endpoint_auth_method=method,
        transport=httpx.WSGITransport(app=app),
        base_url="http://localhost",
    )


def test_an_admin_makes_a_client_and_authlib_gets_a_token_that_reads_the_api(
    app, client, login, workspace, db_session
):
    tenant, owner = workspace
    client_id, secret, page = made_on_the_page(
        client, login, tenant, owner, ["clients:read", "invoices:read"]
    )
    assert client_id.startswith("dbk_client_") and secret.startswith("dbk_secret_")
    assert "/api/v1/oauth/token" in page
    listing = client.get(f"/t/{tenant.slug}/settings/api-keys/")
    assert client_id in listing.text and secret not in listing.text
    # The secret is kept as a digest only, and it is no key by itself.
    stored = db_session.scalar(select(ApiKey).where(ApiKey.client_id == client_id))
    assert stored.kind == "oauth_client" and secret not in str(vars(stored))
    direct = client.get("/api/v1/clients", headers={"Authorization": f"Bearer {secret}"})
    assert direct.status_code == 401

    for method in ("client_secret_basic", "client_secret_post"):
        with oauth_session(app, client_id, secret, method) as integration:
            token = integration.fetch_token(TOKEN_URL, grant_type="client_credentials")
            assert token["token_type"] == "Bearer"
            assert token["expires_in"] == 3600
            assert token["scope"] == "clients:read invoices:read"
            clients = integration.get("/api/v1/clients")
            assert clients.status_code == 200
            assert [c["short_name"] for c in clients.json()["data"]][0].startswith("C")
            assert integration.get("/api/odata/Clients").status_code == 200
            assert integration.get("/api/v1/payments").status_code == 403
    raw = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=_basic(client_id, secret),
    )
    assert raw.headers["Cache-Control"] == "no-store"
    assert raw.json["access_token"].startswith("dbk_at_")
    assert db_session.scalar(select(ApiKey.last_used_at).where(ApiKey.client_id == client_id))


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _token(client, client_id, secret, **form) -> dict:
    answer = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials", **form},
        headers=_basic(client_id, secret),
    )
    assert answer.status_code == 200, answer.text
    return answer.json


@pytest.fixture
def oauth_client(db_session, workspace):
    tenant, owner = workspace
    made, secret = api_services.create_key(
        db_session,
        tenant.id,
        "ERP",
        ["clients:read", "invoices:read"],
        owner.id,
        kind="oauth_client",
    )
    db_session.commit()
    return made.client_id, secret


@pytest.mark.parametrize(
    ("form", "auth", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, ("id", "dbk_secret_wrong"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, ("dbk_client_nobody", "s"), 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
        ({"grant_type": "password"}, ("id", "secret"), 400, "unsupported_grant_type"),
        ({}, ("id", "secret"), 400, "invalid_request"),
        (
            {"grant_type": "client_credentials", "client_secret": "secret"},
            ("id", "secret"),
            400,
            "invalid_request",
        ),
        (
            {"grant_type": "client_credentials", "scope": "payments:read"},
            ("id", "secret"),
            400,
            "invalid_scope",
        ),
        (
            {"grant_type": "client_credentials", "scope": "everything"},
            ("id", "secret"),
            400,
            "invalid_scope",
        ),
    ],
)
def test_a_refused_token_request_gets_an_rfc_6749_error(
    client, oauth_client, form, auth, status, error
):
    client_id, secret = oauth_client
    if auth:
        auth = tuple({"id": client_id, "secret": secret}.get(part, part) for part in auth)
    answer = client.post("/api/v1/oauth/token", data=form, headers=_basic(*auth) if auth else {})
    assert answer.status_code == status, answer.text
    assert answer.json["error"] == error and answer.json["error_description"]
    assert answer.headers["Cache-Control"] == "no-store"
    if status == 401:
        assert answer.headers["WWW-Authenticate"].startswith("Basic")


def test_a_token_has_the_scopes_asked_for_within_the_clients(client, oauth_client):
    narrow = _token(client, *oauth_client, scope="clients:read")
    assert narrow["scope"] == "clients:read"
    bearer = {"Authorization": f"Bearer {narrow['access_token']}"}
    assert client.get("/api/v1/clients", headers=bearer).status_code == 200
    assert client.get("/api/v1/invoices", headers=bearer).status_code == 403
    assert client.get("/api/odata/Invoices", headers=bearer).status_code == 403
    # The form's client authentication (client_secret_post) gives the same.
    client_id, secret = oauth_client
    by_form = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert by_form.json["scope"] == "clients:read invoices:read"


def test_revoking_the_client_stops_its_tokens_at_once(
    client, login, workspace, oauth_client, db_session
):
    tenant, owner = workspace
    token = _token(client, *oauth_client)["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/clients", headers=bearer).status_code == 200
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/settings/api-keys/")
    stored = db_session.scalar(select(ApiKey).where(ApiKey.client_id == oauth_client[0]))
    client.post(
        f"/t/{tenant.slug}/settings/api-keys/{stored.id}/revoke",
        data={"csrf_token": csrf_token_from(page.text)},
    )
    assert client.get("/api/v1/clients", headers=bearer).status_code == 401
    assert client.get("/api/odata/Clients", headers=bearer).status_code == 401
    again = client.post(
        "/api/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=_basic(*oauth_client),
    )
    assert again.status_code == 401 and again.json["error"] == "invalid_client"


def test_an_expired_token_is_refused_and_cleared_away(client, oauth_client, db_session):
    token = _token(client, *oauth_client)["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    db_session.execute(
        update(ApiAccessToken)
        .where(ApiAccessToken.token_digest == api_services.secret_digest(token))
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db_session.commit()
    refused = client.get("/api/v1/clients", headers=bearer)
    assert refused.status_code == 401 and refused.json["code"] == "unauthorized"
    _token(client, *oauth_client)  # the next token clears the expired one away
    assert db_session.scalar(select(func.count()).select_from(ApiAccessToken)) == 1


def test_one_clients_tokens_share_its_rate_limit(app, client, oauth_client):
    first, second = (_token(client, *oauth_client)["access_token"] for _ in range(2))
    usual, app.config["API_RATE_LIMIT"] = app.config["API_RATE_LIMIT"], "2 per minute"
    try:
        answers = [
            client.get("/api/v1/clients", headers={"Authorization": f"Bearer {token}"})
            for token in (first, second, first)
        ]
    finally:
        app.config["API_RATE_LIMIT"] = usual
    assert [a.status_code for a in answers] == [200, 200, 429]
