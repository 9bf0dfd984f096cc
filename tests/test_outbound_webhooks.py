"""Outbound webhooks (app/webhooks; tests/test_webhooks.py is about the providers' webhooks we
receive): what a workspace's receiver gets is a Standard Webhooks
message that the specification's own library (standardwebhooks, the oracle) verifies; each event
reaches each endpoint once, retried on a schedule, in order per resource; a receiver that hangs,
fails, redirects or floods costs an attempt and nothing more; private destinations are refused
at save and at connect; an endpoint that keeps failing is turned off and its admins told."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import standardwebhooks
from sqlalchemy import select, update

from app.core.events import DomainEvent, EventConsumer, emit
from app.core.handover import Work, enqueue
from app.notifications.models import Notification
from app.sandbox.standins.webhook_receiver import WebhookReceiverStandin
from app.webhooks import services
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.sender import RESPONSE_BODY_LIMIT
from app.webhooks.signing import signature, signature_header
from tests.helpers import csrf_token_from, tenant_session

# Standard Webhooks test vectors (shared reference providers-2.md §0, V1 and V2; V1 is the
# specification's own example).
VECTORS = [
    (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ),
    (
        "whsec_cmVjZWl2YWJsZXMtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ==",
        "msg_inv1001paid",
        1768471200,
        b'{"type":"invoice.paid","timestamp":"2026-01-15T10:00:00Z","data":{"invoice_id":'
        b'"INV-1001","amount":"1180.00","currency":"INR"}}',
        "v1,1WPxFXNrOiH6MsFWh6yET8ESwFByKYqCppgJbJPAQAg=",
    ),
]


@pytest.fixture
def receiver():
    with WebhookReceiverStandin() as standin:
        yield standin


@dataclass(frozen=True)
class Saved:
    id: int
    secret: str


def _endpoint(app, db_session, tenant, url: str, event_types=None) -> Saved:
    with app.app_context():
        session = tenant_session(db_session, tenant)
        values = {"url": url, "all_events": "" if event_types else "1"}
        endpoint, errors = services.create_endpoint(
            session, {**values, "event_types": event_types or []}, None
        )
        assert errors == {}
        session.commit()
        return Saved(endpoint.id, services.current_secret(endpoint))


def _client_event(app, db_session, tenant, client_id: int, type_="client.created") -> int:
    data = {"client_id": client_id, "name": f"Client {client_id}"}
    if type_ == "client.updated":
        data["fields"] = ["name"]
    with app.app_context():
        session = tenant_session(db_session, tenant)
        event_id = emit(session, type_, "client", client_id, data)
        session.commit()
    return event_id


def _deliveries(db_session, tenant, endpoint_id: int) -> list[WebhookDelivery]:
    session = tenant_session(db_session, tenant)
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id)
            .execution_options(populate_existing=True)
        )
    )


def _make_due(db_session, tenant) -> None:
    """Time passes: every waiting retry falls due."""
    session = tenant_session(db_session, tenant)
    past = datetime.now(UTC) - timedelta(seconds=1)
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.status == "pending")
        .values(next_attempt_at=past)
    )
    session.commit()


def _send(app, run_jobs, tenant, endpoint_id: int) -> None:
    with app.app_context():
        enqueue([Work("send_webhooks", (endpoint_id,), tenant_id=tenant.id)])
    run_jobs()


def _verified(secret: str, entry: dict) -> dict:
    headers = {
        "webhook-id": entry["webhook_id"],
        "webhook-timestamp": entry["webhook_timestamp"],
        "webhook-signature": entry["webhook_signature"],
    }
    return standardwebhooks.Webhook(secret).verify(entry["body"], headers)


def test_the_signer_reproduces_the_published_vectors_and_the_reference_library_agrees():
    for secret, message_id, timestamp, body, expected in VECTORS:
        assert signature(secret, message_id, timestamp, body) == expected
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": expected,
        }
        library = standardwebhooks.Webhook(secret)
        assert library.sign(message_id, datetime.fromtimestamp(timestamp, UTC), body.decode()) == (
            expected
        )
        with pytest.raises(standardwebhooks.WebhookVerificationError):
            library.verify(body, headers)  # 2021/2026: outside the 5 minutes' tolerance
    # During a rotation both secrets sign, and a receiver holding either one accepts.
    old, new = services.new_secret(), services.new_secret()
    now = int(time.time())
    header = signature_header([new, old], "msg_1", now, b"{}")
    assert len(header.split(" ")) == 2
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(
            b"{}",
            {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": header},
        )


def test_an_event_reaches_the_receiver_signed_and_the_library_verifies_it(
    app, db_session, make_tenant, receiver, run_jobs
):
    tenant = make_tenant()
    endpoint = _endpoint(app, db_session, tenant, f"{receiver.url}/hooks")
    event_id = _client_event(app, db_session, tenant, 42)
    run_jobs()

    [entry] = receiver.recorded()
    payload = _verified(endpoint.secret, entry)
    assert payload["type"] == "client.created" and payload["event_id"] == event_id
    assert payload["version"] == 1 and payload["data"] == {"client_id": 42, "name": "Client 42"}
    assert payload["timestamp"].endswith("Z")
    [delivery] = _deliveries(db_session, tenant, endpoint.id)
    assert entry["webhook_id"] == f"msg_{delivery.id}" and entry["path"] == "/hooks"
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("delivered", 1, 200)
    # The log keeps what was sent and what came back.
    [attempt] = tenant_session(db_session, tenant).scalars(select(WebhookAttempt)).all()
    assert attempt.request_headers["webhook-id"] == entry["webhook_id"]
    assert attempt.response_status == 200 and '"received":true' in attempt.response_body


def test_each_event_reaches_each_endpoint_once_even_when_a_batch_is_read_again(
    app, db_session, make_tenant, receiver, run_jobs
):
    tenant = make_tenant()
    everything = _endpoint(app, db_session, tenant, f"{receiver.url}/all")
    invoices_only = _endpoint(
        app, db_session, tenant, f"{receiver.url}/invoices", event_types=["invoice.paid"]
    )
    _client_event(app, db_session, tenant, 7)
    run_jobs()
    # The consumer reads the same events again (its position lost, a worker that died before
    # its commit): the unique (endpoint, event) keeps one delivery.
    session = tenant_session(db_session, tenant)
    session.execute(update(EventConsumer).values(txid=0, event_id=0))
    session.commit()
    with app.app_context():
        enqueue([Work("deliver_events", tenant_id=tenant.id)])
    run_jobs()

    assert len(_deliveries(db_session, tenant, everything.id)) == 1
    assert _deliveries(db_session, tenant, invoices_only.id) == []  # not subscribed
    assert [e["path"] for e in receiver.recorded()] == ["/all"]


def test_a_failed_delivery_is_retried_on_the_schedule_with_the_same_webhook_id(
    app, db_session, make_tenant, receiver, run_jobs
):
    tenant = make_tenant()
    endpoint = _endpoint(app, db_session, tenant, receiver.url)
    receiver.inject_fault(500, count=1)
    before = datetime.now(UTC)
    _client_event(app, db_session, tenant, 1)
    run_jobs()
    [delivery] = _deliveries(db_session, tenant, endpoint.id)
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("pending", 1, 500)
    # The first retry 5 s later (stretched by up to 10 %), not at once.
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 5 <= wait <= 5.5 + (datetime.now(UTC) - before).total_seconds()
    _send(app, run_jobs, tenant, endpoint.id)  # not due yet: nothing is sent
    assert receiver.recorded() == []

    _make_due(db_session, tenant)
    with app.app_context():  # the scheduler's sweep finds the retry that fell due
        enqueue([Work("sweep_webhooks", tenant_id=tenant.id)])
    run_jobs()
    [delivery] = _deliveries(db_session, tenant, endpoint.id)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert [e["webhook_id"] for e in receiver.recorded()] == [f"msg_{delivery.id}"]

    # The schedule: about a day in all, then the delivery is given up.
    assert services.next_attempt_delay(1) >= 5
    assert services.next_attempt_delay(7) >= 12 * 3600
    assert services.next_attempt_delay(8) is None
    assert 20 * 3600 < sum(services.RETRY_SCHEDULE) < 26 * 3600
    assert services.next_attempt_delay(1, retry_after="120") == 120  # the receiver's wish
    receiver.inject_fault(503, count=1)
    _client_event(app, db_session, tenant, 2)
    session = tenant_session(db_session, tenant)
    run_jobs()
    session.execute(
        update(WebhookDelivery).where(WebhookDelivery.status == "pending").values(attempts=7)
    )
    session.commit()
    _make_due(db_session, tenant)
    receiver.inject_fault(503, count=1)
    _send(app, run_jobs, tenant, endpoint.id)
    last = _deliveries(db_session, tenant, endpoint.id)[-1]
    assert (last.status, last.attempts, last.last_error) == (
        "failed",
        8,
        "The receiver answered 503",
    )


def test_deliveries_of_one_resource_wait_for_the_earlier_ones(
    app, db_session, make_tenant, receiver, run_jobs
):
    tenant = make_tenant()
    endpoint = _endpoint(app, db_session, tenant, receiver.url)
    receiver.inject_fault(500, count=1)
    first = _client_event(app, db_session, tenant, 1)
    second = _client_event(app, db_session, tenant, 1, "client.updated")
    other = _client_event(app, db_session, tenant, 2)
    run_jobs()
    # Client 1's first event failed: its second waits, untried; client 2's went.
    got = [(e["type"], _verified_event_id(e)) for e in receiver.recorded()]
    assert got == [("client.created", other)]
    states = {
        d.event_id: (d.status, d.attempts) for d in _deliveries(db_session, tenant, endpoint.id)
    }
    assert states == {first: ("pending", 1), second: ("pending", 0), other: ("delivered", 1)}

    _make_due(db_session, tenant)
    _send(app, run_jobs, tenant, endpoint.id)
    assert [_verified_event_id(e) for e in receiver.recorded()] == [other, first, second]


def _verified_event_id(entry: dict) -> int:
    return json.loads(entry["body"])["event_id"]


class _Misbehaving(BaseHTTPRequestHandler):
    """A receiver that hangs, fails, redirects, floods or is gone, by path."""

    protocol_version = "HTTP/1.1"
    redirected_hits = 0

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802 - the stdlib's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/slow":
            time.sleep(2)
        if self.path == "/elsewhere":
            type(self).redirected_hits += 1
        status, headers, body = {
            "/error": (500, {}, b"boom"),
            "/redirect": (302, {"Location": "/elsewhere"}, b""),
            "/huge": (500, {}, b"x" * (5 * 1024 * 1024)),
            "/huge-ok": (200, {}, b"y" * (5 * 1024 * 1024)),
            "/gone": (410, {}, b"gone"),
        }.get(self.path, (200, {}, b"ok"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the sender stopped reading: that is the point
            self.wfile.write(body)


@pytest.fixture
def misbehaving():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_receiver_that_hangs_fails_redirects_or_floods_costs_one_attempt(
    app, db_session, make_tenant, misbehaving, run_jobs, monkeypatch
):
    monkeypatch.setitem(app.config, "WEBHOOK_READ_SECONDS", 0.3)
    tenant = make_tenant()
    endpoints = {
        path: _endpoint(app, db_session, tenant, f"{misbehaving}{path}").id
        for path in ("/slow", "/error", "/redirect", "/huge", "/huge-ok")
    }
    _client_event(app, db_session, tenant, 1)
    run_jobs()  # no exception reaches the worker: each ends as an attempt in the log

    session = tenant_session(db_session, tenant)
    outcome = {}
    for path, endpoint_id in endpoints.items():
        [delivery] = _deliveries(db_session, tenant, endpoint_id)
        [attempt] = session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
        ).all()
        outcome[path] = (delivery.status, attempt.response_status, attempt.error)
        assert len(attempt.response_body or "") <= RESPONSE_BODY_LIMIT
    assert outcome["/slow"] == ("pending", None, "Timed out")
    assert outcome["/error"] == ("pending", 500, None)
    assert outcome["/redirect"] == (
        "pending",
        302,
        "Redirected elsewhere; redirects are not followed",
    )
    assert _Misbehaving.redirected_hits == 0
    assert outcome["/huge"] == ("pending", 500, None)
    assert outcome["/huge-ok"] == ("delivered", 200, None)  # 2xx is success; 64 KB kept
    huge = session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoints["/huge-ok"])
    ).one()
    assert len(huge.response_body) == RESPONSE_BODY_LIMIT


def test_private_loopback_and_metadata_destinations_are_refused_at_save_and_at_connect(
    app, db_session, make_tenant, receiver, run_jobs, monkeypatch
):
    tenant = make_tenant()
    allowed_here = _endpoint(app, db_session, tenant, receiver.url)
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOWED_NETWORKS", ())  # production's setting
    with app.app_context():
        for url in (
            "http://169.254.169.254/latest/meta-data",
            "https://metadata.google.internal/hook",
            "https://10.0.0.5/hook",
            "https://[::1]/hook",
            "https://localhost/hook",
            receiver.url,
        ):
            _, errors = services.check_endpoint({"url": url, "all_events": "1"})
            assert errors == {
                "url": "Webhooks go to public addresses only, not to private or local ones."
            }, url
        _, errors = services.check_endpoint({"url": "http://hooks.example.com/", "all_events": "1"})
        assert errors["url"] == "Use https:// so that events travel encrypted."
        _, errors = services.check_endpoint({"url": "ftp://x", "event_types": ["client.exploded"]})
        assert set(errors) == {"url", "event_types"}
    # Saved while allowed, sent when it no longer is: the connection is refused, nothing leaves.
    _client_event(app, db_session, tenant, 1)
    run_jobs()
    assert receiver.recorded() == []
    [delivery] = _deliveries(db_session, tenant, allowed_here.id)
    assert (delivery.status, delivery.last_error) == (
        "pending",
        "Refused: the address is private or local",
    )


def test_an_endpoint_failing_too_long_is_turned_off_and_its_admins_told(
    app, client, db_session, make_tenant, make_user, add_member, login, receiver, run_jobs
):
    owner, admin, viewer = make_user(), make_user(), make_user()
    tenant = make_tenant(owner=owner)
    add_member(tenant, admin, role="admin")
    add_member(tenant, viewer, role="viewer")
    endpoint = _endpoint(app, db_session, tenant, receiver.url)
    session = tenant_session(db_session, tenant)
    session.execute(
        update(WebhookEndpoint).values(consecutive_failures=services.DISABLE_AFTER_FAILURES - 2)
    )
    session.commit()
    receiver.inject_fault(500, count=2)
    _client_event(app, db_session, tenant, 1)
    run_jobs()  # the 99th failure in a row: still on
    assert session.get(WebhookEndpoint, endpoint.id, populate_existing=True).status == "enabled"
    _make_due(db_session, tenant)
    _send(app, run_jobs, tenant, endpoint.id)  # the 100th

    endpoint = session.get(WebhookEndpoint, endpoint.id, populate_existing=True)
    assert endpoint.status == "disabled"
    assert endpoint.disabled_reason == "The last 100 attempts all failed."
    told = session.scalars(select(Notification.user_id).where(Notification.kind == "info")).all()
    assert sorted(told) == sorted([owner.id, admin.id])
    # Nothing more is sent while it is off; the delivery waits for it.
    _make_due(db_session, tenant)
    _send(app, run_jobs, tenant, endpoint.id)
    assert receiver.recorded() == []
    login(client, admin)
    page = client.get(f"/t/{tenant.slug}/webhooks/{endpoint.id}")
    assert "The last 100 attempts all failed." in page.text
    # Enabled again, what waited goes out.
    form = {"csrf_token": csrf_token_from(page.text)}
    assert (
        client.post(f"/t/{tenant.slug}/webhooks/{endpoint.id}/enable", data=form).status_code == 303
    )
    run_jobs()
    assert [e["type"] for e in receiver.recorded()] == ["client.created"]

    # A day of nothing but failures turns it off too, however few attempts that was.
    session.execute(
        update(WebhookEndpoint).values(
            consecutive_failures=1, failing_since=datetime.now(UTC) - timedelta(hours=25)
        )
    )
    session.commit()
    receiver.inject_fault(500, count=1)
    _client_event(app, db_session, tenant, 2)
    run_jobs()
    endpoint = session.get(WebhookEndpoint, endpoint.id, populate_existing=True)
    assert (endpoint.status, endpoint.disabled_reason) == (
        "disabled",
        "Every attempt failed for 24 hours.",
    )


def test_a_receiver_answering_410_gone_turns_the_endpoint_off_at_once(
    app, db_session, make_tenant, misbehaving, run_jobs
):
    tenant = make_tenant()
    endpoint = _endpoint(app, db_session, tenant, f"{misbehaving}/gone")
    _client_event(app, db_session, tenant, 1)
    run_jobs()
    session = tenant_session(db_session, tenant)
    endpoint = session.get(WebhookEndpoint, endpoint.id, populate_existing=True)
    assert endpoint.status == "disabled" and "410 Gone" in endpoint.disabled_reason


def test_admins_manage_endpoints_send_a_test_event_rotate_the_secret_and_replay(
    app, client, db_session, make_tenant, make_user, add_member, login, receiver, run_jobs
):
    owner, viewer = make_user(), make_user()
    tenant = make_tenant(owner=owner)
    add_member(tenant, viewer, role="viewer")
    login(client, owner)
    base = f"/t/{tenant.slug}/webhooks"
    page = client.get(f"{base}/new")
    token = csrf_token_from(page.text)
    refused = client.post(
        f"{base}/new", data={"csrf_token": token, "url": "https://10.1.2.3/x", "all_events": "1"}
    )
    assert refused.status_code == 422
    assert "Webhooks go to public addresses only" in refused.text
    made = client.post(
        f"{base}/new", data={"csrf_token": token, "url": f"{receiver.url}/erp", "all_events": "1"}
    )
    assert made.status_code == 303
    endpoint_id = int(made.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    other = _endpoint(app, db_session, tenant, f"{receiver.url}/other")
    shown = client.get(f"{base}/{endpoint_id}")
    session = tenant_session(db_session, tenant)
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    with app.app_context():
        old_secret = services.current_secret(endpoint)
    assert old_secret.startswith("whsec_") and old_secret in shown.text

    # The test event goes to this endpoint only.
    assert client.post(f"{base}/{endpoint_id}/test", data={"csrf_token": token}).status_code == 303
    run_jobs()
    [entry] = receiver.recorded()
    assert entry["path"] == "/erp"
    assert _verified(old_secret, entry)["data"]["endpoint_id"] == endpoint_id
    assert _deliveries(db_session, tenant, other.id) == []

    # A new secret: both sign for a day, so a receiver still on the old one keeps working.
    assert (
        client.post(f"{base}/{endpoint_id}/rotate-secret", data={"csrf_token": token}).status_code
        == 303
    )
    with app.app_context():
        new_secret = services.current_secret(
            session.get(WebhookEndpoint, endpoint_id, populate_existing=True)
        )
    assert new_secret != old_secret
    [delivery] = _deliveries(db_session, tenant, endpoint_id)
    replayed = client.post(
        f"{base}/{endpoint_id}/deliveries/{delivery.id}/replay", data={"csrf_token": token}
    )
    assert replayed.status_code == 303
    run_jobs()
    first, again = receiver.recorded()
    assert again["webhook_id"] == first["webhook_id"]  # the same message, recognisably
    assert _verified(old_secret, again) == _verified(new_secret, again)

    # Replay of a time range (in the workspace's time zone), and the log's page.
    now = datetime.now(UTC)
    wrong = client.post(
        f"{base}/{endpoint_id}/replay",
        data={"csrf_token": token, "start": "yesterday", "end": "2026-01-01T00:00"},
    )
    assert wrong.status_code == 422 and "Enter a date and time" in wrong.text
    ranged = client.post(
        f"{base}/{endpoint_id}/replay",
        data={
            "csrf_token": token,
            "start": (now - timedelta(hours=1)).isoformat(),
            "end": (now + timedelta(hours=1)).isoformat(),
        },
    )
    assert ranged.status_code == 303
    run_jobs()
    assert len(receiver.recorded()) == 3
    log = client.get(f"{base}/{endpoint_id}/deliveries/{delivery.id}")
    assert log.status_code == 200 and "Attempt 3" in log.text and "webhook-signature" in log.text

    viewers = app.test_client()
    login(viewers, viewer)
    assert viewers.get(f"{base}/{endpoint_id}").status_code in (403, 404)
    assert viewers.get(f"{base}/").status_code in (403, 404)


def test_a_workspace_s_events_go_to_its_own_endpoints_only(app, db_session, make_tenant, run_jobs):
    with WebhookReceiverStandin() as of_a, WebhookReceiverStandin() as of_b:
        tenant_a, tenant_b = make_tenant(), make_tenant()
        _endpoint(app, db_session, tenant_a, of_a.url)
        _endpoint(app, db_session, tenant_b, of_b.url)
        _client_event(app, db_session, tenant_a, 5)
        run_jobs()
        assert [e["type"] for e in of_a.recorded()] == ["client.created"]
        assert of_b.recorded() == []


def test_the_sandbox_receiver_checks_signatures_and_shows_what_it_got():
    secret = services.new_secret()
    with WebhookReceiverStandin(secret=secret) as standin:
        now = int(time.time())
        body = b'{"type":"client.created","timestamp":"2026-12-05T10:00:00Z","data":{}}'
        good = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(now),
            "webhook-signature": signature(secret, "msg_1", now, body),
        }
        forged = {**good, "webhook-id": "msg_2"}
        with httpx.Client(trust_env=False) as http:
            assert (
                http.post(f"{standin.url}/any/path", content=body, headers=good).status_code == 200
            )
            assert http.post(standin.url, content=body, headers=forged).status_code == 400
            page = http.get(standin.url).text
        assert page.index("msg_2") < page.index("msg_1")  # newest first
        assert "INVALID" in page and "valid" in page and "client.created" in page


def test_the_demo_workspace_is_connected_to_the_sandbox_receiver_wherever_it_runs(
    app, db_session, make_tenant
):
    from app.sandbox.providers import connect_demo_webhook_receiver
    from app.sandbox.standins.webhook_receiver import DEMO_SECRET

    tenant = make_tenant()
    with app.app_context():
        session = tenant_session(db_session, tenant)
        connect_demo_webhook_receiver(session, "http://127.0.0.1:40001/duebook", 1)
        connect_demo_webhook_receiver(session, "http://127.0.0.1:40002/duebook", 1)  # next run
        session.commit()
        [endpoint] = session.scalars(select(WebhookEndpoint)).all()
        assert endpoint.url == "http://127.0.0.1:40002/duebook"
        assert endpoint.event_types is None and endpoint.status == "enabled"
        assert services.current_secret(endpoint) == DEMO_SECRET


def test_the_delivery_log_forgets_what_is_done_after_30_days_and_keeps_what_waits(
    app, db_session, make_tenant, receiver, run_jobs
):
    tenant = make_tenant()
    endpoint = _endpoint(app, db_session, tenant, f"{receiver.url}/all")
    for client_id in (1, 2, 3):
        _client_event(app, db_session, tenant, client_id)
    run_jobs()
    old, waiting, recent = _deliveries(db_session, tenant, endpoint.id)
    assert {d.status for d in (old, waiting, recent)} == {"delivered"}
    session = tenant_session(db_session, tenant)
    long_ago = datetime.now(UTC) - services.LOG_KEPT_FOR - timedelta(hours=1)
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_([old.id, waiting.id]))
        .values(created_at=long_ago)
    )
    session.execute(
        update(WebhookDelivery).where(WebhookDelivery.id == waiting.id).values(status="pending")
    )
    session.commit()
    assert services.attempts_of(session, old.id)
    with app.app_context():
        assert services.prune_log(session, datetime.now(UTC), batch=1) == 1
    assert [d.id for d in _deliveries(db_session, tenant, endpoint.id)] == [waiting.id, recent.id]
    assert services.attempts_of(session, old.id) == []
    # The event itself stays: the API's event list and a new endpoint's history still have it.
    assert session.get(DomainEvent, old.event_id) is not None
