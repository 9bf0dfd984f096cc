"""Holds: no chasing of a client, or of one of its invoices, for a while (a reason is
required): from its start (today by default) to its end date, or until released when it has
none. Active = not released and starts_on <= today <= ends_on (or no end). Releasing early keeps
the record."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.collections.cases.services import CaseError, CaseInvalid, read_date, read_text
from app.collections.models import CollectionHold
from app.core.terminology import worded
from app.invoicing.models import Invoice


def active_condition(today: date):
    """The SQL condition of a hold in force on `today` (for the daily run's queries too)."""
    return (
        CollectionHold.released_at.is_(None),
        CollectionHold.starts_on <= today,
        or_(CollectionHold.ends_on.is_(None), CollectionHold.ends_on >= today),
    )


def is_active(hold: CollectionHold, today: date) -> bool:
    return (
        hold.released_at is None
        and hold.starts_on <= today
        and (hold.ends_on is None or hold.ends_on >= today)
    )


def place_hold(
    session: Session, client: Client, values, today: date, user_id: int | None = None
) -> CollectionHold:
    """A hold from form values: reason (required), invoice_id (one of the client's invoices;
    empty = the whole client), starts_on (today when empty; not in the past), ends_on
    (optional, not before the start)."""
    errors: dict[str, str] = {}
    reason = read_text(
        values.get("reason"), "reason", errors, required="Say why collection is on hold."
    )
    starts_on = read_date(values.get("starts_on"), "starts_on", errors, "start date") or today
    ends_on = read_date(values.get("ends_on"), "ends_on", errors, "end date")
    if "starts_on" not in errors and starts_on < today:
        errors["starts_on"] = "A hold cannot start in the past."
    if ends_on is not None and "ends_on" not in errors and ends_on < starts_on:
        errors["ends_on"] = "The end date cannot be before the start."
    invoice_id = None
    raw = str(values.get("invoice_id") or "").strip()
    if raw:
        invoice = session.get(Invoice, int(raw)) if raw.isdigit() else None
        if invoice is None or invoice.client_id != client.id or invoice.status == "draft":
            errors["invoice_id"] = worded(
                "Choose one of this {client}'s invoices, or none for all."
            )
        else:
            invoice_id = invoice.id
    if errors:
        raise CaseInvalid(errors)
    hold = CollectionHold(
        client_id=client.id,
        invoice_id=invoice_id,
        reason=reason,
        starts_on=starts_on,
        ends_on=ends_on,
        created_by=user_id,
    )
    session.add(hold)
    session.flush()
    return hold


def release_hold(
    session: Session, hold: CollectionHold, user_id: int | None = None, today: date | None = None
) -> CollectionHold:
    if hold.released_at is not None:
        raise CaseError("This hold was released already.")
    if today is not None and hold.ends_on is not None and hold.ends_on < today:
        raise CaseError("This hold has ended already.")
    hold.released_at = datetime.now(UTC)
    hold.released_by = user_id
    session.flush()
    return hold


def get_hold(session: Session, hold_id: int) -> CollectionHold | None:
    return session.get(CollectionHold, hold_id)


def client_holds(session: Session, client_id: int) -> list[CollectionHold]:
    """The client's holds (its own and its invoices'), newest first."""
    return list(
        session.scalars(
            select(CollectionHold)
            .where(CollectionHold.client_id == client_id)
            .order_by(CollectionHold.starts_on.desc(), CollectionHold.id.desc())
        )
    )


def active_holds(session: Session, client_id: int, today: date) -> list[CollectionHold]:
    return list(
        session.scalars(
            select(CollectionHold)
            .where(CollectionHold.client_id == client_id, *active_condition(today))
            .order_by(CollectionHold.id)
        )
    )
