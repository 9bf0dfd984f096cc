"""Domain events written where things happen, by the areas' services, in the change's
transaction: a small story of a client from its creation to its payment writes each event once,
in order, with the facts a subscriber needs; a change rolled back or refused writes none; an
import of N clients writes N client.created; a document about to expire is announced once per
expiry date. (Payment failures, sync runs, the daily run's notices and invoices sent by a channel
are checked in their own tests: test_gateways, test_accounting_sync, test_collections_run,
test_invoice_sending.)"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.clients import documents
from app.clients import services as clients
from app.clients.models import Document
from app.collections.cases import disputes, promises
from app.collections.notices import services as notices
from app.core.event_types import check_payload
from app.core.events import DomainEvent
from app.invoicing import services as invoicing
from app.notifications.models import Notification
from tests.helpers import tenant_session
from tests.test_client_import import get_import, import_file

TODAY = date(2027, 3, 10)


def written(session, *types: str) -> list[DomainEvent]:
    query = select(DomainEvent).order_by(DomainEvent.id)
    if types:
        query = query.where(DomainEvent.type.in_(types))
    return list(session.scalars(query))


def new_client_form(**fields) -> dict:
    return {
        "full_name": "Kaveri Builders Pvt Ltd",
        "short_name": "Kaveri",
        "location": "local",
        "country": "IN",
        "region": "27",
        "payment_terms": "net",
        "payment_days": "30",
        "currency": "INR",
        **fields,
    }


@pytest.fixture
def desk(db_session, make_tenant, make_user):
    owner = make_user(full_name="Owner O")
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant, actor_id=owner.id)
    return tenant, owner, session


def test_a_client_from_creation_to_payment_writes_each_event_once_in_order(
    desk, make_invoice, make_notice, make_payment
):
    tenant, owner, s = desk
    context = clients.client_context(s, tenant)
    client = clients.create_client(s, context, new_client_form())
    clients.update_client(s, context, client, {"city": "Pune"})
    clients.update_client(s, context, client, {"city": "Pune"})  # nothing changed: no event
    invoice = make_invoice(s, tenant, client, ("1000.00",), issued_on=date(2027, 2, 1))
    (milestone_id,) = [line.milestone_id for line in invoice.lines]
    invoicing.mark_sent(s, invoice)
    broken = promises.create_promise(
        s, client, {"amount": "400", "promised_on": "2027-03-10"}, TODAY
    )
    promises.mark_broken(s, TODAY + timedelta(days=1))
    notice = make_notice(s, client, [invoice], channel="call", status="approved")
    notices.mark_sent(s, notice)
    notices.escalate(s, notice, TODAY)
    dispute = disputes.open_dispute(s, invoice, {"reason": "Wrong rate"}, user_id=owner.id)
    disputes.end_dispute(s, dispute, "rejected", "The rate is as agreed", TODAY, owner.id)
    kept = promises.create_promise(
        s, client, {"amount": "1000", "promised_on": "2027-03-20"}, TODAY
    )
    payment = make_payment(s, client, "1000.00", "2027-03-12", allocate_to=[invoice])
    s.commit()

    events = written(s)
    assert [(e.type, e.subject_type, e.subject_id) for e in events] == [
        ("client.created", "client", client.id),
        ("client.updated", "client", client.id),
        ("milestone.status_changed", "milestone", milestone_id),
        ("invoice.issued", "invoice", invoice.id),
        ("invoice.sent", "invoice", invoice.id),
        ("promise.broken", "promise", broken.id),
        ("notice.sent", "notice", notice.id),
        ("notice.escalated", "notice", notice.id),
        ("dispute.opened", "dispute", dispute.id),
        ("dispute.resolved", "dispute", dispute.id),
        ("payment.received", "payment", payment.id),
        ("milestone.status_changed", "milestone", milestone_id),
        ("project.status_changed", "project", invoice.project_id),
        ("invoice.paid", "invoice", invoice.id),
        ("notice.closed", "notice", notice.id),
        ("promise.kept", "promise", kept.id),
    ]
    for event in events:
        check_payload(event.type, event.version, event.data)
        assert event.user_id == owner.id, event.type  # the person the session acts for
    facts = {(e.type, e.data.get("status")): e.data for e in events}
    assert facts[("client.updated", None)] == {
        "client_id": client.id,
        "name": "Kaveri",
        "fields": ["city"],
    }
    assert facts[("milestone.status_changed", "invoiced")]["previous"] == "completed"
    assert facts[("milestone.status_changed", "paid")]["previous"] == "invoiced"
    # Its one milestone paid, the project is paid (its work was delivered before).
    assert facts[("project.status_changed", "paid")] == {
        "project_id": invoice.project_id,
        "client_id": client.id,
        "status": "paid",
        "previous": "delivered",
        "name": facts[("project.status_changed", "paid")]["name"],
    }
    assert facts[("invoice.sent", None)]["channel"] == "manual"
    assert facts[("promise.broken", None)] == {
        "promise_id": broken.id,
        "client_id": client.id,
        "amount": "400.00",
        "currency": "INR",
        "promised_for": "2027-03-10",
        "unpaid": "400.00",
    }
    assert facts[("notice.sent", None)] == {
        "notice_id": notice.id,
        "client_id": client.id,
        "invoice_id": invoice.id,
        "level": notice.level_name,
        "channel": "call",
    }
    assert facts[("dispute.opened", None)]["reason"] == "Wrong rate"
    assert facts[("dispute.resolved", None)]["outcome"] == "rejected"
    assert facts[("notice.closed", None)]["reason"] == "paid"
    assert facts[("payment.received", None)]["amount"] == "1000.00"


def test_a_change_rolled_back_or_refused_writes_no_event(desk):
    tenant, _, s = desk
    context = clients.client_context(s, tenant)
    with pytest.raises(RuntimeError), s.begin_nested():
        clients.create_client(s, context, new_client_form())
        raise RuntimeError("the request failed after the client was saved")
    assert written(s) == []
    client = clients.create_client(s, context, new_client_form())
    with pytest.raises(clients.ClientError):
        clients.create_client(s, context, new_client_form(full_name="Another"))  # name taken
    with pytest.raises(clients.ClientError):
        clients.update_client(s, context, client, {"payment_days": "0"})
    s.commit()
    assert [(e.type, e.subject_id) for e in written(s)] == [("client.created", client.id)]


def test_a_prospect_entered_by_a_person_is_a_lead_received(desk):
    tenant, _, s = desk
    context = clients.client_context(s, tenant)
    prospect = clients.create_client(s, context, new_client_form(status="prospect"))
    clients.convert_prospect(s, prospect)
    events = written(s)
    assert [(e.type, e.data.get("source"), e.data.get("fields")) for e in events] == [
        ("client.created", None, None),
        ("lead.received", "manual", None),
        ("client.updated", None, ["status"]),
    ]


IMPORTED = (
    b"Name,Short name,Status,Country,Currency,Payment days\n"
    b"Ganga Motors,GANGA,active,IN,INR,30\n"
    b"Himalaya Tea,HIMTEA,active,IN,INR,45\n"
    b"Indus Pipes,INDUS,prospect,IN,INR,30\n"
    b"Jamuna Mills,JAMUNA,active,IN,INR,30\n"
    b"Kaveri Cement,KAVERI,active,IN,INR,30\n"
    b"Bad Row,,active,IN,INR,30\n"
)


def test_an_import_of_n_clients_writes_n_client_created_and_each_change_one_update(
    client, db_session, make_user, make_tenant, login, run_jobs, storage_root
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    s = tenant_session(db_session, tenant)
    first = import_file(client, tenant, run_jobs, "clients.csv", IMPORTED)
    assert get_import(s, first).inserted_rows == 5
    created = written(s, "client.created")
    assert sorted(e.data["name"] for e in created) == [
        "GANGA",
        "HIMTEA",
        "INDUS",
        "JAMUNA",
        "KAVERI",
    ]
    assert all(e.user_id == owner.id and e.subject_id == e.data["client_id"] for e in created)
    (lead,) = written(s, "lead.received")
    assert lead.data["source"] == "import" and lead.subject_id == next(
        e.subject_id for e in created if e.data["name"] == "INDUS"
    )

    import_file(client, tenant, run_jobs, "clients.csv", IMPORTED)  # the same file: no change
    assert written(s, "client.updated") == []
    changed = IMPORTED.replace(b"HIMTEA,active,IN,INR,45", b"HIMTEA,on_hold,IN,INR,60")
    import_file(client, tenant, run_jobs, "clients.csv", changed)
    (update,) = written(s, "client.updated")
    assert update.data["name"] == "HIMTEA"
    assert update.data["fields"] == ["payment_days", "status"]
    assert len(written(s, "client.created")) == 5


def test_a_document_about_to_expire_is_announced_once_per_expiry_date(desk, make_client):
    tenant, _, s = desk
    client = make_client(s)  # no engagement manager: nobody to e-mail, an event all the same
    lease = Document(client_id=client.id, title="Lease", expires_on=TODAY + timedelta(days=10))
    later = Document(client_id=client.id, title="Licence", expires_on=TODAY + timedelta(days=90))
    s.add_all([lease, later])
    s.flush()

    def announce():
        return documents.announce_expiring_documents(s, tenant, TODAY, lambda d: "/")

    assert announce() == 0  # no e-mail
    announce()  # the next run: nothing new
    assert [(e.subject_id, e.data["expires_on"]) for e in written(s)] == [(lease.id, "2027-03-20")]
    lease.expires_on = TODAY + timedelta(days=20)  # renewed, and expiring again
    announce()
    assert [(e.subject_id, e.data["expires_on"]) for e in written(s)] == [
        (lease.id, "2027-03-20"),
        (lease.id, "2027-03-30"),
    ]


def test_a_broken_promise_reaches_the_collector_through_the_delivery_job(
    app, desk, make_client, make_invoice, make_user, add_member, run_jobs
):
    """Notifications reads promise.broken as a consumer: nothing is told in the daily run's
    transaction; the delivery job handed over at its commit tells the collector."""
    tenant, _, s = desk
    collector = make_user(full_name="Collector C")
    add_member(tenant, collector, role="collector")
    client = make_client(s, collector_user_id=collector.id)
    make_invoice(s, tenant, client)
    promises.create_promise(s, client, {"amount": "250", "promised_on": "2027-03-10"}, TODAY)
    with app.app_context():
        promises.mark_broken(s, TODAY + timedelta(days=1))
        assert s.scalars(select(Notification)).all() == []
        s.commit()
    run_jobs()
    (told,) = s.scalars(select(Notification)).all()
    assert (told.user_id, told.kind) == (collector.id, "broken_promise")
    assert "INR 250.00 was promised by 10 Mar 2027" in told.body
