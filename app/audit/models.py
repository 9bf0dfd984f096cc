from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Identity, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import TenantModel, utcnow_column


class AuditEntry(TenantModel):
    __tablename__ = "audit_log"
    __audited__ = False

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    occurred_at: Mapped[datetime] = utcnow_column()
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_ip: Mapped[str | None] = mapped_column(String(64))
    # What made the change when it was not a person at a page: "xero", "quickbooks" ... (a
    # sync run applying what the books hold).
    source: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    # The record whose history this belongs to ("clients:42" for a client's contact too).
    subject: Mapped[str | None] = mapped_column(String(80))
    changes: Mapped[dict] = mapped_column(JSONB, default=dict)

    __table_args__ = (
        Index("ix_audit_log_entity_entity_id", "entity", "entity_id"),
        Index("ix_audit_log_actor_user_id", "actor_user_id"),
        Index("ix_audit_log_occurred_at", "occurred_at"),
        Index("ix_audit_log_subject", "subject", "id"),
    )
