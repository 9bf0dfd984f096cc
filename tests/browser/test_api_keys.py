"""An admin makes an API key under Settings → API keys, sees it once, calls the API with it,
reads the API reference page (Swagger UI, vendored, under the strict CSP), and revokes the
key. In chromium, against the app under gunicorn."""

from __future__ import annotations

import pytest

from tests.browser.test_team_journey import sign_up
from tests.helpers import unique

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser


def test_admin_makes_a_key_reads_the_reference_and_revokes_the_key(
    new_page, console, screenshots_dir, signup_mail
):
    page = new_page()
    slug = unique("apikey")
    sign_up(
        page,
        signup_mail,
        organisation="Deccan Tools",
        slug=slug,
        full_name="Meera Rao",
        email=f"{slug}@example.com",
    )
    page.get_by_role("link", name="API keys").click()
    # The new key's form (the OAuth client's form below has the same fields).
    new_key = page.locator("form").filter(has=page.get_by_role("button", name="Create key"))
    new_key.get_by_label("Name").fill("ERP export")
    new_key.get_by_label("Read clients and their contacts").check()
    new_key.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key").inner_text()
    assert secret.startswith("dbk_live_")
    page.screenshot(path=str(screenshots_dir / "api-keys.png"), full_page=True)

    answer = page.request.get("/api/v1/clients", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status == 200 and answer.json() == {"data": [], "next_cursor": None}

    page.get_by_role("link", name="Duebook API").click()
    expect(page.get_by_text("List clients").first).to_be_visible()
    page.screenshot(path=str(screenshots_dir / "api-reference.png"), full_page=True)
    assert console.about_csp() == [], console.about_csp()
    assert console.exceptions == [], console.exceptions

    page.goto(f"/t/{slug}/settings/api-keys/")
    expect(page.get_by_role("cell", name="ERP export")).to_be_visible()
    assert secret not in page.content()  # shown once
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("is revoked")).to_be_visible()
    refused = page.request.get("/api/v1/clients", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status == 401
