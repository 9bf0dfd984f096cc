"""Xero's consent page as the sandbox shows it (the Xero stand-in): a person in chromium sees
what the app asks for, picks one of the organisations and allows access, and the browser lands
on the app's callback with the code and state; the code then buys tokens for that organisation
only. No JavaScript is needed."""

from __future__ import annotations

import base64
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from app.integrations.connectors.accounting import TokenSet
from app.integrations.connectors.xero import XeroConnector
from app.sandbox.standins.xero import XeroStandin


@pytest.fixture
def callback():
    """The app's OAuth callback: answers 200 and keeps the query strings it was called with."""
    seen: list[str] = []

    class Callback(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            parts = urlsplit(self.path)
            if parts.path == "/integrations/xero/callback":  # not the browser's favicon
                seen.append(parts.query)
            body = b"<p>Connected</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/integrations/xero/callback", seen
    server.shutdown()


def test_a_person_picks_an_organisation_and_allows_access(browser, callback):
    redirect_uri, seen = callback
    verifier = "x" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    with XeroStandin(seed="demo") as standin:
        config = {
            key: standin.url for key in ("XERO_LOGIN_BASE", "XERO_IDENTITY_BASE", "XERO_API_BASE")
        }
        connector = XeroConnector(
            settings={},
            secrets={},
            config={
                **config,
                "XERO_CLIENT_ID": standin.client_id,
                "XERO_CLIENT_SECRET": standin.client_secret,
            },
        )
        url = connector.authorization_url(redirect_uri, "state-9", challenge.rstrip(b"=").decode())
        context = browser.new_context(java_script_enabled=False)
        try:
            page = context.new_page()
            page.goto(url)
            assert "Duebook wants access to your Xero organisation" in page.inner_text("h1")
            assert "accounting.transactions" in page.inner_text("ul")
            page.get_by_label("Harbour Supplies Pty Ltd").check()
            page.get_by_role("button", name="Allow access").click()
            page.wait_for_url(redirect_uri + "?*")
            assert page.inner_text("p") == "Connected"
        finally:
            context.close()
        (query,) = seen
        answer = {k: v[0] for k, v in parse_qs(query).items()}
        assert answer["state"] == "state-9"
        tokens = connector.exchange_code(answer["code"], redirect_uri, verifier, answer)
        books = connector.organisations(tokens.access_token, TokenSet("", None, tokens.expires_at))
        assert [(b.name, b.country, b.currency) for b in books] == [
            ("Harbour Supplies Pty Ltd", "AU", "AUD")
        ]
