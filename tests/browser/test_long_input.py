"""In chromium: a milestone name as long as a plan takes shows how much of the limit it uses
while it is typed, stops at the limit, and wraps where the plan is shown instead of widening
the page; a negative share comes back with its error beside it and the typed rows kept."""

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

LONG_WORD = "Mobilisation" * 20  # 240 characters without a space


def page_is_wider_than_the_window(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth > window.innerWidth")


def test_a_long_milestone_name_is_counted_limited_and_wrapped(
    new_page, console, screenshots_dir, signup_mail
):
    page = new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    slug = unique("long")
    sign_up(
        page,
        signup_mail,
        organisation="Konkan Works",
        slug=slug,
        full_name="Meera Nair",
        email=f"{slug}@example.com",
        region="Maharashtra",
    )
    page.get_by_role("link", name="Clients", exact=True).click()
    page.get_by_role("link", name="+ New client").click()
    page.get_by_label("Full name").fill("Sahyadri Constructions Pvt Ltd")
    page.get_by_label("Short name").fill("Sahyadri")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/clients/\d+$"))
    client_id = page.url.rsplit("/", 1)[1]

    page.goto(re.sub(r"/clients/\d+$", f"/projects/new?client_id={client_id}", page.url))
    page.get_by_label("Project name").fill("Tower A")
    page.get_by_label("Contract value").fill("10,00,000")
    page.get_by_role("button", name="Save project").click()
    expect(page).to_have_url(re.compile(r"/projects/\d+$"))
    page.goto(page.url + "/plan")

    name = page.get_by_label("Milestone 1", exact=True)
    name.fill(LONG_WORD)
    expect(name).to_have_value(LONG_WORD[:191])  # the browser stops at the limit
    expect(page.locator("#name_0-counter")).to_have_text("191 / 191")
    page.get_by_label("Share 1", exact=True).fill("-100")
    page.get_by_role("button", name="Save the plan").click()
    expect(page.locator("#share_0-error")).to_contain_text("above 0")
    expect(page.get_by_label("Share 1", exact=True)).to_have_value("-100")
    expect(name).to_have_value(LONG_WORD[:191])

    page.get_by_label("Share 1", exact=True).fill("100")
    page.get_by_role("button", name="Save the plan").click()
    expect(page).to_have_url(re.compile(r"/projects/\d+$"))
    expect(page.get_by_text(LONG_WORD[:191])).to_be_visible()
    page.screenshot(path=str(screenshots_dir / "long-milestone-name.png"), full_page=True)
    assert not page_is_wider_than_the_window(page)
    assert console.about_csp() == [], console.about_csp()
