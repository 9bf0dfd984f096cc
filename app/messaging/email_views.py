"""Public e-mail links: unsubscribe (RFC 8058 one-click and a page), and bounce reports.

Neither needs a login. The unsubscribe link carries a signed token naming the tenant and the
contact; the bounce hook carries the platform's BOUNCE_WEBHOOK_TOKEN, and each report the
signed VERP address of the message it is about. A report over MAX_BOUNCE_BYTES is a 413, one
with a NUL byte (no mail server sends one) a 400; nothing of either is stored."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, abort, current_app, redirect, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from app.core.pages import render_page
from app.extensions import csrf, db
from app.integrations.connectors.verp import find_verp
from app.messaging import unsubscribe as links
from app.messaging.webhooks import record_webhook

log = logging.getLogger(__name__)

blueprint = Blueprint("email_links", __name__)

ONE_CLICK_SOURCE = "one-click unsubscribe"
PAGE_SOURCE = "unsubscribe page"
# A delivery status notification is a few kilobytes; one returning the whole original (with
# its attachments) can be large, and is refused above this (the headers are what count).
MAX_BOUNCE_BYTES = 2 * 1024 * 1024
_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


def _found(token: str):
    found = links.contact_for_token(db.session, token)
    if found is None:
        abort(404)
    return found


@blueprint.get("/u/<token>")
def unsubscribe_page(token: str):
    """Only asks: mail scanners open links, so a GET never unsubscribes anyone."""
    tenant, contact, channel = _found(token)
    done = getattr(contact, f"{channel}_consent") == "opted_out"
    return render_page(
        "messaging/unsubscribe.html", tenant=tenant, contact=contact, done=done, token=token
    )


# CSRF is checked below for everything but the one-click request, which a mailbox provider
# sends without cookies (RFC 8058); the signed token is its authentication.
@blueprint.post("/u/<token>")
@csrf.exempt
def unsubscribe(token: str):
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    if not one_click:
        csrf.protect()  # the button on the page: an ordinary form with its CSRF token
    tenant, contact, channel = _found(token)
    links.opt_out(db.session, contact, channel, ONE_CLICK_SOURCE if one_click else PAGE_SOURCE)
    log.info(
        "contact %s of tenant %s unsubscribed from %s (%s)",
        contact.id,
        tenant.id,
        channel,
        "one-click" if one_click else "page",
    )
    if one_click:
        return render_page(
            "messaging/unsubscribe.html", tenant=tenant, contact=contact, done=True, token=token
        )
    return redirect(url_for("email_links.unsubscribe_page", token=token), 303)


@blueprint.post("/hooks/email/bounces/<token>")
@csrf.exempt
def bounce_report(token: str):
    """One raw RFC 822 bounce report per request, as inbound-mail relays post them."""
    expected = current_app.config.get("BOUNCE_WEBHOOK_TOKEN")
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        log.warning("bounce report refused: wrong hook token")
        abort(404)
    request.max_content_length = MAX_BOUNCE_BYTES
    try:
        raw = request.get_data()
    except RequestEntityTooLarge:
        log.warning("bounce report refused: over %d bytes", MAX_BOUNCE_BYTES)
        return "The report is too large.", 413, _TEXT
    if b"\x00" in raw:
        log.warning("bounce report refused: it contains NUL bytes")
        return "The report contains a NUL byte.", 400, _TEXT
    found = find_verp(current_app.config["SECRET_KEY"], raw)
    if found is None:
        # Not about a message of ours (or a forged address): acknowledged, so the relay
        # stops, and dropped.
        log.warning("bounce report without a genuine VERP address dropped (%d bytes)", len(raw))
        return "", 204
    tenant_id, message_id = found
    # Reports are ASCII but a returned original may carry 8-bit bytes; stored as text.
    event_id = record_webhook(db.session, "email_bounce", raw.decode("utf-8", "replace"), tenant_id)
    log.info(
        "bounce report for message %s of tenant %s %s",
        message_id,
        tenant_id,
        "stored" if event_id else "was a duplicate",
    )
    return "", 204
