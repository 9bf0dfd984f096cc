"""The sandbox inbox of `make run`: every e-mail the product sends lands here, as the
recipient would see it, instead of leaving the machine. Absent unless SANDBOX_MAILDIR is set."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template

blueprint = Blueprint("sandbox", __name__, url_prefix="/sandbox")
MESSAGE_NAME = re.compile(r"^[0-9]+-[0-9a-f]{8}\.eml$")


def _maildir() -> Path:
    folder = current_app.config.get("SANDBOX_MAILDIR")
    if not folder:
        abort(404)
    return Path(folder)


def _read(path: Path):
    return message_from_bytes(path.read_bytes(), policy=policy.default)


@blueprint.get("/inbox")
def inbox():
    files = sorted(_maildir().glob("*.eml"), reverse=True)[:200]
    messages = [(f.name, _read(f)) for f in files]
    return render_template("sandbox/inbox.html", messages=messages)


@blueprint.get("/inbox/<name>")
def message(name: str):
    if not MESSAGE_NAME.match(name):
        abort(404)
    path = _maildir() / name
    if not path.exists():
        abort(404)
    email = _read(path)
    text_part = email.get_body(preferencelist=("plain",))
    html_part = email.get_body(preferencelist=("html",))
    return render_template(
        "sandbox/message.html",
        name=name,
        email=email,
        text=text_part.get_content() if text_part else "",
        has_html=html_part is not None,
    )


@blueprint.get("/inbox/<name>/html")
def message_html(name: str):
    """The HTML part, served alone and sandboxed (no scripts, no outside requests)."""
    if not MESSAGE_NAME.match(name):
        abort(404)
    path = _maildir() / name
    if not path.exists():
        abort(404)
    html_part = _read(path).get_body(preferencelist=("html",))
    if html_part is None:
        abort(404)
    response = current_app.make_response(html_part.get_content())
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    )
    return response
