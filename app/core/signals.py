"""What happened in the business, for whoever above wants to react: the one way a lower area
lets a higher one know (invoicing and payments tell collections, delivery and integrations
tell notifications) without importing it. The public API, outbound webhooks and integrations
hang on the same signals, so their names and payloads are a contract: add facts, never rename or
remove one.

Every signal is sent with the SQLAlchemy session of the change as its sender, and receivers
run at once in that session, inside the sender's transaction: what they write commits or
rolls back with the change, and they never commit. Receivers answer nothing, except where a
signal documents an answer (milestone_done). The facts are plain values (ids, the
tenant's id, statuses, `Decimal` amounts, dates), never ORM objects, so a receiver can hand
them to a job or a webhook as they are. This module imports no area.

Receivers connect when the app is created (`create_app` calls each area's `init_app`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from blinker import Namespace

from tenants.binding import bound_tenant_id

events = Namespace()

# An invoice was issued: tenant_id, invoice_id, client_id, number, currency, total, issue_date,
# due_date, user_id.
invoice_issued = events.signal("invoice-issued")
# What an invoice owes changed (a payment allocated or taken back, a payment voided, a credit
# note): tenant_id, invoice_id, client_id, status (after the change), amount_due, user_id.
invoice_balance_changed = events.signal("invoice-balance-changed")
# An invoice's balance change left it paid (sent before invoice_balance_changed): the same facts.
invoice_paid = events.signal("invoice-paid")
# An invoice was voided: tenant_id, invoice_id, client_id, number, user_id.
invoice_voided = events.signal("invoice-voided")
# What an invoice still owed was written off: tenant_id, invoice_id, client_id, number,
# amount_written_off, reason, user_id.
invoice_written_off = events.signal("invoice-written-off")
# A milestone is done: it reached the status its invoice is raised from ("approved" on a
# project that requires approval, else "completed"): tenant_id, project_id, milestone_id,
# user_id. Invoicing answers with a `MilestoneInvoice` when the project raises its invoices by
# itself (its auto_invoice, taken from the workspace's default), None otherwise.
milestone_done = events.signal("milestone-done")
# A payment was recorded (before it is allocated): tenant_id, payment_id, client_id, amount,
# currency, received_on, method.
payment_recorded = events.signal("payment-recorded")
# A payment was voided (its allocations taken back; each invoice's invoice_balance_changed
# follows): tenant_id, payment_id, client_id, amount, currency, reason, user_id.
payment_voided = events.signal("payment-voided")
# A payer's bank disputed a payment taken through a gateway (a card chargeback) and the gateway
# took the money back; the payment was taken back so its invoices owe again: tenant_id,
# client_id, invoice_ids (the invoices it had paid), provider, dispute_id, amount, currency,
# reason (in words). Collections opens a dispute on each invoice.
gateway_payment_disputed = events.signal("gateway-payment-disputed")
# A payment taken through a gateway carried late-payment interest for an invoice (the pay page
# asks for the interest a notice claimed); the payment was booked and what the invoice owes
# allocated, the interest's part left on it unallocated: tenant_id, client_id, payment_id,
# invoice_id, amount, currency. Collections settles the invoice's unpaid claim from the payment,
# up to the claim; what no claim takes stays the client's credit.
gateway_interest_paid = events.signal("gateway-interest-paid")

# A bank statement's lines were recorded, before its credits are matched to invoices:
# tenant_id, import_id. Gateways take the credits that are their payouts (settlements) first,
# so that they are never offered as an invoice's payment.
statement_lines_added = events.signal("statement-lines-added")
# A provider reported on messages of a tenant and their status moved (sent, delivered, read,
# failed, bounced; statuses only move forward): tenant_id, message_ids, status.
messages_reported = events.signal("messages-reported")
# A message will not arrive (bounced, dead-lettered, or failed as the provider reports):
# tenant_id (None for platform e-mail), message_id, channel, status, reason, created_by.
message_failed = events.signal("message-failed")
# A workspace's integration connection lost its provider account to a workspace that proved it
# controls the account, and stopped sending and receiving: tenant_id (the workspace that lost
# it), connection_id, provider, title (the provider's name as shown), reason.
integration_lost = events.signal("integration-lost")
# A client was archived (it stays in the books but is no longer chased): tenant_id, client_id,
# user_id. Collections closes the client's open notices.
client_archived = events.signal("client-archived")
# Clients asks, before it deletes a client, what the areas above still hold of it: tenant_id,
# client_id. Each receiver answers a list of `DeletionBlocker` (empty: nothing); any blocker
# refuses the deletion.
client_deletion_asked = events.signal("client-deletion-asked")


@dataclass(frozen=True)
class MilestoneInvoice:
    """Invoicing's answer to milestone_done: the invoice it raised for the milestone (number
    None while a draft), or, with no invoice, why the invoicing rules refused it."""

    invoice_id: int | None = None
    number: str | None = None
    refused: str | None = None


@dataclass(frozen=True)
class DeletionBlocker:
    """An answer to client_deletion_asked: what an area still holds of the client, in words
    ("3 open invoices owing ₹3,12,700.00"), what to do about it ("Settle or write them off"),
    and the tab of the client's page where that is done."""

    holds: str
    remedy: str
    tab: str


def _invoice_facts(session, invoice, user_id: int | None, **more) -> dict:
    """What every invoice signal carries, and the facts of the one being sent."""
    return {
        "tenant_id": bound_tenant_id(session),
        "invoice_id": invoice.id,
        "client_id": invoice.client_id,
        **more,
        "user_id": user_id,
    }


def _payment_facts(session, payment, **more) -> dict:
    """What every payment signal carries, and the facts of the one being sent."""
    return {
        "tenant_id": bound_tenant_id(session),
        "payment_id": payment.id,
        "client_id": payment.client_id,
        "amount": Decimal(payment.amount),
        "currency": payment.currency,
        **more,
    }


def announce_invoice_issued(session, invoice, user_id: int | None) -> None:
    invoice_issued.send(
        session,
        **_invoice_facts(
            session,
            invoice,
            user_id,
            number=invoice.number,
            currency=invoice.currency,
            total=Decimal(invoice.total),
            issue_date=invoice.issue_date,
            due_date=invoice.due_date,
        ),
    )


def announce_invoice_balance_changed(
    session, invoice, amount_due: Decimal, user_id: int | None
) -> None:
    """After the invoice's status was set from what it now owes."""
    facts = _invoice_facts(session, invoice, user_id, status=invoice.status, amount_due=amount_due)
    if invoice.status == "paid":
        invoice_paid.send(session, **facts)
    invoice_balance_changed.send(session, **facts)


def announce_invoice_voided(session, invoice, user_id: int | None) -> None:
    invoice_voided.send(session, **_invoice_facts(session, invoice, user_id, number=invoice.number))


def announce_invoice_written_off(session, invoice, user_id: int | None) -> None:
    invoice_written_off.send(
        session,
        **_invoice_facts(
            session,
            invoice,
            user_id,
            number=invoice.number,
            amount_written_off=Decimal(invoice.written_off_amount),
            reason=invoice.write_off_reason,
        ),
    )


def announce_milestone_done(
    session, *, project_id: int, milestone_id: int, user_id: int | None
) -> MilestoneInvoice | None:
    """Sent by projects when a person's move makes a milestone done; gives the invoice raised
    for it by itself, if the project asks for that."""
    replies = milestone_done.send(
        session,
        tenant_id=bound_tenant_id(session),
        project_id=project_id,
        milestone_id=milestone_id,
        user_id=user_id,
    )
    return next((reply for _, reply in replies if reply is not None), None)


def announce_payment_recorded(session, payment) -> None:
    payment_recorded.send(
        session,
        **_payment_facts(session, payment, received_on=payment.received_on, method=payment.method),
    )


def announce_payment_voided(session, payment, user_id: int | None) -> None:
    payment_voided.send(
        session, **_payment_facts(session, payment, reason=payment.void_reason, user_id=user_id)
    )


def announce_gateway_payment_disputed(session, **facts) -> None:
    gateway_payment_disputed.send(session, tenant_id=bound_tenant_id(session), **facts)


def announce_gateway_interest_paid(session, **facts) -> None:
    gateway_interest_paid.send(session, tenant_id=bound_tenant_id(session), **facts)


def announce_message_failed(
    session,
    *,
    tenant_id: int | None,
    message_id: int,
    channel: str,
    status: str,
    reason: str,
    created_by: int | None,
) -> None:
    """Sent by delivery and the provider webhooks; the tenant is the message's own (the
    delivery worker's session may serve several tenants)."""
    message_failed.send(
        session,
        tenant_id=tenant_id,
        message_id=message_id,
        channel=channel,
        status=status,
        reason=reason,
        created_by=created_by,
    )


def announce_messages_reported(
    session, *, tenant_id: int, message_ids: list[int], status: str
) -> None:
    messages_reported.send(session, tenant_id=tenant_id, message_ids=message_ids, status=status)


def announce_integration_lost(
    session, *, tenant_id: int, connection_id: int, provider: str, title: str, reason: str
) -> None:
    """Sent by integrations on a take-over; the tenant is the losing workspace, not the one the
    session is bound to (a take-over changes both in one transaction)."""
    integration_lost.send(
        session,
        tenant_id=tenant_id,
        connection_id=connection_id,
        provider=provider,
        title=title,
        reason=reason,
    )


def announce_client_archived(session, client, user_id: int | None) -> None:
    client_archived.send(
        session, tenant_id=bound_tenant_id(session), client_id=client.id, user_id=user_id
    )


def ask_client_deletion_blockers(session, client) -> list[DeletionBlocker]:
    """What keeps the client from being deleted, from every area that answers."""
    replies = client_deletion_asked.send(
        session, tenant_id=bound_tenant_id(session), client_id=client.id
    )
    return [blocker for _, reply in replies for blocker in reply or ()]
