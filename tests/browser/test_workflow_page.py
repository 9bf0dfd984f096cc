"""Settings → Workflow in a browser, at desktop width and on a phone (390 px): nothing wider
than the screen, a wrong place answered beside its field with nothing saved, and a saved
choice of widgets followed by the dashboard."""

from __future__ import annotations

import re

import pytest

from app.cli import DEMO_SLUG
from tests.browser.test_phone_layout import (
    DESKTOP,
    PHONE,
    demo_workspace,  # noqa: F401  (fixture)
    log_in,
    overflow_of,
)

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser
WORKFLOW = f"/t/{DEMO_SLUG}/settings/workflow"


def fits(page) -> None:
    scroll_width, client_width, sticking_out = overflow_of(page)
    assert scroll_width <= client_width + 1, f"{scroll_width}px wide: {sticking_out}"


@pytest.mark.parametrize("screen", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_workflow_page_fits_and_names_a_wrong_place_beside_it(
    new_page,
    demo_workspace,  # noqa: F811
    console,
    screenshots_dir,
    screen,
):
    page = new_page()
    page.set_viewport_size(screen)
    log_in(page)
    page.goto(WORKFLOW)
    expect(page.get_by_role("heading", name="Workflow", exact=True)).to_be_visible()
    expect(page.get_by_label("Default collection policy (the notice ladder)")).to_be_visible()
    fits(page)

    cash = page.get_by_role("group", name="Cash collected")
    cash.get_by_label("Place").fill("0")
    page.get_by_role("button", name="Save dashboard").click()
    expect(cash.get_by_text("A whole number from 1 to 7.")).to_be_visible()
    expect(cash.get_by_label("Place")).to_have_attribute("aria-invalid", "true")
    fits(page)
    page.screenshot(path=str(screenshots_dir / f"workflow-{screen['width']}.png"), full_page=True)
    assert console.about_csp() == [], console.about_csp()


def test_a_saved_choice_of_widgets_shows_on_the_dashboard(
    new_page,
    demo_workspace,  # noqa: F811
):
    page = new_page()
    log_in(page)
    page.goto(WORKFLOW)
    cash = page.get_by_role("group", name="Cash collected")
    try:
        cash.get_by_label("Show").uncheck()
        page.get_by_role("button", name="Save dashboard").click()
        expect(page).to_have_url(re.compile(r"/settings/workflow#dashboard$"))
        page.goto(f"/t/{DEMO_SLUG}/")
        expect(page.locator("article.tile#receivables")).to_be_visible()
        expect(page.locator("article.tile#cash")).to_have_count(0)
    finally:  # the demo workspace is shared by the other page tests: as it was
        page.goto(WORKFLOW)
        page.get_by_role("group", name="Cash collected").get_by_label("Show").check()
        page.get_by_role("button", name="Save dashboard").click()
    page.goto(f"/t/{DEMO_SLUG}/")
    expect(page.locator("article.tile#cash")).to_be_visible()
