"""Getting paid through a gateway: start a pay request (a checkout), take the gateway's
webhooks, and apply each payment to the books exactly once. Provider-neutral: each gateway's
connector (GATEWAYS) verifies and reads its own webhooks into a `PaymentEvent` and starts its
own checkouts (app.integrations.connectors.gateway); nothing here reads a provider's JSON.

- `checkout_options` and `start_checkout` are what the pay page calls.
- `record_webhook` runs in the webhook request: it checks the signature with the
  workspace's own secret, stores the event once per (provider, event id) and hands it to a
  job (`apply_gateway_event`); a repeat is acknowledged and dropped. Nothing slow happens in
  the request, so the gateway is answered at once.
- `apply_event` runs in the job. A captured payment becomes a Duebook payment once per
  (provider, payment id), recorded and allocated through app.payments exactly as a hand-typed
  one (so notices close and promises are kept as they are today), oldest invoice first and never
  more than an invoice owes at that moment: what another payment already settled stays on the
  payment as the client's credit. The late-payment interest the pay request carried for an
  invoice is announced (`gateway_interest_paid`) for collections to settle the invoice's claim
  from the payment; what no claim takes stays credit too. A failed payment and a refund are
  recorded on the client's timeline (gateway payments are audited under the client); a refund
  takes the payment back as voiding does, and a partial refund books what the client kept as a
  new payment. A dispute (Stripe's chargeback) takes the money back the same way and opens a
  dispute on each invoice the payment had paid (collections hears `gateway_payment_disputed`).
- `apply_reported` is the one exactly-once path, for webhooks and for what the daily
  reconciliation finds a lost webhook missed.
- An event that names a link or a payment this workspace does not know is parked with its
  reason for a person to look at, never guessed and never lost.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.core import signals
from app.core.clock import local_date
from app.core.crypto import SecretsUnreadable, decrypt_secrets
from app.core.events import emit
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
from app.integrations.connectors.gateway import GatewayRefusal, PaymentEvent, event_to_json
from app.integrations.connectors.razorpay import RazorpayConnector
from app.integrations.connectors.stripe_gateway import StripeConnector
from app.integrations.connectors.wire import BadWebhookBody
from app.integrations.models import IntegrationConnection, ProviderAccount
from app.invoicing.balance import PAYABLE_STATUSES, outstanding
from app.invoicing.models import Invoice
from app.payments import services as payments
from tenants.binding import bound_tenant_id
from tenants.models import Tenant

log = logging.getLogger(__name__)

ZERO = Decimal("0.00")
# Each gateway's connector: what the spine asks of it is app.integrations.connectors.gateway.
GATEWAYS = {"razorpay": RazorpayConnector, "stripe": StripeConnector}
# The currencies each gateway's checkout takes here. Razorpay: Indian rupees (its other
# currencies need international payments enabled on the merchant's account). Stripe: the
# currencies of clients abroad, in their own currency, and rupees.
CURRENCIES = {
    "razorpay": ("INR",),
    "stripe": ("AED", "AUD", "CAD", "CHF", "EUR", "GBP", "INR", "JPY", "NZD", "SGD", "USD"),
}
TITLES = {
    "razorpay": "Pay with UPI, card or netbanking (Razorpay)",
    "stripe": "Pay by card (Stripe)",
}


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


def usable_connections(session: Session) -> list[IntegrationConnection]:
    """The workspace's gateway connections in use, for the daily reconciliation."""
    return list(_usable_connections(session).values())


def connector_for(connection: IntegrationConnection):
    """The connection's gateway connector (SecretsUnreadable when its secrets cannot be read)."""
    return GATEWAYS[connection.provider](
        settings=connection.settings,
        secrets=decrypt_secrets(connection.secrets_ciphertext),
        config=current_app.config,
    )


def _name(provider: str) -> str:
    return GATEWAYS[provider].title


def start_checkout(
    session: Session,
    *,
    provider: str,
    client_id: int,
    invoice_amounts: dict[int, Decimal],
    currency: str,
    return_url: str,
    pay_link_id: int | None = None,
    interest_amounts: dict[int, Decimal] | None = None,
) -> str:
    """Ask the gateway for a pay request for `invoice_amounts` (invoice id -> amount the
    payer chose) and return the URL to send the payer to. `interest_amounts` (invoice id ->
    the part of its amount that pays late-payment interest a notice claimed; none by default)
    is kept on the checkout for booking; the rest of each amount must be more than zero and at
    most what the invoice owes now. How much interest is claimed is collections' to know (the
    pay page asks it); booking settles no more than the claim and leaves the rest as credit.
    CheckoutRefused, with a sentence the page can show, when the request is not possible or
    the gateway refuses it (the checkout is then kept as failed)."""
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
        interest = to_money((interest_amounts or {}).get(invoice_id, ZERO))
        owed = outstanding(session, invoice) if invoice.status in PAYABLE_STATUSES else ZERO
        if owed <= 0:
            raise CheckoutRefused(f"Invoice {invoice.number} is already paid.")
        if invoice.currency != currency:
            raise CheckoutRefused(f"Invoice {invoice.number} is in {invoice.currency}.")
        if not ZERO <= interest < amount or not amount - interest <= owed:
            raise CheckoutRefused(
                f"Invoice {invoice.number} owes {format_money(owed, currency)}"
                + (f" and {format_money(interest, currency)} of interest" if interest > 0 else "")
                + ": pay more than nothing and no more than that."
            )
        lines.append((invoice, amount, interest))
    lines.sort(key=lambda line: (line[0].issue_date, line[0].id))
    total = sum((amount for _, amount, _ in lines), ZERO)
    checkout = Checkout(
        provider=provider,
        client_id=client.id,
        amount=total,
        currency=currency,
        pay_link_id=pay_link_id,
        invoices=[
            CheckoutInvoice(invoice_id=i.id, amount=amount, interest=interest)
            for i, amount, interest in lines
        ],
    )
    session.add(checkout)
    session.flush()
    try:
        reference, url = connector_for(connection).start_checkout(
            checkout_id=checkout.id,
            lines=[(i.id, i.number or str(i.id), amount) for i, amount, _ in lines],
            currency=currency,
            payer_name=client.full_name,
            return_url=return_url,
        )
    except (GatewayRefusal, SecretsUnreadable) as refusal:
        checkout.status = "failed"
        session.flush()
        log.warning("%s refused checkout %s: %s", provider, checkout.id, refusal)
        raise CheckoutRefused(
            f"{_name(provider)} could not start this payment. Please try again later."
            if isinstance(refusal, SecretsUnreadable)
            else str(refusal)
        ) from refusal
    checkout.provider_reference, checkout.url = reference, url
    session.flush()
    return url


# Receiving webhooks ----------------------------------------------------------------------------


def account_for_token(session: Session, provider: str, token: str) -> ProviderAccount | None:
    """The workspace a gateway's webhook path token routes to (a shared look-up), if any."""
    if provider not in GATEWAYS or not GATEWAYS[provider].token_shape.fullmatch(token):
        return None
    return session.scalar(
        select(ProviderAccount).where(
            ProviderAccount.provider == provider, ProviderAccount.account_key == token
        )
    )


def park_unrouted(session: Session, provider: str, token: str, body: bytes, key: str) -> Receipt:
    """A webhook to a token no workspace holds: kept for the operators (unverified: nobody's
    secret can check it), acknowledged so the gateway does not retry it for days. A body that
    is not even an event of the gateway is refused and not kept."""
    try:
        event = GATEWAYS[provider].event_from_stored(body, key)
    except BadWebhookBody as refusal:
        log.warning("%s webhook to an unknown token refused: %s", provider, refusal)
        return Receipt(refusal.status, str(refusal))
    session.add(
        ParkedGatewayWebhook(
            provider=provider,
            token_digest=hashlib.sha256(token.encode()).hexdigest(),
            event_id=(event.event_id or "")[:128] or None,
            reason="No workspace has this webhook URL.",
            body=body.decode(),
        )
    )
    session.flush()
    log.warning("%s webhook to an unknown token parked for review", provider)
    return Receipt(200, "parked: unknown account")


@dataclass(frozen=True)
class ParkedGroup:
    """Webhooks parked for one (provider, token digest): how many, first and last seen."""

    provider: str
    token_digest: str
    count: int
    first_received: datetime
    last_received: datetime


def parked_webhooks(session: Session) -> list[ParkedGroup]:
    """The platform's parked webhooks (a shared table), grouped by gateway and token digest,
    the most recent first: for the operators to find a misconfigured webhook URL."""
    rows = session.execute(
        select(
            ParkedGatewayWebhook.provider,
            ParkedGatewayWebhook.token_digest,
            func.count(),
            func.min(ParkedGatewayWebhook.received_at),
            func.max(ParkedGatewayWebhook.received_at),
        )
        .group_by(ParkedGatewayWebhook.provider, ParkedGatewayWebhook.token_digest)
        .order_by(func.max(ParkedGatewayWebhook.received_at).desc())
    )
    return [ParkedGroup(*row) for row in rows]


def purge_parked_webhooks(session: Session, older_than: timedelta) -> int:
    """Delete the parked webhooks received more than `older_than` ago; how many."""
    cutoff = datetime.now(UTC) - older_than
    return session.execute(
        delete(ParkedGatewayWebhook).where(ParkedGatewayWebhook.received_at < cutoff)
    ).rowcount


def record_webhook(
    session: Session, connection_id: int, body: bytes, headers: Mapping[str, str]
) -> Receipt:
    """In the webhook request, the session bound to the workspace the token routed to: the
    connector verifies and reads it, the event is stored once per (provider, event id) and
    handed to the job. Refusals (a bad or stale signature, a body that is not an event) store
    nothing and are logged with their reason."""
    tenant_id = bound_tenant_id(session)
    connection = session.get(IntegrationConnection, connection_id)
    if connection is None or connection.provider not in GATEWAYS:
        log.warning("gateway webhook for tenant %s: its connection is gone", tenant_id)
        return Receipt(404, "unknown connection")
    provider = connection.provider
    try:
        event = connector_for(connection).read_webhook(body, headers)
    except SecretsUnreadable:
        log.error(
            "%s connection %s of tenant %s: secrets unreadable", provider, connection_id, tenant_id
        )
        return Receipt(503, "secrets unreadable")
    except BadWebhookBody as refusal:  # WebhookRefused (403) is one
        log.warning("%s webhook for tenant %s refused: %s", provider, tenant_id, refusal)
        return Receipt(refusal.status, str(refusal))
    if event.kind == "other":
        log.info("%s %s for tenant %s ignored", provider, event.event_type[:64], tenant_id)
        return Receipt(200, "ignored: not an event Duebook acts on")
    stored = store_event(session, event, body.decode())
    if stored is None:
        log.info("%s event %s for tenant %s was a duplicate", provider, event.event_id, tenant_id)
        return Receipt(200, "duplicate")
    hand_over(session, "apply_gateway_event", stored, tenant_id=tenant_id)
    return Receipt(200, "stored")


def store_event(session: Session, event: PaymentEvent, body: str) -> int | None:
    """The new event's row id; None when (provider, event id) is already stored."""
    return session.execute(
        insert(GatewayEvent)
        .values(
            provider=event.provider,
            event_id=event.event_id[:128],
            event_type=event.event_type[:64],
            body=body,
        )
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(GatewayEvent.id)
    ).scalar()


# Applying events -------------------------------------------------------------------------------


def workspaces_with_gateways(session: Session) -> list[int]:
    """The workspaces whose gateway webhooks are routed here (a shared look-up)."""
    return list(
        session.scalars(
            select(ProviderAccount.tenant_id)
            .where(ProviderAccount.provider.in_(list(GATEWAYS)))
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
        reported = GATEWAYS[event.provider].event_from_stored(event.body, event.event_id)
    except BadWebhookBody as refusal:  # checked at receipt; kept as a guard for stored rows
        status, reason = "ignored", str(refusal)
    else:
        status, reason = apply_reported(session, reported)
    _settle(event, status, reason)
    session.flush()
    return event.status


def _settle(event: GatewayEvent, status: str, reason: str | None) -> None:
    event.status, event.reason, event.processed_at = status, reason, datetime.now(UTC)
    if status == "parked":
        log.warning("%s event %s parked: %s", event.provider, event.event_id, reason)


def apply_reported(session: Session, event: PaymentEvent) -> tuple[str, str | None]:
    """Apply what a gateway reported, whole or not at all: a payment the books refuse leaves
    no gateway payment behind that would make its next report look applied. Returns the
    event's status (applied, ignored, parked) and why, in words."""
    try:
        with session.begin_nested():
            return _apply(session, event)
    except (payments.PaymentError, payments.PaymentInvalid) as refusal:
        return "parked", str(refusal)


def apply_missed(session: Session, event: PaymentEvent) -> tuple[str, str | None] | None:
    """What the daily reconciliation found no webhook brought: stored under the gateway's
    event id as a webhook is (the event as facts: it was read from the gateway's API, not
    signed) and applied at once through the same path. None when the event is already stored
    (its webhook came, or a run did)."""
    stored = store_event(session, event, event_to_json(event))
    if stored is None:
        return None
    status, reason = apply_reported(session, event)
    _settle(session.get(GatewayEvent, stored), status, reason)
    session.flush()
    return status, reason


def apply_again(session: Session, event: PaymentEvent) -> tuple[str, str | None]:
    """A person asks to apply a reported event that was parked (after fixing its cause); its
    stored row follows the outcome."""
    status, reason = apply_reported(session, event)
    stored = session.scalar(
        select(GatewayEvent).where(
            GatewayEvent.provider == event.provider, GatewayEvent.event_id == event.event_id
        )
    )
    if stored is not None:
        _settle(stored, status, reason)
    session.flush()
    return status, reason


def _apply(session: Session, event: PaymentEvent) -> tuple[str, str | None]:
    if event.kind == "refunded":
        return _apply_refund(session, event)
    if event.kind == "disputed":
        return _apply_dispute(session, event)
    if event.kind not in ("paid", "failed") or not event.payment_id:
        return "ignored", "The event carries no payment."
    checkout = _checkout_for(session, event)
    if checkout is None:
        return "parked", f"Payment {event.payment_id} is for no pay request of this workspace."
    if event.kind == "failed":
        return _record_failure(session, checkout, event)
    return _apply_capture(session, checkout, event)


def _checkout_for(session: Session, event: PaymentEvent) -> Checkout | None:
    """The pay request a payment is for: by the gateway's id of it (a Razorpay link, a
    Stripe session) when the event names one, else by our checkout id that the request
    carried into the gateway's notes or metadata."""
    if event.provider_checkout:
        return session.scalar(
            select(Checkout).where(
                Checkout.provider == event.provider,
                Checkout.provider_reference == event.provider_checkout,
            )
        )
    if event.checkout_id is None:
        return None
    checkout = session.get(Checkout, event.checkout_id)
    return checkout if checkout is not None and checkout.provider == event.provider else None


def _new_row(session: Session, row) -> bool:
    """Insert `row` unless its unique key exists: the database decides, so two reports of
    one payment (or refund) applied at the same moment insert it once."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    return True


def _existing(session: Session, provider: str, provider_payment_id: str) -> GatewayPayment:
    return session.scalars(
        select(GatewayPayment)
        .where(
            GatewayPayment.provider == provider,
            GatewayPayment.provider_payment_id == provider_payment_id,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def known_payment(session: Session, provider: str, provider_payment_id: str) -> int | None:
    return session.scalar(
        select(GatewayPayment.id).where(
            GatewayPayment.provider == provider,
            GatewayPayment.provider_payment_id == provider_payment_id,
        )
    )


def _record_failure(
    session: Session, checkout: Checkout, event: PaymentEvent
) -> tuple[str, str | None]:
    row = _gateway_payment(checkout, event, status="failed")
    row.failure_reason = event.failure_reason
    if _new_row(session, row):
        invoice_ids = [item.invoice_id for item in checkout.invoices]
        emit(
            session,
            "payment.failed",
            "gateway_payment",
            row.id,
            {
                "client_id": row.client_id,
                "provider": row.provider,
                "reason": (row.failure_reason or None) and row.failure_reason[:500],
                "invoice_id": invoice_ids[0] if len(invoice_ids) == 1 else None,
                "amount": format(to_money(row.amount), "f"),
                "currency": row.currency,
            },
        )
        return "applied", None
    # A failure may be reported after the capture (Razorpay's UPI retries): the capture stands.
    return "ignored", "This payment is already known."


def _gateway_payment(checkout: Checkout, event: PaymentEvent, status: str) -> GatewayPayment:
    return GatewayPayment(
        provider=event.provider,
        provider_payment_id=event.payment_id,
        checkout_id=checkout.id,
        client_id=checkout.client_id,
        status=status,
        amount=event.amount if event.amount and event.amount > 0 else checkout.amount,
        currency=(event.currency or checkout.currency)[:3],
        method=event.method,
        fee=event.fee,
        fee_tax=event.fee_tax,
        refunded=ZERO,
    )


def _apply_capture(
    session: Session, checkout: Checkout, event: PaymentEvent
) -> tuple[str, str | None]:
    amount = event.amount or ZERO
    currency = event.currency or ""
    client = session.get(Client, checkout.client_id)
    if amount <= 0:
        return "ignored", "The payment has no amount."
    if currency != checkout.currency or currency != (client.currency or "INR"):
        return "parked", (
            f"Payment {event.payment_id} is in {currency}; the pay request was in "
            f"{checkout.currency}."
        )
    row = _gateway_payment(checkout, event, status="captured")
    if not _new_row(session, row):
        row = _existing(session, event.provider, event.payment_id)
        if row.status != "failed":
            return "ignored", "This payment was already applied."
        # A failure reported first, then the capture (Razorpay warns this happens; Stripe's
        # declined card retried on the same payment intent is the same).
        row.status, row.amount, row.fee, row.fee_tax = "captured", amount, event.fee, event.fee_tax
        row.method, row.failure_reason = event.method, None
        session.flush()
    row.payment_id = _book(session, client, checkout, event, amount).id
    checkout.status = "paid"
    session.flush()
    return "applied", None


def _received_on(session: Session, event: PaymentEvent):
    tenant = session.get(Tenant, bound_tenant_id(session))
    now = datetime.now(UTC)
    moment = event.occurred_at
    # A claimed time in the future is the time we learned of it.
    return local_date(tenant.time_zone, min(moment, now) if moment else now)


def _book(
    session: Session, client: Client, checkout: Checkout, event: PaymentEvent, amount: Decimal
):
    """The Duebook payment of a captured gateway payment, allocated to the checkout's invoices
    oldest first, each up to what the payer chose for it (less its interest) and what it owes
    now. Then each line's interest is announced, for collections to settle the invoice's
    claim from what the payment has left (the spine sits below collections); what nobody
    takes is the client's credit."""
    name = _name(event.provider)
    paid = payments.record_payment(
        session,
        client,
        {
            "amount": amount,
            "received_on": _received_on(session, event),
            "method": event.book_method,
            "reference": f"{name} {event.payment_id}"[:120],
            "note": f"Paid online through {name}.",
        },
    )
    wanted = {line.invoice_id: line.principal for line in checkout.invoices}
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
    for line in checkout.invoices:
        if line.interest > 0:
            signals.announce_gateway_interest_paid(
                session,
                client_id=client.id,
                payment_id=paid.id,
                invoice_id=line.invoice_id,
                amount=line.interest,
                currency=paid.currency,
            )
    return paid


def _apply_refund(session: Session, event: PaymentEvent) -> tuple[str, str | None]:
    if not event.refund_id or not event.payment_id:
        return "ignored", "The event carries no refund."
    if event.refund_amount is not None and event.refund_amount <= 0:
        return "ignored", "The refund has no amount."
    if known_payment(session, event.provider, event.payment_id) is None:
        return (
            "parked",
            f"Refund {event.refund_id} is for payment {event.payment_id}, unknown here.",
        )
    row = _existing(session, event.provider, event.payment_id)
    if row.status not in ("captured", "partly_refunded") or row.payment_id is None:
        return "parked", f"Refund {event.refund_id} is for a payment that was not applied."
    if event.refund_amount is not None:
        amount = event.refund_amount
    elif event.refunded_total is not None:
        # The gateway told the payment's refunded total: this refund is what is new in it.
        amount = event.refunded_total - row.refunded
        if amount <= 0:
            return "ignored", "This refund was already applied."
    else:
        return "ignored", "The refund has no amount."
    if row.refunded + amount > row.amount:
        return "parked", f"Refund {event.refund_id} is more than what is left of the payment."
    refund = GatewayRefund(
        provider=event.provider,
        provider_refund_id=event.refund_id[:64],
        gateway_payment_id=row.id,
        amount=amount,
    )
    if not _new_row(session, refund):
        return "ignored", "This refund was already applied."
    row.refunded += amount
    row.status = "refunded" if row.refunded == row.amount else "partly_refunded"
    why = f"Refunded through {_name(row.provider)} ({event.refund_id})"
    _reverse(session, row, amount, why)
    session.flush()
    return "applied", None


def _apply_dispute(session: Session, event: PaymentEvent) -> tuple[str, str | None]:
    """The payer's bank disputes the payment and the gateway takes the money back until the
    dispute is decided: the payment is taken back as a refund is (its invoices owe again),
    and each invoice it paid gets an open dispute in collections (through a signal: the
    spine sits below collections)."""
    dispute = event.dispute
    if dispute is None or not event.payment_id:
        return "ignored", "The event carries no dispute."
    if known_payment(session, event.provider, event.payment_id) is None:
        return (
            "parked",
            f"Dispute {dispute.dispute_id} is for payment {event.payment_id}, unknown here.",
        )
    row = _existing(session, event.provider, event.payment_id)
    if row.status not in ("captured", "partly_refunded") or row.payment_id is None:
        return "parked", f"Dispute {dispute.dispute_id} is for a payment that was not applied."
    left = row.amount - row.refunded
    amount = min(dispute.amount, left) if dispute.amount and dispute.amount > 0 else left
    # The dispute's withdrawal is kept beside the refunds, under the dispute's id: once.
    taken = GatewayRefund(
        provider=event.provider,
        provider_refund_id=dispute.dispute_id[:64],
        gateway_payment_id=row.id,
        amount=amount,
    )
    if not _new_row(session, taken):
        return "ignored", "This dispute was already applied."
    row.status = "disputed"
    name = _name(row.provider)
    invoice_ids = _reverse(session, row, amount, f"Disputed through {name} ({dispute.dispute_id})")
    due = (
        f"; evidence is due by {dispute.evidence_due_by:%d %b %Y}"
        if dispute.evidence_due_by
        else ""
    )
    signals.announce_gateway_payment_disputed(
        session,
        client_id=row.client_id,
        invoice_ids=invoice_ids,
        provider=row.provider,
        dispute_id=dispute.dispute_id,
        amount=amount,
        currency=row.currency,
        reason=(
            f"The payer disputed {name} payment {row.provider_payment_id} "
            f"({format_money(amount, row.currency)}, reason: {dispute.reason or 'not given'}){due}."
        ),
    )
    session.flush()
    return "applied", None


def _reverse(session: Session, row: GatewayPayment, amount: Decimal, why: str) -> list[int]:
    """Take the money back as voiding does: the payment is void (every invoice it settled
    owes again), and what the client kept is booked again as a new payment, applied to the
    same invoices oldest first. Returns the invoices the payment had paid."""
    booked = payments.get_payment(session, row.payment_id)
    kept_allocations = payments.live_allocations(session, booked)
    payments.void_payment(session, booked, f"{why}: {format_money(amount, row.currency)}")
    invoices = {a.invoice_id: a.amount for a in kept_allocations if a.amount > 0}
    left = booked.amount - amount
    if left <= 0:
        return list(invoices)
    client = session.get(Client, row.client_id)
    again = payments.record_payment(
        session,
        client,
        {
            "amount": left,
            "received_on": booked.received_on,
            "method": booked.method,
            "reference": booked.reference,
            "note": f"What the client kept of {_name(row.provider)} {row.provider_payment_id} "
            f"after {why[0].lower()}{why[1:]}.",
        },
    )
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
    return list(invoices)
