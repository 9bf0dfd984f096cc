"""The dashboard reads figures the database keeps as the data changes (migration 0022), not
sums over every row on each visit: the cash per day must stay equal to what the payments
themselves add up to, through recording, voiding, moving and deleting payments. (The aging
totals are compared with the full recomputation in tests/test_aging.py.)"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from app.payments import listing
from app.payments import services as payments
from app.payments.models import Payment, PaymentDay
from tests.test_aging import Books


def kept_cash(session) -> dict:
    return {
        (d.received_on, d.currency): (d.amount, d.payment_count)
        for d in session.scalars(select(PaymentDay))
    }


def recomputed_cash(session) -> dict:
    rows = session.execute(
        select(Payment.received_on, Payment.currency, func.sum(Payment.amount), func.count())
        .where(Payment.voided_at.is_(None))
        .group_by(Payment.received_on, Payment.currency)
    )
    return {(day, currency): (amount, count) for day, currency, amount, count in rows}


def test_cash_per_day_follows_the_payments_and_the_dashboard_months(db_session, make_tenant):
    books = Books(db_session, make_tenant())
    session = books.session
    inr, usd = books.client(currency="INR"), books.client(currency="USD")

    def pay(client, amount, day):
        return payments.record_payment(
            session, client, {"amount": amount, "received_on": day, "method": "cash"}
        )

    first = pay(inr, "1000.50", "2027-03-02")
    pay(inr, "250.00", "2027-03-02")
    bounced = pay(inr, "4000.00", "2027-02-27")
    pay(usd, "75.25", "2027-03-09")
    moved = pay(usd, "10.00", "2027-02-01")
    session.flush()
    assert kept_cash(session)[(date(2027, 3, 2), "INR")] == (Decimal("1250.50"), 2)
    assert kept_cash(session) == recomputed_cash(session)

    payments.void_payment(session, bounced, "Cheque bounced")
    moved.received_on, moved.amount = date(2027, 3, 10), Decimal("12.00")
    first.note = "Part of March's rent"  # an edit that moves no cash
    session.flush()
    assert (date(2027, 2, 27), "INR") not in kept_cash(session)
    assert kept_cash(session) == recomputed_cash(session)

    cash = listing.cash_by_month(session, date(2027, 3, 15))
    assert [(m.currency, m.this_month, m.last_month) for m in cash] == [
        ("INR", Decimal("1250.50"), Decimal("0.00")),
        ("USD", Decimal("87.25"), Decimal("0.00")),
    ]

    session.delete(moved)
    session.flush()
    assert kept_cash(session) == recomputed_cash(session)
    assert kept_cash(session)[(date(2027, 3, 9), "USD")] == (Decimal("75.25"), 1)
