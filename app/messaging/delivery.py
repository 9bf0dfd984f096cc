"""Delivering outbox messages: one job takes a batch of one tenant's message ids.

For each message, in this order: claim it (one UPDATE for the batch); refuse what may not be
sent (consent withdrawn, unsubscribed, a bounced address, a closed WhatsApp session window,
no connected channel); put back what may not be sent *now* (outside the tenant's sending
window in the recipient's time zone, over the tenant's or the provider's rate, over a daily
cap); wait for a rate slot; send through the channel's connector; record the outcome. Each
outcome reaches PostgreSQL before the next message is sent (see OutcomeWriter), so a killed
worker leaves at most the one message it was sending in doubt."""

from __future__ import annotations

import hashlib
import logging
import random
import time as clock
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from select import select as wait_for_sockets
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from flask import current_app
from psycopg import pq
from sqlalchemy import Engine, Row, bindparam, case, literal_column, select, update
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.orm import Session

from app.clients.models import Contact
from app.clients.services import may_contact
from app.core.clock import is_business_day, subdivision_for
from app.core.crypto import SecretsUnreadable, decrypt_secrets
from app.core.signals import announce_message_failed
from app.core.storage import check_key, get_storage
from app.integrations.connectors import Attachment, Connector, DeliveryError, Outgoing
from app.integrations.connectors.registry import connector_class, providers_for
from app.integrations.connectors.smtp import SmtpConnector
from app.integrations.models import IntegrationConnection
from app.messaging.bounces import mark_bounced
from app.messaging.email_branding import ClientEmailDress
from app.messaging.ratelimit import RateLimiter, next_utc_midnight
from app.messaging.unsubscribe import headers_for
from app.outbox.composing import compose_now
from app.outbox.models import OutboxMessage
from app.outbox.secret_links import fill_in, open_link
from app.settings.models import WorkspaceSettings
from app.settings.services import sender_name, workspace_settings
from tenants.binding import bound_tenant_id, schema_for_tenant_id
from tenants.models import Tenant

log = logging.getLogger(__name__)

_OUTBOX = OutboxMessage.__table__

WHATSAPP_SESSION = timedelta(hours=24)
# Waiting longer than this for a rate slot puts the message back instead of holding a worker.
MAX_RATE_WAIT = 2.0
# A message that failed this many times (with backoff_seconds between tries) is a dead letter.
MAX_ATTEMPTS = 8
DAILY_LIMIT_REACHED = "the provider's daily limit is used up; tomorrow"
# A batch starts no send once this share of its lease is gone (a slow mail server, a low
# rate): a message whose lease runs out may be handed to another worker by the sweeper, so it
# must not still be waiting in this batch. What is left goes back for the sweeper.
LEASE_SHARE_FOR_SENDING = 0.8
OUT_OF_LEASE = "its batch ran out of time; handed out again"
# The route of e-mails with a one-time link: the platform's mail server, never a workspace's.
# A workspace's own server is set up by its admins, who could read the link there and so
# accept an invitation for an address they do not control.
PLATFORM_EMAIL = "platform-email"
# The outcome UPDATE compiled with $1, $2 ... as libpq's prepared statements take them.
_NUMBERED_PARAMETERS = PGDialect_psycopg(paramstyle="numeric_dollar")


class OutcomeNotRecorded(Exception):
    """The database did not record a message's outcome."""


@dataclass
class ChannelRoute:
    connector: Connector
    connection_id: int | None  # None: the platform's own e-mail
    successes: int = 0
    failures: int = 0
    last_error: str | None = None


class Routes:
    """The connector for each channel of the bound tenant, built once per batch."""

    def __init__(self, session: Session, tenant_id: int | None, config):
        self.session, self.tenant_id, self.config = session, tenant_id, config
        self.routes: dict[str, ChannelRoute | None] = {}

    def get(self, name: str) -> ChannelRoute | None:
        """The route of a channel, or PLATFORM_EMAIL."""
        if name not in self.routes:
            self.routes[name] = self._build(name)
        return self.routes[name]

    def _build(self, channel: str) -> ChannelRoute | None:
        if channel == PLATFORM_EMAIL:
            return ChannelRoute(SmtpConnector.platform(self.config), None)
        if self.tenant_id is not None:
            providers = providers_for(channel)
            connection = self.session.scalar(
                select(IntegrationConnection)
                .where(
                    IntegrationConnection.provider.in_(providers), IntegrationConnection.in_use()
                )
                .order_by(IntegrationConnection.id)
                .limit(1)
            )
            if connection is not None:
                connector = connector_class(connection.provider)(
                    settings=connection.settings,
                    secrets=decrypt_secrets(connection.secrets_ciphertext),
                    config=self.config,
                )
                return ChannelRoute(connector, connection.id)
        if channel == "email":
            return ChannelRoute(SmtpConnector.platform(self.config), None)
        return None

    def record_health(self) -> None:
        """One UPDATE per connection for the batch: success and failure counts, last error."""

        now = datetime.now(UTC)
        for route in self.routes.values():
            if route is None or route.connection_id is None:
                continue
            if not (route.successes or route.failures):
                continue
            values = {
                "success_count": IntegrationConnection.success_count + route.successes,
                "failure_count": IntegrationConnection.failure_count + route.failures,
            }
            if route.successes:
                values["last_success_at"] = now
            if route.failures:
                values["last_error_at"], values["last_error"] = now, route.last_error
            self.session.execute(
                update(IntegrationConnection)
                .where(IntegrationConnection.id == route.connection_id)
                .values(**values)
            )
            route.successes = route.failures = 0
        self.session.commit()


@cache
def _outcome_statement(columns: tuple[str, ...]):
    """One UPDATE per set of columns an outcome writes, built once: building the statement
    for every message cost more than executing it. The status changes only from "sending".
    `attempts_back` gives back the attempt of a message put back unsent."""
    values = {name: bindparam(name) for name in columns if name != "attempts_back"}
    if "status" in columns:
        # Only a message still being sent takes the worker's outcome: a provider's report
        # applied meanwhile (delivered, read, failed) is later news than "sent" and stays.
        values["status"] = case(
            (_OUTBOX.c.status == literal_column("'sending'"), bindparam("status")),
            else_=_OUTBOX.c.status,
        )
    if "attempts_back" in columns:
        values["attempts"] = _OUTBOX.c.attempts - bindparam("attempts_back")
    return update(_OUTBOX).where(_OUTBOX.c.id == bindparam("message_id")).values(values)


@dataclass(frozen=True)
class PreparedOutcome:
    name: bytes
    sql: bytes
    parameters: tuple[str, ...]  # the names behind $1, $2, ...


@cache
def _prepared_outcome(columns: tuple[str, ...]) -> PreparedOutcome:
    compiled = _outcome_statement(columns).compile(dialect=_NUMBERED_PARAMETERS)
    sql = str(compiled)
    name = f"duebook_outcome_{hashlib.sha1(sql.encode()).hexdigest()[:12]}"
    return PreparedOutcome(name.encode(), sql.encode(), tuple(compiled.positiontup))


def _as_text(value) -> bytes | None:
    """A parameter in PostgreSQL's text format (the statement casts it to its column type)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat().encode()
    return str(value).encode()


class OutcomeWriter:
    """Writes each message's outcome, committed on its own.

    In a worker the session's bind is the engine, and outcomes go through one connection of
    the pool, in autocommit, checked out for the batch: each is one prepared UPDATE (planned
    once per connection, not once per message), sent without waiting for the answer, which
    is read just before the next outcome is sent, so the database does its part while the
    next message goes to the provider. Sent is as good as committed for the one failure that
    matters here, a killed worker: the statement is in the kernel's socket buffer, which
    outlives the process, and PostgreSQL runs and commits it before it notices the client
    has gone. So a killed worker still leaves only the message it was sending in doubt. A
    failed outcome (the database refused it or went away) surfaces at the next write and
    stops the batch; the sweeper then finds both messages by their leases.

    A session bound to a connection (a caller's transaction, as in the tests) writes them
    through that session and commits, which is all a savepoint allows."""

    def __init__(self, session: Session):
        self.session = session
        bind = session.get_bind()
        self.connection = self.pgconn = None
        self.waiting = False
        if isinstance(bind, Engine):
            self.connection = bind.connect().execution_options(isolation_level="AUTOCOMMIT")
            self.pgconn = self.connection.connection.driver_connection.pgconn
            # The outcome statements this connection has prepared, as the server knows them (a
            # query a batch): psycopg deallocates all of a connection's statements after a
            # rollback or DDL once it prepared any of its own (a page's, app.core.prepared),
            # so what an earlier batch prepared may be gone.
            self.prepared: set[bytes] = {
                name.encode()
                for (name,) in self.connection.exec_driver_sql(
                    "SELECT name FROM pg_prepared_statements"
                    " WHERE starts_with(name, 'duebook_outcome_')"
                )
            }

    def write(self, message_id: int, values: dict) -> None:
        if self.pgconn is None:
            self.write_with_session(message_id, values)
            return
        outcome = _prepared_outcome(tuple(values))
        self.wait_for_answer()
        if outcome.name not in self.prepared:
            self._check(self.pgconn.prepare(outcome.name, outcome.sql))
            self.prepared.add(outcome.name)
        given = {"message_id": message_id, **values}
        self.pgconn.send_query_prepared(
            outcome.name, [_as_text(given[name]) for name in outcome.parameters]
        )
        while self.pgconn.flush():
            wait_for_sockets([], [self.pgconn.socket], [])
        self.waiting = True

    def wait_for_answer(self) -> None:
        """The previous outcome's answer; raises if it was not recorded."""
        if not self.waiting:
            return
        self.waiting = False
        failure = None
        while (result := self.pgconn.get_result()) is not None:
            if result.status != pq.ExecStatus.COMMAND_OK:
                failure = failure or result
        if failure is not None:
            self._check(failure)

    def _check(self, result) -> None:
        if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            message = (result.error_message or self.pgconn.error_message).decode(errors="replace")
            raise OutcomeNotRecorded(message.strip())

    def write_with_session(self, message_id: int, values: dict) -> None:
        """The outcome in the session's transaction, with what the session holds (a
        notification, a bounce mark): one commit for both."""
        statement = _outcome_statement(tuple(values))
        self.session.connection().execute(statement, {"message_id": message_id, **values})
        self.session.commit()

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.wait_for_answer()
            finally:
                self.connection.close()


def deliver_batch(session: Session, message_ids: list[int], redis) -> Counter:
    """Deliver these messages of the bound tenant (or of no tenant). Returns outcome counts."""
    config = current_app.config
    tenant_id = bound_tenant_id(session)
    tenant = _tenant(session, tenant_id)
    workspace = workspace_settings(session, tenant_id) if tenant is not None else None
    dress = ClientEmailDress(tenant, workspace) if tenant is not None else None
    lease = timedelta(seconds=config["MESSAGE_LEASE_SECONDS"])
    claimed = claim_batch(session, message_ids, tenant_id, lease)
    session.commit()
    stop_sending_at = clock.monotonic() + lease.total_seconds() * LEASE_SHARE_FOR_SENDING
    outcomes = Counter(skipped=len(message_ids) - len(claimed))
    routes = Routes(session, tenant_id, config)
    limiter = RateLimiter(redis)
    contacts = _contacts_of(session, claimed)
    writer = OutcomeWriter(session)
    try:
        by_route: dict[str, list] = {}
        for message in claimed:
            held = _hold_back(writer, message, tenant, workspace, routes, contacts)
            if held:
                outcomes[held] += 1
            else:
                by_route.setdefault(_route_name(message), []).append(message)
        for route_name, messages in by_route.items():
            route, channel = routes.get(route_name), messages[0].channel
            slots = SendSlots(
                limiter,
                _buckets(tenant_id, channel, route.connector, config),
                route.connector.daily_cap(),
                len(messages),
            )
            for message in messages:
                if clock.monotonic() > stop_sending_at:
                    outcome = _put_back(writer, message, datetime.now(UTC), OUT_OF_LEASE)
                else:
                    message, outcome = _composed_now(writer, message, tenant)
                    if message is not None:
                        outcome = _send_one(writer, message, tenant, workspace, dress, route, slots)
                outcomes[outcome] += 1
    finally:
        writer.close()
        routes.record_health()
    return outcomes


def claim_batch(
    session: Session, message_ids: list[int], tenant_id: int | None, lease: timedelta
) -> list[Row]:
    """Take the due, unclaimed messages among these ids (of this tenant only) in one UPDATE.
    Plain rows, not ORM objects: nothing here changes them, and building fifty mapped objects
    a batch was a noticeable share of a worker's time."""
    now = datetime.now(UTC)
    tenant_match = (
        _OUTBOX.c.tenant_id.is_(None) if tenant_id is None else _OUTBOX.c.tenant_id == tenant_id
    )
    rows = session.execute(
        update(_OUTBOX)
        .where(
            _OUTBOX.c.id.in_(message_ids),
            tenant_match,
            _OUTBOX.c.next_attempt_at <= now,
            (_OUTBOX.c.status == "pending")
            | ((_OUTBOX.c.status == "sending") & (_OUTBOX.c.locked_until < now)),
        )
        .values(status="sending", attempts=_OUTBOX.c.attempts + 1, locked_until=now + lease)
        .returning(_OUTBOX)
    ).all()
    return sorted(rows, key=lambda row: row.id)


def _contacts_of(session: Session, messages: list[Row]) -> dict:
    """The batch's contacts in one query, as they are now (a consent given or withdrawn until
    this moment counts): plain rows of what the consent check reads, which cost a fraction of
    mapped objects and are not reloaded by the commits after each message."""
    ids = {m.contact_id for m in messages if m.contact_id is not None}
    if not ids:
        return {}

    found = session.execute(
        select(
            Contact.id,
            Contact.full_name,
            Contact.email,
            Contact.phone,
            Contact.deleted_at,
            Contact.email_consent,
            Contact.sms_consent,
            Contact.whatsapp_consent,
            Contact.email_bounced_at,
            Contact.email_bounce_reason,
            Contact.whatsapp_last_inbound_at,
        ).where(Contact.id.in_(ids))
    ).all()
    return {contact.id: contact for contact in found}


def _hold_back(
    writer: OutcomeWriter,
    message,
    tenant,
    workspace: WorkspaceSettings | None,
    routes: Routes,
    contacts: dict,
) -> str | None:
    """The outcome of a message that may not go now (no consent, outside the sending window,
    no connected channel), recorded; None for one that may go."""
    refusal = consent_refusal(message, contacts.get(message.contact_id))
    if refusal:
        return _finish(writer, message, status="suppressed", last_error=refusal)
    if message.windowed and tenant is not None:
        opens = window_opens_at(tenant, workspace, message.recipient_time_zone, datetime.now(UTC))
        if opens is not None:
            return _put_back(writer, message, opens, "waits for the sending window")
    if routes.get(_route_name(message)) is None:
        return _finish(
            writer,
            message,
            status="suppressed",
            last_error=f"No {message.channel} channel is connected.",
        )
    return None


def _composed_now(writer: OutcomeWriter, message, tenant) -> tuple[object | None, str | None]:
    """The message as it goes now: a message about money owed is written again by the area
    that wrote it (app.outbox.composing) with the figures of this moment (what is still owed,
    the due date, interest to today), so one that waited for the sending window, a retry or a
    resend never quotes what was owed when it was queued. The new text is stored before it is
    sent: the message's page shows what the client got. Returns (message, None), or (None,
    outcome) for a message withdrawn because nothing is owed any more."""
    if tenant is None:
        return message, None
    session = writer.session
    composed = compose_now(session, tenant, message)
    if composed is None:
        return message, None
    if composed.withdrawn:
        outcome = _finish(
            writer,
            message,
            with_session=True,
            status="suppressed",
            last_error=f"Not sent: {composed.withdrawn}.",
        )
        return None, outcome
    values = {
        "subject": composed.subject[:255],
        "body_text": composed.text,
        "body_html": composed.html,
        "payload": {**(message.payload or {}), **composed.payload},
    }
    session.execute(update(OutboxMessage).where(OutboxMessage.id == message.id).values(values))
    # One commit with what the composer recorded (a notice's interest claim as it goes out).
    session.commit()
    return SimpleNamespace(**{**message._asdict(), **values}), None


def _route_name(message) -> str:
    return PLATFORM_EMAIL if message.carries_secret else message.channel


def _send_one(
    writer: OutcomeWriter,
    message,
    tenant,
    workspace,
    dress: ClientEmailDress | None,
    route: ChannelRoute,
    slots: SendSlots,
) -> str:
    wait = slots.take()
    if isinstance(wait, tuple):
        return _put_back(writer, message, *wait)
    if wait > 0:
        clock.sleep(wait)
    try:
        sent = route.connector.send(_outgoing(message, tenant, workspace, dress))
    except DeliveryError as exc:
        route.failures += 1
        route.last_error = str(exc)[:2000]
        return _failed(writer, message, exc)
    route.successes += 1
    return _finish(
        writer,
        message,
        status="sent",
        sent_at=datetime.now(UTC),
        provider=route.connector.provider,
        provider_message_id=sent.provider_message_id,
        last_error=None,
    )


def _buckets(tenant_id: int | None, channel: str, connector: Connector, config) -> list:
    """The rate buckets a message of this channel counts against: the tenant's own, and the
    provider's for the account or number."""
    buckets = [(f"tenant:{tenant_id}:{channel}", config["TENANT_MESSAGES_PER_SECOND"])]
    provider_rate = connector.rate_limit()
    if provider_rate:
        buckets.append(provider_rate)
    return buckets


class SendSlots:
    """Send times for one channel's messages of a batch, booked in Redis a few at a time: one
    round trip for up to LOOKAHEAD seconds of sending (at the slowest bucket's rate, at most
    MAX_SLOTS_AHEAD slots) instead of one per message. Booking no further ahead than that keeps
    a worker that falls behind its slots from bunching more than a few sends together."""

    LOOKAHEAD = 0.05
    MAX_SLOTS_AHEAD = 20

    def __init__(self, limiter: RateLimiter, buckets: list, daily_cap, messages: int):
        self.limiter, self.buckets, self.daily_cap = limiter, buckets, daily_cap
        self.remaining = messages
        slowest = min(rate for _, rate in buckets)
        self.chunk = max(1, min(self.MAX_SLOTS_AHEAD, int(slowest * self.LOOKAHEAD)))
        self.booked: deque[float] = deque()  # monotonic times
        self.day_used_up = False

    def take(self) -> float | tuple[datetime, str]:
        """Seconds to wait before sending the next message, or when to try it again and why."""
        self.remaining -= 1
        if not self.booked:
            put_back = self._book(min(self.chunk, self.remaining + 1))
            if put_back:
                return put_back
        return max(0.0, self.booked.popleft() - clock.monotonic())

    def _book(self, count: int) -> tuple[datetime, str] | None:
        now = datetime.now(UTC)
        if self.day_used_up:
            return next_utc_midnight(now), DAILY_LIMIT_REACHED
        waits = self.limiter.reserve_slots(self.buckets, count, MAX_RATE_WAIT)
        if waits[0] < 0:
            return now + timedelta(seconds=-waits[0]), "over the sending rate; a moment later"
        booked_at = clock.monotonic()
        if self.daily_cap:
            allowed = self.limiter.take_daily_many(*self.daily_cap, len(waits))
            self.day_used_up = allowed < len(waits)
            waits = waits[:allowed]
            if not waits:
                return next_utc_midnight(now), DAILY_LIMIT_REACHED
        self.booked.extend(booked_at + wait for wait in waits)
        return None


def _finish(writer: OutcomeWriter, message, *, with_session: bool = False, **values) -> str:
    """Record the outcome, committed before the next message is sent. A one-time link is
    erased with any outcome but "try again"."""
    values.setdefault("locked_until", None)
    if message.carries_secret and values["status"] != "pending":
        values["sealed_secret"] = None
    if with_session:
        writer.write_with_session(message.id, values)
    else:
        writer.write(message.id, values)
    return values["status"]


def _put_back(writer: OutcomeWriter, message, until: datetime, reason: str) -> str:
    writer.write(
        message.id,
        {
            "status": "pending",
            "locked_until": None,
            "enqueued_at": None,
            "next_attempt_at": until,
            "attempts_back": 1,
            "last_error": reason,
        },
    )
    return "deferred"


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 30 s, 60 s, 120 s ... capped at 1 hour."""
    return random.uniform(1, min(3600, 30 * 2 ** max(attempt - 1, 0)))


def _failed(writer: OutcomeWriter, message, exc: DeliveryError) -> str:
    session = writer.session
    error = str(exc)[:2000]
    if exc.bounced:
        # The address itself was refused: no retry, and no more mail to it until it changes.
        if message.tenant_id is not None and message.contact_id is not None:
            mark_bounced(session, message.contact_id, message.recipient, error)
        _announce_failure(session, message, "bounced", error)
        return _finish(
            writer,
            message,
            with_session=True,
            status="bounced",
            last_error=error,
            failed_at=datetime.now(UTC),
        )
    if exc.permanent or message.attempts >= MAX_ATTEMPTS:
        # Written in one commit with the outcome: the dead letter and what its receivers
        # write (the sender's notification) go together.
        _announce_failure(session, message, "dead", error)
        outcome = _finish(
            writer,
            message,
            with_session=True,
            status="dead",
            last_error=error,
            failed_at=datetime.now(UTC),
        )
        log.warning("message %s dead-lettered: %s", message.id, error)
        return outcome
    delay = exc.retry_after if exc.retry_after is not None else backoff_seconds(message.attempts)
    return _finish(
        writer,
        message,
        status="pending",
        last_error=error,
        enqueued_at=None,
        next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay),
    )


def _announce_failure(session, message, status: str, reason: str) -> None:
    announce_message_failed(
        session,
        tenant_id=message.tenant_id,
        message_id=message.id,
        channel=message.channel,
        status=status,
        reason=reason,
        created_by=message.created_by,
    )


def consent_refusal(message: OutboxMessage, contact) -> str | None:
    """Why this message may not go to its contact now, or None. Checked at send time: an
    opt-out or a bounce recorded after the message was queued still stops it."""
    if message.contact_id is None:
        return None

    if contact is None or contact.deleted_at is not None:
        return "The contact was deleted."
    if not may_contact(contact, message.channel):
        return f"{contact.full_name} has not agreed to {message.channel} messages, or opted out."
    if message.channel == "email" and contact.email_bounced_at is not None:
        return f"{contact.email} bounced ({contact.email_bounce_reason or 'hard bounce'})."
    whatsapp = (message.payload or {}).get("whatsapp") or {}
    if message.channel == "whatsapp" and whatsapp.get("type", "template") != "template":
        last = contact.whatsapp_last_inbound_at
        if last is None or datetime.now(UTC) - last > WHATSAPP_SESSION:
            return "Free-form WhatsApp messages need a message from the contact in the last 24 h."
    return None


def window_opens_at(
    tenant, workspace: WorkspaceSettings, recipient_time_zone: str | None, now: datetime
) -> datetime | None:
    """None when `now` is inside the tenant's sending window (between its start and end time
    in the recipient's time zone, on a business day of the tenant's calendar unless the
    tenant sends every day: the workspace's settings); else when it next opens."""
    zone = ZoneInfo(recipient_time_zone or tenant.time_zone)
    local = now.astimezone(zone)
    start, end = workspace.send_window_start, workspace.send_window_end
    subdivision = subdivision_for(tenant.country, tenant.region)

    def open_day(day) -> bool:
        if not workspace.send_on_business_days_only:
            return True
        return is_business_day(day, tenant.country, subdivision)

    if open_day(local.date()) and start <= local.time().replace(tzinfo=None) < end:
        return None
    day = local.date()
    if not (open_day(day) and local.time().replace(tzinfo=None) < start):
        day += timedelta(days=1)
        while not open_day(day):
            day += timedelta(days=1)
    return datetime.combine(day, start if isinstance(start, time) else time(9), zone).astimezone(
        UTC
    )


def _tenant(session: Session, tenant_id: int | None):
    if tenant_id is None:
        return None

    return session.get(Tenant, tenant_id)


def _outgoing(
    message: OutboxMessage,
    tenant,
    workspace: WorkspaceSettings | None,
    dress: ClientEmailDress | None = None,
) -> Outgoing:
    payload = message.payload or {}
    text, html = message.body_text, message.body_html
    if message.carries_secret:
        link = _one_time_link(message)
        text, html = fill_in(text, link), fill_in(html, link, html=True)
    inline_images = []
    if message.channel == "email" and message.client_id is not None and dress is not None:
        text, html, inline_images = dress.dress(text, html)  # to a client: in its branding
    headers = dict(payload.get("headers") or {})
    if message.channel == "email" and message.contact_id is not None and tenant is not None:
        headers.update(headers_for(tenant.id, message.contact_id))  # RFC 8058 one-click
    chosen_name = workspace_name = None
    if message.channel == "email" and tenant is not None:
        # A workspace's e-mail comes from its own name and takes replies at its own address,
        # as its settings say when it goes out; the From address stays the sending server's
        # (app.integrations.connectors.smtp.from_header).
        chosen_name, workspace_name = workspace.sender_name, sender_name(tenant, workspace)
        if workspace.reply_to:
            headers["Reply-To"] = workspace.reply_to
    return Outgoing(
        message_id=message.id,
        idempotency_key=message.idempotency_key,
        tenant_id=message.tenant_id,
        channel=message.channel,
        recipient=message.recipient,
        subject=message.subject,
        text=text,
        html=html,
        payload=payload,
        attachments=_attachments(message.tenant_id, payload),
        inline_images=inline_images,
        headers=headers,
        sender_name=chosen_name,
        workspace_name=workspace_name,
    )


def _one_time_link(message) -> str:
    if message.sealed_secret is None:
        raise DeliveryError("its one-time link was erased; send a new one", permanent=True)
    try:
        return open_link(message.sealed_secret)
    except SecretsUnreadable as exc:
        raise DeliveryError(
            "no configured key opens its one-time link; send a new one", permanent=True
        ) from exc


def _attachments(tenant_id: int | None, payload: dict) -> list[Attachment]:
    """Files named by storage key in the payload, read from the tenant's own folder only."""
    items = payload.get("attachments") or []
    if not items:
        return []

    storage = get_storage(current_app)
    own_prefix = f"{schema_for_tenant_id(tenant_id)}/" if tenant_id is not None else None
    files = []
    for item in items:
        key = check_key(item["key"])
        if own_prefix is None or not key.startswith(own_prefix):
            raise DeliveryError(f"attachment {key!r} is not this tenant's", permanent=True)
        try:
            with storage.open(key) as stream:
                data = stream.read()
        except FileNotFoundError as exc:
            raise DeliveryError(f"attachment {item['filename']} is missing") from exc
        files.append(
            Attachment(item["filename"], item.get("content_type", "application/octet-stream"), data)
        )
    return files
