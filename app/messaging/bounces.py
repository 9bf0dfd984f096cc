"""Bounces: which message an undeliverable-mail report is about, and what it means.

Every e-mail leaves with a VERP envelope sender, `bounces+<token>@<bounce domain>`, where the
token names the tenant and the outbox message and carries an HMAC of both. Mail servers send
their delivery status notifications (RFC 3464) to that address; an inbound-mail relay posts
each one raw to `/hooks/email/bounces/<webhook token>` (email_views.py), which finds the
tenant from the VERP token (a forged one is dropped) and stores the report. A worker then
parses it here: `Action: failed` with a 5.x.x status is a hard bounce (the message becomes
'bounced' and the contact's address is refused from then on); a 4.x.x failure only fails the
message; `delayed` and the other actions are informational."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.integrations.connectors import StatusUpdate
from app.messaging.models import OutboxMessage

log = logging.getLogger(__name__)

# Lower-case letters, digits and '-' only: some mail servers change the case of local parts,
# and a local part may not exceed 64 characters (RFC 5321), so no base64 here.
_VERP = re.compile(rb"bounces\+((?:p|\d+)-\d+-[0-9a-f]{20})@", re.IGNORECASE)
_SIGNATURE_HEX = 20  # 80 bits


def _signature(secret_key: str, tenant_part: str, message_id: str) -> str:
    mac = hmac.new(secret_key.encode(), f"verp:{tenant_part}:{message_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:_SIGNATURE_HEX]


def verp_token(secret_key: str, tenant_id: int | None, message_id: int) -> str:
    tenant_part = "p" if tenant_id is None else str(int(tenant_id))  # p: the platform's mail
    return f"{tenant_part}-{int(message_id)}-{_signature(secret_key, tenant_part, str(message_id))}"


def verp_address(secret_key: str, tenant_id: int | None, message_id: int, domain: str) -> str:
    """The envelope sender (MAIL FROM) of one outbox message: bounces come back to it."""
    return f"bounces+{verp_token(secret_key, tenant_id, message_id)}@{domain}"


def read_verp_token(secret_key: str, token: str) -> tuple[int | None, int] | None:
    """(tenant_id or None for the platform, message id), or None when the token is forged."""
    tenant_part, _, rest = token.lower().partition("-")
    message_id, _, signature = rest.partition("-")
    if not message_id.isdigit() or not (tenant_part == "p" or tenant_part.isdigit()):
        return None
    if not hmac.compare_digest(signature, _signature(secret_key, tenant_part, message_id)):
        return None
    return (None if tenant_part == "p" else int(tenant_part)), int(message_id)


def find_verp(secret_key: str, raw: bytes) -> tuple[int | None, int] | None:
    """The message a raw report is about: the first genuine VERP address in it. Relays put
    the address in different headers (To, Delivered-To, X-Original-To), and the returned
    headers of the original carry it as Return-Path, so the whole report is searched."""
    for match in _VERP.finditer(raw):
        found = read_verp_token(secret_key, match.group(1).decode())
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class RecipientReport:
    """One recipient's block of a delivery status notification."""

    recipient: str  # Final-Recipient (else Original-Recipient), without its "rfc822;" type
    action: str  # failed, delayed, delivered, relayed or expanded
    status: str  # the enhanced status code, such as 5.1.1
    diagnostic: str | None  # the remote server's words, such as "550 5.1.1 user unknown"

    @property
    def hard_bounce(self) -> bool:
        return self.action == "failed" and self.status.startswith("5.")


def _typed_value(value) -> str:
    """'rfc822; someone@example.com' -> 'someone@example.com' (RFC 3464 typed fields)."""
    text = " ".join(str(value or "").split())
    return text.partition(";")[2].strip() if ";" in text else text


def parse_dsn(raw: bytes) -> list[RecipientReport]:
    """The per-recipient reports of a DSN (multipart/report; report-type=delivery-status), or
    [] for anything else (an auto-reply or spam sent to a bounce address)."""
    report = message_from_bytes(raw, policy=policy.default)
    if report.get_content_type() != "multipart/report":
        return []
    if (report.get_param("report-type") or "").lower() != "delivery-status":
        return []
    recipients = []
    for part in report.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        # The parser gives one block per group of fields: first the per-message fields
        # (Reporting-MTA ...), then one block per recipient.
        for block in part.get_payload():
            action = str(block.get("Action") or "").strip().lower()
            if not action:
                continue
            recipient = _typed_value(
                block.get("Final-Recipient") or block.get("Original-Recipient")
            )
            status = (str(block.get("Status") or "").split() or [""])[0]
            diagnostic = _typed_value(block.get("Diagnostic-Code")) or None
            recipients.append(RecipientReport(recipient, action, status, diagnostic))
    return recipients


def mark_bounced(session: Session, contact_id: int, address: str, reason: str) -> bool:
    """Refuse e-mail to a contact's address after a hard bounce, unless the contact has a
    different address by now. The session is bound to the contact's tenant (audited)."""
    from app.clients.models import Contact

    contact = session.get(Contact, contact_id)
    if contact is None or (contact.email or "").lower() != address.lower():
        return False
    if contact.email_bounced_at is None:
        contact.email_bounced_at = datetime.now(UTC)
        contact.email_bounce_reason = reason[:255]
        session.flush()
    return True


def process_webhook(session: Session, event) -> list[StatusUpdate]:
    """A stored bounce report (webhooks.PROCESSORS["email_bounce"]), in a session bound to
    the event's tenant: status updates for the message, and the contact marked hard-bounced."""
    raw = event.body.encode()
    found = find_verp(current_app.config["SECRET_KEY"], raw)
    if found is None or found[0] != event.tenant_id:
        return []
    tenant_id, message_id = found
    owner = OutboxMessage.of_tenant(tenant_id)
    message = session.scalar(select(OutboxMessage).where(OutboxMessage.id == message_id, owner))
    if message is None:
        return []
    now = datetime.now(UTC)
    updates = []
    # Each message has one recipient, so every failed block of its report is about it, even
    # when a forwarding server names another final recipient.
    for report in parse_dsn(raw):
        if report.action != "failed":
            continue
        error = report.diagnostic or f"undeliverable (status {report.status or 'unknown'})"
        updates.append(
            StatusUpdate(
                provider="smtp",
                provider_message_id=message.provider_message_id or "",
                status="bounced" if report.hard_bounce else "failed",
                at=now,
                error=error,
                idempotency_key=message.idempotency_key,
            )
        )
        if report.hard_bounce and message.contact_id is not None and tenant_id is not None:
            mark_bounced(session, message.contact_id, message.recipient, error)
    log.info(
        "bounce report for message %s of tenant %s: %s",
        message_id,
        tenant_id,
        [update.status for update in updates] or "informational",
    )
    return updates
