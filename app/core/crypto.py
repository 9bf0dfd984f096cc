"""Secrets at rest (integration credentials, the sealed one-time links of the outbox): Fernet
(AES-128-CBC + HMAC-SHA256) with rotatable keys.

The first key of SECRETS_KEYS encrypts; every key decrypts, so a new key can be put in front
while old ciphertexts are still readable, and `flask secrets rotate` re-encrypts them all."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class SecretsUnreadable(Exception):
    """No configured key opens the ciphertext (a key was dropped before rotating)."""


def _fernet(keys: list[str] | None = None) -> MultiFernet:
    keys = keys if keys is not None else current_app.config["SECRETS_KEYS"]
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


def encrypt_secrets(values: dict, keys: list[str] | None = None) -> str:
    return _fernet(keys).encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt_secrets(ciphertext: str | None, keys: list[str] | None = None) -> dict:
    if not ciphertext:
        return {}
    try:
        return json.loads(_fernet(keys).decrypt(ciphertext.encode()))
    except InvalidToken as exc:
        raise SecretsUnreadable("no configured key decrypts these credentials") from exc


def rotate_ciphertext(ciphertext: str, keys: list[str] | None = None) -> str:
    """The same secrets encrypted with the current first key."""
    try:
        return _fernet(keys).rotate(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise SecretsUnreadable("no configured key decrypts these credentials") from exc
