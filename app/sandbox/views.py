"""The sandbox inbox of `make run`: every message the product sends lands here, as the
recipient would see it, instead of leaving the machine. E-mail comes from the sandbox SMTP
server (SANDBOX_MAILDIR, one .eml file each); WhatsApp and SMS from the local provider
stand-ins (SANDBOX_MESSAGES_DIR, one .json file each). Absent unless one of them is set, and
only for a logged-in user: `make run` is often reachable on a LAN, and the inbox holds every
workspace's mail, reset links included. A visitor who is not logged in (someone who just
signed up or asked for a password reset in this browser) sees only the mail sent to the
addresses this browser typed (kept in its signed session by the auth views)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, session
from flask_login import current_user

from app.auth import AWAITING_MAIL_FOR
from app.extensions import login_manager

blueprint = Blueprint("sandbox", __name__, url_prefix="/sandbox")
MESSAGE_NAME = re.compile(r"^[0-9]+-[0-9a-f]{8}\.(eml|json)$")
SHOWN = 200


@dataclass
class InboxItem:
    name: str
    channel: str  # email, whatsapp, sms
    received: datetime
    to: str
    sender: str
    summary: str


def _folder(key: str) -> Path | None:
    folder = current_app.config.get(key)
    return Path(folder) if folder else None


def _folders() -> tuple[Path | None, Path | None]:
    mail, messages = _folder("SANDBOX_MAILDIR"), _folder("SANDBOX_MESSAGES_DIR")
    if mail is None and messages is None:
        abort(404)
    return mail, messages


def _visitor_addresses() -> set[str] | None:
    """None for a logged-in user (every message); else the addresses this browser waits on."""
    if current_user.is_authenticated:
        return None
    return {address.lower() for address in session.get(AWAITING_MAIL_FOR, [])}


@blueprint.before_request
def require_login():
    _folders()  # without a sandbox (production) the inbox does not exist, logged in or not
    if not current_user.is_authenticated and not _visitor_addresses():
        return login_manager.unauthorized()
    return None


def _visible(item: InboxItem, addresses: set[str] | None) -> bool:
    if addresses is None:
        return True
    return item.channel == "email" and any(
        address.lower() in addresses for _, address in getaddresses([item.to])
    )


def _read_email(path: Path):
    return message_from_bytes(path.read_bytes(), policy=policy.default)


def _email_item(path: Path) -> InboxItem:
    email = _read_email(path)
    try:
        received = parsedate_to_datetime(email["Date"])
    except (TypeError, ValueError):
        received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return InboxItem(
        path.name,
        "email",
        received,
        email["To"] or "",
        email["From"] or "",
        email["Subject"] or "(no subject)",
    )


def _recorded_item(path: Path) -> InboxItem:
    entry = json.loads(path.read_text())
    text = entry.get("text") or ""
    return InboxItem(
        path.name,
        entry.get("channel", "whatsapp"),
        datetime.fromtimestamp(entry["time_ns"] / 1e9, UTC),
        entry.get("to", ""),
        entry.get("from", ""),
        text[:120],
    )


def _path_for(name: str) -> Path:
    if not MESSAGE_NAME.match(name):
        abort(404)
    mail, messages = _folders()
    folder = mail if name.endswith(".eml") else messages
    if folder is None or not (folder / name).exists():
        abort(404)
    addresses = _visitor_addresses()
    if addresses is not None and not _visible(_email_item(folder / name), addresses):
        abort(404)
    return folder / name


@blueprint.get("/inbox")
def inbox():
    mail, messages = _folders()
    paths = []
    if mail is not None and mail.exists():
        paths += [(p, _email_item) for p in mail.glob("*.eml")]
    if messages is not None and messages.exists():
        paths += [(p, _recorded_item) for p in messages.glob("*.json")]
    # File names start with the time in nanoseconds: newest first without opening them.
    paths.sort(key=lambda item: int(item[0].name.split("-", 1)[0]), reverse=True)
    addresses = _visitor_addresses()
    items = [
        item for item in (read(path) for path, read in paths[:SHOWN]) if _visible(item, addresses)
    ]
    return render_template("sandbox/inbox.html", items=items, visitor=addresses is not None)


@blueprint.get("/inbox/<name>")
def message(name: str):
    path = _path_for(name)
    if name.endswith(".json"):
        return render_template(
            "sandbox/phone_message.html", name=name, entry=json.loads(path.read_text())
        )
    email = _read_email(path)
    text_part = email.get_body(preferencelist=("plain",))
    html_part = email.get_body(preferencelist=("html",))
    attachments = [part.get_filename() for part in email.iter_attachments()]
    return render_template(
        "sandbox/message.html",
        name=name,
        email=email,
        text=text_part.get_content() if text_part else "",
        has_html=html_part is not None,
        attachments=attachments,
    )


@blueprint.get("/inbox/<name>/html")
def message_html(name: str):
    """The HTML part, served alone and sandboxed (no scripts, no outside requests)."""
    if not name.endswith(".eml"):
        abort(404)
    html_part = _read_email(_path_for(name)).get_body(preferencelist=("html",))
    if html_part is None:
        abort(404)
    response = current_app.make_response(html_part.get_content())
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    )
    return response
