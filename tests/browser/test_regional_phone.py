"""On a phone (390 px wide): an Australian workspace's regional settings page says what follows
from its state (the library's plans with the state's security of payment Act, the messages'
wording), and the state's plan with its sourced notes (long addresses among them) fits the
screen."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_phone_layout import PHONE, overflow_of
from tests.browser.test_team_journey import sign_up
from tests.helpers import unique

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser


def test_an_australian_states_regional_page_and_plan_fit_a_phone(
    new_page, library_loaded, console, signup_mail
):
    page = new_page()
    slug = unique("perth")
    sign_up(
        page,
        signup_mail,
        organisation="Swan River Builders",
        slug=slug,
        full_name="Olivia Hart",
        email=f"{slug}@example.com",
        country="Australia",
        region="Western Australia",
        time_zone="Australia/Perth",
        currency="AUD",
    )
    page.set_viewport_size(PHONE)

    page.goto(f"/t/{slug}/settings/regional")
    expect(page.get_by_role("heading", name="Regional settings", level=1)).to_be_visible()
    library = page.get_by_test_id("regional-effect").filter(has_text="Template library")
    expect(library).to_contain_text("plans with notes for Western Australia come first")
    expect(library).to_contain_text("Building and Construction Industry (Security of Payment)")
    messages = page.get_by_test_id("regional-effect").filter(has_text="Messages")
    expect(messages).to_contain_text('"tax invoice"')
    scroll_width, client_width, sticking_out = overflow_of(page)
    assert scroll_width <= client_width + 1, sticking_out

    library.get_by_role("link", name="Template library").click()
    plan = re.compile("Standard, medium project — Western Australia")
    page.get_by_role("link", name=plan).click()
    notes = page.locator("section", has=page.get_by_role("heading", name="Compliance notes"))
    expect(notes).to_contain_text("within 20 business days of the payment claim")
    expect(notes).to_contain_text("Source: https://")
    scroll_width, client_width, sticking_out = overflow_of(page)
    assert scroll_width <= client_width + 1, sticking_out
    assert not console.errors
