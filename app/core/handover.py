"""Handing work to the workers: the purpose-named queues, the jobs by name, and the one
after-commit hand-over every area uses.

An area never imports `jobs/`: it names the job by string,
`hand_over(session, "launch_campaign", campaign.id, tenant_id=tenant.id)`, and the job is
queued once the transaction commits (a rollback forgets it). Each job declares its queue,
timeout and retry where it is defined (`jobs.context.job`), which registers it here by name.
Work that is batched (the outbox's messages, many ids per job) is gathered per transaction
with `hand_over_gathered` and turned into jobs at commit by the area's own batching rule.
Sweepers hand over what they found with `hand_over_now` (or `enqueue`, raising, in a job).

Redis going away after the commit is logged and nothing more: every kind of work has a durable
intent in PostgreSQL (an outbox row, a scheduled campaign, an approved notice, an invoice with
no PDF, a webhook event not processed) that a sweeper hands over again (a queued import the page
offers to start again), so nothing is raised to the user and nothing is lost. Work issued
outside the app (a script) is left to the sweepers the same way."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from flask import current_app, has_app_context
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from sqlalchemy.orm import Session

from app.core.transaction_hooks import on_commit

log = logging.getLogger(__name__)

# By urgency: transactional messages first, then ordinary work, bulk (campaigns, imports),
# and syncs with outside systems.
QUEUE_NAMES = ("messages", "default", "bulk", "sync")
# What a failed hand-over raises: Redis' own errors, and the OS refusing the connection.
HAND_OVER_FAILURES = (RedisError, OSError)


@cache
def _redis(url: str) -> Redis:
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)


def redis_connection() -> Redis:
    return _redis(current_app.config["REDIS_URL"])


def init_app(app) -> None:
    """The one test seam of the hand-over: a test swaps `app.extensions["duebook.enqueue"]`
    for its own function to see, keep or refuse the work instead of RQ."""
    app.extensions["duebook.enqueue"] = enqueue_with_rq


def get_queue(name: str) -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=redis_connection())


@dataclass(frozen=True)
class JobSpec:
    """A job as the workers know it: the function's import path and how it is queued."""

    name: str
    path: str
    queue: str
    timeout: int | None = None
    retry: int = 0
    result_ttl: int | None = None


_JOBS: dict[str, JobSpec] = {}


def register_job(spec: JobSpec) -> None:
    if spec.queue not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {spec.queue!r} for job {spec.name!r}")
    known = _JOBS.setdefault(spec.name, spec)
    if known.path != spec.path:
        raise ValueError(f"two jobs are named {spec.name!r}: {known.path} and {spec.path}")


def job_spec(name: str) -> JobSpec:
    try:
        return _JOBS[name]
    except KeyError:
        raise LookupError(f"no job is named {name!r} (are the job modules loaded?)") from None


@dataclass(frozen=True)
class Work:
    """One job to queue: its name, arguments, tenant and per-call options (a job id the page
    polls, a timeout or queue other than the job's own)."""

    name: str
    args: tuple = ()
    tenant_id: int | None = None
    job_id: str | None = None
    timeout: int | None = None
    queue: str | None = None


@dataclass(frozen=True)
class _Gathered:
    """An item of work that becomes a job only with the others of its kind at commit."""

    into_jobs: Callable[[list], list[Work]]
    item: object


def hand_over(
    session: Session,
    name: str,
    *args,
    tenant_id: int | None = None,
    job_id: str | None = None,
    timeout: int | None = None,
    queue: str | None = None,
) -> None:
    """Queue the job `name` once this transaction commits; all the work handed over in one
    transaction goes in one round trip per queue."""
    work = Work(name, args, tenant_id, job_id, timeout, queue)
    on_commit(session, _hand_over_after_commit, work)


def hand_over_gathered(session: Session, item, into_jobs: Callable[[list], list[Work]]) -> None:
    """Gather `item` with the others handed over with the same `into_jobs` in this
    transaction; once it commits, `into_jobs` turns them all into jobs at once (the outbox
    batches its messages per tenant and queue)."""
    on_commit(session, _hand_over_after_commit, _Gathered(into_jobs, item))


def _hand_over_after_commit(handed: list[Work | _Gathered]) -> None:
    works = [each for each in handed if isinstance(each, Work)]
    gathered: dict[Callable, list] = defaultdict(list)
    for each in handed:
        if isinstance(each, _Gathered):
            gathered[each.into_jobs].append(each.item)
    for into_jobs, items in gathered.items():
        works.extend(into_jobs(items))
    hand_over_now(works)


def hand_over_now(works: list[Work]) -> None:
    """Queue work whose rows are committed already (after a commit, or a sweeper's find). If
    Redis does not answer, or there is no app to queue with (a script issuing outside it), it
    is logged and nothing more: the sweeper of each kind of work hands it over again."""
    if not works:
        return
    names = ", ".join(sorted({work.name for work in works}))
    if not has_app_context():
        log.info("no app context to queue %d job(s) (%s); left to the sweeper", len(works), names)
        return
    try:
        enqueue(works)
    except HAND_OVER_FAILURES:
        log.warning(
            "could not queue %d job(s) (%s); left to the sweeper", len(works), names, exc_info=True
        )


def enqueue(works: list[Work]) -> None:
    """Queue now (no transaction to wait for: a sweeper, a fan-out, a job). Raises when Redis
    does not answer. Every hand-over comes through here (and through the test seam, see
    `init_app`)."""
    current_app.extensions["duebook.enqueue"](works)


def enqueue_with_rq(works: list[Work]) -> None:
    """Queue on RQ, one round trip per queue."""
    by_queue: dict[str, list] = defaultdict(list)
    for work in works:
        spec = job_spec(work.name)
        by_queue[work.queue or spec.queue].append(
            Queue.prepare_data(
                spec.path,
                args=work.args,
                kwargs={"tenant_id": work.tenant_id},
                timeout=work.timeout or spec.timeout,
                result_ttl=spec.result_ttl,
                failure_ttl=spec.result_ttl,
                job_id=work.job_id,
                retry=Retry(max=spec.retry) if spec.retry else None,
            )
        )
    for queue_name, jobs in by_queue.items():
        get_queue(queue_name).enqueue_many(jobs)
