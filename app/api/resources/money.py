"""/invoices (with lines and the PDF; their custom fields may be changed) and /payments (with
allocations)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from flask import Response, g
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api.problems import Problem, invalid
from app.api.resources.clients import (
    CUSTOM_IN,
    CUSTOM_OUT,
    CustomChange,
    CustomValue,
    api_errors,
    change_custom_values,
    rule_code,
)
from app.api.rest import Answer, ListQuery, operation, page_by_id, require_match
from app.extensions import db
from app.invoicing import pdf
from app.invoicing import services as invoicing
from app.invoicing.balance import outstanding_of
from app.invoicing.models import INVOICE_STATUSES, Invoice
from app.payments.models import PAYMENT_METHODS, Payment

Money = str  # a decimal amount with 2 places, as JSON strings carry it exactly


def money(amount: Decimal | None) -> Money | None:
    return None if amount is None else f"{amount:.2f}"


MONEY_SCHEMA = {"pattern": r"^-?\d+\.\d{2}$", "description": "A decimal amount with 2 places."}


class InvoiceLineOut(BaseModel):
    position: int
    description: str
    hsn_sac: str | None
    quantity: str = Field(description="A decimal quantity.")
    unit_price: Money = Field(json_schema_extra=MONEY_SCHEMA)
    taxable_value: Money = Field(json_schema_extra=MONEY_SCHEMA)
    tax_rate: str = Field(description="Percent, e.g. 18.00.")
    total: Money = Field(json_schema_extra=MONEY_SCHEMA)
    milestone_id: int | None


class InvoiceOut(BaseModel):
    id: int
    number: str | None = Field(description="None for a draft.")
    status: Literal[INVOICE_STATUSES]
    client_id: int
    project_id: int | None
    issue_date: date | None
    due_date: date | None
    currency: str
    subtotal: Money = Field(json_schema_extra=MONEY_SCHEMA)
    tax: Money = Field(json_schema_extra=MONEY_SCHEMA)
    total: Money = Field(json_schema_extra=MONEY_SCHEMA)
    amount_due: Money = Field(json_schema_extra=MONEY_SCHEMA)
    created_at: datetime
    custom_fields: dict[str, Any] = Field(description=CUSTOM_OUT)


class InvoiceWithLines(InvoiceOut):
    lines: list[InvoiceLineOut]


class InvoiceChange(BaseModel):
    """What a change of an invoice takes: its custom field values (its amounts and taxes are
    changed by a credit note)."""

    model_config = ConfigDict(extra="forbid")

    custom_fields: dict[str, CustomValue] = Field(max_length=100, description=CUSTOM_IN)


class InvoiceQuery(ListQuery):
    status: Literal[INVOICE_STATUSES] | None = None
    client_id: int | None = Field(None, ge=1, le=2**63 - 1)


def _invoices_out(invoices: list[Invoice], with_lines: bool) -> list[InvoiceOut]:
    owed = outstanding_of(db.session, invoices)
    model = InvoiceWithLines if with_lines else InvoiceOut
    out = []
    for invoice in invoices:
        facts = dict(
            id=invoice.id,
            number=invoice.number,
            status=invoice.status,
            client_id=invoice.client_id,
            project_id=invoice.project_id,
            issue_date=invoice.issue_date,
            due_date=invoice.due_date,
            currency=invoice.currency,
            subtotal=money(invoice.subtotal),
            tax=money(invoice.total - invoice.subtotal),
            total=money(invoice.total),
            amount_due=money(owed.get(invoice.id, invoice.total)),
            created_at=invoice.created_at,
            custom_fields=dict(invoice.custom_fields or {}),
        )
        if with_lines:
            facts["lines"] = [
                InvoiceLineOut(
                    position=line.position,
                    description=line.description,
                    hsn_sac=line.hsn_sac,
                    quantity=f"{line.quantity.normalize():f}",
                    unit_price=money(line.unit_price),
                    taxable_value=money(line.taxable_value),
                    tax_rate=f"{line.tax_rate:.2f}",
                    total=money(line.total),
                    milestone_id=line.milestone_id,
                )
                for line in sorted(invoice.lines, key=lambda line: line.position)
            ]
        out.append(model(**facts))
    return out


@operation(
    "GET",
    "/invoices",
    summary="List invoices",
    tag="invoices",
    scope="invoices:read",
    query=InvoiceQuery,
    response=InvoiceOut,
    listed=True,
)
def list_invoices(query: InvoiceQuery):
    """Newest first."""
    statement = select(Invoice)
    if query.status:
        statement = statement.where(Invoice.status == query.status)
    if query.client_id:
        statement = statement.where(Invoice.client_id == query.client_id)
    page, next_cursor = page_by_id(statement, Invoice, query)
    return Answer(_invoices_out(page, with_lines=False), next_cursor=next_cursor)


def _invoice(invoice_id: int) -> Invoice:
    invoice = db.session.scalar(
        select(Invoice).where(Invoice.id == invoice_id).options(selectinload(Invoice.lines))
    )
    if invoice is None:
        raise Problem(404, "not_found", "There is no invoice with this id.")
    return invoice


@operation(
    "GET",
    "/invoices/<int:invoice_id>",
    summary="Get an invoice with its lines",
    tag="invoices",
    scope="invoices:read",
    response=InvoiceWithLines,
)
def get_invoice(invoice_id: int):
    return Answer(_invoices_out([_invoice(invoice_id)], with_lines=True)[0])


@operation(
    "PATCH",
    "/invoices/<int:invoice_id>",
    summary="Change an invoice's custom fields",
    tag="invoices",
    scope="invoices:write",
    body=InvoiceChange,
    response=InvoiceWithLines,
    conditional=True,
)
def update_invoice(invoice_id: int, body: InvoiceChange):
    """Only the custom fields sent change, each checked by its rules (422 per field)."""
    invoice = _invoice(invoice_id)
    require_match(_invoices_out([invoice], with_lines=True)[0])
    try:
        invoicing.change_custom_values(db.session, invoice, body.custom_fields)
    except invoicing.InvoiceInvalid as error:
        raise invalid(422, api_errors(error.errors), rule_code) from None
    return Answer(_invoices_out([invoice], with_lines=True)[0])


@operation(
    "GET",
    "/invoices/<int:invoice_id>/pdf",
    summary="Download an invoice's PDF",
    tag="invoices",
    scope="invoices:read",
    response="pdf",
)
def invoice_pdf(invoice_id: int):
    """The issued invoice as sent; a draft or a void invoice as a preview."""
    invoice = _invoice(invoice_id)
    response = Response(
        pdf.current_pdf(db.session, g.api_caller.tenant, invoice), mimetype="application/pdf"
    )
    response.headers.set("Content-Disposition", "attachment", filename=pdf.pdf_filename(invoice))
    response.headers["Cache-Control"] = "private, no-store"
    return response


class AllocationOut(BaseModel):
    invoice_id: int
    amount: Money = Field(json_schema_extra=MONEY_SCHEMA)
    tds_amount: Money = Field(json_schema_extra=MONEY_SCHEMA)
    interest_amount: Money = Field(json_schema_extra=MONEY_SCHEMA)


class PaymentOut(BaseModel):
    id: int
    client_id: int
    received_on: date
    amount: Money = Field(json_schema_extra=MONEY_SCHEMA)
    currency: str
    method: Literal[PAYMENT_METHODS]
    reference: str | None
    voided: bool
    void_reason: str | None
    created_at: datetime
    allocations: list[AllocationOut]
    custom_fields: dict[str, Any] = Field(description=CUSTOM_OUT)


class PaymentQuery(ListQuery):
    client_id: int | None = Field(None, ge=1, le=2**63 - 1)
    received_from: date | None = None
    received_to: date | None = None


def payment_out(payment: Payment) -> PaymentOut:
    return PaymentOut(
        id=payment.id,
        client_id=payment.client_id,
        received_on=payment.received_on,
        amount=money(payment.amount),
        currency=payment.currency,
        method=payment.method,
        reference=payment.reference,
        voided=payment.voided_at is not None,
        void_reason=payment.void_reason,
        created_at=payment.created_at,
        allocations=[
            AllocationOut(
                invoice_id=a.invoice_id,
                amount=money(a.amount),
                tds_amount=money(a.tds_amount),
                interest_amount=money(a.interest_amount),
            )
            for a in payment.allocations
            if a.removed_at is None
        ],
        custom_fields=dict(payment.custom_fields or {}),
    )


@operation(
    "GET",
    "/payments",
    summary="List payments",
    tag="payments",
    scope="payments:read",
    query=PaymentQuery,
    response=PaymentOut,
    listed=True,
)
def list_payments(query: PaymentQuery):
    """Newest first (voided ones too: see `voided`)."""
    statement = select(Payment).options(selectinload(Payment.allocations))
    if query.client_id:
        statement = statement.where(Payment.client_id == query.client_id)
    if query.received_from:
        statement = statement.where(Payment.received_on >= query.received_from)
    if query.received_to:
        statement = statement.where(Payment.received_on <= query.received_to)
    page, next_cursor = page_by_id(statement, Payment, query)
    return Answer([payment_out(p) for p in page], next_cursor=next_cursor)


@operation(
    "GET",
    "/payments/<int:payment_id>",
    summary="Get a payment with its allocations",
    tag="payments",
    scope="payments:read",
    response=PaymentOut,
)
def get_payment(payment_id: int):
    return Answer(payment_out(_payment(payment_id)))


def _payment(payment_id: int) -> Payment:
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        raise Problem(404, "not_found", "There is no payment with this id.")
    return payment


@operation(
    "PATCH",
    "/payments/<int:payment_id>",
    summary="Change a payment's custom fields",
    tag="payments",
    scope="payments:write",
    body=CustomChange,
    response=PaymentOut,
    conditional=True,
)
def update_payment(payment_id: int, body: CustomChange):
    """Only the custom fields sent change, each checked by its rules (422 per field); its
    amount and allocations are the pages' to change."""
    payment = _payment(payment_id)
    require_match(payment_out(payment))
    change_custom_values("payments", payment, body.custom_fields)
    return Answer(payment_out(payment))
