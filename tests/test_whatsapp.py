"""WhatsApp Business Cloud API channel, against the WhatsApp stand-in on 127.0.0.1: a template
with parameters and a PDF header reaches the recipient as written; Meta's signed webhooks move
the message forward only, land on the right tenant and open the 24 h window; throttling is
retried, a refused template is dead-lettered, no consent sends nothing.

The stand-in's status webhooks are captured by a small loopback server and replayed through
the Flask test client (the app's database work stays inside the test's transaction)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from app.clients import services as clients
from app.clients.models import Contact
from app.core.crypto import encrypt_secrets
from app.core.handover import hand_over_now
from app.core.storage import get_storage, tenant_key
from app.integrations.connectors import DeliveryError, Outgoing
from app.integrations.connectors.whatsapp import (
    PROVIDER,
    WhatsAppCloudConnector,
    waba_account_key,
)
from app.integrations.models import IntegrationConnection, ProviderAccount
from app.message_templates.models import MessageTemplate
from app.messaging.models import WebhookEvent
from app.outbox import services as outbox
from app.outbox.models import OutboxMessage
from app.sandbox.standins import WhatsAppStandin, hub_signature
from jobs.whatsapp import sync_whatsapp_templates
from tests.helpers import tenant_session, unique

PHONE_A, PHONE_B = "100000000000001", "100000000000002"
TOKEN_A, TOKEN_B = "token-of-a", "token-of-b"
WABA = "200000000000001"
SECRET = "app-secret"
VERIFY = "verify-me"
USER = "919876543210"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
TEMPLATE = {
    "name": "invoice_due",
    "body": "Dear {{1}}, invoice {{2}} for {{3}} is due on {{4}}.",
    "header": "DOCUMENT",
}


class Capture:
    """A loopback server that keeps what the stand-in POSTs (its signed webhooks)."""

    def __init__(self) -> None:
        self.posts: list[tuple[bytes, str]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                capture.posts.append((body, self.headers.get("X-Hub-Signature-256", "")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/whatsapp"

    def take(self) -> list[tuple[bytes, str]]:
        taken, self.posts = self.posts, []
        return taken

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def capture():
    receiver = Capture()
    yield receiver
    receiver.stop()


@pytest.fixture
def standin(app, capture, monkeypatch, tmp_path):
    server = WhatsAppStandin(
        phone_number_id=PHONE_A,
        token=TOKEN_A,
        waba_id=WABA,
        app_secret=SECRET,
        webhook_url=capture.url,
        webhook_retries=0,
        templates=[TEMPLATE],
    ).start()
    server.add_phone_number(PHONE_B, TOKEN_B)
    for name, value in {
        "WHATSAPP_API_BASE": server.url,
        "WHATSAPP_API_VERSION": "v21.0",
        "WHATSAPP_APP_SECRET": SECRET,
        "WHATSAPP_VERIFY_TOKEN": VERIFY,
        "STORAGE_ROOT": str(tmp_path / "storage"),
    }.items():
        monkeypatch.setitem(app.config, name, value)
    yield server
    server.stop()


def connect(app, db_session, tenant, phone_number_id=PHONE_A, token=TOKEN_A, **settings):
    session = tenant_session(db_session, tenant)
    with app.app_context():
        ciphertext = encrypt_secrets({"access_token": token})
    connection = IntegrationConnection(
        provider=PROVIDER,
        settings={
            "phone_number_id": phone_number_id,
            "waba_id": WABA,
            "default_language": "en_US",
            **settings,
        },
        secrets_ciphertext=ciphertext,
        verification="verified",
    )
    session.add(connection)
    session.flush()
    session.add(
        ProviderAccount(
            provider=PROVIDER,
            account_key=phone_number_id,
            tenant_id=tenant.id,
            connection_id=connection.id,
        )
    )
    session.commit()
    return connection.id


def add_contact(db_session, tenant, phone=f"+{USER}", consent=True) -> SimpleNamespace:
    session = tenant_session(db_session, tenant)
    client = clients.create_client(
        session,
        clients.client_context(session, tenant),
        {
            "full_name": "Asha Constructions",
            "short_name": unique("AC"),
            "location": "local",
            "payment_terms": "net",
            "payment_days": "30",
        },
    )
    contact = Contact(client_id=client.id, full_name="Asha Rao", phone=phone)
    session.add(contact)
    session.flush()
    if consent:
        clients.set_consent(contact, "whatsapp", True, "signed form")
    session.commit()
    return SimpleNamespace(id=contact.id, phone=phone, client_id=client.id)


def queue(app, db_session, tenant, contact, whatsapp: dict, *, pdf: bool = False, text="Hi"):
    session = tenant_session(db_session, tenant)
    payload = {"whatsapp": whatsapp}
    if pdf:
        key = tenant_key(tenant.id, "invoices", unique("inv") + ".pdf")
        get_storage(app).save(key, io.BytesIO(PDF))
        payload["attachments"] = [
            {"key": key, "filename": "INV-0042.pdf", "content_type": "application/pdf"}
        ]
    with app.app_context():
        message_id = outbox.queue_message(
            session,
            channel="whatsapp",
            to=contact.phone,
            subject="Invoice due",
            text_body=text,
            idempotency_key=unique("wa:"),
            payload=payload,
            tenant_id=tenant.id,
            client_id=contact.client_id,
            contact_id=contact.id,
        )
        session.commit()
    return message_id


def invoice_template(**extra) -> dict:
    return {
        "type": "template",
        "name": "invoice_due",
        "language": "en_US",
        "body_params": ["Asha", "INV-0042", "₹ 1,18,000.00", "15 Aug 2026"],
        "document": {"filename": "INV-0042.pdf"},
        **extra,
    }


def message(db_session, message_id) -> OutboxMessage:
    return db_session.get(OutboxMessage, message_id, populate_existing=True)


def post_hook(client, body: bytes, signature: str | None = None):
    headers = {"Content-Type": "application/json"}
    signature = hub_signature(SECRET, body) if signature is None else signature
    if signature:
        headers["X-Hub-Signature-256"] = signature
    return client.post("/hooks/whatsapp", data=body, headers=headers)


def stored_events(db_session) -> int:
    return db_session.scalar(
        select(func.count()).select_from(WebhookEvent).where(WebhookEvent.provider == PROVIDER)
    )


def wait_for_hooks(standin, capture, count: int) -> list[tuple[bytes, str]]:
    standin.webhooks.wait_idle()
    deadline = time.monotonic() + 5
    while len(capture.posts) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return capture.take()


# -- sending ------------------------------------------------------------------------------------


def test_template_with_parameters_and_pdf_reaches_the_recipient_and_statuses_move_forward(
    app, client, db_session, make_tenant, standin, capture, run_jobs
):
    tenant = make_tenant()
    connect(app, db_session, tenant)
    contact = add_contact(db_session, tenant)
    message_id = queue(app, db_session, tenant, contact, invoice_template(), pdf=True)
    run_jobs()

    [seen] = standin.recorded()
    assert seen["to"] == USER and seen["type"] == "template"
    assert seen["text"] == "Dear Asha, invoice INV-0042 for ₹ 1,18,000.00 is due on 15 Aug 2026."
    assert seen["document"]["filename"] == "INV-0042.pdf"
    assert seen["document"]["mime_type"] == "application/pdf"
    assert seen["document"]["size"] == len(PDF)
    sent = message(db_session, message_id)
    assert sent.status == "sent" and sent.provider == PROVIDER
    assert sent.provider_message_id == seen["message_id"]
    assert seen["idempotency_key"] == sent.idempotency_key

    sent_hook, delivered_hook, read_hook = wait_for_hooks(standin, capture, 3)
    # Out of order and twice: read first, then delivered and sent late, read again.
    assert post_hook(client, read_hook[0], read_hook[1]).status_code == 200
    run_jobs()
    assert message(db_session, message_id).status == "read"
    for body, signature in (delivered_hook, sent_hook, read_hook):
        assert post_hook(client, body, signature).status_code == 200
    run_jobs()
    done = message(db_session, message_id)
    assert done.status == "read" and done.read_at is not None and done.delivered_at is not None
    # The repeated POST was stored once.
    assert stored_events(db_session) == 3


def test_sent_then_delivered_then_read_in_order(
    app, client, db_session, make_tenant, standin, capture, run_jobs
):
    tenant = make_tenant()
    connect(app, db_session, tenant)
    contact = add_contact(db_session, tenant)
    message_id = queue(app, db_session, tenant, contact, invoice_template(), pdf=True)
    run_jobs()
    seen = []
    for body, signature in wait_for_hooks(standin, capture, 3):
        post_hook(client, body, signature)
        run_jobs()
        seen.append(message(db_session, message_id).status)
    assert seen == ["sent", "delivered", "read"]


def test_failed_status_with_errors_is_recorded(
    app, client, db_session, make_tenant, standin, capture, run_jobs
):
    standin.fail_recipient(
        USER,
        code=131026,
        title="Message undeliverable",
        details="Receiver is incapable of receiving this message",
    )
    tenant = make_tenant()
    connect(app, db_session, tenant)
    contact = add_contact(db_session, tenant)
    message_id = queue(app, db_session, tenant, contact, invoice_template(), pdf=True)
    run_jobs()
    [(body, signature)] = wait_for_hooks(standin, capture, 1)
    post_hook(client, body, signature)
    run_jobs()
    failed = message(db_session, message_id)
    assert failed.status == "failed" and failed.failed_at is not None
    assert "131026" in failed.last_error and "incapable" in failed.last_error


def test_throttled_send_is_put_back_and_delivered_once_later(
    app, db_session, make_tenant, standin, run_jobs
):
    tenant = make_tenant()
    connect(app, db_session, tenant)
    contact = add_contact(db_session, tenant)
    standin.inject_fault(429, retry_after=60)
    message_id = queue(app, db_session, tenant, contact, invoice_template(), pdf=True)
    run_jobs()
    waiting = message(db_session, message_id)
    assert waiting.status == "pending" and "throttling" in waiting.last_error
    assert waiting.next_attempt_at > datetime.now(UTC) + timedelta(seconds=30)  # Retry-After
    assert standin.recorded() == []

    waiting.next_attempt_at = datetime.now(UTC)  # the back-off has passed
    db_session.commit()
    with app.app_context():
        hand_over_now(outbox.delivery_jobs([(message_id, tenant.id, "messages")]))
    run_jobs()
    assert message(db_session, message_id).status == "sent"
    assert len(standin.recorded()) == 1


def test_throttling_without_retry_after_waits_a_few_seconds(app, standin):
    connector = connector_for(app)
    standin.register_template("hello", "Hello.")
    standin.inject_fault(429)
    with pytest.raises(DeliveryError) as caught:
        connector.send(outgoing_template("hello"))
    assert not caught.value.permanent and caught.value.retry_after == 5.0
    # The pair rate (same sender and recipient too often) is 131056: wait, then try again.
    standin.pair_interval = 60
    assert connector.send(outgoing_template("hello")).provider_message_id.startswith("wamid.")
    with pytest.raises(DeliveryError) as caught:
        connector.send(outgoing_template("hello"))
    assert not caught.value.permanent and caught.value.retry_after == 6.0
    assert "131056" in str(caught.value)


def test_wrong_parameter_count_is_dead_lettered_with_a_clear_reason(
    app, db_session, make_tenant, standin, run_jobs
):
    tenant = make_tenant()
    connect(app, db_session, tenant)
    contact = add_contact(db_session, tenant)
    spec = invoice_template(body_params=["Asha", "INV-0042"])
    message_id = queue(app, db_session, tenant, contact, spec, pdf=True)
    run_jobs()
    dead = message(db_session, message_id)
    assert dead.status == "dead" and dead.attempts == 1
    assert dead.last_error.startswith("WhatsApp refused the template parameters")
    assert "132000" in dead.last_error
    assert standin.recorded() == []


def test_no_opt_in_is_suppressed_and_nothing_reaches_whatsapp(
    app, db_session, make_tenant, standin, run_jobs
):
    tenant = make_tenant()
    connect(app, db_session, tenant)
    contact = add_contact(db_session, tenant, consent=False)
    message_id = queue(app, db_session, tenant, contact, invoice_template(), pdf=True)
    run_jobs()
    assert message(db_session, message_id).status == "suppressed"
    assert standin.stats()["requests"] == 0


def test_session_message_needs_a_message_from_the_contact_in_the_last_24_hours(
    app, client, db_session, make_tenant, standin, capture, run_jobs
):
    tenant = make_tenant()
    connect(app, db_session, tenant)
    contact = add_contact(db_session, tenant)
    outside = queue(app, db_session, tenant, contact, {"type": "text"}, text="Thanks!")
    run_jobs()
    assert message(db_session, outside).status == "suppressed"
    assert standin.stats()["requests"] == 0

    # The contact writes: the window opens, and a session message goes out as plain text.
    standin.simulate_inbound(USER, "Got the invoice, paying Friday")
    [(body, signature)] = wait_for_hooks(standin, capture, 1)
    assert post_hook(client, body, signature).status_code == 200
    run_jobs()
    session = tenant_session(db_session, tenant)
    assert session.get(Contact, contact.id).whatsapp_last_inbound_at is not None
    inside = queue(app, db_session, tenant, contact, {"type": "text"}, text="Thanks!")
    run_jobs()
    assert message(db_session, inside).status == "sent"
    assert standin.recorded()[-1]["text"] == "Thanks!"


def test_a_resend_after_a_lost_outcome_reaches_the_recipient_once(
    app, db_session, make_tenant, standin, run_jobs, redis
):
    """A worker died after WhatsApp took the message but before recording it: the lease runs
    out and the message is sent again with the same biz_opaque_callback_data."""
    tenant = make_tenant()
    connect(app, db_session, tenant)
    contact = add_contact(db_session, tenant)
    message_id = queue(app, db_session, tenant, contact, invoice_template(), pdf=True)
    run_jobs()
    first = message(db_session, message_id)
    wamid = first.provider_message_id
    first.status, first.provider_message_id = "sending", None
    first.locked_until = datetime.now(UTC) - timedelta(seconds=1)
    db_session.commit()
    with app.app_context():
        hand_over_now(outbox.delivery_jobs([(message_id, tenant.id, "messages")]))
    run_jobs()
    assert message(db_session, message_id).provider_message_id == wamid
    assert len(standin.recorded()) == 1 and standin.stats()["duplicate_keys"] == 1


def test_a_document_goes_out_inside_the_session_window(
    app, db_session, make_tenant, standin, run_jobs
):
    tenant = make_tenant()
    connect(app, db_session, tenant)
    contact = add_contact(db_session, tenant)
    session = tenant_session(db_session, tenant)
    session.get(Contact, contact.id).whatsapp_last_inbound_at = datetime.now(UTC)
    session.commit()
    standin.simulate_inbound(USER, "Please send the invoice again")
    spec = {"type": "document"}
    message_id = queue(app, db_session, tenant, contact, spec, pdf=True, text="Your invoice")
    run_jobs()
    assert message(db_session, message_id).status == "sent"
    [seen] = standin.recorded()
    assert seen["type"] == "document" and seen["text"] == "Your invoice"
    assert seen["document"]["filename"] == "INV-0042.pdf"
    assert seen["document"]["size"] == len(PDF)


def test_a_reply_marks_the_message_replied_and_stop_opts_out(
    app, client, db_session, make_tenant, standin, capture, run_jobs
):
    tenant = make_tenant()
    connect(app, db_session, tenant)
    contact = add_contact(db_session, tenant)
    message_id = queue(app, db_session, tenant, contact, invoice_template(), pdf=True)
    run_jobs()
    wait_for_hooks(standin, capture, 3)  # its own status reports, not needed here
    wamid = message(db_session, message_id).provider_message_id

    standin.simulate_inbound(USER, "Will pay tomorrow", context_id=wamid)
    standin.simulate_inbound(USER, "stop")
    for body, signature in wait_for_hooks(standin, capture, 2):
        post_hook(client, body, signature)
    run_jobs()
    assert message(db_session, message_id).replied_at is not None
    session = tenant_session(db_session, tenant)
    stopped = session.get(Contact, contact.id)
    assert stopped.whatsapp_consent == "opted_out"
    assert stopped.whatsapp_consent_source == "WhatsApp STOP reply"

    later = queue(app, db_session, tenant, contact, invoice_template(), pdf=True)
    run_jobs()
    assert message(db_session, later).status == "suppressed"


# -- the receiver -------------------------------------------------------------------------------


def test_table_0_4_vector_is_accepted_and_one_changed_byte_is_rejected(
    app, client, db_session, monkeypatch
):
    monkeypatch.setitem(app.config, "WHATSAPP_APP_SECRET", "test_secret")
    body = b'{"entry":[{"id":"1","changes":[]}],"object":"whatsapp_business_account"}'
    vector = "sha256=7932f5e45aaca9ef56a07c5f063be99c7333ecc9c95fa6558391b2600689a5ad"
    assert post_hook(client, body, vector).status_code == 200
    tampered = body.replace(b'"1"', b'"2"')
    assert post_hook(client, tampered, vector).status_code == 401
    assert post_hook(client, body, "").status_code == 401  # no signature at all
    assert stored_events(db_session) == 0


def test_a_bad_signature_stores_nothing(app, client, db_session, make_tenant, standin):
    tenant = make_tenant()
    connect(app, db_session, tenant)
    body = status_body(PHONE_A, "wamid.X", "delivered")
    wrong = "sha256=" + hmac.new(b"other", body, hashlib.sha256).hexdigest()
    assert post_hook(client, body, wrong).status_code == 401
    assert stored_events(db_session) == 0
    assert post_hook(client, body).status_code == 200
    assert stored_events(db_session) == 1


def test_no_app_secret_configured_is_a_clear_503(app, client, db_session, monkeypatch):
    monkeypatch.setitem(app.config, "WHATSAPP_APP_SECRET", None)
    response = post_hook(client, b"{}", "sha256=00")
    assert response.status_code == 503 and "not configured" in response.text


def test_verification_handshake(app, client, standin):
    handshake = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    answer = client.get("/hooks/whatsapp", query_string={**handshake, "hub.verify_token": VERIFY})
    assert answer.status_code == 200 and answer.data == b"1158201444"
    assert answer.mimetype == "text/plain"
    wrong = client.get("/hooks/whatsapp", query_string={**handshake, "hub.verify_token": "x"})
    assert wrong.status_code == 403 and b"1158201444" not in wrong.data


def test_unknown_phone_number_is_acknowledged_and_stored_nowhere(client, db_session, standin):
    body = status_body("999999999999999", "wamid.Z", "delivered")
    assert post_hook(client, body).status_code == 200
    assert stored_events(db_session) == 0


def test_tenant_a_number_never_touches_tenant_b_messages(
    app, client, db_session, make_tenant, standin, capture, run_jobs
):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    connect(app, db_session, tenant_a)
    connect(app, db_session, tenant_b, PHONE_B, TOKEN_B)
    contact_a = add_contact(db_session, tenant_a)
    contact_b = add_contact(db_session, tenant_b)
    message_a = queue(app, db_session, tenant_a, contact_a, invoice_template(), pdf=True)
    message_b = queue(app, db_session, tenant_b, contact_b, invoice_template(), pdf=True)
    run_jobs()
    standin.webhooks.wait_idle()
    capture.take()
    wamid_b = message(db_session, message_b).provider_message_id
    key_b = message(db_session, message_b).idempotency_key

    # A report about B's message, arriving through A's number, is applied to A only: no-op.
    forged = status_body(PHONE_A, wamid_b, "read", key=key_b)
    assert post_hook(client, forged).status_code == 200
    run_jobs()
    assert message(db_session, message_b).status == "sent"
    # One POST spanning both numbers is split: each tenant gets only its own changes.
    wamid_a = message(db_session, message_a).provider_message_id
    both = two_tenant_body(wamid_a, wamid_b)
    assert post_hook(client, both).status_code == 200
    events = db_session.scalars(
        select(WebhookEvent).where(WebhookEvent.provider == PROVIDER).order_by(WebhookEvent.id)
    ).all()
    split = {e.tenant_id: json.loads(e.body) for e in events[-2:]}
    assert set(split) == {tenant_a.id, tenant_b.id}
    run_jobs()
    assert message(db_session, message_a).status == "delivered"
    assert message(db_session, message_b).status == "read"
    phones = {
        tenant_id: {
            c["value"]["metadata"]["phone_number_id"] for e in body["entry"] for c in e["changes"]
        }
        for tenant_id, body in split.items()
    }
    assert phones == {tenant_a.id: {PHONE_A}, tenant_b.id: {PHONE_B}}


# -- templates and the connection check ---------------------------------------------------------


def test_template_approvals_are_synced_and_followed_by_webhook(
    app, client, db_session, make_tenant, standin, run_jobs
):
    standin.register_template("payment_receipt", "Received {{1}}, thank you.", status="PENDING")
    standin.register_template("old_notice", "Old.", status="PAUSED", language="hi")
    tenant = make_tenant()
    connection_id = connect(app, db_session, tenant)
    session = tenant_session(db_session, tenant)
    rows = {
        "due": MessageTemplate(
            name="Invoice due",
            channel="whatsapp",
            purpose="invoice",
            language="en",
            body="x",
            provider_template_name="invoice_due",
        ),
        "receipt": MessageTemplate(
            name="Receipt",
            channel="whatsapp",
            purpose="receipt",
            language="en_US",
            body="x",
            provider_template_name="payment_receipt",
        ),
        "notice": MessageTemplate(
            name="Notice",
            channel="whatsapp",
            purpose="notice_1",
            language="hi",
            body="x",
            provider_template_name="old_notice",
        ),
        "gone": MessageTemplate(
            name="Gone",
            channel="whatsapp",
            purpose="campaign",
            language="en",
            body="x",
            provider_template_name="nothing",
        ),
    }
    session.add_all(rows.values())
    session.commit()
    ids = {key: row.id for key, row in rows.items()}
    with app.app_context():
        result = sync_whatsapp_templates(tenant_id=tenant.id)
    assert result == {"updated": 3, "missing": ["Gone"]}
    session = tenant_session(db_session, tenant)
    states = {key: session.get(MessageTemplate, row_id) for key, row_id in ids.items()}
    assert {key: row.provider_status for key, row in states.items()} == {
        "due": "approved",
        "receipt": "pending",
        "notice": "paused",
        "gone": None,
    }
    assert all(row.provider_synced_at is not None for row in states.values())

    # Meta approves the receipt template: its status webhook (routed by the WABA id) says so.
    session.add(
        ProviderAccount(
            provider=PROVIDER,
            account_key=waba_account_key(WABA),
            tenant_id=tenant.id,
            connection_id=connection_id,
        )
    )
    session.commit()
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": WABA,
                    "time": 1,
                    "changes": [
                        {
                            "field": "message_template_status_update",
                            "value": {
                                "event": "APPROVED",
                                "message_template_id": 1,
                                "message_template_name": "payment_receipt",
                                "message_template_language": "en_US",
                                "reason": "NONE",
                            },
                        }
                    ],
                }
            ],
        },
    ).encode()
    assert post_hook(client, body).status_code == 200
    run_jobs()
    session = tenant_session(db_session, tenant)
    assert session.get(MessageTemplate, ids["receipt"]).provider_status == "approved"


def test_connection_check_names_the_number_and_a_wrong_token_is_explained(app, standin):
    line = connector_for(app).test_connection()
    assert "Connected to WhatsApp number" in line and "1 of 1 templates approved" in line
    with pytest.raises(DeliveryError) as caught:
        connector_for(app, token="expired").test_connection()
    assert caught.value.permanent and "access token" in str(caught.value)


def test_network_errors_are_retried(app, standin, monkeypatch):
    monkeypatch.setitem(app.config, "WHATSAPP_API_BASE", "http://127.0.0.1:9")
    with pytest.raises(DeliveryError) as caught:
        connector_for(app).send(outgoing_text())
    assert not caught.value.permanent and "Could not reach WhatsApp" in str(caught.value)


def test_connect_form_checks_ids_and_tier():
    settings, secrets, errors = WhatsAppCloudConnector.clean(
        {"phone_number_id": "12ab", "waba_id": "200", "access_token": "t", "messaging_tier": "5000"}
    )
    assert set(errors) == {"phone_number_id", "messaging_tier"}
    settings, secrets, errors = WhatsAppCloudConnector.clean(
        {"phone_number_id": "1", "waba_id": "2", "access_token": "t", "messaging_tier": "10,000"}
    )
    assert errors == {} and secrets == {"access_token": "t"}
    config = {"WHATSAPP_API_BASE": "http://127.0.0.1:9", "WHATSAPP_API_VERSION": "v21.0"}
    connector = WhatsAppCloudConnector(settings=settings, secrets=secrets, config=config)
    assert connector.daily_cap() == ("whatsapp-day:1", 10000)
    assert connector.rate_limit() == ("whatsapp:1", 78.0)  # 97.5% of Meta's 80/s
    assert connector.account_key() == "1"


# -- helpers ------------------------------------------------------------------------------------


def connector_for(app, token=TOKEN_A) -> WhatsAppCloudConnector:
    return WhatsAppCloudConnector(
        settings={"phone_number_id": PHONE_A, "waba_id": WABA},
        secrets={"access_token": token},
        config=app.config,
    )


def outgoing_text():
    return Outgoing(
        message_id=1,
        idempotency_key=unique("k"),
        tenant_id=None,
        channel="whatsapp",
        recipient=f"+{USER}",
        subject="",
        text="Hi",
        payload={"whatsapp": {"type": "text"}},
    )


def outgoing_template(name: str):
    return Outgoing(
        message_id=1,
        idempotency_key=unique("k"),
        tenant_id=None,
        channel="whatsapp",
        recipient=f"+{USER}",
        subject="",
        text="",
        payload={"whatsapp": {"type": "template", "name": name}},
    )


def status_body(phone_number_id: str, wamid: str, status: str, key: str | None = None) -> bytes:
    item = {"id": wamid, "status": status, "timestamp": str(int(time.time())), "recipient_id": USER}
    if key:
        item["biz_opaque_callback_data"] = key
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000001", "phone_number_id": phone_number_id},
        "statuses": [item],
    }
    entry = {"id": WABA, "changes": [{"field": "messages", "value": value}]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


def two_tenant_body(wamid_a: str, wamid_b: str) -> bytes:
    entries = []
    for phone, wamid, status in (
        (PHONE_A, wamid_a, "delivered"),
        (PHONE_B, wamid_b, "read"),
        ("999999999999999", "wamid.none", "read"),
    ):
        entries.extend(json.loads(status_body(phone, wamid, status))["entry"])
    return json.dumps({"object": "whatsapp_business_account", "entry": entries}).encode()


# -- hostile bodies and provider clocks (issue #14) ---------------------------------------------


def nested(depth: int) -> bytes:
    return b'{"object":"whatsapp_business_account","entry":' + b"[" * depth + b"]" * depth + b"}"


def with_status(phone_number_id: str, **overrides) -> bytes:
    data = json.loads(status_body(phone_number_id, "wamid.H", "delivered"))
    data["entry"][0]["changes"][0]["value"].update(overrides)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    "body",
    [
        nested(100_000),  # Python's parser gives up (RecursionError): was an HTTP 500
        nested(40),  # parses, but no provider nests this deep
        b"[]",
        b'"whatsapp_business_account"',
        with_status(PHONE_A, statuses="delivered"),
        with_status(PHONE_A, statuses=[{"id": {"wamid": 1}, "status": "delivered"}]),
        with_status(PHONE_A, messages=[{"from": USER, "text": "not an object"}]),
        b'{"entry":[{"id":"1","changes":["messages"]}]}',
        with_status("1000000\u00000000001"),  # a NUL character PostgreSQL cannot store
        b'{"object":"whatsapp_business_account","entry":[],"x":"\xff"}',  # not UTF-8
    ],
    ids=[
        "nested-100000",
        "nested-40",
        "array",
        "string",
        "statuses-string",
        "id-object",
        "text-string",
        "change-string",
        "nul",
        "latin-1",
    ],
)
def test_a_signed_body_no_provider_sends_is_a_400_and_stored_nowhere(
    app, client, db_session, make_tenant, standin, body
):
    connect(app, db_session, make_tenant())
    response = post_hook(client, body)
    assert response.status_code == 400
    assert response.text.startswith("Not a WhatsApp webhook body: ")
    assert stored_events(db_session) == 0


def test_one_bad_change_refuses_the_whole_body(app, client, db_session, make_tenant, standin):
    """Never applied in part: a good report next to a malformed one is refused with it."""
    connect(app, db_session, make_tenant())
    good = json.loads(status_body(PHONE_A, "wamid.G", "delivered"))
    bad = json.loads(with_status(PHONE_A, statuses=[{"id": "wamid.B", "errors": "none"}]))
    body = json.dumps({**good, "entry": good["entry"] + bad["entry"]}).encode()
    assert post_hook(client, body).status_code == 400
    assert stored_events(db_session) == 0


def test_a_body_over_3_mb_is_a_413(app, client, db_session, make_tenant, standin):
    connect(app, db_session, make_tenant())
    body = with_status(PHONE_A, padding="x" * (3 * 1024 * 1024))
    response = post_hook(client, body)
    assert response.status_code == 413 and response.text == "The body is too large."
    assert stored_events(db_session) == 0


def test_an_inbound_message_dated_2100_opens_the_window_from_its_receipt_only(
    app, client, db_session, make_tenant, standin, capture, run_jobs
):
    tenant = make_tenant()
    connect(app, db_session, tenant)
    contact = add_contact(db_session, tenant)
    year_2100 = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
    standin.simulate_inbound(USER, "Paying Friday", timestamp=year_2100)
    [(body, signature)] = wait_for_hooks(standin, capture, 1)
    assert post_hook(client, body, signature).status_code == 200
    run_jobs()
    received_at = db_session.scalar(
        select(WebhookEvent.received_at).where(WebhookEvent.provider == PROVIDER)
    )
    last_inbound = tenant_session(db_session, tenant).get(Contact, contact.id)
    # The 24-hour window runs from this time: it closes at most 24 h after receipt.
    assert last_inbound.whatsapp_last_inbound_at == received_at


def test_status_times_are_clamped_between_a_week_before_receipt_and_receipt(
    app, client, db_session, make_tenant, standin, capture, run_jobs
):
    tenant = make_tenant()
    connect(app, db_session, tenant)
    contact = add_contact(db_session, tenant)
    message_id = queue(app, db_session, tenant, contact, invoice_template(), pdf=True)
    run_jobs()
    wamid = message(db_session, message_id).provider_message_id
    for status, when in (("delivered", "4102444800"), ("read", "1")):  # 2100, and 1970
        data = json.loads(status_body(PHONE_A, wamid, status))
        data["entry"][0]["changes"][0]["value"]["statuses"][0]["timestamp"] = when
        assert post_hook(client, json.dumps(data).encode()).status_code == 200
    run_jobs()
    received = db_session.scalars(
        select(WebhookEvent.received_at)
        .where(WebhookEvent.provider == PROVIDER)
        .order_by(WebhookEvent.id)
    ).all()
    row = message(db_session, message_id)
    assert row.status == "read"
    assert row.delivered_at == received[0]
    assert row.read_at == received[1] - timedelta(days=7)
