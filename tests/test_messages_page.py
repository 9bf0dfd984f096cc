"""The Messages page: a workspace sees its own messages only, filters by channel, status,
campaign, client and recipient; a message's page shows what the recipient got on each
channel; a dead letter can be sent again by someone allowed to send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.clients.models import Client
from app.messaging import listing
from app.outbox.models import OutboxMessage
from app.outbox.services import queue_message
from tests.helpers import csrf_token_from, tenant_session, unique

LATER = datetime.now(UTC) + timedelta(days=30)  # not due: no worker picks these up by itself


def add_message(db_session, app, tenant, status="sent", **fields) -> int:
    """A message of `tenant` in `status` (written as the outbox writes it, then moved)."""
    values = {
        "channel": "email",
        "to": f"{unique('r')}@example.com",
        "subject": "Hello",
        "text_body": "Body text",
        **fields,
    }
    with app.app_context():
        session = tenant_session(db_session, tenant)
        message_id = queue_message(
            session,
            idempotency_key=unique("page:"),
            tenant_id=tenant.id,
            not_before=LATER,
            **values,
        )
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == message_id).values(status=status)
        )
        session.commit()
    return message_id


def add_client(db_session, tenant, name="Acme Builders") -> int:
    session = tenant_session(db_session, tenant)
    client = Client(
        full_name=name,
        short_name=name.split()[0],
        location="local",
        country="IN",
        currency="INR",
        payment_terms="net",
        payment_days=30,
    )
    session.add(client)
    session.commit()
    return client.id


def test_list_shows_only_this_workspaces_messages_and_filters_work(
    app, client, db_session, make_tenant, make_user, login
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    other = make_tenant()
    client_id = add_client(db_session, tenant)
    add_message(
        db_session, app, tenant, to="alice@example.com", status="delivered", client_id=client_id
    )
    add_message(
        db_session,
        app,
        tenant,
        channel="whatsapp",
        to="+919876543210",
        status="dead",
        payload={"whatsapp": {"name": "invoice_due"}},
        campaign_id=4242,
    )
    add_message(db_session, app, tenant, channel="sms", to="+919800000001", status="pending")
    add_message(db_session, app, other, to="someone-of-b@example.com")
    login(client, owner)
    base = f"/t/{tenant.slug}/messages/"

    page = client.get(base)
    assert page.status_code == 200
    assert "alice@example.com" in page.text and "+919876543210" in page.text
    assert "someone-of-b@example.com" not in page.text
    fragment = client.get(base, query_string={"channel": "sms"}, headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and "+919800000001" in fragment.text

    def recipients(**args):
        response = client.get(base, query_string=args)
        assert response.status_code == 200
        found = [
            r for r in ("alice@example.com", "+919876543210", "+919800000001") if r in response.text
        ]
        return found, response.text

    assert recipients(channel="whatsapp")[0] == ["+919876543210"]
    assert recipients(status="failed")[0] == ["+919876543210"]  # dead letters are failures
    assert recipients(status="queued")[0] == ["+919800000001"]
    assert recipients(status="delivered")[0] == ["alice@example.com"]
    assert recipients(q="ALICE")[0] == ["alice@example.com"]
    assert recipients(client_id=client_id)[0] == ["alice@example.com"]
    assert recipients(campaign_id=4242)[0] == ["+919876543210"]
    found, text = recipients(channel="sms", status="failed")
    assert found == [] and "No messages match these filters." in text

    # Counts per status of the filtered set (the status filter itself aside).
    with app.test_request_context():
        session = tenant_session(db_session, tenant)
        counts, capped = listing.status_counts(session, tenant.id, listing.MessageFilters())
        assert counts == {"delivered": 1, "failed": 1, "queued": 1} and not capped
        emails = listing.MessageFilters(channel="email", status="failed")
        assert listing.status_counts(session, tenant.id, emails)[0] == {"delivered": 1}


def test_pages_are_keyset_pages_of_newest_first(app, db_session, make_tenant):
    tenant = make_tenant()
    ids = [add_message(db_session, app, tenant) for _ in range(5)]
    with app.app_context():
        session = tenant_session(db_session, tenant)
        filters = listing.MessageFilters()
        first = listing.list_messages(session, tenant.id, filters, page_size=2)
        second = listing.list_messages(session, tenant.id, filters, first.next_cursor, 2)
        third = listing.list_messages(session, tenant.id, filters, second.next_cursor, 2)
    seen = [r.message.id for page in (first, second, third) for r in page.rows]
    assert seen == sorted(ids, reverse=True)
    assert third.next_cursor is None and first.total == 5


def test_detail_shows_what_the_recipient_got_on_each_channel(
    app, client, db_session, make_tenant, make_user, login
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    email = add_message(
        db_session,
        app,
        tenant,
        subject="Invoice INV/1",
        html_body="<p><b>Pay</b> soon</p>",
        payload={
            "attachments": [{"key": f"{tenant.schema}/invoices/1/a.pdf", "filename": "INV-1.pdf"}]
        },
    )
    whatsapp = add_message(
        db_session,
        app,
        tenant,
        channel="whatsapp",
        to="+919876543210",
        subject="Reminder",
        payload={
            "whatsapp": {
                "type": "template",
                "name": "payment_reminder",
                "language": "en",
                "body_params": ["Acme", "₹1,000"],
            }
        },
    )
    sms = add_message(
        db_session,
        app,
        tenant,
        channel="sms",
        to="+919800000001",
        subject="SMS",
        payload={
            "sms": {
                "dlt_template_id": "1107160000000000001",
                "gateway_template_id": "f1",
                "variables": {"var1": "Acme"},
            }
        },
    )
    with app.app_context():
        session = tenant_session(db_session, tenant)
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == email)
            .values(
                provider="smtp",
                provider_message_id="<abc@duebook>",
                attempts=1,
                sent_at=datetime.now(UTC),
            )
        )
        session.commit()
    login(client, owner)
    base = f"/t/{tenant.slug}/messages"

    page = client.get(f"{base}/{email}")
    assert page.status_code == 200
    for text in ("Invoice INV/1", "Body text", "INV-1.pdf", "&lt;abc@duebook&gt;", "smtp", "Sent"):
        assert text in page.text
    assert f'src="{base}/{email}/html"' in page.text and 'sandbox=""' in page.text
    html = client.get(f"{base}/{email}/html")
    assert html.text == "<p><b>Pay</b> soon</p>"
    assert html.headers["Content-Security-Policy"].startswith("sandbox; default-src 'none'")
    assert "frame-ancestors 'self'" in html.headers["Content-Security-Policy"]

    page = client.get(f"{base}/{whatsapp}")
    for text in ("WhatsApp", "payment_reminder", "(en)", "Acme", "₹1,000"):
        assert text in page.text
    assert client.get(f"{base}/{whatsapp}/html").status_code == 404  # no HTML part

    page = client.get(f"{base}/{sms}")
    for text in ("SMS", "1107160000000000001", "var1 = Acme"):
        assert text in page.text


def test_another_workspaces_message_is_not_found(
    app, client, db_session, make_tenant, make_user, login
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    theirs = add_message(db_session, app, make_tenant(), status="dead")
    login(client, owner)
    assert client.get(f"/t/{tenant.slug}/messages/{theirs}").status_code == 404
    assert client.get(f"/t/{tenant.slug}/messages/{theirs}/html").status_code == 404
    page = client.get(f"/t/{tenant.slug}/messages/")
    response = client.post(
        f"/t/{tenant.slug}/messages/{theirs}/retry", data={"csrf_token": csrf_token_from(page.text)}
    )
    assert response.status_code == 404


def test_retry_puts_a_dead_letter_back_and_it_is_delivered(
    app, client, db_session, make_tenant, make_user, login, run_jobs, received_mail
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    dead = add_message(
        db_session, app, tenant, to="retry-me@example.com", status="dead", subject="Your invoice"
    )
    db_session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == dead)
        .values(attempts=8, last_error="Connection refused", failed_at=datetime.now(UTC))
    )
    db_session.commit()
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/messages/{dead}")
    assert "Connection refused" in page.text and ">Retry</button>" in page.text

    response = client.post(
        f"/t/{tenant.slug}/messages/{dead}/retry", data={"csrf_token": csrf_token_from(page.text)}
    )
    assert response.status_code == 303
    followed = client.get(response.headers["Location"])
    assert "back in the queue" in followed.text
    message = db_session.get(OutboxMessage, dead, populate_existing=True)
    assert (message.status, message.attempts, message.last_error) == ("pending", 0, None)

    run_jobs()
    assert [m["To"] for m in received_mail()] == ["retry-me@example.com"]
    message = db_session.get(OutboxMessage, dead, populate_existing=True)
    assert message.status == "sent" and message.sent_at is not None


def test_a_viewer_sees_messages_but_cannot_retry(
    app, client, db_session, make_tenant, make_user, add_member, login
):
    tenant = make_tenant()
    viewer = make_user()
    add_member(tenant, viewer, role="viewer")
    dead = add_message(db_session, app, tenant, status="dead")
    login(client, viewer)
    page = client.get(f"/t/{tenant.slug}/messages/{dead}")
    assert page.status_code == 200 and ">Retry</button>" not in page.text
    response = client.post(
        f"/t/{tenant.slug}/messages/{dead}/retry", data={"csrf_token": csrf_token_from(page.text)}
    )
    assert response.status_code == 403
    assert db_session.get(OutboxMessage, dead, populate_existing=True).status == "dead"


def test_a_clients_messages_for_its_timeline(app, db_session, make_tenant):
    tenant = make_tenant()
    client_id = add_client(db_session, tenant)
    mine = add_message(
        db_session, app, tenant, client_id=client_id, status="read", subject="Statement"
    )
    add_message(db_session, app, tenant, subject="Not this client's")
    add_message(db_session, app, make_tenant(), client_id=client_id, subject="Other workspace")
    with app.app_context():
        session = tenant_session(db_session, tenant)
        items = listing.messages_for_client(session, tenant.id, client_id)
    assert [(i["id"], i["subject"], i["status"], i["status_label"]) for i in items] == [
        (mine, "Statement", "read", "Read")
    ]
    assert items[0]["link"] == f"/t/{tenant.slug}/messages/{mine}"
