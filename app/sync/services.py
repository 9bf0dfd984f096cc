"""What the sync pages and jobs ask of the engine: connecting through the provider's consent
screen, the first connection's review, runs (now, hourly, on webhooks, full refresh), conflicts
resolved by a person, the connection's settings, and its health on the integrations page.

Connecting: the admin is sent to the provider's consent screen with a one-time state and a
PKCE verifier kept in their session (never in the page); the provider's callback comes back to
one fixed address (`/sync/oauth/<provider>/callback`, what a real app registers) which hands
over to the workspace's page that exchanges the code, asks which books to sync when the consent
reaches several, and saves the tokens encrypted. A set of books is synced by one workspace
only (its id routes the provider's webhooks, like every provider account)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.core import consent
from app.core.crypto import encrypt_secrets
from app.core.handover import hand_over
from app.core.storage import delete_after_commit, get_storage
from app.integrations.catalogue import entry_for
from app.integrations.connectors.accounting import AccountingError, Book
from app.integrations.models import IntegrationConnection, ProviderAccount
from app.sync import mapping
from app.sync.books import build_connector, connector_class, secrets_of
from app.sync.engine import announce_finished, behind, source_label, stale_after
from app.sync.models import (
    ACTIVE_RUN_STATUSES,
    SyncConflict,
    SyncLink,
    SyncMatch,
    SyncProblem,
    SyncRun,
)
from app.sync.ownership import clean_contact_owners
from tenants.binding import bound_tenant_id
from tenants.models import Tenant

log = logging.getLogger(__name__)

ACCOUNTING_PROVIDERS = ("xero", "quickbooks", "zoho_books", "tally")
DEFAULT_INTERVAL_MINUTES = 60
INTERVAL_CHOICES = (15, 30, 60, 180, 360, 1440)


class SyncError(ValueError):
    """An action the sync rules refuse; the message says why."""


# Connecting ----------------------------------------------------------------------------------


def begin_consent(provider: str, tenant_slug: str, redirect_uri: str) -> tuple[str, dict]:
    """(the provider's consent URL, what to keep in the person's session until it returns)."""
    if connector_class(provider) is None:
        raise SyncError("This accounting system cannot be connected on this server.")
    state, challenge, pending = consent.begin(provider, tenant_slug)
    connector = build_connector(provider, {}, {})
    return connector.authorization_url(redirect_uri, state, challenge), pending


def check_consent_return(pending: dict | None, provider: str, state: str) -> dict:
    """The kept consent when the provider's callback belongs to it, else SyncError."""
    try:
        return consent.check_return(pending, provider, state, source_label(provider))
    except consent.ConsentRefused as refusal:
        raise SyncError(str(refusal)) from None


def finish_consent(
    session: Session,
    provider: str,
    pending: dict,
    callback: dict[str, str],
    redirect_uri: str,
    user_id: int,
) -> tuple[IntegrationConnection, list[Book]]:
    """Exchange the code, save the tokens on the live connection (new, or reconnected), and
    return the books the consent reaches (the caller asks which, when several)."""
    if callback.get("error"):
        raise SyncError(
            f"{source_label(provider)} did not give access: "
            f"{callback.get('error_description') or callback['error']}."
        )
    code = callback.get("code") or ""
    if not code:
        raise SyncError(f"{source_label(provider)} sent no authorisation code. Start again.")
    connector = build_connector(provider, {}, {})
    try:
        tokens = connector.exchange_code(code, redirect_uri, pending["verifier"], callback)
        connector.tokens = tokens
        books = connector.organisations(tokens.access_token, tokens)
    except AccountingError as error:
        raise SyncError(f"{source_label(provider)} refused the connection: {error}") from None
    if not books:
        raise SyncError(f"This {source_label(provider)} login reaches no organisation to sync.")
    connection = session.scalar(
        select(IntegrationConnection).where(
            IntegrationConnection.provider == provider,
            IntegrationConnection.status != "disconnected",
        )
    )
    settings = dict(connection.settings) if connection else {}
    settings.pop("needs_reconnect", None)
    settings["books_offered"] = offered_books(books)
    if connection is None:
        connection = IntegrationConnection(
            provider=provider,
            status="enabled",
            verification="verified",
            connected_by=user_id,
        )
        session.add(connection)
    connection.settings = settings
    connection.secrets_ciphertext = encrypt_secrets(secrets_of(tokens))
    connection.last_error = None
    session.flush()
    return connection, books


def offered_books(books: list[Book]) -> list[dict]:
    """The books a consent (or Tally's agent) offers, as kept until the admin picks one."""
    return [
        {
            "id": book.remote_id,
            "name": book.name,
            "country": book.country,
            "region": book.region,
            "books_from": book.books_from.isoformat() if book.books_from else None,
        }
        for book in books
    ]


def choose_book(
    session: Session,
    connection: IntegrationConnection,
    book_id: str,
    user_id: int,
    start: bool = True,
) -> SyncRun | None:
    """Sync these books: bound to this workspace, then the first run (the review) starts
    (`start` False: when there is something to read; Tally's files, once uploaded).
    Reconnecting to the same books keeps every link; to other books starts afresh."""
    offered = {book["id"]: book for book in (connection.settings or {}).get("books_offered", [])}
    if book_id not in offered:
        raise SyncError("Choose one of the organisations offered.")
    settings = dict(connection.settings)
    if settings.get("book_id") and settings["book_id"] != book_id:
        _forget_links(session, connection)
        for key in ("matched_at", "push_from"):
            settings.pop(key, None)
    settings.update(
        book_id=book_id,
        book_name=offered[book_id]["name"],
        book_country=offered[book_id].get("country"),
        book_region=offered[book_id].get("region"),
        book_from=offered[book_id].get("books_from"),
    )
    settings.pop("books_offered", None)
    settings.setdefault("interval_minutes", DEFAULT_INTERVAL_MINUTES)
    connection.settings = settings
    _bind_book(session, connection, book_id)
    session.flush()
    if not start:
        return None
    trigger = "manual" if settings.get("matched_at") else "review"
    return start_run(session, connection, trigger, user_id)


def _bind_book(session: Session, connection: IntegrationConnection, book_id: str) -> None:
    tenant_id = bound_tenant_id(session)
    session.execute(
        delete(ProviderAccount).where(
            ProviderAccount.provider == connection.provider,
            ProviderAccount.tenant_id == tenant_id,
            ProviderAccount.connection_id == connection.id,
        )
    )
    inserted = session.execute(
        insert(ProviderAccount)
        .values(
            provider=connection.provider,
            account_key=book_id,
            tenant_id=tenant_id,
            connection_id=connection.id,
        )
        .on_conflict_do_nothing(index_elements=["provider", "account_key"])
        .returning(ProviderAccount.id)
    ).scalar()
    if inserted is None:
        raise SyncError(
            f"This {source_label(connection.provider)} organisation is already synced with "
            "another Duebook workspace. Disconnect it there first."
        )


def _forget_links(session: Session, connection: IntegrationConnection) -> None:
    for model in (SyncLink, SyncMatch, SyncConflict):
        session.execute(delete(model).where(model.connection_id == connection.id))


def accounting_connection(session: Session, connection_id: int) -> IntegrationConnection | None:
    connection = session.get(IntegrationConnection, connection_id)
    if (
        connection is None
        or connection.status == "disconnected"
        or connection.provider not in ACCOUNTING_PROVIDERS
    ):
        return None
    return connection


def accounting_connections(session: Session) -> list[IntegrationConnection]:
    return list(
        session.scalars(
            select(IntegrationConnection)
            .where(
                IntegrationConnection.provider.in_(ACCOUNTING_PROVIDERS),
                IntegrationConnection.status != "disconnected",
            )
            .order_by(IntegrationConnection.id)
        )
    )


def disconnect(session: Session, connection: IntegrationConnection) -> None:
    """Stop syncing: active runs end, the tokens and the webhook routing go; the links stay
    with the disconnected connection as history."""
    for run in session.scalars(
        select(SyncRun).where(
            SyncRun.connection_id == connection.id,
            SyncRun.status.in_(ACTIVE_RUN_STATUSES + ("review",)),
        )
    ):
        run.status, run.finished_at = "failed", datetime.now(UTC)
        run.error = "Stopped: the connection was disconnected."
        announce_finished(session, run, connection)
    connection.status = "disconnected"
    connection.secrets_ciphertext = None
    session.execute(
        delete(ProviderAccount).where(
            ProviderAccount.provider == connection.provider,
            ProviderAccount.connection_id == connection.id,
            ProviderAccount.tenant_id == bound_tenant_id(session),
        )
    )
    session.flush()


# Runs ----------------------------------------------------------------------------------------


def active_run(session: Session, connection_id: int) -> SyncRun | None:
    return session.scalar(
        select(SyncRun).where(
            SyncRun.connection_id == connection_id,
            SyncRun.status.in_(ACTIVE_RUN_STATUSES + ("review",)),
        )
    )


def start_run(
    session: Session,
    connection: IntegrationConnection,
    trigger: str,
    user_id: int | None = None,
    full: bool = False,
) -> SyncRun:
    """A new run handed to a worker once this transaction commits, or the active one (one run
    at a time per connection; the unique index keeps it so under a race)."""
    if connection.status != "enabled":
        raise SyncError("The connection is disabled: enable it to sync.")
    if (connection.settings or {}).get("needs_reconnect"):
        raise SyncError(
            f"{source_label(connection.provider)} no longer accepts Duebook's access: reconnect "
            "it first."
        )
    if not (connection.settings or {}).get("book_id"):
        raise SyncError("Choose the organisation to sync first.")
    away = unreachable(connection)
    if away:
        raise SyncError(away)
    current = active_run(session, connection.id)
    if current is not None:
        return current
    run = SyncRun(
        connection_id=connection.id,
        trigger=trigger,
        full=full,
        requested_by=user_id,
    )
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:
        return active_run(session, connection.id)
    hand_over_run(session, run)
    return run


def unreachable(connection: IntegrationConnection) -> str | None:
    """Why the connection's books cannot be read now (Tally with no agent paired and no file
    waiting), or None."""
    settings = connection.settings or {}
    cls = connector_class(connection.provider)
    if cls is None or settings.get("upload"):
        return None
    return cls.reachable(settings)


def hand_over_run(session: Session, run: SyncRun) -> None:
    hand_over(session, "run_accounting_sync", run.id, tenant_id=bound_tenant_id(session))


def recent_runs(session: Session, connection_id: int, limit: int = 20) -> list[SyncRun]:
    return list(
        session.scalars(
            select(SyncRun)
            .where(SyncRun.connection_id == connection_id)
            .order_by(SyncRun.id.desc())
            .limit(limit)
        )
    )


def run_problems(session: Session, run_id: int, limit: int = 500) -> list[SyncProblem]:
    return list(
        session.scalars(
            select(SyncProblem)
            .where(SyncProblem.run_id == run_id)
            .order_by(SyncProblem.id)
            .limit(limit)
        )
    )


def sweep(session: Session, now: datetime | None = None) -> int:
    """The scheduler's every few minutes, per workspace: a run paused for a rate limit resumes
    when its time comes; a run whose worker died (no heartbeat) is handed over again and goes
    on from its last page; a connection whose interval has passed since its last run gets its
    scheduled run. Returns how many runs were handed over."""
    now = now or datetime.now(UTC)
    handed = 0
    for connection in accounting_connections(session):
        if connection.status != "enabled" or (connection.settings or {}).get("needs_reconnect"):
            continue
        if not (connection.settings or {}).get("book_id") or unreachable(connection):
            continue
        run = active_run(session, connection.id)
        if run is not None:
            beat = run.heartbeat_at or run.created_at
            due = (
                run.status == "waiting" and run.resume_at is not None and run.resume_at <= now
            ) or (run.status in ("queued", "running") and now - beat > stale_after())
            if due:
                if run.status == "waiting":
                    run.status = "queued"
                run.heartbeat_at = now
                hand_over_run(session, run)
                handed += 1
            continue
        if not (connection.settings or {}).get("matched_at"):
            continue
        interval = timedelta(minutes=int((connection.settings or {}).get("interval_minutes") or 60))
        last = session.scalar(
            select(func.max(SyncRun.created_at)).where(SyncRun.connection_id == connection.id)
        )
        if last is None or now - last >= interval:
            start_run(session, connection, "schedule")
            handed += 1
    return handed


def next_run_at(session: Session, connection: IntegrationConnection) -> datetime | None:
    if not (connection.settings or {}).get("matched_at"):
        return None
    last = session.scalar(
        select(func.max(SyncRun.created_at)).where(SyncRun.connection_id == connection.id)
    )
    minutes = int((connection.settings or {}).get("interval_minutes") or 60)
    return (last or datetime.now(UTC)) + timedelta(minutes=minutes)


# The first connection's review -----------------------------------------------------------------


def matches(session: Session, connection_id: int) -> list[tuple[SyncMatch, Client | None]]:
    rows = session.scalars(
        select(SyncMatch)
        .where(SyncMatch.connection_id == connection_id)
        .order_by(SyncMatch.local_id.is_(None), SyncMatch.remote_name)
    ).all()
    clients = {
        client.id: client
        for client in session.scalars(
            select(Client).where(Client.id.in_([m.local_id for m in rows if m.local_id]))
        )
    }
    return [(match, clients.get(match.local_id)) for match in rows]


def confirm_matches(
    session: Session, connection: IntegrationConnection, decisions: dict[int, str], user_id: int
) -> SyncRun:
    """Apply the person's decisions: linked customers get their link (the fields both sides
    already agree on are agreed; the others are merged by their owner on the run that follows,
    or listed as conflicts), the others are created in Duebook by that run or left out.
    Invoices issued in Duebook from now on go to the books."""
    review = active_run(session, connection.id)
    for match, client in matches(session, connection.id):
        decision = decisions.get(match.id, match.decision)
        if decision not in ("link", "create", "skip") or (decision == "link" and client is None):
            decision = "create" if client is None else match.decision
        match.decision = decision
        if decision != "link":
            continue
        taken = session.scalar(
            select(SyncLink.id).where(
                SyncLink.connection_id == connection.id,
                SyncLink.entity == "contact",
                (SyncLink.local_id == client.id) | (SyncLink.remote_id == match.remote_id),
            )
        )
        if taken is not None:
            match.decision = "create"
            continue
        local = mapping.client_values(session, client)
        remote = mapping.contact_values(mapping.contact_from_json(match.remote_facts))
        session.add(
            SyncLink(
                connection_id=connection.id,
                entity="contact",
                local_id=client.id,
                remote_id=match.remote_id,
                origin="books",
                agreed={k: v for k, v in remote.items() if v == local.get(k)},
                books={"deleted": False},
            )
        )
    # The database's clock, as the records' own times are: what is recorded after this moment
    # goes to the books.
    now = session.scalar(select(func.now()))
    connection.settings = {
        **connection.settings,
        "matched_at": now.isoformat(),
        "push_from": (connection.settings or {}).get("push_from") or now.isoformat(),
    }
    if review is not None:
        review.status, review.finished_at, review.stage = "done", now, None
        announce_finished(session, review, connection)
    session.flush()
    return start_run(session, connection, "connect", user_id)


# Conflicts -----------------------------------------------------------------------------------


def open_conflicts(session: Session, connection_id: int) -> list[SyncConflict]:
    return list(
        session.scalars(
            select(SyncConflict)
            .where(SyncConflict.connection_id == connection_id, SyncConflict.status == "open")
            .order_by(SyncConflict.id)
        )
    )


def get_conflict(session: Session, connection_id: int, conflict_id: int) -> SyncConflict | None:
    conflict = session.get(SyncConflict, conflict_id)
    if conflict is None or conflict.connection_id != connection_id:
        return None
    return conflict


def resolve_conflict(
    session: Session,
    connection: IntegrationConnection,
    conflict: SyncConflict,
    side: str,
    user_id: int,
) -> SyncRun | None:
    """Keep Duebook's values or the books'. The books' are written into Duebook now; either way
    both sides agree after the next run (started now), which sends Duebook's to the books."""
    if conflict.status != "open":
        raise SyncError("This conflict was resolved already.")
    if side not in ("duebook", "books"):
        raise SyncError("Choose whose values to keep.")
    link = session.scalar(
        select(SyncLink).where(
            SyncLink.connection_id == connection.id,
            SyncLink.entity == conflict.entity,
            SyncLink.local_id == conflict.local_id,
        )
    )
    agreed = dict(link.agreed or {}) if link else {}
    books_values = {name: pair["books"] for name, pair in conflict.fields.items()}
    if side == "books" and conflict.entity == "contact":
        client = session.get(Client, conflict.local_id)
        tenant = session.get(Tenant, bound_tenant_id(session))
        if client is not None:
            values = {**mapping.client_values(session, client), **books_values}
            try:
                mapping.apply_contact(session, tenant, client, values, set(books_values))
            except mapping.NotAccepted as refusal:
                raise SyncError(str(refusal)) from None
    # Agreed = the books' values: with Duebook's kept, Duebook's side is "changed" and is pushed.
    agreed.update(books_values)
    if link is not None:
        link.agreed = agreed
    conflict.status, conflict.resolution = "resolved", side
    conflict.resolved_at, conflict.resolved_by = datetime.now(UTC), user_id
    session.flush()
    try:
        return start_run(session, connection, "manual", user_id)
    except SyncError:
        return None


# Settings ------------------------------------------------------------------------------------


def save_settings(session: Session, connection: IntegrationConnection, raw) -> dict[str, str]:
    owners, errors = clean_contact_owners(raw)
    try:
        interval = int(raw.get("interval_minutes") or DEFAULT_INTERVAL_MINUTES)
    except ValueError:
        interval = -1
    if interval not in INTERVAL_CHOICES:
        errors["interval_minutes"] = "Choose how often to sync from the list."
    account = (raw.get("payment_account_code") or "").strip()
    if len(account) > 40:
        errors["payment_account_code"] = "Keep the account code to 40 characters."
    if errors:
        return errors
    settings = dict(connection.settings or {})
    settings["ownership"] = {**settings.get("ownership", {}), "contact": owners}
    settings["interval_minutes"] = interval
    if account:
        settings["payment_account_code"] = account
    else:
        settings.pop("payment_account_code", None)
    connection.settings = settings
    session.flush()
    return {}


# Health --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncHealth:
    connection: IntegrationConnection
    book_name: str | None
    last_success_at: datetime | None
    last_error: str | None
    behind: int
    next_run_at: datetime | None
    run: SyncRun | None
    conflicts: int
    needs_reconnect: bool
    needs_review: bool


def health(session: Session, connection: IntegrationConnection) -> SyncHealth:
    run = active_run(session, connection.id)
    settings = connection.settings or {}
    last_error = connection.last_error
    success, failure = connection.last_success_at, connection.last_error_at
    if success and failure and success > failure:
        last_error = None
    return SyncHealth(
        connection=connection,
        book_name=settings.get("book_name"),
        last_success_at=connection.last_success_at,
        last_error=last_error,
        behind=behind(session, connection) if settings.get("matched_at") else 0,
        next_run_at=next_run_at(session, connection),
        run=run,
        conflicts=session.scalar(
            select(func.count())
            .select_from(SyncConflict)
            .where(SyncConflict.connection_id == connection.id, SyncConflict.status == "open")
        ),
        needs_reconnect=bool(settings.get("needs_reconnect")),
        needs_review=run is not None and run.status == "review",
    )


def provider_title(provider: str) -> str:
    entry = entry_for(provider)
    return entry.title if entry else source_label(provider)


def after_run(session: Session, run_id: int) -> SyncRun | None:
    """Once a run is over: the files it read go, and a webhook or an event that arrived while
    it was going starts another run."""
    run = session.get(SyncRun, run_id)
    if run is None or run.active or run.status == "review":
        return None
    connection = accounting_connection(session, run.connection_id)
    if connection is not None and (connection.settings or {}).get("upload"):
        _drop_upload(session, connection)
    if connection is None or not (connection.settings or {}).get("rerun"):
        return None
    # "rerun" names what asked for it (a webhook from the books, an event here).
    trigger = "event" if connection.settings["rerun"] == "event" else "webhook"
    connection.settings = {k: v for k, v in connection.settings.items() if k != "rerun"}
    try:
        return start_run(session, connection, trigger)
    except SyncError:
        return None


# The domain events after which Duebook holds something the books lack (an invoice issued
# here, money recorded against an invoice the books have): the push starts then, not at the
# next scheduled run.
PUSH_EVENTS = frozenset({"invoice.issued", "payment.received"})


def push_after_events(session: Session, events) -> None:
    """The "sync" consumer of the domain events: for each set of books synced live (not Tally
    by files), a run when the events left something to push, or one more after the run going
    now. A sync's own pull writes events too (invoices read from the books), but what it wrote
    is linked to the books already, so nothing is owed and no run starts: no loop."""
    if not any(event.type in PUSH_EVENTS for event in events):
        return
    for connection in accounting_connections(session):
        settings = connection.settings or {}
        if (
            connection.status != "enabled"
            or settings.get("needs_reconnect")
            or not settings.get("matched_at")
            or settings.get("upload")
            or unreachable(connection)
            or not behind(session, connection)
        ):
            continue
        if active_run(session, connection.id) is not None:
            connection.settings = {**settings, "rerun": "event"}
            continue
        try:
            start_run(session, connection, "event")
        except SyncError as refusal:  # the next scheduled run tries again; the events are done
            log.info("sync after events, connection %s: %s", connection.id, refusal)


def _drop_upload(session: Session, connection: IntegrationConnection) -> None:
    """The uploaded files a run has read (Tally's exports): deleted once this commits; the
    next run asks the agent, or reads a new upload."""
    storage = get_storage(current_app)
    for key in connection.settings["upload"].get("keys", []):
        delete_after_commit(session, storage, key)
    connection.settings = {k: v for k, v in connection.settings.items() if k != "upload"}
    session.flush()


def workspaces_syncing(session: Session) -> list[int]:
    """The workspaces with books to sync (their organisation bound), for the sweeper's fan-out."""
    return list(
        session.scalars(
            select(ProviderAccount.tenant_id)
            .where(ProviderAccount.provider.in_(ACCOUNTING_PROVIDERS))
            .distinct()
        )
    )


def invoice_link(
    session: Session, invoice_id: int
) -> tuple[SyncLink, IntegrationConnection] | None:
    """The invoice's link to the books of a live connection, if it has one."""
    row = session.execute(
        select(SyncLink, IntegrationConnection)
        .join(IntegrationConnection, IntegrationConnection.id == SyncLink.connection_id)
        .where(
            SyncLink.entity == "invoice",
            SyncLink.local_id == invoice_id,
            IntegrationConnection.status != "disconnected",
        )
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None
