"""The relay to a connector agent: a small program a workspace runs next to software Duebook
cannot reach (TallyPrime answers only on the office desktop's localhost:9000). The agent never
listens on a network port: it calls Duebook, asks for work, does it locally, and posts the
answer back. A connector posts a request (`post_work`) and waits for its answer
(`wait_answer`), as if it called the software itself.

Pairing: the workspace's page shows a one-time code (8 characters, 15 minutes, once); the agent
sends it with `duebook-tally-agent pair`, and gets a token of its own, shown once. Codes and
tokens are kept only as their SHA-256, as provider accounts (the shared table that routes a
provider's calls to one workspace): a code finds its workspace without a session bound to it,
and a token is usable for its connection's agent calls only. One agent per connection: a second
pairing is refused unless the code was made to replace the first (whose token then stops).
Revoking deletes the token's row; the agent's next call gets 401 and it stops.

Work goes through Redis, per workspace and connection: a list of requests the agent takes in
order (long-polled), and an answer key per request that only that connection's agent may fill
(the request's id must be one the connection is waiting for)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.core.handover import redis_connection
from app.core.transaction_hooks import on_commit
from app.integrations.models import IntegrationConnection, ProviderAccount
from tenants.binding import bound_tenant_id

PAIRING = "agent_pairing"
AGENT = "agent"
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud or retyped
CODE_LENGTH = 8
CODE_LIFETIME = timedelta(minutes=15)
TOKEN_PREFIX = "dbta_"
# How long an answer waits in Redis for the connector that asked (then it is dropped).
ANSWER_TTL_SECONDS = 600
# How long Redis remembers which connection a token belongs to.
TOKEN_MEMORY_SECONDS = 300


class AgentRefused(Exception):
    """A pairing or an agent call refused; the message says why (shown to the agent's user)."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_pairing_code(session: Session, connection: IntegrationConnection, replace: bool) -> str:
    """A one-time code for the connection's agent (any earlier code of it stops working)."""
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    tenant_id = bound_tenant_id(session)
    session.execute(
        delete(ProviderAccount).where(
            ProviderAccount.provider == PAIRING,
            ProviderAccount.tenant_id == tenant_id,
            ProviderAccount.connection_id == connection.id,
        )
    )
    session.add(
        ProviderAccount(
            provider=PAIRING,
            account_key=_digest(code),
            tenant_id=tenant_id,
            connection_id=connection.id,
        )
    )
    expires = datetime.now(UTC) + CODE_LIFETIME
    connection.settings = {
        **(connection.settings or {}),
        "pairing": {"expires_at": expires.isoformat(), "replace": replace},
    }
    session.flush()
    return code


def take_pairing_code(session: Session, code: str) -> tuple[int, int]:
    """The agent's side of pairing, first half (no workspace bound yet): the code's workspace
    and connection. The code is used up whatever happens next."""
    normalized = "".join(ch for ch in (code or "").upper() if ch.isalnum())
    row = session.scalar(
        select(ProviderAccount).where(
            ProviderAccount.provider == PAIRING,
            ProviderAccount.account_key == _digest(normalized),
        )
    )
    if row is None:
        raise AgentRefused("This pairing code is not valid. Make a new one on the Tally page.")
    found = (row.tenant_id, row.connection_id)
    session.delete(row)
    session.flush()
    return found


def finish_pairing(session: Session, connection_id: int, machine: str) -> str:
    """Second half, in the code's workspace: the agent's token (shown to it once)."""
    connection = session.get(IntegrationConnection, connection_id)
    pairing = (connection.settings or {}).get("pairing") if connection else None
    if connection is None or connection.status == "disconnected" or not pairing:
        raise AgentRefused("This pairing code is not valid. Make a new one on the Tally page.")
    if datetime.fromisoformat(pairing["expires_at"]) < datetime.now(UTC):
        raise AgentRefused("This pairing code has expired. Make a new one on the Tally page.")
    current = (connection.settings or {}).get("agent")
    if current and not pairing.get("replace"):
        raise AgentRefused(
            f"An agent on {current.get('machine') or 'another computer'} is paired with this "
            "workspace. Make a code that replaces it on the Tally page, or revoke it first."
        )
    tenant_id = bound_tenant_id(session)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    _forget_agents(session, tenant_id, connection_id)
    session.execute(
        insert(ProviderAccount).values(
            provider=AGENT,
            account_key=_digest(token),
            tenant_id=tenant_id,
            connection_id=connection_id,
        )
    )
    settings = {k: v for k, v in (connection.settings or {}).items() if k != "pairing"}
    settings["agent"] = {
        "machine": (machine or "")[:120],
        "paired_at": datetime.now(UTC).isoformat(),
    }
    connection.settings = settings
    session.flush()
    return token


def _token_key(digest: str) -> str:
    return f"agent:token:{digest}"


def agent_of(session: Session, token: str) -> tuple[int, int] | None:
    """(workspace, connection) whose agent holds `token`, or None. Remembered in Redis for a
    few minutes, so that an agent's long polls do not each cost a database round trip;
    revoking or replacing the agent forgets it at once."""
    if not (token or "").startswith(TOKEN_PREFIX):
        return None
    digest = _digest(token)
    redis = redis_connection()
    remembered = redis.get(_token_key(digest))
    if remembered:
        tenant_id, _, connection_id = remembered.decode().partition(":")
        return int(tenant_id), int(connection_id)
    row = session.execute(
        select(ProviderAccount.tenant_id, ProviderAccount.connection_id).where(
            ProviderAccount.provider == AGENT, ProviderAccount.account_key == digest
        )
    ).first()
    if row is None:
        return None
    redis.set(_token_key(digest), f"{row.tenant_id}:{row.connection_id}", ex=TOKEN_MEMORY_SECONDS)
    return row.tenant_id, row.connection_id


def _forget_agents(session: Session, tenant_id: int, connection_id: int) -> None:
    """The connection's agent tokens, deleted (and forgotten by Redis once this commits)."""
    digests = session.scalars(
        delete(ProviderAccount)
        .where(
            ProviderAccount.provider == AGENT,
            ProviderAccount.tenant_id == tenant_id,
            ProviderAccount.connection_id == connection_id,
        )
        .returning(ProviderAccount.account_key)
    ).all()
    if digests:
        keys = [_token_key(digest) for digest in digests]
        redis = redis_connection()
        # Forgotten now and again after the commit: a call between the two finds no row.
        redis.delete(*keys)
        on_commit(session, _forget_tokens, (redis, keys))


def _forget_tokens(batches: list[tuple]) -> None:
    for redis, keys in batches:
        redis.delete(*keys)


def revoke(session: Session, connection: IntegrationConnection) -> None:
    """The connection's agent stops: its token and any pairing code go."""
    tenant_id = bound_tenant_id(session)
    _forget_agents(session, tenant_id, connection.id)
    session.execute(
        delete(ProviderAccount).where(
            ProviderAccount.provider == PAIRING,
            ProviderAccount.tenant_id == tenant_id,
            ProviderAccount.connection_id == connection.id,
        )
    )
    connection.settings = {
        k: v for k, v in (connection.settings or {}).items() if k not in ("agent", "pairing")
    }
    session.flush()


def record_health(session: Session, connection: IntegrationConnection, facts: dict) -> None:
    """What the agent last said of itself and the software it reaches."""
    agent = dict((connection.settings or {}).get("agent") or {})
    agent.update(
        {
            "seen_at": datetime.now(UTC).isoformat(),
            "version": str(facts.get("version") or "")[:40],
            "reachable": bool(facts.get("reachable")),
            "company": str(facts.get("company") or "")[:191] or None,
            "software_version": str(facts.get("software_version") or "")[:80] or None,
            "problem": str(facts.get("problem") or "")[:500] or None,
        }
    )
    connection.settings = {**(connection.settings or {}), "agent": agent}
    session.flush()


# The relay ----------------------------------------------------------------------------------


def _keys(tenant_id: int, connection_id: int) -> tuple[str, str]:
    base = f"agent:{tenant_id}:{connection_id}"
    return f"{base}:work", f"{base}:pending"


def _answer_key(tenant_id: int, connection_id: int, work_id: str) -> str:
    return f"agent:{tenant_id}:{connection_id}:answer:{work_id}"


def post_work(
    tenant_id: int, connection_id: int, request: bytes, kind: str = "tally", redis=None
) -> str:
    """Queue a request for the connection's agent; its id, to wait for the answer with.
    `redis`: a connection taken earlier, for callers outside the app's context (a sync's page
    fetcher thread)."""
    work_id = uuid.uuid4().hex
    queue, pending = _keys(tenant_id, connection_id)
    item = json.dumps({"id": work_id, "kind": kind, "request": request.decode("utf-8")})
    redis = redis or redis_connection()
    pipe = redis.pipeline()
    pipe.sadd(pending, work_id)
    pipe.expire(pending, ANSWER_TTL_SECONDS * 6)
    pipe.rpush(queue, item)
    pipe.expire(queue, ANSWER_TTL_SECONDS * 6)
    pipe.execute()
    return work_id


def _block(redis, key: str, seconds: float) -> bytes | None:
    """BLPOP for up to `seconds`, in waits shorter than the connection's socket timeout (the
    app's connections give up reading after 5 s: one long BLPOP would end in a TimeoutError
    instead of an empty answer)."""
    socket_timeout = redis.connection_pool.connection_kwargs.get("socket_timeout")
    # Half the socket timeout: the other half is the margin for a busy server's answer.
    longest = max(0.5, socket_timeout / 2) if socket_timeout else 30
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            taken = redis.blpop([key], timeout=max(0.1, min(left, longest)))
        except RedisTimeoutError:
            # A starved server answered after the socket gave up. What it popped then is lost
            # with the connection: a request the next run asks again, or an answer the
            # connector stops waiting for; both are safe (GUID keys), and neither is a 500.
            continue
        if taken:
            return taken[1]


def next_work(tenant_id: int, connection_id: int, wait_seconds: float) -> dict | None:
    """The oldest request for the agent, waiting up to `wait_seconds` for one (long poll)."""
    queue, _ = _keys(tenant_id, connection_id)
    redis = redis_connection()
    found = redis.lpop(queue) if wait_seconds <= 0 else _block(redis, queue, wait_seconds)
    return json.loads(found) if found else None


def give_answer(tenant_id: int, connection_id: int, work_id: str, answer: bytes) -> bool:
    """Store the agent's answer to a request the connection is waiting for; False when it is
    none of this connection's requests (an id from elsewhere, or answered already)."""
    _, pending = _keys(tenant_id, connection_id)
    redis = redis_connection()
    if not redis.srem(pending, work_id):
        return False
    key = _answer_key(tenant_id, connection_id, work_id)
    pipe = redis.pipeline()
    pipe.rpush(key, answer)
    pipe.expire(key, ANSWER_TTL_SECONDS)
    pipe.execute()
    return True


def wait_answer(
    tenant_id: int, connection_id: int, work_id: str, timeout: float, redis=None
) -> bytes | None:
    """The agent's answer, or None when none came within `timeout` seconds (the request is
    then withdrawn: an answer arriving later is refused)."""
    key = _answer_key(tenant_id, connection_id, work_id)
    redis = redis or redis_connection()
    answer = _block(redis, key, timeout)
    if answer is None:
        _, pending = _keys(tenant_id, connection_id)
        redis.srem(pending, work_id)
    return answer
