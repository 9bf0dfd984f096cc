"""Outbound webhooks' sends: after the consumer wrote deliveries (or an admin replayed some),
and every minute for the retries that fell due."""

from __future__ import annotations

from app.core.handover import Work, enqueue
from app.webhooks.services import endpoints_with_due_deliveries, send_due
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
