"""A client who still owes cannot be deleted (issue 16, finding 6): the refusal says what holds
it (open invoices and their amount, open notices) and links to where each is settled, and
nothing changes. Archiving keeps the books whole: the aging still counts the client and its
rows add up to the total, its open notices are closed, and a notice of an archived (or an
already deleted) client can no longer be approved or sent. A client deleted before this rule,
still owing, is shown as deleted on the aging report instead of linking to a missing page."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func

from app.aging import services as aging
from app.clients import services as clients
from app.clients.models import Client
from app.collections.cases.interest_claims import interest_claims
from app.collections.notices import services as notices
from app.core.clock import tenant_today
from app.core.money import format_money
from tests.helpers import csrf_token_from
from tests.test_notices import make_books, outbox_rows


@pytest.fixture
def books(app, db_session, make_tenant, make_user, storage_root, request):
    return make_books(app, db_session, make_tenant, make_user, request)


def owed(*invoices) -> str:
    return format_money(sum((Decimal(i.total) for i in invoices), Decimal("0")), "INR", "IN")


def signed_in(http, books, login):
    login(http, books.owner)
    url = f"/t/{books.tenant.slug}/clients/{books.client.id}"
    return url, csrf_token_from(http.get(url).text)


def test_deleting_a_client_who_owes_is_refused_saying_why_and_nothing_changes(books, client, login):
    first, second = books.invoice("100000.00"), books.invoice("212700.00")
    notice = books.notice([first, second])
    books.session.commit()
    url, token = signed_in(client, books, login)

    response = client.post(url + "/delete", data={"csrf_token": token})

    assert response.status_code == 409
    page = response.text
    assert f"has 2 open invoices owing {owed(first, second)}" in page
    assert "has 1 open notice" in page
    assert f'href="{url}?tab=invoices">Settle or write off them (with the reason)</a>' in page
    assert f'href="{url}?tab=notices">Close it (with the reason)</a>' in page
    kept = books.db_session.get(Client, books.client.id, populate_existing=True)
    assert kept.deleted_at is None and kept.archived_at is None
    assert books.reload(notice).status == "draft"
    assert client.get(url).status_code == 200


def test_the_service_refuses_too_and_a_settled_client_can_be_deleted(books):
    s = books.session
    invoice = books.invoice()
    with pytest.raises(clients.ClientStillHeld, match="1 open invoice owing"):
        clients.delete_client(s, books.client)
    assert books.client.deleted_at is None
    books.pay(invoice.total, [invoice])
    clients.delete_client(s, books.client)  # nothing owed, no notice open
    assert books.client.deleted_at is not None


def test_archiving_closes_the_open_notices_and_keeps_the_client_in_the_aging(books, client, login):
    invoice = books.invoice("312700.00")
    draft, sent = books.notice([invoice]), books.notice([invoice], position=2, status="sent")
    other_client = books.new_client("Other Works")
    books.invoice("5000.00", client=other_client)
    books.session.commit()
    url, token = signed_in(client, books, login)

    response = client.post(url + "/archive", data={"csrf_token": token})

    assert response.status_code == 303
    for notice in (draft, sent):
        closed = books.reload(notice)
        assert closed.status == "closed" and closed.close_reason == "client_archived"
        assert closed.notes.endswith(": client archived")
    assert "archived" in client.get(url).text
    base = f"/t/{books.tenant.slug}/clients/"
    assert "Kaveri Builders" not in client.get(base).text
    assert "Kaveri Builders" in client.get(base + "?archived=1").text
    # The books stay whole: the archived client's money is on the report, and its rows add
    # up to the report's total and to the dashboard's.
    s = books.session
    today = tenant_today(s)
    buckets = aging.ensure_current(s, today)
    report = aging.client_rows(s, buckets, aging.AgingFilters(), page_size=None)
    assert {row.client_id for row in report.rows} == {books.client.id, other_client.id}
    [inr] = report.totals
    assert sum((row.total for row in report.rows), Decimal("0")) == inr.outstanding
    [dashboard] = aging.bucket_totals(s, buckets, today)
    assert dashboard.outstanding == inr.outstanding
    [archived_row] = [row for row in report.rows if row.client_id == books.client.id]
    assert archived_row.total == Decimal(invoice.total)
    # Restored, it is back in the list.
    token = csrf_token_from(client.get(url).text)
    assert client.post(url + "/restore", data={"csrf_token": token}).status_code == 303
    assert "Kaveri Builders" in client.get(base).text


def test_interest_claimed_outlives_archiving_and_keeps_the_client_from_being_deleted(books):
    s = books.session
    invoice = books.invoice()
    notice = books.notice([invoice], status="sent")
    notice.queued_at = datetime.now(UTC)
    notice.items[0].interest_amount = Decimal("1243.46")
    s.flush()
    clients.archive_client(s, books.client, books.owner.id)
    assert books.reload(notice).status == "closed"
    [claim] = interest_claims(s, client_id=books.client.id).values()
    assert claim.unpaid == Decimal("1243.46")
    books.pay(invoice.total, [invoice])  # the principal is paid, the interest is not
    with pytest.raises(clients.ClientStillHeld, match="₹1,243.46 of interest claimed and unpaid"):
        clients.delete_client(s, books.client)


def test_a_notice_of_an_archived_client_cannot_be_approved_or_sent(app, books, db_session):
    s = books.session
    invoice = books.invoice()
    draft = books.notice([invoice])
    approved = books.notice([invoice], position=2, status="approved")
    # As if archived before notices were closed on archiving: the rule is the notice's own.
    books.client.archived_at = func.now()
    s.flush()
    with pytest.raises(notices.NoticeError, match="client is archived"):
        notices.approve(s, draft, books.owner.id)
    assert draft.status == "draft"
    with pytest.raises(notices.NoticeError, match="client is archived"):
        notices.check_may_send(s, approved, may_approve_legal=True)
    with app.app_context():
        outcome = notices.send_notices(s, books.tenant, [approved.id])
    assert outcome[approved.id] == "cancelled (client archived)"
    assert approved.status == "cancelled" and outbox_rows(db_session, books.tenant) == []


def test_a_draft_notice_of_a_client_deleted_before_the_rule_is_not_approved_or_sent(
    app, books, db_session
):
    s = books.session
    invoice = books.invoice()
    draft = books.notice([invoice])
    approved = books.notice([invoice], position=2, status="approved")
    books.client.deleted_at = func.now()  # existing data: deleted while it owed
    s.flush()
    with pytest.raises(notices.NoticeError, match="client was deleted"):
        notices.approve(s, draft, books.owner.id)
    with app.app_context():
        notices.send_notices(s, books.tenant, [approved.id])
    assert approved.status == "cancelled" and outbox_rows(db_session, books.tenant) == []


def test_the_aging_report_shows_a_deleted_client_without_a_link_to_a_missing_page(
    books, client, login
):
    invoice = books.invoice("312700.00")
    books.client.deleted_at = func.now()  # existing data: deleted while it owed
    books.session.commit()
    login(client, books.owner)
    base = f"/t/{books.tenant.slug}"

    page = client.get(f"{base}/aging/report").text

    assert "Kaveri Builders" in page
    assert f'href="{base}/clients/{books.client.id}"' not in page
    assert "deleted</span>" in page
    drill_down = client.get(f"{base}/aging/clients/{books.client.id}/invoices")
    assert drill_down.status_code == 200 and invoice.number in drill_down.text
    assert f'href="{base}/clients/{books.client.id}"' not in drill_down.text
    assert client.get(f"{base}/clients/{books.client.id}").status_code == 404
