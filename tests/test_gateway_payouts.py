"""Gateway payouts matched to the bank: the nightly reconciliation records each Stripe payout
and Razorpay settlement (from the stand-ins), and a bank statement credit of the same amount,
within three days of the arrival and naming the gateway (or the payout id or its UTR) is that
payout's: a "settlement" line that books nothing and is never offered as an invoice payment,
whichever came first, the statement or the run. A payout the bank has not shown five days
after its arrival is listed on the reconciliation page."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.banking import services as banking
from app.banking.models import StatementLine
from app.gateways import payouts
from app.gateways.models import GatewayPayout
from app.integrations.connectors.gateway import PayoutReport
from app.invoicing.models import Invoice
from app.payments.models import Payment
from tests.test_gateway_reconciliation import reconcile
from tests.test_gateways import deliver as deliver_razorpay
from tests.test_gateways import fresh, shop, standin  # noqa: F401
from tests.test_stripe_payments import abroad, deliver, stripe_standin  # noqa: F401

# shop, standin, abroad and stripe_standin are the gateways' fixtures, imported to be used.
PAGE = "/t/{slug}/payments/reconciliation/"
HEADER = "Date,Narration,Chq./Ref.No.,Value Dt,Withdrawal Amt.,Deposit Amt.,Closing Balance\n"


def statement(session, account, *credits: tuple[date, str, Decimal]) -> list[StatementLine]:
    """An HDFC CSV export of the credits (day, narration, amount), imported; its lines."""
    rows = [
        f'{day:%d/%m/%y},{narration},REF{n},{day:%d/%m/%y},,"{amount:,.2f}",'
        for n, (day, narration, amount) in enumerate(credits)
    ]
    data = (HEADER + "\n".join(rows) + "\n").encode()
    made = banking.import_statement(session, account, f"s{account.id}.csv", data, "csv")
    session.commit()
    return list(
        session.scalars(
            select(StatementLine)
            .where(StatementLine.import_id == made.id)
            .order_by(StatementLine.source_line)
            .execution_options(populate_existing=True)
        )
    )


def payment_count(session) -> int:
    return session.scalar(select(func.count()).select_from(Payment))


def the_payout(session) -> GatewayPayout:
    return session.scalars(select(GatewayPayout).execution_options(populate_existing=True)).one()


def test_a_stripe_payout_is_matched_to_the_statement_credit_imported_after_it(
    app,
    client,
    login,
    run_jobs,
    abroad,  # noqa: F811
    stripe_standin,  # noqa: F811
):
    s = abroad.session
    invoice = abroad.invoice("1180.00")
    stripe_standin.pay(abroad.checkout(invoice))
    deliver(client, run_jobs, abroad.token, stripe_standin.sent)
    [paid_out] = stripe_standin.pay_out()
    reconcile(app, s)
    payout = the_payout(s)
    amount = Decimal(paid_out["amount"]) / 100
    assert (payout.provider, payout.payout_id, payout.amount) == ("stripe", paid_out["id"], amount)
    assert (payout.currency, payout.status, payout.statement_line_id) == ("USD", "paid", None)
    booked = payment_count(s)

    account = banking.add_bank_account(s, "USD account", "50100099990001", "USD")
    arrival = payout.arrival_date
    line, other = statement(
        s,
        account,
        (arrival + timedelta(days=2), "STRIPE PAYMENTS UK LTD TRANSFER", amount),
        (arrival, "SOMEONE ELSE", Decimal("12.00")),
    )
    assert (line.status, line.invoice_id, line.payment_id) == ("settlement", None, None)
    assert paid_out["id"] in line.match_reason
    assert the_payout(s).statement_line_id == line.id
    assert other.status == "unmatched"
    assert payment_count(s) == booked  # the payout booked nothing: its payment came by webhook
    assert fresh(s, Invoice, invoice.id).status == "paid"
    login(client, abroad.owner)
    page = client.get(f"/t/{abroad.tenant.slug}/bank/imports/{line.import_id}")
    assert "A gateway&#39;s payout: nothing to book" in page.text


def test_a_razorpay_settlement_found_later_takes_a_credit_offered_to_an_invoice(
    app,
    client,
    run_jobs,
    shop,  # noqa: F811
    standin,  # noqa: F811
):
    s = shop.session
    first = shop.invoice("1000.00")
    standin.pay(shop.checkout(first))
    deliver_razorpay(client, run_jobs, shop.token, standin.sent)
    settled = standin.settle()
    amount = Decimal(settled["amount"]) / 100
    # An open invoice that owes exactly what the settlement brings.
    shop.invoice(str(amount), issued_on=date.today() - timedelta(days=10))
    account = banking.add_bank_account(s, "HDFC current", "50100012345678", "INR")
    today = date.today()
    # The statement comes first, the narration naming only the transfer's UTR.
    [line] = statement(s, account, (today, f"NEFT CR-{settled['utr']}-ACME", amount))
    assert line.status == "suggested"  # until the run knows the settlement

    reconcile(app, s)
    payout = the_payout(s)
    assert (payout.provider, payout.payout_id, payout.amount) == ("razorpay", settled["id"], amount)
    assert payout.bank_reference == settled["utr"]
    assert payout.statement_line_id == line.id
    line = fresh(s, StatementLine, line.id)
    assert (line.status, line.invoice_id, line.client_id) == ("settlement", None, None)
    assert line not in banking.review_queue(s)
    # A second run finds the same settlement and changes nothing.
    reconcile(app, s)
    assert the_payout(s).statement_line_id == line.id
    assert s.scalar(select(func.count()).select_from(GatewayPayout)) == 1
    with pytest.raises(banking.BankingError):
        banking.accept(s, line, shop.owner.id)


def test_a_settlement_credit_is_never_offered_or_applied_as_an_invoice_payment(
    app,
    client,
    run_jobs,
    shop,  # noqa: F811
    standin,  # noqa: F811
):
    s = shop.session
    invoice = shop.invoice("1000.00")
    standin.pay(shop.checkout(invoice))
    deliver_razorpay(client, run_jobs, shop.token, standin.sent)
    settled = standin.settle()
    amount = Decimal(settled["amount"]) / 100
    owing = shop.invoice(str(amount), issued_on=date.today() - timedelta(days=10))
    reconcile(app, s)
    banking.banking_settings(s).apply_sure_matches = True
    account = banking.add_bank_account(s, "HDFC current", "50100012345678", "INR")
    # Even naming the invoice, a credit that is the settlement is the settlement's.
    [line] = statement(
        s, account, (date.today(), f"RAZORPAY SOFTWARE SETTLEMENT {owing.number}", amount)
    )
    assert (line.status, line.invoice_id) == ("settlement", None)
    assert fresh(s, Invoice, owing.id).status != "paid"
    assert line not in banking.review_queue(s)


def test_a_payout_missing_from_the_bank_is_listed_after_five_days(
    client,
    login,
    shop,  # noqa: F811
):
    s = shop.session
    today = date.today()
    payouts.record_payouts(
        s,
        "razorpay",
        [
            PayoutReport(
                "setl_Late0000000001", Decimal("5000.00"), "INR", today - timedelta(6), "processed"
            ),
            PayoutReport(
                "setl_Recent00000001", Decimal("700.00"), "INR", today - timedelta(2), "processed"
            ),
            PayoutReport(
                "setl_Failed00000001", Decimal("800.00"), "INR", today - timedelta(9), "failed"
            ),
            PayoutReport(
                "setl_Found000000001", Decimal("900.00"), "INR", today - timedelta(9), "processed"
            ),
        ],
    )
    account = banking.add_bank_account(s, "HDFC current", "50100012345678", "INR")
    # Not the gateway's by its narration: the late payout's amount alone proves nothing.
    statement(
        s,
        account,
        (today - timedelta(6), "CASH DEPOSIT", Decimal("5000.00")),
        (today - timedelta(8), "RAZORPAY SETTLEMENT", Decimal("900.00")),
    )
    login(client, shop.owner)
    page = client.get(PAGE.format(slug=shop.tenant.slug))
    section = page.text.split("Payouts not in the bank")[1].split("</section>")[0]
    assert "setl_Late0000000001" in section and "₹5,000.00" in section
    for waiting_or_done in ("setl_Recent00000001", "setl_Failed00000001", "setl_Found000000001"):
        assert waiting_or_done not in section
