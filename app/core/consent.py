"""A person's round trip through a provider's consent page (OAuth 2 authorization code with
PKCE), the part every such connection shares: the accounting sync's and the calendars'.

`begin` makes the one-time state and the PKCE verifier, kept in the person's session (never
in the page) until the provider sends them back; `hand_back` is the fixed callback address a
real app registers once for every workspace, which hands over to the person's own workspace
page; `check_return` refuses a return that does not belong to a consent started here, or
came back too late. Exchanging the code and keeping the tokens is each area's own.

This module belongs to no business area and imports none."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import abort, redirect, request, session, url_for

# How long a consent may take before its state is refused.
CONSENT_LIFETIME = timedelta(minutes=15)


class ConsentRefused(ValueError):
    """The return from the consent page is refused; the message says why, in words."""


def begin(provider: str, tenant_slug: str) -> tuple[str, str, dict]:
    """(state, PKCE S256 challenge, what to keep in the person's session until the return)."""
    verifier, state = generate_token(64), generate_token(32)
    pending = {
        "provider": provider,
        "tenant_slug": tenant_slug,
        "state": state,
        "verifier": verifier,
        "started": datetime.now(UTC).isoformat(),
    }
    return state, create_s256_code_challenge(verifier), pending


def check_return(pending: dict | None, provider: str, state: str, title: str) -> dict:
    """The kept consent when the provider's return belongs to it, else ConsentRefused."""
    if not pending or pending.get("provider") != provider:
        raise ConsentRefused(f"This sign-in to {title} was not started here. Start again.")
    if not hmac.compare_digest(str(pending.get("state", "")), str(state or "")):
        raise ConsentRefused(f"The answer from {title} does not match. Start again.")
    if datetime.now(UTC) - datetime.fromisoformat(pending["started"]) > CONSENT_LIFETIME:
        raise ConsentRefused("That sign-in took too long. Start again.")
    return pending


def hand_back(session_key: str, provider: str, endpoint: str):
    """The callback's answer: to `endpoint` of the workspace the consent was started in, with
    the provider's query string; 404 for a return this browser did not start."""
    pending = session.get(session_key) or {}
    if pending.get("provider") != provider or not pending.get("tenant_slug"):
        abort(404)
    return redirect(
        url_for(
            endpoint,
            tenant_slug=pending["tenant_slug"],
            provider=provider,
            **request.args.to_dict(),
        ),
        303,
    )
