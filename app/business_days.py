"""Business days in a tenant's calendar: weekends and the public holidays of its country and
state (python-holidays). Dates that decide money (due dates) roll forward to the next one."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

# GST state code -> ISO 3166-2 subdivision, as python-holidays names Indian states.
GST_TO_ISO = {
    "01": "JK", "02": "HP", "03": "PB", "04": "CH", "05": "UK", "06": "HR", "07": "DL",
    "08": "RJ", "09": "UP", "10": "BR", "11": "SK", "12": "AR", "13": "NL", "14": "MN",
    "15": "MZ", "16": "TR", "17": "ML", "18": "AS", "19": "WB", "20": "JH", "21": "OD",
    "22": "CG", "23": "MP", "24": "GJ", "26": "DH", "27": "MH", "29": "KA", "30": "GA",
    "31": "LD", "32": "KL", "33": "TN", "34": "PY", "35": "AN", "36": "TS", "37": "AP",
    "38": "LA",
}  # fmt: skip
WEEKEND = (5, 6)  # Saturday, Sunday


def local_date(time_zone: str, now: datetime | None = None) -> date:
    """The date in `time_zone` at `now` (default: this moment; a naive `now` is UTC). Every
    date that decides money or chasing is the tenant's calendar day, never the server's."""
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(time_zone)).date()


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
        from app.clients.rules import region_code

        code = GST_TO_ISO.get(region_code(region) or "", "")
    try:
        known = holidays.country_holidays(country).subdivisions
    except NotImplementedError:
        return None
    return code if code in known else None


def is_business_day(day: date, country: str, subdivision: str | None = None) -> bool:
    return day.weekday() not in WEEKEND and day not in holiday_dates(country, subdivision, day.year)


def roll_forward(day: date, country: str, subdivision: str | None = None) -> date:
    """The day itself when it is a business day, else the next one."""
    while not is_business_day(day, country, subdivision):
        day += timedelta(days=1)
    return day
