"""A workspace's settings, one row per tenant in the shared schema: who the supplier is on
invoices, how it is paid, its brand, billing defaults for new projects and when bulk messages
may go out. The tenancy core keeps only the workspace's identity (`tenants.models.Tenant`)."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    String,
    Text,
    Time,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenants.base import SharedModel, utcnow_column


class WorkspaceSettings(SharedModel):
    __tablename__ = "workspace_settings"

    tenant_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    legal_name: Mapped[str | None] = mapped_column(String(191))
    address: Mapped[str | None] = mapped_column(Text)
    gstin: Mapped[str | None] = mapped_column(String(15))
    pan: Mapped[str | None] = mapped_column(String(10))
    abn: Mapped[str | None] = mapped_column(String(11))
    tax_number: Mapped[str | None] = mapped_column(String(32))
    lut_reference: Mapped[str | None] = mapped_column(String(64))
    upi_vpa: Mapped[str | None] = mapped_column(String(64))
    payment_instructions: Mapped[str | None] = mapped_column(Text)
    brand_colour: Mapped[str] = mapped_column(String(7), server_default="#1f5f8b")
    logo_key: Mapped[str | None] = mapped_column(String(255))
    invoice_number_format: Mapped[str | None] = mapped_column(String(40))
    approval_required: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    auto_invoice: Mapped[str] = mapped_column(String(8), server_default="off")
    # Bulk and collection messages go out only inside this window of the recipient's day ...
    send_window_start: Mapped[time] = mapped_column(Time, server_default="09:00")
    send_window_end: Mapped[time] = mapped_column(Time, server_default="19:00")
    # ... and, unless switched off, only on business days of the tenant's calendar.
    send_on_business_days_only: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # The name clients see as the sender of its e-mail (empty: the legal name, else the
    # workspace's name) and where their replies go (empty: no Reply-To).
    sender_name: Mapped[str | None] = mapped_column(String(100))
    reply_to: Mapped[str | None] = mapped_column(String(254))
    # The first-run setup's steps this workspace has done or skipped, by step name (the steps
    # themselves are the setup area's): a step not named here is still open.
    setup_progress: Mapped[dict[str, str]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    # Workflow defaults and the dashboard (app.settings.workflow): every collection notice
    # waits for a person's approval when set; the dashboard's widgets as
    # [{"widget": name, "shown": bool}, ...] in the workspace's order (NULL: all, ours).
    notices_need_approval: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    dashboard_widgets: Mapped[list[dict] | None] = mapped_column(JSONB)
    # Branding (app.settings.branding): the footer of every e-mail to the workspace's clients
    # and the invoice PDF's layout; the defaults print the PDF as it was before they existed.
    email_footer: Mapped[str | None] = mapped_column(Text)
    pdf_paper_size: Mapped[str] = mapped_column(String(6), server_default="A4")
    pdf_logo_position: Mapped[str] = mapped_column(String(5), server_default="left")
    pdf_payment_details: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    pdf_footer_note: Mapped[str | None] = mapped_column(String(120))
    updated_at: Mapped[datetime] = utcnow_column(onupdate=func.now())

    __table_args__ = (
        CheckConstraint("auto_invoice IN ('off', 'draft', 'issue')", name="auto_invoice"),
        CheckConstraint("brand_colour ~ '^#[0-9a-f]{6}$'", name="brand_colour"),
        CheckConstraint("send_window_start < send_window_end", name="send_window"),
        CheckConstraint("pdf_paper_size IN ('A4', 'letter')", name="pdf_paper_size"),
        CheckConstraint("pdf_logo_position IN ('left', 'right')", name="pdf_logo_position"),
    )
    # Changed by admins on the settings pages: the workspace's audit log shows who changed what.
    __audited__ = True
