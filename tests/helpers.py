"""Small helpers shared by the tests."""

from __future__ import annotations

import itertools
import os

from app.extensions import db
from tenants.binding import TenantSession, bind_tenant

PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{next(_counter)}"


def csrf_token_from(html: str) -> str:
    marker = 'name="csrf_token" type="hidden" value="'
    start = html.find(marker)
    if start == -1:
        marker = 'name="csrf_token" value="'
        start = html.find(marker)
    assert start != -1, "no CSRF token in the page"
    start += len(marker)
    return html[start : html.index('"', start)]


def mail_link(message, path_prefix: str) -> str:
    body = message.get_body(preferencelist=("plain",)).get_content()
    for word in body.split():
        if path_prefix in word:
            return word[word.index(path_prefix) :]
    raise AssertionError(f"no link with {path_prefix} in:\n{body}")


def tenant_session(db_session, tenant, actor_id: int | None = None) -> TenantSession:
    """A session of the test's own, bound to `tenant`, on the test's connection. It joins the
    outer transaction without a savepoint of its own ("rollback_only"): left open and closed
    later by the garbage collector, it cannot roll back a savepoint that a request, a job or
    db_session still holds."""
    session = TenantSession(db, bind=db_session.connection(), join_transaction_mode="rollback_only")
    bind_tenant(session, tenant.id, actor_user_id=actor_id)
    return session


def commit_without_hand_over(app, session) -> None:
    """Commit for real what `session` holds, without handing its work (outbox messages) to
    RQ (a test that sends them itself, or not at all)."""
    real_enqueue = app.extensions["duebook.enqueue"]
    app.extensions["duebook.enqueue"] = list
    try:
        session.commit()
    finally:
        app.extensions["duebook.enqueue"] = real_enqueue


def connect_gateway(app, db_session, tenant, connector, raw: dict) -> str:
    """What the integrations page and its verification do for a gateway: the connection with
    its secrets encrypted, verified, and its webhook token routed to the workspace. Returns
    the token (the secret path of the gateway's webhook URL)."""
    from app.core.crypto import encrypt_secrets
    from app.integrations.models import IntegrationConnection, ProviderAccount

    settings, secrets, errors = connector.clean(raw)
    assert errors == {}
    session = tenant_session(db_session, tenant)
    connection = IntegrationConnection(
        provider=connector.provider,
        settings=settings,
        secrets_ciphertext=encrypt_secrets(secrets, app.config["SECRETS_KEYS"]),
        verification="verified",
    )
    session.add(connection)
    session.flush()
    token = settings["webhook_token"]
    session.add(
        ProviderAccount(
            provider=connector.provider,
            account_key=token,
            tenant_id=tenant.id,
            connection_id=connection.id,
        )
    )
    session.commit()
    return token
