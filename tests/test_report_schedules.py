"""Scheduled reports: each format opens, a period is sent once however often the sweep runs,
time zones and month ends, pausing, the recipients' checks, and the page."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import select

from app.core.storage import get_storage
from app.outbox.models import OutboxMessage
from app.reports import services
from app.reports.models import ReportRun, ReportSchedule
from app.reports.timing import covered_days, latest_occurrence
from tests.helpers import csrf_token_from, tenant_session

IST = "Asia/Kolkata"


@pytest.fixture
def handed(app):
    """The work handed to the workers, kept here instead of going to Redis."""
    kept = []
    real = app.extensions["duebook.enqueue"]
    app.extensions["duebook.enqueue"] = kept.extend
    yield kept
    app.extensions["duebook.enqueue"] = real


def _schedule(session, owner, **fields) -> ReportSchedule:
    values = {
        "report": "aging",
        "format": "xlsx",
        "frequency": "daily",
        "send_at": time(8, 0),
        "member_ids": [owner.id],
        "active_since": datetime(2026, 1, 1, tzinfo=UTC),
        "created_by": owner.id,
        **fields,
    }
    schedule = ReportSchedule(**values)
    session.add(schedule)
    session.flush()
    return schedule


# Timing -------------------------------------------------------------------------------------


def test_a_daily_time_is_the_workspace_clocks_not_the_servers():
    # 08:00 in India is 02:30 UTC: at 02:29 UTC the latest is yesterday's, at 02:30 today's.
    before = datetime(2027, 3, 10, 2, 29, tzinfo=UTC)
    at = datetime(2027, 3, 10, 2, 30, tzinfo=UTC)
    assert latest_occurrence("daily", None, None, time(8), IST, before) == datetime(
        2027, 3, 9, 2, 30, tzinfo=UTC
    )
    assert latest_occurrence("daily", None, None, time(8), IST, at) == at
    # New York changes to summer time on 14 March 2027: 08:00 is 13:00 UTC, then 12:00.
    ny = "America/New_York"
    assert (
        latest_occurrence(
            "daily", None, None, time(8), ny, datetime(2027, 3, 13, 14, tzinfo=UTC)
        ).hour
        == 13
    )
    assert (
        latest_occurrence(
            "daily", None, None, time(8), ny, datetime(2027, 3, 14, 13, tzinfo=UTC)
        ).hour
        == 12
    )


def test_the_31st_is_the_last_day_of_a_shorter_month_and_weekly_keeps_its_day():
    def monthly(now):
        return latest_occurrence("monthly", None, 31, time(9), "UTC", now)

    # April has 30 days: the "31st" schedule falls due on 30 April, not 1 May or never.
    assert monthly(datetime(2027, 4, 30, 9, tzinfo=UTC)) == datetime(2027, 4, 30, 9, tzinfo=UTC)
    assert monthly(datetime(2027, 4, 30, 8, 59, tzinfo=UTC)) == datetime(2027, 3, 31, 9, tzinfo=UTC)
    assert monthly(datetime(2027, 3, 5, tzinfo=UTC)) == datetime(2027, 2, 28, 9, tzinfo=UTC)
    assert monthly(datetime(2028, 3, 5, tzinfo=UTC)) == datetime(2028, 2, 29, 9, tzinfo=UTC)
    # Weekly on Wednesday (2): from Tuesday 16 March 2027 the latest is Wednesday the 10th.
    assert latest_occurrence(
        "weekly", 2, None, time(9), "UTC", datetime(2027, 3, 16, 12, tzinfo=UTC)
    ) == datetime(2027, 3, 10, 9, tzinfo=UTC)
    # What a report of what happened covers: the day, the week, or the month before.
    assert covered_days("daily", date(2027, 3, 10)) == (date(2027, 3, 9), date(2027, 3, 9))
    assert covered_days("weekly", date(2027, 3, 10)) == (date(2027, 3, 3), date(2027, 3, 9))
    assert covered_days("monthly", date(2027, 3, 31)) == (date(2027, 2, 28), date(2027, 3, 30))


# The sweep ----------------------------------------------------------------------------------


def test_a_period_is_sent_once_even_when_the_sweep_runs_twice(
    app, db_session, make_tenant, make_user, handed
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    session = tenant_session(db_session, tenant)
    schedule = _schedule(session, owner)
    now = datetime(2027, 3, 10, 3, 0, tzinfo=UTC)  # 08:30 in India: today's 08:00 is due
    with app.app_context():
        assert services.sweep(session, tenant, now) == 1
        assert services.sweep(session, tenant, now + timedelta(minutes=5)) == 0
        runs = session.scalars(select(ReportRun).where(ReportRun.schedule_id == schedule.id)).all()
        assert [r.period_start for r in runs] == [datetime(2027, 3, 10, 2, 30, tzinfo=UTC)]
        session.commit()
    assert [(w.name, w.args) for w in handed] == [("send_report", (runs[0].id,))]
    # A second scheduler (or a sweep racing this one) meets the unique constraint, not a copy.
    with app.app_context():
        assert services.sweep(tenant_session(db_session, tenant), tenant, now) == 0
    # Days later, only the latest period is sent: missed days are not sent in a burst.
    with app.app_context():
        assert services.sweep(session, tenant, now + timedelta(days=3)) == 1
    assert session.scalar(
        select(ReportRun.period_start).order_by(ReportRun.id.desc()).limit(1)
    ) == datetime(2027, 3, 13, 2, 30, tzinfo=UTC)


def test_a_paused_schedule_sends_nothing_and_resuming_skips_what_fell_due_meanwhile(
    app, db_session, make_tenant, make_user, handed
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    session = tenant_session(db_session, tenant)
    schedule = _schedule(session, owner)
    services.set_paused(session, schedule, True)
    with app.app_context():
        assert services.sweep(session, tenant, datetime(2027, 3, 10, 3, tzinfo=UTC)) == 0
    assert session.scalars(select(ReportRun)).all() == []
    services.set_paused(session, schedule, False)
    # Resumed now: today's 08:00 in India, before the resumption, is not sent.
    schedule.active_since = datetime(2027, 3, 10, 4, tzinfo=UTC)
    with app.app_context():
        assert services.sweep(session, tenant, datetime(2027, 3, 10, 5, tzinfo=UTC)) == 0
        assert services.sweep(session, tenant, datetime(2027, 3, 11, 3, tzinfo=UTC)) == 1


# The run: files and e-mails -----------------------------------------------------------------


def _report_run(session, schedule, period_start) -> int:
    run = ReportRun(schedule_id=schedule.id, period_start=period_start)
    session.add(run)
    session.flush()
    return run.id


def _file(app, session, run_id) -> bytes:
    run = session.get(ReportRun, run_id)
    with app.app_context(), get_storage(app).open(run.file_key) as stream:
        return stream.read()


def test_each_format_opens_with_the_data_and_one_email_per_recipient_is_queued(
    app,
    db_session,
    make_tenant,
    make_user,
    add_member,
    make_client,
    make_invoice,
    make_payment,
    storage_root,
    handed,
):
    owner, finance = make_user(), make_user(full_name="Farah Finance")
    tenant = make_tenant(owner=owner, name="Lotus Traders", region="27")
    add_member(tenant, finance, role="finance")
    session = tenant_session(db_session, tenant)
    client = make_client(session, name="Sahyadri", short_name="SAHY")
    invoice = make_invoice(session, tenant, client, ("1000.00",))
    make_payment(session, client, "400.00", received_on="2027-03-09", allocate_to=[invoice])
    outside = "accounts@auditors.example"
    common = {"member_ids": [owner.id, finance.id], "outside_addresses": [outside]}
    # Sent at 08:00 India time on 10 March: the cash received covers 9 March.
    sent_at = datetime(2027, 3, 10, 2, 30, tzinfo=UTC)
    csv_schedule = _schedule(session, owner, report="cash_received", format="csv", **common)
    xlsx_schedule = _schedule(session, owner, report="aging", format="xlsx", **common)
    pdf_schedule = _schedule(session, owner, report="dso", format="pdf", **common)
    runs = {
        s.format: _report_run(session, s, sent_at)
        for s in (csv_schedule, xlsx_schedule, pdf_schedule)
    }
    with app.app_context():
        for run_id in runs.values():
            assert services.run_report(session, tenant, run_id).status == "sent"

    rows = list(csv.reader(io.StringIO(_file(app, session, runs["csv"]).decode("utf-8-sig"))))
    assert rows[0] == ["Received on", "Client", "Currency", "Amount", "Method", "Reference"]
    assert rows[1][:4] == ["2027-03-09", client.short_name, "INR", "400.00"]
    assert rows[-1][:4] == ["Total", "", "INR", "400.00"]

    sheet = load_workbook(io.BytesIO(_file(app, session, runs["xlsx"]))).active
    assert sheet["A1"].value == "AR aging"
    header = [c.value for c in sheet[3]]
    assert header[:2] == ["Client", "Currency"] and header[-2:] == ["Total", "Overdue"]
    body = [[c.value for c in row] for row in sheet.iter_rows(min_row=4)]
    assert body[0][0] == client.short_name or body[0][0] == client.full_name
    assert Decimal(str(body[0][-2])) == Decimal("600.00")  # 1,000 less the 400 paid

    text = "".join(
        page.extract_text()
        for page in PdfReader(io.BytesIO(_file(app, session, runs["pdf"]))).pages
    )
    assert "Days sales outstanding (DSO)" in text and "Lotus Traders" in text

    messages = session.scalars(
        select(OutboxMessage).where(OutboxMessage.tenant_id == tenant.id).order_by(OutboxMessage.id)
    ).all()
    assert len(messages) == 9  # three reports × three recipients
    assert {m.recipient for m in messages} == {owner.email, finance.email, outside}
    csv_mails = [m for m in messages if m.payload["report_run_id"] == runs["csv"]]
    assert {a["filename"] for m in csv_mails for a in m.payload["attachments"]} == {
        "cash-received-2027-03-10.csv"
    }
    # The job again (a retry, a second hand-over): the run is finished, nothing more is queued.
    with app.app_context():
        services.run_report(session, tenant, runs["csv"])
    assert session.scalar(
        select(ReportSchedule.last_outcome).where(ReportSchedule.id == csv_schedule.id)
    ) == ("E-mail queued for 3 recipients.")
    assert (
        len(
            session.scalars(select(OutboxMessage).where(OutboxMessage.tenant_id == tenant.id)).all()
        )
        == 9
    )


def test_the_email_arrives_with_the_report_attached(
    app, db_session, make_tenant, make_user, storage_root, run_jobs, received_mail
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    session = tenant_session(db_session, tenant)
    schedule = _schedule(session, owner, report="promises", format="xlsx")
    session.commit()
    with app.app_context():
        services.sweep(session, tenant, datetime.now(UTC) + timedelta(days=1))
        session.commit()
    run_jobs()
    [mail] = [m for m in received_mail() if m["To"] == owner.email]
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename().startswith("promises-")
    assert load_workbook(io.BytesIO(attachment.get_content())).active["A1"].value == (
        "Promises to pay"
    )
    run = session.scalar(select(ReportRun).where(ReportRun.schedule_id == schedule.id))
    assert run.status == "sent"


def test_a_member_who_left_or_lost_access_gets_nothing(
    app, db_session, make_tenant, make_user, add_member, storage_root, handed
):
    owner, leaver = make_user(), make_user()
    tenant = make_tenant(owner=owner)
    membership = add_member(tenant, leaver, role="finance")
    membership.active = False
    db_session.commit()
    session = tenant_session(db_session, tenant)
    schedule = _schedule(session, owner, member_ids=[leaver.id])
    run_id = _report_run(session, schedule, datetime(2027, 3, 10, 2, 30, tzinfo=UTC))
    with app.app_context():
        run = services.run_report(session, tenant, run_id)
    assert (run.status, run.outcome) == ("failed", services.NOBODY_LEFT)
    assert (
        session.scalars(select(OutboxMessage).where(OutboxMessage.tenant_id == tenant.id)).all()
        == []
    )


# The recipients' checks ---------------------------------------------------------------------


def _values(**overrides) -> dict:
    return {
        "report": "aging",
        "format": "xlsx",
        "frequency": "monthly",
        "month_day": "31",
        "send_at": "08:00",
        "member_ids": [],
        "outside_addresses": "",
        **overrides,
    }


def test_recipients_are_checked(app, db_session, make_tenant, make_user):
    owner, stranger = make_user(), make_user()
    tenant = make_tenant(owner=owner)
    session = tenant_session(db_session, tenant)

    def errors(role="owner", **values):
        with pytest.raises(services.ScheduleError) as problem:
            services.check_schedule(session, tenant.id, _values(**values), role)
        return problem.value.errors

    assert errors() == {"member_ids": "Choose at least one recipient."}
    assert errors(member_ids=[str(stranger.id)]) == {
        "member_ids": "Choose members of this workspace only."
    }
    bad = errors(outside_addresses="ok@example.com\nnot-an-address")
    assert bad["outside_addresses"].startswith("Address 2 (“not-an-address”)")
    # Only an admin sends a workspace's figures outside it.
    assert errors(
        role="finance", member_ids=[str(owner.id)], outside_addresses="a@example.com"
    ) == {"outside_addresses": "Only an admin may send reports outside the workspace."}
    assert errors(frequency="monthly", month_day="32", member_ids=[str(owner.id)]) == {
        "month_day": "Enter a date from 1 to 31 (31: each month's last day)."
    }
    assert errors(send_at="25:00", member_ids=[str(owner.id)]) == {
        "send_at": "Enter a time as HH:MM, e.g. 08:00."
    }
    good = services.check_schedule(
        session,
        tenant.id,
        _values(member_ids=[str(owner.id)], outside_addresses="A@Example.com, a@example.com"),
        "owner",
    )
    assert good["outside_addresses"] == ["A@example.com"] and good["month_day"] == 31


# The page -----------------------------------------------------------------------------------


def test_a_schedule_made_from_the_aging_report_keeps_its_filters_and_can_be_sent_now(
    app, client, db_session, make_tenant, make_user, login, handed
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    report = client.get(f"/t/{tenant.slug}/aging/report?currency=INR")
    assert f"/t/{tenant.slug}/reports/?report=aging&amp;currency=INR" in report.text
    page = client.get(f"/t/{tenant.slug}/reports/?report=aging&currency=INR&page=3")
    assert 'name="filter.currency" value="INR"' in page.text
    token = csrf_token_from(page.text)
    form = {
        **_values(frequency="weekly", weekday="4"),
        "member_ids": [str(owner.id)],
        "filter.currency": "INR",
        "csrf_token": token,
    }
    bad = client.post(f"/t/{tenant.slug}/reports/", data={**form, "send_at": "8 am"})
    assert bad.status_code == 422 and "Enter a time as HH:MM" in bad.text
    assert client.post(f"/t/{tenant.slug}/reports/", data=form).status_code == 302
    session = tenant_session(db_session, tenant)
    schedule = session.scalar(select(ReportSchedule))
    assert (schedule.filters, schedule.weekday, schedule.frequency) == (
        {"currency": "INR"},
        4,
        "weekly",
    )
    listing = client.get(f"/t/{tenant.slug}/reports/")
    assert "Weekly on Friday at 08:00" in listing.text and "currency INR" in listing.text
    sent = client.post(f"/t/{tenant.slug}/reports/{schedule.id}/send", data={"csrf_token": token})
    assert sent.status_code == 302
    run = session.scalar(select(ReportRun).where(ReportRun.trigger == "manual"))
    assert [(w.name, w.args) for w in handed] == [("send_report", (run.id,))]
    client.post(
        f"/t/{tenant.slug}/reports/{schedule.id}/pause", data={"csrf_token": token, "paused": "1"}
    )
    assert session.get(ReportSchedule, schedule.id, populate_existing=True).paused is True
    client.post(f"/t/{tenant.slug}/reports/{schedule.id}/delete", data={"csrf_token": token})
    assert session.scalars(select(ReportSchedule)).all() == []


def test_a_member_sees_and_manages_only_their_own_schedules(
    app, client, db_session, make_tenant, make_user, add_member, login
):
    owner, viewer = make_user(), make_user()
    tenant = make_tenant(owner=owner)
    add_member(tenant, viewer, role="viewer")
    session = tenant_session(db_session, tenant)
    owners = _schedule(session, owner)
    session.commit()
    login(client, viewer)
    page = client.get(f"/t/{tenant.slug}/reports/")
    assert page.status_code == 200 and "No scheduled reports yet" in page.text
    token = csrf_token_from(page.text)
    response = client.post(
        f"/t/{tenant.slug}/reports/{owners.id}/delete", data={"csrf_token": token}
    )
    assert response.status_code == 404
    assert session.get(ReportSchedule, owners.id, populate_existing=True) is not None


def test_the_invoices_list_as_filtered_is_scheduled_and_its_file_holds_those_invoices(
    app,
    client,
    db_session,
    make_tenant,
    make_user,
    login,
    make_client,
    make_invoice,
    storage_root,
    handed,
):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    login(client, owner)
    session = tenant_session(db_session, tenant)
    kaveri = make_client(session, short_name="KAVERI")
    tunga = make_client(session, short_name="TUNGA")
    wanted = make_invoice(session, tenant, kaveri, ("1000.00",))
    make_invoice(session, tenant, tunga, ("2500.00",))
    session.commit()
    listing = client.get(f"/t/{tenant.slug}/invoices/?client_id={kaveri.id}&q=INV").text
    assert (
        f"/t/{tenant.slug}/reports/?report=invoices&amp;client_id={kaveri.id}&amp;q=INV" in listing
    )
    page = client.get(f"/t/{tenant.slug}/reports/?report=invoices&client_id={kaveri.id}&q=INV")
    form = {
        **_values(report="invoices", format="csv"),
        "member_ids": [str(owner.id)],
        "filter.client_id": str(kaveri.id),
        "filter.q": "INV",
        "filter.sort": "dropped: not a filter of the list",
        "csrf_token": csrf_token_from(page.text),
    }
    assert client.post(f"/t/{tenant.slug}/reports/", data=form).status_code == 302
    schedule = session.scalar(select(ReportSchedule))
    assert schedule.filters == {"client_id": str(kaveri.id), "q": "INV"}
    assert (
        f"client {kaveri.short_name}, matching “INV”"
        in client.get(f"/t/{tenant.slug}/reports/").text
    )
    run_id = _report_run(session, schedule, datetime(2027, 3, 10, 2, 30, tzinfo=UTC))
    with app.app_context():
        assert services.run_report(session, tenant, run_id).status == "sent"
    rows = list(csv.reader(io.StringIO(_file(app, session, run_id).decode("utf-8-sig"))))
    header = rows.index(
        ["Number", "Client", "Project", "Issued", "Due", "Status", "Currency", "Total", "Owing"]
    )
    body = rows[header + 1 :]
    assert [row[0] for row in body[:-1]] == [wanted.number]  # Tunga's invoice is not in it
    assert body[0][1] == kaveri.full_name and body[0][7:] == ["1000.00", "1000.00"]
    assert body[-1][0] == "1 invoice" and body[-1][6:] == ["INR", "1000.00", "1000.00"]
