"""Campaigns: recipients by the client list's filters and a contact role, who is skipped and why,
launch as outbox rows spaced by the throttle (a relaunch duplicates nothing), cancel, progress
counted from the outbox, and an e-mail campaign delivered to the SMTP server with consent
enforced at send time."""

from __future__ import annotations

import time as clock
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select

from app.campaigns import services
from app.campaigns.models import Campaign
from app.message_templates.models import MessageTemplate
from app.message_templates.services import template_for
from app.outbox.models import OutboxMessage
from jobs.tasks import sweep_outbox
from tests.helpers import csrf_token_from, tenant_session
from tests.test_message_templates import add_client, add_contact, issue_invoice


@pytest.fixture
def audience_books(db_session, make_tenant, make_user):
    """Pune clients tagged 'steel' with a billing and a primary contact each, a Mumbai client,
    an opted-out contact, one without e-mail, and a campaign template."""
    owner = make_user()
    tenant = make_tenant(
        owner=owner, region="27", send_window_start=time(0, 0), send_window_end=time(23, 59, 59)
    )
    session = tenant_session(db_session, tenant)
    pune = [
        add_client(session, f"Pune Steel {n}", f"PS{n}", city="Pune", tags=["steel"])
        for n in (1, 2)
    ]
    mumbai = add_client(session, "Mumbai Cement", city="Mumbai", tags=["cement"])
    contacts = {
        "p1_billing": add_contact(session, pune[0], "Ravi Kulkarni", "ravi@p1.example"),
        "p1_primary": add_contact(
            session, pune[0], "Meera Joshi", "meera@p1.example", roles=("primary",)
        ),
        "p2_billing": add_contact(
            session, pune[1], "Sunil Patil", "sunil@p2.example", email_consent="opted_out"
        ),
        "p2_phone_only": add_contact(session, pune[1], "Kiran More", None, "+919876543210"),
        "mumbai": add_contact(session, mumbai, "Farah Shaikh", "farah@m.example"),
    }
    template = MessageTemplate(
        name="Price revision",
        channel="email",
        purpose="campaign",
        language="en",
        subject="Revised rates from {{ tenant.name }}",
        body="Dear {{ contact.first_name }},\n\nOur rates for {{ client.short_name }} change "
        "from 1 April.\n\nRegards",
    )
    session.add(template)
    session.commit()
    return tenant, owner, session, contacts, template, (pune, mumbai)


def make_campaign(session, template, filters, throttle=60, scheduled_at=None, status="scheduled"):
    campaign = Campaign(
        name="Rates",
        channel=template.channel,
        template_id=template.id,
        filters=filters,
        throttle_per_minute=throttle,
        status=status,
        scheduled_at=scheduled_at,
    )
    session.add(campaign)
    session.commit()
    return campaign


def rows_of(session, tenant, campaign_id):
    # Campaign ids are per tenant schema; the outbox is shared.
    return session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.tenant_id == tenant.id, OutboxMessage.campaign_id == campaign_id)
        .order_by(OutboxMessage.next_attempt_at)
    ).all()


@pytest.fixture
def every_day_is_a_business_day(monkeypatch):
    """The tests send inside the window whatever day they run on (weekends, holidays)."""
    monkeypatch.setattr("app.messaging.delivery.is_business_day", lambda *args: True)


def test_recipients_by_filters_and_role_with_who_is_skipped(audience_books):
    tenant, _, session, contacts, template, (pune, mumbai) = audience_books
    everyone = services.audience(session, {}, "email")
    assert (everyone.contacts, everyone.sendable, everyone.clients) == (5, 3, 3)
    assert (everyone.no_address, everyone.no_consent) == (1, 1)
    assert {(name, reason) for name, _, reason in everyone.skipped_sample} == {
        ("Sunil Patil", "opted out"),
        ("Kiran More", "no e-mail address"),
    }

    pune_only = services.audience(session, services.clean_filters({"city": "pune"}), "email")
    assert (pune_only.contacts, pune_only.clients) == (4, 2)
    tagged = services.clean_filters({"tag": "steel", "role": "billing"})
    picked = [c.full_name for c, _ in session.execute(services.recipients_query(tagged))]
    assert picked == ["Ravi Kulkarni", "Sunil Patil", "Kiran More"]
    # WhatsApp needs an opt-in: the phone-only contact has none yet.
    whatsapp = services.audience(session, {"tag": "steel"}, "whatsapp")
    assert (whatsapp.sendable, whatsapp.no_consent, whatsapp.no_address) == (0, 1, 3)

    invoice = issue_invoice(session, tenant, mumbai)
    invoice.status = "overdue"
    session.flush()
    overdue = services.audience(session, services.clean_filters({"overdue": "1"}), "email")
    assert (overdue.contacts, overdue.clients) == (1, 1)


def test_launch_writes_one_row_per_contact_spaced_by_the_throttle_and_relaunch_adds_nothing(
    audience_books,
):
    tenant, _, session, contacts, template, _ = audience_books
    start = datetime.now(UTC) + timedelta(days=2)
    campaign = make_campaign(session, template, {"city": "Pune"}, throttle=30, scheduled_at=start)
    assert services.write_messages(session, tenant, campaign.id) == 3  # Kiran has no e-mail
    session.commit()
    rows = rows_of(session, tenant, campaign.id)
    assert [r.recipient for r in rows] == [
        "ravi@p1.example",
        "meera@p1.example",
        "sunil@p2.example",
    ]
    assert [r.next_attempt_at - start for r in rows] == [timedelta(seconds=s) for s in (0, 2, 4)]
    first = rows[0]
    assert (first.queue, first.windowed, first.channel) == ("bulk", True, "email")
    key = f"t{tenant.id}:campaign:{campaign.id}:contact:{first.contact_id}:email"
    assert first.idempotency_key == key
    assert first.recipient_time_zone == "Asia/Kolkata"  # local client, tenant's zone
    assert first.subject == f"Revised rates from {tenant.name}"
    assert "Dear Ravi," in first.body_text and "<p>Dear Ravi,</p>" in first.body_html
    assert campaign.status == "running" and campaign.recipients_count == 3

    # A crash after writing: the job runs again from "scheduled" and writes nothing twice.
    campaign.status = "scheduled"
    session.commit()
    assert services.write_messages(session, tenant, campaign.id) == 3
    session.commit()
    assert len(rows_of(session, tenant, campaign.id)) == 3


def test_time_zone_from_the_phone_number_else_the_clients_country():
    class Tenant:
        country, time_zone = "IN", "Asia/Kolkata"

    assert services.recipient_time_zone("+14155550100", "US", Tenant) == "America/Los_Angeles"
    # Australia has several zones: the number does not say which.
    assert services.recipient_time_zone("+61412345678", "AU", Tenant) is None
    assert services.recipient_time_zone("+61412345678", "IN", Tenant) == "Asia/Kolkata"
    assert services.recipient_time_zone(None, "IN", Tenant) == "Asia/Kolkata"


def test_cancel_suppresses_what_has_not_been_sent(audience_books):
    tenant, _, session, _, template, _ = audience_books
    later = datetime.now(UTC) + timedelta(hours=3)
    campaign = make_campaign(session, template, {}, scheduled_at=later)
    services.write_messages(session, tenant, campaign.id)
    session.commit()
    assert services.cancel(session, tenant.id, campaign) == 4
    session.commit()
    assert {(r.status, r.last_error) for r in rows_of(session, tenant, campaign.id)} == {
        ("suppressed", "campaign cancelled")
    }
    counts = services.progress(session, tenant.id, campaign)
    assert (counts["suppressed"], counts["queued"], counts["total"]) == (4, 0, 4)
    assert services.cancel(session, tenant.id, campaign) is None  # once

    # Cancelled before the job ran: the job writes nothing.
    second = make_campaign(session, template, {})
    services.cancel(session, tenant.id, second)
    session.commit()
    assert services.write_messages(session, tenant, second.id) == 0
    assert rows_of(session, tenant, second.id) == []


def test_an_email_campaign_reaches_the_mailbox_consent_enforced_and_progress_counted(
    audience_books,
    app,
    client,
    login,
    db_session,
    run_jobs,
    received_mail,
    every_day_is_a_business_day,
):
    tenant, owner, _, contacts, template, _ = audience_books
    login(client, owner)
    new = client.get(f"/t/{tenant.slug}/campaigns/new")
    assert new.status_code == 200 and "Price revision" in new.text
    # Templates about an invoice are not offered to a campaign.
    assert "1st notice" not in new.text
    form = {
        "csrf_token": csrf_token_from(new.text),
        "name": "April rates",
        "channel": "email",
        "template_id": str(template.id),
        "city": "Pune",
        "schedule": "now",
        "throttle_per_minute": "600",
    }
    audience = client.post(
        f"/t/{tenant.slug}/campaigns/audience", data=form, headers={"HX-Request": "true"}
    )
    assert "<strong>2</strong> contact(s) will get it" in audience.text
    assert "1 without an address for this channel, 1 without consent" in audience.text

    saved = client.post(f"/t/{tenant.slug}/campaigns/", data=form)
    assert saved.status_code == 303, saved.text
    show_url = saved.headers["Location"]
    # Consent is checked when sending, not when writing: Sunil's opt-out stands, and Ravi opts
    # out after the launch, before the workers run.
    launched = client.post(f"{show_url}/launch", data={"csrf_token": form["csrf_token"]})
    assert launched.status_code == 303
    session = tenant_session(db_session, tenant)
    campaign = session.scalar(select(Campaign).where(Campaign.name == "April rates"))
    assert campaign.status == "scheduled"
    campaign_id = campaign.id
    ravi = session.get(type(contacts["p1_billing"]), contacts["p1_billing"].id)
    ravi.email_consent = "opted_out"
    session.commit()
    run_jobs()  # the launch job writes the rows and hands the first to a delivery worker
    # The others are due 0.1 s apart (600 a minute); the sweeper hands them out when due.
    clock.sleep(0.25)
    with app.app_context():
        assert sweep_outbox() >= 2  # (and whatever else of other tests is due)
    run_jobs()
    mail = received_mail()
    assert [m["To"] for m in mail] == ["meera@p1.example"]
    assert mail[0]["Subject"] == f"Revised rates from {tenant.name}"
    assert "Dear Meera," in mail[0].get_body(preferencelist=("plain",)).get_content()

    session = tenant_session(db_session, tenant)
    rows = rows_of(session, tenant, campaign_id)
    statuses = {r.recipient: (r.status, r.last_error) for r in rows}
    assert statuses["meera@p1.example"] == ("sent", None)
    assert statuses["sunil@p2.example"][0] == "suppressed"
    assert statuses["ravi@p1.example"][0] == "suppressed"

    page = client.get(show_url)
    assert 'data-testid="campaign-status">done<' in page.text
    assert 'data-testid="count-sent">1<' in page.text
    assert 'data-testid="count-suppressed">2<' in page.text
    assert 'data-testid="count-queued">0<' in page.text


def test_the_form_checks_each_field(audience_books, client, login):
    tenant, owner, session, *_ = audience_books
    login(client, owner)
    new = client.get(f"/t/{tenant.slug}/campaigns/new")
    notice = template_for(session, "email", "notice_1")
    session.commit()
    response = client.post(
        f"/t/{tenant.slug}/campaigns/",
        data={
            "csrf_token": csrf_token_from(new.text),
            "name": "x",
            "channel": "email",
            "template_id": str(notice.id),
            "schedule": "later",
            "scheduled_at": "2020-01-01T10:00",
            "throttle_per_minute": "0",
        },
    )
    assert response.status_code == 422
    for message in (
        "2 to 191 characters",
        "speaks of an invoice",
        "Between 1 and 6,000",
        "That time has passed",
    ):
        assert message in response.text


def test_a_campaign_does_not_send_a_message_its_template_makes_too_long(
    audience_books,
):
    """A template saved before these limits (or whose output only grows with one contact's
    details) fails that contact's message with the reason instead of sending it."""
    tenant, _, session, contacts, template, _ = audience_books
    template.body = (
        "Dear {{ contact.first_name }},\n{% if contact.first_name == 'Ravi' %}"
        "{{ 'x' * 200000 }}{% endif %}"
    )
    session.commit()
    campaign = make_campaign(
        session, template, {"city": "Pune"}, scheduled_at=datetime.now(UTC) + timedelta(days=1)
    )
    assert services.write_messages(session, tenant, campaign.id) == 3
    session.commit()
    rows = {row.recipient: row for row in rows_of(session, tenant, campaign.id)}
    ravi = rows["ravi@p1.example"]
    assert ravi.status == "suppressed" and ravi.body_text == ""
    assert "Price revision template cannot be used" in ravi.last_error
    assert "longer than 100,000 characters" in ravi.last_error
    assert rows["meera@p1.example"].status == "pending"
    assert "Dear Meera," in rows["meera@p1.example"].body_text
