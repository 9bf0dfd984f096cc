"""Collection notices after the daily run made them: approval and its refusals, sending through
the outbox exactly once (e-mail with the statement attached reaches the SMTP server), the
channel's statuses moving the notice forward only, a payment that settles every invoice
closing it (a part payment does not), one thank-you per payment, letters as PDFs."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from app.clients.models import Client, Contact
from app.collections.models import (
    OPEN_NOTICE_STATUSES,
    CollectionLevel,
    CollectionNotice,
    CollectionSettings,
)
from app.collections.notices import letters
from app.collections.notices import services as notices
from app.core.storage import get_storage
from app.integrations.connectors import StatusUpdate
from app.invoicing.models import Invoice
from app.messaging.webhooks import apply_status_updates
from app.outbox.composing import compose_now
from app.outbox.models import OutboxMessage
from tests.factories import default_level
from tests.helpers import tenant_session

MH_GSTIN = "27AAPFU0939F1ZV"


class Books:
    """A tenant with a client, its billing contact (e-mail), and issued invoices past due."""

    def __init__(self, app, db_session, tenant, owner, request):
        self.app, self.db_session, self.tenant, self.owner = app, db_session, tenant, owner
        self.make = request.getfixturevalue  # the factories of tests/factories.py
        self.session = tenant_session(db_session, tenant)
        self.client = self.new_client()
        self.contact = self.make("make_contact")(self.session, self.client)

    def new_client(self, name: str = "Kaveri Builders") -> Client:
        return self.make("make_client")(self.session, name=name, short_name="K", region="27")

    def invoice(self, amount="1000.00", client=None, business_unit=None, issued=date(2026, 7, 1)):
        with self.app.app_context():
            return self.make("make_invoice")(
                self.session,
                self.tenant,
                client or self.client,
                (amount,),
                issued_on=issued,
                due_on=date(2026, 6, 30),
                started_on=date(2026, 6, 1),
                business_unit=business_unit,
            )

    def level(self, position: int = 1) -> CollectionLevel:
        return default_level(self.session, position)

    def notice(self, invoices, *, position=1, channel="email", status="draft", client=None):
        """A notice as the daily run makes it."""
        client = client or self.client
        return self.make("make_notice")(
            self.session,
            client,
            invoices,
            contact=self.contact if client is self.client else None,
            position=position,
            channel=channel,
            status=status,
        )

    def reload(self, notice) -> CollectionNotice:
        return self.db_session.get(CollectionNotice, notice.id, populate_existing=True)

    def pay(self, amount, invoices, day="2026-09-10"):
        """Record a payment and allocate it to these invoices in full order."""
        client = self.session.get(Client, invoices[0].client_id)
        return self.make("make_payment")(
            self.session, client, amount, day, allocate_to=invoices, reference="UTR9"
        )


def make_books(app, db_session, make_tenant, make_user, request) -> Books:
    owner = make_user()
    tenant = make_tenant(
        owner=owner,
        region="27",
        name="Udyam Works",
        legal_name="Udyam Works Private Limited",
        gstin=MH_GSTIN,
        upi_vpa="udyam@upi",
        send_window_start=time(0),
        send_window_end=time(23, 59, 59),
        send_on_business_days_only=False,
    )
    return Books(app, db_session, tenant, owner, request)


@pytest.fixture
def books(app, db_session, make_tenant, make_user, storage_root, request):
    return make_books(app, db_session, make_tenant, make_user, request)


def outbox_rows(db_session, tenant) -> list[OutboxMessage]:
    return list(
        db_session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.tenant_id == tenant.id)
            .order_by(OutboxMessage.id)
        )
    )


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


# Lifecycle ------------------------------------------------------------------------------------


def test_approve_records_who_and_when_and_refuses_twice(books):
    s = books.session
    notice = books.notice([books.invoice()])
    notices.approve(s, notice, books.owner.id)
    assert notice.status == "approved" and notice.approved_by == books.owner.id
    assert notice.approved_at is not None
    with pytest.raises(notices.NoticeError, match="Only a draft"):
        notices.approve(s, notice, books.owner.id)


def test_a_closed_notice_refuses_every_action(books):
    s = books.session
    notice = books.notice([books.invoice()])
    notices.close(s, notice, "cancelled", "Client went into insolvency", "Asha", date(2026, 9, 2))
    assert notice.status == "cancelled" and notice.close_reason == "cancelled"
    assert "insolvency" in notice.notes
    day = date(2026, 9, 3)
    for action in (
        lambda: notices.approve(s, notice, None),
        lambda: notices.escalate(s, notice, day),
        lambda: notices.record_response(s, notice, responded_on=day, note="", today=day),
        lambda: notices.close(s, notice, "paid", "", None, day),
    ):
        with pytest.raises(notices.NoticeError, match="cancelled"):
            action()


def test_cancel_needs_a_reason_and_response_a_past_date(books):
    s = books.session
    notice = books.notice([books.invoice()], status="sent")
    with pytest.raises(notices.NoticeError) as refused:
        notices.close(s, notice, "cancelled", " ", None, date(2026, 9, 2))
    assert "note" in refused.value.errors
    with pytest.raises(notices.NoticeError) as refused:
        notices.record_response(
            s, notice, responded_on=date(2026, 9, 9), note="", today=date(2026, 9, 2)
        )
    assert "response_date" in refused.value.errors
    notices.record_response(
        s, notice, responded_on=date(2026, 9, 2), note="Will pay Friday", today=date(2026, 9, 2)
    )
    assert notice.status == "responded" and notice.response_note == "Will pay Friday"
    notices.escalate(s, notice, date(2026, 9, 3))
    assert notice.status == "escalated" and notice.escalated_on == date(2026, 9, 3)


def test_a_draft_cannot_be_escalated_or_marked_posted(books):
    s = books.session
    notice = books.notice([books.invoice()], channel="letter")
    with pytest.raises(notices.NoticeError, match="before escalating"):
        notices.escalate(s, notice, date(2026, 9, 3))
    with pytest.raises(notices.NoticeError, match="printed"):
        notices.mark_sent(s, notice)


# Sending --------------------------------------------------------------------------------------


def test_sending_twice_writes_one_message_and_the_mail_carries_the_statement(
    app, books, db_session, run_jobs, received_mail
):
    first, second = books.invoice("1000.00"), books.invoice("2500.00")
    notice = books.notice([first, second], status="approved")
    books.session.commit()
    with app.app_context():
        notices.send_notices(books.session, books.tenant, [notice.id])
        books.session.commit()
        # A retried job (or a second one) finds nothing left to send.
        notice.status = "approved"  # as if the first run's commit was lost after the insert
        notices.send_notices(books.session, books.tenant, [notice.id])
        books.session.commit()
    rows = outbox_rows(db_session, books.tenant)
    assert len(rows) == 1
    assert books.reload(notice).message_id == rows[0].id
    assert books.reload(notice).status == "queued"
    assert rows[0].payload["notice_id"] == notice.id
    run_jobs()
    (mail,) = received_mail()
    assert mail["To"] == "ravi@kaveri.example"
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert first.number in body and second.number in body
    assert "Total now due: ₹3,500.00" in body
    (attachment,) = list(mail.iter_attachments())
    assert attachment.get_filename() == f"notice-{notice.id}-1st-notice.pdf"
    text = pdf_text(attachment.get_content())
    assert first.number in text and second.number in text and "3,500.00" in text
    # Delivery marked the message sent; the notice follows when it is looked at.
    with app.app_context():
        notices.follow_open_notices(books.session, books.tenant.id)
        books.session.commit()
    assert books.reload(notice).status == "sent"


def test_status_follows_the_channel_forward_only(app, books, db_session):
    notice = books.notice([books.invoice()], status="approved")
    with app.app_context():
        notices.send_notices(books.session, books.tenant, [notice.id])
    books.session.commit()
    (row,) = outbox_rows(db_session, books.tenant)
    row.status, row.provider, row.provider_message_id = "sent", "smtp", "m-1"
    db_session.commit()
    at = datetime(2026, 9, 2, 10, tzinfo=UTC)
    session = tenant_session(db_session, books.tenant)
    apply_status_updates(session, books.tenant.id, [StatusUpdate("smtp", "m-1", "read", at)])
    session.commit()
    notice = books.reload(notice)
    assert notice.status == "read" and notice.delivered_at and notice.read_at
    # A late "delivered" never moves it back.
    apply_status_updates(session, books.tenant.id, [StatusUpdate("smtp", "m-1", "delivered", at)])
    session.commit()
    assert books.reload(notice).status == "read"


def test_a_letter_waits_to_be_posted_and_a_call_stays_with_the_collector(app, books):
    s = books.session
    letter = books.notice([books.invoice()], channel="letter", status="approved")
    call = books.notice([books.invoice()], channel="call", status="approved")
    with app.app_context():
        outcome = notices.send_notices(s, books.tenant, [letter.id, call.id])
    assert letter.status == "queued" and letter.letter_key
    assert call.status == "approved" and outcome[call.id] == "task for a collector"
    notices.mark_sent(s, letter)
    assert letter.status == "sent" and letter.sent_at is not None


# Closing on payment ---------------------------------------------------------------------------


def test_a_payment_settling_every_invoice_closes_the_notice_a_part_payment_does_not(books):
    first, second = books.invoice("1000.00"), books.invoice("500.00")
    notice = books.notice([first, second], status="sent")
    books.pay("1000.00", [first])
    assert notice.status == "sent"  # the second invoice still owes
    books.pay("500.00", [second])
    assert notice.status == "closed" and notice.close_reason == "paid"
    assert notice.closed_at is not None


def test_thank_you_once_per_client_per_payment(app, books, db_session):
    settings = books.session.get(CollectionSettings, 1)
    settings.thank_you = True
    first, second = books.invoice("1000.00"), books.invoice("500.00")
    one = books.notice([first], status="sent")
    two = books.notice([second], status="sent", position=2)
    with app.app_context():
        books.pay("1500.00", [first, second])
        books.session.commit()
    assert one.status == two.status == "closed"
    thanks = [
        m
        for m in outbox_rows(db_session, books.tenant)
        if (m.payload or {}).get("purpose") == "receipt"
    ]
    assert len(thanks) == 1 and thanks[0].recipient == "ravi@kaveri.example"


def test_no_thank_you_unless_switched_on(app, books, db_session):
    invoice = books.invoice()
    notice = books.notice([invoice], status="sent")
    with app.app_context():
        books.pay("1000.00", [invoice])
        books.session.commit()
    assert notice.status == "closed"
    assert outbox_rows(db_session, books.tenant) == []


# Letters --------------------------------------------------------------------------------------


def test_statement_and_demand_letter_name_the_invoices_and_totals(app, books):
    first, second = books.invoice("1000.00"), books.invoice("2000.00")
    statement = books.notice([first], position=1)
    demand = books.notice([first, second], position=4)
    with app.test_request_context():
        text = pdf_text(letters.render_letter(books.session, books.tenant, statement))
        assert "Statement of account" in text and first.number in text and "1,000.00" in text
        text = pdf_text(letters.render_letter(books.session, books.tenant, demand))
    assert "Notice of demand" in text and second.number in text and "3,000.00" in text
    assert "within 15 days" in text


def test_msefc_pack_for_a_small_enterprise_shows_the_interest_schedule(app, books):
    settings = books.session.get(CollectionSettings, 1)
    settings.msme_category, settings.udyam_number = "small", "UDYAM-MH-19-0012345"
    invoice = books.invoice("100000.00")
    invoice.accepted_on = date(2026, 7, 1)
    books.client.late_interest_mode = "msmed"
    notice = books.notice([invoice], position=4)
    with app.test_request_context():
        assert letters.msefc_applies(books.session, books.tenant, notice)
        text = pdf_text(letters.render_msefc_pack(books.session, books.tenant, notice))
    assert "UDYAM-MH-19-0012345" in text and invoice.number in text
    assert "Interest schedule" in text and "Rest from" in text
    first_notice = books.notice([books.invoice()], position=1)
    assert not letters.msefc_applies(books.session, books.tenant, first_notice)


# A message that did not arrive ----------------------------------------------------------------


def _sent_notice(app, books, db_session, invoices=None, channel="email"):
    notice = books.notice(invoices or [books.invoice()], status="approved", channel=channel)
    with app.app_context():
        assert notices.send_notices(books.session, books.tenant, [notice.id]) == {
            notice.id: "queued"
        }
    books.session.commit()
    (row,) = [m for m in outbox_rows(db_session, books.tenant) if m.id == notice.message_id]
    return notice, row


def test_a_failed_message_fails_the_notice_which_is_resent_as_a_new_message(app, books, db_session):
    from app.audit.models import AuditEntry

    notice, failed = _sent_notice(app, books, db_session)
    stranger = Contact(
        client_id=books.new_client().id, full_name="Someone else", email="else@example.com"
    )
    books.session.add(stranger)
    books.session.commit()
    failed.status, failed.last_error = "dead", "550 5.1.1 mailbox unavailable"
    db_session.commit()
    s = tenant_session(db_session, books.tenant)
    notice = s.get(CollectionNotice, notice.id)
    assert notices.follow_open_notices(s, books.tenant.id) == 1
    assert notice.status == "failed" and notices.next_step(notice) == "resend"
    # It still chases the money, and finance finds it by status or by what to do next.
    assert "failed" in OPEN_NOTICE_STATUSES
    today = date(2026, 9, 5)
    for filters in ({"status": "failed"}, {"next": "resend"}):
        page = notices.list_notices(s, notices.clean_filters(filters), today)
        assert [row.notice.id for row in page.rows] == [notice.id]
        assert page.rows[0].next_step == "resend"

    # Resent to another contact of the client: a new message under a key of its own.
    other = Contact(
        client_id=books.client.id, full_name="Accounts desk", email="accounts@kaveri.example"
    )
    s.add(other)
    s.flush()
    with pytest.raises(notices.NoticeError) as refused:
        notices.resend(s, books.tenant, notice, books.owner.id, stranger.id)
    assert "contact_id" in refused.value.errors
    with app.app_context():
        new_id = notices.resend(s, books.tenant, notice, books.owner.id, other.id)
    s.commit()
    rows = outbox_rows(db_session, books.tenant)
    assert [r.id for r in rows] == [failed.id, new_id]
    resent = rows[1]
    assert resent.idempotency_key != failed.idempotency_key
    assert resent.recipient == "accounts@kaveri.example" and resent.status == "pending"
    assert resent.payload["replaces_message_id"] == failed.id
    notice = books.reload(notice)
    assert (notice.status, notice.message_id, notice.contact_id) == ("queued", new_id, other.id)
    assert notice.sent_at is None
    # The failed message's id stays in the notice's history.
    changes = (
        tenant_session(db_session, books.tenant)
        .scalars(
            select(AuditEntry.changes).where(
                AuditEntry.entity == "collection_notices", AuditEntry.entity_id == str(notice.id)
            )
        )
        .all()
    )
    assert [failed.id, new_id] in [c.get("message_id") for c in changes]
    # Only a failed notice is resent.
    s = tenant_session(db_session, books.tenant)
    with pytest.raises(notices.NoticeError, match="whose message failed"):
        notices.resend(s, books.tenant, s.get(CollectionNotice, notice.id), books.owner.id)


def test_failed_sits_beside_the_line_a_later_delivery_moves_the_notice_on(app, books, db_session):
    notice, row = _sent_notice(app, books, db_session)
    row.status, row.provider, row.provider_message_id = "sent", "smtp", "m-9"
    db_session.commit()
    at = datetime(2026, 9, 2, 10, tzinfo=UTC)
    session = tenant_session(db_session, books.tenant)
    bounced = StatusUpdate("smtp", "m-9", "bounced", at, error="No such user")
    with app.app_context():  # (the sender is told, in the bell)
        apply_status_updates(session, books.tenant.id, [bounced])
    session.commit()
    assert books.reload(notice).status == "failed"
    # The provider says it was read after all: the notice follows, past the failure.
    apply_status_updates(session, books.tenant.id, [StatusUpdate("smtp", "m-9", "read", at)])
    session.commit()
    notice = books.reload(notice)
    assert notice.status == "read" and notice.read_at is not None
    # A read message arrived: a failure reported now does not take that back.
    row = db_session.get(OutboxMessage, notice.message_id)
    row.status = "failed"
    db_session.commit()
    assert notices.follow_messages(session, books.tenant.id, [row.id]) == 0
    assert books.reload(notice).status == "read"


def test_a_failed_notice_follows_its_message_retried_or_delivered(app, books, db_session):
    notice, row = _sent_notice(app, books, db_session)
    steps = [
        ("suppressed", "failed"),
        ("pending", "queued"),
        ("failed", "failed"),
        ("delivered", "delivered"),
    ]
    for message_status, notice_status in steps:
        row.status = message_status
        db_session.commit()
        session = tenant_session(db_session, books.tenant)
        found = session.get(CollectionNotice, notice.id)
        notices.follow_notices(session, books.tenant.id, [found])
        session.commit()
        assert found.status == notice_status, message_status
    assert found.sent_at is not None and found.delivered_at is not None


def test_the_notice_page_shows_the_failure_and_resends(app, books, db_session, client, login):
    from tests.helpers import csrf_token_from

    notice, row = _sent_notice(app, books, db_session)
    row.status, row.last_error = "failed", "Recipient address rejected"
    db_session.commit()
    login(client, books.owner)
    url = f"/t/{books.tenant.slug}/notices/{notice.id}"
    page = client.get(url)
    assert page.status_code == 200
    assert 'id="notice-status">Failed<' in page.text
    assert "Recipient address rejected" in page.text and ">Resend</button>" in page.text
    assert "ravi@kaveri.example" in page.text  # offered as the contact to send to
    token = csrf_token_from(page.text)
    wrong = client.post(f"{url}/resend", data={"csrf_token": token, "contact_id": "999999"})
    assert wrong.status_code == 422 and 'id="contact_id-error"' in wrong.text
    done = client.post(
        f"{url}/resend", data={"csrf_token": token, "contact_id": str(books.contact.id)}
    )
    assert done.status_code == 303
    assert books.reload(notice).status == "queued"
    assert len(outbox_rows(db_session, books.tenant)) == 2
    again = client.post(f"{url}/resend", data={"csrf_token": token})
    assert again.status_code == 422 and "whose message failed" in again.text


# Notice variables in the messages --------------------------------------------------------------


def test_whatsapp_and_sms_of_a_notice_name_all_its_invoices_and_the_total(app, books, db_session):
    books.contact.phone = "+919876543210"
    first, second = books.invoice("1000.00"), books.invoice("2500.00")
    whatsapp, _ = _sent_notice(app, books, db_session, [first, second], channel="whatsapp")
    sms, _ = _sent_notice(app, books, db_session, [first, second], channel="sms")
    by_id = {m.id: m for m in outbox_rows(db_session, books.tenant)}
    listed = f"2 invoices ({first.number}, {second.number})"
    params = by_id[whatsapp.message_id].payload["whatsapp"]["body_params"]
    assert params[:3] + params[4:] == ["Ravi", listed, "₹3,500.00", books.tenant.name]
    assert "/pay/" in params[3]  # the notice's pay link (tests/test_paylinks.py)
    text = by_id[sms.message_id].body_text
    assert text.startswith(f"Reminder: ₹3,500.00 on {listed} is past due.")
    assert by_id[sms.message_id].payload["sms"]["variables"]["var2"] == listed


# Written when it goes out (issue 16, finding 9) -----------------------------------------------


def _failed_whatsapp_notice(app, books, db_session, invoice, position):
    books.contact.phone = "+919876543210"
    notice = books.notice([invoice], status="approved", channel="whatsapp", position=position)
    with app.app_context():
        notices.send_notices(books.session, books.tenant, [notice.id])
    books.session.commit()
    (failed,) = [m for m in outbox_rows(db_session, books.tenant) if m.id == notice.message_id]
    return notice, failed


def test_a_notice_resent_after_a_part_payment_states_what_is_owed_and_the_due_date_now(
    app, books, db_session
):
    invoice = books.invoice("1000.00")
    notice, failed = _failed_whatsapp_notice(app, books, db_session, invoice, position=2)
    params = failed.payload["whatsapp"]["body_params"]
    assert "₹1,000.00" in params and "31 Jul 2026" in params
    books.pay("400.00", [invoice])
    books.session.commit()
    failed.status = "dead"
    db_session.commit()
    s = tenant_session(db_session, books.tenant)
    s.get(Invoice, invoice.id).due_date = date(2026, 8, 20)  # the due date as it stands now
    notice = s.get(CollectionNotice, notice.id)
    notices.follow_open_notices(s, books.tenant.id)
    with app.app_context():
        new_id = notices.resend(s, books.tenant, notice, books.owner.id)
    s.commit()
    resent = db_session.get(OutboxMessage, new_id)
    params = resent.payload["whatsapp"]["body_params"]
    assert "₹600.00" in params and "20 Aug 2026" in params
    # The statement it carries is a new one, with the figures of now.
    letter = resent.payload["attachments"][0]["key"]
    assert letter != failed.payload["attachments"][0]["key"]
    with get_storage(app).open(letter) as stream:
        text = pdf_text(stream.read())
    assert "Total due ₹600.00" in text


def test_a_queued_notice_is_written_again_with_the_figures_of_when_it_goes_out(
    app, books, db_session
):
    invoice = books.invoice("1000.00")
    notice, queued = _failed_whatsapp_notice(app, books, db_session, invoice, position=2)
    books.pay("250.00", [invoice])
    books.session.commit()
    with app.app_context():
        composed = compose_now(books.session, books.tenant, queued)
    params = composed.payload["whatsapp"]["body_params"]
    assert "₹750.00" in params and "₹1,000.00" not in params
    assert composed.payload["whatsapp"]["document"] == queued.payload["whatsapp"]["document"]
    books.pay("750.00", [invoice], day="2026-09-11")
    books.session.commit()
    with app.app_context():
        assert compose_now(books.session, books.tenant, queued).withdrawn
