"""In-app notifications: a message that will not arrive tells whoever sent it (once), or the
workspace's admins; the bell counts a user's own unread notifications in this workspace only;
mark read, mark all read."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from app.integrations.connectors import StatusUpdate
from app.messaging.delivery import MAX_ATTEMPTS
from app.messaging.webhooks import apply_status_updates
from app.notifications import services
from app.notifications.models import Notification
from app.outbox.models import OutboxMessage
from app.outbox.services import queue_message
from tests.helpers import csrf_token_from, tenant_session, unique


def queue(db_session, app, tenant, created_by=None, to="nobody@example.com") -> int:
    with app.app_context():
        session = tenant_session(db_session, tenant)
        message_id = queue_message(
            session,
            channel="email",
            to=to,
            subject="Invoice INV/7",
            text_body="Body",
            idempotency_key=unique("notify:"),
            tenant_id=tenant.id,
            created_by=created_by,
        )
        session.commit()
    return message_id


def notifications_of(db_session, tenant, user) -> list[Notification]:
    session = tenant_session(db_session, tenant)
    return list(session.scalars(select(Notification).where(Notification.user_id == user.id)))


def bell(client, tenant) -> str:
    response = client.get(f"/t/{tenant.slug}/notifications/count")
    assert response.status_code == 200
    return response.text


def test_a_dead_letter_tells_its_sender_once_and_nobody_else(
    app, client, db_session, make_tenant, make_user, add_member, login, run_jobs
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    sender = make_user()
    add_member(tenant, sender, role="finance")
    other_workspace = make_tenant(owner=sender)
    message_id = queue(db_session, app, tenant, created_by=sender.id)
    # Its last attempt, against a mail server that is not there: it becomes a dead letter.
    db_session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(attempts=MAX_ATTEMPTS - 1)
    )
    db_session.commit()
    app.config["SMTP_URL"], real_url = "smtp://127.0.0.1:9", app.config["SMTP_URL"]
    try:
        run_jobs()
    finally:
        app.config["SMTP_URL"] = real_url

    assert db_session.get(OutboxMessage, message_id, populate_existing=True).status == "dead"
    [note] = notifications_of(db_session, tenant, sender)
    assert note.kind == "delivery_failed" and "nobody@example.com" in note.title
    assert "refused" in note.body.lower()  # the reason, in words
    assert note.link == f"/t/{tenant.slug}/messages/{message_id}"
    assert notifications_of(db_session, tenant, owner) == []  # the sender is told, not everyone
    assert notifications_of(db_session, other_workspace, sender) == []

    # Reported again (a second worker, a webhook): still one notification.
    with app.app_context():
        session = tenant_session(db_session, tenant)
        assert services.notify_delivery_failed(session, tenant.id, message_id, sender.id, "x") == 0
        session.commit()
    assert len(notifications_of(db_session, tenant, sender)) == 1

    login(client, sender)
    assert 'aria-label="1 unread notification"' in bell(client, tenant)
    assert 'aria-label="No unread notifications"' in bell(client, other_workspace)
    page = client.get(f"/t/{tenant.slug}/")
    assert 'hx-trigger="load, every 30s"' in page.text and 'aria-live="polite"' in page.text
    listing = client.get(f"/t/{tenant.slug}/notifications/")
    assert "nobody@example.com could not be delivered" in listing.text

    owners_browser = app.test_client()
    login(owners_browser, owner)
    assert 'aria-label="No unread notifications"' in bell(owners_browser, tenant)
    page = owners_browser.get(f"/t/{tenant.slug}/notifications/")
    assert "could not be delivered" not in page.text


def test_an_automatic_message_that_bounces_tells_the_admins_and_owners(
    app, db_session, make_tenant, make_user, add_member
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    admin, finance, gone = make_user(), make_user(), make_user()
    add_member(tenant, admin, role="admin")
    add_member(tenant, finance, role="finance")
    add_member(tenant, gone, role="admin").active = False
    db_session.commit()
    message_id = queue(db_session, app, tenant, created_by=None)
    with app.app_context():
        session = tenant_session(db_session, tenant)
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(status="sent", provider="smtp", provider_message_id=unique("pm"))
        )
        provider_id = session.get(OutboxMessage, message_id).provider_message_id
        report = StatusUpdate(
            provider="smtp",
            provider_message_id=provider_id,
            status="bounced",
            at=datetime.now(UTC),
            error="550 mailbox unavailable",
        )
        assert apply_status_updates(session, tenant.id, [report]) == 1
        session.commit()
    for user, told in ((owner, 1), (admin, 1), (finance, 0), (gone, 0)):
        notes = notifications_of(db_session, tenant, user)
        assert len(notes) == told, user.email
    assert "550 mailbox unavailable" in notifications_of(db_session, tenant, admin)[0].body


def test_mark_read_and_mark_all_read_touch_only_ones_own(
    app, client, db_session, make_tenant, make_user, add_member, login
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    colleague = make_user()
    add_member(tenant, colleague, role="viewer")
    session = tenant_session(db_session, tenant)
    with app.app_context():
        services.notify(session, [owner.id], "new_lead", "New lead: Acme", link="/t/x/clients/")
        services.notify(session, [owner.id], "broken_promise", "Acme missed its promise")
        services.notify(session, [colleague.id], "info", "For the colleague")
    session.commit()
    theirs = notifications_of(db_session, tenant, colleague)[0]
    first, second = sorted(notifications_of(db_session, tenant, owner), key=lambda n: n.id)

    login(client, owner)
    assert 'aria-label="2 unread notifications"' in bell(client, tenant)
    page = client.get(f"/t/{tenant.slug}/notifications/")
    assert "For the colleague" not in page.text
    token = csrf_token_from(page.text)
    base = f"/t/{tenant.slug}/notifications"
    assert client.post(f"{base}/{theirs.id}/read", data={"csrf_token": token}).status_code == 404
    opened = client.post(f"{base}/{first.id}/read", data={"csrf_token": token, "next": first.link})
    assert opened.status_code == 303 and opened.headers["Location"] == "/t/x/clients/"
    assert 'aria-label="1 unread notification"' in bell(client, tenant)
    outside = {"csrf_token": token, "next": "https://evil.example/"}
    elsewhere = client.post(f"{base}/{second.id}/read", data=outside)
    assert elsewhere.headers["Location"].endswith(f"{base}/")  # only paths of this site
    assert 'aria-label="No unread notifications"' in bell(client, tenant)

    with app.app_context():
        services.notify(session, [owner.id], "info", "One more")
    session.commit()
    response = client.post(f"{base}/read-all", data={"csrf_token": token})
    assert response.status_code == 303
    assert "1 notification marked read." in client.get(response.headers["Location"]).text
    assert 'aria-label="No unread notifications"' in bell(client, tenant)
    assert notifications_of(db_session, tenant, colleague)[0].read_at is None
