"""The domain events the product's signals already announce, written as events in the same
transaction (app.core.signals' receivers run inside the sender's): an invoice issued, paid or
voided, a payment recorded or taken back. Events no signal announces are emitted where they
happen, by their area's services (`app.core.events.emit`).

This module belongs to no business area and imports none."""

from __future__ import annotations

from decimal import Decimal

from flask import Flask

from app.core import signals
from app.core.events import emit


def _money(value) -> str:
    return format(Decimal(value).quantize(Decimal("0.01")), "f")


def _on_invoice_issued(session, **facts) -> None:
    emit(
        session,
        "invoice.issued",
        "invoice",
        facts["invoice_id"],
        {
            "invoice_id": facts["invoice_id"],
            "client_id": facts["client_id"],
            "number": facts["number"],
            "currency": facts["currency"],
            "total": _money(facts["total"]),
            "issue_date": facts["issue_date"].isoformat(),
            "due_date": facts["due_date"].isoformat() if facts.get("due_date") else None,
        },
        facts.get("user_id"),
    )


def _on_invoice_paid(session, **facts) -> None:
    emit(
        session,
        "invoice.paid",
        "invoice",
        facts["invoice_id"],
        {
            "invoice_id": facts["invoice_id"],
            "client_id": facts["client_id"],
            "amount_due": _money(facts["amount_due"]),
        },
        facts.get("user_id"),
    )


def _on_invoice_voided(session, **facts) -> None:
    emit(
        session,
        "invoice.voided",
        "invoice",
        facts["invoice_id"],
        {
            "invoice_id": facts["invoice_id"],
            "client_id": facts["client_id"],
            "number": facts["number"],
        },
        facts.get("user_id"),
    )


def _on_payment_recorded(session, **facts) -> None:
    emit(
        session,
        "payment.received",
        "payment",
        facts["payment_id"],
        {
            "payment_id": facts["payment_id"],
            "client_id": facts["client_id"],
            "amount": _money(facts["amount"]),
            "currency": facts["currency"],
            "received_on": facts["received_on"].isoformat(),
            "method": facts["method"],
        },
    )


def _on_payment_voided(session, **facts) -> None:
    emit(
        session,
        "payment.reversed",
        "payment",
        facts["payment_id"],
        {
            "payment_id": facts["payment_id"],
            "client_id": facts["client_id"],
            "amount": _money(facts["amount"]),
            "currency": facts["currency"],
            "reason": (facts.get("reason") or None) and str(facts["reason"])[:500],
        },
        facts.get("user_id"),
    )


def init_app(app: Flask) -> None:
    # weak=False: module-level functions live as long as the process anyway; explicit.
    signals.invoice_issued.connect(_on_invoice_issued, weak=False)
    signals.invoice_paid.connect(_on_invoice_paid, weak=False)
    signals.invoice_voided.connect(_on_invoice_voided, weak=False)
    signals.payment_recorded.connect(_on_payment_recorded, weak=False)
    signals.payment_voided.connect(_on_payment_voided, weak=False)
