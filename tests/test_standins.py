"""The messaging stand-ins (app/sandbox/standins) keep the providers' published contracts.

Oracles: the official Twilio SDK (sending, and `RequestValidator` for callback signatures), plain
`hmac` and the providers.md table 0.4 vector for Meta's `X-Hub-Signature-256`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from jsonschema import Draft202012Validator
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from app.sandbox.standins import (
    Msg91Standin,
    TwilioStandin,
    WhatsAppStandin,
    hub_signature,
    twilio_signature,
    verify_webhook,
)

PHONE_ID = "100000000000001"
TOKEN = "wa-token"
SECRET = "app-secret"
SEND = f"/v21.0/{PHONE_ID}/messages"
USER = "919876543210"
ROOT = Path(__file__).resolve().parent.parent


class Receiver:
    """A tiny threaded loopback HTTP server that records what it is sent."""

    def __init__(self, fail_first: int = 0, status: int = 200) -> None:
        self.calls: list[dict] = []
        self.fail_first = fail_first
        self.status = status
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                query = parse_qs(urlsplit(self.path).query)
                challenge = query.get("hub.challenge", [""])[0]
                ok = query.get("hub.verify_token", [""])[0] == "verify-me"
                body = challenge.encode() if ok else b""
                self.send_response(200 if ok else 403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.changed:
                    attempt = len(receiver.calls)
                    receiver.calls.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    receiver.changed.notify_all()
                status = 500 if attempt < receiver.fail_first else receiver.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 3.0) -> list[dict]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.calls) >= count, timeout)
        return self.calls

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def _whatsapp(**options) -> WhatsAppStandin:
    options.setdefault("status_script", "none")
    standin = WhatsAppStandin(
        phone_number_id=PHONE_ID,
        token=TOKEN,
        app_secret=SECRET,
        templates=[
            {"name": "invoice_due", "body": "Hello {{1}}, invoice {{2}} is due."},
            {"name": "invoice_pdf", "body": "Invoice {{1}} attached.", "header": "DOCUMENT"},
        ],
        **options,
    )
    return standin.start()


@pytest.fixture
def whatsapp():
    standin = _whatsapp()
    yield standin
    standin.stop()


def _client(standin: WhatsAppStandin, token: str = TOKEN) -> httpx.Client:
    return httpx.Client(base_url=standin.url, headers={"Authorization": f"Bearer {token}"})


def _template(to: str = USER, params=("Asha", "INV-9271"), key: str | None = None, **extra):
    body = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": extra.pop("name", "invoice_due"),
            "language": {"code": "en_US"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in params]},
                *extra.pop("components", []),
            ],
        },
    }
    if key is not None:
        body["biz_opaque_callback_data"] = key
    return body


# -- common ---------------------------------------------------------------------------------


def test_binds_loopback_only():
    with pytest.raises(ValueError):
        WhatsAppStandin(host="0.0.0.0")
    with TwilioStandin() as standin:
        assert standin.url.startswith("http://127.0.0.1:")
        assert standin.port > 0


def test_admin_endpoints_inject_faults_and_reset(whatsapp):
    with _client(whatsapp) as http:
        http.post("/_standin/faults", json={"status": 500, "count": 1})
        assert http.post(SEND, json=_template()).status_code == 500
        assert http.post(SEND, json=_template()).status_code == 200
        stats = http.get("/_standin/stats").json()
        assert (stats["requests"], stats["accepted"], stats["failed"]) == (2, 1, 1)
        assert len(http.get("/_standin/messages").json()["messages"]) == 1
        http.post("/_standin/reset")
        assert http.get("/_standin/stats").json()["requests"] == 0
        assert whatsapp.recorded() == []


# -- WhatsApp -------------------------------------------------------------------------------


def test_hub_signature_matches_the_published_vector():
    body = b'{"entry":[{"id":"1","changes":[]}],"object":"whatsapp_business_account"}'
    assert hub_signature("test_secret", body) == (
        "sha256=7932f5e45aaca9ef56a07c5f063be99c7333ecc9c95fa6558391b2600689a5ad"
    )


def test_template_send_answers_records_and_signs_status_webhooks(receiver, tmp_path):
    standin = _whatsapp(
        webhook_url=receiver.url + "/wa", status_script="default", record_dir=tmp_path
    )
    try:
        with _client(standin) as http:
            answer = http.post(SEND, json=_template(key="outbox-1"))
        assert answer.status_code == 200
        data = answer.json()
        wamid = data["messages"][0]["id"]
        assert wamid.startswith("wamid.")
        assert data == {
            "messaging_product": "whatsapp",
            "contacts": [{"input": USER, "wa_id": USER}],
            "messages": [{"id": wamid, "message_status": "accepted"}],
        }
        calls = receiver.wait_for(3)
        assert standin.webhooks.wait_idle()
    finally:
        standin.stop()

    statuses = []
    for call in calls:
        expected = "sha256=" + hmac.new(SECRET.encode(), call["body"], hashlib.sha256).hexdigest()
        assert call["headers"]["X-Hub-Signature-256"] == expected
        payload = json.loads(call["body"])
        assert payload["object"] == "whatsapp_business_account"
        change = payload["entry"][0]["changes"][0]
        assert change["field"] == "messages"
        assert change["value"]["metadata"]["phone_number_id"] == PHONE_ID
        statuses += change["value"]["statuses"]
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    assert {s["id"] for s in statuses} == {wamid}
    assert {s["biz_opaque_callback_data"] for s in statuses} == {"outbox-1"}
    assert {s["recipient_id"] for s in statuses} == {USER}

    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    assert re.fullmatch(r"\d+-[0-9a-f]{8}\.json", files[0].name)
    recording = json.loads(files[0].read_text())
    assert recording["text"] == "Hello Asha, invoice INV-9271 is due."
    assert (recording["to"], recording["message_id"]) == (USER, wamid)
    assert recording["idempotency_key"] == "outbox-1"
    assert recording["channel"] == "whatsapp"


def test_batched_statuses_and_scripted_failure(receiver):
    standin = _whatsapp(webhook_url=receiver.url, status_script="sent,read", batch_statuses=True)
    standin.fail_recipient("919000000001", code=131026)
    try:
        with _client(standin) as http:
            http.post(SEND, json=_template())
            http.post(SEND, json=_template(to="919000000001"))
        assert standin.webhooks.wait_idle()
    finally:
        standin.stop()
    first, second = (json.loads(c["body"]) for c in receiver.calls)
    batched = first["entry"][0]["changes"][0]["value"]["statuses"]
    assert [s["status"] for s in batched] == ["sent", "read"]
    failed = second["entry"][0]["changes"][0]["value"]["statuses"]
    assert failed[0]["status"] == "failed"
    assert failed[0]["errors"][0]["code"] == 131026


def test_template_errors(whatsapp):
    with _client(whatsapp) as http:
        wrong_count = http.post(SEND, json=_template(params=("Asha",)))
        unknown = http.post(SEND, json=_template(name="nope"))
        bad_token = _client(whatsapp, "wrong").post(SEND, json=_template())
        bad_product = http.post(SEND, json={**_template(), "messaging_product": "sms"})
    assert wrong_count.status_code == 400
    error = wrong_count.json()["error"]
    assert error["code"] == 132000
    assert error["type"] == "OAuthException"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert "fbtrace_id" in error
    assert "Number of parameters does not match" in error["message"]
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, 132001)
    assert (bad_token.status_code, bad_token.json()["error"]["code"]) == (401, 190)
    assert (bad_product.status_code, bad_product.json()["error"]["code"]) == (400, 100)
    assert whatsapp.stats()["accepted"] == 0


def test_paused_template_is_refused(whatsapp):
    whatsapp.set_template_status("invoice_due", "PAUSED")
    with _client(whatsapp) as http:
        answer = http.post(SEND, json=_template())
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, 132015)


def test_rate_above_the_configured_limit_answers_130429():
    standin = _whatsapp(rate=3)
    try:
        with _client(standin) as http:
            answers = [http.post(SEND, json=_template(to=f"9190000000{i:02d}")) for i in range(10)]
    finally:
        standin.stop()
    throttled = [a for a in answers if a.status_code == 429]
    # Ten requests span at most two one-second windows: at most six pass.
    assert len(throttled) >= 4
    assert {a.json()["error"]["code"] for a in throttled} == {130429}
    stats = standin.stats()
    assert stats["throttled"] == len(throttled)
    assert stats["accepted"] == 10 - len(throttled)


def test_duplicate_callback_data_returns_the_same_wamid_once(receiver):
    standin = _whatsapp(webhook_url=receiver.url, status_script="sent")
    try:
        with _client(standin) as http:
            first = http.post(SEND, json=_template(key="outbox-7")).json()
            again = http.post(SEND, json=_template(key="outbox-7")).json()
            other = http.post(SEND, json=_template(key="outbox-8")).json()
        assert standin.webhooks.wait_idle()
    finally:
        standin.stop()
    assert first["messages"][0]["id"] == again["messages"][0]["id"]
    assert other["messages"][0]["id"] != first["messages"][0]["id"]
    stats = standin.stats()
    assert stats["accepted"] == 2
    assert stats["duplicate_keys"] == 1
    assert stats["unique_keys"] == 2
    assert stats["per_key"] == {"outbox-7": 2, "outbox-8": 1}
    assert len(standin.recorded()) == 2
    assert len(receiver.calls) == 2  # one "sent" per delivered message, none for the duplicate


def test_session_messages_need_an_inbound_message_in_the_last_24_hours(receiver):
    standin = _whatsapp(webhook_url=receiver.url)
    text = {"messaging_product": "whatsapp", "to": USER, "type": "text", "text": {"body": "Hi"}}
    try:
        with _client(standin) as http:
            closed = http.post(SEND, json=text)
            standin.simulate_inbound(USER, "old", timestamp=time.time() - 25 * 3600)
            expired = http.post(SEND, json=text)
            inbound_id = standin.simulate_inbound(USER, "Paid yesterday", context_id="wamid.X")
            open_ = http.post(SEND, json=text)
        assert standin.webhooks.wait_idle()
    finally:
        standin.stop()
    assert (closed.status_code, closed.json()["error"]["code"]) == (400, 131047)
    assert expired.json()["error"]["code"] == 131047
    assert open_.status_code == 200
    messages = json.loads(receiver.calls[-1]["body"])["entry"][0]["changes"][0]["value"]
    message = messages["messages"][0]
    assert message["from"] == USER
    assert message["id"] == inbound_id
    assert message["text"] == {"body": "Paid yesterday"}
    assert message["context"]["id"] == "wamid.X"
    assert message["timestamp"].isdigit()


def test_media_upload_and_document_header_are_recorded(whatsapp):
    with _client(whatsapp) as http:
        upload = http.post(
            f"/v21.0/{PHONE_ID}/media",
            data={"messaging_product": "whatsapp", "type": "application/pdf"},
            files={"file": ("INV-1.pdf", b"%PDF-1.7 test", "application/pdf")},
        )
        media_id = upload.json()["id"]
        header = {
            "type": "header",
            "parameters": [{"type": "document", "document": {"id": media_id}}],
        }
        missing = http.post(SEND, json=_template(name="invoice_pdf", params=("INV-1",)))
        sent = http.post(
            SEND, json=_template(name="invoice_pdf", params=("INV-1",), components=[header])
        )
    assert upload.status_code == 200
    assert missing.status_code == 400
    assert sent.status_code == 200
    document = whatsapp.recorded()[-1]["document"]
    assert document["media_id"] == media_id
    assert document["filename"] == "INV-1.pdf"
    assert document["size"] == len(b"%PDF-1.7 test")


def test_template_list_pages_with_cursors(whatsapp):
    whatsapp.register_template("reminder", "Reminder {{1}}", status="PENDING")
    with _client(whatsapp) as http:
        first = http.get(f"/v21.0/{whatsapp.waba_id}/message_templates", params={"limit": 2})
        after = first.json()["paging"]["cursors"]["after"]
        second = http.get(
            f"/v21.0/{whatsapp.waba_id}/message_templates", params={"limit": 2, "after": after}
        )
        anonymous = httpx.get(f"{whatsapp.url}/v21.0/{whatsapp.waba_id}/message_templates")
    page = first.json()
    assert [t["name"] for t in page["data"]] == ["invoice_due", "invoice_pdf"]
    assert page["data"][0]["components"] == [
        {"type": "BODY", "text": "Hello {{1}}, invoice {{2}} is due."}
    ]
    assert "next" in page["paging"]
    assert [(t["name"], t["status"]) for t in second.json()["data"]] == [("reminder", "PENDING")]
    assert anonymous.status_code == 401


def test_daily_cap_and_pair_rate():
    standin = _whatsapp(daily_cap=2, pair_interval=6.0)
    try:
        with _client(standin) as http:
            first = http.post(SEND, json=_template(to="919000000001"))
            pair = http.post(SEND, json=_template(to="919000000001"))
            http.post(SEND, json=_template(to="919000000002"))
            capped = http.post(SEND, json=_template(to="919000000003"))
    finally:
        standin.stop()
    assert first.status_code == 200
    assert (pair.status_code, pair.json()["error"]["code"]) == (400, 131056)
    assert (capped.status_code, capped.json()["error"]["code"]) == (400, 131048)


def test_verification_driver(receiver):
    assert verify_webhook(receiver.url + "/wa", "verify-me", challenge="1158201444")
    assert not verify_webhook(receiver.url + "/wa", "wrong")


def test_failed_webhook_deliveries_are_retried_then_dropped():
    flaky, dead = Receiver(fail_first=2), Receiver(status=500)
    try:
        for target, outcome in ((flaky, "webhooks_delivered"), (dead, "webhooks_dropped")):
            standin = _whatsapp(
                webhook_url=target.url,
                status_script="sent",
                webhook_retries=2,
                webhook_retry_delay=0.01,
            )
            with _client(standin) as http:
                http.post(SEND, json=_template())
            assert standin.webhooks.wait_idle()
            standin.stop()
            assert standin.stats()[outcome] == 1
            assert len(target.calls) == 3
    finally:
        flaky.close()
        dead.close()


# -- Twilio ---------------------------------------------------------------------------------


class StandinHttpClient(TwilioHttpClient):
    """The official SDK's HTTP client, pointed at the stand-in (providers.md §0.2)."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(self, method, url, *args, **kwargs):
        url = url.replace("https://api.twilio.com", self.base_url)
        return super().request(method, url, *args, **kwargs)


def test_twilio_sdk_sends_and_the_status_callback_validates(receiver):
    with TwilioStandin() as standin:
        client = Client(
            standin.account_sid, standin.auth_token, http_client=StandinHttpClient(standin.url)
        )
        callback = receiver.url + "/hooks/twilio/status?tenant=acme"
        message = client.messages.create(
            to="+919876543210",
            from_="+15005550006",
            body="Invoice INV-1 is due",
            status_callback=callback,
        )
        calls = receiver.wait_for(2)
        fetched = client.messages(message.sid).fetch()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert message.status == "queued"
    assert message.num_segments == "1"
    assert message.error_code is None
    assert fetched.sid == message.sid

    validator = RequestValidator(standin.auth_token)
    statuses = []
    for call in calls:
        params = {k: v[0] for k, v in parse_qs(call["body"].decode()).items()}
        signature = call["headers"]["X-Twilio-Signature"]
        assert validator.validate(callback, params, signature)
        assert signature == validator.compute_signature(callback, params)
        assert not validator.validate(callback, {**params, "MessageStatus": "read"}, signature)
        assert params["MessageSid"] == params["SmsSid"] == message.sid
        assert params["AccountSid"] == standin.account_sid
        statuses.append(params["MessageStatus"])
    assert statuses == ["sent", "delivered"]


def test_twilio_signature_matches_the_published_vector():
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_twilio_errors_and_injected_429():
    with TwilioStandin() as standin:
        client = Client(
            standin.account_sid, standin.auth_token, http_client=StandinHttpClient(standin.url)
        )
        with pytest.raises(TwilioRestException) as bad_number:
            client.messages.create(to="12345", from_="+15005550006", body="x")
        standin.inject_fault(429, retry_after=2)
        answer = httpx.post(
            f"{standin.url}/2010-04-01/Accounts/{standin.account_sid}/Messages.json",
            data={"To": "+919876543210", "From": "+15005550006", "Body": "x"},
            auth=(standin.account_sid, standin.auth_token),
        )
        wrong = Client(standin.account_sid, "wrong", http_client=StandinHttpClient(standin.url))
        with pytest.raises(TwilioRestException) as unauthorized:
            wrong.messages.create(to="+919876543210", from_="+15005550006", body="x")
    assert (bad_number.value.status, bad_number.value.code) == (400, 21211)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "2"
    assert answer.json()["code"] == 20429
    assert (unauthorized.value.status, unauthorized.value.code) == (401, 20003)
    stats = standin.stats()
    assert (stats["failed"], stats["throttled"], stats["accepted"]) == (1, 1, 0)


def test_twilio_idempotency_header_is_opt_in():
    with TwilioStandin(idempotency_header="Idempotency-Key", status_script="none") as standin:
        url = f"{standin.url}/2010-04-01/Accounts/{standin.account_sid}/Messages.json"
        form = {"To": "+919876543210", "From": "+15005550006", "Body": "x"}
        auth = (standin.account_sid, standin.auth_token)
        with httpx.Client(auth=auth) as http:
            first = http.post(url, data=form, headers={"Idempotency-Key": "k1"}).json()
            again = http.post(url, data=form, headers={"Idempotency-Key": "k1"}).json()
            plain = http.post(url, data=form).json()
    assert first["sid"] == again["sid"] != plain["sid"]
    stats = standin.stats()
    assert (stats["accepted"], stats["duplicate_keys"]) == (2, 1)


# -- MSG91 ----------------------------------------------------------------------------------


def test_msg91_flow_renders_dlt_text_and_reports_delivery(receiver):
    with Msg91Standin(
        authkey="key",
        webhook_url=receiver.url + "/hooks/msg91/secret-path-token",
        templates=[
            {
                "template_id": "tpl-1",
                "content": "Dear ##name##, invoice ##invoice## is due.",
                "sender": "DUEBKS",
                "dlt_template_id": "1107000000000000001",
            }
        ],
    ) as standin:
        with httpx.Client(base_url=standin.url, headers={"authkey": "key"}) as http:
            body = {
                "template_id": "tpl-1",
                "short_url": "0",
                "recipients": [{"mobiles": USER, "name": "Asha", "invoice": "INV-1"}],
            }
            ok = http.post("/api/v5/flow/", json=body)
            older = {**body, "flow_id": body["template_id"]}
            del older["template_id"]
            again = http.post("/api/v5/flow", json=older)
            missing = http.post(
                "/api/v5/flow", json={**body, "recipients": [{"mobiles": USER, "name": "A"}]}
            )
            unknown = http.post("/api/v5/flow", json={**body, "template_id": "nope"})
            bad_key = httpx.post(f"{standin.url}/api/v5/flow", json=body, headers={"authkey": "x"})
        calls = receiver.wait_for(4)
        stats = standin.stats()
    assert ok.status_code == 200
    assert ok.json()["type"] == "success"
    assert again.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{24}", ok.json()["message"])
    assert (missing.status_code, missing.json()["type"]) == (400, "error")
    assert unknown.status_code == 400
    assert bad_key.status_code == 401
    assert bad_key.json()["type"] == "error"
    recording = standin.recorded()[0]
    assert recording["text"] == "Dear Asha, invoice INV-1 is due."
    assert (recording["from"], recording["to"]) == ("DUEBKS", USER)
    assert recording["template"]["dlt_template_id"] == "1107000000000000001"
    reports = [json.loads(c["body"]) for c in calls]
    first = [r for r in reports if r["requestId"] == ok.json()["message"]]
    assert [r["status"] for r in first] == ["SENT", "DELIVERED"]
    assert first[0]["number"] == USER
    assert first[0]["senderId"] == "DUEBKS"
    # MSG91 cannot deduplicate: the repeat is delivered, and counted as a possible duplicate.
    assert (stats["accepted"], stats["duplicate_keys"], stats["unique_keys"]) == (2, 1, 1)


# -- as a process ---------------------------------------------------------------------------


def test_runs_as_a_process_until_sigterm(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.sandbox.standins",
            "twilio",
            "--port",
            "0",
            "--record-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/_standin/stats").json()["requests"] == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()


# -- account checks against the published API documents (tests/contracts) ------------------

CONTRACTS = ROOT / "tests" / "contracts"


def _openapi(name: str) -> dict:
    return json.loads((CONTRACTS / name).read_text())


def _nullable_as_json_schema(node):
    """OpenAPI 3.0's `nullable: true` as JSON Schema's `type: [t, "null"]` (3.1 needs none)."""
    if isinstance(node, dict):
        node = {key: _nullable_as_json_schema(value) for key, value in node.items()}
        if node.pop("nullable", False) and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        return node
    if isinstance(node, list):
        return [_nullable_as_json_schema(value) for value in node]
    return node


def _check(spec: dict, component: str, instance) -> None:
    """Validate `instance` against a schema of the spec's components (refs resolved in it)."""
    document = _nullable_as_json_schema(spec) if spec["openapi"].startswith("3.0") else spec
    schema = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    Draft202012Validator(schema).validate(instance)


def _check_path(spec: dict, template: str, method: str, path: str) -> dict:
    """The path parameters of `path` as the spec's operation defines them, each checked
    against its schema; fails when the path does not fit the template."""
    operation = spec["paths"][template][method]
    parameters = {p["name"]: p for p in _parameters(spec, operation) if p["in"] == "path"}
    pattern = re.escape(template)
    for name in parameters:
        group = f"(?P<{name.replace('-', '_')}>[^/]+)"
        pattern = pattern.replace(re.escape("{" + name + "}"), group)
    match = re.fullmatch(pattern, path)
    assert match, f"{path} does not fit {template}"
    values = {name: match.group(name.replace("-", "_")) for name in parameters}
    for name, value in values.items():
        Draft202012Validator(parameters[name]["schema"]).validate(value)
    return values


def _parameters(spec: dict, operation: dict) -> list[dict]:
    found = []
    for parameter in operation.get("parameters", []):
        if "$ref" in parameter:
            parameter = spec["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
        found.append(parameter)
    return found


class RecordingTransport(httpx.HTTPTransport):
    """The connectors' shared transport, keeping each request they send."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request):
        self.requests.append(request)
        return super().handle_request(request)


@pytest.fixture
def connector_requests(monkeypatch):
    from app.integrations import connectors as channels

    transport = RecordingTransport()
    monkeypatch.setattr(channels, "_transport", transport)
    return transport.requests


def test_whatsapp_number_check_follows_the_published_contract(connector_requests):
    from app.integrations.connectors import DeliveryError
    from app.integrations.connectors.whatsapp import WhatsAppCloudConnector

    spec = _openapi("whatsapp_phone_number.openapi.json")
    template = "/{Version}/{Phone-Number-ID}"
    with WhatsAppStandin(
        phone_number_id=PHONE_ID, token=TOKEN, waba_id="200000000000001", templates=[]
    ) as standin:
        config = {"WHATSAPP_API_BASE": standin.url, "WHATSAPP_API_VERSION": "v21.0"}
        settings = {"phone_number_id": PHONE_ID, "waba_id": "200000000000001"}
        connector = WhatsAppCloudConnector(
            settings=settings, secrets={"access_token": TOKEN}, config=config
        )
        assert "Connected to WhatsApp number" in connector.test_connection()
        squatter = WhatsAppCloudConnector(
            settings=settings, secrets={"access_token": "guess"}, config=config
        )
        with pytest.raises(DeliveryError) as refused:
            squatter.test_connection()
        with _client(standin) as http:
            answer = http.get(f"/v21.0/{PHONE_ID}")
        with _client(standin, token="guess") as http:
            refusal = http.get(f"/v21.0/{PHONE_ID}")

    number_check = connector_requests[0]
    assert number_check.method == "GET"
    values = _check_path(spec, template, "get", number_check.url.path)
    assert values["Phone-Number-ID"] == PHONE_ID
    authorization = next(
        p for p in _parameters(spec, spec["paths"][template]["get"]) if p["name"] == "Authorization"
    )
    Draft202012Validator(authorization["schema"]).validate(number_check.headers["Authorization"])
    assert isinstance(number_check.url.params["fields"], str)
    _check(spec, "PhoneNumberInfo", answer.json())
    assert answer.json()["id"] == PHONE_ID
    assert refusal.status_code == 401
    _check(spec, "GraphAPIError", refusal.json())
    assert refused.value.permanent


def test_twilio_account_check_follows_the_published_contract(connector_requests):
    from app.integrations.connectors import DeliveryError
    from app.integrations.connectors.twilio_sms import TwilioConnector

    spec = _openapi("twilio_account.openapi.json")
    with TwilioStandin() as standin:
        config = {"TWILIO_API_BASE": standin.url}
        settings = {"account_sid": standin.account_sid, "sender": "+15005550006"}
        connector = TwilioConnector(
            settings=settings, secrets={"auth_token": standin.auth_token}, config=config
        )
        assert "accepted" in connector.test_connection()
        squatter = TwilioConnector(
            settings=settings, secrets={"auth_token": "guess"}, config=config
        )
        with pytest.raises(DeliveryError) as refused:
            squatter.test_connection()
        # The official SDK as the oracle: it fetches the account the same way.
        oracle = Client(
            standin.account_sid, standin.auth_token, http_client=StandinHttpClient(standin.url)
        )
        account = oracle.api.v2010.accounts(standin.account_sid).fetch()
        wrong = Client(standin.account_sid, "guess", http_client=StandinHttpClient(standin.url))
        with pytest.raises(TwilioRestException) as unauthorized:
            wrong.api.v2010.accounts(standin.account_sid).fetch()
        answer = httpx.get(
            f"{standin.url}/2010-04-01/Accounts/{standin.account_sid}.json",
            auth=(standin.account_sid, standin.auth_token),
        )

    account_check = connector_requests[0]
    assert account_check.method == "GET"
    values = _check_path(spec, "/2010-04-01/Accounts/{Sid}.json", "get", account_check.url.path)
    assert values["Sid"] == standin.account_sid
    assert spec["components"]["securitySchemes"]["accountSid_authToken"]["scheme"] == "basic"
    assert account_check.headers["Authorization"].startswith("Basic ")
    _check(spec, "api.v2010.account", answer.json())
    assert (account.sid, account.status) == (standin.account_sid, "active")
    assert (unauthorized.value.status, unauthorized.value.code) == (401, 20003)
    assert refused.value.permanent
