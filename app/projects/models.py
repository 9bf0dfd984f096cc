"""A project (engagement) of a client, and its milestones: the payment plan that splits the
contract value into amounts, each invoiced when its milestone is done."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clients.models import Client
from app.custom_fields.models import custom_values_column, index_custom_values
from tenants.base import TenantModel, sql_list, utcnow_column

DUE_RULES = ("date", "days_after_start", "days_after_previous")
MILESTONE_STATUSES = (
    "planned",
    "in_progress",
    "completed",
    "approved",
    "invoiced",
    "partly_paid",
    "paid",
    "cancelled",
)
AUTO_INVOICE = ("off", "draft", "issue")


class Project(TenantModel):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Values of the workspace's own fields (app.custom_fields), by field key.
    custom_fields: Mapped[dict] = custom_values_column()
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    name: Mapped[str] = mapped_column(String(191))
    contract_value: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    start_date: Mapped[date] = mapped_column(Date)
    # Empty: the client's terms apply (see services.effective_terms).
    payment_terms: Mapped[str | None] = mapped_column(String(16))
    payment_days: Mapped[int | None] = mapped_column(SmallInteger)
    owner_user_id: Mapped[int | None] = mapped_column(BigInteger)
    business_unit: Mapped[str | None] = mapped_column(String(64))
    requires_approval: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    auto_invoice: Mapped[str] = mapped_column(String(8), server_default="off")
    template_key: Mapped[str | None] = mapped_column(String(120))
    template_version: Mapped[int | None] = mapped_column(Integer)
    # Made from a version of one of the tenant's own templates (app/library/tenant/models.py).
    tenant_template_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenant.tenant_template_versions.id")
    )
    created_at: Mapped[datetime] = utcnow_column()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    client: Mapped[Client] = relationship()

    __table_args__ = (
        CheckConstraint("contract_value > 0", name="contract_value"),
        CheckConstraint(f"auto_invoice IN ({sql_list(AUTO_INVOICE)})", name="auto_invoice"),
        CheckConstraint(
            "payment_terms IS NULL OR payment_terms IN ('net', 'mfi', 'custom', 'immediate')",
            name="payment_terms",
        ),
        # The notices list offers every business unit in use: a few, read by skipping along
        # this index from one unit to the next (notices.filter_choices), not by reading every
        # project.
        # The projects list, newest start first: a page reads its projects in index order.
        Index("ix_projects_start_date_id", "start_date", "id"),
        Index(
            "ix_projects_business_unit",
            "business_unit",
            postgresql_where=text("business_unit IS NOT NULL"),
        ),
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class Milestone(TenantModel):
    __tablename__ = "milestones"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Values of the workspace's own fields (app.custom_fields), by field key.
    custom_fields: Mapped[dict] = custom_values_column()
    project_id: Mapped[int] = mapped_column(ForeignKey("tenant.projects.id"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(191))
    description: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    percentage: Mapped[Decimal | None] = mapped_column(Numeric(7, 4))
    due_rule: Mapped[str] = mapped_column(String(24))
    due_days: Mapped[int | None] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date)
    deliverables: Mapped[str | None] = mapped_column(Text)
    acceptance_date: Mapped[date | None] = mapped_column(Date)
    is_retention: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    status: Mapped[str] = mapped_column(String(16), server_default="planned")
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column(onupdate=func.now())

    __table_args__ = (
        Index("ix_milestones_project_position", "project_id", "position"),
        CheckConstraint("amount >= 0", name="amount"),
        CheckConstraint(f"due_rule IN ({sql_list(DUE_RULES)})", name="due_rule"),
        CheckConstraint(f"status IN ({sql_list(MILESTONE_STATUSES)})", name="status"),
        CheckConstraint("(due_rule = 'date') = (due_days IS NULL)", name="due_days"),
    )

    def audit_subject(self) -> str:
        return f"projects:{self.project_id}"


class MilestoneTotal(TenantModel):
    """A project's milestones in one status: how many and their amount, kept by
    statement-level triggers on milestones (migration 0049), so the project page reads a few
    rows instead of grouping a whole plan (10,000 milestones) on every view. A status no
    milestone of the project is in has no row."""

    __tablename__ = "milestone_totals"

    project_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    milestone_count: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))


class MilestoneTransition(TenantModel):
    """Every change of a milestone's status: from, to, who, when."""

    __tablename__ = "milestone_transitions"
    __audited__ = False  # it is itself the record of the change

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    milestone_id: Mapped[int] = mapped_column(ForeignKey("tenant.milestones.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(String(255))
    at: Mapped[datetime] = utcnow_column()


index_custom_values(Project)
index_custom_values(Milestone)
