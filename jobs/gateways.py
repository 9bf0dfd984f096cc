"""Jobs of online payments: applying a gateway's webhook after the request answered it, and the
daily reconciliation with each gateway."""

from __future__ import annotations

from app.gateways.reconciliation import reconcile
from app.gateways.services import apply_event, events_left, workspaces_with_gateways
from jobs.context import job
from jobs.queues import fan_out


@job("default")
def apply_gateway_event(session, event_id: int) -> str:
    """Apply one stored gateway event of the bound workspace (once); returns its status."""

    return apply_event(session, event_id)


@job("default")
def sweep_gateway_events_all(session) -> int:
    """One sweep per workspace with a gateway connected. Returns how many were queued."""

    return fan_out(session, "apply_gateway_events_left", workspaces_with_gateways(session))


@job("default")
def apply_gateway_events_left(session) -> int:
    """Apply the bound workspace's events no worker applied, each in its own transaction.
    Returns how many."""

    left = events_left(session)
    for event_id in left:
        apply_event(session, event_id)
        session.commit()
    return len(left)


@job("default")
def reconcile_gateways_all(session) -> int:
    """The daily reconciliation, one job per workspace with a gateway connected. Returns how
    many were queued."""

    return fan_out(session, "reconcile_gateways", workspaces_with_gateways(session))


@job("default", timeout=900)
def reconcile_gateways(session) -> int:
    """Reconcile each of the bound workspace's gateways. Returns the new differences."""

    return sum(run.differences for run in reconcile(session))
