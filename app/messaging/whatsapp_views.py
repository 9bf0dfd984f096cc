"""Meta's webhook for WhatsApp: the verification handshake and the signed event POSTs.

No login and no CSRF token: Meta authenticates a POST by `X-Hub-Signature-256`, an HMAC-SHA256
of the raw body keyed with the platform's App Secret (providers.md §1.4), checked before the
body is parsed. A POST is stored (once per tenant it concerns) and answered; a worker applies
it (WH-1). Without an App Secret configured nothing can be verified, so the POST answers 503:
Meta retries a failed delivery, so events wait for the operator instead of being lost. A body
over MAX_BODY_BYTES is a 413; a signed body that is not what Meta sends (not JSON, nested
too deeply, a field of the wrong type, a NUL character) is a 400 and nothing of it is
stored."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.extensions import csrf, db
from app.integrations.connectors.whatsapp import PROVIDER, read_webhook, waba_account_key
from app.integrations.connectors.wire import BadWebhookBody
from app.messaging.webhooks import record_webhook, tenant_for_account

log = logging.getLogger(__name__)

blueprint = Blueprint("whatsapp_hooks", __name__)
csrf.exempt(blueprint)
# Meta sends webhook bodies of up to 3 MB.
MAX_BODY_BYTES = 3 * 1024 * 1024


def _text(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/plain")


@blueprint.get("/hooks/whatsapp")
def verify():
    """§1.3: echo `hub.challenge` byte for byte when the verify token matches."""
    expected = current_app.config.get("WHATSAPP_VERIFY_TOKEN") or ""
    given = request.args.get("hub.verify_token", "")
    if (
        expected
        and request.args.get("hub.mode") == "subscribe"
        and hmac.compare_digest(given.encode(), expected.encode())
    ):
        log.info("whatsapp webhook verification accepted")
        return _text(request.args.get("hub.challenge", ""), 200)
    log.warning("whatsapp webhook verification rejected from %s", request.remote_addr)
    return _text("", 403)


def signature_valid(app_secret: str, body: bytes, header: str | None) -> bool:
    expected = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), (header or "").strip().encode())


@blueprint.post("/hooks/whatsapp")
def receive():
    app_secret = current_app.config.get("WHATSAPP_APP_SECRET")
    if not app_secret:
        log.error("whatsapp webhook refused: WHATSAPP_APP_SECRET is not configured")
        return _text("WhatsApp webhooks are not configured on this server.", 503)
    request.max_content_length = MAX_BODY_BYTES
    body = request.get_data(cache=False)
    if not signature_valid(app_secret, body, request.headers.get("X-Hub-Signature-256")):
        log.warning(
            "whatsapp webhook rejected: bad or missing signature from %s", request.remote_addr
        )
        return _text("Invalid signature.", 401)
    try:
        data = read_webhook(body)
    except BadWebhookBody as refusal:
        log.warning("whatsapp webhook rejected: signed but %s", refusal)
        return _text(f"Not a WhatsApp webhook body: {refusal}", refusal.status)
    by_tenant, dropped = _changes_by_tenant(data.get("entry") or [])
    digest = hashlib.sha256(body).hexdigest()
    for tenant_id, tenant_entries in by_tenant.items():
        stored = (
            body
            if len(by_tenant) == 1 and not dropped
            else json.dumps(
                {"object": data.get("object"), "entry": tenant_entries}, separators=(",", ":")
            )
        )
        event_id = record_webhook(
            db.session, PROVIDER, stored, tenant_id, event_key=f"{digest}:{tenant_id}"
        )
        log.info(
            "whatsapp webhook accepted tenant=%s event=%s%s",
            tenant_id,
            event_id,
            "" if event_id else " (duplicate)",
        )
    db.session.commit()
    return _text("OK", 200)


@blueprint.errorhandler(RequestEntityTooLarge)
def body_too_large(error):
    log.warning("whatsapp webhook rejected: body over %d bytes", MAX_BODY_BYTES)
    return _text("The body is too large.", 413)


def _changes_by_tenant(entries: list) -> tuple[dict[int, list[dict]], int]:
    """Each tenant's share of the body's entries, found through the phone_number_id of a
    change (or, for template updates, the WhatsApp Business Account id); and how many
    changes named no tenant (acknowledged, dropped, logged: G7)."""
    tenants: dict[str, int | None] = {}
    by_tenant: dict[int, dict[int, dict]] = {}
    dropped = 0
    for position, entry in enumerate(entries):  # of the shape read_webhook checked
        for change in entry.get("changes") or []:
            value = change.get("value") or {}
            phone_number_id = (value.get("metadata") or {}).get("phone_number_id")
            key = (
                str(phone_number_id)
                if phone_number_id
                else waba_account_key(str(entry.get("id") or ""))
            )
            if key not in tenants:
                account = tenant_for_account(db.session, PROVIDER, key)
                tenants[key] = account.tenant_id if account else None
            tenant_id = tenants[key]
            if tenant_id is None:
                dropped += 1
                log.warning("whatsapp webhook change dropped: no tenant for account %s", key)
                continue
            shares = by_tenant.setdefault(tenant_id, {})
            share = shares.setdefault(position, {**entry, "changes": []})
            share["changes"].append(change)
    return {tenant: list(shares.values()) for tenant, shares in by_tenant.items()}, dropped
