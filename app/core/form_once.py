"""One submission per form: a double click, a resent POST or a back-and-submit-again creates
nothing twice.

Every form that creates a record carries a hidden one-time key (`templates/macros/
form_once.html`, `one_time_key()`). A view decorated with `@once_per_form_key` first claims
the key: an INSERT into the tenant's `form_submissions` table in the request's own transaction.
Its primary key is the guard. A second request with the same key either finds the committed
row, or (a concurrent double click) waits on the first request's uncommitted row - PostgreSQL
makes `INSERT ... ON CONFLICT DO NOTHING` wait for that transaction's fate - and then finds it.
Either way it answers with the first submission's result (its redirect, e.g. to the created
record) and creates nothing.

A key is used up only by a submission that was done, i.e. answered with a redirect, and the
redirect's address is stored with it. A form answered with errors (4xx) is rolled back by the
end of the request, key row included; a form shown again without errors (200, e.g. "Add line")
gives its key back; either way the same key can still be submitted.

A request without a key (a page rendered before keys existed, or a client that is not a
browser) is handled as before; a malformed key is refused.

This module belongs to no business area and imports none."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from functools import wraps

from flask import Flask, abort, make_response, redirect, request
from flask.typing import ResponseReturnValue
from sqlalchemy import DateTime, String, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.pages import toast
from app.extensions import db
from tenants.base import TenantModel

FIELD = "form_key"
KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# How long a used key still recognises a repeat. A double click or a resent POST comes within
# seconds or minutes; a week also covers a form left open in a tab over a long weekend.
KEEP_FOR = timedelta(days=7)
# Old keys are removed by the submissions themselves, a few at a time, rather than by a
# periodic job: nothing to schedule or fan out per tenant, and a tenant that submits nothing
# keeps only its last week's keys. SKIP LOCKED means two submissions never wait for each other
# over which of them removes an old key.
REMOVE_AT_ONCE = 20
ALREADY_DONE = "This form was submitted already."


class FormSubmission(TenantModel):
    """A form key used up by a completed submission. Not a business record: not audited."""

    __tablename__ = "form_submissions"
    __audited__ = False

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    # Where the submission led (the created record); null until it completed.
    result_url: Mapped[str | None] = mapped_column(String(2000))


def new_form_key() -> str:
    return secrets.token_urlsafe(18)


def claim(session: Session, key: str) -> str | None:
    """Claim `key` for this transaction. Returns None when it is this submission's to use, or
    the first submission's result URL when the key was used already (after waiting for a
    concurrent submission with the same key to commit or roll back)."""
    inserted = session.execute(
        insert(FormSubmission)
        .values(key=key)
        .on_conflict_do_nothing()
        .returning(FormSubmission.key)
    ).scalar()
    if inserted is None:
        first = session.scalar(select(FormSubmission.result_url).where(FormSubmission.key == key))
        return first or ""  # "" when the key was removed as too old meanwhile: result unknown
    _remove_old_keys(session)
    return None


def complete(session: Session, key: str, result_url: str) -> None:
    session.execute(
        update(FormSubmission).where(FormSubmission.key == key).values(result_url=result_url)
    )


def give_back(session: Session, key: str) -> None:
    """The submission did not complete and its transaction will commit: free the key."""
    session.execute(delete(FormSubmission).where(FormSubmission.key == key))


def _remove_old_keys(session: Session) -> None:
    old = (
        select(FormSubmission.key)
        .where(FormSubmission.created_at < func.now() - KEEP_FOR)
        .order_by(FormSubmission.created_at)
        .limit(REMOVE_AT_ONCE)
        .with_for_update(skip_locked=True)
    )
    session.execute(delete(FormSubmission).where(FormSubmission.key.in_(old.scalar_subquery())))


def once_per_form_key(view):
    """Let a POST with a form key create once; a repeat is redirected where the first went."""

    @wraps(view)
    def guarded(*args, **kwargs) -> ResponseReturnValue:
        key = request.form.get(FIELD) if request.method == "POST" else None
        if not key:
            return view(*args, **kwargs)
        if not KEY.match(key):
            abort(400)
        first_result = claim(db.session, key)
        if first_result is not None:
            toast(ALREADY_DONE, "info")
            return redirect(first_result or request.root_url, 303)
        response = make_response(view(*args, **kwargs))
        if 300 <= response.status_code < 400:
            complete(db.session, key, response.location)
        elif response.status_code < 400:
            give_back(db.session, key)
        return response

    return guarded


def init_app(app: Flask) -> None:
    app.jinja_env.globals["new_form_key"] = new_form_key
