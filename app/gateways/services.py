"""Getting paid through a gateway: start a pay request (a checkout), take the gateway's
webhooks, and apply each payment to the books exactly once.

- `checkout_options` and `start_checkout` are what the pay page calls.
- `record_webhook` runs in the webhook request: it checks the signature with the
  workspace's own secret, stores the event once per (provider, event id) and hands it to a
  job (`apply_gateway_event`); a repeat is acknowledged and dropped. Nothing slow happens in
  the request, so the gateway is answered at once.
- `apply_event` runs in the job. A captured payment becomes a Duebook payment once per
  (provider, payment id), recorded and allocated through app.payments exactly as a hand-typed
  one (so notices close and promises are kept as they are today), oldest invoice first and
  never more than an invoice owes at that moment: what another payment already settled stays
  on the payment as the client's credit. A failed payment and a refund are recorded on the
  client's timeline (gateway payments are audited under the client); a refund takes the
  payment back as voiding does, and a partial refund books what the client kept as a new
  payment.
- An event that names a link or a payment this workspace does not know is parked with its
  reason for a person to look at, never guessed and never lost.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.core.clock import local_date
from app.core.crypto import SecretsUnreadable, decrypt_secrets
from app.core.handover import hand_over
from app.core.money import allocate_oldest_first, format_money, to_money
from app.gateways.models import (
    Checkout,
    CheckoutInvoice,
    GatewayEvent,
    GatewayPayment,
    GatewayRefund,
    ParkedGatewayWebhook,
)
from app.integrations.connectors import razorpay
from app.integrations.connectors.wire import BadWebhookBody
from app.integrations.models import IntegrationConnection, ProviderAccount
from app.invoicing.balance import PAYABLE_STATUSES, outstanding
from app.invoicing.models import Invoice
from app.payments import services as payments
from tenants.binding import bound_tenant_id
from tenants.models import Tenant

log = logging.getLogger(__name__)

ZERO = Decimal("0.00")
# The currencies each gateway's checkout takes here (Razorpay: Indian rupees; its other
# currencies need international payments enabled on the merchant's account).
CURRENCIES = {"razorpay": ("INR",)}
TITLES = {"razorpay": "Pay with UPI, card or netbanking (Razorpay)"}
# How Razorpay names a payment method, as Duebook's payment methods.
RAZORPAY_METHODS = {"upi": "upi", "card": "card", "netbanking": "bank_transfer"}


@dataclass(frozen=True)
class CheckoutOption:
    provider: str
    title: str
    currencies: tuple[str, ...]


class CheckoutRefused(ValueError):
    """The pay request cannot be made; the message says why, for the payer."""


@dataclass(frozen=True)
class Receipt:
    """The webhook's answer: the HTTP status and a short reason (logged, never a secret)."""

    status: int
    reason: str


# Starting a checkout ---------------------------------------------------------------------------


def _usable_connections(session: Session) -> dict[str, IntegrationConnection]:
    rows = session.scalars(
        select(IntegrationConnection).where(
            IntegrationConnection.provider.in_(list(CURRENCIES)), IntegrationConnection.in_use()
        )
    )
    return {connection.provider: connection for connection in rows}


def checkout_options(session: Session) -> list[CheckoutOption]:
    """The gateways the workspace connected and enabled, for the pay page's buttons."""
    return [
        CheckoutOption(provider, TITLES[provider], CURRENCIES[provider])
        for provider in sorted(_usable_connections(session))
    ]


def _connector(connection: IntegrationConnection):
    return razorpay.RazorpayConnector(
        settings=connection.settings,
        secrets=decrypt_secrets(connection.secrets_ciphertext),
        config=current_app.config,
    )


def start_checkout(
    session: Session,
    *,
    provider: str,
    client_id: int,
    invoice_amounts: dict[int, Decimal],
    currency: str,
    return_url: str,
    pay_link_id: int | None = None,
) -> str:
    """Ask the gateway for a pay request for `invoice_amounts` (invoice id -> amount the
    payer chose, each more than zero and at most what the invoice owes now) and return the URL
    to send the payer to. CheckoutRefused, with a sentence the page can show, when the request
    is not possible or the gateway refuses it (the checkout is then kept as failed)."""
    connection = _usable_connections(session).get(provider)
    if connection is None:
        raise CheckoutRefused("Online payment through this service is not available.")
    if currency not in CURRENCIES[provider]:
        raise CheckoutRefused(f"Online payment in {currency} is not available here.")
    client = session.get(Client, client_id)
    if client is None or not invoice_amounts:
        raise CheckoutRefused("There is nothing to pay.")
    invoices = {
        invoice.id: invoice
        for invoice in session.scalars(select(Invoice).where(Invoice.id.in_(invoice_amounts)))
    }
    lines = []
    for invoice_id, raw in invoice_amounts.items():
        invoice = invoices.get(invoice_id)
        if invoice is None or invoice.client_id != client.id:
            raise CheckoutRefused("That invoice cannot be paid here.")
        amount = to_money(raw)
        owed = outstanding(session, invoice) if invoice.status in PAYABLE_STATUSES else ZERO
        if owed <= 0:
            raise CheckoutRefused(f"Invoice {invoice.number} is already paid.")
        if invoice.currency != currency:
            raise CheckoutRefused(f"Invoice {invoice.number} is in {invoice.currency}.")
        if not ZERO < amount <= owed:
            raise CheckoutRefused(
                f"Invoice {invoice.number} owes {format_money(owed, currency)}: pay more than "
                "nothing and no more than that."
            )
        lines.append((invoice, amount))
    lines.sort(key=lambda line: (line[0].issue_date, line[0].id))
    total = sum((amount for _, amount in lines), ZERO)
    checkout = Checkout(
        provider=provider,
        client_id=client.id,
        amount=total,
        currency=currency,
        pay_link_id=pay_link_id,
        invoices=[CheckoutInvoice(invoice_id=i.id, amount=amount) for i, amount in lines],
    )
    session.add(checkout)
    session.flush()
    numbers = [invoice.number or str(invoice.id) for invoice, _ in lines]
    try:
        link = _connector(connection).create_payment_link(
            amount=total,
            currency=currency,
            reference_id=_reference(numbers, checkout.id),
            description=f"Invoice {', '.join(numbers)}",
            customer={"name": client.full_name},
            callback_url=return_url,
            notes={"duebook_checkout": checkout.id},
        )
    except (razorpay.GatewayRefusal, SecretsUnreadable) as refusal:
        checkout.status = "failed"
        session.flush()
        log.warning("razorpay refused checkout %s: %s", checkout.id, refusal)
        raise CheckoutRefused(
            "Razorpay could not start this payment. Please try again later."
            if isinstance(refusal, SecretsUnreadable)
            else str(refusal)
        ) from refusal
    checkout.provider_reference, checkout.url = link.id, link.short_url
    session.flush()
    return link.short_url


def _reference(numbers: list[str], checkout_id: int) -> str:
    """Razorpay's reference_id: the invoice number(s) and this attempt (a reference is
    unique per link, so a second attempt for one invoice needs its own), at most 40
    characters."""
    suffix = f" #{checkout_id}"
    joined = ",".join(numbers)
    if len(joined) + len(suffix) > razorpay.REFERENCE_LIMIT:
        joined = f"{len(numbers)} invoices"
    return f"{joined}{suffix}"


# Receiving webhooks ----------------------------------------------------------------------------


def account_for_token(session: Session, token: str) -> ProviderAccount | None:
    """The workspace a webhook path token routes to (a shared look-up), if any."""
    if not razorpay.TOKEN_SHAPE.fullmatch(token):
        return None
    return session.scalar(
        select(ProviderAccount).where(
            ProviderAccount.provider == "razorpay", ProviderAccount.account_key == token
        )
    )


def park_unrouted(session: Session, token: str, body: bytes, event_id: str | None) -> Receipt:
    """A webhook to a token no workspace holds: kept for the operators (unverified: nobody's
    secret can check it), acknowledged so Razorpay does not retry it for a day. A body that
    is not even a Razorpay event is refused and not kept."""
    try:
        razorpay.read_event(body)
    except BadWebhookBody as refusal:
        log.warning("razorpay webhook to an unknown token refused: %s", refusal)
        return Receipt(refusal.status, str(refusal))
    session.add(
        ParkedGatewayWebhook(
            provider="razorpay",
            token_digest=hashlib.sha256(token.encode()).hexdigest(),
            event_id=(event_id or "")[:128] or None,
            reason="No workspace has this webhook URL.",
            body=body.decode(),
        )
    )
    session.flush()
    log.warning("razorpay webhook to an unknown token parked for review")
    return Receipt(200, "parked: unknown account")


def record_webhook(
    session: Session,
    connection_id: int,
    body: bytes,
    signature: str,
    event_id: str | None,
) -> Receipt:
    """In the webhook request, the session bound to the workspace the token routed to:
    verify, store once, hand to the job. Refusals (bad signature, a body that is not an
    event) store nothing and are logged with their reason."""
    tenant_id = bound_tenant_id(session)
    connection = session.get(IntegrationConnection, connection_id)
    if connection is None or connection.provider != "razorpay":
        log.warning("razorpay webhook for tenant %s: its connection is gone", tenant_id)
        return Receipt(404, "unknown connection")
    try:
        connector = _connector(connection)
    except SecretsUnreadable:
        log.error(
            "razorpay connection %s of tenant %s: secrets unreadable", connection_id, tenant_id
        )
        return Receipt(503, "secrets unreadable")
    if not connector.valid_signature(body, signature):
        log.warning("razorpay webhook for tenant %s refused: bad signature", tenant_id)
        return Receipt(403, "bad signature")
    try:
        event = razorpay.read_event(body)
    except BadWebhookBody as refusal:
        log.warning("razorpay webhook for tenant %s refused: %s", tenant_id, refusal)
        return Receipt(refusal.status, str(refusal))
    if event["event"] not in razorpay.EVENTS:
        log.info("razorpay %s for tenant %s ignored", event["event"][:64], tenant_id)
        return Receipt(200, "ignored: not an event Duebook acts on")
    # Razorpay names each event in a header; a body without it is keyed by its digest, so an
    # exact repeat is still recognised.
    key = (event_id or "").strip()[:128] or hashlib.sha256(body).hexdigest()
    stored = session.execute(
        insert(GatewayEvent)
        .values(provider="razorpay", event_id=key, event_type=event["event"], body=body.decode())
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(GatewayEvent.id)
    ).scalar()
    if stored is None:
        log.info("razorpay event %s for tenant %s was a duplicate", key, tenant_id)
        return Receipt(200, "duplicate")
    hand_over(session, "apply_gateway_event", stored, tenant_id=tenant_id)
    return Receipt(200, "stored")


# Applying events -------------------------------------------------------------------------------


def workspaces_with_gateways(session: Session) -> list[int]:
    """The workspaces whose gateway webhooks are routed here (a shared look-up)."""
    return list(
        session.scalars(
            select(ProviderAccount.tenant_id)
            .where(ProviderAccount.provider.in_(list(CURRENCIES)))
            .distinct()
        )
    )


def events_left(session: Session, older_than: timedelta = timedelta(minutes=2)) -> list[int]:
    """Events of the bound workspace stored but never applied (Redis was down at receipt, a
    worker died): the sweeper applies them."""
    cutoff = datetime.now(UTC) - older_than
    return list(
        session.scalars(
            select(GatewayEvent.id)
            .where(GatewayEvent.status == "received", GatewayEvent.received_at < cutoff)
            .order_by(GatewayEvent.id)
            .limit(1000)
        )
    )


def apply_event(session: Session, event_id: int) -> str:
    """In the job: apply one stored event of the bound workspace once (the row is locked and
    marked in the same transaction). Returns its status afterwards."""
    event = session.scalar(
        select(GatewayEvent)
        .where(GatewayEvent.id == event_id, GatewayEvent.status == "received")
        .with_for_update(skip_locked=True)
    )
    if event is None:
        return "gone"
    try:
        data = razorpay.read_event(event.body)
        # Whole or not at all: a payment the books refuse leaves no gateway payment behind
        # that would make its next report look applied.
        with session.begin_nested():
            status, reason = _apply_razorpay(session, data)
    except BadWebhookBody as refusal:  # checked at receipt; kept as a guard for stored rows
        status, reason = "ignored", str(refusal)
    except (payments.PaymentError, payments.PaymentInvalid) as refusal:
        status, reason = "parked", str(refusal)
    event.status, event.reason, event.processed_at = status, reason, datetime.now(UTC)
    if event.status == "parked":
        log.warning("razorpay event %s parked: %s", event.event_id, event.reason)
    session.flush()
    return event.status


def _apply_razorpay(session: Session, data: dict) -> tuple[str, str | None]:
    kind = data["event"]
    if kind == "refund.processed":
        return _apply_refund(session, data)
    payment = razorpay.entity(data, "payment")
    if payment is None or not payment.get("id"):
        return "ignored", "The event carries no payment."
    link = razorpay.entity(data, "payment_link")
    checkout = _checkout_for(session, payment, link)
    if checkout is None:
        return "parked", f"Payment {payment['id']} is for no pay request of this workspace."
    if kind == "payment.failed":
        return _record_failure(session, checkout, payment)
    return _apply_capture(session, checkout, payment)


def _checkout_for(session: Session, payment: dict, link: dict | None) -> Checkout | None:
    """The pay request a payment is for: by the link the event names, else by the checkout
    id the link's notes carry onto its payments."""
    if link is not None and link.get("id"):
        return session.scalar(
            select(Checkout).where(
                Checkout.provider == "razorpay", Checkout.provider_reference == link["id"]
            )
        )
    notes = payment.get("notes") if isinstance(payment.get("notes"), dict) else {}
    checkout_id = str(notes.get("duebook_checkout") or "")
    if not checkout_id.isdigit():
        return None
    checkout = session.get(Checkout, int(checkout_id))
    return checkout if checkout is not None and checkout.provider == "razorpay" else None


def _new_gateway_payment(session: Session, row: GatewayPayment) -> bool:
    """Insert `row` unless (provider, payment id) exists: the unique key decides, so two
    reports of one payment applied at the same moment insert it once."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    return True


def _existing(session: Session, provider_payment_id: str) -> GatewayPayment:
    return session.scalars(
        select(GatewayPayment)
        .where(
            GatewayPayment.provider == "razorpay",
            GatewayPayment.provider_payment_id == provider_payment_id,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _record_failure(session: Session, checkout: Checkout, payment: dict) -> tuple[str, str | None]:
    reason = str(payment.get("error_description") or "The payment failed.")[:500]
    row = _gateway_payment(checkout, payment, status="failed")
    row.failure_reason = reason
    if _new_gateway_payment(session, row):
        return "applied", None
    # Razorpay may report a failure after the capture (UPI retries): the capture stands.
    return "ignored", "This payment is already known."


def _gateway_payment(checkout: Checkout, payment: dict, status: str) -> GatewayPayment:
    fee, tax = payment.get("fee"), payment.get("tax")
    return GatewayPayment(
        provider="razorpay",
        provider_payment_id=payment["id"][:64],
        checkout_id=checkout.id,
        client_id=checkout.client_id,
        status=status,
        amount=razorpay.from_minor(payment.get("amount") or 0),
        currency=str(payment.get("currency") or checkout.currency)[:3],
        method=str(payment.get("method") or "")[:32] or None,
        fee=razorpay.from_minor(fee) if isinstance(fee, int) else None,
        fee_tax=razorpay.from_minor(tax) if isinstance(tax, int) else None,
        refunded=ZERO,
    )


def _apply_capture(session: Session, checkout: Checkout, payment: dict) -> tuple[str, str | None]:
    amount = razorpay.from_minor(payment.get("amount") or 0)
    currency = str(payment.get("currency") or "")
    client = session.get(Client, checkout.client_id)
    if amount <= 0:
        return "ignored", "The payment has no amount."
    if currency != checkout.currency or currency != (client.currency or "INR"):
        return "parked", (
            f"Payment {payment['id']} is in {currency}; the pay request was in {checkout.currency}."
        )
    row = _gateway_payment(checkout, payment, status="captured")
    if not _new_gateway_payment(session, row):
        row = _existing(session, row.provider_payment_id)
        if row.status != "failed":
            return "ignored", "This payment was already applied."
        # A failure reported first, then the capture (Razorpay warns this happens).
        fresh = _gateway_payment(checkout, payment, status="captured")
        row.status, row.amount, row.fee, row.fee_tax = "captured", amount, fresh.fee, fresh.fee_tax
        row.method, row.failure_reason = fresh.method, None
        session.flush()
    row.payment_id = _book(session, client, checkout, payment, amount).id
    checkout.status = "paid"
    session.flush()
    return "applied", None


def _received_on(session: Session, payment: dict):
    tenant = session.get(Tenant, bound_tenant_id(session))
    created = payment.get("created_at")
    moment = datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None
    now = datetime.now(UTC)
    # A claimed time in the future is the time we learned of it.
    return local_date(tenant.time_zone, min(moment, now) if moment else now)


def _book(session: Session, client: Client, checkout: Checkout, payment: dict, amount: Decimal):
    """The Duebook payment of a captured gateway payment, allocated to the checkout's invoices
    oldest first, each up to what the payer chose and what it owes now; the rest is credit."""
    paid = payments.record_payment(
        session,
        client,
        {
            "amount": amount,
            "received_on": _received_on(session, payment),
            "method": RAZORPAY_METHODS.get(str(payment.get("method")), "other"),
            "reference": f"Razorpay {payment['id']}"[:120],
            "note": "Paid online through Razorpay.",
        },
    )
    wanted = {line.invoice_id: line.amount for line in checkout.invoices}
    # Locked before their balances are read, in id order as app.payments locks them.
    invoices = session.scalars(
        select(Invoice)
        .where(Invoice.id.in_(list(wanted)))
        .order_by(Invoice.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    open_items = [
        (
            invoice.id,
            min(wanted[invoice.id], outstanding(session, invoice))
            if invoice.status in PAYABLE_STATUSES and invoice.currency == paid.currency
            else ZERO,
        )
        for invoice in sorted(invoices, key=lambda i: (i.issue_date, i.id))
    ]
    allocations, _credit = allocate_oldest_first(amount, open_items)
    if allocations:
        payments.allocate(
            session, paid, [(invoice_id, part, "0", None, None) for invoice_id, part in allocations]
        )
    return paid


def _apply_refund(session: Session, data: dict) -> tuple[str, str | None]:
    refund = razorpay.entity(data, "refund")
    if refund is None or not refund.get("id") or not refund.get("payment_id"):
        return "ignored", "The event carries no refund."
    amount = razorpay.from_minor(refund.get("amount") or 0)
    if amount <= 0:
        return "ignored", "The refund has no amount."
    known = session.scalar(
        select(GatewayPayment.id).where(
            GatewayPayment.provider == "razorpay",
            GatewayPayment.provider_payment_id == refund["payment_id"],
        )
    )
    if known is None:
        return (
            "parked",
            f"Refund {refund['id']} is for payment {refund['payment_id']}, unknown here.",
        )
    row = _existing(session, refund["payment_id"])
    if row.status not in ("captured", "partly_refunded") or row.payment_id is None:
        return "parked", f"Refund {refund['id']} is for a payment that was not applied."
    if row.refunded + amount > row.amount:
        return "parked", f"Refund {refund['id']} is more than what is left of the payment."
    try:
        with session.begin_nested():
            session.add(
                GatewayRefund(
                    provider="razorpay",
                    provider_refund_id=refund["id"][:64],
                    gateway_payment_id=row.id,
                    amount=amount,
                )
            )
            session.flush()
    except IntegrityError:
        return "ignored", "This refund was already applied."
    row.refunded += amount
    row.status = "refunded" if row.refunded == row.amount else "partly_refunded"
    _reverse(session, row, amount, refund["id"])
    session.flush()
    return "applied", None


def _reverse(session: Session, row: GatewayPayment, amount: Decimal, refund_id: str) -> None:
    """Take the refunded money back as voiding does: the payment is void (every invoice it
    settled owes again), and what the client kept is booked again as a new payment, applied
    to the same invoices oldest first."""
    booked = payments.get_payment(session, row.payment_id)
    kept_allocations = payments.live_allocations(session, booked)
    payments.void_payment(
        session,
        booked,
        f"Refunded through Razorpay ({refund_id}): {format_money(amount, row.currency)}",
    )
    left = booked.amount - amount
    if left <= 0:
        return
    client = session.get(Client, row.client_id)
    again = payments.record_payment(
        session,
        client,
        {
            "amount": left,
            "received_on": booked.received_on,
            "method": booked.method,
            "reference": booked.reference,
            "note": f"What the client kept of Razorpay {row.provider_payment_id} after refund "
            f"{refund_id}.",
        },
    )
    invoices = {a.invoice_id: a.amount for a in kept_allocations if a.amount > 0}
    ordered = session.scalars(
        select(Invoice)
        .where(Invoice.id.in_(list(invoices)))
        .order_by(Invoice.issue_date, Invoice.id)
    ).all()
    allocations, _credit = allocate_oldest_first(
        left, [(invoice.id, invoices[invoice.id]) for invoice in ordered]
    )
    if allocations:
        payments.allocate(
            session,
            again,
            [(invoice_id, part, "0", None, None) for invoice_id, part in allocations],
        )
    row.payment_id = again.id
