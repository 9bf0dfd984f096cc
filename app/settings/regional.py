"""Regional settings: where the workspace is (its country, and its state, territory or region
in India, Australia and the Philippines) and what follows from it: the public holidays that
move due dates and keep reminders from going out (python-holidays, by state where it knows
the state's calendar), and the languages of an Indian state (or Filipino in the Philippines),
offered first for messages. What else follows from the region is worked out by higher areas
(the template library's state variants, the messages' wording) through `register_effect`, so
the page can show it without this area importing them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

import holidays
from sqlalchemy.orm import Session

from app.core.clock import EARLIEST_DATE, LATEST_DATE, subdivision_for
from app.core.regions import GST_STATES, region_code, region_for, regions_of, state_languages
from app.settings.services import workspace_settings
from tenants.models import Tenant

# What a country calls its regions, on the page.
REGION_WORDS = {"IN": "State or union territory", "AU": "State or territory", "PH": "Region"}


@dataclass(frozen=True)
class Holiday:
    day: date
    name: str


def region_word(country: str) -> str:
    return REGION_WORDS.get(country.upper(), "State or region")


def region_choice(tenant: Tenant) -> str:
    """The code of the tenant's region among `regions_of` its country ("" when none)."""
    return region_for(tenant.country, tenant.region) or ""


def holidays_of(country: str, region: str | None, year: int) -> list[Holiday]:
    """The public holidays a workspace in `country` and `region` keeps in `year`, by date:
    the national ones and, where python-holidays knows the state's calendar, the state's (the
    same calendar `app.core.clock` counts business days in)."""
    try:
        found = holidays.country_holidays(
            country, subdiv=subdivision_for(country, region), years=year
        )
    except NotImplementedError:  # a country python-holidays does not know: weekends only
        return []
    return [Holiday(day, name) for day, name in sorted(found.items())]


def knows_state_calendar(country: str, region: str | None) -> bool:
    """Whether the holidays of this region differ from the national calendar's (python-holidays
    has the state's calendar), so the page can say so."""
    return subdivision_for(country, region) is not None


def page_year(raw: str | None, today: date) -> int:
    """The year the page lists: the one asked for when it is one the calendar answers, else
    this year."""
    text = (raw or "").strip()
    if text.isdigit() and EARLIEST_DATE.year <= int(text) <= LATEST_DATE.year:
        return int(text)
    return today.year


def save_region(session: Session, tenant: Tenant, values: Mapping) -> dict[str, str]:
    """Set the workspace's region from the page's choice; errors by field, nothing changed
    when there is one. In India the state must match the GSTIN's, as on the settings page."""
    raw = (values.get("region") or "").strip()
    country = tenant.country.upper()
    choices = regions_of(country)
    if not raw:
        tenant.region = None
        session.flush()
        return {}
    code = region_for(country, raw)
    if choices and code is None:
        return {"region": f"Choose a {region_word(country).lower()} from the list."}
    if country == "IN":
        gstin = workspace_settings(session, tenant.id).gstin
        registered = region_code(gstin[:2]) if gstin else None
        if registered is not None and registered != code:
            return {
                "region": f"Your GSTIN is registered in {GST_STATES[registered]}; change the "
                "GSTIN on the settings page first."
            }
        tenant.region = GST_STATES[code]  # as the settings page keeps it
    else:
        tenant.region = code or raw[:64]
    session.flush()
    return {}


def languages_of(tenant: Tenant) -> tuple[str, ...]:
    return state_languages(tenant.country, tenant.region)


@dataclass(frozen=True)
class RegionalEffect:
    """One thing that follows from the workspace's country and region, as the page shows it:
    a heading, plain sentences, and where to see it (an endpoint of the workspace)."""

    title: str
    lines: tuple[str, ...]
    endpoint: str = ""
    link_label: str = ""


# (session, tenant) -> what follows from its country and region in one area (None: nothing).
EffectProvider = Callable[[Session, Tenant], RegionalEffect | None]

_effect_providers: dict[str, EffectProvider] = {}


def register_effect(name: str, provider: EffectProvider) -> None:
    """Called by a higher area when the app is made (by name: making the app twice registers
    once)."""
    _effect_providers[name] = provider


def effects_of(session: Session, tenant: Tenant) -> list[RegionalEffect]:
    found = (provider(session, tenant) for _, provider in sorted(_effect_providers.items()))
    return [effect for effect in found if effect is not None]
