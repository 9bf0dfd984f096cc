"""The QuickBooks stand-in's consent page works for a person in chromium without JavaScript:
the connector's authorization URL shows the app asking for access, the person picks one of
the companies and "Allow access" sends the browser back to us with code, state and realmId,
which the connector exchanges for tokens of that company."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from app.integrations.connectors.quickbooks import QuickBooksConnector
from app.sandbox.standins.quickbooks import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    QuickBooksStandin,
)

pytestmark = pytest.mark.browser

REDIRECT = "http://127.0.0.1:5000/sync/quickbooks/callback"
SECOND_REALM = "9130350000000005"


def test_a_person_picks_a_company_and_allows_access(browser):
    with QuickBooksStandin(seed="demo") as standin:
        standin.add_company(SECOND_REALM, "Tumkur Traders")
        config = {
            "QBO_API_BASE": standin.url,
            "QBO_DISCOVERY_URL": f"{standin.url}/.well-known/openid_configuration",
            "QBO_CLIENT_ID": DEFAULT_CLIENT_ID,
            "QBO_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        }
        connector = QuickBooksConnector(settings={}, secrets={}, config=config)
        context = browser.new_context(java_script_enabled=False)
        try:
            page = context.new_page()
            # Our callback is not running here: the browser's arrival there is the answer.
            page.route(f"{REDIRECT}**", lambda route: route.fulfill(status=200, body="back"))
            page.goto(connector.authorization_url(REDIRECT, "state-7", ""))
            assert "Duebook" in page.inner_text("body")
            page.get_by_label("Tumkur Traders").check()
            page.get_by_role("button", name="Allow access").click()
            page.wait_for_url(f"{REDIRECT}**")
            callback = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
        finally:
            context.close()
        assert callback["state"] == "state-7" and callback["realmId"] == SECOND_REALM
        tokens = connector.exchange_code(callback["code"], REDIRECT, "", callback)
        [book] = connector.organisations(tokens.access_token, tokens)
        assert book.name == "Tumkur Traders"
