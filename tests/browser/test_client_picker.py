"""The client picker on a phone (390 px): typing in "Find a client" narrows the filter's
options as you type, and choosing one filters the list, in the demo workspace of `make run`."""

from __future__ import annotations

import re

import pytest

from app.cli import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SLUG

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
Page, expect = sync_api.Page, sync_api.expect

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_workspace(app, library_loaded):
    """The demo workspace of `make run`, committed for the server (the command is idempotent)."""
    result = app.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output


def test_typing_narrows_the_client_filter_and_choosing_filters_the_list(
    demo_workspace, new_page, console
):
    page: Page = new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/login")
    page.get_by_label("E-mail").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/t/{DEMO_SLUG}/$"))

    page.goto(f"/t/{DEMO_SLUG}/projects/")
    client = page.locator("select#client_id")
    assert client.locator("option").count() == 6  # Any and the five demo clients
    page.get_by_label("Find a client").press_sequentially("kave")
    expect(client.locator("option")).to_have_count(2)
    expect(client.locator("option").nth(1)).to_have_text("Kaveri Builders Pvt Ltd (Kaveri)")
    assert page.url.endswith("/projects/")  # the picker's request is not the page's address

    client.select_option(label="Kaveri Builders Pvt Ltd (Kaveri)")
    expect(page).to_have_url(re.compile(r"client_id=\d+"))
    expect(page.locator("#project-results tbody tr")).not_to_have_count(0)
    expect(page.locator("#project-results tbody")).to_contain_text("Kaveri")
    assert not console.errors and not console.exceptions
