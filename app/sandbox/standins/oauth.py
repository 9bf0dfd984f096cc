"""The OAuth 2.0 authorization server the calendar stand-ins share (RFC 6749 authorization code
grant with RFC 7636 PKCE, as Google's and Microsoft's identity platforms run it for a web app):
a consent page a person clicks through, one-time codes bound to their redirect_uri and code
challenge, access tokens with a lifetime, and refresh tokens that either stay (Google) or
rotate (Microsoft: each refresh answers a new one and the used one stops working).

Errors are the RFC's: 400 `invalid_client`, `invalid_grant` (a wrong, used or expired code, a
verifier that does not match, a refresh token revoked or used up), `unsupported_grant_type`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from .base import Request, Response, json_response

CODE_SECONDS = 300


@dataclass
class Grant:
    scope: str
    account: str
    revoked: bool = False
    refresh_tokens: set[str] = field(default_factory=set)


class AuthorizationServer:
    def __init__(
        self,
        *,
        provider: str,
        client_id: str,
        client_secret: str,
        account: str,
        access_seconds: int,
        rotate_refresh_tokens: bool,
        clock=time.time,
    ):
        self.provider = provider
        self.client_id = client_id
        self.client_secret = client_secret
        self.account = account
        self.access_seconds = access_seconds
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.codes: dict[str, dict] = {}
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, tuple[str, float]] = {}
        self.refresh_tokens: dict[str, str] = {}

    # -- the consent page ----------------------------------------------------------------

    def authorize(self, request: Request, action: str) -> Response:
        values = (
            request.form()
            if request.method == "POST"
            else {name: items[-1] for name, items in request.query.items()}
        )
        if values.get("client_id") != self.client_id:
            return page(self.provider, 400, "<h1>Unknown app</h1><p>No app has this client id.</p>")
        redirect = values.get("redirect_uri") or ""
        if values.get("response_type") != "code" or not redirect.startswith(
            ("http://", "https://")
        ):
            return page(
                self.provider,
                400,
                "<h1>Bad request</h1><p>response_type=code and a redirect_uri.</p>",
            )
        if values.get("code_challenge_method") != "S256" or not values.get("code_challenge"):
            return page(
                self.provider, 400, "<h1>Bad request</h1><p>PKCE with S256 is required.</p>"
            )
        state = values.get("state") or ""
        separator = "&" if "?" in redirect else "?"
        if request.method == "POST":
            if values.get("decision") != "allow":
                query = urlencode({"error": "access_denied", "state": state})
                return Response(302, b"", [("Location", f"{redirect}{separator}{query}")])
            code = secrets.token_urlsafe(24)
            with self._lock:
                self.codes[code] = {
                    "redirect_uri": redirect,
                    "challenge": values["code_challenge"],
                    "scope": values.get("scope") or "",
                    "expires": self.clock() + CODE_SECONDS,
                }
            query = urlencode({"code": code, "state": state, "scope": values.get("scope") or ""})
            return Response(302, b"", [("Location", f"{redirect}{separator}{query}")])
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in values.items()
            if k != "decision"
        )
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in (values.get("scope") or "").split())
        return page(
            self.provider,
            200,
            f"<h1>Duebook wants access to {html.escape(self.account)}</h1>"
            f"<p>It asks to:</p><ul>{scopes}</ul>"
            f'<form method="post" action="{html.escape(action)}">{hidden}'
            '<button name="decision" value="allow">Allow access</button> '
            '<button name="decision" value="cancel">Cancel</button></form>',
        )

    # -- the token endpoint --------------------------------------------------------------

    def _client_ok(self, request: Request, form: dict) -> bool:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client, _, secret = base64.b64decode(credential).decode().partition(":")
            except ValueError:
                return False
        else:
            client, secret = form.get("client_id", ""), form.get("client_secret", "")
        return hmac.compare_digest(client, self.client_id) and hmac.compare_digest(
            secret, self.client_secret
        )

    def token(self, request: Request) -> Response:
        form = request.form()
        if not self._client_ok(request, form):
            return json_response(401, {"error": "invalid_client"})
        grant_type = form.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                code = self.codes.pop(form.get("code", ""), None)
                if (
                    code is None
                    or code["expires"] < self.clock()
                    or code["redirect_uri"] != form.get("redirect_uri")
                    or not _verifier_matches(form.get("code_verifier", ""), code["challenge"])
                ):
                    return invalid_grant("The code is wrong, used, expired or not yours.")
                grant_id = secrets.token_hex(8)
                self.grants[grant_id] = Grant(code["scope"], self.account)
                return json_response(200, self._issue(grant_id, with_refresh=True))
            if grant_type == "refresh_token":
                grant_id = self.refresh_tokens.get(form.get("refresh_token", ""))
                grant = self.grants.get(grant_id) if grant_id else None
                if grant is None or grant.revoked:
                    return invalid_grant("Token has been expired or revoked.")
                if self.rotate_refresh_tokens:
                    del self.refresh_tokens[form["refresh_token"]]
                return json_response(
                    200, self._issue(grant_id, with_refresh=self.rotate_refresh_tokens)
                )
        return json_response(400, {"error": "unsupported_grant_type"})

    def _issue(self, grant_id: str, with_refresh: bool) -> dict:
        access = secrets.token_urlsafe(32)
        self.access_tokens[access] = (grant_id, self.clock() + self.access_seconds)
        answer = {
            "access_token": access,
            "expires_in": self.access_seconds,
            "scope": self.grants[grant_id].scope,
            "token_type": "Bearer",
        }
        if with_refresh:
            refresh = secrets.token_urlsafe(32)
            self.refresh_tokens[refresh] = grant_id
            answer["refresh_token"] = refresh
        return answer

    def grant_of(self, request: Request) -> Grant | None:
        """The live grant of the request's Bearer token, else None (a 401)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            found = self.access_tokens.get(token) if scheme.lower() == "bearer" else None
            if found is None or found[1] < self.clock():
                return None
            grant = self.grants[found[0]]
            return None if grant.revoked else grant

    # -- sandbox operations --------------------------------------------------------------

    def grant_token(self, scope: str = "") -> dict:
        """Tokens as if the person had allowed access: for tests that need no consent page."""
        with self._lock:
            grant_id = secrets.token_hex(8)
            self.grants[grant_id] = Grant(scope, self.account)
            return self._issue(grant_id, with_refresh=True)

    def revoke_all(self) -> None:
        """As the person removing the app's access in their account settings."""
        with self._lock:
            for grant in self.grants.values():
                grant.revoked = True

    def expire_access_tokens(self) -> None:
        """Every access token stops working now (as an hour passing)."""
        with self._lock:
            self.access_tokens = {
                token: (grant, self.clock() - 1) for token, (grant, _) in self.access_tokens.items()
            }


def _verifier_matches(verifier: str, challenge: str) -> bool:
    digest = hashlib.sha256(verifier.encode()).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hmac.compare_digest(expected, challenge)


def invalid_grant(description: str) -> Response:
    return json_response(400, {"error": "invalid_grant", "error_description": description})


def page(provider: str, status: int, body: str) -> Response:
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(provider)} sandbox</title></head><body>{body}</body></html>"
    )
    return Response(status, text.encode(), [("Content-Type", "text/html; charset=utf-8")])
