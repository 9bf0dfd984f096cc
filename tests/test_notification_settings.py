"""How each person hears of each kind of notification: their own choice over their role's over
the bell alone; an e-mail at once with the link, a daily e-mail of what waited (once), or
nothing; the settings page for a member and, for admins, each role's default."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.notifications import preferences, services
from app.notifications.models import Notification, NotificationPreference
from app.outbox.models import OutboxMessage
from tests.helpers import csrf_token_from, tenant_session


@pytest.fixture
def team(app, db_session, make_tenant, make_user, add_member):
    owner = make_user(full_name="Owner O")
    tenant = make_tenant(owner=owner, name="Lotus Traders")
    collector = make_user(full_name="Collector C")
    finance = make_user(full_name="Finance F")
    add_member(tenant, collector, role="collector")
    add_member(tenant, finance, role="finance")
    return tenant, owner, collector, finance, tenant_session(db_session, tenant)


def mails(session, tenant) -> list[OutboxMessage]:
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.tenant_id == tenant.id, OutboxMessage.channel == "email")
            .order_by(OutboxMessage.id)
        )
    )


def choose(session, delivery, kind="dispute_opened", *, user=None, role=None) -> None:
    session.add(NotificationPreference(user_id=user, role=role, kind=kind, delivery=delivery))
    session.flush()


def test_each_person_hears_as_they_chose_else_as_their_role_else_in_the_bell(app, team):
    tenant, owner, collector, finance, s = team
    choose(s, "digest", role="collector")
    choose(s, "email", user=finance.id)
    choose(s, "off", user=owner.id)
    with app.app_context():
        written = services.notify(
            s,
            [owner.id, collector.id, finance.id],
            "dispute_opened",
            title="Kaveri disputed an invoice",
            body="Wrong rate",
            link=f"/t/{tenant.slug}/invoices/7",
            dedupe_key="dispute_opened:1",
        )
    assert written == 2  # the owner chose not to hear of disputes
    told = {n.user_id: n for n in s.scalars(select(Notification))}
    assert set(told) == {collector.id, finance.id}
    assert (told[collector.id].digest_due, told[finance.id].digest_due) == (True, False)
    (at_once,) = mails(s, tenant)
    assert at_once.recipient == finance.email and at_once.subject == "Kaveri disputed an invoice"
    assert "Wrong rate" in at_once.body_text
    assert f"/t/{tenant.slug}/invoices/7" in at_once.body_text
    assert at_once.body_text.count("http") == 1  # an absolute link to open it

    # Told again of the same event (a replayed batch): no second bell, no second e-mail.
    with app.app_context():
        assert (
            services.notify(
                s,
                [collector.id, finance.id],
                "dispute_opened",
                "again",
                dedupe_key="dispute_opened:1",
            )
            == 0
        )
    assert len(mails(s, tenant)) == 1
    # A kind nobody chose for: the bell alone.
    with app.app_context():
        assert services.notify(s, [owner.id], "new_lead", "A lead") == 1
    assert len(mails(s, tenant)) == 1


def test_the_daily_email_gathers_what_waited_once_and_skips_who_left(
    app, team, db_session, make_user, add_member
):
    tenant, owner, collector, finance, s = team
    choose(s, "digest", role="collector")
    choose(s, "digest", kind="broken_promise", role="collector")
    choose(s, "app", user=finance.id, kind="broken_promise")
    choose(s, "digest", role="finance", kind="broken_promise")
    with app.app_context():
        services.notify(
            s,
            [collector.id],
            "dispute_opened",
            "Kaveri disputed an invoice",
            link=f"/t/{tenant.slug}/invoices/7",
        )
        services.notify(s, [collector.id, finance.id], "broken_promise", "Tunga broke a promise")
        assert preferences.send_digests(s, tenant.id) == 1
    (daily,) = mails(s, tenant)
    assert daily.recipient == collector.email
    assert daily.subject == "Lotus Traders: 2 notifications"
    text = daily.body_text
    assert "- Kaveri disputed an invoice" in text and "- Tunga broke a promise" in text
    assert f"/t/{tenant.slug}/invoices/7" in text
    # The finance person's own "in the bell" beat their role's daily e-mail.
    assert (
        s.scalar(select(Notification.digest_due).where(Notification.user_id == finance.id)) is False
    )
    with app.app_context():
        assert preferences.send_digests(s, tenant.id) == 0  # nothing waits any more
    assert len(mails(s, tenant)) == 1


def test_a_member_sets_theirs_and_only_admins_set_the_roles(client, team, login):
    tenant, owner, collector, finance, s = team
    url = f"/t/{tenant.slug}/notifications/settings"
    login(client, collector)
    page = client.get(url)
    assert page.status_code == 200
    assert "As your role: In Duebook only" in page.text
    assert 'data-testid="role-settings"' not in page.text
    token = csrf_token_from(page.text)
    saved = client.post(url, data={"csrf_token": token, "kind.new_lead": "off"})
    assert saved.status_code == 303
    assert preferences.own_choices(s, collector.id) == {"new_lead": "off"}
    bad = client.post(url, data={"csrf_token": token, "kind.new_lead": "sms"})
    assert bad.status_code == 422 and "Choose one of the options" in bad.text
    assert preferences.own_choices(s, collector.id) == {"new_lead": "off"}  # kept as it was
    back = client.post(url, data={"csrf_token": token, "kind.new_lead": ""})
    assert back.status_code == 303 and preferences.own_choices(s, collector.id) == {}
    refused = client.post(
        url, data={"csrf_token": token, "scope": "roles", "collector.new_lead": "off"}
    )
    assert refused.status_code == 403 and preferences.role_choices(s) == {}

    login(client, owner)
    page = client.get(url)
    assert 'data-testid="role-settings"' in page.text
    saved = client.post(
        url,
        data={
            "csrf_token": csrf_token_from(page.text),
            "scope": "roles",
            "collector.dispute_opened": "email",
            "finance.sync_failed": "digest",
        },
    )
    assert saved.status_code == 303
    assert preferences.role_choices(s) == {
        ("collector", "dispute_opened"): "email",
        ("finance", "sync_failed"): "digest",
    }
    login(client, collector)
    assert "As your role: In Duebook and by e-mail at once" in client.get(url).text
