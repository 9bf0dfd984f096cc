"""Members' connected calendars (app.calendars): a workspace's pushes after a change, and the
sweep every 15 minutes that catches what a lost hand-over or a provider's outage left."""

from __future__ import annotations

from app.calendars.hooks import forget_queued
from app.calendars.services import connections_to_push, push
from jobs.context import job
from jobs.queues import fan_out
from tenants.binding import bound_tenant_id
from tenants.models import Tenant


@job("sync", timeout=1800)
def push_calendars(session) -> int:
    """Push every connected calendar of the bound workspace; how many events were written."""
    tenant_id = bound_tenant_id(session)
    forget_queued(tenant_id)
    tenant = session.get(Tenant, tenant_id)
    written = 0
    for connection_id in connections_to_push(session):
        result = push(session, tenant, connection_id)
        if result is not None:
            written += result.created + result.updated + result.deleted
        session.commit()  # each calendar's record kept, whatever the next one does
    return written


@job("sync")
def push_calendars_all(session) -> int:
    """The sweep: one push job per active workspace."""
    return fan_out(session, "push_calendars")
