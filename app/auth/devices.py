"""Known devices (OWASP's "device cookie"): a browser that logged in to an account carries a
signed cookie naming that account. Its log-in attempts there count against its own budget
only, so somebody failing on purpose at the account from anywhere cannot lock the owner out;
browsers that never logged in to the account share the account's budget for failures."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import current_app, request
from itsdangerous import BadData, URLSafeTimedSerializer

SALT = "duebook-login-device"


def cookie_name() -> str:
    secure = current_app.config.get("SESSION_COOKIE_SECURE")
    return "__Host-duebook-device" if secure else "duebook-device"


def _lifetime_seconds() -> int:
    return current_app.config["LOGIN_DEVICE_DAYS"] * 86400


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _account_digest(email: str) -> str:
    # Names the account without putting its e-mail address in the cookie.
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()[:32]


def known_device(email: str) -> str | None:
    """This browser's device id when it logged in to the account of `email` before."""
    raw = request.cookies.get(cookie_name())
    if not raw or not email:
        return None
    try:
        digest, device = _serializer().loads(raw, max_age=_lifetime_seconds())
    except (BadData, ValueError, TypeError):
        return None
    if not (isinstance(digest, str) and hmac.compare_digest(digest, _account_digest(email))):
        return None
    return device if isinstance(device, str) else None


def remember_device(response, email: str) -> None:
    """After a successful log-in: this browser is a known device of the account from now on."""
    device = known_device(email) or secrets.token_urlsafe(16)
    response.set_cookie(
        cookie_name(),
        _serializer().dumps([_account_digest(email), device]),
        max_age=_lifetime_seconds(),
        path="/",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
        httponly=True,
        samesite="Lax",
    )
