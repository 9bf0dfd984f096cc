"""Jobs of bank statements: pulling them from the bank's SFTP folder, every 30 minutes for each
workspace and on a person's "Pull now" / "Check the connection"."""

from __future__ import annotations

from app.banking.sftp import pull, scheduled_source_ids
from jobs.context import job
from jobs.queues import fan_out

# A pull waits for a slow bank server at most 20 s per step; a few files of a few MB each.
PULL_TIMEOUT = 600


@job("sync", timeout=PULL_TIMEOUT)
def pull_bank_statements(session, source_id: int, check_only: bool = False) -> str:
    """Pull (or only check) one SFTP source of the bound workspace; returns what happened."""

    outcome = pull(session, source_id, check_only=check_only)
    if outcome is None:
        return "skipped: gone, or another pull of it is running"
    return outcome.error or "ok"


@job("sync")
def pull_bank_statements_all(session) -> int:
    """One job per active workspace (each finds its own sources; most have none). Returns how
    many were queued."""

    return fan_out(session, "pull_workspace_bank_statements")


@job("sync", timeout=PULL_TIMEOUT)
def pull_workspace_bank_statements(session) -> int:
    """Pull every SFTP source of the bound workspace whose host key is confirmed, each
    committed on its own so one bank's failure keeps what the others imported. Returns how
    many were tried."""

    ids = scheduled_source_ids(session)
    for source_id in ids:
        pull(session, source_id)
        session.commit()
    return len(ids)
