"""Local stand-in for the WhatsApp Business Cloud API (Meta Graph API), for tests, the `make run`
sandbox and benchmarks.

Contract followed (see the shared reference providers.md §1 and the sources cited there):
- `POST /{version}/{phone_number_id}/messages` with `Authorization: Bearer <token>` and a JSON
  body as built by the official Node SDK (`WhatsApp/WhatsApp-Nodejs-SDK src/api/messages.ts`):
  `type` `template`, `text` or `document`. Success is the §1.1 answer
  `{"messaging_product","contacts":[{"input","wa_id"}],"messages":[{"id":"wamid...",
  "message_status":"accepted"}]}`; errors use the Graph envelope
  `{"error":{"message","type","code","error_data":{"messaging_product","details"},"fbtrace_id"}}`
  (https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes).
- `POST /{version}/{phone_number_id}/media` (multipart: `file`, `type`, `messaging_product`)
  → `{"id": "<media id>"}`.
- `GET /{version}/{waba_id}/message_templates` → `{"data": [...], "paging": {"cursors": ...}}`
  with `limit` / `after` / `before` cursors, plus `name` and `status` filters.
- `GET /{version}/{phone_number_id}` → `{"id", "display_phone_number", "verified_name",
  "quality_rating"}` (the connector's connection check).
- Status webhooks (§1.2) `{"object":"whatsapp_business_account","entry":[{"id": WABA,
  "changes":[{"field":"messages","value":{"messaging_product","metadata","statuses":[...]}}]}]}`
  and inbound `messages` webhooks, signed `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(App
  Secret, raw body)>` (§1.4, `src/utils.ts generate_x_hub_256_sig` in the same SDK).
- The §1.3 verification handshake is driven by `verify_webhook()`.

Error codes used (Meta's error-code table, mostly through mirrors, see providers.md §1.1):
  190 invalid token (HTTP 401); 100 invalid parameter (400); 130429 throughput "Rate limit hit"
  (429); 131047 "Re-engagement message" outside the 24 h window (400); 131048 "Spam rate limit
  hit" for the daily messaging cap (400); 131056 pair rate limit (400); 131051 unsupported
  message type (400); 132000 parameter count mismatch (400); 132001 template does not exist
  (400); 132015 template paused (400, from memory of Meta's table, not confirmed here).

Deliberate differences and omissions:
- Meta does NOT deduplicate sends. This stand-in treats `biz_opaque_callback_data` as an
  idempotency key (our connector puts the outbox key there, and Meta echoes it in status
  webhooks): a repeated key gets the original wamid, is counted as a duplicate, is not recorded
  again and triggers no new callbacks. That is a test aid, not a provider guarantee.
- The daily messaging limit: Meta documents no dedicated error code for the per-portfolio
  "messaging limit" (https://dev.to/wapgrowai_org/whatsapp-cloud-api-rate-limits-in-practice-
  throughput-pair-rate-messaging-limits-and-error-codes-1i7k says "No dedicated code
  documented" [3P]). The nearest documented code is 131048 "Spam rate limit hit: ... restrictions
  on how many messages can be sent from this phone number" (Meta's table as mirrored at
  https://niswey.com/knowledge-base/error-codes-meta [3P]); the stand-in answers that.
- Only one WABA per stand-in; no interactive, media-by-type other than document, reactions,
  contacts, locations, flows, conversation-based pricing or quality ratings; templates are not
  submitted through the API (register them with `register_template`).
- Throughput is a per-phone-number one-second window (`rate`, the benchmark uses 80); Meta's
  exact algorithm is not published. No `Retry-After` on 130429 (Meta sends none that we know of).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy

import httpx

from .base import Fault, Request, Response, StandinServer, json_response, random_digits

TEMPLATE_STATUSES = ("APPROVED", "PENDING", "REJECTED", "PAUSED")
PLACEHOLDER = re.compile(r"\{\{(\d+)\}\}")
ROUTE = re.compile(r"^/(v\d+(?:\.\d+)?)/([^/]+)/(messages|media|message_templates)/?$")
NODE = re.compile(r"^/(v\d+(?:\.\d+)?)/([^/]+)/?$")
SESSION_SECONDS = 24 * 3600

DEFAULT_PHONE_NUMBER_ID = "100000000000001"
DEFAULT_DISPLAY_NUMBER = "15550000001"
DEFAULT_TOKEN = "standin-whatsapp-token"
DEFAULT_WABA_ID = "200000000000001"
DEFAULT_APP_SECRET = "standin-app-secret"


def hub_signature(app_secret: str | bytes, body: bytes) -> str:
    """`X-Hub-Signature-256` value for `body` (providers.md §1.4)."""
    key = app_secret.encode() if isinstance(app_secret, str) else app_secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_webhook(
    url: str, verify_token: str, challenge: str | None = None, timeout: float = 5.0
) -> bool:
    """Drive Meta's verification handshake (providers.md §1.3) against `url`: GET with
    `hub.mode=subscribe`, `hub.challenge`, `hub.verify_token`; True when the answer is 200 and
    its body is exactly the challenge."""
    challenge = challenge or random_digits(10)
    params = {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
    answer = httpx.get(url, params=params, timeout=timeout, trust_env=False)
    return answer.status_code == 200 and answer.text == challenge


def new_wamid() -> str:
    return "wamid.HBgL" + base64.b64encode(secrets.token_bytes(30)).decode()


def _fbtrace_id() -> str:
    return "A" + base64.urlsafe_b64encode(secrets.token_bytes(16)).decode()[:22]


def graph_error(
    http_status: int, code: int, title: str, details: str, subcode: int | None = None
) -> Response:
    error = {
        "message": title if code == 190 else f"(#{code}) {title}",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details},
        "fbtrace_id": _fbtrace_id(),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return json_response(http_status, {"error": error})


@dataclass(slots=True)
class Template:
    name: str
    language: str
    body: str
    status: str = "APPROVED"
    category: str = "UTILITY"
    header: str | None = None  # "DOCUMENT" when the template has a document header
    id: str = field(default_factory=lambda: random_digits(15))

    @property
    def param_count(self) -> int:
        return len(set(PLACEHOLDER.findall(self.body)))

    def as_graph(self) -> dict:
        components = []
        if self.header:
            components.append({"type": "HEADER", "format": self.header})
        components.append({"type": "BODY", "text": self.body})
        return {
            "name": self.name,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
            "components": components,
        }


@dataclass(slots=True)
class PhoneNumber:
    phone_number_id: str
    token: str
    display_phone_number: str
    verified_name: str = "Sandbox Business"


class _Rejected(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


class WhatsAppStandin(StandinServer):
    """WhatsApp Cloud API stand-in. See the module docstring for the contract.

    Extra endpoints: `POST /_standin/inbound` {"from", "text", "phone_number_id"?, "context_id"?,
    "timestamp"?, "name"?} simulates a user's message; `POST /_standin/templates` {"name",
    "body", "language"?, "status"?, "category"?, "header"?} registers or changes a template.
    """

    name = "whatsapp"
    default_status_script = ("sent", "delivered", "read")

    def __init__(
        self,
        *,
        phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
        token: str = DEFAULT_TOKEN,
        display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
        waba_id: str = DEFAULT_WABA_ID,
        app_secret: str = DEFAULT_APP_SECRET,
        templates: list[dict] | None = None,
        daily_cap: int | None = None,
        pair_interval: float | None = None,
        batch_statuses: bool = False,
        **common,
    ) -> None:
        super().__init__(**common)
        self.waba_id = waba_id
        self.app_secret = app_secret
        self.daily_cap = daily_cap or None
        self.pair_interval = pair_interval or None
        self.batch_statuses = batch_statuses
        self.phone_numbers: dict[str, PhoneNumber] = {}
        self.templates: dict[tuple[str, str], Template] = {}
        self.media: dict[str, dict] = {}
        self.failing_recipients: dict[str, dict] = {}
        self._state_lock = threading.Lock()
        self.add_phone_number(phone_number_id, token, display_phone_number)
        for spec in templates or ():
            self.register_template(**spec)
        self.reset_state()

    # -- configuration ---------------------------------------------------------------------

    def add_phone_number(
        self, phone_number_id: str, token: str, display_phone_number: str | None = None
    ) -> None:
        self.phone_numbers[phone_number_id] = PhoneNumber(
            phone_number_id, token, display_phone_number or phone_number_id
        )

    def register_template(
        self,
        name: str,
        body: str,
        language: str = "en_US",
        status: str = "APPROVED",
        category: str = "UTILITY",
        header: str | None = None,
    ) -> Template:
        """Register (or replace) a template; `{{1}}`, `{{2}}` ... are its body parameters and
        `header="DOCUMENT"` gives it a document header."""
        if status not in TEMPLATE_STATUSES:
            raise ValueError(f"template status must be one of {TEMPLATE_STATUSES}")
        with self._state_lock:
            old = self.templates.get((name, language))
            template = Template(name, language, body, status, category.upper(), header)
            if old:
                template.id = old.id
            self.templates[(name, language)] = template
        return template

    def set_template_status(self, name: str, status: str, language: str = "en_US") -> None:
        if status not in TEMPLATE_STATUSES:
            raise ValueError(f"template status must be one of {TEMPLATE_STATUSES}")
        with self._state_lock:
            self.templates[(name, language)].status = status

    def fail_recipient(
        self,
        wa_id: str,
        code: int = 131026,
        title: str = "Message undeliverable",
        details: str = "Message could not be delivered (stand-in scripted failure).",
    ) -> None:
        """Messages to `wa_id` are accepted, then get one `failed` status with `errors[]`."""
        self.failing_recipients[wa_id] = {
            "code": code,
            "title": title,
            "message": title,
            "error_data": {"details": details},
        }

    def reset_state(self) -> None:
        with self._state_lock:
            self._by_key: dict[str, str] = {}
            self._sessions: dict[tuple[str, str], float] = {}
            self._daily: dict[str, dict[str, float]] = {}
            self._pairs: dict[tuple[str, str], float] = {}

    # -- simulated users -------------------------------------------------------------------

    def simulate_inbound(
        self,
        wa_id: str,
        text: str = "Hello",
        phone_number_id: str | None = None,
        context_id: str | None = None,
        timestamp: float | None = None,
        name: str = "Sandbox User",
    ) -> str:
        """A user `wa_id` writes to the business number: opens the 24 h session window (from
        `timestamp`, default now) and POSTs the inbound `messages` webhook if a webhook URL is
        set. Returns the inbound message's wamid."""
        number = self.phone_numbers[phone_number_id or next(iter(self.phone_numbers))]
        when = self.clock() if timestamp is None else timestamp
        with self._state_lock:
            key = (number.phone_number_id, wa_id)
            self._sessions[key] = max(when, self._sessions.get(key, when))
        message_id = new_wamid()
        message = {
            "from": wa_id,
            "id": message_id,
            "timestamp": str(int(when)),
            "type": "text",
            "text": {"body": text},
        }
        if context_id:
            message["context"] = {"from": number.display_phone_number, "id": context_id}
        value = {
            "messaging_product": "whatsapp",
            "metadata": self._metadata(number),
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [message],
        }
        self._emit(value)
        return message_id

    # -- routes ----------------------------------------------------------------------------

    def admin(self, request: Request) -> Response | None:
        path = request.path.rstrip("/")
        if (request.method, path) == ("POST", "/_standin/inbound"):
            spec = request.json() or {}
            message_id = self.simulate_inbound(
                str(spec["from"]),
                spec.get("text", "Hello"),
                spec.get("phone_number_id"),
                spec.get("context_id"),
                spec.get("timestamp"),
                spec.get("name", "Sandbox User"),
            )
            return json_response(200, {"id": message_id})
        if (request.method, path) == ("POST", "/_standin/templates"):
            template = self.register_template(**(request.json() or {}))
            return json_response(200, template.as_graph())
        return None

    def handle(self, request: Request) -> Response:
        node = NODE.match(request.path)
        if node and request.method == "GET":
            return self._phone_number(request, node.group(2))
        match = ROUTE.match(request.path)
        if not match:
            return graph_error(400, 100, "Unknown path components", request.path)
        _version, node, edge = match.groups()
        if edge == "messages" and request.method == "POST":
            return self._send(request, node)
        if edge == "media" and request.method == "POST":
            return self._upload(request, node)
        if edge == "message_templates" and request.method == "GET":
            return self._list_templates(request, node)
        return graph_error(400, 100, "Unsupported request", f"{request.method} {request.path}")

    def fault_response(self, fault: Fault) -> Response:
        table = {
            429: (130429, "Rate limit hit", "Too many messages sent from this phone number."),
            400: (100, "Invalid parameter", "Injected fault."),
        }
        code, title, details = table.get(fault.status, (131000, "Something went wrong", ""))
        return graph_error(fault.status, code, fault.message or title, details or "Injected fault.")

    def _authorized(self, request: Request, token: str) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)

    def _unauthorized(self) -> Response:
        return graph_error(
            401, 190, "Invalid OAuth access token - Cannot parse access token", "Invalid token"
        )

    def _reject(self, http_status: int, code: int, title: str, details: str) -> _Rejected:
        return _Rejected(graph_error(http_status, code, title, details))

    def _send(self, request: Request, phone_number_id: str) -> Response:
        fault = self.take_fault()
        if fault:
            return fault
        try:
            return self._send_checked(request, phone_number_id)
        except _Rejected as rejected:
            if rejected.response.status == 429:
                self.stats_counters.add("throttled")
            else:
                self.stats_counters.add("rejected")
            return rejected.response

    def _send_checked(self, request: Request, phone_number_id: str) -> Response:
        number = self.phone_numbers.get(phone_number_id)
        if number is None:
            raise self._reject(
                400,
                100,
                f"Unsupported post request. Object with ID '{phone_number_id}' does not exist",
                "Unknown phone number id.",
            )
        if not self._authorized(request, number.token):
            raise _Rejected(self._unauthorized())
        try:
            payload = request.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise self._reject(400, 100, "Invalid parameter", "The body must be a JSON object.")
        if payload.get("messaging_product") != "whatsapp":
            raise self._reject(
                400, 100, "Invalid parameter", "messaging_product must be 'whatsapp'."
            )
        to = re.sub(r"\D", "", str(payload.get("to") or ""))
        if not 7 <= len(to) <= 15:
            raise self._reject(400, 100, "Invalid parameter", "'to' must be a phone number.")
        key = payload.get("biz_opaque_callback_data") or None
        if key is not None:
            duplicate = self._duplicate(str(key), to)
            if duplicate:
                return duplicate
        kind = payload.get("type", "text")
        if kind == "template":
            content = self._template_content(payload.get("template"))
        elif kind == "text":
            self._require_session(phone_number_id, to)
            text = payload.get("text") or {}
            if not isinstance(text, dict) or not str(text.get("body") or ""):
                raise self._reject(400, 100, "Invalid parameter", "text.body is required.")
            content = {"text": str(text["body"]), "document": None, "template": None}
        elif kind == "document":
            self._require_session(phone_number_id, to)
            document = self._document(payload.get("document"))
            caption = (payload.get("document") or {}).get("caption") or ""
            content = {"text": caption, "document": document, "template": None}
        else:
            raise self._reject(
                400, 131051, "Unsupported message type", f"Type '{kind}' is not supported here."
            )
        now = self.clock()
        self._check_limits(phone_number_id, to, kind, now)
        wamid = new_wamid()
        if key is not None:
            with self._state_lock:
                existing = self._by_key.get(str(key))
                if existing is None:
                    self._by_key[str(key)] = wamid
            if existing is not None:
                return self._duplicate(str(key), to)
            self.count_key(str(key))
        with self._state_lock:
            if self.pair_interval:
                self._pairs[(phone_number_id, to)] = now
        self.stats_counters.add("accepted")
        self.record(
            {
                "channel": "whatsapp",
                "to": to,
                "from": number.display_phone_number,
                "phone_number_id": phone_number_id,
                "type": kind,
                "template": content["template"],
                "text": content["text"],
                "document": content["document"],
                "message_id": wamid,
                "idempotency_key": key,
            }
        )
        self._schedule_statuses(number, wamid, to, key, content.get("category"))
        return self._accepted(wamid, to)

    def _accepted(self, wamid: str, to: str) -> Response:
        return json_response(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": wamid, "message_status": "accepted"}],
            },
        )

    def _duplicate(self, key: str, to: str) -> Response | None:
        with self._state_lock:
            wamid = self._by_key.get(key)
        if wamid is None:
            return None
        self.count_key(key)
        self.stats_counters.add("duplicate_keys")
        return self._accepted(wamid, to)

    def _require_session(self, phone_number_id: str, to: str) -> None:
        with self._state_lock:
            opened = self._sessions.get((phone_number_id, to))
        if opened is None or self.clock() - opened >= SESSION_SECONDS:
            raise self._reject(
                400,
                131047,
                "Re-engagement message",
                "Message failed to send because more than 24 hours have passed since the "
                "customer last replied to this number.",
            )

    def _check_limits(self, phone_number_id: str, to: str, kind: str, now: float) -> None:
        if self.pair_interval:
            with self._state_lock:
                last = self._pairs.get((phone_number_id, to))
            if last is not None and now - last < self.pair_interval:
                raise self._reject(
                    400,
                    131056,
                    "(Business Account, Consumer Account) pair rate limit hit",
                    "Too many messages sent from this phone number to the same recipient "
                    "in a short period of time.",
                )
        if self.over_rate(phone_number_id):
            raise self._reject(
                429,
                130429,
                "Rate limit hit",
                "Message failed to send because there were too many messages sent from this "
                "phone number in a short period of time.",
            )
        if self.daily_cap and kind == "template":
            with self._state_lock:
                seen = self._daily.setdefault(phone_number_id, {})
                first = seen.get(to)
                if first is None or now - first >= SESSION_SECONDS:
                    if len(seen) >= self.daily_cap:
                        for recipient, when in list(seen.items()):
                            if now - when >= SESSION_SECONDS:
                                del seen[recipient]
                    if len(seen) >= self.daily_cap:
                        raise self._reject(
                            400,
                            131048,
                            "Spam rate limit hit",
                            f"The daily limit of {self.daily_cap} unique recipients for this "
                            "phone number was reached (stand-in messaging limit).",
                        )
                    seen[to] = now

    def _template_content(self, spec) -> dict:
        if not isinstance(spec, dict) or not spec.get("name"):
            raise self._reject(400, 100, "Invalid parameter", "template.name is required.")
        language = spec.get("language") or {}
        code = language.get("code") if isinstance(language, dict) else None
        with self._state_lock:
            template = self.templates.get((spec["name"], code or ""))
        if template is None or template.status in ("PENDING", "REJECTED"):
            raise self._reject(
                400,
                132001,
                "Template name does not exist in the translation",
                f"template name ({spec['name']}) does not exist in {code}",
            )
        if template.status == "PAUSED":
            raise self._reject(400, 132015, "Template is Paused", f"{spec['name']} is paused.")
        body_params: list = []
        document = None
        for component in spec.get("components") or ():
            kind = str(component.get("type", "")).lower()
            if kind == "body":
                body_params = list(component.get("parameters") or ())
            elif kind == "header":
                for parameter in component.get("parameters") or ():
                    if parameter.get("type") == "document":
                        document = self._document(parameter.get("document"))
        if len(body_params) != template.param_count:
            raise self._reject(
                400,
                132000,
                "Number of parameters does not match the expected number of params",
                f"body: number of localizable_params ({len(body_params)}) does not match the "
                f"expected number of params ({template.param_count})",
            )
        if template.header == "DOCUMENT" and document is None:
            raise self._reject(
                400,
                132012,
                "Parameter format does not match format in the created template",
                "header: this template needs a document parameter.",
            )
        values = [self._param_text(p) for p in body_params]
        text = PLACEHOLDER.sub(
            lambda m: values[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(values) else "",
            template.body,
        )
        return {
            "text": text,
            "document": document,
            "template": {"name": template.name, "language": template.language},
            "category": template.category.lower(),
        }

    @staticmethod
    def _param_text(parameter) -> str:
        if not isinstance(parameter, dict):
            return str(parameter)
        if "text" in parameter:
            return str(parameter["text"])
        for kind in ("currency", "date_time"):
            if kind in parameter:
                return str(parameter[kind].get("fallback_value", ""))
        return ""

    def _document(self, spec) -> dict:
        if not isinstance(spec, dict) or not (spec.get("id") or spec.get("link")):
            raise self._reject(400, 100, "Invalid parameter", "document needs an id or a link.")
        document = {"filename": spec.get("filename")}
        if spec.get("id"):
            media = self.media.get(str(spec["id"]))
            if media is None:
                raise self._reject(
                    400, 131053, "Media upload error", f"Unknown media id {spec['id']}."
                )
            document.update(media_id=str(spec["id"]), size=media["size"])
            document["filename"] = document["filename"] or media["filename"]
            document["mime_type"] = media["mime_type"]
        else:
            document["link"] = spec["link"]
        return document

    def _upload(self, request: Request, phone_number_id: str) -> Response:
        number = self.phone_numbers.get(phone_number_id)
        if number is None:
            return graph_error(400, 100, "Unsupported post request", "Unknown phone number id.")
        if not self._authorized(request, number.token):
            return self._unauthorized()
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return graph_error(400, 100, "Invalid parameter", "Send multipart/form-data.")
        envelope = f"Content-Type: {content_type}\r\n\r\n".encode() + request.body
        message = message_from_bytes(envelope, policy=policy.HTTP)
        fields: dict[str, str] = {}
        upload = None
        for part in message.iter_parts():
            field_name = part.get_param("name", header="content-disposition")
            if field_name == "file":
                upload = part
            elif field_name:
                fields[field_name] = part.get_content().strip()
        if fields.get("messaging_product") != "whatsapp" or upload is None:
            return graph_error(
                400, 100, "Invalid parameter", "messaging_product=whatsapp and a file are required."
            )
        data = upload.get_payload(decode=True) or b""
        media_id = random_digits(16)
        self.media[media_id] = {
            "filename": upload.get_filename(),
            "mime_type": fields.get("type") or upload.get_content_type(),
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        return json_response(200, {"id": media_id})

    def _phone_number(self, request: Request, phone_number_id: str) -> Response:
        """`GET /{version}/{phone_number_id}`: the number's profile (a connection check)."""
        number = self.phone_numbers.get(phone_number_id)
        if number is None:
            return graph_error(
                400,
                100,
                f"Unsupported get request. Object with ID '{phone_number_id}' does not exist",
                "Unknown phone number id.",
            )
        if not self._authorized(request, number.token):
            return self._unauthorized()
        return json_response(
            200,
            {
                "id": number.phone_number_id,
                "display_phone_number": number.display_phone_number,
                "verified_name": number.verified_name,
                "quality_rating": "GREEN",
            },
        )

    def _list_templates(self, request: Request, waba_id: str) -> Response:
        tokens = [number.token for number in self.phone_numbers.values()]
        if not any(self._authorized(request, token) for token in tokens):
            return self._unauthorized()
        if waba_id != self.waba_id:
            return graph_error(400, 100, "Unsupported get request", f"Unknown WABA {waba_id}.")
        with self._state_lock:
            items = [t.as_graph() for t in self.templates.values()]
        if request.arg("name"):
            items = [t for t in items if t["name"] == request.arg("name")]
        if request.arg("status"):
            items = [t for t in items if t["status"] == request.arg("status")]
        limit = max(1, min(int(request.arg("limit") or 25), 1000))
        start = 0
        if request.arg("after"):
            start = _cursor(request.arg("after")) + 1
        elif request.arg("before"):
            start = max(0, _cursor(request.arg("before")) - limit)
        page = items[start : start + limit]
        paging: dict = {}
        if page:
            paging["cursors"] = {
                "before": _make_cursor(start),
                "after": _make_cursor(start + len(page) - 1),
            }
            if start + limit < len(items):
                after = paging["cursors"]["after"]
                paging["next"] = f"{self.url}{request.path}?limit={limit}&after={after}"
            if start > 0:
                paging["previous"] = (
                    f"{self.url}{request.path}?limit={limit}&before={paging['cursors']['before']}"
                )
        return json_response(200, {"data": page, "paging": paging})

    # -- webhooks --------------------------------------------------------------------------

    def _metadata(self, number: PhoneNumber) -> dict:
        return {
            "display_phone_number": number.display_phone_number,
            "phone_number_id": number.phone_number_id,
        }

    def _emit(self, value: dict, delay: float = 0.0) -> None:
        if not self.webhook_url:
            return
        payload = {
            "object": "whatsapp_business_account",
            "entry": [{"id": self.waba_id, "changes": [{"field": "messages", "value": value}]}],
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": hub_signature(self.app_secret, body),
        }
        self.webhooks.post(self.webhook_url, body, headers, delay)

    def _schedule_statuses(
        self, number: PhoneNumber, wamid: str, to: str, key, category: str | None
    ) -> None:
        if not self.webhook_url:
            return
        failure = self.failing_recipients.get(to)
        script = ("failed",) if failure else self.status_script
        if not script:
            return
        statuses = []
        for status in script:
            item = {
                "id": wamid,
                "status": status,
                "timestamp": str(int(self.clock())),
                "recipient_id": to,
            }
            if key is not None:
                item["biz_opaque_callback_data"] = key
            if status == "failed":
                item["errors"] = [failure or self._generic_failure()]
            elif status in ("sent", "delivered") and category:
                item["conversation"] = {"id": secrets.token_hex(16), "origin": {"type": category}}
                item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": category}
            statuses.append(item)
        groups = [statuses] if self.batch_statuses else [[item] for item in statuses]
        for position, group in enumerate(groups):
            value = {
                "messaging_product": "whatsapp",
                "metadata": self._metadata(number),
                "statuses": group,
            }
            self._emit(value, delay=position * self.status_delay)

    @staticmethod
    def _generic_failure() -> dict:
        return {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "Scripted failure."},
        }


def _make_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(str(index).encode()).decode()


def _cursor(value: str | None) -> int:
    try:
        return int(base64.urlsafe_b64decode(value.encode()).decode())
    except (ValueError, AttributeError):
        return -1
