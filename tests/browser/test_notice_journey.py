"""Issue 5's journey in chromium: an overdue invoice shows in today's preview with the reason
it goes out (and why WhatsApp does not), a person runs the day, approves the notice, the worker
sends it by e-mail with the statement of account attached, and a payment in full closes it."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.auth import services as accounts
from app.clients.models import Client, Contact
from app.clients.services import set_consent
from app.extensions import db
from app.invoicing import services as invoicing
from app.settings.services import workspace_settings
from tenants import services as tenants
from tenants.binding import TenantSession, bind_tenant
from tests.helpers import PASSWORD, unique

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser


def _owing_client(app, slug: str) -> tuple[str, str]:
    """A workspace that sends at any hour, and a client with an e-mail-only billing contact
    owing one invoice issued 40 days ago on 30 days' terms: committed, for the live server."""
    with app.app_context():
        email = f"{slug}@example.com"
        owner = accounts.create_user(
            db.session, email=email, full_name="Meera Iyer", password=PASSWORD
        )
        tenant = tenants.create_tenant(
            db.session,
            slug=slug,
            name="Konkan Traders",
            country="IN",
            time_zone="Asia/Kolkata",
            currency="INR",
            region="27",
            owner=owner,
        )
        workspace = workspace_settings(db.session, tenant.id)
        workspace.gstin = "27AAPFU0939F1ZV"
        workspace.send_window_start, workspace.send_window_end = time(0), time(23, 59, 59)
        workspace.send_on_business_days_only = False
        db.session.commit()
        tenant_id = tenant.id
        db.session.remove()
    with app.app_context(), TenantSession(db, bind=db.engine) as session:
        bind_tenant(session, tenant_id)
        tenant = session.get(tenants.Tenant, tenant_id)
        client = Client(
            full_name="Ratnagiri Cement Works",
            short_name="Ratnagiri",
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
            full_name="Sunil Patil",
            roles=["billing"],
            email=f"accounts-{slug}@ratnagiri.example",
        )
        set_consent(contact, "email", True, "contract")
        session.add(contact)
        today = datetime.now(ZoneInfo(tenant.time_zone)).date()
        line = invoicing.ManualLine(
            description="Cement, 400 bags", hsn_sac="2523", unit_price="150000", tax_rate="28"
        )
        invoice = invoicing.draft_by_hand(session, tenant, client, [line])
        invoicing.issue(session, tenant, invoice, today - timedelta(days=40))
        invoicing.mark_overdue(session, today)
        session.commit()
        return email, invoice.number


def test_a_notice_from_preview_to_sent_to_closed_by_a_payment(
    app, live_server, new_page, console, screenshots_dir, run_jobs, received_mail
):
    slug = unique("dun")
    email, number = _owing_client(app, slug)
    page = new_page()
    page.goto("/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/t/{slug}/$"))

    # Today's preview: the 1st notice goes by e-mail, and WhatsApp is left alone with a reason.
    page.get_by_role("link", name="Collections", exact=True).click()
    planned = page.locator("section", has=page.get_by_role("heading", name=re.compile("^Goes out")))
    row = planned.get_by_role("row", name=re.compile("Ratnagiri"))
    expect(row).to_contain_text("1. 1st notice")
    expect(row).to_contain_text("E-mail")
    expect(row).to_contain_text(number)
    expect(row).to_contain_text("₹1,92,000.00")  # 1,50,000 + 28% GST
    left_alone = page.locator("section", has=page.get_by_role("heading", name=re.compile("^Left")))
    expect(left_alone.get_by_role("row", name=number)).to_contain_text(
        "no contact reachable by WhatsApp"
    )
    page.screenshot(path=str(screenshots_dir / "collections-preview.png"), full_page=True)

    page.get_by_role("button", name="Run now").click()
    expect(page.get_by_text("1 notice(s) created")).to_be_visible()
    page.get_by_role("link", name="1. 1st notice").click()
    expect(page.locator("#notice-status")).to_have_text("Draft")
    page.get_by_role("button", name="Approve and send").click()
    expect(page.locator("#notice-status")).to_have_text(re.compile("Approved|Queued"))

    run_jobs(["messages"])  # the send job, then the e-mail's delivery (no worker runs here)
    run_jobs(["messages"])
    mail = [m for m in received_mail() if f"accounts-{slug}" in m["To"]]
    assert len(mail) == 1, [m["To"] for m in received_mail()]
    attachments = [part.get_filename() for part in mail[0].iter_attachments()]
    assert any(name and name.endswith(".pdf") for name in attachments), attachments
    assert number in mail[0].get_body(("plain",)).get_content()
    page.reload()
    expect(page.locator("#notice-status")).to_have_text("Sent")
    page.screenshot(path=str(screenshots_dir / "notice-sent.png"), full_page=True)
    notice_url = page.url

    # The client pays in full: the notice closes, as paid.
    page.get_by_role("link", name="Ratnagiri").first.click()
    page.goto(page.url.split("?")[0] + "?tab=payments")
    page.get_by_role("link", name="+ Record payment").click()
    page.get_by_label(re.compile("Amount received")).fill("1,92,000")
    page.get_by_label("Reference").fill("UTR 99120")
    page.get_by_role("button", name="Record payment").click()
    expect(page.get_by_label(f"Cash for {number}")).to_have_value("192000.00")
    page.get_by_role("button", name="Allocate").click()
    expect(page.locator("#unapplied")).to_have_text("₹0.00")

    page.goto(notice_url)
    expect(page.locator("#notice-status")).to_have_text("Closed")
    expect(page.get_by_text(re.compile("paid", re.I)).first).to_be_visible()
    page.screenshot(path=str(screenshots_dir / "notice-closed.png"), full_page=True)
    assert console.about_csp() == [], console.about_csp()
    assert console.exceptions == [], console.exceptions
