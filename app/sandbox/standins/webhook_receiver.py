"""A receiver of Standard Webhooks (spec v1.0.0) for `make run`, the tests and the benchmark: it
accepts a POST at any path, checks its signature with the secret it was given, records it, and
shows what it received at `GET /` (newest first: type, webhook-id, signature valid or not, body).

The check follows the specification, not Duebook's code: the signed content is
`{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 with the base64 key after `whsec_`,
compared in constant time with each `v1,` entry of the space-separated `webhook-signature`;
a timestamp more than 5 minutes away is refused. A message failing the check is still recorded
(marked invalid) and answered 400, as a careful receiver would.

It keeps what it received in memory only (the last 1,000): the sandbox's message folder is the
phone inbox's, which shows text messages. `failure_ratio` (0 to 1) makes that share of the
POSTs answer 500, spread evenly (the benchmark's unreliable subscriber)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import threading
import time

from .base import Request, Response, StandinServer, json_response

TOLERANCE_SECONDS = 5 * 60
DEMO_SECRET = "whsec_c2FuZGJveC13ZWJob29rLXJlY2VpdmVyLXNlY3JldA=="


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> bool:
    message_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    if not message_id or not timestamp.isdigit():
        return False
    if abs((now or time.time()) - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        return False
    expected = base64.b64encode(
        hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    for entry in headers.get("webhook-signature", "").split(" "):
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


class WebhookReceiverStandin(StandinServer):
    name = "webhook_receiver"

    def __init__(self, *, secret: str | None = None, failure_ratio: float = 0.0, **common):
        common["record_dir"] = None
        super().__init__(**common)
        self.secret = secret
        self.failure_ratio = failure_ratio
        self._failure_debt = 0.0
        self._failure_lock = threading.Lock()

    def _fails_now(self) -> bool:
        with self._failure_lock:
            self._failure_debt += self.failure_ratio
            if self._failure_debt >= 1:
                self._failure_debt -= 1
                return True
            return False

    def handle(self, request: Request) -> Response:
        if request.method == "GET":
            return self._page()
        if request.method != "POST":
            return json_response(405, {"error": "POST only"})
        fault = self.take_fault()
        if fault is not None:
            return fault
        if self._fails_now():
            self.stats_counters.add("failed")
            return json_response(500, {"error": "failing on purpose"})
        valid = verify(self.secret, request.headers, request.body) if self.secret else None
        try:
            payload = json.loads(request.body)
        except ValueError:
            payload = None
        self.record(
            {
                "path": request.path,
                "type": payload.get("type") if isinstance(payload, dict) else None,
                "webhook_id": request.headers.get("webhook-id"),
                "webhook_timestamp": request.headers.get("webhook-timestamp"),
                "webhook_signature": request.headers.get("webhook-signature"),
                "signature_valid": valid,
                "body": request.body.decode("utf-8", "replace"),
            }
        )
        if valid is False:
            self.stats_counters.add("rejected")
            return json_response(400, {"error": "signature does not verify"})
        self.stats_counters.add("accepted")
        return json_response(200, {"received": True})

    def _page(self) -> Response:
        rows = []
        for entry in reversed(self.recorded()):
            valid = {True: "valid", False: "INVALID", None: "not checked"}[entry["signature_valid"]]
            rows.append(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td>"
                "<td><pre>{}</pre></td></tr>".format(
                    html.escape(entry["time"]),
                    html.escape(entry.get("webhook_id") or ""),
                    html.escape(entry.get("type") or ""),
                    valid,
                    html.escape(entry["body"]),
                )
            )
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Sandbox webhook receiver"
            "</title><h1>Webhooks received</h1><p>Newest first; the signature is checked with "
            "the secret this receiver was given.</p><table border=1 cellpadding=4>"
            "<tr><th>Received</th><th>webhook-id</th><th>Type</th><th>Signature</th>"
            "<th>Body</th></tr>{}</table>".format("".join(rows) or "<tr><td colspan=5>Nothing yet")
        )
        return Response(200, page.encode(), [("Content-Type", "text/html; charset=utf-8")])
