"""In chromium: clone a library template, drag a milestone of the draft to a new place, and
see the order saved (it is still there after a reload); the published version is unchanged."""

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


def _names(page) -> list[str]:
    return page.locator("#draft-items .template-item__name").all_inner_texts()


def test_drag_a_milestone_to_a_new_place(
    library_loaded, new_page, console, screenshots_dir, signup_mail
):
    page = new_page()
    slug = unique("tpl")
    sign_up(
        page,
        signup_mail,
        organisation="Kaveri Infra",
        slug=slug,
        full_name="Arjun Menon",
        email=f"{slug}@example.com",
        region="Karnataka",
    )
    page.get_by_role("link", name="Template library").click()
    page.get_by_label("Search").fill("Construction: Standard, medium project")
    page.locator("#library-results").get_by_role(
        "link", name="Construction: Standard, medium project", exact=True
    ).click()
    page.get_by_role("button", name="Clone into my workspace").click()
    expect(page.get_by_test_id("version-badge")).to_have_text("v1")
    page.get_by_role("button", name="Edit: make version 2").click()
    expect(page).to_have_url(re.compile(r"/library/mine/\d+/draft$"))

    before = _names(page)
    assert len(before) >= 3
    items = page.locator("#draft-items > li")
    page.locator("#items-title").evaluate("heading => heading.scrollIntoView()")  # list in view
    source, target = items.nth(0).bounding_box(), items.nth(2).bounding_box()
    with page.expect_response(lambda r: r.url.endswith("/draft/order") and r.status == 200):
        page.mouse.move(source["x"] + 30, source["y"] + source["height"] / 2)
        page.mouse.down()
        page.mouse.move(target["x"] + 30, target["y"] + target["height"] - 4, steps=12)
        page.mouse.up()
    expected = [before[1], before[2], before[0], *before[3:]]
    expect(page.locator("#draft-items .template-item__pos").first).to_have_text("1.")
    expect(page.locator("#draft-items .template-item__name")).to_have_text(expected)

    page.reload()
    assert _names(page) == expected  # saved, not only moved on the page
    page.screenshot(path=str(screenshots_dir / "tenant-template-editor.png"), full_page=True)

    page.get_by_role("navigation", name="Workspace").get_by_role(
        "link", name="My templates"
    ).click()
    page.get_by_role("link", name="Construction: Standard, medium project").click()
    published = page.get_by_test_id("version-items").locator("tbody tr td:nth-child(2)")
    expect(published.first).to_contain_text(before[0])  # version 1 kept its order
    assert console.about_csp() == [], console.about_csp()
    assert console.exceptions == [], console.exceptions
