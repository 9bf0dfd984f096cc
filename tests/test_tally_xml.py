"""Tally's XML read and written (app/integrations/connectors/tally_xml.py) against the stand-in
TallyPrime: every request the functions build and every answer the stand-in gives is checked
against the project's Tally schema (tests/contracts/tally/envelopes.xsd)."""

from __future__ import annotations

import codecs
import io
import subprocess
import sys
import tracemalloc
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from app.core.tax_ids import gstin_check_character
from app.integrations.connectors import tally_xml
from app.integrations.connectors.accounting import (
    BookContact,
    BookCreditNote,
    BookInvoice,
    BookLine,
    BookPayment,
    ProviderUnavailable,
    Unreadable,
)
from app.integrations.connectors.tally_xml import LedgerNames, VoucherContext
from app.sandbox.standins.tally import DEMO_COMPANY, TallyStandin
from tests.tally_contract import check_envelope

FIXTURES = Path(__file__).parent / "fixtures" / "tally"
TODAY = date(2026, 3, 31)


@pytest.fixture
def standin():
    with TallyStandin(seed="demo", today=TODAY) as server:
        yield server


def ask(standin, request: bytes) -> bytes:
    """One round trip as the agent makes it, both sides checked against the schema."""
    check_envelope(request)
    answer = httpx.post(standin.url, content=request, headers={"Content-Type": "text/xml"})
    assert answer.status_code == 200
    check_envelope(answer.content)
    return answer.content


def debtors(standin) -> list[BookContact]:
    return list(tally_xml.read_ledgers(ask(standin, tally_xml.debtors_request(DEMO_COMPANY))))


def context_for(standin) -> VoucherContext:
    return VoucherContext(
        ledger_guids={contact.name: contact.remote_id for contact in debtors(standin)},
        company_state="29",
    )


def books(standin, request=None, context=None):
    context = context or context_for(standin)
    reading = tally_xml.read_vouchers(
        ask(standin, request or tally_xml.vouchers_request(DEMO_COMPANY)), context
    )
    items = list(reading)
    return {getattr(item, "number", None) or item.remote_id: item for item in items}, reading


def admin(standin, path, payload):
    answer = httpx.post(standin.url + "/_standin/" + path, json=payload)
    assert answer.status_code == 200, answer.text
    return answer.json()


# -- reading -----------------------------------------------------------------------------------


def test_companies_are_the_books_the_agent_reaches(standin):
    [book] = tally_xml.read_companies(ask(standin, tally_xml.companies_request()))
    assert (book.name, book.country, book.currency) == (DEMO_COMPANY, "IN", "INR")
    assert book.remote_id


def test_debtors_become_contacts_with_their_gstin_state_and_contact_details(standin):
    reading = tally_xml.read_ledgers(ask(standin, tally_xml.debtors_request(DEMO_COMPANY)))
    contacts = {contact.name: contact for contact in reading}
    assert len(contacts) == 6
    sahyadri = contacts["Sahyadri Textiles LLP"]
    assert sahyadri.tax_number.startswith("27") and sahyadri.address.region == "Maharashtra"
    assert sahyadri.email == "accounts@sahyadri.example" and sahyadri.phone == "9845012345"
    assert sahyadri.address.line1 == "Plot 7, Industrial Area"
    assert reading.marker == str(max(int(contact.version) for contact in contacts.values()))
    assert contacts["Nilgiri Logistics"].payment_days == 30


def test_only_ledgers_changed_after_the_marker_come_back(standin):
    reading = tally_xml.read_ledgers(ask(standin, tally_xml.debtors_request(DEMO_COMPANY)))
    list(reading)
    marker = int(reading.marker)
    again = tally_xml.debtors_request(DEMO_COMPANY, after_alter_id=marker)
    assert list(tally_xml.read_ledgers(ask(standin, again))) == []
    admin(standin, "ledgers", {"name": "Nilgiri Logistics", "EMAIL": "ar@nilgiri.example"})
    [changed] = list(tally_xml.read_ledgers(ask(standin, again)))
    assert changed.email == "ar@nilgiri.example" and int(changed.version) > marker


def test_sales_vouchers_split_gst_into_cgst_sgst_within_the_state_and_igst_across(standin):
    records, _ = books(standin)
    within = records["TD/004"]  # Tungabhadra, Karnataka: the company's own state
    assert isinstance(within, BookInvoice) and within.place_of_supply == "29"
    assert within.subtotal == Decimal("62000.00") and within.tax_total == Decimal("11160.00")
    assert within.total == Decimal("73160.00")
    [line] = within.lines
    assert (line.tax_rate, line.tax_amount, line.hsn_sac) == (
        Decimal("18"),
        Decimal("11160.00"),
        "998314",
    )
    across = records["TD/003"]  # Nilgiri, Tamil Nadu: IGST 12%
    assert across.place_of_supply == "33" and across.tax_total == Decimal("18000.00")
    assert across.lines[0].tax_rate == Decimal("12")
    assert across.due_date == across.issue_date + timedelta(days=30)
    stock = records["TD/005"]  # stock items: HSN and quantity from the inventory entry
    [item] = stock.lines
    assert (item.description, item.quantity, item.hsn_sac) == ("Beans", Decimal("40"), "0901")
    assert item.unit_price * item.quantity == item.net_amount
    assert records["TD/007"].state == "draft" and records["TD/009"].state == "void"


def test_receipts_become_one_payment_per_bill_they_settle(standin):
    records, _ = books(standin)
    invoices = {r.number: r.remote_id for r in records.values() if isinstance(r, BookInvoice)}
    payments = [r for r in records.values() if isinstance(r, BookPayment)]
    settled = {invoices_number: [] for invoices_number in invoices}
    for payment in payments:
        number = next(n for n, guid in invoices.items() if guid == payment.invoice_remote_id)
        settled[number].append(payment.amount)
    assert settled["TD/002"] == [Decimal("100300.00")]  # in full
    assert settled["TD/001"] == [Decimal("100000.00")]  # in part
    assert settled["TD/003"] == [Decimal("168000.00")] and settled["TD/010"] == [
        Decimal("20000.00")
    ]  # one receipt, two bills: two payments with their own remote ids
    assert len({payment.remote_id for payment in payments}) == 4


def test_a_credit_note_is_tied_to_the_invoice_it_is_set_against(standin):
    records, _ = books(standin)
    [note] = [r for r in records.values() if isinstance(r, BookCreditNote)]
    assert note.invoice_remote_id == records["TD/006"].remote_id
    assert (note.subtotal, note.tax_total, note.total) == (
        Decimal("10000.00"),
        Decimal("1800.00"),
        Decimal("11800.00"),
    )
    assert note.reason == "Short supply returned"


def test_a_large_day_book_is_asked_for_a_period_at_a_time(standin):
    everything, _ = books(standin)
    seen = {}
    start = TODAY - timedelta(days=200)
    while start <= TODAY:
        end = min(start + timedelta(days=29), TODAY)
        request = tally_xml.vouchers_request(DEMO_COMPANY, period=(start, end))
        context = context_for(standin)
        context.bill_guids.update(
            {r.number: r.remote_id for r in everything.values() if isinstance(r, BookInvoice)}
        )
        part, _ = books(standin, request, context)
        assert not set(part) & set(seen)
        for record in part.values():
            day = getattr(record, "issue_date", None) or record.paid_on
            assert start <= day <= end
        seen.update(part)
        start = end + timedelta(days=1)
    assert set(seen) == set(everything)


def test_voucher_changes_after_the_marker_and_a_cancelled_invoice_turns_void(standin):
    _, reading = books(standin)
    marker = int(reading.marker)
    after = tally_xml.vouchers_request(DEMO_COMPANY, after_alter_id=marker)
    assert books(standin, after)[0] == {}
    admin(standin, "vouchers/alter", {"number": "TD/010", "cancel": True})
    changed, later = books(standin, after)
    assert list(changed) == ["TD/010"] and changed["TD/010"].state == "void"
    assert int(later.marker) > marker


def test_find_asks_for_one_voucher_by_number(standin):
    found, _ = books(standin, tally_xml.voucher_request(DEMO_COMPANY, "Sales", "TD/003"))
    assert list(found) == ["TD/003"]
    missing, _ = books(standin, tally_xml.voucher_request(DEMO_COMPANY, "Sales", "TD/999"))
    assert missing == {}


def test_an_unmappable_voucher_is_listed_with_tallys_ids_while_the_rest_are_read(standin):
    admin(standin, "ledgers", {"name": "Freight Outward", "parent": "Indirect Incomes"})
    invoice = sample_invoice("TD/050", lines=(line("Freight", "1000.00", "18"),))
    voucher = tally_xml.sales_voucher_xml(
        invoice, party="Malnad Coffee Traders", key="k-freight", names=NAMES, company_state="29"
    ).replace("<LEDGERNAME>Sales</LEDGERNAME>", "<LEDGERNAME>Freight Outward</LEDGERNAME>")
    outcome = tally_xml.read_import_result(
        ask(standin, tally_xml.import_envelope([voucher], company=DEMO_COMPANY))
    )
    assert outcome.ok
    records, _ = books(standin)
    skipped = records[tally_xml.remote_guid("k-freight")]
    assert isinstance(skipped, Unreadable)
    assert "TD/050" in skipped.reason and "'Freight Outward'" in skipped.reason
    assert invoice.issue_date.strftime("%d-%b-%Y") in skipped.reason
    assert sum(isinstance(r, BookInvoice) for r in records.values()) == 10


def test_a_hand_exported_day_book_is_read_with_its_bad_vouchers_listed():
    """The file route: Tally's own Export of a day book (REQUESTDATA/TALLYMESSAGE), UTF-16."""
    context = VoucherContext(
        ledger_guids={"Sahyadri Textiles LLP": "ledger-sahyadri"}, company_state="29"
    )
    reading = tally_xml.read_vouchers(io.BytesIO((FIXTURES / "daybook.xml").read_bytes()), context)
    items = list(reading)
    read = [item for item in items if not isinstance(item, Unreadable)]
    skipped = {item.remote_id: item.reason for item in items if isinstance(item, Unreadable)}
    assert [r.number for r in read] == ["HX/1"]
    assert read[0].contact_remote_id == "ledger-sahyadri" and read[0].place_of_supply == "27"
    # TallyPrime lists every GST head on a line; the Integrated rate is the whole rate.
    assert read[0].lines[0].tax_rate == Decimal("18")
    assert "neither a place of supply nor the party's GSTIN" in skipped["guid-hx-2"]
    assert "HX/2" in skipped["guid-hx-2"] and "02-Apr-2025" in skipped["guid-hx-2"]
    assert "'HX/404', which is unknown" in skipped["guid-rx-1"]
    assert "'Walk-in Customer' is not among the Sundry Debtors" in skipped["guid-hx-3"]
    assert "Journal" in skipped["guid-jv-1"]
    assert reading.marker == "41"


# -- writing and importing ---------------------------------------------------------------------

NAMES = LedgerNames()


def line(description, net, rate, hsn="998314"):
    net = Decimal(net)
    rate = Decimal(rate)
    return BookLine(
        description, Decimal(1), net, net, rate, (net * rate / 100).quantize(Decimal("0.01")), hsn
    )


def sample_invoice(number, *, lines, place="29", issued=date(2026, 3, 2)):
    subtotal = sum((item.net_amount for item in lines), Decimal(0))
    tax = sum((item.tax_amount for item in lines), Decimal(0))
    return BookInvoice(
        remote_id=None,
        number=number,
        contact_remote_id="ours",
        issue_date=issued,
        due_date=issued + timedelta(days=15),
        currency="INR",
        state="open",
        lines=tuple(lines),
        subtotal=subtotal,
        tax_total=tax,
        total=subtotal + tax,
        amount_due=subtotal + tax,
        place_of_supply=place,
        reference="Milestone 2 of project Lotus",
    )


def import_one(standin, message, *, masters=False, action="Create"):
    body = tally_xml.import_envelope([message], company=DEMO_COMPANY, masters=masters)
    return tally_xml.read_import_result(ask(standin, body), action=action)


def push_client(standin):
    contact = BookContact(
        remote_id=None,
        name="Hampi Heritage Hotels",
        email="accounts@hampi.example",
        phone="9880011223",
        tax_number=valid_gstin("29", "AAFCH1234K"),
        payment_days=15,
    )
    outcome = import_one(standin, tally_xml.party_ledger_xml(contact, key="client-7"), masters=True)
    assert outcome.ok and outcome.counters["CREATED"] == 1
    return contact


def valid_gstin(state, pan):
    first = f"{state}{pan}1Z"
    return first + gstin_check_character(first)


def test_an_invoice_and_its_payment_written_for_tally_read_back_the_same(standin):
    contact = push_client(standin)
    [read_contact] = [c for c in debtors(standin) if c.name == contact.name]
    assert read_contact.tax_number == contact.tax_number and read_contact.email == contact.email
    invoice = sample_invoice(
        "DB/2026/0042",
        lines=(line("Design milestone", "40000.00", "18"), line("Site visit", "2500.00", "5")),
    )
    voucher = tally_xml.sales_voucher_xml(
        invoice, party=contact.name, key="invoice-42", names=NAMES, company_state="29"
    )
    outcome = import_one(standin, voucher)
    assert outcome.ok and outcome.voucher_id and not outcome.duplicate
    found, _ = books(standin, tally_xml.voucher_request(DEMO_COMPANY, "Sales", invoice.number))
    back = found[invoice.number]
    assert back.remote_id == tally_xml.remote_guid("invoice-42")
    assert back.contact_remote_id == read_contact.remote_id
    assert back.lines == tuple(replace(item, unit_price=item.net_amount) for item in invoice.lines)
    assert (back.subtotal, back.tax_total, back.total, back.due_date, back.place_of_supply) == (
        invoice.subtotal,
        invoice.tax_total,
        invoice.total,
        invoice.due_date,
        "29",
    )
    assert back.reference == invoice.reference

    payment = BookPayment(
        remote_id=None,
        invoice_remote_id=back.remote_id,
        contact_remote_id=read_contact.remote_id,
        paid_on=date(2026, 3, 20),
        amount=Decimal("20000.00"),
        currency="INR",
        reference="DB-PAY-0007",
    )
    receipt = tally_xml.receipt_voucher_xml(
        payment, party=contact.name, invoice_number=invoice.number, key="payment-7", names=NAMES
    )
    assert import_one(standin, receipt).ok
    records, _ = books(standin)
    [paid] = [
        r
        for r in records.values()
        if isinstance(r, BookPayment) and r.invoice_remote_id == back.remote_id
    ]
    assert (paid.amount, paid.paid_on, paid.reference) == (
        payment.amount,
        payment.paid_on,
        "DB-PAY-0007",
    )


def test_gst_is_written_to_igst_across_states_and_to_ledgers_named_by_rate(standin):
    for ledger in ("Output IGST @18%", "Output CGST @9%", "Output SGST @9%"):
        admin(standin, "ledgers", {"name": ledger, "parent": "Duties & Taxes"})
    names = LedgerNames.from_settings(
        {
            "igst_ledger": "Output IGST @{rate}%",
            "cgst_ledger": "Output CGST @{rate}%",
            "sgst_ledger": "Output SGST @{rate}%",
        }
    )
    across = sample_invoice("DB/X/1", lines=(line("Consulting", "10000.00", "18"),), place="27")
    within = sample_invoice("DB/X/2", lines=(line("Consulting", "10000.00", "18"),))
    for invoice, key in ((across, "x1"), (within, "x2")):
        message = tally_xml.sales_voucher_xml(
            invoice, party="Sahyadri Textiles LLP", key=key, names=names, company_state="29"
        )
        assert import_one(standin, message).ok
    stored = {
        v["number"]: v["xml"] for v in httpx.get(standin.url + "/_standin/books").json()["vouchers"]
    }
    assert "Output IGST @18%" in stored["DB/X/1"] and "CGST" not in stored["DB/X/1"]
    assert "Output CGST @9%" in stored["DB/X/2"] and "Output SGST @9%" in stored["DB/X/2"]
    context = context_for(standin)
    context.names = names
    records, _ = books(standin, context=context)
    assert records["DB/X/1"].place_of_supply == "27"
    assert records["DB/X/1"].tax_total == records["DB/X/2"].tax_total == Decimal("1800.00")


def test_a_retried_import_alters_the_same_voucher_instead_of_adding_one(standin):
    invoice = sample_invoice("DB/2026/0050", lines=(line("Retainer", "15000.00", "18"),))
    message = tally_xml.sales_voucher_xml(
        invoice, party="Nilgiri Logistics", key="invoice-50", names=NAMES, company_state="29"
    )
    first = import_one(standin, message)
    again = import_one(standin, message)  # the job ran twice: same key, same REMOTEID
    altered = import_one(
        standin,
        tally_xml.sales_voucher_xml(
            replace(invoice, reference="revised"),
            party="Nilgiri Logistics",
            key="invoice-50",
            names=NAMES,
            company_state="29",
            action="Alter",
        ),
        action="Alter",
    )
    assert first.counters["CREATED"] == 1
    assert again.ok and again.counters["ALTERED"] == 1 and again.counters["CREATED"] == 0
    assert altered.ok and not altered.duplicate
    stored = httpx.get(standin.url + "/_standin/books").json()["vouchers"]
    assert [v["number"] for v in stored].count(invoice.number) == 1
    found, _ = books(standin, tally_xml.voucher_request(DEMO_COMPANY, "Sales", invoice.number))
    assert found[invoice.number].reference == "revised"


def test_a_voucher_for_a_ledger_tally_lacks_is_refused_in_tallys_words(standin):
    invoice = sample_invoice("DB/2026/0051", lines=(line("Retainer", "1000.00", "18"),))
    message = tally_xml.sales_voucher_xml(
        invoice, party="Nobody & Sons", key="k51", names=NAMES, company_state="29"
    )
    outcome = import_one(standin, message)
    assert not outcome.ok and outcome.refusal == "Ledger 'Nobody & Sons' does not exist!"
    admin(standin, "misbehave", {"lineerror": "Voucher Number 'X' already exists!"})
    refused = import_one(
        standin,
        tally_xml.sales_voucher_xml(
            invoice, party="Nilgiri Logistics", key="k52", names=NAMES, company_state="29"
        ),
    )
    assert refused.refusal == "Voucher Number 'X' already exists!"


@pytest.mark.parametrize(
    ("answer", "action", "ok", "duplicate", "words"),
    [
        # TY-1: exceptions and nothing created is a failure, however quiet the rest.
        (
            "<RESPONSE><CREATED>0</CREATED><ALTERED>0</ALTERED><LASTVCHID>0</LASTVCHID>"
            "<LASTMID>0</LASTMID><COMBINED>0</COMBINED><IGNORED>0</IGNORED><ERRORS>0</ERRORS>"
            "<CANCELLED>0</CANCELLED><EXCEPTIONS>17</EXCEPTIONS></RESPONSE>",
            "Create",
            False,
            False,
            "17 exception(s)",
        ),
        # TY-2: an Alter that Tally reports as created made a second voucher.
        (
            "<ENVELOPE><HEADER><VERSION>1</VERSION><STATUS>1</STATUS></HEADER><BODY><DATA>"
            "<IMPORTRESULT><CREATED>1</CREATED><ALTERED>0</ALTERED><ERRORS>0</ERRORS>"
            "<EXCEPTIONS>0</EXCEPTIONS><LASTVCHID>912</LASTVCHID></IMPORTRESULT></DATA></BODY>"
            "</ENVELOPE>",
            "Alter",
            True,
            True,
            None,
        ),
        (
            "<RESPONSE><LINEERROR>Voucher totals do not match!</LINEERROR><CREATED>0</CREATED>"
            "<ERRORS>1</ERRORS></RESPONSE>",
            "Create",
            False,
            False,
            "Voucher totals do not match!",
        ),
        (
            "<RESPONSE><CREATED>0</CREATED><ALTERED>0</ALTERED><IGNORED>1</IGNORED></RESPONSE>",
            "Create",
            False,
            False,
            "nothing",
        ),
    ],
)
def test_import_counters_become_one_outcome(answer, action, ok, duplicate, words):
    check_envelope(answer.encode())
    outcome = tally_xml.read_import_result(answer.encode(), action=action)
    assert (outcome.ok, outcome.duplicate) == (ok, duplicate)
    assert (words is None and outcome.refusal is None) or words in outcome.refusal


# -- what real Tally sends -----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["bom", "plain"])
def test_utf16_answers_read_the_same_as_utf8(standin, encoding):
    plain = [c.name for c in debtors(standin)]
    admin(standin, "misbehave", {"utf16": encoding})
    body = ask(standin, tally_xml.debtors_request(DEMO_COMPANY))
    assert body[:2] in (b"\xff\xfe", b"<\x00")
    assert [c.name for c in tally_xml.read_ledgers(body)] == plain
    records, _ = books(standin)
    assert sum(isinstance(r, BookInvoice) for r in records.values()) == 10


def test_tallys_control_character_references_do_not_break_reading(standin):
    admin(standin, "misbehave", {"control_characters": True})
    body = ask(standin, tally_xml.debtors_request(DEMO_COMPANY))
    assert b"&#4;" in body and b"\x01" in body
    assert {c.name for c in tally_xml.read_ledgers(body)} >= {"Nilgiri Logistics"}


def test_a_reference_split_across_chunks_is_still_dropped():
    padding = "x" * (64 * 1024 - len("<ENVELOPE><A>") - 2)
    body = f"<ENVELOPE><A>{padding}&#4;</A><LEDGER NAME='L'><PARENT>Sundry Debtors</PARENT>"
    body += "<GUID>g</GUID></LEDGER></ENVELOPE>"
    assert [c.name for c in tally_xml.read_ledgers(body.encode())] == ["L"]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("mark", [True, False])
def test_utf16_either_way_round_with_or_without_a_mark_is_read(encoding, mark):
    body = "<ENVELOPE><LEDGER NAME='Kāveri Traders'><PARENT>Sundry Debtors</PARENT>"
    body += "<GUID>g</GUID><ADDRESS.LIST><ADDRESS>Gāndhi Road</ADDRESS></ADDRESS.LIST></LEDGER>"
    body = '<?xml version="1.0" encoding="UTF-16"?>' + body + "</ENVELOPE>"
    bom = codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE
    data = (bom if mark else b"") + body.encode(encoding)
    [contact] = tally_xml.read_ledgers(data)
    assert (contact.name, contact.address.line1) == ("Kāveri Traders", "Gāndhi Road")


@pytest.mark.parametrize(
    "prolog",
    [
        # the billion laughs: entities expanding to entities
        '<!DOCTYPE ENVELOPE [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>',
        # an external entity: a file of the server's
        '<!DOCTYPE ENVELOPE [<!ENTITY a SYSTEM "file:///etc/passwd">]>',
        # an external DTD
        '<!DOCTYPE ENVELOPE SYSTEM "http://127.0.0.1:9/tally.dtd">',
    ],
)
def test_a_document_type_declaration_is_refused_before_anything_is_read(prolog):
    """Tally writes no DOCTYPE; one in an answer or an uploaded file could expand entities or
    reach files and addresses, so the reader refuses it whole, whatever it declares."""
    body = f'<?xml version="1.0"?>{prolog}<ENVELOPE><LEDGER NAME="L"><PARENT>Sundry Debtors'
    body += "</PARENT><GUID>&a;</GUID></LEDGER></ENVELOPE>"
    with pytest.raises(tally_xml.TallyXmlError, match="document type declaration"):
        list(tally_xml.read_ledgers(body.encode()))


def test_a_document_type_declaration_split_across_chunks_is_refused():
    padding = " " * (64 * 1024 - len("<!DOC"))
    body = padding + '<!DOCTYPE ENVELOPE [<!ENTITY a "x">]><ENVELOPE><LEDGER NAME="L">'
    body += "<PARENT>Sundry Debtors</PARENT></LEDGER></ENVELOPE>"
    with pytest.raises(tally_xml.TallyXmlError, match="document type declaration"):
        list(tally_xml.read_ledgers(io.BytesIO(body.encode())))


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"<ENVELOPE>\n<LEDGER NAME='L'>\n<PARENT>M&S</PARENT></LEDGER></ENVELOPE>", "line 3"),
        (b"<ENVELOPE>\n<LEDGER NAME='L'><PARENT>&x;</PARENT></LEDGER></ENVELOPE>", "line 2"),
        (b"<ENVELOPE>\n\n<LEDGER NAME='L\xff'></LEDGER></ENVELOPE>", "line 3"),
    ],
)
def test_malformed_xml_and_bad_utf8_are_errors_saying_where(body, where):
    with pytest.raises(
        tally_xml.TallyXmlError, match=rf"malformed or cut short at {where}, column"
    ):
        list(tally_xml.read_ledgers(body))


def test_a_cut_off_answer_is_a_clear_error_and_the_page_fails(standin):
    admin(standin, "misbehave", {"malformed": 1})
    body = httpx.post(standin.url, content=tally_xml.vouchers_request(DEMO_COMPANY)).content
    with pytest.raises(tally_xml.TallyXmlError, match=r"malformed or cut short at line 1") as error:
        list(tally_xml.read_vouchers(body, context_for(standin)))
    assert isinstance(error.value, ProviderUnavailable)


def test_a_closed_or_switched_company_is_refused_not_mixed(standin):
    admin(standin, "companies", {"name": "Kaveri Exports LLP", "state": "29"})
    admin(standin, "load", {"names": ["Kaveri Exports LLP"]})  # the accountant switched
    with pytest.raises(tally_xml.TallyRequestFailed) as error:
        list(
            tally_xml.read_vouchers(
                ask(standin, tally_xml.vouchers_request(DEMO_COMPANY)), VoucherContext()
            )
        )
    assert error.value.company_not_open and DEMO_COMPANY in error.value.words
    invoice = sample_invoice("DB/9", lines=(line("Retainer", "100.00", "18"),))
    voucher = tally_xml.sales_voucher_xml(
        invoice, party="Nilgiri Logistics", key="k9", names=NAMES, company_state="29"
    )
    with pytest.raises(tally_xml.TallyRequestFailed, match="Could not set 'SVCurrentCompany'"):
        tally_xml.read_import_result(
            ask(standin, tally_xml.import_envelope([voucher], company=DEMO_COMPANY))
        )
    admin(standin, "load", {"names": []})
    assert tally_xml.read_companies(ask(standin, tally_xml.companies_request())) == []


def test_reading_twenty_thousand_vouchers_keeps_memory_flat():
    with TallyStandin(seed_ledgers=50, seed_vouchers=3000, today=TODAY) as server:
        ledgers = ask(server, tally_xml.debtors_request(DEMO_COMPANY))
        answer = httpx.post(server.url, content=tally_xml.vouchers_request(DEMO_COMPANY)).content
    context = VoucherContext(
        ledger_guids={c.name: c.remote_id for c in tally_xml.read_ledgers(ledgers)},
        company_state="29",
    )
    tracemalloc.start()
    try:
        count = sum(1 for _ in tally_xml.read_vouchers(io.BytesIO(answer), context))
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 3000
    # What stays is the bill map (invoice number -> GUID) the receipts are linked by; what the
    # reader held on the way is one voucher's tree and a chunk of text, far below the document
    # (a whole tree would be several times its size).
    assert peak - kept < len(answer) / 2, (peak, kept, len(answer))


def test_the_parsers_own_memory_stays_flat_while_reading_a_file(tmp_path):
    """libxml2 builds the tree outside Python's allocator (tracemalloc does not see it): the
    peak resident memory of a fresh process reading the day book from disk is the measure
    (Linux's VmHWM). A tree kept whole would take several times the file's size."""
    with TallyStandin(seed_ledgers=50, seed_vouchers=3000, today=TODAY) as server:
        answer = httpx.post(server.url, content=tally_xml.vouchers_request(DEMO_COMPANY)).content
    day_book = tmp_path / "daybook.xml"
    day_book.write_bytes(answer)
    reader = (
        "import sys\n"
        "from app.integrations.connectors import tally_xml\n"
        "def peak():\n"  # this process's own high-water mark (ru_maxrss carries the parent's)
        "    status = open('/proc/self/status').read()\n"
        "    return int(status.split('VmHWM:')[1].split()[0]) * 1024\n"
        "context = tally_xml.VoucherContext(company_state='29')\n"
        "before = peak()\n"
        "with open(sys.argv[1], 'rb') as source:\n"
        "    count = sum(1 for _ in tally_xml.read_vouchers(source, context))\n"
        "print(count, peak() - before)\n"
    )
    printed = subprocess.run(
        [sys.executable, "-c", reader, str(day_book)],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    count, grown = int(printed[0]), int(printed[1])
    assert count == 3000
    assert grown < len(answer), (grown, len(answer))
