"""/promises (promises to pay) and /disputes: recorded and ended through the collections'
case services, with the same rules and messages as the client page's Collections tab."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from flask import g, url_for
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from app.api.problems import Problem, invalid
from app.api.resources.money import MONEY_SCHEMA, Money, money
from app.api.rest import Answer, ListQuery, operation, page_by_id, require_match
from app.clients import services as clients
from app.collections.cases import disputes, promises
from app.collections.cases.services import CaseError, CaseInvalid
from app.collections.models import DISPUTE_STATUSES, PROMISE_STATUSES, Dispute, PromiseToPay
from app.core.clock import tenant_today
from app.extensions import db
from app.invoicing.models import Invoice

_ID = Field(ge=1, le=2**63 - 1)


class PromiseOut(BaseModel):
    id: int
    client_id: int
    invoice_ids: list[int] = Field(description="The open invoices the promise covers.")
    amount: Money = Field(json_schema_extra=MONEY_SCHEMA)
    currency: str
    promised_on: date
    status: Literal[PROMISE_STATUSES]
    note: str | None
    created_at: datetime
    resolved_at: datetime | None


class NewPromise(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"client_id": 1, "amount": "25000.00", "promised_on": "2026-12-31"}]
        },
    )

    client_id: int = _ID
    amount: str = Field(max_length=24, description="e.g. 25000.00")
    promised_on: date = Field(description="Today or later.")
    invoice_ids: list[int] = Field(
        default_factory=list,
        max_length=500,
        description="Among the client's open invoices; empty: all of them.",
    )
    note: str | None = Field(None, max_length=4000)


class PromiseChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["cancelled"] = Field(description="An open promise can be cancelled.")


class PromiseQuery(ListQuery):
    client_id: int | None = Field(None, ge=1, le=2**63 - 1)
    status: Literal[PROMISE_STATUSES] | None = None


class DisputeOut(BaseModel):
    id: int
    client_id: int
    invoice_id: int
    reason: str
    evidence: str | None
    evidence_url: str | None
    owner_user_id: int | None
    status: Literal[DISPUTE_STATUSES]
    resolution_note: str | None
    created_at: datetime
    resolved_at: datetime | None


class NewDispute(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"invoice_id": 1, "reason": "Goods arrived damaged"}]},
    )

    invoice_id: int = _ID
    reason: str = Field(max_length=4000)
    evidence: str | None = Field(None, max_length=4000)
    evidence_url: str | None = Field(None, max_length=2048, description="https://…")
    owner_user_id: int | None = Field(
        None, ge=1, le=2**63 - 1, description="A member of the workspace; the key's maker if not."
    )


class DisputeEnd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["resolved", "rejected"] = Field(
        description="resolved: the client was right or it was settled; rejected: it stands."
    )
    resolution_note: str = Field(max_length=4000)


class DisputeQuery(ListQuery):
    client_id: int | None = Field(None, ge=1, le=2**63 - 1)
    invoice_id: int | None = Field(None, ge=1, le=2**63 - 1)
    status: Literal[DISPUTE_STATUSES] | None = None


def promise_out(promise: PromiseToPay) -> PromiseOut:
    return PromiseOut(
        **{
            name: getattr(promise, name)
            for name in PromiseOut.model_fields
            if name not in ("amount", "invoice_ids")
        },
        amount=money(promise.amount),
        invoice_ids=list(promise.invoice_ids or []),
    )


def dispute_out(dispute: Dispute) -> DisputeOut:
    return DisputeOut.model_validate(dispute, from_attributes=True)


def _refused(error: CaseError, code: str, title: str) -> Problem:
    return Problem(409, code, title, str(error))


# Promises -------------------------------------------------------------------------------------


@operation(
    "GET",
    "/promises",
    summary="List promises to pay",
    tag="collections",
    scope="collections:read",
    query=PromiseQuery,
    response=PromiseOut,
    listed=True,
)
def list_promises(query: PromiseQuery):
    """Newest first."""
    statement = select(PromiseToPay)
    if query.client_id:
        statement = statement.where(PromiseToPay.client_id == query.client_id)
    if query.status:
        statement = statement.where(PromiseToPay.status == query.status)
    page, next_cursor = page_by_id(statement, PromiseToPay, query)
    return Answer([promise_out(p) for p in page], next_cursor=next_cursor)


@operation(
    "POST",
    "/promises",
    summary="Record a promise to pay",
    tag="collections",
    scope="collections:write",
    body=NewPromise,
    response=PromiseOut,
    status=201,
)
def create_promise(body: NewPromise):
    """Collection on the covered invoices waits until the promised date."""
    client = clients.get_client(db.session, body.client_id)
    if client is None:
        raise invalid(422, {"client_id": "There is no client with this id."})
    values = body.model_dump() | {"promised_on": body.promised_on.isoformat()}
    try:
        promise = promises.create_promise(
            db.session, client, values, tenant_today(db.session), g.api_caller.acting_user_id
        )
    except CaseInvalid as refused:
        raise invalid(422, refused.errors) from None
    return Answer(
        promise_out(promise),
        status=201,
        location=url_for("api.get_promise", promise_id=promise.id),
    )


def _promise(promise_id: int) -> PromiseToPay:
    promise = promises.get_promise(db.session, promise_id)
    if promise is None:
        raise Problem(404, "not_found", "There is no promise with this id.")
    return promise


@operation(
    "GET",
    "/promises/<int:promise_id>",
    summary="Get a promise to pay",
    tag="collections",
    scope="collections:read",
    response=PromiseOut,
)
def get_promise(promise_id: int):
    return Answer(promise_out(_promise(promise_id)))


@operation(
    "PATCH",
    "/promises/<int:promise_id>",
    summary="Cancel a promise to pay",
    tag="collections",
    scope="collections:write",
    body=PromiseChange,
    response=PromiseOut,
    conditional=True,
    refusals=(409,),
)
def update_promise(promise_id: int, body: PromiseChange):
    """Only an open promise can be cancelled (collection resumes); kept and broken ones are
    decided by payments and the daily run."""
    promise = _promise(promise_id)
    require_match(promise_out(promise))
    try:
        promises.cancel_promise(db.session, promise)
    except CaseError as error:
        raise _refused(error, "promise_ended", "This promise has ended.") from None
    return Answer(promise_out(promise))


# Disputes -------------------------------------------------------------------------------------


@operation(
    "GET",
    "/disputes",
    summary="List disputes",
    tag="collections",
    scope="collections:read",
    query=DisputeQuery,
    response=DisputeOut,
    listed=True,
)
def list_disputes(query: DisputeQuery):
    """Newest first."""
    statement = select(Dispute)
    if query.client_id:
        statement = statement.where(Dispute.client_id == query.client_id)
    if query.invoice_id:
        statement = statement.where(Dispute.invoice_id == query.invoice_id)
    if query.status:
        statement = statement.where(Dispute.status == query.status)
    page, next_cursor = page_by_id(statement, Dispute, query)
    return Answer([dispute_out(d) for d in page], next_cursor=next_cursor)


@operation(
    "POST",
    "/disputes",
    summary="Open a dispute on an invoice",
    tag="collections",
    scope="collections:write",
    body=NewDispute,
    response=DisputeOut,
    status=201,
    refusals=(409,),
)
def open_dispute(body: NewDispute):
    """The invoice is "disputed" and not chased until the dispute ends. Refused (409) when it
    already has an open dispute or cannot be disputed (a draft, a paid or void invoice)."""
    invoice = db.session.get(Invoice, body.invoice_id)
    if invoice is None:
        raise invalid(422, {"invoice_id": "There is no invoice with this id."})
    members = {uid for uid, _ in clients.members_for_choice(db.session, g.api_caller.tenant.id)}
    values = body.model_dump(exclude_none=True)
    if "owner_user_id" in values:
        values["owner_user_id"] = str(values["owner_user_id"])
    try:
        dispute = disputes.open_dispute(
            db.session, invoice, values, g.api_caller.acting_user_id, members
        )
    except CaseInvalid as refused:
        raise invalid(422, refused.errors) from None
    except CaseError as error:
        raise _refused(
            error, "invoice_not_disputable", "This invoice cannot be disputed."
        ) from None
    return Answer(
        dispute_out(dispute),
        status=201,
        location=url_for("api.get_dispute", dispute_id=dispute.id),
    )


def _dispute(dispute_id: int) -> Dispute:
    dispute = disputes.get_dispute(db.session, dispute_id)
    if dispute is None:
        raise Problem(404, "not_found", "There is no dispute with this id.")
    return dispute


@operation(
    "GET",
    "/disputes/<int:dispute_id>",
    summary="Get a dispute",
    tag="collections",
    scope="collections:read",
    response=DisputeOut,
)
def get_dispute(dispute_id: int):
    return Answer(dispute_out(_dispute(dispute_id)))


@operation(
    "PATCH",
    "/disputes/<int:dispute_id>",
    summary="Resolve or reject a dispute",
    tag="collections",
    scope="collections:write",
    body=DisputeEnd,
    response=DisputeOut,
    conditional=True,
    refusals=(409,),
)
def end_dispute(dispute_id: int, body: DisputeEnd):
    """With a note saying how it ended; the invoice goes back to what its money and dates say.
    Refused (409) for a dispute that has ended already."""
    dispute = _dispute(dispute_id)
    require_match(dispute_out(dispute))
    try:
        disputes.end_dispute(
            db.session,
            dispute,
            body.status,
            body.resolution_note,
            tenant_today(db.session),
            g.api_caller.acting_user_id,
        )
    except CaseInvalid as refused:
        errors = {("status" if k == "outcome" else k): v for k, v in refused.errors.items()}
        raise invalid(422, errors) from None
    except CaseError as error:
        raise _refused(error, "dispute_ended", "This dispute has ended.") from None
    return Answer(dispute_out(dispute))
