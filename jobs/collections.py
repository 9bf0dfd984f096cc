"""The daily collection run: an hourly fan-out starts each tenant's run once its own day has
reached the tenant's run hour, and the per-tenant job that runs it."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text

from app.collections.engine import run as engine
from app.collections.engine.services import settings_of
from jobs.context import job
from jobs.queues import active_tenants, fan_out
from tenants.binding import bound_tenant_id, qualified, schema_for_tenant_id
from tenants.models import Tenant

# Schemas read per query when the fan-out looks at every tenant's settings.
SETTINGS_CHUNK = 500


def tenants_due(session, tenants: list[tuple[int, str]], now: datetime) -> list[int]:
    """Of (tenant id, time zone) pairs, those whose local hour has reached their run hour and
    whose last run was before their local today."""
    due = []
    zones = dict(tenants)
    ids = list(zones)
    for start in range(0, len(ids), SETTINGS_CHUNK):
        chunk = ids[start : start + SETTINGS_CHUNK]
        query = " UNION ALL ".join(
            f"SELECT {int(tenant_id)} AS tenant_id, run_hour, last_run_on "
            f"FROM {qualified(schema_for_tenant_id(tenant_id), 'collection_settings')}"
            for tenant_id in chunk
        )
        for tenant_id, run_hour, last_run_on in session.execute(text(query)):
            local = now.astimezone(ZoneInfo(zones[tenant_id]))
            if local.hour >= run_hour and (last_run_on is None or last_run_on < local.date()):
                due.append(tenant_id)
    return due


@job("default")
def run_collections_all(session, now: datetime | None = None) -> int:
    """Hourly: one `run_collections` job per active tenant that is due (see `tenants_due`).
    Returns how many were queued."""
    due = tenants_due(session, active_tenants(session), now or datetime.now(UTC))
    return fan_out(session, "run_collections", due)


@job("default")
def run_collections(session) -> int:
    """The daily run of the bound tenant (its own today); a second job the same day finds
    the run done and creates nothing. Returns how many notices it created."""

    tenant = session.get(Tenant, bound_tenant_id(session))
    if tenant is None or not tenant.is_active:
        return 0
    today = engine.tenant_today(tenant)
    last = settings_of(session).last_run_on
    if last is not None and last >= today:
        return 0
    return engine.run(session, tenant, today=today).notices_created
