"""Opening balances: files of open invoices from the old books, through the real routes and the
real worker (issue 16, finding 2)."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import openpyxl
import pytest
from rq import SimpleWorker
from sqlalchemy import func, select

from app.aging import services as aging
from app.clients.models import Client
from app.invoicing import balance
from app.invoicing.models import OPENING_SERIES, Invoice, InvoiceNumberSequence
from app.payments.models import Payment
from app.payments.opening.models import OpeningBalanceImport
from jobs.queues import get_queue
from tests.helpers import csrf_token_from, tenant_session
from tests.test_client_import import form_key_from, suggested

HEADER = [
    "Invoice No",
    "Invoice Date",
    "Due Date",
    "Party Name",
    "Taxable Value",
    "GST Amount",
    "Invoice Total",
    "Amount Received",
    "PO Number",
]
GOOD_ROWS = [
    ["T-101", "01/04/2026", "01/05/2026", "ASHA", "1,000.00", "180.00", "1,180.00", "180", "PO-9"],
    ["T-102", "15/06/2026", "15/07/2026", "New Buyer Pvt Ltd", "2000", "360", "2360", "", ""],
    ["T-103", "2026-08-01", "2026-08-31", "New Buyer Pvt Ltd", "500", "0", "500", "500", ""],
]


def csv_file(rows) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows([HEADER, *rows])
    return out.getvalue().encode("utf-8-sig")


@pytest.fixture(autouse=True)
def _own_storage(storage_root):
    return storage_root


@pytest.fixture
def workspace(client, db_session, make_user, make_tenant, login):
    owner = make_user(full_name="Asha Owner")
    tenant = make_tenant(owner=owner, name="Kaveri Builders", region="27")
    login(client, owner)
    return tenant


@pytest.fixture
def tenant_db(db_session, workspace):
    session = tenant_session(db_session, workspace)
    yield session
    session.close()


@pytest.fixture
def asha(tenant_db):
    client = Client(
        full_name="Asha Traders Pvt Ltd",
        short_name="ASHA",
        location="local",
        country="IN",
        currency="INR",
        payment_terms="net",
        payment_days=30,
        gstin="27AAPFU0939F1ZV",
        region="27",
    )
    tenant_db.add(client)
    tenant_db.commit()
    return client


def run_bulk_jobs(app) -> None:
    with app.app_context():
        queue = get_queue("bulk")
        SimpleWorker([queue], connection=queue.connection).work(burst=True, with_scheduler=False)


def import_file(client, tenant, filename: str, content: bytes) -> int:
    """Upload, keep the suggested columns, start, let the worker import; the import's id."""
    base = f"/t/{tenant.slug}/opening-balances"
    page = client.get(f"{base}/")
    assert page.status_code == 200
    response = client.post(
        f"{base}/",
        data={
            "file": (io.BytesIO(content), filename),
            "csrf_token": csrf_token_from(page.text),
            "upload_key": form_key_from(page.text, "upload_key"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 303, response.text
    import_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    run_bulk_jobs(client.application)
    page = client.get(f"{base}/{import_id}")
    assert page.status_code == 200
    data = {**suggested(page.text), "csrf_token": csrf_token_from(page.text)}
    assert client.post(f"{base}/{import_id}", data=data).status_code == 303
    page = client.get(f"{base}/{import_id}")
    started = client.post(
        f"{base}/{import_id}/start", data={"csrf_token": csrf_token_from(page.text)}
    )
    assert started.status_code == 303
    run_bulk_jobs(client.application)
    return import_id


def opening_invoices(session) -> dict[str, Invoice]:
    session.expire_all()
    return {
        i.number: i
        for i in session.scalars(select(Invoice).where(Invoice.series == OPENING_SERIES))
    }


def check_good_rows_imported(session, asha) -> None:
    invoices = opening_invoices(session)
    assert set(invoices) == {"T-101", "T-102", "T-103"}
    new_buyer = session.scalar(select(Client).where(Client.full_name == "New Buyer Pvt Ltd"))
    assert new_buyer is not None, "an unknown client is created"
    assert invoices["T-101"].client_id == asha.id, "a known client is matched by short name"
    assert invoices["T-102"].client_id == invoices["T-103"].client_id == new_buyer.id
    assert invoices["T-101"].issue_date == date(2026, 4, 1)
    assert invoices["T-101"].due_date == date(2026, 5, 1)
    assert invoices["T-101"].subtotal == Decimal("1000.00")
    assert invoices["T-101"].total == Decimal("1180.00")
    owed = {n: balance.outstanding(session, i) for n, i in invoices.items()}
    assert owed == {"T-101": Decimal("1000.00"), "T-102": Decimal("2360.00"), "T-103": 0}
    statuses = {n: i.status for n, i in invoices.items()}
    assert statuses["T-101"] == "partly_paid"
    assert statuses["T-103"] == "paid"
    assert statuses["T-102"] in ("issued", "overdue")
    # In the aging, at what each still owes.
    entries = aging.maintained_invoices(session)
    assert entries[invoices["T-101"].id][2] == Decimal("1000.00")
    assert entries[invoices["T-102"].id][2] == Decimal("2360.00")
    assert invoices["T-103"].id not in entries
    as_of = aging.current_state(session).as_of
    assert aging.maintained_summary(session) == aging.full_recomputation(session, as_of)


def test_a_csv_of_open_invoices_imports_with_clients_matched_and_created(
    client, workspace, tenant_db, asha
):
    import_id = import_file(client, workspace, "tally.csv", csv_file(GOOD_ROWS))
    record = tenant_db.get(OpeningBalanceImport, import_id)
    assert (record.status, record.inserted_rows, record.failed_rows) == ("done", 3, 0)
    assert record.clients_created == 1
    check_good_rows_imported(tenant_db, asha)
    progress = client.get(
        f"/t/{workspace.slug}/opening-balances/{import_id}/progress",
        headers={"HX-Request": "true"},
    )
    assert progress.status_code == 200
    assert 'data-count="inserted">3<' in progress.text


def test_an_xlsx_of_open_invoices_imports(client, workspace, tenant_db, asha):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    for number, issued, due, party, amount, tax, total, paid, po in GOOD_ROWS:
        day = lambda text: (  # noqa: E731
            date.fromisoformat(text) if "-" in text else date(*map(int, text.split("/")[::-1]))
        )
        number_of = lambda text: float(text.replace(",", "")) if text else None  # noqa: E731
        sheet.append(
            [number, day(issued), day(due), party, number_of(amount), number_of(tax),
             number_of(total), number_of(paid), po or None]
        )  # fmt: skip
    out = io.BytesIO()
    book.save(out)
    import_id = import_file(client, workspace, "excel.xlsx", out.getvalue())
    assert tenant_db.get(OpeningBalanceImport, import_id).status == "done"
    check_good_rows_imported(tenant_db, asha)


def test_bad_rows_are_reported_with_their_line_and_good_rows_go_in(
    client, workspace, tenant_db, asha, make_invoice
):
    duebook_invoice = make_invoice(tenant_db, workspace, asha, issued_on=date(2026, 3, 2))
    tenant_db.commit()
    rows = [
        GOOD_ROWS[0],  # line 2
        ["T-201", "31/02/2026", "01/05/2026", "ASHA", "100", "0", "100", "", ""],  # 3: no date
        ["T-202", "10/05/2026", "01/05/2026", "ASHA", "100", "0", "100", "", ""],  # 4: due < date
        ["T-203", "10/05/2026", "10/06/2026", "ASHA", "100", "18", "120", "", ""],  # 5: sum
        ["T-204", "10/05/2026", "10/06/2026", "ASHA", "100", "0", "100", "150", ""],  # 6: paid
        ["T-205", "10/05/2026", "10/06/2026", "ASHA", "0", "0", "0", "", ""],  # 7: zero
        ["T-101", "10/05/2026", "10/06/2026", "ASHA", "100", "0", "100", "", ""],  # 8: again
        [duebook_invoice.number, "10/05/2026", "10/06/2026", "ASHA", "100", "0", "100", "", ""],
        ["T-206", "10/05/2026", "10/06/2026", "", "100", "0", "100", "", ""],  # 10: no client
        ["T-207", "01/01/2099", "01/02/2099", "ASHA", "100", "0", "100", "", ""],  # 11: future
        GOOD_ROWS[1],  # line 12
    ]
    import_id = import_file(client, workspace, "mixed.csv", csv_file(rows))
    record = tenant_db.get(OpeningBalanceImport, import_id)
    assert (record.status, record.inserted_rows, record.failed_rows) == ("done", 2, 9)
    assert set(opening_invoices(tenant_db)) == {"T-101", "T-102"}

    report = client.get(f"/t/{workspace.slug}/opening-balances/{import_id}/errors.csv")
    assert report.status_code == 200
    lines = list(csv.reader(io.StringIO(report.text.lstrip("\ufeff"))))
    assert lines[0] == ["line", "field", "reason"]
    found = {(int(line), field) for line, field, _ in lines[1:]}
    assert found == {
        (3, "Invoice date"),
        (4, "Due date"),
        (5, "Total"),
        (6, "Already paid"),
        (7, "Total"),
        (8, "Invoice number"),
        (9, "Invoice number"),
        (10, "Client"),
        (11, "Invoice date"),
    }
    reasons = {int(line): reason for line, _, reason in lines[1:]}
    assert "Line 2" in reasons[8]
    assert "Duebook invoice" in reasons[9]


def test_importing_the_same_file_again_changes_nothing(client, workspace, tenant_db, asha):
    content = csv_file(GOOD_ROWS)
    import_file(client, workspace, "tally.csv", content)
    counts = (
        tenant_db.scalar(select(func.count()).select_from(Invoice)),
        tenant_db.scalar(select(func.count()).select_from(Payment)),
        tenant_db.scalar(select(func.count()).select_from(Client)),
    )
    again = import_file(client, workspace, "tally.csv", content)
    record = tenant_db.get(OpeningBalanceImport, again)
    assert (record.status, record.inserted_rows, record.already_imported_rows) == ("done", 0, 3)
    assert record.clients_created == 0
    tenant_db.expire_all()
    assert counts == (
        tenant_db.scalar(select(func.count()).select_from(Invoice)),
        tenant_db.scalar(select(func.count()).select_from(Payment)),
        tenant_db.scalar(select(func.count()).select_from(Client)),
    )
    check_good_rows_imported(tenant_db, asha)


def test_duebook_numbering_is_unaffected(client, workspace, tenant_db, asha, make_invoice):
    first = make_invoice(tenant_db, workspace, asha, issued_on=date(2026, 4, 1))
    tenant_db.commit()
    import_file(client, workspace, "tally.csv", csv_file(GOOD_ROWS))
    second = make_invoice(tenant_db, workspace, asha, issued_on=date(2026, 9, 1))
    tenant_db.commit()
    assert first.series == second.series == "INV"
    assert int(second.number.rsplit("/", 1)[-1]) == int(first.number.rsplit("/", 1)[-1]) + 1
    series = set(tenant_db.scalars(select(InvoiceNumberSequence.series)))
    assert series == {"INV"}, "imported invoices take no number of a Duebook series"


def test_a_wrong_file_or_a_missing_column_is_said_next_to_its_field(client, workspace):
    base = f"/t/{workspace.slug}/opening-balances"
    page = client.get(f"{base}/")
    refused = client.post(
        f"{base}/",
        data={
            "file": (io.BytesIO(b"%PDF-1.4"), "invoices.pdf"),
            "csrf_token": csrf_token_from(page.text),
            "upload_key": form_key_from(page.text, "upload_key"),
        },
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422
    assert "Upload a .csv or .xlsx file" in refused.text

    page = client.get(f"{base}/")
    response = client.post(
        f"{base}/",
        data={
            "file": (io.BytesIO(csv_file(GOOD_ROWS)), "tally.csv"),
            "csrf_token": csrf_token_from(page.text),
            "upload_key": form_key_from(page.text, "upload_key"),
        },
        content_type="multipart/form-data",
    )
    import_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    run_bulk_jobs(client.application)
    page = client.get(f"{base}/{import_id}")
    data = {**suggested(page.text), "map_due_date": "", "csrf_token": csrf_token_from(page.text)}
    answer = client.post(f"{base}/{import_id}", data=data)
    assert answer.status_code == 422
    assert "Choose the columns with the due date." in answer.text
    assert 'data-testid="opening-preview"' not in answer.text
