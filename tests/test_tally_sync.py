"""Tally on the sync engine, as a workspace uses it: the admin makes a pairing code on the Tally
page, the real agent pairs with it and relays to a stand-in TallyPrime on its port; the company
is picked, the debtors reviewed, and Tally's bills, receipts and credit notes come into Duebook
once each; an invoice raised in Duebook and a payment recorded here reach Tally as a sales
voucher and a receipt, once, however often the sync runs. Without the agent, Tally's exports
uploaded by hand go through the same mapping and links, and Duebook's import file carries each
voucher under the GUID a push would give it, so it alters instead of doubling. Every request
Duebook sends Tally and every answer is checked against tests/contracts/tally/envelopes.xsd."""

from __future__ import annotations

import re
import threading
from datetime import date
from io import BytesIO

import httpx
import pytest
from duebook_tally_agent.relay import Agent, pair
from sqlalchemy import func, select

from app.clients.models import Client
from app.integrations.connectors.tally_xml import remote_guid
from app.integrations.models import IntegrationConnection
from app.invoicing.models import Invoice
from app.payments import services as payments
from app.payments.models import Payment
from app.sandbox.standins.tally import DEMO_COMPANY, TallyStandin
from app.sync.models import SyncLink, SyncProblem
from tests.helpers import tenant_session
from tests.sync_helpers import runs, send
from tests.tally_contract import check_envelope
from tests.test_message_templates import issue_invoice

SERVER = "http://duebook.test"


class CheckedTally(httpx.HTTPTransport):
    """The agent's way to Tally: every request and answer held to the envelope contract."""

    def handle_request(self, request):
        body = request.read()
        if request.method == "POST":
            check_envelope(body)
        answer = super().handle_request(request)
        if request.method == "POST":
            answer.read()
            check_envelope(answer.content)
        return answer


class RunningAgent:
    """The real agent, relaying in a thread of its own until stopped."""

    def __init__(self, duebook, token: str, tally_url: str):
        self.agent = Agent(
            SERVER, token, tally_url=tally_url, transport=duebook, tally_transport=CheckedTally()
        )
        self.agent.report_health()
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopping.is_set():
            try:
                self.agent.step(wait=1)
            except BaseException as error:  # seen by the test
                self.errors.append(error)
                return

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=10)
        self.agent.close()
        assert not self.errors, self.errors


@pytest.fixture
def duebook(app):
    def served_as_by_gunicorn(environ, start_response):
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return httpx.WSGITransport(app=served_as_by_gunicorn)


@pytest.fixture
def tally_books(app, monkeypatch):
    monkeypatch.setitem(app.config, "SYNC_RETRY_DELAYS", (0, 0))
    monkeypatch.setitem(app.config, "TALLY_ANSWER_SECONDS", 20)
    with TallyStandin(seed="demo") as server:
        yield server


@pytest.fixture
def workspace(db_session, make_tenant, make_user, make_client, login, client):
    """Demo Traders' workspace in Karnataka, whose client Sahyadri Textiles LLP Tally knows too."""
    owner = make_user()
    tenant = make_tenant(owner=owner, region="29")
    session = tenant_session(db_session, tenant)
    sahyadri = make_client(session, name="x", short_name="Sahyadri", gstin=None, region="27")
    sahyadri.full_name = "Sahyadri Textiles LLP"
    session.commit()
    login(client, owner)
    return tenant, owner, session


def books(standin) -> dict:
    return httpx.get(f"{standin.url}/_standin/books", params={"company": DEMO_COMPANY}).json()


def pair_through_the_page(client, tenant, duebook) -> str:
    integrations = client.get(f"/t/{tenant.slug}/integrations/")
    assert f'href="/t/{tenant.slug}/sync/tally"' in integrations.text
    page = client.get(f"/t/{tenant.slug}/sync/tally")
    assert "Make a pairing code" in page.text
    shown = send(client, tenant, f"/t/{tenant.slug}/sync/tally/code")
    assert shown.status_code == 200
    code = re.search(r"--code ([A-Z0-9]{8})", shown.text).group(1)
    return pair(SERVER, code, transport=duebook)


def connect(client, tenant, duebook, tally_books, run_jobs):
    token = pair_through_the_page(client, tenant, duebook)
    agent = RunningAgent(duebook, token, tally_books.url)
    page = client.get(f"/t/{tenant.slug}/sync/tally")
    assert "Choose the company in Tally" in page.text and "Answering" in page.text
    chosen = send(client, tenant, f"/t/{tenant.slug}/sync/tally/companies")
    assert chosen.status_code == 303, chosen.text[:300]
    connection_id = int(chosen.headers["Location"].rstrip("/").rsplit("/", 1)[-1])
    run_jobs()
    review = client.get(f"/t/{tenant.slug}/sync/{connection_id}/review")
    assert "Sahyadri Textiles LLP" in review.text
    send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/review", data={})
    run_jobs()
    return agent, connection_id


def test_tally_books_come_in_once_and_duebook_invoices_go_out_once(
    app, client, workspace, duebook, tally_books, run_jobs
):
    tenant, _, session = workspace
    agent, connection_id = connect(client, tenant, duebook, tally_books, run_jobs)
    try:
        done = runs(session)
        assert [run.status for run in done] == ["done", "done"], [(r.status, r.error) for r in done]
        held = books(tally_books)
        sales = {
            v["number"]
            for v in held["vouchers"]
            if v["kind"] == "Sales" and "<ISOPTIONAL>Yes" not in v["xml"]
        }
        assert sorted(session.scalars(select(Invoice.number)).all()) == sorted(sales)
        debtors = [ledger for ledger in held["ledgers"] if ledger["parent"] == "Sundry Debtors"]
        assert session.scalar(select(func.count()).select_from(Client)) == len(debtors)
        # A new client keeps its ledger's credit period (45 days in Tally).
        tungabhadra = session.scalar(select(Client).where(Client.full_name.like("Tungabhadra%")))
        assert (tungabhadra.payment_terms, tungabhadra.payment_days) == ("net", 45)
        assert tungabhadra.gstin.startswith("29") and tungabhadra.region == "29"
        assert session.scalar(select(func.count()).select_from(Payment)) >= 3
        for invoice in session.scalars(select(Invoice).where(Invoice.status != "void")):
            tax = invoice.cgst + invoice.sgst + invoice.igst
            if invoice.place_of_supply == "29":
                assert invoice.igst == 0 and invoice.cgst + invoice.sgst == tax
            else:
                assert invoice.cgst == invoice.sgst == 0 and invoice.igst == tax

        # An invoice raised in Duebook and a payment on it go to Tally, once each.
        sahyadri = session.scalar(select(Client).where(Client.full_name.like("Sahyadri%")))
        invoice = issue_invoice(session, tenant, sahyadri, amount="50000.00", day=date.today())
        session.commit()
        for _ in range(2):
            send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
            run_jobs()
        payments.record_payment_for_invoice(
            session,
            invoice,
            {
                "amount": "20000.00",
                "received_on": date.today(),
                "method": "bank_transfer",
                "reference": "UTR-TALLY-1",
            },
        )
        session.commit()
        for _ in range(2):
            send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
            run_jobs()
        latest = runs(session)[-1]
        assert (latest.status, latest.created, latest.failed) == ("done", 0, 0), latest.error
        held = books(tally_books)
        ours = [v for v in held["vouchers"] if v["number"] == invoice.number]
        assert len(ours) == 1 and ours[0]["kind"] == "Sales"
        assert "<PARTYLEDGERNAME>Sahyadri Textiles LLP</PARTYLEDGERNAME>" in ours[0]["xml"]
        receipts = [
            v for v in held["vouchers"] if v["kind"] == "Receipt" and invoice.number in v["xml"]
        ]
        assert len(receipts) == 1 and "UTR-TALLY-1" in receipts[0]["number"]
        assert "<AMOUNT>20000.00</AMOUNT>" in receipts[0]["xml"]
        # Nothing came back as a second invoice or payment in Duebook.
        assert (
            session.scalar(
                select(func.count()).select_from(Invoice).where(Invoice.number == invoice.number)
            )
            == 1
        )
        assert (
            session.scalar(
                select(func.count()).select_from(Payment).where(Payment.reference == "UTR-TALLY-1")
            )
            == 1
        )
    finally:
        agent.stop()


def test_a_company_switched_in_tally_stops_the_sync_instead_of_mixing_books(
    app, client, workspace, duebook, tally_books, run_jobs
):
    tenant, _, session = workspace
    agent, connection_id = connect(client, tenant, duebook, tally_books, run_jobs)
    try:
        before = session.scalar(select(func.count()).select_from(Invoice))
        other = httpx.post(
            f"{tally_books.url}/_standin/companies", json={"name": "Other Books Pvt Ltd"}
        ).json()
        httpx.post(f"{tally_books.url}/_standin/load", json={"names": [other["name"]]})
        send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
        run_jobs()
        failed = runs(session)[-1]
        assert failed.status == "failed"
        assert "is not open in Tally" in failed.error and "Other Books Pvt Ltd" in failed.error
        assert session.scalar(select(func.count()).select_from(Invoice)) == before
    finally:
        agent.stop()


def test_without_the_agent_the_files_go_through_the_same_mapping(
    app, client, workspace, run_jobs, storage_root, monkeypatch
):
    """A ledgers export and a day book uploaded by hand; a voucher already in Duebook is not
    added twice; the import file's vouchers carry the push's GUIDs, so importing it twice
    makes one voucher, and its day book uploaded back links it instead of doubling it."""
    monkeypatch.setitem(app.config, "SYNC_RETRY_DELAYS", (0, 0))
    tenant, _, session = workspace
    with TallyStandin(seed="demo") as standin:
        _files_journey(client, tenant, session, run_jobs, standin)


def _files_journey(client, tenant, session, run_jobs, standin):
    refused = send(client, tenant, f"/t/{tenant.slug}/sync/tally/files-only", data={"company": ""})
    assert refused.status_code == 422 and "Give the company" in refused.text
    saved = send(
        client,
        tenant,
        f"/t/{tenant.slug}/sync/tally/files-only",
        data={"company": DEMO_COMPANY, "state": "29"},
    )
    assert saved.status_code == 303
    not_xml = send(
        client,
        tenant,
        f"/t/{tenant.slug}/sync/tally/upload",
        data={"files": (BytesIO(b"Date,Amount\n"), "export.csv")},
        content_type="multipart/form-data",
    )
    assert not_xml.status_code == 422 and "not an XML file" in not_xml.text

    def upload():
        ledgers = httpx.post(standin.url, content=_export("Ledger")).content
        day_book = httpx.post(standin.url, content=_export("Voucher")).content
        answer = send(
            client,
            tenant,
            f"/t/{tenant.slug}/sync/tally/upload",
            data={"files": [(BytesIO(ledgers), "ledgers.xml"), (BytesIO(day_book), "daybook.xml")]},
            content_type="multipart/form-data",
        )
        assert answer.status_code == 303, answer.text[:400]
        run_jobs()

    upload()
    connection = session.scalar(
        select(IntegrationConnection).where(IntegrationConnection.provider == "tally")
    )
    send(client, tenant, f"/t/{tenant.slug}/sync/{connection.id}/review", data={})
    run_jobs()
    invoices = session.scalar(select(func.count()).select_from(Invoice))
    payments_in = session.scalar(select(func.count()).select_from(Payment))
    assert invoices >= 8 and payments_in >= 3
    problems = [p.reason for p in session.scalars(select(SyncProblem))]
    assert not [p for p in problems if "not a debtor" in p], problems
    # The same files again: nothing is added twice, and nothing is taken as deleted.
    upload()
    assert session.scalar(select(func.count()).select_from(Invoice)) == invoices
    assert session.scalar(select(func.count()).select_from(Payment)) == payments_in
    assert (
        session.scalar(select(func.count()).select_from(Invoice).where(Invoice.status == "void"))
        <= 1
    )
    assert runs(session)[-1].trigger == "file" and runs(session)[-1].status == "done"

    # The company posts services to a sales ledger of its own name.
    too_long = send(
        client, tenant, f"/t/{tenant.slug}/sync/tally/ledgers", data={"sales_ledger": "S" * 121}
    )
    assert too_long.status_code == 422 and "120 characters" in too_long.text
    httpx.post(
        f"{standin.url}/_standin/ledgers",
        json={"name": "Sales - Services", "parent": "Sales Accounts"},
    )
    send(
        client,
        tenant,
        f"/t/{tenant.slug}/sync/tally/ledgers",
        data={"sales_ledger": "Sales - Services"},
    )
    # Duebook's import file: the new invoice under the GUID a push through an agent would give.
    sahyadri = session.scalar(select(Client).where(Client.full_name.like("Sahyadri%")))
    invoice = issue_invoice(session, tenant, sahyadri, amount="50000.00", day=date.today())
    session.commit()
    page = client.get(f"/t/{tenant.slug}/sync/tally")
    assert "Download the import file (1 record)" in page.text
    made = client.get(f"/t/{tenant.slug}/sync/tally/import-file")
    assert made.status_code == 200 and "attachment" in made.headers["Content-Disposition"]
    check_envelope(made.data)
    assert f"<VOUCHERNUMBER>{invoice.number}</VOUCHERNUMBER>" in made.text
    key = f"duebook-{tenant.id}-{connection.id}-invoice-{invoice.id}"
    assert f'REMOTEID="{remote_guid(key)}"' in made.text
    assert "<LEDGERNAME>Sales - Services</LEDGERNAME>" in made.text
    for _ in range(2):  # imported twice by hand: one voucher
        imported = httpx.post(standin.url, content=made.data)
        assert b"<LINEERROR>" not in imported.content, imported.text
    assert [v["number"] for v in books(standin)["vouchers"]].count(invoice.number) == 1
    upload()
    assert (
        session.scalar(
            select(func.count()).select_from(Invoice).where(Invoice.number == invoice.number)
        )
        == 1
    )
    link = session.scalar(
        select(SyncLink).where(SyncLink.entity == "invoice", SyncLink.local_id == invoice.id)
    )
    assert link is not None and link.remote_id == remote_guid(key)
    # Linked now: the next import file no longer carries it.
    assert invoice.number not in client.get(f"/t/{tenant.slug}/sync/tally/import-file").text
    assert "Nothing is waiting to go to Tally" in client.get(f"/t/{tenant.slug}/sync/tally").text


def _export(kind: str) -> bytes:
    """What a person exports from Tally by hand (here: asked of the stand-in)."""
    collection = (
        "<TYPE>Ledger</TYPE><CHILDOF>$$GroupSundryDebtors</CHILDOF><FETCH>*</FETCH>"
        if kind == "Ledger"
        else "<TYPE>Voucher</TYPE><FETCH>*</FETCH>"
    )
    return (
        "<ENVELOPE><HEADER><VERSION>1</VERSION><TALLYREQUEST>Export</TALLYREQUEST>"
        "<TYPE>Collection</TYPE><ID>Export</ID></HEADER><BODY><DESC><STATICVARIABLES>"
        f"<SVEXPORTFORMAT>$$SysName:XML</SVEXPORTFORMAT>"
        f"<SVCURRENTCOMPANY>{DEMO_COMPANY}</SVCURRENTCOMPANY></STATICVARIABLES><TDL><TDLMESSAGE>"
        f'<COLLECTION NAME="Export">{collection}</COLLECTION></TDLMESSAGE></TDL></DESC></BODY>'
        "</ENVELOPE>"
    ).encode()


def test_another_workspace_reaches_only_its_own_tally(
    app, client, workspace, duebook, make_tenant, make_user, login, db_session
):
    tenant, _, session = workspace
    pair_through_the_page(client, tenant, duebook)
    theirs = session.scalar(
        select(IntegrationConnection).where(IntegrationConnection.provider == "tally")
    )
    kept = dict(theirs.settings)
    other_owner = make_user()
    other = make_tenant(owner=other_owner)
    login(client, other_owner)
    assert send(client, other, f"/t/{other.slug}/sync/tally/revoke").status_code == 404
    assert client.get(f"/t/{other.slug}/sync/tally/import-file").status_code == 404
    page = client.get(f"/t/{other.slug}/sync/tally")
    assert "Make a pairing code" in page.text and "Paired with" not in page.text
    # Their own code makes their own connection; the first workspace's agent stays paired.
    assert send(client, other, f"/t/{other.slug}/sync/tally/code").status_code == 200
    assert client.get(f"/t/{tenant.slug}/sync/tally").status_code in (403, 404)
    fresh = tenant_session(db_session, tenant)
    assert fresh.get(IntegrationConnection, theirs.id).settings == kept
    mine = tenant_session(db_session, other).scalar(
        select(IntegrationConnection).where(IntegrationConnection.provider == "tally")
    )
    assert mine is not None and mine.id is not None and "pairing" in mine.settings


def test_a_voucher_duebook_cannot_map_is_listed_with_tallys_ids_and_the_rest_go_in(
    app, client, workspace, duebook, tally_books, run_jobs
):
    """Also: Tally answering in UTF-16 with its control-character escapes, as older releases do."""
    tenant, _, session = workspace
    httpx.post(
        f"{tally_books.url}/_standin/ledgers",
        json={"name": "Freight Charges", "parent": "Indirect Incomes"},
    )
    odd = (
        "<ENVELOPE><HEADER><VERSION>1</VERSION><TALLYREQUEST>Import</TALLYREQUEST><TYPE>Data</TYPE>"
        "<ID>Vouchers</ID></HEADER><BODY><DESC><STATICVARIABLES><SVCURRENTCOMPANY>"
        f"{DEMO_COMPANY}</SVCURRENTCOMPANY></STATICVARIABLES></DESC><DATA><TALLYMESSAGE>"
        '<VOUCHER VCHTYPE="Sales" ACTION="Create">'
        f"<DATE>{date.today():%Y%m%d}</DATE><VOUCHERTYPENAME>Sales</VOUCHERTYPENAME>"
        "<VOUCHERNUMBER>TD/FRT-1</VOUCHERNUMBER>"
        "<PARTYLEDGERNAME>Malnad Coffee Traders</PARTYLEDGERNAME>"
        "<ALLLEDGERENTRIES.LIST><LEDGERNAME>Malnad Coffee Traders</LEDGERNAME>"
        "<ISDEEMEDPOSITIVE>Yes</ISDEEMEDPOSITIVE><AMOUNT>-1000.00</AMOUNT>"
        "</ALLLEDGERENTRIES.LIST><ALLLEDGERENTRIES.LIST><LEDGERNAME>Freight Charges</LEDGERNAME>"
        "<ISDEEMEDPOSITIVE>No</ISDEEMEDPOSITIVE><AMOUNT>1000.00</AMOUNT></ALLLEDGERENTRIES.LIST>"
        "</VOUCHER></TALLYMESSAGE></DATA></BODY></ENVELOPE>"
    )
    assert b"<CREATED>1</CREATED>" in httpx.post(tally_books.url, content=odd.encode()).content
    guid = next(v["guid"] for v in books(tally_books)["vouchers"] if v["number"] == "TD/FRT-1")
    httpx.post(
        f"{tally_books.url}/_standin/misbehave",
        json={"utf16": "bom", "control_characters": True},
    )
    agent, _ = connect(client, tenant, duebook, tally_books, run_jobs)
    try:
        done = runs(session)
        assert [run.status for run in done] == ["done", "done"], [(r.status, r.error) for r in done]
        reasons = [p.reason for p in session.scalars(select(SyncProblem))]
        (listed,) = [reason for reason in reasons if "TD/FRT-1" in reason]
        assert guid in listed and "'Freight Charges' is neither the party" in listed
        assert session.scalar(select(Invoice).where(Invoice.number == "TD/FRT-1")) is None
        assert session.scalar(select(Invoice).where(Invoice.number == "TD/001")) is not None
    finally:
        agent.stop()


def test_a_page_with_a_voucher_twice_and_a_number_clash_links_each_once(
    app, client, workspace, run_jobs, storage_root, monkeypatch
):
    """A page's new invoices are written together: a voucher that comes twice in one page (the
    same day book uploaded twice) is still one invoice and one link, and a second voucher under
    an invoice number already taken in that page is listed with its GUID while the rest go in."""
    monkeypatch.setitem(app.config, "SYNC_RETRY_DELAYS", (0, 0))
    tenant, _, session = workspace
    send(
        client,
        tenant,
        f"/t/{tenant.slug}/sync/tally/files-only",
        data={"company": DEMO_COMPANY, "state": "29"},
    )
    with TallyStandin(seed="demo") as standin:
        ledgers = httpx.post(standin.url, content=_export("Ledger")).content
        day_book = httpx.post(standin.url, content=_export("Voucher")).content.decode()
        sales = {
            v["number"]
            for v in books(standin)["vouchers"]
            if v["kind"] == "Sales" and "<ISOPTIONAL>Yes" not in v["xml"]
        }
    first = re.search(r"<VOUCHER REMOTEID=\"([^\"]+)\".*?</VOUCHER>", day_book, re.S)
    clash_guid = "00000000-0000-4000-8000-00000000c1a5"
    clash = first.group(0).replace(first.group(1), clash_guid)
    with_clash = day_book.replace("</COLLECTION>", clash + "</COLLECTION>", 1)
    uploaded = send(
        client,
        tenant,
        f"/t/{tenant.slug}/sync/tally/upload",
        data={
            "files": [
                (BytesIO(ledgers), "ledgers.xml"),
                (BytesIO(with_clash.encode()), "daybook.xml"),
                (BytesIO(day_book.encode()), "daybook-again.xml"),
            ]
        },
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 303, uploaded.text[:400]
    run_jobs()
    connection = session.scalar(
        select(IntegrationConnection).where(IntegrationConnection.provider == "tally")
    )
    send(client, tenant, f"/t/{tenant.slug}/sync/{connection.id}/review", data={})
    run_jobs()

    numbers = session.scalars(select(Invoice.number)).all()
    assert sorted(numbers) == sorted(sales)
    links = session.scalars(
        select(SyncLink.local_id).where(
            SyncLink.entity == "invoice", SyncLink.local_id.is_not(None)
        )
    ).all()
    assert len(links) == len(set(links)) == len(sales)
    problems = session.scalars(select(SyncProblem).where(SyncProblem.entity == "invoice")).all()
    assert [(p.remote_id, "another invoice with this number" in p.reason) for p in problems] == [
        (clash_guid, True)
    ]
