"""A read-only OData v4 feed (`/api/odata/`) of a workspace's clients, invoices, their lines and
payments, so Excel's and Power BI's "OData feed" connectors load the data without code.

A request proves itself as /api/v1's do: a key or an OAuth access token, sent as a bearer token
or as the password of HTTP Basic (what those connectors send; the user name is not read). The
feed offers the service document, `$metadata` (CSDL XML) and each entity set with `$filter`
(app.api.odata_filter), `$select`, `$orderby`, `$top`, `$skip`, `$count` and server-driven
paging (`@odata.nextLink` carrying a `$skiptoken`), answered in OData's JSON format with minimal
metadata. Each entity set needs its area's read permission.

The workspace's live custom fields of clients, invoices and payments are properties of those
entity types too (app.api.odata_custom: names, types, values), so `$metadata` is the caller's
workspace's; a workspace without custom fields gets the feed's own properties only."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from urllib.parse import urlencode
from xml.etree import ElementTree

from flask import Blueprint, Response, current_app, g, request, url_for
from sqlalchemy import and_, false, func, literal, or_, select
from werkzeug.exceptions import HTTPException

from app.api import services
from app.api.odata_custom import custom_properties
from app.api.odata_filter import ODataError, Property, parse_filter
from app.audit.services import SOURCE_KEY
from app.clients.models import Client
from app.extensions import csrf, db, limiter
from app.invoicing.balance import outstanding_of
from app.invoicing.models import Invoice, InvoiceLine
from app.payments.models import Payment
from tenants.binding import bind_tenant

blueprint = Blueprint("odata", __name__, url_prefix="/api/odata")
csrf.exempt(blueprint)  # no cookies: a call proves itself by its key

NAMESPACE = "Duebook"
# Rows per page unless the client prefers fewer (Prefer: odata.maxpagesize); Power BI follows
# @odata.nextLink until there is none.
PAGE_SIZE = 1000
MAX_PAGE_SIZE = 5000
# $top and $skip beyond this name no page the feed could have.
MAX_COUNT = 2**31 - 1
JSON_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true"
SUPPORTED_OPTIONS = {
    "$filter",
    "$select",
    "$orderby",
    "$top",
    "$skip",
    "$count",
    "$skiptoken",
    "$format",
}
# Known to OData but not offered here: a request naming one is refused (501) rather than
# answered as if it had been applied.
UNSUPPORTED_OPTIONS = {"$expand", "$search", "$apply", "$compute", "$levels", "$index"}


@dataclass(frozen=True)
class EntitySet:
    name: str
    type_name: str
    scope: str
    model: type
    properties: tuple[Property, ...]
    # What every row of the set meets (a deleted client is not in the feed).
    where: tuple = ()
    # The values of the properties without a column, worked out for a page's ids.
    worked_out: Callable[[list[int]], dict[int, dict]] | None = None
    # The records' kind among app.custom_fields' entities, when they carry custom fields.
    custom_entity: str | None = None

    @property
    def by_name(self) -> dict[str, Property]:
        return {prop.name: prop for prop in self.properties}

    @property
    def id_column(self):
        return self.model.id


def _string(name: str, column, length: int, nullable: bool = True) -> Property:
    return Property(name, "Edm.String", column, nullable=nullable, max_length=length)


def _money(name: str, column, nullable: bool = False) -> Property:
    return Property(name, "Edm.Decimal", column, nullable=nullable, precision=18, scale=2)


def _moment(name: str, column, nullable: bool = True) -> Property:
    return Property(name, "Edm.DateTimeOffset", column, nullable=nullable)


def _id(name: str, column, nullable: bool = True) -> Property:
    return Property(name, "Edm.Int64", column, nullable=nullable)


def _amounts_due(invoice_ids: list[int]) -> dict[int, dict]:
    invoices = db.session.scalars(select(Invoice).where(Invoice.id.in_(invoice_ids))).all()
    owed = outstanding_of(db.session, invoices)
    return {invoice_id: {"AmountDue": amount} for invoice_id, amount in owed.items()}


ENTITY_SETS = (
    EntitySet(
        "Clients",
        "Client",
        "clients:read",
        Client,
        (
            _id("Id", Client.id, nullable=False),
            _string("ExternalId", Client.external_id, 64),
            _string("FullName", Client.full_name, 191, nullable=False),
            _string("ShortName", Client.short_name, 191, nullable=False),
            _string("Status", Client.status, 16, nullable=False),
            _string("Location", Client.location, 8, nullable=False),
            _string("Country", Client.country, 2, nullable=False),
            _string("City", Client.city, 100),
            _string("Region", Client.region, 64),
            _string("PostalCode", Client.postal_code, 16),
            _string("Gstin", Client.gstin, 15),
            _string("Pan", Client.pan, 10),
            _string("VatNumber", Client.vat_number, 20),
            _string("PaymentTerms", Client.payment_terms, 16, nullable=False),
            Property("PaymentDays", "Edm.Int32", Client.payment_days),
            _string("Currency", Client.currency, 3, nullable=False),
            _money("CreditLimit", Client.credit_limit, nullable=True),
            _string("PreferredLanguage", Client.preferred_language, 8, nullable=False),
            _string("PreferredChannel", Client.preferred_channel, 16, nullable=False),
            Property("Archived", "Edm.Boolean", Client.archived_at.is_not(None), nullable=False),
            _moment("CreatedAt", Client.created_at, nullable=False),
            _moment("UpdatedAt", Client.updated_at, nullable=False),
        ),
        where=(Client.deleted_at.is_(None),),
        custom_entity="clients",
    ),
    EntitySet(
        "Invoices",
        "Invoice",
        "invoices:read",
        Invoice,
        (
            _id("Id", Invoice.id, nullable=False),
            _string("Number", Invoice.number, 16),
            _string("Status", Invoice.status, 16, nullable=False),
            _id("ClientId", Invoice.client_id, nullable=False),
            _id("ProjectId", Invoice.project_id),
            Property("IssueDate", "Edm.Date", Invoice.issue_date),
            Property("DueDate", "Edm.Date", Invoice.due_date),
            _string("Currency", Invoice.currency, 3, nullable=False),
            _money("Subtotal", Invoice.subtotal),
            _money("Tax", Invoice.total - Invoice.subtotal),
            _money("Total", Invoice.total),
            # What is still owed (payments, TDS, credit notes and write-offs taken off): worked
            # out per page by the invoices' own rule, so it cannot be filtered or sorted on.
            _money("AmountDue", None),
            _money("WrittenOffAmount", Invoice.written_off_amount, nullable=True),
            _moment("CreatedAt", Invoice.created_at, nullable=False),
            _moment("IssuedAt", Invoice.issued_at),
            _moment("SentAt", Invoice.sent_at),
        ),
        worked_out=_amounts_due,
        custom_entity="invoices",
    ),
    EntitySet(
        "InvoiceLines",
        "InvoiceLine",
        "invoices:read",
        InvoiceLine,
        (
            _id("Id", InvoiceLine.id, nullable=False),
            _id("InvoiceId", InvoiceLine.invoice_id, nullable=False),
            Property("Position", "Edm.Int32", InvoiceLine.position, nullable=False),
            _string("Description", InvoiceLine.description, 255, nullable=False),
            _string("HsnSac", InvoiceLine.hsn_sac, 8),
            Property("Quantity", "Edm.Decimal", InvoiceLine.quantity, False, precision=12, scale=3),
            _money("UnitPrice", InvoiceLine.unit_price),
            _money("TaxableValue", InvoiceLine.taxable_value),
            Property("TaxRate", "Edm.Decimal", InvoiceLine.tax_rate, False, precision=5, scale=2),
            _money("Total", InvoiceLine.total),
            _id("MilestoneId", InvoiceLine.milestone_id),
        ),
    ),
    EntitySet(
        "Payments",
        "Payment",
        "payments:read",
        Payment,
        (
            _id("Id", Payment.id, nullable=False),
            _id("ClientId", Payment.client_id, nullable=False),
            Property("ReceivedOn", "Edm.Date", Payment.received_on, nullable=False),
            _money("Amount", Payment.amount),
            _string("Currency", Payment.currency, 3, nullable=False),
            _string("Method", Payment.method, 16, nullable=False),
            _string("Reference", Payment.reference, 120),
            Property("Voided", "Edm.Boolean", Payment.voided_at.is_not(None), nullable=False),
            _string("VoidReason", Payment.void_reason, 255),
            _moment("CreatedAt", Payment.created_at, nullable=False),
        ),
        custom_entity="payments",
    ),
)
_BY_NAME = {entity_set.name: entity_set for entity_set in ENTITY_SETS}


def _with_custom_fields(entity_set: EntitySet) -> EntitySet:
    """The entity set as the caller's workspace has it: its own properties, then the
    workspace's live custom fields of its records."""
    if entity_set.custom_entity is None:
        return entity_set
    custom = custom_properties(db.session, entity_set.custom_entity, entity_set.model)
    return replace(entity_set, properties=entity_set.properties + custom) if custom else entity_set


# Authentication and errors ----------------------------------------------------------------------


def _credential() -> str:
    """The key or access token: a bearer token, or the password of HTTP Basic."""
    auth = request.authorization
    if auth is None:
        return ""
    if auth.type == "bearer":
        return auth.token or ""
    if auth.type == "basic":
        return auth.password or ""
    return ""


limiter.limit(
    lambda: current_app.config["API_RATE_LIMIT"],
    key_func=lambda: "api:" + services.rate_subject(db.session, _credential()),
)(blueprint)


@blueprint.before_request
def _authenticate():
    caller = services.caller_of(db.session, _credential())
    if caller is None:
        raise ODataError(
            401,
            "unauthorized",
            "Give an API key (made under the workspace's Settings → API keys) as the password "
            "(any user name), or send it as a bearer token.",
        )
    g.api_caller = caller
    bind_tenant(db.session, caller.tenant.id, actor_user_id=caller.acting_user_id)
    db.session.info["actor_ip"] = request.remote_addr
    db.session.info[SOURCE_KEY] = f"API key “{caller.key_name}”"


def error_response(error: ODataError) -> Response:
    body = {"error": {"code": error.code, "message": error.message}}
    if error.target:
        body["error"]["target"] = error.target
    response = Response(json.dumps(body), status=error.status, mimetype="application/json")
    response.headers["OData-Version"] = "4.0"
    if error.status == 401:
        response.headers.add("WWW-Authenticate", 'Basic realm="Duebook OData", charset="UTF-8"')
        response.headers.add("WWW-Authenticate", 'Bearer realm="duebook"')
    return response


blueprint.errorhandler(ODataError)(error_response)


@blueprint.errorhandler(HTTPException)
def http_error(error: HTTPException) -> Response:
    """An HTTP error as OData's error body (the app's error pages send the feed's here too)."""
    code = getattr(error, "code", None) or 500
    name = getattr(error, "name", None) or "Internal Server Error"
    described = getattr(error, "description", None) if code != 500 else None
    response = error_response(ODataError(code, name.lower().replace(" ", "_"), described or name))
    if code == 429:
        limit = limiter.current_limit
        response.headers["Retry-After"] = str(
            max(int(limit.reset_at - time.time()) + 1, 1) if limit else 60
        )
    return response


# The service document and $metadata -------------------------------------------------------------


def _root() -> str:
    return url_for("odata.service", _external=True)


def _json_answer(body: str, status: int = 200) -> Response:
    response = Response(body, status=status, content_type=JSON_TYPE)
    response.headers["OData-Version"] = "4.0"
    return response


@blueprint.get("/", strict_slashes=False)
def service():
    """The entity sets this key may read."""
    readable = [s for s in ENTITY_SETS if s.scope in g.api_caller.scopes]
    return _json_answer(
        json.dumps(
            {
                "@odata.context": _root() + "$metadata",
                "value": [{"name": s.name, "kind": "EntitySet", "url": s.name} for s in readable],
            }
        )
    )


@blueprint.get("/$metadata")
def metadata():
    entity_sets = tuple(_with_custom_fields(entity_set) for entity_set in ENTITY_SETS)
    response = Response(metadata_document(entity_sets), content_type="application/xml")
    response.headers["OData-Version"] = "4.0"
    return response


def metadata_document(entity_sets: tuple[EntitySet, ...]) -> bytes:
    edmx = "http://docs.oasis-open.org/odata/ns/edmx"
    edm = "http://docs.oasis-open.org/odata/ns/edm"
    ElementTree.register_namespace("edmx", edmx)
    ElementTree.register_namespace("", edm)
    root = ElementTree.Element(f"{{{edmx}}}Edmx", Version="4.0")
    services_ = ElementTree.SubElement(root, f"{{{edmx}}}DataServices")
    schema = ElementTree.SubElement(services_, f"{{{edm}}}Schema", Namespace=NAMESPACE)
    for entity_set in entity_sets:
        entity_type = ElementTree.SubElement(
            schema, f"{{{edm}}}EntityType", Name=entity_set.type_name
        )
        key = ElementTree.SubElement(entity_type, f"{{{edm}}}Key")
        ElementTree.SubElement(key, f"{{{edm}}}PropertyRef", Name="Id")
        for prop in entity_set.properties:
            facets = {"Name": prop.name, "Type": prop.edm_type}
            if not prop.nullable:
                facets["Nullable"] = "false"
            if prop.max_length:
                facets["MaxLength"] = str(prop.max_length)
            if prop.precision:
                facets["Precision"] = str(prop.precision)
            if prop.scale is not None:
                facets["Scale"] = str(prop.scale)
            ElementTree.SubElement(entity_type, f"{{{edm}}}Property", facets)
    container = ElementTree.SubElement(schema, f"{{{edm}}}EntityContainer", Name="Container")
    for entity_set in entity_sets:
        ElementTree.SubElement(
            container,
            f"{{{edm}}}EntitySet",
            Name=entity_set.name,
            EntityType=f"{NAMESPACE}.{entity_set.type_name}",
        )
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


# Entity sets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    selected: tuple[Property, ...]
    select_given: bool
    condition: object | None
    order: tuple[tuple[Property, bool], ...]
    top: int | None
    skip: int
    count: bool
    # Where the page before ended: rows sent so far, and the last row's id and sort values.
    sent: int
    last_id: int | None
    last_values: tuple


def _entity_set(name: str) -> EntitySet:
    entity_set = _BY_NAME.get(name)
    if entity_set is None:
        raise ODataError(
            404,
            "not_found",
            f"There is no entity set “{name}”. Entity sets: {', '.join(_BY_NAME)}.",
        )
    if entity_set.scope not in g.api_caller.scopes:
        raise ODataError(
            403, "insufficient_scope", f"This key needs the `{entity_set.scope}` permission."
        )
    return _with_custom_fields(entity_set)


def _options(entity_set: EntitySet) -> _Options:
    args = request.args
    for name in args:
        if len(args.getlist(name)) > 1:
            raise ODataError(400, "invalid_option", f"Give {name} once.", name)
        if name in UNSUPPORTED_OPTIONS:
            raise ODataError(501, "not_implemented", f"This feed does not offer {name}.", name)
        if name.startswith("$") and name not in SUPPORTED_OPTIONS:
            raise ODataError(400, "invalid_option", f"{name} is not an OData option.", name)
    fmt = args.get("$format", "json")
    if fmt.split(";")[0].strip().lower() not in ("json", "application/json"):
        raise ODataError(406, "not_acceptable", "This feed answers in JSON only.", "$format")
    by_name = entity_set.by_name
    selected, select_given = entity_set.properties, False
    text = args.get("$select", "").strip()
    if text and text != "*":
        names = [part.strip() for part in text.split(",")]
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ODataError(
                400,
                "invalid_select",
                f"Not a property of {entity_set.name}: {', '.join(unknown)}.",
                "$select",
            )
        selected = tuple(p for p in entity_set.properties if p.name in names)
        select_given = True
    condition = parse_filter(args["$filter"], by_name) if args.get("$filter") else None
    order = _order(args.get("$orderby", ""), by_name)
    sent, last_id, last_values = _skiptoken(args.get("$skiptoken"), order)
    return _Options(
        selected=selected,
        select_given=select_given,
        condition=condition,
        order=order,
        top=_count_option("$top"),
        skip=_count_option("$skip") or 0,
        count=_boolean_option("$count"),
        sent=sent,
        last_id=last_id,
        last_values=last_values,
    )


_ORDER_ITEM = re.compile(r"^(\w+)(?:\s+(asc|desc))?$")


def _order(text: str, by_name: dict[str, Property]) -> tuple[tuple[Property, bool], ...]:
    order = []
    for part in filter(None, (part.strip() for part in text.split(","))):
        match = _ORDER_ITEM.match(part)
        prop = by_name.get(match.group(1)) if match else None
        if prop is None or prop.column is None:
            raise ODataError(
                400,
                "invalid_orderby",
                f"“{part}” cannot be sorted on: give a property with a column, then asc or desc.",
                "$orderby",
            )
        order.append((prop, match.group(2) == "desc"))
    return tuple(order)


def _count_option(name: str) -> int | None:
    text = request.args.get(name)
    if text is None:
        return None
    if not text.isdigit() or int(text) > MAX_COUNT:
        raise ODataError(400, "invalid_option", f"{name} takes a whole number from 0.", name)
    return int(text)


def _boolean_option(name: str) -> bool:
    text = request.args.get(name, "false")
    if text not in ("true", "false"):
        raise ODataError(400, "invalid_option", f"{name} is true or false.", name)
    return text == "true"


def _skiptoken(token: str | None, order) -> tuple[int, int | None, tuple]:
    """Where the page before ended: how many rows were sent, the last one's id and its values
    of the $orderby properties (read back in their types)."""
    if token is None:
        return 0, None, ()
    refused = ODataError(
        400, "invalid_skiptoken", "Follow @odata.nextLink as it is given.", "$skiptoken"
    )
    try:
        sent, last_id, values = json.loads(
            base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        )
        if not (
            isinstance(sent, int)
            and 0 <= sent <= MAX_COUNT
            and isinstance(last_id, int)
            and 0 < last_id < 2**63
            and isinstance(values, list)
            and len(values) == len(order)
        ):
            raise refused
        return (
            sent,
            last_id,
            tuple(_sort_value(p, v) for (p, _), v in zip(order, values, strict=True)),
        )
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise refused from None


def _sort_value(prop: Property, value):
    """A sort value as the skiptoken carries it, back in the property's type."""
    if value is None:
        return None
    wanted = {
        "Edm.String": str,
        "Edm.Boolean": bool,
        "Edm.Decimal": str,
        "Edm.Date": str,
        "Edm.DateTimeOffset": str,
    }.get(prop.edm_type, int)
    if type(value) is not wanted:
        raise ValueError(value)
    if prop.edm_type == "Edm.Decimal":
        return Decimal(value)
    if prop.edm_type == "Edm.Date":
        return date.fromisoformat(value)
    if prop.edm_type == "Edm.DateTimeOffset":
        return datetime.fromisoformat(value)
    return value


def _token_value(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):  # a datetime too
        return value.isoformat()
    return value


def _after(options: _Options, id_column):
    """The rows after the last one sent, in the order asked and then by id: each page starts
    where the one before ended (a row added meanwhile neither repeats nor hides a row, and a
    page deep into a million invoices costs what the first does). OData sorts null below any
    value: first going up, last going down."""
    clauses, same_so_far = [], []
    for (prop, descending), value in zip(options.order, options.last_values, strict=True):
        column = prop.column
        if isinstance(value, bool):
            value = literal(value)  # a bound value: a bare Python bool compares by IS only
        if value is None:
            beyond = false() if descending else column.is_not(None)
            same = column.is_(None)
        else:
            beyond = or_(column < value, column.is_(None)) if descending else column > value
            same = column == value
        clauses.append(and_(*same_so_far, beyond))
        same_so_far.append(same)
    clauses.append(and_(*same_so_far, id_column > options.last_id))
    return or_(*clauses)


def _page_size() -> int:
    match = re.search(r"odata\.maxpagesize=(\d+)", request.headers.get("Prefer", ""))
    return min(int(match.group(1)), MAX_PAGE_SIZE) if match and int(match.group(1)) else PAGE_SIZE


def _filtered(entity_set: EntitySet, options: _Options, *columns):
    statement = select(*columns).select_from(entity_set.model).where(*entity_set.where)
    if options.condition is not None:
        statement = statement.where(options.condition)
    return statement


@blueprint.get("/<entity_set_name>")
def entity_set_page(entity_set_name: str):
    entity_set = _entity_set(entity_set_name)
    options = _options(entity_set)
    id_column = entity_set.id_column
    columns = [p.column.label(p.name) for p in options.selected if p.column is not None]
    statement = _filtered(entity_set, options, id_column.label("_id"), *columns)
    count = (
        db.session.scalar(
            select(func.count()).select_from(_filtered(entity_set, options, id_column).subquery())
        )
        if options.count
        else None
    )
    size = _page_size()
    remaining = None if options.top is None else max(options.top - options.sent, 0)
    wanted = size if remaining is None else min(size, remaining)
    sort_columns = [prop.column.label(f"_sort_{i}") for i, (prop, _) in enumerate(options.order)]
    statement = statement.add_columns(*sort_columns).order_by(
        *(
            prop.column.desc().nulls_last() if descending else prop.column.asc().nulls_first()
            for prop, descending in options.order
        ),
        id_column,
    )
    if options.last_id is None:
        statement = statement.offset(options.skip)
    else:
        statement = statement.where(_after(options, id_column))
    more_possible = remaining is None or remaining > wanted
    rows = db.session.execute(statement.limit(wanted + (1 if more_possible else 0))).all()
    page, more = rows[:wanted], len(rows) > wanted
    worked_out = (
        entity_set.worked_out([row._id for row in page])
        if entity_set.worked_out and any(p.column is None for p in options.selected) and page
        else {}
    )
    ieee754 = _ieee754_compatible()
    items = []
    for row in page:
        mapping = row._mapping
        values = worked_out.get(row._id, {})
        items.append(
            "{"
            + ",".join(
                json.dumps(p.name)
                + ":"
                + _json_value(
                    mapping[p.name] if p.column is not None else values.get(p.name), p, ieee754
                )
                for p in options.selected
            )
            + "}"
        )
    context = _root() + "$metadata#" + entity_set.name
    if options.select_given:
        context += "(" + ",".join(p.name for p in options.selected) + ")"
    head = {"@odata.context": context}
    if count is not None:
        head["@odata.count"] = count
    body = json.dumps(head)[:-1] + ',"value":[' + ",".join(items) + "]"
    if more:
        last = page[-1]._mapping
        position = [
            options.sent + len(page),
            last["_id"],
            [_token_value(last[f"_sort_{i}"]) for i in range(len(options.order))],
        ]
        token = base64.urlsafe_b64encode(json.dumps(position).encode()).decode()
        query = {k: v for k, v in request.args.items() if k != "$skiptoken"}
        query["$skiptoken"] = token.rstrip("=")
        body += ',"@odata.nextLink":' + json.dumps(request.base_url + "?" + urlencode(query))
    response = _json_answer(body + "}")
    if ieee754:
        response.headers["Content-Type"] = JSON_TYPE + ";IEEE754Compatible=true"
    if "odata.maxpagesize" in request.headers.get("Prefer", ""):
        response.headers["Preference-Applied"] = f"odata.maxpagesize={size}"
    return response


@blueprint.get("/<entity_set_name>/$count")
def entity_set_count(entity_set_name: str):
    entity_set = _entity_set(entity_set_name)
    options = _options(entity_set)
    count = db.session.scalar(
        select(func.count()).select_from(
            _filtered(entity_set, options, entity_set.id_column).subquery()
        )
    )
    response = Response(str(count), content_type="text/plain")
    response.headers["OData-Version"] = "4.0"
    return response


def _ieee754_compatible() -> bool:
    """Whether the client asked for Int64 and Decimal values as strings (IEEE754Compatible),
    as JavaScript clients do to keep every digit."""
    asked = request.headers.get("Accept", "") + ";" + request.args.get("$format", "")
    return "ieee754compatible=true" in asked.replace(" ", "").lower()


def _json_value(value, prop: Property, ieee754: bool) -> str:
    """A value in OData's JSON: decimals written digit for digit (never through a float)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        text = f"{value:.{prop.scale}f}" if isinstance(prop.scale, int) else format(value, "f")
        return json.dumps(text) if ieee754 else text
    if isinstance(value, int):
        return json.dumps(str(value)) if ieee754 and prop.edm_type == "Edm.Int64" else str(value)
    if isinstance(value, datetime):
        return json.dumps(value.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    if isinstance(value, date):
        return json.dumps(value.isoformat())
    return json.dumps(value)
