"""Sending an invoice, or a reminder about it, from the invoice page: the e-mail carries the
PDF, a double click is one message, a channel the contact has not agreed to is refused next
to the field, and the client's timeline shows the message and how far it got."""

from __future__ import annotations

import re
from datetime import date, time
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from app.clients.models import Client, Contact
from app.clients.services import set_consent
from app.core.events import DomainEvent
from app.core.money import format_money
from app.invoicing import services as invoicing
from app.invoicing.models import Invoice
from app.messaging.delivery import deliver_batch
from app.outbox.models import OutboxMessage
from app.projects.models import Milestone, Project
from tests.helpers import csrf_token_from, tenant_session

MH_GSTIN = "27AAPFU0939F1ZV"


@pytest.fixture
def overdue_invoice(app, db_session, make_tenant, make_user, storage_root):
    """An issued invoice, past due, of a client whose billing contact has e-mail only."""
    owner = make_user()
    tenant = make_tenant(
        owner=owner,
        region="27",
        name="Udyam Works",
        legal_name="Udyam Works Private Limited",
        gstin=MH_GSTIN,
        # Reminders may go at any hour in these tests.
        send_window_start=time(0),
        send_window_end=time(23, 59, 59),
        send_on_business_days_only=False,
    )
    session = tenant_session(db_session, tenant)
    client = Client(
        full_name="Kaveri Builders",
        short_name="Kaveri",
        location="local",
        country="IN",
        currency="INR",
        region="27",
        payment_terms="net",
        payment_days=30,
    )
    session.add(client)
    session.flush()
    contact = Contact(
        client_id=client.id,
        full_name="Ravi Kumar",
        roles=["billing"],
        email="ravi@kaveri.example",
        phone="+919845012345",
    )
    project = Project(
        client_id=client.id,
        name="Tower",
        contract_value=Decimal("100000"),
        currency="INR",
        start_date=date(2026, 8, 3),
    )
    session.add_all([contact, project])
    session.flush()
    milestone = Milestone(
        project_id=project.id,
        position=1,
        name="Foundations",
        amount=Decimal("100000"),
        due_rule="date",
        due_date=date(2026, 9, 1),
        status="completed",
    )
    session.add(milestone)
    session.flush()
    with app.app_context():
        invoice = invoicing.draft_from_milestones(
            session, tenant, project, [milestone], None, "998311"
        )
        invoicing.issue(session, tenant, invoice, date(2026, 9, 1))
    session.commit()
    return tenant, owner, client.id, contact.id, invoice.id, invoice.number


def send(client, tenant, invoice_id, **fields):
    page = client.get(f"/t/{tenant.slug}/invoices/{invoice_id}")
    form_key = re.search(r'name="form_key" value="([^"]+)"', page.text).group(1)
    data = {"csrf_token": csrf_token_from(page.text), "form_key": form_key, **fields}
    return client.post(f"/t/{tenant.slug}/invoices/{invoice_id}/send", data=data), data


def test_the_invoice_goes_by_email_with_its_pdf(
    app, client, db_session, login, overdue_invoice, run_jobs, received_mail
):
    tenant, owner, client_id, contact_id, invoice_id, number = overdue_invoice
    login(client, owner)
    response, data = send(
        client, tenant, invoice_id, purpose="invoice", channel="email", contact_id=contact_id
    )
    assert response.status_code == 303
    # A second click on the same form is the same message.
    again = client.post(f"/t/{tenant.slug}/invoices/{invoice_id}/send", data=data)
    assert again.status_code == 303
    run_jobs()
    mails = received_mail()
    assert len(mails) == 1
    mail = mails[0]
    assert mail["To"] == "ravi@kaveri.example"
    assert number in mail["Subject"]
    (attachment,) = list(mail.iter_attachments())
    assert attachment.get_filename() == number.replace("/", "-") + ".pdf"
    assert attachment.get_content().startswith(b"%PDF-")
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert "Dear Ravi" in body and number in body
    session = tenant_session(db_session, tenant)
    assert session.get(Invoice, invoice_id).sent_at is not None  # the invoice counts as sent
    # The client's timeline shows the message and that it was sent.
    timeline = client.get(f"/t/{tenant.slug}/clients/{client_id}?tab=timeline")
    assert number in timeline.text and "Sent" in timeline.text
    # Each sending is an invoice.sent event (the form clicked twice is one), a reminder none.
    send(client, tenant, invoice_id, purpose="invoice", channel="email", contact_id=contact_id)
    send(client, tenant, invoice_id, purpose="notice_1", channel="email", contact_id=contact_id)
    sent = session.scalars(
        select(DomainEvent).where(DomainEvent.type == "invoice.sent").order_by(DomainEvent.id)
    ).all()
    assert [(e.subject_id, e.data["channel"], e.data["number"]) for e in sent] == [
        (invoice_id, "email", number)
    ] * 2


def test_a_reminder_names_what_is_overdue(
    app, client, db_session, login, overdue_invoice, run_jobs, received_mail
):
    tenant, owner, _, contact_id, invoice_id, number = overdue_invoice
    login(client, owner)
    response, _ = send(
        client, tenant, invoice_id, purpose="notice_1", channel="email", contact_id=contact_id
    )
    assert response.status_code == 303
    run_jobs()
    (mail,) = received_mail()
    assert mail["Subject"].startswith("Reminder: invoice " + number)
    message = db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.tenant_id == tenant.id)
    ).one()
    assert message.windowed and message.status == "sent"
    assert message.payload["purpose"] == "notice_1"


def test_whatsapp_needs_the_contacts_opt_in(app, client, db_session, login, overdue_invoice):
    tenant, owner, _, contact_id, invoice_id, _ = overdue_invoice
    login(client, owner)
    response, _ = send(
        client, tenant, invoice_id, purpose="invoice", channel="whatsapp", contact_id=contact_id
    )
    assert response.status_code == 422
    assert 'id="channel-error"' in response.text
    assert "has not agreed to WhatsApp" in response.text
    count = db_session.scalars(select(OutboxMessage).where(OutboxMessage.tenant_id == tenant.id))
    assert count.all() == []


def test_an_opt_in_makes_whatsapp_available_with_the_pdf(
    app, client, db_session, login, overdue_invoice
):
    tenant, owner, _, contact_id, invoice_id, number = overdue_invoice
    session = tenant_session(db_session, tenant)
    set_consent(session.get(Contact, contact_id), "whatsapp", True, "signed form")
    session.commit()
    login(client, owner)
    app.extensions["duebook.enqueue"], real = (
        list,
        app.extensions["duebook.enqueue"],
    )
    try:
        response, _ = send(
            client, tenant, invoice_id, purpose="invoice", channel="whatsapp", contact_id=contact_id
        )
    finally:
        app.extensions["duebook.enqueue"] = real
    assert response.status_code == 303
    message = db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.tenant_id == tenant.id)
    ).one()
    whatsapp = message.payload["whatsapp"]
    assert (whatsapp["type"], whatsapp["name"]) == ("template", "duebook_invoice")
    assert number in whatsapp["body_params"]
    assert whatsapp["document"]["filename"] == number.replace("/", "-") + ".pdf"
    assert message.recipient == "+919845012345"
    assert message.recipient_time_zone == "Asia/Kolkata"


def test_only_members_who_send_messages_may(
    client, db_session, make_user, add_member, login, overdue_invoice
):
    tenant, _, _, contact_id, invoice_id, _ = overdue_invoice
    viewer = make_user()
    add_member(tenant, viewer, role="viewer")
    login(client, viewer)
    page = client.get(f"/t/{tenant.slug}/invoices/{invoice_id}")
    assert 'id="invoice-send"' not in page.text
    response = client.post(
        f"/t/{tenant.slug}/invoices/{invoice_id}/send",
        data={
            "csrf_token": csrf_token_from(page.text),
            "channel": "email",
            "purpose": "invoice",
            "contact_id": contact_id,
            "form_key": "x" * 24,
        },
    )
    assert response.status_code == 403


def test_a_void_invoice_is_not_offered_for_sending(app, client, db_session, login, overdue_invoice):
    tenant, owner, _, _, invoice_id, _ = overdue_invoice
    session = tenant_session(db_session, tenant)
    session.execute(update(Invoice).where(Invoice.id == invoice_id).values(status="void"))
    session.commit()
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/invoices/{invoice_id}")
    assert 'id="invoice-send"' not in page.text


def test_a_reminder_goes_out_and_again_with_what_is_still_owed_and_the_due_date_of_then(
    app, client, db_session, login, overdue_invoice, make_payment, redis, received_mail, run_jobs
):
    """Issue 16, finding 9: a reminder is written when it goes out, not when it was queued; a
    failed one sent again is written again."""
    tenant, owner, client_id, contact_id, invoice_id, number = overdue_invoice
    login(client, owner)
    app.extensions["duebook.enqueue"], real = list, app.extensions["duebook.enqueue"]
    try:  # queued, and not delivered yet (as when it waits for the sending window)
        response, _ = send(
            client, tenant, invoice_id, purpose="notice_1", channel="email", contact_id=contact_id
        )
    finally:
        app.extensions["duebook.enqueue"] = real
    assert response.status_code == 303
    session = tenant_session(db_session, tenant)
    message = db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.tenant_id == tenant.id)
    ).one()
    invoice = session.get(Invoice, invoice_id)
    full = format_money(invoice.total, "INR", "IN")
    assert full in message.body_text
    make_payment(session, session.get(Client, client_id), "40000.00", allocate_to=[invoice])
    invoice.due_date = date(2026, 10, 15)  # the client was given until then
    session.commit()

    with app.app_context():
        assert deliver_batch(session, [message.id], redis)["sent"] == 1
    [mail] = received_mail()
    body = mail.get_body(preferencelist=("plain",)).get_content()
    owed = invoice.total - Decimal("40000.00")
    assert format_money(owed, "INR", "IN") in body and full not in body
    assert "15 Oct 2026" in mail["Subject"] and "01 Oct 2026" not in mail["Subject"]
    stored = db_session.get(OutboxMessage, message.id, populate_existing=True)
    assert format_money(owed, "INR", "IN") in stored.body_text  # the page shows what was sent

    # It bounced back as failed; sent again after another payment, it quotes the new balance.
    db_session.execute(
        update(OutboxMessage).where(OutboxMessage.id == message.id).values(status="dead")
    )
    db_session.commit()
    make_payment(
        session, session.get(Client, client_id), "8000.00", allocate_to=[invoice], reference="U2"
    )
    session.commit()
    page = client.get(f"/t/{tenant.slug}/messages/{message.id}")
    retried = client.post(
        f"/t/{tenant.slug}/messages/{message.id}/retry",
        data={"csrf_token": csrf_token_from(page.text)},
    )
    assert retried.status_code == 303
    run_jobs()
    assert len(received_mail()) == 2
    again = received_mail()[-1].get_body(preferencelist=("plain",)).get_content()
    assert format_money(owed - Decimal("8000.00"), "INR", "IN") in again


def test_a_reminder_about_an_invoice_paid_meanwhile_is_not_sent(
    app, client, db_session, login, overdue_invoice, make_payment, redis, received_mail
):
    tenant, owner, client_id, contact_id, invoice_id, _ = overdue_invoice
    login(client, owner)
    app.extensions["duebook.enqueue"], real = list, app.extensions["duebook.enqueue"]
    try:
        send(client, tenant, invoice_id, purpose="notice_1", channel="email", contact_id=contact_id)
    finally:
        app.extensions["duebook.enqueue"] = real
    session = tenant_session(db_session, tenant)
    invoice = session.get(Invoice, invoice_id)
    make_payment(session, session.get(Client, client_id), str(invoice.total), allocate_to=[invoice])
    session.commit()
    message = db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.tenant_id == tenant.id)
    ).one()
    with app.app_context():
        assert deliver_batch(session, [message.id], redis)["suppressed"] == 1
    assert received_mail() == []
    stored = db_session.get(OutboxMessage, message.id, populate_existing=True)
    assert "owes nothing now" in stored.last_error
