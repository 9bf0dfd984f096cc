"""Interest a notice claimed stays owed after the invoice's principal is paid, on the client
page and the notice, until it is recorded paid (cash of a payment allocated to it), waived or
written off with a reason; and the two ways of rounding compound interest, named on the
notice's statement, its letter and the MSEFC pack."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.collections.cases import interest, interest_claims
from app.collections.models import BankRate, CollectionNoticeInvoice, CollectionSettings
from app.collections.notices import letters, statement
from app.collections.notices import services as notices
from app.core.clock import tenant_today
from app.core.money import format_money
from app.invoicing.balance import outstanding
from app.invoicing.models import Invoice
from app.payments import services as payments
from app.payments.models import Payment
from tests.helpers import csrf_token_from, tenant_session
from tests.test_notices import books, pdf_text  # noqa: F401  (books: the fixture)

EACH_REST = "Interest was compounded monthly, each month's interest rounded to the nearest 0.01"
AT_END = "Interest was compounded monthly without rounding, and the total rounded once"


def money(amount) -> str:
    return format_money(amount, "INR", "IN")


@pytest.fixture
def claimed(app, books):  # noqa: F811
    """A client on 18% compound interest; its ₹1,00,000 invoice (due 30 Jun 2026) was chased
    by a notice that went out, then paid in full. Returns (books, invoice, interest claimed)."""
    books.client.late_interest_mode, books.client.late_interest_rate = "compound", Decimal(18)
    invoice = books.invoice("100000.00")
    notice = books.notice([invoice], status="approved")
    books.session.commit()
    with app.app_context():
        assert notices.send_notices(books.session, books.tenant, [notice.id]) == {
            notice.id: "queued"
        }
        books.session.commit()
        books.pay("100000.00", [invoice], day="2026-09-10")
        books.session.commit()
    item = books.session.scalar(
        select(CollectionNoticeInvoice).where(CollectionNoticeInvoice.notice_id == notice.id)
    )
    assert item.interest_amount > 0 and outstanding(books.session, invoice) == 0
    assert books.reload(notice).status == "closed"  # the payment closed the notice
    return Claimed(books, invoice.id, Decimal(item.interest_amount), notice.id)


class Claimed:
    """What the `claimed` fixture made, with the addresses of the pages (read before any
    request, which leaves the test's session unbound)."""

    def __init__(self, made, invoice_id: int, interest: Decimal, notice_id: int):
        self.books, self.invoice_id, self.interest = made, invoice_id, interest
        base = f"/t/{made.tenant.slug}"
        self.tab = f"{base}/clients/{made.client.id}/collections"
        self.notice_page = f"{base}/notices/{notice_id}"
        self.settle = f"{base}/invoices/{invoice_id}/interest-settlements"


def test_interest_a_notice_claimed_stays_owed_after_the_principal_is_paid(claimed, client, login):
    interest = claimed.interest
    login(client, claimed.books.owner)
    page = client.get(claimed.tab)
    assert page.status_code == 200
    assert "owes nothing" not in page.text
    assert "Interest claimed, unpaid" in page.text and money(interest) in page.text
    notice_page = client.get(claimed.notice_page)
    assert 'id="notice-interest-claimed"' in notice_page.text
    assert money(interest) in notice_page.text


def test_waiving_needs_a_reason_and_then_clears_the_claim(claimed, client, login):
    interest, url = claimed.interest, claimed.settle
    login(client, claimed.books.owner)
    token = csrf_token_from(client.get(claimed.tab).text)
    refused = client.post(
        url, data={"csrf_token": token, "kind": "waived", "amount": "1,00,00,000", "reason": ""}
    )
    assert refused.status_code == 422
    assert f'id="interest-{claimed.invoice_id}-reason-error"' in refused.text
    assert f"At most {money(interest)} of the interest claimed is unpaid." in refused.text
    assert 'value="1,00,00,000"' in refused.text  # what was typed is kept
    done = client.post(
        url,
        data={
            "csrf_token": token,
            "kind": "waived",
            "amount": str(interest),
            "reason": "Goodwill: long-standing client",
        },
    )
    assert done.status_code == 303
    page = client.get(claimed.tab)
    assert "owes nothing" in page.text and 'id="interest-claimed-unpaid"' not in page.text
    assert "Goodwill: long-standing client" in page.text  # the settlement, with its reason


def test_recording_it_paid_uses_a_payments_cash_and_voiding_that_payment_reopens_it(
    claimed, client, login
):
    made, interest, url = claimed.books, claimed.interest, claimed.settle
    cash = made.make("make_payment")(made.session, made.client, str(interest), "2026-10-01")
    made.session.commit()
    cash_id = cash.id
    login(client, made.owner)
    token = csrf_token_from(client.get(claimed.tab).text)
    done = client.post(
        url,
        data={
            "csrf_token": token,
            "kind": "paid",
            "amount": str(interest),
            "payment_id": str(cash_id),
        },
    )
    assert done.status_code == 303
    assert "owes nothing" in client.get(claimed.tab).text
    session = tenant_session(made.db_session, made.tenant)
    cash = session.get(Payment, cash_id)
    assert payments.unapplied(session, cash) == 0  # the cash went to the interest
    assert outstanding(session, session.get(Invoice, claimed.invoice_id)) == 0  # not principal
    with made.app.app_context():
        payments.void_payment(session, cash, "Cheque bounced")
        session.commit()
    page = client.get(claimed.tab)
    assert "Interest claimed, unpaid" in page.text and money(interest) in page.text


def test_each_rest_or_once_at_the_end_gives_the_issues_two_figures(app, books):  # noqa: F811
    """₹2,50,000 under MSMED s.16 at three times a 5.50% bank rate (16.5% a year, 1.375% a
    month), interest from 2 May 2026, six whole monthly rests to 1 Nov 2026:
    2,50,000 x (1.01375^6 - 1) = 21,347.1172..., rounded once 21,347.12; rounding each rest's
    interest to the paisa before it is capitalised gives 21,347.13."""
    settings = books.session.get(CollectionSettings, 1)
    settings.msme_category, settings.udyam_number = "micro", "UDYAM-MH-19-0012345"
    books.session.add(BankRate(effective_from=date(2026, 1, 1), rate=Decimal("5.50")))
    books.client.late_interest_mode, books.client.payment_agreed_in_writing = "msmed", True
    invoice = books.invoice("250000.00")
    invoice.accepted_on, invoice.due_date = date(2026, 4, 1), date(2026, 5, 1)
    books.session.flush()
    as_of = date(2026, 11, 1)

    each = interest.invoice_interest(books.session, invoice, as_of)
    assert len(each.schedule) == 6 and each.amount == Decimal("21347.13")
    settings.interest_rounding = "at_end"
    books.session.flush()
    once = interest.invoice_interest(books.session, invoice, as_of)
    assert len(once.schedule) == 6 and once.amount == Decimal("21347.12")

    # The statement under the e-mail, the letter and the MSEFC pack say how it was rounded.
    notice = books.notice([invoice], position=4)
    lines = statement.notice_lines(books.session, notice, as_of)
    text = statement.statement_text(lines, statement.totals(lines, None), money, None)
    assert AT_END in text
    with app.test_request_context():
        letter = pdf_text(letters.render_letter(books.session, books.tenant, notice))
        pack = pdf_text(letters.render_msefc_pack(books.session, books.tenant, notice))
    assert "rounded once" in " ".join(letter.split())
    assert "rounded once" in " ".join(pack.split())
    settings.interest_rounding = "each_rest"
    books.session.flush()
    lines = statement.notice_lines(books.session, notice, as_of)
    text = statement.statement_text(lines, statement.totals(lines, None), money, None)
    assert EACH_REST in text


def test_interest_waived_is_not_demanded_again_by_the_next_notice(app, books):  # noqa: F811
    """While the principal is still owed, part of the interest claimed is waived: the first
    notice's claim is lowered by it, and the next notice demands the interest less it."""
    books.client.late_interest_mode, books.client.late_interest_rate = "compound", Decimal(18)
    invoice = books.invoice("100000.00")
    first = books.notice([invoice], status="approved")
    books.session.commit()
    with app.app_context():
        notices.send_notices(books.session, books.tenant, [first.id])
    claim = interest_claims.interest_claims(books.session, invoice_ids=[invoice.id])[invoice.id]
    assert claim.notice_id == first.id and claim.unpaid == claim.claimed > Decimal("100.00")
    interest_claims.settle_claim(
        books.session,
        invoice,
        {"kind": "waived", "amount": "100.00", "reason": "Agreed on the phone"},
        "IN",
        books.owner.id,
    )
    claim = interest_claims.interest_claims(books.session, invoice_ids=[invoice.id])[invoice.id]
    assert claim.unpaid == claim.claimed - Decimal("100.00")
    today = tenant_today(books.session)
    gross = interest.invoice_interest(books.session, invoice, today).amount
    second = books.notice([invoice], position=2)
    (line,) = statement.notice_lines(books.session, second, today)
    assert line.interest == gross - Decimal("100.00")
