"""The aging report's drill-down in the browser: a click on a client's amount opens, under that
client's row, the invoices behind it, without leaving the page (htmx; the row gives its links
their target). On a phone too."""

from __future__ import annotations

import re

import pytest

from app.cli import DEMO_SLUG
from tests.browser.test_phone_layout import PHONE, demo_workspace, log_in  # noqa: F401

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_an_amount_opens_its_invoices_under_the_row(
    new_page,
    console,
    demo_workspace,  # noqa: F811
    screenshots_dir,
    viewport,
):
    page = new_page()
    if viewport:
        page.set_viewport_size(viewport)
    log_in(page)
    report = f"/t/{DEMO_SLUG}/aging/report"
    page.goto(report)
    row = page.locator("tr[id^=aging-row-]").first
    amount = row.locator("td a").first
    bucket = amount.get_attribute("aria-label").split(": invoices ")[1]  # e.g. "1–30 days"
    amount.click()
    drill = page.locator(f"#{row.get_attribute('id').replace('aging-row-', 'drill-')}")
    expect(drill).to_contain_text(re.compile(r"INV|Invoice", re.I))
    expect(drill).to_contain_text(bucket)
    assert page.url.endswith(report), "the drill-down left the report"
    suffix = "phone" if viewport else "desktop"
    page.screenshot(path=str(screenshots_dir / f"aging-drill-{suffix}.png"), full_page=True)
