"""WhatsApp Business Cloud API (Meta Graph API): send template, session-text and document
messages from a tenant's own WhatsApp number, parse its webhooks, list its templates (what
they mean for contacts and templates is applied by app.messaging.inbound and
app.message_templates.provider_status).

Contract (the shared reference providers.md §1): `POST /{version}/{phone_number_id}/messages`
with a Bearer token; a document is uploaded first (`POST /{phone_number_id}/media`, multipart)
and sent by media id. Our idempotency key rides in `biz_opaque_callback_data`, which Meta
echoes in status webhooks, so a report finds its message even before the wamid is committed.

Webhooks carry `metadata.phone_number_id` (statuses, inbound messages: routed to the tenant by
`account_key()`), or only the WhatsApp Business Account id in `entry[].id` (template status
updates: routed by `waba_account_key(waba_id)`, which the connect code registers next to the
phone number; if it does not, those updates are dropped and the template sync catches up)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from app.integrations.connectors import (
    Connector,
    DeliveryError,
    Field,
    Outgoing,
    Sent,
    StatusUpdate,
    pooled_client,
    retry_after_seconds,
)
from app.integrations.connectors.wire import check_shape, provider_time, read_json

log = logging.getLogger(__name__)

PROVIDER = "whatsapp_cloud"
# Meta's messaging-limit tiers count unique recipients a day; capping messages a day at the same
# number is stricter, never looser.
TIERS = {"1000": 1000, "10000": 10000, "100000": 100000, "unlimited": None}
# Meta's throughput per number: 80 messages/s by default, 1,000 once Meta upgrades the number
# (providers.md §1.1). Workers pace at 97.5% of it: the shared bucket lends at most one slot,
# so no second ever carries more than the limit and 130429 is not tripped.
THROUGHPUTS = {"80": 80, "1000": 1000}
PACE = 0.975
THROTTLE_RETRY_SECONDS = 5.0
PAIR_RETRY_SECONDS = 6.0  # the pair rate is about one message every 6 s to the same user
DAILY_LIMIT_RETRY_SECONDS = 3600.0
# Meta's template states (API list and webhook events) -> MessageTemplate.provider_status.
TEMPLATE_STATES = {
    "APPROVED": "approved",
    "REINSTATED": "approved",
    "FLAGGED": "approved",  # still sendable, at risk of being paused
    "PENDING": "pending",
    "IN_APPEAL": "pending",
    "REJECTED": "rejected",
    "PAUSED": "paused",
    "DISABLED": "disabled",
    "DELETED": "disabled",
    "PENDING_DELETION": "disabled",
    "ARCHIVED": "disabled",
}
STATUSES = ("sent", "delivered", "read", "failed")


def waba_account_key(waba_id: str) -> str:
    """The provider-account key of a WhatsApp Business Account (template status webhooks)."""
    return f"waba:{waba_id}"


@dataclass(frozen=True)
class RemoteTemplate:
    name: str
    language: str
    status: str
    body: str


class WhatsAppCloudConnector(Connector):
    provider = PROVIDER
    channel = "whatsapp"
    title = "WhatsApp Business (Cloud API)"
    description = "Template messages and replies from your own WhatsApp Business number, via Meta."
    fields = (
        Field(
            "phone_number_id",
            "Phone number ID",
            help="WhatsApp Manager → API setup: the ID of the number you send from.",
        ),
        Field(
            "waba_id",
            "WhatsApp Business Account ID",
            help="The account that owns the number and its message templates.",
        ),
        Field(
            "display_phone_number",
            "Display phone number",
            required=False,
            placeholder="+91 98765 43210",
        ),
        Field(
            "access_token",
            "Access token",
            secret=True,
            help="A permanent system-user token with whatsapp_business_messaging.",
        ),
        Field(
            "messaging_tier",
            "Messaging limit per day",
            required=False,
            help="1000, 10000, 100000 or unlimited (WhatsApp Manager → Insights).",
            placeholder="1000",
        ),
        Field(
            "throughput",
            "Throughput (messages a second)",
            required=False,
            help="80, or 1000 once Meta has upgraded the number.",
            placeholder="80",
        ),
        Field(
            "default_language",
            "Template language",
            required=False,
            help="Language code of your templates when a message names none, e.g. en_US.",
            placeholder="en_US",
        ),
    )

    @classmethod
    def clean(cls, raw):
        settings, secrets, errors = super().clean(raw)
        for name in ("phone_number_id", "waba_id"):
            if settings.get(name) and not settings[name].isdigit():
                errors[name] = "Only digits: copy the ID from WhatsApp Manager."
        throughput = settings.get("throughput", "").replace(",", "")
        if throughput and throughput not in THROUGHPUTS:
            errors["throughput"] = "Choose 80, or 1000 for an upgraded number."
        elif throughput:
            settings["throughput"] = throughput
        tier = settings.get("messaging_tier", "").lower().replace(",", "")
        if tier and tier not in TIERS:
            errors["messaging_tier"] = "Choose 1000, 10000, 100000 or unlimited."
        elif tier:
            settings["messaging_tier"] = tier
        return settings, secrets, errors

    def __init__(self, *, settings, secrets, config):
        super().__init__(settings=settings, secrets=secrets, config=config)
        self.phone_number_id = str(self.settings["phone_number_id"])
        self.waba_id = str(self.settings.get("waba_id") or "")
        self._client: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        """One keep-alive client for every call of a delivery batch, opened on first use."""
        if self._client is None:
            base = str(self.config["WHATSAPP_API_BASE"]).rstrip("/")
            self._client = pooled_client(
                base_url=f"{base}/{self.config['WHATSAPP_API_VERSION']}",
                headers={"Authorization": f"Bearer {self.secrets.get('access_token', '')}"},
                timeout=15.0,
            )
        return self._client

    def account_key(self) -> str:
        return self.phone_number_id

    def account_keys(self) -> list[str]:
        """The phone number (messages and statuses) and the business account (template status
        webhooks carry only that)."""
        keys = [self.account_key()]
        if self.settings.get("waba_id"):
            keys.append(waba_account_key(self.settings["waba_id"]))
        return [key for key in keys if key]

    def rate_limit(self) -> tuple[str, float]:
        limit = THROUGHPUTS.get(str(self.settings.get("throughput") or "80"), 80)
        return f"whatsapp:{self.phone_number_id}", limit * PACE

    def daily_cap(self) -> tuple[str, int] | None:
        cap = TIERS.get(str(self.settings.get("messaging_tier") or "unlimited"))
        return (f"whatsapp-day:{self.phone_number_id}", cap) if cap else None

    # -- sending ---------------------------------------------------------------------------

    def send(self, outgoing: Outgoing) -> Sent:
        spec = outgoing.payload.get("whatsapp") or {}
        kind = spec.get("type", "template")
        body: dict = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": outgoing.recipient.lstrip("+"),
            "type": kind,
            "biz_opaque_callback_data": outgoing.idempotency_key,
        }
        if kind == "template":
            body["template"] = self._template(spec, outgoing)
        elif kind == "text":
            body["text"] = {"body": outgoing.text, "preview_url": False}
        elif kind == "document":
            document = {"id": self._upload(outgoing), "filename": self._filename(spec, outgoing)}
            if outgoing.text:
                document["caption"] = outgoing.text
            body["document"] = document
        else:
            raise DeliveryError(f"Unknown WhatsApp message type {kind!r}.", permanent=True)
        answer = self._call("POST", f"/{self.phone_number_id}/messages", json=body)
        try:
            return Sent(provider_message_id=str(answer["messages"][0]["id"]))
        except (KeyError, IndexError, TypeError) as exc:
            raise DeliveryError("WhatsApp accepted the message without a message id.") from exc

    def _template(self, spec: dict, outgoing: Outgoing) -> dict:
        if not spec.get("name"):
            raise DeliveryError("The message names no WhatsApp template.", permanent=True)
        language = spec.get("language") or self.settings.get("default_language") or "en_US"
        components = []
        if spec.get("document"):
            document = {"id": self._upload(outgoing), "filename": self._filename(spec, outgoing)}
            components.append(
                {"type": "header", "parameters": [{"type": "document", "document": document}]}
            )
        params = spec.get("body_params") or []
        if params:
            components.append(
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": str(value)} for value in params],
                }
            )
        template = {"name": spec["name"], "language": {"code": language}}
        if components:
            template["components"] = components
        return template

    @staticmethod
    def _filename(spec: dict, outgoing: Outgoing) -> str:
        named = (spec.get("document") or {}).get("filename") or spec.get("filename")
        if named:
            return str(named)
        return outgoing.attachments[0].filename if outgoing.attachments else "document.pdf"

    def _upload(self, outgoing: Outgoing) -> str:
        """Upload the message's first attachment; its WhatsApp media id."""
        if not outgoing.attachments:
            raise DeliveryError(
                "The document to send with this WhatsApp message is missing.", permanent=True
            )
        item = outgoing.attachments[0]
        answer = self._call(
            "POST",
            f"/{self.phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": item.content_type},
            files={"file": (item.filename, item.data, item.content_type)},
        )
        if not answer.get("id"):
            raise DeliveryError("WhatsApp took the document without a media id.")
        return str(answer["id"])

    def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"Could not reach WhatsApp: {exc.__class__.__name__}.") from exc
        if response.is_success:
            try:
                return response.json()
            except ValueError as exc:
                raise DeliveryError("WhatsApp answered with something that is not JSON.") from exc
        raise graph_error(response)

    # -- checks and templates --------------------------------------------------------------

    def test_connection(self) -> str:
        number = self._call(
            "GET",
            f"/{self.phone_number_id}",
            params={"fields": "display_phone_number,verified_name,quality_rating"},
        )
        # Graph answers a number's details only to a token with access to it: this is what
        # proves the connection controls the number whose webhooks get routed here.
        if str(number.get("id", self.phone_number_id)) != self.phone_number_id:
            raise DeliveryError("WhatsApp answered for another phone number.", permanent=True)
        templates = self.fetch_templates()
        approved = sum(1 for item in templates if item.status == "APPROVED")
        name = number.get("verified_name") or "no verified name"
        quality = number.get("quality_rating") or "unknown"
        display = number.get("display_phone_number", "?")
        return (
            f"Connected to WhatsApp number {display} ({name}, quality {quality}); "
            f"{approved} of {len(templates)} templates approved."
        )

    def fetch_templates(self) -> list[RemoteTemplate]:
        """Every template of the WhatsApp Business Account, following the paging cursors.
        Paging goes through our own base URL with the `after` cursor, never a URL the answer
        names."""
        if not self.waba_id:
            raise DeliveryError("Enter the WhatsApp Business Account ID.", permanent=True)
        found: list[RemoteTemplate] = []
        params = {"limit": "100", "fields": "name,language,status,components"}
        while True:
            page = self._call("GET", f"/{self.waba_id}/message_templates", params=params)
            for item in page.get("data") or []:
                found.append(_remote_template(item))
            paging = page.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after:
                return found
            params = {**params, "after": after}


def _remote_template(item: dict) -> RemoteTemplate:
    components = item.get("components") or []
    body = next(
        (str(c.get("text") or "") for c in components if str(c.get("type")).upper() == "BODY"),
        "",
    )
    return RemoteTemplate(
        str(item.get("name", "")),
        str(item.get("language", "")),
        str(item.get("status", "")).upper(),
        body,
    )


# Graph error codes (providers.md §1.1, Meta's error-code table) and what a user is told.
_THROTTLED = {130429: THROTTLE_RETRY_SECONDS, 131056: PAIR_RETRY_SECONDS, 4: 60.0, 80007: 60.0}
_TRANSIENT = {1, 2, 131000, 131016}
_PERMANENT = {
    100: "WhatsApp refused a parameter of the message",
    190: "WhatsApp refused the access token: reconnect WhatsApp with a new token",
    131026: "WhatsApp could not deliver to this number (not on WhatsApp, or an old app)",
    131047: "More than 24 hours have passed since the contact last wrote: send a template",
    131051: "WhatsApp does not support this kind of message",
    131053: "WhatsApp could not take the attached document",
    132000: "WhatsApp refused the template parameters: the number of values does not match "
    "the approved template",
    132001: "The WhatsApp template does not exist in this language or is not approved",
    132012: "WhatsApp refused the template parameters: their format does not match the "
    "approved template",
    132015: "The WhatsApp template is paused by Meta for low quality",
}


def graph_error(response: httpx.Response) -> DeliveryError:
    """The DeliveryError for a Graph API error answer: throttling waits, server trouble is
    retried, a refusal of the message itself is permanent and says why in plain words."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code") if isinstance(error, dict) else None
    details = (
        ((error.get("error_data") or {}).get("details") or error.get("message") or "")
        if isinstance(error, dict)
        else ""
    )
    said = f" (error {code}: {details})" if code else f" (HTTP {response.status_code})"
    if response.status_code == 429 or code in _THROTTLED:
        said_wait = retry_after_seconds(response.headers.get("Retry-After"))
        wait = said_wait or _THROTTLED.get(code, THROTTLE_RETRY_SECONDS)
        return DeliveryError(
            f"WhatsApp is throttling this number; trying again{said}", retry_after=wait
        )
    if code == 131048:  # the daily messaging limit of the number
        return DeliveryError(
            f"The WhatsApp number reached its daily messaging limit{said}",
            retry_after=DAILY_LIMIT_RETRY_SECONDS,
        )
    if response.status_code >= 500 or code in _TRANSIENT:
        return DeliveryError(f"WhatsApp had a temporary problem{said}")
    if response.status_code == 401 or code == 190:
        return DeliveryError(_PERMANENT[190] + said, permanent=True)
    reason = _PERMANENT.get(code, "WhatsApp refused the message")
    return DeliveryError(reason + said, permanent=True)


# -- webhooks (parsed for app.messaging.inbound, run by the worker) ---------------------------


@dataclass(frozen=True)
class InboundMessage:
    """A contact wrote to the tenant's number."""

    sender: str  # the number as Meta gives it: E.164 digits without the "+"
    at: datetime  # when they wrote, clamped to when we heard of it (wire.provider_time)
    text: str  # a text message's body or a quick-reply button's text; "" for other kinds
    replied_to: str | None  # the id (wamid) of our message it answers, if it answers one


@dataclass(frozen=True)
class TemplateStatusChange:
    """Meta changed the state of a template of the business account."""

    name: str
    language: str  # Meta's code ("en_US"); "" when the event names none
    state: str  # one of the TEMPLATE_STATES values


@dataclass
class WebhookReport:
    """What one webhook body says: message statuses, inbound messages, template changes."""

    statuses: list[StatusUpdate] = field(default_factory=list)
    messages: list[InboundMessage] = field(default_factory=list)
    templates: list[TemplateStatusChange] = field(default_factory=list)


_ID = (str, int)
# The parts of Meta's webhook body (providers.md §1.4) that are read here or in the receiver;
# a body where one of them has another type is refused whole (wire.check_shape).
WEBHOOK_SHAPE = {
    "object": str,
    "entry": [
        {
            "id": _ID,
            "changes": [
                {
                    "field": str,
                    "value": {
                        "metadata": {"phone_number_id": _ID},
                        "statuses": [
                            {
                                "id": _ID,
                                "status": str,
                                "timestamp": _ID,
                                "biz_opaque_callback_data": str,
                                "errors": [
                                    {
                                        "code": _ID,
                                        "title": str,
                                        "message": str,
                                        "error_data": {"details": str},
                                    }
                                ],
                            }
                        ],
                        "messages": [
                            {
                                "from": _ID,
                                "timestamp": _ID,
                                "type": str,
                                "text": {"body": str},
                                "button": {"text": str},
                                "context": {"id": _ID},
                            }
                        ],
                        "event": str,
                        "message_template_name": str,
                        "message_template_language": str,
                    },
                }
            ],
        }
    ],
}


def read_webhook(body: bytes | str) -> dict:
    """A webhook body as Meta sends it, or wire.BadWebhookBody (checked at receipt and again
    before a stored body is applied)."""
    data = read_json(body)
    check_shape(data, WEBHOOK_SHAPE)
    return data


def parse_webhook(body: bytes | str, received_at: datetime) -> WebhookReport:
    """Everything one webhook body reports, as plain values (wire.BadWebhookBody for a body
    Meta does not send); app.messaging.inbound applies them."""
    data = read_webhook(body)
    report = WebhookReport()
    for entry in data.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value") or {}
            if change.get("field") == "message_template_status_update":
                template_change = _template_change(value)
                if template_change is not None:
                    report.templates.append(template_change)
                continue
            if change.get("field") != "messages":
                continue
            for item in value.get("statuses") or []:
                update_ = _status_update(item, received_at)
                if update_ is not None:
                    report.statuses.append(update_)
            report.messages.extend(
                _inbound_message(message, received_at) for message in value.get("messages") or []
            )
    return report


def _template_change(value: dict) -> TemplateStatusChange | None:
    state = TEMPLATE_STATES.get(str(value.get("event", "")).upper())
    if not state or not value.get("message_template_name"):
        return None
    language = str(value.get("message_template_language") or "")
    return TemplateStatusChange(value["message_template_name"], language, state)


def _at(timestamp, received_at: datetime) -> datetime:
    """Meta's Unix timestamp, clamped to the time we received it (wire.provider_time)."""
    try:
        claimed = datetime.fromtimestamp(int(timestamp), UTC)
    except (TypeError, ValueError, OverflowError, OSError):  # missing, or beyond any calendar
        claimed = None
    return provider_time(claimed, received_at)


def _status_update(item: dict, received_at: datetime) -> StatusUpdate | None:
    status = item.get("status")
    if status not in STATUSES or not item.get("id"):
        return None  # "deleted", "warning" ... change nothing we track
    error = None
    if status == "failed":
        error = (
            "; ".join(
                f"{e.get('code')} {e.get('title') or e.get('message') or ''}".strip()
                + (
                    f": {(e.get('error_data') or {}).get('details')}"
                    if (e.get("error_data") or {}).get("details")
                    else ""
                )
                for e in item.get("errors") or []
            )
            or "WhatsApp reported the message as failed"
        )
    return StatusUpdate(
        provider=PROVIDER,
        provider_message_id=str(item["id"]),
        status=status,
        at=_at(item.get("timestamp"), received_at),
        error=error,
        idempotency_key=item.get("biz_opaque_callback_data") or None,
    )


def _inbound_text(message: dict) -> str:
    kind = message.get("type")
    if kind == "text":
        return str((message.get("text") or {}).get("body") or "")
    if kind == "button":
        return str((message.get("button") or {}).get("text") or "")
    return ""


def _inbound_message(message: dict, received_at: datetime) -> InboundMessage:
    replied_to = (message.get("context") or {}).get("id")
    return InboundMessage(
        sender=str(message.get("from") or ""),
        at=_at(message.get("timestamp"), received_at),
        text=_inbound_text(message),
        replied_to=str(replied_to) if replied_to else None,
    )
