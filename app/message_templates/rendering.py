"""Message templates rendered in Jinja2's sandbox, from plain dicts only.

A template sees `tenant`, `client`, `contact`, `invoice`, `notice`, `payment_link` (the UPI
link), `pay_link` (the client's pay page), `amount_due` and `due_date`: strings and small dicts
built by `message_context`, never a model, so nothing a template writes can reach the database
or Python internals (the sandbox refuses `_` attributes and unsafe calls; the immutable sandbox
refuses changing the dicts). Undefined variables are errors (`StrictUndefined`), and
`template_errors` finds misspelt names before a template is saved, naming them the way a user
wrote them ("unknown variable contact.nmae").

Channels:
- e-mail: a subject and a plain-text body. The text part is the rendered body; the HTML part
  lays that text out in paragraphs through an autoescaping template of ours, so whatever a
  client's or contact's name contains stays text, and the tenant's own text cannot become
  markup either.
- WhatsApp: Meta sends only approved templates, whose text has numbered placeholders {{1}},
  {{2}} ... The body holds that approved text, a line `---`, then one Jinja expression per
  line: line n is parameter {{n}} (e.g. `{{ contact.first_name }}`). The provider gets the
  rendered parameters; the text (placeholders filled in) is for previews and the outbox.
- SMS: the DLT-approved text with Jinja variables. Twilio sends the rendered text; MSG91's
  flow gets the variables as var1, var2 ... in the order they appear in the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clients.models import Client, Contact
from app.core.clock import tenant_today
from app.core.language import day_in, money_country
from app.core.money import format_money
from app.custom_fields.services import template_variables
from app.invoicing.balance import outstanding
from app.invoicing.models import Invoice
from app.invoicing.pdf import shows_upi_qr, upi_link
from app.message_templates.facts import late_interest, pay_link
from app.message_templates.sandbox import (
    TOO_BIG,
    LimitedSandbox,
    RenderLimit,
    meter_template,
    metered,
)
from app.settings.models import WorkspaceSettings
from app.settings.services import workspace_settings

MAX_BODY = 10_000
# Of the subject as written (its column holds 255); rendered, it is cut to one line (998).
MAX_SUBJECT = 255
# The most a rendered message may hold, by channel: WhatsApp's template body takes 1,024
# characters, Twilio's SMS Body 1,600 (ten segments); an e-mail is generous but bounded.
MAX_RENDERED = {"email": 100_000, "whatsapp": 1_024, "sms": 1_600}
MAX_RENDERED_SUBJECT = 998  # one header line (RFC 5322)
CHANNEL_NAMES = {"email": "an e-mail", "whatsapp": "a WhatsApp message", "sms": "an SMS"}
WHATSAPP_SEPARATOR = "---"

# Every variable a template may use, with the keys of the dict ones.
VARIABLES: dict[str, tuple[str, ...] | None] = {
    "tenant": ("name", "legal_name", "gstin", "upi_vpa"),
    # `custom`: the record's own fields by key (Settings → Custom fields), e.g.
    # {{ invoice.custom.po_number }}, as the pages show them (see CustomValues).
    "client": ("name", "short_name", "custom"),
    "contact": ("name", "first_name", "email", "phone"),
    "invoice": ("number", "date", "due_date", "total", "balance", "days_overdue", "custom"),
    # A collection notice: `level` its template purpose (notice_1 ... notice_legal), `name` that
    # in words, `total` what it asks (outstanding + interest + fee, in the tenant's locale),
    # `invoice_count`, `invoice_numbers` (comma-separated, oldest due first), `interest` (the
    # late-payment interest in the total; empty when none). About a single invoice (a reminder
    # sent from the invoice page) they describe that invoice. `custom`: the notice's own fields
    # (filled in on its page before it goes out).
    "notice": ("level", "name", "total", "invoice_count", "invoice_numbers", "interest", "custom"),
    # The payment a receipt thanks for (empty elsewhere): its amount, day, reference and own
    # fields, e.g. {{ payment.custom.cheque_bank }}.
    "payment": ("amount", "received_on", "reference", "custom"),
    "payment_link": None,
    # The client's pay page for this invoice, or for the notice's invoices
    # (app.paylinks, through the port facts.pay_link).
    "pay_link": None,
    "amount_due": None,
    "due_date": None,
}


class CustomValues(dict):
    """A record's custom field values for templates, {key: value as shown}. A key that is not
    there (a field archived since the template was written, or never filled in) reads as
    empty rather than failing the message at send time."""

    def __missing__(self, key):
        return ""


# Variables that only make sense with an invoice; campaigns have none.
INVOICE_VARIABLES = (
    "invoice",
    "notice",
    "payment",
    "payment_link",
    "pay_link",
    "amount_due",
    "due_date",
)
# A preview shows where the pay link goes; the link itself is made when a message is written.
PAY_LINK_PREVIEW = "https://duebook.example/pay/(the client's own link)"
SAMPLE_CONTEXT = {
    "tenant": {
        "name": "Sample Traders",
        "legal_name": "Sample Traders Pvt Ltd",
        "gstin": "27AAPFU0939F1ZV",
        "upi_vpa": "sample@upi",
    },
    "client": {"name": "Sample Client Pvt Ltd", "short_name": "Sample", "custom": CustomValues()},
    "contact": {
        "name": "Asha Rao",
        "first_name": "Asha",
        "email": "asha@example.com",
        "phone": "+919876543210",
    },
    "invoice": {
        "number": "INV/26-27/00007",
        "date": "16 Oct 2026",
        "due_date": "15 Nov 2026",
        "total": "₹2,36,000.00",
        "balance": "₹2,36,000.00",
        "days_overdue": 12,
        "custom": CustomValues(),
    },
    "notice": {
        "level": "notice_1",
        "name": "first reminder",
        "total": "₹3,55,240.00",
        "invoice_count": 2,
        "invoice_numbers": "INV/26-27/00007, INV/26-27/00011",
        "interest": "₹1,240.00",
        "custom": CustomValues(),
    },
    "payment": {
        "amount": "₹2,36,000.00",
        "received_on": "20 Nov 2026",
        "reference": "UTR 412345678901",
        "custom": CustomValues(),
    },
    "payment_link": "upi://pay?pa=sample@upi",
    "pay_link": PAY_LINK_PREVIEW,
    "amount_due": "₹2,36,000.00",
    "due_date": "15 Nov 2026",
}
NOTICE_NAMES = {
    "notice_1": "first reminder",
    "notice_2": "second reminder",
    "notice_final": "final notice",
    "notice_legal": "notice before legal action",
}
_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
_URL = re.compile(r"((?:https?|upi)://[^\s<>\"']+)")


def _environment(autoescape: bool, finalize=None) -> LimitedSandbox:
    # The immutable sandbox, limited: every render is metered (app.message_templates.sandbox).
    env = LimitedSandbox(
        undefined=StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=True,
        finalize=finalize,
    )
    env.globals.clear()  # no range(), lipsum(), namespace() ...: the dicts given and nothing else
    return env


# MSG91's flow takes the values of an SMS text's variables: `finalize` sees every {{ }} output
# of a render, in order, and the render collects them here.
_SMS_OUTPUTS: ContextVar[list[str]] = ContextVar("sms_outputs")


def _record_output(value):
    _SMS_OUTPUTS.get().append(str(value))
    return value


TEXT_ENV = _environment(autoescape=False)
SMS_ENV = _environment(autoescape=False, finalize=_record_output)
HTML_ENV = _environment(autoescape=True)
# No style attributes: the same HTML is shown in the preview, under a CSP without inline styles.
HTML_LAYOUT = HTML_ENV.from_string(
    "<div>\n"
    "{% for paragraph in paragraphs %}<p>"
    "{% for line in paragraph %}{% if not loop.first %}<br>\n{% endif %}"
    '{% for text, url in line %}{% if url %}<a href="{{ url }}">{{ url }}</a>'
    "{% else %}{{ text }}{% endif %}{% endfor %}{% endfor %}</p>\n{% endfor %}</div>\n"
)


class TemplateProblem(ValueError):
    """A template that cannot be rendered: which field and why."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass
class Rendered:
    subject: str
    text: str
    html: str | None = None
    whatsapp: dict | None = None
    sms: dict | None = None
    channel: str = "email"

    def payload(self) -> dict | None:
        """What `queue_message(payload=...)` takes for this channel."""
        if self.whatsapp is not None:
            return {"whatsapp": self.whatsapp}
        if self.sms is not None:
            return {"sms": self.sms}
        return None


# Checking before saving --------------------------------------------------------------------


def _dotted(node) -> str | None:
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        inner = _dotted(node.node)
        return f"{inner}.{node.attr}" if inner else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        inner = _dotted(node.node)
        return f"{inner}.{node.arg.value}" if inner else None
    return None


def _check_names(tree) -> None:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", "")
        if isinstance(key, str) and key.startswith("_"):
            raise SecurityError(f"{key} is not allowed in a template")
        if isinstance(node.node, nodes.Name) and node.node.name in VARIABLES:
            keys = VARIABLES[node.node.name]
            if keys is not None and key not in keys:
                raise UndefinedError(f"unknown variable {_dotted(node) or node.node.name}")
    for name in meta.find_undeclared_variables(tree):
        # `loop` exists inside a for block only; elsewhere the trial render catches it.
        if name not in VARIABLES and name != "loop":
            raise UndefinedError(f"unknown variable {name}")


@lru_cache(maxsize=512)  # a campaign renders one template for thousands of contacts
def _compile(env, source: str, field_name: str):
    try:
        tree = env.parse(source)
        _check_names(tree)
        return env.from_string(meter_template(tree))
    except TemplateSyntaxError as exc:
        raise TemplateProblem(field_name, f"line {exc.lineno}: {exc.message}") from None
    except (UndefinedError, SecurityError) as exc:
        raise TemplateProblem(field_name, str(exc)) from None


def variables_used(source: str) -> set[str]:
    try:
        return set(meta.find_undeclared_variables(TEXT_ENV.parse(source)))
    except TemplateSyntaxError:
        return set()


def whatsapp_parts(body: str) -> tuple[str, list[str]]:
    """The approved text and the parameter expressions (one a line) of a WhatsApp body."""
    text, separator, rest = body.partition(f"\n{WHATSAPP_SEPARATOR}\n")
    if not separator and body.rstrip().endswith(f"\n{WHATSAPP_SEPARATOR}"):
        text = body.rstrip()[: -len(WHATSAPP_SEPARATOR) - 1]
    params = [line.strip() for line in rest.splitlines() if line.strip()]
    return text.rstrip("\n"), params


def template_errors(channel: str, subject: str | None, body: str) -> dict[str, str]:
    """Errors by field ('subject', 'body'), empty when the template can be rendered."""
    errors: dict[str, str] = {}
    if not body.strip():
        errors["body"] = "Write the message."
    elif len(body) > MAX_BODY:
        errors["body"] = f"At most {MAX_BODY:,} characters ({len(body):,} now)."
    if channel == "email":
        if not (subject or "").strip():
            errors["subject"] = "An e-mail needs a subject."
        elif len(subject) > MAX_SUBJECT:
            errors["subject"] = f"At most {MAX_SUBJECT:,} characters ({len(subject):,} now)."
        else:
            try:
                _compile(TEXT_ENV, subject, "subject")
            except TemplateProblem as problem:
                errors["subject"] = problem.message
    if errors:
        return errors
    try:
        # A trial run on sample values catches what only shows when rendering (a filter
        # reaching for an unsafe attribute, a wrong kind of value).
        render_for_channel(_Draft(channel, subject, body), SAMPLE_CONTEXT)
    except TemplateProblem as problem:
        errors[problem.field] = problem.message
    return errors


@dataclass
class _Draft:
    channel: str
    subject: str | None
    body: str
    language: str = "en"
    provider_template_name: str | None = None
    gateway_template_id: str | None = None
    dlt_template_id: str | None = None


@lru_cache(maxsize=512)
def _compiled_body(channel: str, body: str):
    if channel != "whatsapp":
        return _compile(TEXT_ENV, body, "body")
    text, params = whatsapp_parts(body)
    numbers = sorted({int(n) for n in _PLACEHOLDER.findall(text)})
    if numbers != list(range(1, len(numbers) + 1)):
        raise TemplateProblem("body", "Number the placeholders {{1}}, {{2}} ... without gaps.")
    if len(params) != len(numbers):
        raise TemplateProblem(
            "body",
            f"The text has {len(numbers)} placeholder(s) but {len(params)} parameter line(s) "
            f"after {WHATSAPP_SEPARATOR}: one line per placeholder, in order.",
        )
    return [_compile(TEXT_ENV, line, "body") for line in params]


# Rendering ---------------------------------------------------------------------------------


def _too_long(channel: str, field_name: str, limit: int) -> TemplateProblem:
    what = "The subject" if field_name == "subject" else "This message"
    return TemplateProblem(
        field_name,
        f"{what} would be longer than {limit:,} characters, the "
        f"most {CHANNEL_NAMES[channel]} can have.",
    )


def _run(template, context: dict, field_name: str, channel: str, limit: int) -> str:
    """The template rendered within its budget and `limit` characters (TemplateProblem if
    not: too slow, too long, or not renderable)."""
    try:
        with metered():
            text = template.render(context)
    except RenderLimit as exc:
        if str(exc) == TOO_BIG:
            raise _too_long(channel, field_name, limit) from None
        raise TemplateProblem(field_name, str(exc)) from None
    except RecursionError:
        raise TemplateProblem(field_name, "A macro calls itself without end.") from None
    except (UndefinedError, SecurityError) as exc:
        raise TemplateProblem(field_name, str(exc)) from None
    except Exception as exc:  # a filter given the wrong kind of value, a division by zero...
        raise TemplateProblem(field_name, f"cannot render: {exc}") from None
    if len(text) > limit:
        raise _too_long(channel, field_name, limit)
    return text


def email_html(text: str) -> str:
    """The HTML part: the text in paragraphs (blank lines) and lines, links clickable."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = []
        for line in block.split("\n"):
            parts = _URL.split(line)
            lines.append([(part, part if i % 2 else None) for i, part in enumerate(parts) if part])
        paragraphs.append(lines)
    return HTML_LAYOUT.render(paragraphs=paragraphs)


def render_for_channel(template, context: dict) -> Rendered:
    """The message `template` (a MessageTemplate, or anything with channel, subject, body,
    language, provider_template_name, gateway_template_id, dlt_template_id) says for this
    context. Raises TemplateProblem naming the field that failed."""
    channel = template.channel
    if len(template.body or "") > MAX_BODY:
        raise TemplateProblem("body", f"At most {MAX_BODY:,} characters.")
    if len(template.subject or "") > MAX_SUBJECT:
        raise TemplateProblem("subject", f"At most {MAX_SUBJECT:,} characters.")
    limit = MAX_RENDERED.get(channel, MAX_RENDERED["email"])
    subject = ""
    if template.subject:
        compiled = _compile(TEXT_ENV, template.subject, "subject")
        subject = " ".join(
            _run(compiled, context, "subject", channel, MAX_RENDERED["email"]).split()
        )
        if len(subject) > MAX_RENDERED_SUBJECT:
            raise _too_long(channel, "subject", MAX_RENDERED_SUBJECT)
    if channel == "whatsapp":
        text, _ = whatsapp_parts(template.body)
        params = [
            # Meta refuses parameters with new lines, tabs or runs of spaces.
            " ".join(_run(compiled, context, "body", channel, limit).split())
            for compiled in _compiled_body(channel, template.body)
        ]
        filled = _PLACEHOLDER.sub(lambda m: params[int(m.group(1)) - 1], text)
        if len(filled) > limit:
            raise _too_long(channel, "body", limit)
        return Rendered(
            subject=subject,
            text=filled,
            channel=channel,
            whatsapp={
                "type": "template",
                "name": template.provider_template_name or "",
                "language": template.language or "en",
                "body_params": params,
            },
        )
    text = _run(_compiled_body(channel, template.body), context, "body", channel, limit).strip()
    if channel == "sms":
        compiled = _compile(SMS_ENV, template.body, "body")  # (constants are folded in here)
        outputs: list[str] = []
        token = _SMS_OUTPUTS.set(outputs)
        try:
            _run(compiled, context, "body", channel, limit)
        finally:
            _SMS_OUTPUTS.reset(token)
        variables = {f"var{i}": value for i, value in enumerate(outputs, start=1)}
        return Rendered(
            subject=subject,
            text=text,
            channel=channel,
            sms={
                "gateway_template_id": template.gateway_template_id or "",
                "dlt_template_id": template.dlt_template_id or "",
                "variables": variables,
            },
        )
    return Rendered(subject=subject, text=text, html=email_html(text), channel=channel)


# The variables -----------------------------------------------------------------------------


def tenant_vars(tenant, workspace: WorkspaceSettings) -> dict:
    return {
        "name": tenant.name,
        "legal_name": workspace.legal_name or tenant.name,
        "gstin": workspace.gstin or "",
        "upi_vpa": workspace.upi_vpa or "",
    }


def client_vars(client, session: Session | None = None) -> dict:
    custom = CustomValues()
    if session is not None:
        custom.update(template_variables(session, "clients", client.custom_fields or {}))
    return {"name": client.full_name, "short_name": client.short_name, "custom": custom}


def contact_vars(contact) -> dict:
    if contact is None:
        return {"name": "", "first_name": "", "email": "", "phone": ""}
    name = contact.full_name.strip()
    return {
        "name": name,
        "first_name": name.split()[0] if name else "",
        "email": contact.email or "",
        "phone": contact.phone or "",
    }


def _empty_invoice() -> dict:
    return dict.fromkeys(VARIABLES["invoice"], "") | {"custom": CustomValues()}


def notice_vars(
    tenant,
    notice_level: str | None,
    currency: str | None,
    invoice_numbers: Sequence[str],
    total=None,
    interest=None,
    language: str | None = None,
    custom: Mapping[str, str] | None = None,
) -> dict:
    """The `notice` variables: its level, the invoices it names and what it asks in all
    (amounts as `language` writes them), and the notice's own fields (`custom`, from
    custom_fields.template_variables) when there is a notice."""

    def money(amount) -> str:
        if amount is None or currency is None:
            return ""
        return format_money(amount, currency, money_country(language, tenant.country))

    return {
        "level": notice_level or "",
        "name": NOTICE_NAMES.get(notice_level or "", ""),
        "total": money(total),
        "invoice_count": len(invoice_numbers),
        # Empty without interest, so that `{% if notice.interest %}` reads naturally.
        "invoice_numbers": ", ".join(invoice_numbers),
        "interest": money(interest) if interest else "",
        "custom": CustomValues(custom or {}),
    }


def payment_vars(session: Session, tenant, payment, language: str | None = None) -> dict:
    """The `payment` variables of a receipt: the payment's amount and day as `language`
    writes them, its reference and its own fields; all empty without a payment."""
    if payment is None:
        return dict.fromkeys(VARIABLES["payment"], "") | {"custom": CustomValues()}
    country = money_country(language, tenant.country)
    return {
        "amount": format_money(payment.amount, payment.currency, country),
        "received_on": day_in(payment.received_on, language),
        "reference": payment.reference or "",
        "custom": CustomValues(
            template_variables(session, "payments", payment.custom_fields or {})
        ),
    }


def message_context(
    session: Session,
    tenant,
    client,
    contact,
    invoice=None,
    notice_level: str | None = None,
    *,
    preview: bool = False,
    language: str | None = None,
    payment=None,
) -> dict:
    """The variables of a message to `contact` of `client`, about `invoice` if any: plain
    strings and dicts, money in the tenant's locale (Indian grouping for Indian tenants and
    for every message in an Indian language), dates as `language` (the template's) writes
    them. The
    `notice` variables describe that one invoice; a notice of several replaces them with
    `notice_vars` of all of its invoices (and `pay_link` with the notice's). A `preview`
    makes no pay link (it shows where one goes). `payment`: the payment a receipt thanks
    for."""

    workspace = workspace_settings(session, tenant.id)
    context = {
        "tenant": tenant_vars(tenant, workspace),
        "client": client_vars(client, session),
        "contact": contact_vars(contact),
        "invoice": _empty_invoice(),
        "notice": notice_vars(tenant, notice_level, None, [], language=language),
        "payment": payment_vars(session, tenant, payment, language),
        "payment_link": "",
        "pay_link": "",
        "amount_due": "",
        "due_date": "",
    }
    if invoice is not None:
        issued = invoice.status != "draft"
        balance = outstanding(session, invoice) if issued else Decimal(invoice.total)
        today = tenant_today(session)
        overdue = (today - invoice.due_date).days if invoice.due_date else 0

        def money(amount) -> str:
            return format_money(amount, invoice.currency, money_country(language, tenant.country))

        context["invoice"] = {
            "number": invoice.number or "(draft)",
            "date": day_in(invoice.issue_date, language),
            "due_date": day_in(invoice.due_date, language),
            "total": money(invoice.total),
            "balance": money(balance),
            "days_overdue": max(overdue, 0),
            "custom": CustomValues(
                template_variables(session, "invoices", invoice.custom_fields or {})
            ),
        }
        context["amount_due"] = money(balance)
        context["due_date"] = day_in(invoice.due_date, language)
        interest = _late_interest(session, invoice, today) if issued else Decimal("0.00")
        context["notice"] = notice_vars(
            tenant,
            notice_level,
            invoice.currency,
            [context["invoice"]["number"]],
            balance + interest,
            interest,
            language,
        )
        if shows_upi_qr(tenant, workspace, invoice, balance):
            context["payment_link"] = upi_link(tenant, workspace, invoice, balance)
        if issued and balance > 0:  # a receipt for a settled invoice needs no link
            context["pay_link"] = (
                PAY_LINK_PREVIEW if preview else pay_link(session, invoice_id=invoice.id)
            )
    return context


def _late_interest(session: Session, invoice, today: date) -> Decimal:
    """The invoice's late-payment interest to today, by its client's terms."""
    return late_interest(session, [invoice], today)[invoice.id]


def sample_records(session: Session, invoice_id: int | None = None, contact_id: int | None = None):
    """(client, contact, invoice) for a preview with real data: the chosen invoice (else the
    tenant's most recent one) and the chosen contact of its client (else its billing contact,
    else its first). Without invoices: the first client. All None in an empty workspace."""

    invoice = None
    if invoice_id:
        invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        invoice = session.scalar(
            select(Invoice).order_by(Invoice.issue_date.desc().nulls_last(), Invoice.id.desc())
        )
    if invoice is not None:
        client = session.get(Client, invoice.client_id)
    else:
        client = session.scalar(
            select(Client).where(Client.deleted_at.is_(None)).order_by(Client.id)
        )
    if client is None:
        return None, None, None
    contacts = session.scalars(
        select(Contact)
        .where(Contact.client_id == client.id, Contact.deleted_at.is_(None))
        .order_by(Contact.id)
    ).all()
    contact = next((c for c in contacts if c.id == contact_id), None)
    contact = contact or next((c for c in contacts if "billing" in (c.roles or [])), None)
    contact = contact or (contacts[0] if contacts else None)
    return client, contact, invoice
