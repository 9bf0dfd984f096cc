"""Late-payment interest: the MSMED Act s.16 worked example by hand (compound, monthly rests,
three times the bank rate), a bank-rate change mid-period (per rest vs appointed day), a partial
payment mid-period, no written agreement (15 days), the 45-day cap, contractual simple and
compound, a medium enterprise (none), a partial last month, and the batch reading."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from app.collections.cases import interest
from app.collections.models import BankRate, CollectionSettings
from app.payments import services as payments
from tests.test_payments import books, pay  # noqa: F401  (books: the fixture)


@pytest.fixture
def msme(books):  # noqa: F811
    """A micro supplier; a client on MSMED interest with terms agreed in writing; bank rates
    pinned for 2026 (5.50% from 1 Jan) whatever the seeded history says."""
    session, client, issued, new_client = books
    settings = session.get(CollectionSettings, 1)
    settings.msme_category = "micro"
    settings.msme_rate_basis = "per_rest"
    session.add(BankRate(effective_from=date(2026, 1, 1), rate=Decimal("5.50")))
    client.late_interest_mode = "msmed"
    client.payment_agreed_in_writing = True
    session.flush()

    def invoice(amount="100000.00", accepted=date(2026, 4, 1), due=date(2026, 5, 1)):
        inv, _ = issued(client, amount, accepted)
        inv.accepted_on, inv.due_date = accepted, due
        session.flush()
        return inv

    return session, client, settings, invoice


def test_worked_example_three_whole_months_at_three_times_the_bank_rate(msme):
    """Rs 1,00,000 accepted 1 Apr 2026, agreed 30 days (due 1 May), bank rate 5.50% -> 16.5% a
    year, 1.375% a month, from 2 May. By hand, rounding to the paisa at each rest:
      2 May-1 Jun: 1,00,000.00 x 1.375% = 1,375.00            -> 1,01,375.00
      2 Jun-1 Jul: 1,01,375.00 x 1.375% = 1,393.90625 = 1,393.91 -> 1,02,768.91
      2 Jul-1 Aug: 1,02,768.91 x 1.375% = 1,413.0725 = 1,413.07  -> 1,04,181.98
    = 4,181.98, i.e. 1,00,000 x (1.01375^3 - 1) = 4,181.9787 to the paisa."""
    session, _, _, invoice = msme
    inv = invoice()
    result = interest.invoice_interest(session, inv, date(2026, 8, 1))
    assert result.basis == "msmed" and result.starts_on == date(2026, 5, 2)
    assert [r.interest for r in result.schedule] == [
        Decimal("1375.00"),
        Decimal("1393.91"),
        Decimal("1413.07"),
    ]
    assert [(r.start, r.end) for r in result.schedule] == [
        (date(2026, 5, 2), date(2026, 6, 1)),
        (date(2026, 6, 2), date(2026, 7, 1)),
        (date(2026, 7, 2), date(2026, 8, 1)),
    ]
    assert all(r.annual_rate == Decimal("16.50") for r in result.schedule)
    assert result.schedule[-1].closing == Decimal("104181.98")
    assert result.amount == Decimal("4181.98")
    assert "three times" in result.description
    # Nothing on the agreed date itself; one day in: 1/31 of the first month (May rest has 31).
    assert interest.invoice_interest(session, inv, date(2026, 5, 1)).amount == Decimal("0.00")
    one_day = interest.invoice_interest(session, inv, date(2026, 5, 2))
    assert one_day.amount == Decimal("44.35")  # 1,00,000 x 1.375% x 1/31 = 44.354...


def test_partial_last_month_is_pro_rata_simple_within_the_rest(msme):
    session, _, _, invoice = msme
    inv = invoice()
    # Two whole rests, then 2-16 Jul: 15 of the 31 days of the rest 2 Jul-1 Aug, on 1,02,768.91.
    result = interest.invoice_interest(session, inv, date(2026, 7, 16))
    assert result.schedule[-1].end == date(2026, 7, 16)
    assert result.schedule[-1].interest == Decimal("683.74")  # 102768.91 x 0.01375 x 15/31
    assert result.amount == Decimal("1375.00") + Decimal("1393.91") + Decimal("683.74")


def test_bank_rate_change_mid_period_per_rest_or_appointed_day(msme):
    session, _, settings, invoice = msme
    session.add(BankRate(effective_from=date(2026, 6, 10), rate=Decimal("5.00")))
    session.flush()
    inv = invoice()
    as_of = date(2026, 8, 1)
    per_rest = interest.invoice_interest(session, inv, as_of)
    # The June rest starts on 2 Jun (5.50% in force), the July rest on 2 Jul (5.00%: 15%).
    assert [r.annual_rate for r in per_rest.schedule] == [
        Decimal("16.50"),
        Decimal("16.50"),
        Decimal("15.00"),
    ]
    assert per_rest.schedule[-1].interest == Decimal("1284.61")  # 102768.91 x 1.25%
    assert per_rest.amount == Decimal("4053.52")
    settings.msme_rate_basis = "appointed_day"
    session.flush()
    whole = interest.invoice_interest(session, inv, as_of)
    assert {r.annual_rate for r in whole.schedule} == {Decimal("16.50")}
    assert whole.amount == Decimal("4181.98")


def test_partial_payment_mid_period_lowers_interest_from_its_day(msme):
    session, client, _, invoice = msme
    inv = invoice()
    payment = pay(session, client, "40000", "2026-06-17")
    payments.allocate(session, payment, [(inv.id, Decimal("40000"), Decimal("0"))])
    result = interest.invoice_interest(session, inv, date(2026, 8, 1))
    first, june, july = result.schedule
    assert first.interest == Decimal("1375.00")
    # 2-16 Jun (15 days) on 1,01,375.00; 17 Jun-1 Jul (15 days) on 61,375.00; rest has 30 days.
    assert june.interest == Decimal("1118.91")  # (101375 x 15 + 61375 x 15) x 0.01375 / 30
    assert june.principal == Decimal("100000.00") and june.closing == Decimal("62493.91")
    assert july.opening == Decimal("62493.91")
    assert july.interest == Decimal("859.29")  # 62493.91 x 1.375%
    assert result.amount == Decimal("3353.20")


def test_paid_in_full_stops_interest_on_the_day_of_payment(msme):
    session, client, _, invoice = msme
    inv = invoice()
    payment = pay(session, client, "100000", "2026-06-02")
    payments.allocate(session, payment, [(inv.id, Decimal("100000"), Decimal("0"))])
    late = interest.invoice_interest(session, inv, date(2026, 12, 31))
    assert late.amount == Decimal("1375.00")  # one month late, nothing after


def test_no_written_agreement_runs_from_the_appointed_day(msme):
    session, client, _, invoice = msme
    client.payment_agreed_in_writing = False
    session.flush()
    inv = invoice(due=date(2026, 6, 30))  # the due date does not matter without an agreement
    result = interest.invoice_interest(session, inv, date(2026, 5, 16))
    assert result.starts_on == date(2026, 4, 17)  # 15 days from 1 Apr end on 16 Apr
    assert result.schedule[0].end == date(2026, 5, 16)
    assert result.amount == Decimal("1375.00")
    assert "appointed day" in result.description


def test_agreed_terms_are_capped_at_45_days_from_acceptance(msme):
    session, _, _, invoice = msme
    inv = invoice(due=date(2026, 7, 30))  # 120 days agreed: the Act allows 45
    result = interest.invoice_interest(session, inv, date(2026, 6, 16))
    assert result.starts_on == date(2026, 5, 17)  # 1 Apr + 45 = 16 May
    assert result.amount == Decimal("1375.00")
    assert "45 days" in result.description
    # Accepted later than issued: the acceptance date counts.
    inv.accepted_on = date(2026, 4, 11)
    assert interest.invoice_interest(session, inv, date(2026, 6, 16)).starts_on == date(2026, 5, 27)


def test_medium_enterprise_gets_no_msmed_interest(msme):
    session, _, settings, invoice = msme
    settings.msme_category = "medium"
    session.flush()
    result = interest.invoice_interest(session, invoice(), date(2026, 8, 1))
    assert result.amount == Decimal("0.00") and result.basis == "none"
    assert "micro or small" in result.description
    settings.msme_category = None
    session.flush()
    assert interest.invoice_interest(session, invoice(), date(2026, 8, 1)).basis == "none"


def test_contractual_simple_and_compound(msme):
    session, client, _, invoice = msme
    client.late_interest_mode = "simple"
    client.late_interest_rate = Decimal("18")
    session.flush()
    inv = invoice(due=date(2026, 5, 1))
    simple = interest.invoice_interest(session, inv, date(2026, 8, 1))
    assert simple.basis == "simple" and simple.starts_on == date(2026, 5, 2)
    assert simple.amount == Decimal("4500.00")  # 1,00,000 x 1.5% x 3
    assert simple.schedule[-1].closing == Decimal("104500.00")
    client.late_interest_mode = "compound"
    session.flush()
    compound = interest.invoice_interest(session, inv, date(2026, 8, 1))
    # 1500.00; 101500 x 1.5% = 1522.50; 103022.50 x 1.5% = 1545.3375 -> 1545.34
    assert compound.amount == Decimal("4567.84")
    client.late_interest_rate = None
    session.flush()
    assert interest.invoice_interest(session, inv, date(2026, 8, 1)).amount == Decimal("0.00")
    client.late_interest_mode = "none"
    session.flush()
    assert interest.invoice_interest(session, inv, date(2026, 8, 1)).basis == "none"


def test_batch_matches_one_by_one_and_credit_notes_count_from_their_day(msme):
    session, client, _, invoice = msme
    first, second = invoice(), invoice("50000.00")
    result = interest.interest_for_invoices(session, [first, second], date(2026, 8, 1))
    assert result[first.id].amount == Decimal("4181.98")
    assert result[second.id] == interest.invoice_interest(session, second, date(2026, 8, 1))
    assert result[second.id].amount == Decimal("2090.99")


def test_month_rests_from_the_31st_use_the_last_day_of_shorter_months():
    assert interest.add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert interest.add_months(date(2026, 1, 31), 2) == date(2026, 3, 31)
    rests = interest.schedule(
        Decimal("1000.00"), [], date(2026, 1, 31), date(2026, 3, 30), lambda d: Decimal(12), True
    )
    assert [(r.start, r.end) for r in rests] == [
        (date(2026, 1, 31), date(2026, 2, 27)),
        (date(2026, 2, 28), date(2026, 3, 30)),
    ]
