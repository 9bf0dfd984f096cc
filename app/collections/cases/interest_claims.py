"""Late-payment interest a notice claimed, and what became of it.

A notice that went out (queued, then sent, delivered, ... or closed since) recorded the interest
it demanded on each of its invoices (`CollectionNoticeInvoice.interest_amount`, set when it is
sent). The claim on an invoice is that of its latest such notice: each one demands all the
interest to its day less what was settled before it. Paying the principal stops interest
growing (`interest.py`) but does not pay what was demanded: the claim stays owed until the
tenant records it paid (cash of a payment allocated to the interest), the client pays it on the
pay page (`settle_paid_online`, the same record), or it is waived or written off, each with a
reason (`InterestSettlement`, audited like every row). A "paid" settlement
counts only while its allocation is live, so voiding that payment makes the interest claimable
again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from app.collections.cases.interest import Interest, interest_for_invoices
from app.collections.cases.services import CaseError, CaseInvalid, read_amount, read_text
from app.collections.models import (
    INTEREST_SETTLEMENT_KINDS,
    CollectionNotice,
    CollectionNoticeInvoice,
    InterestSettlement,
)
from app.core.money import format_money, to_money
from app.core.signals import DeletionBlocker
from app.invoicing.models import Invoice
from app.payments.models import Payment, PaymentAllocation
from app.payments.services import PaymentError, allocate_to_interest, unapplied
from tenants.binding import bound_tenant_id
from tenants.models import Tenant

ZERO = Decimal("0.00")
SETTLEMENT_LABELS = {
    "paid": "Paid",
    "waived": "Waived",
    "written_off": "Written off",
}


@dataclass(frozen=True)
class InterestClaim:
    """The interest the latest notice that went out claimed on an invoice, and how much of it
    was paid, waived or written off since."""

    invoice_id: int
    client_id: int
    notice_id: int
    claimed_on: date
    claimed: Decimal
    settled: Decimal

    @property
    def unpaid(self) -> Decimal:
        return max(self.claimed - self.settled, ZERO)


def settled_interest(
    session: Session, invoice_ids: Iterable[int], claims: Mapping[int, int] | None = None
) -> dict[int, Decimal]:
    """Interest paid (allocation still live), waived or written off on each invoice; with
    `claims` ({invoice id: notice id}), only what settled that notice's claim."""
    ids = list(invoice_ids)
    found: dict[int, Decimal] = defaultdict(lambda: ZERO)
    if not ids:
        return found
    rows = session.execute(
        select(
            InterestSettlement.invoice_id,
            InterestSettlement.amount,
            InterestSettlement.notice_id,
        )
        .outerjoin(PaymentAllocation, PaymentAllocation.id == InterestSettlement.allocation_id)
        .where(
            InterestSettlement.invoice_id.in_(ids),
            or_(InterestSettlement.kind != "paid", PaymentAllocation.removed_at.is_(None)),
        )
    )
    for invoice_id, amount, notice_id in rows:
        if claims is None or claims[invoice_id] == notice_id:
            found[invoice_id] += to_money(amount)
    return found


def interest_owed(
    session: Session, invoices: Sequence[Invoice], as_of: date
) -> dict[int, Interest]:
    """`interest_for_invoices` less the interest already paid, waived or written off on each
    invoice: what a notice or a message demands, never asking for the same interest twice."""
    computed = interest_for_invoices(session, invoices, as_of)
    # Only interest still computed can have been settled in part (none is read otherwise).
    settled = settled_interest(session, [i for i, detail in computed.items() if detail.amount > 0])
    return {
        invoice_id: replace(detail, amount=max(to_money(detail.amount) - settled[invoice_id], ZERO))
        if settled[invoice_id]
        else detail
        for invoice_id, detail in computed.items()
    }


def interest_claims(
    session: Session,
    *,
    client_id: int | None = None,
    invoice_ids: Iterable[int] | None = None,
    unpaid_only: bool = True,
) -> dict[int, InterestClaim]:
    """{invoice id: its claim} of a client or of some invoices (by default only those with
    some interest still unpaid)."""
    query = (
        select(
            CollectionNoticeInvoice.invoice_id,
            CollectionNoticeInvoice.interest_amount,
            CollectionNotice.id,
            CollectionNotice.client_id,
            CollectionNotice.queued_at,
        )
        .join(CollectionNotice, CollectionNotice.id == CollectionNoticeInvoice.notice_id)
        .where(CollectionNotice.queued_at.is_not(None), CollectionNotice.status != "cancelled")
        .ext(distinct_on(CollectionNoticeInvoice.invoice_id))
        .order_by(
            CollectionNoticeInvoice.invoice_id,
            CollectionNotice.queued_at.desc(),
            CollectionNotice.id.desc(),
        )
    )
    if client_id is not None:
        query = query.where(CollectionNotice.client_id == client_id)
    if invoice_ids is not None:
        query = query.where(CollectionNoticeInvoice.invoice_id.in_(list(invoice_ids)))
    latest = [row for row in session.execute(query) if row.interest_amount > 0]
    # A notice demands the interest less what was settled before it (`notice_lines`), so only
    # settlements of the latest claim lower it.
    settled = settled_interest(
        session,
        [row.invoice_id for row in latest],
        claims={row.invoice_id: row.id for row in latest},
    )
    claims = {
        row.invoice_id: InterestClaim(
            row.invoice_id,
            row.client_id,
            row.id,
            row.queued_at.date(),
            to_money(row.interest_amount),
            settled[row.invoice_id],
        )
        for row in latest
    }
    return {i: c for i, c in claims.items() if c.unpaid > 0 or not unpaid_only}


def deletion_blockers(session: Session, client_id: int) -> list[DeletionBlocker]:
    """Collections' answer when a client is about to be deleted: interest its notices claimed
    and nobody paid, waived or wrote off holds it, as owing principal does."""
    claims = interest_claims(session, client_id=client_id)
    if not claims:
        return []
    currencies = dict(
        session.execute(
            select(Invoice.id, Invoice.currency).where(Invoice.id.in_(list(claims)))
        ).all()
    )
    per_currency: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for invoice_id, claim in claims.items():
        per_currency[currencies[invoice_id]] += claim.unpaid
    country = session.get(Tenant, bound_tenant_id(session)).country
    amounts = " and ".join(
        format_money(amount, currency, country) for currency, amount in sorted(per_currency.items())
    )
    return [
        DeletionBlocker(
            holds=f"{amounts} of interest claimed and unpaid",
            remedy="Record it paid, waive it or write it off (with the reason)",
            tab="collections",
        )
    ]


def payments_with_credit(session: Session, client_id: int) -> list[tuple[Payment, Decimal]]:
    """The client's live payments with cash left to allocate: what interest can be paid from."""
    payments = session.scalars(
        select(Payment)
        .where(Payment.client_id == client_id, Payment.voided_at.is_(None))
        .order_by(Payment.received_on.desc(), Payment.id.desc())
    )
    found = [(payment, unapplied(session, payment)) for payment in payments]
    return [(payment, left) for payment, left in found if left > 0]


def settle_claim(
    session: Session, invoice: Invoice, values: Mapping, country: str, user_id: int | None
) -> InterestSettlement:
    """Record that some or all of the unpaid interest claimed on `invoice` was paid (from a
    payment's unapplied cash: `payment_id`), waived or written off (`kind`), for `amount`,
    with a `reason` (required unless paid). The invoice row is locked first, so two people
    settling the same claim cannot settle it twice. CaseInvalid names the fields at fault."""
    invoice = session.scalars(
        select(Invoice)
        .where(Invoice.id == invoice.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    claim = interest_claims(session, invoice_ids=[invoice.id]).get(invoice.id)
    if claim is None:
        raise CaseError("No interest claimed on this invoice is unpaid.")

    def money(amount: Decimal) -> str:
        return format_money(amount, invoice.currency, country)

    errors: dict[str, str] = {}
    kind = str(values.get("kind") or "")
    if kind not in INTEREST_SETTLEMENT_KINDS:
        errors["kind"] = "Choose paid, waived or written off."
    amount = read_amount(values.get("amount"), "amount", errors)
    if amount is not None and "amount" not in errors and amount > claim.unpaid:
        errors["amount"] = f"At most {money(claim.unpaid)} of the interest claimed is unpaid."
    reason = read_text(
        values.get("reason"),
        "reason",
        errors,
        required=None if kind == "paid" else "Say why, e.g. waived as a goodwill gesture.",
    )
    payment = None
    if kind == "paid":
        raw = str(values.get("payment_id") or "").strip()
        payment = session.get(Payment, int(raw)) if raw.isdigit() else None
        if payment is None or payment.client_id != invoice.client_id:
            errors["payment_id"] = "Choose the payment the interest was paid with."
    if errors:
        raise CaseInvalid(errors)
    allocation = None
    if payment is not None:
        try:
            allocation = allocate_to_interest(session, payment, invoice.id, amount)
        except PaymentError as refused:
            raise CaseInvalid({"payment_id": str(refused)}) from refused
        reason = reason or (
            f"Paid from the payment of {payment.received_on:%d %b %Y}"
            + (f" ({payment.reference})" if payment.reference else "")
            + "."
        )
    settlement = InterestSettlement(
        client_id=invoice.client_id,
        invoice_id=invoice.id,
        notice_id=claim.notice_id,
        kind=kind,
        amount=amount,
        reason=reason,
        allocation_id=allocation.id if allocation is not None else None,
        created_by=user_id,
    )
    session.add(settlement)
    session.flush()
    return settlement


def settle_paid_online(
    session: Session, *, invoice_id: int, payment_id: int, amount: Decimal
) -> InterestSettlement | None:
    """Interest paid through the pay page: `amount` of the payment's unallocated cash settles
    the invoice's unpaid claim as a hand-recorded payment of it does (kind "paid", with its
    allocation), up to the claim and to what the payment has left. None when no claim is
    unpaid (another payment or a person settled it first): the money stays the client's
    credit."""
    invoice = session.get(Invoice, invoice_id)
    payment = session.get(Payment, payment_id)
    claim = interest_claims(session, invoice_ids=[invoice_id]).get(invoice_id)
    if invoice is None or payment is None or claim is None:
        return None
    part = min(to_money(amount), claim.unpaid, unapplied(session, payment))
    if part <= 0:
        return None
    country = session.get(Tenant, bound_tenant_id(session)).country
    return settle_claim(
        session, invoice, {"kind": "paid", "amount": part, "payment_id": payment.id}, country, None
    )


def settlements_of(session: Session, client_id: int) -> list[InterestSettlement]:
    return list(
        session.scalars(
            select(InterestSettlement)
            .where(InterestSettlement.client_id == client_id)
            .order_by(InterestSettlement.created_at.desc(), InterestSettlement.id.desc())
        )
    )
