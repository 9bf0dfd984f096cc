"""A person clicks through the Zoho Books stand-in's consent page in chromium (no JavaScript
needed): sees the app's request, picks the second of two organisations, allows access, and
lands on the redirect URI with a code, the state and the data centre."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from app.sandbox.standins.zoho_books import DEFAULT_CLIENT_ID, ZohoBooksStandin

pytestmark = pytest.mark.browser


def test_a_person_picks_an_organisation_and_allows_access(browser):
    with ZohoBooksStandin(seed="demo") as standin:
        second = standin.add_organisation("Second Books LLP", "Maharashtra").organization_id
        # The stand-in's own dump route stands in for Duebook's callback page.
        redirect = f"{standin.url}/_standin/books"
        query = {
            "response_type": "code",
            "client_id": DEFAULT_CLIENT_ID,
            "scope": "ZohoBooks.contacts.ALL,ZohoBooks.invoices.ALL",
            "redirect_uri": redirect,
            "state": "st4te",
            "access_type": "offline",
            "prompt": "consent",
        }
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        try:
            page.goto(f"{standin.url}/oauth/v2/auth?{urlencode(query)}")
            assert "Duebook is asking for access" in page.inner_text("h1")
            assert "ZohoBooks.invoices.ALL" in page.inner_text("ul")
            page.get_by_label("Second Books LLP").check()
            page.get_by_role("button", name="Allow access").click()
            page.wait_for_url(f"{redirect}?*")
            arrived = urlsplit(page.url)
        finally:
            context.close()
        answer = {k: v[-1] for k, v in parse_qs(arrived.query).items()}
        assert answer["state"] == "st4te" and answer["location"] == "in"
        assert answer["accounts-server"] == standin.url
        assert standin.codes[answer["code"]]["organisations"] == [second]
