"""The hand-over to the workers: a Redis failure after commit is logged and left to a sweeper,
never raised to the user and never lost."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from app.campaigns.models import Campaign
from app.invoicing.models import Invoice
from app.messaging.models import WebhookEvent
from app.messaging.webhooks import record_webhook
from app.outbox import services as outbox
from app.outbox.models import OutboxMessage
from jobs.campaigns import sweep_campaign_launches_all
from jobs.tasks import sweep_invoice_pdfs_for_tenant, sweep_outbox
from tests.helpers import csrf_token_from, tenant_session, unique
from tests.test_campaigns import audience_books, every_day_is_a_business_day, rows_of
from tests.test_client_import import (
    MIXED_CSV,
    base,
    get_import,
    import_id_of,
    live_clients,
    save_mapping,
    start,
    upload,
)

__all__ = ["audience_books", "every_day_is_a_business_day"]  # fixtures used below

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"


def test_a_campaign_launched_while_redis_is_down_is_delivered_after_it_returns(
    audience_books,
    app,
    client,
    login,
    db_session,
    run_jobs,
    received_mail,
    monkeypatch,
    every_day_is_a_business_day,
):
    tenant, owner, _, _, template, _ = audience_books
    login(client, owner)
    new = client.get(f"/t/{tenant.slug}/campaigns/new")
    form = {
        "csrf_token": csrf_token_from(new.text),
        "name": "Rates while down",
        "channel": "email",
        "template_id": str(template.id),
        "city": "Pune",
        "schedule": "now",
        "throttle_per_minute": "6000",
    }
    show_url = client.post(f"/t/{tenant.slug}/campaigns/", data=form).headers["Location"]

    with monkeypatch.context() as redis_down:
        redis_down.setitem(app.config, "REDIS_URL", CLOSED_PORT_REDIS)
        launched = client.post(f"{show_url}/launch", data={"csrf_token": form["csrf_token"]})
    assert launched.status_code == 303
    run_jobs()  # Redis is back, but it never got the launch
    session = tenant_session(db_session, tenant)
    campaign = session.scalar(select(Campaign).where(Campaign.name == "Rates while down"))
    assert campaign.status == "scheduled" and rows_of(session, tenant, campaign.id) == []

    with app.app_context():
        assert sweep_campaign_launches_all() >= 1
    run_jobs()  # the sweep hands the launch over; the launch writes and hands out the rows
    with app.app_context():
        sweep_outbox()
        sweep_campaign_launches_all()  # the campaign is running now: nothing to launch again
    run_jobs()

    assert sorted(m["To"] for m in received_mail()) == ["meera@p1.example", "ravi@p1.example"]
    session = tenant_session(db_session, tenant)
    rows = rows_of(session, tenant, campaign.id)
    assert sorted((r.recipient, r.status) for r in rows if r.status != "suppressed") == [
        ("meera@p1.example", "sent"),
        ("ravi@p1.example", "sent"),
    ]


def test_every_kind_of_work_committed_while_redis_is_down_is_handed_over_again(
    app,
    client,
    login,
    db_session,
    make_user,
    make_tenant,
    make_client,
    make_invoice,
    run_jobs,
    received_mail,
    storage_root,
    monkeypatch,
    caplog,
):
    """A message, an invoice's PDF, a provider's webhook event and a client import, each
    committed while Redis does not answer: the user's action succeeds, the failed hand-over
    is logged with the job's name, and each is handed over later by its sweeper (the import:
    by starting it again from its page, which says no worker has it)."""
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")  # Maharashtra, as its invoices' client
    login(client, owner)
    import_id = import_id_of(upload(client, tenant, "clients.csv", MIXED_CSV))
    assert save_mapping(client, tenant, import_id).status_code == 303
    wamid = unique("wamid.")
    reported = OutboxMessage(
        tenant_id=tenant.id,
        channel="whatsapp",
        idempotency_key=unique("down:"),
        recipient="+919876543210",
        subject="Invoice due",
        body_text="Hi",
        status="sent",
        provider="whatsapp_cloud",
        provider_message_id=wamid,
    )
    db_session.add(reported)
    db_session.commit()
    status_report = (
        '{"entry":[{"changes":[{"field":"messages","value":{"statuses":[{"id":"'
        + wamid
        + '","status":"delivered","timestamp":"1790000000"}]}}]}]}'
    )

    with monkeypatch.context() as redis_down, caplog.at_level(logging.WARNING):
        redis_down.setitem(app.config, "REDIS_URL", CLOSED_PORT_REDIS)
        with app.app_context():
            session = tenant_session(db_session, tenant)
            invoice_id = make_invoice(session, tenant, make_client(session)).id
            session.commit()
            event_id = record_webhook(session, "whatsapp_cloud", status_report, tenant.id)
            session.commit()
            message_id = outbox.queue_email(
                db_session,
                to="kept@example.com",
                subject="Hello",
                text_body="Body",
                idempotency_key=unique("down:"),
            )
            db_session.commit()
        assert start(client, tenant, import_id).status_code == 303  # the user's action succeeded
    logged = " ".join(r.getMessage() for r in caplog.records if "left to the sweeper" in r.message)
    for job_name in (
        "deliver_outbox_messages",
        "render_invoice_pdf",
        "process_webhook_event",
        "run_client_import",
    ):
        assert job_name in logged

    run_jobs()  # Redis is back, but it got none of them: all committed, none done
    assert received_mail() == []
    assert db_session.get(OutboxMessage, message_id).status == "pending"
    check = tenant_session(db_session, tenant)
    assert check.get(Invoice, invoice_id).pdf_key is None
    assert check.get(WebhookEvent, event_id).processed_at is None
    assert get_import(check, import_id).status == "queued"

    # Minutes later the sweepers find what no worker has; the import page offers a restart.
    earlier = datetime.now(UTC) - timedelta(minutes=10)
    db_session.execute(
        update(OutboxMessage).where(OutboxMessage.id == message_id).values(created_at=earlier)
    )
    db_session.execute(
        update(WebhookEvent).where(WebhookEvent.id == event_id).values(received_at=earlier)
    )
    db_session.commit()
    check.execute(update(Invoice).where(Invoice.id == invoice_id).values(issued_at=earlier))
    check.commit()
    with app.app_context():
        assert sweep_outbox() >= 1
        assert sweep_invoice_pdfs_for_tenant(tenant_id=tenant.id) == 1
    progress = client.get(
        f"{base(tenant)}/imports/{import_id}/progress", headers={"HX-Request": "true"}
    )
    assert "No worker has this import" in progress.text
    assert start(client, tenant, import_id).status_code == 303
    run_jobs()

    assert [m["To"] for m in received_mail()] == ["kept@example.com"]
    check = tenant_session(db_session, tenant)
    assert check.get(Invoice, invoice_id).pdf_key is not None
    event = check.get(WebhookEvent, event_id)
    assert event.processed_at is not None and event.error is None
    assert db_session.get(OutboxMessage, reported.id, populate_existing=True).status == "delivered"
    assert get_import(check, import_id).status == "done" and live_clients(check)


def test_work_committed_outside_the_app_is_logged_and_left_to_the_sweepers(
    db_session, make_tenant, make_client, make_invoice, caplog
):
    """A script issuing an invoice with no app around it: no queue to hand the PDF to, so
    the commit goes through and the PDF is left to the sweep (which finds the invoice)."""
    tenant = make_tenant(region="27")
    session = tenant_session(db_session, tenant)
    with caplog.at_level(logging.INFO, logger="app.core.handover"):
        invoice_id = make_invoice(session, tenant, make_client(session)).id
        session.commit()
    # The invoice's PDF, and the delivery of its domain events, both left to their sweepers.
    assert "no app context to queue 2 job(s) (deliver_events, render_invoice_pdf)" in caplog.text
    check = tenant_session(db_session, tenant)
    assert check.get(Invoice, invoice_id).pdf_key is None
