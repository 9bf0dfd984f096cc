"""WhatsApp jobs: mirror Meta's template approvals onto the tenants' WhatsApp templates.

Template status webhooks keep them current; this sync is the backfill (WH-4) for webhooks
that were lost or could not be routed, and what the templates page runs on demand."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import select

from app.core.crypto import decrypt_secrets
from app.integrations.connectors import DeliveryError
from app.integrations.connectors.whatsapp import PROVIDER, WhatsAppCloudConnector
from app.integrations.models import IntegrationConnection
from app.message_templates.provider_status import sync_templates
from jobs.context import job
from jobs.queues import fan_out

log = logging.getLogger(__name__)


@job("sync")
def sync_whatsapp_templates(session) -> dict | None:
    """Ask Meta for the bound tenant's templates and update provider_status and
    provider_synced_at of its WhatsApp templates. None when the tenant has no enabled
    WhatsApp connection; else {"updated": n, "missing": [template names]}."""

    connection = session.scalar(
        select(IntegrationConnection).where(
            IntegrationConnection.provider == PROVIDER, IntegrationConnection.in_use()
        )
    )
    if connection is None:
        return None
    connector = WhatsAppCloudConnector(
        settings=connection.settings,
        secrets=decrypt_secrets(connection.secrets_ciphertext),
        config=current_app.config,
    )
    try:
        result = sync_templates(session, connector.fetch_templates())
    except DeliveryError as exc:
        # The page shows the connection's last error; the next run tries again.
        log.warning("whatsapp template sync failed for connection %s: %s", connection.id, exc)
        connection.last_error, connection.last_error_at = str(exc)[:2000], datetime.now(UTC)
        return {"error": str(exc)}
    return {"updated": result.updated, "missing": result.missing}


@job("sync")
def sync_whatsapp_templates_all(session) -> int:
    """Periodic: one sync job per active tenant (tenants without WhatsApp return at once).
    Returns how many were queued."""
    return fan_out(session, "sync_whatsapp_templates")
