"""On a phone, an admin who connected the workspace's own mail server sees the "Your domain"
panel on the setup's e-mail step: SPF not authorised, with the record to publish wrapped
inside its box; after publishing it, "Check again" answers in place that SPF is good. DNS is
the stand-in the live server's DNS_RESOLVER points at."""

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

PHONE = {"width": 390, "height": 844}


def test_own_domain_panel_on_a_phone(
    new_page, console, app_config, dns_server, screenshots_dir, signup_mail
):
    page = new_page()
    page.set_viewport_size(PHONE)
    slug = unique("domain")
    sign_up(
        page,
        signup_mail,
        organisation="Malabar Exports",
        slug=slug,
        full_name="Anil Menon",
        email=f"{slug}@example.com",
    )
    page.goto(f"/t/{slug}/integrations/smtp/connect")
    page.get_by_label("SMTP server").fill("127.0.0.1")
    page.get_by_label("Port").fill(str(urlsplit(app_config["SMTP_URL"]).port))
    page.get_by_label("Security").fill("none")
    page.get_by_label("From").fill("Malabar Exports <accounts@malabar.example>")
    page.get_by_role("button", name="Connect").click()

    long_record = "v=spf1 " + " ".join(f"ip4:203.0.113.{n}" for n in range(1, 30)) + " -all"
    dns_server.set_zone({"malabar.example": {"TXT": [long_record]}})
    try:
        page.goto(f"/t/{slug}/setup/email")
        panel = page.locator("#mail-domain")
        expect(panel).to_contain_text("SPF: Needs fixing.")
        expect(panel.locator("pre.dns-record").first).to_contain_text("ip4:127.0.0.1 -all")
        widths = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1] + 1, f"the page is {widths[0]} px wide on a 390 px phone"
        page.screenshot(path=str(screenshots_dir / "phone-mail-domain.png"), full_page=True)

        fixed = long_record.replace(" -all", " ip4:127.0.0.1 -all")
        dns_server.set_zone({"malabar.example": {"TXT": [fixed]}})
        panel.get_by_role("button", name="Check again").click()
        expect(page.locator("#mail-domain")).to_contain_text("SPF: Good.")
        expect(page.get_by_role("heading", name="Set up Malabar Exports")).to_be_visible()
    finally:
        dns_server.set_zone({})
    assert console.about_csp() == [], console.about_csp()
    assert console.exceptions == [], console.exceptions
