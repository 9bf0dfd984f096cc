"""Terminology beyond the pages: the e-mails Duebook writes to a workspace's own people and the
PDFs it prints for them say the workspace's words, worked out in the job that sends them (the
workspace the job is bound to), and another workspace's mail keeps Duebook's."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

from pypdf import PdfReader

from app.core.clock import local_date
from app.projects.models import Project
from app.reports import services as reports
from tests.helpers import tenant_session
from tests.test_client_documents import add_client, add_document, enqueue_daily_announcement
from tests.test_report_schedules import _schedule
from tests.test_terminology_pages import DEFAULT_WORD, WORDS, visible_text


def _choose_words(db_session, tenant):
    tenant.terminology = {noun: list(words) for noun, words in WORDS.items()}
    db_session.commit()


def _defaults_in(text: str) -> list[str]:
    """The default words the text says; addresses (…/clients/12) are links, not words."""
    return [found.group(0) for found in DEFAULT_WORD.finditer(re.sub(r"https?://\S+", "", text))]


def test_the_expiring_documents_email_says_customer(
    app, db_session, make_tenant, make_user, add_member, run_jobs, received_mail
):
    owner, manager = make_user(), make_user(full_name="Ravi Manager")
    customers = make_tenant(owner=owner, name="Kaveri Traders")
    clients = make_tenant(owner=owner, name="Tapti Traders")
    _choose_words(db_session, customers)
    for tenant in (customers, clients):
        add_member(tenant, manager, role="finance")
        managed = add_client(db_session, tenant, "Godavari", manager=manager)
        add_document(
            db_session, tenant, managed, "Insurance", local_date(tenant.time_zone) + timedelta(9)
        )

    enqueue_daily_announcement(app)
    run_jobs()
    mails = {m["Subject"].rsplit("· ", 1)[1]: m for m in received_mail()}
    ours = mails["Kaveri Traders"]
    assert ours["Subject"] == "1 customer document about to expire · Kaveri Traders"
    text = ours.get_body(preferencelist=("plain",)).get_content()
    html = ours.get_body(preferencelist=("html",)).get_content()
    assert "A document of a customer you manage" in text and ">Customer</th>" in html
    assert _defaults_in(text) == [] and _defaults_in(visible_text(html)) == []
    # The other workspace, the same job run: Duebook's words.
    assert mails["Tapti Traders"]["Subject"] == (
        "1 client document about to expire · Tapti Traders"
    )


def test_a_scheduled_reports_pdf_and_email_say_the_workspaces_words(
    app,
    db_session,
    make_tenant,
    make_user,
    make_client,
    make_invoice,
    storage_root,
    run_jobs,
    received_mail,
):
    owner = make_user()
    tenant = make_tenant(owner=owner, name="Lotus Traders", region="27")
    _choose_words(db_session, tenant)
    session = tenant_session(db_session, tenant)
    invoice = make_invoice(
        session, tenant, make_client(session, name="Sahyadri", short_name="SAHY")
    )
    session.get(Project, invoice.project_id).name = "Fit-out"  # the factory's "Project 2"
    _schedule(session, owner, report="invoices", format="pdf")
    _schedule(session, owner, report="collections_performance", format="pdf")
    session.commit()
    with app.app_context():
        reports.sweep(session, tenant, datetime.now(UTC) + timedelta(days=1))
        session.commit()
    run_jobs()
    mails = {m["Subject"].split(" — ")[0]: m for m in received_mail()}

    invoices = mails["Invoices list"]
    [attachment] = list(invoices.iter_attachments())
    pdf = " ".join(
        " ".join(
            page.extract_text() for page in PdfReader(io.BytesIO(attachment.get_content())).pages
        ).split()
    )
    assert "Sahyadri" in pdf and "Customer Engagement" in pdf  # the column headings
    assert _defaults_in(pdf) == []

    performance = mails["Collections performance"]
    text = performance.get_body(preferencelist=("plain",)).get_content()
    assert "reminders sent" in text
    assert _defaults_in(text) == []
    [attachment] = list(performance.iter_attachments())
    pdf = " ".join(
        page.extract_text() for page in PdfReader(io.BytesIO(attachment.get_content())).pages
    )
    assert "Reminders sent" in pdf and _defaults_in(pdf) == []
    session.close()
