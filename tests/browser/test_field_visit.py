"""In chromium: a collector logs a field visit from the visit form. The page takes the
position from the browser's geolocation (granted, set next to the client's site) and the
visit is verified; from a position 1.1 km away the next visit is flagged for a manager."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from app.auth import services as accounts
from app.clients.models import Client, Site
from app.extensions import db
from tenants import services as tenants
from tenants.binding import TenantSession, bind_tenant
from tenants.models import Membership
from tests.helpers import PASSWORD, unique

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser
SITE = (19.076, 72.8777)  # Mumbai
NEAR = {"latitude": 19.0769, "longitude": 72.8777, "accuracy": 10}  # 100 m north
FAR = {"latitude": 19.086, "longitude": 72.8777, "accuracy": 10}  # 1.11 km north


def _collector_with_client(app, slug: str) -> tuple[str, int]:
    """A workspace, a collector and their client with a site: committed (the live server is
    another process; the test database is thrown away)."""
    with app.app_context():
        email = f"{slug}@example.com"
        owner = accounts.create_user(
            db.session, email=f"owner-{email}", full_name="Owner", password=PASSWORD
        )
        collector = accounts.create_user(
            db.session, email=email, full_name="Asha Kulkarni", password=PASSWORD
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
        db.session.add(Membership(user_id=collector.id, tenant_id=tenant.id, role="collector"))
        db.session.commit()
        tenant_id, collector_id = tenant.id, collector.id
        db.session.remove()
    with app.app_context(), TenantSession(db, bind=db.engine) as session:
        bind_tenant(session, tenant_id)
        client = Client(
            full_name="Sahyadri Hardware",
            short_name="Sahyadri",
            location="local",
            country="IN",
            currency="INR",
            region="27",
            payment_terms="net",
            payment_days=30,
            collector_user_id=collector_id,
        )
        session.add(client)
        session.flush()
        session.add(
            Site(
                client_id=client.id,
                name="Shop, Dadar",
                latitude=Decimal(str(SITE[0])),
                longitude=Decimal(str(SITE[1])),
            )
        )
        session.commit()
        return email, client.id


def test_a_visit_by_the_site_is_verified_one_far_away_is_flagged(
    app, live_server, new_page, console, screenshots_dir
):
    slug = unique("visit")
    email, client_id = _collector_with_client(app, slug)
    page = new_page()
    page.context.grant_permissions(["geolocation"], origin=live_server.url)
    page.context.set_geolocation(NEAR)
    page.goto("/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/t/{slug}/$"))

    form = f"/t/{slug}/work/clients/{client_id}/visits/new"
    page.goto(form)
    expect(page.locator("#geo-status")).to_contain_text("Position taken from this device (±10 m)")
    expect(page.get_by_label("Latitude")).to_have_value("19.076900")
    page.screenshot(path=str(screenshots_dir / "field-visit-form.png"), full_page=True)
    page.get_by_label("Outcome").select_option(label="Met them: promised to pay")
    page.get_by_label("Note").fill("Cheque on Friday")
    page.get_by_role("button", name="Log visit").click()
    expect(page).to_have_url(re.compile(r"/work/activities/\d+$"))
    expect(page.get_by_test_id("verification")).to_have_text("Verified")
    expect(page.get_by_text("Shop, Dadar, 100 m away")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("Record the promise to pay"))).to_be_visible()
    page.screenshot(path=str(screenshots_dir / "field-visit-verified.png"), full_page=True)

    page.context.set_geolocation(FAR)
    page.goto(form)
    expect(page.get_by_label("Latitude")).to_have_value("19.086000")
    page.get_by_label("Outcome").select_option(label="Premises closed")
    page.get_by_role("button", name="Log visit").click()
    expect(page.get_by_test_id("verification")).to_have_text("Flagged for verification")
    expect(page.get_by_text("1,112 m from the nearest site")).to_be_visible()

    page.goto(f"/t/{slug}/work/")  # the client is overdue on nothing: a quiet queue
    expect(page.get_by_role("heading", name="My work queue")).to_be_visible()
    expect(page.get_by_test_id("count-tasks")).to_have_text("0")
    page.screenshot(path=str(screenshots_dir / "work-queue.png"), full_page=True)
    assert console.about_csp() == [], console.about_csp()
    assert console.exceptions == [], console.exceptions
