"""A client's invoice settings, sites and documents: read and changed through
app.clients.services and app.clients.documents, with the same rules and messages as the client
page's sections, Sites and Documents tabs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from flask import current_app, g, request
from pydantic import BaseModel, ConfigDict, Field

from app.api.problems import Problem, invalid
from app.api.resources.clients import (
    change_client,
    found_client,
    rule_code,
)
from app.api.resources.money import MONEY_SCHEMA, Money, money
from app.api.rest import Answer, ListQuery, decode_cursor, encode_cursor, operation, require_match
from app.clients import documents, services
from app.clients.models import PAYMENT_TERMS, Client, Document, Site
from app.clients.rules import TEXT_LIMITS
from app.core.clock import tenant_today
from app.core.storage import get_storage
from app.extensions import db

_MONEY_PATTERN = r"^\d{1,16}(\.\d{1,2})?$"


# Invoice settings -----------------------------------------------------------------------------


class InvoiceSettingsOut(BaseModel):
    """What the client's invoices are made with: the page's Payment terms section, the
    currency and credit limit, and what its invoices print about tax and remittance."""

    payment_terms: Literal[PAYMENT_TERMS]
    payment_days: int | None
    payment_terms_note: str | None
    currency: str
    credit_limit: Money | None = Field(json_schema_extra=MONEY_SCHEMA)
    tax_registration: str | None
    remittance_details: str | None


class InvoiceSettingsIn(BaseModel):
    """Only the fields sent change; the client is checked whole, as the page checks it."""

    model_config = ConfigDict(extra="forbid")

    payment_terms: Literal[PAYMENT_TERMS] | None = None
    payment_days: int | None = Field(None, ge=1, le=365)
    payment_terms_note: str | None = Field(None, max_length=TEXT_LIMITS["payment_terms_note"])
    currency: str | None = Field(None, max_length=3, description="ISO 4217 code, e.g. INR.")
    credit_limit: str | None = Field(None, pattern=_MONEY_PATTERN, description="e.g. 50000.00")
    tax_registration: str | None = Field(None, max_length=TEXT_LIMITS["tax_registration"])
    remittance_details: str | None = Field(None, max_length=TEXT_LIMITS["remittance_details"])


def invoice_settings_out(client: Client) -> InvoiceSettingsOut:
    return InvoiceSettingsOut(
        **{
            name: getattr(client, name)
            for name in InvoiceSettingsOut.model_fields
            if name != "credit_limit"
        },
        credit_limit=money(client.credit_limit),
    )


@operation(
    "GET",
    "/clients/<int:client_id>/invoice-settings",
    summary="Get a client's invoice settings",
    tag="clients",
    scope="clients:read",
    response=InvoiceSettingsOut,
)
def get_invoice_settings(client_id: int):
    return Answer(invoice_settings_out(found_client(client_id)))


@operation(
    "PATCH",
    "/clients/<int:client_id>/invoice-settings",
    summary="Change a client's invoice settings",
    tag="clients",
    scope="clients:write",
    body=InvoiceSettingsIn,
    response=InvoiceSettingsOut,
    conditional=True,
)
def update_invoice_settings(client_id: int, body: InvoiceSettingsIn):
    """Net and MFI terms need payment days; Custom terms need the note: the page's rules."""
    client = found_client(client_id)
    require_match(invoice_settings_out(client))
    return Answer(invoice_settings_out(change_client(client, body)))


# Sites ----------------------------------------------------------------------------------------


class SiteOut(BaseModel):
    id: int
    name: str
    address_line1: str | None
    address_line2: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None
    latitude: str | None = Field(description="Decimal degrees.")
    longitude: str | None = Field(description="Decimal degrees.")
    site_contact_id: int | None
    created_at: datetime


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=191)
    address_line1: str | None = Field(None, max_length=191)
    address_line2: str | None = Field(None, max_length=191)
    city: str | None = Field(None, max_length=100)
    region: str | None = Field(None, max_length=64)
    postal_code: str | None = Field(None, max_length=16)
    country: str | None = Field(None, max_length=2, description="ISO 3166 code, e.g. IN.")
    latitude: str | None = Field(None, max_length=20, description="e.g. 12.971599")
    longitude: str | None = Field(None, max_length=20, description="e.g. 77.594563")
    site_contact_id: int | None = Field(None, ge=1, le=2**63 - 1)


def site_out(site: Site) -> SiteOut:
    return SiteOut(
        **{
            name: getattr(site, name)
            for name in SiteOut.model_fields
            if name not in ("latitude", "longitude")
        },
        latitude=None if site.latitude is None else f"{site.latitude:f}",
        longitude=None if site.longitude is None else f"{site.longitude:f}",
    )


def _site_raw(body: SiteIn) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in body.model_dump().items()}


def _page_of(items: list, query: ListQuery) -> tuple[list, str | None]:
    """A page of a client's short list (sites, documents: tens, in the page's order), by the
    position after the cursor's."""
    start = 0
    if query.cursor:
        (start,) = decode_cursor(query.cursor, 1)
        if not isinstance(start, int) or start < 0:
            raise invalid(400, {"cursor": "Use the next_cursor of a previous page, unchanged."})
    end = start + query.limit
    return items[start:end], encode_cursor([end]) if end < len(items) else None


@operation(
    "GET",
    "/clients/<int:client_id>/sites",
    summary="List a client's sites",
    tag="clients",
    scope="clients:read",
    query=ListQuery,
    response=SiteOut,
    listed=True,
)
def list_sites(client_id: int, query: ListQuery):
    """By name."""
    page, next_cursor = _page_of(services.list_sites(db.session, found_client(client_id)), query)
    return Answer([site_out(s) for s in page], next_cursor=next_cursor)


@operation(
    "POST",
    "/clients/<int:client_id>/sites",
    summary="Add a site",
    tag="clients",
    scope="clients:write",
    body=SiteIn,
    response=SiteOut,
    status=201,
)
def add_site(client_id: int, body: SiteIn):
    """Coordinates both or neither; the site contact one of the client's contacts."""
    try:
        site = services.save_site(db.session, found_client(client_id), _site_raw(body))
    except services.ClientError as error:
        raise invalid(422, error.errors, rule_code) from None
    return Answer(site_out(site), status=201)


def _site(client: Client, site_id: int) -> Site:
    site = services.get_site(db.session, client, site_id)
    if site is None:
        raise Problem(404, "not_found", "This client has no site with this id.")
    return site


@operation(
    "PUT",
    "/clients/<int:client_id>/sites/<int:site_id>",
    summary="Change a site",
    tag="clients",
    scope="clients:write",
    body=SiteIn,
    response=SiteOut,
    conditional=True,
)
def update_site(client_id: int, site_id: int, body: SiteIn):
    """The whole site, as the page's form sends it."""
    client = found_client(client_id)
    site = _site(client, site_id)
    require_match(site_out(site))
    try:
        services.save_site(db.session, client, _site_raw(body), site)
    except services.ClientError as error:
        raise invalid(422, error.errors, rule_code) from None
    return Answer(site_out(site))


@operation(
    "DELETE",
    "/clients/<int:client_id>/sites/<int:site_id>",
    summary="Remove a site",
    tag="clients",
    scope="clients:write",
    status=204,
)
def delete_site(client_id: int, site_id: int):
    services.delete_site(db.session, _site(found_client(client_id), site_id))
    return Answer(None)


# Documents ------------------------------------------------------------------------------------


class DocumentVersionOut(BaseModel):
    version: int
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_at: datetime


class DocumentOut(BaseModel):
    id: int
    title: str
    category: str | None
    expires_on: date | None
    created_at: datetime
    versions: list[DocumentVersionOut] = Field(description="Newest first.")


class DocumentUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(max_length=documents.TITLE_LENGTH[1])
    category: str | None = Field(None, max_length=documents.CATEGORY_LENGTH)
    expires_on: date | None = Field(None, description="Today or later.")


def document_out(document: Document) -> DocumentOut:
    return DocumentOut(
        id=document.id,
        title=document.title,
        category=document.category,
        expires_on=document.expires_on,
        created_at=document.created_at,
        versions=[
            DocumentVersionOut.model_validate(v, from_attributes=True) for v in document.versions
        ],
    )


@operation(
    "GET",
    "/clients/<int:client_id>/documents",
    summary="List a client's documents",
    tag="clients",
    scope="clients:read",
    query=ListQuery,
    response=DocumentOut,
    listed=True,
)
def list_documents(client_id: int, query: ListQuery):
    """By title, each with its versions."""
    rows = documents.list_documents(db.session, found_client(client_id))
    page, next_cursor = _page_of(rows, query)
    return Answer([document_out(d) for d in page], next_cursor=next_cursor)


@operation(
    "POST",
    "/clients/<int:client_id>/documents",
    summary="Upload a document",
    tag="clients",
    scope="documents:write",
    upload=DocumentUpload,
    upload_bytes=documents.MAX_FILE_BYTES,
    response=DocumentOut,
    status=201,
)
def upload_document(client_id: int, body: DocumentUpload):
    """multipart/form-data: the fields and the file (`file`). The page's checks: a PDF, PNG,
    JPG, DOCX, XLSX, CSV or TXT file whose content is what its name says, not empty, at most
    25 MB."""
    client = found_client(client_id)
    part = request.files.get("file")
    upload = (
        documents.UploadedFile(filename=part.filename, stream=part.stream)
        if part is not None and part.filename
        else None
    )
    try:
        document = documents.upload_document(
            db.session,
            get_storage(current_app),
            client,
            title=body.title,
            category=body.category,
            expires_on=body.expires_on,
            upload=upload,
            today=tenant_today(db.session),
            uploaded_by_user_id=g.api_caller.acting_user_id,
        )
    except documents.DocumentError as error:
        raise invalid(422, error.errors) from None
    db.session.refresh(document)
    return Answer(document_out(document), status=201)


@operation(
    "DELETE",
    "/clients/<int:client_id>/documents/<int:document_id>",
    summary="Delete a document",
    tag="clients",
    scope="documents:write",
    status=204,
)
def delete_document(client_id: int, document_id: int):
    """It leaves the client's lists; its versions are kept, as when deleted on the page."""
    document = documents.get_document(db.session, found_client(client_id), document_id)
    if document is None:
        raise Problem(404, "not_found", "This client has no document with this id.")
    documents.delete_document(db.session, document)
    return Answer(None)
