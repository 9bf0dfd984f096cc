"""How each person hears of each kind of notification: in the bell only, with an e-mail at
once, in a daily e-mail, or not at all. A person chooses for themselves on the notifications
page; an admin sets what each role gets until its members choose (a finance team that wants
every dispute by e-mail, collectors who do not want lead alerts).

The e-mails go through the outbox like every other e-mail, to the address of the person's
account, each with the link to what it is about; a daily e-mail gathers what came since the
last one, at DIGEST_HOUR on the workspace's clock."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping

from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.core.terminology import worded
from app.notifications.models import (
    DEFAULT_DELIVERY,
    DELIVERIES,
    KIND_LABELS,
    Notification,
    NotificationPreference,
)
from app.outbox.services import queue_email
from tenants.models import Membership, Tenant, User
from tenants.roles import ROLES

# Past this many in one daily e-mail, the rest are counted and left to the bell.
DIGEST_LISTED = 50


def site_url(path: str) -> str:
    """A path of the product as a link in an e-mail, written outside any request too: the
    BASE_URL setting, else the local dev server's address."""
    base = (
        current_app.config.get("BASE_URL") or f"http://127.0.0.1:{os.environ.get('PORT', '5000')}"
    )
    return base.rstrip("/") + path


def deliveries_for(
    session: Session, tenant_id: int, user_ids: Iterable[int], kind: str, translate: dict
) -> dict[int, str]:
    """How each of these users hears of `kind`: their own choice, else their role's, else the
    default. `translate` puts the queries in the tenant's schema (a session of another)."""
    users = list(dict.fromkeys(user_ids))
    if not users:
        return {}
    roles = dict(
        session.execute(
            select(Membership.user_id, Membership.role).where(
                Membership.tenant_id == tenant_id, Membership.user_id.in_(users)
            )
        ).all()
    )
    chosen = session.execute(
        select(
            NotificationPreference.user_id,
            NotificationPreference.role,
            NotificationPreference.delivery,
        ).where(
            NotificationPreference.kind == kind,
            or_(
                NotificationPreference.user_id.in_(users),
                NotificationPreference.role.in_(set(roles.values())),
            ),
        ),
        execution_options=translate,
    ).all()
    own = {user_id: delivery for user_id, _, delivery in chosen if user_id is not None}
    by_role = {role: delivery for _, role, delivery in chosen if role is not None}
    return {
        user_id: own.get(user_id) or by_role.get(roles.get(user_id)) or DEFAULT_DELIVERY
        for user_id in users
    }


def send_at_once(
    session: Session, tenant_id: int, written: Iterable[tuple[int, int]], title: str, body, link
) -> None:
    """The e-mail of each new notification (id, user) whose user wants it at once."""
    written = list(written)
    addresses = dict(
        session.execute(
            select(User.id, User.email).where(
                User.id.in_([user_id for _, user_id in written]), User.active.is_(True)
            )
        ).all()
    )
    name = session.scalar(select(Tenant.name).where(Tenant.id == tenant_id))
    for notification_id, user_id in written:
        if user_id not in addresses:
            continue
        lines = [title, "", *([body, ""] if body else [])]
        if link:
            lines += [f"Open it: {site_url(link)}", ""]
        lines.append(f"You get this from {name} because of your notification settings in Duebook.")
        queue_email(
            session,
            to=addresses[user_id],
            tenant_id=tenant_id,
            subject=title,
            text_body="\n".join(lines),
            idempotency_key=f"notification:{tenant_id}:{notification_id}",
        )


def send_digests(session: Session, tenant_id: int) -> int:
    """Each user's daily e-mail of the notifications waiting for it, then none waits; how many
    e-mails were queued. A user who left the workspace gets none (theirs are let go)."""
    waiting = session.execute(
        select(Notification)
        .where(Notification.digest_due.is_(True))
        .order_by(Notification.user_id, Notification.id)
    ).scalars()
    per_user: dict[int, list[Notification]] = defaultdict(list)
    for notification in waiting:
        per_user[notification.user_id].append(notification)
    if not per_user:
        return 0
    members = dict(
        session.execute(
            select(User.id, User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(
                Membership.tenant_id == tenant_id,
                Membership.active.is_(True),
                User.active.is_(True),
                User.id.in_(per_user),
            )
        ).all()
    )
    name = session.scalar(select(Tenant.name).where(Tenant.id == tenant_id))
    sent = 0
    for user_id, items in per_user.items():
        if user_id in members:
            lines = [f"What happened in {name} since the last e-mail:", ""]
            for item in items[:DIGEST_LISTED]:
                lines.append(f"- {item.title}")
                if item.link:
                    lines.append(f"  {site_url(item.link)}")
            if len(items) > DIGEST_LISTED:
                lines.append(f"… and {len(items) - DIGEST_LISTED} more in Duebook.")
            lines += ["", "You get this daily because of your notification settings in Duebook."]
            queue_email(
                session,
                to=members[user_id],
                tenant_id=tenant_id,
                subject=f"{name}: {len(items)} notification{'' if len(items) == 1 else 's'}",
                text_body="\n".join(lines),
                idempotency_key=f"notification-digest:{tenant_id}:{user_id}:{items[-1].id}",
            )
            sent += 1
        session.execute(
            update(Notification)
            .where(Notification.id.in_([item.id for item in items]))
            .values(digest_due=False),
            execution_options={"synchronize_session": False},
        )
    return sent


def own_choices(session: Session, user_id: int) -> dict[str, str]:
    return dict(
        session.execute(
            select(NotificationPreference.kind, NotificationPreference.delivery).where(
                NotificationPreference.user_id == user_id
            )
        ).all()
    )


def role_choices(session: Session) -> dict[tuple[str, str], str]:
    return {
        (role, kind): delivery
        for role, kind, delivery in session.execute(
            select(
                NotificationPreference.role,
                NotificationPreference.kind,
                NotificationPreference.delivery,
            ).where(NotificationPreference.role.is_not(None))
        )
    }


def _checked(form: Mapping[str, str], prefix: str, allow_role_default: bool) -> dict[str, str]:
    """The form's choice per kind (fields `<prefix><kind>`); "" is "as my role gets it" (a
    person's) or "the default" (a role's). An unknown value is refused, not guessed."""
    choices = {}
    for kind in KIND_LABELS:
        value = (form.get(prefix + kind) or "").strip()
        if value and value not in DELIVERIES:
            raise ValueError(f"Choose one of the options for “{worded(KIND_LABELS[kind])}”.")
        if value or allow_role_default:
            choices[kind] = value
    return choices


def save_own(session: Session, user_id: int, form: Mapping[str, str]) -> None:
    _save(session, {"user_id": user_id}, _checked(form, "kind.", allow_role_default=True))


def save_role_defaults(session: Session, form: Mapping[str, str]) -> None:
    for role in ROLES:
        _save(session, {"role": role}, _checked(form, f"{role}.", allow_role_default=True))


def _save(session: Session, whose: dict, choices: Mapping[str, str]) -> None:
    column = next(iter(whose))
    for kind, delivery in choices.items():
        match = (getattr(NotificationPreference, column) == whose[column]) & (
            NotificationPreference.kind == kind
        )
        if not delivery:
            session.execute(NotificationPreference.__table__.delete().where(match))
            continue
        session.execute(
            insert(NotificationPreference)
            .values(**whose, kind=kind, delivery=delivery)
            .on_conflict_do_update(
                index_elements=[column, "kind"],
                index_where=NotificationPreference.__table__.c[column].is_not(None),
                set_={"delivery": delivery},
            )
        )
