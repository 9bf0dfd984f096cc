"""Bounces: which message an undeliverable-mail report is about, and what it means.

Every e-mail leaves with a VERP envelope sender, `bounces+<token>@<bounce domain>`, where the
token names the tenant and the outbox message and carries an HMAC of both
(`app.integrations.connectors.verp`: the SMTP connector writes it). Mail servers send
their delivery status notifications (RFC 3464) to that address; an inbound-mail relay posts
each one raw to `/hooks/email/bounces/<webhook token>` (email_views.py), which finds the
tenant from the VERP token (a forged one is dropped) and stores the report. A worker then
parses it here: `Action: failed` with a 5.x.x status is a hard bounce (the message becomes
'bounced' and the contact's address is refused from then on); a 4.x.x failure only fails the
message; `delayed` and the other actions are informational."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clients.models import Contact
from app.integrations.connectors import StatusUpdate
from app.integrations.connectors.verp import find_verp
from app.outbox.models import OutboxMessage

log = logging.getLogger(__name__)


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
