"""The one wrapper every job runs in (an app context, an optional tenant, a clean session), and
the decorator that declares a job: its name, queue, timeout and retry."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import wraps

from flask import Flask, current_app, has_app_context
from rq import get_current_job

from app.core.handover import JobSpec, register_job
from app.extensions import db
from tenants.binding import tenant_context

log = logging.getLogger("jobs")

# The app jobs run in when they find no app context: the worker's and the scheduler's entry
# points make it (jobs/ never imports the app factory, which imports every job).
_worker_app: Flask | None = None


def use_app(app: Flask) -> None:
    global _worker_app
    _worker_app = app


def _job_app() -> Flask:
    # Inside tests (and `flask` commands) the job runs in the caller's application.
    if has_app_context():
        return current_app._get_current_object()
    if _worker_app is None:
        raise RuntimeError("no app to run the job in: the worker's entry point calls use_app()")
    return _worker_app


@contextmanager
def job_context(tenant_id: int | None = None):
    with _job_app().app_context(), tenant_context(db.session, tenant_id) as session:
        yield session


def job(queue: str, *, timeout: int | None = None, retry: int = 0, result_ttl: int | None = None):
    """`@job("messages", timeout=600)`: the function becomes the job named after it, queued on
    `queue` by `app.core.handover` (RQ's timeout; `retry` more attempts after a failure; how long
    its result is kept). Jobs take ids and an explicit tenant_id keyword, never ORM objects or
    request state."""

    def declare(func):
        @wraps(func)
        def run(*args, tenant_id: int | None = None, **kwargs):
            current_id = current.id if (current := get_current_job()) else "-"
            log.info("job %s %s tenant=%s", current_id, func.__name__, tenant_id)
            with job_context(tenant_id) as session:
                return func(session, *args, **kwargs)

        path = f"{func.__module__}.{func.__name__}"
        register_job(JobSpec(func.__name__, path, queue, timeout, retry, result_ttl))
        return run

    return declare
