"""A workspace's rules, every version of each, the log of their runs, and which events a rule's
own run caused (what keeps a rule from triggering itself)."""

from __future__ import annotations

from datetime import date, datetime

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
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import TenantModel, sql_list, utcnow_column

ENTITIES = ("clients", "invoices")
# Besides a domain event's type (app.core.event_types): every day, or the day an invoice
# reaches N days overdue. Both run in the daily job, set-based.
SCHEDULE = "schedule"
OVERDUE = "overdue"
SCHEDULED_TRIGGERS = (SCHEDULE, OVERDUE)


class Rule(TenantModel):
    """The rule as it is now; `RuleVersion` keeps every state it has had."""

    __tablename__ = "rules"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    entity: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(64))
    overdue_days: Mapped[int | None] = mapped_column(SmallInteger)
    # The condition tree ({"all": [...]}, {"any": [...]}, {"not": ...}, leaves {"field", "op",
    # "value"}) and the ordered actions, as data checked by app.rules.conditions / actions.
    conditions: Mapped[dict] = mapped_column(JSONB)
    actions: Mapped[list] = mapped_column(JSONB)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Lower runs first; a rule that stops others ends the run of the rules after it for the
    # records it matched.
    priority: Mapped[int] = mapped_column(Integer, server_default=text("100"))
    stop_after: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Why Duebook turned the rule off (a field, member, template... it names is gone).
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        CheckConstraint(f"entity IN ({sql_list(ENTITIES)})", name="entity"),
        CheckConstraint("(trigger = 'overdue') = (overdue_days IS NOT NULL)", name="overdue_days"),
        CheckConstraint("overdue_days BETWEEN 0 AND 3650", name="overdue_days_range"),
        Index("ix_rules_trigger", "trigger", "priority", "id", postgresql_where=text("enabled")),
    )


class RuleVersion(TenantModel):
    """One state of a rule: who made it, when, and what changed in a few words."""

    __tablename__ = "rule_versions"
    __audited__ = False  # the rule's own history, shown on its page

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("tenant.rules.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(120))
    entity: Mapped[str] = mapped_column(String(16))
    trigger: Mapped[str] = mapped_column(String(64))
    overdue_days: Mapped[int | None] = mapped_column(SmallInteger)
    conditions: Mapped[dict] = mapped_column(JSONB)
    actions: Mapped[list] = mapped_column(JSONB)
    enabled: Mapped[bool] = mapped_column(Boolean)
    priority: Mapped[int] = mapped_column(Integer)
    stop_after: Mapped[bool] = mapped_column(Boolean)
    change: Mapped[str] = mapped_column(String(255))
    changed_by: Mapped[int | None] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (UniqueConstraint("rule_id", "version"),)


class RuleRun(TenantModel):
    """One run of one rule: scheduled (once per rule and day, `run_on`) or for one event."""

    __tablename__ = "rule_runs"
    __audited__ = False

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("tenant.rules.id", ondelete="CASCADE"))
    rule_version: Mapped[int] = mapped_column(Integer)
    run_on: Mapped[date | None] = mapped_column(Date)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = utcnow_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    matched: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    changed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # [{"action": position, "type": ..., "message": ...}]: what failed; the rest still ran.
    failures: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))

    __table_args__ = (
        # The daily job running twice in a day runs each scheduled rule once.
        Index(
            "uq_rule_runs_rule_day",
            "rule_id",
            "run_on",
            unique=True,
            postgresql_where=text("run_on IS NOT NULL"),
        ),
        Index("ix_rule_runs_rule", "rule_id", "id"),
    )


class RuleCausedEvent(TenantModel):
    """An event written by the actions of a rule's run, once per rule of its causal chain (the
    rule that ran and the rules whose runs caused the event it ran for): the "rules" consumer
    never runs a rule for an event its own run caused, directly or through other rules."""

    __tablename__ = "rule_caused_events"
    __audited__ = False

    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    rule_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
