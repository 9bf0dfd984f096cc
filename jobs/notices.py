"""Jobs of collection notices: send approved notices, and catch up with what the outbox
knows (delivery writes "sent" on the message; a notice follows it here or when looked at)."""

from __future__ import annotations

from collections import defaultdict

from rq import Queue

from jobs.context import job
from jobs.queues import enqueue_per_tenant, get_queue

SEND_BATCH = 100


def enqueue_sending(pending: list[tuple[int, int]]) -> None:
    """Queue `send_notices` for (tenant_id, notice_id) pairs: one job per tenant and batch,
    in one round trip."""
    by_tenant: dict[int, list[int]] = defaultdict(list)
    for tenant_id, notice_id in pending:
        by_tenant[tenant_id].append(notice_id)
    jobs = [
        Queue.prepare_data(
            send_notices,
            args=(ids[start : start + SEND_BATCH],),
            kwargs={"tenant_id": tenant_id},
            timeout=900,
        )  # fmt: skip
        for tenant_id, ids in by_tenant.items()
        for start in range(0, len(ids), SEND_BATCH)
    ]
    get_queue("messages").enqueue_many(jobs)


@job
def send_notices(session, notice_ids: list[int]) -> dict:
    """Send these approved notices of the bound tenant (messages, letters). Running it again
    sends nothing twice. Returns {notice id: what happened}."""
    from app.collections.notices import services as notices
    from tenants.binding import bound_tenant_id
    from tenants.models import Tenant

    tenant = session.get(Tenant, bound_tenant_id(session))
    return notices.send_notices(session, tenant, notice_ids)


@job
def sweep_notices_all(session) -> int:
    """Periodic: one `sweep_notices` job per active tenant."""
    from jobs.tasks import _active_tenants

    tenant_ids = [tenant_id for tenant_id, _ in _active_tenants(session)]
    return enqueue_per_tenant("messages", sweep_notices, tenant_ids)


@job
def sweep_notices(session) -> dict:
    """Approved notices no worker sent (Redis was down when they were approved) are sent now;
    notices follow their messages' delivery status."""
    from app.collections.notices import services as notices
    from tenants.binding import bound_tenant_id
    from tenants.models import Tenant

    tenant = session.get(Tenant, bound_tenant_id(session))
    stranded = notices.stranded_notices(session)
    sent = notices.send_notices(session, tenant, stranded) if stranded else {}
    moved = notices.follow_open_notices(session, tenant.id)
    return {"sent": len(sent), "moved": moved}
