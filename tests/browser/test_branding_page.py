"""Settings → Branding in chromium: typing a colour updates the live preview (the invoice's
first page in that colour) before anything is saved, a bad colour shows its error beside the
field, Save keeps the choices; at desktop width the preview is beside the form, on a phone
(390 px) below it, and nothing overflows the screen."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_phone_layout import PHONE, WHAT_OVERFLOWS
from tests.browser.test_team_journey import sign_up
from tests.helpers import unique

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser

RUST = "rgb(170, 51, 0)"  # #aa3300


def heading_colour(page) -> str:
    title = page.frame_locator(".preview-frame--invoice").locator("h1")
    return title.evaluate("el => getComputedStyle(el).color")


def test_the_preview_follows_typing_and_save_keeps_the_choices(
    new_page, console, screenshots_dir, signup_mail
):
    page = new_page()
    slug = unique("brand")
    sign_up(
        page,
        signup_mail,
        organisation="Kaveri Interiors",
        slug=slug,
        full_name="Anita Iyer",
        email=f"{slug}@example.com",
    )
    page.goto(f"/t/{slug}/settings/")
    page.get_by_role("link", name="Branding").first.click()
    expect(page).to_have_url(re.compile(rf"/t/{slug}/settings/branding/$"))
    expect(page.get_by_role("heading", name="Branding", level=1)).to_be_visible()
    assert heading_colour(page) == "rgb(31, 95, 139)"  # the saved default, #1f5f8b

    colour = page.get_by_label("Brand colour")
    colour.fill("")
    colour.press_sequentially("#aa3300")
    expect(page.frame_locator(".preview-frame--invoice").locator("h1")).to_have_css("color", RUST)
    # The preview sits beside the form at desktop width.
    form_box = page.locator("#branding-form").bounding_box()
    preview_box = page.locator("#branding-preview").bounding_box()
    assert preview_box["x"] > form_box["x"] + form_box["width"] - 1

    colour.fill("#aa33")
    colour.press("End")  # a keystroke: the preview asks again
    expect(page.locator("#brand_colour-error")).to_have_text(re.compile("#rrggbb"))
    colour.fill("#aa3300")
    colour.press("End")
    expect(page.locator("#brand_colour-error")).to_be_hidden()

    page.get_by_label("Footer").fill("Kaveri Interiors LLP\nIndiranagar, Bengaluru")
    page.get_by_label("Paper size").select_option("letter")
    email_footer = page.frame_locator(".preview-frame--email").get_by_text("Indiranagar")
    expect(email_footer).to_be_visible()
    page.screenshot(path=str(screenshots_dir / "branding-desktop.png"), full_page=True)
    # The previews the last changes set off answered first: each is an invoice page drawn by
    # WeasyPrint, seconds apiece on a busy machine, and the test server is one process whose
    # threads share its interpreter; a save sharing it with several outlasted the wait below
    # under the whole suite.
    page.wait_for_function("!document.querySelector('.htmx-request')", timeout=60_000)
    page.get_by_role("button", name="Save branding").click()
    expect(page.get_by_text("Branding saved")).to_be_visible(timeout=20_000)
    page.reload()
    expect(page.get_by_label("Brand colour")).to_have_value("#aa3300")
    expect(page.get_by_label("Paper size")).to_have_value("letter")
    assert heading_colour(page) == RUST

    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.get_by_role("heading", name="Branding", level=1)).to_be_visible()
    assert page.evaluate(WHAT_OVERFLOWS) == []
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide on a {PHONE['width']}px phone"
    form_box = page.locator("#branding-form").bounding_box()
    assert page.locator("#branding-preview").bounding_box()["y"] > form_box["y"]
    colour = page.get_by_label("Brand colour")
    colour.fill("")
    colour.press_sequentially("#006600")
    expect(page.frame_locator(".preview-frame--invoice").locator("h1")).to_have_css(
        "color", "rgb(0, 102, 0)"
    )
    page.locator("#branding-preview").scroll_into_view_if_needed()
    expect(page.frame_locator(".preview-frame--email").get_by_text("Indiranagar")).to_be_visible()
    page.screenshot(path=str(screenshots_dir / "branding-phone.png"), full_page=True)
    assert console.about_csp() == [], console.about_csp()
    assert console.exceptions == [], console.exceptions
