"""Pay links: made, reused, revoked, and read back from their token.

A token is `[tenant id, link id, nonce]` signed with SECRET_KEY (itsdangerous, its own salt).
The signature makes it unguessable and untamperable; the tenant id inside lets the public page
find the workspace without a login or a slug in the URL; the row it names says whether the link
still works. Nothing about money is in the token: the page reads what is owed when it opens and
again when the payer pays.

Links expire after the workspace's `link_days` (60 by default): long enough for the usual 30 to
45 days' terms with time to spare, short enough that a forwarded or leaked message stops
opening the account within two months. A message about an invoice or notice reuses its live
link while it has at least REUSE_MARGIN left, so a client who got three reminders holds one
link, and revoking it (on the invoice page) shuts the door once."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.collections.models import CollectionNotice, CollectionNoticeInvoice
from app.invoicing.models import Invoice
from app.paylinks.models import PayLink, PayPageSettings
from tenants.binding import bind_tenant, bound_tenant_id
from tenants.models import Tenant

_SALT = "duebook.pay-link"
REUSE_MARGIN = timedelta(days=7)
MAX_LINK_DAYS = 365


def pay_page_settings(session: Session) -> PayPageSettings:
    """The tenant's pay page settings (row 1), made with the defaults if missing."""
    settings = session.get(PayPageSettings, 1)
    if settings is None:
        settings = PayPageSettings(id=1)
        session.add(settings)
        session.flush()
        session.refresh(settings)
    return settings


def save_settings(session: Session, values) -> dict[str, str]:
    """Save the pay page settings form; errors by field, nothing saved when there are any."""
    raw_days = (values.get("link_days") or "").strip()
    if not raw_days.isdigit() or not 1 <= int(raw_days) <= MAX_LINK_DAYS:
        return {"link_days": f"A whole number of days from 1 to {MAX_LINK_DAYS}."}
    settings = pay_page_settings(session)
    settings.allow_partial_payment = values.get("allow_partial_payment") == "on"
    settings.link_days = int(raw_days)
    settings.updated_at = datetime.now(UTC)
    session.flush()
    return {}


# Tokens ------------------------------------------------------------------------------------


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def make_token(tenant_id: int, link: PayLink) -> str:
    return _serializer().dumps([int(tenant_id), int(link.id), link.nonce])


def read_token(token: str) -> tuple[int, int, str] | None:
    """(tenant id, link id, nonce), or None for a forged, tampered or mangled token."""
    try:
        tenant_id, link_id, nonce = _serializer().loads(token)
    except (BadSignature, TypeError, ValueError):
        return None
    if not (isinstance(tenant_id, int) and isinstance(link_id, int) and isinstance(nonce, str)):
        return None
    return tenant_id, link_id, nonce


def pay_url(tenant_id: int, link: PayLink) -> str:
    """The absolute link, built outside any request too (a worker writing a message): BASE_URL,
    else the local dev server, as the unsubscribe links are."""
    base = urlsplit(
        current_app.config.get("BASE_URL") or f"http://127.0.0.1:{os.environ.get('PORT', '5000')}"
    )
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "https"
    )
    return adapter.build(
        "pay_page.page", {"token": make_token(tenant_id, link)}, force_external=True
    )


# Making and reusing ------------------------------------------------------------------------


def _live(session: Session, **what) -> PayLink | None:
    """The newest link for `what` that works for at least REUSE_MARGIN more."""
    query = select(PayLink).where(
        PayLink.revoked_at.is_(None),
        PayLink.expires_at > datetime.now(UTC) + REUSE_MARGIN,
        *(getattr(PayLink, column) == value for column, value in what.items()),
    )
    return session.scalar(query.order_by(PayLink.id.desc()).limit(1))


def link_for_invoice(session: Session, invoice: Invoice, user_id: int | None = None) -> PayLink:
    return _live(session, kind="invoice", invoice_id=invoice.id) or _new(
        session, "invoice", invoice.client_id, user_id, invoice_id=invoice.id
    )


def link_for_notice(
    session: Session, notice: CollectionNotice, user_id: int | None = None
) -> PayLink:
    return _live(session, kind="notice", notice_id=notice.id) or _new(
        session, "notice", notice.client_id, user_id, notice_id=notice.id
    )


def link_for_client(session: Session, client_id: int, user_id: int | None = None) -> PayLink:
    """The client's "everything you owe" link."""
    return _live(session, kind="client", client_id=client_id) or _new(
        session, "client", client_id, user_id
    )


def _new(session: Session, kind: str, client_id: int, user_id: int | None, **target) -> PayLink:
    days = pay_page_settings(session).link_days
    link = PayLink(
        kind=kind,
        client_id=client_id,
        nonce=secrets.token_urlsafe(16),
        expires_at=datetime.now(UTC) + timedelta(days=days),
        created_by=user_id,
        **target,
    )
    session.add(link)
    session.flush()
    return link


def shown_links(session: Session, invoice: Invoice) -> list[PayLink]:
    """The links of the invoice, of the notices that name it and of its client, newest first,
    that have not expired: what the invoice page shows (with Revoke) so that a leaked link can
    be shut."""
    now = datetime.now(UTC)
    return list(
        session.scalars(
            select(PayLink)
            .where(
                PayLink.client_id == invoice.client_id,
                PayLink.expires_at > now,
                (PayLink.invoice_id == invoice.id)
                | (PayLink.kind == "client")
                | PayLink.notice_id.in_(
                    select(CollectionNoticeInvoice.notice_id).where(
                        CollectionNoticeInvoice.invoice_id == invoice.id
                    )
                ),
            )
            .order_by(PayLink.id.desc())
        )
    )


def revoke(session: Session, link: PayLink, user_id: int | None) -> None:
    if link.revoked_at is None:
        link.revoked_at = datetime.now(UTC)
        link.revoked_by = user_id
        session.flush()


def message_pay_link(
    session: Session, *, invoice_id: int | None = None, notice_id: int | None = None
) -> str:
    """The port message templates call (`app.message_templates.facts.pay_link`): the URL of the
    live link of the notice, else of the invoice, made if there is none. Drafts get none."""
    tenant_id = bound_tenant_id(session)
    if notice_id is not None:
        notice = session.get(CollectionNotice, notice_id)
        if notice is not None:
            return pay_url(tenant_id, link_for_notice(session, notice))
    invoice = session.get(Invoice, invoice_id) if invoice_id is not None else None
    if invoice is None or invoice.status == "draft":
        return ""
    return pay_url(tenant_id, link_for_invoice(session, invoice))


# Opening a link ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenedLink:
    tenant: Tenant
    link: PayLink
    # "open", "revoked" or "expired" (a paid one is open: the page says that nothing is owed).
    state: str


def open_link(session: Session, token: str) -> OpenedLink | None:
    """The link a token names, with `session` bound to its workspace; None for a forged token,
    a link that does not exist (a nonce that does not match included) or a workspace that is
    gone or suspended: the page then says only that the link is not valid."""
    found = read_token(token)
    if found is None:
        return None
    tenant_id, link_id, nonce = found
    tenant = session.get(Tenant, tenant_id)
    if tenant is None or not tenant.is_active:
        return None
    # Bound for the rest of the request: the page reads the workspace's invoices.
    bind_tenant(session, tenant_id)
    link = session.get(PayLink, link_id)
    if link is None or not secrets.compare_digest(link.nonce, nonce):
        return None
    if link.revoked_at is not None:
        state = "revoked"
    elif link.expires_at <= datetime.now(UTC):
        state = "expired"
    else:
        state = "open"
    return OpenedLink(tenant, link, state)
