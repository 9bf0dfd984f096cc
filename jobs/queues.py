"""Purpose-named queues on one Redis connection per process."""

from __future__ import annotations

from functools import cache

from flask import current_app
from redis import Redis
from rq import Queue

# By urgency: transactional messages first, then ordinary work, bulk (campaigns, imports),
# and syncs with outside systems.
QUEUE_NAMES = ("messages", "default", "bulk", "sync")


@cache
def _redis(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)


def redis_connection() -> Redis:
    return _redis(current_app.config["REDIS_URL"])


def get_queue(name: str) -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=redis_connection())


def enqueue_many(queue_name: str, func, argument_tuples: list[tuple], **job_options) -> list:
    """One round trip for many jobs (RQ's enqueue_many), instead of one per job."""
    queue = get_queue(queue_name)
    return queue.enqueue_many(
        [Queue.prepare_data(func, args=args, **job_options) for args in argument_tuples]
    )


FAN_OUT_BATCH = 1000  # jobs per enqueue_many round trip when a job fans out over tenants


def enqueue_per_tenant(queue_name: str, func, tenant_ids: list[int]) -> int:
    """One job per tenant, each bound to its tenant by the `tenant_id` keyword (see
    jobs.context.job), in batches of FAN_OUT_BATCH per round trip. Returns how many."""
    queue = get_queue(queue_name)
    for start in range(0, len(tenant_ids), FAN_OUT_BATCH):
        batch = tenant_ids[start : start + FAN_OUT_BATCH]
        queue.enqueue_many(
            [Queue.prepare_data(func, kwargs={"tenant_id": tenant_id}) for tenant_id in batch]
        )
    return len(tenant_ids)
