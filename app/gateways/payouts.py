"""Gateway payouts matched to the bank: the money Stripe (payouts) and Razorpay (settlements)
send to the workspace's bank account, recorded by the nightly reconciliation once per
(provider, payout id), and found among the bank statement's credits.

A waiting credit line is a payout's when its amount and currency are the payout's, it was
booked within `ARRIVAL_SLACK` of the payout's arrival date, and its narration (or payer)
names the gateway, the payout id or the transfer's UTR. It becomes a "settlement" line and
books nothing: the payments in the payout were booked from the gateway's webhooks, and
offering the line as an invoice payment would book them twice. Each payout takes at most one
line and each line at most one payout (both unique); the matching is one join, run after
each reconciliation and, through `statement_lines_added`, before a new statement's credits
are matched to invoices. A payout not in the bank `MISSING_AFTER` its arrival is listed on
the reconciliation page."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import and_, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.banking.models import WAITING_STATUSES, StatementLine
from app.gateways.models import GatewayPayout
from app.integrations.connectors.gateway import PayoutReport

ARRIVAL_SLACK = 3  # days either side of the arrival date
MISSING_AFTER = timedelta(days=5)
# Payouts that will never reach the bank, in Stripe's and Razorpay's words.
NOT_COMING = ("failed", "canceled", "cancelled", "reversed")


def record_payouts(session: Session, provider: str, reports: list[PayoutReport]) -> None:
    """Keep each reported payout once; a later report updates what may change (its status,
    its arrival date, the UTR once the bank gave one)."""
    if not reports:
        return
    rows = [
        {
            "provider": provider,
            "payout_id": report.payout_id,
            "amount": report.amount,
            "currency": report.currency,
            "arrival_date": report.arrival_date,
            "status": report.status,
            "bank_reference": report.bank_reference,
        }
        for report in {report.payout_id: report for report in reports}.values()
    ]
    statement = insert(GatewayPayout).values(rows)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["provider", "payout_id"],
            set_={
                "status": statement.excluded.status,
                "arrival_date": statement.excluded.arrival_date,
                "bank_reference": func.coalesce(
                    statement.excluded.bank_reference, GatewayPayout.bank_reference
                ),
            },
        )
    )


def match_to_bank(session: Session) -> int:
    """Pair waiting bank credits with the payouts not yet found in the bank (one join, each
    side taken once: the closest date wins, then the oldest). Returns how many were found."""
    narration = func.upper(
        StatementLine.narration + " " + func.coalesce(StatementLine.counterparty_name, "")
    )
    names_it = or_(
        func.strpos(narration, func.upper(GatewayPayout.provider)) > 0,
        func.strpos(narration, func.upper(GatewayPayout.payout_id)) > 0,
        and_(
            GatewayPayout.bank_reference.is_not(None),
            func.strpos(narration, func.upper(GatewayPayout.bank_reference)) > 0,
        ),
    )
    distance = func.abs(StatementLine.booked_on - GatewayPayout.arrival_date)
    candidates = (
        select(
            GatewayPayout.id.label("payout_id"),
            StatementLine.id.label("line_id"),
            func.row_number()
            .over(
                partition_by=GatewayPayout.id,
                order_by=(distance, StatementLine.id),
            )
            .label("by_payout"),
            func.row_number()
            .over(
                partition_by=StatementLine.id,
                order_by=(distance, GatewayPayout.id),
            )
            .label("by_line"),
        )
        .join(
            StatementLine,
            and_(
                StatementLine.amount == GatewayPayout.amount,
                StatementLine.currency == GatewayPayout.currency,
            ),
        )
        .where(
            GatewayPayout.statement_line_id.is_(None),
            GatewayPayout.status.not_in(NOT_COMING),
            StatementLine.direction == "credit",
            StatementLine.status.in_(WAITING_STATUSES),
            distance <= ARRIVAL_SLACK,
            names_it,
        )
        .subquery("candidates")
    )
    pairs = (
        select(candidates.c.payout_id, candidates.c.line_id)
        .where(candidates.c.by_payout == 1, candidates.c.by_line == 1)
        .subquery("pairs")
    )
    found = session.execute(
        update(GatewayPayout)
        .where(GatewayPayout.id == pairs.c.payout_id)
        .values(statement_line_id=pairs.c.line_id)
        .returning(GatewayPayout.id),
        execution_options={"synchronize_session": False},
    ).all()
    if not found:
        return 0
    reason = (
        literal("The gateway's payout ")
        + GatewayPayout.payout_id
        + " of the same amount arrived within "
        + str(ARRIVAL_SLACK)
        + " days, and the narration names it: its payments were booked from the gateway."
    )
    session.execute(
        update(StatementLine)
        .where(
            GatewayPayout.statement_line_id == StatementLine.id,
            GatewayPayout.id.in_([row.id for row in found]),
        )
        .values(
            status="settlement",
            invoice_id=None,
            client_id=None,
            confidence=100,
            match_reason=reason,
        ),
        execution_options={"synchronize_session": False},
    )
    return len(found)


def not_in_bank(session: Session, today: date, limit: int = 200) -> list[GatewayPayout]:
    """Payouts the bank has not shown `MISSING_AFTER` their arrival date, oldest first."""
    return list(
        session.scalars(
            select(GatewayPayout)
            .where(
                GatewayPayout.statement_line_id.is_(None),
                GatewayPayout.status.not_in(NOT_COMING),
                GatewayPayout.arrival_date <= today - MISSING_AFTER,
            )
            .order_by(GatewayPayout.arrival_date, GatewayPayout.id)
            .limit(limit)
        )
    )
