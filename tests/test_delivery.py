"""Delivery rules checked when a message is sent, not when it was queued: consent, the
sending window in the recipient's time zone, and the shared sending rates."""

from __future__ import annotations

import time as time_module
from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from app.clients.models import Client, Contact
from app.clients.services import set_consent
from app.messaging.delivery import window_opens_at
from app.messaging.ratelimit import RateLimiter
from app.outbox.models import OutboxMessage
from app.outbox.services import queue_message
from app.settings.services import workspace_settings
from tests.helpers import tenant_session, unique

KOLKATA = ZoneInfo("Asia/Kolkata")


@pytest.fixture
def contact_of(db_session, make_tenant):
    """A tenant with a client and one contact (e-mail and phone, consent as given)."""

    def make(tenant=None, **consent):
        tenant = tenant or make_tenant()
        session = tenant_session(db_session, tenant)
        client = Client(
            full_name=unique("Client "),
            short_name=unique("c"),
            location="local",
            country="IN",
            currency="INR",
            payment_terms="net",
            payment_days=30,
        )
        session.add(client)
        session.flush()
        contact = Contact(
            client_id=client.id,
            full_name="Asha Rao",
            email=f"{unique('asha')}@example.com",
            phone="+919876543210",
        )
        for channel, opted_in in consent.items():
            set_consent(contact, channel, opted_in, "signed form")
        session.add(contact)
        session.commit()
        snapshot = SimpleNamespace(
            id=contact.id, client_id=client.id, email=contact.email, phone=contact.phone
        )
        return tenant, snapshot

    return make


def queue_to(app, db_session, tenant, contact, channel="email", **options) -> int:
    session = tenant_session(db_session, tenant)
    with app.app_context():
        message_id = queue_message(
            session,
            channel=channel,
            tenant_id=tenant.id,
            client_id=contact.client_id,
            contact_id=contact.id,
            to=contact.email if channel == "email" else contact.phone,
            subject="Invoice INV/26-27/00001",
            text_body="Your invoice is attached.",
            idempotency_key=unique("delivery-test:"),
            **options,
        )
        session.commit()
    return message_id


def outbox_row(db_session, message_id) -> OutboxMessage:
    return db_session.get(OutboxMessage, message_id, populate_existing=True)


def set_window(db_session, tenant, start: time, end: time) -> None:
    workspace = workspace_settings(db_session, tenant.id)
    workspace.send_window_start, workspace.send_window_end = start, end
    db_session.commit()


def open_all_day(db_session, tenant) -> None:
    set_window(db_session, tenant, time(0), time(23, 59, 59))


def never_open(db_session, tenant) -> None:
    set_window(db_session, tenant, time(0), time(0, 0, 1))


def test_an_opt_out_after_queueing_stops_the_message(
    app, db_session, contact_of, run_jobs, received_mail
):
    tenant, contact = contact_of()
    app.extensions["duebook.enqueue"], real = (
        list,
        app.extensions["duebook.enqueue"],
    )
    try:
        message_id = queue_to(app, db_session, tenant, contact)
    finally:
        app.extensions["duebook.enqueue"] = real
    session = tenant_session(db_session, tenant)
    set_consent(session.get(Contact, contact.id), "email", False, "asked on the phone")
    session.commit()
    db_session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(created_at=datetime.now(UTC) - timedelta(minutes=5))
    )
    db_session.commit()
    from jobs.tasks import sweep_outbox

    with app.app_context():
        sweep_outbox()
    run_jobs()
    row = outbox_row(db_session, message_id)
    assert row.status == "suppressed" and "opted out" in row.last_error
    assert received_mail() == []


def test_whatsapp_and_sms_need_an_opt_in(app, db_session, contact_of, run_jobs):
    tenant, contact = contact_of(email=True)
    ids = [queue_to(app, db_session, tenant, contact, channel) for channel in ("whatsapp", "sms")]
    run_jobs()
    for message_id in ids:
        row = outbox_row(db_session, message_id)
        assert row.status == "suppressed"
        assert "has not agreed" in row.last_error and row.sent_at is None


def test_a_hard_bounced_address_is_not_mailed_again(
    app, db_session, contact_of, run_jobs, received_mail
):
    tenant, contact = contact_of()
    session = tenant_session(db_session, tenant)
    bounced = session.get(Contact, contact.id)
    bounced.email_bounced_at, bounced.email_bounce_reason = datetime.now(UTC), "550 5.1.1 unknown"
    session.commit()
    message_id = queue_to(app, db_session, tenant, contact)
    run_jobs()
    assert outbox_row(db_session, message_id).status == "suppressed"
    assert received_mail() == []


def test_whatsapp_without_a_connection_is_suppressed_with_a_reason(
    app, db_session, contact_of, run_jobs
):
    tenant, contact = contact_of(whatsapp=True)
    message_id = queue_to(app, db_session, tenant, contact, "whatsapp")
    run_jobs()
    row = outbox_row(db_session, message_id)
    assert (row.status, row.last_error) == ("suppressed", "No whatsapp channel is connected.")


def test_transactional_mail_goes_at_any_hour(app, db_session, contact_of, run_jobs, received_mail):
    tenant, contact = contact_of()
    never_open(db_session, tenant)
    message_id = queue_to(app, db_session, tenant, contact)
    run_jobs()
    assert outbox_row(db_session, message_id).status == "sent"
    assert [m["To"] for m in received_mail()] == [contact.email]


def test_a_windowed_message_waits_for_the_window(
    app, db_session, contact_of, run_jobs, received_mail
):
    tenant, contact = contact_of()
    never_open(db_session, tenant)
    message_id = queue_to(app, db_session, tenant, contact, windowed=True, queue="bulk")
    run_jobs()
    row = outbox_row(db_session, message_id)
    assert (row.status, row.attempts) == ("pending", 0)  # put back, not counted as a try
    assert row.next_attempt_at > datetime.now(UTC)
    assert row.next_attempt_at.astimezone(KOLKATA).time() == time(0)
    assert received_mail() == []


def test_inside_the_window_a_windowed_message_goes(
    app, db_session, contact_of, run_jobs, received_mail
):
    tenant, contact = contact_of()
    open_all_day(db_session, tenant)
    today = datetime.now(KOLKATA).date()
    message_id = queue_to(app, db_session, tenant, contact, windowed=True, queue="bulk")
    run_jobs()
    from app.core.clock import is_business_day

    expected = "sent" if is_business_day(today, "IN") else "pending"
    assert outbox_row(db_session, message_id).status == expected


def a_tenant():
    return SimpleNamespace(time_zone="Asia/Kolkata", country="IN", region="29")


def a_workspace(start=time(9), end=time(19), every_day=False):
    return SimpleNamespace(
        send_window_start=start,
        send_window_end=end,
        send_on_business_days_only=every_day is False,
    )


def at(zone: str, *parts) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        # Wednesday 10:00 in Kolkata: inside.
        (at("Asia/Kolkata", 2026, 11, 25, 10, 0), None),
        # Wednesday 07:30: opens at 09:00 the same day.
        (at("Asia/Kolkata", 2026, 11, 25, 7, 30), at("Asia/Kolkata", 2026, 11, 25, 9, 0)),
        # Wednesday 19:00 sharp: closed, opens Thursday 09:00.
        (at("Asia/Kolkata", 2026, 11, 25, 19, 0), at("Asia/Kolkata", 2026, 11, 26, 9, 0)),
        # Monday evening: Tuesday 24 November is a Karnataka holiday, so Wednesday 09:00.
        (at("Asia/Kolkata", 2026, 11, 23, 20, 0), at("Asia/Kolkata", 2026, 11, 25, 9, 0)),
        # Saturday: opens Monday.
        (at("Asia/Kolkata", 2026, 11, 28, 11, 0), at("Asia/Kolkata", 2026, 11, 30, 9, 0)),
        # Friday 2 October 2026 is Gandhi Jayanti, a public holiday: opens Monday 5 October.
        (at("Asia/Kolkata", 2026, 10, 1, 20, 0), at("Asia/Kolkata", 2026, 10, 5, 9, 0)),
    ],
)
def test_window_follows_the_tenants_calendar(now, opens):
    assert window_opens_at(a_tenant(), a_workspace(), None, now.astimezone(UTC)) == (
        opens.astimezone(UTC) if opens else None
    )


def test_a_tenant_that_sends_every_day_only_keeps_the_hours():
    saturday_11 = at("Asia/Kolkata", 2026, 11, 28, 11, 0).astimezone(UTC)
    assert window_opens_at(a_tenant(), a_workspace(every_day=True), None, saturday_11) is None
    saturday_20 = at("Asia/Kolkata", 2026, 11, 28, 20, 0).astimezone(UTC)
    assert window_opens_at(a_tenant(), a_workspace(every_day=True), None, saturday_20) == at(
        "Asia/Kolkata", 2026, 11, 29, 9, 0
    ).astimezone(UTC)


def test_window_is_the_recipients_day_not_the_tenants():
    # 10:00 in Kolkata is 15:30 in Sydney: inside for a Kolkata recipient and a Sydney one.
    wednesday_10_kolkata = at("Asia/Kolkata", 2026, 11, 25, 10, 0).astimezone(UTC)
    assert (
        window_opens_at(a_tenant(), a_workspace(), "Australia/Sydney", wednesday_10_kolkata) is None
    )
    # 16:00 in Kolkata is 21:30 in Sydney: closed there, opens 09:00 Sydney time next day.
    wednesday_16_kolkata = at("Asia/Kolkata", 2026, 11, 25, 16, 0).astimezone(UTC)
    assert window_opens_at(a_tenant(), a_workspace(), None, wednesday_16_kolkata) is None
    assert window_opens_at(
        a_tenant(), a_workspace(), "Australia/Sydney", wednesday_16_kolkata
    ) == at("Australia/Sydney", 2026, 11, 26, 9, 0).astimezone(UTC)


def test_rate_slots_are_shared_and_paced(redis):
    limiter, other = RateLimiter(redis), RateLimiter(redis)  # two workers, one Redis
    # Each booked slot as an interval of wall-clock time: the call's start and end plus the
    # wait it was told (Redis books against its own clock, read somewhere inside the call).
    slots, waits = [], []
    for i in range(10):
        before = time_module.time()
        wait = (limiter if i % 2 else other).reserve("test:number", rate=10)
        slots.append((before + wait, time_module.time() + wait))
        waits.append(wait)

    def gap_may_be(seconds: float, earlier: int, later: int) -> bool:
        (early_from, early_to), (late_from, late_to) = slots[earlier], slots[later]
        return late_from - early_to - 0.001 <= seconds <= late_to - early_from + 0.001

    # Ten sends at 10 a second: an idle bucket lends one slot, so the first two go at once
    # (never over 11 a second); each later send waits for its own slot, 0.1 s after the one
    # before, whichever worker asks.
    assert waits[0] == 0 and waits[1] == 0
    assert gap_may_be(0.1, 0, 2)
    assert all(gap_may_be(0.1, k - 1, k) for k in range(3, 10)), slots
    # A slot further ahead than max_wait is not booked: the caller puts the message back.
    assert limiter.reserve("test:number", rate=10, max_wait=0.5) < 0


def test_a_slot_is_booked_in_every_bucket_or_in_none(redis):
    limiter = RateLimiter(redis)
    both = [("test:tenant", 100.0), ("test:number", 1.0)]
    assert limiter.reserve_all(both) == pytest.approx(0, abs=0.02)
    assert limiter.reserve_all(both) == pytest.approx(0, abs=0.02)  # the lent slot
    # The number's next slot is a second away: the caller waits for it (both buckets booked).
    assert limiter.reserve_all(both) == pytest.approx(1.0, abs=0.05)
    # Two seconds ahead is beyond max_wait: nothing booked, in either bucket.
    assert limiter.reserve_all(both, max_wait=1.5) < 0
    assert limiter.reserve("test:tenant", 100.0) < 1.2


def test_daily_cap_counts_per_day(redis):
    limiter = RateLimiter(redis)
    day = datetime(2026, 11, 24, tzinfo=UTC)
    assert [limiter.take_daily("test:cap", 3, day) for _ in range(4)] == [True] * 3 + [False]
    assert limiter.take_daily("test:cap", 3, day + timedelta(days=1)) is True


def test_the_sweeper_hands_out_put_back_messages_once_due(
    app, db_session, contact_of, run_jobs, received_mail
):
    tenant, contact = contact_of()
    never_open(db_session, tenant)
    message_id = queue_to(app, db_session, tenant, contact, windowed=True, queue="bulk")
    run_jobs()
    assert outbox_row(db_session, message_id).status == "pending"
    # The window opens: the message is due, and the sweeper finds it although it is new.
    open_all_day(db_session, tenant)
    db_session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        # now() in these tests is the test transaction's start, when the row was written
        .values(next_attempt_at=OutboxMessage.created_at + timedelta(milliseconds=1))
    )
    db_session.commit()
    from jobs.tasks import sweep_outbox

    with app.app_context():
        assert sweep_outbox() == 1
    run_jobs()
    from app.core.clock import is_business_day

    if is_business_day(datetime.now(KOLKATA).date(), "IN"):
        assert outbox_row(db_session, message_id).status == "sent"
        assert len(received_mail()) == 1
    ids = db_session.scalars(select(OutboxMessage.id).where(OutboxMessage.id == message_id)).all()
    assert ids == [message_id]


def test_a_new_address_clears_a_hard_bounce(db_session, contact_of):
    from app.clients.services import save_contact

    tenant, snapshot = contact_of()
    session = tenant_session(db_session, tenant)
    contact = session.get(Contact, snapshot.id)
    contact.email_bounced_at, contact.email_bounce_reason = datetime.now(UTC), "550 unknown"
    session.flush()
    client = session.get(Client, snapshot.client_id)
    save_contact(
        session, client, {"full_name": "Asha Rao", "email": snapshot.email.upper()}, "IN", contact
    )
    assert contact.email_bounced_at is not None  # the same address, written differently
    save_contact(
        session, client, {"full_name": "Asha Rao", "email": "asha.new@example.com"}, "IN", contact
    )
    assert (contact.email_bounced_at, contact.email_bounce_reason) == (None, None)


def test_a_batch_out_of_time_hands_its_rest_back(
    app, db_session, contact_of, run_jobs, received_mail, monkeypatch
):
    """A slow mail server: the batch sends while 80% of its lease is left, then puts the rest
    back (no attempt counted) for the sweeper, so no message waits in a batch past its
    lease, when the sweeper may give it to another worker."""
    from app.integrations.connectors.smtp import SmtpConnector
    from jobs.tasks import sweep_outbox

    tenant, contact = contact_of(email=True)
    monkeypatch.setitem(app.config, "MESSAGE_LEASE_SECONDS", 2)
    real_send = SmtpConnector.send

    def slow_send(self, outgoing):
        import time as clock

        clock.sleep(1.0)
        return real_send(self, outgoing)

    monkeypatch.setattr(SmtpConnector, "send", slow_send)
    session = tenant_session(db_session, tenant)
    with app.app_context():
        ids = [
            queue_message(
                session,
                channel="email",
                tenant_id=tenant.id,
                client_id=contact.client_id,
                contact_id=contact.id,
                to=contact.email,
                subject=f"Reminder {number}",
                text_body="Please pay.",
                idempotency_key=unique("lease-test:"),
            )
            for number in range(4)
        ]
        session.commit()
    run_jobs()
    rows = [outbox_row(db_session, message_id) for message_id in ids]
    assert [row.status for row in rows] == ["sent", "sent", "pending", "pending"]
    assert {(row.attempts, row.last_error, row.enqueued_at) for row in rows[2:]} == {
        (0, "its batch ran out of time; handed out again", None)
    }
    assert len(received_mail()) == 2

    monkeypatch.setattr(SmtpConnector, "send", real_send)
    db_session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids[2:]))
        # now() in these tests is the test transaction's start, when the rows were written
        .values(next_attempt_at=OutboxMessage.created_at + timedelta(milliseconds=1))
    )
    db_session.commit()
    with app.app_context():
        assert sweep_outbox() == 2
    run_jobs()
    assert [outbox_row(db_session, message_id).status for message_id in ids] == ["sent"] * 4
    assert sorted(mail["Subject"] for mail in received_mail()) == [
        f"Reminder {number}" for number in range(4)
    ]


def test_a_report_applied_while_sending_is_not_undone_by_sent(
    app, db_session, contact_of, run_jobs, monkeypatch
):
    """A provider can report "delivered" before the worker has written "sent" (its webhook
    is applied by another worker meanwhile): the later news stays, and sent_at is still kept."""
    from app.integrations.connectors.smtp import SmtpConnector

    tenant, contact = contact_of()
    real_send = SmtpConnector.send

    def send_then_report_delivered(self, outgoing, *args, **kwargs):
        result = real_send(self, outgoing, *args, **kwargs)
        db_session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "sending")
            .values(status="delivered")
        )
        return result

    monkeypatch.setattr(SmtpConnector, "send", send_then_report_delivered)
    message_id = queue_to(app, db_session, tenant, contact)
    run_jobs()
    row = outbox_row(db_session, message_id)
    assert row.status == "delivered"
    assert row.sent_at is not None
