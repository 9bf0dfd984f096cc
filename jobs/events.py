"""Domain events to their consumers (app.core.events): after a commit that wrote events, and
every few minutes for whatever a lost hand-over left behind."""

from __future__ import annotations

from app.core.events import forget_queued, run_consumers
from jobs.context import job
from jobs.queues import fan_out
from tenants.binding import bound_tenant_id


@job("default")
def deliver_events(session) -> int:
    """Each consumer's next events in the bound workspace; how many were applied."""
    forget_queued(bound_tenant_id(session))
    return run_consumers(session)


@job("default")
def deliver_events_all(session) -> int:
    """The sweeper: one delivery per active workspace."""
    return fan_out(session, "deliver_events")
