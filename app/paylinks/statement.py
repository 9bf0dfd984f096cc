"""What a pay link's page asks for, read from the books at the moment it is asked: the
invoices the link is for, what each still owes, the late-payment interest a notice claimed on
it and nobody has paid, waived or written off (`interest_claims`: interest not yet claimed by
a notice is not asked for here), totals per currency, and the UPI request for a total.

A payment made through the page is split over the invoices oldest due first, each taking what
it owes and then its claimed interest before the next gets anything (`split_over_invoices`)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache
from types import SimpleNamespace

import segno
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.collections.cases.interest_claims import interest_claims
from app.collections.models import CollectionNotice
from app.collections.notices.statement import notice_invoices
from app.core.money import to_money
from app.invoicing.balance import PAYABLE_STATUSES, open_invoices, outstanding_of
from app.invoicing.models import Invoice
from app.invoicing.pdf import shows_upi_qr, upi_link
from app.paylinks.models import PayLink
from app.settings.models import WorkspaceSettings

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class OwedInvoice:
    invoice: Invoice
    outstanding: Decimal
    # The unpaid late-payment interest the invoice's latest notice claimed.
    interest: Decimal

    @property
    def total(self) -> Decimal:
        return self.outstanding + self.interest


@dataclass
class CurrencyDue:
    """The invoices of one currency and what they ask in all (currencies are never added)."""

    currency: str
    lines: list[OwedInvoice] = field(default_factory=list)

    @property
    def outstanding(self) -> Decimal:
        return sum((line.outstanding for line in self.lines), ZERO)

    @property
    def interest(self) -> Decimal:
        return sum((line.interest for line in self.lines), ZERO)

    @property
    def total(self) -> Decimal:
        return self.outstanding + self.interest


@dataclass(frozen=True)
class Owed:
    client: Client
    # Every invoice the link is for, owing or not (a paid one is listed as paid).
    invoices: list[Invoice]
    due: list[CurrencyDue]

    @property
    def nothing_owed(self) -> bool:
        return not self.due

    def in_currency(self, currency: str) -> CurrencyDue | None:
        return next((group for group in self.due if group.currency == currency), None)

    def owes_on(self, invoice_id: int) -> bool:
        return any(line.invoice.id == invoice_id for group in self.due for line in group.lines)


def link_invoices(session: Session, link: PayLink) -> list[Invoice]:
    """The invoices a link is for: its invoice, its notice's, or the client's open ones."""
    if link.kind == "invoice":
        invoice = session.get(Invoice, link.invoice_id)
        return [invoice] if invoice is not None else []
    if link.kind == "notice":
        notice = session.get(CollectionNotice, link.notice_id)
        return notice_invoices(session, notice) if notice is not None else []
    return [each.invoice for each in open_invoices(session, link.client_id)]


def what_is_owed(session: Session, link: PayLink) -> Owed:
    if link.kind == "client":
        # The client's open invoices come with what each owes: not read a second time.
        open_now = open_invoices(session, link.client_id)
        invoices = [each.invoice for each in open_now]
        payable = invoices
        owed_now = {each.invoice.id: each.outstanding for each in open_now}
    else:
        invoices = link_invoices(session, link)
        payable = [i for i in invoices if i.status in PAYABLE_STATUSES]
        owed_now = outstanding_of(session, payable)
    owing = [(i, owed_now[i.id]) for i in payable if owed_now[i.id] > 0]
    claims = interest_claims(session, invoice_ids=[i.id for i, _ in owing]) if owing else {}
    groups: dict[str, CurrencyDue] = {}
    for invoice, owed in sorted(owing, key=lambda pair: (pair[0].due_date or date.max, pair[0].id)):
        charged = claims[invoice.id].unpaid if invoice.id in claims else ZERO
        groups.setdefault(invoice.currency, CurrencyDue(invoice.currency)).lines.append(
            OwedInvoice(invoice, owed, charged)
        )
    return Owed(session.get(Client, link.client_id), invoices, list(groups.values()))


@dataclass(frozen=True)
class Split:
    """A payment over a group's invoices: {invoice id: its part} and, of each part, what pays
    the invoice's claimed interest (only invoices whose part reaches into their interest)."""

    amounts: dict[int, Decimal]
    interest: dict[int, Decimal]


def split_over_invoices(group: CurrencyDue, amount: Decimal) -> Split:
    """`amount` over the group's invoices, oldest due first: each takes what it owes, then the
    interest its notice claimed, before the next invoice gets anything. So a part payment pays
    debt before interest on each invoice, and the oldest invoice is cleared first."""
    left = to_money(amount)
    amounts: dict[int, Decimal] = {}
    interest: dict[int, Decimal] = {}
    for line in group.lines:
        part = min(left, line.total)
        if part <= 0:
            break
        amounts[line.invoice.id] = part
        if part > line.outstanding:
            interest[line.invoice.id] = part - line.outstanding
        left -= part
    return Split(amounts, interest)


def upi_request(
    tenant, workspace: WorkspaceSettings, link: PayLink, group: CurrencyDue, amount: Decimal
) -> str | None:
    """The UPI deep link for `amount` of this group (Indian workspaces with a UPI id, INR): for
    one invoice its own number as the reference, for several the notice's or the client's."""
    if not group.lines or amount <= 0:
        return None
    first = group.lines[0].invoice
    if not shows_upi_qr(tenant, workspace, first, amount):
        return None
    if len(group.lines) == 1:
        reference = first
    elif link.kind == "notice":
        reference = SimpleNamespace(number=f"NOTICE-{link.notice_id}")
    else:
        reference = SimpleNamespace(number=f"CLIENT-{link.client_id}")
    return upi_link(tenant, workspace, reference, amount)


@lru_cache(maxsize=256)
def qr_svg(data: str) -> bytes:
    """The QR code as an SVG (sharp at any size on a phone's screen). Kept for the last few
    hundred requests drawn: the same payer's page asks again for the same one."""
    out = io.BytesIO()
    segno.make(data, error="m", micro=False).save(out, kind="svg", scale=1, border=2)
    return out.getvalue()


def own_invoice(session: Session, link: PayLink, invoice_id: int) -> Invoice | None:
    """The invoice `invoice_id` if the link is for it and it is issued (its PDF may then be
    downloaded through the link), else None: a link opens its own invoices and nothing else."""
    return next(
        (
            invoice
            for invoice in link_invoices(session, link)
            if invoice.id == invoice_id and invoice.status in PAYABLE_STATUSES
        ),
        None,
    )
