"""A collector's work: the queue of what to do today, calls and field visits with their
outcomes, and a manager's check of visits whose position did not match the client's site.

Everything is written through the ORM, so each call, visit, verification and task completion
is audited with the client as subject and shows on the client's timeline."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    DateTime,
    Integer,
    Row,
    Select,
    String,
    and_,
    bindparam,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Bundle, Session, aliased

from app.clients.models import Client, Contact, Site
from app.collections.models import (
    CALL_OUTCOMES,
    TASK_CHANNELS,
    VISIT_OUTCOMES,
    CollectionActivity,
    CollectionHold,
    CollectionNotice,
    CollectionSettings,
    Dispute,
    PromiseToPay,
)
from app.core.request_input import row_id
from app.core.terminology import term, worded
from app.invoicing.balance import owing_per_client
from app.invoicing.models import OWING_STATUSES, Invoice
from tenants.binding import bound_tenant_id
from tenants.models import Membership, Tenant, User
from tenants.roles import ROLES, role_grants

# Outcomes in which the client answered the notice: the task becomes "responded".
RESPONSE_OUTCOMES = frozenset(
    {"promised", "paid_claimed", "disputed", "met_promised", "met_paid", "met_disputed"}
)
# Outcomes after which the collector is offered to record a promise to pay.
PROMISE_OUTCOMES = frozenset({"promised", "met_promised"})
# A task (a call or visit notice) can be worked in these states.
OPEN_TASK_STATUSES = ("approved", "queued")
NO_CONTACT_DAYS = 14
BROKEN_PROMISE_DAYS = 30
DEFAULT_RADIUS_M = 300
EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG)
NOTE_MAX = 2000
# A phone clock a little ahead of the server's is not "the future".
CLOCK_SKEW = timedelta(minutes=5)


class WorkInvalid(ValueError):
    """A form with errors, one message per field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class WorkRefused(ValueError):
    """An action this user may not take on this record (shown as a message)."""


# Reading ------------------------------------------------------------------------------------


def _zone(tenant) -> ZoneInfo:
    return ZoneInfo(tenant.time_zone)


def _bound_zone(session: Session) -> ZoneInfo:

    tenant_id = bound_tenant_id(session)
    tenant = session.get(Tenant, tenant_id) if tenant_id is not None else None
    return _zone(tenant) if tenant is not None else ZoneInfo("UTC")


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def visit_radius_m(session: Session) -> int:
    settings = session.get(CollectionSettings, 1)
    return settings.visit_radius_m if settings is not None else DEFAULT_RADIUS_M


def collectors(session: Session, tenant_id: int) -> list[tuple[int, str]]:
    """(user id, name) of the tenant's active members who work a collection queue: those with
    the collector role, and anyone named a client's collector (in a small business the owner
    or a finance person often collects)."""
    roles = [
        role
        for role in ROLES
        if role_grants(role, "collections.work") and not role_grants(role, "collections.supervise")
    ]
    named = select(Client.collector_user_id).where(
        Client.collector_user_id.is_not(None), Client.deleted_at.is_(None)
    )
    return list(
        session.execute(
            select(User.id, User.full_name)
            .join(Membership, Membership.user_id == User.id)
            .where(
                Membership.tenant_id == tenant_id,
                Membership.active.is_(True),
                Membership.role.in_(roles) | User.id.in_(named),
            )
            .order_by(User.full_name, User.id)
        ).all()
    )


def get_activity(session: Session, activity_id: int) -> CollectionActivity | None:
    return session.get(CollectionActivity, activity_id)


def get_client(session: Session, client_id: int) -> Client | None:
    client = session.get(Client, client_id)
    return client if client is not None and client.deleted_at is None else None


def client_activities(session: Session, client_id: int, limit: int = 50) -> list:
    """The client's calls and visits, newest first."""
    return list(
        session.scalars(
            select(CollectionActivity)
            .where(CollectionActivity.client_id == client_id)
            .order_by(CollectionActivity.occurred_at.desc(), CollectionActivity.id.desc())
            .limit(limit)
        )
    )


def open_tasks_of_client(session: Session, client_id: int, kind: str) -> list[CollectionNotice]:
    """The client's call (or visit) tasks still to be done, oldest first."""
    return list(
        session.scalars(
            select(CollectionNotice)
            .where(
                CollectionNotice.client_id == client_id,
                CollectionNotice.channel == kind,
                CollectionNotice.status.in_(OPEN_TASK_STATUSES),
            )
            .order_by(CollectionNotice.run_date, CollectionNotice.id)
        )
    )


def flagged_visits(session: Session) -> list[tuple[CollectionActivity, Client]]:
    """Visits whose position could not be verified, oldest first: a manager confirms or
    rejects each."""
    return list(
        session.execute(
            select(CollectionActivity, Client)
            .join(Client, Client.id == CollectionActivity.client_id)
            .where(CollectionActivity.kind == "visit", CollectionActivity.verification == "flagged")
            .order_by(CollectionActivity.occurred_at, CollectionActivity.id)
        ).all()
    )


def flag_reason(activity: CollectionActivity, radius_m: int) -> str:
    """Why a visit was not verified by its position, in words."""
    if activity.latitude is None:
        return "No position was given."
    if activity.accuracy_m is None:
        return "The position was typed in, not taken from the device."
    if activity.distance_m is None:
        return worded("The {client} has no site with coordinates.")
    if activity.accuracy_m > radius_m:
        return f"The device's position was only accurate to {activity.accuracy_m} m."
    if activity.distance_m > radius_m:
        return f"{activity.distance_m:,} m from the nearest site (more than {radius_m} m)."
    return ""


# The queue ----------------------------------------------------------------------------------


@dataclass
class Owed:
    """What a client owes, per currency: in all and past due, and the oldest due date."""

    total: dict[str, Decimal] = field(default_factory=dict)
    overdue: dict[str, Decimal] = field(default_factory=dict)
    oldest_due: date | None = None

    @property
    def rank(self) -> Decimal:
        # Only orders the queue; amounts in different currencies are never shown summed.
        return sum(self.overdue.values(), Decimal(0)) or sum(self.total.values(), Decimal(0))


@dataclass
class QueueItem:
    client: Row  # SHOWN_CLIENT: id and short_name
    owed: Owed
    since: date | None  # how old the item is: the task's day, the follow-up's, the dispute's
    notice: CollectionNotice | None = None
    activity: CollectionActivity | None = None
    promise: PromiseToPay | None = None
    dispute: Dispute | None = None
    invoice: Row | None = None  # SHOWN_INVOICE: id and number
    last_contact: datetime | None = None


@dataclass
class Section:
    key: str
    title: str
    items: list[QueueItem]

    @property
    def count(self) -> int:
        return len(self.items)


def _owed_by_client(session: Session, client_ids, today: date) -> dict[int, Owed]:
    owed = {client_id: Owed() for client_id in set(client_ids)}
    for owing in owing_per_client(session, owed, today):
        entry = owed[owing.client_id]
        entry.total[owing.currency] = owing.owed
        if owing.overdue:
            entry.overdue[owing.currency] = owing.overdue
        if owing.oldest_due is not None and (
            entry.oldest_due is None or owing.oldest_due < entry.oldest_due
        ):
            entry.oldest_due = owing.oldest_due
    return owed


# Each section is a statement: the queue page reads its rows, the dashboard's counts ask for
# the sizes of all of them in one round trip. The statements are built once, their values bound
# at execution (`_section_values`): the dashboard asks on every visit, and building these
# statements cost more than PostgreSQL spends running them.
USER = bindparam("user_id", type_=Integer)
TODAY = bindparam("today", type_=Date)
ZONE = bindparam("zone", type_=String)
NO_CONTACT_SINCE = bindparam("no_contact_since", type_=DateTime(timezone=True))
BROKEN_SINCE = bindparam("broken_since", type_=Date)


def _section_values(session: Session, user_id: int, today: date) -> dict:
    zone = _bound_zone(session)
    return {
        "user_id": user_id,
        "today": today,
        "zone": zone.key,
        "no_contact_since": _local_midnight(today - timedelta(days=NO_CONTACT_DAYS), zone),
        "broken_since": today - timedelta(days=BROKEN_PROMISE_DAYS),
    }


# What the queue shows of a client and of a disputed invoice: those columns, not whole rows
# (a client has some forty columns: reading them cost the driver more than the statements).
SHOWN_CLIENT = Bundle("client", Client.id, Client.short_name)
SHOWN_INVOICE = Bundle("invoice", Invoice.id, Invoice.number)


@cache
def _open_tasks() -> Select:
    return (
        select(CollectionNotice, SHOWN_CLIENT)
        .join(Client, Client.id == CollectionNotice.client_id)
        .where(
            CollectionNotice.channel.in_(TASK_CHANNELS),
            CollectionNotice.status.in_(OPEN_TASK_STATUSES),
            CollectionNotice.run_date <= TODAY,
            Client.deleted_at.is_(None),
            or_(
                CollectionNotice.assigned_user_id == USER,
                and_(CollectionNotice.assigned_user_id.is_(None), Client.collector_user_id == USER),
            ),
        )
    )


@cache
def _follow_ups() -> Select:
    later = aliased(CollectionActivity)
    return (
        select(CollectionActivity, SHOWN_CLIENT)
        .join(Client, Client.id == CollectionActivity.client_id)
        .where(
            CollectionActivity.follow_up_on <= TODAY,
            Client.deleted_at.is_(None),
            or_(CollectionActivity.user_id == USER, Client.collector_user_id == USER),
            ~exists().where(
                later.client_id == CollectionActivity.client_id,
                later.occurred_at > CollectionActivity.occurred_at,
            ),
        )
    )


@cache
def _broken_promises() -> Select:
    """Promises broken in the last BROKEN_PROMISE_DAYS: each stays on the queue until the
    collector has been in touch since it broke (when it was marked broken, else the start of
    its day in the tenant's zone)."""
    broke_at = func.coalesce(
        PromiseToPay.resolved_at, func.timezone(ZONE, cast(PromiseToPay.promised_on, DateTime()))
    )
    return (
        select(PromiseToPay, SHOWN_CLIENT)
        .join(Client, Client.id == PromiseToPay.client_id)
        .where(
            PromiseToPay.status == "broken",
            PromiseToPay.promised_on >= BROKEN_SINCE,
            Client.collector_user_id == USER,
            Client.deleted_at.is_(None),
            ~exists().where(
                CollectionActivity.client_id == PromiseToPay.client_id,
                CollectionActivity.occurred_at >= broke_at,
            ),
        )
    )


@cache
def _disputes() -> Select:
    return (
        select(Dispute, SHOWN_CLIENT, SHOWN_INVOICE)
        .join(Client, Client.id == Dispute.client_id)
        .join(Invoice, Invoice.id == Dispute.invoice_id)
        .where(Dispute.status == "open", Dispute.owner_user_id == USER)
    )


@cache
def _without_contact() -> Select:
    """Overdue clients of the collector nobody has called, visited or sent a notice to in the
    last 14 days (not on hold), each with its last call or visit (read with the clients: one
    round trip fewer)."""
    overdue = exists().where(
        Invoice.client_id == Client.id,
        Invoice.status.in_(OWING_STATUSES),
        Invoice.due_date < TODAY,
    )
    contacted = exists().where(
        CollectionActivity.client_id == Client.id,
        CollectionActivity.occurred_at >= NO_CONTACT_SINCE,
    )
    noticed = exists().where(
        CollectionNotice.client_id == Client.id, CollectionNotice.sent_at >= NO_CONTACT_SINCE
    )
    held = exists().where(
        CollectionHold.client_id == Client.id,
        CollectionHold.invoice_id.is_(None),
        CollectionHold.released_at.is_(None),
        CollectionHold.starts_on <= TODAY,
        or_(CollectionHold.ends_on.is_(None), CollectionHold.ends_on >= TODAY),
    )
    last_contact = (
        select(func.max(CollectionActivity.occurred_at))
        .where(CollectionActivity.client_id == Client.id)
        .scalar_subquery()
    )
    return select(SHOWN_CLIENT, last_contact).where(
        Client.collector_user_id == USER,
        Client.deleted_at.is_(None),
        Client.status.notin_(("on_hold", "prospect")),
        overdue,
        ~contacted,
        ~noticed,
        ~held,
    )


SECTION_TITLES = {
    "tasks": "Calls and visits due",
    "follow_ups": "Follow-ups due",
    "broken_promises": "Broken promises",
    "disputes": "Disputes to chase",
    "no_contact": f"Overdue, no contact for {NO_CONTACT_DAYS} days",
}
SECTIONS = {
    "tasks": _open_tasks,
    "follow_ups": _follow_ups,
    "broken_promises": _broken_promises,
    "disputes": _disputes,
    "no_contact": _without_contact,
}


@cache
def _section_sizes() -> Select:
    """Every section's size in one statement, each counted on a constant rather than its rows'
    columns: the statement stays short (the driver re-parses, uncached, any statement longer
    than 4 kB on every execution)."""
    return select(
        *(
            select(func.count())
            .select_from(
                rows().with_only_columns(literal(1), maintain_column_froms=True).subquery()
            )
            .scalar_subquery()
            for rows in SECTIONS.values()
        )
    )


def queue_counts(session: Session, user_id: int, today: date) -> dict[str, int]:
    """How many items each section of `user_id`'s queue holds (keys of SECTION_TITLES): the
    dashboard's summary, without what each client owes (the queue page's costly part)."""
    sizes = session.execute(_section_sizes(), _section_values(session, user_id, today)).one()
    return dict(zip(SECTIONS, sizes, strict=True))


def queue(session: Session, user_id: int, today: date) -> list[Section]:
    """What `user_id` has to do on `today` (a day of the tenant's calendar), in sections, each
    biggest debt first (follow-ups by their date, disputes oldest first)."""
    zone = _bound_zone(session)
    values = _section_values(session, user_id, today)
    tasks, follow_ups, promises, disputes, quiet = (
        session.execute(rows(), values).all() for rows in SECTIONS.values()
    )
    disputes.sort(key=lambda row: (row[0].created_at, row[0].id))
    client_ids = (
        [c.id for _, c in tasks]
        + [c.id for _, c in follow_ups]
        + [c.id for _, c in promises]
        + [c.id for _, c, _ in disputes]
        + [c.id for c, _ in quiet]
    )
    owed = _owed_by_client(session, client_ids, today)

    calls_visits = [
        QueueItem(client, owed[client.id], notice.run_date, notice=notice)
        for notice, client in tasks
    ]
    calls_visits.sort(key=lambda i: (-i.notice.amount_due, i.since, i.notice.id))
    due_follow_ups = [
        QueueItem(client, owed[client.id], activity.follow_up_on, activity=activity)
        for activity, client in follow_ups
    ]
    due_follow_ups.sort(key=lambda i: (i.since, -i.owed.rank, i.activity.id))
    broken = [
        QueueItem(client, owed[client.id], promise.promised_on, promise=promise)
        for promise, client in promises
    ]
    broken.sort(key=lambda i: (-i.promise.amount, i.since, i.promise.id))
    chase = [
        QueueItem(
            client,
            owed[client.id],
            dispute.created_at.astimezone(zone).date(),
            dispute=dispute,
            invoice=invoice,
        )
        for dispute, client, invoice in disputes
    ]
    silent = [
        QueueItem(client, owed[client.id], owed[client.id].oldest_due, last_contact=last_contact)
        for client, last_contact in quiet
    ]
    silent.sort(key=lambda i: (-i.owed.rank, i.since or today, i.client.id))
    items = (calls_visits, due_follow_ups, broken, chase, silent)
    return [
        Section(key, title, found)
        for (key, title), found in zip(SECTION_TITLES.items(), items, strict=True)
    ]


# Logging calls and visits -------------------------------------------------------------------


def haversine_m(lat1, lon1, lat2, lon2) -> float:
    """The great-circle distance in metres between two points given in degrees."""
    phi1, phi2 = math.radians(float(lat1)), math.radians(float(lat2))
    d_phi = phi2 - phi1
    d_lambda = math.radians(float(lon2) - float(lon1))
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _blank(raw) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _clean_moment(raw, zone: ZoneInfo, errors: dict) -> datetime:
    now = datetime.now(UTC)
    if _blank(raw):
        return now
    if isinstance(raw, datetime):
        moment = raw if raw.tzinfo else raw.replace(tzinfo=zone)
    else:
        try:
            moment = datetime.fromisoformat(str(raw).strip()).replace(tzinfo=zone)
        except ValueError:
            errors["occurred_at"] = "Give the date and time, e.g. 2027-03-01 10:30."
            return now
    if moment > now + CLOCK_SKEW:
        errors["occurred_at"] = "This is in the future: log what has happened."
    return moment.astimezone(UTC)


def _clean_follow_up(raw, occurred_on: date, errors: dict) -> date | None:
    if _blank(raw):
        return None
    if isinstance(raw, date):
        day = raw
    else:
        try:
            day = date.fromisoformat(str(raw).strip())
        except ValueError:
            errors["follow_up_on"] = "Give a date, e.g. 2027-03-08."
            return None
    if day < occurred_on:
        errors["follow_up_on"] = "The follow-up cannot be before the call or visit."
    elif day > occurred_on + timedelta(days=366):
        errors["follow_up_on"] = "Choose a follow-up within a year."
    return day


def _clean_coordinate(raw, name: str, limit: int, errors: dict) -> Decimal | None:
    if _blank(raw):
        return None
    if isinstance(raw, float):
        raw = repr(raw)  # the browser's number as written, never a binary float's expansion
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        errors[name] = "Give the position in decimal degrees, e.g. 19.076090."
        return None
    if not value.is_finite() or not -limit <= value <= limit:
        errors[name] = f"Must be between −{limit} and {limit} degrees."
        return None
    return value.quantize(Decimal("0.000001"))


def _clean_accuracy(raw) -> int | None:
    # Filled by the browser only; a value that is not a sane number means "not from a device".
    if _blank(raw):
        return None
    try:
        value = math.ceil(float(str(raw).strip()))
    except ValueError:
        return None
    return value if 0 <= value < 10_000_000 else None


def _clean_common(
    session: Session, tenant, client: Client, kind: str, values: Mapping, outcomes: tuple[str, ...]
) -> tuple[dict, dict]:
    errors: dict[str, str] = {}
    zone = _zone(tenant)
    outcome = (values.get("outcome") or "").strip()
    if outcome not in outcomes:
        errors["outcome"] = "Choose what came of it."
    note = (values.get("note") or "").strip() or None
    if note and len(note) > NOTE_MAX:
        errors["note"] = f"Keep the note under {NOTE_MAX:,} characters."
    elif outcome == "other" and not note:
        errors["note"] = "Say what happened."
    occurred_at = _clean_moment(values.get("occurred_at"), zone, errors)
    follow_up_on = _clean_follow_up(
        values.get("follow_up_on"), occurred_at.astimezone(zone).date(), errors
    )
    contact_id = None
    raw_contact = values.get("contact_id")
    if not _blank(raw_contact):
        contact = session.get(Contact, int(raw_contact)) if str(raw_contact).isdigit() else None
        if contact is None or contact.client_id != client.id or contact.deleted_at is not None:
            errors["contact_id"] = worded("Choose one of this {client}'s contacts.")
        else:
            contact_id = contact.id
    notice = None
    raw_notice = values.get("notice_id")
    if not _blank(raw_notice):
        notice = None
        if row_id(raw_notice):
            notice = session.get(CollectionNotice, row_id(raw_notice))
        if notice is None or notice.client_id != client.id or notice.channel != kind:
            errors["notice_id"] = f"Choose one of this {term('client')}'s {kind} tasks."
            notice = None
        elif notice.status in ("draft", "closed", "cancelled"):
            errors["notice_id"] = f"This task is {notice.status}: log the {kind} without it."
            notice = None
    clean = {
        "outcome": outcome,
        "note": note,
        "occurred_at": occurred_at,
        "follow_up_on": follow_up_on,
        "contact_id": contact_id,
        "notice": notice,
    }
    return clean, errors


def _complete_task(
    session: Session, notice: CollectionNotice, activity: CollectionActivity, zone: ZoneInfo
) -> None:
    """A call or visit done against its task: the notice is "sent" (when the call or visit
    happened) and, when the client answered (a promise, a claim of payment, a dispute),
    "responded". Only ever forward along the lifecycle: a notice that is further on (or
    escalated, closed, cancelled) keeps its status. The row is locked so that this and the
    notices' own lifecycle never overwrite each other."""
    session.refresh(notice, with_for_update=True)
    if notice.status in OPEN_TASK_STATUSES:
        notice.status = "sent"
        notice.sent_at = activity.occurred_at
    if activity.outcome in RESPONSE_OUTCOMES and notice.status in ("sent", "delivered", "read"):
        notice.status = "responded"
        notice.response_date = activity.occurred_at.astimezone(zone).date()
        notice.response_note = activity.note
    notice.updated_at = datetime.now(UTC)


def _record(
    session: Session, tenant, user_id: int, client: Client, kind: str, clean: dict, **position
) -> CollectionActivity:
    activity = CollectionActivity(
        client_id=client.id,
        notice_id=clean["notice"].id if clean["notice"] is not None else None,
        kind=kind,
        outcome=clean["outcome"],
        note=clean["note"],
        contact_id=clean["contact_id"],
        occurred_at=clean["occurred_at"],
        follow_up_on=clean["follow_up_on"],
        user_id=user_id,
        **position,
    )
    session.add(activity)
    if clean["notice"] is not None:
        _complete_task(session, clean["notice"], activity, _zone(tenant))
    session.flush()
    return activity


def _client_or_refuse(session: Session, client_id: int) -> Client:
    client = get_client(session, client_id)
    if client is None:
        raise LookupError(f"no client {client_id}")
    return client


def log_call(
    session: Session,
    tenant,
    user_id: int,
    client_id: int,
    *,
    notice_id=None,
    contact_id=None,
    outcome=None,
    note=None,
    follow_up_on=None,
    occurred_at=None,
) -> CollectionActivity:
    """Record a call to a client (values as typed in the form, or typed values). Against a
    call task (`notice_id`) it completes the task. Raises WorkInvalid with an error per field;
    LookupError when the client is not the tenant's."""
    client = _client_or_refuse(session, client_id)
    values = {
        "notice_id": notice_id,
        "contact_id": contact_id,
        "outcome": outcome,
        "note": note,
        "follow_up_on": follow_up_on,
        "occurred_at": occurred_at,
    }
    clean, errors = _clean_common(session, tenant, client, "call", values, CALL_OUTCOMES)
    if errors:
        raise WorkInvalid(errors)
    return _record(session, tenant, user_id, client, "call", clean)


def nearest_site(session: Session, client_id: int, latitude, longitude) -> tuple:
    """(site, metres) of the client's live site with coordinates nearest to the point, or
    (None, None) when it has none."""
    sites = session.scalars(
        select(Site).where(
            Site.client_id == client_id, Site.deleted_at.is_(None), Site.latitude.is_not(None)
        )
    )
    best = (None, None)
    for site in sites:
        metres = haversine_m(latitude, longitude, site.latitude, site.longitude)
        if best[1] is None or metres < best[1]:
            best = (site, metres)
    return best


def log_visit(
    session: Session,
    tenant,
    user_id: int,
    client_id: int,
    *,
    notice_id=None,
    contact_id=None,
    outcome=None,
    note=None,
    follow_up_on=None,
    occurred_at=None,
    latitude=None,
    longitude=None,
    accuracy_m=None,
) -> CollectionActivity:
    """Record a field visit where the collector's device (or the collector) says they were.
    Verified when the position is within the tenant's radius of the client's nearest site and
    the device vouches for it at that accuracy; otherwise flagged for a manager: no position
    (a phone without signal or a browser refusing to share it must not stop the visit being
    logged), no site with coordinates, too far, too inaccurate, or typed in (no accuracy from a
    device). Against a visit task it completes the task as a call does."""
    client = _client_or_refuse(session, client_id)
    values = {
        "notice_id": notice_id,
        "contact_id": contact_id,
        "outcome": outcome,
        "note": note,
        "follow_up_on": follow_up_on,
        "occurred_at": occurred_at,
    }
    clean, errors = _clean_common(session, tenant, client, "visit", values, VISIT_OUTCOMES)
    lat = _clean_coordinate(latitude, "latitude", 90, errors)
    lon = _clean_coordinate(longitude, "longitude", 180, errors)
    if lat is None and lon is not None and "latitude" not in errors:
        errors["latitude"] = "Give the latitude too, or leave both empty."
    if lon is None and lat is not None and "longitude" not in errors:
        errors["longitude"] = "Give the longitude too, or leave both empty."
    if errors:
        raise WorkInvalid(errors)
    accuracy = _clean_accuracy(accuracy_m) if lat is not None else None
    radius = visit_radius_m(session)
    site, metres = nearest_site(session, client.id, lat, lon) if lat is not None else (None, None)
    distance = round(metres) if metres is not None else None
    verified = (
        distance is not None and distance <= radius and accuracy is not None and accuracy <= radius
    )
    return _record(
        session,
        tenant,
        user_id,
        client,
        "visit",
        clean,
        latitude=lat,
        longitude=lon,
        accuracy_m=accuracy,
        distance_m=distance,
        site_id=site.id if site is not None else None,
        verification="verified" if verified else "flagged",
    )


def verify_visit(
    session: Session, activity: CollectionActivity, user_id: int, decision: str, note: str | None
) -> CollectionActivity:
    """A manager confirms (the collector was there after all) or rejects a flagged visit, with
    a note (kept apart from the collector's own note). Nobody verifies their own visit."""
    if activity.kind != "visit" or activity.verification != "flagged":
        raise WorkRefused("Only a visit waiting for verification can be confirmed or rejected.")
    if activity.user_id == user_id:
        raise WorkRefused("Someone else has to verify your own visit.")
    errors = {}
    if decision not in ("confirmed", "rejected"):
        errors["decision"] = "Confirm or reject the visit."
    note = (note or "").strip()
    if not note:
        errors["verification_note"] = "Say why (what you checked)."
    elif len(note) > NOTE_MAX:
        errors["verification_note"] = f"Keep the note under {NOTE_MAX:,} characters."
    if errors:
        raise WorkInvalid(errors)
    activity.verification_note = note
    activity.verification = decision
    activity.verified_by = user_id
    activity.verified_at = datetime.now(UTC)
    session.flush()
    return activity
