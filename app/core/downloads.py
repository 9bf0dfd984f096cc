"""A list page's export as a download: an XLSX built in a spooled file, or a CSV streamed row by
row (any size) from a session of its own.

The CSV's rows are produced while the response is sent, after the request's transaction has
ended, in a fresh app context (so a fresh session): bound again to the workspace, the producer
reads with a server-side cursor in a transaction of its own, which ends with the stream."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from typing import IO

from flask import Response, send_file, stream_with_context
from sqlalchemy.orm import Session

from app.extensions import db
from tenants.binding import tenant_context

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# An XLSX file stays in memory up to this size, then goes to a temporary file on disk.
SPOOLED_IN_MEMORY = 8 * 1024 * 1024


def xlsx_download(write: Callable[[IO[bytes]], None], filename: str) -> Response:
    """`write` fills the file; it is sent once written (and closed by send_file after)."""
    out = tempfile.SpooledTemporaryFile(max_size=SPOOLED_IN_MEMORY)  # noqa: SIM115
    write(out)
    out.seek(0)
    return send_file(out, mimetype=XLSX_MIMETYPE, as_attachment=True, download_name=filename)


def csv_download(
    tenant_id: int, rows: Callable[[Session], Iterator[str]], filename: str
) -> Response:
    """`rows(session)` yields the CSV's lines, read in a session bound to the workspace."""

    def produce():
        with tenant_context(db.session, tenant_id) as session:
            yield from rows(session)

    return Response(
        stream_with_context(produce()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
