"""/clients and their contacts: read, and changed through app.clients.services with the same
rules and messages as the pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import g, url_for
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import selectinload

from app.api.problems import Problem, invalid
from app.api.rest import Answer, ListQuery, decode_cursor, encode_cursor, operation, require_match
from app.clients import services
from app.clients.models import CHANNELS, CONTACT_ROLES, PAYMENT_TERMS, STATUSES, Client, Contact
from app.clients.rules import LANGUAGES, TEXT_LIMITS
from app.custom_fields.services import FORM_PREFIX, ValuesInvalid, change_record_values
from app.extensions import db

_MONEY_PATTERN = r"^\d{1,16}(\.\d{1,2})?$"
CUSTOM_OUT = (
    "The workspace's own fields (Settings → Custom fields) by key: text, URLs, e-mails and "
    "phones (E.164) as strings, numbers and amounts as decimal strings, dates as YYYY-MM-DD, "
    "yes/no as booleans, a choice as its value, a multiple choice as a list of values, a team "
    "member as a user id. Values of archived fields and choices are kept."
)
CUSTOM_IN = (
    "Custom field values by key, checked by each field's rules as the pages check them (an "
    "error per field as custom_fields.<key>); a field left out keeps its value, null empties "
    "it. Numbers and amounts as strings or JSON numbers; a choice by its value or label."
)
# One custom value as the API takes it (see CUSTOM_IN).
CustomValue = str | bool | int | float | list[str] | None


class CustomChange(BaseModel):
    """What a change of a record whose other fields have operations of their own (a project,
    a payment) takes: its custom field values."""

    model_config = ConfigDict(extra="forbid")

    custom_fields: dict[str, CustomValue] = Field(max_length=100, description=CUSTOM_IN)


def _text(key: str, description: str = ""):
    return Field(None, max_length=TEXT_LIMITS[key], description=description)


class ContactOut(BaseModel):
    id: int
    full_name: str
    job_title: str | None
    roles: list[Literal[CONTACT_ROLES]]
    email: str | None
    phone: str | None = Field(description="E.164, e.g. +919812345678.")
    preferred_language: str | None
    email_consent: str | None
    sms_consent: str | None
    whatsapp_consent: str | None


class ClientOut(BaseModel):
    id: int
    external_id: str | None
    full_name: str
    short_name: str
    status: Literal[STATUSES]
    location: Literal["local", "foreign"]
    country: str
    address_line1: str | None
    address_line2: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    gstin: str | None
    pan: str | None
    abn: str | None
    vat_number: str | None
    tin: str | None
    payment_terms: Literal[PAYMENT_TERMS]
    payment_days: int | None
    payment_terms_note: str | None
    currency: str
    credit_limit: str | None = Field(description="A decimal amount with 2 places.")
    preferred_language: str
    preferred_channel: str
    tags: list[str]
    engagement_manager_user_id: int | None
    industry_id: int | None
    new_business_year: int | None
    archived: bool
    created_at: datetime
    updated_at: datetime
    contacts: list[ContactOut]
    custom_fields: dict[str, Any] = Field(description=CUSTOM_OUT)


class ClientIn(BaseModel):
    """A client's fields as a create or a change takes them; a change sends only what changes."""

    model_config = ConfigDict(extra="forbid")

    full_name: str | None = _text("full_name")
    short_name: str | None = _text("short_name")
    status: Literal[STATUSES] | None = None
    location: Literal["local", "foreign"] | None = Field(
        None, description="local: in the workspace's country; foreign: anywhere else."
    )
    country: str | None = Field(None, max_length=2, description="ISO 3166 code, e.g. IN.")
    address_line1: str | None = _text("address_line1")
    address_line2: str | None = _text("address_line2")
    city: str | None = _text("city")
    region: str | None = _text("region", "A state's name or GST state code in India.")
    postal_code: str | None = _text("postal_code")
    external_id: str | None = _text("external_id", "Your system's id for the client.")
    gstin: str | None = Field(None, max_length=15)
    pan: str | None = Field(None, max_length=10)
    abn: str | None = Field(None, max_length=11)
    vat_number: str | None = Field(None, max_length=20)
    tin: str | None = Field(None, max_length=32)
    tax_registration: str | None = _text("tax_registration")
    remittance_details: str | None = _text("remittance_details")
    payment_terms: Literal[PAYMENT_TERMS] | None = None
    payment_days: int | None = Field(None, ge=1, le=365)
    payment_terms_note: str | None = _text("payment_terms_note")
    currency: str | None = Field(None, max_length=3, description="ISO 4217 code, e.g. INR.")
    credit_limit: str | None = Field(None, pattern=_MONEY_PATTERN, description="e.g. 50000.00")
    preferred_language: Literal[tuple(LANGUAGES)] | None = None
    preferred_channel: Literal[CHANNELS] | None = None
    tags: list[str] | None = Field(None, max_length=20)
    engagement_manager_user_id: int | None = Field(None, ge=1, le=2**63 - 1)
    industry_id: int | None = Field(None, ge=1, le=2**31 - 1)
    new_business_year: int | None = Field(None, ge=1900, le=9999)
    custom_fields: dict[str, CustomValue] | None = Field(
        None, max_length=100, description=CUSTOM_IN
    )


class NewClient(ClientIn):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "full_name": "Acme Industries Private Limited",
                    "short_name": "Acme",
                    "location": "local",
                    "payment_terms": "net",
                    "payment_days": 30,
                }
            ]
        },
    )

    full_name: str = Field(max_length=TEXT_LIMITS["full_name"])
    short_name: str = Field(max_length=TEXT_LIMITS["short_name"])
    location: Literal["local", "foreign"]


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full_name: str = Field(max_length=191)
    job_title: str | None = _text("job_title")
    roles: list[Literal[CONTACT_ROLES]] = Field(default_factory=list, max_length=3)
    email: str | None = Field(None, max_length=254)
    phone: str | None = Field(None, max_length=32, description="E.164, or national.")
    preferred_language: Literal[tuple(LANGUAGES)] | None = None


class ContactChange(ContactIn):
    """A contact's fields as a change takes them: only what changes."""

    full_name: str | None = Field(None, max_length=191)
    roles: list[Literal[CONTACT_ROLES]] | None = Field(None, max_length=3)


class ClientQuery(ListQuery):
    status: Literal[STATUSES] | None = None
    external_id: str | None = Field(None, max_length=64)
    q: str | None = Field(None, max_length=100, description="Part of a name, GSTIN or city.")
    updated_since: datetime | None = None
    sort: Literal["created", "-created", "name", "-name"] = "created"


def _contact_out(contact: Contact) -> ContactOut:
    return ContactOut.model_validate(contact, from_attributes=True)


def client_out(client: Client) -> ClientOut:
    return ClientOut(
        **{
            name: getattr(client, name)
            for name in ClientOut.model_fields
            if hasattr(client, name)
            and name not in ("credit_limit", "contacts", "archived", "tags", "custom_fields")
        },
        custom_fields=dict(client.custom_fields or {}),
        credit_limit=None if client.credit_limit is None else f"{client.credit_limit:.2f}",
        archived=client.archived_at is not None,
        tags=list(client.tags or []),
        contacts=[_contact_out(c) for c in client.contacts if c.deleted_at is None],
    )


def raw_fields(body: BaseModel) -> dict:
    """The fields sent, as the strings the clients' rules read (a form's values); custom
    values as they came, for custom_fields' rules."""
    raw = {}
    for key, value in body.model_dump(exclude_unset=True).items():
        if key == services.CUSTOM:
            raw[key] = value or {}
        elif isinstance(value, list):
            raw[key] = ", ".join(value)
        else:
            raw[key] = "" if value is None else str(value)
    return raw


def api_errors(errors: dict[str, str]) -> dict[str, str]:
    """The rules' errors by the API's field names: a custom field's (cf.<key> on the pages)
    as custom_fields.<key>."""
    return {
        f"{services.CUSTOM}.{key.removeprefix(FORM_PREFIX)}"
        if key.startswith(FORM_PREFIX)
        else key: (message)
        for key, message in errors.items()
    }


def rule_code(field: str, message: str) -> str:
    if message in {services.taken_message(key) for key in services.TAKEN}:
        return "taken"
    if "required" in message:
        return "required"
    return "invalid"


def change_custom_values(entity: str, record, values: dict) -> None:
    """A record's custom fields changed as its page changes them (only those sent, each by its
    rules); a refusal is the API's 422, one error per field."""
    try:
        change_record_values(db.session, entity, record, values)
    except ValuesInvalid as error:
        raise invalid(422, api_errors(error.errors), rule_code) from None


def change_client(client: Client, body: BaseModel) -> Client:
    """The fields sent, through the clients' own update and its rules (422 per field)."""
    context = services.client_context(db.session, g.api_caller.tenant)
    try:
        services.update_client(db.session, context, client, raw_fields(body), manager_notice())
    except services.ClientError as error:
        raise invalid(422, api_errors(error.errors), rule_code) from None
    db.session.refresh(client)
    return client


def found_client(client_id: int) -> Client:
    client = services.get_client(db.session, client_id)
    if client is None:
        raise Problem(404, "not_found", "There is no client with this id.")
    return client


def manager_notice() -> services.ManagerNotice:
    tenant = g.api_caller.tenant
    return services.ManagerNotice(
        tenant=tenant,
        client_url=lambda client_id: url_for(
            "clients.detail", tenant_slug=tenant.slug, client_id=client_id, _external=True
        ),
    )


_SORTS = {"created": Client.created_at, "name": func.lower(Client.full_name)}


@operation(
    "GET",
    "/clients",
    summary="List clients",
    tag="clients",
    scope="clients:read",
    query=ClientQuery,
    response=ClientOut,
    listed=True,
)
def list_clients(query: ClientQuery):
    """Clients not deleted (archived ones too: see `archived`), filtered and sorted, a page at
    a time."""
    column = _SORTS[query.sort.lstrip("-")]
    descending = query.sort.startswith("-")
    statement = select(Client).where(Client.deleted_at.is_(None))
    if query.status:
        statement = statement.where(Client.status == query.status)
    if query.external_id:
        statement = statement.where(Client.external_id == query.external_id)
    if query.q:
        statement = statement.where(services.SEARCH_HAYSTACK.like(services.search_pattern(query.q)))
    if query.updated_since:
        statement = statement.where(Client.updated_at >= query.updated_since)
    if query.cursor:
        value, last_id = decode_cursor(query.cursor, 2)
        if query.sort.lstrip("-") == "created":
            value = _cursor_time(value)
        if not isinstance(value, str | datetime) or not isinstance(last_id, int):
            raise invalid(400, {"cursor": "Use the next_cursor of a previous page, unchanged."})
        after = tuple_(column, Client.id)
        statement = statement.where(
            after < tuple_(value, last_id) if descending else after > tuple_(value, last_id)
        )
    order = (column.desc(), Client.id.desc()) if descending else (column, Client.id)
    rows = db.session.scalars(
        statement.options(selectinload(Client.contacts)).order_by(*order).limit(query.limit + 1)
    ).all()
    page, more = rows[: query.limit], len(rows) > query.limit
    next_cursor = None
    if more:
        last = page[-1]
        key = (
            last.created_at.isoformat()
            if query.sort.lstrip("-") == "created"
            else (last.full_name.lower())
        )
        next_cursor = encode_cursor([key, last.id])
    return Answer([client_out(c) for c in page], next_cursor=next_cursor)


def _cursor_time(value) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


@operation(
    "POST",
    "/clients",
    summary="Create a client",
    tag="clients",
    scope="clients:write",
    body=NewClient,
    response=ClientOut,
    status=201,
)
def create_client(body: NewClient):
    """Checked by the same rules as the new-client page; each refused field in `errors`."""
    context = services.client_context(db.session, g.api_caller.tenant)
    sent = raw_fields(body)
    defaults = services.new_client_defaults(g.api_caller.tenant)
    if sent.get("payment_terms", "net") not in ("net", "mfi"):
        defaults.pop("payment_days")  # days go with Net and MFI terms only
    try:
        client = services.create_client(db.session, context, defaults | sent, manager_notice())
    except services.ClientError as error:
        raise invalid(422, api_errors(error.errors), rule_code) from None
    return Answer(
        client_out(client),
        status=201,
        location=url_for("api.get_client", client_id=client.id),
    )


@operation(
    "GET",
    "/clients/<int:client_id>",
    summary="Get a client",
    tag="clients",
    scope="clients:read",
    response=ClientOut,
)
def get_client(client_id: int):
    return Answer(client_out(found_client(client_id)))


@operation(
    "PATCH",
    "/clients/<int:client_id>",
    summary="Change a client",
    tag="clients",
    scope="clients:write",
    body=ClientIn,
    response=ClientOut,
    conditional=True,
)
def update_client(client_id: int, body: ClientIn):
    """Only the fields sent change; the record is checked whole, as the page checks it."""
    client = found_client(client_id)
    require_match(client_out(client))
    return Answer(client_out(change_client(client, body)))


@operation(
    "DELETE",
    "/clients/<int:client_id>",
    summary="Delete a client",
    tag="clients",
    scope="clients:write",
    status=204,
    refusals=(409,),
)
def delete_client(client_id: int):
    """Refused (409) while money is owed or a notice is open, as on the page."""
    client = found_client(client_id)
    try:
        services.delete_client(db.session, client)
    except services.ClientStillHeld as held:
        raise Problem(
            409, "client_still_held", "This client cannot be deleted yet.", str(held)
        ) from None
    return Answer(None)


@operation(
    "POST",
    "/clients/<int:client_id>/contacts",
    summary="Add a contact",
    tag="clients",
    scope="clients:write",
    body=ContactIn,
    response=ContactOut,
    status=201,
)
def add_contact(client_id: int, body: ContactIn):
    client = found_client(client_id)
    try:
        contact = services.save_contact(
            db.session,
            client,
            raw_fields(body) | {"roles": body.roles},
            g.api_caller.tenant.country,
        )
    except services.ClientError as error:
        raise invalid(422, error.errors, rule_code) from None
    return Answer(_contact_out(contact), status=201)


def _contact_of(client_id: int, contact_id: int) -> Contact:
    contact = services.get_contact(db.session, found_client(client_id), contact_id)
    if contact is None:
        raise Problem(404, "not_found", "This client has no contact with this id.")
    return contact


@operation(
    "PATCH",
    "/clients/<int:client_id>/contacts/<int:contact_id>",
    summary="Change a contact",
    tag="clients",
    scope="clients:write",
    body=ContactChange,
    response=ContactOut,
    conditional=True,
)
def update_contact(client_id: int, contact_id: int, body: ContactChange):
    """Only the fields sent change; the contact is checked whole, as the page checks it."""
    contact = _contact_of(client_id, contact_id)
    current = _contact_out(contact)
    require_match(current)
    changes = body.model_dump(exclude_unset=True)
    merged = {key: getattr(current, key) for key in ContactIn.model_fields if key != "roles"} | {
        key: value for key, value in changes.items() if key != "roles"
    }
    raw = {key: "" if value is None else str(value) for key, value in merged.items()}
    raw["roles"] = changes.get("roles") if changes.get("roles") is not None else current.roles
    try:
        services.save_contact(db.session, contact.client, raw, g.api_caller.tenant.country, contact)
    except services.ClientError as error:
        raise invalid(422, error.errors, rule_code) from None
    return Answer(_contact_out(contact))


@operation(
    "DELETE",
    "/clients/<int:client_id>/contacts/<int:contact_id>",
    summary="Remove a contact",
    tag="clients",
    scope="clients:write",
    status=204,
)
def delete_contact(client_id: int, contact_id: int):
    contact = _contact_of(client_id, contact_id)
    services.delete_contact(db.session, contact)
    return Answer(None)
