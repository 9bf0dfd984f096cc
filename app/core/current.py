"""The current app context's `g` and workspace, for helpers a page calls hundreds of times
(a word of the terminology, an amount, a moment): `flask.g` is a proxy that looks the context
up on every attribute (a few µs each, ~1 ms of a list page's render); this reads the context
variable behind it once. Elsewhere, use `flask.g`."""

from __future__ import annotations

from types import SimpleNamespace

# The variable `flask.g` and `has_app_context()` read (Flask 2.3+).
from flask.globals import _cv_app


def current_g() -> SimpleNamespace | None:
    """The app context's `g` (the same object as `flask.g`), None outside an app context."""
    app_context = _cv_app.get(None)
    return app_context.g if app_context is not None else None


def current_tenant():
    """The request's workspace (`g.tenant`), None outside a workspace's request."""
    app_context = _cv_app.get(None)
    return getattr(app_context.g, "tenant", None) if app_context is not None else None
