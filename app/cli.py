"""`flask demo seed` and `flask users ...`."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.auth import services as accounts
from app.extensions import db
from tenants import services as tenants
from tenants.models import Membership, Tenant

demo_cli = AppGroup("demo", help="Demo data for make run.")
users_cli = AppGroup("users", help="Platform-level user administration.")

DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "paid-on-time-2026"


@demo_cli.command("seed")
def seed_demo() -> None:
    """A demo workspace and its owner's login; whatever of them exists already is kept."""
    user = accounts.find_user_by_email(db.session, DEMO_EMAIL)
    if user is None:
        user = accounts.create_user(
            db.session, email=DEMO_EMAIL, full_name="Asha Demo", password=DEMO_PASSWORD
        )
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
    if tenant is None:
        tenant = tenants.create_tenant(
            db.session,
            slug=DEMO_SLUG,
            name="Demo Traders Pvt Ltd",
            country="IN",
            region="Karnataka",
            time_zone="Asia/Kolkata",
            currency="INR",
        )
    membership = db.session.scalar(
        select(Membership).where(Membership.user_id == user.id, Membership.tenant_id == tenant.id)
    )
    if membership is None:
        db.session.add(Membership(user_id=user.id, tenant_id=tenant.id, role="owner"))
    db.session.commit()
    click.echo(f"Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")


@users_cli.command("disable")
@click.argument("email")
def disable_user(email: str) -> None:
    """Switch a user off everywhere and end all their login sessions at once."""
    user = accounts.find_user_by_email(db.session, email)
    if user is None:
        raise click.ClickException(f"no user {email}")
    user.active = False
    accounts.end_all_login_sessions(db.session, user.id)
    db.session.commit()
    click.echo(f"{email} is disabled and logged out everywhere.")
