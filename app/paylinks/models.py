"""A pay link is a row per link, so that it can be revoked and so that messages reuse one live
link rather than minting one each. The token in the URL is signed (`services.make_token`) and
names the tenant, the row and the row's nonce; the row says what the link is for and until
when it works. What the link is for is read again on every visit: the link never carries an
amount."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    SmallInteger,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import TenantModel, utcnow_column

PAY_LINK_KINDS = ("invoice", "notice", "client")


class PayLink(TenantModel):
    __tablename__ = "pay_links"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.invoices.id"))
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.collection_notices.id"))
    # Random, in the signed token too: a link id reused after a restore never opens an old link.
    nonce: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[int | None] = mapped_column(BigInteger)
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        CheckConstraint(
            "(kind = 'invoice' AND invoice_id IS NOT NULL AND notice_id IS NULL)"
            " OR (kind = 'notice' AND notice_id IS NOT NULL AND invoice_id IS NULL)"
            " OR (kind = 'client' AND invoice_id IS NULL AND notice_id IS NULL)",
            name="pay_link_kind",
        ),
        # The live link of an invoice or a notice is looked up by it when a message is written.
        Index(
            "ix_pay_links_invoice_id", "invoice_id", postgresql_where=text("invoice_id IS NOT NULL")
        ),
        Index(
            "ix_pay_links_notice_id", "notice_id", postgresql_where=text("notice_id IS NOT NULL")
        ),
    )

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class PayPageSettings(TenantModel):
    """The tenant's pay page settings: one row (id 1), made with the defaults when first read
    (`services.pay_page_settings`)."""

    __tablename__ = "pay_page_settings"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("1"))
    # Off by default: a part payment leaves an invoice open, which not every business wants.
    allow_partial_payment: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    link_days: Mapped[int] = mapped_column(SmallInteger, server_default=text("60"))
    updated_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        CheckConstraint("id = 1", name="one_row"),
        CheckConstraint("link_days BETWEEN 1 AND 365", name="link_days"),
    )
