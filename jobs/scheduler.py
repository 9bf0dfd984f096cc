"""`python -m jobs.scheduler`: RQ's cron scheduler with Duebook's periodic jobs, declared once
here. Periodic jobs that concern every tenant fan out one job per tenant."""

from __future__ import annotations

from rq.cron import CronScheduler

from jobs.context import _worker_app
from jobs.queues import redis_connection
from jobs.tasks import sweep_outbox

SCHEDULE = [
    # (job, queue, seconds between runs)
    (sweep_outbox, "messages", 30),
]


def main() -> None:
    app = _worker_app()
    with app.app_context():
        scheduler = CronScheduler(connection=redis_connection())
        for func, queue_name, interval in SCHEDULE:
            scheduler.register(func, queue_name, interval=interval)
        scheduler.start()


if __name__ == "__main__":
    main()
