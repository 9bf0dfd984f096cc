"""The e-mail channel: HTML, text and a PDF attachment through a real SMTP server; the tenant's
own SMTP server used instead of the platform's; RFC 8058 one-click unsubscribe (EM-1, EM-2);
DKIM signatures verified offline; VERP bounce reports (EM-3). Every SMTP server here is an
aiosmtpd on 127.0.0.1 (EM-4)."""

from __future__ import annotations

import base64
import io
import re
from email import message_from_bytes, policy
from email.utils import parseaddr
from urllib.parse import urlsplit

import dkim
import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.clients.models import Client, Contact
from app.core.crypto import encrypt_secrets
from app.core.storage import get_storage, tenant_key
from app.devserver import free_port
from app.integrations.connectors import Outgoing
from app.integrations.connectors.smtp import RecipientRefused, SmtpConnector
from app.integrations.connectors.verp import read_verp_token, verp_token
from app.integrations.models import IntegrationConnection
from app.messaging.bounces import parse_dsn
from app.messaging.models import WebhookEvent
from app.outbox import services as outbox
from app.outbox.models import OutboxMessage
from app.settings.services import workspace_settings
from tests.helpers import csrf_token_from, tenant_session, unique

HOOK_TOKEN = "bounce-hook-token-for-tests"
TENANT_DOMAIN = "traders.example"


class RecordingServer:
    """An SMTP server that keeps each envelope (MAIL FROM, RCPT TO, the exact bytes) and
    refuses the addresses in `refuse` with a 550, as a receiving server does."""

    def __init__(self):
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), data))
        return "250 Message accepted for delivery"


@pytest.fixture(scope="module")
def smtp_server():
    server, port = RecordingServer(), free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port)  # loopback only (G1)
    controller.start()
    yield server, port
    controller.stop()


@pytest.fixture
def own_server(smtp_server):
    server, port = smtp_server
    server.envelopes.clear()
    server.refuse.clear()
    return server, port


@pytest.fixture(scope="module")
def dkim_key():
    """(private key PEM in PKCS#8, as `openssl genpkey` writes it; DNS TXT record value)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def dns_with(record: str, domain: str, selector: str):
    """A DNS lookup that knows one DKIM key record and nothing else: verification offline."""

    def lookup(name, timeout=5):
        return record.encode() if name == f"{selector}._domainkey.{domain}.".encode() else None

    return lookup


@pytest.fixture
def setup(db_session, make_tenant):
    """A tenant with one client and one contact who may be e-mailed."""
    tenant = make_tenant(name="Test Traders")
    session = tenant_session(db_session, tenant)
    client = Client(
        full_name="Kaveri Builders",
        short_name="Kaveri",
        location="local",
        country="IN",
        currency="INR",
        payment_terms="net",
        payment_days=30,
    )
    session.add(client)
    session.flush()
    contact = Contact(client_id=client.id, full_name="Asha Rao", email=f"{unique('asha')}@ex.org")
    session.add(contact)
    session.commit()
    return tenant, client.id, contact.id, contact.email


def connect_own_smtp(app, db_session, tenant, port, dkim_pem=None):
    raw = {
        "host": "127.0.0.1",
        "port": str(port),
        "security": "none",
        "from_address": f"Accounts <accounts@{TENANT_DOMAIN}>",
        "password": "kept-encrypted",
    }
    if dkim_pem:
        raw.update(dkim_domain=TENANT_DOMAIN, dkim_selector="duebook", dkim_private_key=dkim_pem)
    settings, secrets, errors = SmtpConnector.clean(raw)
    assert errors == {}
    with app.app_context():
        ciphertext = encrypt_secrets(secrets)
    session = tenant_session(db_session, tenant)
    connection = IntegrationConnection(
        provider="smtp", settings=settings, secrets_ciphertext=ciphertext, verification="not_needed"
    )
    session.add(connection)
    session.commit()
    return connection.id


def queue_to_contact(app, db_session, setup, **extra) -> int:
    tenant, client_id, contact_id, email = setup
    with app.app_context():
        message_id = outbox.queue_email(
            db_session,
            to=email,
            subject="Invoice INV-0007 from Test Traders",
            text_body="Your invoice INV-0007 is attached.",
            html_body="<p>Your invoice <b>INV-0007</b> is attached.</p>",
            tenant_id=tenant.id,
            client_id=client_id,
            contact_id=contact_id,
            idempotency_key=unique("invoice-mail:"),
            **extra,
        )
        db_session.commit()
    return message_id


def message_row(db_session, message_id) -> OutboxMessage:
    return db_session.get(OutboxMessage, message_id, populate_existing=True)


def contact_row(db_session, tenant, contact_id) -> Contact:
    return tenant_session(db_session, tenant).get(Contact, contact_id)


def signed_header_names(raw: bytes) -> list[str]:
    signature = message_from_bytes(raw, policy=policy.default)["DKIM-Signature"]
    tags = dict(
        part.strip().split("=", 1) for part in "".join(str(signature).split()).split(";") if part
    )
    return tags["h"].lower().split(":")


# Attachments, HTML and text (the invoice e-mail) ---------------------------------------------


def test_invoice_mail_arrives_with_html_text_and_the_pdf(
    app, db_session, setup, storage_root, run_jobs, received_mail
):
    tenant = setup[0]
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    key = tenant_key(tenant.id, "invoices", "INV-0007.pdf")
    get_storage(app).save(key, io.BytesIO(pdf))
    attachment = {"key": key, "filename": "INV-0007.pdf", "content_type": "application/pdf"}
    message_id = queue_to_contact(app, db_session, setup, payload={"attachments": [attachment]})

    run_jobs()

    [mail] = received_mail()
    assert mail["To"] == setup[3] and mail["Subject"] == "Invoice INV-0007 from Test Traders"
    assert mail.get_content_type() == "multipart/mixed"
    assert "attached." in mail.get_body(preferencelist=("plain",)).get_content()
    assert "<b>INV-0007</b>" in mail.get_body(preferencelist=("html",)).get_content()
    [part] = list(mail.iter_attachments())
    assert part.get_content_type() == "application/pdf"
    assert part.get_filename() == "INV-0007.pdf" and part.get_content() == pdf
    row = message_row(db_session, message_id)
    assert row.status == "sent" and row.provider == "smtp"


# Who the e-mail comes from (issue 16, finding 9) ----------------------------------------------


def test_a_clients_mail_comes_from_the_workspaces_name_at_the_platforms_address_with_its_reply_to(
    app, db_session, setup, run_jobs, received_mail
):
    tenant = setup[0]
    queue_to_contact(app, db_session, setup)
    run_jobs()
    [unnamed] = received_mail()
    platform_address = parseaddr(app.config["MAIL_FROM"])[1]
    assert unnamed["From"] == f"Test Traders <{platform_address}>"  # not "Duebook"
    assert unnamed["Reply-To"] is None

    settings = workspace_settings(db_session, tenant.id)
    settings.sender_name, settings.reply_to = "Kaveri Accounts", "accounts@kaveri.example"
    db_session.commit()
    queue_to_contact(app, db_session, setup)
    run_jobs()
    named = received_mail()[-1]
    assert named["From"] == f"Kaveri Accounts <{platform_address}>"
    assert named["Reply-To"] == "accounts@kaveri.example"


# The tenant's own server, DKIM (EM-1) -------------------------------------------------------


def test_tenant_smtp_connection_sends_dkim_signed_mail_covering_the_unsubscribe_headers(
    app, db_session, setup, own_server, dkim_key, run_jobs, received_mail
):
    server, port = own_server
    pem, record = dkim_key
    tenant = setup[0]
    connection_id = connect_own_smtp(app, db_session, tenant, port, dkim_pem=pem)
    message_id = queue_to_contact(app, db_session, setup)

    run_jobs()

    assert received_mail() == []  # not through the platform's server
    [(mail_from, rcpt_tos, raw)] = server.envelopes
    assert rcpt_tos == [setup[3]]
    assert re.fullmatch(
        rf"bounces\+{tenant.id}-{message_id}-[0-9a-f]{{20}}@{TENANT_DOMAIN}", mail_from
    )
    mail = message_from_bytes(raw, policy=policy.default)
    assert mail["From"] == f"Accounts <accounts@{TENANT_DOMAIN}>"
    assert re.fullmatch(r"<https?://[^>]+/u/[^>]+>", mail["List-Unsubscribe"])
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert dkim.verify(raw, dnsfunc=dns_with(record, TENANT_DOMAIN, "duebook"))
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject"} <= set(
        signed_header_names(raw)
    )
    # Changing a signed header breaks the signature: receivers can trust both headers.
    tampered = raw.replace(
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Clack",
    )
    assert not dkim.verify(tampered, dnsfunc=dns_with(record, TENANT_DOMAIN, "duebook"))
    assert message_row(db_session, message_id).status == "sent"
    connection = tenant_session(db_session, tenant).get(IntegrationConnection, connection_id)
    assert connection.success_count == 1


def test_platform_mail_is_signed_with_the_configured_key(
    app, db_session, own_server, dkim_key, tmp_path, monkeypatch, run_jobs
):
    server, port = own_server
    pem, record = dkim_key
    (tmp_path / "dkim.pem").write_text(pem)
    for name, value in {
        "SMTP_URL": f"smtp://127.0.0.1:{port}",
        "DKIM_DOMAIN": "duebook.example",
        "DKIM_SELECTOR": "mail2025",
        "DKIM_PRIVATE_KEY_FILE": str(tmp_path / "dkim.pem"),
        "BOUNCE_DOMAIN": "bounces.duebook.example",
    }.items():
        monkeypatch.setitem(app.config, name, value)
    with app.app_context():
        outbox.queue_email(
            db_session,
            to="new.user@ex.org",
            subject="Welcome",
            text_body="Hello",
            idempotency_key=unique("welcome:"),
        )
        db_session.commit()

    run_jobs()

    [(mail_from, _, raw)] = server.envelopes
    assert mail_from.startswith("bounces+p-") and mail_from.endswith("@bounces.duebook.example")
    assert dkim.verify(raw, dnsfunc=dns_with(record, "duebook.example", "mail2025"))


def test_dkim_key_is_checked_when_the_connection_is_saved(dkim_key):
    pem, _ = dkim_key
    base = {
        "host": "smtp.example.com",
        "port": "587",
        "security": "starttls",
        "from_address": "a@example.com",
    }

    _, _, errors = SmtpConnector.clean(
        {
            **base,
            "dkim_domain": "example.com",
            "dkim_selector": "s1",
            "dkim_private_key": "-----BEGIN PRIVATE KEY-----\n"
            "bm90IGEga2V5\n-----END PRIVATE KEY-----",
        }
    )
    assert "not a readable private key" in errors["dkim_private_key"]
    _, _, errors = SmtpConnector.clean({**base, "dkim_private_key": "just some words"})
    assert "BEGIN" in errors["dkim_private_key"]
    assert "DKIM domain" in errors["dkim_domain"] and "selector" in errors["dkim_selector"]
    _, _, errors = SmtpConnector.clean({**base, "dkim_domain": "example.com"})
    assert "private key" in errors["dkim_private_key"]

    # Pasted into a one-line password field, the key loses its line breaks: still accepted,
    # and stored in the form dkimpy reads.
    one_line = " ".join(pem.splitlines())
    settings, secrets, errors = SmtpConnector.clean(
        {**base, "dkim_domain": "example.com", "dkim_selector": "s1", "dkim_private_key": one_line}
    )
    assert errors == {}
    assert secrets["dkim_private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    assert settings["dkim_domain"] == "example.com"


def test_a_refused_recipient_is_a_permanent_bounce(app, own_server):
    server, port = own_server
    server.refuse.add("gone@ex.org")
    connector = SmtpConnector(
        settings={"url": f"smtp://127.0.0.1:{port}", "from_address": "a@duebook.example"},
        secrets={},
        config=app.config,
    )
    outgoing = Outgoing(
        message_id=1,
        idempotency_key="k1",
        tenant_id=None,
        channel="email",
        recipient="gone@ex.org",
        subject="Hi",
        text="Hello",
    )
    with pytest.raises(RecipientRefused) as refused:
        connector.send(outgoing)
    assert refused.value.permanent and refused.value.bounced
    assert "User unknown" in str(refused.value)
    assert server.envelopes == []


# One-click unsubscribe (EM-2) ---------------------------------------------------------------


def unsubscribe_path(mail) -> str:
    link = re.fullmatch(r"<([^>]+)>", mail["List-Unsubscribe"].strip()).group(1)
    return urlsplit(link).path


def test_one_click_unsubscribe_needs_no_cookie_is_idempotent_and_stops_later_mail(
    app, db_session, setup, run_jobs, received_mail
):
    tenant, _, contact_id, _ = setup
    queue_to_contact(app, db_session, setup)
    run_jobs()
    [mail] = received_mail()
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    path = unsubscribe_path(mail)
    mailbox_provider = app.test_client(use_cookies=False)
    one_click = {"List-Unsubscribe": "One-Click"}

    response = mailbox_provider.post(path, data=one_click)

    assert response.status_code == 200
    contact = contact_row(db_session, tenant, contact_id)
    assert contact.email_consent == "opted_out"
    assert contact.email_consent_source == "one-click unsubscribe"
    first_recorded = contact.email_consent_at
    audit = (
        tenant_session(db_session, tenant)
        .scalars(
            select(AuditEntry).where(
                AuditEntry.entity == "client_contacts", AuditEntry.entity_id == str(contact_id)
            )
        )
        .all()
    )
    assert any(entry.changes.get("email_consent") == [None, "opted_out"] for entry in audit)

    again = mailbox_provider.post(path, data=one_click)
    assert again.status_code == 200
    assert contact_row(db_session, tenant, contact_id).email_consent_at == first_recorded

    later = queue_to_contact(app, db_session, setup)
    run_jobs()
    assert len(received_mail()) == 1  # nothing new arrived
    assert message_row(db_session, later).status == "suppressed"


def test_only_the_one_click_post_skips_csrf_and_forged_tokens_are_not_found(
    app, db_session, setup, run_jobs, received_mail
):
    tenant, _, contact_id, _ = setup
    queue_to_contact(app, db_session, setup)
    run_jobs()
    path = unsubscribe_path(received_mail()[0])
    anonymous = app.test_client(use_cookies=False)

    assert anonymous.post(path, data={"unsubscribe": "yes"}).status_code == 400  # no CSRF token
    assert anonymous.post(path).status_code == 400
    assert contact_row(db_session, tenant, contact_id).email_consent is None

    forged = path[:-3] + ("abc" if not path.endswith("abc") else "xyz")
    assert anonymous.post(forged, data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert anonymous.get(forged).status_code == 404
    assert anonymous.get("/u/not-a-token").status_code == 404


def test_the_unsubscribe_page_asks_first_and_its_button_unsubscribes(
    app, client, db_session, setup, run_jobs, received_mail
):
    tenant, _, contact_id, email = setup
    queue_to_contact(app, db_session, setup)
    run_jobs()
    path = unsubscribe_path(received_mail()[0])

    page = client.get(path)  # what a link scanner or a click does: nothing changes
    assert page.status_code == 200
    assert f"Unsubscribe {email} from Test Traders?" in page.text
    assert contact_row(db_session, tenant, contact_id).email_consent is None

    response = client.post(path, data={"csrf_token": csrf_token_from(page.text)})
    assert response.status_code == 303
    contact = contact_row(db_session, tenant, contact_id)
    assert (contact.email_consent, contact.email_consent_source) == (
        "opted_out",
        "unsubscribe page",
    )
    assert "will get no more e-mail from Test Traders" in client.get(path).text


# Bounces (EM-3) -----------------------------------------------------------------------------


def delivery_report(verp: str, recipient: str, action: str, status: str, diagnostic: str) -> bytes:
    """A bounce report as mail servers write them (RFC 3464), addressed to the VERP sender."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.ex.org>\r\n"
        f"To: {verp}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        '\tboundary="report-boundary"\r\n'
        "\r\n"
        "--report-boundary\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n"
        "--report-boundary\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.ex.org\r\n"
        "Arrival-Date: Mon, 3 Mar 2025 10:00:00 +0000\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; inbound.ex.org\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        "--report-boundary\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"Return-Path: <{verp}>\r\n"
        "Subject: Invoice INV-0007 from Test Traders\r\n\r\n"
        "--report-boundary--\r\n"
    ).encode()


def bounce_events(db_session, tenant_id) -> int:
    return db_session.scalar(
        select(func.count())
        .select_from(WebhookEvent)
        .where(WebhookEvent.provider == "email_bounce", WebhookEvent.tenant_id == tenant_id)
    )


def test_a_hard_bounce_marks_message_and_contact_and_a_delay_does_not(
    app, client, db_session, setup, own_server, monkeypatch, run_jobs
):
    monkeypatch.setitem(app.config, "BOUNCE_WEBHOOK_TOKEN", HOOK_TOKEN)
    server, port = own_server
    tenant, _, contact_id, email = setup
    connect_own_smtp(app, db_session, tenant, port)
    message_id = queue_to_contact(app, db_session, setup)
    run_jobs()
    [(verp, _, _)] = server.envelopes
    hook = f"/hooks/email/bounces/{HOOK_TOKEN}"

    delayed = delivery_report(verp, email, "delayed", "4.4.1", "421 4.4.1 try again later")
    assert client.post(hook, data=delayed).status_code == 204
    run_jobs()
    assert message_row(db_session, message_id).status == "sent"
    assert contact_row(db_session, tenant, contact_id).email_bounced_at is None

    failed = delivery_report(
        verp, email, "failed", "5.1.1 (bad mailbox)", "550 5.1.1 <x>: user unknown"
    )
    assert client.post(hook, data=failed).status_code == 204
    assert client.post(hook, data=failed).status_code == 204  # the relay retried: stored once
    assert bounce_events(db_session, tenant.id) == 2
    run_jobs()
    message = message_row(db_session, message_id)
    assert message.status == "bounced" and "user unknown" in message.last_error
    contact = contact_row(db_session, tenant, contact_id)
    assert contact.email_bounced_at is not None and "user unknown" in contact.email_bounce_reason

    # From now on the address is refused at send time.
    later = queue_to_contact(app, db_session, setup)
    run_jobs()
    assert len(server.envelopes) == 1
    assert message_row(db_session, later).status == "suppressed"


def test_the_bounce_hook_refuses_a_wrong_token_and_drops_forged_addresses(
    app, client, db_session, setup, monkeypatch
):
    tenant, _, _, email = setup
    with app.app_context():
        genuine = verp_token(app.config["SECRET_KEY"], tenant.id, 12345)
    verp = f"bounces+{genuine}@{TENANT_DOMAIN}"
    report = delivery_report(verp, email, "failed", "5.1.1", "550 user unknown")

    assert client.post(f"/hooks/email/bounces/{HOOK_TOKEN}", data=report).status_code == 404
    monkeypatch.setitem(app.config, "BOUNCE_WEBHOOK_TOKEN", HOOK_TOKEN)
    assert client.post("/hooks/email/bounces/guessed", data=report).status_code == 404

    # Another tenant's id under this tenant's signature: not ours, acknowledged and dropped.
    forged = report.replace(f"bounces+{tenant.id}-".encode(), f"bounces+{tenant.id + 1}-".encode())
    assert client.post(f"/hooks/email/bounces/{HOOK_TOKEN}", data=forged).status_code == 204
    assert bounce_events(db_session, tenant.id) == 0
    assert bounce_events(db_session, tenant.id + 1) == 0


def test_a_bounce_report_with_nul_bytes_or_over_2_mb_is_refused_and_stored_nowhere(
    app, client, db_session, setup, monkeypatch
):
    monkeypatch.setitem(app.config, "BOUNCE_WEBHOOK_TOKEN", HOOK_TOKEN)
    tenant, _, _, email = setup
    with app.app_context():
        verp = f"bounces+{verp_token(app.config['SECRET_KEY'], tenant.id, 12345)}@{TENANT_DOMAIN}"
    report = delivery_report(verp, email, "failed", "5.1.1", "550 user unknown")
    hook = f"/hooks/email/bounces/{HOOK_TOKEN}"
    # A genuine VERP address, and a NUL byte PostgreSQL cannot store (was an HTTP 500).
    nul = report.replace(b"user unknown", b"user\x00unknown")
    response = client.post(hook, data=nul)
    assert response.status_code == 400 and response.text == "The report contains a NUL byte."
    huge = report + b"X" * (2 * 1024 * 1024)
    response = client.post(hook, data=huge)
    assert response.status_code == 413 and response.text == "The report is too large."
    assert bounce_events(db_session, tenant.id) == 0
    assert client.post(hook, data=report).status_code == 204  # the same report, whole
    assert bounce_events(db_session, tenant.id) == 1


def test_verp_tokens_and_dsn_parsing():
    token = verp_token("secret", 42, 7)
    assert read_verp_token("secret", token) == (42, 7)
    assert read_verp_token("secret", token.upper()) == (42, 7)  # servers may change case
    assert read_verp_token("other-secret", token) is None
    assert read_verp_token("secret", token.replace("42-", "43-", 1)) is None
    assert read_verp_token("secret", verp_token("secret", None, 7)) == (None, 7)
    assert len(f"bounces+{verp_token('secret', 10**9, 10**12)}") <= 64  # RFC 5321 local part

    report = delivery_report(
        "bounces+x@ex.org", "a@ex.org", "failed", "5.2.2", "552 5.2.2 mailbox full"
    )
    [failed] = parse_dsn(report)
    assert (failed.recipient, failed.action, failed.status) == ("a@ex.org", "failed", "5.2.2")
    assert failed.diagnostic == "552 5.2.2 mailbox full" and failed.hard_bounce
    soft = delivery_report("b@ex.org", "a@ex.org", "failed", "4.4.7", "timeout")
    assert not parse_dsn(soft)[0].hard_bounce
    assert parse_dsn(b"From: a@ex.org\r\nSubject: Out of office\r\n\r\nBack Monday.\r\n") == []
