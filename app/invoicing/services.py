"""Invoices from milestones: drafting (tax regime, per-line taxes, totals), issuing (the next
number of the financial year, issue and due dates on the tenant's calendar) and voiding.

One milestone, one live invoice: a milestone may be on at most one invoice that is not void.
The rule is kept here, not by an index: `draft_from_milestones` locks the milestone rows
(SELECT ... FOR UPDATE) and refuses any that a draft or issued invoice already carries, so two
concurrent drafts of the same milestone wait for each other and the second is refused. A
voided invoice keeps its lines (and their milestone ids) as the record of what it said; since
it is void it no longer counts, and the milestone can be invoiced again.

Milestone statuses: issuing moves each milestone to "invoiced" and voiding an issued invoice
moves it back (to "approved" on projects that need approval, else "completed"). The project
rules (`app.projects.services.transition`) let people move work along only, not invoice it,
so these moves go through `app.projects.services.record_move`, which records them the same way.
"""

from __future__ import annotations

import calendar as month_calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from app.clients.models import Client
from app.clients.rules import region_code
from app.clients.services import invoice_fields_required
from app.core.clock import roll_forward, subdivision_for
from app.core.events import emit
from app.core.money import to_money
from app.core.number_formats import NumberFormat, NumberFormatError, fiscal_year_of
from app.core.signals import (
    announce_invoice_issued,
    announce_invoice_voided,
    announce_invoice_written_off,
)
from app.core.terminology import term, worded
from app.custom_fields.services import clean_values, custom_error_name
from app.invoicing import gst
from app.invoicing.balance import credited_to_invoices, outstanding, status_after_settling
from app.invoicing.models import Invoice, InvoiceLine
from app.invoicing.numbering import next_invoice_number
from app.invoicing.pdf_requests import request_pdf
from app.invoicing.words import CURRENCIES, amount_in_words
from app.projects.models import Milestone, Project
from app.projects.services import done_status, effective_terms, record_move
from app.settings.models import WorkspaceSettings
from app.settings.services import workspace_settings

DEFAULT_SERIES = "INV"
# SAC 9983, "other professional, technical and business services": project work unless a
# line says otherwise.
DEFAULT_SAC = "9983"
DEFAULT_FORMAT = "INV/{fy_short}/{seq:05d}"  # "INV/26-27/00001": 15 characters
ZERO = Decimal("0.00")


class InvoiceError(ValueError):
    """A request the invoicing rules refuse; the message says why, for the person."""


def default_tax_rate(country: str) -> Decimal:
    return {"IN": Decimal("18"), "AU": gst.AU_GST_RATE}.get(country.upper(), Decimal("0"))


def _state_of(region: str | None) -> str | None:
    return region_code(region) if region else None


def on_live_invoice(session: Session, milestone_ids: Sequence[int]) -> set[int]:
    """Which of these milestones a draft or issued (not void) invoice already carries."""
    if not milestone_ids:
        return set()
    rows = session.scalars(
        select(InvoiceLine.milestone_id)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(InvoiceLine.milestone_id.in_(milestone_ids), Invoice.status != "void")
    )
    return set(rows)


def _place_of_supply(client: Client) -> str | None:
    if client.gstin:
        return gst.place_of_supply_from_gstin(client.gstin)
    return _state_of(client.region)


@dataclass(frozen=True)
class TaxSetting:
    """How a draft of a client is taxed: the regime, the place of supply, the LUT of exports."""

    regime: str
    place_of_supply: str | None
    lut_reference: str | None

    def line(
        self,
        position: int,
        description: str,
        hsn_sac: str | None,
        quantity,
        unit_price,
        rate,
        milestone_id: int | None = None,
    ) -> tuple[InvoiceLine, gst.LineTax]:
        """One line: taxable value = quantity x unit price (rounded), its tax by the regime's
        rule (`gst.line_tax`); an export is zero-rated whatever rate was asked for."""
        try:
            rate = Decimal("0") if self.regime == "export" else Decimal(str(rate).strip())
            value = to_money(Decimal(quantity) * Decimal(unit_price))
            tax = gst.line_tax(value, rate, self.regime)
        except (TypeError, ValueError, ArithmeticError) as error:
            raise InvoiceError(str(error)) from None
        line = InvoiceLine(
            milestone_id=milestone_id,
            position=position,
            description=description[:255],
            hsn_sac=(hsn_sac or "").strip()[:8] or None,
            quantity=Decimal(quantity),
            unit_price=to_money(unit_price),
            taxable_value=value,
            tax_rate=rate,
            cgst=tax.cgst,
            sgst=tax.sgst,
            igst=tax.igst,
            other_tax=tax.other,
            total=value + tax.total,
        )
        return line, tax


def tax_setting(
    tenant, workspace: WorkspaceSettings, client: Client, lut_reference: str | None = None
) -> TaxSetting:
    """The regime follows `gst.tax_regime`: the supplier is the tenant (its country and state),
    the recipient the client (its GSTIN's state, else its state); a client outside India is an
    export, zero-rated under the tenant's LUT (the workspace's LUT reference unless one is
    given). Shared by every way of making a draft."""
    supplier_country = tenant.country.upper()
    client_country = (client.country or "").upper()
    place = None
    if supplier_country == "IN" and client_country == "IN":
        place = _place_of_supply(client)
    try:
        regime = gst.tax_regime(
            supplier_country,
            _state_of(tenant.region),
            client_country,
            place,
            is_export_with_lut=True,
        )
    except ValueError as error:
        raise InvoiceError(
            f"Cannot work out the tax: {error}. Give the workspace's state and the "
            f"{term('client')}'s "
            "GSTIN or state."
        ) from None
    lut = None
    if regime == "export":
        lut = lut_reference or workspace.lut_reference or None
    return TaxSetting(regime, place, lut)


def _new_draft(
    workspace: WorkspaceSettings,
    client: Client,
    setting: TaxSetting,
    currency: str,
    project_id: int | None,
    reverse_charge: bool,
) -> Invoice:
    return Invoice(
        client_id=client.id,
        project_id=project_id,
        series=DEFAULT_SERIES,
        status="draft",
        currency=currency,
        supplier_gstin=workspace.gstin or None,
        recipient_gstin=client.gstin,
        place_of_supply=setting.place_of_supply,
        tax_regime=setting.regime,
        reverse_charge=reverse_charge,
        lut_reference=setting.lut_reference,
    )


def _finish_draft(
    session: Session, invoice: Invoice, lines: list[InvoiceLine], taxes: list[gst.LineTax]
) -> Invoice:
    _set_totals(invoice, lines, gst.invoice_tax(taxes))
    invoice.lines = lines
    session.add(invoice)
    session.flush()
    return invoice


def draft_from_milestones(
    session: Session,
    tenant,
    project: Project,
    milestones: Sequence[Milestone],
    tax_rate=None,
    hsn_sac: str | None = None,
    lut_reference: str | None = None,
    reverse_charge: bool = False,
) -> Invoice:
    """A draft invoice with one line per milestone, in the milestones' plan order.

    Only milestones that are done can be invoiced: "completed", or "approved" on a project that
    requires approval. The tax follows `tax_setting` (the same rules as a draft by hand)."""
    if not milestones:
        raise InvoiceError(worded("Choose at least one {milestone} to invoice."))
    ids = sorted({m.id for m in milestones})
    locked = list(
        session.scalars(
            select(Milestone)
            .where(Milestone.id.in_(ids))
            .order_by(Milestone.position)
            .with_for_update()
        )
    )
    wanted = done_status(project)
    for milestone in locked:
        if milestone.project_id != project.id:
            raise InvoiceError(f"{milestone.name} is not {term('a milestone')} of {project.name}.")
        if milestone.status != wanted:
            raise InvoiceError(
                f"{milestone.name} is {milestone.status.replace('_', ' ')}: only {wanted} "
                f"{term('milestones')} can be invoiced"
                + (
                    f" (this {term('project')} needs approval first)."
                    if project.requires_approval
                    else "."
                )
            )
    taken = on_live_invoice(session, ids)
    if taken:
        names = ", ".join(m.name for m in locked if m.id in taken)
        raise InvoiceError(f"Already on an invoice that is not void: {names}.")

    client = project.client
    workspace = workspace_settings(session, tenant.id)
    setting = tax_setting(tenant, workspace, client, lut_reference)
    rate = default_tax_rate(tenant.country) if tax_rate in (None, "") else tax_rate
    if isinstance(rate, float):
        raise InvoiceError("A tax rate must not be a float.")
    invoice = _new_draft(workspace, client, setting, project.currency, project.id, reverse_charge)
    lines, taxes = [], []
    for position, milestone in enumerate(locked, start=1):
        line, tax = setting.line(
            position,
            f"{project.name}: {milestone.name}",
            hsn_sac,
            Decimal("1.000"),
            to_money(milestone.amount),
            rate,
            milestone_id=milestone.id,
        )
        lines.append(line)
        taxes.append(tax)
    return _finish_draft(session, invoice, lines, taxes)


class InvoiceInvalid(InvoiceError):
    """A hand-made invoice with errors: one message per field, lines as "lines.<i>.<field>"."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class ManualLine:
    """A line of a hand-made invoice as typed (strings); `draft_by_hand` checks it."""

    description: str = ""
    hsn_sac: str = ""
    quantity: str = "1"
    unit_price: str = ""
    tax_rate: str = ""
    # A line of a draft from milestones keeps its milestone through an edit ("" by hand).
    milestone_id: str = ""

    @property
    def is_blank(self) -> bool:
        return not (self.description.strip() or self.unit_price.strip() or self.hsn_sac.strip())


def _decimal(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw.replace(",", "").strip())
    except ArithmeticError:
        return None
    return value if value.is_finite() else None


def _checked_lines(
    session: Session, tenant, client: Client | None, lines: Sequence[ManualLine]
) -> tuple[WorkspaceSettings, TaxSetting | None, list[InvoiceLine], list, dict[str, str]]:
    """The typed lines of a draft checked and taxed for `client` (`tax_setting`,
    `TaxSetting.line`), blank rows skipped: (workspace, setting, lines, taxes, errors)."""
    errors: dict[str, str] = {}
    if client is None:
        errors["client_id"] = worded("Choose the {client} to invoice.")
    setting = None
    workspace = workspace_settings(session, tenant.id)
    if client is not None:
        try:
            setting = tax_setting(tenant, workspace, client)
        except InvoiceError as error:
            errors["client_id"] = str(error)
    rows = [(i, line) for i, line in enumerate(lines) if not line.is_blank]
    if not rows:
        errors["lines"] = "Add at least one line."
    default_rate = default_tax_rate(tenant.country)
    built, taxes = [], []
    for position, (i, row) in enumerate(rows, start=1):
        key = f"lines.{i}."
        description = row.description.strip()
        if not description:
            errors[key + "description"] = "Describe what is invoiced."
        elif len(description) > 255:
            errors[key + "description"] = "Keep the description to 255 characters."
        hsn = row.hsn_sac.strip()
        if hsn and not (hsn.isdigit() and len(hsn) in (4, 6, 8)):
            errors[key + "hsn_sac"] = "An HSN/SAC code is 4, 6 or 8 digits."
        quantity = _decimal(row.quantity or "1")
        # The size first: rounding a number as long as 1e30 to places raises.
        if quantity is not None and quantity >= Decimal("1000000000"):
            errors[key + "quantity"] = "That quantity is too large."
        elif quantity is None or quantity <= 0 or quantity != quantity.quantize(Decimal("0.001")):
            errors[key + "quantity"] = "A quantity above 0, at most 3 decimals."
        price = _decimal(row.unit_price) if row.unit_price.strip() else None
        if price is None:
            errors[key + "unit_price"] = "Enter the unit price, e.g. 25000.00."
        elif price > Decimal("9999999999999"):
            errors[key + "unit_price"] = "That price is too large."
        elif price <= 0 or price != price.quantize(Decimal("0.01")):
            errors[key + "unit_price"] = "A price above 0, at most 2 decimals."
        rate = _decimal(row.tax_rate) if row.tax_rate.strip() else default_rate
        if rate is None or not 0 <= rate <= 100:
            errors[key + "tax_rate"] = "A tax rate is a percentage from 0 to 100."
        if setting is None or any(k.startswith(key) for k in errors):
            continue
        milestone_id = int(row.milestone_id) if row.milestone_id.strip().isdigit() else None
        try:
            line, tax = setting.line(
                position, description, hsn or None, quantity, price, rate, milestone_id
            )
        except InvoiceError as error:
            errors[key + "tax_rate"] = str(error).capitalize()
            continue
        built.append(line)
        taxes.append(tax)
    return workspace, setting, built, taxes, errors


def draft_by_hand(
    session: Session,
    tenant,
    client: Client | None,
    lines: Sequence[ManualLine],
    reverse_charge: bool = False,
    custom: Mapping | None = None,
) -> Invoice:
    """A draft invoice typed by hand: a client and lines (description, HSN/SAC, quantity, unit
    price, tax rate), taxed by the same rules as a draft from milestones, and the workspace's
    own fields (`custom`, {key: value}; errors as "cf.<key>"). Blank rows are skipped. Raises
    InvoiceInvalid with every error."""
    lines = [replace(line, milestone_id="") for line in lines]  # by hand: no milestone
    workspace, setting, built, taxes, errors = _checked_lines(session, tenant, client, lines)
    custom_values, custom_errors = clean_values(
        session,
        "invoices",
        custom or {},
        required_for_client=invoice_fields_required(session, client.id if client else None),
    )
    errors.update((custom_error_name(key), problem) for key, problem in custom_errors.items())
    if errors:
        raise InvoiceInvalid(errors)
    currency = client.currency or tenant.currency
    invoice = _new_draft(workspace, client, setting, currency, None, reverse_charge)
    invoice.custom_fields = custom_values
    return _finish_draft(session, invoice, built, taxes)


def update_draft(
    session: Session,
    tenant,
    invoice: Invoice,
    client: Client | None,
    lines: Sequence[ManualLine],
    reverse_charge: bool = False,
    custom: Mapping | None = None,
) -> Invoice:
    """Change a draft: its client, lines and reverse charge (and the custom fields in `custom`,
    the others keeping their values), checked and taxed as a new draft
    is. An issued invoice never changes (GST: a credit note corrects it). A draft from a
    project's milestones stays with the project's client, and its lines may keep or drop its
    milestones but not take others (a dropped one can be invoiced again). Raises InvoiceError
    or InvoiceInvalid with every error."""
    invoice = lock_invoice(session, invoice)
    if invoice.status != "draft":
        raise InvoiceError(f"Only drafts can be changed; this invoice is {invoice.status}.")
    own_milestones = {line.milestone_id for line in invoice.lines if line.milestone_id}
    workspace, setting, built, taxes, errors = _checked_lines(session, tenant, client, lines)
    if invoice.project_id is not None and client is not None and client.id != invoice.client_id:
        errors["client_id"] = worded(
            "This draft bills {a project}'s {milestones}: it stays with the {project}'s {client}."
        )
    if any(line.milestone_id not in own_milestones for line in built if line.milestone_id):
        errors["lines"] = worded("A line can keep only {a milestone} this draft already bills.")
    custom_values, custom_errors = clean_values(
        session,
        "invoices",
        custom or {},
        current=invoice.custom_fields,
        required_for_client=invoice_fields_required(session, client.id if client else None),
    )
    errors.update((custom_error_name(key), problem) for key, problem in custom_errors.items())
    if errors:
        raise InvoiceInvalid(errors)
    invoice.custom_fields = custom_values
    for line in list(invoice.lines):
        session.delete(line)
    session.flush()
    session.expire(invoice, ["lines"])
    invoice.client_id = client.id
    invoice.currency = (
        invoice.currency if invoice.project_id else (client.currency or tenant.currency)
    )
    invoice.supplier_gstin = workspace.gstin or None
    invoice.recipient_gstin = client.gstin
    invoice.place_of_supply = setting.place_of_supply
    invoice.tax_regime = setting.regime
    invoice.reverse_charge = reverse_charge
    invoice.lut_reference = setting.lut_reference
    return _finish_draft(session, invoice, built, taxes)


def change_custom_values(session: Session, invoice: Invoice, submitted: Mapping) -> Invoice:
    """Change the invoice's custom field values (any status: they are the workspace's own
    notes, not the tax invoice's content); the fields not in `submitted` keep theirs. Raises
    InvoiceInvalid with an error per field ("cf.<key>")."""
    values, errors = clean_values(
        session,
        "invoices",
        submitted,
        current=invoice.custom_fields,
        required_for_client=invoice_fields_required(session, invoice.client_id),
    )
    if errors:
        raise InvoiceInvalid({custom_error_name(key): problem for key, problem in errors.items()})
    if values != invoice.custom_fields:
        invoice.custom_fields = values
        # The stored PDF may print these fields: the next download or the sweep renders it
        # again (as when none was stored).
        invoice.pdf_key = None
    session.flush()
    return invoice


def _set_totals(invoice: Invoice, lines: Sequence[InvoiceLine], tax: gst.LineTax) -> None:
    """Totals are the sums of the rounded lines, so the invoice adds up to its lines exactly."""
    invoice.subtotal = sum((line.taxable_value for line in lines), ZERO)
    invoice.cgst, invoice.sgst, invoice.igst, invoice.other_tax = (
        tax.cgst,
        tax.sgst,
        tax.igst,
        tax.other,
    )
    invoice.total = sum((line.total for line in lines), ZERO)
    assert invoice.total == invoice.subtotal + tax.total
    currency = invoice.currency if invoice.currency in CURRENCIES else None
    invoice.amount_in_words = amount_in_words(invoice.total, currency) if currency else ""


# Issuing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    day: date
    note: str  # how it was worked out, for the page


def due_date(
    terms: str | None,
    days: int | None,
    issue_day: date,
    country: str,
    subdivision: str | None = None,
) -> Due:
    """When an invoice issued on `issue_day` falls due, rolled forward to a business day of the
    tenant's calendar:

    - net N: the issue date + N days;
    - mfi N ("month following invoice"): the last day of the invoice's month + N days (MFI 30
      of an invoice of 10 March: 31 March + 30 = 30 April);
    - immediate: the issue date;
    - custom: the issue date, shown as "as agreed" (the client's own arrangement applies).
    """
    if terms == "net":
        day, note = issue_day + timedelta(days=days or 0), f"Net {days or 0}"
    elif terms == "mfi":
        last = issue_day.replace(day=month_calendar.monthrange(issue_day.year, issue_day.month)[1])
        day, note = last + timedelta(days=days or 0), f"{days or 0} days after month end"
    elif terms == "custom":
        day, note = issue_day, "as agreed"
    else:
        day, note = issue_day, "on receipt"
    return Due(roll_forward(day, country, subdivision), note)


def number_format(session: Session, tenant, series: str = DEFAULT_SERIES) -> NumberFormat:
    """The invoice series uses the workspace's own format when it has one (checked here again,
    so a format that could break GST Rule 46 is refused at issue rather than printed); other
    series (credit notes) keep "{series}/{fy_short}/{seq:05d}", so they never look like an
    invoice number."""
    if series == DEFAULT_SERIES:
        template = workspace_settings(session, tenant.id).invoice_number_format or DEFAULT_FORMAT
    else:
        template = "{series}/{fy_short}/{seq:05d}"
    try:
        return NumberFormat.for_series(template, series, tenant.country)
    except NumberFormatError as error:
        raise InvoiceError(
            f"The workspace's invoice number format cannot be used: {error}"
        ) from None


def last_issue_date(session: Session, invoice: Invoice) -> date | None:
    """The latest issue date of the other invoices of the invoice's series (void ones too:
    their numbers stand)."""
    return session.scalar(
        select(func.max(Invoice.issue_date)).where(
            Invoice.series == invoice.series,
            Invoice.number.is_not(None),
            Invoice.id != invoice.id,
        )
    )


def _check_issue_date(session: Session, invoice: Invoice, chosen: date, today: date) -> None:
    """An invoice dated by the person issuing it: not after today (the tenant's date), and not
    before the series' last issued invoice, so that numbers follow dates (GST Rule 46: one
    consecutive series per financial year). Its number is then taken in the financial year
    of that date."""
    if chosen > today:
        raise InvoiceInvalid({"issue_date": "An invoice cannot be dated after today."})
    last = last_issue_date(session, invoice)
    if last is not None and chosen < last:
        raise InvoiceInvalid(
            {
                "issue_date": f"The last invoice of this series is dated "
                f"{last.strftime('%d %b %Y')}: date this one on or after it, so that numbers "
                "follow dates."
            }
        )


def issue(
    session: Session,
    tenant,
    invoice: Invoice,
    today: date,
    fmt: NumberFormat | None = None,
    user_id: int | None = None,
    issue_date: date | None = None,
) -> Invoice:
    """Issue a draft: `today` is the tenant's date (its time zone); `issue_date`, a date the
    person chose (`_check_issue_date`), else today. The number is taken last, so the series'
    counter is locked for as short a time as possible, and the date is checked against the
    series once that lock is held, so two people issuing at once cannot put numbers out of
    date order. Today needs no such check: no invoice is dated after today."""
    if invoice.status != "draft":
        raise InvoiceError(f"Only drafts can be issued; this invoice is {invoice.status}.")
    chosen = issue_date
    if chosen is not None:
        _check_issue_date(session, invoice, chosen, today)  # early, before any lock
    day = chosen or today
    project = session.get(Project, invoice.project_id) if invoice.project_id else None
    client = session.get(Client, invoice.client_id)
    terms, days = (
        effective_terms(project) if project else (client.payment_terms, client.payment_days)
    )
    subdivision = subdivision_for(tenant.country, tenant.region)
    due = due_date(terms, days, day, tenant.country, subdivision)
    milestone_ids = [line.milestone_id for line in invoice.lines if line.milestone_id]
    milestones = list(
        session.scalars(select(Milestone).where(Milestone.id.in_(milestone_ids)).with_for_update())
    )
    for milestone in milestones:
        if project is not None and milestone.status != done_status(project):
            raise InvoiceError(
                f"{milestone.name} is {milestone.status.replace('_', ' ')} now; make a new draft."
            )
    for milestone in milestones:
        record_move(session, milestone, "invoiced", user_id, "invoice issued")
    invoice.fiscal_year = fiscal_year_of(day, tenant.country)
    invoice.issue_date = day
    invoice.due_date = due.day
    invoice.issued_at = datetime.now(UTC)
    fmt = fmt or number_format(session, tenant, invoice.series)
    invoice.number = next_invoice_number(session, invoice.series, invoice.fiscal_year, fmt)
    invoice.status = "issued"
    session.flush()
    if chosen is not None:
        _check_issue_date(session, invoice, chosen, today)  # again, now that the series waits
    announce_invoice_issued(session, invoice, user_id)
    request_pdf(session, tenant, invoice)  # rendered by a worker once this commits
    return invoice


def void(session: Session, invoice: Invoice, user_id: int | None = None) -> Invoice:
    """Void a draft, or an issued invoice on which nothing was paid or credited (a payment is
    un-allocated first; a credited invoice is settled by credit notes, not voided). It keeps
    its number (numbers are never used again, GST Rule 46) and its milestones become
    invoiceable again."""
    if invoice.status not in ("draft", "issued", "sent", "overdue"):
        raise InvoiceError(f"A {_label(invoice.status)} invoice cannot be voided.")
    if invoice.status != "draft":
        if outstanding(session, invoice) != to_money(invoice.total):
            raise InvoiceError(
                "Payments or credit notes are recorded against this invoice: it cannot be voided."
            )
        project = session.get(Project, invoice.project_id) if invoice.project_id else None
        back = done_status(project) if project else "completed"
        ids = [line.milestone_id for line in invoice.lines if line.milestone_id]
        for milestone in session.scalars(select(Milestone).where(Milestone.id.in_(ids))):
            if milestone.status == "invoiced":
                record_move(session, milestone, back, user_id, f"invoice {invoice.number} voided")
    invoice.status = "void"
    session.flush()
    announce_invoice_voided(session, invoice, user_id)
    return invoice


# The lifecycle after issuing ----------------------------------------------------------------
#
# Statuses: issued -> sent (marked by hand until invoices are e-mailed); overdue is STORED,
# set by the daily job `mark_overdue` (each tenant at its own midnight) on issued and sent
# invoices past their due date; a payment makes any of them partly paid or paid and taking it
# back returns the invoice to what the facts say (`balance.status_after_settling`: overdue when
# past due, else sent when it was sent, else issued). Disputed holds until resolved (unless the
# invoice gets paid in full); written off is final. What is owed is never stored: see
# app.invoicing.balance.outstanding (total - payments - credit notes - written off).


def _label(status: str) -> str:
    return status.replace("_", " ")


def _refuse_unless(invoice: Invoice, allowed: Sequence[str], action: str) -> None:
    if invoice.status not in allowed:
        raise InvoiceError(f"This invoice is {_label(invoice.status)}: it cannot be {action}.")


def mark_sent(session: Session, invoice: Invoice, channel: str = "manual") -> Invoice:
    """Record that the invoice went to the client (by hand unless a channel is named). Only an
    issued invoice changes status (an overdue or partly paid one keeps its status, with the
    date it was sent)."""
    if invoice.sent_at is not None:
        raise InvoiceError("This invoice was already marked as sent.")
    _refuse_unless(invoice, ("issued", "overdue", "partly_paid", "disputed"), "marked as sent")
    invoice.sent_at = datetime.now(UTC)
    if invoice.status == "issued":
        invoice.status = "sent"
    session.flush()
    _announce_sent(session, invoice, channel)
    return invoice


def record_sending(session: Session, invoice: Invoice, channel: str) -> None:
    """The invoice itself goes to the client again or for the first time (e-mail, WhatsApp,
    SMS): the first sending marks it sent; each one is an invoice.sent event."""
    if invoice.sent_at is None:
        mark_sent(session, invoice, channel)
    else:
        _announce_sent(session, invoice, channel)


def _announce_sent(session: Session, invoice: Invoice, channel: str) -> None:
    emit(
        session,
        "invoice.sent",
        "invoice",
        invoice.id,
        {
            "invoice_id": invoice.id,
            "client_id": invoice.client_id,
            "number": invoice.number,
            "channel": channel,
        },
    )


def dispute(session: Session, invoice: Invoice, reason: str) -> Invoice:
    """The client disputes the invoice: collection pauses until the dispute is resolved."""
    _refuse_unless(invoice, ("issued", "sent", "overdue", "partly_paid"), "disputed")
    reason = (reason or "").strip()
    if not reason:
        raise InvoiceInvalid({"dispute_reason": worded("Say what the {client} disputes.")})
    if len(reason) > 2000:
        raise InvoiceInvalid({"dispute_reason": "Keep the reason to 2,000 characters."})
    invoice.status = "disputed"
    invoice.disputed_at = datetime.now(UTC)
    invoice.dispute_reason = reason
    session.flush()
    return invoice


def resolve_dispute(session: Session, invoice: Invoice, today: date | None = None) -> Invoice:
    """The dispute is over: the invoice goes back to what its money and dates say. The reason
    stays on the invoice (and the change in the audit log)."""
    _refuse_unless(invoice, ("disputed",), "resolved")
    left = outstanding(session, invoice)
    credited = credited_to_invoices(session, [invoice.id]).get(invoice.id, ZERO)
    paid = to_money(invoice.total) - credited - left
    invoice.status = "issued"  # leave "disputed" so that the money decides
    invoice.status = status_after_settling(session, invoice, paid, left, today)
    invoice.disputed_at = None
    session.flush()
    return invoice


def write_off(session: Session, invoice: Invoice, reason: str) -> Invoice:
    """Write off what the invoice still owes (a bad debt): the amount and reason are kept on
    the invoice, it owes nothing more and takes no more payments. Final."""
    _refuse_unless(invoice, ("issued", "sent", "overdue", "partly_paid"), "written off")
    reason = (reason or "").strip()
    if not reason:
        raise InvoiceInvalid({"write_off_reason": "Say why the amount is written off."})
    if len(reason) > 2000:
        raise InvoiceInvalid({"write_off_reason": "Keep the reason to 2,000 characters."})
    invoice = lock_invoice(session, invoice)
    _refuse_unless(invoice, ("issued", "sent", "overdue", "partly_paid"), "written off")
    left = outstanding(session, invoice)
    if left <= 0:
        raise InvoiceError("Nothing is owed on this invoice: there is nothing to write off.")
    invoice.written_off_amount = left
    invoice.written_off_at = datetime.now(UTC)
    invoice.write_off_reason = reason
    invoice.status = "written_off"
    session.flush()
    announce_invoice_written_off(session, invoice, None)
    return invoice


def lock_invoice(session: Session, invoice: Invoice) -> Invoice:
    """The invoice's row locked and re-read, so that what it owes cannot change under us (the
    payments take the same lock)."""
    return session.scalars(
        select(Invoice)
        .where(Invoice.id == invoice.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def mark_overdue(session: Session, today: date) -> int:
    """The daily run: issued and sent invoices past their due date (`today` is the tenant's
    date) become overdue, each through the ORM so that each change is audited. Returns how
    many changed."""
    invoices = session.scalars(
        select(Invoice)
        .where(Invoice.status.in_(("issued", "sent")), Invoice.due_date < today)
        .order_by(Invoice.id)
        .with_for_update(skip_locked=True)
    )
    count = 0
    for invoice in invoices:
        invoice.status = "overdue"
        count += 1
    session.flush()
    return count


def get_invoice(session: Session, invoice_id: int) -> Invoice | None:
    return session.get(Invoice, invoice_id)


def invoice_for_page(
    session: Session, invoice_id: int
) -> tuple[Invoice, Client, Project | None] | None:
    """The invoice with its lines, its client and its project (its page shows all four), in one
    statement."""
    found = (
        session.execute(
            select(Invoice, Client, Project)
            .join(Client, Client.id == Invoice.client_id)
            .outerjoin(Project, Project.id == Invoice.project_id)
            .options(joinedload(Invoice.lines))
            .where(Invoice.id == invoice_id)
        )
        .unique()
        .first()
    )
    return tuple(found) if found else None
