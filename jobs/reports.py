"""Scheduled reports (app.reports): the sweep every 5 minutes that starts what fell due in each
workspace, and the job that builds one run's file and queues its e-mails."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from app.reports.services import record_failure, run_report, sweep
from jobs.context import job
from jobs.queues import fan_out
from tenants.binding import bound_tenant_id
from tenants.models import Tenant

log = logging.getLogger(__name__)


@job("default", timeout=600)
def send_report(session, run_id: int) -> str | None:
    tenant = session.get(Tenant, bound_tenant_id(session))
    try:
        run = run_report(session, tenant, run_id)
    except Exception:
        # A report that cannot be built (a bug, bad saved data) is said on the schedule's
        # page rather than retried for ever; the log has the details.
        log.exception("report run %s could not be built", run_id)
        session.rollback()
        record_failure(session, run_id, "The report could not be built; we have been told.")
        return "failed"
    return run.status if run is not None else None


@job("default")
def sweep_report_schedules(session) -> int:
    tenant = session.get(Tenant, bound_tenant_id(session))
    return sweep(session, tenant, datetime.now(UTC))


@job("default")
def sweep_report_schedules_all(session) -> int:
    """One sweep job per active workspace."""
    return fan_out(session, "sweep_report_schedules")
