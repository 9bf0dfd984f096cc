"""OAuth 2 client credentials (RFC 6749 §4.4) for server-to-server integrations: an OAuth
client (made by an admin beside the API keys) trades its id and secret at
POST /api/v1/oauth/token for a short-lived bearer token with the client's scopes, which
/api/v1 and the OData feed accept as they accept a key. Errors are RFC 6749 §5.2's JSON, as
OAuth client libraries expect, not problem details."""

from __future__ import annotations

from typing import Literal
from urllib.parse import unquote

from flask import Blueprint, current_app, jsonify, request
from pydantic import BaseModel, Field

from app.api import services
from app.api.models import SCOPES
from app.extensions import csrf, db, limiter

blueprint = Blueprint("api_oauth", __name__, url_prefix="/api/v1/oauth")
csrf.exempt(blueprint)  # no cookies: the client proves itself by its secret
# Counted per address: who calls is not known until the secret is checked.
limiter.limit(lambda: current_app.config["API_RATE_LIMIT"])(blueprint)
# A token request is a few short form fields.
MAX_BODY_BYTES = 16 * 1024


class TokenRequest(BaseModel):
    """The form a client posts (`application/x-www-form-urlencoded`). The client's id and
    secret go in HTTP Basic (preferred) or, instead, as `client_id` and `client_secret`."""

    grant_type: Literal["client_credentials"]
    scope: str | None = Field(
        None,
        description="Space-separated permissions, all held by the client; all of the "
        "client's when left out.",
    )
    client_id: str | None = None
    client_secret: str | None = None


class TokenAnswer(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds until the token stops working.")
    scope: str = Field(description="The permissions granted, space-separated.")


class OAuthError(BaseModel):
    error: Literal["invalid_request", "invalid_client", "unsupported_grant_type", "invalid_scope"]
    error_description: str


def _refuse(error: str, description: str, status: int = 400):
    response = jsonify(OAuthError(error=error, error_description=description).model_dump())
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="duebook"'
    return response


def _client_credentials() -> tuple[str | None, str | None, bool]:
    """The client id and secret the request carries, and whether it carried them twice (in
    HTTP Basic and in the form), which RFC 6749 §2.3 forbids."""
    auth = request.authorization
    form_id, form_secret = request.form.get("client_id"), request.form.get("client_secret")
    if auth is not None and auth.type == "basic":
        # §2.3.1: the id and secret are form-encoded before they go into Basic.
        basic_id, basic_secret = unquote(auth.username or ""), unquote(auth.password or "")
        return basic_id, basic_secret, form_secret is not None
    return form_id, form_secret, False


@blueprint.post("/token")
def token():
    """Issue an access token to an OAuth client (grant_type=client_credentials)."""
    request.max_content_length = MAX_BODY_BYTES
    repeated = [name for name in request.form if len(request.form.getlist(name)) > 1]
    if repeated:
        return _refuse("invalid_request", f"Send each parameter once ({', '.join(repeated)}).")
    grant_type = request.form.get("grant_type")
    if not grant_type:
        return _refuse("invalid_request", "Send grant_type=client_credentials in a form body.")
    if grant_type != "client_credentials":
        return _refuse(
            "unsupported_grant_type", "Only grant_type=client_credentials is offered here."
        )
    client_id, secret, twice = _client_credentials()
    if twice:
        return _refuse(
            "invalid_request", "Send the client's secret one way: HTTP Basic or the form."
        )
    client = services.oauth_client(db.session, client_id, secret) if client_id and secret else None
    if client is None:
        return _refuse(
            "invalid_client",
            "Unknown client, wrong secret, or the client was revoked.",
            status=401,
        )
    requested = (request.form.get("scope") or "").split()
    unknown = sorted(set(requested) - set(SCOPES))
    if unknown:
        return _refuse("invalid_scope", f"Not a permission: {' '.join(unknown)}.")
    try:
        access_token, scopes = services.issue_token(db.session, client, requested)
    except services.ScopeRefused as refused:
        return _refuse("invalid_scope", f"This client may not have: {refused}.")
    answer = TokenAnswer(
        access_token=access_token,
        token_type="Bearer",
        expires_in=int(services.TOKEN_LIFETIME.total_seconds()),
        scope=" ".join(scopes),
    )
    response = jsonify(answer.model_dump())
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
