"""Integration settings: a tenant's connectors, connected with credentials that are encrypted
at rest and never shown back; tested by a worker; enabled, disabled or disconnected (which
deletes the credentials); and the health figures the page shows.

A request never calls a provider: connecting checks the form and stores it, and "test
connection" queues a job that calls the connector and records the outcome on the connection.
A connector whose webhooks are routed by a provider account (a WhatsApp number, a Twilio
account) is used only once that job has proved, with the provider, that the credentials
control the account: until then it sends nothing and receives nothing, and the account is
bound to the workspace that proved it (`verify_and_bind`).

Every change of a connection goes through the ORM, so the audit log records it (the
encrypted credentials as "(hidden)"); the outcome of a test is a health figure like the
delivery counters and is written the same way, with one UPDATE."""

from __future__ import annotations

import logging
import secrets as token_source
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr

from flask import current_app
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.core.crypto import SecretsUnreadable, decrypt_secrets, encrypt_secrets
from app.core.handover import hand_over, redis_connection
from app.core.signals import announce_integration_lost
from app.integrations import mail_domain
from app.integrations.catalogue import Category, Entry, by_category, entry_for
from app.integrations.connectors import Connector, DeliveryError
from app.integrations.models import IntegrationConnection, ProviderAccount
from tenants.binding import PLACEHOLDER_SCHEMA, bound_tenant_id, schema_for_tenant_id

log = logging.getLogger(__name__)

FORM_ERROR = "_form"  # the key of an error that belongs to the whole form, not one field


class IntegrationError(ValueError):
    """An action the integration rules refuse; the message says why."""


# Reading -----------------------------------------------------------------------------------


def live_connections(session: Session) -> dict[str, IntegrationConnection]:
    """The tenant's connection per provider (enabled or disabled; disconnected ones are
    history)."""
    rows = session.scalars(
        select(IntegrationConnection).where(IntegrationConnection.status != "disconnected")
    )
    return {row.provider: row for row in rows}


def live_connection(session: Session, provider: str) -> IntegrationConnection | None:
    return session.scalar(
        select(IntegrationConnection).where(
            IntegrationConnection.provider == provider,
            IntegrationConnection.status != "disconnected",
        )
    )


def get_connection(session: Session, connection_id: int) -> IntegrationConnection | None:
    """A live connection of the bound tenant (the session only sees its schema)."""
    connection = session.get(IntegrationConnection, connection_id)
    if connection is None or connection.status == "disconnected":
        return None
    return connection


@dataclass(frozen=True)
class Health:
    status: str  # not_connected | enabled | disabled | error | pending | attention
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    successes: int = 0
    failures: int = 0

    @property
    def success_rate(self) -> float | None:
        """Messages the provider took out of all it was given; None before the first."""
        attempts = self.successes + self.failures
        return self.successes / attempts if attempts else None

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status]


STATUS_LABELS = {
    "not_connected": "Not connected",
    "enabled": "Enabled",
    "disabled": "Disabled",
    "error": "Error",
    "pending": "Pending verification",
    "attention": "Needs attention",
}


def connection_health(connection: IntegrationConnection | None) -> Health:
    """Status and figures for the page. A connection whose account the provider has not
    confirmed shows as "pending" or "attention"; an enabled connection whose latest outcome (a
    message or a test) was an error shows as "error" until something succeeds again."""
    if connection is None or connection.status == "disconnected":
        return Health("not_connected")
    status = connection.status
    last_error_at, last_success_at = connection.last_error_at, connection.last_success_at
    if connection.verification == "pending":
        status = "pending"
    elif connection.verification in ("refused", "lost"):
        status = "attention"
    elif status == "enabled" and last_error_at is not None:
        status = "error" if last_success_at is None or last_error_at > last_success_at else status
    return Health(
        status,
        last_success_at=connection.last_success_at,
        last_error=connection.last_error,
        last_error_at=connection.last_error_at,
        successes=connection.success_count or 0,
        failures=connection.failure_count or 0,
    )


@dataclass(frozen=True)
class Card:
    """One connector as the page shows it."""

    entry: Entry
    connector: type[Connector] | None  # None: coming later, or not available on this server
    connection: IntegrationConnection | None
    health: Health

    @property
    def title(self) -> str:
        return self.connector.title if self.connector else self.entry.title

    @property
    def description(self) -> str:
        return self.connector.description if self.connector else self.entry.description

    # The title of the enabled connector that sends this card's channel instead of it (the
    # delivery code uses the oldest enabled connection of a channel).
    used_instead: str | None = None
    # What an upper area tells about this connector (register_card_details): the accounting
    # sync's figures and the address of its own page.
    details: dict | None = None

    @property
    def available(self) -> bool:
        return self.connector is not None

    @property
    def report_url(self) -> str | None:
        """The address the tenant gives the provider for delivery reports, for a connector
        whose reports are addressed per connection (MSG91)."""
        if self.connection is None or not hasattr(self.connector, "report_url"):
            return None
        connector = self.connector(
            settings=self.connection.settings, secrets={}, config=current_app.config
        )
        return connector.report_url()


# Per category, what an upper area adds to a card (the accounting sync: its health and pages);
# connected by that area's hooks, so this page never imports it.
_CARD_DETAILS: dict[str, Callable[[Session, str, IntegrationConnection | None], dict | None]] = {}


def register_card_details(
    category: str, details: Callable[[Session, str, IntegrationConnection | None], dict | None]
) -> None:
    _CARD_DETAILS[category] = details


def catalogue_cards(session: Session) -> list[tuple[Category, list[Card]]]:
    connections = live_connections(session)
    in_use: dict[str, IntegrationConnection] = {}
    for connection in sorted(connections.values(), key=lambda row: row.id):
        entry = entry_for(connection.provider)
        if connection.usable and entry and entry.channel:
            in_use.setdefault(entry.channel, connection)
    cards = []
    for category, entries in by_category():
        row = []
        for entry in entries:
            connection = connections.get(entry.provider)
            connector = entry.connector_class()
            user = in_use.get(entry.channel) if entry.channel else None
            used_instead = None
            if user is not None and connection is not None and user.id != connection.id:
                other = connector_for(user.provider)
                used_instead = other.title if other else entry_for(user.provider).title
            details = _CARD_DETAILS.get(entry.category)
            row.append(
                Card(
                    entry,
                    connector,
                    connection,
                    connection_health(connection),
                    used_instead,
                    details(session, entry.provider, connection) if details else None,
                )
            )
        cards.append((category, row))
    return cards


def connector_for(provider: str) -> type[Connector] | None:
    """The class behind a provider that can be connected here, else None."""
    entry = entry_for(provider)
    return entry.connector_class() if entry else None


def form_values(connection: IntegrationConnection | None) -> dict[str, str]:
    """What the connect form shows: the stored settings, never a secret."""
    return dict(connection.settings or {}) if connection is not None else {}


def stored_secret_names(connection: IntegrationConnection | None) -> set[str]:
    """The secret fields that have a stored value (the form says "leave empty to keep")."""
    if connection is None:
        return set()
    try:
        return set(decrypt_secrets(connection.secrets_ciphertext))
    except SecretsUnreadable:
        return set()


# Connecting --------------------------------------------------------------------------------


def save_connection(
    session: Session, provider: str, raw: Mapping, *, user_id: int | None
) -> tuple[IntegrationConnection | None, dict[str, str]]:
    """Connect `provider`, or change the settings of its connection, from the form.

    Returns (connection, {}) or (None, errors by field name). A secret field left empty keeps
    the stored secret. Saving never binds a provider account (a WhatsApp number, a Twilio
    account) and never says whether another workspace uses it: new or changed credentials of
    a connector that binds one leave the connection "pending" until a worker has checked
    them with the provider (`awaits_verification`, `run_test`)."""
    connector_class = connector_for(provider)
    if connector_class is None:
        raise IntegrationError("This connector is not available.")
    connection = live_connection(session, provider)
    stored = _stored_secrets(connection)
    # Settings the connector keeps for itself (MSG91's report URL token) stay as they were;
    # the form's fields replace the rest.
    submitted = dict(connection.settings or {}) if connection is not None else {}
    submitted.update({item.name: raw.get(item.name, "") for item in connector_class.fields})
    for item in connector_class.fields:
        if item.secret and not (submitted[item.name] or "").strip() and item.name in stored:
            submitted[item.name] = stored[item.name]
    settings, secrets, errors = connector_class.clean(submitted)
    if errors:
        return None, errors
    connector = connector_class(settings=settings, secrets=secrets, config=current_app.config)
    errors = connector.destination_errors()
    if errors:
        return None, errors
    account_keys = connector.account_keys()
    previous_keys = _account_keys_of(connection) if connection is not None else None

    if connection is None:
        connection = IntegrationConnection(
            provider=provider, status="enabled", connected_by=user_id
        )
        session.add(connection)
    if not account_keys:
        connection.verification = "not_needed"
    elif (
        previous_keys != account_keys
        or stored != secrets
        or connection.verification in ("pending", "refused", "lost")
    ):
        connection.verification = "pending"
    connection.settings = settings
    connection.secrets_ciphertext = encrypt_secrets(secrets) if secrets else None
    session.flush()
    # Keys the connection no longer names stop routing here at once; keys it keeps stay bound
    # (this workspace proved them) until the check of the new credentials answers.
    _unbind(session, connection, keep=account_keys)
    return connection, {}


def awaits_verification(connection: IntegrationConnection) -> bool:
    return connection.verification == "pending"


def _stored_secrets(connection: IntegrationConnection | None) -> dict:
    if connection is None:
        return {}
    try:
        return decrypt_secrets(connection.secrets_ciphertext)
    except SecretsUnreadable:
        return {}  # the form then asks for them again, as for a new connection


def _account_keys_of(connection: IntegrationConnection) -> list[str]:
    connector_class = connector_for(connection.provider)
    if connector_class is None:
        return []
    connector = connector_class(settings=connection.settings, secrets={}, config=current_app.config)
    return connector.account_keys()


def _unbind(session: Session, connection: IntegrationConnection, keep: list[str] = ()) -> None:
    """Stop routing the provider's webhooks to this connection, except for the keys in
    `keep`."""
    session.execute(
        delete(ProviderAccount).where(
            ProviderAccount.tenant_id == bound_tenant_id(session),
            ProviderAccount.connection_id == connection.id,
            ProviderAccount.account_key.not_in(list(keep) or [""]),
        )
    )


# Verifying and binding provider accounts ------------------------------------------------------

# What a workspace is told. None of them names another workspace; only a workspace whose
# own credentials the provider has just accepted learns that the account is in use elsewhere.
REFUSED = "{title} did not confirm that these credentials control this account: {reason}"
IN_USE = (
    "{title} confirmed these credentials, but this account is already connected to another "
    "Duebook workspace whose credentials still work. Disconnect it there first: replies and "
    "delivery reports of an account can go to one workspace only."
)
HOLDER_UNCHECKED = (
    "{title} confirmed these credentials, but the check could not be finished. Test the "
    "connection again in a few minutes."
)
LOST = (
    "{title} no longer confirms these credentials for this account, so this connection "
    "stopped sending and receiving messages. Enter current credentials and save them."
)


@dataclass(frozen=True)
class Verification:
    ok: bool
    message: str


def verify_and_bind(
    session: Session, connection: IntegrationConnection, connector: Connector
) -> Verification:
    """In the worker: check the credentials with the provider, then bind the accounts they
    control to this connection.

    An account is bound to one workspace. A workspace that proves control of an account takes
    it over from a holder whose credentials the provider no longer accepts (or never did:
    connections saved before verification existed); a holder whose credentials still work
    keeps it. The main account (the first key) must be bound for the connection to be used;
    another (WhatsApp's business account, for template updates) is bound when it can be."""
    title = connector.title
    try:
        message = connector.test_connection()
    except DeliveryError as exc:
        if exc.permanent:
            _refuse(session, connection)
        return Verification(False, REFUSED.format(title=title, reason=exc))
    tenant_id = bound_tenant_id(session)
    keys = connector.account_keys()
    for position, key in enumerate(keys):
        row = _locked_binding(session, connection.provider, key)
        if row is None:
            if _insert_binding(session, connection, key, tenant_id):
                continue
            row = _locked_binding(session, connection.provider, key)  # bound meanwhile
        if row.tenant_id == tenant_id:
            row.connection_id = connection.id
            continue
        holder = _holder_verifies(session, row)
        if holder is None or holder:
            if position > 0:
                continue
            if holder:
                _refuse(session, connection)
            return Verification(False, (IN_USE if holder else HOLDER_UNCHECKED).format(title=title))
        _take_over(session, row, connection, tenant_id, title)
    _unbind(session, connection, keep=keys)
    connection.verification = "verified"
    return Verification(True, message)


def _locked_binding(session: Session, provider: str, key: str) -> ProviderAccount | None:
    return session.scalar(
        select(ProviderAccount)
        .where(ProviderAccount.provider == provider, ProviderAccount.account_key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _insert_binding(session: Session, connection, key: str, tenant_id: int) -> bool:
    """Bind a free key; False when another verification bound it meanwhile."""
    return (
        session.execute(
            insert(ProviderAccount)
            .values(
                provider=connection.provider,
                account_key=key,
                tenant_id=tenant_id,
                connection_id=connection.id,
            )
            .on_conflict_do_nothing(index_elements=["provider", "account_key"])
            .returning(ProviderAccount.id)
        ).first()
        is not None
    )


def _refuse(session: Session, connection: IntegrationConnection) -> None:
    """The connection binds nothing and sends nothing until credentials are saved again."""
    connection.verification = "refused"
    _unbind(session, connection)


def _holder_verifies(session: Session, row: ProviderAccount) -> bool | None:
    """Whether the connection of another workspace that holds this account still controls
    it: True, False, or None when its provider could not be asked (it keeps the account)."""
    holder = _read_holder(session, row)
    if holder is None or holder.status == "disconnected":
        return False
    connector_class = connector_for(holder.provider)
    if connector_class is None:
        return None
    try:
        connector = connector_class(
            settings=holder.settings,
            secrets=decrypt_secrets(holder.secrets_ciphertext),
            config=current_app.config,
        )
        if row.account_key not in connector.account_keys():
            return False
        connector.test_connection()
    except SecretsUnreadable:
        return None
    except DeliveryError as exc:
        return None if not exc.permanent else False
    return True


def _in_schema_of(tenant_id: int) -> dict:
    """Execution options that run a statement on another workspace's tables: a take-over
    changes two workspaces in one transaction, and a session is bound to one of them."""
    return {"schema_translate_map": {PLACEHOLDER_SCHEMA: schema_for_tenant_id(tenant_id)}}


def _read_holder(session: Session, row: ProviderAccount):
    return session.execute(
        select(
            IntegrationConnection.provider,
            IntegrationConnection.status,
            IntegrationConnection.settings,
            IntegrationConnection.secrets_ciphertext,
        ).where(IntegrationConnection.id == row.connection_id),
        execution_options=_in_schema_of(row.tenant_id),
    ).first()


def _take_over(session: Session, row: ProviderAccount, connection, tenant_id: int, title: str):
    """The account moves to `connection`; the connection that held it loses every account it
    bound, stops sending, and its workspace hears of it (signals.integration_lost: notifications
    tells its admins)."""
    loser_tenant, loser_connection = row.tenant_id, row.connection_id
    log.info(
        "provider account %s/%s taken over by tenant %s from tenant %s",
        connection.provider,
        row.id,
        tenant_id,
        loser_tenant,
    )
    row.tenant_id, row.connection_id = tenant_id, connection.id
    session.flush()
    session.execute(
        delete(ProviderAccount).where(
            ProviderAccount.tenant_id == loser_tenant,
            ProviderAccount.connection_id == loser_connection,
        )
    )
    message = LOST.format(title=title)
    session.execute(
        update(IntegrationConnection)
        .where(IntegrationConnection.id == loser_connection)
        .values(verification="lost", last_error=message, last_error_at=datetime.now(UTC)),
        execution_options=_in_schema_of(loser_tenant),
    )
    announce_integration_lost(
        session,
        tenant_id=loser_tenant,
        connection_id=loser_connection,
        provider=connection.provider,
        title=title,
        reason=message,
    )


# Enable, disable, disconnect ----------------------------------------------------------------


def enable(connection: IntegrationConnection) -> None:
    if connection.status != "disabled":
        raise IntegrationError("This connection is not disabled.")
    connection.status = "enabled"


def disable(connection: IntegrationConnection) -> None:
    """Messages stop using it at once: e-mail goes through Duebook's own server, and WhatsApp
    and SMS messages are not sent ("no channel connected")."""
    if connection.status != "enabled":
        raise IntegrationError("This connection is not enabled.")
    connection.status = "disabled"


def disconnect(session: Session, connection: IntegrationConnection) -> None:
    """Delete the credentials and the webhook routing; the row stays as history."""
    connection.status = "disconnected"
    connection.secrets_ciphertext = None
    _unbind(session, connection)
    session.flush()


# Testing -----------------------------------------------------------------------------------


def request_test(session: Session, connection: IntegrationConnection) -> str:
    """Queue a test of the connection for after this transaction commits; returns the job id
    the page polls."""
    tenant_id = bound_tenant_id(session)
    job_id = f"{_test_job_prefix(tenant_id, connection.id)}{token_source.token_hex(6)}"
    hand_over(session, "test_connection", connection.id, tenant_id=tenant_id, job_id=job_id)
    return job_id


def _test_job_prefix(tenant_id: int, connection_id: int) -> str:
    return f"integration-test-{tenant_id}-{connection_id}-"


def run_test(session: Session, connection_id: int) -> dict:
    """In the worker: call the provider and record the outcome; for a connector that binds a
    provider account, this is the check that binds it (`verify_and_bind`).
    {"ok": bool, "message": str}"""
    connection = get_connection(session, connection_id)
    if connection is None:
        return {"ok": False, "message": "This connection was disconnected."}
    connector_class = connector_for(connection.provider)
    if connector_class is None:
        ok, message = False, "This connector is not available on this server."
    else:
        try:
            connector = connector_class(
                settings=connection.settings,
                secrets=decrypt_secrets(connection.secrets_ciphertext),
                config=current_app.config,
            )
        except SecretsUnreadable:
            ok, message = False, "The saved credentials cannot be read. Enter them again."
        else:
            if connector.account_keys():
                verification = verify_and_bind(session, connection, connector)
                ok, message = verification.ok, verification.message
            else:
                try:
                    ok, message = True, connector.test_connection()
                except DeliveryError as exc:
                    ok, message = False, str(exc)
    record_test_result(session, connection_id, ok=ok, message=message)
    return {"ok": ok, "message": message}


def record_test_result(session: Session, connection_id: int, *, ok: bool, message: str) -> None:
    now = datetime.now(UTC)
    values = (
        {"last_success_at": now} if ok else {"last_error_at": now, "last_error": message[:2000]}
    )
    session.execute(
        update(IntegrationConnection)
        .where(IntegrationConnection.id == connection_id)
        .values(**values)
    )


@dataclass(frozen=True)
class Progress:
    state: str  # waiting | done | lost
    ok: bool = False
    message: str = ""


def test_progress(tenant_id: int, connection_id: int, job_id: str) -> Progress | None:
    """Where a queued test is; None for a job id that is not a test of this connection."""

    if not job_id.startswith(_test_job_prefix(tenant_id, connection_id)):
        return None
    try:
        job = Job.fetch(job_id, connection=redis_connection())
        status = job.get_status()
    except NoSuchJobError:
        return Progress(
            "lost",
            message="The test did not start: the job queue was not "
            "reachable, or the result has expired. Try again.",
        )
    except RedisError:
        return Progress("waiting")
    if status == "finished":
        result = job.return_value() or {}
        return Progress("done", ok=bool(result.get("ok")), message=result.get("message", ""))
    if status in ("failed", "stopped", "canceled"):
        return Progress("lost", message="The test stopped unexpectedly. Try again.")
    return Progress("waiting")


@dataclass(frozen=True)
class ShownTest:
    connection_id: int
    job_id: str
    progress: Progress


def shown_test(tenant_id: int, job_id: str) -> ShownTest | None:
    """The test the page was sent back to after "Test connection" (its job id in the URL)."""
    connection_part = job_id.removeprefix(f"integration-test-{tenant_id}-").partition("-")[0]
    if not connection_part.isdigit():
        return None
    progress = test_progress(tenant_id, int(connection_part), job_id)
    return ShownTest(int(connection_part), job_id, progress) if progress else None


# The "Your domain" check ----------------------------------------------------------------------


def sending_mail_server(session: Session) -> IntegrationConnection | None:
    """The workspace's own mail server when its e-mail goes through it (an enabled SMTP
    connection); None when the platform's server sends it."""
    connection = live_connection(session, "smtp")
    return connection if connection is not None and connection.status == "enabled" else None


def mail_domain_report(connection: IntegrationConnection) -> mail_domain.DomainReport:
    """SPF, DKIM and DMARC of the domain the connection's From address is at, for its server,
    read from DNS now (never stored: DNS changes outside Duebook)."""
    settings = connection.settings
    secrets = _stored_secrets(connection)
    return mail_domain.check_mail_domain(
        current_app.config.get("DNS_RESOLVER", ""),
        domain=parseaddr(settings.get("from_address", ""))[1].rpartition("@")[2],
        server=settings.get("host", ""),
        dkim_domain=settings.get("dkim_domain", ""),
        dkim_selector=settings.get("dkim_selector", ""),
        dkim_private_key=secrets.get("dkim_private_key", ""),
    )
