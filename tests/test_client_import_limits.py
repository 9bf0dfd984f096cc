"""Client import under abuse (issue 14): decompression bombs, files past the row, column and
cell limits, parsing kept out of the request, and double-submitted upload and start forms."""

from __future__ import annotations

import datetime
import io
import struct
import time
import tracemalloc
import zipfile

import openpyxl
import pytest
from rq import Queue
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.clients.imports import files as import_files
from app.clients.imports import services as imports
from app.clients.imports.limits import ImportLimits
from app.clients.models import Client, ClientImport
from app.core.handover import enqueue
from tests import test_client_import as import_tests
from tests.helpers import csrf_token_from
from tests.test_client_import import (
    MIXED_CSV,
    base,
    form_key_from,
    get_import,
    import_id_of,
    read_uploads,
    save_mapping,
    upload,
)

# The fixtures of the import tests: files in a folder of the test's own, a workspace with its
# owner logged in, a session bound to it.
_own_storage, workspace, tenant_db = (
    import_tests._own_storage,
    import_tests.workspace,
    import_tests.tenant_db,
)

MB = 1024 * 1024
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Clients" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    "</Relationships>"
)
HEADER_ROW = (
    '<row r="1"><c r="A1" t="inlineStr"><is><t>Name</t></is></c>'
    '<c r="B1" t="inlineStr"><is><t>Short name</t></is></c></row>'
)
# One client row, padded with the blanks XML ignores (deflate packs a run best).
CLIENT_ROW = (
    b'<row><c t="inlineStr"><is><t>Bomb Traders</t></is></c>'
    b'<c t="inlineStr"><is><t>BOMB</t></is></c>' + b" " * 16_000 + b"</row>"
)


def workbook_bomb(unpacked_bytes: int) -> bytes:
    """A valid-looking workbook whose sheet is one client row repeated: deflate (level 9)
    packs it close to 900 times smaller."""
    content = io.BytesIO()
    with zipfile.ZipFile(content, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", ROOT_RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=False) as sheet:
            sheet.write(
                b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
                b'2006/main"><sheetData>' + HEADER_ROW.encode()
            )
            block = CLIENT_ROW * (MB // len(CLIENT_ROW))
            for _ in range(unpacked_bytes // len(block)):
                sheet.write(block)
            sheet.write(b"</sheetData></worksheet>")
    return content.getvalue()


def directory_entry(archive: bytes, name: bytes) -> int:
    """Where a part's central directory record starts."""
    at = archive.find(b"PK\x01\x02")
    while at >= 0:
        name_length = struct.unpack_from("<H", archive, at + 28)[0]
        if archive[at + 46 : at + 46 + name_length] == name:
            return at
        at = archive.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"no directory entry for {name!r}")


def stored_files(storage_root) -> list:
    return [p for p in storage_root.rglob("*") if p.is_file()]


def test_a_workbook_bomb_is_refused_by_the_upload_without_unpacking_it(
    client, workspace, tenant_db, storage_root, monkeypatch
):
    bomb = workbook_bomb(48 * MB)
    unpacked = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(bomb)).infolist())
    assert unpacked / len(bomb) >= 600  # the 600x expansion the 20 MB limit allowed
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(
        zipfile.ZipFile,
        "open",
        lambda self, name, *a, **k: opened.append(name) or real_open(self, name, *a, **k),
    )

    page = client.get(f"{base(workspace)}/imports/new")
    tracemalloc.start()
    try:
        response = client.post(
            f"{base(workspace)}/imports/new",
            data={
                "file": (io.BytesIO(bomb), "clients.xlsx"),
                "csrf_token": csrf_token_from(page.text),
            },
            content_type="multipart/form-data",
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 422
    assert "unpacks to" in response.text and "times its size" in response.text
    assert 'aria-invalid="true"' in response.text
    assert opened == []  # refused from the zip's directory: no part was decompressed
    assert peak < 4 * MB, peak
    assert not stored_files(storage_root)
    assert tenant_db.scalar(select(func.count(ClientImport.id))) == 0


def test_a_workbook_over_the_unpacked_size_limit_is_refused(client, workspace, app, monkeypatch):
    monkeypatch.setitem(app.config, "IMPORT_XLSX_MAX_TOTAL_BYTES", 2 * MB)
    monkeypatch.setitem(app.config, "IMPORT_XLSX_MAX_RATIO", 10_000)  # the size alone counts
    response = upload(client, workspace, "clients.xlsx", workbook_bomb(3 * MB))
    assert response.status_code == 422
    assert "the limit is 2 MB" in response.text


def test_a_workbook_whose_directory_understates_a_part_is_refused_while_reading(
    client, workspace, tenant_db, storage_root
):
    workbook = openpyxl.Workbook()
    workbook.active.append(["Name", "Short name"])
    for n in range(2_000):
        workbook.active.append([f"Client {n}", f"C{n}"])
    content = io.BytesIO()
    workbook.save(content)
    lying = bytearray(content.getvalue())
    # The sheet's entry in the central directory: its uncompressed size says 1 KB.
    struct.pack_into("<L", lying, directory_entry(lying, b"xl/worksheets/sheet1.xml") + 24, 1024)

    import_id = import_id_of(upload(client, workspace, "clients.xlsx", bytes(lying)))
    record = get_import(tenant_db, import_id)
    assert record.status == "unreadable"
    page = client.get(f"{base(workspace)}/imports/{import_id}")
    assert "not an Excel workbook" in page.text or "damaged" in page.text
    assert not stored_files(storage_root)  # the refused file is not kept


def test_a_csv_with_too_many_rows_is_refused_naming_the_limit(
    client, workspace, tenant_db, app, monkeypatch
):
    monkeypatch.setitem(app.config, "IMPORT_MAX_ROWS", 100)
    rows = b"".join(b"Client %d,C%d\n" % (n, n) for n in range(100))
    import_id = import_id_of(upload(client, workspace, "ok.csv", b"Name,Short name\n" + rows))
    assert get_import(tenant_db, import_id).status == "uploaded"  # the limit itself is fine
    assert get_import(tenant_db, import_id).total_rows == 100

    import_id = import_id_of(
        upload(client, workspace, "big.csv", b"Name,Short name\n" + rows + b"One More,MORE\n")
    )
    assert get_import(tenant_db, import_id).status == "unreadable"
    page = client.get(f"{base(workspace)}/imports/{import_id}")
    assert "more than 100 rows" in page.text and "Split it" in page.text
    assert 'aria-invalid="true"' in page.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"Name,Short name," + b",".join(b"x%d" % n for n in range(120)) + b"\nA Co,AC\n",
            "Line 1 has more than 100 columns",
        ),
        (b"Name,Short name\nA Co," + b"A" * 5_000 + b"\n", "Line 2, column B: a cell holds"),
        (b"Name,Short name\n" + b"," * 1_000_000 + b"\n", "Line 2 is longer than"),
    ],
    ids=["columns", "cell", "row of commas"],
)
def test_a_csv_past_the_column_or_cell_limits_is_refused(
    client, workspace, tenant_db, content, message
):
    import_id = import_id_of(upload(client, workspace, "wide.csv", content))
    assert get_import(tenant_db, import_id).status == "unreadable"
    assert message in client.get(f"{base(workspace)}/imports/{import_id}").text


def test_the_upload_request_only_stores_the_file_and_a_worker_reads_it(
    client, workspace, tenant_db, app
):
    page = client.get(f"{base(workspace)}/imports/new")
    response = client.post(
        f"{base(workspace)}/imports/new",
        data={
            "file": (io.BytesIO(b"\n\n"), "clients.csv"),  # not usable: found by the worker
            "csrf_token": csrf_token_from(page.text),
        },
        content_type="multipart/form-data",
    )
    import_id = import_id_of(response)
    assert get_import(tenant_db, import_id).status == "reading"
    detail = client.get(f"{base(workspace)}/imports/{import_id}")
    assert "Reading the file" in detail.text and 'hx-trigger="every 1s"' in detail.text
    polled = client.get(
        f"{base(workspace)}/imports/{import_id}/progress?reading=1", headers={"HX-Request": "true"}
    )
    assert "HX-Refresh" not in polled.headers and 'hx-trigger="every 1s"' in polled.text

    read_uploads(app)
    assert get_import(tenant_db, import_id).status == "unreadable"
    polled = client.get(
        f"{base(workspace)}/imports/{import_id}/progress?reading=1", headers={"HX-Request": "true"}
    )
    assert polled.headers["HX-Refresh"] == "true"  # the page shows the outcome
    assert "first row is empty" in client.get(f"{base(workspace)}/imports/{import_id}").text


def test_the_preview_checks_the_rows_the_worker_kept_without_opening_the_file(
    client, workspace, storage_root
):
    import_id = import_id_of(upload(client, workspace, "clients.csv", MIXED_CSV))
    for path in stored_files(storage_root):
        path.unlink()
    page = client.get(f"{base(workspace)}/imports/{import_id}")
    assert page.status_code == 200
    assert 'data-line="3"' in page.text and "wrong check digit" in page.text
    assert "upload it again" not in page.text


def test_the_workbook_reader_reads_values_as_openpyxl_does(app):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Name", "Since", "Active", "Amount", "Count", "Note"])
    sheet.append(["Asha", datetime.date(2020, 1, 15), True, 2.5, 7, None])
    sheet.append([None, None, None, None, None, None])
    sheet.append(["Bharat", datetime.datetime(2021, 3, 1, 10, 30), False, 1e20, -3, "=1+1"])
    sheet.cell(row=5, column=3, value="gap before")
    content = io.BytesIO()
    workbook.save(content)

    expected = []
    # As the import read workbooks until issue 14: a formula's value is the one Excel saved.
    reread = openpyxl.load_workbook(io.BytesIO(content.getvalue()), read_only=True, data_only=True)
    for line, values in enumerate(reread.active.iter_rows(values_only=True), start=1):
        cells = [import_files._cell_text(v) for v in values]
        while cells and not cells[-1]:
            cells.pop()
        if line > 1 and cells:
            expected.append((line, cells))
    with import_files.open_table(io.BytesIO(content.getvalue()), "xlsx", ImportLimits()) as table:
        assert table.headers == ["Name", "Since", "Active", "Amount", "Count", "Note"]
        assert list(table.rows) == expected
    assert expected[0] == (2, ["Asha", "2020-01-15", "yes", "2.5", "7"])


def test_a_chunk_is_cut_by_characters_as_well_as_rows():
    rows = [(n, ["x" * 10]) for n in range(10)]
    assert [len(b) for b in imports._batches(rows, 4, max_chars=25)] == [3, 3, 3, 1]
    assert [len(b) for b in imports._batches(rows, 4, max_chars=1_000)] == [4, 4, 2]


def test_a_double_submitted_upload_makes_one_import(client, workspace, tenant_db, storage_root):
    page = client.get(f"{base(workspace)}/imports/new")
    form = {
        "csrf_token": csrf_token_from(page.text),
        "upload_key": form_key_from(page.text, "upload_key"),
    }
    responses = [
        client.post(
            f"{base(workspace)}/imports/new",
            data={**form, "file": (io.BytesIO(MIXED_CSV), "clients.csv")},
            content_type="multipart/form-data",
        )
        for _ in range(2)
    ]
    assert [r.status_code for r in responses] == [303, 303]
    assert responses[0].headers["Location"] == responses[1].headers["Location"]
    assert tenant_db.scalar(select(func.count(ClientImport.id))) == 1
    assert len(stored_files(storage_root)) == 1


def test_a_double_submitted_start_starts_one_import(
    client, workspace, tenant_db, run_jobs, redis, monkeypatch, app
):
    """The second post of the same start form arrives before the first one's hand-over to
    Redis: the import looks queued with no job, as if Redis had lost it. Only one post may
    start it."""
    import_id = import_id_of(upload(client, workspace, "clients.csv", MIXED_CSV))
    assert save_mapping(client, workspace, import_id).status_code == 303
    handed_over = []
    page = client.get(f"{base(workspace)}/imports/{import_id}")
    form = {
        "csrf_token": csrf_token_from(page.text),
        "form_key": form_key_from(page.text, "form_key"),
    }
    with monkeypatch.context() as patch:
        patch.setitem(app.extensions, "duebook.enqueue", handed_over.extend)
        for _ in range(2):
            response = client.post(f"{base(workspace)}/imports/{import_id}/start", data=form)
            assert response.status_code == 303
    assert [work.name for work in handed_over] == ["run_client_import"]

    with app.app_context():
        enqueue(handed_over)
    assert Queue("bulk", connection=redis).count == 1
    run_jobs()
    record = get_import(tenant_db, import_id)
    assert record.status == "done" and record.inserted_rows == 2
    audits = select(func.count(AuditEntry.id)).where(
        AuditEntry.entity == "client_imports", AuditEntry.action == "update"
    )
    assert tenant_db.scalar(audits) == 1
    assert tenant_db.scalar(select(func.count(Client.id))) == 2


def test_a_workbook_of_too_many_parts_is_refused(client, workspace, app, monkeypatch):
    monkeypatch.setitem(app.config, "IMPORT_XLSX_MAX_ENTRIES", 3)
    response = upload(client, workspace, "clients.xlsx", workbook_bomb(0))
    assert response.status_code == 422 and "holds 5 parts" in response.text


def test_reading_a_file_is_stopped_after_the_job_timeout(client, workspace, tenant_db, monkeypatch):
    monkeypatch.setattr(imports, "READ_JOB_TIMEOUT", 1)

    def never_ending(*args, **kwargs):
        time.sleep(30)

    monkeypatch.setattr(imports, "inspect_file", never_ending)
    import_id = import_id_of(upload(client, workspace, "clients.csv", MIXED_CSV))
    record = get_import(tenant_db, import_id)
    assert record.status == "unreadable" and "took too long" in record.error


def test_a_double_submitted_upload_racing_the_first_one_makes_one_import(
    client, workspace, tenant_db, storage_root, monkeypatch
):
    """The second post checks for the form's key before the first one committed: the unique
    key stops its insert, its file is removed, and it answers with the first import."""
    page = client.get(f"{base(workspace)}/imports/new")
    form = {
        "csrf_token": csrf_token_from(page.text),
        "upload_key": form_key_from(page.text, "upload_key"),
    }

    def post():
        return client.post(
            f"{base(workspace)}/imports/new",
            data={**form, "file": (io.BytesIO(MIXED_CSV), "clients.csv")},
            content_type="multipart/form-data",
        )

    first = post()
    real_lookup = imports._import_with_upload_key
    looked_up = []

    def not_committed_yet_the_first_time(session, key):
        looked_up.append(key)
        return real_lookup(session, key) if len(looked_up) > 1 else None

    monkeypatch.setattr(imports, "_import_with_upload_key", not_committed_yet_the_first_time)
    second = post()
    assert len(looked_up) == 2  # not found before the insert, found after it failed
    assert second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"]
    assert tenant_db.scalar(select(func.count(ClientImport.id))) == 1
    assert len(stored_files(storage_root)) == 1
