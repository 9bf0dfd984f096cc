"""A connection's books as the engine calls them: the connector, the tokens kept fresh, every
call paced under the provider's limits, counted, and retried the way the provider asks.

Tokens live encrypted in the connection's secrets. A refresh happens under a lock on the
connection's row, in a transaction that commits the new refresh token before the new access
token is used (providers rotate refresh tokens: a lost new one would cut the connection).
Two workers refreshing at once serialise on the lock; the second finds the first's fresh token.

Pacing: one call per `60 / per_minute` seconds per set of books, shared by every worker
through Redis (the next free slot, taken atomically), so a sync runs at the provider's rate
instead of bursting into its 429s; a 429 is obeyed all the same (Retry-After)."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from datetime import UTC, datetime, timedelta

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.crypto import decrypt_secrets, encrypt_secrets
from app.core.handover import redis_connection
from app.integrations.catalogue import entry_for
from app.integrations.connectors.accounting import (
    AccountingConnector,
    BooksOffline,
    ProviderUnavailable,
    RateLimited,
    TokenRevoked,
    TokenSet,
)
from app.integrations.models import IntegrationConnection
from tenants.binding import bound_tenant_id

log = logging.getLogger(__name__)

# Refresh an access token this long before it expires.
REFRESH_MARGIN = timedelta(minutes=2)
# Take the next free slot atomically: KEYS[1] holds the time (ms) of the next free call.
_SLOT_SCRIPT = """
local now = tonumber(ARGV[1])
local spacing = tonumber(ARGV[2])
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, free)
redis.call('SET', KEYS[1], slot + spacing, 'PX', spacing * 2 + 60000)
return slot - now
"""


class WaitLonger(Exception):
    """The provider asked us to wait longer than a run waits in place: pause the run."""

    def __init__(self, message: str, seconds: float, daily: bool):
        super().__init__(message)
        self.seconds = seconds
        self.daily = daily


def tokens_of(secrets: dict) -> TokenSet:
    return TokenSet(
        access_token=secrets["access_token"],
        refresh_token=secrets.get("refresh_token"),
        expires_at=datetime.fromisoformat(secrets["expires_at"]),
        extra=secrets.get("extra") or {},
    )


def secrets_of(tokens: TokenSet) -> dict:
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at.isoformat(),
        "extra": tokens.extra,
    }


def connector_class(provider: str) -> type[AccountingConnector] | None:
    entry = entry_for(provider)
    cls = entry.connector_class() if entry else None
    return cls if cls is not None and issubclass(cls, AccountingConnector) else None


def build_connector(provider: str, settings: dict, secrets: dict) -> AccountingConnector:
    cls = connector_class(provider)
    if cls is None:
        raise ProviderUnavailable(f"The {provider} connector is not available on this server.")
    return cls(settings=settings, secrets=secrets, config=current_app.config)


class Books:
    """One connection's books for the length of a run (or a page's single action)."""

    def __init__(self, session: Session, connection: IntegrationConnection):
        self.session = session
        self.connection_id = connection.id
        self.provider = connection.provider
        self.book = (connection.settings or {}).get("book_id") or ""
        self.connector = build_connector(
            connection.provider, connection.settings or {}, self._secrets(connection)
        )
        # A connector without OAuth (Tally's agent) has no tokens; its calls get "" for one.
        self.tokens = tokens_of(self.connector.secrets) if self.connector.uses_oauth else None
        self.connector.tokens = self.tokens
        self.connector.relay = (bound_tenant_id(session), connection.id)
        # Calls made, by this thread and by a page fetcher's (the run adds them to its row).
        self.calls = 0
        self._calls_lock = threading.Lock()
        self.config = current_app.config
        # Taken here, in the app's context: a page fetcher's thread paces its calls too.
        self.redis = redis_connection()

    @staticmethod
    def _secrets(connection: IntegrationConnection) -> dict:
        return (
            decrypt_secrets(connection.secrets_ciphertext) if connection.secrets_ciphertext else {}
        )

    # Tokens ----------------------------------------------------------------------------------

    def access(self) -> str:
        if self.tokens is None:
            return ""
        if self.tokens.expires_at - datetime.now(UTC) < REFRESH_MARGIN:
            self.refresh()
        return self.tokens.access_token

    def refresh(self, rejected: str | None = None) -> None:
        """New tokens, stored before use. `rejected`: the access token the provider just
        refused (refresh even if it looks fresh, unless another worker already did). Runs
        between records, when the run's work so far is committed."""
        self.session.commit()
        row = self.session.scalar(
            select(IntegrationConnection)
            .where(IntegrationConnection.id == self.connection_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if row is None or not row.secrets_ciphertext:
            self.session.rollback()
            raise TokenRevoked("The connection was disconnected.")
        stored = tokens_of(decrypt_secrets(row.secrets_ciphertext))
        fresh_enough = stored.expires_at - datetime.now(UTC) >= REFRESH_MARGIN
        if fresh_enough and stored.access_token != rejected:
            self.session.commit()
            self.tokens = self.connector.tokens = stored  # another worker refreshed meanwhile
            return
        try:
            tokens = self.connector.refresh(stored)
        except BaseException:
            self.session.rollback()
            raise
        row.secrets_ciphertext = encrypt_secrets(secrets_of(tokens))
        self.session.commit()
        self.tokens = self.connector.tokens = tokens

    # Calls -----------------------------------------------------------------------------------

    def _pace(self) -> None:
        per_minute = self.connector.per_minute
        if not per_minute or not self.config.get("SYNC_PACING", True):
            return
        spacing_ms = int(60_000 / per_minute)
        key = f"sync:pace:{self.provider}:{self.book}"
        try:
            wait_ms = self.redis.eval(_SLOT_SCRIPT, 1, key, int(time.time() * 1000), spacing_ms)
        except RedisError:
            log.warning("pacing without Redis for %s: one call per %d ms here", key, spacing_ms)
            wait_ms = spacing_ms
        if wait_ms > 0:
            time.sleep(wait_ms / 1000)

    def _counted(self) -> None:
        with self._calls_lock:
            self.calls += 1

    def call(self, method: str, *args):
        """connector.<method>(access, book, *args), paced; an expired access token refreshed
        once; a 5xx or timeout retried with backoff (SYNC_RETRY_DELAYS); a 429 waited out in
        place when short (SYNC_MAX_WAIT seconds), else WaitLonger."""
        return self._call(method, args, access=None)

    def call_detached(self, method: str, args: tuple, access: str):
        """The same from another thread, with an access token the run's thread gave it: it
        never touches the database, so a token refused here is for the run's thread to
        refresh (TokenRevoked is raised)."""
        return self._call(method, args, access=access)

    def _call(self, method: str, args: tuple, access: str | None):
        delays = list(self.config.get("SYNC_RETRY_DELAYS", (1, 4, 15)))
        refreshed = access is not None  # a detached call never refreshes
        while True:
            self._pace()
            token = access if access is not None else self.access()
            self._counted()
            try:
                return getattr(self.connector, method)(token, self.book, *args)
            except TokenRevoked:
                if refreshed:
                    raise
                refreshed = True
                self.refresh(rejected=token)
            except RateLimited as limit:
                if limit.daily or limit.retry_after > self.config.get("SYNC_MAX_WAIT", 65):
                    raise WaitLonger(str(limit), limit.retry_after, limit.daily) from None
                time.sleep(max(limit.retry_after, 0))
            except BooksOffline:
                raise
            except ProviderUnavailable:
                if not delays:
                    raise
                time.sleep(delays.pop(0))


class PageFetcher:
    """The pages of one pass fetched ahead, by a thread of their own, at the provider's pace,
    while the run's thread writes the pages already fetched: a pass then takes the time the
    rate limit sets, not that plus the time its pages take to go in (nor the time the review's
    new customers take, when it is started before them). Each page names the next one's cursor,
    so the fetcher follows them one by one; it holds at most `ahead` pages. Nothing it fetched
    is written until the run's thread takes it: a run killed meanwhile loses only pages it would
    fetch again."""

    def __init__(self, books: Books, entity: str, since, cursor, ahead: int = 200):
        self.books = books
        self.entity = entity
        self.since = since
        self.cursor = cursor
        self.pages: queue.Queue = queue.Queue(maxsize=ahead)
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=self._fetch, args=(books.access(),), name=f"sync-fetch-{entity}", daemon=True
        )
        self.thread.start()

    def _fetch(self, access: str) -> None:
        cursor = self.cursor
        while not self.stopping.is_set():
            try:
                page = self.books.call_detached("pull", (self.entity, self.since, cursor), access)
            except BaseException as error:  # handed to the run's thread, which decides
                self._put((cursor, error))
                return
            if not self._put((cursor, page)) or page.next_cursor is None:
                return
            cursor = page.next_cursor

    def _put(self, item) -> bool:
        while not self.stopping.is_set():
            try:
                self.pages.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def take(self, cursor):
        """The page at `cursor` (raising what fetching it raised)."""
        fetched_at, item = self.pages.get()
        if fetched_at != cursor:  # the run went another way (a refused token refreshed)
            raise LookupError(f"fetched {fetched_at!r}, wanted {cursor!r}")
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.stopping.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self.pages.get_nowait()
        self.thread.join(timeout=60)
