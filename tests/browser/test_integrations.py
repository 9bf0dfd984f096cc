"""An admin opens Integrations, connects the e-mail connector to an SMTP server, sees it
enabled, and tests it: the page polls until a worker has the answer. In chromium, against
the app under gunicorn."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.browser.test_team_journey import sign_up
from tests.helpers import unique

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser


def test_admin_connects_smtp_and_tests_it(
    new_page, console, app_config, run_jobs, screenshots_dir, signup_mail
):
    page = new_page()
    slug = unique("integ")
    sign_up(
        page,
        signup_mail,
        organisation="Malabar Exports",
        slug=slug,
        full_name="Anil Menon",
        email=f"{slug}@example.com",
    )

    page.get_by_role("link", name="Integrations").click()
    card = page.locator("#integration-smtp")
    expect(card.get_by_test_id("integration-status")).to_have_text("Not connected")
    card.get_by_role("link", name="Connect").click()
    page.get_by_label("SMTP server").fill("127.0.0.1")
    page.get_by_label("Port").fill(str(urlsplit(app_config["SMTP_URL"]).port))
    page.get_by_label("Security").fill("none")
    page.get_by_label("Password").fill("not-shown-again")
    page.get_by_label("From").fill("Malabar Exports <accounts@malabar.example>")
    page.get_by_role("button", name="Connect").click()

    card = page.locator("#integration-smtp")
    expect(card.get_by_test_id("integration-status")).to_have_text("Enabled")
    card.get_by_role("button", name="Test connection").click()
    expect(page.locator("#integration-smtp .connection-test")).to_contain_text("Testing")
    run_jobs()
    expect(page.locator("#integration-smtp .connection-test")).to_contain_text(
        "Test passed: Connected to 127.0.0.1"
    )
    assert "not-shown-again" not in page.content()
    page.screenshot(path=str(screenshots_dir / "integrations.png"), full_page=True)
    assert console.about_csp() == [], console.about_csp()
    assert console.exceptions == [], console.exceptions
