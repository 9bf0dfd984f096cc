"""Collection settings, policies and their ladders of levels: read, validate, save. The daily
run that uses them is in `run.py`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.collections.engine import forms
from app.collections.models import CollectionLevel, CollectionPolicy, CollectionSettings
from app.collections.notices.statement import Line, statement_text, totals
from app.core.clock import tenant_today
from app.core.language import money_country
from app.core.money import format_money
from app.core.terminology import worded
from app.invoicing.balance import open_invoices
from app.invoicing.models import Invoice
from app.message_templates.rendering import (
    TemplateProblem,
    email_html,
    message_context,
    notice_vars,
    render_for_channel,
)
from app.message_templates.services import language_of, template_for
from app.outbox.services import queue_message
from app.settings.services import workspace_settings

# A rung number no real ladder reaches: a level parks there while two levels swap places
# (the (policy, position) unique constraint is checked row by row).
PARKED_POSITION = 32000


class CollectionsInvalid(ValueError):
    """A form with errors, one message per field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


# Settings -----------------------------------------------------------------------------------


def settings_of(session: Session) -> CollectionSettings:
    """The tenant's collection settings (row 1), made with the defaults if missing."""
    settings = session.get(CollectionSettings, 1)
    if settings is None:
        settings = CollectionSettings(id=1)
        session.add(settings)
        session.flush()
        session.refresh(settings)
    return settings


def every_notice_waits(session: Session, tenant_id: int) -> bool:
    """Whether every notice the run makes waits as a draft for a person's approval: automatic
    sending is off, or the workspace asks approval of every notice (Settings → Workflow). When
    neither, only the notices of levels that need approval wait."""
    return (
        not settings_of(session).auto_send
        or workspace_settings(session, tenant_id).notices_need_approval
    )


def save_settings(session: Session, values: Mapping, user_id: int | None) -> CollectionSettings:
    """Save the settings form. Switching automatic sending on or off records who and when
    (and, like every change, lands in the audit log)."""
    clean, errors = forms.clean_settings(values)
    if errors:
        raise CollectionsInvalid(errors)
    settings = settings_of(session)
    if clean["auto_send"] != settings.auto_send:
        settings.auto_send_changed_by = user_id
        settings.auto_send_changed_at = datetime.now(UTC)
    for name, value in clean.items():
        setattr(settings, name, value)
    settings.updated_at = datetime.now(UTC)
    session.flush()
    return settings


# Policies -----------------------------------------------------------------------------------


def list_policies(session: Session) -> list[CollectionPolicy]:
    return list(
        session.scalars(
            select(CollectionPolicy)
            .where(CollectionPolicy.deleted_at.is_(None))
            .order_by(CollectionPolicy.is_default.desc(), func.lower(CollectionPolicy.name))
        )
    )


def policy_choices(session: Session) -> list[tuple[int, str]]:
    """(id, name) of the live policies, the default first and marked, for pickers."""
    return [
        (policy.id, f"{policy.name} (default)" if policy.is_default else policy.name)
        for policy in list_policies(session)
    ]


def get_policy(session: Session, policy_id: int) -> CollectionPolicy | None:
    policy = session.get(CollectionPolicy, policy_id)
    return policy if policy is not None and policy.deleted_at is None else None


def default_policy(session: Session) -> CollectionPolicy | None:
    return session.scalar(
        select(CollectionPolicy).where(
            CollectionPolicy.is_default.is_(True), CollectionPolicy.deleted_at.is_(None)
        )
    )


def policy_for(session: Session, invoice: Invoice, client: Client) -> CollectionPolicy | None:
    """The ladder that chases this invoice: its own policy, else its client's, else the
    tenant's default (a deleted policy no longer applies)."""
    for policy_id in (invoice.collection_policy_id, client.collection_policy_id):
        if policy_id is not None:
            policy = get_policy(session, policy_id)
            if policy is not None:
                return policy
    return default_policy(session)


def _name_taken(session: Session, name: str, policy: CollectionPolicy | None) -> bool:
    query = select(CollectionPolicy.id).where(
        func.lower(CollectionPolicy.name) == name.lower(), CollectionPolicy.deleted_at.is_(None)
    )
    if policy is not None:
        query = query.where(CollectionPolicy.id != policy.id)
    return session.scalar(query) is not None


def save_policy(
    session: Session, values: Mapping, policy: CollectionPolicy | None = None
) -> CollectionPolicy:
    """Create a policy (its ladder starts empty) or rename / describe one."""
    clean, errors = forms.clean_policy(values)
    if not errors and _name_taken(session, clean["name"], policy):
        errors["name"] = "Another policy has this name."
    if errors:
        raise CollectionsInvalid(errors)
    if policy is None:
        policy = CollectionPolicy(is_default=default_policy(session) is None)
        session.add(policy)
    policy.name = clean["name"]
    policy.description = clean["description"]
    policy.updated_at = datetime.now(UTC)
    session.flush()
    return policy


def make_default(session: Session, policy: CollectionPolicy) -> None:
    """`policy` becomes the default; the previous default stops being one (one statement
    first, so the one-default index never sees two)."""
    current = default_policy(session)
    if current is not None and current.id != policy.id:
        current.is_default = False
        session.flush()
    policy.is_default = True
    session.flush()


def delete_policy(session: Session, policy: CollectionPolicy) -> None:
    """Soft-delete a policy. The default cannot go (make another the default first); clients
    and invoices that named it fall back to the default."""
    if policy.is_default:
        raise CollectionsInvalid(
            {"policy": "Make another policy the default before deleting this one."}
        )
    policy.deleted_at = datetime.now(UTC)
    session.flush()


# Levels -------------------------------------------------------------------------------------


def get_level(session: Session, policy: CollectionPolicy, level_id: int) -> CollectionLevel | None:
    level = session.get(CollectionLevel, level_id)
    return level if level is not None and level.policy_id == policy.id else None


def save_level(
    session: Session,
    policy: CollectionPolicy,
    values: Mapping,
    level: CollectionLevel | None = None,
) -> CollectionLevel:
    """Add a level at the top of the ladder, or edit one in place."""
    clean, errors = forms.clean_level(values)
    if (
        not errors
        and clean["trigger"] == "after_previous"
        and ((level is None and not policy.levels) or (level is not None and level.position == 1))
    ):
        errors["trigger"] = "The first level has no previous level: count from the due date."
    if errors:
        raise CollectionsInvalid(errors)
    if level is None:
        top = max((existing.position for existing in policy.levels), default=0)
        level = CollectionLevel(policy_id=policy.id, position=top + 1)
        session.add(level)
    for name, value in clean.items():
        setattr(level, name, value)
    policy.updated_at = datetime.now(UTC)
    session.flush()
    session.expire(policy, ["levels"])
    return level


def delete_level(session: Session, level: CollectionLevel) -> None:
    """Remove a level; the levels above it move down one rung. Notices already made keep
    their level (the exactly-once record is by rung number)."""
    policy = level.policy
    if len(policy.levels) == 1:
        raise CollectionsInvalid({"level": "A policy needs at least one level."})
    position = level.position
    session.delete(level)
    session.flush()
    for above in sorted(policy.levels, key=lambda each: each.position):
        if above.position > position:
            above.position -= 1
            session.flush()
    session.expire(policy, ["levels"])
    _first_counts_from_due(session, policy)


def move_level(session: Session, level: CollectionLevel, direction: str) -> None:
    """Swap a level with its neighbour ("up" = earlier rung, "down" = later)."""
    policy = level.policy
    target = level.position - 1 if direction == "up" else level.position + 1
    other = next((each for each in policy.levels if each.position == target), None)
    if other is None:
        return
    old = level.position
    level.position = PARKED_POSITION
    session.flush()
    other.position = old
    session.flush()
    level.position = target
    session.flush()
    session.expire(policy, ["levels"])
    _first_counts_from_due(session, policy)


def _first_counts_from_due(session: Session, policy: CollectionPolicy) -> None:
    """A first level cannot wait for a previous one: it counts from the due date instead."""
    first = next((each for each in policy.levels if each.position == 1), None)
    if first is not None and first.trigger == "after_previous":
        first.trigger = "after_due"
        session.flush()


# Test mode ----------------------------------------------------------------------------------


def send_test(session: Session, tenant, user, level_id, client_id) -> int | None:
    """ "Send me a test": the level's e-mail for the client (its open invoices, its billing
    contact's words) queued to the current user's own address only, subject marked [TEST].
    No notice and no ladder record are made. Returns the outbox id."""

    errors = {}
    level = _by_id(session, CollectionLevel, level_id)
    if level is None or level.policy.deleted_at is not None:
        errors["level_id"] = "Choose a level."
    client = _by_id(session, Client, client_id)
    if client is None or client.deleted_at is not None:
        errors["client_id"] = worded("Choose {a client}.")
    if errors:
        raise CollectionsInvalid(errors)
    owing = [each for each in open_invoices(session, client.id) if each.outstanding > 0]
    if not owing:
        raise CollectionsInvalid(
            {"client_id": worded("This {client} owes nothing: nothing to show.")}
        )
    today = tenant_today(session)
    lines = [
        Line(
            each.invoice,
            each.outstanding,
            Decimal("0.00"),
            max((today - each.invoice.due_date).days, 0) if each.invoice.due_date else 0,
        )
        for each in owing
    ]
    contact = next(
        (c for c in client.contacts if c.deleted_at is None and "billing" in (c.roles or [])), None
    ) or next((c for c in client.contacts if c.deleted_at is None), None)
    currency = owing[0].invoice.currency
    sums = totals([line for line in lines if line.invoice.currency == currency], level.fee_amount)

    template = template_for(session, "email", level.template_purpose, language_of(contact, client))
    language = template.language

    def money(amount) -> str:
        return format_money(amount, currency, money_country(language, tenant.country))

    # A test to oneself: it shows where the client's pay link goes without making one.
    context = message_context(
        session,
        tenant,
        client,
        contact,
        owing[0].invoice,
        notice_level=level.template_purpose,
        preview=True,
        language=language,
    )
    context["notice"] = notice_vars(
        tenant,
        level.template_purpose,
        currency,
        [line.invoice.number for line in lines if line.invoice.currency == currency],
        sums["total"],
        sums["interest"],
        language,
    )
    context["amount_due"] = money(sums["total"])
    context["payment_link"] = ""
    try:
        rendered = render_for_channel(template, context)
    except TemplateProblem as problem:
        message = f"The {template.name} template cannot be used: {problem}"
        raise CollectionsInvalid({"level_id": message}) from problem
    body = rendered.text + "\n\n" + statement_text(lines, sums, money, None, language)
    return queue_message(
        session,
        channel="email",
        to=user.email,
        tenant_id=tenant.id,
        created_by=user.id,
        subject=f"[TEST] {rendered.subject or level.name + ': ' + client.full_name}",
        text_body=body,
        html_body=email_html(body),
        idempotency_key=f"t{tenant.id}:collections-test:{uuid4().hex}",
        payload={"purpose": "collections_test", "level_id": level.id, "client_id": client.id},
    )


def _by_id(session: Session, model, raw):
    try:
        return session.get(model, int(raw))
    except (TypeError, ValueError):
        return None
