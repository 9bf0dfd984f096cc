"""In chromium: write a campaign template with its live preview, create a campaign for a city's
clients, see who it reaches, launch it, and watch the progress fragment pick up the messages
once the launch job has run."""

from __future__ import annotations

import re

import pytest

from app.clients.models import Client, Contact
from app.extensions import db
from tenants.binding import TenantSession, bind_tenant
from tenants.models import Tenant
from tests.browser.test_team_journey import sign_up
from tests.helpers import unique

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser


def _add_client_with_contact(app, slug: str) -> None:
    """Committed (the live server is another process); the test database is thrown away."""
    with app.app_context(), TenantSession(db, bind=db.engine) as session:
        tenant_id = session.query(Tenant.id).filter(Tenant.slug == slug).scalar()
        bind_tenant(session, tenant_id)
        client = Client(
            full_name="Deccan Fabricators",
            short_name="Deccan",
            location="local",
            country="IN",
            currency="INR",
            city="Pune",
            region="27",
            payment_terms="net",
            payment_days=30,
        )
        session.add(client)
        session.flush()
        session.add(
            Contact(
                client_id=client.id,
                full_name="Nisha Deshpande",
                email="nisha@deccan.example",
                roles=["billing"],
            )
        )
        session.commit()


def test_create_launch_and_watch_a_campaign(app, new_page, console, run_jobs, signup_mail):
    page = new_page()
    slug = unique("camp")
    sign_up(
        page,
        signup_mail,
        organisation="Sahyadri Steel",
        slug=slug,
        full_name="Vikram Rane",
        email=f"{slug}@example.com",
        region="Maharashtra",
    )
    _add_client_with_contact(app, slug)

    page.get_by_role("link", name="Message templates").click()
    expect(page.get_by_role("heading", name="Message templates", level=1)).to_be_visible()
    page.get_by_role("link", name="New e-mail template").click()
    page.get_by_label("Name").fill("Monsoon offer")
    page.get_by_label("Used for").select_option("campaign")
    page.get_by_label("Subject").fill("Monsoon rates for {{ client.short_name }}")
    page.get_by_label("Message").fill("Dear {{ contact.first_name }},\n\nNew rates apply.")
    preview = page.get_by_test_id("preview")
    expect(preview).to_contain_text("Monsoon rates for Deccan")
    expect(preview).to_contain_text("Dear Nisha,")
    page.get_by_label("Message").fill("Dear {{ contact.nmae }}")
    expect(preview).to_contain_text("unknown variable contact.nmae")
    page.get_by_label("Message").fill("Dear {{ contact.first_name }},\n\nNew rates apply.")
    page.get_by_role("button", name="Save template").click()
    expect(page.get_by_role("link", name="Monsoon offer")).to_be_visible()

    page.get_by_role("link", name="Campaigns", exact=True).click()
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Campaign name").fill("Monsoon 2026")
    page.get_by_label("Template").select_option(label="E-mail · Monsoon offer (en)")
    page.get_by_label("City").fill("Pune")
    expect(page.get_by_test_id("audience")).to_contain_text("1 contact(s) will get it")
    page.get_by_role("button", name="Save draft").click()
    expect(page).to_have_url(re.compile(r"/campaigns/\d+$"))
    expect(page.get_by_test_id("audience")).to_contain_text("1 contact(s) will get it")

    page.get_by_role("button", name="Launch").click()
    expect(page.get_by_test_id("campaign-status")).to_have_text("scheduled")
    run_jobs(["bulk"])  # the launch job (no worker runs next to the live server)
    # The self-polling fragment shows the written message without a reload.
    expect(page.get_by_test_id("campaign-status")).to_have_text(
        re.compile("running|done"), timeout=10_000
    )
    expect(page.get_by_test_id("progress")).to_contain_text("of 1 handled")
    assert console.errors == []
