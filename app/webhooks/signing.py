"""Standard Webhooks v1 signatures (spec v1.0.0, "Signature scheme"): HMAC-SHA256 of
`{webhook-id}.{webhook-timestamp}.{body}` with the endpoint's secret, sent as `v1,<base64>`;
during a secret's rotation both secrets sign, space-separated, so a receiver still holding the
old one accepts the message."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24  # the spec asks for 24 to 64


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(secrets_: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one `v1,` entry per secret that signs."""
    return " ".join(signature(secret, message_id, timestamp, body) for secret in secrets_)
