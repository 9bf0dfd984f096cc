"""Outbound webhooks' rules: endpoints and their secrets, one delivery per endpoint and event,
sending in order per resource with retries, the delivery log, replays, and automatic disabling.

Deliveries come from the domain events (app.core.events): the consumer "webhooks" writes one
row per enabled endpoint subscribed to an event's type, guarded by a unique (endpoint, event)
constraint, so a batch read twice delivers nothing twice. A worker claims due rows of one
endpoint, posts them (app.webhooks.sender) outside any transaction, and records each attempt.
Delivery is at least once (a worker that dies after posting and before recording posts again
later, with the same webhook-id, which is what receivers deduplicate on)."""

from __future__ import annotations

import ipaddress
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import (
    DateTime,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from app.core import outbound
from app.core.crypto import decrypt_secrets, encrypt_secrets
from app.core.event_types import event_type_names
from app.core.events import DomainEvent, emit
from app.core.handover import hand_over
from app.notifications.services import notify
from app.webhooks import sender
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.signing import new_secret, signature_header
from tenants.binding import bound_tenant_id
from tenants.models import Membership, Tenant

CONSUMER = "webhooks"
TEST_EVENT = "webhook.test"
# A business rule's "call a webhook" action: an event addressed to the one endpoint it names.
RULE_EVENT = "rule.matched"
# Seconds after a failed attempt before the next one: about a day in all (Standard Webhooks'
# example schedule is of this shape), each stretched by up to 10 % so that many deliveries
# failing together do not come back together. The attempt after the last one is not made.
RETRY_SCHEDULE = (5, 60, 600, 3600, 3 * 3600, 6 * 3600, 12 * 3600)
RETRY_AFTER_CAP = 24 * 3600  # a receiver's Retry-After beyond this is not waited for
# Automatic disabling: this many failed attempts in a row, or every attempt failing this long.
DISABLE_AFTER_FAILURES = 100
DISABLE_AFTER_FAILING = timedelta(hours=24)
# A rotated-out secret keeps signing this long, so receivers can switch without losing one.
OLD_SECRET_SIGNS_FOR = timedelta(hours=24)
CLAIM_BATCH = 500
CLAIM_LEASE = timedelta(minutes=5)
# A batch stops being sent this long after its claim (the rest is let go for the next claim),
# well inside the lease: a slow receiver never outlives its claim.
BATCH_SECONDS = 60
SEND_BUDGET_SECONDS = 60  # a job sends this long, then hands the rest to the next job
# The delivery log keeps what was sent (and what came back) this long; older deliveries that are
# done with (delivered, or failed for good) are deleted by the daily prune. Their events stay,
# so the API's event list still has them.
LOG_KEPT_FOR = timedelta(days=30)
URL_MAX_LENGTH = 2000
DESCRIPTION_MAX_LENGTH = 255


# -- endpoints ------------------------------------------------------------------------------


def _allowed_networks():
    return current_app.config.get("OUTBOUND_ALLOWED_NETWORKS", ())


def check_endpoint(values: dict) -> tuple[dict, dict]:
    """(clean values, errors by field) of an endpoint form: url, description, all_events
    ("1" or absent), event_types (a list of names)."""
    errors: dict[str, str] = {}
    url = (values.get("url") or "").strip()
    description = (values.get("description") or "").strip()
    chosen = [name for name in values.get("event_types") or [] if name]
    all_events = values.get("all_events") in ("1", "on", "true", True)
    url_error = _url_error(url)
    if url_error:
        errors["url"] = url_error
    if len(description) > DESCRIPTION_MAX_LENGTH:
        errors["description"] = f"Keep the description to {DESCRIPTION_MAX_LENGTH} characters."
    known = set(event_type_names()) - {TEST_EVENT}
    unknown = sorted(set(chosen) - known)
    if unknown:
        errors["event_types"] = f"Unknown event type: {', '.join(unknown)}."
    elif not all_events and not chosen:
        errors["event_types"] = "Choose the events to send, or all events."
    clean = {
        "url": url,
        "description": description,
        "event_types": None if all_events else sorted(set(chosen)),
    }
    return clean, errors


def _url_error(url: str) -> str | None:
    if not url:
        return "Enter the URL that should receive the events."
    if len(url) > URL_MAX_LENGTH:
        return f"Keep the URL to {URL_MAX_LENGTH} characters."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "This is not a valid URL."
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        return "Enter a full URL starting with https://."
    if parts.username or parts.password:
        return "Leave user names and passwords out of the URL; check the signature instead."
    if parts.fragment:
        return "Leave the #fragment out of the URL: it is never sent."
    allowed = _allowed_networks()
    if outbound.obvious_refusal(host, allowed):
        return "Webhooks go to public addresses only, not to private or local ones."
    if parts.scheme == "http" and not _on_allowed_network(host, port, allowed):
        return "Use https:// so that events travel encrypted."
    return None


def _on_allowed_network(host: str, port: int | None, allowed) -> bool:
    """Plain http only to a receiver on a network the operator let through (the tests' and
    make run's loopback): resolves the name, which a save may do (the send checks again)."""
    if not allowed:
        return False
    try:
        found = outbound.resolve(host, port or 80, allowed)
    except outbound.DestinationRefused:
        return False
    return all(not outbound.is_public(_address(sockaddr)) for *_, sockaddr in found)


def _address(sockaddr):
    return ipaddress.ip_address(sockaddr[0].partition("%")[0])


def create_endpoint(session: Session, values: dict, user_id: int | None):
    """(endpoint, {}) or (None, errors by field)."""
    clean, errors = check_endpoint(values)
    if errors:
        return None, errors
    endpoint = WebhookEndpoint(
        **clean,
        created_by=user_id,
        secrets_ciphertext=encrypt_secrets({"current": new_secret()}),
    )
    session.add(endpoint)
    session.flush()
    return endpoint, {}


def update_endpoint(session: Session, endpoint: WebhookEndpoint, values: dict) -> dict:
    clean, errors = check_endpoint(values)
    if errors:
        return errors
    for field, value in clean.items():
        setattr(endpoint, field, value)
    session.flush()
    return {}


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint | None:
    return session.get(WebhookEndpoint, endpoint_id)


def current_secret(endpoint: WebhookEndpoint) -> str:
    return decrypt_secrets(endpoint.secrets_ciphertext)["current"]


def signing_secrets(endpoint: WebhookEndpoint, now: datetime | None = None) -> list[str]:
    """The current secret, and the previous one while it still signs (rotation)."""
    kept = decrypt_secrets(endpoint.secrets_ciphertext)
    now = now or datetime.now(UTC)
    signing = [kept["current"]]
    if kept.get("previous") and datetime.fromisoformat(kept["previous_until"]) > now:
        signing.append(kept["previous"])
    return signing


def previous_secret_until(endpoint: WebhookEndpoint) -> datetime | None:
    kept = decrypt_secrets(endpoint.secrets_ciphertext)
    until = kept.get("previous_until")
    return datetime.fromisoformat(until) if until else None


def rotate_secret(session: Session, endpoint: WebhookEndpoint) -> None:
    """A new secret signs from now on; the current one goes on signing for 24 hours."""
    kept = decrypt_secrets(endpoint.secrets_ciphertext)
    until = datetime.now(UTC) + OLD_SECRET_SIGNS_FOR
    endpoint.secrets_ciphertext = encrypt_secrets(
        {"current": new_secret(), "previous": kept["current"], "previous_until": until.isoformat()}
    )
    session.flush()


def enable(session: Session, endpoint: WebhookEndpoint) -> None:
    """Deliveries waiting for it (kept while it was disabled, or waiting for a retry) go out
    now: the admin enabling it says the receiver is fixed."""
    endpoint.status, endpoint.disabled_reason, endpoint.disabled_at = "enabled", None, None
    endpoint.consecutive_failures, endpoint.failing_since = 0, None
    session.flush()
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status == "pending")
        .values(next_attempt_at=func.least(WebhookDelivery.next_attempt_at, datetime.now(UTC))),
        execution_options={"synchronize_session": False},
    )
    _hand_over_sending(session, endpoint.id)


def disable(session: Session, endpoint: WebhookEndpoint, reason: str) -> None:
    """Nothing is sent to it until it is enabled again; new events still queue up for it."""
    endpoint.status, endpoint.disabled_reason = "disabled", reason
    endpoint.disabled_at = datetime.now(UTC)
    session.flush()


def send_test(session: Session, endpoint: WebhookEndpoint, user_id: int | None) -> int:
    """A webhook.test event for this endpoint only; its id."""
    return emit(
        session,
        TEST_EVENT,
        "webhook_endpoint",
        endpoint.id,
        {"endpoint_id": endpoint.id, "message": "A test event from Duebook."},
        user_id,
    )


# -- the consumer: events to deliveries ------------------------------------------------------


def message_body(event: DomainEvent) -> str:
    """The Standard Webhooks payload: type, timestamp and data, with the event's id and the
    version of its payload's schema (app.core.event_types)."""
    return json.dumps(
        {
            "type": event.type,
            "timestamp": event.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "event_id": event.id,
            "version": event.version,
            "data": event.data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _wants(endpoint: WebhookEndpoint, event: DomainEvent) -> bool:
    if event.type in (TEST_EVENT, RULE_EVENT):
        return event.data.get("endpoint_id") == endpoint.id
    return endpoint.event_types is None or event.type in endpoint.event_types


def add_deliveries(session: Session, events: Sequence[DomainEvent]) -> None:
    """The consumer: one delivery per enabled endpoint that wants each event (a test event
    goes to the endpoint it names, enabled or not), then a send job per endpoint."""
    endpoints = list(session.scalars(select(WebhookEndpoint)))
    rows = []
    for event in events:
        targets = [
            e
            for e in endpoints
            if _wants(e, event) and (e.status == "enabled" or event.type == TEST_EVENT)
        ]
        if not targets:
            continue
        body = message_body(event)
        subject = f"{event.subject_type}:{event.subject_id}"
        for endpoint in targets:
            rows.append(
                {
                    "endpoint_id": endpoint.id,
                    "event_id": event.id,
                    "event_type": event.type,
                    "subject": subject,
                    "body": body,
                }
            )
    if not rows:
        return
    added = session.execute(
        pg_insert(WebhookDelivery)
        .on_conflict_do_nothing(constraint="uq_webhook_deliveries_endpoint_event")
        .returning(WebhookDelivery.endpoint_id),
        rows,
    ).scalars()
    for endpoint_id in sorted(set(added)):
        _hand_over_sending(session, endpoint_id)


def _hand_over_sending(session: Session, endpoint_id: int) -> None:
    hand_over(session, "send_webhooks", endpoint_id, tenant_id=bound_tenant_id(session))


# -- sending ---------------------------------------------------------------------------------


@dataclass
class _Sent:
    delivery_id: int
    attempt: int
    started_at: datetime
    headers: dict
    outcome: sender.Outcome


def send_due(session: Session, endpoint_id: int, budget_seconds: float = SEND_BUDGET_SECONDS):
    """Send what is due for one endpoint, batch after batch, for up to `budget_seconds`; hands
    the rest to another job. Returns how many attempts were made."""
    config = current_app.config
    deadline = time.monotonic() + budget_seconds
    made = 0
    with sender.http_client(
        _allowed_networks(), config["WEBHOOK_CONNECT_SECONDS"], config["WEBHOOK_READ_SECONDS"]
    ) as client:
        while True:
            endpoint = session.get(WebhookEndpoint, endpoint_id, populate_existing=True)
            if endpoint is None or endpoint.status != "enabled":
                session.commit()
                return made
            url, signing = endpoint.url, signing_secrets(endpoint)
            claimed = _claim(session, endpoint_id, CLAIM_BATCH)
            if not claimed:
                return made
            sent: list[_Sent] = []
            batch_ends = time.monotonic() + BATCH_SECONDS
            for delivery_id, body, attempts in claimed:
                sent.append(_post(client, url, signing, delivery_id, attempts + 1, body))
                if sent[-1].outcome.status == 410 or time.monotonic() > batch_ends:
                    break  # the receiver is gone, or slow: the rest waits for the next claim
            _record(session, endpoint_id, sent, [row[0] for row in claimed])
            made += len(sent)
            if time.monotonic() > deadline:
                _hand_over_sending(session, endpoint_id)
                session.commit()
                return made


def _claim(session: Session, endpoint_id: int, limit: int) -> list[tuple[int, str, int]]:
    """Due deliveries of the endpoint that are the earliest still pending of their subject
    (order per resource), claimed for CLAIM_LEASE and committed: (id, body, attempts) in id
    order. Two workers never claim the same row: the update checks the claim again on the row
    it locked, so the second finds it taken and leaves it."""
    now = datetime.now(UTC)
    free = or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now)
    heads = (
        select(WebhookDelivery.id, WebhookDelivery.next_attempt_at, WebhookDelivery.claimed_until)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .order_by(WebhookDelivery.subject, WebhookDelivery.id)
        .ext(distinct_on(WebhookDelivery.subject))
        .subquery()
    )
    due = (
        select(heads.c.id)
        .where(
            heads.c.next_attempt_at <= now,
            or_(heads.c.claimed_until.is_(None), heads.c.claimed_until < now),
        )
        .order_by(heads.c.id)
        .limit(limit)
    )
    rows = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id.in_(due.scalar_subquery()),
            WebhookDelivery.status == "pending",
            free,
        )
        .values(claimed_until=now + CLAIM_LEASE)
        .returning(WebhookDelivery.id, WebhookDelivery.body, WebhookDelivery.attempts),
        execution_options={"synchronize_session": False},
    ).all()
    session.commit()
    return sorted((row.id, row.body, row.attempts) for row in rows)


def _post(client, url: str, signing: list[str], delivery_id: int, attempt: int, body: str):
    message_id = f"msg_{delivery_id}"
    timestamp = int(time.time())
    raw = body.encode()
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(signing, message_id, timestamp, raw),
    }
    started_at = datetime.now(UTC)
    outcome = sender.post(client, url, headers, raw)
    return _Sent(delivery_id, attempt, started_at, headers, outcome)


def next_attempt_delay(attempt: int, retry_after: str | None = None) -> float | None:
    """Seconds until the attempt after attempt number `attempt` failed (before the jitter
    `_record` adds); None when the schedule is spent. A receiver's Retry-After (seconds) is
    honoured when it asks for longer."""
    if attempt > len(RETRY_SCHEDULE):
        return None
    delay = float(RETRY_SCHEDULE[attempt - 1])
    if retry_after and retry_after.strip().isdigit():
        delay = max(delay, min(int(retry_after.strip()), RETRY_AFTER_CAP))
    return delay


def _record(session: Session, endpoint_id: int, sent: list[_Sent], claimed_ids: list[int]):
    """The attempts into the log, each delivery's new state, the endpoint's run of failures
    (and its disabling), in one transaction; claimed rows not tried are let go."""
    now = datetime.now(UTC)
    session.execute(
        insert(WebhookAttempt),
        [
            {
                "delivery_id": each.delivery_id,
                "endpoint_id": endpoint_id,
                "number": each.attempt,
                "started_at": each.started_at,
                "duration_ms": each.outcome.duration_ms,
                "request_headers": each.headers,
                "response_status": each.outcome.status,
                "response_headers": each.outcome.headers,
                "response_body": each.outcome.body,
                "error": each.outcome.error,
            }
            for each in sent
        ],
    )
    # One UPDATE per kind of outcome (usually one or two a batch): the deliveries that went,
    # and those failing the same way at the same point of the schedule.
    groups: dict[tuple, list[int]] = defaultdict(list)
    for each in sent:
        outcome = each.outcome
        if outcome.delivered:
            key = ("delivered", outcome.status, None, None)
        else:
            retry_after = (outcome.headers or {}).get("retry-after")
            delay = next_attempt_delay(each.attempt, retry_after)
            error = (outcome.error or _status_error(outcome.status))[:255]
            key = ("failed" if delay is None else "pending", outcome.status, error, delay)
        groups[key].append(each.delivery_id)
    for (status, last_status, last_error, delay), ids in groups.items():
        change = {
            "status": status,
            "attempts": WebhookDelivery.attempts + 1,
            "last_status": last_status,
            "last_error": last_error,
            "claimed_until": None,
        }
        if status == "delivered":
            change["delivered_at"] = now
        if delay is not None:
            # Each stretched by up to 10 %, so that deliveries failing together do not all
            # come back together.
            change["next_attempt_at"] = literal(now, DateTime(timezone=True)) + func.make_interval(
                0, 0, 0, 0, 0, 0, delay * (1 + func.random() / 10)
            )
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(change),
            execution_options={"synchronize_session": False},
        )
    tried = {each.delivery_id for each in sent}
    untried = [i for i in claimed_ids if i not in tried]
    if untried:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(untried))
            .values(claimed_until=None),
            execution_options={"synchronize_session": False},
        )
    _count_failures(session, endpoint_id, [each.outcome for each in sent], now)
    session.commit()


def _status_error(status: int | None) -> str:
    return f"The receiver answered {status}" if status else "No answer"


def _count_failures(session: Session, endpoint_id: int, outcomes, now: datetime) -> None:
    """The endpoint's run of failed attempts, moved on by these outcomes (in the order they
    happened); disables it when the run is long enough, or at a 410 Gone. The counters are
    written past the ORM: bookkeeping, not a change someone made (the audit log would fill)."""
    failures, since = session.execute(
        select(WebhookEndpoint.consecutive_failures, WebhookEndpoint.failing_since)
        .where(WebhookEndpoint.id == endpoint_id)
        .with_for_update()
    ).one()
    for outcome in outcomes:
        if outcome.delivered:
            failures, since = 0, None
        else:
            failures, since = failures + 1, since or now
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .values(consecutive_failures=failures, failing_since=since),
        execution_options={"synchronize_session": False},
    )
    reason = None
    if any(outcome.status == 410 for outcome in outcomes):
        reason = "The receiver answered 410 Gone, which asks for no more deliveries."
    elif failures >= DISABLE_AFTER_FAILURES:
        reason = f"The last {failures} attempts all failed."
    elif since is not None and now - since >= DISABLE_AFTER_FAILING:
        reason = "Every attempt failed for 24 hours."
    if reason:
        endpoint = session.get(WebhookEndpoint, endpoint_id, populate_existing=True)
        if endpoint.status == "enabled":
            disable(session, endpoint, reason)
            _tell_admins_disabled(session, endpoint)


def _tell_admins_disabled(session: Session, endpoint: WebhookEndpoint) -> None:
    tenant_id = bound_tenant_id(session)
    slug = session.scalar(select(Tenant.slug).where(Tenant.id == tenant_id))
    admins = session.scalars(
        select(Membership.user_id).where(
            Membership.tenant_id == tenant_id,
            Membership.active.is_(True),
            Membership.role.in_(("owner", "admin")),
        )
    ).all()
    notify(
        session,
        admins,
        "info",
        title="A webhook endpoint was turned off",
        body=f"{endpoint.url}: {endpoint.disabled_reason} Fix the receiver, then enable it again.",
        link=f"/t/{slug}/webhooks/{endpoint.id}",
        dedupe_key=f"webhook_disabled:{endpoint.id}:{int(endpoint.disabled_at.timestamp())}",
    )


def endpoints_with_due_deliveries(session: Session) -> list[int]:
    """For the sweeper: enabled endpoints with a pending delivery due (a retry, or one whose
    hand-over was lost, or whose worker died)."""
    now = datetime.now(UTC)
    return list(
        session.scalars(
            select(WebhookDelivery.endpoint_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookEndpoint.status == "enabled",
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
            )
            .distinct()
        )
    )


# -- the log and replays ---------------------------------------------------------------------


def recent_deliveries(session: Session, endpoint_id: int, limit: int = 50):
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    )


def get_delivery(session: Session, endpoint_id: int, delivery_id: int):
    return session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id
        )
    )


def attempts_of(session: Session, delivery_id: int) -> list[WebhookAttempt]:
    return list(
        session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.number.desc(), WebhookAttempt.id.desc())
        )
    )


def replay(session: Session, endpoint: WebhookEndpoint, delivery_ids: list[int]) -> int:
    """Send these deliveries of the endpoint again, now, with their webhook-id (a receiver
    that has one already can tell it is the same message). Returns how many."""
    if not delivery_ids:
        return 0
    replayed = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.id.in_(delivery_ids),
        )
        .values(
            status="pending",
            next_attempt_at=func.least(WebhookDelivery.next_attempt_at, datetime.now(UTC)),
            claimed_until=None,
        )
        .returning(WebhookDelivery.id),
        execution_options={"synchronize_session": False},
    ).all()
    if replayed and endpoint.status == "enabled":
        _hand_over_sending(session, endpoint.id)
    return len(replayed)


def prune_log(session: Session, now: datetime, batch: int = 5_000) -> int:
    """Delete the log's deliveries older than LOG_KEPT_FOR that are not waiting to be sent,
    with their attempts, a batch per transaction (the log of a busy endpoint can be millions
    of rows); how many deliveries went."""
    pruned = 0
    while True:
        ids = list(
            session.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.created_at < now - LOG_KEPT_FOR,
                    WebhookDelivery.status != "pending",
                )
                .limit(batch)
            )
        )
        if not ids:
            return pruned
        session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
        session.commit()
        pruned += len(ids)


def deliveries_between(
    session: Session, endpoint_id: int, start: datetime, end: datetime, failed_only: bool
) -> list[int]:
    query = select(WebhookDelivery.id).where(
        WebhookDelivery.endpoint_id == endpoint_id,
        WebhookDelivery.created_at >= start,
        WebhookDelivery.created_at < end,
    )
    if failed_only:
        query = query.where(WebhookDelivery.status == "failed")
    return list(session.scalars(query))
