"""Jobs of the accounting sync: one run of a connection (on the `sync` queue, which only the
sync worker takes, so a long first sync never delays messages), and the sweeper that resumes
paused or orphaned runs and starts the scheduled ones."""

from __future__ import annotations

from app.sync.engine import perform
from app.sync.services import after_run, sweep, workspaces_syncing
from jobs.context import job
from jobs.queues import fan_out

# A first sync of a large set of books at the provider's rate limit: 60,000 records are 600
# pages at Xero's 60 calls a minute, ten minutes; a run paused by the day's quota ends and is
# resumed by the sweeper rather than held.
RUN_TIMEOUT = 6 * 3600


@job("sync", timeout=RUN_TIMEOUT)
def run_accounting_sync(session, run_id: int) -> str:
    """Carry out one sync run of the bound workspace; returns how it ended."""

    outcome = perform(session, run_id)
    after_run(session, run_id)
    return outcome


@job("sync")
def sweep_accounting_sync_all(session) -> int:
    """One sweep per workspace with books connected. Returns how many were queued."""

    return fan_out(session, "sweep_accounting_sync", workspaces_syncing(session))


@job("sync")
def sweep_accounting_sync(session) -> int:
    """Resume, re-hand or schedule the bound workspace's runs; returns how many were handed."""

    return sweep(session)
