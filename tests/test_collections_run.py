"""The daily collection run: exactly once (a re-run, two concurrent runs), one rung per run
after missed days, never chasing what is paid, voided, small, disputed, held or promised,
the tenant's own day and business days, grouping, approval and automatic sending, the
preview's reasons, the hourly fan-out and the command."""

from __future__ import annotations

import os
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from rq import Queue
from sqlalchemy import func, select

from app.clients import services as clients
from app.clients.models import Contact
from app.collections.engine import run as engine
from app.collections.engine.services import default_policy, settings_of
from app.collections.models import (
    CollectionHold,
    CollectionLevel,
    CollectionNotice,
    CollectionNoticeInvoice,
    CollectionRun,
    Dispute,
    PromiseToPay,
)
from app.core.events import DomainEvent
from app.extensions import db
from app.invoicing import services as invoicing
from app.payments import services as payments
from tests.test_payments import books, pay  # noqa: F401  (the invoice factory fixture)

DUE = date(2027, 3, 1)  # a Monday; +3 is Thursday 4 March, a business day in Maharashtra


@pytest.fixture
def ledger(books):  # noqa: F811
    """The payments tenant (Asia/Kolkata, Maharashtra) with a client whose billing contact
    takes e-mail and WhatsApp, and a factory of issued invoices due on a chosen day. The
    default ladder is trimmed to e-mail only so that each rung is one notice."""
    session, client, issued, new_client = books

    def reachable(client):
        session.add(
            Contact(
                client_id=client.id,
                full_name=f"Billing {client.short_name}",
                roles=["billing"],
                email=f"billing{client.id}@example.com",
                phone="+919812345678",
                whatsapp_consent="opted_in",
            )
        )
        session.flush()
        return client

    def invoice(client=client, amount="1000.00", due=DUE):
        made, _ = issued(client, amount, day=due - timedelta(days=30))
        made.due_date = due
        made.status = "overdue"
        session.flush()
        return made

    for level in default_policy(session).levels:
        level.channels = ["email"]
    session.flush()
    reachable(client)
    return session, client, invoice, lambda: reachable(new_client())


def run_on(session, day, **options):
    record = engine.run(session, tenant_of(session), today=day, **options)
    session.flush()
    return record


def tenant_of(session):
    from tenants.binding import bound_tenant_id
    from tenants.models import Tenant

    return session.get(Tenant, bound_tenant_id(session))


def rungs(session, invoice) -> list[tuple[int, str]]:
    return session.execute(
        select(CollectionNoticeInvoice.level_number, CollectionNoticeInvoice.channel)
        .where(CollectionNoticeInvoice.invoice_id == invoice.id)
        .order_by(CollectionNoticeInvoice.level_number)
    ).all()


def notice_count(session) -> int:
    return session.scalar(select(func.count()).select_from(CollectionNotice))


def test_first_notice_three_days_after_due_and_a_rerun_creates_nothing(ledger):
    session, client, invoice, _ = ledger
    bill = invoice()
    assert run_on(session, DUE + timedelta(days=2)).notices_created == 0  # 2 days late: early
    first = run_on(session, DUE + timedelta(days=3))
    assert first.notices_created == 1
    notice = session.scalars(select(CollectionNotice)).one()
    assert (notice.level_number, notice.channel, notice.status) == (1, "email", "draft")
    assert notice.amount_due == Decimal("1000.00") and notice.currency == "INR"
    assert notice.contact_id is not None and "3 days after due" in notice.reason
    assert notice.items[0].days_overdue == 3
    (created,) = session.scalars(select(DomainEvent).where(DomainEvent.type == "notice.created"))
    assert (created.subject_id, created.data) == (
        notice.id,
        {
            "notice_id": notice.id,
            "client_id": client.id,
            "invoice_id": bill.id,
            "level": notice.level_name,
        },
    )
    again = run_on(session, DUE + timedelta(days=3))
    assert again.notices_created == 0 and notice_count(session) == 1
    notice_events = select(DomainEvent.id).where(DomainEvent.type == "notice.created")
    assert len(session.scalars(notice_events).all()) == 1  # none written again
    assert rungs(session, bill) == [(1, "email")]
    assert settings_of(session).last_run_on == DUE + timedelta(days=3)


def test_catch_up_after_ten_missed_days_moves_each_invoice_one_rung(ledger):
    """Level 2 is 14 days after level 1: an invoice 60 days late gets level 1 today, not
    levels 1-4 at once; the next run a day later gives nothing (level 2 is 14 days away)."""
    session, client, invoice, _ = ledger
    bill = invoice(due=DUE - timedelta(days=60))
    late_start = DUE + timedelta(days=3)  # ten (and more) days were missed
    assert run_on(session, late_start).notices_created == 1
    assert rungs(session, bill) == [(1, "email")]
    assert run_on(session, late_start + timedelta(days=1)).notices_created == 0
    assert rungs(session, bill) == [(1, "email")]
    # 14 days after level 1, then ten more missed days: level 2 only.
    run_on(session, late_start + timedelta(days=25))  # Monday 29 March
    assert rungs(session, bill) == [(1, "email"), (2, "email")]


def test_after_previous_goes_at_once_when_a_person_escalated_the_previous_notice(ledger):
    session, client, invoice, _ = ledger
    bill = invoice()
    run_on(session, DUE + timedelta(days=3))
    notice = session.scalars(select(CollectionNotice)).one()
    notice.status = "escalated"
    session.flush()
    run_on(session, DUE + timedelta(days=11))  # after the 7-day minimum gap, before 14 days
    assert rungs(session, bill) == [(1, "email"), (2, "email")]


def test_minimum_gap_since_the_last_contact(ledger):
    session, client, invoice, _ = ledger
    first = invoice()
    run_on(session, DUE + timedelta(days=3))
    second = invoice(due=DUE + timedelta(days=1))  # its 1st notice falls due the next day
    plan = engine.plan(session, tenant_of(session), DUE + timedelta(days=4))
    skipped = {item.invoice_id: item for item in plan.skipped}
    assert skipped[second.id].code == "min_gap" and "next contact from" in skipped[second.id].reason
    assert run_on(session, DUE + timedelta(days=8)).notices_created == 1  # gap of 3 days passed
    assert rungs(session, second) == [(1, "email")] and rungs(session, first) == [(1, "email")]


def test_never_chases_paid_void_small_disputed_on_hold_or_held(ledger):
    session, client, invoice, new_client = ledger
    tenant = tenant_of(session)
    paid, small = invoice(), invoice()
    payment = pay(session, client, "1999.50")
    payments.allocate(
        session,
        payment,
        [
            (paid.id, Decimal("1000.00"), "0", None, None),
            (small.id, Decimal("999.50"), "0", None, None),
        ],
    )
    assert (paid.status, small.status) == ("paid", "partly_paid")  # 0.50 left on `small`
    voided = invoicing.void(session, invoice())
    disputed = invoice()
    invoicing.dispute(session, disputed, "wrong rate")
    held_client = new_client()
    on_hold = invoice(client=held_client)
    held_client.status = "on_hold"
    session.flush()
    plan = engine.plan(session, tenant, DUE + timedelta(days=3))
    codes = {item.invoice_id: item.code for item in plan.skipped}
    assert codes[small.id] == "under_tolerance"
    assert codes[disputed.id] == "disputed"
    assert codes[on_hold.id] == "client_on_hold"
    assert paid.id not in codes and voided.id not in codes  # not owing: not even considered
    assert run_on(session, DUE + timedelta(days=3)).notices_created == 0


def test_an_archived_client_is_not_chased_and_the_preview_says_why(ledger):
    session, client, invoice, new_client = ledger
    archived_client = new_client()
    kept, archived = invoice(), invoice(client=archived_client)
    clients.archive_client(session, archived_client, None)
    plan = engine.plan(session, tenant_of(session), DUE + timedelta(days=3))
    assert {item.invoice_id: item.reason for item in plan.skipped} == {
        archived.id: "client archived"
    }
    assert run_on(session, DUE + timedelta(days=3)).notices_created == 1
    assert rungs(session, kept) == [(1, "email")] and rungs(session, archived) == []


def test_holds_pause_the_client_or_one_invoice_and_an_expired_hold_chases_again(ledger):
    session, client, invoice, _ = ledger
    kept, held = invoice(), invoice()
    day = DUE + timedelta(days=3)
    session.add(
        CollectionHold(
            client_id=client.id, invoice_id=held.id, reason="audit", starts_on=DUE, ends_on=day
        )
    )
    session.flush()
    run_on(session, day)
    assert rungs(session, kept) == [(1, "email")] and rungs(session, held) == []
    session.add(CollectionHold(client_id=client.id, reason="talks", starts_on=DUE))
    session.flush()
    assert run_on(session, day + timedelta(days=20)).notices_created == 0
    assert {s.code for s in engine.plan(session, tenant_of(session), day).skipped} == {"on_hold"}
    for hold in session.scalars(select(CollectionHold)):
        hold.released_at = datetime.now(UTC) if hold.ends_on is None else hold.released_at
    session.flush()
    run_on(session, day + timedelta(days=21))  # the invoice hold ended on `day`
    assert rungs(session, held) == [(1, "email")]


def test_an_open_promise_pauses_and_a_broken_one_resumes(ledger):
    session, client, invoice, _ = ledger
    bill, other = invoice(), invoice()
    session.add(
        PromiseToPay(
            client_id=client.id,
            invoice_ids=[bill.id],
            amount=Decimal("1000"),
            currency="INR",
            promised_on=DUE + timedelta(days=7),
        )
    )
    session.flush()
    run_on(session, DUE + timedelta(days=3))
    assert rungs(session, bill) == [] and rungs(session, other) == [(1, "email")]
    skipped = engine.plan(session, tenant_of(session), DUE + timedelta(days=7)).skipped
    assert any(
        s.invoice_id == bill.id and s.code == "promised" and "8 Mar 2027" in s.reason
        for s in skipped
    )
    run_on(session, DUE + timedelta(days=8))  # the promised day passed unpaid: chased again
    assert rungs(session, bill) == [(1, "email")]


def test_a_promise_for_all_invoices_covers_every_one(ledger):
    session, client, invoice, _ = ledger
    invoice(), invoice()
    session.add(
        PromiseToPay(
            client_id=client.id,
            amount=Decimal("2000"),
            currency="INR",
            promised_on=DUE + timedelta(days=30),
        )
    )
    session.flush()
    assert run_on(session, DUE + timedelta(days=3)).notices_created == 0


def test_an_open_dispute_record_pauses_too(ledger):
    session, client, invoice, _ = ledger
    bill = invoice()
    session.add(Dispute(client_id=client.id, invoice_id=bill.id, reason="short delivery"))
    session.flush()
    assert run_on(session, DUE + timedelta(days=3)).notices_created == 0


def test_the_day_is_the_tenants_own(ledger):
    """Asia/Kolkata: 18:00Z is 23:30 on the 3rd (level 1 is due on the 4th: nothing yet),
    19:00Z is 00:30 on the 4th (due)."""
    session, client, invoice, _ = ledger
    bill = invoice()
    evening = datetime(2027, 3, 3, 18, 0, tzinfo=UTC)
    assert engine.run(session, tenant_of(session), now=evening).run_date == date(2027, 3, 3)
    assert rungs(session, bill) == []
    after_midnight = datetime(2027, 3, 3, 19, 0, tzinfo=UTC)
    record = engine.run(session, tenant_of(session), now=after_midnight)
    assert record.run_date == date(2027, 3, 4) and record.notices_created == 1


def test_grouping_per_client_or_per_invoice(ledger):
    session, client, invoice, new_client = ledger
    invoice(amount="100.00"), invoice(amount="250.50")
    other = new_client()
    invoice(client=other)
    run_on(session, DUE + timedelta(days=3))
    notices = session.scalars(select(CollectionNotice).order_by(CollectionNotice.id)).all()
    assert [(n.client_id, n.amount_due, len(n.items)) for n in notices] == [
        (client.id, Decimal("350.50"), 2),
        (other.id, Decimal("1000.00"), 1),
    ]

    session2_client = new_client()
    settings_of(session).grouping = "invoice"
    invoice(client=session2_client), invoice(client=session2_client)
    run_on(session, DUE + timedelta(days=4))
    per_invoice = session.scalars(
        select(CollectionNotice).where(CollectionNotice.client_id == session2_client.id)
    ).all()
    assert len(per_invoice) == 2 and all(len(n.items) == 1 for n in per_invoice)
    assert {n.grouping for n in per_invoice} == {"invoice"}


def test_channels_without_a_reachable_contact_are_skipped_with_the_reason(ledger):
    session, client, invoice, _ = ledger
    level = default_policy(session).levels[0]
    level.channels = ["email", "sms", "letter", "call"]
    contact = session.scalars(select(Contact).where(Contact.client_id == client.id)).one()
    contact.email_bounced_at = datetime.now(UTC)
    client.collector_user_id = 77
    session.flush()
    invoice()
    plan = engine.plan(session, tenant_of(session), DUE + timedelta(days=3))
    assert {n.channel for n in plan.notices} == {"call"}
    assert plan.notices[0].assigned_user_id == 77
    reasons = {s.channel: s.reason for s in plan.skipped}
    assert reasons["email"] == "no contact reachable by e-mail"
    assert reasons["sms"] == "no contact reachable by SMS"  # no SMS opt-in
    assert reasons["letter"] == "no address for a letter"


def test_approval_levels_start_as_draft_and_auto_send_approves_and_enqueues(app, ledger, redis):
    session, client, invoice, _ = ledger
    invoice()
    settings_of(session).auto_send = True
    session.flush()
    run_on(session, DUE + timedelta(days=3))
    notice = session.scalars(select(CollectionNotice)).one()
    assert notice.status == "approved" and notice.approved_at is not None
    with app.app_context():
        session.commit()  # the sending job is handed over only once the notices are committed
    jobs = Queue("messages", connection=redis).get_jobs()
    assert [(job.func_name, job.args, job.kwargs) for job in jobs] == [
        ("jobs.notices.send_notices", ([notice.id],), {"tenant_id": tenant_of(session).id})
    ]

    legal = session.scalars(select(CollectionLevel).where(CollectionLevel.position == 2)).one()
    legal.requires_approval = True
    notice.status = "escalated"
    session.flush()
    run_on(session, DUE + timedelta(days=11))
    second = session.scalars(select(CollectionNotice).where(CollectionNotice.level_number == 2))
    assert second.one().status == "draft"


def test_without_auto_send_notices_wait_as_drafts(ledger, redis):
    session, client, invoice, _ = ledger
    invoice()
    run_on(session, DUE + timedelta(days=3))
    session.commit()
    assert session.scalars(select(CollectionNotice)).one().status == "draft"
    assert Queue("messages", connection=redis).get_jobs() == []


def test_a_day_that_is_not_a_business_day_creates_nothing_and_the_next_catches_up(ledger):
    session, client, invoice, _ = ledger
    bill = invoice(due=date(2027, 3, 3))  # level 1 due Saturday 6 March
    saturday = run_on(session, date(2027, 3, 6))
    assert saturday.notices_created == 0 and saturday.skipped == {"not_business_day": 1}
    run_on(session, date(2027, 3, 8))  # Monday
    assert rungs(session, bill) == [(1, "email")]


def test_the_preview_lists_what_goes_out_and_why_and_writes_nothing(ledger):
    session, client, invoice, _ = ledger
    due, early = invoice(), invoice(due=DUE + timedelta(days=10))
    preview = engine.run(session, tenant_of(session), today=DUE + timedelta(days=3), dry_run=True)
    assert preview.notices_created == 1 and preview.id is None
    assert notice_count(session) == 0
    assert session.scalar(select(func.count()).select_from(CollectionRun)) == 0
    plan = engine.plan(session, tenant_of(session), DUE + timedelta(days=3))
    assert [(n.invoices[0].invoice_id, n.reason) for n in plan.notices] == [
        (due.id, "3 days after due (1 Mar 2027)")
    ]
    assert [(s.invoice_id, s.reason) for s in plan.skipped] == [
        (early.id, "not yet due: 1st notice on 14 Mar 2027")
    ]


def test_runs_record_what_they_did(ledger):
    session, client, invoice, _ = ledger
    invoice(), invoice(amount="0.10")
    record = run_on(session, DUE + timedelta(days=3), trigger="manual", user_id=5)
    assert (record.notices_created, record.invoices_considered) == (1, 2)
    assert record.skipped == {"under_tolerance": 1} and record.trigger == "manual"
    assert record.finished_at is not None
    notice = session.scalars(select(CollectionNotice)).one()
    assert notice.run_id == record.id


def test_two_concurrent_runs_create_each_notice_once(app):
    """Two sessions on their own connections run the same tenant's day at the same moment
    (committed data in a real schema made for this test and dropped at the end): the second
    waits for the first's lock, then finds every rung taken."""
    from app.clients.models import Client
    from app.invoicing.models import Invoice
    from tenants.binding import TenantSession, bind_tenant, schema_for_tenant_id
    from tenants.models import Tenant
    from tenants.services import provision_schema

    tenant_id = 910_000_000 + os.getpid() % 100_000
    schema = schema_for_tenant_id(tenant_id)
    tenant = Tenant(id=tenant_id, slug="race", time_zone="Asia/Kolkata", country="IN", region="27")
    with app.app_context():
        engine_ = db.engine
        with engine_.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            provision_schema(conn, schema)
        try:
            with TenantSession(db, bind=engine_) as session:
                bind_tenant(session, tenant_id)
                for n in range(3):
                    client = Client(
                        full_name=f"Race client {n}",
                        short_name=f"R{n}",
                        location="local",
                        country="IN",
                        currency="INR",
                        payment_days=30,
                    )
                    session.add(client)
                    session.flush()
                    session.add(
                        Contact(
                            client_id=client.id,
                            full_name="Billing",
                            roles=["billing"],
                            email=f"r{n}@example.com",
                        )
                    )
                    session.add_all(
                        Invoice(
                            client_id=client.id,
                            number=f"R{n}-{k}",
                            status="overdue",
                            issue_date=DUE - timedelta(days=30),
                            due_date=DUE,
                            currency="INR",
                            tax_regime="intra",
                            subtotal=100,
                            cgst=0,
                            sgst=0,
                            igst=0,
                            other_tax=0,
                            total=100,
                            amount_in_words="Hundred",
                        )
                        for k in range(4)
                    )
                session.commit()

            results, errors = [], []
            start = threading.Barrier(2)

            def racer() -> None:
                try:
                    with TenantSession(db, bind=engine_) as session:
                        bind_tenant(session, tenant_id)
                        start.wait(10)
                        record = engine.run(session, tenant, today=DUE + timedelta(days=3))
                        results.append(record.notices_created)
                        session.commit()
                except BaseException as error:  # reported by the main thread
                    errors.append(error)

            threads = [threading.Thread(target=racer) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert not errors, errors
            # The default ladder's 1st notice goes by e-mail and WhatsApp; nobody opted in to
            # WhatsApp, so one e-mail notice per client, listing its four invoices.
            assert sorted(results) == [0, 3]
            with TenantSession(db, bind=engine_) as session:
                bind_tenant(session, tenant_id)
                assert session.scalar(select(func.count()).select_from(CollectionNotice)) == 3
                items = session.scalar(select(func.count()).select_from(CollectionNoticeInvoice))
                assert items == 12
        finally:
            with engine_.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_hourly_fan_out_queues_tenants_whose_hour_has_come_once_a_day(app, ledger, redis):
    from jobs.collections import tenants_due

    session, *_ = ledger
    tenant = tenant_of(session)
    settings_of(session).run_hour = 9
    session.flush()
    zones = [(tenant.id, tenant.time_zone)]
    before = datetime(2027, 3, 4, 3, 0, tzinfo=UTC)  # 08:30 in Kolkata
    after = datetime(2027, 3, 4, 3, 30, tzinfo=UTC)  # 09:00
    assert tenants_due(session, zones, before) == []
    assert tenants_due(session, zones, after) == [tenant.id]
    settings_of(session).last_run_on = date(2027, 3, 4)
    session.flush()
    assert tenants_due(session, zones, after) == []


def test_the_command_previews_and_runs(app, ledger):
    session, client, invoice, _ = ledger
    invoice()
    session.commit()
    runner = app.test_cli_runner()
    slug = tenant_of(session).slug
    args = ["collections", "run", "--tenant", slug, "--date", "2027-03-04"]
    preview = runner.invoke(args=[*args, "--dry-run"])
    assert preview.exit_code == 0, preview.output
    assert "would create 1 notice(s)" in preview.output and "3 days after due" in preview.output
    assert notice_count(session) == 0
    done = runner.invoke(args=args)
    assert done.exit_code == 0, done.output
    assert "created 1 notice(s)" in done.output
    assert runner.invoke(args=args).output.count("created 0 notice(s)") == 1
