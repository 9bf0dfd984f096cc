"""Domain events: what happened in a workspace, written once, in the same transaction as the
change, and read by every consumer at its own pace (the public API's event list, outbound
webhooks, the timeline, notifications, sync triggers).

An event is a row of the workspace's `domain_events`: its type ("invoice.issued"), the version
of that type's payload schema, the record it is about (subject type and id), who did it, when,
and its facts as JSON, checked against the type's schema (app.core.event_types) before it is
written: a payload that does not match is a bug, and raises.

Consumers keep their own position (`event_consumers`), so one slow consumer never holds another
back. The position is (transaction id, event id), and a consumer reads only events whose
transaction is older than every transaction still running (PostgreSQL's snapshot xmin): ids
are handed out when rows are inserted, not when they commit, so a consumer reading by id alone
would skip an event whose transaction commits after a later one's. Read this way, a consumer
sees every committed event, in commit-safe order, at least once; it applies each once by
moving its position in the same transaction as what it does with the events (`consume`).
The price: a transaction left open anywhere on the server holds every consumer back until it
ends (it delays events, it never loses one); the product's transactions are short (a request,
a job's step, a sync run's page).

This module belongs to no business area and imports none."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from flask import has_app_context
from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    Index,
    Integer,
    String,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.event_types import check_payload, latest_version
from app.core.handover import HAND_OVER_FAILURES, Work, hand_over_gathered, redis_connection
from tenants.base import TenantModel, utcnow_column
from tenants.binding import ACTOR_KEY, SOURCE_KEY, bound_tenant_id, transaction_moment

# The oldest transaction still running, as a number comparable with `domain_events.txid`.
_VISIBLE_BELOW = text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
# The reading transaction's own id, if it has one: its own events are visible to it (a test's
# single outer transaction; in production a consumer has written none before it reads).
_OWN_TRANSACTION = text("pg_current_xact_id_if_assigned()::text::bigint")

log = logging.getLogger(__name__)


class DomainEvent(TenantModel):
    __tablename__ = "domain_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The writing transaction's id (pg_current_xact_id()), set by the database.
    txid: Mapped[int] = mapped_column(
        BigInteger, server_default=text("pg_current_xact_id()::text::bigint")
    )
    type: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    # What made the change when it was not a person at a page ("Xero sync", "API key “ERP”"),
    # as the audit log names it; None for a person, or a job acting for nobody.
    source: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = utcnow_column()
    data: Mapped[dict] = mapped_column(JSONB)

    __table_args__ = (
        Index("ix_domain_events_txid_id", "txid", "id"),
        Index("ix_domain_events_subject", "subject_type", "subject_id", "id"),
        Index("ix_domain_events_type_id", "type", "id"),
    )


class EventConsumer(TenantModel):
    """Where one consumer has read up to: the last (txid, id) it applied."""

    __tablename__ = "event_consumers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    txid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    event_id: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


def emit(
    session: Session,
    type_: str,
    subject_type: str,
    subject_id: int,
    data: dict,
    user_id: int | None = None,
) -> int:
    """Write an event in the session's transaction (it commits or rolls back with the change),
    at once: its id and transaction are those of the moment of the change. Returns its id.
    Without `user_id`, the person the session acts for (as the audit log records it)."""
    version = latest_version(type_)
    check_payload(type_, version, data)
    if _CONSUMERS:
        hand_over_gathered(session, bound_tenant_id(session), _delivery_jobs)
    return session.execute(
        insert(DomainEvent)
        .values(
            type=type_,
            version=version,
            subject_type=subject_type,
            subject_id=subject_id,
            user_id=_actor(session, user_id),
            source=_source(session),
            occurred_at=transaction_moment(session),
            data=data,
        )
        .returning(DomainEvent.id)
    ).scalar_one()


def emit_many(
    session: Session,
    type_: str,
    subject_type: str,
    facts: Sequence[tuple[int, dict]],
    user_id: int | None = None,
) -> int:
    """`emit` for many records of one type at once (a set-based write: an import's chunk, the
    daily run's notices), one row each in one statement: `facts` are (subject id, payload)
    pairs. Returns how many were written."""
    if not facts:
        return 0
    version = latest_version(type_)
    for _, data in facts:
        check_payload(type_, version, data)
    if _CONSUMERS:
        hand_over_gathered(session, bound_tenant_id(session), _delivery_jobs)
    actor, moment, source = _actor(session, user_id), transaction_moment(session), _source(session)
    rows = [
        {
            "type": type_,
            "version": version,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "user_id": actor,
            "source": source,
            "occurred_at": moment,
            "data": data,
        }
        for subject_id, data in facts
    ]
    # One INSERT executed for every row (psycopg pipelines them), in the rows' order: a
    # multi-row VALUES of thousands of rows was compiled and parsed anew for each chunk.
    session.execute(insert(DomainEvent), rows)
    return len(rows)


def _actor(session: Session, user_id: int | None) -> int | None:
    return user_id if user_id is not None else session.info.get(ACTOR_KEY)


def _source(session: Session) -> str | None:
    source = session.info.get(SOURCE_KEY)
    return source[:64] if source else None


def consume(
    session: Session,
    consumer: str,
    apply: Callable[[Session, Sequence[DomainEvent]], None],
    limit: int = 500,
) -> int:
    """Give `apply` the consumer's next events (up to `limit`), in order, and move the
    consumer's position past them in the same transaction, then commit. One worker at a time
    per consumer (the position's row is locked; a second worker finds it locked and returns 0).
    When `apply` raises, what it did is undone, the position stays, and the error goes on.
    Returns how many events were applied."""
    session.execute(
        insert(EventConsumer).values(name=consumer).on_conflict_do_nothing(index_elements=["name"])
    )
    position = session.scalar(
        select(EventConsumer)
        .where(EventConsumer.name == consumer)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if position is None:
        session.rollback()
        return 0
    events = session.scalars(
        select(DomainEvent)
        .where(
            func.row(DomainEvent.txid, DomainEvent.id) > func.row(position.txid, position.event_id),
            or_(DomainEvent.txid < _VISIBLE_BELOW, DomainEvent.txid == _OWN_TRANSACTION),
        )
        .order_by(DomainEvent.txid, DomainEvent.id)
        .limit(limit)
    ).all()
    if not events:
        session.commit()
        return 0
    try:
        with session.begin_nested():
            apply(session, events)
    except Exception:
        session.commit()  # nothing of the batch is kept, the position stays, its lock goes
        raise
    position.txid, position.event_id = events[-1].txid, events[-1].id
    session.commit()
    return len(events)


# The consumers, by name: what each does with a batch of events, in the batch's transaction.
# Areas register theirs when the app is created (their hooks' init_app).
_CONSUMERS: dict[str, Callable[[Session, Sequence[DomainEvent]], None]] = {}
# Batches one job gives each consumer before it leaves the rest to the next job.
BATCHES_PER_JOB = 20


def register_consumer(name: str, apply: Callable[[Session, Sequence[DomainEvent]], None]) -> None:
    _CONSUMERS[name] = apply


def consumer_names() -> list[str]:
    return sorted(_CONSUMERS)


def run_consumers(session: Session) -> int:
    """Every consumer of the bound workspace, a batch each in turn, up to BATCHES_PER_JOB
    batches each (the job that runs this is handed over again by the next event, or by the
    sweeper); how many applied. A consumer that fails is logged and left at its position for
    the next delivery, and the others go on: one broken consumer never holds another back."""
    applied = 0
    waiting = dict(sorted(_CONSUMERS.items()))
    for _ in range(BATCHES_PER_JOB):
        for name, apply in list(waiting.items()):
            try:
                taken = consume(session, name, apply)
            except Exception:
                log.exception(
                    "events consumer %r failed; it tries again at the next delivery", name
                )
                taken = 0
            applied += taken
            if not taken:
                del waiting[name]
        if not waiting:
            break
    return applied


def _queued_key(tenant_id: int) -> str:
    return f"events:queued:{tenant_id}"


def forget_queued(tenant_id: int) -> None:
    """Said by the delivery job as it starts: an event committed from now on queues another."""
    with contextlib.suppress(*HAND_OVER_FAILURES):  # else the key expires by itself
        redis_connection().delete(_queued_key(tenant_id))


def _delivery_jobs(tenant_ids: list[int]) -> list[Work]:
    """After a commit that wrote events: one delivery job per workspace, unless one is queued
    and not started yet (it will see these events too)."""
    works = []
    for tenant_id in sorted(set(tenant_ids)):
        if not has_app_context():
            # A commit outside the app (a script): hand_over_now logs the job and leaves the
            # events to the sweeper; there is no Redis to ask.
            works.append(Work("deliver_events", tenant_id=tenant_id))
            continue
        try:
            fresh = redis_connection().set(_queued_key(tenant_id), 1, nx=True, ex=300)
        except HAND_OVER_FAILURES:
            fresh = True  # queue it anyway; the hand-over logs if Redis is gone
        if fresh:
            works.append(Work("deliver_events", tenant_id=tenant_id))
    return works
