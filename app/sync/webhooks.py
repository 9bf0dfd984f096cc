"""The books' webhooks (Xero, QuickBooks): checked with the app's webhook key over the exact
bytes, then each organisation named is routed to the one workspace that syncs it (its provider
account) and that workspace's connection syncs: a run now, or, when one is running, another
right after it (the change may be on a page it has passed). Events carry ids only; the run pulls
the records. Nothing is guessed: an organisation no workspace syncs is acknowledged and dropped."""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.integrations.connectors.gateway import WebhookRefused
from app.integrations.connectors.wire import BadWebhookBody
from app.integrations.models import ProviderAccount
from app.sync import services
from app.sync.books import build_connector
from tenants.binding import tenant_context

log = logging.getLogger(__name__)

# The app's webhook signing key per provider (one per app, not per workspace).
SIGNING_KEYS = {"xero": "XERO_WEBHOOK_KEY", "quickbooks": "QBO_WEBHOOK_VERIFIER"}


def receive(session: Session, provider: str, body: bytes, headers) -> int:
    """The HTTP status to answer."""
    key = current_app.config.get(SIGNING_KEYS[provider]) or ""
    if not key:
        log.warning("%s webhook refused: no signing key is configured", provider)
        return 401
    connector = build_connector(provider, {}, {})
    try:
        notices = connector.read_webhook(body, headers, key)
    except WebhookRefused:
        return 401
    except BadWebhookBody:
        return 400
    books = sorted({notice.book_id for notice in notices})
    if not books:
        return 200  # Xero's intent-to-receive, or nothing we sync
    accounts = session.execute(
        select(ProviderAccount.tenant_id, ProviderAccount.connection_id).where(
            ProviderAccount.provider == provider, ProviderAccount.account_key.in_(books)
        )
    ).all()
    session.commit()
    if len(accounts) < len(books):
        log.info(
            "%s webhook: %d organisation(s) synced by no workspace",
            provider,
            len(books) - len(accounts),
        )
    for tenant_id, connection_id in accounts:
        with tenant_context(session, tenant_id) as own:
            connection = services.accounting_connection(own, connection_id)
            if connection is None:
                continue
            if services.active_run(own, connection.id) is not None:
                connection.settings = {**(connection.settings or {}), "rerun": True}
                continue
            try:
                services.start_run(own, connection, "webhook")
            except services.SyncError as refusal:
                log.info("%s webhook for connection %s: %s", provider, connection_id, refusal)
    return 200
