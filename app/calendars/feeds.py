"""The ICS feed (RFC 5545): one secret address per member per workspace, served without a log-in
to calendar apps that subscribe to it.

The address is `/calendar/<token>.ics`. The token is found through the shared `calendar_feeds`
table by its SHA-256 (the URL names no workspace); the member must still be an active member of
an active workspace, else the address answers 404 like a forged one. "New address" revokes the
old one at once. Events are all-day (VALUE=DATE), so no time zone can move them to another
day; DTSTAMP is the entry's last change, so an unchanged feed is the same bytes and its ETag
lets an app's next poll cost a 304."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.calendars import entries as calendar_entries
from app.calendars.models import CalendarFeed
from app.core.crypto import decrypt_secrets, encrypt_secrets
from tenants.binding import bind_tenant
from tenants.models import Membership, Tenant

PRODUCT_ID = "-//Duebook//Calendar feed//EN"
# How often an app that honours it polls (Apple's, Thunderbird's; Google's ignores it).
REFRESH_INTERVAL = timedelta(hours=1)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def live_feed(session: Session, tenant_id: int, user_id: int) -> CalendarFeed | None:
    return session.scalar(
        select(CalendarFeed).where(
            CalendarFeed.tenant_id == tenant_id,
            CalendarFeed.user_id == user_id,
            CalendarFeed.revoked_at.is_(None),
        )
    )


def feed_token(feed: CalendarFeed) -> str:
    return decrypt_secrets(feed.token_ciphertext)["token"]


def new_address(session: Session, tenant_id: int, user_id: int) -> str:
    """A new secret token for the member's feed; the previous address stops working."""
    session.execute(
        update(CalendarFeed)
        .where(
            CalendarFeed.tenant_id == tenant_id,
            CalendarFeed.user_id == user_id,
            CalendarFeed.revoked_at.is_(None),
        )
        .values(revoked_at=datetime.now(UTC))
    )
    token = secrets.token_urlsafe(32)
    session.add(
        CalendarFeed(
            tenant_id=tenant_id,
            user_id=user_id,
            token_digest=token_digest(token),
            token_ciphertext=encrypt_secrets({"token": token}),
        )
    )
    session.flush()
    return token


@dataclass(frozen=True)
class OpenedFeed:
    feed: CalendarFeed
    tenant: Tenant
    role: str


def open_feed(session: Session, token: str) -> OpenedFeed | None:
    """The live feed a token names, with `session` bound to its workspace; None for a forged
    or revoked token, a workspace gone or suspended, or a member no longer active there."""
    if not token or len(token) > 128:
        return None
    feed = session.scalar(
        select(CalendarFeed).where(
            CalendarFeed.token_digest == token_digest(token), CalendarFeed.revoked_at.is_(None)
        )
    )
    if feed is None:
        return None
    tenant = session.get(Tenant, feed.tenant_id)
    if tenant is None or not tenant.is_active:
        return None
    role = session.scalar(
        select(Membership.role).where(
            Membership.tenant_id == feed.tenant_id,
            Membership.user_id == feed.user_id,
            Membership.active.is_(True),
        )
    )
    if role is None:
        return None
    bind_tenant(session, tenant.id)
    return OpenedFeed(feed, tenant, role)


def calendar_of(session: Session, opened: OpenedFeed, base_url: str) -> tuple[bytes, datetime]:
    """The member's calendar as ICS, and when its newest entry last changed."""
    entries = calendar_entries.entries_for(session, opened.tenant, opened.feed.user_id, opened.role)
    versioned = calendar_entries.versions(session, entries)
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"Duebook: {opened.tenant.name}")
    calendar.add("refresh-interval", REFRESH_INTERVAL)
    calendar["refresh-interval"].params["VALUE"] = "DURATION"
    calendar.add("x-published-ttl", REFRESH_INTERVAL)
    workspace_url = f"{base_url.rstrip('/')}/t/{opened.tenant.slug}"
    for item in versioned:
        calendar.add_component(_event(item, workspace_url))
    newest = max(
        (item.changed_at for item in versioned), default=opened.feed.created_at
    ).astimezone(UTC)
    return calendar.to_ical(), newest


def _event(item: calendar_entries.Versioned, workspace_url: str) -> Event:
    entry = item.entry
    changed = item.changed_at.astimezone(UTC).replace(microsecond=0)
    event = Event()
    event.add("uid", entry.uid)
    event.add("dtstamp", changed)
    event.add("last-modified", changed)
    event.add("sequence", item.sequence)
    event.add("dtstart", entry.day)
    event.add("dtend", entry.day + timedelta(days=1))
    event.add("summary", entry.summary)
    event.add("description", entry.description)
    event.add("url", workspace_url + entry.path)
    event.add("categories", [entry.kind.replace("_", " ")])
    event.add("transp", "TRANSPARENT")
    return event


def mark_fetched(session: Session, feed: CalendarFeed) -> None:
    """When the feed was last read, at most once a day (each poll writing would cost a row
    version per poll for a figure people read in days)."""
    now = datetime.now(UTC)
    if feed.last_fetched_at is None or feed.last_fetched_at.date() != now.date():
        session.execute(
            update(CalendarFeed).where(CalendarFeed.id == feed.id).values(last_fetched_at=now)
        )
