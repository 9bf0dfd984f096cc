"""The new-project form with the workspace's own project fields, on a phone (390 px): nothing
wider than the screen, before and after a refused value's error appears beside its field; the
saved project's page shows the values. In the demo workspace of `make run`, with two project
fields added (a long help text and a choice among them)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.cli import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SLUG
from app.clients.models import Client
from app.custom_fields import services as custom_fields
from app.extensions import db
from tenants.binding import tenant_context
from tenants.models import Tenant

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
Page, expect = sync_api.Page, sync_api.expect

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
WIDER_THAN_SCREEN = (
    "() => document.documentElement.scrollWidth > document.documentElement.clientWidth"
)


@pytest.fixture(scope="module")
def new_project_path(app, library_loaded) -> str:
    """The demo workspace with a required PO number (a pattern, a long help text) and a site
    choice on projects; the path of the new-project form for its first client."""
    result = app.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
        with tenant_context(db.session, tenant.id) as session:
            have = {f.key for f in custom_fields.definitions(session, "projects", archived=True)}
            if "po_number" not in have:
                custom_fields.save_field(
                    session,
                    "projects",
                    {
                        "label": "Purchase order number from the client's procurement system",
                        "key": "po_number",
                        "field_type": "text",
                        "required": "1",
                        "pattern": "PO-[0-9]{3}",
                        "section": "Purchasing",
                        "help_text": "As printed on the purchase order, e.g. PO-123; the client's "
                        "accounts team refuses invoices without it.",
                    },
                )
            if "site" not in have:
                custom_fields.save_field(
                    session,
                    "projects",
                    {"label": "Site", "field_type": "choice", "choices": "Pune\nNashik"},
                )
            client_id = session.scalar(select(Client.id).order_by(Client.id))
    return f"/t/{DEMO_SLUG}/projects/new?client_id={client_id}"


def test_the_new_project_form_with_custom_fields_fits_a_phone(
    new_page, console, new_project_path, screenshots_dir
):
    page: Page = new_page()
    page.set_viewport_size(PHONE)
    page.goto("/login")
    page.get_by_label("E-mail").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/t/{DEMO_SLUG}/$"))

    page.goto(new_project_path)
    expect(page.get_by_role("group", name="Purchasing")).to_be_visible()
    assert not page.evaluate(WIDER_THAN_SCREEN), "the form is wider than the screen"
    page.get_by_label("Project name").fill("Phone fit-out")
    page.get_by_label("Contract value").fill("150000")
    po = page.get_by_label(re.compile("^Purchase order number"))
    po.fill("PO-12")
    page.get_by_role("button", name="Save project").click()
    expect(page.locator("#cf-po_number-error")).to_have_text("This is not in the expected form.")
    expect(po).to_have_attribute("aria-invalid", "true")
    assert not page.evaluate(WIDER_THAN_SCREEN), "the refused form is wider than the screen"
    page.screenshot(path=str(screenshots_dir / "project-custom-fields-390.png"), full_page=True)

    page.get_by_label(re.compile("^Purchase order number")).fill("PO-123")
    page.get_by_label("Site").select_option(label="Nashik")
    page.get_by_role("button", name="Save project").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Phone fit-out")
    details = page.locator(".custom-section")
    expect(details).to_contain_text("PO-123")
    expect(details).to_contain_text("Nashik")
    assert not page.evaluate(WIDER_THAN_SCREEN), "the project page is wider than the screen"
    assert console.about_csp() == [] and console.exceptions == []
