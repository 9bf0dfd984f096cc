"""What a contact's WhatsApp message means here (the connector parses Meta's webhook into plain
values; this applies them): it opens the 24 h session window, marks the message it answers
replied, and STOP / UNSUBSCRIBE records a WhatsApp opt-out. Template status changes in the
same body go to message_templates."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.clients.models import Contact
from app.clients.services import set_consent
from app.integrations.connectors import StatusUpdate
from app.integrations.connectors.whatsapp import PROVIDER, InboundMessage, parse_webhook
from app.message_templates.provider_status import set_template_status
from app.outbox.models import OutboxMessage

OPT_OUT_WORDS = ("STOP", "UNSUBSCRIBE")


def process_whatsapp_webhook(session: Session, event) -> list[StatusUpdate]:
    """The status reports of one stored webhook body (of the bound tenant), after applying its
    inbound messages (24 h window, replies, STOP) and template status changes
    (webhooks.PROCESSORS["whatsapp_cloud"])."""
    report = parse_webhook(event.body, event.received_at)
    for message in report.messages:
        apply_inbound_message(session, event.tenant_id, message)
    for change in report.templates:
        set_template_status(session, change.name, change.language, change.state)
    return report.statuses


def apply_inbound_message(session: Session, tenant_id: int | None, message: InboundMessage) -> None:
    """A contact wrote to the tenant's number: the 24 h session window opens (from the time
    they wrote, never later than we heard of it), a reply to one of our messages marks it
    replied, STOP / UNSUBSCRIBE records a WhatsApp opt-out."""
    if not message.sender or tenant_id is None:
        return
    at = message.at
    contacts = session.scalars(
        select(Contact).where(Contact.phone == f"+{message.sender}", Contact.deleted_at.is_(None))
    ).all()
    opt_out = message.text.strip().strip(".!").upper() in OPT_OUT_WORDS
    for contact in contacts:
        if contact.whatsapp_last_inbound_at is None or contact.whatsapp_last_inbound_at < at:
            contact.whatsapp_last_inbound_at = at
        if opt_out and contact.whatsapp_consent != "opted_out":
            set_consent(contact, "whatsapp", False, "WhatsApp STOP reply")
    if message.replied_to:
        session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.of_tenant(tenant_id),
                OutboxMessage.provider == PROVIDER,
                OutboxMessage.provider_message_id == message.replied_to,
            )
            .values(replied_at=func.coalesce(OutboxMessage.replied_at, at)),
            execution_options={"synchronize_session": False},
        )
    session.flush()
