"""Receivers for SMS delivery reports: MSG91 and Twilio. No login and no CSRF token (the
providers cannot have either); each request proves itself another way, is stored once with
`record_webhook` and answered at once. A worker applies it afterwards (forward only).

- MSG91 signs nothing: the secret path token of the connection is the authentication, and
  finds the tenant. An unknown token is a 404 and nothing is stored; a body that is not a
  report MSG91 sends (not JSON, nested too deeply, a field of the wrong type, a NUL character)
  is a 400 and nothing of it is stored.
- Twilio signs each callback with the account's auth token. The AccountSid finds the tenant
  and its connection; the auth token is read from that connection's encrypted secrets (the
  request's session is bound to that tenant for this one look-up), so nothing secret is
  copied into shared tables. The signed URL is rebuilt from BASE_URL, never from the request
  (behind a proxy the request's URL is not what Twilio signed). A bad signature is a 403 and
  nothing is stored; an AccountSid no tenant has connected is acknowledged and dropped (G7).
  A form without a well-formed AccountSid, MessageSid and MessageStatus is a 400.

Bodies over MAX_BODY_BYTES (far above anything either provider sends) are a 413.
"""

from __future__ import annotations

import hashlib
import logging

from flask import Blueprint, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.core.crypto import SecretsUnreadable, decrypt_secrets
from app.extensions import csrf, db
from app.integrations.connectors import WEBHOOK_TOKEN_SHAPE, msg91, twilio_sms
from app.integrations.connectors.wire import BadWebhookBody
from app.integrations.models import IntegrationConnection
from app.messaging.webhooks import record_webhook, tenant_for_account
from tenants.binding import tenant_context

log = logging.getLogger(__name__)

blueprint = Blueprint("sms_hooks", __name__, url_prefix="/hooks")
csrf.exempt(blueprint)
MAX_BODY_BYTES = 256 * 1024


@blueprint.url_value_preprocessor
def _limit_body_size(endpoint, values):
    # Before any before_request handler: the app's NUL guard reads form bodies, and the
    # limit must apply to that first read.
    request.max_content_length = MAX_BODY_BYTES


@blueprint.errorhandler(RequestEntityTooLarge)
def body_too_large(error):
    log.warning(
        "sms report rejected from %s: body over %d bytes", request.remote_addr, MAX_BODY_BYTES
    )
    return "The body is too large.", 413, {"Content-Type": "text/plain; charset=utf-8"}


@blueprint.errorhandler(BadWebhookBody)
def bad_body(refusal: BadWebhookBody):
    log.warning(
        "sms report %s rejected from %s: %s",
        request.path.split("/")[2],
        request.remote_addr,
        refusal,
    )
    return str(refusal), refusal.status, {"Content-Type": "text/plain; charset=utf-8"}


@blueprint.post(msg91.REPORT_PATH.removeprefix("/hooks") + "/<token>")
def msg91_report(token: str):
    account = (
        tenant_for_account(db.session, "msg91", token)
        if WEBHOOK_TOKEN_SHAPE.fullmatch(token)
        else None
    )
    if account is None:
        log.warning("msg91 report to an unknown token rejected from %s", request.remote_addr)
        return "", 404
    body = request.get_data(cache=False)
    msg91.read_reports(body)  # a BadWebhookBody is a 400 (bad_body), nothing stored
    # Keyed per tenant: a report body another tenant could post can never shadow this one.
    key = f"{account.tenant_id}:{hashlib.sha256(body).hexdigest()}"
    stored = record_webhook(db.session, "msg91", body, account.tenant_id, event_key=key)
    db.session.commit()
    log.info(
        "msg91 report for tenant %s %s",
        account.tenant_id,
        "stored" if stored else "was a duplicate",
    )
    return "", 200


@blueprint.post(twilio_sms.STATUS_PATH.removeprefix("/hooks"))
def twilio_status():
    raw = request.get_data(cache=True)  # before .form, so both are kept
    form = request.form
    twilio_sms.check_status_callback(raw, form)  # a BadWebhookBody is a 400 (bad_body)
    sid = form["AccountSid"]
    account = tenant_for_account(db.session, "twilio", sid)
    if account is None:
        log.warning("twilio callback for unknown account %r dropped", sid[:40])
        return "", 200
    tenant_id = account.tenant_id
    auth_token = _auth_token(tenant_id, account.connection_id)
    url = _public_url()
    signature = request.headers.get("X-Twilio-Signature", "")
    if not twilio_sms.valid_signature(auth_token or "", url, form, signature):
        log.warning("twilio callback for tenant %s rejected: bad signature", tenant_id)
        return "", 403
    # One event per message and status: Twilio's retries and repeats of a status change
    # nothing. The event is a shared row: storing it needs no tenant binding.
    key = f"{sid}:{form.get('MessageSid', '')}:{form.get('MessageStatus', '')}"
    stored = record_webhook(db.session, "twilio", raw, tenant_id, event_key=key)
    db.session.commit()
    log.info(
        "twilio callback for tenant %s %s", tenant_id, "stored" if stored else "was a duplicate"
    )
    return "", 200


def _auth_token(tenant_id: int, connection_id: int) -> str | None:
    """The auth token of the tenant's Twilio connection, read in a session bound to the tenant
    only for that (the rest of the request stores a shared row)."""
    with tenant_context(db.session, tenant_id):
        connection = db.session.get(IntegrationConnection, connection_id)
        if connection is None or connection.provider != "twilio":
            return None
        try:
            return decrypt_secrets(connection.secrets_ciphertext).get("auth_token")
        except SecretsUnreadable:
            log.error(
                "twilio connection %s of tenant %s: secrets unreadable", connection.id, tenant_id
            )
            return None


def _public_url() -> str:
    base = (current_app.config.get("BASE_URL") or twilio_sms.DEFAULT_BASE_URL).rstrip("/")
    query = request.query_string.decode("latin-1")
    return base + request.path + (f"?{query}" if query else "")
