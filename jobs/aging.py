"""The daily aging job: each tenant's aging summary rolled to its own date just after its own
midnight, and the day's snapshot for the trend written."""

from __future__ import annotations

from app.aging import services
from app.core.clock import tenant_today
from jobs.context import job
from jobs.queues import fan_out, tenants_past_midnight


@job("default")
def roll_aging_all(session, every_tenant: bool = False) -> int:
    """Hourly: one job per active tenant whose local time is now between 00:00 and 00:59
    (`every_tenant`: all of them, e.g. after the scheduler was down). Returns how many tenant
    jobs were queued."""
    return fan_out(session, "roll_aging_for_tenant", tenants_past_midnight(session, every_tenant))


@job("default")
def roll_aging_for_tenant(session) -> int:
    """Age this tenant's summary to its date (rebuilt instead if the settings changed) and
    write today's snapshot. Running it again the same day changes nothing. Returns the days
    it moved on."""

    today = tenant_today(session)
    before = services.current_state(session).as_of
    services.ensure_current(session, today)
    return (today - before).days
