"""Calendar pages: the member's own page (their feed address, "New address", their Google and
Outlook calendars), the providers' OAuth callback, and the public feed itself."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required

from app.calendars import feeds, services
from app.core import consent
from app.core.handover import hand_over
from app.core.pages import render_page, toast
from app.extensions import db, limiter
from tenants.context import require_permission

blueprint = Blueprint("calendars", __name__, url_prefix="/t/<tenant_slug>/calendar")
callbacks = Blueprint("calendar_oauth", __name__, url_prefix="/calendar/oauth")
feed_page = Blueprint("calendar_feed", __name__, url_prefix="/calendar")
# Every member has a calendar: the permission every role holds.
ANY_MEMBER = "dashboard.view"
CONSENT_KEY = "calendar_consent"
# The page's own policy: as the app's, but "Connect" leads to the provider's consent page (a
# form POST answered by a redirect to another origin needs that origin in form-action): https
# addresses, and in the sandbox the stand-ins on 127.0.0.1.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self' https:"
)
CONSENT_BASES = ("GOOGLE_ACCOUNTS_BASE", "MICROSOFT_LOGIN_BASE")


@blueprint.after_request
def _consent_policy(response):
    local = sorted(
        {
            f"{parts.scheme}://{parts.netloc}"
            for parts in (urlsplit(current_app.config.get(name) or "") for name in CONSENT_BASES)
            if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
        }
    )
    response.headers["Content-Security-Policy"] = " ".join([PAGE_POLICY, *local])
    return response


def _base_url() -> str:
    return (current_app.config.get("BASE_URL") or request.host_url).rstrip("/")


def _redirect_uri(provider: str) -> str:
    """The one callback address registered with the provider (the same for every workspace)."""
    return _base_url() + url_for("calendar_oauth.callback", provider=provider)


def _provider_or_404(provider: str) -> str:
    if provider not in services.CONNECTORS:
        abort(404)
    return provider


def _connection_or_404(provider: str):
    connection = services.live_connection(db.session, current_user.id, _provider_or_404(provider))
    if connection is None:
        abort(404)
    return connection


def _push_soon() -> None:
    hand_over(db.session, "push_calendars", tenant_id=g.tenant.id)


@blueprint.get("")
@require_permission(ANY_MEMBER)
def index():
    feed = feeds.live_feed(db.session, g.tenant.id, current_user.id)
    feed_url = (
        _base_url() + url_for("calendar_feed.feed", token=feeds.feed_token(feed)) if feed else None
    )
    connections = services.connections_of(db.session, current_user.id)
    choices, choice_errors = {}, {}
    for provider, connection in connections.items():
        if connection.status == "connected" and connection.calendar_id is None:
            try:
                choices[provider] = services.writable_calendars(connection)
            except services.CalendarRefused as error:
                choice_errors[provider] = str(error)
    return render_page(
        "calendars/index.html",
        feed=feed,
        feed_url=feed_url,
        providers=[(p, services.provider_title(p)) for p in services.CONNECTORS],
        connections=connections,
        choices=choices,
        choice_errors=choice_errors,
    )


@blueprint.post("/address")
@require_permission(ANY_MEMBER)
def new_address():
    had_one = feeds.live_feed(db.session, g.tenant.id, current_user.id) is not None
    feeds.new_address(db.session, g.tenant.id, current_user.id)
    toast(
        "Your new calendar address is ready. The old one no longer works: subscribe again "
        "with this one."
        if had_one
        else "Your calendar address is ready. Add it to your calendar app as a subscription."
    )
    return redirect(url_for("calendars.index"), 303)


@blueprint.post("/<provider>/connect")
@require_permission(ANY_MEMBER)
def connect(provider):
    url, pending = services.begin_consent(
        _provider_or_404(provider), g.tenant.slug, _redirect_uri(provider)
    )
    session[CONSENT_KEY] = pending
    return redirect(url, 303)


@callbacks.get("/<provider>/callback")
@login_required
def callback(provider):
    """The provider sends the member back here; their own workspace page finishes it."""
    return consent.hand_back(CONSENT_KEY, provider, "calendars.finish")


@blueprint.get("/<provider>/finish")
@require_permission(ANY_MEMBER)
def finish(provider):
    _provider_or_404(provider)
    pending = session.pop(CONSENT_KEY, None)
    try:
        if pending and pending.get("tenant_slug") != g.tenant.slug:
            raise services.CalendarRefused("This sign-in was started in another workspace.")
        services.finish_consent(
            db.session,
            provider,
            pending,
            request.args.to_dict(),
            _redirect_uri(provider),
            current_user.id,
        )
    except services.CalendarRefused as error:
        toast(str(error), "error")
    else:
        toast(f"{services.provider_title(provider)} is connected. Choose the calendar to use.")
    return redirect(url_for("calendars.index"), 303)


@blueprint.post("/<provider>/calendar")
@require_permission(ANY_MEMBER)
def choose(provider):
    connection = _connection_or_404(provider)
    try:
        services.choose_calendar(db.session, connection, request.form.get("calendar_id", ""))
    except services.CalendarRefused as error:
        toast(str(error), "error")
        return redirect(url_for("calendars.index"), 303)
    _push_soon()
    toast(f"Your dates are on their way to “{connection.calendar_name}”.")
    return redirect(url_for("calendars.index"), 303)


@blueprint.post("/<provider>/push")
@require_permission(ANY_MEMBER)
def push_now(provider):
    _connection_or_404(provider)
    _push_soon()
    toast("Your calendar is being brought up to date.")
    return redirect(url_for("calendars.index"), 303)


@blueprint.post("/<provider>/disconnect")
@require_permission(ANY_MEMBER)
def disconnect(provider):
    services.disconnect(db.session, _connection_or_404(provider))
    toast(
        f"{services.provider_title(provider)} is disconnected. The events already written stay "
        "in that calendar."
    )
    return redirect(url_for("calendars.index"), 303)


# The public feed ---------------------------------------------------------------------------


def _feed_rate_limit() -> str:
    return current_app.config["CALENDAR_FEED_RATE_LIMIT"]


def _address_key() -> str:
    return f"calendar-feed:{request.remote_addr}"


@feed_page.get("/<token>.ics")
@limiter.limit(_feed_rate_limit, key_func=_address_key)
def feed(token: str):
    opened = feeds.open_feed(db.session, token)
    if opened is None:
        abort(404)
    body, newest = feeds.calendar_of(db.session, opened, _base_url())
    feeds.mark_fetched(db.session, opened.feed)
    response = Response(body, mimetype="text/calendar")
    response.charset = "utf-8"
    response.set_etag(hashlib.sha256(body).hexdigest()[:32])
    response.last_modified = newest
    # Kept by the app that subscribed, asked again each time; never by a shared cache, and the
    # address never sent on as a referrer.
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Disposition"] = 'inline; filename="duebook.ics"'
    return response.make_conditional(request)
