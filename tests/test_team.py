"""Invitations by e-mail through the outbox and the worker, roles and what they allow, and the
rules that keep a workspace manageable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.outbox.models import OutboxMessage
from tenants.models import Invitation, Membership
from tests.helpers import PASSWORD, csrf_token_from, mail_link


def invite(client, tenant, email, role="finance"):
    page = client.get(f"/t/{tenant.slug}/team/")
    return client.post(
        f"/t/{tenant.slug}/team/invitations",
        data={"email": email, "role": role, "csrf_token": csrf_token_from(page.text)},
    )


def test_invitation_is_mailed_by_the_worker_and_accepted_by_a_new_user(
    app, client, db_session, make_tenant, make_user, login, run_jobs, received_mail
):
    owner = make_user(full_name="Asha Owner")
    tenant = make_tenant(owner=owner, name="Kaveri Builders")
    login(client, owner)
    response = invite(client, tenant, "ravi@example.com")
    assert response.status_code == 303
    assert received_mail() == []  # nothing is sent inside the request

    run_jobs()
    [message] = received_mail()
    assert message["To"] == "ravi@example.com"
    assert "Kaveri Builders" in message["Subject"]
    outbox = db_session.scalar(
        select(OutboxMessage).where(OutboxMessage.recipient == "ravi@example.com")
    )
    assert outbox.status == "sent" and outbox.tenant_id == tenant.id
    assert (
        message["Message-ID"]
        == f"<invitation.{outbox.idempotency_key.split(':')[1]}@duebook.local>"
    )

    colleague = app.test_client()
    link = mail_link(message, "/invitations/")
    form = colleague.get(link)
    assert form.status_code == 200 and "Join Kaveri Builders" in form.text
    response = colleague.post(
        link,
        data={
            "full_name": "Ravi Kumar",
            "password": PASSWORD,
            "csrf_token": csrf_token_from(form.text),
        },
    )
    assert response.status_code == 302
    assert colleague.get(f"/t/{tenant.slug}/").status_code == 200
    membership = db_session.scalar(
        select(Membership).where(Membership.tenant_id == tenant.id, Membership.role == "finance")
    )
    assert membership.user.full_name == "Ravi Kumar"
    assert colleague.get(link).status_code == 400  # used once only


def test_existing_user_accepts_after_logging_in(
    app, client, db_session, make_tenant, make_user, login, run_jobs, received_mail
):
    owner, colleague_user = make_user(), make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    invite(client, tenant, colleague_user.email.upper(), role="collector")
    run_jobs()
    link = mail_link(received_mail()[0], "/invitations/")

    colleague = app.test_client()
    response = colleague.get(link)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    login(colleague, colleague_user)
    page = colleague.get(link)
    response = colleague.post(link, data={"csrf_token": csrf_token_from(page.text)})
    assert response.status_code == 302
    assert colleague.get(f"/t/{tenant.slug}/").status_code == 200


def test_invitation_for_someone_else_cannot_be_taken(
    app, client, make_tenant, make_user, login, run_jobs, received_mail
):
    owner, intruder = make_user(), make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    invite(client, tenant, "rightful@example.com")
    run_jobs()
    link = mail_link(received_mail()[0], "/invitations/")
    other = app.test_client()
    login(other, intruder)
    page = other.get(link)
    other.post(link, data={"csrf_token": csrf_token_from(page.text)})
    assert other.get(f"/t/{tenant.slug}/").status_code == 404


def test_expired_and_forged_invitations_say_what_to_do(
    client, db_session, make_tenant, make_user, login, run_jobs, received_mail
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    invite(client, tenant, "late@example.com")
    run_jobs()
    link = mail_link(received_mail()[0], "/invitations/")
    invitation = db_session.scalar(select(Invitation).where(Invitation.email == "late@example.com"))
    invitation.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    db_session.commit()
    expired = client.get(link)
    assert expired.status_code == 400 and "expired" in expired.text
    forged = client.get("/invitations/not-a-real-token")
    assert forged.status_code == 400 and "not valid" in forged.text


def test_inviting_a_current_member_is_refused_next_to_the_field(
    client, make_tenant, make_user, add_member, login
):
    owner, member = make_user(), make_user()
    tenant = make_tenant(owner=owner)
    add_member(tenant, member)
    login(client, owner)
    response = invite(client, tenant, member.email)
    assert response.status_code == 422
    assert "is a member of" in response.text and 'id="email-error"' in response.text


def test_roles_decide_what_is_shown_and_allowed(client, make_tenant, make_user, add_member, login):
    tenant = make_tenant()
    viewer = make_user()
    add_member(tenant, viewer, role="viewer")
    login(client, viewer)
    dashboard = client.get(f"/t/{tenant.slug}/")
    assert dashboard.status_code == 200
    assert f"/t/{tenant.slug}/team/" not in dashboard.text
    assert f"/t/{tenant.slug}/audit/" not in dashboard.text
    assert client.get(f"/t/{tenant.slug}/team/").status_code == 403
    assert client.get(f"/t/{tenant.slug}/audit/").status_code == 403
    response = client.post(
        f"/t/{tenant.slug}/team/invitations",
        data={
            "email": "x@example.com",
            "role": "owner",
            "csrf_token": csrf_token_from(dashboard.text),
        },
    )
    assert response.status_code == 403


def test_admin_cannot_touch_owners_or_hand_out_ownership(
    client, db_session, make_tenant, make_user, add_member, login
):
    owner, admin, member = make_user(), make_user(), make_user()
    tenant = make_tenant(owner=owner)
    owner_membership = db_session.scalar(
        select(Membership).where(Membership.tenant_id == tenant.id, Membership.user_id == owner.id)
    )
    add_member(tenant, admin, role="admin")
    member_membership = add_member(tenant, member, role="viewer")
    login(client, admin)
    page = client.get(f"/t/{tenant.slug}/team/")
    token = csrf_token_from(page.text)
    client.post(
        f"/t/{tenant.slug}/team/members/{owner_membership.id}/role",
        data={"role": "viewer", "csrf_token": token},
    )
    client.post(
        f"/t/{tenant.slug}/team/members/{member_membership.id}/role",
        data={"role": "owner", "csrf_token": token},
    )
    client.post(
        f"/t/{tenant.slug}/team/members/{owner_membership.id}/access/off",
        data={"csrf_token": token},
    )
    db_session.expire_all()
    assert (owner_membership.role, owner_membership.active) == ("owner", True)
    assert member_membership.role == "viewer"
    client.post(
        f"/t/{tenant.slug}/team/members/{member_membership.id}/role",
        data={"role": "finance", "csrf_token": token},
    )
    db_session.expire_all()
    assert member_membership.role == "finance"


def test_nobody_changes_their_own_role_so_the_last_owner_stays(
    client, db_session, make_tenant, make_user, login
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    mine = db_session.scalar(select(Membership).where(Membership.user_id == owner.id))
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/team/")
    token = csrf_token_from(page.text)
    response = client.post(
        f"/t/{tenant.slug}/team/members/{mine.id}/role",
        data={"role": "viewer", "csrf_token": token},
        follow_redirects=True,
    )
    assert "You cannot change your own role" in response.text
    client.post(f"/t/{tenant.slug}/team/members/{mine.id}/access/off", data={"csrf_token": token})
    db_session.expire_all()
    assert (mine.role, mine.active) == ("owner", True)


def test_htmx_invite_answers_with_the_fragment_and_a_toast(client, make_tenant, make_user, login):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    htmx = {"HX-Request": "true"}
    page = client.get(f"/t/{tenant.slug}/team/")
    bad = client.post(
        f"/t/{tenant.slug}/team/invitations",
        headers=htmx,
        data={"email": "not-an-email", "role": "finance", "csrf_token": csrf_token_from(page.text)},
    )
    assert bad.status_code == 422
    assert bad.text.lstrip().startswith('<div id="team-body">')  # the block, not the page
    assert 'id="email-error"' in bad.text
    sent = client.post(
        f"/t/{tenant.slug}/team/invitations",
        headers=htmx,
        data={
            "email": "htmx@example.com",
            "role": "finance",
            "csrf_token": csrf_token_from(page.text),
        },
    )
    assert sent.status_code == 303
    followed = client.get(sent.headers["Location"], headers=htmx)
    assert "Invitation sent to htmx@example.com" in followed.headers["HX-Trigger"]
    assert "htmx@example.com" in followed.text and "<html" not in followed.text


def test_an_invitation_password_containing_the_email_is_refused_next_to_the_field(
    app, client, db_session, make_tenant, make_user, login, run_jobs, received_mail
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    invite(client, tenant, "meera.iyer@example.com")
    run_jobs()
    link = mail_link(received_mail()[0], "/invitations/")
    newcomer = app.test_client()
    form = newcomer.get(link)
    response = newcomer.post(
        link,
        data={
            "full_name": "Meera Iyer",
            "password": "Meera.Iyer said hello",
            "csrf_token": csrf_token_from(form.text),
        },
    )
    assert response.status_code == 422
    assert "Do not use your e-mail address" in response.text
    assert 'id="password-error"' in response.text
    assert (
        db_session.scalar(
            select(Membership).where(
                Membership.tenant_id == tenant.id, Membership.role == "finance"
            )
        )
        is None
    )
