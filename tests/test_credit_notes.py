"""Credit notes: lines and taxes that add up to the paisa, split the way the invoice's taxes
were, their own consecutive series per financial year, never more than what is still owed,
and a note that clears the balance settles the invoice (status paid)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from app.clients.models import Client
from app.invoicing import credits, services
from app.invoicing.models import CreditNote, Invoice
from app.payments import services as payments
from tests.factories import invoice_milestones
from tests.helpers import csrf_token_from, tenant_session

MH_GSTIN = "27AAPFU0939F1ZV"  # Maharashtra, like the tenant: CGST + SGST
KA_GSTIN = "29AAPFU0939F1ZV"  # Karnataka: IGST
DAY = date(2027, 2, 1)


@pytest.fixture
def books(db_session, make_tenant, make_user, make_client, make_invoice):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)

    def issued(amounts=("1000.00",), gstin=MH_GSTIN, rate="18"):
        client = make_client(session, gstin=gstin)
        invoice = make_invoice(
            session, tenant, client, amounts, issued_on=DAY, tax_rate=rate, sac="998311"
        )
        return invoice, invoice_milestones(session, invoice)

    return tenant, session, issued, owner


def _adds_up(note: CreditNote) -> None:
    parts = ("taxable_value", "cgst", "sgst", "igst", "other_tax")
    for line in note.lines:
        assert sum(getattr(line, p) for p in parts) == line.total
    assert sum(line.total for line in note.lines) == note.total
    assert sum(line.taxable_value for line in note.lines) == note.subtotal
    for tax in ("cgst", "sgst", "igst", "other_tax"):
        assert sum(getattr(line, tax) for line in note.lines) == getattr(note, tax)
    assert note.subtotal + note.cgst + note.sgst + note.igst + note.other_tax == note.total


def test_partial_credit_splits_lines_and_taxes_to_the_paisa(books):
    tenant, session, issued, _ = books
    invoice, _ = issued(("100.05", "333.33", "1000.01"))
    note = credits.issue_credit_note(session, tenant, invoice, "777.77", "Discount agreed", DAY)
    _adds_up(note)
    assert note.total == Decimal("777.77") and len(note.lines) == 3
    assert note.igst == 0 and note.cgst > 0
    # per line, as on the invoice: CGST is half the tax, the odd paisa on CGST
    assert all(line.cgst - line.sgst in (0, Decimal("0.01")) for line in note.lines)
    for line, original in zip(note.lines, invoice.lines, strict=True):
        # each line's tax is the invoice line's rate on the credited value (to a paisa)
        tax = line.cgst + line.sgst
        assert abs(tax - (line.taxable_value * Decimal("0.18"))) <= Decimal("0.01")
        assert line.invoice_line_id == original.id and line.tax_rate == original.tax_rate
    assert note.number == "CN/26-27/00001" and note.fiscal_year == "2026-27"
    assert payments.outstanding(session, invoice) == invoice.total - Decimal("777.77")
    assert invoice.status == "issued"  # nothing was paid; the balance is lower


def test_inter_state_credit_is_all_igst_and_numbers_are_consecutive(books):
    tenant, session, issued, _ = books
    invoice, _ = issued(("500.00",), gstin=KA_GSTIN)
    first = credits.issue_credit_note(session, tenant, invoice, "100.00", "Short delivery", DAY)
    second = credits.issue_credit_note(session, tenant, invoice, "59.00", "Rate fix", DAY)
    _adds_up(first)
    assert (first.cgst, first.sgst, first.igst) == (0, 0, Decimal("15.25"))
    assert first.subtotal == Decimal("84.75")
    assert (first.number, second.number) == ("CN/26-27/00001", "CN/26-27/00002")
    assert [n.id for n in credits.credit_notes_of_invoice(session, invoice.id)] == [
        first.id,
        second.id,
    ]
    # the invoice numbers are a series of their own, untouched
    assert invoice.number == "INV/26-27/00001"


def test_a_full_credit_mirrors_the_invoice_and_settles_it(books):
    tenant, session, issued, _ = books
    invoice, milestones = issued(("100.05", "333.33"))
    note = credits.issue_credit_note(session, tenant, invoice, None, "Cancelled order", DAY)
    assert note.total == invoice.total
    for line, original in zip(note.lines, invoice.lines, strict=True):
        assert (line.taxable_value, line.cgst, line.sgst, line.total) == (
            original.taxable_value,
            original.cgst,
            original.sgst,
            original.total,
        )
    assert (note.cgst, note.sgst) == (invoice.cgst, invoice.sgst)
    assert payments.outstanding(session, invoice) == 0
    assert invoice.status == "paid"
    assert {m.status for m in milestones} == {"paid"}


def test_never_more_than_is_still_owed(books):
    tenant, session, issued, _ = books
    invoice, _ = issued(("1000.00",))  # 1,180.00 with GST
    client = session.get(Client, invoice.client_id)
    payment = payments.record_payment(
        session, client, {"amount": "1000.00", "received_on": "2027-02-10", "method": "cash"}
    )
    payments.allocate(session, payment, [(invoice.id, "1000.00", "", "", "")])
    assert invoice.status == "partly_paid"
    with pytest.raises(services.InvoiceInvalid) as refused:
        credits.issue_credit_note(session, tenant, invoice, "180.01", "Too much", DAY)
    assert "180.00" in refused.value.errors["amount"]
    for bad in ("0", "-5", "abc", "1.001"):
        with pytest.raises(services.InvoiceInvalid) as refused:
            credits.issue_credit_note(session, tenant, invoice, bad, "x", DAY)
        assert "amount" in refused.value.errors
    with pytest.raises(services.InvoiceInvalid) as refused:
        credits.issue_credit_note(session, tenant, invoice, "10", "  ", DAY)
    assert "reason" in refused.value.errors
    note = credits.issue_credit_note(session, tenant, invoice, "180.00", "Rounding off", DAY)
    _adds_up(note)
    assert invoice.status == "paid" and payments.outstanding(session, invoice) == 0
    with pytest.raises(services.InvoiceError, match="paid"):
        credits.issue_credit_note(session, tenant, invoice, "1", "Again", DAY)
    assert session.query(CreditNote).filter_by(invoice_id=invoice.id).count() == 1


def test_a_payment_cannot_overpay_a_credited_invoice_and_the_balance_counts_credits(books):
    tenant, session, issued, _ = books
    invoice, _ = issued(("1000.00",), rate="0")
    credits.issue_credit_note(session, tenant, invoice, "400.00", "Discount", DAY)
    client = session.get(Client, invoice.client_id)
    payment = payments.record_payment(
        session, client, {"amount": "1000.00", "received_on": "2027-02-10", "method": "cash"}
    )
    with pytest.raises(payments.PaymentError, match="owes ₹600.00"):
        payments.allocate(session, payment, [(invoice.id, "700.00", "", "", "")])
    suggestion, credit = payments.suggest_allocation(session, payment)
    assert suggestion == [(invoice.id, Decimal("600.00"))] and credit == Decimal("400.00")
    balance = payments.client_balance(session, client)
    assert balance.outstanding == Decimal("600.00")
    payments.allocate(session, payment, suggestion)
    assert invoice.status == "paid"


def test_only_issued_invoices_that_owe_take_a_credit_note(books):
    tenant, session, issued, _ = books
    invoice, _ = issued()
    services.void(session, invoice)
    with pytest.raises(services.InvoiceError, match="void"):
        credits.issue_credit_note(session, tenant, invoice, "1", "x", DAY)
    credited, _ = issued()
    credits.issue_credit_note(session, tenant, credited, "1.00", "x", DAY)
    with pytest.raises(services.InvoiceError, match="cannot be voided"):
        services.void(session, credited)


def test_pages_issue_a_credit_note_and_show_it_on_the_invoice_and_client(
    books, client, login, db_session, make_user, add_member
):
    tenant, session, issued, owner = books
    invoice, _ = issued(("1000.00",))
    session.commit()
    login(client, owner)
    url = f"/t/{tenant.slug}/invoices/{invoice.id}"
    page = client.get(url).text
    assert "Issue a credit note" in page
    token = csrf_token_from(page)
    refused = client.post(
        f"{url}/credit-notes",
        data={"csrf_token": token, "credit_amount": "5000", "credit_reason": ""},
    )
    assert refused.status_code == 422
    assert 'id="credit_amount-error"' in refused.text and 'id="credit_reason-error"' in refused.text
    made = client.post(
        f"{url}/credit-notes",
        data={"csrf_token": token, "credit_amount": "118.00", "credit_reason": "Late delivery"},
    )
    assert made.status_code == 303
    note_page = client.get(made.headers["Location"]).text
    assert "Credit note CN/26-27/00001" in note_page and "Late delivery" in note_page
    assert "Rupees One Hundred Eighteen Only" in note_page
    page = client.get(url).text
    assert "CN/26-27/00001" in page and "1,062.00" in page  # outstanding 1,180 - 118
    tab = client.get(f"/t/{tenant.slug}/invoices/client/{invoice.client_id}").text
    assert "CN/26-27/00001" in tab and invoice.number in tab

    viewer = make_user()
    add_member(tenant, viewer, role="viewer")
    other = client.application.test_client()
    login(other, viewer)
    assert "Issue a credit note" not in other.get(url).text
    assert (
        other.post(
            f"{url}/credit-notes",
            data={
                "csrf_token": csrf_token_from(other.get(url).text),
                "credit_amount": "1",
                "credit_reason": "x",
            },
        ).status_code
        == 403
    )
    check = tenant_session(db_session, tenant)
    assert check.query(CreditNote).count() == 1
    assert check.get(Invoice, invoice.id).status == "issued"
