"""Google Calendar and Outlook, each against its stand-in, through the pages a member uses:
consent (code + PKCE) and the calendar chosen; then the push job writes each entry once, a
retry after a lost answer or a crash writes no second event, a changed entry is updated, a
settled one deleted, an expired access token is refreshed (Microsoft's rotated refresh token
kept), a revoked consent leaves the connection "needs reconnecting", and an outage is tried
again by the next push. A committed change to a date hands a push over; other changes do
not."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from app.calendars import services
from app.calendars.hooks import queued_key
from app.calendars.models import CalendarConnection, CalendarPushedEvent
from app.collections.models import PromiseToPay
from app.core.crypto import decrypt_secrets
from app.sandbox.standins import GoogleCalendarStandin, MicrosoftGraphStandin
from tests.helpers import csrf_token_from, tenant_session
from tests.sync_helpers import allow_access

TODAY = date.today()
PROVIDERS = {
    "google_calendar": (
        GoogleCalendarStandin,
        ("GOOGLE_ACCOUNTS_BASE", "GOOGLE_OAUTH_BASE", "GOOGLE_CALENDAR_API_BASE"),
        "google",
        "team-dates@group.calendar.google.com",
    ),
    "outlook_calendar": (
        MicrosoftGraphStandin,
        ("MICROSOFT_LOGIN_BASE", "MICROSOFT_GRAPH_BASE"),
        "graph",
        "AAMkCollections",
    ),
}


@pytest.fixture(params=sorted(PROVIDERS))
def provider(request, app, monkeypatch):
    """(provider, its running stand-in, the calendar the member chooses)."""
    name = request.param
    cls, settings, admin, calendar_id = PROVIDERS[name]
    with cls() as standin:
        for setting in settings:
            monkeypatch.setitem(app.config, setting, standin.url)
        monkeypatch.setitem(app.config, "BASE_URL", "http://localhost")
        standin.admin_prefix = f"/_standin/{admin}"
        yield name, standin, calendar_id


@pytest.fixture
def desk(db_session, make_tenant, make_user, make_client, make_invoice):
    owner = make_user(full_name="Owner O")
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)
    client = make_client(session, name="Kaveri Traders", collector_user_id=owner.id)
    invoice = make_invoice(session, tenant, client, ("1000.00",), issued_on=TODAY)
    promise = PromiseToPay(
        client_id=client.id,
        amount=Decimal("400.00"),
        currency="INR",
        promised_on=TODAY + timedelta(days=5),
    )
    session.add(promise)
    session.commit()

    class Desk:
        pass

    d = Desk()
    d.tenant, d.owner, d.session, d.client, d.invoice, d.promise = (
        tenant,
        owner,
        session,
        client,
        invoice,
        promise,
    )
    return d


def post(client, tenant, url, data=None):
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/calendar").text)
    return client.post(url, data={"csrf_token": token, **(data or {})})


def connect(client, login, desk, provider) -> CalendarConnection:
    """The member connects `provider` from their calendar page and chooses the calendar."""
    name, _, calendar_id = provider
    login(client, desk.owner)
    answer = post(client, desk.tenant, f"/t/{desk.tenant.slug}/calendar/{name}/connect")
    assert answer.status_code == 303
    back = allow_access(answer.headers["Location"])
    assert back.startswith(f"http://localhost/calendar/oauth/{name}/callback?")
    finished = client.get(client.get(back.removeprefix("http://localhost")).headers["Location"])
    assert finished.status_code == 303
    page = client.get(f"/t/{desk.tenant.slug}/calendar")
    assert f'value="{calendar_id}"' in page.text  # a calendar it may write, offered
    assert "Holidays" not in page.text and "Birthdays" not in page.text  # read-only: not offered
    chosen = post(
        client,
        desk.tenant,
        f"/t/{desk.tenant.slug}/calendar/{name}/calendar",
        {"calendar_id": calendar_id},
    )
    assert chosen.status_code == 303
    return current(desk)


def push(app, desk, connection_id):
    """One push of the connection, as the job does it (in an app context of its own, which
    requests never share)."""
    with app.app_context():
        return services.push(desk.session, desk.tenant, connection_id)


def secrets_of(app, connection) -> dict:
    with app.app_context():
        return decrypt_secrets(connection.secrets_ciphertext)


def current(desk) -> CalendarConnection:
    desk.session.expire_all()
    return desk.session.scalar(
        select(CalendarConnection).where(CalendarConnection.status != "disconnected")
    )


def pushed_rows(desk) -> dict[str, CalendarPushedEvent]:
    desk.session.expire_all()
    return {row.uid: row for row in desk.session.scalars(select(CalendarPushedEvent))}


def events_at(provider) -> list[dict]:
    _, standin, calendar_id = provider
    return standin.live_events(calendar_id)


def title_of(event: dict) -> str:
    return event.get("summary") or event.get("subject")


def test_a_connected_calendar_gets_each_entry_once_and_follows_its_changes(
    app, client, login, desk, provider, run_jobs
):
    name, standin, _ = provider
    connection = connect(client, login, desk, provider)
    tokens = secrets_of(app, connection)
    assert tokens["access_token"] not in connection.secrets_ciphertext  # encrypted at rest

    run_jobs()  # the push the choice handed over
    events = events_at(provider)
    assert sorted(title_of(e) for e in events) == sorted(
        [
            f"Invoice {desk.invoice.number} due: Kaveri Traders 1",
            "Promise to pay: Kaveri Traders 1, ₹400.00",
        ]
    )
    assert set(pushed_rows(desk)) == {
        f"invoice-{desk.invoice.id}@{desk.tenant.slug}.duebook",
        f"promise-{desk.promise.id}@{desk.tenant.slug}.duebook",
    }
    writes = len(standin.recorded())
    page = client.get(f"/t/{desk.tenant.slug}/calendar").text
    assert "Update now" in page and ("Team dates" in page or "Collections" in page)

    # Nothing changed: a push writes nothing.
    assert push(app, desk, connection.id).created == 0
    assert len(standin.recorded()) == writes

    # The answers were lost (or the worker died before recording them): the next push finds
    # the events by their UID and updates them; no second event.
    desk.session.query(CalendarPushedEvent).delete()
    result = push(app, desk, connection.id)
    assert (result.error, result.created) == (None, 2)
    assert len(events_at(provider)) == 2

    # The promise grows: the same event, updated.
    desk.promise.amount = Decimal("450.00")
    desk.session.commit()
    result = push(app, desk, connection.id)
    assert (result.updated, result.created) == (1, 0)
    titles = sorted(title_of(e) for e in events_at(provider))
    assert "Promise to pay: Kaveri Traders 1, ₹450.00" in titles and len(titles) == 2

    # The promise is kept: its event leaves the calendar.
    desk.promise.status = "kept"
    desk.promise.resolved_at = datetime.now(UTC)
    desk.session.commit()
    assert push(app, desk, connection.id).deleted == 1
    assert [title_of(e) for e in events_at(provider)] == [
        f"Invoice {desk.invoice.number} due: Kaveri Traders 1"
    ]


def test_an_expired_access_token_is_refreshed_and_a_revoked_consent_asks_to_reconnect(
    app, client, login, desk, provider
):
    name, standin, _ = provider
    connection = connect(client, login, desk, provider)
    before = secrets_of(app, connection)
    httpx.post(f"{standin.url}{standin.admin_prefix}/expire")

    result = push(app, desk, connection.id)
    assert (result.error, result.created) == (None, 2)
    after = secrets_of(app, current(desk))
    assert after["access_token"] != before["access_token"]
    if name == "outlook_calendar":  # Microsoft rotates refresh tokens: the new one is kept
        assert after["refresh_token"] != before["refresh_token"]
    else:  # Google keeps the refresh token it gave
        assert after["refresh_token"] == before["refresh_token"]

    httpx.post(f"{standin.url}{standin.admin_prefix}/revoke")
    desk.promise.amount = Decimal("420.00")
    desk.session.commit()
    result = push(app, desk, connection.id)
    assert "connect the calendar again" in result.error
    assert current(desk).status == "needs_reconnect"
    page = client.get(f"/t/{desk.tenant.slug}/calendar")
    assert "Needs reconnecting" in page.text and "Reconnect" in page.text
    # Nothing is pushed while it waits for the member.
    assert push(app, desk, connection.id) is None


def test_an_outage_is_tried_again_by_the_next_push(app, client, login, desk, provider):
    _, standin, _ = provider
    connection = connect(client, login, desk, provider)
    standin.inject_fault(503, count=1)
    result = push(app, desk, connection.id)
    assert "trying again later" in result.error
    assert current(desk).status == "connected" and current(desk).last_error == result.error
    result = push(app, desk, connection.id)
    assert result.error is None and len(events_at(provider)) == 2
    assert current(desk).last_error is None


def test_a_change_to_a_date_hands_a_push_over_after_its_commit(
    app, client, login, desk, provider, monkeypatch, redis
):
    connect(client, login, desk, provider)
    handed = []
    monkeypatch.setitem(app.extensions, "duebook.enqueue", handed.extend)
    desk.promise.promised_on = TODAY + timedelta(days=9)
    desk.session.flush()
    assert handed == []  # nothing before the commit
    with app.app_context():
        desk.session.commit()
    assert [(w.name, w.tenant_id) for w in handed] == [("push_calendars", desk.tenant.id)]

    # A change to nothing a calendar shows hands nothing over (the queued push forgotten, as
    # when it has started).
    handed.clear()
    redis.delete(queued_key(desk.tenant.id))
    desk.session.add(
        CalendarPushedEvent(connection_id=current(desk).id, uid="x", remote_id="y", fingerprint="z")
    )
    with app.app_context():
        desk.session.commit()
    assert handed == []


def test_disconnecting_forgets_the_tokens(app, client, login, desk, provider):
    name, _, _ = provider
    connection = connect(client, login, desk, provider)
    answer = post(client, desk.tenant, f"/t/{desk.tenant.slug}/calendar/{name}/disconnect")
    assert answer.status_code == 303
    desk.session.expire_all()
    gone = desk.session.get(CalendarConnection, connection.id)
    assert (gone.status, gone.secrets_ciphertext) == ("disconnected", None)
    assert (
        f"Connect {services.provider_title(name)}"
        in client.get(f"/t/{desk.tenant.slug}/calendar").text
    )
