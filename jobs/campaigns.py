"""Campaign jobs (queue `bulk`): write a launched campaign's messages to the outbox, and the
sweep that launches again what no worker finished."""

from __future__ import annotations

from app.campaigns.services import campaigns_to_launch, write_messages
from app.core.handover import Work, enqueue
from jobs.context import job
from jobs.queues import fan_out
from tenants.binding import bound_tenant_id
from tenants.models import Tenant


@job("bulk", timeout=3600)
def launch_campaign(session, campaign_id: int) -> int:
    """Idempotent: a run after a crash (or twice) writes no message twice."""

    tenant = session.get(Tenant, bound_tenant_id(session))
    return write_messages(session, tenant, campaign_id)


@job("bulk")
def sweep_campaign_launches_all(session) -> int:
    """Periodic: one `sweep_campaign_launches` job per active tenant."""
    return fan_out(session, "sweep_campaign_launches")


@job("bulk")
def sweep_campaign_launches(session) -> int:
    """Hand the launches no worker finished (Redis was down at launch, a worker died) to the
    workers again. Returns how many."""

    tenant_id = bound_tenant_id(session)
    ids = campaigns_to_launch(session)
    session.commit()
    enqueue([Work("launch_campaign", (campaign_id,), tenant_id) for campaign_id in ids])
    return len(ids)
