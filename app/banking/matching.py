"""Matching statement credits to open invoices, set-based: every rule is one join of the
waiting lines with the open invoices (or the recorded payments), never a loop over invoices.

Rules, strongest first (confidence 0-100, the reason in words kept with the line):
- the line's UTR/RRN is the reference of a live payment of the same amount recorded by hand:
  the line *is* that payment (`recorded`, nothing booked again);
- an open invoice's number is in the narration (`references.narration_keys`, looked up by
  equality): 95 when the amount is exactly what it still owes (a *sure* match), 75 when it
  is less (a part payment), 60 when it is more;
- otherwise the amount is exactly what an open invoice owes and the payer's name looks like
  its client's (pg_trgm word similarity, at least 0.5): 70; the amount alone: 40.
An invoice issued after the money arrived is never a candidate. When several invoices fit a
line equally well the best is still suggested, 20 points lower and saying so: never sure."""

from __future__ import annotations

from sqlalchemy import (
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session

from app.banking.models import StatementLine
from app.clients.models import Client
from app.invoicing.balance import applied_per_invoice
from app.invoicing.models import CreditNote, Invoice
from app.payments.models import Payment

# Open: can take a payment and may still owe (paid invoices owe nothing).
OPEN_STATUSES = ("issued", "sent", "partly_paid", "overdue", "disputed")
SURE = 95
NAME_SIMILARITY = 0.5


def _open_invoices():
    applied = applied_per_invoice().subquery()
    credited = (
        select(CreditNote.invoice_id, func.sum(CreditNote.total).label("amount"))
        .group_by(CreditNote.invoice_id)
        .subquery()
    )
    owed = (
        Invoice.total
        - func.coalesce(applied.c.amount, 0)
        - func.coalesce(credited.c.amount, 0)
        - func.coalesce(Invoice.written_off_amount, 0)
    )
    return (
        select(
            Invoice.id,
            Invoice.number,
            Invoice.client_id,
            Invoice.currency,
            Invoice.issue_date,
            Invoice.due_date,
            owed.label("owed"),
            # Numbers are letters, digits, '-' and '/' (numbering formats; opening balances'
            # old numbers may carry spaces, dots or '_'): dropped by translate(), far cheaper
            # than a regular expression over every open invoice.
            func.upper(func.translate(Invoice.number, "/-_. ", "")).collate("C").label("key"),
        )
        .outerjoin(applied, applied.c.invoice_id == Invoice.id)
        .outerjoin(credited, credited.c.invoice_id == Invoice.id)
        .where(Invoice.status.in_(OPEN_STATUSES))
        .cte("open_invoices")
    )


def match_lines(session: Session, import_id: int) -> None:
    """Match the import's waiting credit lines; each gets its best candidate (or none)."""
    waiting = (
        select(StatementLine)
        .where(
            StatementLine.import_id == import_id,
            StatementLine.direction == "credit",
            StatementLine.status == "unmatched",
        )
        .cte("waiting")
    )
    _mark_recorded(session, waiting)
    invoices = _open_invoices()
    key = func.unnest(waiting.c.narration_keys).table_valued("key").render_derived()
    by_reference = (
        select(
            waiting.c.id.label("line_id"),
            invoices.c.id.label("invoice_id"),
            invoices.c.client_id,
            invoices.c.due_date,
            case(
                (waiting.c.amount == invoices.c.owed, SURE),
                (waiting.c.amount < invoices.c.owed, 75),
                else_=60,
            ).label("confidence"),
            (
                literal("Invoice ")
                + invoices.c.number
                + case(
                    (
                        waiting.c.amount == invoices.c.owed,
                        " is in the narration and the amount is what it still owes.",
                    ),
                    (
                        waiting.c.amount < invoices.c.owed,
                        " is in the narration; the amount is less than it owes (a part payment).",
                    ),
                    else_=" is in the narration; the amount is more than it owes.",
                )
            ).label("reason"),
        )
        .select_from(waiting)
        .join(key, literal_column("true"))
        # Byte order ("C"): the keys are letters and digits, and a join over some 12 keys a
        # line sorts or hashes them several times faster than under a language's collation.
        .join(invoices, invoices.c.key == key.c.key.collate("C"))
        .where(
            invoices.c.currency == waiting.c.currency,
            invoices.c.owed > 0,
            invoices.c.issue_date <= waiting.c.booked_on,
        )
    )
    referenced = by_reference.cte("referenced")
    payer = func.coalesce(waiting.c.counterparty_name, "") + " " + waiting.c.narration
    name_score = func.greatest(
        func.word_similarity(func.lower(Client.full_name), func.lower(payer)),
        func.word_similarity(func.lower(Client.short_name), func.lower(payer)),
    )
    by_amount = (
        select(
            waiting.c.id.label("line_id"),
            invoices.c.id.label("invoice_id"),
            invoices.c.client_id,
            invoices.c.due_date,
            case((name_score >= NAME_SIMILARITY, 70), else_=40).label("confidence"),
            case(
                (
                    name_score >= NAME_SIMILARITY,
                    literal("The amount is what invoice ")
                    + invoices.c.number
                    + " still owes, and the payer's name looks like "
                    + Client.full_name
                    + ".",
                ),
                else_=literal("Only the amount fits: it is what invoice ")
                + invoices.c.number
                + " still owes.",
            ).label("reason"),
        )
        .select_from(waiting)
        .join(
            invoices,
            and_(invoices.c.owed == waiting.c.amount, invoices.c.currency == waiting.c.currency),
        )
        .join(Client, Client.id == invoices.c.client_id)
        .where(
            invoices.c.issue_date <= waiting.c.booked_on,
            # The name is compared only where no reference matched: trigram similarity is
            # the costly part, and a reference outranks it anyway.
            waiting.c.id.not_in(select(referenced.c.line_id)),
        )
    )
    candidates = select(referenced).union_all(by_amount).subquery("candidates")
    ranked = select(
        candidates,
        func.max(candidates.c.confidence).over(partition_by=candidates.c.line_id).label("best"),
        func.row_number()
        .over(
            partition_by=candidates.c.line_id,
            order_by=(
                candidates.c.confidence.desc(),
                candidates.c.due_date,
                candidates.c.invoice_id,
            ),
        )
        .label("rank"),
    ).subquery("ranked")
    tied = func.count().filter(ranked.c.confidence == ranked.c.best)
    best = (
        select(
            ranked.c.line_id,
            func.min(ranked.c.invoice_id).filter(ranked.c.rank == 1).label("invoice_id"),
            func.min(ranked.c.client_id).filter(ranked.c.rank == 1).label("client_id"),
            (func.max(ranked.c.best) - case((tied > 1, 20), else_=0)).label("confidence"),
            (
                func.min(ranked.c.reason).filter(ranked.c.rank == 1)
                + case(
                    (tied > 1, literal(" ") + cast(tied, Text) + " invoices fit equally well."),
                    else_="",
                )
            ).label("reason"),
        )
        .group_by(ranked.c.line_id)
        .subquery("best")
    )
    session.execute(
        update(StatementLine)
        .where(StatementLine.id == best.c.line_id)
        .values(
            status="suggested",
            invoice_id=best.c.invoice_id,
            client_id=best.c.client_id,
            confidence=best.c.confidence,
            match_reason=best.c.reason,
        ),
        execution_options={"synchronize_session": False},
    )


def _mark_recorded(session: Session, waiting) -> None:
    """Lines whose UTR/RRN and amount are those of a payment already recorded by hand."""
    reference = (
        func.unnest(waiting.c.transfer_references).table_valued("reference").render_derived()
    )
    found = (
        select(
            func.min(waiting.c.id).label("line_id"),
            Payment.id.label("payment_id"),
            Payment.client_id,
        )
        .select_from(waiting)
        .join(reference, literal_column("true"))
        .join(
            Payment,
            and_(
                Payment.reference == reference.c.reference,
                Payment.amount == waiting.c.amount,
                Payment.voided_at.is_(None),
            ),
        )
        .where(~select(StatementLine.id).where(StatementLine.payment_id == Payment.id).exists())
        .group_by(Payment.id, Payment.client_id)
        .subquery("found")
    )
    session.execute(
        update(StatementLine)
        .where(StatementLine.id == found.c.line_id)
        .values(
            status="recorded",
            payment_id=found.c.payment_id,
            client_id=found.c.client_id,
            confidence=100,
            match_reason="This transfer's reference and amount are those of a payment "
            "already recorded: nothing more to book.",
        ),
        execution_options={"synchronize_session": False},
    )
