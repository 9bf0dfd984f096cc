"""Input PostgreSQL cannot take (a NUL character, an id past its integer range) is answered as
the sender's mistake, with a clear page, a 404 or an ignored filter: never a server error."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.clients.models import Client
from tests.helpers import csrf_token_from, tenant_session
from tests.test_clients import new_client

HUGE = "123456789012345678901"  # 21 digits
PAST_INTEGER = str(2**31)  # one past PostgreSQL's integer


@pytest.fixture
def owner_client(client, make_tenant, make_user, login):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/clients/new").text)
    return client, tenant, token


@pytest.mark.parametrize("client_id", [HUGE, PAST_INTEGER])
def test_an_id_past_the_integer_range_is_not_found(owner_client, client_id):
    http, tenant, _ = owner_client
    for path in (
        f"/clients/{client_id}",
        f"/invoices/{client_id}",
        f"/payments/new?client_id={client_id}",
    ):
        response = http.get(f"/t/{tenant.slug}{path}")
        assert response.status_code == 404, path
        assert "Not found" in response.text


@pytest.mark.parametrize("client_id", [HUGE, PAST_INTEGER])
def test_a_filter_past_the_integer_range_is_ignored(owner_client, client_id):
    http, tenant, token = owner_client
    assert new_client(http, tenant, token).status_code == 303
    for path in ("/invoices/", "/messages/", "/notices/", "/clients/"):
        response = http.get(
            f"/t/{tenant.slug}{path}",
            query_string={
                "client_id": client_id,
                "industry": client_id,
                "campaign_id": client_id,
                "project_id": client_id,
                "owner": client_id,
            },
        )
        assert response.status_code == 200, path
    clients = http.get(f"/t/{tenant.slug}/clients/", query_string={"industry": client_id})
    assert "Kaveri Builders Pvt Ltd" in clients.text  # the filter that cannot match is dropped


def test_a_nul_character_in_a_search_gets_a_clear_page(owner_client):
    http, tenant, _ = owner_client
    response = http.get(f"/t/{tenant.slug}/clients/", query_string={"q": "Kav\x00eri"})
    assert response.status_code == 400
    assert "NUL character" in response.text


def test_a_nul_character_in_a_form_field_gets_a_clear_page_and_saves_nothing(
    owner_client, db_session
):
    http, tenant, token = owner_client
    response = new_client(http, tenant, token, full_name="Kaveri\x00 Builders")
    assert response.status_code == 400
    assert "NUL character" in response.text
    session = tenant_session(db_session, tenant)
    assert session.scalar(select(func.count()).select_from(Client)) == 0
