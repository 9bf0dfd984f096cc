"""Online payments through a gateway: pay requests (checkouts), what the gateway reported
(events), and the payments it took, each applied to Duebook's books exactly once.

Exactly once is kept by the database, not by reading first: an event is stored under a unique
(provider, event id) and a gateway payment under a unique (provider, payment id), so a
repeated or concurrent report finds the row already there and changes nothing."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tenants.base import SharedModel, TenantModel, sql_list, utcnow_column

CHECKOUT_STATUSES = ("open", "paid", "failed")
# received: stored, not yet applied; applied: it changed the books; ignored: nothing to do (a
# repeat of something applied, an event we do not act on, a late failure); parked: it names
# something unknown here (a link, a payment) and waits for a person to look at it; dismissed:
# a person looked at a parked event and said, in a note, why nothing is to be done.
EVENT_STATUSES = ("received", "applied", "ignored", "parked", "dismissed")
# captured: applied to the books; failed: the attempt failed (a later capture still applies);
# refunded: wholly given back (the Duebook payment is void); partly_refunded: part given back;
# disputed: the payer's bank took it back pending a dispute (the Duebook payment is void).
GATEWAY_PAYMENT_STATUSES = ("captured", "failed", "refunded", "partly_refunded", "disputed")


class Checkout(TenantModel):
    """One pay request sent to a gateway: who pays which invoices, how much, and the
    gateway's link or session for it."""

    __tablename__ = "gateway_checkouts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    # The pay link of the pay page it started from, if any (the pay page's own record).
    pay_link_id: Mapped[int | None] = mapped_column(BigInteger)
    # The gateway's id of the link or session (Razorpay plink_…) and where the payer goes.
    # Stripe's ids may be up to 255 characters (its session ids are 66 today).
    provider_reference: Mapped[str | None] = mapped_column(String(255), unique=True)
    url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="open", default="open")
    created_at: Mapped[datetime] = utcnow_column()

    invoices: Mapped[list[CheckoutInvoice]] = relationship(order_by="CheckoutInvoice.id")

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(f"status IN ({sql_list(CHECKOUT_STATUSES)})", name="status"),
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class CheckoutInvoice(TenantModel):
    """An invoice a checkout pays, and how much of it the payer chose to pay: `amount` in all,
    of which `interest` pays the late-payment interest a notice claimed on it (the rest pays
    what the invoice owes)."""

    __tablename__ = "gateway_checkout_invoices"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    checkout_id: Mapped[int] = mapped_column(ForeignKey("tenant.gateway_checkouts.id"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("tenant.invoices.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    interest: Mapped[Decimal] = mapped_column(Numeric(18, 2), server_default="0", default=0)

    __table_args__ = (
        UniqueConstraint("checkout_id", "invoice_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("interest >= 0 AND interest <= amount", name="interest_within_amount"),
    )

    @property
    def principal(self) -> Decimal:
        return self.amount - self.interest

    def audit_subject(self) -> str:
        return f"gateway_checkouts:{self.checkout_id}"


class GatewayEvent(TenantModel):
    """A webhook a gateway sent this workspace, stored once per (provider, event id) before
    it is applied; a repeat is acknowledged and dropped."""

    __tablename__ = "gateway_events"
    __audited__ = False  # bookkeeping of the receiver; what it changes is audited

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="received", default="received")
    # Why it was ignored or parked, in words.
    reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = utcnow_column()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        CheckConstraint(f"status IN ({sql_list(EVENT_STATUSES)})", name="status"),
    )


class GatewayPayment(TenantModel):
    """A payment a gateway took, once per (provider, payment id): the Duebook payment it
    became, the gateway's fee, and what was refunded. Shown on the client's timeline."""

    __tablename__ = "gateway_payments"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_payment_id: Mapped[str] = mapped_column(String(64))
    checkout_id: Mapped[int] = mapped_column(ForeignKey("tenant.gateway_checkouts.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("tenant.clients.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.payments.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str | None] = mapped_column(String(32))
    # The gateway's fee including its tax, and that tax (Razorpay: fee and tax).
    fee: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    fee_tax: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    refunded: Mapped[Decimal] = mapped_column(Numeric(18, 2), server_default="0", default=0)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        UniqueConstraint("provider", "provider_payment_id"),
        CheckConstraint(f"status IN ({sql_list(GATEWAY_PAYMENT_STATUSES)})", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    def audit_subject(self) -> str:
        return f"clients:{self.client_id}"


class GatewayRefund(TenantModel):
    """A refund a gateway processed, once per (provider, refund id); also the money a dispute
    took back, under the dispute's id."""

    __tablename__ = "gateway_refunds"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_refund_id: Mapped[str] = mapped_column(String(64))
    gateway_payment_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.gateway_payments.id"), index=True
    )
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        UniqueConstraint("provider", "provider_refund_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    def audit_subject(self) -> str:
        return f"gateway_payments:{self.gateway_payment_id}"


class GatewayEventDismissal(TenantModel):
    """Why a person dismissed a parked event (the event itself is not audited: this row is,
    so who dismissed what and why stays on the audit log)."""

    __tablename__ = "gateway_event_dismissals"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    gateway_event_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.gateway_events.id"), unique=True
    )
    note: Mapped[str] = mapped_column(Text)
    dismissed_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()


# The gateway's word for a payout (Stripe: pending, in_transit, paid, failed, canceled;
# Razorpay's settlements: created, processed, failed), kept as said.
class GatewayPayout(TenantModel):
    """Money a gateway sent (or is sending) to the workspace's bank: a Stripe payout or a
    Razorpay settlement, once per (provider, payout id). `statement_line_id` is the bank
    statement credit it was found as ("in the bank"); the payments in it were booked from
    the webhooks, so the line books nothing."""

    __tablename__ = "gateway_payouts"
    __audited__ = False  # copied from the gateway nightly; the line it matched says "settlement"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    payout_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    # When the gateway says the money reaches the bank (Razorpay: the day it settled).
    arrival_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    # The bank transfer's reference when the gateway gives it (Razorpay's settlement UTR).
    bank_reference: Mapped[str | None] = mapped_column(String(64))
    statement_line_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenant.statement_lines.id"), unique=True
    )
    seen_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        UniqueConstraint("provider", "payout_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )


class ParkedGatewayWebhook(SharedModel):
    """A webhook sent to a gateway URL no workspace has (an unknown or disconnected token):
    kept for the operators to look at, never applied (no workspace secret could verify it)."""

    __tablename__ = "parked_gateway_webhooks"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    # A digest of the path token, never the token (it might be a real one mistyped).
    token_digest: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = utcnow_column()


RUN_STATUSES = ("done", "failed")
# missed_event: the gateway reported something no webhook brought (applied by the run when it
# could be); not_at_gateway: a payment recorded here that the gateway does not list; amount:
# the two sides differ in amount or currency; status: they differ in what happened to it.
DIFFERENCE_KINDS = ("missed_event", "not_at_gateway", "amount", "status")
# open: waits for a person; applied: the money is on the books (by the run or a person's
# click); explained: a person said why it differs and nothing is to change.
DIFFERENCE_STATES = ("open", "applied", "explained")


class ReconciliationRun(TenantModel):
    """One daily comparison of what a gateway says happened in a window with what its
    webhooks recorded here."""

    __tablename__ = "gateway_reconciliation_runs"
    __audited__ = False  # the run's bookkeeping; what it applies is audited as payments

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    checked: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    applied: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    differences: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    # Why the gateway could not be read (a failed run), in words.
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (CheckConstraint(f"status IN ({sql_list(RUN_STATUSES)})", name="status"),)


class ReconciliationItem(TenantModel):
    """A difference a run found, once per (provider, kind, reference): a later run finding it
    again adds nothing, and a difference a person explained stays explained."""

    __tablename__ = "gateway_reconciliation_items"
    __audited__ = False  # who settled it, when and why are kept on the row

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.gateway_reconciliation_runs.id"), index=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    # The gateway's event id for a missed event, else its payment id.
    reference: Mapped[str] = mapped_column(String(128))
    provider_payment_id: Mapped[str | None] = mapped_column(String(64))
    gateway_amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    our_amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    detail: Mapped[str] = mapped_column(Text)
    # What the gateway reported (a PaymentEvent as JSON), to apply it again on a click.
    reported: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), server_default="open", default="open")
    note: Mapped[str | None] = mapped_column(Text)
    settled_by: Mapped[int | None] = mapped_column(BigInteger)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = utcnow_column()

    __table_args__ = (
        UniqueConstraint("provider", "kind", "reference"),
        CheckConstraint(f"kind IN ({sql_list(DIFFERENCE_KINDS)})", name="kind"),
        CheckConstraint(f"state IN ({sql_list(DIFFERENCE_STATES)})", name="state"),
    )
