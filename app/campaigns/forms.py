"""What the campaign form offers (templates, the client list's filter choices, contact roles)
and how a campaign's filters read back in words."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from app.campaigns import services
from app.clients.models import CONTACT_ROLES, STATUSES
from app.clients.services import industries, members_for_choice
from app.core.regions import state_name
from app.core.terminology import term
from app.message_templates import services as message_templates

RESULT_LABELS = {
    "queued": "Queued",
    "sent": "Sent",
    "delivered": "Delivered",
    "read": "Read",
    "failed": "Failed or bounced",
    "suppressed": "Suppressed",
    "replied": "Replied",
}
LOCATIONS = {"local": "Local", "foreign": "Foreign"}


def region_label(tenant, code: str) -> str:
    return (state_name(code) or code) if tenant.country == "IN" else code


def campaign_choices(session: Session, tenant) -> dict:
    return {
        "templates": services.campaign_templates(session),
        "channels": message_templates.CHANNEL_LABELS,
        "statuses": STATUSES,
        "locations": LOCATIONS,
        "industries": [(i.id, i.name) for i in industries(session)],
        "managers": members_for_choice(session, tenant.id),
        "regions": [(r, region_label(tenant, r)) for r in services.region_choices(session)],
        "roles": CONTACT_ROLES,
    }


def describe_filters(session: Session, tenant, filters: Mapping) -> list[str]:
    """The filters as a user would say them ("status active", "in Pune")."""
    words = []
    if filters.get("status"):
        words.append(f"status {filters['status'].replace('_', ' ')}")
    if filters.get("location"):
        words.append(LOCATIONS[filters["location"]].lower())
    if filters.get("industry"):
        names = dict((i.id, i.name) for i in industries(session))
        words.append(f"industry {names.get(int(filters['industry']), '(removed)')}")
    if filters.get("manager"):
        names = dict(members_for_choice(session, tenant.id))
        words.append(f"managed by {names.get(int(filters['manager']), 'a former member')}")
    if filters.get("tag"):
        words.append(f"tagged {filters['tag']}")
    if filters.get("city"):
        words.append(f"in {filters['city']}")
    if filters.get("region"):
        words.append(f"in {region_label(tenant, filters['region'])}")
    if filters.get("overdue"):
        words.append("with overdue invoices")
    if filters.get("role"):
        words.append(f"{filters['role']} contacts only")
    return words or [f"every {term('client')} (prospects excepted)"]
