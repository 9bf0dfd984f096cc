"""The domain events' types and their payloads, versioned: the contract the API's event list and
outbound webhooks publish. A type's payload only grows (a new optional fact keeps its version);
a fact renamed, removed or changed in meaning makes a new version, and both stay listed.

Each payload is a JSON object of plain facts (ids, statuses, amounts as decimal strings, dates
as ISO strings), described here once and checked by `check_payload` when an event is written.

This module belongs to no business area and imports none."""

from __future__ import annotations

from functools import cache

from jsonschema import Draft202012Validator

_ID = {"type": "integer", "minimum": 1}
_OPTIONAL_ID = {"type": ["integer", "null"], "minimum": 1}
_MONEY = {"type": "string", "pattern": r"^-?\d+\.\d{2}$"}
_DATE = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
_CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$"}
_TEXT = {"type": "string", "maxLength": 500}
_OPTIONAL_TEXT = {"type": ["string", "null"], "maxLength": 500}


def _payload(description: str, required: dict, optional: dict | None = None) -> dict:
    return {
        "type": "object",
        "description": description,
        "properties": {**required, **(optional or {})},
        "required": sorted(required),
        "additionalProperties": False,
    }


_INVOICE = {"invoice_id": _ID, "client_id": _ID, "number": _TEXT}
_PAYMENT = {"payment_id": _ID, "client_id": _ID, "amount": _MONEY, "currency": _CURRENCY}
# invoice_id: the invoice when the notice covers one (else null); level: the rung's name.
_NOTICE = {"notice_id": _ID, "client_id": _ID, "invoice_id": _OPTIONAL_ID, "level": _TEXT}
_PROMISE = {
    "promise_id": _ID,
    "client_id": _ID,
    "amount": _MONEY,
    "currency": _CURRENCY,
    "promised_for": _DATE,
}

# (type, version) -> payload schema.
EVENT_TYPES: dict[tuple[str, int], dict] = {
    ("client.created", 1): _payload(
        "A client was added (by a person, an import, a lead or a sync).",
        {"client_id": _ID, "name": _TEXT},
    ),
    ("client.updated", 1): _payload(
        "A client's details changed: the names of the fields that changed.",
        {"client_id": _ID, "name": _TEXT, "fields": {"type": "array", "items": _TEXT}},
    ),
    ("project.status_changed", 1): _payload(
        "A project moved to another status, as its milestones say: planned (none started), "
        "in_progress, delivered (every milestone done, not all paid), paid; a project of only "
        "cancelled milestones is cancelled.",
        {"project_id": _ID, "client_id": _ID, "status": _TEXT, "previous": _OPTIONAL_TEXT},
        {"name": _TEXT},
    ),
    ("milestone.status_changed", 1): _payload(
        "A milestone moved to another status.",
        {"milestone_id": _ID, "project_id": _ID, "status": _TEXT, "previous": _OPTIONAL_TEXT},
        {"client_id": _ID, "name": _TEXT},
    ),
    ("invoice.issued", 1): _payload(
        "An invoice was issued: it is owed from now on.",
        {**_INVOICE, "currency": _CURRENCY, "total": _MONEY, "issue_date": _DATE},
        {"due_date": {"type": ["string", "null"]}},
    ),
    ("invoice.sent", 1): _payload(
        "An invoice was sent to its client: `channel` is email, whatsapp, sms, or manual (marked "
        "sent by a person).",
        {**_INVOICE, "channel": _TEXT},
    ),
    ("invoice.paid", 1): _payload(
        "Nothing is owed on an invoice any more.",
        {"invoice_id": _ID, "client_id": _ID, "amount_due": _MONEY},
        {"number": _TEXT},
    ),
    ("invoice.voided", 1): _payload(
        "An invoice was voided (a draft, never numbered, has no number).",
        {**_INVOICE, "number": _OPTIONAL_TEXT},
    ),
    ("payment.received", 1): _payload(
        "A payment was recorded.",
        {**_PAYMENT, "received_on": _DATE, "method": _TEXT},
    ),
    ("payment.failed", 1): _payload(
        "A payment through a gateway failed.",
        {"client_id": _OPTIONAL_ID, "provider": _TEXT, "reason": _OPTIONAL_TEXT},
        {"invoice_id": _OPTIONAL_ID, "amount": _MONEY, "currency": _CURRENCY},
    ),
    ("payment.reversed", 1): _payload(
        "A payment was taken back (voided, or charged back by the payer's bank).",
        {**_PAYMENT, "reason": _OPTIONAL_TEXT},
    ),
    ("notice.created", 1): _payload("A collection notice was drawn up.", _NOTICE),
    ("notice.sent", 1): _payload("A collection notice was sent.", {**_NOTICE, "channel": _TEXT}),
    ("notice.escalated", 1): _payload(
        "A collection notice was escalated: the next, sterner rung follows at once.", _NOTICE
    ),
    ("notice.closed", 1): _payload(
        "A collection notice was closed: `reason` is paid, written_off, void, cancelled (by a "
        "person) or client_archived.",
        {**_NOTICE, "reason": _OPTIONAL_TEXT},
    ),
    ("promise.kept", 1): _payload(
        "A client paid what they promised (or every invoice it covered was settled).",
        _PROMISE,
    ),
    ("promise.broken", 1): _payload(
        "A promise to pay passed its day unpaid: `unpaid` of the amount did not come.",
        {**_PROMISE, "unpaid": _MONEY},
    ),
    ("dispute.opened", 1): _payload(
        "A client disputed an invoice.",
        {"dispute_id": _ID, "invoice_id": _ID, "client_id": _ID, "reason": _OPTIONAL_TEXT},
    ),
    ("dispute.resolved", 1): _payload(
        "A dispute ended: `outcome` is resolved (the client was right, or it was settled) or "
        "rejected (the invoice stands).",
        {"dispute_id": _ID, "invoice_id": _ID, "client_id": _ID, "outcome": _TEXT},
    ),
    ("document.expiring", 1): _payload(
        "A client's document (a licence, an insurance) expires soon.",
        {"document_id": _ID, "client_id": _ID, "expires_on": _DATE},
    ),
    ("lead.received", 1): _payload(
        "An enquiry arrived as a prospect: `source` is manual (entered by a person), import, or "
        "the sync that brought it.",
        {"client_id": _ID, "source": _TEXT},
    ),
    ("sync.finished", 1): _payload(
        "An accounting sync run ended.",
        {
            "run_id": _ID,
            "connection_id": _ID,
            "provider": _TEXT,
            "status": _TEXT,
            "created": {"type": "integer", "minimum": 0},
            "updated": {"type": "integer", "minimum": 0},
            "failed": {"type": "integer", "minimum": 0},
        },
    ),
    ("rule.matched", 1): _payload(
        "A business rule whose action calls this endpoint matched a record (`entity` is "
        "clients or invoices); only the endpoint it names receives it.",
        {
            "endpoint_id": _ID,
            "rule_id": _ID,
            "rule": _TEXT,
            "entity": _TEXT,
            "record_id": _ID,
        },
    ),
    ("webhook.test", 1): _payload(
        "A test an admin sent to one webhook endpoint (only that endpoint receives it).",
        {"endpoint_id": _ID, "message": _TEXT},
    ),
}


def latest_version(type_: str) -> int:
    versions = [version for name, version in EVENT_TYPES if name == type_]
    if not versions:
        raise KeyError(f"unknown event type {type_!r}: add it to app.core.event_types")
    return max(versions)


@cache
def _validator(type_: str, version: int) -> Draft202012Validator:
    return Draft202012Validator(EVENT_TYPES[(type_, version)])


def check_payload(type_: str, version: int, data: dict) -> None:
    """Raises ValueError naming what is wrong when `data` does not match the type's schema."""
    errors = sorted(_validator(type_, version).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        said = "; ".join(
            f"{'/'.join(map(str, error.path)) or '(payload)'}: {error.message}" for error in errors
        )
        raise ValueError(f"{type_} v{version} payload does not match its schema: {said}")


def event_type_names() -> list[str]:
    return sorted({name for name, _ in EVENT_TYPES})
