"""The client's pay page as a payer sees it: on a phone (390 px, opened from WhatsApp) and on a
desktop, nothing wider than the screen, what is owed invoice by invoice, the UPI QR, the bank
details; and with JavaScript switched off, a part amount still changes the UPI request.

The link is the demo workspace's "everything you owe" link for a client with open invoices
(`flask demo seed`, committed for the server)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.cli import DEMO_SLUG
from app.clients.models import Client
from app.extensions import db
from app.invoicing.balance import open_invoices
from app.paylinks import services
from tenants.binding import tenant_context
from tenants.models import Tenant

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
WIDER_THAN_SCREEN = (
    "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"
)


@pytest.fixture(scope="module")
def pay_path(app, library_loaded) -> str:
    """The path of the demo client's link that owes the most invoices, part payments on."""
    result = app.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
        with tenant_context(db.session, tenant.id) as session:
            clients = session.scalars(select(Client).order_by(Client.id)).all()
            client = max(clients, key=lambda c: len(open_invoices(session, c.id)))
            services.pay_page_settings(session).allow_partial_payment = True
            link = services.link_for_client(session, client.id)
            token = services.make_token(tenant.id, link)
    return f"/pay/{token}"


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_pay_page_fits_the_screen_and_shows_what_is_owed(
    new_page, console, pay_path, viewport, screenshots_dir
):
    page = new_page()
    page.set_viewport_size(viewport)
    response = page.goto(pay_path)
    assert response.status == 200
    expect(page.get_by_test_id("business-name")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("What you owe")
    assert page.locator("[data-testid^=invoice-]").count() >= 1
    expect(page.get_by_role("img", name=re.compile("UPI QR code"))).to_be_visible()
    expect(page.get_by_test_id("bank-details")).to_contain_text("IFSC")
    assert page.get_by_role("link", name="Download the PDF").count() >= 1
    assert not page.evaluate(WIDER_THAN_SCREEN), "the page is wider than the screen"
    page.screenshot(path=str(screenshots_dir / f"pay-page-{viewport['width']}.png"), full_page=True)
    assert console.about_csp() == [] and console.exceptions == []


def test_without_javascript_a_part_amount_changes_the_upi_request(browser, live_server, pay_path):
    context = browser.new_context(
        base_url=live_server.url, viewport=PHONE, java_script_enabled=False
    )
    try:
        page = context.new_page()
        page.goto(pay_path)
        upi = page.get_by_test_id("upi-link").first
        assert "am=" in upi.get_attribute("href")
        page.get_by_label(re.compile("Amount to pay now")).first.fill("0")
        page.get_by_role("button", name="Use this amount").first.click()
        expect(page.get_by_test_id("amount-error")).to_have_text(
            "The amount must be more than zero."
        )
        page.get_by_label(re.compile("Amount to pay now")).first.fill("100")
        page.get_by_role("button", name="Use this amount").first.click()
        expect(page.get_by_test_id("upi-link").first).to_have_attribute(
            "href", re.compile(r"am=100\.00")
        )
        assert not page.evaluate(WIDER_THAN_SCREEN)
    finally:
        context.close()
