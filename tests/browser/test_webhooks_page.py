"""An admin adds a webhook endpoint for every event, reads its signing secret, sends a test
event and sees it delivered in the log; the receiver verified the signature with that secret.
In chromium, against the app under gunicorn."""

from __future__ import annotations

import pytest

from app.sandbox.standins.webhook_receiver import WebhookReceiverStandin
from tests.browser.test_team_journey import sign_up
from tests.helpers import unique

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser


def test_admin_adds_an_endpoint_and_sends_a_test_event(
    new_page, console, run_jobs, screenshots_dir, signup_mail
):
    page = new_page()
    slug = unique("hooks")
    sign_up(
        page,
        signup_mail,
        organisation="Konkan Traders",
        slug=slug,
        full_name="Meera Desai",
        email=f"{slug}@example.com",
    )
    with WebhookReceiverStandin() as receiver:
        page.get_by_role("link", name="Webhooks").click()
        page.get_by_role("link", name="Add endpoint").click()
        page.get_by_label("URL").fill("https://10.0.0.1/hooks")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#url-error")).to_have_text(
            "Webhooks go to public addresses only, not to private or local ones."
        )
        page.get_by_label("URL").fill(f"{receiver.url}/erp")
        expect(page.get_by_label("All events (new kinds included)")).to_be_checked()
        page.get_by_role("button", name="Save").click()

        secret = page.locator("[data-secret]").inner_text()
        assert secret.startswith("whsec_")
        receiver.secret = secret
        page.get_by_role("button", name="Send test event").click()
        run_jobs()
        [entry] = receiver.recorded()
        assert (entry["type"], entry["signature_valid"]) == ("webhook.test", True)
        page.reload()
        expect(page.locator("tr[data-delivery-id]")).to_contain_text("Delivered")
        page.screenshot(path=str(screenshots_dir / "webhooks.png"), full_page=True)
    assert console.about_csp() == [], console.about_csp()
    assert console.exceptions == [], console.exceptions
