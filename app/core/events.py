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

from collections.abc import Callable, Sequence
from datetime import datetime

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
from tenants.base import TenantModel, utcnow_column

# The oldest transaction still running, as a number comparable with `domain_events.txid`.
_VISIBLE_BELOW = text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
# The reading transaction's own id, if it has one: its own events are visible to it (a test's
# single outer transaction; in production a consumer has written none before it reads).
_OWN_TRANSACTION = text("pg_current_xact_id_if_assigned()::text::bigint")


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
    at once: its id and transaction are those of the moment of the change. Returns its id."""
    version = latest_version(type_)
    check_payload(type_, version, data)
    return session.execute(
        insert(DomainEvent)
        .values(
            type=type_,
            version=version,
            subject_type=subject_type,
            subject_id=subject_id,
            user_id=user_id,
            data=data,
        )
        .returning(DomainEvent.id)
    ).scalar_one()


def consume(
    session: Session,
    consumer: str,
    apply: Callable[[Session, Sequence[DomainEvent]], None],
    limit: int = 500,
) -> int:
    """Give `apply` the consumer's next events (up to `limit`), in order, and move the
    consumer's position past them in the same transaction, then commit. One worker at a time
    per consumer (the position's row is locked; a second worker finds it locked and returns 0).
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
    apply(session, events)
    position.txid, position.event_id = events[-1].txid, events[-1].id
    session.commit()
    return len(events)
