"""A provider account (a WhatsApp number here; a Twilio account works the same way) is bound to
a workspace only once a worker has had the provider confirm that the workspace's credentials
control it. A workspace that saves someone else's number id with a guessed token is never
bound: it sends nothing, receives none of the number's replies or STOP opt-outs, and is told
nothing about who else uses the number. The real owner proves the number and takes it over,
also from a workspace that held it since before accounts were verified.

Everything runs against the WhatsApp stand-in on 127.0.0.1; its signed webhooks are captured
and replayed through the Flask test client."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.clients.models import Contact
from app.core.crypto import encrypt_secrets
from app.integrations.connectors.whatsapp import PROVIDER, waba_account_key
from app.integrations.models import IntegrationConnection, ProviderAccount
from app.messaging.models import WebhookEvent
from app.notifications.models import Notification
from app.sandbox.standins import WhatsAppStandin
from tests.helpers import tenant_session
from tests.test_integrations import connection_of, post_form
from tests.test_whatsapp import (
    PHONE_A,
    PHONE_B,
    SECRET,
    TOKEN_A,
    TOKEN_B,
    USER,
    VERIFY,
    WABA,
    Capture,
    add_contact,
    message,
    post_hook,
    queue,
    wait_for_hooks,
)

GUESSED_TOKEN = "a-guessed-token"
OWNER_NAME = "Genuine Owner Industries"
TEXT = {
    "type": "template",
    "name": "invoice_due",
    "language": "en_US",
    "body_params": ["Asha", "INV-1", "₹ 100.00", "15 Aug 2026"],
}


@pytest.fixture
def capture():
    receiver = Capture()
    yield receiver
    receiver.stop()


@pytest.fixture
def standin(app, capture, monkeypatch):
    """The real owner's number PHONE_A answers only TOKEN_A (PHONE_B only TOKEN_B)."""
    server = WhatsAppStandin(
        phone_number_id=PHONE_A,
        token=TOKEN_A,
        waba_id=WABA,
        app_secret=SECRET,
        webhook_url=capture.url,
        webhook_retries=0,
        templates=[{"name": "invoice_due", "body": "Dear {{1}}, {{2}} of {{3}} is due on {{4}}."}],
    ).start()
    server.add_phone_number(PHONE_B, TOKEN_B)
    for name, value in {
        "WHATSAPP_API_BASE": server.url,
        "WHATSAPP_API_VERSION": "v21.0",
        "WHATSAPP_APP_SECRET": SECRET,
        "WHATSAPP_VERIFY_TOKEN": VERIFY,
    }.items():
        monkeypatch.setitem(app.config, name, value)
    yield server
    server.stop()


@pytest.fixture
def squatter(client, make_user, make_tenant, login):
    """A free workspace whose admin is logged in on `client`."""
    admin = make_user()
    tenant = make_tenant(owner=admin, name="Squatter Traders")
    login(client, admin)
    return tenant


@pytest.fixture
def owner_client(app, make_user, make_tenant, login):
    """The real owner of PHONE_A, logged in on a browser of its own."""
    browser = app.test_client()
    user = make_user()
    tenant = make_tenant(owner=user, name=OWNER_NAME)
    login(browser, user)
    browser.tenant = tenant
    return browser


def whatsapp_form(phone_number_id=PHONE_A, token=TOKEN_A) -> dict:
    return {"phone_number_id": phone_number_id, "waba_id": WABA, "access_token": token}


def saved_before_verification(app, db_session, tenant, token: str, keys) -> int:
    """What the code before verification stored when a workspace connected PHONE_A: the
    connection and the number's routing (the migration marks such connections "legacy")."""
    session = tenant_session(db_session, tenant)
    with app.app_context():
        ciphertext = encrypt_secrets({"access_token": token})
    connection = IntegrationConnection(
        provider=PROVIDER,
        settings={"phone_number_id": PHONE_A, "waba_id": WABA},
        verification="legacy",
        secrets_ciphertext=ciphertext,
    )
    session.add(connection)
    session.flush()
    session.add_all(
        [
            ProviderAccount(
                provider=PROVIDER, account_key=key, tenant_id=tenant.id, connection_id=connection.id
            )
            for key in keys
        ]
    )
    session.commit()
    return connection.id


def bound_to(db_session, key=PHONE_A):
    """(tenant id, connection id) the provider's webhooks for `key` are routed to, or None."""
    db_session.expire_all()
    return db_session.execute(
        select(ProviderAccount.tenant_id, ProviderAccount.connection_id).where(
            ProviderAccount.provider == PROVIDER, ProviderAccount.account_key == key
        )
    ).first()


def events_of(db_session, tenant) -> int:
    return db_session.scalar(
        select(func.count())
        .select_from(WebhookEvent)
        .where(WebhookEvent.provider == PROVIDER, WebhookEvent.tenant_id == tenant.id)
    )


def stop_from_user(client, standin, capture, phone_number_id=PHONE_A) -> None:
    """The contact USER answers STOP to `phone_number_id`; Meta posts the signed webhook."""
    standin.simulate_inbound(USER, "STOP", phone_number_id=phone_number_id)
    for body, signature in wait_for_hooks(standin, capture, 1):
        assert post_hook(client, body, signature).status_code == 200


def sent_to_provider(standin) -> list[dict]:
    return [entry for entry in standin.recorded() if entry.get("to") == USER]


def connection_page(client, tenant) -> str:
    page = client.get(f"/t/{tenant.slug}/integrations/")
    return page.text[page.text.index(f'id="integration-{PROVIDER}"') :].split("</article>")[0]


def test_a_guessed_token_is_never_bound_sends_nothing_and_receives_nothing(
    app, client, db_session, squatter, standin, capture, run_jobs
):
    saved = post_form(client, squatter, f"{PROVIDER}/connect", whatsapp_form(token=GUESSED_TOKEN))
    assert saved.status_code == 303
    assert bound_to(db_session) is None  # saving binds nothing
    assert "Pending verification" in connection_page(client, squatter)

    contact = add_contact(db_session, squatter)
    message_id = queue(app, db_session, squatter, contact, TEXT)
    run_jobs()  # the check with WhatsApp, and the delivery of the message

    assert bound_to(db_session) is None
    assert connection_of(db_session, squatter, PROVIDER).verification == "refused"
    assert message(db_session, message_id).status == "suppressed"
    assert sent_to_provider(standin) == []
    result = client.get(saved.headers["Location"]).text
    assert "did not confirm that these credentials control this account" in result
    assert "Needs attention" in result

    stop_from_user(client, standin, capture)
    run_jobs()
    assert events_of(db_session, squatter) == 0
    stopped = tenant_session(db_session, squatter).get(Contact, contact.id)
    assert stopped.whatsapp_consent != "opted_out"


def test_the_owner_proves_the_number_and_its_replies_reach_the_owner_only(
    app, client, db_session, squatter, owner_client, standin, capture, run_jobs
):
    owner = owner_client.tenant
    assert (
        post_form(
            client, squatter, f"{PROVIDER}/connect", whatsapp_form(token=GUESSED_TOKEN)
        ).status_code
        == 303
    )
    run_jobs()

    saved = post_form(owner_client, owner, f"{PROVIDER}/connect", whatsapp_form())
    assert saved.status_code == 303  # the squatter's claim does not stand in the way
    run_jobs()
    owner_connection = connection_of(db_session, owner, PROVIDER)
    assert owner_connection.verification == "verified"
    assert bound_to(db_session) == (owner.id, owner_connection.id)
    assert bound_to(db_session, waba_account_key(WABA)) == (owner.id, owner_connection.id)
    assert (
        "Test passed: Connected to WhatsApp number"
        in owner_client.get(saved.headers["Location"]).text
    )

    contact = add_contact(db_session, owner)
    message_id = queue(app, db_session, owner, contact, TEXT)
    run_jobs()
    assert message(db_session, message_id).status == "sent"
    wait_for_hooks(standin, capture, 1)  # the message's own status reports, not needed here

    stop_from_user(client, standin, capture)
    run_jobs()
    assert events_of(db_session, owner) >= 1 and events_of(db_session, squatter) == 0
    stopped = tenant_session(db_session, owner).get(Contact, contact.id)
    assert stopped.whatsapp_consent == "opted_out"

    # The squatter tries again: the answer is the same as for any wrong token.
    connection = connection_of(db_session, squatter, PROVIDER)
    test_page = post_form(client, squatter, f"{connection.id}/test", {})
    run_jobs()
    shown = client.get(test_page.headers["Location"]).text + connection_page(client, squatter)
    assert "did not confirm that these credentials control this account" in shown
    for telltale in (OWNER_NAME, owner.slug, "another Duebook workspace", "already connected"):
        assert telltale not in shown


def test_the_owner_takes_over_a_number_a_squatter_bound_before_verification(
    app, client, db_session, squatter, owner_client, standin, capture, run_jobs
):
    legacy_id = saved_before_verification(
        app, db_session, squatter, GUESSED_TOKEN, [PHONE_A, waba_account_key(WABA)]
    )

    owner = owner_client.tenant
    assert post_form(owner_client, owner, f"{PROVIDER}/connect", whatsapp_form()).status_code == 303
    run_jobs()

    owner_connection = connection_of(db_session, owner, PROVIDER)
    assert bound_to(db_session) == (owner.id, owner_connection.id)
    assert bound_to(db_session, waba_account_key(WABA)) == (owner.id, owner_connection.id)
    lost = connection_of(db_session, squatter, PROVIDER)
    assert (lost.id, lost.verification) == (legacy_id, "lost")
    assert "Needs attention" in connection_page(client, squatter)
    session = tenant_session(db_session, squatter)
    [told] = session.scalars(select(Notification).where(Notification.user_id.is_not(None))).all()
    assert "needs attention" in told.title
    for telltale in (OWNER_NAME, owner.slug):
        assert telltale not in told.title + told.body + connection_page(client, squatter)

    contact = add_contact(db_session, squatter)
    message_id = queue(app, db_session, squatter, contact, TEXT)
    run_jobs()
    assert message(db_session, message_id).status == "suppressed"
    assert sent_to_provider(standin) == []

    stop_from_user(client, standin, capture)
    run_jobs()
    assert events_of(db_session, owner) == 1 and events_of(db_session, squatter) == 0


def test_a_holder_whose_credentials_still_work_keeps_the_number(
    client, db_session, squatter, owner_client, standin, run_jobs
):
    owner = owner_client.tenant
    post_form(owner_client, owner, f"{PROVIDER}/connect", whatsapp_form(PHONE_B, TOKEN_B))
    run_jobs()
    holder = connection_of(db_session, owner, PROVIDER)
    assert bound_to(db_session, PHONE_B) == (owner.id, holder.id)

    # A second workspace with working credentials for the same number: it proved control,
    # so it may learn that the number is in use, but it does not take it.
    saved = post_form(client, squatter, f"{PROVIDER}/connect", whatsapp_form(PHONE_B, TOKEN_B))
    run_jobs()
    assert bound_to(db_session, PHONE_B) == (owner.id, holder.id)
    assert connection_of(db_session, squatter, PROVIDER).verification == "refused"
    shown = client.get(saved.headers["Location"]).text
    assert "already connected to another Duebook workspace" in shown
    assert OWNER_NAME not in shown and owner.slug not in shown
    assert connection_of(db_session, owner, PROVIDER).verification == "verified"


def test_a_connection_saved_before_verification_keeps_working_until_its_test(
    app, client, db_session, squatter, standin, run_jobs
):
    legacy_id = saved_before_verification(app, db_session, squatter, TOKEN_A, [PHONE_A])
    assert "use “Test connection” to confirm them" in connection_page(client, squatter)

    contact = add_contact(db_session, squatter)
    message_id = queue(app, db_session, squatter, contact, TEXT)
    run_jobs()
    assert message(db_session, message_id).status == "sent"

    post_form(client, squatter, f"{legacy_id}/test", {})
    run_jobs()
    assert connection_of(db_session, squatter, PROVIDER).verification == "verified"
    assert bound_to(db_session) == (squatter.id, legacy_id)


def test_secrets_verify_checks_every_connection_saved_before_verification(
    app, client, db_session, squatter, standin, run_jobs
):
    legacy_id = saved_before_verification(app, db_session, squatter, GUESSED_TOKEN, [PHONE_A])
    result = app.test_cli_runner().invoke(args=["secrets", "verify"])
    assert result.exit_code == 0, result.output
    assert "Queued" in result.output
    run_jobs()
    assert (connection_of(db_session, squatter, PROVIDER).id, bound_to(db_session)) == (
        legacy_id,
        None,
    )
    assert connection_of(db_session, squatter, PROVIDER).verification == "refused"
