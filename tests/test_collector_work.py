"""Collector work: each collector's queue (their tasks, follow-ups, broken promises, disputes,
quiet overdue clients; a manager picks any collector), calls that complete their task and
record the client's answer, field visits verified by distance to the client's site or flagged
for a manager, who alone confirms or rejects them; permissions and tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.clients.models import Contact, Site
from app.collections.models import (
    CollectionActivity,
    CollectionLevel,
    CollectionNotice,
    CollectionPolicy,
    Dispute,
    PromiseToPay,
)
from app.collections.work import services as work
from app.core.clock import tenant_today
from app.invoicing.balance import open_invoices, owing_per_client
from tests.helpers import csrf_token_from, tenant_session

# A site in Mumbai and points at known distances from it along its meridian: 0.001° of
# latitude is 111.2 m, 0.01° is 1.112 km.
SITE = (Decimal("19.076000"), Decimal("72.877700"))
NEAR = ("19.076900", "72.877700")  # 100 m north
FAR = ("19.086000", "72.877700")  # 1.11 km north


@pytest.fixture
def desk(db_session, make_tenant, make_user, add_member, make_client, make_invoice):
    """A tenant in Maharashtra with two collectors (Asha, Ravi), a finance manager (Mina) and a
    viewer (Vik); Asha's client owes an invoice 30 days overdue and has a site; a factory of
    other clients and of issued invoices (no tax: an invoice's total is its amount)."""
    people = {"owner": make_user(full_name="Owner")}
    tenant = make_tenant(owner=people["owner"], region="27")
    for name, role in (
        ("asha", "collector"),
        ("ravi", "collector"),
        ("mina", "finance"),
        ("vik", "viewer"),
    ):
        people[name] = make_user(full_name=name.title())
        add_member(tenant, people[name], role=role)
    session = tenant_session(db_session, tenant)
    today = tenant_today(session)

    def new_client(collector=None):
        return make_client(session, gstin=None, region="27", collector_user_id=collector)

    def issued(client, amount, day):
        return make_invoice(session, tenant, client, (amount,), issued_on=day, started_on=day)

    client = new_client(collector=people["asha"].id)
    issued(client, "5000.00", today - timedelta(days=60))
    session.add(Site(client_id=client.id, name="Head office", latitude=SITE[0], longitude=SITE[1]))
    session.flush()
    return {
        "session": session,
        "tenant": tenant,
        "client": client,
        "issued": issued,
        "new_client": new_client,
        "today": today,
        **people,
    }


def _task(
    session,
    client,
    channel="call",
    status="approved",
    assigned=None,
    amount="5000.00",
    run_date=None,
):
    policy = session.scalar(select(CollectionPolicy).where(CollectionPolicy.is_default))
    level = session.scalar(
        select(CollectionLevel).where(
            CollectionLevel.policy_id == policy.id, CollectionLevel.position == 2
        )
    )
    notice = CollectionNotice(
        client_id=client.id,
        policy_id=policy.id,
        level_id=level.id,
        level_number=2,
        level_name=level.name,
        channel=channel,
        currency="INR",
        status=status,
        amount_due=Decimal(amount),
        run_date=run_date or tenant_today(session),
        assigned_user_id=assigned,
    )
    session.add(notice)
    session.flush()
    return notice


def _section(sections, key):
    return next(s for s in sections if s.key == key)


def test_haversine_along_a_meridian():
    # 0.01° of latitude is 1/36,000 of a great circle of radius 6,371,008.8 m: 1,111.95 m.
    assert work.haversine_m(19.0, 72.8777, 19.01, 72.8777) == pytest.approx(1111.95, abs=0.1)
    assert work.haversine_m(0, 0, 0, 0) == 0
    # Across the antimeridian the short way round: 0.02° of longitude on the equator.
    assert work.haversine_m(0, 179.99, 0, -179.99) == pytest.approx(2223.9, abs=0.1)


def test_queue_holds_each_collectors_own_work(desk):
    s, client, today = desk["session"], desk["client"], desk["today"]
    asha, ravi = desk["asha"].id, desk["ravi"].id
    mine = _task(s, client)  # unassigned, on Asha's client
    assigned_to_asha = _task(
        s, other := desk["new_client"](), channel="visit", assigned=asha, amount="9000.00"
    )
    given_to_ravi = _task(s, client, channel="visit", assigned=ravi)
    _task(s, client, status="draft")  # not approved yet: nobody's task
    _task(s, client, run_date=today + timedelta(days=1))  # tomorrow's
    s.add(
        PromiseToPay(
            client_id=client.id,
            amount=Decimal("2000.00"),
            currency="INR",
            promised_on=today - timedelta(days=3),
            status="broken",
        )
    )
    invoice = desk["issued"](other, "700.00", today - timedelta(days=10))
    s.add(
        Dispute(client_id=other.id, invoice_id=invoice.id, reason="Wrong rate", owner_user_id=asha)
    )
    s.flush()

    sections = work.queue(s, asha, today)
    tasks = _section(sections, "tasks")
    assert [i.notice.id for i in tasks.items] == [assigned_to_asha.id, mine.id]  # biggest first
    assert _section(sections, "broken_promises").count == 1
    [dispute] = _section(sections, "disputes").items
    assert dispute.invoice.id == invoice.id and dispute.client.id == other.id
    [quiet] = _section(sections, "no_contact").items  # overdue, nobody in touch for 14 days
    assert quiet.client.id == client.id and quiet.owed.overdue == {"INR": Decimal("5000.00")}

    ravis = work.queue(s, ravi, today)
    assert [i.notice.id for i in _section(ravis, "tasks").items] == [given_to_ravi.id]
    assert all(
        _section(ravis, key).count == 0
        for key in ("follow_ups", "broken_promises", "disputes", "no_contact")
    )

    # A call today with a follow-up: the client is no longer quiet, the promise is chased;
    # the follow-up comes back on its day and leaves once someone is in touch again.
    work.log_call(
        s, desk["tenant"], asha, client.id, outcome="call_back", follow_up_on=today.isoformat()
    )
    sections = work.queue(s, asha, today)
    assert _section(sections, "no_contact").count == 0
    assert _section(sections, "broken_promises").count == 0
    [follow_up] = _section(sections, "follow_ups").items
    assert follow_up.activity.outcome == "call_back"
    work.log_call(s, desk["tenant"], asha, client.id, outcome="no_answer")
    assert _section(work.queue(s, asha, today), "follow_ups").count == 0


def test_quiet_clients_show_their_last_call_or_visit(desk):
    """A quiet client (overdue, nobody in touch for 14 days) shows when someone last called or
    visited: the latest of its calls, whoever made them; never, for one nobody has called."""
    s, client, today = desk["session"], desk["client"], desk["today"]
    asha, ravi = desk["asha"].id, desk["ravi"].id
    zone = ZoneInfo(desk["tenant"].time_zone)
    never_called = desk["new_client"](collector=asha)
    desk["issued"](never_called, "800.00", today - timedelta(days=45))
    moments = [
        datetime.combine(today - timedelta(days=days), datetime.min.time(), zone).replace(hour=11)
        for days in (30, 20)
    ]
    for user_id, moment in ((asha, moments[1]), (ravi, moments[0])):
        work.log_call(
            s, desk["tenant"], user_id, client.id, outcome="no_answer", occurred_at=moment
        )

    quiet = {i.client.id: i for i in _section(work.queue(s, asha, today), "no_contact").items}
    assert set(quiet) == {client.id, never_called.id}
    assert quiet[client.id].last_contact == moments[1]
    assert quiet[never_called.id].last_contact is None


def test_a_call_completes_its_task_and_records_the_answer(desk):
    s, tenant, client, asha = desk["session"], desk["tenant"], desk["client"], desk["asha"].id
    task = _task(s, client)
    first = work.log_call(
        s,
        tenant,
        asha,
        client.id,
        notice_id=str(task.id),
        outcome="no_answer",
        occurred_at="2026-01-05T10:30",
    )
    assert (task.status, task.response_date) == ("sent", None)
    assert task.sent_at == first.occurred_at == datetime(2026, 1, 5, 5, 0, tzinfo=UTC)  # IST
    work.log_call(
        s,
        tenant,
        asha,
        client.id,
        notice_id=task.id,
        outcome="promised",
        note="Will pay Friday",
        occurred_at="2026-01-06T23:45",
    )
    assert task.status == "responded"
    assert (task.response_date.isoformat(), task.response_note) == ("2026-01-06", "Will pay Friday")
    assert task.sent_at == first.occurred_at  # sent once, by the first call
    work.log_call(s, tenant, asha, client.id, notice_id=task.id, outcome="no_answer")
    assert task.status == "responded"  # never backwards

    visit_task = _task(s, client, channel="visit")
    with pytest.raises(work.WorkInvalid) as refused:
        work.log_call(s, tenant, asha, client.id, notice_id=visit_task.id, outcome="no_answer")
    assert "call tasks" in refused.value.errors["notice_id"]
    assert visit_task.status == "approved"


def test_call_form_errors_are_per_field(desk):
    s, tenant, client, asha = desk["session"], desk["tenant"], desk["client"], desk["asha"].id
    stranger = Contact(client_id=desk["new_client"]().id, full_name="Not theirs")
    s.add(stranger)
    s.flush()
    with pytest.raises(work.WorkInvalid) as refused:
        work.log_call(
            s,
            tenant,
            asha,
            client.id,
            outcome="shouted",
            contact_id=str(stranger.id),
            occurred_at="2099-01-01T10:00",
            follow_up_on="soon",
        )
    assert set(refused.value.errors) == {"outcome", "contact_id", "occurred_at", "follow_up_on"}
    with pytest.raises(work.WorkInvalid) as refused:
        work.log_call(
            s,
            tenant,
            asha,
            client.id,
            outcome="other",
            occurred_at="2026-03-01T10:00",
            follow_up_on="2026-02-01",
        )
    assert set(refused.value.errors) == {"note", "follow_up_on"}
    assert "before the call" in refused.value.errors["follow_up_on"]
    assert s.scalar(select(CollectionActivity.id)) is None  # nothing half-written


def test_visits_verified_within_the_radius_else_flagged(desk):
    s, tenant, client, asha = desk["session"], desk["tenant"], desk["client"], desk["asha"].id

    def visit(position, accuracy="12", on=client):
        return work.log_visit(
            s,
            tenant,
            asha,
            on.id,
            outcome="met_promised",
            latitude=position[0],
            longitude=position[1],
            accuracy_m=accuracy,
        )

    near = visit(NEAR)
    assert (near.verification, near.distance_m) == ("verified", 100)
    assert near.site_id is not None and near.accuracy_m == 12
    far = visit(FAR)
    assert (far.verification, far.distance_m) == ("flagged", 1112)
    assert "1,112 m from the nearest site" in work.flag_reason(far, 300)
    assert visit(NEAR, accuracy="950.4").verification == "flagged"  # too vague to tell
    typed = visit(NEAR, accuracy="")
    assert typed.verification == "flagged" and "typed in" in work.flag_reason(typed, 300)

    # A closer site counts; a deleted one does not.
    s.add(
        Site(
            client_id=client.id,
            name="Warehouse",
            latitude=Decimal(FAR[0]),
            longitude=Decimal(FAR[1]),
        )
    )
    s.flush()
    assert visit(FAR).verification == "verified"
    s.scalar(select(Site).where(Site.name == "Warehouse")).deleted_at = datetime.now(UTC)
    assert visit(FAR).verification == "flagged"

    siteless = desk["new_client"]()
    nowhere = visit(NEAR, on=siteless)
    assert (nowhere.verification, nowhere.distance_m, nowhere.site_id) == ("flagged", None, None)
    assert "no site with coordinates" in work.flag_reason(nowhere, 300)

    with pytest.raises(work.WorkInvalid) as refused:
        visit(("91", "-181"))
    assert set(refused.value.errors) == {"latitude", "longitude"}
    with pytest.raises(work.WorkInvalid) as refused:
        visit(("19.0", ""))
    assert set(refused.value.errors) == {"longitude"}


def test_a_visit_without_a_position_is_logged_and_flagged(desk):
    """No signal, or a browser that would not share its position: the visit is still logged,
    flagged for a manager with the reason, and completes its task."""
    s, tenant, client, asha = desk["session"], desk["tenant"], desk["client"], desk["asha"].id
    task = _task(s, client, channel="visit", status="queued")
    visit = work.log_visit(
        s,
        tenant,
        asha,
        client.id,
        notice_id=task.id,
        outcome="met_promised",
        latitude="",
        longitude=" ",
        accuracy_m="15",
    )
    s.flush()
    assert (visit.verification, visit.latitude, visit.longitude) == ("flagged", None, None)
    assert (visit.accuracy_m, visit.distance_m, visit.site_id) == (None, None, None)
    assert work.flag_reason(visit, 300) == "No position was given."
    assert visit in [a for a, _ in work.flagged_visits(s)]
    assert task.status == "responded"


def test_a_visit_completes_its_visit_task(desk):
    s, tenant, client, asha = desk["session"], desk["tenant"], desk["client"], desk["asha"].id
    task = _task(s, client, channel="visit", status="queued")
    work.log_visit(
        s,
        tenant,
        asha,
        client.id,
        notice_id=task.id,
        outcome="met_disputed",
        note="Says the rate is wrong",
        latitude=NEAR[0],
        longitude=NEAR[1],
        accuracy_m="20",
    )
    assert (task.status, task.response_note) == ("responded", "Says the rate is wrong")


def _page_login(app, login, user):
    browser = app.test_client()
    login(browser, user)
    return browser


def test_a_manager_named_as_a_clients_collector_sees_their_own_queue_first(app, desk, login):
    s, tenant = desk["session"], desk["tenant"]
    mina = desk["mina"]
    theirs = desk["new_client"](collector=mina.id)
    desk["issued"](theirs, "3000.00", desk["today"] - timedelta(days=45))
    task = _task(s, theirs, amount="3000.00")
    s.commit()
    assert (mina.id, mina.full_name) in work.collectors(s, tenant.id)
    page = _page_login(app, login, mina).get(f"/t/{tenant.slug}/work/").text
    assert f'<option value="{mina.id}" selected>' in page
    assert f"/clients/{theirs.id}/calls/new?notice_id={task.id}" in page


def test_pages_collector_logs_manager_verifies_others_are_refused(app, desk, login):
    s, tenant, client = desk["session"], desk["tenant"], desk["client"]
    task = _task(s, client)
    s.commit()
    base = f"/t/{tenant.slug}/work"

    asha = _page_login(app, login, desk["asha"])
    queue = asha.get(f"{base}/")
    assert queue.status_code == 200 and "My work queue" in queue.text
    # A collector sees only their own queue, whatever the URL asks for.
    assert 'name="collector"' not in asha.get(f"{base}/?collector={desk['ravi'].id}").text
    assert f"/clients/{client.id}/calls/new?notice_id={task.id}" in queue.text
    form = asha.get(f"{base}/clients/{client.id}/calls/new?notice_id={task.id}")
    token = csrf_token_from(form.text)
    assert f'<option value="{task.id}" selected>' in form.text
    bad = asha.post(
        f"{base}/clients/{client.id}/calls/new",
        data={"csrf_token": token, "outcome": "", "notice_id": task.id},
    )
    assert bad.status_code == 422 and 'id="outcome-error"' in bad.text
    done = asha.post(
        f"{base}/clients/{client.id}/calls/new",
        data={
            "csrf_token": token,
            "outcome": "promised",
            "notice_id": task.id,
            "note": "By the 30th",
        },
    )
    assert done.status_code == 303
    page = asha.get(done.headers["Location"]).text
    assert "Promised to pay" in page and "Record the promise to pay" in page
    assert "now responded" in page
    far_away = {
        "csrf_token": token,
        "outcome": "premises_closed",
        "latitude": FAR[0],
        "longitude": FAR[1],
        "accuracy_m": "15",
    }
    visit = asha.post(f"{base}/clients/{client.id}/visits/new", data=far_away)
    assert visit.status_code == 303
    visit_url = visit.headers["Location"]
    assert "Flagged for verification" in asha.get(visit_url).text
    activity_id = int(visit_url.rsplit("/", 1)[1])
    # A collector neither lists nor verifies visits (not even someone else's).
    assert asha.get(f"{base}/visits/to-verify").status_code == 403
    verify = f"{base}/activities/{activity_id}/verify"
    assert (
        asha.post(
            verify, data={"csrf_token": token, "decision": "confirmed", "verification_note": "x"}
        ).status_code
        == 403
    )
    fragment = asha.get(f"{base}/clients/{client.id}/activities").text
    assert "Premises closed" in fragment and "Promised to pay" in fragment

    # The finance manager picks a collector's queue, verifies with a note, logs nothing.
    mina = _page_login(app, login, desk["mina"])
    picked = mina.get(f"{base}/?collector={desk['ravi'].id}")
    assert picked.status_code == 200 and f'value="{desk["ravi"].id}" selected' in picked.text
    assert "Log call" not in picked.text
    listed = mina.get(f"{base}/visits/to-verify")
    assert listed.status_code == 200 and "1,112 m from the nearest site" in listed.text
    mina_token = csrf_token_from(listed.text)
    unexplained = mina.post(verify, data={"csrf_token": mina_token, "decision": "rejected"})
    assert unexplained.status_code == 422 and 'id="verification_note-error"' in unexplained.text
    rejected = mina.post(
        verify,
        data={
            "csrf_token": mina_token,
            "decision": "rejected",
            "verification_note": "Shop is 1 km away",
            "back": "list",
        },
    )
    assert rejected.status_code == 303 and rejected.headers["Location"].endswith("/to-verify")
    # Finance collects too (a small business's owner or accountant often makes the calls).
    assert (
        mina.post(
            f"{base}/clients/{client.id}/calls/new",
            data={"csrf_token": mina_token, "outcome": "no_answer"},
        ).status_code
        == 303
    )
    check = tenant_session(s, tenant)
    stored = check.get(CollectionActivity, activity_id)
    assert (stored.verification, stored.verified_by) == ("rejected", desk["mina"].id)
    # The manager's note is kept apart from the collector's (which had none).
    assert (stored.verification_note, stored.note) == ("Shop is 1 km away", None)
    assert "Shop is 1 km away" in mina.get(visit_url).text
    assert check.get(CollectionNotice, task.id).status == "responded"

    # Everything lands on the client's timeline.
    entities = set(
        check.scalars(select(AuditEntry.entity).where(AuditEntry.subject == f"clients:{client.id}"))
    )
    assert {"collection_activities", "collection_notices"} <= entities

    viewer = _page_login(app, login, desk["vik"])
    assert viewer.get(f"{base}/").status_code == 403
    assert viewer.get(f"{base}/clients/{client.id}/calls/new").status_code == 403
    assert viewer.get(f"{base}/activities/{activity_id}").status_code == 200  # reading is fine


def test_another_tenants_records_are_not_found(
    app, desk, login, make_tenant, make_user, add_member
):
    s, client = desk["session"], desk["client"]
    activity = work.log_call(s, desk["tenant"], desk["asha"].id, client.id, outcome="no_answer")
    s.commit()
    other = make_tenant()
    outsider = make_user()
    add_member(other, outsider, role="collector")
    browser = _page_login(app, login, outsider)
    base = f"/t/{other.slug}/work"
    for url in (
        f"{base}/activities/{activity.id}",
        f"{base}/clients/{client.id}/calls/new",
        f"{base}/clients/{client.id}/visits/new",
        f"{base}/clients/{client.id}/activities",
    ):
        assert browser.get(url).status_code == 404, url
    assert work.queue(tenant_session(s, other), outsider.id, desk["today"])[0].count == 0


def test_the_dashboards_counts_are_the_queues_section_sizes(desk):
    """The dashboard counts each section in one query; the queue page reads the rows: the
    two must agree, section by section, for every collector and as the day's work changes."""
    s, client, today = desk["session"], desk["client"], desk["today"]
    asha, ravi = desk["asha"].id, desk["ravi"].id
    other = desk["new_client"]()
    _task(s, client)
    _task(s, other, channel="visit", assigned=asha)
    _task(s, client, channel="visit", assigned=ravi)
    s.add(
        PromiseToPay(
            client_id=client.id,
            amount=Decimal("2000.00"),
            currency="INR",
            promised_on=today - timedelta(days=3),
            status="broken",
        )
    )
    invoice = desk["issued"](other, "700.00", today - timedelta(days=10))
    s.add(Dispute(client_id=other.id, invoice_id=invoice.id, reason="Late", owner_user_id=asha))
    s.flush()

    def sizes(user_id):
        return {section.key: section.count for section in work.queue(s, user_id, today)}

    assert (
        work.queue_counts(s, asha, today)
        == sizes(asha)
        == {
            "tasks": 2,
            "follow_ups": 0,
            "broken_promises": 1,
            "disputes": 1,
            "no_contact": 1,
        }
    )
    assert work.queue_counts(s, ravi, today) == sizes(ravi)
    work.log_call(
        s, desk["tenant"], asha, client.id, outcome="call_back", follow_up_on=today.isoformat()
    )
    assert work.queue_counts(s, asha, today) == sizes(asha)
    assert work.queue_counts(s, asha, today)["follow_ups"] == 1


def test_a_broken_promise_stays_until_someone_is_in_touch_after_it_broke(desk):
    """A promise with no recorded break time broke at the start of its day in the tenant's own
    zone: a call the evening before does not clear it, a call just after that midnight does
    (a UTC midnight would get both wrong by 5½ hours in India). The dashboard's count agrees."""
    s, client, today, asha = desk["session"], desk["client"], desk["today"], desk["asha"].id
    zone = ZoneInfo(desk["tenant"].time_zone)
    promised_on = today - timedelta(days=3)
    s.add(
        PromiseToPay(
            client_id=client.id,
            amount=Decimal("2000.00"),
            currency="INR",
            promised_on=promised_on,
            status="broken",
        )
    )
    midnight = datetime.combine(promised_on, datetime.min.time(), zone)

    def call_at(moment):
        s.add(
            CollectionActivity(
                client_id=client.id,
                kind="call",
                outcome="no_answer",
                occurred_at=moment,
                user_id=asha,
            )
        )
        s.flush()
        return _section(work.queue(s, asha, today), "broken_promises").count, work.queue_counts(
            s, asha, today
        )["broken_promises"]

    assert call_at(midnight - timedelta(minutes=30)) == (1, 1)
    assert call_at(midnight + timedelta(minutes=30)) == (0, 0)


def test_what_each_client_owes_is_the_sum_of_its_open_invoices(desk, make_payment):
    """The queue's amounts, added up per client in one statement, are what each client's open
    invoices say one by one (part payments taken off, paid invoices left out)."""
    s, today = desk["session"], desk["today"]
    first, second = desk["client"], desk["new_client"]()
    old = desk["issued"](second, "800.00", today - timedelta(days=90))
    desk["issued"](second, "300.00", today + timedelta(days=5))
    paid = desk["issued"](second, "200.00", today - timedelta(days=40))
    make_payment(s, second, "450.00", today.isoformat(), allocate_to=[paid, old])
    s.flush()

    found = {o.client_id: o for o in owing_per_client(s, [first.id, second.id], today)}
    for client in (first, second):
        invoices = open_invoices(s, client.id)
        past = [i for i in invoices if i.invoice.due_date < today]
        owing = found[client.id]
        assert owing.owed == sum(i.outstanding for i in invoices)
        assert owing.overdue == sum(i.outstanding for i in past)
        assert owing.oldest_due == min(i.invoice.due_date for i in past)
    assert found[second.id].overdue == Decimal("550.00")  # 800 less the 250 left after 200
