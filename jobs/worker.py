"""`python -m jobs.worker [queue ...]`: an RQ worker for the given queues (default: all, in
order of urgency). It runs jobs in its own process instead of forking a work horse per job:
a fork plus a fresh database connection per small job caps a 2-core machine at ~9 jobs/s,
against ~180/s when the process and its connection pool are reused. Run one worker per core
(or more for I/O-bound queues); RQ's job timeouts and retries still apply."""

from __future__ import annotations

import sys

from rq import SimpleWorker

from jobs.context import _worker_app
from jobs.queues import QUEUE_NAMES, get_queue


def main(argv: list[str]) -> None:
    app = _worker_app()
    with app.app_context():
        from app.invoicing.pdf import warn_if_slow_font_subsetting

        warn_if_slow_font_subsetting()
        queues = [get_queue(name) for name in (argv or QUEUE_NAMES)]
        worker = SimpleWorker(queues, connection=queues[0].connection)
        worker.work(with_scheduler=True)


if __name__ == "__main__":
    main(sys.argv[1:])
