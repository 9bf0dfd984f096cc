"""A tenant's own plan templates (tenant schema): cloned from the library or written from
scratch, edited as a draft of the next version, and frozen when published, so a project keeps
the exact version it was made from.

A version with `published_at` NULL is the template's draft (at most one, by a partial unique
index); the services never change a published version or its items.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.library.models import DUE_RULES
from tenants.base import TenantModel, sql_list, utcnow_column


class TenantTemplate(TenantModel):
    __tablename__ = "tenant_templates"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(191))
    industry: Mapped[str] = mapped_column(String(40), server_default="")
    description: Mapped[str] = mapped_column(Text, server_default="")
    # The library template it was cloned from (a key, not a foreign key: tenant tables hold
    # no keys into the shared schema), and that template's version at the time.
    source_key: Mapped[str | None] = mapped_column(String(120))
    source_version: Mapped[int | None] = mapped_column(Integer)
    # The number of the newest published version: what the plan page offers first.
    current_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    versions: Mapped[list[TenantTemplateVersion]] = relationship(
        back_populates="template", order_by="TenantTemplateVersion.number"
    )

    __table_args__ = (CheckConstraint("current_version >= 1", name="current_version"),)


class TenantTemplateVersion(TenantModel):
    __tablename__ = "tenant_template_versions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("tenant.tenant_templates.id"))
    number: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, server_default="")
    created_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    # NULL while it is the draft; set once, when it is published, and never changed again.
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_by_user_id: Mapped[int | None] = mapped_column(BigInteger)

    template: Mapped[TenantTemplate] = relationship(back_populates="versions")
    items: Mapped[list[TenantTemplateItem]] = relationship(
        back_populates="version",
        order_by="TenantTemplateItem.position",
        cascade="all, delete-orphan",
    )

    __table_args__ = (
        UniqueConstraint("template_id", "number"),
        CheckConstraint("number >= 1", name="number"),
        Index(
            "ix_tenant_template_versions_one_draft",
            "template_id",
            unique=True,
            postgresql_where=text("published_at IS NULL"),
        ),
    )

    @property
    def is_published(self) -> bool:
        return self.published_at is not None

    def audit_subject(self) -> str:
        return f"tenant_templates:{self.template_id}"

    # The interface `projects.services.apply_template` reads (shared with LibraryTemplate).
    @property
    def name(self) -> str:
        return f"{self.template.name} v{self.number}"

    def unavailable_reason(self) -> str | None:
        if not self.is_published:
            return "A draft cannot be applied: publish it first."
        if self.template.deleted_at is not None:
            return "This template has been archived."
        return None

    def provenance(self) -> dict[str, object]:
        """What a project made from this version records about it."""
        return {
            "template_key": None,
            "template_version": None,
            "tenant_template_version_id": self.id,
        }


class TenantTemplateItem(TenantModel):
    __tablename__ = "tenant_template_items"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.tenant_template_versions.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(191))
    description: Mapped[str] = mapped_column(Text, server_default="")
    # Exactly one of the two: a share of the contract value (of what the fixed amounts leave),
    # or a fixed amount in the project's currency.
    percentage: Mapped[Decimal | None] = mapped_column(Numeric(7, 4))
    fixed_amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    due_rule: Mapped[str] = mapped_column(String(24))
    due_days: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    deliverables: Mapped[str] = mapped_column(Text, server_default="")
    is_retention: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    version: Mapped[TenantTemplateVersion] = relationship(back_populates="items")

    __table_args__ = (
        # Deferrable: a reorder rewrites every position in one UPDATE, and a deferrable
        # constraint is checked at the end of the statement, not row by row.
        UniqueConstraint("version_id", "position", deferrable=True, initially="IMMEDIATE"),
        CheckConstraint("(percentage IS NULL) <> (fixed_amount IS NULL)", name="share"),
        CheckConstraint("percentage > 0 AND percentage <= 100", name="percentage"),
        CheckConstraint("fixed_amount > 0", name="fixed_amount"),
        CheckConstraint(f"due_rule IN ({sql_list(DUE_RULES)})", name="due_rule"),
        CheckConstraint("due_days >= 0", name="due_days"),
        CheckConstraint("position >= 1", name="position"),
    )

    def audit_subject(self) -> str:
        return f"tenant_template_versions:{self.version_id}"
