"""The tenant's clock: today in its time zone, and business days in its calendar (weekends and
the public holidays of its country and state, from python-holidays). Dates that decide money
(due dates) roll forward to the next business day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from sqlalchemy.orm import Session

from app.core.regions import GST_TO_ISO, region_code
from tenants.binding import bound_tenant_id
from tenants.models import Tenant

WEEKEND = (5, 6)  # Saturday, Sunday
# The dates a person may type where money depends on them (a project's start, a due date, a
# payment's date): a slip such as 0202 or 20255 is an error beside the field, and the calendar
# (holidays, steps of days) is only ever asked about years it can answer.
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2099, 12, 31)
DATE_RANGE_TEXT = f"from {EARLIEST_DATE:%d %b %Y} to {LATEST_DATE:%d %b %Y}"


def typed_date(text) -> date | None:
    """The date in `text` (YYYY-MM-DD, as a date input sends it) when it is a real date from
    EARLIEST_DATE to LATEST_DATE; None otherwise (31 Feb, year 99999, words, nothing)."""
    try:
        day = date.fromisoformat(str(text or "").strip())
    except ValueError:
        return None
    return day if EARLIEST_DATE <= day <= LATEST_DATE else None


def local_date(time_zone: str, now: datetime | None = None) -> date:
    """The date in `time_zone` at `now` (default: this moment; a naive `now` is UTC). Every
    date that decides money or chasing is the tenant's calendar day, never the server's."""
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(time_zone)).date()


def tenant_today(session: Session) -> date:
    """Today in the time zone of the tenant `session` is bound to (UTC when unbound): the day
    every view, job and service of a tenant counts from."""
    tenant_id = bound_tenant_id(session)
    tenant = session.get(Tenant, tenant_id) if tenant_id is not None else None
    return local_date(tenant.time_zone if tenant is not None else "UTC")


@lru_cache(maxsize=256)
def holiday_dates(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """One year's public holidays as a set (a plan of thousands of milestones looks up many
    days; a set answers fastest)."""
    try:
        return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year))
    except NotImplementedError:  # a country python-holidays does not know: weekends only
        return frozenset()


def subdivision_for(country: str, region: str | None) -> str | None:
    """The python-holidays subdivision of a tenant's region, when it knows that region."""
    if not region:
        return None
    code = region.strip().upper()
    if country == "IN":
        code = GST_TO_ISO.get(region_code(region) or "", "")
    try:
        calendar = holidays.country_holidays(country)
    except NotImplementedError:
        return None
    # A region may be written by its name ("New South Wales") as well as its code ("NSW").
    names = {name.upper(): sub for name, sub in calendar.subdivisions_aliases.items()}
    code = names.get(code, code)
    return code if code in calendar.subdivisions else None


def is_business_day(day: date, country: str, subdivision: str | None = None) -> bool:
    return day.weekday() not in WEEKEND and day not in holiday_dates(country, subdivision, day.year)


def roll_forward(day: date, country: str, subdivision: str | None = None) -> date:
    """The day itself when it is a business day, else the next one."""
    while not is_business_day(day, country, subdivision):
        day += timedelta(days=1)
    return day
