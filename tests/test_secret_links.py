"""One-time links (invitations, password resets) reach their recipient's mailbox and nowhere
else: not the Messages pages every member reads, not the outbox in clear, not a workspace's
own mail server, not the logs."""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from gunicorn.config import Config
from sqlalchemy import select, text

from app.access_log import HideSecretLinks, RedactingLogger
from app.devserver import free_port
from app.outbox.models import OutboxMessage
from tenants.models import Membership, User
from tests.helpers import PASSWORD, csrf_token_from, mail_link
from tests.test_email_channel import RecordingServer, connect_own_smtp
from tests.test_team import invite


def outbox_row_as_text(db_session, message_id: int) -> str:
    """Every column of the outbox row, as PostgreSQL prints it."""
    return db_session.execute(
        text("SELECT m::text FROM public.outbox_messages m WHERE id = :id"), {"id": message_id}
    ).scalar_one()


def test_a_viewer_cannot_take_over_an_admin_invitation(
    app, client, db_session, make_tenant, make_user, add_member, login, run_jobs, received_mail
):
    owner, viewer = make_user(full_name="Asha Owner"), make_user()
    tenant = make_tenant(owner=owner, name="Kaveri Builders")
    add_member(tenant, viewer, role="viewer")
    login(client, owner)
    assert invite(client, tenant, "new.admin@example.com", role="admin").status_code == 303
    message = db_session.scalar(
        select(OutboxMessage).where(OutboxMessage.recipient == "new.admin@example.com")
    )
    stored_before_sending = outbox_row_as_text(db_session, message.id)
    assert "/invitations/" not in stored_before_sending

    run_jobs()
    [mail] = received_mail()
    link = mail_link(mail, "/invitations/")
    token = link.rsplit("/", 1)[1]
    assert len(token) >= 40
    for stored in (stored_before_sending, outbox_row_as_text(db_session, message.id)):
        assert token not in stored

    snooper = app.test_client()
    login(snooper, viewer)
    base = f"/t/{tenant.slug}/messages"
    listing = snooper.get(f"{base}/")
    detail = snooper.get(f"{base}/{message.id}")
    html = snooper.get(f"{base}/{message.id}/html")
    assert listing.status_code == detail.status_code == html.status_code == 200
    assert "new.admin@example.com" in listing.text
    for page in (listing, detail, html):
        assert token not in page.text and "/invitations/" not in page.text
    assert "(link hidden: only the recipient can see it)" in detail.text
    assert "(link hidden: only the recipient can see it)" in html.text
    assert 'href="(link hidden' not in html.text  # the button leads nowhere, not to a bad URL

    # The real recipient's link works and makes them an admin.
    recipient = app.test_client()
    form = recipient.get(link)
    response = recipient.post(
        link,
        data={
            "full_name": "New Admin",
            "password": PASSWORD,
            "csrf_token": csrf_token_from(form.text),
        },
    )
    assert response.status_code == 302
    membership = db_session.scalar(
        select(Membership).join(User).where(User.email == "new.admin@example.com")
    )
    assert (membership.tenant_id, membership.role) == (tenant.id, "admin")
    viewer_membership = db_session.scalar(select(Membership).where(Membership.user_id == viewer.id))
    assert viewer_membership.role == "viewer"


def test_a_password_reset_link_is_sealed_in_the_outbox_and_erased_once_sent(
    client, db_session, make_user, run_jobs, received_mail
):
    user = make_user()
    page = client.get("/password/forgot")
    client.post(
        "/password/forgot", data={"email": user.email, "csrf_token": csrf_token_from(page.text)}
    )
    message = db_session.scalar(select(OutboxMessage).where(OutboxMessage.recipient == user.email))
    stored_before_sending = outbox_row_as_text(db_session, message.id)
    assert "/password/reset/" not in stored_before_sending
    assert message.carries_secret and message.sealed_secret

    run_jobs()
    [mail] = received_mail()
    link = mail_link(mail, "/password/reset/")
    token = link.rsplit("/", 1)[1]
    stored_after_sending = outbox_row_as_text(db_session, message.id)
    for stored in (stored_before_sending, stored_after_sending):
        assert token not in stored and token[-27:] not in stored  # nor its signature
    db_session.refresh(message)
    assert message.status == "sent" and message.sealed_secret is None
    assert client.get(link).status_code == 200  # the recipient's link works


@pytest.fixture
def workspace_mail_server():
    server, port = RecordingServer(), free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    yield server, port
    controller.stop()


def test_invitations_go_by_the_platforms_mail_server_not_the_workspaces(
    app,
    client,
    db_session,
    make_tenant,
    make_user,
    login,
    run_jobs,
    received_mail,
    workspace_mail_server,
):
    """A workspace's own SMTP server is run by its admins: an invitation mailed through it
    would let them read the link and make an account for an address they do not control."""
    server, port = workspace_mail_server
    owner = make_user()
    tenant = make_tenant(owner=owner)
    connect_own_smtp(app, db_session, tenant, port)
    login(client, owner)
    invite(client, tenant, "someone.else@example.com", role="admin")
    run_jobs()
    assert server.envelopes == []
    assert [mail["To"] for mail in received_mail()] == ["someone.else@example.com"]


def test_a_sent_invitation_cannot_be_sent_again_from_the_messages_page(
    client, db_session, make_tenant, make_user, login, run_jobs
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    invite(client, tenant, "late.joiner@example.com")
    run_jobs()
    message = db_session.scalar(
        select(OutboxMessage).where(OutboxMessage.recipient == "late.joiner@example.com")
    )
    message.status = "failed"  # the provider's later word
    db_session.commit()
    page = client.get(f"/t/{tenant.slug}/messages/{message.id}")
    assert ">Retry</button>" not in page.text
    response = client.post(
        f"/t/{tenant.slug}/messages/{message.id}/retry",
        data={"csrf_token": csrf_token_from(page.text)},
        follow_redirects=True,
    )
    assert "Send a new invitation instead" in response.text
    db_session.refresh(message)
    assert message.status == "failed"


def test_the_logs_hide_the_secret_part_of_one_time_links():
    token = "Zm9vYmFyYmF6cXV4cXV1eHF1dXpfLWFiY2RlZmdoaWprbG1u"
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/login?next=%2Finvitations%2F{token}",
        "PATH_INFO": "/login",
        "QUERY_STRING": f"next=%2Finvitations%2F{token}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_REFERER": f"http://127.0.0.1:5000/password/reset/{token}.abc.def",
    }
    response = SimpleNamespace(
        status="200 OK", headers=[("Location", f"/invitations/{token}")], sent=10
    )
    atoms = RedactingLogger(Config()).atoms(response, [], environ, timedelta(milliseconds=3))
    logged = " ".join(str(value) for value in atoms.values())
    assert token not in logged
    assert "%2Finvitations%2F[hidden]" in atoms["r"] and "/password/reset/[hidden]" in atoms["f"]

    record = logging.LogRecord(
        "app",
        logging.ERROR,
        __file__,
        1,
        "Exception on %s [%s]",
        (f"/invitations/{token}", "POST"),
        None,
    )
    assert HideSecretLinks().filter(record)
    assert record.getMessage() == "Exception on /invitations/[hidden] [POST]"
