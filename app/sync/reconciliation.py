"""The reconciliation report of a connection: counts and totals per entity and month on both
sides, and the records that differ, built after each full refresh (when the books' side of
every linked record has just been read) and kept, exportable as CSV.

Duebook's side: the invoices, credit notes and payment allocations linked to the books, plus
those that should be there and are not (issued in Duebook since the connection and not pushed
yet). The books' side: what the full refresh read of each linked record (`SyncLink.books`),
plus the records of the books Duebook could not take (the run's problems, listed as
differences with their reason)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.integrations.models import IntegrationConnection
from app.invoicing.balance import outstanding_of
from app.invoicing.models import CreditNote, Invoice
from app.payments.models import Payment, PaymentAllocation
from app.sync import outgoing
from app.sync.models import SyncLink, SyncProblem, SyncReport, SyncRun

ENTITY_LABELS = {"invoice": "Invoices", "credit_note": "Credit notes", "payment": "Payments"}


def _month(day: str | None) -> str:
    return (day or "")[:7] or "—"


def _money(value) -> Decimal:
    return Decimal(str(value or "0"))


def build_report(session: Session, connection: IntegrationConnection, run: SyncRun) -> SyncReport:
    months: dict[tuple[str, str, str], dict] = defaultdict(
        lambda: {
            "duebook_count": 0,
            "duebook_total": Decimal(0),
            "books_count": 0,
            "books_total": Decimal(0),
        }
    )
    differences: list[dict] = []
    links = session.scalars(
        select(SyncLink).where(
            SyncLink.connection_id == connection.id, SyncLink.entity != "contact"
        )
    ).all()
    by_entity: dict[str, dict[int, SyncLink]] = defaultdict(dict)
    for link in links:
        by_entity[link.entity][link.local_id] = link
        books = link.books or {}
        if not books.get("deleted") and books.get("state") != "void":
            bucket = months[(link.entity, _month(books.get("date")), books.get("currency") or "")]
            bucket["books_count"] += 1
            bucket["books_total"] += _money(books.get("total"))

    invoices = session.scalars(
        select(Invoice).where(Invoice.id.in_(list(by_entity["invoice"])))
    ).all()
    owed = outstanding_of(session, invoices)
    for invoice in invoices:
        link = by_entity["invoice"][invoice.id]
        _count(
            months,
            "invoice",
            invoice.issue_date,
            invoice.currency,
            invoice.total,
            invoice.status == "void",
        )
        books = link.books or {}
        pairs = (
            ("number", invoice.number, books.get("number")),
            ("total", str(invoice.total), books.get("total")),
            ("amount due", str(owed.get(invoice.id, Decimal(0))), books.get("amount_due")),
            # A void invoice need not be in the books any more; a live one must.
            ("in the books", "yes", "no" if books.get("deleted") else "yes")
            if invoice.status != "void"
            else ("in the books", "no", "no"),
        )
        for field, ours, theirs in pairs:
            if invoice.status == "void" and field == "amount due":
                continue
            if theirs is not None and _differs(ours, theirs):
                differences.append(_difference("invoice", invoice.number, field, ours, theirs))

    missing = session.scalars(
        select(Invoice).where(Invoice.id.in_(outgoing.invoices_to_push(connection)))
    ).all()
    for invoice in missing:
        _count(months, "invoice", invoice.issue_date, invoice.currency, invoice.total, False)
        differences.append(_difference("invoice", invoice.number, "in the books", "yes", "not yet"))

    notes = session.scalars(
        select(CreditNote).where(CreditNote.id.in_(list(by_entity["credit_note"])))
    ).all()
    for note in notes:
        _count(months, "credit_note", note.issue_date, note.currency, note.total, False)
        books = by_entity["credit_note"][note.id].books or {}
        if books.get("total") is not None and _differs(str(note.total), books["total"]):
            differences.append(
                _difference("credit_note", note.number, "total", str(note.total), books["total"])
            )

    rows = session.execute(
        select(PaymentAllocation, Payment)
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .where(PaymentAllocation.id.in_(list(by_entity["payment"])))
    ).all()
    for allocation, payment in rows:
        live = allocation.removed_at is None and payment.voided_at is None
        _count(
            months, "payment", payment.received_on, payment.currency, allocation.amount, not live
        )
        books = by_entity["payment"][allocation.id].books or {}
        gone = bool(books.get("deleted"))
        label = f"{payment.received_on.isoformat()} {payment.reference or ''}".strip()
        if live and gone:
            differences.append(_difference("payment", label, "in the books", "yes", "deleted"))
        elif (
            live
            and books.get("total") is not None
            and _differs(str(allocation.amount), books["total"])
        ):
            differences.append(
                _difference("payment", label, "amount", str(allocation.amount), books["total"])
            )

    for problem in session.scalars(
        select(SyncProblem).where(SyncProblem.run_id == run.id, SyncProblem.direction == "pull")
    ):
        if problem.entity != "contact":
            differences.append(
                _difference(
                    problem.entity,
                    problem.label or problem.remote_id or "",
                    "in Duebook",
                    "no",
                    problem.reason,
                )
            )

    report = SyncReport(
        connection_id=connection.id,
        run_id=run.id,
        created_at=datetime.now(UTC),
        months=[
            {
                "entity": entity,
                "month": month,
                "currency": currency,
                "duebook_count": bucket["duebook_count"],
                "duebook_total": str(bucket["duebook_total"]),
                "books_count": bucket["books_count"],
                "books_total": str(bucket["books_total"]),
            }
            for (entity, month, currency), bucket in sorted(months.items())
        ],
        differences=differences,
        difference_count=len(differences),
    )
    session.add(report)
    session.flush()
    return report


def _count(months, entity: str, day, currency: str, amount, void: bool) -> None:
    if void:
        return
    bucket = months[(entity, _month(day.isoformat() if day else None), currency)]
    bucket["duebook_count"] += 1
    bucket["duebook_total"] += Decimal(amount or 0)


def _differs(ours: str, theirs: str) -> bool:
    try:
        return Decimal(ours) != Decimal(theirs)
    except ArithmeticError:
        return str(ours) != str(theirs)


def _difference(entity: str, record: str, field: str, duebook, books) -> dict:
    return {
        "entity": entity,
        "record": record,
        "field": field,
        "duebook": str(duebook),
        "books": str(books),
    }


def latest_report(session: Session, connection_id: int) -> SyncReport | None:
    return session.scalar(
        select(SyncReport)
        .where(SyncReport.connection_id == connection_id)
        .order_by(SyncReport.id.desc())
        .limit(1)
    )


def report_csv(report: SyncReport, books_title: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["Section", "Entity", "Month or record", "Currency", "Field", "Duebook", books_title]
    )
    for row in report.months:
        writer.writerow(
            [
                "Totals",
                ENTITY_LABELS.get(row["entity"], row["entity"]),
                row["month"],
                row.get("currency", ""),
                "count",
                row["duebook_count"],
                row["books_count"],
            ]
        )
        writer.writerow(
            [
                "Totals",
                ENTITY_LABELS.get(row["entity"], row["entity"]),
                row["month"],
                row.get("currency", ""),
                "total",
                row["duebook_total"],
                row["books_total"],
            ]
        )
    for row in report.differences:
        writer.writerow(
            [
                "Difference",
                ENTITY_LABELS.get(row["entity"], row["entity"]),
                row["record"],
                "",
                row["field"],
                row["duebook"],
                row["books"],
            ]
        )
    return out.getvalue()


def month_rows(report: SyncReport) -> list[dict]:
    """The report's months with their totals as amounts (kept as text in the report)."""
    return [
        {
            **row,
            "duebook_total": Decimal(row["duebook_total"]),
            "books_total": Decimal(row["books_total"]),
            "agree": row["duebook_count"] == row["books_count"]
            and Decimal(row["duebook_total"]) == Decimal(row["books_total"]),
        }
        for row in report.months
    ]
