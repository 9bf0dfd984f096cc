"""Creating tenants: the shared row, the schema at head, the owner's membership."""

from __future__ import annotations

import re
import unicodedata
import zoneinfo

from sqlalchemy import Connection, exists, select
from sqlalchemy.orm import Session, joinedload

from tenants.binding import quoted_schema, schema_for_tenant_id
from tenants.migrate import tenant_migrator
from tenants.models import Membership, Tenant, User

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9-]{2,39}$")
RESERVED_SLUGS = frozenset(
    {
        "admin",
        "api",
        "app",
        "auth",
        "demo-admin",
        "help",
        "login",
        "logout",
        "new",
        "public",
        "sandbox",
        "signup",
        "static",
        "support",
        "tenant",
        "www",
    }
)

# Countries Duebook serves first, with the defaults a sign-up starts from.
COUNTRIES = {
    "IN": ("India", "Asia/Kolkata", "INR"),
    "AU": ("Australia", "Australia/Sydney", "AUD"),
    "PH": ("Philippines", "Asia/Manila", "PHP"),
    "SG": ("Singapore", "Asia/Singapore", "SGD"),
    "AE": ("United Arab Emirates", "Asia/Dubai", "AED"),
    "GB": ("United Kingdom", "Europe/London", "GBP"),
    "US": ("United States", "America/New_York", "USD"),
    "NZ": ("New Zealand", "Pacific/Auckland", "NZD"),
}
CURRENCIES = ("INR", "AUD", "PHP", "SGD", "AED", "GBP", "USD", "NZD", "EUR")


class TenantError(ValueError):
    """A tenant could not be created as asked; the message is meant for the user."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def slug_from_name(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40].strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"org-{slug}"[:40].strip("-")
    return slug.ljust(3, "x")


def slug_problem(session: Session, slug: str) -> str | None:
    if not SLUG_PATTERN.match(slug):
        return "Use 3 to 40 lowercase letters, digits or hyphens, starting with a letter."
    if slug in RESERVED_SLUGS:
        return "That address is reserved. Choose another."
    if session.scalar(select(exists().where(Tenant.slug == slug))):
        return "That address is taken. Choose another."
    return None


def provision_schema(connection: Connection, schema: str) -> None:
    """Create the tenant's schema and bring it to the head of the tenant history, inside the
    caller's transaction: a failed sign-up leaves no half-made schema behind."""
    connection.exec_driver_sql(f"CREATE SCHEMA {quoted_schema(schema)}")
    tenant_migrator().upgrade(connection, schema, current=None)


def create_tenant(
    session: Session,
    *,
    slug: str,
    name: str,
    country: str,
    time_zone: str,
    currency: str,
    region: str | None = None,
    owner: User | None = None,
) -> Tenant:
    problem = slug_problem(session, slug)
    if problem:
        raise TenantError(problem, field="slug")
    if country not in COUNTRIES:
        raise TenantError("Choose a country from the list.", field="country")
    if time_zone not in zoneinfo.available_timezones():
        raise TenantError("Choose a time zone from the list.", field="time_zone")
    if currency not in CURRENCIES:
        raise TenantError("Choose a currency from the list.", field="currency")
    tenant = Tenant(
        slug=slug,
        name=name.strip(),
        country=country,
        region=region or None,
        time_zone=time_zone,
        currency=currency,
    )
    session.add(tenant)
    session.flush()
    provision_schema(session.connection(), tenant.schema)
    if owner is not None:
        session.add(Membership(user_id=owner.id, tenant_id=tenant.id, role="owner"))
        session.flush()
    return tenant


def tenant_schemas(session: Session, slugs: list[str] | None = None) -> list[str]:
    query = select(Tenant.id).order_by(Tenant.id)
    if slugs:
        query = query.where(Tenant.slug.in_(slugs))
    return [schema_for_tenant_id(tenant_id) for tenant_id in session.scalars(query)]


def members(session: Session, tenant_id: int) -> list[Membership]:
    return list(
        session.scalars(
            select(Membership)
            .options(joinedload(Membership.user))
            .where(Membership.tenant_id == tenant_id)
            .join(User)
            .order_by(Membership.active.desc(), User.full_name)
        )
    )


def member_names(session: Session, tenant_id: int, *, active_only: bool = False) -> dict[int, str]:
    """Each member's name by user id, in `members`' order (current members first, by name),
    without loading their records; `active_only`: the current members alone."""
    query = (
        select(User.id, User.full_name)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tenant_id)
        .order_by(Membership.active.desc(), User.full_name)
    )
    if active_only:
        query = query.where(Membership.active)
    return dict(session.execute(query).all())


def memberships_of(session: Session, user: User) -> list[Membership]:
    return list(
        session.scalars(
            select(Membership)
            .join(Tenant)
            .where(
                Membership.user_id == user.id,
                Membership.active.is_(True),
                Tenant.status == "active",
            )
            .order_by(Tenant.name)
        )
    )
