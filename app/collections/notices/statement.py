"""What a notice states: its invoices with what each owes now, their late-payment interest and
lateness, the totals, a UPI link for the total, and the statement as plain text. Shared by the
notice's message (services), its letter (letters) and the daily run's preview (engine)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from types import SimpleNamespace

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.collections.cases.interest import Interest, rounding_sentence
from app.collections.cases.interest_claims import interest_owed
from app.collections.models import (
    CollectionNotice,
)
from app.core.language import day_in
from app.core.money import to_money
from app.invoicing.balance import outstanding
from app.invoicing.models import Invoice
from app.invoicing.pdf import shows_upi_qr, upi_link
from app.message_templates.translations import statement_words
from app.settings.models import WorkspaceSettings

ZERO = Decimal("0.00")


def notice_invoices(session: Session, notice: CollectionNotice) -> list[Invoice]:
    ids = [item.invoice_id for item in notice.items]
    if not ids:
        return []
    found = {i.id: i for i in session.scalars(select(Invoice).where(Invoice.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


@dataclass
class Line:
    """An invoice of a notice as the message and the letter show it."""

    invoice: Invoice
    outstanding: Decimal
    interest: Decimal
    days_overdue: int
    interest_detail: Interest | None = None


def notice_lines(session: Session, notice: CollectionNotice, as_of: date) -> list[Line]:
    """Each invoice with what it owes now, its late-payment interest to `as_of` (contractual or
    MSMED s.16, by the client's terms, less interest already paid, waived or written off) and
    how late it is, oldest due first."""

    invoices = notice_invoices(session, notice)
    interest = interest_owed(session, invoices, as_of)
    lines = []
    for invoice in invoices:
        detail = interest.get(invoice.id)
        lines.append(
            Line(
                invoice,
                outstanding(session, invoice),
                to_money(detail.amount) if detail is not None else ZERO,
                max((as_of - invoice.due_date).days, 0) if invoice.due_date else 0,
                detail,
            )
        )
    return sorted(lines, key=lambda line: (line.invoice.due_date or date.max, line.invoice.id))


def totals(lines: Sequence[Line], fee: Decimal | None) -> dict[str, Decimal]:
    outstanding = sum((line.outstanding for line in lines), ZERO)
    interest = sum((line.interest for line in lines), ZERO)
    fee = to_money(fee or ZERO)
    return {
        "outstanding": outstanding,
        "interest": interest,
        "fee": fee,
        "total": outstanding + interest + fee,
    }


def interest_methods(lines: Sequence[Line]) -> list[str]:
    """How the interest of these lines was compounded and rounded, one sentence per method."""
    return sorted(
        {
            rounding_sentence(line.interest_detail)
            for line in lines
            if line.interest and line.interest_detail is not None
        }
    )


# The statement's words in English; a message in another language takes that language's
# (`translations.statement_words`), with the same {fields}.
STATEMENT_WORDS = {
    "heading": "Statement of the invoices on this notice:",
    "line": "- {number}, dated {issued}, due {due}: outstanding {outstanding}",
    "line_interest": ", interest {interest}",
    "line_overdue": " ({days} days overdue)",
    "interest": "Interest: {amount}",
    "fee": "Fee: {amount}",
    "total": "Total now due: {amount}",
    "upi": "Pay by UPI: {link}",
    "attached": "The attached statement lists the same.",
}


def statement_text(
    lines: Sequence[Line], sums: dict, money, link: str | None, language: str = "en"
) -> str:
    """The invoices of the notice as plain text under the e-mail's own words, in `language`
    when there are words for it (dates as it writes them), else in English. How interest
    was worked out stays in English (the letter attached explains it in full)."""
    words = statement_words(language) or STATEMENT_WORDS
    written_in = language if words is not STATEMENT_WORDS else "en"

    def day(value: date | None) -> str:
        return day_in(value, written_in) or "—"

    rows = [words["heading"]]
    for line in lines:
        invoice = line.invoice
        row = words["line"].format(
            number=invoice.number,
            issued=day(invoice.issue_date),
            due=day(invoice.due_date),
            outstanding=money(line.outstanding),
        )
        if line.interest:
            row += words["line_interest"].format(interest=money(line.interest))
        if line.days_overdue:
            row += words["line_overdue"].format(days=line.days_overdue)
        rows.append(row)
    if sums["interest"]:
        rows.append(words["interest"].format(amount=money(sums["interest"])))
        rows.extend(interest_methods(lines))
    if sums["fee"]:
        rows.append(words["fee"].format(amount=money(sums["fee"])))
    rows.append(words["total"].format(amount=money(sums["total"])))
    if link:
        rows.append(words["upi"].format(link=link))
    rows.append(words["attached"])
    return "\n".join(rows)


def payment_link(
    tenant,
    workspace: WorkspaceSettings,
    notice: CollectionNotice,
    lines: Sequence[Line],
    total: Decimal,
) -> str | None:
    """A UPI link for what the notice asks (Indian tenants with a UPI id, INR): for one invoice
    its own link, for several one link for the total, referenced by the notice."""

    if not lines or total <= 0:
        return None
    first = lines[0].invoice
    if not shows_upi_qr(tenant, workspace, first, total):
        return None
    reference = first if len(lines) == 1 else SimpleNamespace(number=f"NOTICE-{notice.id}")
    return upi_link(tenant, workspace, reference, total)
