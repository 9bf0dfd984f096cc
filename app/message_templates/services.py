"""Message templates: listed, checked, saved, previewed with real data, and picked for a send
(by channel, purpose and the contact's language). Rendering is in `rendering.py`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.clients.models import Client, Contact
from app.core.clock import tenant_today
from app.invoicing.balance import open_invoices
from app.invoicing.models import Invoice
from app.message_templates import defaults
from app.message_templates.facts import late_interest
from app.message_templates.models import TEMPLATE_CHANNELS, TEMPLATE_PURPOSES, MessageTemplate
from app.message_templates.rendering import (
    TemplateProblem,
    message_context,
    notice_vars,
    render_for_channel,
    sample_records,
    template_errors,
)

PURPOSE_LABELS = {**defaults.NAMES, "campaign": "Campaign"}
CHANNEL_LABELS = {"email": "E-mail", "whatsapp": "WhatsApp", "sms": "SMS"}
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:[_-][A-Za-z]{2,4})?")
_META_NAME = re.compile(r"[a-z0-9_]{1,512}")


# Templates ---------------------------------------------------------------------------------


def list_templates(session: Session) -> list[MessageTemplate]:
    defaults.ensure_defaults(session)
    return list(
        session.scalars(
            select(MessageTemplate)
            .where(MessageTemplate.deleted_at.is_(None))
            .order_by(
                MessageTemplate.channel,
                MessageTemplate.purpose,
                MessageTemplate.language,
                func.lower(MessageTemplate.name),
            )
        )
    )


def get_template(session: Session, template_id: int) -> MessageTemplate | None:
    template = session.get(MessageTemplate, template_id)
    return template if template is not None and template.deleted_at is None else None


def language_of(contact: Contact | None, client: Client | None = None) -> str:
    """The language messages to `contact` are written in: theirs, else their client's, else
    English."""
    chosen = contact.preferred_language if contact is not None else None
    return chosen or (client.preferred_language if client is not None else None) or "en"


def template_for(session: Session, channel: str, purpose: str, language: str = "en"):
    """The workspace's template for this channel and purpose in `language`, else in English
    (the defaults are created the first time; a deleted English one is made again, since a
    send needs words)."""
    defaults.ensure_defaults(session)
    for lang in dict.fromkeys((language or "en", "en")):
        template = session.scalar(
            select(MessageTemplate)
            .where(
                MessageTemplate.channel == channel,
                MessageTemplate.purpose == purpose,
                MessageTemplate.language == lang,
                MessageTemplate.deleted_at.is_(None),
            )
            .order_by(MessageTemplate.updated_at.desc(), MessageTemplate.id.desc())
        )
        if template is not None:
            return template
    template = defaults.default_template(channel, purpose, defaults.workspace_country(session))
    session.add(template)
    session.flush()
    return template


def template_values(template: MessageTemplate | None) -> dict[str, str]:
    if template is None:
        return {"channel": "email", "purpose": "campaign", "language": "en"}
    return {
        key: str(getattr(template, key) or "")
        for key in (
            "name",
            "channel",
            "purpose",
            "language",
            "subject",
            "body",
            "provider_template_name",
            "dlt_template_id",
            "gateway_template_id",
        )
    }


def check_template(
    session: Session, raw: Mapping, template: MessageTemplate | None = None
) -> tuple[dict, dict[str, str]]:
    """Cleaned values and errors by field for a new template or an edit (the channel of an
    existing template does not change)."""
    values = {
        key: (raw.get(key) or "").strip()
        for key in template_values(None)
        | {
            "name": "",
            "subject": "",
            "provider_template_name": "",
            "dlt_template_id": "",
            "gateway_template_id": "",
        }
    }
    values["body"] = (raw.get("body") or "").replace("\r\n", "\n").strip("\n")
    if template is not None:
        values["channel"] = template.channel
    errors: dict[str, str] = {}
    if values["channel"] not in TEMPLATE_CHANNELS:
        errors["channel"] = "Choose e-mail, WhatsApp or SMS."
    if values["purpose"] not in TEMPLATE_PURPOSES:
        errors["purpose"] = "Choose what the template is for."
    if not _LANGUAGE.fullmatch(values["language"]):
        errors["language"] = "A language code such as en, hi or ta."
    if not 2 <= len(values["name"]) <= 100:
        errors["name"] = "Give it a name of 2 to 100 characters."
    elif values["channel"] in TEMPLATE_CHANNELS and _name_taken(session, values, template):
        errors["name"] = "Another template of this channel and language has this name."
    if values["channel"] == "whatsapp" and not _META_NAME.fullmatch(
        values["provider_template_name"]
    ):
        errors["provider_template_name"] = (
            "The template's name at Meta: lower-case letters, digits and underscores."
        )
    if values["channel"] != "email":
        values["subject"] = ""
    if values["channel"] != "whatsapp":
        values["provider_template_name"] = ""
    if values["channel"] != "sms":
        values["dlt_template_id"] = values["gateway_template_id"] = ""
    elif values["dlt_template_id"] and not values["dlt_template_id"].isdigit():
        errors["dlt_template_id"] = "The DLT template id is a number (19 digits, usually)."
    if values["channel"] in TEMPLATE_CHANNELS:
        errors.update(template_errors(values["channel"], values["subject"], values["body"]))
    return values, errors


def _name_taken(session: Session, values: dict, template: MessageTemplate | None) -> bool:
    query = select(MessageTemplate.id).where(
        MessageTemplate.channel == values["channel"],
        MessageTemplate.language == values["language"],
        func.lower(MessageTemplate.name) == values["name"].lower(),
        MessageTemplate.deleted_at.is_(None),
    )
    if template is not None:
        query = query.where(MessageTemplate.id != template.id)
    return session.scalar(query) is not None


def save_template(
    session: Session, raw: Mapping, template: MessageTemplate | None = None
) -> tuple[MessageTemplate | None, dict[str, str]]:
    values, errors = check_template(session, raw, template)
    if errors:
        return None, errors
    if template is None:
        template = MessageTemplate(channel=values["channel"])
        session.add(template)
    elif template.channel == "whatsapp" and (
        template.body != values["body"]
        or template.provider_template_name != values["provider_template_name"]
    ):
        # Another text or name is another template at Meta: its approval is not known yet.
        template.provider_status, template.provider_synced_at = None, None
    for key in ("name", "purpose", "language", "body"):
        setattr(template, key, values[key])
    for key in ("subject", "provider_template_name", "dlt_template_id", "gateway_template_id"):
        setattr(template, key, values[key] or None)
    template.updated_at = datetime.now(UTC)
    session.flush()
    return template, {}


@dataclass
class Preview:
    rendered: object | None
    errors: dict[str, str]
    client: Client | None
    contact: Contact | None
    invoice: object | None


def preview(session: Session, tenant, raw: Mapping, template=None) -> Preview:
    """The message as the chosen (or the most recent) invoice's contact would get it."""

    values, errors = check_template(session, raw, template)
    errors.pop("name", None)  # the preview is about the text; the name is checked on saving
    invoice_id = _int(raw.get("preview_invoice"))
    contact_id = _int(raw.get("preview_contact"))
    client, contact, invoice = sample_records(session, invoice_id, contact_id)
    rendered = None
    if client is not None and not errors and values["channel"] in TEMPLATE_CHANNELS:
        draft = MessageTemplate(
            **{
                k: values[k] or None
                for k in (
                    "channel",
                    "subject",
                    "body",
                    "language",
                    "provider_template_name",
                    "dlt_template_id",
                    "gateway_template_id",
                )
            }
        )
        draft.body = values["body"]
        context = message_context(
            session,
            tenant,
            client,
            contact,
            invoice,
            _notice_level(values["purpose"]),
            preview=True,
            language=values["language"],
        )
        if invoice is not None and _notice_level(values["purpose"]):
            context["notice"] = (
                _notice_preview(session, tenant, invoice, values["purpose"], values["language"])
                or context["notice"]
            )
        try:
            rendered = render_for_channel(draft, context)
        except TemplateProblem as problem:
            errors[problem.field] = problem.message
    return Preview(rendered, errors, client, contact, invoice)


def _notice_level(purpose: str) -> str | None:
    return purpose if purpose.startswith("notice_") else None


def _notice_preview(session: Session, tenant, invoice, purpose: str, language: str) -> dict | None:
    """The `notice` variables as a notice to the invoice's client would have them: its open
    invoices in the invoice's currency, oldest due first, with their late-payment interest.
    None when the chosen invoice owes nothing (the variables of that invoice alone then)."""

    owing = [
        o
        for o in open_invoices(session, invoice.client_id)
        if o.outstanding > 0 and o.invoice.currency == invoice.currency
    ]
    if invoice.id not in {o.invoice.id for o in owing}:
        return None
    owing.sort(key=lambda o: (o.invoice.due_date or date.max, o.invoice.id))
    interest = late_interest(session, [o.invoice for o in owing], tenant_today(session))
    charged = sum(interest.values(), Decimal("0.00"))
    outstanding = sum((o.outstanding for o in owing), Decimal("0.00"))
    return notice_vars(
        tenant,
        purpose,
        invoice.currency,
        [o.invoice.number for o in owing],
        outstanding + charged,
        charged,
        language,
    )


def _int(value) -> int | None:
    value = (value or "").strip() if isinstance(value, str) else value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def preview_choices(session: Session, client: Client | None):
    """Recent invoices and the contacts of the previewed client, for the preview's pickers."""

    invoices = session.execute(
        select(Invoice.id, Invoice.number, Client.short_name)
        .join(Client, Client.id == Invoice.client_id)
        .order_by(Invoice.issue_date.desc().nulls_last(), Invoice.id.desc())
        .limit(50)
    ).all()
    contacts = []
    if client is not None:
        contacts = session.scalars(
            select(Contact)
            .where(Contact.client_id == client.id, Contact.deleted_at.is_(None))
            .order_by(Contact.id)
        ).all()
    return invoices, contacts
