"""Campaign jobs (queue `bulk`): write a launched campaign's messages to the outbox."""

from __future__ import annotations

from app.campaigns.services import write_messages
from jobs.context import job
from tenants.models import Tenant


@job
def launch_campaign(session, campaign_id: int) -> int:
    """Idempotent: a run after a crash (or twice) writes no message twice."""
    from tenants.binding import bound_tenant_id

    tenant = session.get(Tenant, bound_tenant_id(session))
    return write_messages(session, tenant, campaign_id)
