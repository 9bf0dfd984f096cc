"""The consumers of the domain events besides webhooks: the client timeline files each event
under its client once and says it in words on the client page (the audit log's changes of the
same transaction beneath it); a project's status follows its milestones; notifications tell the
right people of disputes, leads, money that came in by itself and failed syncs; and the
accounting sync pushes what Duebook recorded without waiting for its schedule, with no loop
from its own pull."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from app.clients import timeline
from app.collections.cases import disputes
from app.core.events import DomainEvent, consume, emit
from app.invoicing.models import Invoice
from app.notifications.models import Notification
from app.notifications.services import apply_events
from app.payments import services as payments
from app.projects import services as projects
from app.projects.models import Milestone
from app.sync import services
from tenants.binding import SOURCE_KEY
from tests.helpers import tenant_session
from tests.sync_helpers import runs, send
from tests.test_accounting_sync import Zoho, first_sync


@pytest.fixture
def desk(db_session, make_tenant, make_user, client, login):
    owner = make_user(full_name="Owner O")
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant, actor_id=owner.id)
    login(client, owner)
    return tenant, owner, session


def filed(session) -> list[tuple[int, int]]:
    return list(
        session.execute(
            select(timeline.ClientTimelineEntry.event_id, timeline.ClientTimelineEntry.client_id)
        ).all()
    )


def test_the_timeline_tells_an_invoice_and_its_payment_once_with_their_changes_beneath(
    desk, client, make_client, make_invoice
):
    tenant, owner, s = desk
    kaveri = make_client(s, short_name="Kaveri")
    other = make_client(s, short_name="Tunga")
    invoice = make_invoice(s, tenant, kaveri, ("1000.00",), issued_on=date(2027, 2, 1))
    make_invoice(s, tenant, other, ("777.00",), issued_on=date(2027, 2, 1))
    s.commit()  # each commit its own moment, as each request is
    payment = payments.record_payment_for_invoice(
        s,
        invoice,
        {
            "amount": "400.00",
            "received_on": date(2027, 2, 10),
            "method": "bank_transfer",
            "reference": "UTR-55",
        },
    )
    s.commit()
    assert consume(s, timeline.CONSUMER, timeline.file_events) > 0
    once = filed(s)
    # Applied again from the start (a batch replayed after a crash): still filed once.
    timeline.file_events(s, s.scalars(select(DomainEvent)).all())
    s.commit()
    assert sorted(filed(s)) == sorted(once)
    kinds = {
        (client_id, kind)
        for client_id, kind in s.execute(
            select(timeline.ClientTimelineEntry.client_id, DomainEvent.type).join(
                DomainEvent, DomainEvent.id == timeline.ClientTimelineEntry.event_id
            )
        )
    }
    assert (kaveri.id, "invoice.issued") in kinds and (kaveri.id, "payment.received") in kinds
    assert (other.id, "invoice.issued") in kinds
    assert not any(kind.startswith("client.") for _, kind in kinds)  # the audit log says those

    page = client.get(f"/t/{tenant.slug}/clients/{kaveri.id}?tab=timeline").text
    assert f"Invoice {invoice.number} issued: ₹1,000.00" in page
    assert f'href="/t/{tenant.slug}/invoices/{invoice.id}"' in page
    assert "Payment of ₹400.00 received on 10 Feb 2027 (bank transfer)" in page
    assert f'href="/t/{tenant.slug}/payments/{payment.id}"' in page
    assert "777.00" not in page  # the other client's invoice is not on Kaveri's timeline
    # The payment's audit entries (made in its transaction) sit beneath it, not apart; the
    # invoice's beneath the invoice's transaction's newest happening.
    happening = page.split("Payment of ₹400.00")[1].split("</li>")[0]
    assert "timeline-detail" in happening and "Created payments #" in happening
    assert "Created invoices #" not in happening
    assert page.count('class="audit-action"') == 0 and page.count("timeline-detail") == 2


def test_an_event_about_a_client_gone_is_passed_over(desk, make_client):
    _, _, s = desk
    kaveri = make_client(s, short_name="Kaveri")
    emit(s, "lead.received", "client", kaveri.id, {"client_id": kaveri.id, "source": "manual"})
    emit(s, "lead.received", "client", 999_999, {"client_id": 999_999, "source": "manual"})
    timeline.file_events(s, s.scalars(select(DomainEvent)).all())
    assert [client_id for _, client_id in filed(s)] == [kaveri.id]


def test_a_project_status_follows_its_milestones_and_is_announced_on_change(
    desk, make_client, make_invoice
):
    tenant, owner, s = desk
    kaveri = make_client(s, short_name="Kaveri")
    invoice = make_invoice(s, tenant, kaveri, ("500.00", "500.00"))
    project_id = s.get(Milestone, invoice.lines[0].milestone_id).project_id
    milestones = s.scalars(
        select(Milestone).where(Milestone.project_id == project_id).order_by(Milestone.position)
    ).all()
    s.execute(DomainEvent.__table__.delete())
    for milestone in milestones:
        milestone.status = "planned"
    s.flush()
    projects.record_move(s, milestones[0], "in_progress", owner.id)
    projects.record_move(s, milestones[0], "completed", owner.id)  # still in progress overall
    projects.record_move(s, milestones[1], "completed", owner.id)
    said = s.scalars(
        select(DomainEvent)
        .where(DomainEvent.type == "project.status_changed")
        .order_by(DomainEvent.id)
    ).all()
    assert [(e.data["previous"], e.data["status"]) for e in said] == [
        ("planned", "in_progress"),
        ("in_progress", "delivered"),
    ]
    assert {e.data["client_id"] for e in said} == {kaveri.id}
    moves = s.scalars(select(DomainEvent).where(DomainEvent.type == "milestone.status_changed"))
    assert {(e.data["client_id"], e.data["name"]) for e in moves} == {
        (kaveri.id, milestones[0].name),
        (kaveri.id, milestones[1].name),
    }
    assert projects.project_status({"paid": 2, "cancelled": 1}) == "paid"
    assert projects.project_status({"cancelled": 2}) == "cancelled"
    assert projects.project_status({}) == "planned"


def test_disputes_leads_and_money_that_came_in_by_itself_reach_the_clients_collector(
    db_session, desk, make_client, make_invoice, make_user, add_member
):
    tenant, owner, s = desk
    collector = make_user(full_name="Collector C")
    add_member(tenant, collector, role="collector")
    kaveri = make_client(s, short_name="Kaveri", collector_user_id=collector.id)
    invoice = make_invoice(s, tenant, kaveri)
    as_collector = tenant_session(db_session, tenant, actor_id=collector.id)
    disputes.open_dispute(
        as_collector, as_collector.get(Invoice, invoice.id), {"reason": "Wrong rate"}
    )
    as_collector.flush()
    emit(s, "lead.received", "client", kaveri.id, {"client_id": kaveri.id, "source": "import"})
    emit(s, "lead.received", "client", kaveri.id, {"client_id": kaveri.id, "source": "manual"})
    money = {"client_id": kaveri.id, "amount": "250.00", "currency": "INR"}
    by_itself = tenant_session(db_session, tenant)  # a gateway's webhook: nobody acting
    emit(
        by_itself,
        "payment.received",
        "payment",
        41,
        {**money, "payment_id": 41, "received_on": "2027-02-11", "method": "upi"},
    )
    by_itself.flush()
    apply_events(s, s.scalars(select(DomainEvent).order_by(DomainEvent.id)).all())
    told = s.scalars(select(Notification).order_by(Notification.id)).all()
    by_kind = {(n.user_id, n.kind): n for n in told}
    # The collector opened the dispute: not told of their own act.
    assert (collector.id, "dispute_opened") not in by_kind
    assert (collector.id, "new_lead") in by_kind  # the manual lead, not the imported one
    assert sum(1 for n in told if n.kind == "new_lead") == 1
    paid = by_kind[(collector.id, "payment_received")]
    assert paid.title == f"{kaveri.short_name} paid ₹250.00" and paid.link.endswith("/payments/41")
    # Applied again: nobody is told twice.
    apply_events(s, s.scalars(select(DomainEvent).order_by(DomainEvent.id)).all())
    assert s.scalar(select(func.count()).select_from(Notification)) == len(told)


def test_a_dispute_opened_by_someone_else_and_many_payments_at_once(
    db_session, desk, make_client, make_invoice, make_user, add_member
):
    tenant, owner, s = desk
    collector = make_user(full_name="Collector C")
    add_member(tenant, collector, role="collector")
    kaveri = make_client(s, short_name="Kaveri", collector_user_id=collector.id)
    invoice = make_invoice(s, tenant, kaveri)
    disputes.open_dispute(s, invoice, {"reason": "Wrong rate"}, user_id=owner.id)
    s.flush()
    by_itself = tenant_session(db_session, tenant)  # a bank statement matched by a job
    for payment_id in range(1, 6):
        emit(
            by_itself,
            "payment.received",
            "payment",
            payment_id,
            {
                "payment_id": payment_id,
                "client_id": kaveri.id,
                "amount": "10.00",
                "currency": "INR",
                "received_on": "2027-02-11",
                "method": "bank_transfer",
            },
        )
    from_books = tenant_session(db_session, tenant)  # a sync: the books' own record of it
    from_books.info[SOURCE_KEY] = "Xero sync"
    emit(
        from_books,
        "payment.received",
        "payment",
        6,
        {
            "payment_id": 6,
            "client_id": kaveri.id,
            "amount": "10.00",
            "currency": "INR",
            "received_on": "2027-02-11",
            "method": "bank_transfer",
        },
    )
    from_books.flush()
    emit(
        by_itself,
        "sync.finished",
        "sync_run",
        7,
        {
            "run_id": 7,
            "connection_id": 1,
            "provider": "xero",
            "status": "failed",
            "created": 0,
            "updated": 0,
            "failed": 3,
        },
    )
    by_itself.flush()
    apply_events(s, s.scalars(select(DomainEvent).order_by(DomainEvent.id)).all())
    told = s.scalars(select(Notification).order_by(Notification.id)).all()
    dispute = [n for n in told if n.kind == "dispute_opened"]
    assert [(n.user_id, n.title, n.body) for n in dispute] == [
        (collector.id, f"{kaveri.short_name} disputed an invoice", "Wrong rate")
    ]
    assert dispute[0].link.endswith(f"/invoices/{invoice.id}")
    money = [n for n in told if n.kind == "payment_received"]
    # Five from the bank's match, counted; the one the books brought is no news.
    assert [(n.user_id, n.title) for n in money] == [(collector.id, "5 payments came in")]
    assert [(n.user_id, n.kind) for n in told if n.kind == "sync_failed"] == [
        (owner.id, "sync_failed")
    ]


@pytest.fixture
def zoho_books(app, monkeypatch):
    monkeypatch.setitem(app.config, "SYNC_PACING", False)
    monkeypatch.setitem(app.config, "SYNC_RETRY_DELAYS", (0, 0))
    stand_in = Zoho(app, monkeypatch)
    yield stand_in
    stand_in.stop()
    stand_in.check_contract()


@pytest.fixture
def workspace(db_session, make_tenant, make_user, make_client, login, client):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="29")
    session = tenant_session(db_session, tenant)
    sahyadri = make_client(session, name="x", short_name="Sahyadri", gstin=None, region="27")
    sahyadri.full_name = "Sahyadri Textiles LLP"
    session.commit()
    login(client, owner)
    return tenant, owner, session, sahyadri


def test_an_invoice_issued_in_duebook_goes_to_the_books_without_waiting_for_the_schedule(
    app, client, workspace, zoho_books, run_jobs, make_invoice
):
    tenant, _, session, sahyadri = workspace
    connection_id = first_sync(client, run_jobs, tenant, zoho_books.provider)
    # The first sync's own writes (the books' invoices and payments, each linked) raised events
    # and the sync consumer read them: nothing was owed, so no run of its own started.
    assert runs(session) and "event" not in {run.trigger for run in runs(session)}

    with app.app_context():  # the commit hands the events' delivery job over, as a page's
        invoice = make_invoice(session, tenant, sahyadri, ("4200.00",), issued_on=date.today())
        session.commit()
    run_jobs()
    started = [run for run in runs(session) if run.trigger == "event"]
    assert [(run.status, run.connection_id) for run in started] == [("done", connection_id)]
    assert invoice.number in zoho_books.invoice_numbers()
    page = client.get(f"/t/{tenant.slug}/sync/{connection_id}").text
    assert "New in Duebook" in page

    # Nothing new: the next events (a payment on an invoice the books do not have) start none.
    run_jobs()
    assert len([run for run in runs(session) if run.trigger == "event"]) == 1


def test_an_event_while_a_run_is_going_asks_for_one_more_run_after_it(
    app, client, workspace, zoho_books, run_jobs, make_invoice
):
    tenant, _, session, sahyadri = workspace
    connection_id = first_sync(client, run_jobs, tenant, zoho_books.provider)
    going = send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
    assert going.status_code in (200, 303)
    make_invoice(session, tenant, sahyadri, ("99.00",), issued_on=date.today())
    services.push_after_events(
        session,
        session.scalars(select(DomainEvent).where(DomainEvent.type == "invoice.issued")).all(),
    )
    connection = services.accounting_connection(session, connection_id)
    assert connection.settings["rerun"] == "event"
    session.commit()
    run_jobs()  # the manual run, then the one the event asked for
    assert [run.trigger for run in runs(session)][-2:] == ["manual", "event"]
    assert runs(session)[-1].status == "done"
