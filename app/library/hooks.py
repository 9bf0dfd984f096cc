"""What the template library adds to the areas below it: the regional settings page's word on
the plans with notes for the workspace's state, offered first. Connected by `create_app`."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session

from app.core.regions import regions_of
from app.library import services
from app.settings.regional import RegionalEffect, region_choice, region_word, register_effect
from tenants.models import Tenant


def regional_effect(session: Session, tenant: Tenant) -> RegionalEffect | None:
    country = tenant.country.upper()
    if country not in services.COUNTRIES:
        return None
    country_name = {"PH": "the Philippines"}.get(country, services.COUNTRIES[country])
    home = services.library_region(country, tenant.region)
    place = regions_of(country).get(region_choice(tenant), "")
    if not home:
        lines = (
            f"Plans for {country_name} come first; choose your "
            f"{region_word(country).lower()} to put its own plans before them.",
        )
    else:
        count, rules = services.state_rules(session, home)
        if count:
            lines = (f"{count} plans with notes for {place} come first:", *rules)
        else:
            lines = (
                f"No plan's notes differ for {place}: the plans for {country_name} come first.",
            )
    return RegionalEffect(
        title="Template library",
        lines=lines,
        endpoint="library.index",
        link_label="Template library",
    )


def init_app(app: Flask) -> None:
    register_effect("library", regional_effect)
