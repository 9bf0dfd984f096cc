"""API keys and OAuth clients (made, found by a request's credential, revoked), the access
tokens issued to OAuth clients, and idempotent POSTs."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.api.models import SCOPES, ApiAccessToken, ApiIdempotentRequest, ApiKey
from tenants.models import Tenant

KEY_PREFIX = "dbk_live_"
# An OAuth client's id and secret, and the access tokens it is issued: prefixes of their own,
# so a client secret or a token is never taken for a key (nor the other way round).
CLIENT_ID_PREFIX = "dbk_client_"
CLIENT_SECRET_PREFIX = "dbk_secret_"
TOKEN_PREFIX = "dbk_at_"
# Short enough that a leaked token soon stops working; a client asks for another as it needs.
TOKEN_LIFETIME = timedelta(hours=1)
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
    session: Session,
    tenant_id: int,
    name: str,
    scopes: list[str],
    user_id: int | None,
    kind: str = "key",
) -> tuple[ApiKey, str]:
    """A new key (or OAuth client) and its secret, which is shown once and never stored."""
    errors = {}
    name = " ".join((name or "").split())
    if not 2 <= len(name) <= 100:
        errors["name"] = "Give the key a name of 2 to 100 characters, e.g. the system using it."
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        errors["scopes"] = "Choose at least one of the listed permissions."
    if errors:
        raise KeyRefused(errors)
    prefix = CLIENT_SECRET_PREFIX if kind == "oauth_client" else KEY_PREFIX
    secret = prefix + secrets.token_urlsafe(32)
    key = ApiKey(
        tenant_id=tenant_id,
        name=name,
        prefix=secret[: len(prefix) + 4],
        secret_digest=secret_digest(secret),
        scopes=sorted(set(scopes)),
        created_by=user_id,
        kind=kind,
        client_id=CLIENT_ID_PREFIX + secrets.token_urlsafe(12) if kind == "oauth_client" else None,
    )
    session.add(key)
    session.flush()
    return key, secret


def workspace_keys(session: Session, tenant_id: int, kind: str = "key") -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.kind == kind)
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
    """The live key, or the live OAuth client's unexpired access token, `secret` is, in an
    active workspace; None for anything else."""
    if secret.startswith(KEY_PREFIX):
        key = session.scalar(
            select(ApiKey).where(
                ApiKey.secret_digest == secret_digest(secret),
                ApiKey.kind == "key",
                ApiKey.revoked_at.is_(None),
            )
        )
        scopes = key.scopes if key else []
    elif secret.startswith(TOKEN_PREFIX):
        found = session.execute(
            select(ApiKey, ApiAccessToken.scopes)
            .join(ApiAccessToken, ApiAccessToken.api_key_id == ApiKey.id)
            .where(
                ApiAccessToken.token_digest == secret_digest(secret),
                ApiAccessToken.expires_at > datetime.now(UTC),
                ApiKey.revoked_at.is_(None),
            )
        ).first()
        key, scopes = found if found else (None, [])
    else:
        return None
    if key is None:
        return None
    tenant = session.get(Tenant, key.tenant_id)
    if tenant is None or not tenant.is_active:
        return None
    _note_use(session, key)
    return Caller(key.id, key.name, frozenset(scopes), tenant, key.created_by)


def _note_use(session: Session, key: ApiKey) -> None:
    """Note when the key was used (at most once a minute: a conditional update, committed at
    once so a refused call counts as a use too)."""
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


def rate_subject(session: Session, secret: str) -> str:
    """Whom a request's calls are counted against: the key, or for an access token its OAuth
    client (a client asking for many tokens still gets one allowance)."""
    if secret.startswith(TOKEN_PREFIX):
        client_id = session.scalar(
            select(ApiAccessToken.api_key_id).where(
                ApiAccessToken.token_digest == secret_digest(secret)
            )
        )
        if client_id is not None:
            return f"client:{client_id}"
    return secret_digest(secret)[:32]


# OAuth 2 client credentials (RFC 6749 §4.4) ------------------------------------------------------


class ScopeRefused(ValueError):
    """A token was asked for scopes its client does not have."""


def oauth_client(session: Session, client_id: str, secret: str) -> ApiKey | None:
    """The live OAuth client with this id and secret, in an active workspace; else None."""
    client = session.scalar(
        select(ApiKey).where(
            ApiKey.client_id == client_id,
            ApiKey.kind == "oauth_client",
            ApiKey.revoked_at.is_(None),
        )
    )
    if client is None or not hmac.compare_digest(client.secret_digest, secret_digest(secret)):
        return None
    tenant = session.get(Tenant, client.tenant_id)
    return client if tenant is not None and tenant.is_active else None


def issue_token(
    session: Session, client: ApiKey, requested: list[str] | None
) -> tuple[str, list[str]]:
    """A new access token for `client` with the scopes asked for (all of the client's when
    none are), and those scopes. Its expired tokens are cleared away on the way."""
    scopes = sorted(set(requested)) if requested else sorted(client.scopes)
    if not set(scopes) <= set(client.scopes):
        raise ScopeRefused(" ".join(sorted(set(scopes) - set(client.scopes))))
    now = datetime.now(UTC)
    session.execute(
        delete(ApiAccessToken).where(
            ApiAccessToken.api_key_id == client.id, ApiAccessToken.expires_at <= now
        )
    )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiAccessToken(
            api_key_id=client.id,
            token_digest=secret_digest(token),
            scopes=scopes,
            expires_at=now + TOKEN_LIFETIME,
        )
    )
    _note_use(session, client)
    session.commit()
    return token, scopes


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
