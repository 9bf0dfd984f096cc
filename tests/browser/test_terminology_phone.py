"""The workspace's own words on a phone: with the longest words a workspace is likely to choose
in the navigation, headings, table headings and buttons, every main page still fits a 390 px
screen, and the navigation says them."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from app.cli import DEMO_SLUG
from app.extensions import db
from tenants.models import Tenant
from tests.browser.test_phone_layout import (  # noqa: F401 (demo_workspace: a fixture)
    PHONE,
    demo_workspace,
    log_in,
    visit_all,
)

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser

LONG_WORDS = {
    "client": ["Customer organisation", "Customer organisations"],
    "project": ["Engagement", "Engagements"],
    "milestone": ["Delivery stage", "Delivery stages"],
    "notice": ["Payment reminder", "Payment reminders"],
}


@pytest.fixture
def long_words(app, demo_workspace):  # noqa: F811 (the phone layout's fixture, imported above)
    """The demo workspace's words set long for this test, and set back after it (the browser
    tests share the committed demo workspace)."""

    def choose(words):
        with app.app_context():
            db.session.execute(
                update(Tenant).where(Tenant.slug == DEMO_SLUG).values(terminology=words)
            )
            db.session.commit()

    choose(LONG_WORDS)
    yield
    choose({})


def test_every_page_fits_a_phone_in_long_words(new_page, long_words):
    page = new_page()
    page.set_viewport_size(PHONE)
    log_in(page)
    page.get_by_role("button", name="Menu").click()
    navigation = page.get_by_role("navigation", name="Workspace")
    expect(navigation.get_by_role("link", name="Customer organisations")).to_be_visible()
    expect(navigation.get_by_role("link", name="Payment reminders")).to_be_visible()

    wide = visit_all(page, lambda name: None)
    assert wide == {}, "\n".join(f"{name} is {why}" for name, why in wide.items())
