"""What the ops page shows and the one thing it does (retry a failed job).

Queue depths are global (they reveal only load); everything else is this tenant's only: its
outbox rows, its unprocessed webhook events, and the failed RQ jobs whose `tenant_id` keyword
(every tenant job has one, see jobs.context.job) is this tenant's. Another tenant's job is
neither listed nor retried, whatever id is asked for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis
from rq.exceptions import InvalidJobOperation
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.core.handover import QUEUE_NAMES, get_queue
from app.messaging.models import WebhookEvent
from app.outbox.models import OutboxMessage

# Failed jobs read per queue, newest first: enough to find a tenant's recent failures without
# reading an unbounded registry on every page view.
FAILED_SCAN = 1000


@dataclass(frozen=True)
class QueueDepth:
    name: str
    queued: int
    running: int
    scheduled: int
    failed: int


def queue_depths() -> list[QueueDepth]:
    depths = []
    for name in QUEUE_NAMES:
        queue = get_queue(name)
        later = queue.scheduled_job_registry.count + queue.deferred_job_registry.count
        depths.append(
            QueueDepth(
                name,
                queue.count,
                queue.started_job_registry.count,
                later,
                queue.failed_job_registry.count,
            )
        )
    return depths


def outbox_backlog(session: Session, tenant_id: int) -> dict[str, int]:
    """This tenant's messages not finished: due now, waiting (for the sending window, a rate
    slot or a retry's backoff), and dead letters."""
    now = datetime.now(UTC)
    pending = OutboxMessage.status.in_(("pending", "sending"))
    row = session.execute(
        select(
            func.count().filter(pending, OutboxMessage.next_attempt_at <= now),
            func.count().filter(pending, OutboxMessage.next_attempt_at > now),
            func.count().filter(OutboxMessage.status == "dead"),
            func.min(
                case(
                    (
                        pending & (OutboxMessage.next_attempt_at <= now),
                        OutboxMessage.next_attempt_at,
                    )
                )
            ),
        ).where(
            OutboxMessage.of_tenant(tenant_id),
            OutboxMessage.status.in_(("pending", "sending", "dead")),
        )
    ).one()
    return {"due": row[0], "waiting": row[1], "dead": row[2], "oldest_due": row[3]}


def unprocessed_webhooks(session: Session, tenant_id: int) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                WebhookEvent.tenant_id == tenant_id, WebhookEvent.processed_at.is_(None)
            )
        )
        or 0
    )


@dataclass(frozen=True)
class FailedJob:
    id: str
    queue: str
    function: str
    failed_at: datetime | None
    error: str  # the exception's last line: what went wrong, in one line


def _summary(job: Job) -> str:
    result = job.latest_result()
    text = (result.exc_string if result is not None else "") or ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else "(no error recorded)"


def _belongs(job: Job | None, tenant_id: int) -> bool:
    return job is not None and (job.kwargs or {}).get("tenant_id") == tenant_id


def failed_jobs(tenant_id: int) -> list[FailedJob]:
    """The failed jobs of this tenant on every queue, newest first."""
    found = []
    for name in QUEUE_NAMES:
        registry = get_queue(name).failed_job_registry
        ids = registry.get_job_ids(0, FAILED_SCAN - 1, desc=True)
        for job in Job.fetch_many(ids, connection=registry.connection):
            if _belongs(job, tenant_id):
                found.append(
                    FailedJob(
                        job.id,
                        name,
                        (job.func_name or "").rpartition(".")[2],
                        _aware(job.ended_at),
                        _summary(job),
                    )
                )
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda j: j.failed_at or epoch, reverse=True)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)  # RQ keeps UTC times without a zone
    return moment


def retry_failed_job(tenant_id: int, job_id: str) -> bool:
    """Put this tenant's failed job back on its queue. False when no failed job of this
    tenant has that id (another tenant's job is treated as not there)."""
    for name in QUEUE_NAMES:
        registry: FailedJobRegistry = get_queue(name).failed_job_registry
        connection: Redis = registry.connection
        if connection.zscore(registry.key, job_id) is None:
            continue
        job = Job.fetch_many([job_id], connection=connection)[0]
        if not _belongs(job, tenant_id):
            return False
        try:
            registry.requeue(job_id)
        except InvalidJobOperation:  # requeued by someone else in between
            return False
        return True
    return False
