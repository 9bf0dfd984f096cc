"""API keys (made, found by a request's bearer token, revoked) and idempotent POSTs."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.api.models import SCOPES, ApiIdempotentRequest, ApiKey
from tenants.models import Tenant

KEY_PREFIX = "dbk_live_"
# "Last used" is a hint for admins deciding what to revoke, not a log: written at most this
# often per key, so a busy integration does not write a row on every call.
LAST_USED_PRECISION = timedelta(minutes=1)


class KeyRefused(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    session: Session, tenant_id: int, name: str, scopes: list[str], user_id: int | None
) -> tuple[ApiKey, str]:
    """A new key and its secret, which is shown once and never stored."""
    errors = {}
    name = " ".join((name or "").split())
    if not 2 <= len(name) <= 100:
        errors["name"] = "Give the key a name of 2 to 100 characters, e.g. the system using it."
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        errors["scopes"] = "Choose at least one of the listed permissions."
    if errors:
        raise KeyRefused(errors)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        tenant_id=tenant_id,
        name=name,
        prefix=secret[: len(KEY_PREFIX) + 4],
        secret_digest=secret_digest(secret),
        scopes=sorted(set(scopes)),
        created_by=user_id,
    )
    session.add(key)
    session.flush()
    return key, secret


def workspace_keys(session: Session, tenant_id: int) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey)
            .where(ApiKey.tenant_id == tenant_id)
            .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc())
        )
    )


def get_key(session: Session, tenant_id: int, key_id: int) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id))


def revoke_key(session: Session, key: ApiKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        session.flush()


@dataclass(frozen=True)
class Caller:
    """Who an API request is: the key (its id, name and scopes) and its workspace."""

    key_id: int
    key_name: str
    scopes: frozenset[str]
    tenant: Tenant
    acting_user_id: int | None


def caller_of(session: Session, secret: str) -> Caller | None:
    """The live key `secret` is, in an active workspace; None for anything else. Notes when
    the key was used (at most once a minute: a conditional update, committed at once so a
    refused call counts as a use too)."""
    if not secret.startswith(KEY_PREFIX):
        return None
    key = session.scalar(
        select(ApiKey).where(
            ApiKey.secret_digest == secret_digest(secret), ApiKey.revoked_at.is_(None)
        )
    )
    if key is None:
        return None
    tenant = session.get(Tenant, key.tenant_id)
    if tenant is None or not tenant.is_active:
        return None
    now = datetime.now(UTC)
    if key.last_used_at is None or key.last_used_at < now - LAST_USED_PRECISION:
        session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key.id,
                or_(
                    ApiKey.last_used_at.is_(None),
                    ApiKey.last_used_at < now - LAST_USED_PRECISION,
                ),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    return Caller(key.id, key.name, frozenset(key.scopes), tenant, key.created_by)


# Idempotent POSTs ----------------------------------------------------------------------------


class IdempotencyKeyReused(ValueError):
    """The key was used before for a request with another body."""


def earlier_answer(
    session: Session, api_key_id: int, idempotency_key: str, request_digest: str
) -> ApiIdempotentRequest | None:
    stored = session.scalar(
        select(ApiIdempotentRequest).where(
            ApiIdempotentRequest.api_key_id == api_key_id,
            ApiIdempotentRequest.idempotency_key == idempotency_key,
        )
    )
    if stored is not None and stored.request_digest != request_digest:
        raise IdempotencyKeyReused(idempotency_key)
    return stored


def keep_answer(
    session: Session,
    api_key_id: int,
    idempotency_key: str,
    request_digest: str,
    status_code: int,
    body: str,
    location: str | None,
) -> bool:
    """Keep the answer in the transaction of what the request did. False when a concurrent
    request with the same key got there first: this one's work must then be rolled back."""
    try:
        with session.begin_nested():
            session.add(
                ApiIdempotentRequest(
                    api_key_id=api_key_id,
                    idempotency_key=idempotency_key,
                    request_digest=request_digest,
                    status_code=status_code,
                    body=body,
                    location=location,
                )
            )
            session.flush()
    except IntegrityError:
        return False
    return True
