"""The one place a request gets its tenant: `/t/<tenant_slug>/...`.

The slug is taken out of the URL before any view runs; the tenant and the user's membership are
loaded from the shared schema, and the request's session is bound to the tenant's schema. An
unknown slug, a suspended tenant, or a user who is not an active member all get the same 404,
so nobody can probe for tenant names. Anonymous visitors are sent to log in before any look-up.
"""

from __future__ import annotations

from functools import wraps

from flask import abort, current_app, g, redirect, request, url_for
from flask_login import current_user

from tenants.binding import bind_tenant
from tenants.models import Membership
from tenants.roles import role_grants

SLUG_ARG = "tenant_slug"


def init_app(app) -> None:
    app.url_value_preprocessor(_resolve_tenant_from_url)
    app.url_defaults(_fill_in_tenant_slug)
    app.context_processor(
        lambda: {
            "can": can,
            "current_tenant": g.get("tenant"),
            "current_membership": g.get("membership"),
            "user_memberships": user_memberships,
        }
    )


def _resolve_tenant_from_url(endpoint, values) -> None:
    if not values or SLUG_ARG not in values:
        return
    slug = values.pop(SLUG_ARG)
    if not current_user.is_authenticated:
        abort(redirect(url_for("auth.login", next=request.full_path.rstrip("?"))))
    # The user loader brought the memberships and their tenants along: no query here.
    membership = next((m for m in _usable_memberships() if m.tenant.slug == slug), None)
    if membership is None:
        abort(404)
    g.tenant, g.membership = membership.tenant, membership
    # The app's Flask-SQLAlchemy, found where it registers itself: the tenancy core imports
    # nothing of the app.
    session = current_app.extensions["sqlalchemy"].session
    bind_tenant(session, g.tenant.id, actor_user_id=current_user.id)
    session.info["actor_ip"] = request.remote_addr


def _fill_in_tenant_slug(endpoint, values) -> None:
    if SLUG_ARG in values or "tenant" not in g:
        return
    if _expects_slug(endpoint):
        values[SLUG_ARG] = g.tenant.slug


def _expects_slug(endpoint: str) -> bool:
    """Whether `endpoint`'s URL has the tenant slug, asked of the URL map once per endpoint:
    a list page builds hundreds of links, and the map answers by scanning the endpoint's rules."""
    known = current_app.extensions.setdefault("tenant_slug_endpoints", {})
    expects = known.get(endpoint)
    if expects is None:
        expects = known[endpoint] = current_app.url_map.is_endpoint_expecting(endpoint, SLUG_ARG)
    return expects


def _usable_memberships() -> list[Membership]:
    return [m for m in current_user.memberships if m.active and m.tenant.is_active]


def user_memberships() -> list[Membership]:
    """The signed-in user's workspaces, for the tenant switcher."""
    return sorted(_usable_memberships(), key=lambda m: m.tenant.name.lower())


def can(permission: str) -> bool:
    membership = g.get("membership")
    return membership is not None and role_grants(membership.role, permission)


def require_permission(permission: str):
    """Views of a tenant area state the permission they need; a role without it gets 403."""

    def decorator(view):
        @wraps(view)
        def checked(*args, **kwargs):
            if not can(permission):
                abort(403)
            return view(*args, **kwargs)

        checked.required_permission = permission
        return checked

    return decorator
