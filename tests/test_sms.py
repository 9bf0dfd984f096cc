"""SMS through MSG91 (India, DLT) and Twilio, against the local stand-ins: what reaches the
gateway, delivery reports moving messages forward only and only the tenant's own, the
receivers' authentication (MSG91's secret path token, Twilio's signature checked against the
official SDK), retries on 429 and dead letters on permanent errors, consent before any call.

The stand-ins post their reports to a small loopback receiver; the test replays each one,
byte for byte with its headers, into the app (the app is not served over HTTP in tests)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, update
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from app.clients.models import Client, Contact
from app.clients.services import set_consent
from app.core.crypto import encrypt_secrets
from app.integrations.connectors.msg91 import Msg91Connector
from app.integrations.connectors.registry import connector_class
from app.integrations.connectors.twilio_sms import (
    TwilioConnector,
    compute_signature,
    valid_signature,
)
from app.integrations.models import IntegrationConnection, ProviderAccount
from app.messaging.delivery import deliver_batch
from app.messaging.models import WebhookEvent
from app.outbox.models import OutboxMessage
from app.outbox.services import queue_message
from app.sandbox.standins import Msg91Standin, TwilioStandin
from app.sandbox.standins.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from tests.helpers import tenant_session, unique

INDIAN = "+919876543210"
FLOW = "flow-invoice-due"
DLT_TEMPLATE = "1107161234567890123"
TEXT = "Dear ##var1##, invoice ##var2## of Rs ##var3## is due. -DUEBKS"
FROM = "+15005550006"


class Receiver:
    """A loopback HTTP server that keeps what the stand-ins post to it."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.changed:
                    receiver.calls.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    receiver.changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.calls) >= count, timeout)
        assert len(self.calls) >= count, self.calls
        return list(self.calls)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def msg91(app, monkeypatch):
    standin = Msg91Standin(
        templates=[
            {
                "template_id": FLOW,
                "content": TEXT,
                "sender": "DUEBKS",
                "dlt_template_id": DLT_TEMPLATE,
            }
        ]
    ).start()
    monkeypatch.setitem(app.config, "MSG91_API_BASE", standin.url)
    yield standin
    standin.stop()


@pytest.fixture
def twilio(app, monkeypatch, receiver):
    # Twilio posts to StatusCallback = BASE_URL + /hooks/twilio/status: the receiver here.
    monkeypatch.setitem(app.config, "BASE_URL", receiver.url)
    standin = TwilioStandin().start()
    monkeypatch.setitem(app.config, "TWILIO_API_BASE", standin.url)
    yield standin
    standin.stop()


def connect(app, db_session, tenant, provider: str, raw: dict) -> SimpleNamespace:
    """What the integrations page does on connect: clean the form, store the connection with
    its secrets encrypted, and route the provider's webhooks to the tenant."""
    cls = connector_class(provider)
    settings, secrets, errors = cls.clean(raw)
    assert errors == {}
    session = tenant_session(db_session, tenant)
    ciphertext = encrypt_secrets(secrets, app.config["SECRETS_KEYS"])
    connection = IntegrationConnection(
        provider=provider, settings=settings, secrets_ciphertext=ciphertext, verification="verified"
    )
    session.add(connection)
    session.flush()
    key = cls(settings=settings, secrets=secrets, config={}).account_key()
    session.add(
        ProviderAccount(
            provider=provider, account_key=key, tenant_id=tenant.id, connection_id=connection.id
        )
    )
    session.commit()
    return SimpleNamespace(id=connection.id, key=key, settings=settings)


def connect_msg91(app, db_session, tenant, standin) -> SimpleNamespace:
    raw = {"authkey": standin.authkey, "sender_id": "duebks", "entity_id": "1101234567890123456"}
    return connect(app, db_session, tenant, "msg91", raw)


def connect_twilio(app, db_session, tenant) -> SimpleNamespace:
    raw = {"account_sid": DEFAULT_ACCOUNT_SID, "auth_token": DEFAULT_AUTH_TOKEN, "sender": FROM}
    return connect(app, db_session, tenant, "twilio", raw)


def queue_sms(app, db_session, tenant, to=INDIAN, sms=None, contact_id=None, text="") -> int:
    session = tenant_session(db_session, tenant)
    with app.app_context():
        message_id = queue_message(
            session,
            channel="sms",
            tenant_id=tenant.id,
            to=to,
            subject="Invoice due",
            text_body=text,
            idempotency_key=unique("sms-test:"),
            contact_id=contact_id,
            payload={"sms": sms} if sms is not None else None,
        )
        session.commit()
    return message_id


def dlt_sms(**overrides) -> dict:
    sms = {
        "gateway_template_id": FLOW,
        "dlt_template_id": DLT_TEMPLATE,
        "variables": {"var1": "Asha", "var2": "INV/26-27/00012", "var3": "11,800.00"},
    }
    return {**sms, **overrides}


def row(db_session, message_id) -> OutboxMessage:
    return db_session.get(OutboxMessage, message_id, populate_existing=True)


def events(db_session) -> int:
    return db_session.scalar(select(func.count()).select_from(WebhookEvent))


def replay(client, call: dict, path: str | None = None):
    headers = {
        name: value
        for name, value in call["headers"].items()
        if name.lower() in ("content-type", "x-twilio-signature")
    }
    return client.post(path or call["path"], data=call["body"], headers=headers)


# -- MSG91 -----------------------------------------------------------------------------------


def test_msg91_sends_the_dlt_template_and_reports_move_it_forward_only(
    app, client, db_session, make_tenant, run_jobs, msg91, receiver
):
    tenant = make_tenant()
    connection = connect_msg91(app, db_session, tenant, msg91)
    settings = {"BASE_URL": receiver.url}
    msg91.webhook_url = Msg91Connector(
        settings=connection.settings, secrets={}, config=settings
    ).report_url()
    message_id = queue_sms(app, db_session, tenant, sms=dlt_sms())
    run_jobs()

    [sent] = msg91.recorded()
    assert sent["to"] == "919876543210" and sent["from"] == "DUEBKS"
    assert sent["template"] == {"template_id": FLOW, "dlt_template_id": DLT_TEMPLATE}
    assert sent["text"] == "Dear Asha, invoice INV/26-27/00012 of Rs 11,800.00 is due. -DUEBKS"
    message = row(db_session, message_id)
    assert (message.status, message.provider) == ("sent", "msg91")
    assert message.provider_message_id == sent["message_id"]

    sent_report, delivered_report = receiver.wait_for(2)
    # Out of order: "delivered" first, then the late "sent" must not move it back.
    assert replay(client, delivered_report).status_code == 200
    run_jobs()
    assert row(db_session, message_id).status == "delivered"
    assert replay(client, sent_report).status_code == 200
    assert replay(client, sent_report).status_code == 200  # MSG91 retrying: stored once
    run_jobs()
    message = row(db_session, message_id)
    assert message.status == "delivered" and message.delivered_at is not None
    assert events(db_session) == 2


def test_msg91_v2_form_report_with_a_failure_reason(
    app, client, db_session, make_tenant, run_jobs, msg91
):
    tenant = make_tenant()
    connection = connect_msg91(app, db_session, tenant, msg91)
    message_id = queue_sms(app, db_session, tenant, sms=dlt_sms())
    run_jobs()
    request_id = row(db_session, message_id).provider_message_id
    data = json.dumps(
        [
            {
                "senderId": "DUEBKS",
                "requestId": request_id,
                "userId": "1",
                "campaignName": "API",
                "report": [
                    {
                        "date": "2026-05-04 15:31:58",
                        "number": "919876543210",
                        "status": "2",
                        "desc": "FAILED",
                        "failedReason": "Number out of service",
                    }
                ],
            }
        ]
    )
    response = client.post(f"/hooks/msg91/{connection.key}", data={"data": data})
    assert response.status_code == 200
    run_jobs()
    message = row(db_session, message_id)
    assert message.status == "failed" and message.last_error == "Number out of service"


def test_msg91_report_naming_another_number_changes_nothing(
    app, client, db_session, make_tenant, run_jobs, msg91
):
    tenant = make_tenant()
    connection = connect_msg91(app, db_session, tenant, msg91)
    message_id = queue_sms(app, db_session, tenant, sms=dlt_sms())
    run_jobs()
    request_id = row(db_session, message_id).provider_message_id
    report = {"requestId": request_id, "number": "919999999999", "status": "1", "desc": "DELIVERED"}
    assert client.post(f"/hooks/msg91/{connection.key}", json=report).status_code == 200
    run_jobs()
    assert row(db_session, message_id).status == "sent"


def test_msg91_without_a_dlt_template_id_is_dead_before_any_call(
    app, db_session, make_tenant, run_jobs, msg91
):
    tenant = make_tenant()
    connect_msg91(app, db_session, tenant, msg91)
    message_id = queue_sms(app, db_session, tenant, sms=dlt_sms(dlt_template_id=""))
    run_jobs()
    message = row(db_session, message_id)
    assert message.status == "dead"
    assert "Indian SMS needs the DLT template id" in message.last_error
    assert msg91.stats()["requests"] == 0


def test_unknown_msg91_token_is_404_and_nothing_is_stored(client, db_session):
    before = events(db_session)
    body = {"requestId": "a" * 24, "number": "919876543210", "status": "1", "desc": "DELIVERED"}
    for token in ("A" * 32, "short", "../../etc"):
        assert client.post(f"/hooks/msg91/{token}", json=body).status_code == 404
    assert events(db_session) == before


def test_one_tenants_report_never_touches_another_tenants_messages(
    app, client, db_session, make_tenant, run_jobs, msg91, receiver
):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    a = connect_msg91(app, db_session, tenant_a, msg91)
    b = connect_msg91(app, db_session, tenant_b, msg91)
    assert a.key != b.key
    msg91.status_script = ("delivered",)
    msg91.webhook_url = f"{receiver.url}/hooks/msg91/{a.key}"
    message_a = queue_sms(app, db_session, tenant_a, sms=dlt_sms())
    run_jobs()
    msg91.webhook_url = None
    message_b = queue_sms(app, db_session, tenant_b, sms=dlt_sms())
    run_jobs()
    [report_a] = receiver.wait_for(1)

    # A's report posted to B's URL: stored as B's, and moves nothing of A's or B's.
    assert replay(client, report_a, f"/hooks/msg91/{b.key}").status_code == 200
    run_jobs()
    assert row(db_session, message_a).status == "sent"
    assert row(db_session, message_b).status == "sent"
    # Through A's own URL it does its job.
    assert replay(client, report_a).status_code == 200
    run_jobs()
    assert row(db_session, message_a).status == "delivered"
    assert row(db_session, message_b).status == "sent"


def test_msg91_connect_form_checks_the_dlt_fields_and_makes_a_report_token():
    settings, secrets, errors = Msg91Connector.clean(
        {"authkey": "k", "sender_id": "DUE1", "entity_id": "PE-1", "route": "transactional"}
    )
    assert set(errors) == {"sender_id", "entity_id", "route"}
    settings, secrets, errors = Msg91Connector.clean(
        {"authkey": "k", "sender_id": "duebks", "entity_id": "1101234567890123456"}
    )
    assert errors == {} and secrets == {"authkey": "k"} and settings["sender_id"] == "DUEBKS"
    token = settings["webhook_token"]
    assert (
        len(token) == 32
        and Msg91Connector.clean({"webhook_token": token})[0]["webhook_token"] == token
    )  # reconnecting keeps the URL given to MSG91
    assert Msg91Connector.clean({"webhook_token": "guessable"})[0]["webhook_token"] != "guessable"


def test_msg91_429_is_retried_after_the_wait_and_sent_once(
    app, db_session, make_tenant, redis, msg91
):
    tenant = make_tenant()
    connect_msg91(app, db_session, tenant, msg91)
    message_id = queue_sms(app, db_session, tenant, sms=dlt_sms())
    msg91.inject_fault(429, retry_after=30)
    session = tenant_session(db_session, tenant)
    with app.app_context():
        assert deliver_batch(session, [message_id], redis)["pending"] == 1
        message = row(db_session, message_id)
        wait = (message.next_attempt_at - datetime.now(UTC)).total_seconds()
        assert 25 < wait <= 30 and "429" in message.last_error
        db_session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        db_session.commit()
        assert deliver_batch(session, [message_id], redis)["sent"] == 1
        assert deliver_batch(session, [message_id], redis)["skipped"] == 1
    assert row(db_session, message_id).status == "sent"
    assert len(msg91.recorded()) == 1 and msg91.stats()["accepted"] == 1


# -- Twilio ----------------------------------------------------------------------------------


def test_twilio_sends_the_text_and_signed_callbacks_move_it_forward_only(
    app, client, db_session, make_tenant, run_jobs, twilio, receiver
):
    tenant = make_tenant()
    connect_twilio(app, db_session, tenant)
    message_id = queue_sms(
        app,
        db_session,
        tenant,
        to="+14155550123",
        text="Invoice INV-12 for $118.00 is due on 30 June.",
    )
    run_jobs()
    [sent] = twilio.recorded()
    assert (sent["to"], sent["from"]) == ("+14155550123", FROM)
    assert sent["text"] == "Invoice INV-12 for $118.00 is due on 30 June."
    message = row(db_session, message_id)
    assert (message.status, message.provider, message.provider_message_id) == (
        "sent",
        "twilio",
        sent["message_id"],
    )

    sent_callback, delivered_callback = receiver.wait_for(2)
    assert sent_callback["path"] == "/hooks/twilio/status"  # our StatusCallback
    assert replay(client, delivered_callback).status_code == 200
    assert replay(client, sent_callback).status_code == 200
    assert replay(client, sent_callback).status_code == 200  # a retry: stored once
    run_jobs()
    message = row(db_session, message_id)
    assert message.status == "delivered" and message.delivered_at is not None
    assert events(db_session) == 2


def test_twilio_undelivered_callback_fails_the_message_with_the_error_code(
    app, client, db_session, make_tenant, run_jobs, twilio, receiver
):
    tenant = make_tenant()
    connect_twilio(app, db_session, tenant)
    twilio.fail_number("+14155550199", "undelivered", 30003)
    message_id = queue_sms(app, db_session, tenant, to="+14155550199", text="Reminder")
    run_jobs()
    [callback] = receiver.wait_for(1)
    assert replay(client, callback).status_code == 200
    run_jobs()
    message = row(db_session, message_id)
    assert message.status == "failed" and "30003" in message.last_error


def test_forged_twilio_callbacks_are_403_and_stored_nowhere(
    app, client, db_session, make_tenant, twilio, receiver
):
    tenant = make_tenant()
    connect_twilio(app, db_session, tenant)
    params = {
        "MessageSid": "SM" + "1" * 32,
        "AccountSid": DEFAULT_ACCOUNT_SID,
        "MessageStatus": "delivered",
        "To": "+14155550123",
        "From": FROM,
    }
    public_url = receiver.url + "/hooks/twilio/status"
    before = events(db_session)
    forgeries = [
        compute_signature("not-the-auth-token", public_url, params),
        # Signed for the URL the request arrived on, not the public one Twilio signs.
        compute_signature(DEFAULT_AUTH_TOKEN, "http://localhost/hooks/twilio/status", params),
        compute_signature(DEFAULT_AUTH_TOKEN, public_url, {**params, "MessageStatus": "sent"}),
        "",
    ]
    for signature in forgeries:
        response = client.post(
            "/hooks/twilio/status", data=params, headers={"X-Twilio-Signature": signature}
        )
        assert response.status_code == 403
    assert events(db_session) == before
    good = compute_signature(DEFAULT_AUTH_TOKEN, public_url, params)
    response = client.post(
        "/hooks/twilio/status", data=params, headers={"X-Twilio-Signature": good}
    )
    assert response.status_code == 200 and events(db_session) == before + 1


def test_twilio_callback_for_an_unconnected_account_is_acknowledged_and_dropped(client, db_session):
    before = events(db_session)
    params = {
        "MessageSid": "SM" + "2" * 32,
        "AccountSid": "AC" + "9" * 32,
        "MessageStatus": "delivered",
    }
    assert client.post("/hooks/twilio/status", data=params).status_code == 200
    assert events(db_session) == before


def test_twilio_signature_matches_the_published_vector_and_the_sdk():
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    vector = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert compute_signature("12345", url, params) == vector
    assert valid_signature("12345", url, params, vector)
    assert not valid_signature("12345", url, {**params, "Digits": "1235"}, vector)
    assert not valid_signature("12345", url.replace("foo=1", "foo=2"), params, vector)
    assert not valid_signature("54321", url, params, vector)
    # The SDK as oracle: repeated names, ports, unicode.
    oracle = RequestValidator("s3cret")
    form = MultiDict([("b", "2"), ("a", "x"), ("b", "1"), ("b", "2"), ("Body", "नमस्ते ₹")])
    for address in (
        "https://example.com/hooks/twilio/status?x=1",
        "http://127.0.0.1:8000/hooks/twilio/status",
    ):
        assert compute_signature("s3cret", address, form) == oracle.compute_signature(address, form)
    signed_with_port = oracle.compute_signature("https://example.com:443/h", {"a": "1"})
    assert valid_signature("s3cret", "https://example.com/h", {"a": "1"}, signed_with_port)


def test_twilio_429_puts_the_message_back_and_it_is_delivered_once_later(
    app, db_session, make_tenant, redis, twilio
):
    tenant = make_tenant()
    connect_twilio(app, db_session, tenant)
    message_id = queue_sms(app, db_session, tenant, to="+14155550123", text="Reminder")
    twilio.inject_fault(429, retry_after=20)
    session = tenant_session(db_session, tenant)
    with app.app_context():
        assert deliver_batch(session, [message_id], redis)["pending"] == 1
        message = row(db_session, message_id)
        assert message.status == "pending" and "20429" in message.last_error
        assert (message.next_attempt_at - datetime.now(UTC)).total_seconds() > 15
        db_session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        db_session.commit()
        assert deliver_batch(session, [message_id], redis)["sent"] == 1
    assert row(db_session, message_id).status == "sent"
    assert twilio.stats()["accepted"] == 1 and len(twilio.recorded()) == 1


def test_twilio_invalid_number_is_dead_lettered_at_once(
    app, db_session, make_tenant, run_jobs, twilio
):
    tenant = make_tenant()
    connect_twilio(app, db_session, tenant)
    message_id = queue_sms(app, db_session, tenant, to="+12", text="Reminder")
    run_jobs()
    message = row(db_session, message_id)
    assert message.status == "dead" and message.attempts == 1
    assert "21211" in message.last_error
    assert twilio.stats()["requests"] == 1


def test_twilio_connect_form():
    settings, secrets, errors = TwilioConnector.clean(
        {"account_sid": DEFAULT_ACCOUNT_SID, "auth_token": "t", "sender": "MG" + "a" * 32}
    )
    assert errors == {} and settings["messaging_service_sid"] == "MG" + "a" * 32
    assert secrets == {"auth_token": "t"}
    errors = TwilioConnector.clean({"account_sid": "AC1", "auth_token": "t", "sender": "me"})[2]
    assert set(errors) == {"account_sid", "sender"}


# -- Consent ---------------------------------------------------------------------------------


def contact(db_session, tenant, **consent) -> int:
    session = tenant_session(db_session, tenant)
    client = Client(
        full_name=unique("Client "),
        short_name=unique("c"),
        location="local",
        country="IN",
        currency="INR",
        payment_terms="net",
        payment_days=30,
    )
    session.add(client)
    session.flush()
    person = Contact(client_id=client.id, full_name="Asha Rao", phone=INDIAN)
    for channel, opted_in in consent.items():
        set_consent(person, channel, opted_in, "signed form")
    session.add(person)
    session.commit()
    return person.id


@pytest.mark.parametrize("consent", [{}, {"sms": False}])
def test_sms_without_opt_in_is_suppressed_before_any_call(
    app, db_session, make_tenant, run_jobs, msg91, twilio, consent
):
    tenant = make_tenant()
    connect_msg91(app, db_session, tenant, msg91)
    person = contact(db_session, tenant, **consent)
    message_id = queue_sms(app, db_session, tenant, sms=dlt_sms(), contact_id=person)
    run_jobs()
    assert row(db_session, message_id).status == "suppressed"
    assert msg91.stats()["requests"] == 0

    other = make_tenant()
    connect_twilio(app, db_session, other)
    person = contact(db_session, other, **consent)
    message_id = queue_sms(app, db_session, other, to=INDIAN, text="Hi", contact_id=person)
    run_jobs()
    assert row(db_session, message_id).status == "suppressed"
    assert twilio.stats()["requests"] == 0


def test_sms_with_opt_in_goes_out(app, db_session, make_tenant, run_jobs, msg91):
    tenant = make_tenant()
    connect_msg91(app, db_session, tenant, msg91)
    person = contact(db_session, tenant, sms=True)
    message_id = queue_sms(app, db_session, tenant, sms=dlt_sms(), contact_id=person)
    run_jobs()
    assert row(db_session, message_id).status == "sent"
    assert msg91.stats()["accepted"] == 1


# -- hostile bodies and late failures (issue #14) --------------------------------------------


def msg91_report(request_id: str, status: str, desc: str, **extra) -> dict:
    return {
        "requestId": request_id,
        "number": "919876543210",
        "status": status,
        "desc": desc,
        **extra,
    }


def test_msg91_failed_after_delivered_leaves_the_sms_delivered(
    app, client, db_session, make_tenant, run_jobs, msg91
):
    tenant = make_tenant()
    connection = connect_msg91(app, db_session, tenant, msg91)
    message_id = queue_sms(app, db_session, tenant, sms=dlt_sms())
    run_jobs()
    request_id = row(db_session, message_id).provider_message_id
    hook = f"/hooks/msg91/{connection.key}"
    assert client.post(hook, json=msg91_report(request_id, "1", "DELIVERED")).status_code == 200
    run_jobs()
    delivered_at = row(db_session, message_id).delivered_at
    late = msg91_report(request_id, "2", "FAILED", failedReason="Absent subscriber")
    assert client.post(hook, json=late).status_code == 200
    run_jobs()
    message = row(db_session, message_id)
    assert (message.status, message.delivered_at) == ("delivered", delivered_at)
    assert message.failed_at is None and message.last_error is None
    assert events(db_session) == 2  # the late report is kept among the events


def test_a_delivery_reported_after_a_failure_wins(
    app, client, db_session, make_tenant, run_jobs, msg91
):
    tenant = make_tenant()
    connection = connect_msg91(app, db_session, tenant, msg91)
    message_id = queue_sms(app, db_session, tenant, sms=dlt_sms())
    run_jobs()
    request_id = row(db_session, message_id).provider_message_id
    hook = f"/hooks/msg91/{connection.key}"
    assert client.post(hook, json=msg91_report(request_id, "2", "FAILED")).status_code == 200
    run_jobs()
    assert row(db_session, message_id).status == "failed"
    assert client.post(hook, json=msg91_report(request_id, "1", "DELIVERED")).status_code == 200
    run_jobs()
    assert row(db_session, message_id).status == "delivered"


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "body, content_type",
    [
        ('{"report":' + deep(100_000) + "}", "application/json"),  # was an HTTP 500
        ("data=" + deep(100_000), "application/x-www-form-urlencoded"),
        ('{"report":' + deep(40) + "}", "application/json"),
        ('["DELIVERED"]', "application/json"),
        ('"DELIVERED"', "application/json"),
        ('{"requestId":{"id":"1"},"status":"1"}', "application/json"),
        ('{"requestId":"1","report":"DELIVERED"}', "application/json"),
        ('{"requestId":"1","desc":"DELIVERED\\u0000"}', "application/json"),
        ("data=%5B%7B%22requestId%22%3A%22%00%22%7D%5D", "application/x-www-form-urlencoded"),
        (b'{"requestId":"\xff"}', "application/json"),
        ("data=", "application/x-www-form-urlencoded"),
    ],
    ids=[
        "nested-100000",
        "form-nested-100000",
        "nested-40",
        "list-of-strings",
        "string",
        "id-object",
        "report-string",
        "nul",
        "form-nul",
        "latin-1",
        "form-empty",
    ],
)
def test_msg91_body_no_provider_sends_is_a_400_and_stored_nowhere(
    app, client, db_session, make_tenant, msg91, body, content_type
):
    connection = connect_msg91(app, db_session, make_tenant(), msg91)
    before = events(db_session)
    response = client.post(f"/hooks/msg91/{connection.key}", data=body, content_type=content_type)
    assert response.status_code == 400 and response.text
    assert events(db_session) == before


def test_an_oversized_sms_report_is_a_413(app, client, db_session, make_tenant, msg91):
    connection = connect_msg91(app, db_session, make_tenant(), msg91)
    before = events(db_session)
    body = json.dumps(msg91_report("r" * 24, "1", "DELIVERED", note="x" * 300_000))
    response = client.post(
        f"/hooks/msg91/{connection.key}", data=body, content_type="application/json"
    )
    assert response.status_code == 413 and response.text == "The body is too large."
    assert client.post("/hooks/twilio/status", data={"Body": "x" * 300_000}).status_code == 413
    assert events(db_session) == before


def signed_twilio(receiver, params: dict) -> dict:
    """Headers Twilio would send: the SDK's signature over the public callback URL."""
    url = receiver.url + "/hooks/twilio/status"
    return {
        "X-Twilio-Signature": RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(url, params)
    }


def test_twilio_undelivered_after_delivered_leaves_the_sms_delivered(
    app, client, db_session, make_tenant, run_jobs, twilio, receiver
):
    tenant = make_tenant()
    connect_twilio(app, db_session, tenant)
    message_id = queue_sms(app, db_session, tenant, to="+14155550123", text="Reminder")
    run_jobs()
    _, delivered_callback = receiver.wait_for(2)
    assert replay(client, delivered_callback).status_code == 200
    run_jobs()
    assert row(db_session, message_id).status == "delivered"
    late = {
        "MessageSid": row(db_session, message_id).provider_message_id,
        "AccountSid": DEFAULT_ACCOUNT_SID,
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
    }
    response = client.post("/hooks/twilio/status", data=late, headers=signed_twilio(receiver, late))
    assert response.status_code == 200
    run_jobs()
    assert row(db_session, message_id).status == "delivered"


def test_twilio_callbacks_no_provider_sends_are_400_and_stored_nowhere(
    app, client, db_session, make_tenant, twilio, receiver
):
    connect_twilio(app, db_session, make_tenant())
    before = events(db_session)
    genuine = {
        "MessageSid": "SM" + "3" * 32,
        "AccountSid": DEFAULT_ACCOUNT_SID,
        "MessageStatus": "delivered",
    }
    # Correctly signed, but with a NUL character PostgreSQL cannot store.
    nul = {**genuine, "MessageSid": "SM" + "3" * 31 + "\x00"}
    response = client.post("/hooks/twilio/status", data=nul, headers=signed_twilio(receiver, nul))
    assert response.status_code == 400
    # A NUL in the AccountSid used to reach the database (an HTTP 500).
    unsigned = {**genuine, "AccountSid": "AC\x00"}
    assert client.post("/hooks/twilio/status", data=unsigned).status_code == 400
    # JSON instead of Twilio's form, and a form without the message it is about.
    assert client.post("/hooks/twilio/status", json=genuine).status_code == 400
    no_sid = {name: value for name, value in genuine.items() if name != "MessageSid"}
    response = client.post(
        "/hooks/twilio/status", data=no_sid, headers=signed_twilio(receiver, no_sid)
    )
    assert response.status_code == 400 and response.text == "Not a Twilio status callback."
    assert events(db_session) == before
