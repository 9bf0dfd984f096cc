"""The workspace's own fields (app.custom_fields) as properties of the OData feed's entity
types: each live field of clients, invoices and payments becomes `Custom_<key>` (the key is the
field's stable slug, made once and never changed, so a report built on it keeps working when the
field's label is renamed; the prefix keeps it apart from the feed's own properties). Archived
fields are left out.

Each property reads the record's `custom_fields` JSONB through a typed SQL expression, so
`$select`, `$filter` and `$orderby` treat it as any other column. What each kind is in the feed:

- text, long text, URL, e-mail, phone → Edm.String (MaxLength: the longest the kind takes).
- number → Edm.Decimal, Scale="variable" (numbers keep the places they were typed with).
- money → Edm.Decimal, Precision 18, Scale 2, as the feed's own amounts.
- date → Edm.Date.
- yes/no → Edm.Boolean.
- single choice → Edm.String: the choice's label (an archived choice's too: the record still
  holds it), as the pages and the export show it; a report reads "Gold", not "gold".
- multiple choice → Edm.String: the labels joined by ", " in the order stored, as the export
  writes them. A Collection(Edm.String) would need `any()` to filter and Excel and Power BI
  open it as a nested list; one string filters with contains() and fits one cell.
- team member → Edm.String: the member's name. The feed has no set of users to look an id up
  in, and a report groups by who. A former member keeps their name (the record was theirs);
  an id that was never a member of this workspace reads "Member <id>", as the pages show it,
  so no other workspace's people are named.

A stored value that is not of the field's kind (which the one check, clean_values, never lets
in) reads as null rather than failing the whole page."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Numeric,
    Text,
    case,
    cast,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from app.api.odata_filter import Property
from app.custom_fields import services as custom_fields
from app.custom_fields.models import CustomField
from tenants.binding import bound_tenant_id
from tenants.models import Membership, User

PREFIX = "Custom_"
_NUMBER = r"^-?[0-9]+(\.[0-9]+)?$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def property_name(field: CustomField) -> str:
    return PREFIX + field.key


def custom_properties(session: Session, entity: str, model) -> tuple[Property, ...]:
    """The live custom fields of `entity` (a custom_fields entity: "clients", "invoices",
    "payments") as properties over `model`'s rows, in the fields' order."""
    tenant_id = bound_tenant_id(session)
    return tuple(
        _property(model, field, tenant_id) for field in custom_fields.definitions(session, entity)
    )


def _property(model, field: CustomField, tenant_id: int) -> Property:
    kind, name = field.field_type, property_name(field)
    text = model.custom_fields[field.key].astext
    if kind == "number":
        return Property(name, "Edm.Decimal", _number(text), scale="variable")
    if kind == "money":
        return Property(name, "Edm.Decimal", _number(text), precision=18, scale=2)
    if kind == "date":
        return Property(name, "Edm.Date", case((text.regexp_match(_DATE), cast(text, Date))))
    if kind == "yes_no":
        yes_no = case((text == "true", literal(True)), (text == "false", literal(False)))
        return Property(name, "Edm.Boolean", type_coerce(yes_no, Boolean))
    if kind == "choice":
        return Property(name, "Edm.String", _label(field, text), max_length=100)
    if kind == "choices":
        return Property(name, "Edm.String", _labels(model, field))
    if kind == "user":
        return Property(name, "Edm.String", _member_name(text, tenant_id), max_length=191)
    return Property(name, "Edm.String", text, max_length=custom_fields.MAX_LENGTH[kind])


def _number(text):
    return case((text.regexp_match(_NUMBER), cast(text, Numeric)))


def _label(field: CustomField, value):
    """The label of the choice `value` names (bound values, never SQL text); a value no
    longer among the choices reads as itself, as the pages show it."""
    labels = {choice["value"]: choice["label"] for choice in field.choices or []}
    if not labels:
        return value
    return type_coerce(case(labels, value=value, else_=value), Text)


def _labels(model, field: CustomField):
    stored = model.custom_fields[field.key]
    # Anything but an array (never written by clean_values) reads as no choices at all.
    array = case((func.jsonb_typeof(stored) == "array", stored), else_=func.jsonb_build_array())
    items = func.jsonb_array_elements_text(array).table_valued(
        "value", with_ordinality="ordinality"
    )
    joined = func.string_agg(
        _label(field, items.c.value), aggregate_order_by(literal(", "), items.c.ordinality)
    )
    return type_coerce(select(joined).select_from(items).correlate(model).scalar_subquery(), Text)


def _member_name(text, tenant_id: int):
    member_id = case((text.regexp_match(r"^[0-9]{1,18}$"), cast(text, BigInteger)))
    name = (
        select(User.full_name)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tenant_id, User.id == member_id)
        .scalar_subquery()
    )
    return type_coerce(func.coalesce(name, "Member " + cast(member_id, Text)), Text)
