"""The ICS feed, read as a calendar app reads it (icalendar parses every answer): a member's
secret address shows their milestones, invoices, promises, follow-ups and visits falling due,
with UIDs that stay the same from fetch to fetch, an entry that changed comes back with the
same UID and a higher SEQUENCE (an update, not a second event), a settled one leaves, an
unchanged feed answers 304 to its ETag; "New address" kills the old one; a collector sees
their own clients only; another workspace's dates never appear; the token never reaches a
log line."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from icalendar import Calendar
from sqlalchemy import select

from app.calendars.models import CalendarFeed
from app.collections.models import CollectionActivity, PromiseToPay
from app.outbox.secret_links import redact_secret_paths
from app.payments import services as payments
from app.projects.models import Milestone, Project
from tests.helpers import csrf_token_from, tenant_session

TODAY = date.today()


@pytest.fixture
def workspace(db_session, make_tenant, make_user, make_client, make_invoice, make_notice):
    """A workspace with one client's dates of every kind, its owner logged in nowhere yet."""
    owner = make_user(full_name="Owner O")
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)
    client = make_client(session, name="Kaveri Traders", collector_user_id=owner.id)
    invoice = make_invoice(session, tenant, client, ("1000.00",), issued_on=TODAY)
    project = Project(
        client_id=client.id,
        name="Warehouse",
        contract_value=Decimal("5000"),
        currency="INR",
        start_date=TODAY,
    )
    session.add(project)
    session.flush()
    milestone = Milestone(
        project_id=project.id,
        position=1,
        name="Foundation",
        amount=Decimal("5000"),
        due_rule="date",
        due_date=TODAY + timedelta(days=20),
    )
    promise = PromiseToPay(
        client_id=client.id,
        amount=Decimal("400.00"),
        currency="INR",
        promised_on=TODAY + timedelta(days=5),
    )
    follow_up = CollectionActivity(
        client_id=client.id,
        kind="call",
        outcome="call_back",
        user_id=owner.id,
        occurred_at=datetime.now(UTC),
        follow_up_on=TODAY + timedelta(days=2),
    )
    session.add_all([milestone, promise, follow_up])
    visit = make_notice(
        session, client, [invoice], channel="visit", status="approved", run_date=TODAY
    )
    visit.assigned_user_id = owner.id
    session.commit()

    class Workspace:
        pass

    w = Workspace()
    w.tenant, w.owner, w.session, w.client, w.invoice = tenant, owner, session, client, invoice
    w.milestone, w.promise, w.follow_up, w.visit = milestone, promise, follow_up, visit
    return w


def new_address(client, login, user, tenant) -> str:
    """Log `user` in, press "Create my calendar address" (or "New address"), read it back."""
    login(client, user)
    page = client.get(f"/t/{tenant.slug}/calendar")
    response = client.post(
        f"/t/{tenant.slug}/calendar/address", data={"csrf_token": csrf_token_from(page.text)}
    )
    assert response.status_code == 303
    page = client.get(f"/t/{tenant.slug}/calendar")
    assert page.status_code == 200
    start = page.text.index('value="', page.text.index('id="feed-url"')) + len('value="')
    url = page.text[start : page.text.index('"', start)]
    assert url.startswith("http") and url.endswith(".ics")
    return url[url.index("/calendar/") :]


def events_of(response) -> dict[str, dict]:
    assert response.status_code == 200, response.text
    assert response.mimetype == "text/calendar"
    calendar = Calendar.from_ical(response.data)
    found = {}
    for event in calendar.walk("VEVENT"):
        uid = str(event["UID"])
        assert uid not in found, f"{uid} twice in one feed"
        found[uid] = {
            "summary": str(event["SUMMARY"]),
            "sequence": int(event["SEQUENCE"]),
            "start": event.decoded("DTSTART"),
            "last_modified": event.decoded("LAST-MODIFIED"),
        }
    return found


def test_the_feed_holds_every_kind_of_date_and_updates_an_entry_instead_of_adding_one(
    app, client, login, workspace
):
    w = workspace
    path = new_address(client, login, w.owner, w.tenant)
    subscriber = app.test_client()  # a calendar app: no log-in, no cookies

    first = subscriber.get(path)
    events = events_of(first)
    slug = w.tenant.slug
    assert set(events) == {
        f"invoice-{w.invoice.id}@{slug}.duebook",
        f"milestone-{w.milestone.id}@{slug}.duebook",
        f"promise-{w.promise.id}@{slug}.duebook",
        f"follow-up-{w.follow_up.id}@{slug}.duebook",
        f"visit-{w.visit.id}@{slug}.duebook",
    }
    promise_uid = f"promise-{w.promise.id}@{slug}.duebook"
    assert events[promise_uid]["start"] == TODAY + timedelta(days=5)
    assert events[promise_uid]["summary"] == "Promise to pay: Kaveri Traders 1, ₹400.00"
    assert events[f"milestone-{w.milestone.id}@{slug}.duebook"]["start"] == w.milestone.due_date

    # Polled again with nothing changed: the same bytes, and a 304 to its ETag.
    second = subscriber.get(path)
    assert second.data == first.data
    assert subscriber.get(path, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304

    # The promise moves and grows: the same UID, a higher SEQUENCE, no second event.
    w.promise.amount = Decimal("450.00")
    w.promise.promised_on = TODAY + timedelta(days=7)
    w.session.commit()
    changed = events_of(subscriber.get(path))
    assert set(changed) == set(events)
    assert changed[promise_uid]["sequence"] == events[promise_uid]["sequence"] + 1
    assert changed[promise_uid]["start"] == TODAY + timedelta(days=7)
    assert changed[promise_uid]["summary"].endswith("₹450.00")
    untouched = f"milestone-{w.milestone.id}@{slug}.duebook"
    assert changed[untouched]["sequence"] == events[untouched]["sequence"]

    # Paid in full, the invoice no longer falls due: it leaves the calendar.
    payment = payments.record_payment(
        w.session,
        w.client,
        {"amount": "1000.00", "received_on": TODAY.isoformat(), "method": "upi", "reference": "U"},
    )
    payments.allocate(w.session, payment, [(w.invoice.id, Decimal("1000.00"), Decimal("0"))])
    w.session.commit()
    assert f"invoice-{w.invoice.id}@{slug}.duebook" not in events_of(subscriber.get(path))


def test_a_new_address_stops_the_old_one(app, client, login, workspace, db_session):
    w = workspace
    old = new_address(client, login, w.owner, w.tenant)
    new = new_address(client, login, w.owner, w.tenant)
    subscriber = app.test_client()
    assert old != new
    assert subscriber.get(old).status_code == 404
    assert events_of(subscriber.get(new))
    assert subscriber.get("/calendar/forged-token.ics").status_code == 404
    feeds = db_session.scalars(select(CalendarFeed).where(CalendarFeed.user_id == w.owner.id))
    assert sorted(feed.revoked_at is None for feed in feeds) == [False, True]


def test_a_member_who_left_has_a_dead_address(app, client, login, workspace, db_session):
    from tenants.models import Membership

    w = workspace
    path = new_address(client, login, w.owner, w.tenant)
    membership = db_session.scalar(select(Membership).where(Membership.user_id == w.owner.id))
    membership.active = False
    db_session.commit()
    assert app.test_client().get(path).status_code == 404


def test_a_collector_sees_only_their_own_clients(
    app, client, login, workspace, make_user, add_member, make_client, make_invoice
):
    w = workspace
    collector = make_user(full_name="Collector C")
    add_member(w.tenant, collector, role="collector")
    theirs = make_client(w.session, name="Nilgiri Foods", collector_user_id=collector.id)
    their_invoice = make_invoice(w.session, w.tenant, theirs, ("700.00",), issued_on=TODAY)
    w.session.commit()

    path = new_address(client, login, collector, w.tenant)
    events = events_of(app.test_client().get(path))
    assert set(events) == {f"invoice-{their_invoice.id}@{w.tenant.slug}.duebook"}
    assert "Kaveri" not in app.test_client().get(path).text

    # The owner supervises: both clients' invoices, and only the owner's own tasks.
    owner_client = app.test_client()
    owner_events = events_of(owner_client.get(new_address(owner_client, login, w.owner, w.tenant)))
    assert f"invoice-{their_invoice.id}@{w.tenant.slug}.duebook" in owner_events
    assert f"invoice-{w.invoice.id}@{w.tenant.slug}.duebook" in owner_events


def test_another_workspace_never_appears_in_a_feed(
    app, client, login, workspace, make_tenant, make_client, make_invoice, db_session, add_member
):
    w = workspace
    other = make_tenant(name="Other Works", region="27")
    add_member(other, w.owner, role="owner")  # the same person, in both workspaces
    other_session = tenant_session(db_session, other)
    stranger = make_client(other_session, name="Stranger Exports", collector_user_id=w.owner.id)
    make_invoice(other_session, other, stranger, ("999.00",), issued_on=TODAY)
    other_session.commit()

    path = new_address(client, login, w.owner, w.tenant)
    answer = app.test_client().get(path)
    events = events_of(answer)
    assert events and all(uid.endswith(f"@{w.tenant.slug}.duebook") for uid in events)
    assert "Stranger" not in answer.text

    other_path = new_address(client, login, w.owner, other)
    other_events = events_of(app.test_client().get(other_path))
    assert other_events and all(uid.endswith(f"@{other.slug}.duebook") for uid in other_events)
    assert not set(other_events) & set(events)


def test_the_feed_is_rate_limited_and_its_token_never_logged(
    app, client, login, workspace, monkeypatch
):
    w = workspace
    path = new_address(client, login, w.owner, w.tenant)
    monkeypatch.setitem(app.config, "CALENDAR_FEED_RATE_LIMIT", "2 per minute")
    subscriber = app.test_client()
    assert [subscriber.get(path).status_code for _ in range(3)] == [200, 200, 429]
    token = path.removeprefix("/calendar/").removesuffix(".ics")
    logged = redact_secret_paths(f'"GET {path} HTTP/1.1" 200')
    assert token not in logged and "/calendar/[hidden].ics" in logged
