"""A report schedule (which report, with which filters, in which format, when, to whom) and
its runs: one row per schedule and period, so a period is sent once however often the sweep
runs."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tenants.base import TenantModel, sql_list, utcnow_column

REPORTS = {
    "aging": "AR aging",
    "dso": "Days sales outstanding (DSO)",
    "collections_performance": "Collections performance",
    "promises": "Promises to pay",
    "cash_received": "Cash received",
    # The invoices list as a person filtered it (its status, client, search, dates).
    "invoices": "Invoices list",
}
FORMATS = {"xlsx": "Excel (XLSX)", "csv": "CSV", "pdf": "PDF"}
FREQUENCIES = {"daily": "Daily", "weekly": "Weekly", "monthly": "Monthly"}
# queued: waiting for a worker to build the file; sent: its e-mails are in the outbox;
# failed: nothing was sent (the outcome says why).
RUN_STATUSES = ("queued", "sent", "failed")
RUN_TRIGGERS = ("schedule", "manual")


class ReportSchedule(TenantModel):
    __tablename__ = "report_schedules"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    report: Mapped[str] = mapped_column(String(32))
    # The report page's filters as they were when the schedule was saved (URL arguments).
    filters: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    format: Mapped[str] = mapped_column(String(8))
    frequency: Mapped[str] = mapped_column(String(8))
    weekday: Mapped[int | None] = mapped_column(SmallInteger)  # Monday 0 … Sunday 6
    month_day: Mapped[int | None] = mapped_column(SmallInteger)  # 1–31; 31 is a month's last
    send_at: Mapped[time] = mapped_column(Time)  # in the workspace's time zone
    member_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=text("'{}'"))
    outside_addresses: Mapped[list[str]] = mapped_column(
        ARRAY(String(254)), server_default=text("'{}'")
    )
    paused: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Occurrences before this moment are never sent: a new or resumed schedule does not send
    # what fell due before it existed or while it was paused.
    active_since: Mapped[datetime] = utcnow_column()
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_outcome: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(f"report IN ({sql_list(REPORTS)})", name="report"),
        CheckConstraint(f"format IN ({sql_list(FORMATS)})", name="format"),
        CheckConstraint(f"frequency IN ({sql_list(FREQUENCIES)})", name="frequency"),
        CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        CheckConstraint("(frequency = 'weekly') = (weekday IS NOT NULL)", name="weekly_day"),
        CheckConstraint("month_day BETWEEN 1 AND 31", name="month_day"),
        CheckConstraint("(frequency = 'monthly') = (month_day IS NOT NULL)", name="monthly_day"),
    )


class ReportRun(TenantModel):
    """One sending of a schedule. `period_start` is the occurrence (UTC) a scheduled run is
    for, or the moment someone pressed *Send now*; the unique constraint makes a period's
    run exactly once, whichever sweep gets there first."""

    __tablename__ = "report_runs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    schedule_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.report_schedules.id", ondelete="CASCADE"), index=True
    )
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trigger: Mapped[str] = mapped_column(String(8), server_default="schedule")
    status: Mapped[str] = mapped_column(String(8), server_default="queued")
    outcome: Mapped[str | None] = mapped_column(Text)
    file_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = utcnow_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    schedule: Mapped[ReportSchedule] = relationship()

    __table_args__ = (
        UniqueConstraint("schedule_id", "period_start", name="uq_report_runs_period"),
        CheckConstraint(f"status IN ({sql_list(RUN_STATUSES)})", name="status"),
        CheckConstraint(f"trigger IN ({sql_list(RUN_TRIGGERS)})", name="trigger"),
    )
