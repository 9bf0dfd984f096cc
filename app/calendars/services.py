"""Members' Google and Outlook calendars: connecting through the provider's consent (code +
PKCE, the verifier kept in the member's session, never in the page), choosing the calendar,
and pushing: what the member's calendar should hold (app.calendars.entries) compared with what
was written there (`calendar_pushed_events`): missing entries created, changed ones updated,
gone ones deleted. Each entry is keyed by its UID at the provider too (Google: an event id
derived from it; Graph: an extended property and a transactionId), so a push retried after a
crash or a lost answer never writes a second event.

A push runs after a commit that changed a milestone, an invoice, a promise, a follow-up or a
visit of a workspace with a connected calendar (hooks.py), and every 15 minutes for each
workspace (dates that move by themselves, such as the window of days shown)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.calendars import entries as calendar_entries
from app.calendars.models import CalendarConnection, CalendarPushedEvent
from app.core import consent
from app.core.crypto import decrypt_secrets, encrypt_secrets
from app.integrations.connectors.calendar import (
    AccessExpired,
    CalendarConnector,
    CalendarError,
    CalendarEvent,
    CalendarGone,
    ConsentRevoked,
    RemoteCalendar,
    Tokens,
)
from app.integrations.connectors.google_calendar import GoogleCalendarConnector
from app.integrations.connectors.outlook_calendar import OutlookCalendarConnector
from tenants.models import Membership, Tenant

log = logging.getLogger(__name__)

CONNECTORS: dict[str, type[CalendarConnector]] = {
    GoogleCalendarConnector.provider: GoogleCalendarConnector,
    OutlookCalendarConnector.provider: OutlookCalendarConnector,
}


class CalendarRefused(ValueError):
    """What the member asked cannot be done; the message says why."""


def connector_for(provider: str) -> CalendarConnector:
    return CONNECTORS[provider](current_app.config)


def provider_title(provider: str) -> str:
    return CONNECTORS[provider].title


# Connecting ----------------------------------------------------------------------------------


def begin_consent(provider: str, tenant_slug: str, redirect_uri: str) -> tuple[str, dict]:
    """(the provider's consent URL, what to keep in the member's session until it returns)."""
    state, challenge, pending = consent.begin(provider, tenant_slug)
    return connector_for(provider).authorization_url(redirect_uri, state, challenge), pending


def finish_consent(
    session: Session,
    provider: str,
    pending: dict | None,
    callback: dict[str, str],
    redirect_uri: str,
    user_id: int,
) -> tuple[CalendarConnection, list[RemoteCalendar]]:
    """Check the callback belongs to the consent started here, exchange the code, keep the
    tokens encrypted on the member's connection (new, or the one that needed reconnecting), and
    return the calendars it may write (the member chooses one)."""
    title = provider_title(provider)
    try:
        consent.check_return(pending, provider, callback.get("state") or "", title)
    except consent.ConsentRefused as refusal:
        raise CalendarRefused(str(refusal)) from None
    if callback.get("error"):
        raise CalendarRefused(
            f"{title} did not give access: "
            f"{callback.get('error_description') or callback['error']}."
        )
    if not callback.get("code"):
        raise CalendarRefused(f"{title} sent no authorisation code. Start again.")
    connector = connector_for(provider)
    try:
        tokens = connector.exchange_code(callback["code"], redirect_uri, pending["verifier"])
        calendars = connector.calendars(tokens.access_token)
    except CalendarError as error:
        raise CalendarRefused(str(error)) from None
    connection = live_connection(session, user_id, provider)
    if connection is None:
        connection = CalendarConnection(user_id=user_id, provider=provider)
        session.add(connection)
    connection.status = "connected"
    connection.secrets_ciphertext = encrypt_secrets(tokens.secrets())
    connection.last_error = None
    session.flush()
    return connection, calendars


def live_connection(session: Session, user_id: int, provider: str) -> CalendarConnection | None:
    return session.scalar(
        select(CalendarConnection).where(
            CalendarConnection.user_id == user_id,
            CalendarConnection.provider == provider,
            CalendarConnection.status != "disconnected",
        )
    )


def connections_of(session: Session, user_id: int) -> dict[str, CalendarConnection]:
    rows = session.scalars(
        select(CalendarConnection).where(
            CalendarConnection.user_id == user_id, CalendarConnection.status != "disconnected"
        )
    )
    return {connection.provider: connection for connection in rows}


def writable_calendars(connection: CalendarConnection) -> list[RemoteCalendar]:
    connector = connector_for(connection.provider)
    try:
        return _with_access(connection, connector, connector.calendars)
    except ConsentRevoked as error:
        connection.status, connection.last_error = "needs_reconnect", str(error)
        raise CalendarRefused(str(error)) from None
    except CalendarError as error:
        raise CalendarRefused(str(error)) from None


def choose_calendar(session: Session, connection: CalendarConnection, calendar_id: str) -> None:
    """Write into `calendar_id` from now on (one the consent may write). Entries written into
    a previous calendar stay there; they are forgotten, and the new calendar gets them all."""
    chosen = next((c for c in writable_calendars(connection) if c.id == calendar_id), None)
    if chosen is None:
        raise CalendarRefused("Choose one of the calendars listed.")
    if connection.calendar_id != chosen.id:
        session.execute(
            delete(CalendarPushedEvent).where(CalendarPushedEvent.connection_id == connection.id)
        )
    connection.calendar_id, connection.calendar_name = chosen.id, chosen.name
    connection.last_error = None
    session.flush()


def disconnect(session: Session, connection: CalendarConnection) -> None:
    """Stop writing and forget the tokens. The events already written stay in the calendar
    (they are the member's now)."""
    connection.status = "disconnected"
    connection.secrets_ciphertext = None
    session.execute(
        delete(CalendarPushedEvent).where(CalendarPushedEvent.connection_id == connection.id)
    )
    session.flush()


# Pushing -------------------------------------------------------------------------------------


@dataclass
class PushResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    error: str | None = None


def connections_to_push(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(CalendarConnection.id)
            .where(
                CalendarConnection.status == "connected",
                CalendarConnection.calendar_id.is_not(None),
            )
            .order_by(CalendarConnection.id)
        )
    )


def push(session: Session, tenant: Tenant, connection_id: int) -> PushResult | None:
    """Bring one connected calendar in step with its member's entries. None when another
    worker is pushing it (its row is locked) or it is no longer connected."""
    connection = session.scalar(
        select(CalendarConnection)
        .where(
            CalendarConnection.id == connection_id,
            CalendarConnection.status == "connected",
            CalendarConnection.calendar_id.is_not(None),
        )
        .with_for_update(skip_locked=True)
    )
    if connection is None:
        return None
    result = PushResult()
    connector = connector_for(connection.provider)
    try:
        _push_entries(session, tenant, connection, connector, result)
    except ConsentRevoked as error:
        connection.status = "needs_reconnect"
        result.error = str(error)
    except CalendarGone as error:
        connection.calendar_id = None
        result.error = f"{error} Choose another calendar."
    except CalendarError as error:
        result.error = str(error)
    connection.last_error = result.error
    if result.error is None:
        connection.last_pushed_at = datetime.now(UTC)
    else:
        log.info("calendar push of connection %s stopped: %s", connection.id, result.error)
    session.flush()
    return result


def _push_entries(session, tenant, connection, connector, result: PushResult) -> None:
    role = session.scalar(
        select(Membership.role).where(
            Membership.tenant_id == tenant.id,
            Membership.user_id == connection.user_id,
            Membership.active.is_(True),
        )
    )
    # A member who left sees nothing of the workspace any more: their calendar loses it all.
    wanted = calendar_entries.entries_for(session, tenant, connection.user_id, role) if role else []
    pushed = {
        row.uid: row
        for row in session.scalars(
            select(CalendarPushedEvent).where(CalendarPushedEvent.connection_id == connection.id)
        )
    }
    base = f"{(current_app.config.get('BASE_URL') or '').rstrip('/')}/t/{tenant.slug}"
    for entry in wanted:
        row = pushed.get(entry.uid)
        if row is not None and row.fingerprint == entry.fingerprint:
            continue
        event = CalendarEvent(
            entry.uid, entry.day, entry.summary, entry.description, base + entry.path
        )
        remote_id = _with_access(
            connection,
            connector,
            lambda access, event=event, row=row: connector.upsert(
                access, connection.calendar_id, event, row.remote_id if row else None
            ),
        )
        _remember(session, connection.id, entry, remote_id)
        if row is None:
            result.created += 1
        else:
            result.updated += 1
    for uid in sorted(set(pushed) - {entry.uid for entry in wanted}):
        row = pushed[uid]
        _with_access(
            connection,
            connector,
            lambda access, row=row: connector.delete(access, connection.calendar_id, row.remote_id),
        )
        session.execute(delete(CalendarPushedEvent).where(CalendarPushedEvent.id == row.id))
        result.deleted += 1


def _remember(session, connection_id: int, entry, remote_id: str) -> None:
    table = CalendarPushedEvent.__table__
    statement = insert(table).values(
        connection_id=connection_id,
        uid=entry.uid,
        remote_id=remote_id,
        fingerprint=entry.fingerprint,
    )
    session.execute(
        statement.on_conflict_do_update(
            constraint="uq_calendar_pushed_uid",
            set_={
                "remote_id": statement.excluded.remote_id,
                "fingerprint": statement.excluded.fingerprint,
                "pushed_at": datetime.now(UTC),
            },
        )
    )


def _tokens(connection: CalendarConnection) -> Tokens:
    return Tokens.from_secrets(decrypt_secrets(connection.secrets_ciphertext))


def _refreshed(connection: CalendarConnection, connector: CalendarConnector) -> Tokens:
    tokens = connector.refresh(_tokens(connection))
    # Kept at once: Microsoft rotates refresh tokens, so the new one is the one that works.
    connection.secrets_ciphertext = encrypt_secrets(tokens.secrets())
    return tokens


def _with_access(connection: CalendarConnection, connector: CalendarConnector, call):
    """`call(access_token)` with a token that works: refreshed first when it is about to
    expire, and once more when the provider refuses it anyway."""
    if not connection.secrets_ciphertext:
        raise ConsentRevoked("The calendar is not connected any more; connect it again.")
    tokens = _tokens(connection)
    if tokens.expiring():
        tokens = _refreshed(connection, connector)
    try:
        return call(tokens.access_token)
    except AccessExpired:
        return call(_refreshed(connection, connector).access_token)
