"""A rule's actions: what each may be, how each is checked when the rule is saved and again
before it runs (a member who left, a template or endpoint deleted), and how each is applied to
a set of records given as a select of their ids.

Plain field changes (set a field, add a tag, assign a manager or collector, switch the policy,
change the terms) are ONE UPDATE each, whatever the number of records (one for an event's
record, 100,000 for a scheduled rule), changing only the rows whose value differs; the UPDATE
returns the old values, from which the audit entries and the `client.updated` events are
written as the clients' services would (a set-based write passes the audit flush by). The
"Require an invoice field" and "stop requiring" one are ONE INSERT ... SELECT (ON CONFLICT DO
NOTHING) or ONE DELETE each into the clients' `client_required_fields`, for the matched clients
(or the clients of the matched invoices), with an audit entry per client changed. The
other actions go through their areas' services record by record: holds
(app.collections.cases.holds), notifications, messages from a template (the sandboxed renderer
and the outbox), outbound webhooks (an event addressed to one endpoint).

"Require approval before a notice goes out" is not offered: approval belongs to a policy's
level (CollectionLevel.requires_approval), not to a client or an invoice; switching to a policy
whose levels need approval does it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, aliased

from app.audit.models import AuditEntry
from app.clients.models import (
    CHANNELS,
    PAYMENT_TERMS,
    STATUSES,
    Client,
    ClientRequiredField,
    Contact,
)
from app.clients.services import updated_facts
from app.collections.cases.holds import active_holds, place_hold
from app.collections.models import CollectionPolicy
from app.core.events import emit, emit_many
from app.core.terminology import term
from app.custom_fields import services as custom_fields
from app.invoicing.models import Invoice
from app.message_templates.models import MessageTemplate
from app.message_templates.rendering import TemplateProblem, message_context, render_for_channel
from app.notifications.services import notify
from app.outbox.services import queue_message
from app.webhooks.models import WebhookEndpoint
from app.webhooks.services import RULE_EVENT
from tenants.binding import ACTOR_KEY, bound_tenant_id, transaction_moment
from tenants.models import Membership, Tenant
from tenants.roles import ROLES

ACTION_LABELS = {
    "set_field": "Set a field",
    "add_tag": "Add a tag",
    "assign_manager": "Assign the engagement manager",
    "assign_collector": "Assign the collector",
    "put_on_hold": "Put collection on hold",
    "switch_policy": "Switch the collection policy",
    "change_payment_terms": "Change the payment terms",
    "notify": "Notify a member or a role",
    "send_message": "Send a message from a template",
    "call_webhook": "Call an outbound webhook",
    "require_invoice_field": "Require an invoice field for the client",
    "stop_requiring_invoice_field": "Stop requiring an invoice field for the client",
}
# Record on the client that its invoices need a custom field of invoices (or no longer do).
REQUIREMENT_ACTIONS = frozenset({"require_invoice_field", "stop_requiring_invoice_field"})
# Fields "set a field" may change (on the client, also for a rule on invoices), with their
# choices.
SETTABLE_FIELDS = {
    "status": ("Client status", STATUSES),
    "preferred_channel": ("Preferred channel", CHANNELS),
    "preferred_language": ("Preferred language", None),
}
PLAIN_ACTIONS = frozenset(
    {
        "set_field",
        "add_tag",
        "assign_manager",
        "assign_collector",
        "switch_policy",
        "change_payment_terms",
        *REQUIREMENT_ACTIONS,
    }
)
MAX_ACTIONS = 20
MAX_TAG = 40
AUDIT_SOURCE = "rule"


class ActionError(ValueError):
    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))
        self.problems = problems


def check(session: Session, entity: str, actions: Any) -> list[dict]:
    """The actions as stored, or ActionError naming each problem by its place ("Action 2")."""
    if not isinstance(actions, list) or not actions:
        raise ActionError([("Actions", "Add at least one action.")])
    if len(actions) > MAX_ACTIONS:
        raise ActionError([("Actions", f"A rule may have at most {MAX_ACTIONS} actions.")])
    problems, checked = [], []
    for position, action in enumerate(actions, start=1):
        where = f"Action {position}"
        try:
            checked.append(_check_one(action))
        except ValueError as problem:
            problems.append((where, str(problem)))
            continue
        gone = missing_reference(session, checked[-1])
        if gone:
            problems.append((where, gone))
    if problems:
        raise ActionError(problems)
    return checked


def _text(action: dict, key: str, limit: int, what: str) -> str:
    value = str(action.get(key) or "").strip()
    if not value:
        raise ValueError(f"give {what}.")
    if len(value) > limit:
        raise ValueError(f"{what} may have at most {limit} characters.")
    return value


def _id(action: dict, key: str, what: str) -> int:
    raw = str(action.get(key) or "").strip()
    if not raw.isdigit():
        raise ValueError(f"choose {what}.")
    return int(raw)


def _check_one(action: Any) -> dict:
    if not isinstance(action, dict) or action.get("type") not in ACTION_LABELS:
        raise ValueError("choose what to do.")
    kind = action["type"]
    if kind == "set_field":
        name = action.get("field")
        if name not in SETTABLE_FIELDS:
            raise ValueError("choose a field to set.")
        value = _text(action, "value", 16, "a value")
        choices = SETTABLE_FIELDS[name][1]
        if choices and value not in choices:
            raise ValueError(f"{SETTABLE_FIELDS[name][0]} is one of {', '.join(choices)}.")
        return {"type": kind, "field": name, "value": value}
    if kind == "add_tag":
        return {"type": kind, "tag": _text(action, "tag", MAX_TAG, "a tag")}
    if kind in ("assign_manager", "assign_collector"):
        return {"type": kind, "user_id": _id(action, "user_id", "a member")}
    if kind == "put_on_hold":
        days = str(action.get("days") or "").strip()
        if days and (not days.isdigit() or not 1 <= int(days) <= 365):
            raise ValueError("a hold lasts 1 to 365 days, or leave it empty for no end.")
        return {
            "type": kind,
            "reason": _text(action, "reason", 500, "the reason for the hold"),
            "days": int(days) if days else None,
        }
    if kind == "switch_policy":
        return {"type": kind, "policy_id": _id(action, "policy_id", "a collection policy")}
    if kind == "change_payment_terms":
        terms = action.get("terms")
        if terms not in PAYMENT_TERMS:
            raise ValueError("choose the payment terms.")
        days = str(action.get("days") or "").strip()
        if terms in ("net", "mfi"):
            if not days.isdigit() or not 0 <= int(days) <= 365:
                raise ValueError("give the payment days, 0 to 365.")
            return {"type": kind, "terms": terms, "days": int(days)}
        return {"type": kind, "terms": terms, "days": None}
    if kind == "notify":
        role = str(action.get("role") or "").strip()
        if role:
            if role not in ROLES:
                raise ValueError("choose a role.")
            return {"type": kind, "role": role}
        return {"type": kind, "user_id": _id(action, "user_id", "a member or a role")}
    if kind == "send_message":
        return {"type": kind, "template_id": _id(action, "template_id", "a message template")}
    if kind in REQUIREMENT_ACTIONS:
        key = str(action.get("field_key") or "").strip()
        if not key:
            raise ValueError("choose a field of invoices.")
        return {"type": kind, "field_key": key[:40]}
    return {"type": kind, "endpoint_id": _id(action, "endpoint_id", "a webhook endpoint")}


def missing_reference(session: Session, action: dict) -> str | None:
    """Why `action` can no longer run (a member who left, a deleted template, policy or
    endpoint), in plain words; None when all it names is there."""
    user_id = action.get("user_id")
    if user_id is not None and not _is_member(session, user_id):
        return "The member it names is no longer in this workspace."
    if action["type"] == "switch_policy":
        policy = session.get(CollectionPolicy, action["policy_id"])
        if policy is None or policy.deleted_at is not None:
            return "The collection policy it names was deleted."
    if action["type"] == "send_message":
        template = session.get(MessageTemplate, action["template_id"])
        if template is None or template.deleted_at is not None:
            return "The message template it sends was deleted."
    if (
        action["type"] == "call_webhook"
        and session.get(WebhookEndpoint, action["endpoint_id"]) is None
    ):
        return "The webhook endpoint it calls was deleted."
    if action["type"] in REQUIREMENT_ACTIONS and action["field_key"] not in invoice_fields(session):
        return "The invoice field it names is archived or does not exist."
    return None


def invoice_fields(session: Session) -> dict[str, str]:
    """The live custom fields of invoices: {key: label}."""
    return {field.key: field.label for field in custom_fields.definitions(session, "invoices")}


def _is_member(session: Session, user_id: int) -> bool:
    return (
        session.scalar(
            select(Membership.id).where(
                Membership.tenant_id == bound_tenant_id(session),
                Membership.user_id == user_id,
                Membership.active.is_(True),
            )
        )
        is not None
    )


def describe(action: dict, names: dict[str, dict]) -> str:
    """The action in words (names: members, templates, policies, endpoints by id)."""
    kind = action["type"]
    if kind == "set_field":
        return f"Set {SETTABLE_FIELDS[action['field']][0].lower()} to {action['value']}"
    if kind == "add_tag":
        return f"Add the tag “{action['tag']}”"
    if kind in ("assign_manager", "assign_collector"):
        who = names["members"].get(action["user_id"], "a member who left")
        role = "engagement manager" if kind == "assign_manager" else "collector"
        return f"Make {who} the {role}"
    if kind == "put_on_hold":
        span = f" for {action['days']} days" if action.get("days") else ""
        return f"Put collection on hold{span}: {action['reason']}"
    if kind == "switch_policy":
        return f"Switch to the policy {names['policies'].get(action['policy_id'], '(deleted)')}"
    if kind == "change_payment_terms":
        days = f" {action['days']} days" if action.get("days") is not None else ""
        return f"Change the payment terms to {action['terms']}{days}"
    if kind == "notify":
        if action.get("role"):
            return f"Notify every {action['role']}"
        return f"Notify {names['members'].get(action['user_id'], 'a member who left')}"
    if kind in REQUIREMENT_ACTIONS:
        label = names["invoice_fields"].get(action["field_key"], action["field_key"])
        if kind == "require_invoice_field":
            return f"Require “{label}” on the {term('client')}'s invoices"
        return f"Stop requiring “{label}” on the {term('client')}'s invoices"
    if kind == "send_message":
        return f"Send the message {names['templates'].get(action['template_id'], '(deleted)')}"
    return f"Call the webhook {names['endpoints'].get(action['endpoint_id'], '(deleted)')}"


# -- applying -------------------------------------------------------------------------------


@dataclass
class RunContext:
    """What the actions of one run need: the rule, the run's key (for idempotency and
    notifications), the day, and whether this run is one event's (per-record notifications)."""

    rule_id: int
    rule_name: str
    entity: str
    run_key: str
    today: date
    for_event: bool


def _target(entity: str, action: dict, ids: Select) -> tuple[Any, Select]:
    """The table a plain action changes and the ids of its rows: the records themselves, or
    the clients of the invoices matched (everything but a switch of an invoice's policy)."""
    if entity == "invoices" and action["type"] != "switch_policy":
        matched = ids.subquery()
        return Client, select(Invoice.client_id).where(Invoice.id.in_(select(matched.c.id)))
    return (Client if entity == "clients" else Invoice), ids


def _changes(model, action: dict) -> dict[str, Any]:
    """The column values a plain action sets (an expression for tags: appended once)."""
    kind = action["type"]
    if kind == "set_field":
        return {action["field"]: action["value"]}
    if kind == "add_tag":
        return {"tags": func.array_append(Client.tags, action["tag"])}
    if kind == "assign_manager":
        return {"engagement_manager_user_id": action["user_id"]}
    if kind == "assign_collector":
        return {"collector_user_id": action["user_id"]}
    if kind == "switch_policy":
        return {"collection_policy_id": action["policy_id"]}
    return {"payment_terms": action["terms"], "payment_days": action["days"]}


def _differs(model, action: dict):
    """Only rows the action would change are updated (an unchanged row is no change)."""
    if action["type"] == "add_tag":
        return ~model.tags.contains([action["tag"]])
    conditions = [
        getattr(model, column).is_distinct_from(value)
        for column, value in _changes(model, action).items()
    ]
    return or_(*conditions)


def would_change(session: Session, entity: str, action: dict, ids: Select) -> set[int]:
    """The ids of the target rows a plain action would change (the dry run)."""
    model, target_ids = _target(entity, action, ids)
    if action["type"] in REQUIREMENT_ACTIONS:
        return set(session.scalars(_requirement_changes(action, target_ids)))
    return set(
        session.scalars(select(model.id).where(model.id.in_(target_ids), _differs(model, action)))
    )


def apply_plain(session: Session, entity: str, action: dict, ids: Select) -> int:
    """One UPDATE for every matched record, returning the old values for the audit entries
    and the clients' `client.updated` events. Returns how many rows changed."""
    model, target_ids = _target(entity, action, ids)
    if action["type"] in REQUIREMENT_ACTIONS:
        return _apply_requirement(session, action, target_ids)
    values = _changes(model, action)
    before = aliased(model)
    old_columns = [getattr(before, column).label(f"old_{column}") for column in values]
    old = (
        select(before.id, *old_columns)
        .where(before.id.in_(target_ids), _differs(before, action))
        .subquery()
    )
    rows = session.execute(
        update(model)
        .where(model.id == old.c.id)
        .values(values)
        .returning(
            model.id,
            *(getattr(old.c, f"old_{column}") for column in values),
            *(getattr(model, column) for column in values),
            *([Client.short_name] if model is Client else [Invoice.client_id]),
        ),
        execution_options={"synchronize_session": False},
    ).all()
    if not rows:
        return 0
    _forget_loaded(session, model, {row[0] for row in rows})
    columns = list(values)
    width = len(columns)
    entries = []
    for row in rows:
        changes = {
            column: [_plain(row[1 + i]), _plain(row[1 + width + i])]
            for i, column in enumerate(columns)
        }
        subject_client = row[0] if model is Client else row[1 + 2 * width]
        entries.append(
            {
                "occurred_at": transaction_moment(session),
                "actor_user_id": session.info.get(ACTOR_KEY),
                "source": AUDIT_SOURCE,
                "action": "update",
                "entity": model.__tablename__,
                "entity_id": str(row[0]),
                "subject": f"clients:{subject_client}",
                "changes": changes,
            }
        )
    for start in range(0, len(entries), 5_000):
        session.execute(AuditEntry.__table__.insert(), entries[start : start + 5_000])
    if model is Client:
        emit_many(
            session,
            "client.updated",
            "client",
            [(row[0], updated_facts(row[0], row[1 + 2 * width], sorted(columns))) for row in rows],
        )
    return len(rows)


def _requirement_changes(action: dict, client_ids: Select) -> Select:
    """The ids of the clients a requirement action would change: those without the
    requirement (require) or with it (stop requiring)."""
    held = select(ClientRequiredField.client_id).where(
        ClientRequiredField.field_key == action["field_key"]
    )
    holds = Client.id.in_(held)
    wanted = ~holds if action["type"] == "require_invoice_field" else holds
    return select(Client.id).where(Client.id.in_(client_ids), wanted)


def _apply_requirement(session: Session, action: dict, client_ids: Select) -> int:
    """One INSERT ... SELECT (a client holding the requirement already is left alone by the
    primary key) or one DELETE for every matched client, then one audit entry per client
    changed. Returns how many clients changed."""
    table = ClientRequiredField.__table__
    key = action["field_key"]
    if action["type"] == "require_invoice_field":
        statement = (
            pg_insert(table)
            .from_select(
                ["client_id", "field_key"],
                select(Client.id, literal(key)).where(Client.id.in_(client_ids)),
            )
            .on_conflict_do_nothing()
            .returning(table.c.client_id)
        )
        change = [None, key]
    else:
        statement = (
            delete(table)
            .where(table.c.field_key == key, table.c.client_id.in_(client_ids))
            .returning(table.c.client_id)
        )
        change = [key, None]
    changed = list(session.scalars(statement))
    entries = [
        {
            "occurred_at": transaction_moment(session),
            "actor_user_id": session.info.get(ACTOR_KEY),
            "source": AUDIT_SOURCE,
            "action": "update",
            "entity": "clients",
            "entity_id": str(client_id),
            "subject": f"clients:{client_id}",
            "changes": {"invoice_field_required": change},
        }
        for client_id in changed
    ]
    for start in range(0, len(entries), 5_000):
        session.execute(AuditEntry.__table__.insert(), entries[start : start + 5_000])
    return len(changed)


def _forget_loaded(session: Session, model, changed_ids: set[int]) -> None:
    """Records of the session loaded before the UPDATE are read again when next used (the
    UPDATE went past them)."""
    for loaded in list(session.identity_map.values()):
        if isinstance(loaded, model) and loaded.id in changed_ids:
            session.expire(loaded)


def _plain(value):
    return list(value) if isinstance(value, list | tuple) else value


def apply_per_record(
    session: Session, run: RunContext, action: dict, record_ids: Sequence[int]
) -> int:
    """Holds, notifications, messages and webhooks, through their areas' services. Returns
    how many records it acted on."""
    kind = action["type"]
    if kind == "notify":
        return _notify(session, run, action, record_ids)
    if kind == "call_webhook":
        facts = [
            (
                record_id,
                {
                    "endpoint_id": action["endpoint_id"],
                    "rule_id": run.rule_id,
                    "rule": run.rule_name[:500],
                    "entity": run.entity,
                    "record_id": record_id,
                },
            )
            for record_id in record_ids
        ]
        subject = "client" if run.entity == "clients" else "invoice"
        if len(facts) == 1:
            emit(session, RULE_EVENT, subject, *facts[0])
            return 1
        return emit_many(session, RULE_EVENT, subject, facts)
    acted = 0
    for record_id in record_ids:
        client, invoice = _records(session, run.entity, record_id)
        if kind == "put_on_hold":
            acted += _hold(session, run, action, client, invoice)
        else:
            acted += _send_message(session, run, action, client, invoice)
    return acted


def _records(session: Session, entity: str, record_id: int) -> tuple[Client, Invoice | None]:
    if entity == "clients":
        return session.get(Client, record_id), None
    invoice = session.get(Invoice, record_id)
    return session.get(Client, invoice.client_id), invoice


def _hold(session, run: RunContext, action: dict, client: Client, invoice: Invoice | None) -> int:
    """A hold, unless one already covers the record (a rule run daily holds once)."""
    for hold in active_holds(session, client.id, run.today):
        if hold.invoice_id is None or (invoice is not None and hold.invoice_id == invoice.id):
            return 0
    ends = run.today + timedelta(days=action["days"]) if action.get("days") else None
    place_hold(
        session,
        client,
        {
            "reason": f"{action['reason']} (rule “{run.rule_name}”)"[:500],
            "invoice_id": str(invoice.id) if invoice is not None else "",
            "starts_on": run.today.isoformat(),
            "ends_on": ends.isoformat() if ends else "",
        },
        run.today,
        user_id=None,
    )
    return 1


def _recipients(session: Session, action: dict) -> list[int]:
    if action.get("role"):
        return list(
            session.scalars(
                select(Membership.user_id).where(
                    Membership.tenant_id == bound_tenant_id(session),
                    Membership.role == action["role"],
                    Membership.active.is_(True),
                )
            )
        )
    return [action["user_id"]]


def _notify(session, run: RunContext, action: dict, record_ids: Sequence[int]) -> int:
    """For an event: one notification per record. For a scheduled run: one for the run, with
    how many records matched (a daily rule must not bury people in notifications)."""
    recipients = _recipients(session, action)
    noun = "client" if run.entity == "clients" else "invoice"
    if run.for_event:
        for record_id in record_ids:
            notify(
                session,
                recipients,
                "info",
                f"Rule “{run.rule_name}” matched a {noun}",
                body=f"{noun.capitalize()} #{record_id}",
                dedupe_key=f"rule:{run.rule_id}:{run.run_key}:{record_id}"[:128],
            )
        return len(record_ids)
    notify(
        session,
        recipients,
        "info",
        f"Rule “{run.rule_name}” matched {len(record_ids):,} {noun}s today",
        dedupe_key=f"rule:{run.rule_id}:{run.run_key}"[:128],
    )
    return len(record_ids)


def _contact_for(session: Session, client: Client, channel: str) -> tuple[Contact, str] | None:
    contacts = sorted(client.contacts, key=lambda c: ("billing" not in (c.roles or []), c.id))
    for contact in contacts:
        address = contact.email if channel == "email" else contact.phone
        if address:
            return contact, address
    return None


def _send_message(session, run: RunContext, action: dict, client, invoice) -> int:
    template = session.get(MessageTemplate, action["template_id"])
    found = _contact_for(session, client, template.channel)
    if found is None:
        raise LookupError(f"{client.full_name} has no contact to send a {template.channel} to.")
    contact, address = found
    tenant_id = bound_tenant_id(session)
    tenant = session.get(Tenant, tenant_id)
    try:
        rendered = render_for_channel(
            template, message_context(session, tenant, client, contact, invoice)
        )
    except TemplateProblem as problem:
        raise LookupError(f"The template {template.name} cannot be used: {problem}") from None
    record = invoice.id if invoice is not None else client.id
    queued = queue_message(
        session,
        channel=template.channel,
        to=address,
        subject=rendered.subject,
        text_body=rendered.text,
        html_body=rendered.html,
        payload=rendered.payload(),
        tenant_id=tenant_id,
        client_id=client.id,
        contact_id=contact.id,
        idempotency_key=f"t{tenant_id}:rule:{run.rule_id}:{run.run_key}:{record}",
    )
    return int(queued is not None)
