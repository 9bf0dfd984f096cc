"""The workers' side of the queues (defined with the hand-over in `app.core.handover`), and the
periodic per-tenant fan-out, written once: a periodic job picks its tenants and queues one job
per tenant."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.core.handover import QUEUE_NAMES, Work, enqueue, get_queue, redis_connection
from tenants.models import Tenant

__all__ = ["QUEUE_NAMES", "get_queue", "redis_connection", "fan_out", "active_tenants"]

FAN_OUT_BATCH = 1000  # jobs per enqueue_many round trip when a job fans out over tenants


def active_tenants(session) -> list[tuple[int, str]]:
    """(id, time zone) of every active tenant, for the jobs that fan out one job per tenant."""
    query = select(Tenant.id, Tenant.time_zone).where(Tenant.status == "active")
    return [tuple(row) for row in session.execute(query.order_by(Tenant.id))]


def tenants_past_midnight(session, every_tenant: bool = False) -> list[int]:
    """Ids of the active tenants whose local time is now between 00:00 and 00:59: an hourly
    job gives each of them its daily work on the tenant's own new day (`every_tenant`: all of
    them, e.g. after the scheduler was down)."""
    return tenants_at_hour(session, 0, every_tenant)


def tenants_at_hour(session, hour: int, every_tenant: bool = False) -> list[int]:
    """Ids of the active tenants whose local time is now within `hour` (an hourly job's
    once-a-day work at a set time of the tenant's own day)."""
    now = datetime.now(UTC)
    return [
        tenant_id
        for tenant_id, zone in active_tenants(session)
        if every_tenant or now.astimezone(ZoneInfo(zone)).hour == hour
    ]


def fan_out(session, job_name: str, tenant_ids: list[int] | None = None) -> int:
    """Queue the job `job_name` once per tenant (every active tenant unless `tenant_ids` says
    which), each bound to its tenant by the `tenant_id` keyword, FAN_OUT_BATCH jobs per round
    trip. The session's reads are committed first, so no transaction stays open meanwhile.
    Returns how many jobs were queued."""
    if tenant_ids is None:
        tenant_ids = [tenant_id for tenant_id, _ in active_tenants(session)]
    session.commit()
    for start in range(0, len(tenant_ids), FAN_OUT_BATCH):
        batch = tenant_ids[start : start + FAN_OUT_BATCH]
        enqueue([Work(job_name, tenant_id=tenant_id) for tenant_id in batch])
    return len(tenant_ids)
