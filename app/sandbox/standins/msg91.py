"""Local stand-in for MSG91's SMS Flow API (India, DLT templates), for tests, the `make run`
sandbox and benchmarks.

Contract followed (providers.md §7.1 and the sources cited there):
- `POST /api/v5/flow` (also `/api/v5/flow/`), header `authkey`, JSON
  `{"template_id": "...", "short_url": "0"|"1", "recipients": [{"mobiles": "919876543210",
  "<var>": "value", ...}]}`; the older `flow_id` is accepted for `template_id`; `sender`,
  `route`, `unicode`, `schtime` are accepted and (except `sender`) ignored
  (https://api.msg91.com/apidoc/textsms/send-sms-flow.php). Mobile numbers are international
  digits without `+`; `mobiles` may hold several, comma-separated.
- A registered template carries its DLT template id, sender id and the DLT-approved text with
  `##var##` placeholders (https://msg91.com/help/template/how-to-create-flow-id-to-send-sms-via-api);
  every placeholder must be supplied for every recipient.
- Success: `{"type": "success", "message": "<24 hex request id>"}` (the 24-character request id
  is described in `tesark/msg91-php MSG91DOC.md` [3P]). Errors: `{"type": "error", "message":
  "..."}` with HTTP 400. A bad authkey answers 401 `{"type": "error", "message":
  "AuthenticationFailure", "code": "401"}`: that body is what a third party logged from MSG91's
  v5 OTP widget API (`Vedantlights/App-Code MSG91_401_ERROR_FIX.md` [3P]); the older
  `sendhttp` API used code 207 "Invalid authentication key" (`tesark/msg91-php ERRORCODE.md`
  [3P]). No primary source for the Flow API's exact auth error was found.
- Delivery reports: MSG91's v3 JSON webhook (`requestId`, `number`, `status`, `desc`,
  `failedReason`, `date`, `senderId`), one POST per recipient per status
  (https://msg91.com/help/webhooks/how-can-i-get-the-delivery-reports-on-my-webhook-url).
  `status` and `desc` both carry the word (`SENT`, `DELIVERED`, `FAILED`); the real numeric
  status codes and the exact `date` format (here `YYYY-MM-DD HH:MM:SS`, UTC) are not confirmed.
  MSG91 documents **no signature** (providers.md §7.1 [gap]): our product protects its endpoint
  with a per-tenant secret path token, so the stand-in POSTs to whatever URL it was given.

Idempotency: MSG91 has no idempotency key and cannot deduplicate a retried request. The
stand-in counts a message whose (mobile, rendered text) was accepted within the last
`duplicate_window` seconds (60) as a *possible* duplicate (`duplicate_keys`; the key is
`<mobile>:<sha256 of text, 16 hex>`), but still accepts and "delivers" it, as MSG91 would. (The
old `sendhttp` API discarded identical requests within 10 s, error 311, per the same [3P]
error list; the Flow API documents nothing like it, so the stand-in does not do it.)

Not implemented: OTP, scheduling (`schtime`), short URL expansion, unicode segment counting,
balance/route errors, IP whitelisting (error 418), reports v2 (form-encoded `data`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from .base import Fault, Request, Response, StandinServer, json_response

VARIABLE = re.compile(r"##([A-Za-z0-9_]+)##")
DEFAULT_AUTHKEY = "standin-msg91-authkey"
REPORT_WORDS = {"sent": "SENT", "delivered": "DELIVERED", "failed": "FAILED"}


def _error(status: int, message: str, **extra) -> Response:
    return json_response(status, {"type": "error", "message": message, **extra})


@dataclass(slots=True)
class DltTemplate:
    template_id: str
    content: str
    sender: str = "DUEBKS"
    dlt_template_id: str = ""

    @property
    def variables(self) -> list[str]:
        return list(dict.fromkeys(VARIABLE.findall(self.content)))


class Msg91Standin(StandinServer):
    """MSG91 Flow API stand-in. See the module docstring for the contract.

    Extra endpoint: `POST /_standin/templates` {"template_id", "content", "sender"?,
    "dlt_template_id"?} registers a template.
    """

    name = "msg91"
    default_status_script = ("sent", "delivered")

    def __init__(
        self,
        *,
        authkey: str = DEFAULT_AUTHKEY,
        templates: list[dict] | None = None,
        duplicate_window: float = 60.0,
        **common,
    ) -> None:
        super().__init__(**common)
        self.authkey = authkey
        self.duplicate_window = duplicate_window
        self.templates: dict[str, DltTemplate] = {}
        self.failing_numbers: dict[str, str] = {}
        self._state_lock = threading.Lock()
        for spec in templates or ():
            self.register_template(**spec)
        self.reset_state()

    def register_template(
        self,
        template_id: str,
        content: str,
        sender: str = "DUEBKS",
        dlt_template_id: str | None = None,
    ) -> DltTemplate:
        template = DltTemplate(
            template_id, content, sender, dlt_template_id or "1107" + secrets.token_hex(8)[:15]
        )
        with self._state_lock:
            self.templates[template_id] = template
        return template

    def fail_number(self, mobile: str, reason: str = "Invalid number") -> None:
        """Messages to `mobile` are accepted, then reported `FAILED` with `failedReason`."""
        self.failing_numbers[mobile] = reason

    def reset_state(self) -> None:
        with self._state_lock:
            self._last_seen: dict[str, float] = {}

    # -- routes ----------------------------------------------------------------------------

    def admin(self, request: Request) -> Response | None:
        if (request.method, request.path.rstrip("/")) == ("POST", "/_standin/templates"):
            template = self.register_template(**(request.json() or {}))
            return json_response(200, {"template_id": template.template_id})
        return None

    def handle(self, request: Request) -> Response:
        if request.path.rstrip("/") != "/api/v5/flow" or request.method != "POST":
            return _error(404, "Not found")
        fault = self.take_fault()
        if fault:
            return fault
        answer = self._send(request)
        if answer.status == 429:
            self.stats_counters.add("throttled")
        elif answer.status >= 400:
            self.stats_counters.add("rejected")
        return answer

    def fault_response(self, fault: Fault) -> Response:
        words = {429: "Too many requests", 400: "Bad request"}
        return _error(fault.status, fault.message or words.get(fault.status, "Server error"))

    def _send(self, request: Request) -> Response:
        if not hmac.compare_digest(request.headers.get("authkey", ""), self.authkey):
            return _error(401, "AuthenticationFailure", code="401")
        try:
            payload = request.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return _error(400, "Invalid JSON body")
        template_id = str(payload.get("template_id") or payload.get("flow_id") or "")
        with self._state_lock:
            template = self.templates.get(template_id)
        if template is None:
            return _error(400, f"Invalid template_id '{template_id}'")
        recipients = payload.get("recipients")
        if not isinstance(recipients, list) or not recipients:
            return _error(400, "recipients is required")
        sender = str(payload.get("sender") or template.sender)
        messages = []
        for recipient in recipients:
            if not isinstance(recipient, dict):
                return _error(400, "Each recipient must be an object")
            mobiles = [m.strip().lstrip("+") for m in str(recipient.get("mobiles", "")).split(",")]
            for mobile in mobiles:
                if not re.fullmatch(r"\d{10,15}", mobile):
                    return _error(400, f"Invalid mobile number '{mobile}'")
            missing = [v for v in template.variables if v not in recipient]
            if missing:
                return _error(400, f"Missing variable ##{missing[0]}## for '{mobiles[0]}'")
            text = VARIABLE.sub(lambda m, r=recipient: str(r[m.group(1)]), template.content)
            messages.extend((mobile, text) for mobile in mobiles)
        if self.over_rate(self.authkey):
            return _error(429, "Too many requests")
        request_id = secrets.token_hex(12)
        for mobile, text in messages:
            self._accept(request_id, template, sender, mobile, text)
        return json_response(200, {"type": "success", "message": request_id})

    def _accept(
        self, request_id: str, template: DltTemplate, sender: str, mobile: str, text: str
    ) -> None:
        key = f"{mobile}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        now = self.clock()
        with self._state_lock:
            last = self._last_seen.get(key)
            self._last_seen[key] = now
        possible_duplicate = last is not None and now - last < self.duplicate_window
        if possible_duplicate:
            self.stats_counters.add("duplicate_keys")
        self.count_key(key)
        self.stats_counters.add("accepted")
        self.record(
            {
                "channel": "sms",
                "to": mobile,
                "from": sender,
                "text": text,
                "document": None,
                "template": {
                    "template_id": template.template_id,
                    "dlt_template_id": template.dlt_template_id,
                },
                "message_id": request_id,
                "idempotency_key": None,
                "content_key": key,
                "possible_duplicate": possible_duplicate,
            }
        )
        self._schedule_reports(request_id, mobile, sender)

    def _schedule_reports(self, request_id: str, mobile: str, sender: str) -> None:
        if not self.webhook_url:
            return
        reason = self.failing_numbers.get(mobile)
        script = ("failed",) if reason is not None else self.status_script
        for position, status in enumerate(script):
            word = REPORT_WORDS.get(status, status.upper())
            report = {
                "requestId": request_id,
                "number": mobile,
                "status": word,
                "desc": word,
                "failedReason": reason if status == "failed" else "",
                "date": datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "senderId": sender,
            }
            body = json.dumps(report, separators=(",", ":")).encode()
            self.webhooks.post(
                self.webhook_url,
                body,
                {"Content-Type": "application/json"},
                delay=position * self.status_delay,
            )
