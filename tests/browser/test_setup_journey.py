"""A new owner on a phone (390 px): signs up, goes through the setup (a slip in the GSTIN
said beside the field, a step put off), and reaches the dashboard, which says what is left."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_phone_layout import PHONE, overflow_of
from tests.browser.test_team_journey import sign_up
from tests.helpers import unique
from tests.test_settings import KA_GSTIN, MH_GSTIN

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser


def test_a_new_owner_sets_up_the_workspace_on_a_phone(new_page, console, signup_mail):
    page = new_page()
    page.set_viewport_size(PHONE)
    slug = unique("kaveri")
    sign_up(
        page,
        signup_mail,
        organisation="Kaveri Traders",
        slug=slug,
        full_name="Anil Kumar",
        email=f"{unique('anil')}@example.com",
    )
    wide = {}

    def save_step(number: int, title: str) -> None:
        expect(page.get_by_text(f"Step {number} of 5: {title}.")).to_be_visible()
        scroll_width, client_width, sticking_out = overflow_of(page)
        if scroll_width > client_width + 1:
            wide[title] = f"{scroll_width}px wide: {', '.join(sticking_out)}"
        page.get_by_role("button", name="Save and continue").click()

    expect(page).to_have_url(re.compile(rf"/t/{slug}/setup/identity$"))
    page.get_by_label("Legal name").fill("Kaveri Traders LLP")
    page.get_by_label("GSTIN").fill(MH_GSTIN[:-1] + "W")  # a slip in the check character
    save_step(1, "Your business")
    expect(page.locator("#gstin-error")).to_contain_text("wrong check digit")
    expect(page.get_by_label("Legal name")).to_have_value("Kaveri Traders LLP")
    page.get_by_label("GSTIN").fill(KA_GSTIN)
    save_step(1, "Your business")

    save_step(2, "Logo and colour")
    page.get_by_label("UPI ID").fill("kaveri@okhdfcbank")
    save_step(3, "Getting paid")
    page.get_by_label("Sender name").fill("Kaveri Accounts")
    page.get_by_label("Reply-to address").fill("accounts@kaveri.example")
    save_step(4, "E-mail to your clients")

    expect(page.get_by_text("Step 5 of 5: Your first clients.")).to_be_visible()
    expect(page.get_by_role("link", name="Add a client")).to_be_visible()
    page.get_by_role("button", name="Skip for now").click()

    expect(page).to_have_url(re.compile(rf"/t/{slug}/$"))
    left = page.locator("#setup-left")
    expect(left.get_by_role("heading")).to_have_text("Finish setting up: 1 of 5 steps left")
    expect(left).to_contain_text("Your first clients.")
    scroll_width, client_width, sticking_out = overflow_of(page)
    if scroll_width > client_width + 1:
        wide["dashboard"] = f"{scroll_width}px wide: {', '.join(sticking_out)}"
    assert wide == {}, wide
    assert not console.about_csp(), console.about_csp()
    assert not console.exceptions, console.exceptions
