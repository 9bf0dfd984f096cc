"""The daily collection run of one tenant: which notices are due today, and making them,
exactly once.

`plan` reads every owing invoice in one set-based query (what it owes, its policy, its current
rung, holds, disputes, promises, the client's last contact) and decides in the tenant's own
calendar what goes out today, and why the rest does not. `run` takes a per-tenant advisory
lock (concurrent runs wait for each other and the second plans after the first committed),
then writes the plan with three set-based statements: the notices, their invoices with
ON CONFLICT (invoice_id, level_number, channel) DO NOTHING — the database constraint is the
guarantee — and an audit entry per notice for the client's timeline.

An invoice moves up at most one rung per run (its next rung only), so a run after missed days
catches up without a burst of stale levels."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.clients.models import Client, Contact
from app.clients.services import may_contact
from app.collections.cases import promises
from app.collections.engine.services import default_policy, every_notice_waits, settings_of
from app.collections.models import MESSAGE_CHANNELS, TASK_CHANNELS, CollectionRun
from app.collections.notices.services import notice_facts
from app.core.clock import is_business_day, local_date, subdivision_for
from app.core.events import emit_many
from app.core.handover import hand_over
from app.custom_fields.services import values_for_new_record
from tenants.binding import bound_schema, quoted_schema

# pg_advisory_xact_lock(RUN_LOCK_CLASS, tenant id): one daily run of a tenant at a time.
RUN_LOCK_CLASS = 0x436F_6C6C  # "Coll"
CANDIDATE_STATUSES = ("issued", "sent", "overdue", "partly_paid", "disputed")
SKIP_LABELS = {
    "paid": "paid",
    "under_tolerance": "owes less than the tolerance",
    "disputed": "disputed",
    "client_on_hold": "client on hold",
    "client_archived": "client archived",
    "on_hold": "on hold",
    "promised": "promise to pay",
    "no_policy": "no collection policy",
    "ladder_done": "last level reached",
    "not_yet_due": "not yet due",
    "min_gap": "minimum gap since the last contact",
    "no_contact": "no reachable contact",
    "no_address": "no address for a letter",
    "not_business_day": "not a business day",
}
CHANNEL_WORDS = {
    "email": "e-mail",
    "whatsapp": "WhatsApp",
    "sms": "SMS",
    "letter": "letter",
    "call": "call",
    "visit": "visit",
}

# Every owing invoice of the tenant with the facts the rules need. {s} is the tenant's schema
# (text SQL is not schema-translated); the only parameters are values.
CANDIDATES_SQL = """
WITH inv AS (
  SELECT i.id, i.client_id, i.number, i.currency, i.status,
         coalesce(i.due_date, i.issue_date) AS due_date,
         coalesce(pi.id, pc.id, :default_policy_id) AS policy_id,
         i.total - coalesce(paid.amount, 0) - coalesce(credited.amount, 0)
           - coalesce(i.written_off_amount, 0) AS owing,
         c.short_name, c.status AS client_status, c.archived_at IS NOT NULL AS client_archived
  FROM {s}.invoices i
  JOIN {s}.clients c ON c.id = i.client_id AND c.deleted_at IS NULL
  LEFT JOIN {s}.collection_policies pi
    ON pi.id = i.collection_policy_id AND pi.deleted_at IS NULL
  LEFT JOIN {s}.collection_policies pc
    ON pc.id = c.collection_policy_id AND pc.deleted_at IS NULL
  LEFT JOIN LATERAL (
    SELECT sum(a.amount + a.tds_amount) AS amount FROM {s}.payment_allocations a
    WHERE a.invoice_id = i.id AND a.removed_at IS NULL) paid ON true
  LEFT JOIN LATERAL (
    SELECT sum(cn.total) AS amount FROM {s}.credit_notes cn WHERE cn.invoice_id = i.id
  ) credited ON true
  WHERE i.status IN ('issued', 'sent', 'overdue', 'partly_paid', 'disputed')
), rung AS (
  SELECT inv.*, coalesce(r.rung, 0) AS rung, r.previous_on, r.previous_escalated
  FROM inv
  LEFT JOIN LATERAL (
    SELECT max(ni.level_number) AS rung,
           max(n.run_date) AS previous_on,
           bool_or(n.status = 'escalated') AS previous_escalated
    FROM {s}.collection_notice_invoices ni
    JOIN {s}.collection_notices n ON n.id = ni.notice_id
    WHERE ni.invoice_id = inv.id
      AND ni.level_number = (SELECT max(x.level_number) FROM {s}.collection_notice_invoices x
                             WHERE x.invoice_id = inv.id)
  ) r ON true
)
SELECT rung.id, rung.client_id, rung.number, rung.currency, rung.status, rung.due_date,
       rung.owing, rung.short_name, rung.client_status, rung.client_archived, rung.rung,
       rung.previous_on,
       coalesce(rung.previous_escalated, false) AS previous_escalated, rung.policy_id,
       l.id AS level_id, l.position, l.name AS level_name, l.trigger, l.trigger_days,
       l.channels, l.min_gap_days, l.fee_amount, l.requires_approval,
       EXISTS (SELECT 1 FROM {s}.disputes d
               WHERE d.invoice_id = rung.id AND d.status = 'open') AS open_dispute,
       EXISTS (SELECT 1 FROM {s}.collection_holds h
               WHERE h.client_id = rung.client_id
                 AND (h.invoice_id IS NULL OR h.invoice_id = rung.id)
                 AND h.released_at IS NULL AND h.starts_on <= :today
                 AND (h.ends_on IS NULL OR h.ends_on >= :today)) AS held,
       (SELECT max(p.promised_on) FROM {s}.promises_to_pay p
        WHERE p.client_id = rung.client_id AND p.status = 'open' AND p.promised_on >= :today
          AND (cardinality(p.invoice_ids) = 0 OR rung.id = ANY (p.invoice_ids))) AS promised_on,
       (SELECT max(n.run_date) FROM {s}.collection_notices n
        WHERE n.client_id = rung.client_id AND n.status <> 'cancelled') AS last_contact_on
FROM rung
LEFT JOIN {s}.collection_levels l ON l.policy_id = rung.policy_id AND l.position = rung.rung + 1
ORDER BY rung.client_id, rung.due_date, rung.id
"""

INSERT_NOTICES_SQL = """
INSERT INTO {s}.collection_notices (client_id, policy_id, level_id, level_number, level_name,
  channel, currency, grouping, status, run_id, run_date, reason, amount_due, fee_amount,
  contact_id, assigned_user_id, approved_at, custom_fields)
SELECT g.client_id, g.policy_id, g.level_id, g.level_number, g.level_name, g.channel,
  g.currency, :grouping, g.status, :run_id, :today, g.reason, g.amount_due, g.fee_amount,
  g.contact_id, g.assigned_user_id, CASE WHEN g.status = 'approved' THEN now() END,
  CAST(:custom_fields AS jsonb)
FROM unnest(CAST(:client_id AS bigint[]), CAST(:policy_id AS bigint[]),
  CAST(:level_id AS bigint[]), CAST(:level_number AS smallint[]),
  CAST(:level_name AS varchar[]), CAST(:channel AS varchar[]), CAST(:currency AS varchar[]),
  CAST(:status AS varchar[]), CAST(:reason AS text[]), CAST(:amount_due AS numeric[]),
  CAST(:fee_amount AS numeric[]), CAST(:contact_id AS bigint[]),
  CAST(:assigned_user_id AS bigint[]))
  AS g(client_id, policy_id, level_id, level_number, level_name, channel, currency, status,
       reason, amount_due, fee_amount, contact_id, assigned_user_id)
RETURNING id
"""

INSERT_ITEMS_SQL = """
INSERT INTO {s}.collection_notice_invoices (notice_id, invoice_id, level_number, channel,
  amount_due, days_overdue)
SELECT n.id, x.invoice_id, n.level_number, n.channel, x.amount_due, x.days_overdue
FROM unnest(CAST(:notice_id AS bigint[]), CAST(:invoice_id AS bigint[]),
            CAST(:amount_due AS numeric[]), CAST(:days_overdue AS int[]))
  AS x(notice_id, invoice_id, amount_due, days_overdue)
JOIN {s}.collection_notices n ON n.id = x.notice_id
ON CONFLICT (invoice_id, level_number, channel) DO NOTHING
"""

# A notice whose every invoice already had that rung on that channel (only possible when the
# lock was bypassed) is removed again: notices exist only for groups that got items.
DROP_EMPTY_SQL = """
DELETE FROM {s}.collection_notices n
WHERE n.id = ANY (CAST(:ids AS bigint[]))
  AND NOT EXISTS (SELECT 1 FROM {s}.collection_notice_invoices ni WHERE ni.notice_id = n.id)
RETURNING n.id
"""

# The notices were written set-based (not through the ORM): one audit entry each, so each
# lands on its client's timeline like any other change.
AUDIT_SQL = """
INSERT INTO {s}.audit_log (actor_user_id, action, entity, entity_id, subject, changes)
SELECT :actor, 'insert', 'collection_notices', n.id::text, 'clients:' || n.client_id,
       jsonb_build_object('level_name', jsonb_build_array(NULL, n.level_name),
                          'channel', jsonb_build_array(NULL, n.channel),
                          'status', jsonb_build_array(NULL, n.status),
                          'amount_due', jsonb_build_array(NULL, n.amount_due::text),
                          'reason', jsonb_build_array(NULL, n.reason))
FROM {s}.collection_notices n WHERE n.id = ANY (CAST(:ids AS bigint[]))
"""


@dataclass
class PlannedInvoice:
    invoice_id: int
    number: str | None
    amount: Decimal
    days_overdue: int
    reason: str


@dataclass
class PlannedNotice:
    """One notice the run makes: a client, a rung on one channel, in one currency."""

    client_id: int
    client_name: str
    policy_id: int
    level_id: int
    level_number: int
    level_name: str
    channel: str
    currency: str
    status: str
    reason: str
    fee_amount: Decimal
    contact_id: int | None = None
    contact_name: str | None = None
    assigned_user_id: int | None = None
    invoices: list[PlannedInvoice] = field(default_factory=list)

    @property
    def amount_due(self) -> Decimal:
        return sum((item.amount for item in self.invoices), Decimal("0.00"))


@dataclass
class SkippedInvoice:
    invoice_id: int
    number: str | None
    client_id: int
    client_name: str
    code: str
    reason: str
    channel: str | None = None


@dataclass
class Plan:
    today: date
    business_day: bool
    notices: list[PlannedNotice]
    skipped: list[SkippedInvoice]
    considered: int

    def skipped_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.skipped:
            counts[item.code] = counts.get(item.code, 0) + 1
        return counts


def tenant_today(tenant, now: datetime | None = None) -> date:
    """The tenant's date at `now` (default: the clock), in its own time zone."""
    return local_date(tenant.time_zone, now)


def is_tenant_business_day(tenant, day: date) -> bool:
    return is_business_day(day, tenant.country, subdivision_for(tenant.country, tenant.region))


def _sql(session: Session, statement: str):
    return text(statement.format(s=quoted_schema(bound_schema(session))))


def _short(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def _rung_due_on(row) -> date:
    if row.trigger == "before_due":
        return row.due_date - timedelta(days=row.trigger_days)
    if row.trigger == "after_previous" and row.previous_on is not None:
        return (
            row.previous_on
            if row.previous_escalated
            else (row.previous_on + timedelta(days=row.trigger_days))
        )
    return row.due_date + timedelta(days=row.trigger_days)


def _why(row) -> str:
    if row.trigger == "before_due":
        return f"{row.trigger_days} days before due ({_short(row.due_date)})"
    if row.trigger == "after_previous" and row.previous_on is not None:
        if row.previous_escalated:
            return f"previous level escalated (sent {_short(row.previous_on)})"
        return f"{row.trigger_days} days after the previous level ({_short(row.previous_on)})"
    return f"{row.trigger_days} days after due ({_short(row.due_date)})"


def _skip_code(row, today: date, tolerance: Decimal) -> tuple[str, str] | None:
    """Why this invoice gets nothing today (code, words), or None when its next rung is due."""
    owing = row.owing
    if owing <= 0:
        return "paid", "paid"
    if owing < tolerance:
        return "under_tolerance", f"owes {owing} {row.currency}, under the tolerance"
    if row.client_archived:
        return "client_archived", "client archived"
    if row.status == "disputed" or row.open_dispute:
        return "disputed", "disputed"
    if row.client_status == "on_hold":
        return "client_on_hold", "client on hold"
    if row.held:
        return "on_hold", "on hold"
    if row.promised_on is not None:
        return "promised", f"promise to pay until {_short(row.promised_on)}"
    if row.policy_id is None:
        return "no_policy", "no collection policy"
    if row.level_id is None:
        return "ladder_done", f"last level ({row.rung}) reached"
    due_on = _rung_due_on(row)
    if today < due_on:
        return "not_yet_due", f"not yet due: {row.level_name} on {_short(due_on)}"
    if row.last_contact_on is not None and (today - row.last_contact_on).days < row.min_gap_days:
        allowed = row.last_contact_on + timedelta(days=row.min_gap_days)
        return "min_gap", (
            f"minimum gap: last contact {_short(row.last_contact_on)}, "
            f"next contact from {_short(allowed)}"
        )
    return None


@dataclass
class _Reach:
    """How a client is reached: the contact per message channel, an address, an assignee."""

    contacts: dict[str, Contact]
    has_address: bool
    assignee: int | None
    phone_contact: Contact | None


def _reach_of_clients(session: Session, client_ids: Sequence[int]) -> dict[int, _Reach]:
    """Each client's contact per message channel (billing contacts first, then primary, then
    the rest; consent from `may_contact`, a bounced address is not reachable by e-mail)."""
    if not client_ids:
        return {}
    clients = (
        session.query(
            Client.id,
            Client.address_line1,
            Client.collector_user_id,
            Client.engagement_manager_user_id,
        )
        .filter(Client.id.in_(client_ids))
        .all()
    )
    contacts = (
        session.query(Contact)
        .filter(Contact.client_id.in_(client_ids), Contact.deleted_at.is_(None))
        .order_by(Contact.client_id, Contact.id)
        .all()
    )
    by_client: dict[int, list[Contact]] = {}
    for contact in contacts:
        by_client.setdefault(contact.client_id, []).append(contact)
    reach = {}
    for client_id, address, collector, manager in clients:
        ranked = sorted(
            by_client.get(client_id, []),
            key=lambda c: ("billing" not in (c.roles or []), "primary" not in (c.roles or [])),
        )
        per_channel = {}
        for channel in MESSAGE_CHANNELS:
            for contact in ranked:
                if channel == "email" and contact.email_bounced_at is not None:
                    continue
                if may_contact(contact, channel):
                    per_channel[channel] = contact
                    break
        reach[client_id] = _Reach(
            contacts=per_channel,
            has_address=bool(address and address.strip()),
            assignee=collector or manager,
            phone_contact=next((c for c in ranked if c.phone), None),
        )
    return reach


def plan(session: Session, tenant, today: date, any_day: bool = False) -> Plan:
    """What goes out today and why; what does not, and why not. Reads only. The scheduled run
    keeps to the tenant's business days; `any_day` is a person's explicit "run now" on a
    weekend or holiday."""
    settings = settings_of(session)
    default = default_policy(session)
    all_wait = every_notice_waits(session, tenant.id)
    rows = session.execute(
        _sql(session, CANDIDATES_SQL),
        {"today": today, "default_policy_id": default.id if default else None},
    ).all()
    tolerance = settings.tolerance_amount
    business_day = is_tenant_business_day(tenant, today)
    skipped: list[SkippedInvoice] = []
    due = []
    for row in rows:
        skip = _skip_code(row, today, tolerance)
        if skip is None and not business_day and not any_day:
            skip = "not_business_day", "not a business day: the next business day catches up"
        if skip is None:
            due.append(row)
        else:
            skipped.append(SkippedInvoice(row.id, row.number, row.client_id, row.short_name, *skip))
    reach = _reach_of_clients(session, sorted({row.client_id for row in due}))
    notices: dict[tuple, PlannedNotice] = {}
    for row in due:
        client = reach[row.client_id]
        item = PlannedInvoice(row.id, row.number, row.owing, (today - row.due_date).days, _why(row))
        status = "draft" if row.requires_approval or all_wait else "approved"
        for channel in row.channels:
            contact = None
            if channel in MESSAGE_CHANNELS:
                contact = client.contacts.get(channel)
                if contact is None:
                    skipped.append(
                        SkippedInvoice(
                            row.id,
                            row.number,
                            row.client_id,
                            row.short_name,
                            "no_contact",
                            f"no contact reachable by {CHANNEL_WORDS[channel]}",
                            channel,
                        )
                    )
                    continue
            elif channel == "letter" and not client.has_address:
                skipped.append(
                    SkippedInvoice(
                        row.id,
                        row.number,
                        row.client_id,
                        row.short_name,
                        "no_address",
                        "no address for a letter",
                        channel,
                    )
                )
                continue
            elif channel == "call":
                contact = client.phone_contact
            group = row.client_id if settings.grouping == "client" else row.id
            key = (group, row.level_id, channel, row.currency)
            notice = notices.get(key)
            if notice is None:
                notice = notices[key] = PlannedNotice(
                    client_id=row.client_id,
                    client_name=row.short_name,
                    policy_id=row.policy_id,
                    level_id=row.level_id,
                    level_number=row.position,
                    level_name=row.level_name,
                    channel=channel,
                    currency=row.currency,
                    status=status,
                    reason=item.reason,
                    fee_amount=row.fee_amount or Decimal("0.00"),
                    contact_id=contact.id if contact else None,
                    contact_name=contact.full_name if contact else None,
                    assigned_user_id=client.assignee if channel in TASK_CHANNELS else None,
                )
            notice.invoices.append(item)
    for notice in notices.values():
        if len(notice.invoices) > 1:  # the oldest invoice's reason speaks for the notice
            notice.reason = f"{notice.reason}, and {len(notice.invoices) - 1} more invoice(s)"
    return Plan(today, business_day, list(notices.values()), skipped, len(rows))


def run(
    session: Session,
    tenant,
    today: date | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    trigger: str = "scheduler",
    user_id: int | None = None,
    any_day: bool = False,
) -> CollectionRun:
    """The daily run of the tenant the session is bound to. Creates today's notices (none on a
    day that is not a business day), records the run and `last_run_on`; the caller commits.
    Automatically approved notices are handed to the sender after commit. `dry_run` writes
    nothing and returns an unsaved run with the counts."""
    today = today or tenant_today(tenant, now)
    if dry_run:
        result = plan(session, tenant, today, any_day)
        return CollectionRun(
            run_date=today,
            dry_run=True,
            trigger=trigger,
            started_by=user_id,
            notices_created=len(result.notices),
            invoices_considered=result.considered,
            skipped=result.skipped_counts(),
        )
    session.execute(
        text("SELECT pg_advisory_xact_lock(:k, :t)"), {"k": RUN_LOCK_CLASS, "t": tenant.id % 2**31}
    )
    promises.mark_broken(session, today)
    settings = settings_of(session)
    record = CollectionRun(run_date=today, trigger=trigger, started_by=user_id)
    session.add(record)
    session.flush()
    result = plan(session, tenant, today, any_day)
    created = _write(session, result, record.id, settings.grouping, user_id)
    record.notices_created = len(created)
    record.invoices_considered = result.considered
    record.skipped = result.skipped_counts()
    record.finished_at = datetime.now(UTC)
    settings.last_run_on = today
    session.flush()
    approved = [notice_id for notice_id, status in created if status == "approved"]
    if approved:
        hand_over(session, "send_notices", approved, tenant_id=tenant.id)
    return record


def _write(
    session: Session, result: Plan, run_id: int, grouping: str, actor: int | None
) -> list[tuple[int, str]]:
    """Insert the planned notices and their invoices; returns (id, status) of those kept."""
    notices = result.notices
    if not notices:
        return []

    def column(name):
        return [getattr(notice, name) for notice in notices]

    ids = (
        session.execute(
            _sql(session, INSERT_NOTICES_SQL),
            {
                "grouping": grouping,
                "run_id": run_id,
                "today": result.today,
                # The notices' own fields start at their defaults (Settings → Custom fields).
                "custom_fields": json.dumps(values_for_new_record(session, "notices", None)),
                **{
                    name: column(name)
                    for name in (
                        "client_id",
                        "policy_id",
                        "level_id",
                        "level_number",
                        "level_name",
                        "channel",
                        "currency",
                        "status",
                        "reason",
                        "amount_due",
                        "fee_amount",
                        "contact_id",
                        "assigned_user_id",
                    )
                },
            },
        )
        .scalars()
        .all()
    )
    items = [
        (notice_id, item)
        for notice_id, notice in zip(ids, notices, strict=True)
        for item in notice.invoices
    ]
    session.execute(
        _sql(session, INSERT_ITEMS_SQL),
        {
            "notice_id": [notice_id for notice_id, _ in items],
            "invoice_id": [item.invoice_id for _, item in items],
            "amount_due": [item.amount for _, item in items],
            "days_overdue": [item.days_overdue for _, item in items],
        },
    )
    dropped = set(session.execute(_sql(session, DROP_EMPTY_SQL), {"ids": ids}).scalars())
    kept = [
        (notice_id, notice.status)
        for notice_id, notice in zip(ids, notices, strict=True)
        if notice_id not in dropped
    ]
    emit_many(
        session,
        "notice.created",
        "notice",
        [
            (
                notice_id,
                notice_facts(
                    notice_id,
                    notice.client_id,
                    [item.invoice_id for item in notice.invoices],
                    notice.level_name,
                ),
            )
            for notice_id, notice in zip(ids, notices, strict=True)
            if notice_id not in dropped
        ],
        actor,
    )
    session.execute(
        _sql(session, AUDIT_SQL), {"actor": actor, "ids": [notice_id for notice_id, _ in kept]}
    )
    return kept
