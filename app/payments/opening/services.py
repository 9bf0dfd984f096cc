"""Opening balances: the open invoices a business brings from its old books (Tally, Excel), so
that collections can start on day one without raising each invoice again.

The flow is the client import's, and reuses its parts (app.clients.imports: the file readers
within the ImportLimits, the stored upload, the column-mapping helpers): upload (the request
only stores the file) -> a "bulk" job reads it (headers, row count, first rows) -> the user maps
the columns and sees the first rows checked (app.payments.opening.rows) -> a "bulk" job checks
and writes every row -> the rows left out are listed with their line, downloadable as CSV.

What an imported row becomes:
- an invoice in the series OPENING_SERIES with the number the old books gave it: Duebook's own
  series and their counters never see it, so Duebook's numbering goes on unchanged. Issued on
  its own date, due on its own due date, one line (amount before tax + tax as "other" tax:
  the old books' tax split is not in the file). No PDF is made (it is not Duebook's document:
  `issued_at` stays empty, which the PDF sweeper reads as "never issued here").
- what was already paid: a payment (method "other", `opening_import_id` set) allocated to it,
  dated the invoice's date: the day it was paid is unknown, and that date never claims
  interest on money already paid. Being an ordinary allocation, every reader of balances
  (aging, statements, interest, collections, the invoice page) counts it with no change.
- its status from its balance (`balance.settle`: issued / overdue, partly paid or paid).

Exactly once: invoice numbers are unique (uq_invoices_number). A row whose number is an
OPENING invoice already is "already imported" and changes nothing; a number a Duebook invoice
has is an error. Each row is written in a savepoint, and rows are committed in chunks.
"""

from __future__ import annotations

import itertools
import logging
from decimal import Decimal
from pathlib import Path
from typing import IO

from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry
from app.clients.imports.files import (
    ImportFileError,
    check_upload,
    current_limits,
    delete_upload,
    file_format_for,
    open_table,
    open_upload,
    save_upload,
)
from app.clients.imports.services import read_stored_upload, set_import_fields
from app.clients.models import Client
from app.clients.services import ClientError, client_context, create_client
from app.core.handover import hand_over, redis_connection
from app.core.number_formats import fiscal_year_of
from app.core.terminology import worded
from app.invoicing.balance import settle
from app.invoicing.models import OPENING_SERIES, Invoice, InvoiceLine
from app.invoicing.words import CURRENCIES as WORDED_CURRENCIES
from app.invoicing.words import amount_in_words
from app.payments.models import Payment, PaymentAllocation
from app.payments.opening.columns import mapping_problem, suggest_mapping
from app.payments.opening.models import OpeningBalanceImport, OpeningBalanceImportError
from app.payments.opening.rows import OpeningRow, RowChecker
from tenants.binding import bound_tenant_id
from tenants.models import Tenant

log = logging.getLogger(__name__)

PREVIEW_ROWS = 20
CHUNK_SIZE = 500  # rows per transaction; each row is a few ORM inserts
READ_JOB_TIMEOUT = 120
JOB_TIMEOUT = 60 * 60
EDITABLE_STATUSES = ("uploaded", "mapped")
STARTABLE_STATUSES = ("mapped", "failed")
ACTIVE_STATUSES = ("queued", "running")
LINE_DESCRIPTION = "Opening balance brought from the previous books"


def _set_import(session: Session, import_id: int, **values) -> None:
    set_import_fields(session, OpeningBalanceImport, import_id, **values)


def get_import(session: Session, import_id: int) -> OpeningBalanceImport | None:
    return session.get(OpeningBalanceImport, import_id)


def recent_imports(session: Session, limit: int = 20) -> list[OpeningBalanceImport]:
    return list(
        session.scalars(
            select(OpeningBalanceImport).order_by(OpeningBalanceImport.id.desc()).limit(limit)
        )
    )


def create_import(
    session: Session,
    tenant_id: int,
    filename: str,
    stream: IO[bytes],
    user_id: int | None,
    upload_key: str | None = None,
) -> OpeningBalanceImport:
    """Keep the upload and queue a worker to read it; the form's one-time key makes a double
    submit return the import the first one made."""
    file_format = file_format_for(filename)
    if file_format is None:
        raise ImportFileError("Upload a .csv or .xlsx file (an old .xls: save it as .xlsx first).")
    if upload_key:
        earlier = _with_upload_key(session, upload_key)
        if earlier is not None:
            return earlier
    key = save_upload(tenant_id, stream, file_format)
    try:
        with open_upload(tenant_id, key) as stored:
            check_upload(stored, file_format, current_limits())
        record = OpeningBalanceImport(
            status="reading",
            filename=Path(filename).name[:255],
            storage_key=key,
            file_format=file_format,
            created_by_user_id=user_id,
            upload_key=upload_key or None,
        )
        with session.begin_nested():
            session.add(record)
            session.flush()
    except ImportFileError:
        delete_upload(key)
        raise
    except IntegrityError:
        delete_upload(key)
        return _with_upload_key(session, upload_key)
    hand_over(
        session,
        "read_opening_balance_file",
        record.id,
        tenant_id=tenant_id,
        job_id=read_job_id_for(record.id, tenant_id),
        timeout=READ_JOB_TIMEOUT,
    )
    return record


def _with_upload_key(session: Session, upload_key: str) -> OpeningBalanceImport | None:
    return session.scalar(
        select(OpeningBalanceImport).where(OpeningBalanceImport.upload_key == upload_key)
    )


def read_import_file(session: Session, import_id: int) -> str | None:
    """The read job: the file's headers, suggested mapping, row count and first rows, read
    within the import limits; or "unreadable" with the reason."""
    return read_stored_upload(
        session,
        OpeningBalanceImport,
        import_id,
        suggest_mapping,
        "Reading this file took too long. Save it as CSV and upload again.",
    )


def save_mapping(session: Session, record: OpeningBalanceImport, mapping: dict) -> None:
    if record.status not in EDITABLE_STATUSES:
        raise ImportFileError("This import has started; its columns can no longer change.")
    _set_import(session, record.id, mapping=mapping, status="mapped")
    session.refresh(record)


def preview(session: Session, tenant: Tenant, mapping: dict, record) -> list[OpeningRow]:
    """The first rows as the worker read them, checked as the import will (nothing written)."""
    checker = RowChecker(session, tenant, mapping)
    return checker.check([(line, cells) for line, cells in record.preview_rows or []])


def start_import(session: Session, record: OpeningBalanceImport) -> None:
    """Queue the import; a worker gets it once this transaction commits. An import no worker
    has any more may be started again: rows already written are found "already imported"."""
    problem = mapping_problem(record.mapping or {})
    if problem:
        raise ImportFileError(problem)
    startable = STARTABLE_STATUSES
    if is_stuck(record, bound_tenant_id(session)):
        startable = (*STARTABLE_STATUSES, *ACTIVE_STATUSES)
    queued = session.execute(
        update(OpeningBalanceImport)
        .where(OpeningBalanceImport.id == record.id, OpeningBalanceImport.status.in_(startable))
        .values(status="queued", error=None)
        .returning(OpeningBalanceImport.id)
        .execution_options(synchronize_session=False)
    ).first()
    session.refresh(record)
    if queued is None:
        raise ImportFileError(
            "Save the columns first."
            if record.status in ("reading", "uploaded")
            else "This import has started already."
        )
    tenant_id = bound_tenant_id(session)
    hand_over(
        session,
        "run_opening_balance_import",
        record.id,
        tenant_id=tenant_id,
        job_id=job_id_for(record.id, tenant_id),
        timeout=JOB_TIMEOUT,
    )


def job_id_for(import_id: int, tenant_id: int) -> str:
    return f"opening-import-{tenant_id}-{import_id}"


def read_job_id_for(import_id: int, tenant_id: int) -> str:
    return f"opening-import-read-{tenant_id}-{import_id}"


def is_stuck(record: OpeningBalanceImport, tenant_id: int) -> bool:
    """Being read, queued or running by its own account, but no worker has its job."""
    if record.status == "reading":
        job_id = read_job_id_for(record.id, tenant_id)
    elif record.status in ACTIVE_STATUSES:
        job_id = job_id_for(record.id, tenant_id)
    else:
        return False
    try:
        job = Job.fetch(job_id, connection=redis_connection())
    except NoSuchJobError:
        return True
    except RedisError:
        return False
    return job.get_status() not in ("queued", "scheduled", "deferred", "started")


# Running an import (the job) -------------------------------------------------------------


class _Writer:
    """Writes checked rows: the client (found, or created by the client rules once per name),
    the invoice, what was already paid."""

    def __init__(self, session: Session, tenant: Tenant, record: OpeningBalanceImport):
        self.session, self.tenant, self.import_id = session, tenant, record.id
        self.user_id = record.created_by_user_id
        self.context = client_context(session, tenant)
        self.created: dict[str, int] = {}  # lower(name) -> client made by this import

    def write(self, row: OpeningRow) -> tuple[str, dict[str, str], bool]:
        """("inserted" | "already" | "failed", errors, whether a client was made) for one
        valid row, in a savepoint."""
        values = row.values
        try:
            with self.session.begin_nested():
                client_id, made = self._client(row)
                invoice = self._invoice(client_id, values)
                if values["paid"] > 0:
                    self._paid(invoice, values)
                settle(self.session, invoice, self.user_id)
        except ClientError as error:
            return "failed", {"client": _client_problem(error.errors)}, False
        except IntegrityError:
            # Another import took the number meanwhile: it is in, once.
            return "already", {"number": "Already imported: this invoice is in Duebook."}, False
        if made:
            self.created[values["client"].lower()] = client_id
        return "inserted", {}, made

    def _client(self, row: OpeningRow) -> tuple[int, bool]:
        if row.client_id is not None:
            return row.client_id, False
        name = row.values["client"]
        if name.lower() in self.created:
            return self.created[name.lower()], False
        country = self.tenant.country
        raw = {
            "full_name": name,
            "short_name": name,
            "location": "local",
            "country": country,
            "payment_terms": "net",
            "payment_days": "30",
            "currency": row.values["currency"],
            "gstin": row.values.get("client_gstin") or "",
        }
        client = create_client(self.session, self.context, raw)
        return client.id, True

    def _invoice(self, client_id: int, values: dict) -> Invoice:
        client = self.session.get(Client, client_id)
        invoice = Invoice(
            client_id=client_id,
            number=values["number"],
            series=OPENING_SERIES,
            fiscal_year=fiscal_year_of(values["issue_date"], self.tenant.country),
            status="issued",
            issue_date=values["issue_date"],
            due_date=values["due_date"],
            currency=values["currency"],
            recipient_gstin=client.gstin,
            tax_regime="other",
            subtotal=values["subtotal"],
            cgst=Decimal("0.00"),
            sgst=Decimal("0.00"),
            igst=Decimal("0.00"),
            other_tax=values["tax"],
            total=values["total"],
            amount_in_words=amount_in_words(values["total"], values["currency"])
            if values["currency"] in WORDED_CURRENCIES
            else "",
            opening_import_id=self.import_id,
        )
        rate = (
            min(values["tax"] * 100 / values["subtotal"], Decimal("999.99"))
            if values["subtotal"] > 0
            else Decimal("0")
        )
        line = InvoiceLine(
            position=1,
            description=LINE_DESCRIPTION
            + (f" (ref. {values['reference']})" if values["reference"] else ""),
            quantity=Decimal("1"),
            unit_price=values["subtotal"],
            taxable_value=values["subtotal"],
            tax_rate=rate.quantize(Decimal("0.01")),
            cgst=Decimal("0.00"),
            sgst=Decimal("0.00"),
            igst=Decimal("0.00"),
            other_tax=values["tax"],
            total=values["total"],
        )
        invoice.lines.append(line)
        self.session.add(invoice)
        self.session.flush()
        return invoice

    def _paid(self, invoice: Invoice, values: dict) -> None:
        payment = Payment(
            client_id=invoice.client_id,
            received_on=values["issue_date"],
            amount=values["paid"],
            currency=values["currency"],
            method="other",
            reference=values["reference"],
            note=f"Paid before Duebook: opening balance of invoice {invoice.number}.",
            opening_import_id=self.import_id,
        )
        payment.allocations.append(
            PaymentAllocation(invoice_id=invoice.id, amount=values["paid"], tds_amount=0)
        )
        self.session.add(payment)
        self.session.flush()


def _client_problem(errors: dict[str, str]) -> str:
    return worded("The {client} cannot be created: ") + " ".join(
        f"{key.replace('_', ' ')}: {reason}" for key, reason in errors.items()
    )


def _batches(rows, size: int):
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def run_import(session: Session, import_id: int, chunk_size: int = CHUNK_SIZE) -> str | None:
    """The job: claim a queued import, check and write its rows chunk by chunk (each chunk
    committed with the import's counters and its row errors), then record the outcome."""
    tenant_id = bound_tenant_id(session)
    claimed = session.execute(
        update(OpeningBalanceImport)
        .where(OpeningBalanceImport.id == import_id, OpeningBalanceImport.status == "queued")
        .values(
            status="running",
            error=None,
            finished_at=None,
            processed_rows=0,
            inserted_rows=0,
            already_imported_rows=0,
            failed_rows=0,
            clients_created=0,
        )
        .returning(OpeningBalanceImport.id)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None:
        session.commit()
        return None
    # A retry starts the report again: rows an earlier attempt wrote are "already imported".
    session.execute(
        OpeningBalanceImportError.__table__.delete().where(
            OpeningBalanceImportError.import_id == import_id
        )
    )
    session.commit()
    counts = {"inserted": 0, "already": 0, "failed": 0, "clients": 0}
    try:
        record = session.get(OpeningBalanceImport, import_id)
        tenant = session.get(Tenant, tenant_id)
        checker = RowChecker(session, tenant, dict(record.mapping))
        writer = _Writer(session, tenant, record)
        processed = 0
        with (
            open_upload(tenant_id, record.storage_key) as stream,
            open_table(stream, record.file_format, current_limits()) as table,
        ):
            for batch in _batches(table.rows, chunk_size):
                for row in checker.check(batch):
                    outcome, errors, made_client = _write_row(writer, row)
                    counts[outcome] += 1
                    counts["clients"] += made_client
                    for key, reason in errors.items():
                        session.add(
                            OpeningBalanceImportError(
                                import_id=import_id, line=row.line, field=key, reason=reason
                            )
                        )
                processed += len(batch)
                _set_import(
                    session,
                    import_id,
                    processed_rows=processed,
                    inserted_rows=counts["inserted"],
                    already_imported_rows=counts["already"],
                    failed_rows=counts["failed"],
                    clients_created=counts["clients"],
                )
                session.commit()
        _set_import(session, import_id, status="done", finished_at=func.now(), total_rows=processed)
        session.add(
            AuditEntry(
                actor_user_id=record.created_by_user_id,
                action="update",
                entity="opening_balance_imports",
                entity_id=str(import_id),
                subject=f"opening_balance_imports:{import_id}",
                changes={
                    "inserted": [None, counts["inserted"]],
                    "already_imported": [None, counts["already"]],
                    "failed": [None, counts["failed"]],
                    "clients_created": [None, counts["clients"]],
                },
            )
        )
        session.commit()
        return "done"
    except Exception as error:
        session.rollback()
        if isinstance(error, ImportFileError):
            message = str(error)
        else:
            log.exception("opening-balance import %s of tenant %s failed", import_id, tenant_id)
            message = (
                "The import stopped unexpectedly. The rows counted so far are saved; retry to "
                "continue with the rest."
            )
        _set_import(session, import_id, status="failed", error=message, finished_at=func.now())
        session.commit()
        return "failed"


def _write_row(writer: _Writer, row: OpeningRow) -> tuple[str, dict[str, str], bool]:
    if row.already_imported:
        return "already", dict(row.errors), False
    if row.errors:
        return "failed", dict(row.errors), False
    return writer.write(row)


def import_errors(session: Session, import_id: int):
    return session.scalars(
        select(OpeningBalanceImportError)
        .where(OpeningBalanceImportError.import_id == import_id)
        .order_by(OpeningBalanceImportError.line, OpeningBalanceImportError.id)
    )
