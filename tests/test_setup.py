"""The first-run setup: a new owner lands on it; each step saves through the settings rules
with the errors beside their fields; steps can be skipped and the setup resumes at the first
step neither done nor skipped; the dashboard says what is left."""

from __future__ import annotations

import io

import pytest

from app.settings import services as settings
from app.setup import services
from tests.helpers import csrf_token_from, tenant_session
from tests.test_accounts import sign_up
from tests.test_settings import KA_GSTIN, MH_GSTIN, PNG


@pytest.fixture(autouse=True)
def _own_storage(storage_root):
    return storage_root


@pytest.fixture
def owner_in(make_tenant, make_user, login, client):
    def make(**tenant_fields):
        owner = make_user()
        tenant = make_tenant(owner=owner, **tenant_fields)
        login(client, owner)
        return tenant

    return make


def post_step(client, tenant, step, data=None, action=""):
    page = client.get(f"/t/{tenant.slug}/setup/{step}")
    assert page.status_code == 200
    form = {"csrf_token": csrf_token_from(page.text), **(data or {})}
    return client.post(f"/t/{tenant.slug}/setup/{step}{action}", data=form)


def states(db_session, tenant):
    db_session.expire_all()
    return services.progress(tenant_session(db_session, tenant), tenant.id).states


def test_a_new_owner_lands_on_the_first_step_after_confirming(
    client, db_session, run_jobs, received_mail
):
    data, response = sign_up(client, run_jobs, received_mail)
    assert response.headers["Location"] == f"/t/{data['slug']}/setup/"
    first = client.get(response.headers["Location"])
    assert first.headers["Location"] == f"/t/{data['slug']}/setup/identity"
    page = client.get(first.headers["Location"])
    assert "Step 1 of 5: Your business" in page.text
    assert "Welcome to Duebook. Sharma Engineering is ready." in page.text


def test_business_step_refuses_a_bad_gstin_beside_the_field_then_saves(
    client, db_session, owner_in
):
    tenant = owner_in()
    typed = {"legal_name": "Kaveri Traders LLP", "address": "12 MG Road, Bengaluru"}

    refused = post_step(client, tenant, "identity", {**typed, "gstin": MH_GSTIN[:-1] + "W"})
    assert refused.status_code == 422
    assert 'id="gstin-error"' in refused.text and "wrong check digit" in refused.text
    assert 'value="Kaveri Traders LLP"' in refused.text  # what was typed is kept
    assert states(db_session, tenant)["identity"] is None
    assert settings.workspace_settings(db_session, tenant.id).legal_name is None

    saved = post_step(client, tenant, "identity", {**typed, "gstin": KA_GSTIN})
    assert saved.status_code == 303
    assert saved.headers["Location"] == f"/t/{tenant.slug}/setup/brand"
    assert states(db_session, tenant)["identity"] == services.DONE
    stored = settings.workspace_settings(db_session, tenant.id)
    assert (stored.legal_name, stored.gstin, stored.pan) == (
        "Kaveri Traders LLP",
        KA_GSTIN,
        KA_GSTIN[2:12],
    )
    assert stored.brand_colour == "#1f5f8b"  # the other settings are left as they were


def test_each_later_step_saves_its_fields_and_names_its_errors(client, db_session, owner_in):
    tenant = owner_in()

    bad_logo = post_step(
        client,
        tenant,
        "brand",
        {"brand_colour": "#aa3300", "logo": (io.BytesIO(b"GIF89a"), "l.gif")},
    )
    assert bad_logo.status_code == 422 and 'id="logo-error"' in bad_logo.text
    assert "PNG or JPEG" in bad_logo.text
    brand = post_step(
        client, tenant, "brand", {"brand_colour": "#AA3300", "logo": (io.BytesIO(PNG), "l.png")}
    )
    assert brand.status_code == 303

    bad_upi = post_step(client, tenant, "payment", {"upi_vpa": "kaveri"})
    assert bad_upi.status_code == 422 and 'id="upi_vpa-error"' in bad_upi.text
    paid = post_step(
        client,
        tenant,
        "payment",
        {"upi_vpa": "kaveri@okhdfcbank", "payment_instructions": "HDFC 0001, IFSC HDFC0000001"},
    )
    assert paid.status_code == 303

    bad_reply = post_step(client, tenant, "email", {"reply_to": "accounts at kaveri"})
    assert bad_reply.status_code == 422 and 'id="reply_to-error"' in bad_reply.text
    mail = post_step(
        client, tenant, "email", {"sender_name": "Kaveri Accounts", "reply_to": "ac@kaveri.in"}
    )
    # On to the first step still open: the business step was never done nor skipped.
    assert mail.headers["Location"] == f"/t/{tenant.slug}/setup/identity"

    stored = settings.workspace_settings(db_session, tenant.id)
    assert stored.brand_colour == "#aa3300" and stored.logo_key.endswith(".png")
    assert (stored.upi_vpa, stored.sender_name, stored.reply_to) == (
        "kaveri@okhdfcbank",
        "Kaveri Accounts",
        "ac@kaveri.in",
    )
    assert [name for name, state in states(db_session, tenant).items() if state] == [
        "brand",
        "payment",
        "email",
    ]


def test_skipped_steps_are_passed_over_then_offered_again(
    client, db_session, owner_in, make_client
):
    tenant = owner_in()
    skipped = post_step(client, tenant, "identity", action="/skip")
    assert skipped.headers["Location"] == f"/t/{tenant.slug}/setup/brand"
    assert client.get(f"/t/{tenant.slug}/setup/").headers["Location"].endswith("/setup/brand")

    for step in ("brand", "payment", "email"):
        post_step(client, tenant, step, action="/skip")
    # The clients step offers every way in: one by one, a client file, or the old books' open
    # invoices (their clients come with them).
    clients_step = client.get(f"/t/{tenant.slug}/setup/clients").text
    assert f'href="/t/{tenant.slug}/opening-balances/"' in clients_step
    last = post_step(client, tenant, "clients", action="/skip")
    assert last.headers["Location"] == f"/t/{tenant.slug}/"  # nothing open: the dashboard
    # Coming back, the setup offers the first step put off.
    assert client.get(f"/t/{tenant.slug}/setup/").headers["Location"].endswith("/setup/identity")

    # A step done stays done when skipped; the clients step is done by having a client.
    post_step(client, tenant, "email", {"sender_name": "Kaveri"})
    post_step(client, tenant, "email", action="/skip")
    make_client(tenant_session(db_session, tenant))
    found = states(db_session, tenant)
    assert (found["email"], found["clients"], found["brand"]) == ("done", "done", "skipped")


def test_dashboard_says_how_much_of_the_setup_is_left(
    client, db_session, owner_in, make_user, add_member, login
):
    tenant = owner_in()
    dashboard = client.get(f"/t/{tenant.slug}/")
    assert "Finish setting up: 5 of 5 steps left" in dashboard.text
    assert f'href="/t/{tenant.slug}/setup/"' in dashboard.text

    post_step(client, tenant, "identity", {"legal_name": "Kaveri Traders"})
    post_step(client, tenant, "email", {"sender_name": "Kaveri"})
    post_step(client, tenant, "brand", action="/skip")  # put off, still left to do
    dashboard = client.get(f"/t/{tenant.slug}/")
    assert "Finish setting up: 3 of 5 steps left" in dashboard.text
    assert "Logo and colour, Getting paid, Your first clients." in dashboard.text

    viewer = make_user()
    add_member(tenant, viewer, "viewer")
    login(client, viewer)
    assert "Finish setting up" not in client.get(f"/t/{tenant.slug}/").text
    assert client.get(f"/t/{tenant.slug}/setup/").status_code == 403


def test_the_dashboard_stops_asking_once_every_step_is_done(
    client, db_session, owner_in, make_client
):
    tenant = owner_in()
    for step in ("identity", "payment", "email"):
        post_step(client, tenant, step, {})
    post_step(client, tenant, "brand", {"brand_colour": "#1f5f8b"})
    assert "1 of 5 steps left" in client.get(f"/t/{tenant.slug}/").text
    make_client(tenant_session(db_session, tenant))
    assert "Finish setting up" not in client.get(f"/t/{tenant.slug}/").text
    assert client.get(f"/t/{tenant.slug}/setup/").headers["Location"] == f"/t/{tenant.slug}/"


def test_settings_given_before_the_setup_existed_count_as_done(client, db_session, owner_in):
    # A workspace that filled its settings page before this setup existed (or seeded ones)
    # is not asked for them again: its business, payment and e-mail steps are done.
    tenant = owner_in(
        legal_name="Udyam Works Private Limited", upi_vpa="udyam@upi", sender_name="Udyam Works"
    )
    done = [name for name, state in states(db_session, tenant).items() if state == services.DONE]
    assert done == ["identity", "payment", "email"]
    page = client.get(f"/t/{tenant.slug}/").text
    assert "Finish setting up: 2 of 5 steps left" in page
