"""The daily reconciliation of each connected gateway: what the gateway's API says happened
(payments, failures, refunds, disputes) against what its webhooks recorded here.

- A report no webhook brought (a lost webhook) is applied through the spine's one
  exactly-once path (`services.apply_missed`: the event is stored under the gateway's own
  event id, the payment under its payment id), so a webhook arriving later, or the next run,
  changes nothing. It is listed as a recovered difference; one the books refused (parked)
  stays open with its reason and a button to apply it again once the cause is fixed.
- A payment recorded on both sides with another amount or currency is listed; so is a
  payment recorded here that the gateway does not list.
- A fee the webhook did not carry (Stripe's events name the balance transaction without its
  fee) is filled in from the gateway's balance transactions.
- Each difference is kept once per (provider, kind, reference): running again adds nothing,
  and what a person explained stays explained.
- The gateway's payouts (settlements) of the window are recorded and matched to the bank's
  statement credits (app.gateways.payouts).
- Events a webhook brought that named something unknown here wait on the page ("parked"):
  a person applies them again once the cause is fixed, or dismisses them with a note.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.core.crypto import SecretsUnreadable
from app.core.money import format_money
from app.gateways import payouts, services
from app.gateways.models import (
    GatewayEvent,
    GatewayEventDismissal,
    GatewayPayment,
    ReconciliationItem,
    ReconciliationRun,
)
from app.integrations.connectors import DeliveryError
from app.integrations.connectors.gateway import PaymentEvent, event_from_json, event_to_json
from app.integrations.connectors.wire import BadWebhookBody
from app.integrations.models import IntegrationConnection
from tenants.binding import bound_tenant_id
from tenants.models import Tenant

log = logging.getLogger(__name__)

# Our record of a payment is made when its webhook arrives, a little after the gateway's own
# time: payments recorded this close to the window's edges may be listed in the window next
# to it, so they are not called missing at the gateway.
EDGE = timedelta(hours=1)
NOTE_LIMIT = 2000


class ReconciliationError(ValueError):
    """A fix that cannot be made; the message says why, for the page."""


def window(session: Session, now: datetime, days: int) -> tuple[datetime, datetime]:
    """From the workspace's local midnight `days` days ago until a minute past now (the
    gateways' lists take whole seconds: what happened in this second is included)."""
    tenant = session.get(Tenant, bound_tenant_id(session))
    zone = ZoneInfo(tenant.time_zone)
    first_day = now.astimezone(zone).date() - timedelta(days=days)
    start = datetime.combine(first_day, time(0), zone).astimezone(UTC)
    return start, now + timedelta(minutes=1)


def reconcile(session: Session, now: datetime | None = None) -> list[ReconciliationRun]:
    """One run per gateway connection of the bound workspace, each committed by the caller."""
    now = now or datetime.now(UTC)
    start, end = window(session, now, current_app.config["GATEWAY_RECONCILIATION_DAYS"])
    return [
        _run(session, connection, start, end) for connection in services.usable_connections(session)
    ]


def _run(
    session: Session, connection: IntegrationConnection, start: datetime, end: datetime
) -> ReconciliationRun:
    run = ReconciliationRun(
        provider=connection.provider, window_start=start, window_end=end, status="done"
    )
    session.add(run)
    session.flush()
    try:
        connector = services.connector_for(connection)
        reported = connector.payments_on(start, end)
        paid_out = connector.payouts_on(start, end)
    except (DeliveryError, SecretsUnreadable) as failure:
        run.status = "failed"
        run.error = (
            "The gateway's keys could not be read; connect it again."
            if isinstance(failure, SecretsUnreadable)
            else str(failure)[:1000]
        )
        log.warning("%s reconciliation failed: %s", connection.provider, run.error)
        session.flush()
        return run
    listed = set()
    for event in reported:
        if event.kind == "other" or not event.payment_id:
            continue
        listed.add(event.payment_id)
        run.checked += 1
        _match(session, run, event)
    _missing_at_gateway(session, run, listed)
    payouts.record_payouts(session, connection.provider, paid_out)
    payouts.match_to_bank(session)
    session.flush()
    return run


def _payment(session: Session, event: PaymentEvent) -> GatewayPayment | None:
    return session.scalar(
        select(GatewayPayment)
        .where(
            GatewayPayment.provider == event.provider,
            GatewayPayment.provider_payment_id == event.payment_id,
        )
        .execution_options(populate_existing=True)
    )


def _match(session: Session, run: ReconciliationRun, event: PaymentEvent) -> None:
    row = _payment(session, event)
    if event.kind == "paid" and row is not None and row.status != "failed":
        _compare(session, run, event, row)
        return
    if event.kind == "failed" and row is not None:
        return  # the failure, or the capture that followed it, is recorded
    outcome = services.apply_missed(session, event)
    if outcome is None:
        return  # its webhook came: what it did is on the stored event
    status, reason = outcome
    what = f"{event.event_type} of {event.payment_id}"
    if status == "applied":
        run.applied += 1
        detail, state = f"No webhook brought {what}: applied by this run.", "applied"
    elif status == "ignored":
        return  # nothing was missing after all (another report of a recorded payment)
    else:
        detail, state = f"No webhook brought {what}, and it could not be applied: {reason}", "open"
    _difference(
        session,
        run,
        event,
        kind="missed_event",
        reference=event.event_id,
        detail=detail,
        state=state,
        reported=event_to_json(event),
    )


def _compare(
    session: Session, run: ReconciliationRun, event: PaymentEvent, row: GatewayPayment
) -> None:
    if row.fee is None and event.fee is not None:
        row.fee, row.fee_tax = event.fee, event.fee_tax
    same_currency = not event.currency or event.currency == row.currency
    if event.amount is not None and (event.amount != row.amount or not same_currency):
        said = format_money(event.amount, event.currency or row.currency)
        _difference(
            session,
            run,
            event,
            kind="amount",
            reference=event.payment_id,
            detail=f"The gateway says {said}; recorded here: "
            f"{format_money(row.amount, row.currency)}.",
            our_amount=row.amount,
        )


def _missing_at_gateway(session: Session, run: ReconciliationRun, listed: set[str]) -> None:
    recorded = session.scalars(
        select(GatewayPayment).where(
            GatewayPayment.provider == run.provider,
            GatewayPayment.status != "failed",
            GatewayPayment.created_at >= run.window_start + EDGE,
            GatewayPayment.created_at < run.window_end - EDGE,
        )
    )
    for row in recorded:
        if row.provider_payment_id in listed:
            continue
        _difference(
            session,
            run,
            None,
            kind="not_at_gateway",
            reference=row.provider_payment_id,
            provider_payment_id=row.provider_payment_id,
            detail=f"Recorded here ({format_money(row.amount, row.currency)}), but the gateway "
            "does not list it.",
            our_amount=row.amount,
            currency=row.currency,
        )


def _difference(
    session: Session,
    run: ReconciliationRun,
    event: PaymentEvent | None,
    *,
    kind: str,
    reference: str,
    detail: str,
    state: str = "open",
    reported: str | None = None,
    our_amount=None,
    provider_payment_id: str | None = None,
    currency: str | None = None,
) -> None:
    """Keep a difference once per (provider, kind, reference)."""
    added = session.execute(
        insert(ReconciliationItem)
        .values(
            run_id=run.id,
            provider=run.provider,
            kind=kind,
            reference=reference[:128],
            provider_payment_id=provider_payment_id or (event.payment_id if event else None),
            gateway_amount=event.amount if event else None,
            our_amount=our_amount,
            currency=currency or (event.currency if event else None),
            detail=detail,
            reported=reported,
            state=state,
        )
        .on_conflict_do_nothing(index_elements=["provider", "kind", "reference"])
        .returning(ReconciliationItem.id)
    ).scalar()
    if added is not None:
        run.differences += 1


# The page ---------------------------------------------------------------------------------------


def recent_runs(session: Session, limit: int = 20) -> list[ReconciliationRun]:
    return list(
        session.scalars(
            select(ReconciliationRun).order_by(ReconciliationRun.id.desc()).limit(limit)
        )
    )


def differences(
    session: Session, state: str = "open", limit: int = 200
) -> list[ReconciliationItem]:
    return list(
        session.scalars(
            select(ReconciliationItem)
            .where(ReconciliationItem.state == state)
            .order_by(ReconciliationItem.id.desc())
            .limit(limit)
        )
    )


def _open_item(session: Session, item_id: int) -> ReconciliationItem | None:
    return session.scalar(
        select(ReconciliationItem).where(ReconciliationItem.id == item_id).with_for_update()
    )


def get_difference(session: Session, item_id: int) -> ReconciliationItem | None:
    return session.get(ReconciliationItem, item_id)


def apply_difference(session: Session, item: ReconciliationItem, user_id: int) -> None:
    """The one-click fix of a missed event the run could not apply: apply it again through
    the exactly-once path. ReconciliationError, with the reason, when it still cannot."""
    item = _open_item(session, item.id)
    if item.state != "open":
        raise ReconciliationError("This difference is already settled.")
    if item.kind != "missed_event" or not item.reported:
        raise ReconciliationError("Only a missed payment can be applied; explain this one.")
    status, reason = services.apply_again(session, event_from_json(item.reported))
    if status != "applied":
        raise ReconciliationError(f"It still cannot be applied: {reason}")
    _settle(item, "applied", "Applied by hand.", user_id)


def explain_difference(session: Session, item: ReconciliationItem, note, user_id: int) -> None:
    """Mark a difference as explained, with why (required): nothing on the books changes."""
    text = str(note or "").strip()
    if not text:
        raise ReconciliationError("Say why this difference is right.")
    if len(text) > NOTE_LIMIT:
        raise ReconciliationError(f"Keep the note to {NOTE_LIMIT:,} characters.")
    item = _open_item(session, item.id)
    if item.state != "open":
        raise ReconciliationError("This difference is already settled.")
    _settle(item, "explained", text, user_id)


def _settle(item: ReconciliationItem, state: str, note: str, user_id: int) -> None:
    item.state, item.note = state, note
    item.settled_by, item.settled_at = user_id, datetime.now(UTC)


# Parked events -----------------------------------------------------------------------------------


def parked_events(
    session: Session, limit: int = 200
) -> list[tuple[GatewayEvent, PaymentEvent | None]]:
    """The workspace's parked webhook events, newest first, each with what it says (None
    when its stored body can no longer be read: the row and its reason are still shown)."""
    rows = session.scalars(
        select(GatewayEvent)
        .where(GatewayEvent.status == "parked")
        .order_by(GatewayEvent.id.desc())
        .limit(limit)
    )
    return [(row, _said(row)) for row in rows]


def _said(row: GatewayEvent) -> PaymentEvent | None:
    try:
        return read_parked(row)
    except BadWebhookBody:
        return None


def read_parked(row: GatewayEvent) -> PaymentEvent:
    """What a stored event says: a webhook's body (verified when it came) read again, or the
    facts a run read from the gateway's API (`apply_missed` stores them as JSON)."""
    try:
        stored = json.loads(row.body)
    except ValueError:
        stored = None
    if isinstance(stored, dict) and {"kind", "event_type", "provider"} <= stored.keys():
        return event_from_json(row.body)
    return services.GATEWAYS[row.provider].event_from_stored(row.body, row.event_id)


def get_parked(session: Session, event_id: int) -> GatewayEvent | None:
    return session.scalar(
        select(GatewayEvent)
        .where(GatewayEvent.id == event_id, GatewayEvent.status == "parked")
        .with_for_update()
    )


def apply_parked(session: Session, row: GatewayEvent) -> str:
    """Apply a parked event again through the exactly-once path (after the pay request or
    payment it names exists). ReconciliationError, with the reason, when it still cannot."""
    try:
        reported = read_parked(row)
    except BadWebhookBody as unreadable:
        raise ReconciliationError(f"Its stored body cannot be read: {unreadable}") from None
    status, reason = services.apply_again(session, reported)
    if status == "parked":
        raise ReconciliationError(f"It still cannot be applied: {reason}")
    return status


def dismiss_parked(session: Session, row: GatewayEvent, note, user_id: int) -> None:
    """A person says why a parked event needs nothing (required); the note is kept and
    audited, and the event leaves the list."""
    text = str(note or "").strip()
    if not text:
        raise ReconciliationError("Say why this event needs nothing.")
    if len(text) > NOTE_LIMIT:
        raise ReconciliationError(f"Keep the note to {NOTE_LIMIT:,} characters.")
    session.add(GatewayEventDismissal(gateway_event_id=row.id, note=text, dismissed_by=user_id))
    row.status, row.processed_at = "dismissed", datetime.now(UTC)
    session.flush()


def payouts_not_in_bank(session: Session):
    """Payouts the bank has not shown days after they were due, for the page."""
    tenant = session.get(Tenant, bound_tenant_id(session))
    today = datetime.now(ZoneInfo(tenant.time_zone)).date()
    return payouts.not_in_bank(session, today)
