"""The stand-in TallyPrime (app/sandbox/standins/tally.py) behaves as Tally does where Duebook
relies on it: its demo books, AlterIDs, imports and their refusals, the admin routes that
stage the accountant's changes and misbehaviour, bulk seeding and the process it runs as.
Every envelope here is checked against tests/contracts/tally/envelopes.xsd."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import httpx
import pytest
from stdnum import exceptions as stdnum_errors

from app.core.tax_ids import validate_gstin
from app.sandbox.standins import STANDINS
from app.sandbox.standins.__main__ import _parser, build
from app.sandbox.standins.tally import DEMO_COMPANY, TallyStandin
from tests.tally_contract import check_envelope

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2026, 3, 31)


@pytest.fixture
def standin():
    with TallyStandin(seed="demo", today=TODAY) as server:
        yield server


def post(standin, body: str, **options) -> httpx.Response:
    check_envelope(body.encode())
    answer = httpx.post(standin.url, content=body.encode(), **options)
    if answer.status_code == 200:
        check_envelope(answer.content)
    return answer


def export(kind: str, *, company=DEMO_COMPANY, filters: dict | None = None, extra="") -> str:
    names = ",".join(filters or {})
    systems = "".join(
        f'<SYSTEM TYPE="Formulae" NAME="{name}">{formula}</SYSTEM>'
        for name, formula in (filters or {}).items()
    )
    company_variable = f"<SVCURRENTCOMPANY>{company}</SVCURRENTCOMPANY>" if company else ""
    return (
        "<ENVELOPE><HEADER><VERSION>1</VERSION><TALLYREQUEST>Export</TALLYREQUEST>"
        "<TYPE>Collection</TYPE><ID>Test</ID></HEADER><BODY><DESC><STATICVARIABLES>"
        f"<SVEXPORTFORMAT>$$SysName:XML</SVEXPORTFORMAT>{company_variable}{extra}"
        f'</STATICVARIABLES><TDL><TDLMESSAGE><COLLECTION NAME="Test"><TYPE>{kind}</TYPE>'
        f"<FETCH>*</FETCH>{f'<FILTER>{names}</FILTER>' if names else ''}</COLLECTION>"
        f"{systems}</TDLMESSAGE></TDL></DESC></BODY></ENVELOPE>"
    )


def import_vouchers(*messages: str, company=DEMO_COMPANY) -> str:
    return (
        "<ENVELOPE><HEADER><VERSION>1</VERSION><TALLYREQUEST>Import</TALLYREQUEST><TYPE>Data</TYPE>"
        "<ID>Vouchers</ID></HEADER><BODY><DESC><STATICVARIABLES><SVCURRENTCOMPANY>"
        f"{company}</SVCURRENTCOMPANY></STATICVARIABLES></DESC><DATA>"
        + "".join(f"<TALLYMESSAGE>{message}</TALLYMESSAGE>" for message in messages)
        + "</DATA></BODY></ENVELOPE>"
    )


def sales(number: str, party: str, amount: str, *, remote="", action="Create", sales="-") -> str:
    remote_attribute = f' REMOTEID="{remote}"' if remote else ""
    credit = amount if sales == "-" else sales
    return (
        f'<VOUCHER VCHTYPE="Sales" ACTION="{action}"{remote_attribute}><DATE>20260330</DATE>'
        f"<VOUCHERTYPENAME>Sales</VOUCHERTYPENAME><VOUCHERNUMBER>{number}</VOUCHERNUMBER>"
        f"<PARTYLEDGERNAME>{party}</PARTYLEDGERNAME>"
        f"<ALLLEDGERENTRIES.LIST><LEDGERNAME>{party}</LEDGERNAME>"
        f"<ISDEEMEDPOSITIVE>Yes</ISDEEMEDPOSITIVE><AMOUNT>-{amount}</AMOUNT>"
        "</ALLLEDGERENTRIES.LIST><ALLLEDGERENTRIES.LIST><LEDGERNAME>Sales</LEDGERNAME>"
        f"<ISDEEMEDPOSITIVE>No</ISDEEMEDPOSITIVE><AMOUNT>{credit}</AMOUNT>"
        "</ALLLEDGERENTRIES.LIST></VOUCHER>"
    )


def counters(answer: httpx.Response) -> dict:
    return {
        tag: text
        for tag, text in re.findall(r"<([A-Z]+)>([^<]*)</\1>", answer.text)
        if tag not in ("VERSION", "STATUS")
    }


def vouchers(standin) -> list[dict]:
    return httpx.get(standin.url + "/_standin/books").json()["vouchers"]


def test_the_demo_books_are_a_karnataka_traders(standin):
    company = post(standin, export("Company", company=None)).text
    assert DEMO_COMPANY in company and "<STATENAME>Karnataka</STATENAME>" in company
    ledgers = post(standin, export("Ledger")).text
    gstins = re.findall(r"<PARTYGSTIN>([^<]+)</PARTYGSTIN>", ledgers)
    assert len(gstins) == 6 and {"27", "33", "29"} <= {gstin[:2] for gstin in gstins}
    for gstin in gstins:
        validate_gstin(gstin)  # raises unless checksum-valid
    with pytest.raises(stdnum_errors.ValidationError):
        validate_gstin(gstins[0][:-1] + ("A" if gstins[0][-1] != "A" else "B"))
    assert "Sahyadri Textiles LLP" in ledgers and "Nilgiri Logistics" in ledgers
    books = vouchers(standin)
    kinds = [voucher["kind"] for voucher in books]
    assert (kinds.count("Sales"), kinds.count("Receipt"), kinds.count("Credit Note")) == (10, 3, 1)
    xml = "".join(voucher["xml"] for voucher in books)
    assert "<LEDGERNAME>IGST</LEDGERNAME>" in xml and "<LEDGERNAME>CGST</LEDGERNAME>" in xml
    assert "<BILLTYPE>Agst Ref</BILLTYPE>" in xml and "<ISOPTIONAL>Yes</ISOPTIONAL>" in xml


def test_every_change_takes_the_next_alter_id(standin):
    before = httpx.get(standin.url + "/_standin/books").json()["alter_id"]
    created = post(
        standin, import_vouchers(sales("T/1", "Nilgiri Logistics", "100.00", remote="r1"))
    )
    assert counters(created)["CREATED"] == "1"
    altered = post(
        standin, import_vouchers(sales("T/1", "Nilgiri Logistics", "150.00", remote="r1"))
    )
    assert counters(altered)["ALTERED"] == "1" and counters(altered)["CREATED"] == "0"
    [voucher] = [v for v in vouchers(standin) if v["number"] == "T/1"]
    assert voucher["alter_id"] == before + 2 and "150.00" in voucher["xml"]
    newer = post(standin, export("Voucher", filters={"After": f"$AlterID > {before + 1}"})).text
    assert newer.count("<VOUCHER ") == 1 and "T/1" in newer


def test_alter_by_number_without_remote_id_and_alter_of_nothing_refused(standin):
    post(standin, import_vouchers(sales("T/2", "Nilgiri Logistics", "100.00")))
    altered = post(
        standin, import_vouchers(sales("T/2", "Nilgiri Logistics", "120.00", action="Alter"))
    )
    assert counters(altered)["ALTERED"] == "1"
    missing = post(
        standin, import_vouchers(sales("T/3", "Nilgiri Logistics", "1.00", action="Alter"))
    )
    assert "<LINEERROR>Voucher 'T/3' of type 'Sales' does not exist!</LINEERROR>" in missing.text
    assert counters(missing)["ERRORS"] == "1"


def test_tally_refuses_an_unknown_ledger_and_unbalanced_vouchers_but_takes_the_rest(standin):
    answer = post(
        standin,
        import_vouchers(
            sales("T/4", "Ghost Traders", "100.00"),
            sales("T/5", "Nilgiri Logistics", "100.00", sales="90.00"),
            sales("T/6", "Nilgiri Logistics", "100.00"),
        ),
    )
    assert "<LINEERROR>Ledger 'Ghost Traders' does not exist!</LINEERROR>" in answer.text
    assert "Voucher totals do not match! Dr: 100.00 Dr Cr: 90.00 Cr" in answer.text
    found = counters(answer)
    assert (found["ERRORS"], found["CREATED"]) == ("2", "1")
    assert [v["number"] for v in vouchers(standin) if v["number"].startswith("T/")] == ["T/6"]


def test_a_filter_it_cannot_evaluate_is_refused_as_tally_does(standin):
    answer = post(standin, export("Voucher", filters={"Odd": "$Amount > 5"}))
    assert "<STATUS>0</STATUS>" in answer.text and "$Amount &gt; 5" in answer.text


def test_the_period_bounds_the_vouchers_exported(standin):
    period = "<SVFROMDATE>20260301</SVFROMDATE><SVTODATE>20260331</SVTODATE>"
    text = post(standin, export("Voucher", extra=period)).text
    dates = re.findall(r"<DATE>(\d{8})</DATE>", text)
    assert dates and all("20260301" <= day <= "20260331" for day in dates)
    assert len(dates) < len(vouchers(standin))


def test_misbehaviour_is_refused_when_unknown(standin):
    answer = httpx.post(standin.url + "/_standin/misbehave", json={"explode": True})
    assert answer.status_code == 400


def test_slow_answers_and_faults(standin):
    httpx.post(standin.url + "/_standin/misbehave", json={"slow": 0.5})
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(standin.url, content=export("Company", company=None).encode(), timeout=0.1)
    httpx.post(standin.url + "/_standin/misbehave", json={"slow": 0})
    httpx.post(standin.url + "/_standin/faults", json={"status": 500})
    assert httpx.post(standin.url, content=b"<ENVELOPE/>").status_code == 500
    assert post(standin, export("Company", company=None)).status_code == 200


def test_a_get_says_tally_is_running_and_nonsense_is_unknown(standin):
    assert httpx.get(standin.url).text == "<RESPONSE>TallyPrime Server is Running</RESPONSE>"
    check_envelope(httpx.get(standin.url).content)
    nonsense = httpx.post(standin.url, content=b"not xml at all")
    assert nonsense.text == "<RESPONSE>Unknown Request, cannot be processed</RESPONSE>"


def test_reset_restores_the_demo_books(standin):
    post(standin, import_vouchers(sales("T/7", "Nilgiri Logistics", "100.00")))
    httpx.post(standin.url + "/_standin/load", json={"names": []})
    httpx.post(standin.url + "/_standin/reset")
    assert len(vouchers(standin)) == 14
    assert DEMO_COMPANY in post(standin, export("Company", company=None)).text


def test_bulk_books_for_benchmarks():
    with TallyStandin(seed_ledgers=200, seed_vouchers=1000, today=TODAY) as server:
        books = httpx.get(server.url + "/_standin/books").json()
        debtors = [ledger for ledger in books["ledgers"] if ledger["parent"] == "Sundry Debtors"]
        assert len(debtors) == 200 and len(books["vouchers"]) == 1000
        text = post(server, export("Voucher")).text
        assert text.count("<VOUCHER ") == 1000
        assert len(set(re.findall(r"<GUID>([^<]+)</GUID>", text))) == 1000


def test_it_runs_as_a_process_from_the_command_line():
    assert STANDINS["tally"] is TallyStandin
    standin = build(_parser().parse_args(["tally", "--seed", "demo", "--vouchers", "5"]))
    try:
        assert len(standin.companies[DEMO_COMPANY].vouchers) == 14 + 5
    finally:
        standin.stop()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.sandbox.standins", "tally", "--seed", "demo"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert "Sahyadri" in httpx.post(url, content=export("Ledger").encode()).text
    finally:
        process.terminate()
        process.wait(timeout=10)
