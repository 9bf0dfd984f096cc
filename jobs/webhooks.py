"""Outbound webhooks' sends: after the consumer wrote deliveries (or an admin replayed some),
and every minute for the retries that fell due; and the delivery log's daily prune."""

from __future__ import annotations

from datetime import UTC, datetime

from app.core.handover import Work, enqueue
from app.webhooks.services import endpoints_with_due_deliveries, prune_log, send_due
from jobs.context import job
from jobs.queues import fan_out
from tenants.binding import bound_tenant_id


@job("default", timeout=600)
def send_webhooks(session, endpoint_id: int) -> int:
    """What is due for one endpoint; how many attempts were made."""
    return send_due(session, endpoint_id)


@job("default")
def sweep_webhooks(session) -> int:
    """A send job for each endpoint of the bound workspace with a delivery due."""
    tenant_id = bound_tenant_id(session)
    endpoint_ids = endpoints_with_due_deliveries(session)
    session.commit()
    if endpoint_ids:
        enqueue([Work("send_webhooks", (e,), tenant_id=tenant_id) for e in endpoint_ids])
    return len(endpoint_ids)


@job("default")
def sweep_webhooks_all(session) -> int:
    """The sweeper: one sweep per active workspace."""
    return fan_out(session, "sweep_webhooks")


@job("bulk", timeout=1800)
def prune_webhook_log(session) -> int:
    """The bound workspace's delivery log past its keeping time."""
    return prune_log(session, datetime.now(UTC))


@job("bulk")
def prune_webhook_logs_all(session) -> int:
    return fan_out(session, "prune_webhook_log")
