"""/notices: the collection notices the daily run makes, read; closed by hand, and given files
and links, through app.collections.notices.services with the notice page's rules and messages.
Notices are made by the run, not by people, so the API makes none either."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from flask import current_app, g, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from app.api.problems import Problem, invalid
from app.api.resources.money import MONEY_SCHEMA, Money, money
from app.api.rest import Answer, ListQuery, operation, page_by_id, require_match
from app.clients.documents import MAX_FILE_BYTES, UploadedFile
from app.collections.models import (
    LEVEL_CHANNELS,
    NOTICE_CLOSE_REASONS,
    NOTICE_STATUSES,
    CollectionNotice,
)
from app.collections.notices import services as notices
from app.core.clock import tenant_today
from app.core.storage import get_storage
from app.extensions import db


class NoticeInvoiceOut(BaseModel):
    invoice_id: int
    amount_due: Money = Field(json_schema_extra=MONEY_SCHEMA)
    days_overdue: int


class AttachmentOut(BaseModel):
    id: int
    kind: Literal["file", "link"]
    title: str
    url: str | None = Field(description="A link's address.")
    filename: str | None
    content_type: str | None
    size_bytes: int | None
    sha256: str | None
    created_at: datetime


class NoticeOut(BaseModel):
    id: int
    client_id: int
    level_number: int
    level_name: str
    channel: Literal[LEVEL_CHANNELS]
    currency: str
    status: Literal[NOTICE_STATUSES]
    run_date: date
    reason: str | None
    amount_due: Money = Field(json_schema_extra=MONEY_SCHEMA)
    interest_amount: Money = Field(json_schema_extra=MONEY_SCHEMA)
    fee_amount: Money = Field(json_schema_extra=MONEY_SCHEMA)
    contact_id: int | None
    sent_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    notes: str | None
    created_at: datetime


class NoticeWithParts(NoticeOut):
    invoices: list[NoticeInvoiceOut]
    attachments: list[AttachmentOut] = Field(description="Files and links, oldest first.")


class NoticeQuery(ListQuery):
    client_id: int | None = Field(None, ge=1, le=2**63 - 1)
    status: Literal[NOTICE_STATUSES] | None = None


class NoticeClose(BaseModel):
    model_config = ConfigDict(extra="forbid")

    close_reason: Literal[NOTICE_CLOSE_REASONS]
    note: str | None = Field(None, max_length=500, description="Required when cancelled.")


class NoticeFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=191, description="The file's name if not given.")


class NoticeLink(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"title": "Signed delivery note", "url": "https://example.com/dn.pdf"}]
        },
    )

    title: str = Field(max_length=191)
    url: str = Field(max_length=2048, description="https://…")


def _facts(notice: CollectionNotice) -> dict:
    return {
        **{
            name: getattr(notice, name)
            for name in NoticeOut.model_fields
            if name not in ("amount_due", "interest_amount", "fee_amount")
        },
        "amount_due": money(notice.amount_due),
        "interest_amount": money(notice.interest_amount),
        "fee_amount": money(notice.fee_amount),
    }


def notice_out(notice: CollectionNotice) -> NoticeWithParts:
    return NoticeWithParts(
        **_facts(notice),
        invoices=[
            NoticeInvoiceOut(
                invoice_id=item.invoice_id,
                amount_due=money(item.amount_due),
                days_overdue=item.days_overdue,
            )
            for item in notice.items
        ],
        attachments=[
            AttachmentOut.model_validate(a, from_attributes=True)
            for a in notice.attachments
            if a.removed_at is None
        ],
    )


def _notice(notice_id: int) -> CollectionNotice:
    notice = notices.get_notice(db.session, notice_id)
    if notice is None:
        raise Problem(404, "not_found", "There is no notice with this id.")
    return notice


def _refused(error: notices.NoticeError) -> Problem:
    """A field's error is a 422; the notice's own state (closed already) a 409."""
    if "" in error.errors:
        return Problem(409, "notice_closed", "This notice cannot be changed.", error.errors[""])
    return invalid(422, error.errors)


@operation(
    "GET",
    "/notices",
    summary="List notices",
    tag="collections",
    scope="collections:read",
    query=NoticeQuery,
    response=NoticeOut,
    listed=True,
)
def list_notices(query: NoticeQuery):
    """Newest first."""
    statement = select(CollectionNotice)
    if query.client_id:
        statement = statement.where(CollectionNotice.client_id == query.client_id)
    if query.status:
        statement = statement.where(CollectionNotice.status == query.status)
    page, next_cursor = page_by_id(statement, CollectionNotice, query)
    return Answer([NoticeOut(**_facts(n)) for n in page], next_cursor=next_cursor)


@operation(
    "GET",
    "/notices/<int:notice_id>",
    summary="Get a notice with its invoices and attachments",
    tag="collections",
    scope="collections:read",
    response=NoticeWithParts,
)
def get_notice(notice_id: int):
    return Answer(notice_out(_notice(notice_id)))


@operation(
    "PATCH",
    "/notices/<int:notice_id>",
    summary="Close a notice",
    tag="collections",
    scope="collections:write",
    body=NoticeClose,
    response=NoticeWithParts,
    conditional=True,
    refusals=(409,),
)
def close_notice(notice_id: int, body: NoticeClose):
    """Ends the notice (nothing more is chased by it); a cancelled one needs a note saying why.
    Refused (409) for a notice closed already."""
    notice = _notice(notice_id)
    require_match(notice_out(notice))
    try:
        notices.close(
            db.session,
            notice,
            body.close_reason,
            body.note,
            f"API key “{g.api_caller.key_name}”",
            tenant_today(db.session),
        )
    except notices.NoticeError as error:
        raise _refused(error) from None
    return Answer(notice_out(notice))


@operation(
    "POST",
    "/notices/<int:notice_id>/attachments",
    summary="Attach a file to a notice",
    tag="collections",
    scope="collections:write",
    upload=NoticeFile,
    upload_bytes=MAX_FILE_BYTES,
    response=AttachmentOut,
    status=201,
)
def attach_file(notice_id: int, body: NoticeFile):
    """multipart/form-data: `title` and the file (`file`), with the client documents' checks
    (PDF, PNG, JPG, DOCX, XLSX, CSV or TXT, its content what its name says, at most 25 MB)."""
    notice = _notice(notice_id)
    part = request.files.get("file")
    upload = (
        UploadedFile(filename=part.filename, stream=part.stream)
        if part is not None and part.filename
        else None
    )
    try:
        attachment = notices.add_file(
            db.session,
            get_storage(current_app),
            notice,
            title=body.title,
            upload=upload,
            user_id=g.api_caller.acting_user_id,
        )
    except notices.NoticeError as error:
        raise _refused(error) from None
    return Answer(AttachmentOut.model_validate(attachment, from_attributes=True), status=201)


@operation(
    "POST",
    "/notices/<int:notice_id>/links",
    summary="Add a file link to a notice",
    tag="collections",
    scope="collections:write",
    body=NoticeLink,
    response=AttachmentOut,
    status=201,
)
def add_link(notice_id: int, body: NoticeLink):
    """A link to a document kept elsewhere (a shared drive, a courier's tracking page)."""
    try:
        attachment = notices.add_link(
            db.session,
            _notice(notice_id),
            title=body.title,
            url=body.url,
            user_id=g.api_caller.acting_user_id,
        )
    except notices.NoticeError as error:
        raise _refused(error) from None
    return Answer(AttachmentOut.model_validate(attachment, from_attributes=True), status=201)


@operation(
    "DELETE",
    "/notices/<int:notice_id>/attachments/<int:attachment_id>",
    summary="Remove a file or link from a notice",
    tag="collections",
    scope="collections:write",
    status=204,
)
def remove_attachment(notice_id: int, attachment_id: int):
    """It is listed no more; the record (and a file) is kept, as on the page."""
    attachment = notices.get_attachment(db.session, _notice(notice_id), attachment_id)
    if attachment is None:
        raise Problem(404, "not_found", "This notice has no attachment with this id.")
    notices.remove_attachment(db.session, attachment, g.api_caller.acting_user_id)
    return Answer(None)
