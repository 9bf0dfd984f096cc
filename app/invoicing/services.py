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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.business_days import roll_forward, subdivision_for
from app.clients.models import Client
from app.clients.rules import GST_STATES, region_code
from app.invoicing import gst
from app.invoicing.models import Invoice, InvoiceLine
from app.invoicing.money import to_money
from app.invoicing.numbering import NumberFormat, fiscal_year_of, next_invoice_number
from app.invoicing.words import CURRENCIES, amount_in_words
from app.projects.models import Milestone, Project
from app.projects.services import effective_terms, record_move

DEFAULT_SERIES = "INV"
DEFAULT_FORMAT = "INV/{fy_short}/{seq:05d}"  # "INV/26-27/00001": 15 characters
ZERO = Decimal("0.00")


class InvoiceError(ValueError):
    """A request the invoicing rules refuse; the message says why, for the person."""


def default_tax_rate(country: str) -> Decimal:
    return {"IN": Decimal("18"), "AU": gst.AU_GST_RATE}.get(country.upper(), Decimal("0"))


def state_name(code: str | None) -> str:
    return GST_STATES.get(code or "", "")


def _state_of(region: str | None) -> str | None:
    return region_code(region) if region else None


def _invoiceable_status(project: Project) -> str:
    return "approved" if project.requires_approval else "completed"


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


def draft_from_milestones(session: Session, tenant, project: Project,
                          milestones: Sequence[Milestone], tax_rate=None,
                          hsn_sac: str | None = None, lut_reference: str | None = None,
                          reverse_charge: bool = False) -> Invoice:  # fmt: skip
    """A draft invoice with one line per milestone, in the milestones' plan order.

    Only milestones that are done can be invoiced: "completed", or "approved" on a project that
    requires approval. The tax regime follows `gst.tax_regime`: the supplier is the tenant (its
    country and state), the recipient the project's client (its GSTIN's state, else its state);
    a client outside India is an export, zero-rated (under the tenant's LUT)."""
    if not milestones:
        raise InvoiceError("Choose at least one milestone to invoice.")
    ids = sorted({m.id for m in milestones})
    locked = list(session.scalars(
        select(Milestone).where(Milestone.id.in_(ids)).order_by(Milestone.position)
        .with_for_update()))  # fmt: skip
    wanted = _invoiceable_status(project)
    for milestone in locked:
        if milestone.project_id != project.id:
            raise InvoiceError(f"{milestone.name} is not a milestone of {project.name}.")
        if milestone.status != wanted:
            raise InvoiceError(
                f"{milestone.name} is {milestone.status.replace('_', ' ')}: only {wanted} "
                f"milestones can be invoiced"
                + (" (this project needs approval first)." if project.requires_approval else ".")
            )
    taken = on_live_invoice(session, ids)
    if taken:
        names = ", ".join(m.name for m in locked if m.id in taken)
        raise InvoiceError(f"Already on an invoice that is not void: {names}.")

    client = project.client
    supplier_country = tenant.country.upper()
    client_country = (client.country or "").upper()
    place = None
    if supplier_country == "IN" and client_country == "IN":
        place = _place_of_supply(client)
    try:
        regime = gst.tax_regime(supplier_country, _state_of(tenant.region), client_country,
                                place, is_export_with_lut=True)  # fmt: skip
    except ValueError as error:
        raise InvoiceError(
            f"Cannot work out the tax: {error}. Give the workspace's state and the client's "
            "GSTIN or state."
        ) from None
    rate = default_tax_rate(supplier_country) if tax_rate in (None, "") else tax_rate
    if regime == "export":
        rate = Decimal("0")  # zero-rated: the line shows 0%, whatever rate was asked for
    invoice = Invoice(
        client_id=client.id, project_id=project.id, series=DEFAULT_SERIES, status="draft",
        currency=project.currency, supplier_gstin=getattr(tenant, "gstin", None),
        recipient_gstin=client.gstin, place_of_supply=place, tax_regime=regime,
        reverse_charge=reverse_charge,
        lut_reference=(lut_reference or None) if regime == "export" else None,
    )  # fmt: skip
    lines, taxes = [], []
    for position, milestone in enumerate(locked, start=1):
        value = to_money(milestone.amount)
        try:
            tax = gst.line_tax(value, rate, regime)
        except (TypeError, ValueError) as error:
            raise InvoiceError(str(error)) from None
        taxes.append(tax)
        lines.append(InvoiceLine(
            milestone_id=milestone.id, position=position,
            description=f"{project.name}: {milestone.name}"[:255],
            hsn_sac=(hsn_sac or "").strip()[:8] or None, quantity=Decimal("1.000"),
            unit_price=value, taxable_value=value, tax_rate=Decimal(str(rate)),
            cgst=tax.cgst, sgst=tax.sgst, igst=tax.igst, other_tax=tax.other,
            total=value + tax.total,
        ))  # fmt: skip
    _set_totals(invoice, lines, gst.invoice_tax(taxes))
    invoice.lines = lines
    session.add(invoice)
    session.flush()
    return invoice


def _set_totals(invoice: Invoice, lines: Sequence[InvoiceLine], tax: gst.LineTax) -> None:
    """Totals are the sums of the rounded lines, so the invoice adds up to its lines exactly."""
    invoice.subtotal = sum((line.taxable_value for line in lines), ZERO)
    invoice.cgst, invoice.sgst, invoice.igst, invoice.other_tax = (
        tax.cgst, tax.sgst, tax.igst, tax.other)  # fmt: skip
    invoice.total = sum((line.total for line in lines), ZERO)
    assert invoice.total == invoice.subtotal + tax.total
    currency = invoice.currency if invoice.currency in CURRENCIES else None
    invoice.amount_in_words = amount_in_words(invoice.total, currency) if currency else ""


# Issuing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    day: date
    note: str  # how it was worked out, for the page


def due_date(terms: str | None, days: int | None, issue_day: date, country: str,
             subdivision: str | None = None) -> Due:  # fmt: skip
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
        last = issue_day.replace(day=month_calendar.monthrange(issue_day.year,
                                                               issue_day.month)[1])  # fmt: skip
        day, note = last + timedelta(days=days or 0), f"{days or 0} days after month end"
    elif terms == "custom":
        day, note = issue_day, "as agreed"
    else:
        day, note = issue_day, "on receipt"
    return Due(roll_forward(day, country, subdivision), note)


def number_format(tenant, series: str = DEFAULT_SERIES) -> NumberFormat:
    return NumberFormat.for_series(DEFAULT_FORMAT if series == DEFAULT_SERIES else
                                   "{series}/{fy_short}/{seq:05d}", series,
                                   tenant.country)  # fmt: skip


def issue(session: Session, tenant, invoice: Invoice, today: date,
          fmt: NumberFormat | None = None, user_id: int | None = None) -> Invoice:  # fmt: skip
    """Issue a draft: `today` is the tenant's date (its time zone). The number is taken last,
    so the series' counter is locked for as short a time as possible."""
    if invoice.status != "draft":
        raise InvoiceError(f"Only drafts can be issued; this invoice is {invoice.status}.")
    project = session.get(Project, invoice.project_id) if invoice.project_id else None
    client = session.get(Client, invoice.client_id)
    terms, days = effective_terms(project) if project else (client.payment_terms,
                                                             client.payment_days)  # fmt: skip
    subdivision = subdivision_for(tenant.country, tenant.region)
    due = due_date(terms, days, today, tenant.country, subdivision)
    milestone_ids = [line.milestone_id for line in invoice.lines if line.milestone_id]
    milestones = list(session.scalars(select(Milestone).where(Milestone.id.in_(milestone_ids))
                                      .with_for_update()))  # fmt: skip
    for milestone in milestones:
        if project is not None and milestone.status != _invoiceable_status(project):
            raise InvoiceError(f"{milestone.name} is {milestone.status.replace('_', ' ')} now; "
                               "make a new draft.")  # fmt: skip
    for milestone in milestones:
        record_move(session, milestone, "invoiced", user_id, "invoice issued")
    invoice.fiscal_year = fiscal_year_of(today, tenant.country)
    invoice.issue_date = today
    invoice.due_date = due.day
    invoice.issued_at = datetime.now(UTC)
    fmt = fmt or number_format(tenant, invoice.series)
    invoice.number = next_invoice_number(session, invoice.series, invoice.fiscal_year, fmt)
    invoice.status = "issued"
    session.flush()
    return invoice


def void(session: Session, invoice: Invoice, user_id: int | None = None) -> Invoice:
    """Void a draft or an issued invoice. An issued one keeps its number (numbers are never
    used again, GST Rule 46) and its milestones become invoiceable again."""
    if invoice.status not in ("draft", "issued"):
        raise InvoiceError(f"A {invoice.status.replace('_', ' ')} invoice cannot be voided.")
    if invoice.status == "issued":
        project = session.get(Project, invoice.project_id) if invoice.project_id else None
        back = _invoiceable_status(project) if project else "completed"
        ids = [line.milestone_id for line in invoice.lines if line.milestone_id]
        for milestone in session.scalars(select(Milestone).where(Milestone.id.in_(ids))):
            if milestone.status == "invoiced":
                record_move(session, milestone, back, user_id, f"invoice {invoice.number} voided")
    invoice.status = "void"
    session.flush()
    return invoice


def get_invoice(session: Session, invoice_id: int) -> Invoice | None:
    return session.get(Invoice, invoice_id)
