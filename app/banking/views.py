"""Bank statement pages: bank accounts and the upload (format detected; a CSV whose columns
are unknown goes through a column mapping step, saved for the account), an import's result,
and the review queue with its actions (accept, split, keep as a client's credit, ignore)."""

from __future__ import annotations

import io
import re
import secrets

from flask import Blueprint, abort, current_app, g, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.banking import services, sftp
from app.banking.models import BankAccount, StatementImport, StatementLine
from app.banking.statement_files import FORMAT_LABELS, detect_format
from app.banking.statement_files.bank_csv import ROLE_LABELS, ColumnsUnknown
from app.banking.statement_files.shape import StatementFileError
from app.clients.models import Client
from app.core.money import format_money
from app.core.pages import render_page, toast
from app.core.request_input import row_id
from app.core.storage import InvalidKey, delete_after_commit, get_storage, tenant_key
from app.core.terminology import worded
from app.extensions import db
from app.invoicing.models import Invoice
from app.payments.services import PaymentError, PaymentInvalid
from tenants.context import require_permission

blueprint = Blueprint("banking", __name__, url_prefix="/t/<tenant_slug>/bank")
VIEW = "invoices.view"
RECORD = "payments.record"
UPLOAD_NAME = re.compile(r"[0-9a-f]{32}\.csv")
# A year of a busy account's statement (some 100,000 lines) is ~12 MB of CSV; more is refused
# before it is read.
STATEMENT_REQUEST_LIMIT = 16 * 1024 * 1024
STATUS_LABELS = {
    "debit": "Money out",
    "unmatched": "Waiting: no match",
    "suggested": "Waiting: suggested",
    "applied": "Booked to invoices",
    "recorded": "Already recorded",
    "credited": "{Client}'s credit",  # the workspace's word, filled where it is shown
    "ignored": "Ignored",
    "settlement": "A gateway's payout: nothing to book",
}


@blueprint.url_value_preprocessor
def _limit_upload_size(endpoint, values) -> None:
    if endpoint == "banking.upload":
        request.max_content_length = STATEMENT_REQUEST_LIMIT


def _accounts():
    return db.session.scalars(select(BankAccount).order_by(BankAccount.name)).all()


def _index(status: int = 200, errors: dict | None = None, values: dict | None = None):
    imports = db.session.scalars(
        select(StatementImport).order_by(StatementImport.id.desc()).limit(20)
    ).all()
    return render_page(
        "banking/index.html",
        status=status,
        accounts=_accounts(),
        accounts_by_id={a.id: a for a in _accounts()},
        imports=imports,
        settings=services.banking_settings(db.session),
        errors=errors or {},
        values=values or {},
        waiting=len(services.review_queue(db.session)),
    )


@blueprint.get("/")
@require_permission(VIEW)
def index():
    return _index()


@blueprint.post("/accounts")
@require_permission(RECORD)
def add_account():
    values = request.form.to_dict()
    try:
        services.add_bank_account(
            db.session, values.get("name"), values.get("account_number"), values.get("currency")
        )
    except PaymentInvalid as invalid:
        return _index(422, invalid.errors, values)
    toast("Bank account added.")
    return redirect(url_for("banking.index"), 303)


@blueprint.post("/settings")
@require_permission(RECORD)
def save_settings():
    services.banking_settings(db.session).apply_sure_matches = bool(
        request.form.get("apply_sure_matches")
    )
    toast("Saved.")
    return redirect(url_for("banking.index"), 303)


def _account_or_404(account_id) -> BankAccount:
    account = db.session.get(BankAccount, account_id) if account_id else None
    if account is None:
        abort(404)
    return account


def _account_page(account: BankAccount, status: int = 200, errors=None, values=None):
    source = sftp.source_of(db.session, account)
    if values is None and source is not None:
        values = {
            "host": source.host,
            "port": str(source.port),
            "username": source.username,
            "folder": source.folder,
            "file_pattern": source.file_pattern,
        }
    return render_page(
        "banking/account.html",
        status=status,
        account=account,
        source=source,
        pulls=sftp.recent_pulls(db.session, account),
        errors=errors or {},
        values=values or {"port": "22", "folder": "/", "file_pattern": "*.xml"},
    )


@blueprint.get("/accounts/<int:bank_account_id>")
@require_permission(VIEW)
def account(bank_account_id: int):
    return _account_page(_account_or_404(bank_account_id))


@blueprint.post("/accounts/<int:bank_account_id>/sftp")
@require_permission(RECORD)
def save_sftp(bank_account_id: int):
    account = _account_or_404(bank_account_id)
    values = request.form.to_dict()
    try:
        source = sftp.save_source(db.session, account, values)
    except PaymentInvalid as invalid:
        shown = {k: v for k, v in values.items() if k not in sftp.SECRET_FIELDS}
        return _account_page(account, 422, invalid.errors, shown)
    sftp.request_pull(db.session, source, check_only=True)
    toast("Saved. Checking the connection: reload this page in a moment.")
    return redirect(url_for("banking.account", bank_account_id=account.id), 303)


def _source_or_404(account: BankAccount):
    source = sftp.source_of(db.session, account)
    if source is None:
        abort(404)
    return source


@blueprint.post("/accounts/<int:bank_account_id>/sftp/host-key")
@require_permission(RECORD)
def confirm_host_key(bank_account_id: int):
    account = _account_or_404(bank_account_id)
    source = _source_or_404(account)
    try:
        sftp.confirm_host_key(db.session, source, request.form.get("fingerprint", ""))
    except PaymentInvalid as invalid:
        toast(invalid.errors["fingerprint"], "error")
    else:
        sftp.request_pull(db.session, source, check_only=True)
        toast("Host key confirmed. Checking the log-in: reload this page in a moment.")
    return redirect(url_for("banking.account", bank_account_id=account.id), 303)


@blueprint.post("/accounts/<int:bank_account_id>/sftp/pull")
@require_permission(RECORD)
def pull_sftp(bank_account_id: int):
    account = _account_or_404(bank_account_id)
    source = _source_or_404(account)
    check_only = request.form.get("check_only") == "1"
    sftp.request_pull(db.session, source, check_only=check_only)
    doing = "Checking the connection" if check_only else "Pulling statements"
    toast(f"{doing}: reload this page in a moment.")
    return redirect(url_for("banking.account", bank_account_id=account.id), 303)


def _import_file(account: BankAccount, filename: str, data: bytes):
    """Import `data`; the response for the person either way."""
    file_format = detect_format(data)
    if file_format is None:
        return _index(
            422,
            {
                "file": "This is not a statement Duebook reads: upload CAMT.053, "
                "MT940, OFX or your bank's CSV export."
            },
        )
    try:
        statement = services.import_statement(
            db.session, account, filename, data, file_format, user_id=current_user.id
        )
    except ColumnsUnknown as unknown:
        return _mapping_page(account, _keep_upload(data), unknown.headers, {}, {})
    except StatementFileError as error:
        return _index(422, {"file": str(error)})
    return redirect(url_for("banking.statement", statement_import_id=statement.id), 303)


@blueprint.post("/imports")
@require_permission(RECORD)
def upload():
    account = db.session.get(BankAccount, row_id(request.form.get("bank_account_id")) or 0)
    upload = request.files.get("file")
    if account is None:
        return _index(422, {"bank_account_id": "Choose the bank account of this statement."})
    if upload is None or not upload.filename:
        return _index(422, {"file": "Choose the statement file."})
    return _import_file(account, upload.filename, upload.read())


def _keep_upload(data: bytes) -> str:
    """Keep a CSV while its columns are mapped; the mapping step names it."""
    name = f"{secrets.token_hex(16)}.csv"
    get_storage(current_app).save(_upload_key(name), io.BytesIO(data))
    return name


def _upload_key(name: str) -> str:
    if not UPLOAD_NAME.fullmatch(name or ""):
        raise InvalidKey(name)
    return tenant_key(g.tenant.id, "bank-statements", name)


def _mapping_page(account, upload_name, headers, mapping, errors, status=200):
    return render_page(
        "banking/columns.html",
        status=422 if errors else status,
        account=account,
        upload_name=upload_name,
        headers=headers,
        mapping=mapping,
        errors=errors,
        roles=ROLE_LABELS,
    )


@blueprint.post("/accounts/<int:bank_account_id>/columns")
@require_permission(RECORD)
def map_columns(bank_account_id: int):
    account = _account_or_404(bank_account_id)
    name = request.form.get("upload", "")
    try:
        key = _upload_key(name)
        with get_storage(current_app).open(key) as stored:
            data = stored.read()
    except (InvalidKey, FileNotFoundError):
        toast("That upload has expired: upload the statement again.", "error")
        return redirect(url_for("banking.index"), 303)
    mapping = {role: request.form.get(role, "") for role in ROLE_LABELS}
    headers = request.form.getlist("headers")
    try:
        services.save_column_mapping(db.session, account, mapping)
    except PaymentInvalid as invalid:
        return _mapping_page(account, name, headers, mapping, invalid.errors)
    delete_after_commit(db.session, get_storage(current_app), key)
    return _import_file(account, "statement.csv", data)


@blueprint.get("/imports/<int:statement_import_id>")
@require_permission(VIEW)
def statement(statement_import_id: int):
    found = db.session.get(StatementImport, statement_import_id)
    if found is None:
        abort(404)
    lines = db.session.scalars(
        select(StatementLine)
        .where(StatementLine.import_id == found.id)
        .order_by(StatementLine.source_line, StatementLine.id)
        .limit(500)
    ).all()
    return render_page(
        "banking/import.html",
        statement=found,
        account=db.session.get(BankAccount, found.bank_account_id),
        summary=services.import_summary(db.session, found),
        lines=lines,
        format_label=FORMAT_LABELS.get(found.file_format, found.file_format),
        status_labels=STATUS_LABELS,
        invoices=_invoices_of(lines),
    )


def _invoices_of(lines) -> dict[int, Invoice]:
    ids = {line.invoice_id for line in lines if line.invoice_id}
    if not ids:
        return {}
    return {i.id: i for i in db.session.scalars(select(Invoice).where(Invoice.id.in_(ids)))}


@blueprint.get("/review")
@require_permission(VIEW)
def review():
    lines = services.review_queue(db.session)
    return render_page(
        "banking/review.html",
        lines=lines,
        invoices=_invoices_of(lines),
        clients=db.session.scalars(
            select(Client).where(Client.deleted_at.is_(None)).order_by(Client.short_name).limit(500)
        ).all(),
        status_labels=STATUS_LABELS,
    )


def _line_or_404(statement_line_id: int) -> StatementLine:
    line = db.session.get(StatementLine, statement_line_id)
    if line is None:
        abort(404)
    return line


def _act(action, line: StatementLine, done: str):
    """Run a review action; `done` says what happened to the line, in words."""
    try:
        # A refusal part-way (the payment recorded, its allocation refused) keeps nothing.
        with db.session.begin_nested():
            action()
    except (services.BankingError, PaymentError, PaymentInvalid) as refused:
        toast(str(refused), "error")
    else:
        amount = format_money(line.amount, line.currency, g.tenant.country)
        toast(f"{amount} of {line.booked_on:%d %b %Y}: {done}")
    return redirect(url_for("banking.review"), 303)


@blueprint.post("/lines/<int:statement_line_id>/accept")
@require_permission(RECORD)
def accept(statement_line_id: int):
    line = _line_or_404(statement_line_id)
    return _act(
        lambda: services.accept(db.session, line, current_user.id), line, "booked as suggested."
    )


@blueprint.post("/lines/<int:statement_line_id>/ignore")
@require_permission(RECORD)
def ignore(statement_line_id: int):
    line = _line_or_404(statement_line_id)
    return _act(
        lambda: services.ignore(db.session, line, current_user.id),
        line,
        worded("ignored (not {a client}'s payment)."),
    )


@blueprint.post("/lines/<int:statement_line_id>/credit")
@require_permission(RECORD)
def credit(statement_line_id: int):
    line = _line_or_404(statement_line_id)
    client_id = row_id(request.form.get("client_id")) or 0
    return _act(
        lambda: services.keep_as_credit(db.session, line, client_id, current_user.id),
        line,
        worded("kept as the {client}'s credit."),
    )


@blueprint.post("/lines/<int:statement_line_id>/split")
@require_permission(RECORD)
def split(statement_line_id: int):
    line = _line_or_404(statement_line_id)
    try:
        parts = services.split_parts(
            db.session, request.form.getlist("invoice_number"), request.form.getlist("amount")
        )
    except services.BankingError as refused:
        toast(str(refused), "error")
        return redirect(url_for("banking.review"), 303)
    return _act(
        lambda: services.split(db.session, line, parts, current_user.id),
        line,
        f"split across {len(parts)} invoices.",
    )
