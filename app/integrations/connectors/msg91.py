"""SMS in India through MSG91's Flow API, with the DLT registration Indian operators demand
(providers.md §7.1).

Every commercial SMS in India must be the exact text of a template registered on DLT, under
the sender's registered 6-letter header and principal entity (PE) id. In MSG91 that template
is a Flow template, bound in MSG91's panel to its DLT template id and sender; we send the
Flow template id and the values of its variables, and MSG91 renders the text. A message
whose DLT template id is unknown is refused before any call: the operators would drop it.

The message's `payload["sms"]` is {"gateway_template_id": <MSG91 template id>,
"dlt_template_id": <DLT template id>, "variables": {"var1": ..., ...}}.

Delivery reports: MSG91 signs nothing, so each connection gets an unguessable path token
(`/hooks/msg91/<token>`, the URL the tenant pastes into MSG91's webhook setting); the token
finds the tenant and the report is treated as untrusted (it can only move that tenant's own
messages forward). One message is one recipient, so MSG91's request id is the message's
provider id.
"""

from __future__ import annotations

import hashlib
import logging
import re
from urllib.parse import parse_qs

import httpx
from sqlalchemy import select

from app.integrations.connectors import (
    Connector,
    DeliveryError,
    Field,
    Outgoing,
    Sent,
    StatusUpdate,
    kept_webhook_token,
    pooled_client,
    public_url,
    retry_after_seconds,
)
from app.integrations.connectors.wire import BadWebhookBody, check_shape, read_json
from app.outbox.models import OutboxMessage

log = logging.getLogger(__name__)

FLOW_PATH = "/api/v5/flow"
REPORT_PATH = "/hooks/msg91"
# MSG91 publishes no send rate for the Flow API. 10 requests a second per auth key is a
# conservative pace for one account (a bulk run of 1,000 SMS takes under two minutes); a 429
# still puts the message back with the Retry-After MSG91 gives.
MESSAGES_PER_SECOND = 10.0
TIMEOUT = httpx.Timeout(15.0, connect=5.0)
# Report status codes from MSG91's webhook help page: 1 delivered, 2 failed, 9 NDNC (a
# promotional SMS to a do-not-disturb number), 16 and 25 rejected, 17 blocked number.
STATUS_CODES = {
    "1": "delivered",
    "2": "failed",
    "9": "failed",
    "16": "failed",
    "17": "failed",
    "25": "failed",
}
STATUS_WORDS = {
    "DELIVERED": "delivered",
    "SENT": "sent",
    "SUBMITTED": "sent",
    "FAILED": "failed",
    "REJECTED": "failed",
    "NDNC": "failed",
    "BLOCKED": "failed",
    "UNDELIVERED": "failed",
}


class Msg91Connector(Connector):
    provider = "msg91"
    channel = "sms"
    title = "SMS in India (MSG91)"
    description = (
        "Send DLT-registered SMS to Indian numbers through your MSG91 account. Each text must "
        "be a template approved on DLT and added to MSG91 as a Flow template."
    )
    fields = (
        Field(
            "authkey",
            "Auth key",
            secret=True,
            help="MSG91 panel, Authkey. Kept encrypted and never shown again.",
        ),
        Field(
            "sender_id",
            "Sender id",
            placeholder="DUEBKS",
            help="The 6-letter header registered on DLT for your business.",
        ),
        Field(
            "entity_id",
            "DLT entity id (PE id)",
            placeholder="1101234567890123456",
            help="The principal entity id of your DLT registration; it must be the one "
            "set in MSG91.",
        ),
        Field(
            "route",
            "Route",
            required=False,
            placeholder="4",
            help="Leave empty to use the route of each MSG91 template.",
        ),
    )

    @classmethod
    def clean(cls, raw):
        settings, secrets_, errors = super().clean(raw)
        sender = settings.get("sender_id", "")
        if sender and not re.fullmatch(r"[A-Za-z]{6}", sender):
            errors["sender_id"] = "The sender id is the 6 letters registered on DLT."
        elif sender:
            settings["sender_id"] = sender.upper()
        entity = settings.get("entity_id", "")
        if entity and not re.fullmatch(r"\d{10,25}", entity):
            errors["entity_id"] = "The DLT entity id is the number on your DLT registration."
        if settings.get("route") and not settings["route"].isdigit():
            errors["route"] = "The route is a number, such as 4 for transactional SMS."
        settings["webhook_token"] = kept_webhook_token(raw)
        return settings, secrets_, errors

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = pooled_client(
                base_url=self.config["MSG91_API_BASE"].rstrip("/"),
                headers={"authkey": self.secrets["authkey"], "Accept": "application/json"},
                timeout=TIMEOUT,
            )
        return self._client

    def account_key(self) -> str | None:
        return self.settings.get("webhook_token")

    def report_url(self) -> str:
        """The delivery-report URL the tenant gives MSG91 (its panel's SMS webhook, v3 JSON or
        v2): BASE_URL, the public address, plus this connection's secret token."""
        return public_url(self.config, f"{REPORT_PATH}/{self.account_key()}")

    def rate_limit(self) -> tuple[str, float]:
        # Keyed by a digest of the auth key: tenants sharing one MSG91 account share its pace,
        # and the key itself never lands in Redis.
        account = hashlib.sha256(self.secrets["authkey"].encode()).hexdigest()[:16]
        return f"msg91:{account}", MESSAGES_PER_SECOND

    def request_body(self, outgoing: Outgoing) -> dict:
        sms = outgoing.payload.get("sms") or {}
        if not sms.get("dlt_template_id"):
            raise DeliveryError(
                "Indian SMS needs the DLT template id this text was registered under.",
                permanent=True,
            )
        if not sms.get("gateway_template_id"):
            raise DeliveryError(
                "This SMS names no MSG91 template (the Flow template id of its DLT text).",
                permanent=True,
            )
        mobile = outgoing.recipient.strip().removeprefix("+")
        if not mobile.isdigit():
            raise DeliveryError(f"{outgoing.recipient!r} is not a phone number.", permanent=True)
        variables = {str(name): str(value) for name, value in (sms.get("variables") or {}).items()}
        body = {
            "template_id": str(sms["gateway_template_id"]),
            "sender": self.settings["sender_id"],
            "short_url": "0",
            # "mobiles" last: a variable of the same name must never redirect the message
            "recipients": [{**variables, "mobiles": mobile}],
        }
        if self.settings.get("route"):
            body["route"] = self.settings["route"]
        return body

    def send(self, outgoing: Outgoing) -> Sent:
        body = self.request_body(outgoing)
        try:
            response = self.client.post(FLOW_PATH, json=body)
        except httpx.TransportError as exc:
            # MSG91 has no idempotency key: a request that timed out after MSG91 took it is
            # sent again on retry (rare; the alternative is losing the message).
            raise DeliveryError(f"MSG91 unreachable: {type(exc).__name__}: {exc}") from exc
        answer = _json(response)
        message = str(answer.get("message") or response.reason_phrase or "")
        if response.status_code == 429 or response.status_code >= 500:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise DeliveryError(f"MSG91 {response.status_code}: {message}", retry_after=wait)
        if response.status_code == 401:
            raise DeliveryError(f"MSG91 refused the auth key: {message}", permanent=True)
        if response.status_code >= 400 or answer.get("type") != "success" or not message:
            raise DeliveryError(f"MSG91 {response.status_code}: {message}", permanent=True)
        return Sent(provider_message_id=message)

    def test_connection(self) -> str:
        # MSG91's Flow API has no read-only call. A request naming no template sends nothing:
        # MSG91 checks the auth key first (401) and only then complains about the body.
        try:
            response = self.client.post(FLOW_PATH, json={"template_id": "", "recipients": []})
        except httpx.TransportError as exc:
            raise DeliveryError(f"MSG91 unreachable: {type(exc).__name__}: {exc}") from exc
        answer = _json(response)
        if response.status_code == 401 or "authentication" in str(answer.get("message")).lower():
            raise DeliveryError("MSG91 refused the auth key.", permanent=True)
        if response.status_code >= 500:
            raise DeliveryError(f"MSG91 answered {response.status_code}; try again later.")
        return "MSG91 accepted the auth key."


def _json(response: httpx.Response) -> dict:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


# Delivery reports --------------------------------------------------------------------------


_ID = (str, int)
_REPORT = {
    "requestId": _ID,
    "number": _ID,
    "status": _ID,
    "desc": str,
    "failedReason": str,
    "date": str,
}
# One request (v3: the whole body, or each item of a list; v2: each item of `data`), with its
# reports inline (v3) or in a `report` list (v2).
_REQUEST = {**_REPORT, "report": [_REPORT]}


def read_reports(body: bytes | str) -> list[dict]:
    """(requestId, number, status, desc, failedReason) dicts from a v3 JSON report (one object,
    or a list of them) or a v2 form report (`data` = a JSON string: a list of requests, each
    with a `report` list); wire.BadWebhookBody for anything else (the body is untrusted:
    checked at receipt and again before a stored report is applied)."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadWebhookBody("The body is not UTF-8 text.") from exc
    text = body.strip()
    if not text.startswith(("{", "[")):
        if "\x00" in text:
            raise BadWebhookBody("The body contains a NUL character.")
        text = (parse_qs(text).get("data") or [""])[-1]
    data = read_json(text)
    check_shape(data, [_REQUEST] if isinstance(data, list) else _REQUEST)
    reports = []
    for item in data if isinstance(data, list) else [data]:
        for report in item["report"] if item.get("report") is not None else [item]:
            reports.append({**report, "requestId": item.get("requestId")})
    return reports


def report_status(report: dict) -> str | None:
    word = str(report.get("desc") or report.get("status") or "").strip().upper()
    if word in STATUS_WORDS:
        return STATUS_WORDS[word]
    return STATUS_CODES.get(str(report.get("status") or "").strip())


def process_webhook(session, event) -> list[StatusUpdate]:
    """Status updates for the tenant's own messages named in a stored MSG91 report. A report
    counts only when its number is the message's recipient (MSG91 keys reports on request id
    and number; a report naming another number is not about this message)."""
    reports = []
    for report in read_reports(event.body):
        status = report_status(report)
        request_id = str(report.get("requestId") or "")
        if status and request_id:
            reports.append((request_id, _digits(report.get("number")), status, report))
    if not reports:
        return []
    recipients = dict(
        session.execute(
            select(OutboxMessage.provider_message_id, OutboxMessage.recipient).where(
                OutboxMessage.of_tenant(event.tenant_id),
                OutboxMessage.provider == "msg91",
                OutboxMessage.provider_message_id.in_({r[0] for r in reports}),
            )
        ).all()
    )
    updates = []
    for request_id, number, status, report in reports:
        recipient = recipients.get(request_id)
        if recipient is None or _digits(recipient) != number:
            log.info(
                "msg91 report for %s/%s matches no message of tenant %s",
                request_id,
                number,
                event.tenant_id,
            )
            continue
        error = None
        if status == "failed":
            error = str(report.get("failedReason") or report.get("desc") or "failed")[:500]
        # MSG91 does not document the zone of its report dates; the time we received the
        # report is the one we trust.
        updates.append(StatusUpdate("msg91", request_id, status, event.received_at, error))
    return updates


def _digits(value) -> str:
    return re.sub(r"\D", "", str(value or ""))
