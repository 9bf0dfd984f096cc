"""The one wrapper every job runs in: an app context, an optional tenant, a clean session."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import cache, wraps

from flask import current_app, has_app_context
from rq import get_current_job

from app.extensions import db
from tenants.binding import bind_tenant

log = logging.getLogger("jobs")


@cache
def _worker_app():
    from app import create_app

    return create_app()


@contextmanager
def job_context(tenant_id: int | None = None):
    # Inside tests (and `flask` commands) the job runs in the caller's application.
    app = current_app._get_current_object() if has_app_context() else _worker_app()
    with app.app_context():
        if tenant_id is not None:
            bind_tenant(db.session, tenant_id)
        try:
            yield db.session
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        finally:
            db.session.remove()


def job(func):
    """Jobs take ids and an explicit tenant_id keyword, never ORM objects or request state."""

    @wraps(func)
    def run(*args, tenant_id: int | None = None, **kwargs):
        current = get_current_job()
        log.info("job %s %s tenant=%s", current.id if current else "-", func.__name__, tenant_id)
        with job_context(tenant_id) as session:
            return func(session, *args, **kwargs)

    return run
