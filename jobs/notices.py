"""Jobs of collection notices: send approved notices, and catch up with what the outbox
knows (delivery writes "sent" on the message; a notice follows it here or when looked at)."""

from __future__ import annotations

from app.collections.notices import services as notices
from jobs.context import job
from jobs.queues import fan_out
from tenants.binding import bound_tenant_id
from tenants.models import Tenant


@job("messages", timeout=900)
def send_notices(session, notice_ids: list[int]) -> dict:
    """Send these approved notices of the bound tenant (messages, letters). Running it again
    sends nothing twice. Returns {notice id: what happened}."""

    tenant = session.get(Tenant, bound_tenant_id(session))
    return notices.send_notices(session, tenant, notice_ids)


@job("messages")
def sweep_notices_all(session) -> int:
    """Periodic: one `sweep_notices` job per active tenant."""
    return fan_out(session, "sweep_notices")


@job("messages")
def sweep_notices(session) -> dict:
    """Approved notices no worker sent (Redis was down when they were approved) are sent now;
    notices follow their messages' delivery status."""

    tenant = session.get(Tenant, bound_tenant_id(session))
    stranded = notices.stranded_notices(session)
    sent = notices.send_notices(session, tenant, stranded) if stranded else {}
    moved = notices.follow_open_notices(session, tenant.id)
    return {"sent": len(sent), "moved": moved}
