"""When a schedule falls due, in the workspace's time zone: daily, weekly on a day, or
monthly on a date (a date the month lacks, the 31st of a 30-day month, is its last day)."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Far enough back to reach the previous occurrence of any frequency (a monthly one on the
# 31st, looking back from the 1st of a month after a 31-day one).
LOOK_BACK_DAYS = 62


def month_day_in(year: int, month: int, month_day: int) -> int:
    return min(month_day, calendar.monthrange(year, month)[1])


def falls_on(day: date, frequency: str, weekday: int | None, month_day: int | None) -> bool:
    if frequency == "daily":
        return True
    if frequency == "weekly":
        return day.weekday() == weekday
    return day.day == month_day_in(day.year, day.month, month_day)


def latest_occurrence(
    frequency: str,
    weekday: int | None,
    month_day: int | None,
    send_at: time,
    time_zone: str,
    now: datetime,
) -> datetime:
    """The last moment (UTC) at or before `now` when the schedule fell due: its day at
    `send_at` on the workspace's clock."""
    zone = ZoneInfo(time_zone)
    local_now = now.astimezone(zone)
    for back in range(LOOK_BACK_DAYS):
        day = local_now.date() - timedelta(days=back)
        if not falls_on(day, frequency, weekday, month_day):
            continue
        moment = datetime.combine(day, send_at, tzinfo=zone)
        if moment <= local_now:
            return moment.astimezone(UTC)
    raise ValueError(f"no {frequency} occurrence in {LOOK_BACK_DAYS} days")  # cannot happen


def covered_days(frequency: str, sent_on: date) -> tuple[date, date]:
    """The days a report about what happened (cash received, notices sent) covers when sent
    on `sent_on`: the day before, the 7 days before, or the month before (from the same date
    of the previous month, clipped to its length, up to the day before)."""
    last = sent_on - timedelta(days=1)
    if frequency == "daily":
        return last, last
    if frequency == "weekly":
        return sent_on - timedelta(days=7), last
    year, month = (
        (sent_on.year - 1, 12) if sent_on.month == 1 else (sent_on.year, sent_on.month - 1)
    )
    return date(year, month, month_day_in(year, month, sent_on.day)), last
