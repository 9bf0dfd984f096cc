"""Jobs of online payments: applying a gateway's webhook after the request answered it."""

from __future__ import annotations

from app.gateways.services import apply_event
from jobs.context import job


@job("default")
def apply_gateway_event(session, event_id: int) -> str:
    """Apply one stored gateway event of the bound workspace (once); returns its status."""

    return apply_event(session, event_id)
