"""Team rules: who may invite whom with which role. A workspace never loses its last owner:
only an owner may change an owner, and nobody may change their own role or access."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import render_template
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, joinedload

from app.outbox.secret_links import SECRET_LINK
from app.outbox.services import queue_email
from tenants.models import Invitation, Membership, Tenant, User
from tenants.roles import ROLE_LABELS, roles_assignable_by


class TeamError(ValueError):
    """A team rule was broken; the message is meant for the user."""


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_invitations(session: Session, tenant_id: int) -> list[Invitation]:
    return list(
        session.scalars(
            select(Invitation)
            .where(
                Invitation.tenant_id == tenant_id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
            )
            .order_by(Invitation.created_at.desc())
        )
    )


def get_membership(session: Session, tenant_id: int, membership_id: int) -> Membership | None:
    return session.scalar(
        select(Membership).where(Membership.id == membership_id, Membership.tenant_id == tenant_id)
    )


def get_invitation(session: Session, tenant_id: int, invitation_id: int) -> Invitation | None:
    return session.scalar(
        select(Invitation).where(Invitation.id == invitation_id, Invitation.tenant_id == tenant_id)
    )


def invite(
    session: Session,
    *,
    tenant: Tenant,
    inviter: Membership,
    email: str,
    role: str,
    accept_url: Callable[[str], str],
    valid_days: int,
) -> Invitation:
    """Invite `email` to the tenant and queue the e-mail with the acceptance link.

    The link is the proof that its holder controls the mailbox of `email` (accepting it can
    make a new account for that address, see `accept_invitation`), so only the mailbox may
    ever see it: the invitations table keeps the token's hash, and the outbox seals the link
    and fills it in only when the platform's mail server takes the e-mail (secret_links)."""
    email = email.strip()
    if role not in roles_assignable_by(inviter.role):
        raise TeamError("Your role cannot give that role.")
    already = session.scalar(
        select(Membership)
        .join(User)
        .where(
            Membership.tenant_id == tenant.id,
            Membership.active.is_(True),
            func.lower(User.email) == email.lower(),
        )
    )
    if already is not None:
        raise TeamError(f"{email} is a member of {tenant.name} already.")
    now = datetime.now(UTC)
    session.execute(
        update(Invitation)
        .where(
            Invitation.tenant_id == tenant.id,
            func.lower(Invitation.email) == email.lower(),
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        tenant_id=tenant.id,
        email=email,
        role=role,
        token_hash=_token_hash(token),
        invited_by_user_id=inviter.user_id,
        expires_at=now + timedelta(days=valid_days),
    )
    session.add(invitation)
    session.flush()
    context = {
        "tenant": tenant,
        "inviter": inviter.user,
        "role": ROLE_LABELS[role],
        "url": SECRET_LINK,
        "valid_days": valid_days,
    }
    queue_email(
        session,
        to=email,
        tenant_id=tenant.id,
        subject=f"{inviter.user.full_name} invited you to {tenant.name} on Duebook",
        text_body=render_template("email/invitation.txt", **context),
        html_body=render_template("email/invitation.html", **context),
        idempotency_key=f"invitation:{invitation.id}",
        secret_link=accept_url(token),
    )
    return invitation


def invitation_for_token(session: Session, token: str) -> Invitation:
    invitation = session.scalar(
        select(Invitation)
        .options(joinedload(Invitation.tenant))
        .where(Invitation.token_hash == _token_hash(token))
    )
    if invitation is None:
        raise TeamError("This invitation link is not valid. Ask for a new invitation.")
    if invitation.accepted_at is not None:
        raise TeamError("This invitation has been accepted already. Log in to continue.")
    if invitation.revoked_at is not None:
        raise TeamError("This invitation was withdrawn. Ask for a new invitation.")
    if invitation.expires_at < datetime.now(UTC):
        raise TeamError("This invitation has expired. Ask for a new invitation.")
    if not invitation.tenant.is_active:
        raise TeamError("This workspace is not available.")
    return invitation


def accept_invitation(session: Session, invitation: Invitation, user: User) -> Membership:
    """Make `user` a member with the invitation's role; the invitation is used up.

    The caller has a user who either logged in as the invited address, or was created just
    now for it by whoever followed the link. The second is safe because the token is the proof
    that the follower reads that mailbox: it is random (32 bytes), stored only as a hash,
    mailed by the platform's own server (never a workspace's, whose admins could read it
    there), sealed in the outbox until sent and erased after, shown on no page (the Messages
    pages print words in its place) and hidden in the access log. An address that has an
    account already must log in instead, so an invitation never hands out an account that
    exists."""
    if user.email.lower() != invitation.email.lower():
        raise TeamError(
            f"This invitation is for {invitation.email}. Log in with that address to accept it."
        )
    membership = session.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.tenant_id == invitation.tenant_id
        )
    )
    if membership is None:
        membership = Membership(
            user_id=user.id, tenant_id=invitation.tenant_id, role=invitation.role
        )
        session.add(membership)
    else:
        membership.role, membership.active = invitation.role, True
    invitation.accepted_at = datetime.now(UTC)
    session.flush()
    return membership


def revoke_invitation(invitation: Invitation) -> None:
    if invitation.is_open:
        invitation.revoked_at = datetime.now(UTC)


def _check_may_manage(actor: Membership, target: Membership) -> None:
    if target.id == actor.id:
        raise TeamError("You cannot change your own role or access; ask another admin.")
    if target.role not in roles_assignable_by(actor.role):
        raise TeamError("Only an owner can change an owner.")


def change_role(session: Session, actor: Membership, target: Membership, role: str) -> None:
    _check_may_manage(actor, target)
    if role not in roles_assignable_by(actor.role):
        raise TeamError("Your role cannot give that role.")
    target.role = role
    session.flush()


def set_access(session: Session, actor: Membership, target: Membership, active: bool) -> None:
    _check_may_manage(actor, target)
    target.active = active
    session.flush()
