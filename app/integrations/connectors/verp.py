"""VERP envelope senders: `bounces+<token>@<bounce domain>`, one per outbox message, so that a
delivery status notification names the message it is about. The token names the tenant and
the message and carries an HMAC of both; the SMTP connector writes it, the bounce receiver
and `app.messaging.bounces` read it back (a forged one reads as None)."""

from __future__ import annotations

import hashlib
import hmac
import re

# Lower-case letters, digits and '-' only: some mail servers change the case of local parts,
# and a local part may not exceed 64 characters (RFC 5321), so no base64 here.
_VERP = re.compile(rb"bounces\+((?:p|\d+)-\d+-[0-9a-f]{20})@", re.IGNORECASE)
_SIGNATURE_HEX = 20  # 80 bits


def _signature(secret_key: str, tenant_part: str, message_id: str) -> str:
    mac = hmac.new(secret_key.encode(), f"verp:{tenant_part}:{message_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:_SIGNATURE_HEX]


def verp_token(secret_key: str, tenant_id: int | None, message_id: int) -> str:
    tenant_part = "p" if tenant_id is None else str(int(tenant_id))  # p: the platform's mail
    return f"{tenant_part}-{int(message_id)}-{_signature(secret_key, tenant_part, str(message_id))}"


def verp_address(secret_key: str, tenant_id: int | None, message_id: int, domain: str) -> str:
    """The envelope sender (MAIL FROM) of one outbox message: bounces come back to it."""
    return f"bounces+{verp_token(secret_key, tenant_id, message_id)}@{domain}"


def read_verp_token(secret_key: str, token: str) -> tuple[int | None, int] | None:
    """(tenant_id or None for the platform, message id), or None when the token is forged."""
    tenant_part, _, rest = token.lower().partition("-")
    message_id, _, signature = rest.partition("-")
    if not message_id.isdigit() or not (tenant_part == "p" or tenant_part.isdigit()):
        return None
    if not hmac.compare_digest(signature, _signature(secret_key, tenant_part, message_id)):
        return None
    return (None if tenant_part == "p" else int(tenant_part)), int(message_id)


def find_verp(secret_key: str, raw: bytes) -> tuple[int | None, int] | None:
    """The message a raw report is about: the first genuine VERP address in it. Relays put
    the address in different headers (To, Delivered-To, X-Original-To), and the returned
    headers of the original carry it as Return-Path, so the whole report is searched."""
    for match in _VERP.finditer(raw):
        found = read_verp_token(secret_key, match.group(1).decode())
        if found is not None:
            return found
    return None
