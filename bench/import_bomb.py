"""Target: a 600x .xlsx decompression bomb is refused by the upload request in under a second,
costing no more time than twice (and no more memory than 1.5x) the upload of a good file of the
same size, and leaving the web process's memory flat (issue 14: 8.8 s and ~450 MB, never
released)."""

from __future__ import annotations

import io
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

from flask.testing import FlaskClient

from bench.common import (
    BenchEnvironment,
    Samples,
    Stopwatch,
    Verdict,
    print_figure,
    print_header,
    print_verdict,
)
from bench.pages import CSRF_FIELD, create_owner_and_tenant, log_in

BOMB_UNPACKED = 400 * 1024 * 1024  # the bomb unpacked to 403 MB
ROUNDS = 20
WARMUP_ROUNDS = 3
MAX_TIME_RATIO = 2.0
MAX_MEMORY_RATIO = 1.5
MAX_REFUSAL_SECONDS = 1.0
FLAT_RSS_BYTES = 8 * 1024 * 1024
MEASURES = f"""
Product: POST /t/<slug>/clients/imports/new (the upload form, logged in as the tenant's owner,
Flask's test client) with a {BOMB_UNPACKED // 2**20} MB-unpacked .xlsx bomb (one client row
repeated, padded with blanks, deflate level 9), answered 422 with the refusal.
Baseline: the same request with a good CSV of clients as large as the bomb's file (stored, its
read job queued, 303): the request's cost of carrying that many bytes.
{WARMUP_ROUNDS} warm-ups, then {ROUNDS} rounds alternating the two; medians. Memory: the web
process's resident size (VmRSS) before and after all rounds, and in a separate pass with
tracemalloc on, the peak Python allocation of one request of each kind (their ratio).
Targets: refusal median < {MAX_REFUSAL_SECONDS:g} s, time ratio <= {MAX_TIME_RATIO:g}x, memory
peak ratio <= {MAX_MEMORY_RATIO:g}x, resident size grown by < {FLAT_RSS_BYTES // 2**20} MB.
"""
SHEET_START = (
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    b'<row r="1"><c r="A1" t="inlineStr"><is><t>Name</t></is></c>'
    b'<c r="B1" t="inlineStr"><is><t>Short name</t></is></c></row>'
)
CLIENT_ROW = (
    b'<row><c t="inlineStr"><is><t>Bomb Traders</t></is></c>'
    b'<c t="inlineStr"><is><t>BOMB</t></is></c>' + b" " * 16_000 + b"</row>"
)
PARTS = {
    "[Content_Types].xml": (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/></Types>'
    ),
    "_rels/.rels": (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="xl/workbook.xml" Type="http://schemas.'
        'openxmlformats.org/officeDocument/2006/relationships/officeDocument"/></Relationships>'
    ),
    "xl/workbook.xml": (
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="Clients" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="http://schemas.'
        'openxmlformats.org/officeDocument/2006/relationships/worksheet"/></Relationships>'
    ),
}


def workbook_bomb() -> bytes:
    """Written block by block: the bench process never holds the unpacked sheet."""
    content = io.BytesIO()
    with zipfile.ZipFile(content, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, text in PARTS.items():
            archive.writestr(name, text)
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(SHEET_START)
            block = CLIENT_ROW * (1024 * 1024 // len(CLIENT_ROW))
            for _ in range(BOMB_UNPACKED // len(block)):
                sheet.write(block)
            sheet.write(b"</sheetData></worksheet>")
    return content.getvalue()


def good_csv(size: int) -> bytes:
    """Clients until the file is `size` bytes long."""
    lines, length, number = ["Name,Short name,Payment terms,Payment days"], 0, 0
    while length < size:
        number += 1
        lines.append(f"Client {number} Traders,C{number},Net,30")
        length += len(lines[-1]) + 1
    return "\n".join(lines).encode()


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def post_upload(client: FlaskClient, slug: str, filename: str, content: bytes, status: int):
    url = f"/t/{slug}/clients/imports/new"
    token = CSRF_FIELD.search(client.get(url).text).group(1)
    with Stopwatch() as watch:
        response = client.post(
            url,
            data={"file": (io.BytesIO(content), filename), "csrf_token": token},
            content_type="multipart/form-data",
        )
    if response.status_code != status:
        raise RuntimeError(f"upload of {filename} answered {response.status_code}, not {status}")
    return watch.seconds


def traced_peak(upload) -> int:
    tracemalloc.start()
    try:
        upload()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(environment: BenchEnvironment) -> list[Verdict]:
    bomb = workbook_bomb()
    good = good_csv(len(bomb))
    print_header(
        f"import_bomb: a {BOMB_UNPACKED / len(bomb):,.0f}x workbook bomb "
        f"({len(bomb) / 1024:,.0f} KB) against a good file of that size",
        MEASURES,
    )
    with environment.app() as app, tempfile.TemporaryDirectory() as storage_root:
        app.config["STORAGE_ROOT"] = storage_root
        _, slug, _ = create_owner_and_tenant(app)
        client = app.test_client()
        email = f"owner@{slug}.example.com"
        log_in(client, email)

        def upload_bomb() -> float:
            return post_upload(client, slug, "clients.xlsx", bomb, 422)

        def upload_good() -> float:
            return post_upload(client, slug, "clients.csv", good, 303)

        for _ in range(WARMUP_ROUNDS):
            upload_good(), upload_bomb()
        resident_before = resident_bytes()
        product, baseline = [], []
        for number in range(ROUNDS):
            first, second = (upload_bomb, upload_good) if number % 2 else (upload_good, upload_bomb)
            times = {first: first(), second: second()}
            product.append(times[upload_bomb])
            baseline.append(times[upload_good])
        resident_growth = resident_bytes() - resident_before
        bomb_peak, good_peak = traced_peak(upload_bomb), traced_peak(upload_good)
        stored = sum(f.stat().st_size for f in Path(storage_root).rglob("*") if f.is_file())

    refusal, upload = Samples(product), Samples(baseline)
    print_figure("bomb refused (422)", refusal.describe_ms())
    print_figure("good upload (303)", upload.describe_ms())
    print_figure(
        "peak Python memory", f"bomb {bomb_peak / 1024:,.0f} KB, good {good_peak / 1024:,.0f} KB"
    )
    print_figure(
        "web process RSS change", f"{resident_growth / 2**20:+.1f} MB over {2 * ROUNDS} uploads"
    )
    print_figure("stored files", f"{stored / 1024:,.0f} KB (good uploads only)")
    verdicts = [
        Verdict(
            "import_bomb: bomb refusal / good upload (medians)",
            refusal.median,
            upload.median,
            MAX_TIME_RATIO,
        ),
        # The absolute targets as ratios to their bound: seconds, then bytes.
        Verdict(
            f"import_bomb: bomb refusal (median) / {MAX_REFUSAL_SECONDS:g} s",
            refusal.median,
            MAX_REFUSAL_SECONDS,
            1.0,
        ),
        Verdict(
            "import_bomb: peak Python memory, bomb / good upload",
            bomb_peak,
            good_peak,
            MAX_MEMORY_RATIO,
        ),
        Verdict(
            f"import_bomb: RSS growth / {FLAT_RSS_BYTES // 2**20} MB",
            max(resident_growth, 0),
            FLAT_RSS_BYTES,
            1.0,
        ),
    ]
    for verdict in verdicts:
        print_verdict(verdict)
    return verdicts
