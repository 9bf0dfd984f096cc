"""Work that must wait for the fate of the database transaction it belongs to: hand a job to
the workers only once its rows are committed, remove a file whose row was rolled back.

`on_commit(session, action, item)` collects `item` for `action`; when the session's
transaction really commits, each action is called once with all of its items (one batch, so
one Redis round trip for many jobs). `on_rollback` is the same for a rollback of the whole
transaction. Either way the other list is forgotten. SQLAlchemy also reports a released or
rolled-back savepoint as a commit or a soft rollback; those are ignored, so what was collected
inside a savepoint follows the outer transaction."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

from tenants.binding import TenantSession

_ON_COMMIT = "duebook_on_commit"
_ON_ROLLBACK = "duebook_on_rollback"


def on_commit(session: Session, action: Callable[[list], None], item) -> None:
    session.info.setdefault(_ON_COMMIT, {}).setdefault(action, []).append(item)


def on_rollback(session: Session, action: Callable[[list], None], item) -> None:
    session.info.setdefault(_ON_ROLLBACK, {}).setdefault(action, []).append(item)


@event.listens_for(TenantSession, "after_commit")
def _run_commit_actions(session) -> None:
    if session.in_nested_transaction():
        return
    session.info.pop(_ON_ROLLBACK, None)
    for action, items in session.info.pop(_ON_COMMIT, {}).items():
        action(items)


@event.listens_for(TenantSession, "after_soft_rollback")
def _run_rollback_actions(session, previous_transaction) -> None:
    if session.in_transaction():
        return
    session.info.pop(_ON_COMMIT, None)
    for action, items in session.info.pop(_ON_ROLLBACK, {}).items():
        action(items)
