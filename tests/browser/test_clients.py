"""A finance user creates a client in chromium: a wrong GSTIN is explained next to the field,
the right one is saved, and search-as-you-type finds the client."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_team_journey import sign_up
from tests.helpers import unique

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser
GSTIN_MAHARASHTRA = "27AAPFU0939F1ZV"


def test_create_a_client_with_a_gstin_wrong_then_right(
    new_page, console, screenshots_dir, signup_mail
):
    page = new_page()
    slug = unique("gst")
    sign_up(
        page,
        signup_mail,
        organisation="Deccan Supplies",
        slug=slug,
        full_name="Neha Rao",
        email=f"{slug}@example.com",
        region="Maharashtra",
    )
    page.get_by_role("link", name="Clients", exact=True).click()
    page.get_by_role("link", name="+ New client").click()

    page.get_by_label("Full name").fill("Sahyadri Constructions Pvt Ltd")
    page.get_by_label("Short name").fill("Sahyadri")
    page.get_by_label("State or region").fill("Maharashtra")
    page.get_by_label("GSTIN").fill("27AAPFU0939F1ZW")  # last character mistyped
    page.get_by_role("button", name="Save").click()

    error = page.locator("#gstin-error")
    expect(error).to_contain_text("wrong check digit")
    expect(page.get_by_label("GSTIN")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Full name")).to_have_value("Sahyadri Constructions Pvt Ltd")

    page.get_by_label("GSTIN").fill("29AAPFU0939F1ZR")  # valid checksum, Karnataka
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#gstin-error")).to_contain_text("Karnataka (29)")

    page.get_by_label("GSTIN").fill(GSTIN_MAHARASHTRA)
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/clients/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sahyadri Constructions Pvt Ltd")
    expect(page.get_by_text("AAPFU0939F", exact=True)).to_be_visible()  # PAN, from the GSTIN
    page.screenshot(path=str(screenshots_dir / "client.png"), full_page=True)

    page.get_by_role("link", name="Clients", exact=True).click()
    page.get_by_label("Search").fill("sahy")
    expect(page.locator("#client-results")).to_contain_text("Sahyadri Constructions Pvt Ltd")
    page.get_by_label("Search").fill("nothing like it")
    expect(page.locator("#client-results")).to_contain_text("No clients match")
    assert console.about_csp() == [], console.about_csp()
