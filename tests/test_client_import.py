"""Client import: real files through the real routes and the real worker."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import openpyxl
import pytest
from rq import Queue, SimpleWorker
from sqlalchemy import func, select
from stdnum import luhn

from app.audit.models import AuditEntry
from app.clients.imports import files as import_files
from app.clients.imports import services as imports
from app.clients.imports import writer as import_writer
from app.clients.models import Client, ClientImport, ClientImportError, Contact
from app.clients.rules import clean_client
from app.clients.services import client_context
from jobs.queues import get_queue
from tenants.binding import bind_tenant
from tests.helpers import csrf_token_from, tenant_session

GSTIN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def gstin(state: str, pan: str) -> str:
    body = f"{state}{pan}1Z"
    return body + luhn.calc_check_digit(body, GSTIN_ALPHABET)


GOOD_GSTIN = gstin("27", "AAPFU0939F")
BAD_GSTIN = GOOD_GSTIN[:-1] + ("A" if GOOD_GSTIN[-1] != "A" else "B")

MIXED_CSV = "\n".join(
    [
        "Client name;Short;GST No;Payment terms;Payment days;Payment terms note;Tags;Contact;Email",
        f"Asha Traders Pvt Ltd;ASHA;{GOOD_GSTIN};Net;30;;vip, north;Ravi Kumar;"
        "ravi@asha.example.com",
        f"Bharat Steel Ltd;BHARAT;{BAD_GSTIN};Net;45;;;;",
        "Chola Foods;;;Immediate;;;;;",
        "Deccan Logistics;DECCAN;;Custom;30;Pay on delivery;;;",
        "Eastern Paper Mills;asha;;Net;15;;;;",
        ";;;;;;;;",
        "Fortune Textiles;FORTUNE;;Net;60;;;;",
    ]
).encode("utf-8-sig")  # semicolons and a byte-order mark, as Excel writes them
MIXED_ERRORS = {(3, "gstin"), (4, "short_name"), (5, "payment_days"), (6, "short_name")}


@pytest.fixture(autouse=True)
def _own_storage(storage_root):
    """Files of this test go to a folder of its own."""
    return storage_root


@pytest.fixture
def workspace(client, db_session, make_user, make_tenant, login):
    owner = make_user(full_name="Asha Owner")
    tenant = make_tenant(owner=owner, name="Kaveri Builders")
    login(client, owner)
    return tenant


@pytest.fixture
def tenant_db(db_session, workspace):
    """A session bound to the workspace's schema, on the test's connection."""
    session = tenant_session(db_session, workspace)
    yield session
    session.close()


def base(tenant) -> str:
    return f"/t/{tenant.slug}/clients"


def read_uploads(app) -> None:
    """Run the jobs that read uploaded files (the request only stores them)."""
    with app.app_context():
        queue = get_queue("bulk")
        SimpleWorker([queue], connection=queue.connection).work(burst=True, with_scheduler=False)


def form_key_from(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]+)"', html) or re.search(
        rf'value="([^"]+)"[^>]*name="{name}"', html
    )
    return match.group(1) if match else ""


def upload(client, tenant, filename: str, content: bytes):
    """Post the upload form; once it is stored, a worker reads it (as the page's polling
    waits for), so the import page shows the columns and the preview."""
    page = client.get(f"{base(tenant)}/imports/new")
    assert page.status_code == 200
    response = client.post(
        f"{base(tenant)}/imports/new",
        data={
            "file": (io.BytesIO(content), filename),
            "csrf_token": csrf_token_from(page.text),
            "upload_key": form_key_from(page.text, "upload_key"),
        },
        content_type="multipart/form-data",
    )
    if response.status_code == 303:
        read_uploads(client.application)
    return response


def import_id_of(response) -> int:
    assert response.status_code == 303, response.text
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


SELECT = re.compile(r'<select[^>]*name="(map_[a-z_0-9]+)"[^>]*>(.*?)</select>', re.S)
SELECTED = re.compile(
    r'<option[^>]*\bselected\b[^>]*value="([^"]*)"|'
    r'<option[^>]*value="([^"]*)"[^>]*\bselected\b'
)


def suggested(html: str) -> dict[str, str]:
    """The mapping the page proposes: field -> column index ('' when not in the file)."""
    found = {}
    for name, options in SELECT.findall(html):
        match = SELECTED.search(options)
        found[name] = (match.group(1) or match.group(2) or "") if match else ""
    return found


def save_mapping(client, tenant, import_id: int, **overrides):
    page = client.get(f"{base(tenant)}/imports/{import_id}")
    assert page.status_code == 200
    data = {**suggested(page.text), **{f"map_{k}": v for k, v in overrides.items()}}
    data["csrf_token"] = csrf_token_from(page.text)
    return client.post(f"{base(tenant)}/imports/{import_id}", data=data)


def start(client, tenant, import_id: int):
    page = client.get(f"{base(tenant)}/imports/{import_id}")
    return client.post(
        f"{base(tenant)}/imports/{import_id}/start",
        data={
            "csrf_token": csrf_token_from(page.text),
            "form_key": form_key_from(page.text, "form_key"),
        },
    )


def import_file(client, tenant, run_jobs, filename: str, content: bytes) -> int:
    import_id = import_id_of(upload(client, tenant, filename, content))
    assert save_mapping(client, tenant, import_id).status_code == 303
    assert start(client, tenant, import_id).status_code == 303
    run_jobs()
    return import_id


def get_import(session, import_id: int) -> ClientImport:
    return session.get(ClientImport, import_id, populate_existing=True)


def live_clients(session) -> list[Client]:
    return list(
        session.scalars(
            select(Client).where(Client.deleted_at.is_(None)).order_by(Client.short_name)
        )
    )


def errors_of(session, import_id: int) -> set[tuple[int, str]]:
    rows = session.execute(
        select(ClientImportError.line, ClientImportError.field).where(
            ClientImportError.import_id == import_id
        )
    )
    return set(map(tuple, rows))


def test_good_rows_go_in_and_each_bad_row_is_reported_with_line_and_field(
    client, workspace, tenant_db, run_jobs
):
    tenant = workspace
    import_id = import_id_of(upload(client, tenant, "clients.csv", MIXED_CSV))

    page = client.get(f"{base(tenant)}/imports/{import_id}")
    mapping = suggested(page.text)
    assert mapping["map_full_name"] == "0" and mapping["map_short_name"] == "1"
    assert mapping["map_gstin"] == "2" and mapping["map_payment_days"] == "4"
    assert mapping["map_contact_name"] == "7" and mapping["map_contact_email"] == "8"
    # The preview checks the rows before anything is written.
    assert re.search(r'data-line="3".*?data-field="gstin"', page.text, re.S)
    assert "wrong check digit" in page.text
    assert tenant_db.scalar(select(func.count(Client.id))) == 0

    assert save_mapping(client, tenant, import_id).status_code == 303
    assert get_import(tenant_db, import_id).status == "mapped"
    assert start(client, tenant, import_id).status_code == 303
    assert get_import(tenant_db, import_id).status == "queued"
    run_jobs()

    record = get_import(tenant_db, import_id)
    assert record.status == "done" and record.finished_at is not None
    assert (
        record.processed_rows,
        record.inserted_rows,
        record.updated_rows,
        record.failed_rows,
    ) == (6, 2, 0, 4)
    assert errors_of(tenant_db, import_id) == MIXED_ERRORS

    asha, fortune = live_clients(tenant_db)
    assert (asha.short_name, fortune.short_name) == ("ASHA", "FORTUNE")
    assert asha.gstin == GOOD_GSTIN and asha.region == "27" and asha.pan == "AAPFU0939F"
    assert asha.payment_days == 30 and asha.tags == ["vip", "north"]
    assert asha.location == "local" and asha.country == "IN" and asha.currency == "INR"
    [contact] = tenant_db.scalars(select(Contact).where(Contact.client_id == asha.id))
    assert (contact.full_name, contact.email) == ("Ravi Kumar", "ravi@asha.example.com")

    # One entry for the rows the import wrote (the upload has its own "insert" entry).
    [audit] = tenant_db.scalars(
        select(AuditEntry).where(
            AuditEntry.entity == "client_imports",
            AuditEntry.entity_id == str(import_id),
            AuditEntry.action == "update",
        )
    )
    assert audit.subject == f"client_imports:{import_id}"
    assert (
        tenant_db.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.entity == "clients"))
        == 0
    )
    assert audit.changes == {
        "inserted": [None, 2],
        "updated": [None, 0],
        "failed": [None, 4],
        "contacts": [None, 1],
    }
    assert audit.actor_user_id == record.created_by_user_id

    report = client.get(f"{base(tenant)}/imports/{import_id}/errors.csv")
    assert report.status_code == 200 and report.mimetype == "text/csv"
    lines = list(csv.reader(io.StringIO(report.get_data(as_text=True).lstrip("\ufeff"))))
    assert lines[0] == ["line", "field", "reason"]
    assert [(int(line), field) for line, field, _ in lines[1:]] == [
        (3, "GST No"),
        (4, "Short"),
        (5, "Payment days"),
        (6, "Short"),
    ]
    assert "check digit" in lines[1][2] and "Line 2" in lines[4][2]

    fragment = client.get(
        f"{base(tenant)}/imports/{import_id}/progress", headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200
    assert "every 1s" not in fragment.text  # finished: it stops polling
    assert 'data-count="inserted">2<' in fragment.text and "errors.csv" in fragment.text


def test_running_the_same_file_again_updates_instead_of_duplicating(
    client, workspace, tenant_db, run_jobs
):
    tenant = workspace
    first = import_file(client, tenant, run_jobs, "clients.csv", MIXED_CSV)
    assert get_import(tenant_db, first).inserted_rows == 2

    again = import_file(client, tenant, run_jobs, "clients.csv", MIXED_CSV)
    record = get_import(tenant_db, again)
    assert record.status == "done"
    assert (record.inserted_rows, record.updated_rows, record.failed_rows) == (0, 0, 4)
    assert [c.short_name for c in live_clients(tenant_db)] == ["ASHA", "FORTUNE"]
    assert tenant_db.scalar(select(func.count(Contact.id))) == 1
    assert errors_of(tenant_db, again) == MIXED_ERRORS

    changed = MIXED_CSV.replace(b"Net;60;", b"Net;90;")
    third = import_file(client, tenant, run_jobs, "clients.csv", changed)
    record = get_import(tenant_db, third)
    assert (record.inserted_rows, record.updated_rows) == (0, 1)
    fortune = live_clients(tenant_db)[1]
    tenant_db.refresh(fortune)
    assert fortune.payment_days == 90


def test_a_row_matches_its_client_by_external_id_first(client, workspace, tenant_db, run_jobs):
    tenant = workspace
    first = (
        b"External ID,Name,Short name,Country,Currency,Credit limit,Payment days\n"
        b"ERP-1,Ganga Motors,GANGA,IN,INR,100000,30\n"
        b"ERP-2,Himalaya Tea,HIMTEA,IN,INR,,45\n"
    )
    import_file(client, tenant, run_jobs, "erp.csv", first)
    ganga = tenant_db.scalar(select(Client).where(Client.external_id == "ERP-1"))
    assert (ganga.short_name, ganga.credit_limit) == ("GANGA", 100000)

    # Renamed in the ERP; the credit limit column is left empty (keeps the current value).
    second = (
        b"External ID,Name,Short name,Credit limit\n"
        b"ERP-1,Ganga Motors India,GMI,\n"
        b"ERP-3,Indus Pipes,HIMTEA,\n"
    )
    import_id = import_file(client, tenant, run_jobs, "erp.csv", second)
    record = get_import(tenant_db, import_id)
    assert (record.inserted_rows, record.updated_rows, record.failed_rows) == (0, 1, 1)
    # HIMTEA belongs to the client with external id ERP-2: not silently re-keyed.
    assert errors_of(tenant_db, import_id) == {(3, "external_id")}
    tenant_db.refresh(ganga)
    assert (ganga.full_name, ganga.short_name) == ("Ganga Motors India", "GMI")
    assert ganga.credit_limit == 100000
    assert tenant_db.scalar(select(func.count(Client.id))) == 2


def test_xlsx_workbooks_import_like_csv(client, workspace, tenant_db, run_jobs):
    tenant = workspace
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(
        [
            "Company",
            "Code",
            "State",
            "Location",
            "Country",
            "Currency",
            "Credit days",
            "Credit limit",
            "Client since",
            "Industry",
            "Phone",
            "Contact person",
        ]
    )
    sheet.append(
        [
            "Jaipur Gems",
            "JGEMS",
            "Rajasthan",
            None,
            None,
            None,
            30,
            250000.5,
            2020,
            "Manufacturing",
            "+91 98765 43210",
            "Meena Joshi",
        ]
    )
    sheet.append([])  # a blank row keeps its line number
    sheet.append(
        [
            "Kiwi Exports Ltd",
            "KIWI",
            None,
            "Foreign",
            "NZ",
            "NZD",
            45.0,
            None,
            None,
            None,
            None,
            None,
        ]
    )
    sheet.append(["Lotus Labs", "LOTUS", None, None, None, None, 30, -5, 2099, None, None, None])
    content = io.BytesIO()
    workbook.save(content)

    import_id = import_file(client, tenant, run_jobs, "clients.xlsx", content.getvalue())
    record = get_import(tenant_db, import_id)
    assert record.file_format == "xlsx"
    assert (record.processed_rows, record.inserted_rows, record.failed_rows) == (3, 2, 1)
    assert errors_of(tenant_db, import_id) == {(5, "credit_limit"), (5, "new_business_year")}
    jaipur, kiwi = live_clients(tenant_db)
    assert (jaipur.region, jaipur.payment_days, str(jaipur.credit_limit)) == ("08", 30, "250000.50")
    assert jaipur.new_business_year == 2020 and jaipur.industry is not None
    [contact] = tenant_db.scalars(select(Contact).where(Contact.client_id == jaipur.id))
    assert contact.phone == "+919876543210"
    assert (kiwi.location, kiwi.country, kiwi.currency, kiwi.payment_days) == (
        "foreign",
        "NZ",
        "NZD",
        45,
    )


def test_uploads_that_cannot_be_imported_say_why(client, workspace, tenant_db):
    tenant = workspace
    # Refused by the upload request (nothing to parse for that).
    cases = [
        ("clients.txt", b"Name,Short name\nA,B\n", "Upload a .csv or .xlsx file"),
        ("clients.csv", b"", "The file is empty"),
        ("clients.xlsx", b"Name,Short name\nA,B\n", "not an Excel workbook"),
    ]
    for filename, content, message in cases:
        response = upload(client, tenant, filename, content)
        assert response.status_code == 422, (filename, content)
        assert message in response.text, (filename, content, response.text)
        assert 'aria-invalid="true"' in response.text
    # Refused by the worker that reads the file: the import page says why, next to a new upload.
    cases = [
        ("clients.csv", b"Name,Short name\n", "no clients below it"),
        ("clients.csv", f"Asha Traders,ASHA,{GOOD_GSTIN},30\n".encode(), "Add a header row"),
        ("clients.csv", b"\n\n", "first row is empty"),
        ("clients.csv", "Name,Short\nÉcole,ECO\n".encode("latin-1"), "not UTF-8"),
    ]
    for filename, content, message in cases:
        import_id = import_id_of(upload(client, tenant, filename, content))
        assert get_import(tenant_db, import_id).status == "unreadable"
        page = client.get(f"{base(tenant)}/imports/{import_id}")
        assert page.status_code == 200
        assert message in page.text, (filename, content, page.text)
        assert 'aria-invalid="true"' in page.text


def test_files_over_the_size_limit_are_refused(client, workspace, monkeypatch, storage_root):
    from app.clients.imports import views as import_views

    monkeypatch.setattr(import_files, "MAX_FILE_BYTES", 1_000)
    content = b"Name,Short name\n" + b"".join(b"Client %d,C%d\n" % (n, n) for n in range(200))
    response = upload(client, workspace, "big.csv", content)
    assert response.status_code == 422 and "larger than 20 MB" in response.text
    assert not [p for p in storage_root.rglob("*") if p.is_file()]  # nothing half-kept
    # Far over the limit, the request is refused before it is read.
    monkeypatch.setattr(import_views, "REQUEST_LIMIT", 2_000)
    assert upload(client, workspace, "big.csv", content).status_code == 413


def test_a_mapping_needs_the_names_or_an_external_id(client, workspace, tenant_db):
    tenant = workspace
    import_id = import_id_of(
        upload(client, tenant, "c.csv", b"Name,Short name,City\nA Co,AC,Pune\n")
    )
    response = save_mapping(client, tenant, import_id, short_name="")
    assert response.status_code == 422 and "short name" in response.text
    assert get_import(tenant_db, import_id).status == "uploaded"
    assert start(client, tenant, import_id).status_code == 303  # refused with a message
    assert get_import(tenant_db, import_id).status == "uploaded"


def test_a_failed_import_resumes_after_its_last_chunk_when_retried(
    client, workspace, tenant_db, run_jobs, monkeypatch
):
    tenant = workspace
    rows = ["Name,Short name,Payment days"] + [f"Client {n},C{n},30" for n in range(1, 6)]
    rows.append("Client Dup,C1,30")  # a duplicate of line 2, in the last chunk
    content = "\n".join(rows).encode()
    monkeypatch.setattr(imports, "CHUNK_SIZE", 2)
    real_write = imports.write_chunk
    calls = []

    def crash_on_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker lost its database connection")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(imports, "write_chunk", crash_on_second_chunk)
    import_id = import_file(client, tenant, run_jobs, "many.csv", content)
    record = get_import(tenant_db, import_id)
    assert record.status == "failed" and "retry" in record.error
    assert (record.processed_rows, record.inserted_rows) == (2, 2)  # the first chunk only
    fragment = client.get(
        f"{base(tenant)}/imports/{import_id}/progress", headers={"HX-Request": "true"}
    )
    assert "Retry the import" in fragment.text and "every 1s" not in fragment.text

    monkeypatch.setattr(imports, "write_chunk", real_write)
    assert start(client, tenant, import_id).status_code == 303
    fragment = client.get(
        f"{base(tenant)}/imports/{import_id}/progress", headers={"HX-Request": "true"}
    )
    assert 'hx-trigger="every 1s"' in fragment.text  # queued: it polls
    run_jobs()
    record = get_import(tenant_db, import_id)
    assert record.status == "done" and record.error is None
    assert (record.processed_rows, record.inserted_rows, record.failed_rows) == (6, 5, 1)
    assert errors_of(tenant_db, import_id) == {(7, "short_name")}
    assert tenant_db.scalar(select(func.count(Client.id))) == 5


def test_a_chunk_the_database_refuses_is_not_half_written(
    client, workspace, tenant_db, run_jobs, monkeypatch
):
    tenant = workspace
    import_file(
        client, tenant, run_jobs, "one.csv", b"Name,Short name,Payment days\nTaken Co,TAKEN,30\n"
    )
    rows = [
        "Name,Short name,Payment days",
        "New One,N1,30",
        "New Two,N2,30",
        "New Three,N3,30",
        "Taken Again Co,TAKEN,45",
    ]
    monkeypatch.setattr(imports, "CHUNK_SIZE", 2)
    real_lookup = imports.RowChecker.lookup

    def blind_lookup(self, rows):  # as if another user added TAKEN after the check
        found = real_lookup(self, rows)
        return imports._Lookup(found.raws)

    monkeypatch.setattr(imports.RowChecker, "lookup", blind_lookup)
    import_id = import_file(client, tenant, run_jobs, "more.csv", "\n".join(rows).encode())
    record = get_import(tenant_db, import_id)
    assert record.status == "failed"
    assert (record.processed_rows, record.inserted_rows) == (2, 2)
    names = {c.short_name for c in live_clients(tenant_db)}
    assert names == {"TAKEN", "N1", "N2"}  # not N3: its chunk was refused as a whole

    monkeypatch.setattr(imports.RowChecker, "lookup", real_lookup)
    start(client, tenant, import_id)
    run_jobs()
    record = get_import(tenant_db, import_id)
    assert record.status == "done"
    assert (record.processed_rows, record.inserted_rows, record.updated_rows) == (4, 3, 1)
    taken = next(c for c in live_clients(tenant_db) if c.short_name == "TAKEN")
    tenant_db.refresh(taken)
    assert (taken.full_name, taken.payment_days) == ("Taken Again Co", 45)


def test_a_missing_file_fails_the_import_with_a_message(
    client, workspace, tenant_db, run_jobs, storage_root
):
    tenant = workspace
    import_id = import_id_of(upload(client, tenant, "c.csv", b"Name,Short name\nA Co,AC\n"))
    assert save_mapping(client, tenant, import_id).status_code == 303
    assert start(client, tenant, import_id).status_code == 303
    for path in storage_root.rglob("*.csv"):
        path.unlink()
    run_jobs()
    record = get_import(tenant_db, import_id)
    assert record.status == "failed" and "upload it again" in record.error


def test_import_needs_the_edit_permission(client, workspace, make_user, add_member, login, app):
    tenant = workspace
    viewer = make_user()
    add_member(tenant, viewer, role="viewer")
    other = app.test_client()
    login(other, viewer)
    assert other.get(f"{base(tenant)}/imports/new").status_code == 403
    token = csrf_token_from(other.get(f"/t/{tenant.slug}/").text)
    response = other.post(
        f"{base(tenant)}/imports/new",
        data={"file": (io.BytesIO(MIXED_CSV), "c.csv"), "csrf_token": token},
        content_type="multipart/form-data",
    )
    assert response.status_code == 403
    import_id = import_id_of(upload(client, tenant, "c.csv", MIXED_CSV))
    for url in (
        f"/imports/{import_id}",
        f"/imports/{import_id}/errors.csv",
        f"/imports/{import_id}/progress",
    ):
        assert other.get(base(tenant) + url).status_code == 403
    response = other.post(f"{base(tenant)}/imports/{import_id}/start", data={"csrf_token": token})
    assert response.status_code == 403


def test_another_tenants_import_is_not_found(client, workspace, make_user, make_tenant, login, app):
    import_id = import_id_of(upload(client, workspace, "c.csv", MIXED_CSV))
    stranger = make_user()
    their_tenant = make_tenant(owner=stranger)
    other = app.test_client()
    login(other, stranger)
    assert other.get(f"{base(their_tenant)}/imports/{import_id}").status_code == 404
    assert other.get(f"{base(workspace)}/imports/{import_id}").status_code == 404


def test_the_import_writes_every_value_clean_client_returns(db_session, workspace):
    bind_tenant(db_session, workspace.id)
    context = client_context(db_session, workspace)
    values, _ = clean_client({"full_name": "X Co", "short_name": "XC"}, context)
    assert set(values) == set(import_writer.CLIENT_COLUMNS)
    assert context.today <= date.today().replace(year=date.today().year + 1)


def test_an_import_no_worker_has_can_be_started_again(
    app, client, workspace, tenant_db, run_jobs, monkeypatch
):
    """Redis refused the hand-over: the import says queued, but no job exists. The page says
    so and offers to start it again; the second start goes through."""
    tenant = workspace
    import_id = import_id_of(upload(client, tenant, "clients.csv", MIXED_CSV))
    assert save_mapping(client, tenant, import_id).status_code == 303

    def redis_down(works):
        raise ConnectionError("Redis is down")

    with monkeypatch.context() as patch:
        patch.setitem(app.extensions, "duebook.enqueue", redis_down)
        assert start(client, tenant, import_id).status_code == 303
    assert get_import(tenant_db, import_id).status == "queued"
    progress = client.get(
        f"{base(tenant)}/imports/{import_id}/progress", headers={"HX-Request": "true"}
    )
    assert "No worker has this import" in progress.text

    assert start(client, tenant, import_id).status_code == 303
    run_jobs()
    assert get_import(tenant_db, import_id).status == "done"
    assert live_clients(tenant_db)


def test_a_queued_import_a_worker_has_is_not_started_twice(client, workspace, tenant_db, redis):
    tenant = workspace
    import_id = import_id_of(upload(client, tenant, "clients.csv", MIXED_CSV))
    save_mapping(client, tenant, import_id)
    start(client, tenant, import_id)  # queued, its job waiting in Redis
    progress = client.get(
        f"{base(tenant)}/imports/{import_id}/progress", headers={"HX-Request": "true"}
    )
    assert "No worker has this import" not in progress.text
    start(client, tenant, import_id)
    assert get_import(tenant_db, import_id).status == "queued"
    assert Queue("bulk", connection=redis).count == 1  # one job, not two


EMAIL_CSV = "\n".join(
    ["Name,Short name,Email"]
    + [
        f"{name} Pvt Ltd,{name.upper()},accounts@{name.lower()}.example.com"
        for name in ("Asha", "Bharat", "Chola", "Deccan", "Eastern", "Fortune", "Ganga", "Hind")
    ]
).encode()


def start_button(html: str) -> str:
    match = re.search(r"/start\".*?<button[^>]*>([^<]*)</button>", html, re.S)
    return match.group(1).strip() if match else ""


def test_a_client_file_with_only_an_email_column_imports_its_contacts(
    client, workspace, tenant_db, run_jobs
):
    """The e-mail column maps to the optional contact; with no contact-name column the contact
    is named after the client, so the rows go in with their e-mails instead of all failing."""
    tenant = workspace
    import_id = import_id_of(upload(client, tenant, "clients.csv", EMAIL_CSV))
    mapping = suggested(client.get(f"{base(tenant)}/imports/{import_id}").text)
    assert mapping["map_contact_email"] == "2" and mapping["map_contact_name"] == ""
    assert save_mapping(client, tenant, import_id).status_code == 303
    page = client.get(f"{base(tenant)}/imports/{import_id}")
    assert 'data-field="contact_name"' not in page.text
    assert start_button(page.text) == "Import 8 rows"

    assert start(client, tenant, import_id).status_code == 303
    run_jobs()
    record = get_import(tenant_db, import_id)
    assert (record.status, record.inserted_rows, record.failed_rows) == ("done", 8, 0)
    contacts = tenant_db.execute(
        select(Client.short_name, Contact.full_name, Contact.email)
        .join(Contact, Contact.client_id == Client.id)
        .order_by(Client.short_name)
    ).all()
    assert len(contacts) == 8
    assert contacts[0] == ("ASHA", "Asha Pvt Ltd", "accounts@asha.example.com")


def test_the_start_button_counts_only_the_rows_that_will_import(client, workspace):
    tenant = workspace
    import_id = import_id_of(upload(client, tenant, "clients.csv", MIXED_CSV))
    assert save_mapping(client, tenant, import_id).status_code == 303
    page = client.get(f"{base(tenant)}/imports/{import_id}")
    assert start_button(page.text) == "Import 2 rows"  # of 6: four have problems
    assert "4 rows have problems" in page.text

    bad = b"Name,Short name,Email\nAsha Pvt Ltd,ASHA,not-an-e-mail\nB,,\n"
    import_id = import_id_of(upload(client, tenant, "bad.csv", bad))
    assert save_mapping(client, tenant, import_id).status_code == 303
    page = client.get(f"{base(tenant)}/imports/{import_id}")
    assert start_button(page.text) == ""
    assert "None of the rows can be imported" in page.text
