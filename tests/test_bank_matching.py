"""Bank statement import and matching: each credit matched to open invoices by reference
(invoice number in the narration), by amount and the payer's name, or left waiting; sure
matches applied by themselves only when the workspace allows it, never a wrong one; an
overlapping statement uploaded again books nothing twice; the review queue's accept, split,
keep as credit and ignore."""

from __future__ import annotations

import html
import io
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.banking import services
from app.banking.models import BankAccount, StatementLine
from app.invoicing.balance import outstanding
from app.payments.models import Payment
from tests.helpers import csrf_token_from, tenant_session

HEADER = "Date,Narration,Chq./Ref.No.,Value Dt,Withdrawal Amt.,Deposit Amt.,Closing Balance\n"


def hdfc(*rows: str) -> bytes:
    return (HEADER + "\n".join(rows) + "\n").encode()


@pytest.fixture
def books(db_session, make_tenant, make_client, make_invoice):
    tenant = make_tenant(region="27")
    session = tenant_session(db_session, tenant)
    ravi = make_client(session, name="Ravi Kumar Traders", short_name="RAVI")
    globex = make_client(session, name="Globex Engineering", short_name="GLOBEX")
    first = make_invoice(session, tenant, ravi, ("118000.00",), issued_on=date(2027, 2, 1))
    second = make_invoice(session, tenant, globex, ("50000.00",), issued_on=date(2027, 2, 1))
    third = make_invoice(session, tenant, globex, ("7500.00",), issued_on=date(2027, 2, 1))
    account = services.add_bank_account(session, "HDFC current", "50100012345678", "INR")
    return session, account, (ravi, globex), (first, second, third)


def lines_of(session, statement):
    return session.scalars(
        select(StatementLine)
        .where(StatementLine.import_id == statement.id)
        .order_by(StatementLine.source_line)
    ).all()


def test_reference_in_narration_is_a_sure_match_and_waits_by_default(books):
    session, account, _, (first, second, _) = books
    narration = f"UPI-SOMEONE-x@okhdfc-HDFC0000001-701512345678-{first.number.replace('/', '')}"
    data = hdfc(
        f'15/03/27,{narration},0000701512345678,15/03/27,,"1,18,000.00","2,18,000.00"',
        f"16/03/27,NEFT CR-SBIN0000001-X-{second.number}-SBINN52027031612345678,,16/03/27,,"
        '"20,000.00",',
    )
    statement = services.import_statement(session, account, "jan.csv", data, "csv")
    sure, part = lines_of(session, statement)
    assert (sure.status, sure.invoice_id, sure.confidence) == ("suggested", first.id, 95)
    assert first.number in sure.match_reason and "what it still owes" in sure.match_reason
    assert (part.invoice_id, part.confidence) == (second.id, 75)
    assert "part payment" in part.match_reason
    # The workspace has not allowed automatic booking: nothing is paid yet.
    assert outstanding(session, first) == Decimal("118000.00")
    assert sure.payment_id is None


def test_sure_matches_apply_by_themselves_when_allowed_and_nothing_else(books):
    session, account, (ravi, _), (first, second, third) = books
    services.banking_settings(session).apply_sure_matches = True
    data = hdfc(
        f'15/03/27,PAYMENT {first.number},REF1,15/03/27,,"1,18,000.00",',
        # Amount and name only: a suggestion, never applied by itself.
        '16/03/27,NEFT CR-GLOBEX ENGINEERING-PAYMENT,REF2,16/03/27,,"7,500.00",',
        # The right reference but more than owed: not sure.
        f'17/03/27,{second.number} and more,REF3,17/03/27,,"60,000.00",',
    )
    statement = services.import_statement(session, account, "mar.csv", data, "csv")
    applied, by_name, too_much = lines_of(session, statement)
    assert applied.status == "applied"
    payment = session.get(Payment, applied.payment_id)
    assert (payment.client_id, payment.amount) == (ravi.id, Decimal("118000.00"))
    assert outstanding(session, first) == Decimal("0.00")
    assert session.get(type(first), first.id).status == "paid"
    assert (by_name.status, by_name.invoice_id, by_name.confidence) == ("suggested", third.id, 70)
    assert "looks like Globex Engineering" in by_name.match_reason
    assert (too_much.status, too_much.confidence) == ("suggested", 60)
    assert outstanding(session, second) == Decimal("50000.00")
    assert outstanding(session, third) == Decimal("7500.00")


def test_no_match_for_an_invoice_issued_after_the_money_arrived_or_nothing_fitting(books):
    session, account, _, (first, _, _) = books
    data = hdfc(
        f'15/01/27,{first.number},REF1,15/01/27,,"1,18,000.00",',  # before the invoice
        '16/03/27,SOMETHING ELSE,REF2,16/03/27,,"123.45",',
    )
    early, unknown = lines_of(
        session, services.import_statement(session, account, "a.csv", data, "csv")
    )
    assert (early.status, early.invoice_id) == ("unmatched", None)
    assert (unknown.status, unknown.invoice_id) == ("unmatched", None)


def test_a_transfer_already_recorded_by_hand_is_not_booked_again(books, make_payment):
    session, account, (ravi, _), (first, _, _) = books
    make_payment(session, ravi, "118000.00", allocate_to=[first], reference="701512345678")
    data = hdfc('15/03/27,UPI/701512345678/RAVI/ravi@ok,R1,15/03/27,,"1,18,000.00",')
    (line,) = lines_of(session, services.import_statement(session, account, "a.csv", data, "csv"))
    assert line.status == "recorded" and line.payment_id is not None
    assert session.scalar(select(func.count()).select_from(Payment)) == 1


def test_an_overlapping_statement_uploaded_again_books_nothing_twice(books):
    session, account, _, (first, second, _) = books
    services.banking_settings(session).apply_sure_matches = True
    january = hdfc(
        f'15/03/27,PAYMENT {first.number},REF1,15/03/27,,"1,18,000.00","1,18,000.00"',
        '16/03/27,BANK CHARGES,,16/03/27,"10.00",,"1,17,990.00"',
        '16/03/27,BANK CHARGES,,16/03/27,"10.00",,"1,17,990.00"',  # the same again, the same day
    )
    overlapping = hdfc(
        '16/03/27,BANK CHARGES,,16/03/27,"10.00",,"1,17,990.00"',
        '16/03/27,BANK CHARGES,,16/03/27,"10.00",,"1,17,990.00"',
        f'15/03/27,PAYMENT {first.number},REF1,15/03/27,,"1,18,000.00","1,18,000.00"',
        f'17/03/27,PAYMENT {second.number},REF9,17/03/27,,"50,000.00","1,67,990.00"',
    )
    one = services.import_statement(session, account, "jan.csv", january, "csv")
    two = services.import_statement(session, account, "jan-feb.csv", overlapping, "csv")
    assert (one.lines_added, two.lines_added) == (3, 1)
    summary = services.import_summary(session, two)
    assert (summary.lines_read, summary.already_imported, summary.booked) == (4, 3, 1)
    assert session.scalar(select(func.count()).select_from(Payment)) == 2
    assert outstanding(session, first) == Decimal("0.00")
    assert outstanding(session, second) == Decimal("0.00")


def test_review_queue_accept_split_credit_and_ignore(books):
    session, account, (ravi, globex), (first, second, third) = books
    data = hdfc(
        f'15/03/27,{first.number},R1,15/03/27,,"1,18,000.00",',
        '16/03/27,GLOBEX ENGINEERING TWO INVOICES,R2,16/03/27,,"57,500.00",',
        '17/03/27,RAVI ADVANCE,R3,17/03/27,,"1,000.00",',
        '18/03/27,INTEREST,R4,18/03/27,,"3.00",',
    )
    statement = services.import_statement(session, account, "q.csv", data, "csv")
    to_accept, to_split, to_credit, to_ignore = lines_of(session, statement)
    assert {line.id for line in services.review_queue(session)} == {
        to_accept.id,
        to_split.id,
        to_credit.id,
        to_ignore.id,
    }
    services.accept(session, to_accept, user_id=None)
    assert outstanding(session, first) == Decimal("0.00")
    services.split(
        session, to_split, [(second.id, Decimal("50000.00")), (third.id, Decimal("7500.00"))], None
    )
    assert outstanding(session, second) == outstanding(session, third) == Decimal("0.00")
    services.keep_as_credit(session, to_credit, ravi.id, None)
    credit = session.get(Payment, to_credit.payment_id)
    assert (credit.client_id, credit.amount, credit.allocations) == (
        ravi.id,
        Decimal("1000.00"),
        [],
    )
    services.ignore(session, to_ignore, None)
    assert to_ignore.status == "ignored" and to_ignore.payment_id is None
    assert services.review_queue(session) == []
    with pytest.raises(services.BankingError, match="already dealt with"):
        services.accept(session, to_accept, user_id=None)  # a second click books nothing


# The pages ------------------------------------------------------------------------------------


@pytest.fixture
def signed_in(
    app, client, db_session, make_tenant, make_user, make_client, make_invoice, login, storage_root
):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)
    ravi = make_client(session, name="Ravi Kumar Traders", short_name="RAVI")
    invoice = make_invoice(session, tenant, ravi, ("118000.00",), issued_on=date(2027, 2, 1))
    session.commit()
    login(client, owner)
    return tenant, session, invoice


def post(client, url, data, **kwargs):
    token = csrf_token_from(client.get(url.rsplit("/", 2)[0] + "/").text)
    return client.post(url, data={**data, "csrf_token": token}, **kwargs)


def upload(client, base, account_id, name, data):
    return post(
        client,
        f"{base}/imports",
        {"bank_account_id": str(account_id), "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_upload_page_imports_lists_bad_lines_and_the_queue_books_on_accept(client, signed_in):
    tenant, session, invoice = signed_in
    base = f"/t/{tenant.slug}/bank"
    assert f'href="{base}/"' in client.get(f"/t/{tenant.slug}/payments/").text
    response = post(client, f"{base}/accounts", {"name": "HDFC", "account_number": "x"})
    assert response.status_code == 422 and "Enter the account number" in response.text
    response = post(
        client,
        f"{base}/accounts",
        {"name": "HDFC", "account_number": "50100012345678", "currency": "INR"},
    )
    assert response.status_code == 303
    account_id = session.scalar(select(BankAccount.id))
    data = hdfc(
        f'15/03/27,PAYMENT {invoice.number},R1,15/03/27,,"1,18,000.00",',
        '16/03/27,BROKEN,R2,16/03/27,,"abc",',
    )
    response = upload(client, base, account_id, "march.csv", data)
    assert response.status_code == 303
    page = client.get(response.headers["Location"])
    assert "Line 3: “abc” is not an amount." in page.text
    review = client.get(f"{base}/review")
    assert f"Suggested: invoice {invoice.number}" in review.text and "95% sure" in review.text
    (line,) = services.review_queue(session)
    assert post(client, f"{base}/lines/{line.id}/accept", {}).status_code == 303
    # The queue says what happened to which line, not just "done".
    assert f"of {line.booked_on:%d %b %Y}: booked as suggested." in html.unescape(
        client.get(f"{base}/review").text
    )
    session.expire_all()
    assert outstanding(session, session.get(type(invoice), invoice.id)) == Decimal("0.00")
    # Clicking again (a second tab) books nothing more.
    post(client, f"{base}/lines/{line.id}/accept", {})
    assert session.scalar(select(func.count()).select_from(Payment)) == 1
    # The same file again: nothing new, nothing booked twice.
    again = client.get(upload(client, base, account_id, "march.csv", data).headers["Location"])
    assert "<dt>New</dt><dd>0</dd>" in again.text


def test_an_unknown_csv_layout_is_mapped_once_and_remembered(client, signed_in):
    tenant, session, invoice = signed_in
    base = f"/t/{tenant.slug}/bank"
    account = services.add_bank_account(session, "Other bank", "99887766", "INR")
    session.commit()
    data = b"When;What;In;Out\n2027-03-15;Paid " + invoice.number.encode() + b";118000.00;\n"
    page = upload(client, base, account.id, "other.csv", data)
    assert page.status_code == 200 and "Which column holds what?" in page.text
    upload_name = page.text.split('name="upload" value="')[1].split('"')[0]
    form = {"upload": upload_name, "headers": ["When", "What", "In", "Out"]}
    refused = post(client, f"{base}/accounts/{account.id}/columns", {**form, "booked_on": "When"})
    assert refused.status_code == 422 and "Choose the column with the narration." in refused.text
    mapped = post(
        client,
        f"{base}/accounts/{account.id}/columns",
        {**form, "booked_on": "When", "narration": "What", "credit": "In", "debit": "Out"},
    )
    assert mapped.status_code == 303
    session.expire_all()
    assert session.get(type(account), account.id).column_mapping["credit"] == "In"
    # Next month's statement of this account is read with the saved columns at once.
    later = b"When;What;In;Out\n2027-04-15;Advance;500.00;\n"
    assert upload(client, base, account.id, "april.csv", later).status_code == 303


def test_a_long_statement_is_imported_whole(books):
    # 4,000 lines of 17 values each are more than one statement's 65,535 parameters.
    session, account, _, _ = books
    rows = [f'01/03/27,FEE {n},F{n},01/03/27,"1.00",,' for n in range(4000)]
    statement = services.import_statement(session, account, "long.csv", hdfc(*rows), "csv")
    assert (statement.lines_read, statement.lines_added) == (4000, 4000)


def test_the_split_form_reads_invoice_numbers_and_amounts_row_by_row(books):
    """The split form's rows as the queue's split books them: blank rows skipped, amounts
    with Indian grouping read, and the first row that is not an invoice with an amount named."""
    session, _, _, (first, second, _) = books
    parts = services.split_parts(session, [first.number, "", second.number], ["1,000", "", "250.5"])
    assert parts == [(first.id, Decimal("1000.00")), (second.id, Decimal("250.50"))]
    with pytest.raises(services.BankingError, match="“INV-NONE” for “10”"):
        services.split_parts(session, [first.number, "INV-NONE"], ["10", "10"])
    with pytest.raises(services.BankingError, match="enter an invoice number and an amount"):
        services.split_parts(session, [first.number], ["-5"])
