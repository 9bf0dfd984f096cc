"""The daily run of each workspace's scheduled rules (app.rules), just after its own
midnight, on its own day."""

from __future__ import annotations

from app.rules import services
from jobs.context import job
from jobs.queues import fan_out, tenants_past_midnight


@job("default", timeout=1800)
def run_rules_all(session, every_tenant: bool = False) -> int:
    """Hourly: one job per active tenant whose local time is now between 00:00 and 00:59
    (`every_tenant`: all of them, e.g. after the scheduler was down)."""
    return fan_out(session, "run_rules_for_tenant", tenants_past_midnight(session, every_tenant))


@job("default", timeout=1800)
def run_rules_for_tenant(session) -> int:
    """Each enabled scheduled rule once for the tenant's day (a second run the same day does
    nothing); a rule that cannot run is turned off with the reason. Returns the rules run."""
    return len(services.run_scheduled_rules(session).ran)
