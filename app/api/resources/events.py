"""/events: the workspace's domain events (app.core.events), each with the version of its
payload's schema; /event-types: the types and their schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, or_, select, text

from app.api.problems import invalid
from app.api.rest import Answer, ListQuery, decode_cursor, encode_cursor, operation
from app.core.event_types import EVENT_TYPES, event_type_names
from app.core.events import DomainEvent
from app.extensions import db

# As app.core.events' consumers read: only events whose transaction is older than every one
# still running (ids are handed out at insert, not at commit, so paging by id alone would step
# over an event committed late), and the reader's own.
_VISIBLE_BELOW = text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
_OWN_TRANSACTION = text("pg_current_xact_id_if_assigned()::text::bigint")


class EventOut(BaseModel):
    id: int
    type: str = Field(description="e.g. client.created: see /api/v1/event-types.")
    version: int = Field(description="The version of the type's payload schema.")
    subject_type: str
    subject_id: int
    occurred_at: datetime
    source: str | None = Field(
        description="What made the change when it was not a person at a page (e.g. "
        '"Xero sync", an API key by its name); null for a person.'
    )
    data: dict


class EventQuery(ListQuery):
    type: Literal[tuple(event_type_names())] | None = None
    since: datetime | None = Field(None, description="Events that happened at or after this.")


@operation(
    "GET",
    "/events",
    summary="List events",
    tag="events",
    scope="events:read",
    query=EventQuery,
    response=EventOut,
    listed=True,
)
def list_events(query: EventQuery):
    """In the order they committed, from the first (or `since`); poll with the last page's
    `next_cursor` to read what came after, never missing one."""
    statement = select(DomainEvent).where(
        or_(DomainEvent.txid < _VISIBLE_BELOW, DomainEvent.txid == _OWN_TRANSACTION)
    )
    if query.type:
        statement = statement.where(DomainEvent.type == query.type)
    if query.since:
        statement = statement.where(DomainEvent.occurred_at >= query.since)
    if query.cursor:
        txid, last_id = decode_cursor(query.cursor, 2)
        if not isinstance(txid, int) or not isinstance(last_id, int):
            raise invalid(400, {"cursor": "Use the next_cursor of a previous page, unchanged."})
        statement = statement.where(
            func.row(DomainEvent.txid, DomainEvent.id) > func.row(txid, last_id)
        )
    rows = db.session.scalars(
        statement.order_by(DomainEvent.txid, DomainEvent.id).limit(query.limit + 1)
    ).all()
    page = rows[: query.limit]
    last = page[-1] if page else None
    next_cursor = encode_cursor([last.txid, last.id]) if len(rows) > query.limit else None
    return Answer(
        [EventOut.model_validate(event, from_attributes=True) for event in page],
        next_cursor=next_cursor,
    )


class EventTypeOut(BaseModel):
    type: str
    version: int
    payload_schema: dict = Field(description="The JSON Schema (2020-12) of `data`.")


class EventTypeList(BaseModel):
    types: list[EventTypeOut]


@operation(
    "GET",
    "/event-types",
    summary="Event types and their payload schemas",
    tag="events",
    scope="events:read",
    response=EventTypeList,
)
def list_event_types():
    return Answer(
        EventTypeList(
            types=[
                EventTypeOut(type=name, version=version, payload_schema=schema)
                for (name, version), schema in sorted(EVENT_TYPES.items())
            ]
        )
    )
