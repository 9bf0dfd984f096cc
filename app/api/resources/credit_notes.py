"""/credit-notes: read, and issued against an invoice through app.invoicing.credits with the
same rules and messages as the invoice page's credit note form."""

from __future__ import annotations

from datetime import date, datetime

from flask import g, url_for
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api.problems import Problem, invalid
from app.api.resources.money import MONEY_SCHEMA, Money, money
from app.api.rest import Answer, ListQuery, operation, page_by_id
from app.core.clock import tenant_today
from app.extensions import db
from app.invoicing import credits
from app.invoicing.models import CreditNote, Invoice
from app.invoicing.services import InvoiceError, InvoiceInvalid


class CreditNoteLineOut(BaseModel):
    position: int
    description: str
    hsn_sac: str | None
    tax_rate: str = Field(description="Percent, e.g. 18.00.")
    taxable_value: Money = Field(json_schema_extra=MONEY_SCHEMA)
    total: Money = Field(json_schema_extra=MONEY_SCHEMA)


class CreditNoteOut(BaseModel):
    id: int
    number: str
    invoice_id: int
    client_id: int
    issue_date: date
    reason: str
    currency: str
    subtotal: Money = Field(json_schema_extra=MONEY_SCHEMA)
    tax: Money = Field(json_schema_extra=MONEY_SCHEMA)
    total: Money = Field(json_schema_extra=MONEY_SCHEMA)
    created_at: datetime
    lines: list[CreditNoteLineOut]


class NewCreditNote(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"amount": "5000.00", "reason": "Volume discount"}]},
    )

    amount: str | None = Field(
        None,
        max_length=24,
        description="Tax included; not given: all that the invoice still owes.",
    )
    reason: str = Field(max_length=2000)


class CreditNoteQuery(ListQuery):
    client_id: int | None = Field(None, ge=1, le=2**63 - 1)
    invoice_id: int | None = Field(None, ge=1, le=2**63 - 1)


def credit_note_out(note: CreditNote) -> CreditNoteOut:
    return CreditNoteOut(
        id=note.id,
        number=note.number,
        invoice_id=note.invoice_id,
        client_id=note.client_id,
        issue_date=note.issue_date,
        reason=note.reason,
        currency=note.currency,
        subtotal=money(note.subtotal),
        tax=money(note.total - note.subtotal),
        total=money(note.total),
        created_at=note.created_at,
        lines=[
            CreditNoteLineOut(
                position=line.position,
                description=line.description,
                hsn_sac=line.hsn_sac,
                tax_rate=f"{line.tax_rate:.2f}",
                taxable_value=money(line.taxable_value),
                total=money(line.total),
            )
            for line in note.lines
        ],
    )


@operation(
    "GET",
    "/credit-notes",
    summary="List credit notes",
    tag="invoices",
    scope="invoices:read",
    query=CreditNoteQuery,
    response=CreditNoteOut,
    listed=True,
)
def list_credit_notes(query: CreditNoteQuery):
    """Newest first."""
    statement = select(CreditNote).options(selectinload(CreditNote.lines))
    if query.client_id:
        statement = statement.where(CreditNote.client_id == query.client_id)
    if query.invoice_id:
        statement = statement.where(CreditNote.invoice_id == query.invoice_id)
    page, next_cursor = page_by_id(statement, CreditNote, query)
    return Answer([credit_note_out(n) for n in page], next_cursor=next_cursor)


@operation(
    "GET",
    "/credit-notes/<int:credit_note_id>",
    summary="Get a credit note with its lines",
    tag="invoices",
    scope="invoices:read",
    response=CreditNoteOut,
)
def get_credit_note(credit_note_id: int):
    note = credits.get_credit_note(db.session, credit_note_id)
    if note is None:
        raise Problem(404, "not_found", "There is no credit note with this id.")
    return Answer(credit_note_out(note))


@operation(
    "POST",
    "/invoices/<int:invoice_id>/credit-notes",
    summary="Issue a credit note against an invoice",
    tag="invoices",
    scope="invoices:write",
    body=NewCreditNote,
    response=CreditNoteOut,
    status=201,
    refusals=(409,),
)
def create_credit_note(invoice_id: int, body: NewCreditNote):
    """At most what the invoice still owes; numbered in the credit notes' own series. Refused
    (409) for an invoice that is not issued or owes nothing, as on the invoice page."""
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None:
        raise Problem(404, "not_found", "There is no invoice with this id.")
    try:
        note = credits.issue_credit_note(
            db.session,
            g.api_caller.tenant,
            invoice,
            body.amount,
            body.reason,
            tenant_today(db.session),
            user_id=g.api_caller.acting_user_id,
        )
    except InvoiceInvalid as refused:
        raise invalid(422, refused.errors) from None
    except InvoiceError as error:
        raise Problem(
            409, "invoice_not_creditable", "This invoice cannot be credited.", str(error)
        ) from None
    return Answer(
        credit_note_out(note),
        status=201,
        location=url_for("api.get_credit_note", credit_note_id=note.id),
    )
