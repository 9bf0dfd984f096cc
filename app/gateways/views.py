"""The gateways' webhook receivers: `/hooks/razorpay/<token>` and `/hooks/stripe/<token>`.
No login and no CSRF token (the gateway can have neither); the request proves itself by the
path token, which finds the workspace, and by the signature, checked with that workspace's own
webhook secret.

Why a path token routes the webhook: Razorpay's body names the merchant account
(`account_id`), but one Razorpay account may be connected by a workspace that never proved it
owns it, and a body is hostile until its signature is checked, which needs the workspace's
secret first. The unguessable token (made when the connection is saved, shown on the
integrations page as the URL to give Razorpay) names exactly one connection, so the secret is
known before a byte of the body is trusted, and no workspace can receive another's events.

Stripe is routed the same way (its body names no account of ours either); its connector checks
`Stripe-Signature` within Stripe's 300 s tolerance.

Answers: 200 once the event is stored (or was a repeat, or is not one Duebook acts on); 200
for a token no workspace holds (the event is parked for review, not lost); 400 for a body
that is not an event of the gateway; 403 for a bad or stale signature; 413 over
MAX_BODY_BYTES. Never a 500 for anything a sender controls. The work is done by a job after
the answer."""

from __future__ import annotations

import logging

from flask import Blueprint, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.extensions import csrf, db
from app.gateways import services
from app.integrations.connectors import razorpay, stripe_gateway
from tenants.binding import tenant_context

log = logging.getLogger(__name__)

blueprint = Blueprint("gateway_hooks", __name__, url_prefix="/hooks")
csrf.exempt(blueprint)
# Razorpay's largest event (payment_link.paid with its order and payment) is a few KB, and a
# Stripe event with its object tens of KB.
MAX_BODY_BYTES = 256 * 1024
_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


@blueprint.url_value_preprocessor
def _limit_body_size(endpoint, values):
    request.max_content_length = MAX_BODY_BYTES


@blueprint.errorhandler(RequestEntityTooLarge)
def body_too_large(error):
    log.warning(
        "gateway webhook refused from %s: body over %d bytes", request.remote_addr, MAX_BODY_BYTES
    )
    return "The body is too large.", 413, _TEXT


def _receive(provider: str, token: str):
    body = request.get_data(cache=False)
    account = services.account_for_token(db.session, provider, token)
    if account is None:
        # Razorpay names its event in a header; Stripe's id is in the body.
        key = request.headers.get(razorpay.EVENT_ID_HEADER) or ""
        receipt = services.park_unrouted(db.session, provider, token, body, key)
        db.session.commit()
    else:
        with tenant_context(db.session, account.tenant_id):
            receipt = services.record_webhook(
                db.session, account.connection_id, body, request.headers
            )
    return receipt.reason, receipt.status, _TEXT


@blueprint.post(razorpay.WEBHOOK_PATH.removeprefix("/hooks") + "/<token>")
def razorpay_webhook(token: str):
    return _receive("razorpay", token)


@blueprint.post(stripe_gateway.WEBHOOK_PATH.removeprefix("/hooks") + "/<token>")
def stripe_webhook(token: str):
    return _receive("stripe", token)
