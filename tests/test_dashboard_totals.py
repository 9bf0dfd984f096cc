"""The dashboard and the payments list read figures the database keeps as the data changes
(migrations 0022 and 0024), not sums over every row on each visit: the cash per day, and how
much of it is not yet allocated, must stay equal to what the payments and their allocations
themselves add up to, through recording, allocating, taking back, voiding, moving and deleting
payments. (The aging totals are compared with the full recomputation in tests/test_aging.py.)"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select

from app.payments import listing
from app.payments import services as payments
from app.payments.models import Payment, PaymentDay
from tests.test_aging import Books


def kept_cash(session) -> dict:
    return {
        (d.received_on, d.currency): (d.amount, d.payment_count, d.unapplied)
        for d in session.scalars(select(PaymentDay))
    }


def recomputed_cash(session) -> dict:
    """From the payments and their live allocations, as the payments list once added them up."""
    found = {}
    for payment in session.scalars(select(Payment).where(Payment.voided_at.is_(None))):
        allocated = sum(
            (a.amount + a.interest_amount for a in payment.allocations if a.removed_at is None),
            Decimal("0"),
        )
        amount, count, unapplied = found.get(
            (payment.received_on, payment.currency), (Decimal("0"), 0, Decimal("0"))
        )
        found[(payment.received_on, payment.currency)] = (
            amount + payment.amount,
            count + 1,
            unapplied + payment.amount - allocated,
        )
    return found


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
    assert kept_cash(session)[(date(2027, 3, 2), "INR")] == (
        Decimal("1250.50"),
        2,
        Decimal("1250.50"),
    )
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
    assert kept_cash(session)[(date(2027, 3, 9), "USD")] == (
        Decimal("75.25"),
        1,
        Decimal("75.25"),
    )


def test_cash_not_yet_allocated_follows_allocations_and_voids(db_session, make_tenant):
    books = Books(db_session, make_tenant())
    session = books.session
    client = books.client()
    first = books.invoice(client, "600.00", due=date(2027, 3, 31), issued=date(2027, 3, 1))
    second = books.invoice(client, "300.00", due=date(2027, 3, 31), issued=date(2027, 3, 1))
    session.flush()
    day = date(2027, 3, 2)

    def unapplied():
        session.flush()
        assert kept_cash(session) == recomputed_cash(session)
        return kept_cash(session).get((day, "INR"), (None, None, None))[2]

    payment = payments.record_payment(
        session, client, {"amount": "1000.00", "received_on": day.isoformat(), "method": "cash"}
    )
    other = payments.record_payment(
        session, client, {"amount": "50.00", "received_on": day.isoformat(), "method": "cash"}
    )
    assert unapplied() == Decimal("1050.00")
    [to_first] = payments.allocate(session, payment, [(first.id, "600.00", "0", None, None)])
    assert unapplied() == Decimal("450.00")
    payments.allocate(session, payment, [(second.id, "250.00", "0", None, None)])
    assert unapplied() == Decimal("200.00")
    payments.unallocate(session, to_first)
    assert unapplied() == Decimal("800.00")
    payments.void_payment(session, payment, "Transfer reversed")  # takes back the 250 too
    assert unapplied() == Decimal("50.00")
    payments.void_payment(session, other, "Entered twice")
    assert unapplied() is None  # no live payment left on the day
