"""Unsubscribe links (RFC 8058 one-click, and a page for people who click the link).

A token names (tenant, contact, channel), signed with SECRET_KEY: unguessable, and with no
expiry, because the link in a mail sent years ago must still work. Every e-mail to a contact
carries `List-Unsubscribe` with the https link and `List-Unsubscribe-Post`, so mailbox
providers show their own unsubscribe button and POST to the link without cookies.

No `mailto:` address is offered: nothing reads mail sent to one, and a link nobody acts on
would be worse than none (RFC 8058 one-click needs the https link only)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from app.clients.models import Contact
from app.clients.services import set_consent
from tenants.binding import bind_tenant
from tenants.models import Tenant

_SALT = "duebook.unsubscribe"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def make_token(tenant_id: int, contact_id: int, channel: str = "email") -> str:
    return _serializer().dumps([int(tenant_id), int(contact_id), channel])


def read_token(token: str) -> tuple[int, int, str] | None:
    """(tenant_id, contact_id, channel), or None for a forged or mangled token."""
    try:
        tenant_id, contact_id, channel = _serializer().loads(token)
    except (BadSignature, TypeError, ValueError):
        return None
    if not (isinstance(tenant_id, int) and isinstance(contact_id, int)):
        return None
    return tenant_id, contact_id, str(channel)


def unsubscribe_url(tenant_id: int, contact_id: int, channel: str = "email") -> str:
    """The absolute link, built outside any request: BASE_URL, else the local dev server."""
    base = urlsplit(
        current_app.config.get("BASE_URL") or f"http://127.0.0.1:{os.environ.get('PORT', '5000')}"
    )
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "https"
    )
    return adapter.build(
        "email_links.unsubscribe_page",
        {"token": make_token(tenant_id, contact_id, channel)},
        force_external=True,
    )


def headers_for(tenant_id: int, contact_id: int) -> dict[str, str]:
    """The RFC 8058 headers of an e-mail to this contact (DKIM signs both of them)."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(tenant_id, contact_id)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def contact_for_token(session, token: str):
    """(tenant, contact, channel) a token names, with `session` bound to that tenant; None
    for a forged token or a contact or tenant that no longer exists."""
    found = read_token(token)
    if found is None:
        return None
    tenant_id, contact_id, channel = found
    # A suspended workspace's contacts may still leave its list.
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        return None
    # Bound for the rest of the request, not a tenant_context block: the page shows the contact
    # and the opt-out that follows writes it (audited) in this session, committed by the view.
    bind_tenant(session, tenant_id)
    contact = session.get(Contact, contact_id)
    if contact is None or contact.deleted_at is not None:
        return None
    return tenant, contact, channel


def opt_out(session, contact, channel: str, source: str) -> bool:
    """Record the opt-out once (audited through the tenant-bound session); a repeat keeps the
    first record and changes nothing. True when this call recorded it."""
    if getattr(contact, f"{channel}_consent") == "opted_out":
        return False
    set_consent(contact, channel, False, source)
    session.flush()
    return True
