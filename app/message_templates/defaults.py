"""The templates every workspace starts with: e-mail, WhatsApp and SMS for the invoice, the four
collection notices and the receipt, in English. Polite at first, firmer as a notice escalates.

WhatsApp bodies follow the format of `rendering.py`: the text as it would be submitted to Meta
with {{1}}, {{2}} ..., a `---` line, then the expression of each placeholder, one a line. SMS
texts are short enough for two segments and need the tenant's DLT template id before an Indian
gateway will deliver them. The notice texts read right for one invoice and for several: they
speak of `notice.total` and name the invoices through `notice.invoice_count` and
`notice.invoice_numbers`. The invoice and notice texts carry `pay_link`, the client's pay page
(one live link per invoice or notice, reused by every message about it).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.core.terminology import reworded
from app.message_templates.models import MessageTemplate
from app.settings.regional import RegionalEffect
from tenants.binding import bound_tenant_id
from tenants.models import Tenant

SIGN_OFF = "Regards,\nAccounts team\n{{ tenant.legal_name }}"
# A notice names one invoice or several: "invoice INV/7" or "3 invoices (INV/7, INV/9, INV/12)".
# (`invoice` is the notice's oldest due; `notice.total` what it asks in all.)
ONE = "notice.invoice_count == 1"
SEVERAL = "{{ notice.invoice_count }} invoices ({{ notice.invoice_numbers }})"
WHICH = (
    "{% if " + ONE + " %}invoice {{ notice.invoice_numbers }}{% else %}" + SEVERAL + "{% endif %}"
)
WHICH_SHORT = (
    "{% if " + ONE + " %}invoice {{ notice.invoice_numbers }}{% else %}"
    "{{ notice.invoice_count }} invoices{% endif %}"
)
WHICH_WAS_DUE = (
    "{% if " + ONE + " %}invoice {{ notice.invoice_numbers }} was due on "
    "{{ invoice.due_date }}{% else %}" + SEVERAL + " are past their due dates, the "
    "oldest since {{ invoice.due_date }}{% endif %}"
)
DUE_AND_LATE = (
    "{% if " + ONE + " %}due on {{ invoice.due_date }} and now "
    "{{ invoice.days_overdue }} days overdue{% else %}the oldest due on "
    "{{ invoice.due_date }} and now {{ invoice.days_overdue }} days overdue"
    "{% endif %}"
)
INCLUDING = "{% if notice.interest %}, including interest of {{ notice.interest }}{% endif %}"
# WhatsApp and SMS texts are fixed (approved by Meta, registered on DLT): what varies between one
# invoice and several has to be one parameter or variable, so it is one expression.
WHICH_EXPRESSION = (
    "'invoice ' ~ notice.invoice_numbers if " + ONE + " else "
    "notice.invoice_count ~ ' invoices (' ~ notice.invoice_numbers ~ ')'"
)


@dataclass(frozen=True)
class CountryWords:
    """What the English defaults say differently by the workspace's country: UPI is India's
    (an Australian or Philippine client never sees a UPI line or is asked for a UTR), an
    Australian GST-registered business sends a "tax invoice" (as its PDF is titled), and a
    Philippine client that withheld tax is asked for the BIR Form 2307 it owes the supplier."""

    # What the regional settings page says of them.
    summary: str = (
        "The default texts offer no UPI link and ask a client who has paid for the payment "
        "reference."
    )
    invoice: str = "invoice"
    upi_line: str = ""
    upi_short_line: str = ""
    proof: str = "the payment reference"
    proof_short: str = "the payment reference"
    receipt_note: str = ""


COUNTRY_WORDS = {
    "IN": CountryWords(
        summary="The default invoice, notice and receipt texts offer a UPI link and ask a "
        "client who has paid for the UTR or cheque details.",
        upi_line="{% if payment_link %}You can pay by UPI using this link: {{ payment_link }}"
        "\n\n{% endif %}",
        upi_short_line="{% if payment_link %}UPI payment link: {{ payment_link }}\n\n{% endif %}",
        proof="the UTR or cheque details",
        proof_short="the UTR",
    ),
    "AU": CountryWords(
        summary='The default texts call the invoice a "tax invoice", as its PDF is titled, '
        "offer no UPI link, and ask a client who has paid for the payment reference or "
        "remittance advice.",
        invoice="tax invoice",
        proof="the payment reference or remittance advice",
    ),
    # Since the Ease of Paying Taxes Act the invoice is the document of a sale in the
    # Philippines; a client that withholds creditable tax gives the supplier BIR Form 2307.
    "PH": CountryWords(
        summary="The default texts offer no UPI link, ask a client who has paid for the bank "
        "transfer reference or deposit slip, and a receipt asks a client that withheld tax "
        "for BIR Form 2307.",
        proof="the bank transfer reference or deposit slip",
        receipt_note="If you withheld tax from this payment, kindly send us BIR Form 2307 "
        "for it.\n\n",
    ),
}
# Any other country: neither India's payment words nor another country's.
ELSEWHERE = CountryWords()


def country_words(country: str | None) -> CountryWords:
    return COUNTRY_WORDS.get((country or "IN").upper(), ELSEWHERE)


def _email(words: CountryWords) -> dict[str, tuple[str, str]]:
    return {
        "invoice": (
            words.invoice.capitalize()
            + " {{ invoice.number }} from {{ tenant.name }} for {{ invoice.total }}",
            "Dear {{ contact.first_name }},\n\n"
            "Please find our "
            + words.invoice
            + " {{ invoice.number }} dated {{ invoice.date }} for "
            "{{ invoice.total }}, payable by {{ invoice.due_date }}.\n\n"
            "{% if pay_link %}See and pay it online: {{ pay_link }}\n\n{% endif %}"
            + words.upi_line
            + "Kindly quote the invoice number with your payment. Do write to us if anything in "
            "the invoice needs a correction.\n\nThank you for your business.\n\n" + SIGN_OFF,
        ),
        "notice_1": (
            "Reminder: {% if notice.invoice_count == 1 %}invoice {{ notice.invoice_numbers }} was "
            "due on {{ invoice.due_date }}{% else %}" + SEVERAL + " are past due{% endif %}",
            "Dear {{ contact.first_name }},\n\n"
            "This is a gentle reminder that " + WHICH_WAS_DUE + ". Our records show "
            "{{ notice.total }} as outstanding" + INCLUDING + ".\n\n"
            "{% if pay_link %}See and pay online: {{ pay_link }}\n\n{% endif %}"
            + words.upi_line
            + "If you have already made the payment, please share "
            + words.proof
            + " so that we "
            "can update our books, and kindly ignore this reminder.\n\n" + SIGN_OFF,
        ),
        "notice_2": (
            "Second reminder: {{ notice.total }} overdue on " + WHICH_SHORT,
            "Dear {{ contact.first_name }},\n\n"
            "We have not yet received payment of {{ notice.total }}"
            + INCLUDING
            + " against "
            + WHICH
            + ", "
            + DUE_AND_LATE
            + ".\n\n"
            "We request you to arrange the payment within the next 7 days. If there is any issue "
            "with the invoices, please let us know at the earliest so that we can resolve it.\n\n"
            "{% if pay_link %}See and pay online: {{ pay_link }}\n\n{% endif %}"
            + words.upi_short_line
            + SIGN_OFF,
        ),
        "notice_final": (
            "Final notice: {{ notice.total }} overdue on " + WHICH_SHORT,
            "Dear {{ contact.first_name }},\n\n"
            "Despite our earlier reminders, {{ notice.total }}"
            + INCLUDING
            + " remains unpaid on "
            + WHICH
            + ", "
            + DUE_AND_LATE
            + ".\n\n"
            "This is our final notice. Please clear the outstanding amount within 7 days of this "
            "e-mail. If we do not receive the payment or hear from you by then, we will have to "
            "put further supplies on hold and take the matter forward as per our terms.\n\n"
            "{% if pay_link %}See and pay online: {{ pay_link }}\n\n{% endif %}"
            + words.upi_short_line
            + SIGN_OFF,
        ),
        "notice_legal": (
            "Notice before legal action: {{ notice.total }} unpaid on " + WHICH_SHORT,
            "Dear {{ contact.first_name }},\n\n"
            "An amount of {{ notice.total }}"
            + INCLUDING
            + " is still outstanding on "
            + WHICH
            + ", "
            + DUE_AND_LATE
            + ", after several reminders.\n\n"
            "Unless the full amount is paid within 15 days of this notice, we will initiate legal "
            "proceedings for its recovery, together with interest and costs, without any further "
            "reference to you.\n\n"
            "{% if pay_link %}See and pay online: {{ pay_link }}\n\n{% endif %}"
            "If the payment has been made, please send us the proof of payment immediately.\n\n"
            + SIGN_OFF,
        ),
        "receipt": (
            "Payment received for invoice {{ invoice.number }}",
            "Dear {{ contact.first_name }},\n\n"
            "Thank you. We have received your payment against invoice {{ invoice.number }}. "
            "{% if invoice.balance != invoice.total %}The balance now due on it is "
            "{{ invoice.balance }}.{% endif %}\n\n"
            + words.receipt_note
            + "We appreciate your prompt payment.\n\n"
            + SIGN_OFF,
        ),
    }


# (approved text with numbered placeholders, parameters one a line)
def _whatsapp(words: CountryWords) -> dict[str, tuple[str, list[str]]]:
    return {
        "invoice": (
            "Dear {{1}}, invoice {{2}} for {{3}} from {{4}} is payable by {{5}}. "
            "See and pay it here: {{6}} Thank you for your business.",
            [
                "contact.first_name",
                "invoice.number",
                "invoice.total",
                "tenant.name",
                "invoice.due_date",
                "pay_link",
            ],
        ),
        "notice_1": (
            "Dear {{1}}, a gentle reminder that {{2}} for a total of {{3}} is past due. "
            "Pay here: {{4}} If already paid, kindly share " + words.proof_short + ". - {{5}}",
            ["contact.first_name", WHICH_EXPRESSION, "notice.total", "pay_link", "tenant.name"],
        ),
        "notice_2": (
            "Dear {{1}}, {{2}} on {{3}} has been overdue since {{4}}. "
            "Please arrange the payment within 7 days: {{5}} - {{6}}",
            [
                "contact.first_name",
                "notice.total",
                WHICH_EXPRESSION,
                "invoice.due_date",
                "pay_link",
                "tenant.name",
            ],
        ),
        "notice_final": (
            "Final notice: {{1}} remains unpaid on {{2}}. Please pay within "
            "7 days to avoid supplies being put on hold: {{3}} - {{4}}",
            ["notice.total", WHICH_EXPRESSION, "pay_link", "tenant.name"],
        ),
        "notice_legal": (
            "Notice: {{1}} on {{2}} has been overdue since {{3}}. Unless paid within 15 days we "
            "will initiate legal proceedings for recovery. Pay here: {{4}} - {{5}}",
            ["notice.total", WHICH_EXPRESSION, "invoice.due_date", "pay_link", "tenant.name"],
        ),
        "receipt": (
            "Dear {{1}}, thank you. We have received your payment against invoice {{2}}. - {{3}}",
            ["contact.first_name", "invoice.number", "tenant.name"],
        ),
    }


# India's texts (the development sandbox registers these with its stand-in providers).
EMAIL = _email(COUNTRY_WORDS["IN"])
WHATSAPP = _whatsapp(COUNTRY_WORDS["IN"])
SMS = {
    "invoice": "Dear {{ contact.first_name }}, invoice {{ invoice.number }} for "
    "{{ invoice.total }} is due on {{ invoice.due_date }}. - {{ tenant.name }}",
    "notice_1": "Reminder: {{ notice.total }} on {{ " + WHICH_EXPRESSION + " }} is past due. "
    "Please ignore if paid. - {{ tenant.name }}",
    "notice_2": "{{ notice.total }} on {{ " + WHICH_EXPRESSION + " }} is overdue. Kindly pay "
    "within 7 days. - {{ tenant.name }}",
    "notice_final": "FINAL NOTICE: {{ notice.total }} unpaid on {{ " + WHICH_EXPRESSION + " }}. "
    "Pay within 7 days to avoid supplies on hold. - {{ tenant.name }}",
    "notice_legal": "{{ notice.total }} on {{ " + WHICH_EXPRESSION + " }} is overdue. Unless "
    "paid in 15 days we will start legal recovery. - {{ tenant.name }}",
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


def regional_effect(session: Session, tenant: Tenant) -> RegionalEffect:
    """What the workspace's country decides in its default messages, for the regional page."""
    return RegionalEffect(
        title="Messages",
        lines=(
            reworded(country_words(tenant.country).summary),
            "Templates the workspace already has keep their words: edit them there.",
        ),
        endpoint="campaigns.templates",
        link_label="Message templates",
    )


def default_template(channel: str, purpose: str, country: str | None = "IN") -> MessageTemplate:
    """A new (unsaved) default template of this channel and purpose, in English as a workspace
    in `country` writes it."""
    words = country_words(country)
    # Named in the workspace's words ("1st reminder"); the texts a client reads stay as written
    # here until the workspace edits them (they are its own from then on).
    template = MessageTemplate(
        name=reworded(NAMES[purpose]), channel=channel, purpose=purpose, language="en"
    )
    if channel == "email":
        template.subject, template.body = _email(words)[purpose]
    elif channel == "whatsapp":
        approved, params = _whatsapp(words)[purpose]
        template.body = approved + "\n---\n" + "\n".join(f"{{{{ {p} }}}}" for p in params)
        template.provider_template_name = f"duebook_{purpose}"
    else:
        template.body = SMS[purpose]
    return template


def workspace_country(session: Session) -> str | None:
    """The country of the workspace `session` is bound to (None when unbound)."""
    tenant_id = bound_tenant_id(session)
    tenant = session.get(Tenant, tenant_id) if tenant_id is not None else None
    return tenant.country if tenant is not None else None


def ensure_defaults(session: Session) -> int:
    """Create the defaults this workspace never had, worded for its country (idempotent: a
    default that was edited or deleted is not brought back). Returns how many were created."""

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
    country = workspace_country(session)
    for channel in ("email", "whatsapp", "sms"):
        for purpose in PURPOSES:
            if (channel, purpose) not in existing:
                session.add(default_template(channel, purpose, country))
                created += 1
    if created:
        session.flush()
    return created
