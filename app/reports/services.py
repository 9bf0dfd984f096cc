"""Report schedules: saving one (checked field by field), pausing, deleting, *Send now*; the
sweep that finds what fell due; and a run, which builds the file and queues its e-mails
through the outbox.

Exactly once per schedule and period: a run is a row under UNIQUE (schedule, period start),
inserted with ON CONFLICT DO NOTHING, and only the sweep that inserted it hands it to a
worker; the run's e-mails carry idempotency keys of the run, so a retried job sends nothing
twice either."""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.core.handover import hand_over
from app.core.storage import get_storage, save_in_transaction, tenant_key
from app.outbox.services import queue_email
from app.reports import files, tables
from app.reports.models import FORMATS, FREQUENCIES, REPORTS, ReportRun, ReportSchedule
from app.reports.timing import latest_occurrence
from app.settings.services import workspace_settings
from tenants.models import Membership, Tenant, User
from tenants.roles import role_grants

log = logging.getLogger(__name__)

MAX_OUTSIDE_ADDRESSES = 20
# Who may send a report outside the workspace: its data leaves the members' hands.
OUTSIDE_PERMISSION = "settings.manage"
# A queued run no worker finished in this long is handed over again (Redis lost it, or the
# worker died); the run's e-mail keys make the second attempt send nothing twice.
STALE_RUN = timedelta(minutes=10)
SEND_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
NOBODY_LEFT = "Nobody to send it to: the members chosen left or lost access."
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class ScheduleError(Exception):
    """What is wrong with a schedule's form, per field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True)
class Member:
    user_id: int
    name: str
    email: str
    role: str


def members(session: Session, tenant_id: int) -> list[Member]:
    """The workspace's active members, by name."""
    rows = session.execute(
        select(User.id, User.full_name, User.email, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tenant_id, Membership.active, User.active)
        .order_by(User.full_name)
    )
    return [Member(*row) for row in rows]


def may_manage(schedule: ReportSchedule, user_id: int, role: str) -> bool:
    """Admins manage every schedule; a member the ones they made."""
    return role_grants(role, "settings.manage") or schedule.created_by == user_id


def visible_schedules(session: Session, user_id: int, role: str) -> list[ReportSchedule]:
    query = select(ReportSchedule).order_by(ReportSchedule.created_at.desc(), ReportSchedule.id)
    if not role_grants(role, "settings.manage"):
        query = query.where(ReportSchedule.created_by == user_id)
    return list(session.scalars(query))


def _outside_addresses(raw: str, errors: dict[str, str]) -> list[str]:
    """One address per line or comma; each checked, the first bad one named by its place."""
    found: list[str] = []
    items = [item.strip() for item in re.split(r"[,\n]", raw or "") if item.strip()]
    for place, item in enumerate(items, start=1):
        try:
            address = validate_email(item, check_deliverability=False).normalized
        except EmailNotValidError as problem:
            errors["outside_addresses"] = f"Address {place} (“{item[:80]}”): {problem}"
            return []
        if address.lower() not in (a.lower() for a in found):
            found.append(address)
    if len(found) > MAX_OUTSIDE_ADDRESSES:
        errors["outside_addresses"] = f"At most {MAX_OUTSIDE_ADDRESSES} outside addresses."
    return found


def check_schedule(
    session: Session, tenant_id: int, values: dict, user_role: str
) -> dict[str, object]:
    """The form's values as a schedule's columns, or ScheduleError with a reason per field."""
    errors: dict[str, str] = {}
    report = values.get("report", "")
    if report not in REPORTS:
        errors["report"] = "Choose a report."
    elif not role_grants(user_role, tables.PERMISSIONS[report]):
        errors["report"] = "Your role cannot see this report."
    kind = values.get("format", "")
    if kind not in FORMATS:
        errors["format"] = "Choose XLSX, CSV or PDF."
    frequency = values.get("frequency", "")
    weekday = month_day = None
    if frequency not in FREQUENCIES:
        errors["frequency"] = "Choose daily, weekly or monthly."
    elif frequency == "weekly":
        raw = str(values.get("weekday", ""))
        if raw.isdigit() and int(raw) < len(WEEKDAYS):
            weekday = int(raw)
        else:
            errors["weekday"] = "Choose the day of the week."
    elif frequency == "monthly":
        raw = str(values.get("month_day", "")).strip()
        if raw.isdigit() and 1 <= int(raw) <= 31:
            month_day = int(raw)
        else:
            errors["month_day"] = "Enter a date from 1 to 31 (31: each month's last day)."
    matched = SEND_AT.match(str(values.get("send_at", "")).strip())
    if not matched:
        errors["send_at"] = "Enter a time as HH:MM, e.g. 08:00."
    wanted = {int(i) for i in values.get("member_ids", []) if str(i).isdigit()}
    workspace_members = {m.user_id for m in members(session, tenant_id)}
    if wanted - workspace_members:
        errors["member_ids"] = "Choose members of this workspace only."
    outside = _outside_addresses(values.get("outside_addresses", ""), errors)
    if outside and not role_grants(user_role, OUTSIDE_PERMISSION):
        errors["outside_addresses"] = "Only an admin may send reports outside the workspace."
    if not wanted and not outside and "member_ids" not in errors:
        errors["member_ids"] = "Choose at least one recipient."
    if errors:
        raise ScheduleError(errors)
    return {
        "report": report,
        "format": kind,
        "frequency": frequency,
        "weekday": weekday,
        "month_day": month_day,
        "send_at": time(int(matched.group(1)), int(matched.group(2))),
        "member_ids": sorted(wanted),
        "outside_addresses": outside,
    }


def create_schedule(
    session: Session, tenant_id: int, values: dict, filters: dict, user_id: int, role: str
) -> ReportSchedule:
    columns = check_schedule(session, tenant_id, values, role)
    schedule = ReportSchedule(**columns, filters=filters, created_by=user_id)
    session.add(schedule)
    session.flush()
    return schedule


def set_paused(session: Session, schedule: ReportSchedule, paused: bool) -> None:
    """Pause, or resume; a resumed schedule sends from its next occurrence on, never what fell
    due while it was paused."""
    if schedule.paused == paused:
        return
    schedule.paused = paused
    if not paused:
        schedule.active_since = datetime.now(UTC)
    session.flush()


def delete_schedule(session: Session, schedule: ReportSchedule) -> None:
    session.delete(schedule)
    session.flush()


def send_now(session: Session, tenant_id: int, schedule: ReportSchedule) -> ReportRun:
    """A run now, whatever the schedule (paused or not): it is the person's explicit choice."""
    run = ReportRun(schedule_id=schedule.id, period_start=datetime.now(UTC), trigger="manual")
    session.add(run)
    session.flush()
    hand_over(session, "send_report", run.id, tenant_id=tenant_id)
    return run


def last_runs(session: Session, schedule_ids: list[int], per_schedule: int = 5):
    """The latest runs of each schedule, newest first."""
    if not schedule_ids:
        return {}
    runs: dict[int, list[ReportRun]] = {i: [] for i in schedule_ids}
    query = (
        select(ReportRun)
        .where(ReportRun.schedule_id.in_(schedule_ids))
        .order_by(ReportRun.created_at.desc(), ReportRun.id.desc())
    )
    for run in session.scalars(query):
        if len(runs[run.schedule_id]) < per_schedule:
            runs[run.schedule_id].append(run)
    return runs


# The sweep and the runs ----------------------------------------------------------------------


def sweep(session: Session, tenant: Tenant, now: datetime) -> int:
    """Start a run for each schedule whose latest occurrence at `now` has no run yet, and
    hand over again the runs a worker never finished (by the database's clock). Returns how
    many runs were started."""
    started = 0
    active = session.scalars(select(ReportSchedule).where(ReportSchedule.paused.is_(False)))
    for schedule in active:
        due = latest_occurrence(
            schedule.frequency,
            schedule.weekday,
            schedule.month_day,
            schedule.send_at,
            tenant.time_zone,
            now,
        )
        if due < schedule.active_since:
            continue
        run_id = session.execute(
            insert(ReportRun)
            .values(schedule_id=schedule.id, period_start=due, trigger="schedule")
            .on_conflict_do_nothing(constraint="uq_report_runs_period")
            .returning(ReportRun.id)
        ).scalar()
        if run_id is not None:
            hand_over(session, "send_report", run_id, tenant_id=tenant.id)
            started += 1
    stale = session.scalars(
        select(ReportRun.id).where(
            ReportRun.status == "queued", ReportRun.created_at < func.now() - STALE_RUN
        )
    )
    for run_id in stale:
        hand_over(session, "send_report", run_id, tenant_id=tenant.id)
    return started


def recipients(session: Session, tenant_id: int, schedule: ReportSchedule) -> list[str]:
    """Where a run goes: the chosen members who are still active and whose role may see the
    report, and the outside addresses an admin entered."""
    permission = tables.PERMISSIONS[schedule.report]
    chosen = set(schedule.member_ids)
    addresses = [
        m.email
        for m in members(session, tenant_id)
        if m.user_id in chosen and role_grants(m.role, permission)
    ]
    for address in schedule.outside_addresses:
        if address.lower() not in (a.lower() for a in addresses):
            addresses.append(address)
    return addresses


def run_report(session: Session, tenant: Tenant, run_id: int) -> ReportRun | None:
    """Build the run's file, store it in the workspace's storage and queue one e-mail per
    recipient carrying it. A run already finished is left as it is."""
    run = session.get(ReportRun, run_id, with_for_update=True)
    if run is None or run.status != "queued":
        return run
    schedule = run.schedule
    addresses = recipients(session, tenant.id, schedule)
    if not addresses:
        return _finish(
            run, "failed", "Nobody to send it to: the members chosen left or lost access."
        )
    sent_on = run.period_start.astimezone(ZoneInfo(tenant.time_zone)).date()
    table = tables.build(
        session, schedule.report, schedule.filters, schedule.frequency, sent_on, tenant.time_zone
    )
    data = files.write(table, schedule.format, tenant, workspace_settings(session, tenant.id))
    filename = f"{schedule.report.replace('_', '-')}-{sent_on.isoformat()}.{schedule.format}"
    key = tenant_key(tenant.id, "reports", schedule.id, f"{run.id}-{filename}")
    save_in_transaction(session, get_storage(current_app), key, io.BytesIO(data))
    run.file_key = key
    attachment = {
        "key": key,
        "filename": filename,
        "content_type": files.CONTENT_TYPES[schedule.format].split(";")[0],
    }
    for address in addresses:
        queue_email(
            session,
            tenant_id=tenant.id,
            to=address,
            subject=f"{table.title} — {tenant.name}",
            text_body=(
                f"{table.title} of {tenant.name}, {table.covers[0].lower()}{table.covers[1:]}"
                f" ({len(table.rows)} rows), is attached as {FORMATS[schedule.format]}.\n\n"
                "You receive it because a member of the workspace scheduled it; they can"
                " pause or delete the schedule under Reports."
            ),
            payload={"attachments": [attachment], "report_run_id": run.id},
            idempotency_key=f"t{tenant.id}:report-run:{run.id}:{address.lower()}",
            created_by=schedule.created_by,
        )
    count = len(addresses)
    return _finish(run, "sent", f"E-mail queued for {count} recipient{'s' if count > 1 else ''}.")


def record_failure(session: Session, run_id: int, reason: str) -> None:
    """A run that could not be built: said on the schedule's page, nothing sent."""
    run = session.get(ReportRun, run_id)
    if run is not None and run.status == "queued":
        _finish(run, "failed", reason)
        session.flush()


def _finish(run: ReportRun, status: str, outcome: str) -> ReportRun:
    run.status, run.outcome = status, outcome
    run.finished_at = datetime.now(UTC)
    run.schedule.last_run_at, run.schedule.last_outcome = run.finished_at, outcome
    return run
