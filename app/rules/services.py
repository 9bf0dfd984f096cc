"""Rules: saving them (checked, every change a new version), running them (the daily job's
scheduled rules, set-based; the "rules" consumer's event-triggered rules, one record at a
time), the dry run, and turning off a rule whose field, member, template, policy or endpoint
is gone (with the reason shown, never a crashed run).

Each action runs in its own savepoint: one that fails is rolled back alone, written to the
run's log with its message, and the others still run.

Loop safety: before a rule's actions run for an event, the consumer notes the last event its
own transaction wrote; afterwards, every event its transaction wrote since (the actions' own
`client.updated`, holds...) is recorded in `rule_caused_events` with the rule and with every
rule that caused the event being handled. The consumer never runs a rule for an event recorded
with it, so an action's change never retriggers its rule, also not through other rules
(A's change triggers B, whose change would trigger A)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, false, func, insert, not_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.collections.models import CollectionPolicy
from app.core.clock import tenant_today
from app.core.event_types import EVENT_TYPES, event_type_names
from app.core.events import DomainEvent
from app.core.terminology import reworded, worded
from app.invoicing.models import Invoice
from app.message_templates.models import MessageTemplate
from app.rules import actions as rule_actions
from app.rules import conditions
from app.rules.models import (
    ENTITIES,
    OVERDUE,
    SCHEDULE,
    SCHEDULED_TRIGGERS,
    Rule,
    RuleCausedEvent,
    RuleRun,
    RuleVersion,
)
from app.webhooks.models import WebhookEndpoint
from app.webhooks.services import RULE_EVENT, TEST_EVENT
from tenants.binding import bound_tenant_id
from tenants.models import Membership, User

log = logging.getLogger(__name__)

CONSUMER = "rules"
ENTITY_LABELS = {"clients": "{Clients}", "invoices": "Invoices"}  # "{Clients}": see worded()
DRY_RUN_SHOWN = 50
MAX_NAME = 120
# Events no rule reacts to: a rule's own webhook call and an admin's webhook test.
_NOT_TRIGGERS = frozenset({RULE_EVENT, TEST_EVENT})
# The current transaction's id, as `domain_events.txid` holds it.
_OWN_TRANSACTION = text("pg_current_xact_id()::text::bigint")


class RuleInvalid(ValueError):
    """Per form field ("name", "trigger"...), and the conditions' and actions' problems by
    their place."""

    def __init__(self, errors: dict[str, str], conditions=(), actions=()):
        super().__init__(str(errors))
        self.errors = errors
        self.condition_problems = list(conditions)
        self.action_problems = list(actions)


def _record_key(entity: str) -> str:
    return "client_id" if entity == "clients" else "invoice_id"


def trigger_choices(entity: str) -> list[tuple[str, str]]:
    """(trigger, label) a rule on `entity` may have: every day, N days overdue (invoices),
    and the domain events that name such a record."""
    choices = [(SCHEDULE, "Every day (scheduled)")]
    if entity == "invoices":
        choices.append((OVERDUE, "When an invoice becomes N days overdue"))
    key = _record_key(entity)
    latest = {name: schema for (name, _), schema in sorted(EVENT_TYPES.items())}
    for name in event_type_names():
        schema = latest[name]
        if name in _NOT_TRIGGERS or key not in schema["properties"]:
            continue
        if entity == "invoices" and key not in schema["required"]:
            continue
        # The event's description in the workspace's words ("When a customer was added").
        described = reworded(schema["description"])
        if not described[1:2].isupper():  # "GST Job ..." keeps its capitals
            described = described[0].lower() + described[1:]
        choices.append((name, f"When {described}"))
    return choices


def trigger_label(rule: Rule) -> str:
    if rule.trigger == OVERDUE:
        return f"When an invoice becomes {rule.overdue_days} days overdue"
    return dict(trigger_choices(rule.entity)).get(rule.trigger, rule.trigger)


# -- saving ---------------------------------------------------------------------------------


def check_rule(session: Session, raw: dict) -> dict:
    """The values of a rule to save, or RuleInvalid. `raw`: name, entity, trigger,
    overdue_days, conditions (a tree), actions (a list), priority, stop_after, enabled."""
    errors: dict[str, str] = {}
    name = str(raw.get("name") or "").strip()
    if not name:
        errors["name"] = "Give the rule a name."
    elif len(name) > MAX_NAME:
        errors["name"] = f"At most {MAX_NAME} characters."
    entity = raw.get("entity")
    if entity not in ENTITIES:
        errors["entity"] = worded("Choose {clients} or invoices.")
        entity = "clients"
    trigger = raw.get("trigger")
    overdue_days = None
    if trigger not in dict(trigger_choices(entity)):
        errors["trigger"] = "Choose when the rule runs."
    elif trigger == OVERDUE:
        days = str(raw.get("overdue_days") or "").strip()
        if not days.isdigit() or not 1 <= int(days) <= 3650:
            errors["overdue_days"] = "Give the days overdue, 1 to 3650."
        else:
            overdue_days = int(days)
    priority = str(raw.get("priority") if raw.get("priority") is not None else "100").strip()
    if not priority.isdigit() or int(priority) > 10_000:
        errors["priority"] = "A whole number from 0 to 10000; lower runs first."
    condition_problems, action_problems = [], []
    tree = actions = None
    try:
        tree = conditions.check(entity, raw.get("conditions") or {"all": []})
    except conditions.ConditionError as problem:
        condition_problems = problem.problems
    try:
        actions = rule_actions.check(session, entity, raw.get("actions"))
    except rule_actions.ActionError as problem:
        action_problems = problem.problems
    if errors or condition_problems or action_problems:
        raise RuleInvalid(errors, condition_problems, action_problems)
    return {
        "name": name,
        "entity": entity,
        "trigger": trigger,
        "overdue_days": overdue_days,
        "conditions": tree,
        "actions": actions,
        "priority": int(priority),
        "stop_after": bool(raw.get("stop_after")),
        "enabled": bool(raw.get("enabled", True)),
    }


_VERSIONED = (
    "name",
    "entity",
    "trigger",
    "overdue_days",
    "conditions",
    "actions",
    "enabled",
    "priority",
    "stop_after",
)
_CHANGE_WORDS = {
    "name": "name",
    "entity": "records",
    "trigger": "trigger",
    "overdue_days": "days overdue",
    "conditions": "conditions",
    "actions": "actions",
    "enabled": "on/off",
    "priority": "priority",
    "stop_after": "stop rule",
}


def _new_version(session: Session, rule: Rule, change: str, user_id: int | None) -> None:
    session.flush()
    session.add(
        RuleVersion(
            rule_id=rule.id,
            version=rule.version,
            change=change[:255],
            changed_by=user_id,
            **{key: getattr(rule, key) for key in _VERSIONED},
        )
    )
    session.flush()


def create_rule(session: Session, raw: dict, user_id: int | None) -> Rule:
    values = check_rule(session, raw)
    rule = Rule(**values, version=1, created_by=user_id)
    session.add(rule)
    _new_version(session, rule, "Created", user_id)
    return rule


def update_rule(session: Session, rule: Rule, raw: dict, user_id: int | None) -> Rule:
    """A new version when anything changed (a save with no change makes none). Saving a rule
    Duebook turned off clears the reason: its references were checked again."""
    values = check_rule(session, raw)
    changed = [key for key in _VERSIONED if getattr(rule, key) != values[key]]
    if not changed and rule.disabled_reason is None:
        return rule
    for key in changed:
        setattr(rule, key, values[key])
    rule.disabled_reason = None
    _bump(rule)
    words = ", ".join(_CHANGE_WORDS[key] for key in changed) or "checked again"
    _new_version(session, rule, f"Changed: {words}", user_id)
    return rule


def _bump(rule: Rule) -> None:
    rule.version += 1
    rule.updated_at = datetime.now(UTC)


def set_enabled(session: Session, rule: Rule, enabled: bool, user_id: int | None) -> str | None:
    """Turn a rule on or off; a rule whose references are gone cannot be turned on (the
    reason is returned and shown)."""
    if enabled:
        problem = problem_with(session, rule)
        if problem:
            return problem
    if rule.enabled == enabled and (enabled or rule.disabled_reason is None):
        return None
    rule.enabled, rule.disabled_reason = enabled, None
    _bump(rule)
    _new_version(session, rule, "Turned on" if enabled else "Turned off", user_id)
    return None


def set_priority(session: Session, rule: Rule, raw: str, user_id: int | None) -> str | None:
    raw = str(raw or "").strip()
    if not raw.isdigit() or int(raw) > 10_000:
        return "A whole number from 0 to 10000; lower runs first."
    if rule.priority != int(raw):
        rule.priority = int(raw)
        _bump(rule)
        _new_version(session, rule, f"Priority set to {rule.priority}", user_id)
    return None


def problem_with(session: Session, rule: Rule) -> str | None:
    """Why `rule` cannot run any more (a field archived, a member left, a template, policy or
    endpoint deleted), in plain words; None when all it names is there."""
    for path in sorted(conditions.paths_in(rule.conditions)):
        if conditions.resolve(rule.entity, path) is None:
            return f"The field “{path}” it looks at no longer exists (archived or removed)."
    for position, action in enumerate(rule.actions, start=1):
        gone = rule_actions.missing_reference(session, action)
        if gone:
            return f"Action {position}: {gone}"
    return None


def turn_off(session: Session, rule: Rule, reason: str) -> None:
    """Duebook turns a rule off; the reason shows on the rules page."""
    rule.enabled, rule.disabled_reason = False, reason
    _bump(rule)
    _new_version(session, rule, f"Turned off by Duebook: {reason}", None)


def check_all(session: Session) -> int:
    """Turn off every enabled rule that can no longer run (the page does this each time it
    lists them, so a rule shows why before its next run). Returns how many."""
    turned = 0
    for rule in session.scalars(select(Rule).where(Rule.enabled.is_(True))):
        problem = problem_with(session, rule)
        if problem:
            turn_off(session, rule, problem)
            turned += 1
    return turned


def list_rules(session: Session) -> list[Rule]:
    return list(session.scalars(select(Rule).order_by(Rule.priority, Rule.id)))


def get_rule(session: Session, rule_id: int) -> Rule | None:
    return session.get(Rule, rule_id)


def versions_of(session: Session, rule: Rule) -> list[RuleVersion]:
    return list(
        session.scalars(
            select(RuleVersion)
            .where(RuleVersion.rule_id == rule.id)
            .order_by(RuleVersion.version.desc())
        )
    )


def recent_runs(session: Session, rule: Rule, limit: int = 20) -> list[RuleRun]:
    return list(
        session.scalars(
            select(RuleRun)
            .where(RuleRun.rule_id == rule.id)
            .order_by(RuleRun.id.desc())
            .limit(limit)
        )
    )


def last_runs(session: Session) -> dict[int, RuleRun]:
    latest = select(func.max(RuleRun.id)).group_by(RuleRun.rule_id).scalar_subquery()
    return {
        run.rule_id: run for run in session.scalars(select(RuleRun).where(RuleRun.id.in_(latest)))
    }


def names(session: Session) -> dict[str, dict]:
    """Names of what actions refer to, by id: members, templates, policies, endpoints."""
    tenant_id = bound_tenant_id(session)
    return {
        "members": dict(
            session.execute(
                select(User.id, User.full_name)
                .join(Membership, Membership.user_id == User.id)
                .where(Membership.tenant_id == tenant_id)
            ).all()
        ),
        "templates": dict(session.execute(select(MessageTemplate.id, MessageTemplate.name)).all()),
        "policies": dict(session.execute(select(CollectionPolicy.id, CollectionPolicy.name)).all()),
        "endpoints": dict(session.execute(select(WebhookEndpoint.id, WebhookEndpoint.url)).all()),
        "invoice_fields": rule_actions.invoice_fields(session),
    }


# -- running --------------------------------------------------------------------------------


def effective_tree(rule: Rule) -> dict:
    """The rule's conditions, with "N days overdue" for an overdue trigger: the day an invoice
    reaches N days past due (the daily job runs each day once)."""
    if rule.trigger != OVERDUE:
        return rule.conditions
    reached = {"field": "days_overdue", "op": "equals", "value": str(rule.overdue_days)}
    return {"all": [reached, rule.conditions]}


def _base(entity: str):
    return Client if entity == "clients" else Invoice


def _apply_actions(
    session: Session, rule: Rule, run: rule_actions.RunContext, ids: Select, record_ids: list[int]
) -> tuple[int, list[dict]]:
    """Each action in its own savepoint; returns (records changed, failures)."""
    changed, failures = 0, []
    for position, action in enumerate(rule.actions, start=1):
        try:
            with session.begin_nested():
                if action["type"] in rule_actions.PLAIN_ACTIONS:
                    changed += rule_actions.apply_plain(session, rule.entity, action, ids)
                else:
                    changed += rule_actions.apply_per_record(session, run, action, record_ids)
        except Exception as problem:  # noqa: BLE001  (reported in the run log; the rest runs)
            log.warning("rule %s action %s failed: %s", rule.id, position, problem)
            failures.append({"action": position, "type": action["type"], "message": _said(problem)})
    return changed, failures


def _said(problem: Exception) -> str:
    message = str(problem).strip().splitlines()[0] if str(problem).strip() else ""
    return (message or type(problem).__name__)[:500]


@dataclass
class ScheduledOutcome:
    ran: list[RuleRun] = field(default_factory=list)
    turned_off: list[tuple[int, str]] = field(default_factory=list)


def run_scheduled_rules(session: Session, today: date | None = None) -> ScheduledOutcome:
    """The daily run: every enabled scheduled rule, by priority, once per day each (a second
    run the same day does nothing for a rule that ran). Each rule's matches are ONE select,
    its plain actions one UPDATE each. A rule that can no longer run is turned off with the
    reason; a rule that fails as a whole is logged and the next one runs."""
    today = today or tenant_today(session)
    outcome = ScheduledOutcome()
    stoppers: dict[str, list] = defaultdict(list)
    rules = session.scalars(
        select(Rule)
        .where(Rule.enabled.is_(True), Rule.trigger.in_(SCHEDULED_TRIGGERS))
        .order_by(Rule.priority, Rule.id)
    ).all()
    for rule in rules:
        run_id = session.execute(
            pg_insert(RuleRun)
            .values(rule_id=rule.id, rule_version=rule.version, run_on=today)
            .on_conflict_do_nothing(
                index_elements=["rule_id", "run_on"], index_where=text("run_on IS NOT NULL")
            )
            .returning(RuleRun.id)
        ).scalar()
        if run_id is None:
            continue
        run = session.get(RuleRun, run_id)
        outcome.ran.append(run)
        problem = problem_with(session, rule)
        if problem:
            turn_off(session, rule, problem)
            outcome.turned_off.append((rule.id, problem))
            run.failures = [{"action": None, "type": "rule", "message": problem}]
            run.finished_at = datetime.now(UTC)
            continue
        try:
            with session.begin_nested():
                predicate = conditions.compile_tree(rule.entity, effective_tree(rule), today)
                for earlier in stoppers[rule.entity]:
                    predicate = predicate & not_(func.coalesce(earlier, false()))
                ids = conditions.scope(rule.entity).where(predicate)
                record_ids = list(session.scalars(ids))
        except Exception as problem:  # noqa: BLE001  (a broken rule never stops the run)
            log.exception("rule %s could not select its records", rule.id)
            run.failures = [{"action": None, "type": "rule", "message": _said(problem)}]
            run.finished_at = datetime.now(UTC)
            continue
        context = rule_actions.RunContext(
            rule.id, rule.name, rule.entity, f"day:{today.isoformat()}", today, for_event=False
        )
        changed, failures = (0, [])
        if record_ids:
            changed, failures = _apply_actions(session, rule, context, ids, record_ids)
        run.matched, run.changed, run.failures = len(record_ids), changed, failures
        run.finished_at = datetime.now(UTC)
        if rule.stop_after:
            stoppers[rule.entity].append(
                conditions.compile_tree(rule.entity, effective_tree(rule), today)
            )
    session.flush()
    return outcome


def _last_own_event(session: Session) -> int:
    """The last event the current transaction wrote (ix_domain_events_txid_id finds it)."""
    return session.scalar(
        select(func.coalesce(func.max(DomainEvent.id), 0)).where(
            DomainEvent.txid == _OWN_TRANSACTION
        )
    )


def apply_events(session: Session, events: Sequence[DomainEvent]) -> None:
    """The "rules" consumer: for each event, the enabled rules it triggers, by priority, over
    the record it names (its facts read once per record and again after a rule changed it)."""
    rules = session.scalars(
        select(Rule)
        .where(Rule.enabled.is_(True), Rule.trigger.not_in(SCHEDULED_TRIGGERS))
        .order_by(Rule.priority, Rule.id)
    ).all()
    by_trigger: dict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        by_trigger[rule.trigger].append(rule)
    wanted = [event for event in events if event.type in by_trigger]
    if not wanted:
        return
    caused: dict[int, set[int]] = defaultdict(set)
    for event_id, rule_id in session.execute(
        select(RuleCausedEvent.event_id, RuleCausedEvent.rule_id).where(
            RuleCausedEvent.event_id.in_([event.id for event in wanted])
        )
    ):
        caused[event_id].add(rule_id)
    today = tenant_today(session)
    for event in wanted:
        for entity in ENTITIES:
            candidates = [rule for rule in by_trigger[event.type] if rule.entity == entity]
            record_id = event.data.get(_record_key(entity))
            if candidates and record_id:
                _run_for_event(session, event, entity, record_id, candidates, caused, today)


def _run_for_event(
    session: Session,
    event: DomainEvent,
    entity: str,
    record_id: int,
    candidates: list[Rule],
    caused: dict[int, set[int]],
    today: date,
) -> None:
    chain = caused.get(event.id, set())
    facts = None
    for rule in candidates:
        if rule.id in chain or not rule.enabled:
            continue  # its own run caused this event (directly or through other rules)
        paths = conditions.paths_in(rule.conditions)
        try:
            if facts is None or not paths <= facts.keys():
                all_paths = set().union(*(conditions.paths_in(r.conditions) for r in candidates))
                facts = conditions.record_facts(session, entity, record_id, all_paths, today)
            if facts is None:
                return  # the record is out of scope (deleted, a draft)
            matched = conditions.evaluate(entity, rule.conditions, facts)
        except conditions.FieldGone:
            turn_off(session, rule, problem_with(session, rule) or "A field it looks at is gone.")
            facts = None
            continue
        if not matched:
            continue
        problem = problem_with(session, rule)
        if problem:
            turn_off(session, rule, problem)
            continue
        run = RuleRun(rule_id=rule.id, rule_version=rule.version, event_id=event.id, matched=1)
        session.add(run)
        session.flush()
        before = _last_own_event(session)
        context = rule_actions.RunContext(
            rule.id, rule.name, entity, f"event:{event.id}", today, for_event=True
        )
        ids = conditions.scope(entity).where(_base(entity).id == record_id)
        run.changed, run.failures = _apply_actions(session, rule, context, ids, [record_id])
        run.finished_at = datetime.now(UTC)
        _record_caused(session, before, chain | {rule.id})
        facts = None  # the actions may have changed what the next rule reads
        if rule.stop_after:
            return


def _record_caused(session: Session, after_event_id: int, rule_ids: Iterable[int]) -> None:
    """Every event this transaction wrote since `after_event_id`, with each rule of the
    chain that caused it."""
    rule_list = sorted(set(rule_ids))
    new_events = select(DomainEvent.id).where(
        DomainEvent.txid == _OWN_TRANSACTION,
        DomainEvent.id > after_event_id,
    )
    event_ids = list(session.scalars(new_events))
    if event_ids:
        session.execute(
            insert(RuleCausedEvent),
            [{"event_id": e, "rule_id": r} for e in event_ids for r in rule_list],
        )


# -- dry run --------------------------------------------------------------------------------


@dataclass
class DryRunRecord:
    record_id: int
    label: str
    changes: list[str]


@dataclass
class DryRun:
    matched: int
    records: list[DryRunRecord]
    changes_in_all: list[tuple[str, int | None]]  # (action in words, records it would change)
    problem: str | None = None


def dry_run(session: Session, rule: Rule, today: date | None = None) -> DryRun:
    """Which records the rule matches today and what its actions would change, changing
    nothing: the count, the first DRY_RUN_SHOWN records with their changes, and per plain
    action how many of all the matched records it would change."""
    today = today or tenant_today(session)
    problem = problem_with(session, rule)
    if problem:
        return DryRun(0, [], [], problem)
    ids = conditions.matching_ids(rule.entity, effective_tree(rule), today)
    matched = session.scalar(select(func.count()).select_from(ids.subquery())) or 0
    shown_ids = list(session.scalars(ids.order_by(_base(rule.entity).id).limit(DRY_RUN_SHOWN)))
    labels, client_of = _labels(session, rule.entity, shown_ids)
    said = names(session)
    records = {rid: DryRunRecord(rid, labels[rid], []) for rid in shown_ids}
    shown = select(_base(rule.entity).id).where(_base(rule.entity).id.in_(shown_ids))
    summary = []
    for action in rule.actions:
        words = rule_actions.describe(action, said)
        if action["type"] in rule_actions.PLAIN_ACTIONS:
            would = rule_actions.would_change(session, rule.entity, action, shown)
            for rid, record in records.items():
                target = rid if _targets_record(rule.entity, action) else client_of.get(rid)
                if target in would:
                    record.changes.append(words)
            summary.append(
                (words, len(rule_actions.would_change(session, rule.entity, action, ids)))
            )
        else:
            for record in records.values():
                record.changes.append(words)
            summary.append((words, None))
    return DryRun(matched, list(records.values()), summary)


def _targets_record(entity: str, action: dict) -> bool:
    return entity == "clients" or action["type"] == "switch_policy"


def _labels(session: Session, entity: str, ids: list[int]) -> tuple[dict, dict]:
    if entity == "clients":
        rows = session.execute(select(Client.id, Client.full_name).where(Client.id.in_(ids)))
        return {rid: name for rid, name in rows}, {}
    rows = session.execute(
        select(Invoice.id, Invoice.number, Invoice.client_id, Client.full_name)
        .join(Client, Client.id == Invoice.client_id)
        .where(Invoice.id.in_(ids))
    ).all()
    return (
        {rid: f"{number} · {name}" for rid, number, _, name in rows},
        {rid: client_id for rid, _, client_id, _ in rows},
    )


def describe_value(op: str, value: Any) -> str:
    """A condition's value in words: "10 and 20" for between, "MH, KA" for one of."""
    if isinstance(value, list):
        return (" and " if op == "between" else ", ").join(map(str, value))
    return "" if value is None else str(value)
