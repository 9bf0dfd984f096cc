"""`python -m jobs.worker [queue ...]`: an RQ worker for the given queues (default: all, in
order of urgency). It runs jobs in its own process instead of forking a work horse per job:
a fork plus a fresh database connection per small job caps a 2-core machine at ~9 jobs/s,
against ~180/s when the process and its connection pool are reused. Run one worker per core
(or more for I/O-bound queues); RQ's job timeouts and retries still apply.

RQ rides out a short Redis outage while it waits for work, but gives up and returns when Redis
goes away in the middle of a job. The worker then waits until Redis answers again, with
exponential backoff and jitter, and starts over, instead of exiting: nothing is lost, since
messages live in PostgreSQL's outbox and the sweeper hands out again what Redis forgot."""

from __future__ import annotations

import logging
import random
import signal
import sys
import time

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import SimpleWorker

from app import create_app
from app.invoicing.pdf import warn_if_slow_font_subsetting
from jobs import load_jobs
from jobs.context import use_app
from jobs.queues import QUEUE_NAMES, get_queue

log = logging.getLogger("jobs.worker")
REDIS_GONE = (RedisConnectionError, RedisTimeoutError)
FIRST_WAIT_SECONDS = 0.5
LONGEST_WAIT_SECONDS = 30.0


def redis_answers(connection: Redis) -> bool:
    try:
        return bool(connection.ping())
    except REDIS_GONE:
        return False


def wait_for_redis(connection: Redis, sleep=time.sleep) -> None:
    """Until Redis answers PING: the wait doubles each time, up to 30 s, and is drawn at random
    between half of that and all of it, so that many workers do not all knock at once."""
    # RQ's signal handlers need Redis; while waiting, a stop request stops at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    attempt = 0
    while not redis_answers(connection):
        attempt += 1
        bound = min(LONGEST_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2**attempt)
        wait = random.uniform(bound / 2, bound)
        log.warning("Redis does not answer (attempt %d): trying again in %.1f s", attempt, wait)
        sleep(wait)
    log.info("Redis answers again: the worker starts over")


def work_until_stopped(queues) -> None:
    connection = queues[0].connection
    while True:
        try:
            SimpleWorker(queues, connection=connection).work(with_scheduler=True)
        except REDIS_GONE as error:
            log.warning("the worker lost Redis: %s", error)
        else:
            if redis_answers(connection):
                return  # stopped on request, or RQ gave up for a reason of its own
            log.warning("the worker stopped while Redis does not answer")
        wait_for_redis(connection)


def main(argv: list[str]) -> None:
    app = create_app()
    load_jobs()  # a job may hand work on to another
    use_app(app)
    with app.app_context():
        warn_if_slow_font_subsetting()
        work_until_stopped([get_queue(name) for name in (argv or QUEUE_NAMES)])


if __name__ == "__main__":
    main(sys.argv[1:])
