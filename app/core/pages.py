"""How views answer: full pages or htmx fragments, toasts, and the end-of-request commit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Flask, flash, g, render_template, request, session
from jinja2_fragments.flask import render_block

from app.core.current import current_tenant
from app.core.money import format_money
from app.extensions import db


def init_app(app: Flask) -> None:
    app.add_template_filter(local_datetime)
    app.add_template_filter(money)

    @app.after_request
    def commit_or_roll_back(response):
        # Services only flush; the request commits once here, or rolls back on any 4xx/5xx
        # (a form that failed validation answers 422 and leaves nothing half-written).
        if response.status_code < 400:
            db.session.commit()
        else:
            db.session.rollback()
        toasts = g.pop("toasts", None) or []
        if request.headers.get("HX-Request"):
            if toasts and 300 <= response.status_code < 400:
                # The browser follows a redirect before htmx sees its headers: the toasts go
                # with the response of the request the redirect leads to.
                session["toasts"] = session.get("toasts", []) + toasts
            else:
                toasts = session.pop("toasts", []) + toasts
                if toasts:
                    response.headers["HX-Trigger"] = json.dumps({"duebook:toast": toasts})
        return response


def local_datetime(value: datetime | None) -> str:
    """A moment shown in the tenant's time zone (UTC outside a tenant)."""
    if value is None:
        return ""
    tenant = current_tenant()
    zone = ZoneInfo(tenant.time_zone) if tenant is not None else UTC
    return value.astimezone(zone).strftime("%d %b %Y, %H:%M")


def money(amount, currency: str) -> str:
    """The template filter: an amount as the tenant's country writes it (`format_money`)."""
    if amount is None:
        return ""
    tenant = current_tenant()
    return format_money(amount, currency, tenant.country if tenant is not None else None)


def wants_fragment() -> bool:
    """htmx asked for part of a page (not a boosted navigation or a history restore)."""
    headers = request.headers
    return (
        headers.get("HX-Request") == "true"
        and headers.get("HX-Boosted") != "true"
        and headers.get("HX-History-Restore-Request") != "true"
    )


def render_page(template: str, block: str | None = None, status: int = 200, **context):
    """The whole page, or only `block` of it when htmx asked for a fragment."""
    if block and wants_fragment():
        return render_block(template, block, **context), status
    return render_template(template, **context), status


def toast(message: str, category: str = "success") -> None:
    """A message for the user: a toast for htmx requests, a flash message otherwise."""
    if request.headers.get("HX-Request"):
        g.setdefault("toasts", []).append({"message": message, "category": category})
    else:
        flash(message, category)
