"""The templates every workspace starts with: e-mail, WhatsApp and SMS for the invoice, the four
collection notices and the receipt, in English. Polite at first, firmer as a notice escalates.

WhatsApp bodies follow the format of `rendering.py`: the text as it would be submitted to Meta
with {{1}}, {{2}} ..., a `---` line, then the variable of each placeholder, one a line. SMS
texts are short enough for two segments and need the tenant's DLT template id before an Indian
gateway will deliver them.
"""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.campaigns.models import MessageTemplate

SIGN_OFF = "Regards,\nAccounts team\n{{ tenant.legal_name }}"

EMAIL = {
    "invoice": (
        "Invoice {{ invoice.number }} from {{ tenant.name }} for {{ invoice.total }}",
        "Dear {{ contact.first_name }},\n\n"
        "Please find our invoice {{ invoice.number }} dated {{ invoice.date }} for "
        "{{ invoice.total }}, payable by {{ invoice.due_date }}.\n\n"
        "{% if payment_link %}You can pay by UPI using this link: {{ payment_link }}\n\n{% endif %}"
        "Kindly quote the invoice number with your payment. Do write to us if anything in the "
        "invoice needs a correction.\n\nThank you for your business.\n\n" + SIGN_OFF,
    ),
    "notice_1": (
        "Reminder: invoice {{ invoice.number }} was due on {{ invoice.due_date }}",
        "Dear {{ contact.first_name }},\n\n"
        "This is a gentle reminder that invoice {{ invoice.number }} for {{ invoice.total }} was "
        "due on {{ invoice.due_date }}. Our records show {{ invoice.balance }} as outstanding.\n\n"
        "{% if payment_link %}You can pay by UPI using this link: {{ payment_link }}\n\n{% endif %}"
        "If you have already made the payment, please share the UTR or cheque details so that we "
        "can update our books, and kindly ignore this reminder.\n\n" + SIGN_OFF,
    ),
    "notice_2": (
        "Second reminder: {{ invoice.balance }} overdue on invoice {{ invoice.number }}",
        "Dear {{ contact.first_name }},\n\n"
        "We have not yet received payment of {{ invoice.balance }} against invoice "
        "{{ invoice.number }}, which was due on {{ invoice.due_date }} and is now "
        "{{ invoice.days_overdue }} days overdue.\n\n"
        "We request you to arrange the payment within the next 7 days. If there is any issue "
        "with the invoice, please let us know at the earliest so that we can resolve it.\n\n"
        "{% if payment_link %}UPI payment link: {{ payment_link }}\n\n{% endif %}" + SIGN_OFF,
    ),
    "notice_final": (
        "Final notice: invoice {{ invoice.number }} is {{ invoice.days_overdue }} days overdue",
        "Dear {{ contact.first_name }},\n\n"
        "Despite our earlier reminders, {{ invoice.balance }} remains unpaid on invoice "
        "{{ invoice.number }}, due on {{ invoice.due_date }}.\n\n"
        "This is our final notice. Please clear the outstanding amount within 7 days of this "
        "e-mail. If we do not receive the payment or hear from you by then, we will have to put "
        "further supplies on hold and take the matter forward as per our terms.\n\n"
        "{% if payment_link %}UPI payment link: {{ payment_link }}\n\n{% endif %}" + SIGN_OFF,
    ),
    "notice_legal": (
        "Notice before legal action: invoice {{ invoice.number }}",
        "Dear {{ contact.first_name }},\n\n"
        "Invoice {{ invoice.number }} for {{ invoice.total }} was due on {{ invoice.due_date }}. "
        "An amount of {{ invoice.balance }} is still outstanding after {{ invoice.days_overdue }} "
        "days and several reminders.\n\n"
        "Unless the full amount is paid within 15 days of this notice, we will initiate legal "
        "proceedings for its recovery, together with interest and costs, without any further "
        "reference to you.\n\n"
        "If the payment has been made, please send us the proof of payment immediately.\n\n"
        + SIGN_OFF,
    ),
    "receipt": (
        "Payment received for invoice {{ invoice.number }}",
        "Dear {{ contact.first_name }},\n\n"
        "Thank you. We have received your payment against invoice {{ invoice.number }}. "
        "{% if invoice.balance != invoice.total %}The balance now due on it is "
        "{{ invoice.balance }}.{% endif %}\n\n"
        "We appreciate your prompt payment.\n\n" + SIGN_OFF,
    ),
}

# (approved text with numbered placeholders, parameters one a line)
WHATSAPP = {
    "invoice": (
        "Dear {{1}}, invoice {{2}} for {{3}} from {{4}} is payable by {{5}}. "
        "Thank you for your business.",
        [
            "contact.first_name",
            "invoice.number",
            "invoice.total",
            "tenant.name",
            "invoice.due_date",
        ],
    ),
    "notice_1": (
        "Dear {{1}}, a gentle reminder that invoice {{2}} for {{3}} was due on {{4}}. "
        "If already paid, kindly share the UTR. - {{5}}",
        [
            "contact.first_name",
            "invoice.number",
            "invoice.balance",
            "invoice.due_date",
            "tenant.name",
        ],
    ),
    "notice_2": (
        "Dear {{1}}, {{2}} against invoice {{3}} is now {{4}} days overdue. "
        "Please arrange the payment within 7 days. - {{5}}",
        [
            "contact.first_name",
            "invoice.balance",
            "invoice.number",
            "invoice.days_overdue",
            "tenant.name",
        ],
    ),
    "notice_final": (
        "Final notice: {{1}} remains unpaid on invoice {{2}}, due on {{3}}. Please pay within "
        "7 days to avoid supplies being put on hold. - {{4}}",
        ["invoice.balance", "invoice.number", "invoice.due_date", "tenant.name"],
    ),
    "notice_legal": (
        "Notice: {{1}} on invoice {{2}} is {{3}} days overdue. Unless paid within 15 days we "
        "will initiate legal proceedings for recovery. - {{4}}",
        ["invoice.balance", "invoice.number", "invoice.days_overdue", "tenant.name"],
    ),
    "receipt": (
        "Dear {{1}}, thank you. We have received your payment against invoice {{2}}. - {{3}}",
        ["contact.first_name", "invoice.number", "tenant.name"],
    ),
}

SMS = {
    "invoice": "Dear {{ contact.first_name }}, invoice {{ invoice.number }} for "
    "{{ invoice.total }} is due on {{ invoice.due_date }}. - {{ tenant.name }}",
    "notice_1": "Reminder: invoice {{ invoice.number }} for {{ invoice.balance }} was due on "
    "{{ invoice.due_date }}. Please ignore if paid. - {{ tenant.name }}",
    "notice_2": "{{ invoice.balance }} on invoice {{ invoice.number }} is "
    "{{ invoice.days_overdue }} days overdue. Kindly pay within 7 days. - {{ tenant.name }}",
    "notice_final": "FINAL NOTICE: {{ invoice.balance }} unpaid on invoice {{ invoice.number }}. "
    "Pay within 7 days to avoid supplies on hold. - {{ tenant.name }}",
    "notice_legal": "{{ invoice.balance }} on invoice {{ invoice.number }} is overdue. Unless paid "
    "in 15 days we will start legal recovery. - {{ tenant.name }}",
    "receipt": "Thank you. Payment received against invoice {{ invoice.number }}. "
    "- {{ tenant.name }}",
}

NAMES = {
    "invoice": "Invoice",
    "notice_1": "1st notice",
    "notice_2": "2nd notice",
    "notice_final": "Final notice",
    "notice_legal": "Legal notice",
    "receipt": "Receipt",
}
PURPOSES = tuple(NAMES)


def default_template(channel: str, purpose: str) -> MessageTemplate:
    """A new (unsaved) default template of this channel and purpose, in English."""
    template = MessageTemplate(name=NAMES[purpose], channel=channel, purpose=purpose,
                               language="en")  # fmt: skip
    if channel == "email":
        template.subject, template.body = EMAIL[purpose]
    elif channel == "whatsapp":
        approved, params = WHATSAPP[purpose]
        template.body = approved + "\n---\n" + "\n".join(f"{{{{ {p} }}}}" for p in params)
        template.provider_template_name = f"duebook_{purpose}"
    else:
        template.body = SMS[purpose]
    return template


def ensure_defaults(session: Session) -> int:
    """Create the defaults this workspace never had (idempotent: a default that was edited or
    deleted is not brought back). Returns how many were created."""
    from tenants.binding import bound_tenant_id

    # Two first visits at once must not both create the set.
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('message_template_defaults'), :tenant)"),
        {"tenant": bound_tenant_id(session) or 0},
    )
    existing = set(
        session.execute(
            select(MessageTemplate.channel, MessageTemplate.purpose)
            .where(MessageTemplate.language == "en")
            .group_by(MessageTemplate.channel, MessageTemplate.purpose)
        ).all()
    )
    created = 0
    for channel in ("email", "whatsapp", "sms"):
        for purpose in PURPOSES:
            if (channel, purpose) not in existing:
                session.add(default_template(channel, purpose))
                created += 1
    if created:
        session.flush()
    return created
