"""Integration settings: an admin connects the SMTP connector (the password stored encrypted,
never shown back, audited as hidden), tests it through a worker against a real SMTP server,
disables it (e-mail then goes through the platform's server) and disconnects it (credentials
and webhook routing deleted); a provider account belongs to one workspace; credentials are
re-encrypted when the key is rotated."""

from __future__ import annotations

from email.utils import parseaddr
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from app.audit.models import AuditEntry
from app.core.crypto import SecretsUnreadable, decrypt_secrets, encrypt_secrets
from app.devserver import free_port
from app.integrations import catalogue
from app.integrations.connectors import Connector, Field, Sent
from app.integrations.models import IntegrationConnection, ProviderAccount
from app.outbox.services import queue_message
from app.sandbox.standins import Msg91Standin
from tests.helpers import csrf_token_from, tenant_session, unique

PASSWORD = "hunter2-smtp-Secret"


class KeyedSmsConnector(Connector):
    """A connector whose webhooks carry an account id, as Twilio's carry the AccountSid: the
    smallest real connector that exercises the routing key (registered per test below)."""

    provider = "keyed_sms"
    channel = "sms"
    title = "Keyed SMS"
    description = "An SMS gateway whose reports name the account."
    fields = (Field("account_id", "Account id"), Field("api_key", "API key", secret=True))

    def account_key(self):
        return self.settings["account_id"]

    def send(self, outgoing):
        return Sent(provider_message_id=None)

    def test_connection(self):
        return "ok"


@pytest.fixture
def keyed_connector(monkeypatch):
    entry = catalogue.Entry(
        "keyed_sms", "messaging", "Keyed SMS", "", f"{__name__}:KeyedSmsConnector"
    )
    monkeypatch.setitem(catalogue.BY_PROVIDER, "keyed_sms", entry)
    return entry


@pytest.fixture
def admin(client, make_user, make_tenant, login):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    return tenant


def smtp_form(mailbox, **changes) -> dict:
    return {
        "host": "127.0.0.1",
        "port": str(urlsplit(mailbox.url).port),
        "security": "none",
        "password": PASSWORD,
        "from_address": "Acme Accounts <accounts@acme.example>",
        **changes,
    }


def post_form(client, tenant, path: str, form: dict):
    page = client.get(f"/t/{tenant.slug}/integrations/")
    return client.post(
        f"/t/{tenant.slug}/integrations/{path}",
        data={**form, "csrf_token": csrf_token_from(page.text)},
    )


def connection_of(db_session, tenant, provider="smtp") -> IntegrationConnection | None:
    session = tenant_session(db_session, tenant)
    return session.scalar(
        select(IntegrationConnection)
        .where(IntegrationConnection.provider == provider)
        .order_by(IntegrationConnection.id.desc())
    )


def test_catalogue_lists_messaging_and_later_categories(admin, client):
    page = client.get(f"/t/{admin.slug}/integrations/")
    assert page.status_code == 200
    assert "E-mail (your SMTP server)" in page.text  # the connector class's own title
    for later in (
        "Accounting",
        "Xero",
        "QuickBooks",
        "Tally",
        "Zoho Books",
        "Razorpay",
        "Stripe",
        "Facebook Lead Ads",
        "Calendars",
        "Storage",
    ):
        assert later in page.text
    assert page.text.count("Coming later") == len([e for e in catalogue.ENTRIES if e.planned])
    assert f'href="/t/{admin.slug}/integrations/smtp/connect"' in page.text
    assert f'href="/t/{admin.slug}/integrations/xero/connect"' not in page.text
    assert client.get(f"/t/{admin.slug}/integrations/xero/connect").status_code == 404


def test_a_connector_that_does_not_import_shows_as_not_available(admin, client, monkeypatch):
    missing = catalogue.Entry(
        "nowhere_sms",
        "messaging",
        "Nowhere SMS",
        "Not built here.",
        "app.integrations.connectors.nowhere:NowhereConnector",
    )
    monkeypatch.setattr(catalogue, "ENTRIES", (*catalogue.ENTRIES, missing))
    monkeypatch.setitem(catalogue.BY_PROVIDER, "nowhere_sms", missing)
    page = client.get(f"/t/{admin.slug}/integrations/")
    assert page.status_code == 200
    card = page.text[page.text.index('id="integration-nowhere_sms"') :].split("</article>")[0]
    assert "Nowhere SMS" in card and "Not available" in card and "/connect" not in card
    assert client.get(f"/t/{admin.slug}/integrations/nowhere_sms/connect").status_code == 404


def test_admin_connects_smtp_and_the_password_is_stored_encrypted_never_shown(
    app, admin, client, db_session, mailbox
):
    form = client.get(f"/t/{admin.slug}/integrations/smtp/connect")
    assert form.status_code == 200 and 'type="password"' in form.text
    saved = post_form(client, admin, "smtp/connect", smtp_form(mailbox))
    assert saved.status_code == 303

    connection = connection_of(db_session, admin)
    assert connection.status == "enabled"
    assert connection.settings["from_address"] == "Acme Accounts <accounts@acme.example>"
    assert "password" not in connection.settings
    raw = (
        db_session.connection()
        .execute(
            text(f"SELECT secrets_ciphertext::text FROM tenant_{admin.id}.integration_connections")
        )
        .scalar()
    )
    assert PASSWORD not in raw
    assert decrypt_secrets(raw, keys=app.config["SECRETS_KEYS"]) == {"password": PASSWORD}

    page = client.get(f"/t/{admin.slug}/integrations/")
    assert "Enabled" in page.text and PASSWORD not in page.text
    edit = client.get(f"/t/{admin.slug}/integrations/smtp/connect")
    assert 'value="127.0.0.1"' in edit.text and PASSWORD not in edit.text
    assert "leave this empty to keep it" in edit.text

    entry = tenant_session(db_session, admin).scalar(
        select(AuditEntry).where(AuditEntry.entity == "integration_connections")
    )
    assert entry.action == "insert" and entry.subject == "integrations:smtp"
    assert entry.changes["secrets_ciphertext"] == [None, "(hidden)"]
    audit_page = client.get(f"/t/{admin.slug}/audit/")
    assert "(hidden)" in audit_page.text and PASSWORD not in audit_page.text


def test_an_empty_secret_keeps_the_stored_one_when_editing(app, admin, client, db_session, mailbox):
    post_form(client, admin, "smtp/connect", smtp_form(mailbox))
    edited = post_form(
        client,
        admin,
        "smtp/connect",
        smtp_form(mailbox, password="", from_address="billing@acme.example"),
    )
    assert edited.status_code == 303
    connection = connection_of(db_session, admin)
    assert connection.settings["from_address"] == "billing@acme.example"
    assert decrypt_secrets(connection.secrets_ciphertext, keys=app.config["SECRETS_KEYS"]) == {
        "password": PASSWORD
    }
    session = tenant_session(db_session, admin)
    assert (
        session.scalar(
            select(IntegrationConnection.id).where(IntegrationConnection.id != connection.id)
        )
        is None
    )


def test_errors_are_shown_next_to_the_fields_and_nothing_is_saved(
    admin, client, db_session, mailbox
):
    refused = post_form(
        client, admin, "smtp/connect", smtp_form(mailbox, host="", port="five", security="ssl")
    )
    assert refused.status_code == 422
    for name, message in (
        ("host", "SMTP server is required"),
        ("port", "The port is a number"),
        ("security", "Choose starttls, tls or none"),
    ):
        error_at = refused.text.index(f'id="field-{name}-error"')
        assert refused.text.index(f'id="field-{name}"') < error_at
        assert message in refused.text[error_at : error_at + 200]
    assert 'value="five"' in refused.text  # the settings typed are kept ...
    assert PASSWORD not in refused.text  # ... the secret is not sent back
    assert connection_of(db_session, admin) is None


def test_a_finance_user_is_refused(client, make_tenant, make_user, add_member, login, mailbox):
    tenant = make_tenant()
    member = make_user()
    add_member(tenant, member, "finance")
    login(client, member)
    assert client.get(f"/t/{tenant.slug}/integrations/").status_code == 403
    home = client.get(f"/t/{tenant.slug}/")
    assert f"/t/{tenant.slug}/integrations/" not in home.text  # no nav link either
    token = csrf_token_from(home.text)
    connect = client.post(
        f"/t/{tenant.slug}/integrations/smtp/connect",
        data={**smtp_form(mailbox), "csrf_token": token},
    )
    assert connect.status_code == 403


def run_test_from_page(client, tenant, connection, run_jobs):
    """Press "Test connection", let a worker run, and return the page's self-polling fragment
    as htmx fetches it."""
    started = post_form(client, tenant, f"{connection.id}/test", {})
    assert started.status_code == 303
    page = client.get(started.headers["Location"])
    assert "Testing the connection…" in page.text and 'hx-trigger="load delay:1s"' in page.text
    fragment_at = page.text.index(f'id="connection-test-{connection.id}"')
    start = page.text.index('hx-get="', fragment_at) + len('hx-get="')
    poll_url = page.text[start : page.text.index('"', start)]
    still_waiting = client.get(poll_url, headers={"HX-Request": "true"})
    assert "Testing the connection…" in still_waiting.text  # nothing ran in the request
    run_jobs()
    fragment = client.get(poll_url, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "hx-trigger" not in fragment.text  # finished: it stops polling
    return fragment


def test_test_connection_runs_in_a_worker_against_the_smtp_server(
    admin, client, db_session, mailbox, run_jobs
):
    post_form(client, admin, "smtp/connect", smtp_form(mailbox))
    connection = connection_of(db_session, admin)
    fragment = run_test_from_page(client, admin, connection, run_jobs)
    assert "Test passed: Connected to 127.0.0.1" in fragment.text
    db_session.expire_all()
    connection = connection_of(db_session, admin)
    assert connection.last_success_at is not None and connection.last_error is None


def test_test_connection_to_a_dead_port_shows_the_error(
    admin, client, db_session, mailbox, run_jobs
):
    post_form(client, admin, "smtp/connect", smtp_form(mailbox, port=str(free_port())))
    connection = connection_of(db_session, admin)
    fragment = run_test_from_page(client, admin, connection, run_jobs)
    # Coarse on purpose: a closed port reads like a refused or unreachable address.
    coarse = "Could not connect to the mail server at that address and port."
    assert f"Test failed: {coarse}" in fragment.text
    connection = connection_of(db_session, admin)
    assert connection.last_error == coarse
    page = client.get(f"/t/{admin.slug}/integrations/")
    card = page.text[page.text.index('id="integration-smtp"') :].split("</article>")[0]
    assert "integration-status--error" in card and coarse in card
    assert "ConnectionRefusedError" not in card


def test_a_forged_test_job_id_is_not_found(admin, client, db_session, mailbox):
    post_form(client, admin, "smtp/connect", smtp_form(mailbox))
    connection = connection_of(db_session, admin)
    other = f"integration-test-{admin.id + 1}-{connection.id}-abc"
    assert (
        client.get(f"/t/{admin.slug}/integrations/{connection.id}/tests/{other}").status_code == 404
    )


def send_tenant_email(app, db_session, tenant, run_jobs, received_mail):
    session = tenant_session(db_session, tenant)
    with app.app_context():  # the hand-over to the workers after commit needs the app
        queue_message(
            session,
            channel="email",
            to="client@example.com",
            subject="Your invoice",
            text_body="Please find it attached.",
            idempotency_key=unique("integ:"),
            tenant_id=tenant.id,
        )
        session.commit()
    run_jobs()
    return received_mail()[-1]


def test_disabled_connection_is_skipped_and_the_platform_server_sends(
    app, admin, client, db_session, mailbox, run_jobs, received_mail
):
    post_form(client, admin, "smtp/connect", smtp_form(mailbox))
    first = send_tenant_email(app, db_session, admin, run_jobs, received_mail)
    assert first["From"] == "Acme Accounts <accounts@acme.example>"
    connection = connection_of(db_session, admin)
    assert connection.success_count == 1

    assert post_form(client, admin, f"{connection.id}/disable", {}).status_code == 303
    assert connection_of(db_session, admin).status == "disabled"
    second = send_tenant_email(app, db_session, admin, run_jobs, received_mail)
    # The platform's address, under the workspace's name (not the platform's).
    assert second["From"].addresses[0].addr_spec == parseaddr(app.config["MAIL_FROM"])[1]
    assert second["From"].addresses[0].display_name == admin.name
    assert connection_of(db_session, admin).success_count == 1  # not through the tenant's

    page = client.get(f"/t/{admin.slug}/integrations/")
    assert "Disabled" in page.text and ">Enable</button>" in page.text
    assert post_form(client, admin, f"{connection.id}/enable", {}).status_code == 303
    assert connection_of(db_session, admin).status == "enabled"


def test_disconnect_asks_first_then_deletes_secrets_and_routing(
    admin, client, db_session, keyed_connector, run_jobs
):
    form = {"account_id": unique("AC"), "api_key": "key-xyz"}
    assert post_form(client, admin, "keyed_sms/connect", form).status_code == 303
    run_jobs()  # the provider confirms the account; only then is it routed here
    connection = connection_of(db_session, admin, "keyed_sms")
    route = db_session.scalar(
        select(ProviderAccount).where(
            ProviderAccount.provider == "keyed_sms",
            ProviderAccount.account_key == form["account_id"],
        )
    )
    assert (route.tenant_id, route.connection_id) == (admin.id, connection.id)

    confirm = client.get(f"/t/{admin.slug}/integrations/{connection.id}/disconnect")
    assert confirm.status_code == 200 and "cannot be brought back" in confirm.text
    assert connection_of(db_session, admin, "keyed_sms").secrets_ciphertext is not None
    assert post_form(client, admin, f"{connection.id}/disconnect", {}).status_code == 303

    gone = connection_of(db_session, admin, "keyed_sms")
    assert (gone.status, gone.secrets_ciphertext) == ("disconnected", None)
    db_session.expire_all()
    assert (
        db_session.scalar(
            select(ProviderAccount).where(
                ProviderAccount.connection_id == connection.id,
                ProviderAccount.tenant_id == admin.id,
            )
        )
        is None
    )
    assert client.get(f"/t/{admin.slug}/integrations/{connection.id}/disconnect").status_code == 404
    # Connecting again starts a new connection; the old row stays as history.
    assert post_form(client, admin, "keyed_sms/connect", form).status_code == 303
    assert connection_of(db_session, admin, "keyed_sms").id != connection.id


def test_a_provider_account_belongs_to_one_workspace(
    app, client, db_session, make_user, make_tenant, login, keyed_connector, run_jobs
):
    account = unique("AC")
    first = make_tenant()
    session = tenant_session(db_session, first)
    with app.app_context():
        ciphertext = encrypt_secrets({"api_key": "key-1"})
    connection = IntegrationConnection(
        provider="keyed_sms",
        settings={"account_id": account},
        secrets_ciphertext=ciphertext,
        verification="verified",
    )
    session.add(connection)
    session.flush()
    session.add(
        ProviderAccount(
            provider="keyed_sms",
            account_key=account,
            tenant_id=first.id,
            connection_id=connection.id,
        )
    )
    session.commit()

    owner = make_user()
    second = make_tenant(owner=owner)
    login(client, owner)
    saved = post_form(
        client, second, "keyed_sms/connect", {"account_id": account, "api_key": "key-of-second"}
    )
    # Saving says nothing about other workspaces: the account is checked in a worker.
    assert saved.status_code == 303
    run_jobs()
    # The first workspace's credentials still work (this connector accepts any), so it keeps
    # the account; the second is told so only because its own credentials were confirmed.
    claim = connection_of(db_session, second, "keyed_sms")
    job_id = parse_qs(urlsplit(saved.headers["Location"]).query)["job_id"][0]
    result = client.get(f"/t/{second.slug}/integrations/{claim.id}/tests/{job_id}")
    assert "already connected to another Duebook workspace" in result.text
    assert "key-of-second" not in result.text
    assert claim.verification == "refused"
    routes = db_session.scalars(
        select(ProviderAccount).where(ProviderAccount.account_key == account)
    ).all()
    assert [(r.tenant_id, r.connection_id) for r in routes] == [(first.id, connection.id)]


def test_secrets_rotate_re_encrypts_with_the_new_key(app, db_session, make_tenant):
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    tenant = make_tenant()
    session = tenant_session(db_session, tenant)
    session.add(
        IntegrationConnection(
            provider="smtp",
            settings={"host": "mail.example"},
            secrets_ciphertext=encrypt_secrets({"password": "p"}, keys=[key_a]),
        )
    )
    session.commit()
    previous = app.config["SECRETS_KEYS"]
    # The keys already configured stay, for credentials other tests left committed.
    app.config["SECRETS_KEYS"] = [key_b, key_a, *previous]
    try:
        result = app.test_cli_runner().invoke(args=["secrets", "rotate"])
    finally:
        app.config["SECRETS_KEYS"] = previous
    assert result.exit_code == 0, result.output
    assert "Re-encrypted" in result.output
    stored = connection_of(db_session, tenant).secrets_ciphertext
    assert decrypt_secrets(stored, keys=[key_b]) == {"password": "p"}  # the old key dropped
    with pytest.raises(SecretsUnreadable):
        decrypt_secrets(stored, keys=[key_a])


def test_msg91_keeps_its_report_url_when_edited_and_one_sms_service_is_used(
    app, admin, client, db_session, monkeypatch, run_jobs
):
    standin = Msg91Standin().start()
    monkeypatch.setitem(app.config, "MSG91_API_BASE", standin.url)
    msg91 = {"authkey": standin.authkey, "sender_id": "DUEBKS", "entity_id": "1101234567890123456"}
    try:
        assert post_form(client, admin, "msg91/connect", msg91).status_code == 303
        token = connection_of(db_session, admin, "msg91").settings["webhook_token"]
        edited = post_form(client, admin, "msg91/connect", {**msg91, "authkey": "", "route": "4"})
        assert edited.status_code == 303
        run_jobs()  # MSG91 accepts the auth key: the report URL is routed here
    finally:
        standin.stop()
    connection = connection_of(db_session, admin, "msg91")
    assert (connection.settings["webhook_token"], connection.settings["route"]) == (token, "4")
    routes = db_session.scalars(
        select(ProviderAccount).where(ProviderAccount.tenant_id == admin.id)
    ).all()
    assert [(r.provider, r.account_key, r.connection_id) for r in routes] == [
        ("msg91", token, connection.id)
    ]
    page = client.get(f"/t/{admin.slug}/integrations/")
    assert f"/hooks/msg91/{token}" in page.text

    twilio = {"account_sid": "AC" + "0" * 32, "auth_token": "tw-token", "sender": "+15005550006"}
    assert post_form(client, admin, "twilio/connect", twilio).status_code == 303
    page = client.get(f"/t/{admin.slug}/integrations/")
    card = page.text[page.text.index('id="integration-twilio"') :].split("</article>")[0]
    assert "Not used while SMS in India (MSG91) is enabled" in card
