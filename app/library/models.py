"""Shared-schema tables of the template library: global templates, not any tenant's records.

A template's item percentages add up to exactly 100; a check constraint cannot look across
rows, so the loader (`services.load_library`) checks it, and the tests check every template.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
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

from tenants.base import SharedModel, sql_list, utcnow_column

COMPLEXITIES = ("simple", "standard", "complex", "enterprise")
PROJECT_SIZES = ("small", "medium", "large")
DUE_RULES = ("on_start", "days_after_start", "days_after_previous")


class LibraryTemplate(SharedModel):
    __tablename__ = "library_templates"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str] = mapped_column(String(191))
    industry: Mapped[str] = mapped_column(String(40))
    complexity: Mapped[str] = mapped_column(String(16))
    project_size: Mapped[str] = mapped_column(String(16))
    # NULL: anywhere; a GST state code ("27") for one Indian state; "IN"/"AU" for a country.
    region: Mapped[str | None] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    description: Mapped[str] = mapped_column(Text, server_default="")
    notes: Mapped[str] = mapped_column(Text, server_default="")
    # A digest of the content as loaded: the loader compares it to know what changed.
    content_hash: Mapped[str] = mapped_column(String(64))
    # No longer shipped: hidden from the library, kept because a tenant may have cloned it.
    retired: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    updated_at: Mapped[datetime] = utcnow_column()

    items: Mapped[list[LibraryTemplateItem]] = relationship(
        back_populates="template",
        order_by="LibraryTemplateItem.position",
        cascade="all, delete-orphan",
    )

    __table_args__ = (
        CheckConstraint(f"complexity IN ({sql_list(COMPLEXITIES)})", name="complexity"),
        CheckConstraint(f"project_size IN ({sql_list(PROJECT_SIZES)})", name="project_size"),
        CheckConstraint("version >= 1", name="version"),
        Index("ix_library_templates_browse", "industry", "complexity", "project_size"),
    )

    # The interface `projects.services.apply_template` reads (shared with a tenant's versions).
    def unavailable_reason(self) -> str | None:
        return "This template is no longer offered." if self.retired else None

    def provenance(self) -> dict[str, object]:
        """What a project made from this template records about it."""
        return {
            "template_key": self.key,
            "template_version": self.version,
            "tenant_template_version_id": None,
        }


class LibraryTemplateItem(SharedModel):
    __tablename__ = "library_template_items"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("library_templates.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(191))
    description: Mapped[str] = mapped_column(Text, server_default="")
    percentage: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    due_rule: Mapped[str] = mapped_column(String(24))
    due_days: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    deliverables: Mapped[str] = mapped_column(Text, server_default="")
    is_retention: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    template: Mapped[LibraryTemplate] = relationship(back_populates="items")

    __table_args__ = (
        UniqueConstraint("template_id", "position"),
        CheckConstraint("percentage > 0 AND percentage <= 100", name="percentage"),
        CheckConstraint(f"due_rule IN ({sql_list(DUE_RULES)})", name="due_rule"),
        CheckConstraint("due_days >= 0", name="due_days"),
        CheckConstraint("position >= 1", name="position"),
    )

    @property
    def fixed_amount(self) -> Decimal | None:
        """Library items are shares only: a shipped plan cannot know a contract's value."""
        return None
