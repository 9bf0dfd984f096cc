"""The signals lower areas send (`app.core.signals`): each is sent once per change, with the
session of the change as sender and plain facts (ids, the tenant, amounts) as its payload.
Collections and notifications react to them (their own tests cover the reactions)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import update

from app.clients.models import Client
from app.core import signals
from app.integrations.connectors import StatusUpdate
from app.invoicing import credits
from app.invoicing import services as invoicing
from app.messaging.delivery import MAX_ATTEMPTS
from app.messaging.webhooks import apply_status_updates
from app.outbox.models import OutboxMessage
from app.outbox.services import queue_message
from app.payments import services as payments
from app.projects.models import Milestone, Project
from tests.helpers import tenant_session, unique


@contextmanager
def caught(signal):
    """Every sending of `signal` while inside, as (sender, facts)."""
    sent = []

    def receiver(sender, **facts):
        sent.append((sender, facts))

    with signal.connected_to(receiver):
        yield sent


@pytest.fixture
def books(db_session, make_tenant, make_user):
    """A tenant, a client and a factory of issued invoices without tax."""
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)
    client = Client(
        full_name="Signal Client",
        short_name="Signals",
        location="local",
        region="27",
        country="IN",
        currency="INR",
        payment_terms="net",
        payment_days=30,
    )
    session.add(client)
    session.flush()
    counter = iter(range(1, 100))

    def issued(amount="1000.00", user_id=None):
        n = next(counter)
        project = Project(
            client_id=client.id,
            name=f"Project {n}",
            currency="INR",
            contract_value=Decimal(amount),
            start_date=date(2027, 1, 4),
        )
        session.add(project)
        session.flush()
        milestone = Milestone(
            project_id=project.id,
            position=1,
            name=f"Stage {n}",
            amount=Decimal(amount),
            due_rule="date",
            due_date=date(2027, 2, 1),
            status="completed",
        )
        session.add(milestone)
        session.flush()
        draft = invoicing.draft_from_milestones(session, tenant, project, [milestone], "0", "9983")
        return invoicing.issue(session, tenant, draft, date(2027, 2, 1), user_id=user_id)

    return session, tenant, owner, client, issued


def pay(session, client, amount):
    values = {"amount": amount, "received_on": "2027-03-01", "method": "upi", "reference": "U1"}
    return payments.record_payment(session, client, values)


def test_issuing_an_invoice_sends_invoice_issued(books):
    session, tenant, owner, client, issued = books
    with caught(signals.invoice_issued) as sent:
        invoice = issued("1000.00", user_id=owner.id)
    assert sent == [
        (
            session,
            {
                "tenant_id": tenant.id,
                "invoice_id": invoice.id,
                "client_id": client.id,
                "number": invoice.number,
                "currency": "INR",
                "total": Decimal("1000.00"),
                "issue_date": date(2027, 2, 1),
                "due_date": invoice.due_date,
                "user_id": owner.id,
            },
        )
    ]


def test_payments_send_payment_recorded_balance_changed_paid_and_payment_voided(books):
    session, tenant, owner, client, issued = books
    first, second = issued("600.00"), issued("400.00")
    with caught(signals.payment_recorded) as recorded:
        payment = pay(session, client, "900.00")
    assert recorded == [
        (
            session,
            {
                "tenant_id": tenant.id,
                "payment_id": payment.id,
                "client_id": client.id,
                "amount": Decimal("900.00"),
                "currency": "INR",
                "received_on": date(2027, 3, 1),
                "method": "upi",
            },
        )
    ]

    with caught(signals.invoice_balance_changed) as changed, caught(signals.invoice_paid) as paid:
        payments.allocate(
            session,
            payment,
            [(first.id, "600.00", "", "", ""), (second.id, "300.00", "", "", "")],
            user_id=owner.id,
        )
    common = {"tenant_id": tenant.id, "client_id": client.id, "user_id": owner.id}
    assert [facts for _, facts in changed] == [
        {**common, "invoice_id": first.id, "status": "paid", "amount_due": Decimal("0.00")},
        {
            **common,
            "invoice_id": second.id,
            "status": "partly_paid",
            "amount_due": Decimal("100.00"),
        },
    ]
    assert paid == [changed[0]]  # sent for the invoice that is now paid only
    assert all(sender is session for sender, _ in changed)

    with caught(signals.payment_voided) as voided, caught(signals.invoice_balance_changed) as back:
        payments.void_payment(session, payment, "Cheque bounced", user_id=owner.id)
    assert voided == [
        (
            session,
            {
                "tenant_id": tenant.id,
                "payment_id": payment.id,
                "client_id": client.id,
                "amount": Decimal("900.00"),
                "currency": "INR",
                "reason": "Cheque bounced",
                "user_id": owner.id,
            },
        )
    ]
    assert sorted((f["invoice_id"], f["status"], f["amount_due"]) for _, f in back) == sorted(
        [
            (first.id, "issued", Decimal("600.00")),
            (second.id, "issued", Decimal("400.00")),
        ]
    )


def test_a_credit_note_that_clears_an_invoice_sends_invoice_paid(books):
    session, tenant, owner, client, issued = books
    invoice = issued("500.00")
    with caught(signals.invoice_paid) as paid:
        credits.issue_credit_note(
            session, tenant, invoice, "", "Returned", date(2027, 2, 5), user_id=owner.id
        )
    assert [facts["invoice_id"] for _, facts in paid] == [invoice.id]
    assert paid[0][1]["amount_due"] == Decimal("0.00")


def test_voiding_and_writing_off_send_their_signals(books):
    session, tenant, owner, client, issued = books
    voided_invoice, written_off_invoice = issued("300.00"), issued("700.00")
    with caught(signals.invoice_voided) as voided:
        invoicing.void(session, voided_invoice, owner.id)
    assert voided == [
        (
            session,
            {
                "tenant_id": tenant.id,
                "invoice_id": voided_invoice.id,
                "client_id": client.id,
                "number": voided_invoice.number,
                "user_id": owner.id,
            },
        )
    ]
    with caught(signals.invoice_written_off) as written_off:
        invoicing.write_off(session, written_off_invoice, "Client closed down")
    assert written_off == [
        (
            session,
            {
                "tenant_id": tenant.id,
                "invoice_id": written_off_invoice.id,
                "client_id": client.id,
                "number": written_off_invoice.number,
                "amount_written_off": Decimal("700.00"),
                "reason": "Client closed down",
                "user_id": None,
            },
        )
    ]


def _queued(db_session, app, tenant, created_by) -> int:
    with app.app_context():
        session = tenant_session(db_session, tenant)
        message_id = queue_message(
            session,
            channel="email",
            to="nobody@example.com",
            subject="Invoice INV/9",
            text_body="Body",
            idempotency_key=unique("signal:"),
            tenant_id=tenant.id,
            created_by=created_by,
        )
        session.commit()
    return message_id


def test_a_dead_letter_sends_message_failed(app, db_session, make_tenant, make_user, run_jobs):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    message_id = _queued(db_session, app, tenant, owner.id)
    db_session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(attempts=MAX_ATTEMPTS - 1)
    )
    db_session.commit()
    app.config["SMTP_URL"], real_url = "smtp://127.0.0.1:9", app.config["SMTP_URL"]
    try:
        with caught(signals.message_failed) as failed:
            run_jobs()
    finally:
        app.config["SMTP_URL"] = real_url
    [(_, facts)] = failed
    reason = facts.pop("reason")
    assert facts == {
        "tenant_id": tenant.id,
        "message_id": message_id,
        "channel": "email",
        "status": "dead",
        "created_by": owner.id,
    }
    assert "refused" in reason.lower()


def test_a_bounce_reported_by_the_provider_sends_message_failed_and_messages_reported(
    app, db_session, make_tenant, make_user
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    message_id = _queued(db_session, app, tenant, None)
    with app.app_context():
        session = tenant_session(db_session, tenant)
        provider_id = unique("pm")
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(status="sent", provider="smtp", provider_message_id=provider_id)
        )
        report = StatusUpdate(
            provider="smtp",
            provider_message_id=provider_id,
            status="bounced",
            at=datetime.now(UTC),
            error="550 mailbox unavailable",
        )
        with caught(signals.message_failed) as failed, caught(signals.messages_reported) as moved:
            assert apply_status_updates(session, tenant.id, [report]) == 1
        session.rollback()
    assert moved == [
        (session, {"tenant_id": tenant.id, "message_ids": [message_id], "status": "bounced"})
    ]
    assert failed == [
        (
            session,
            {
                "tenant_id": tenant.id,
                "message_id": message_id,
                "channel": "email",
                "status": "bounced",
                "reason": "550 mailbox unavailable",
                "created_by": None,
            },
        )
    ]
