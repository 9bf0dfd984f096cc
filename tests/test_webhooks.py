"""The rules every provider's reports go through (app/messaging/webhooks.py): one status order
for WhatsApp, MSG91, Twilio and e-mail bounces, where a failure never undoes a delivery; and
a stored body that no provider would send is refused whole by the worker, never applied in
part and never retried forever."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.clients.models import Client, Contact
from app.integrations.connectors import StatusUpdate
from app.messaging.models import WebhookEvent
from app.messaging.webhooks import apply_status_updates, process_event
from app.outbox.models import OutboxMessage
from tests.helpers import tenant_session, unique

AT = datetime(2026, 9, 2, 10, tzinfo=UTC)


def outbox_row(db_session, tenant, provider: str, status: str) -> OutboxMessage:
    row = OutboxMessage(
        tenant_id=tenant.id,
        channel="email" if provider == "smtp" else "sms",
        idempotency_key=unique("rule:"),
        recipient="+919876543210",
        subject="Invoice due",
        body_text="Hi",
        status=status,
        provider=provider,
        provider_message_id=unique("id-"),
    )
    db_session.add(row)
    db_session.commit()
    return row


@pytest.mark.parametrize(
    "provider, failure",
    [
        ("whatsapp_cloud", "failed"),
        ("msg91", "failed"),
        ("twilio", "failed"),
        ("smtp", "bounced"),
    ],
)
def test_a_failure_reported_after_delivery_leaves_the_message_delivered(
    app, db_session, make_tenant, provider, failure
):
    tenant = make_tenant()
    session = tenant_session(db_session, tenant)
    row = outbox_row(db_session, tenant, provider, "sent")
    report = StatusUpdate(provider, row.provider_message_id, "delivered", AT)
    assert apply_status_updates(session, tenant.id, [report]) == 1
    late = StatusUpdate(provider, row.provider_message_id, failure, AT, error="late")
    with app.app_context():
        assert apply_status_updates(session, tenant.id, [late]) == 0
    session.commit()
    db_session.refresh(row)
    assert (row.status, row.delivered_at, row.failed_at, row.last_error) == (
        "delivered",
        AT,
        None,
        None,
    )
    # Nor does anything else move it back.
    for status in ("sent", "delivered"):
        earlier = StatusUpdate(provider, row.provider_message_id, status, AT)
        assert apply_status_updates(session, tenant.id, [earlier]) == 0


@pytest.mark.parametrize("arrival", ["delivered", "read"])
def test_an_arrival_reported_after_a_failure_wins(app, db_session, make_tenant, arrival):
    tenant = make_tenant()
    session = tenant_session(db_session, tenant)
    row = outbox_row(db_session, tenant, "msg91", "failed")
    report = StatusUpdate("msg91", row.provider_message_id, arrival, AT)
    assert apply_status_updates(session, tenant.id, [report]) == 1
    session.commit()
    db_session.refresh(row)
    assert row.status == arrival and row.delivered_at == AT


def test_a_stored_body_of_the_wrong_shape_is_refused_whole_and_not_retried(
    app, db_session, make_tenant
):
    """An event stored before the receivers checked bodies: its inbound message comes before a
    malformed status list. Nothing of it is applied, and it is marked processed with why."""
    tenant = make_tenant()
    session = tenant_session(db_session, tenant)
    client = Client(
        full_name="Asha Constructions",
        short_name=unique("AC"),
        location="local",
        country="IN",
        currency="INR",
        payment_terms="net",
        payment_days=30,
    )
    session.add(client)
    session.flush()
    contact = Contact(client_id=client.id, full_name="Asha Rao", phone="+919876543210")
    session.add(contact)
    session.commit()
    body = (
        '{"entry":[{"changes":[{"field":"messages","value":{"messages":[{"from":'
        '"919876543210","timestamp":"1790000000","type":"text","text":{"body":"hi"}}],'
        '"statuses":"delivered"}}]}]}'
    )
    event = WebhookEvent(
        provider="whatsapp_cloud", event_key=unique("legacy"), tenant_id=tenant.id, body=body
    )
    db_session.add(event)
    db_session.commit()
    assert process_event(session, event.id, tenant.id) == 0
    session.commit()
    db_session.refresh(event)
    assert event.processed_at is not None
    assert event.error == "body.entry[0].changes[0].value.statuses is not a list."
    assert session.get(Contact, contact.id).whatsapp_last_inbound_at is None
