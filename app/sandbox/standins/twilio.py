"""Local stand-in for Twilio Programmable Messaging (REST API 2010-04-01), for tests, the
`make run` sandbox and benchmarks.

Contract followed (providers.md §7.2, checked with the official `twilio` 9.13.0 SDK pointed at
this server as in §0.2):
- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic `AccountSid:AuthToken`,
  form fields `To`, `From` or `MessagingServiceSid`, `Body`, optional `StatusCallback`
  (`twilio/twilio-python twilio/rest/api/v2010/account/message/__init__.py`). Answer 201 with
  the Message resource: `sid` (`SM` + 32 hex), `status` `queued` (`accepted` when only a
  Messaging Service is given), `to`, `from`, `body`, `num_segments`, `date_created` (RFC 2822),
  `error_code` null, `account_sid`, `uri`, ...
- `GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json` returns the resource with its
  latest scripted status.
- `GET /2010-04-01/Accounts/{Sid}.json` (fetch the account; the connector's verification)
  answers the `api.v2010.account` resource of `twilio_api_v2010.json` to the account's own
  SID and auth token only, else 401 code 20003.
- Errors are Twilio's JSON `{"code", "message", "more_info", "status"}`: 401 code 20003
  "Authenticate"; 400 code 21211 invalid `To`; 400 21602 missing `Body`; 400 21603 missing
  `From`/`MessagingServiceSid`; 400 21609 bad `StatusCallback`; 429 code 20429 "Too Many
  Requests" with `Retry-After`. (21602/21603/20429 are from Twilio's error dictionary as
  remembered, not re-checked here.)
- Status callbacks: form-encoded `MessageSid`, `SmsSid`, `AccountSid`, `From`, `To`,
  `MessageStatus`, `SmsStatus`, `ApiVersion`, and `ErrorCode` for `failed`/`undelivered`,
  POSTed to the message's `StatusCallback` (or the stand-in's `webhook_url`), signed with
  `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, URL + sorted name/value pairs)) exactly as
  `twilio.request_validator.RequestValidator.compute_signature` does; the tests use the SDK as
  the oracle. The product runtime does not depend on the SDK, so the signer lives here.
  Each callback also carries an `I-Twilio-Idempotency-Token` header (unique per callback, the
  same on its retries), which is how third-party receivers observe Twilio's webhooks [3P].

Idempotency: Twilio's Messages API (2010) documents **no** idempotency request header: the SDK's
`messages.create` sends none, and `I-Twilio-Idempotency-Token` is a header Twilio puts on the
webhooks it sends (newer Twilio APIs, e.g. Conversations v2, take `Idempotency-Key`). So by
default the stand-in does not deduplicate: like MSG91 it counts (To, Body) repeated within
`duplicate_window` seconds as possible duplicates. Pass `idempotency_header="Idempotency-Key"`
(or any name) to make the stand-in honour a request header (same value → same sid, counted as
a duplicate, no new callbacks), a test aid rather than Twilio behaviour.

Not implemented: media (MMS), scheduling, content templates, Messaging Service sender pools,
inbound messages, price fields, pagination of the message list.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from email.utils import formatdate
from urllib.parse import urlencode

from .base import Fault, Request, Response, StandinServer, json_response

API = "/2010-04-01"
SEND = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages\.json$")
ACCOUNT = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})\.json$")
FETCH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages/(SM[0-9a-f]{32})\.json$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = set("^{}\\[~]|€\f")
FAILED_STATUSES = ("failed", "undelivered")

DEFAULT_ACCOUNT_SID = "AC" + "0" * 31 + "1"
DEFAULT_AUTH_TOKEN = "standin-twilio-auth-token"


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """`X-Twilio-Signature` for a form POST to `url` (providers.md §7.2)."""
    payload = url + "".join(name + str(params[name]) for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def num_segments(body: str) -> int:
    """GSM-7: 160 characters, 153 per part when split; otherwise UCS-2: 70, 67 per part."""
    if all(ch in GSM_BASIC or ch in GSM_EXTENDED for ch in body):
        units = len(body) + sum(1 for ch in body if ch in GSM_EXTENDED)
        single, part = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, part = 70, 67
    return 1 if units <= single else -(-units // part)


def twilio_error(status: int, code: int, message: str) -> Response:
    return json_response(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


class TwilioStandin(StandinServer):
    """Twilio Messaging stand-in. See the module docstring for the contract."""

    name = "twilio"
    default_status_script = ("sent", "delivered")

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        idempotency_header: str | None = None,
        duplicate_window: float = 60.0,
        **common,
    ) -> None:
        super().__init__(**common)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.idempotency_header = idempotency_header.lower() if idempotency_header else None
        self.duplicate_window = duplicate_window
        self.failing_numbers: dict[str, tuple[str, int]] = {}
        self._state_lock = threading.Lock()
        self.reset_state()

    def fail_number(self, to: str, status: str = "undelivered", error_code: int = 30003) -> None:
        """Messages to `to` are accepted, then called back with `status` and `ErrorCode`."""
        if status not in FAILED_STATUSES:
            raise ValueError(f"status must be one of {FAILED_STATUSES}")
        self.failing_numbers[to] = (status, error_code)

    def reset_state(self) -> None:
        with self._state_lock:
            self._by_key: dict[str, dict] = {}
            self._last_seen: dict[str, float] = {}
            self.messages: dict[str, dict] = {}

    # -- routes ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        send = SEND.match(request.path)
        if send and request.method == "POST":
            fault = self.take_fault()
            if fault:
                return fault
            answer = self._send(request, send.group(1))
            if answer.status == 429:
                self.stats_counters.add("throttled")
            elif answer.status >= 400:
                self.stats_counters.add("rejected")
            return answer
        account = ACCOUNT.match(request.path)
        if account and request.method == "GET":
            if not self._authorized(request, account.group(1)):
                return self._unauthorized()
            return json_response(200, self._account())
        fetch = FETCH.match(request.path)
        if fetch and request.method == "GET":
            if not self._authorized(request, fetch.group(1)):
                return self._unauthorized()
            with self._state_lock:
                message = self.messages.get(fetch.group(2))
            if message is None:
                return twilio_error(404, 20404, "The requested resource was not found")
            return json_response(200, message)
        return twilio_error(404, 20404, "The requested resource was not found")

    def _account(self) -> dict:
        """The Account resource as Twilio's fetch answers it (its example in the spec)."""
        created = formatdate(self.clock(), usegmt=False).replace("-0000", "+0000")
        uri = f"{API}/Accounts/{self.account_sid}"
        return {
            "auth_token": self.auth_token,
            "date_created": created,
            "date_updated": created,
            "friendly_name": "Stand-in account",
            "owner_account_sid": self.account_sid,
            "sid": self.account_sid,
            "status": "active",
            "subresource_uris": {"messages": f"{uri}/Messages.json"},
            "type": "Full",
            "uri": f"{uri}.json",
        }

    def fault_response(self, fault: Fault) -> Response:
        if fault.status == 429:
            return twilio_error(429, 20429, fault.message or "Too Many Requests")
        if fault.status == 400:
            return twilio_error(400, 21211, fault.message or "Injected fault")
        return twilio_error(fault.status, 20500, fault.message or "Internal Server Error")

    def _authorized(self, request: Request, path_sid: str) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return (
            hmac.compare_digest(user, self.account_sid)
            and hmac.compare_digest(password, self.auth_token)
            and path_sid == self.account_sid
        )

    def _unauthorized(self) -> Response:
        answer = twilio_error(401, 20003, "Authenticate")
        answer.headers.append(("WWW-Authenticate", 'Basic realm="Twilio API"'))
        return answer

    def _send(self, request: Request, path_sid: str) -> Response:
        if not self._authorized(request, path_sid):
            return self._unauthorized()
        form = request.form()
        to = form.get("To", "")
        sender = form.get("From") or None
        service = form.get("MessagingServiceSid") or None
        body = form.get("Body", "")
        callback = form.get("StatusCallback") or None
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not E164.match(to):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender and not service:
            return twilio_error(
                400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required."
            )
        if not body:
            return twilio_error(400, 21602, "Message body is required.")
        if callback and not re.match(r"^https?://[^/_]+(/|$)", callback):
            return twilio_error(400, 21609, "Invalid StatusCallback url")

        key = request.headers.get(self.idempotency_header) if self.idempotency_header else None
        if key:
            with self._state_lock:
                original = self._by_key.get(key)
            if original is not None:
                self.count_key(key)
                self.stats_counters.add("duplicate_keys")
                return json_response(201, original)
        if self.over_rate(self.account_sid):
            answer = twilio_error(429, 20429, "Too Many Requests")
            answer.headers.append(("Retry-After", "1"))
            return answer

        sid = "SM" + secrets.token_hex(16)
        created = formatdate(self.clock(), usegmt=False).replace("-0000", "+0000")
        message = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": created,
            "date_sent": None,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(num_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if sender else "accepted",
            "subresource_uris": {
                "media": f"{API}/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
            },
            "to": to,
            "uri": f"{API}/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        if key:
            with self._state_lock:
                original = self._by_key.setdefault(key, message)
            if original is not message:
                self.count_key(key)
                self.stats_counters.add("duplicate_keys")
                return json_response(201, original)
            self.count_key(key)
        else:
            self._note_content(to, body)
        with self._state_lock:
            self.messages[sid] = dict(message)
        self.stats_counters.add("accepted")
        self.record(
            {
                "channel": "sms",
                "to": to,
                "from": sender or service,
                "text": body,
                "document": None,
                "message_id": sid,
                "idempotency_key": key,
                "num_segments": message["num_segments"],
            }
        )
        self._schedule_callbacks(message, callback or self.webhook_url)
        return json_response(201, message)

    def _note_content(self, to: str, body: str) -> None:
        content_key = f"{to}:{hashlib.sha256(body.encode()).hexdigest()[:16]}"
        now = self.clock()
        with self._state_lock:
            last = self._last_seen.get(content_key)
            self._last_seen[content_key] = now
        if last is not None and now - last < self.duplicate_window:
            self.stats_counters.add("duplicate_keys")
        self.count_key(content_key)

    def _schedule_callbacks(self, message: dict, url: str | None) -> None:
        failure = self.failing_numbers.get(message["to"])
        script = (failure[0],) if failure else self.status_script
        if not url or not script:
            return
        for position, status in enumerate(script):
            params = {
                "MessageSid": message["sid"],
                "SmsSid": message["sid"],
                "AccountSid": self.account_sid,
                "From": message["from"] or "",
                "To": message["to"],
                "MessageStatus": status,
                "SmsStatus": status,
                "ApiVersion": "2010-04-01",
            }
            if message["messaging_service_sid"]:
                params["MessagingServiceSid"] = message["messaging_service_sid"]
            if status in FAILED_STATUSES:
                params["ErrorCode"] = str(failure[1] if failure else 30008)
            with self._state_lock:
                stored = self.messages.get(message["sid"])
                if stored is not None:
                    stored["status"] = status
                    if "ErrorCode" in params:
                        stored["error_code"] = int(params["ErrorCode"])
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_signature(self.auth_token, url, params),
                "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            }
            self.webhooks.post(
                url, urlencode(params).encode(), headers, delay=position * self.status_delay
            )
