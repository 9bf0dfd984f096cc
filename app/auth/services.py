"""Account rules: passwords, login sessions kept on the server, reset tokens, sign-up."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app, render_template
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import DateTime, String, bindparam, delete, func, select
from sqlalchemy.orm import Session, joinedload

from app.auth.models import PendingSignup
from app.extensions import db
from app.outbox.secret_links import SECRET_LINK
from app.outbox.services import queue_email
from tenants import services as tenants
from tenants.models import LoginSession, Membership, Tenant, User

MIN_PASSWORD_LENGTH = 10
COMMON_PASSWORDS = frozenset(
    [
        "password",
        "password1",
        "password12",
        "password123",
        "password1234",
        "passw0rd",
        "123456789",
        "1234567890",
        "12345678910",
        "qwertyuiop",
        "qwerty1234",
        "qwerty12345",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "iloveyou12",
        "letmein123",
        "welcome123",
        "admin12345",
        "administrator",
        "abc1234567",
        "abcdefghij",
        "0987654321",
        "1111111111",
        "0000000000",
        "trustno1234",
        "football123",
        "baseball123",
        "sunshine123",
        "princess123",
    ]
)


class AccountError(ValueError):
    """A rule of accounts was broken; the message is meant for the user."""


@dataclass(frozen=True)
class PasswordHashing:
    """The app's argon2 hasher (cost from the PASSWORD_HASH_* settings) and a hash it made of
    a random password: verifying against that when the e-mail is unknown keeps the response
    time the same."""

    hasher: PasswordHasher
    unknown_user_hash: str


def init_app(app: Flask) -> None:
    hasher = PasswordHasher(
        time_cost=app.config["PASSWORD_HASH_TIME_COST"],
        memory_cost=app.config["PASSWORD_HASH_MEMORY_COST"],
        parallelism=app.config["PASSWORD_HASH_PARALLELISM"],
    )
    app.extensions["duebook.password_hashing"] = PasswordHashing(
        hasher, hasher.hash(secrets.token_urlsafe(16))
    )


def _hashing() -> PasswordHashing:
    return current_app.extensions["duebook.password_hashing"]


def hash_password(password: str) -> str:
    return _hashing().hasher.hash(password)


def password_problems(password: str, email: str = "") -> list[str]:
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"Use at least {MIN_PASSWORD_LENGTH} characters.")
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(lowered)) < 4:
        problems.append("This password is too easy to guess; choose a less common one.")
    local_part = email.split("@")[0].lower()
    if len(local_part) >= 4 and local_part in lowered:
        problems.append("Do not use your e-mail address in your password.")
    return problems


def find_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = find_user_by_email(session, email)
    hashing = _hashing()
    try:
        hashing.hasher.verify(user.password_hash if user else hashing.unknown_user_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    # A hash made with other parameters (an older, cheaper cost) is made again at today's.
    if hashing.hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def create_user(session: Session, *, email: str, full_name: str, password: str) -> User:
    problems = password_problems(password, email)
    if problems:
        raise AccountError(" ".join(problems))
    return _add_user(
        session, email=email, full_name=full_name, password_hash=hash_password(password)
    )


def _add_user(session: Session, *, email: str, full_name: str, password_hash: str) -> User:
    if find_user_by_email(session, email) is not None:
        raise AccountError("An account with this e-mail address exists already. Log in instead.")
    user = User(email=email.strip(), full_name=full_name.strip(), password_hash=password_hash)
    session.add(user)
    session.flush()
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_login_session(
    session: Session, user: User, *, ip: str | None, user_agent: str | None
) -> str:
    """A new server-side session; the cookie gets the token, the database only its hash."""
    token = secrets.token_urlsafe(32)
    session.add(
        LoginSession(
            token_hash=_token_hash(token),
            user_id=user.id,
            ip_address=ip,
            user_agent=(user_agent or "")[:255],
        )
    )
    user.session_token = token
    return token


def end_login_session(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(LoginSession).where(LoginSession.token_hash == _token_hash(token)))


def end_all_login_sessions(session: Session, user_id: int, keep_token: str | None = None) -> None:
    query = delete(LoginSession).where(LoginSession.user_id == user_id)
    if keep_token:
        query = query.where(LoginSession.token_hash != _token_hash(keep_token))
    session.execute(query)


@cache
def _user_of_session():
    """Built once (every request asks it), its values bound when it runs."""
    return (
        select(User)
        .join(LoginSession, LoginSession.user_id == User.id)
        .where(
            LoginSession.token_hash == bindparam("token_hash", type_=String),
            User.active.is_(True),
            LoginSession.created_at > bindparam("not_before", type_=DateTime(timezone=True)),
        )
        .options(joinedload(User.memberships).joinedload(Membership.tenant))
    )


def load_user_from_session_token(token: str) -> User | None:
    """Flask-Login's user loader: a user only while their login session exists on the server,
    has not outlived its lifetime, and the account is active. Their memberships and tenants
    come in the same query: resolving the tenant of a request then costs no round trip."""
    values = {
        "token_hash": _token_hash(token),
        "not_before": datetime.now(UTC) - current_app.permanent_session_lifetime,
    }
    user = db.session.scalars(_user_of_session(), values).unique().first()
    if user is not None:
        user.session_token = token
    return user


def change_password(
    session: Session, user: User, current: str, new: str, keep_token: str | None
) -> None:
    try:
        _hashing().hasher.verify(user.password_hash, current)
    except (VerificationError, InvalidHashError):
        raise AccountError("Your current password is not right.") from None
    set_password(session, user, new, keep_token=keep_token)


def set_password(session: Session, user: User, new: str, keep_token: str | None = None) -> None:
    problems = password_problems(new, user.email)
    if problems:
        raise AccountError(" ".join(problems))
    user.password_hash = hash_password(new)
    user.password_changed_at = datetime.now(UTC)
    # Every other browser signed in as this user is signed out.
    end_all_login_sessions(session, user.id, keep_token=keep_token)


def _reset_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="password-reset")


def make_password_reset_token(user: User) -> str:
    # The fingerprint of the current hash makes the token single-use: once the password
    # changes, the token no longer matches.
    return _reset_serializer().dumps({"u": user.id, "p": user.password_hash[-12:]})


def user_for_reset_token(session: Session, token: str) -> User:
    try:
        data = _reset_serializer().loads(token, max_age=current_app.config["TOKEN_MAX_AGE_SECONDS"])
    except SignatureExpired:
        raise AccountError("This reset link has expired. Ask for a new one.") from None
    except BadSignature:
        raise AccountError("This reset link is not valid. Ask for a new one.") from None
    user = session.get(User, data.get("u"))
    if user is None or not user.active or user.password_hash[-12:] != data.get("p"):
        raise AccountError("This reset link has been used already. Ask for a new one.")
    return user


@dataclass
class ResetEmail:
    to: str
    name: str
    token: str


def password_reset_for(session: Session, email: str) -> ResetEmail | None:
    user = find_user_by_email(session, email)
    if user is None or not user.active:
        return None
    return ResetEmail(to=user.email, name=user.full_name, token=make_password_reset_token(user))


@dataclass
class SignupLinks:
    """The addresses a sign-up e-mail points to; `confirm` makes the one-time link of a token."""

    confirm: Callable[[str], str]
    login: str
    forgot_password: str


def workspace_address_format_problem(slug: str) -> str | None:
    """What is wrong with a workspace address as written (empty: made from the name later).
    Whether it is taken is not said before the sign-up's e-mail address is confirmed."""
    if slug and not tenants.SLUG_PATTERN.match(slug):
        return "Use 3 to 40 lowercase letters, digits or hyphens, starting with a letter."
    if slug in tenants.RESERVED_SLUGS:
        return "That address is reserved. Choose another."
    return None


def request_signup(
    session: Session,
    *,
    email: str,
    full_name: str,
    password: str,
    workspace: dict,
    links: SignupLinks,
    valid_for: timedelta,
) -> None:
    """Answer a sign-up by e-mail only, the same way whether or not the address has an
    account, so the form tells nobody which addresses (or workspace addresses) exist.

    A new address gets a link that finishes the sign-up: the account and the workspace
    (`workspace`: organisation, slug, country, region, time_zone, currency) are made when it
    is followed. An address with an account gets a note saying so, with the log-in and
    forgotten-password pages, at most one an hour. Expired sign-ups are purged here."""
    password_hash = hash_password(password)  # in both cases: both answers take as long
    now = datetime.now(UTC)
    session.execute(delete(PendingSignup).where(PendingSignup.expires_at < now))
    email = email.strip()
    user = find_user_by_email(session, email)
    if user is not None:
        context = {
            "name": user.full_name,
            "login_url": links.login,
            "forgot_url": links.forgot_password,
        }
        queue_email(
            session,
            to=user.email,
            subject="You already have a Duebook account",
            text_body=render_template("email/signup_existing_account.txt", **context),
            html_body=render_template("email/signup_existing_account.html", **context),
            idempotency_key=f"signup-existing:{user.id}:{now:%Y%m%d%H}",
        )
        return
    token = secrets.token_urlsafe(32)
    pending = PendingSignup(
        token_hash=_token_hash(token),
        email=email,
        full_name=full_name.strip(),
        password_hash=password_hash,
        expires_at=now + valid_for,
        **workspace,
    )
    session.add(pending)
    session.flush()
    context = {
        "name": pending.full_name,
        "organisation": pending.organisation,
        "url": SECRET_LINK,
        "hours": int(valid_for.total_seconds() // 3600),
    }
    queue_email(
        session,
        to=email,
        subject="Finish creating your Duebook workspace",
        text_body=render_template("email/signup_confirm.txt", **context),
        html_body=render_template("email/signup_confirm.html", **context),
        idempotency_key=f"signup:{pending.id}",
        secret_link=links.confirm(token),
    )


def pending_signup_for_token(session: Session, token: str) -> PendingSignup:
    pending = session.scalar(
        select(PendingSignup).where(
            PendingSignup.token_hash == _token_hash(token),
            PendingSignup.expires_at > datetime.now(UTC),
        )
    )
    if pending is None:
        raise AccountError("This sign-up link is not valid or has expired. Sign up again.")
    if find_user_by_email(session, pending.email) is not None:
        raise AccountError("This e-mail address has an account already. Log in instead.")
    return pending


def suggested_slug(session: Session, pending: PendingSignup) -> str:
    """The workspace address asked for, or the first free one like it ("acme-2" ...)."""
    wanted = pending.slug or tenants.slug_from_name(pending.organisation)
    for number in range(1, 100):
        candidate = wanted if number == 1 else f"{wanted[:36]}-{number}"
        if tenants.slug_problem(session, candidate) is None:
            return candidate
    return wanted


def confirm_signup(
    session: Session, pending: PendingSignup, *, password: str, slug: str
) -> tuple[User, Tenant]:
    """The account and workspace of a sign-up whose link was followed. The password chosen at
    sign-up is asked again: the link alone proves the mailbox, not that its owner is who
    signed up (someone may sign up with another person's address and a password of their
    own, hoping the owner clicks). Raises AccountError (password) or TenantError (slug)."""
    try:
        _hashing().hasher.verify(pending.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise AccountError("That is not the password you chose when you signed up.") from None
    user = _add_user(
        session,
        email=pending.email,
        full_name=pending.full_name,
        password_hash=pending.password_hash,
    )
    tenant = tenants.create_tenant(
        session,
        slug=slug,
        name=pending.organisation,
        country=pending.country,
        region=pending.region,
        time_zone=pending.time_zone,
        currency=pending.currency,
        owner=user,
    )
    session.delete(pending)
    session.flush()
    return user, tenant
