"""Credit notes (CGST Act s.34): a note against an issued invoice that reduces what it owes.

- Amount: the gross amount to credit (tax included), at most what the invoice still owes
  (checked with the invoice row locked, the lock payments take too), so credit notes and
  payments together never take an invoice below zero.
- Lines and taxes: the amount is split over the invoice's lines in proportion to their totals,
  and each line's part into taxable value and tax in proportion to that invoice line's own
  (largest remainder, to the paisa); the tax then goes where the invoice line's went: CGST and
  SGST by the invoice's rule (half each, the odd paisa on CGST), or IGST, or the plain tax. So
  the note's lines add up to its amount exactly, its tax is the invoice's rate on the credited
  value (to a paisa), and a credit of the whole invoice mirrors every line.
- Numbers: their own series "CN", consecutive per financial year (the same counter table and
  statement as invoices: no gaps, no duplicates).
- Status: a note that clears the balance makes the invoice "paid" (nothing is left to collect;
  the page shows what settled it); otherwise the invoice keeps its status (payments decide
  partly paid). The decision is `app.invoicing.balance.settle`, as for any change of what is owed.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.money import CENT, format_money, split_by_weights, to_money
from app.core.number_formats import fiscal_year_of
from app.invoicing.balance import outstanding, settle
from app.invoicing.models import OWING_STATUSES, CreditNote, CreditNoteLine, Invoice
from app.invoicing.numbering import next_invoice_number
from app.invoicing.services import InvoiceError, InvoiceInvalid, lock_invoice, number_format
from app.invoicing.words import CURRENCIES, amount_in_words

CREDIT_NOTE_SERIES = "CN"
ZERO = Decimal("0.00")
PARTS = ("taxable_value", "cgst", "sgst", "igst", "other_tax")


def credit_notes_of_invoice(session: Session, invoice_id: int) -> list[CreditNote]:
    return list(
        session.scalars(
            select(CreditNote).where(CreditNote.invoice_id == invoice_id).order_by(CreditNote.id)
        )
    )


def credit_notes_of_client(session: Session, client_id: int) -> list[tuple[CreditNote, str]]:
    """The client's credit notes, newest first, each with its invoice's number."""
    return list(
        session.execute(
            select(CreditNote, Invoice.number)
            .join(Invoice, Invoice.id == CreditNote.invoice_id)
            .where(CreditNote.client_id == client_id)
            .order_by(CreditNote.issue_date.desc(), CreditNote.id.desc())
        ).all()
    )


def get_credit_note(session: Session, credit_note_id: int) -> CreditNote | None:
    return session.get(CreditNote, credit_note_id)


def credit_lines(invoice: Invoice, amount: Decimal) -> list[CreditNoteLine]:
    """The lines of a credit note of `amount` against `invoice` (see the module's rules)."""
    lines = list(invoice.lines)
    shares = split_by_weights(amount, [to_money(line.total) for line in lines])
    result = []
    for line, share in zip(lines, shares, strict=True):
        if share <= 0:
            continue
        value = to_money(line.taxable_value)
        taxable, tax = split_by_weights(share, [value, to_money(line.total) - value])
        taxes = {"cgst": ZERO, "sgst": ZERO, "igst": ZERO, "other_tax": ZERO}
        if line.cgst or line.sgst:  # the invoice's rule: CGST = half, the odd paisa on CGST
            taxes["cgst"] = (tax / 2).quantize(CENT, rounding=ROUND_HALF_UP)
            taxes["sgst"] = tax - taxes["cgst"]
        elif line.igst:
            taxes["igst"] = tax
        else:
            taxes["other_tax"] = tax
        result.append(
            CreditNoteLine(
                invoice_line_id=line.id,
                position=len(result) + 1,
                description=line.description,
                hsn_sac=line.hsn_sac,
                tax_rate=line.tax_rate,
                taxable_value=taxable,
                total=share,
                **taxes,
            )
        )
    return result


def _amount(raw) -> Decimal | None:
    if isinstance(raw, Decimal):
        return raw
    try:
        value = Decimal(str(raw or "").replace(",", "").strip())
    except ArithmeticError:
        return None
    return value if value.is_finite() else None


def issue_credit_note(
    session: Session,
    tenant,
    invoice: Invoice,
    amount,
    reason: str,
    today: date,
    user_id: int | None = None,
) -> CreditNote:
    """A credit note of `amount` (tax included; "" or None: all that is still owed) against an
    issued invoice, numbered now. Raises InvoiceInvalid (field errors) or InvoiceError."""
    if invoice.status not in OWING_STATUSES:
        raise InvoiceError(
            f"This invoice is {invoice.status.replace('_', ' ')}: a credit note can be made "
            "only against an issued invoice that still owes money."
        )
    errors = {}
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = "Say why the amount is credited (e.g. a discount, a return)."
    elif len(reason) > 2000:
        errors["reason"] = "Keep the reason to 2,000 characters."
    invoice = lock_invoice(session, invoice)
    left = outstanding(session, invoice)
    full = amount is None or (isinstance(amount, str) and not amount.strip())
    value = left if full else _amount(amount)
    if value is None:
        errors["amount"] = "Enter the amount to credit, e.g. 5000.00."
    elif value > left:  # before rounding: a number as long as 1e30 cannot be rounded
        errors["amount"] = (
            f"At most what the invoice still owes: {format_money(left, invoice.currency)}."
        )
    elif value <= 0 or value != value.quantize(Decimal("0.01")):
        errors["amount"] = "An amount above 0, at most 2 decimals."
    if errors:
        raise InvoiceInvalid(errors)
    lines = credit_lines(invoice, value)
    sums = {p: sum((getattr(line, p) for line in lines), ZERO) for p in PARTS}
    note = CreditNote(
        invoice_id=invoice.id,
        client_id=invoice.client_id,
        series=CREDIT_NOTE_SERIES,
        fiscal_year=fiscal_year_of(today, tenant.country),
        issue_date=today,
        reason=reason,
        currency=invoice.currency,
        subtotal=sums["taxable_value"],
        cgst=sums["cgst"],
        sgst=sums["sgst"],
        igst=sums["igst"],
        other_tax=sums["other_tax"],
        total=value,
    )
    assert note.subtotal + note.cgst + note.sgst + note.igst + note.other_tax == value
    currency = invoice.currency if invoice.currency in CURRENCIES else None
    note.amount_in_words = amount_in_words(value, currency) if currency else ""
    note.lines = lines
    note.number = next_invoice_number(
        session, note.series, note.fiscal_year, number_format(session, tenant, CREDIT_NOTE_SERIES)
    )
    session.add(note)
    session.flush()
    settle(session, invoice, user_id)
    return note
