"""Custom fields: defining them (admins), checking the values people and files give them
(`clean_values`, the one check every form, import and API call uses), and finding and sorting
records by them at list speed."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from urllib.parse import urlsplit

import phonenumbers
import re2
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, literal_column, select, text
from sqlalchemy.orm import Session

from app.core.clock import DATE_RANGE_TEXT, typed_date
from app.core.money import to_money
from app.core.terminology import term
from app.custom_fields.models import ENTITY_TABLES, FIELD_TYPES, CustomField
from tenants.binding import bound_schema, bound_tenant_id, qualified
from tenants.models import Tenant
from tenants.services import member_names

TYPE_LABELS = {
    "text": "Text",
    "long_text": "Long text",
    "number": "Number",
    "money": "Money",
    "date": "Date",
    "yes_no": "Yes / no",
    "choice": "Single choice",
    "choices": "Multiple choice",
    "user": "Team member",
    "url": "Web address (URL)",
    "email": "E-mail",
    "phone": "Phone",
}
# "{Clients}": the workspace's word, filled where it is shown (app.core.terminology).
ENTITY_LABELS = {
    "clients": "{Clients}",
    "contacts": "Contacts",
    "projects": "{Projects}",
    "milestones": "{Milestones}",
    "invoices": "Invoices",
    "notices": "{Notices}",
    "payments": "Payments",
}
TEXT_KINDS = ("text", "long_text", "url", "email", "phone")
# The longest value each kind takes. Text is cut off here before any pattern looks at it, so a
# pattern's work is bounded by the field, not by what someone pastes.
MAX_LENGTH = {"text": 255, "long_text": 4000, "url": 500, "email": 254, "phone": 32}
MAX_PATTERN_LENGTH = 200
MAX_CHOICES = 100
MAX_FIELDS_PER_ENTITY = 100
NUMBER_LIMIT = Decimal("1e15")
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TRUE_WORDS = ("1", "yes", "y", "true", "on")
FALSE_WORDS = ("0", "no", "n", "false", "off")


class FieldError(ValueError):
    """A field definition that cannot be saved: messages by form field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# Definitions ---------------------------------------------------------------------------------


def definitions(session: Session, entity: str, *, archived: bool = False) -> list[CustomField]:
    """The entity's fields in their order: the live ones, or (archived=True) every one."""
    query = select(CustomField).where(CustomField.entity == entity)
    if not archived:
        query = query.where(CustomField.archived_at.is_(None))
    return list(session.scalars(query.order_by(CustomField.position, CustomField.id)))


def definitions_of(session: Session, entities: Sequence[str]) -> dict[str, list[CustomField]]:
    """`definitions` (the live ones) of several entities in one statement, by entity: a page
    showing a record and its rows (a project and its milestones)."""
    found: dict[str, list[CustomField]] = {entity: [] for entity in entities}
    query = (
        select(CustomField)
        .where(CustomField.entity.in_(entities), CustomField.archived_at.is_(None))
        .order_by(CustomField.position, CustomField.id)
    )
    for field in session.scalars(query):
        found[field.entity].append(field)
    return found


def list_fields(session: Session, entity: str) -> list[CustomField]:
    """The live fields offered in lists (column, filter, sort)."""
    return [field for field in definitions(session, entity) if field.in_lists]


def get_field(session: Session, field_id: int) -> CustomField | None:
    return session.get(CustomField, field_id)


def key_from_label(label: str) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    if not key or not key[0].isalpha():
        key = f"field_{key}".rstrip("_")
    return key[:40].rstrip("_")


def save_field(
    session: Session, entity: str, raw: Mapping, field: CustomField | None = None
) -> CustomField:
    """Create a field of `entity`, or change `field`, from the admin form's values. A field's
    key and type stay what they were made as: records hold values under that key, in that
    type. Choices left out of the list are archived, never removed (records keep them)."""
    if entity not in ENTITY_TABLES:
        raise FieldError({"entity": "Choose what the field belongs to."})
    errors: dict[str, str] = {}
    label = (raw.get("label") or "").strip()
    if not label:
        errors["label"] = "Give the field a name."
    elif len(label) > 100:
        errors["label"] = "Keep the name to 100 characters."
    if field is None:
        field_type = raw.get("field_type") or ""
        if field_type not in FIELD_TYPES:
            errors["field_type"] = "Choose the kind of value."
        key = (raw.get("key") or "").strip().lower() or key_from_label(label)
        if not KEY_PATTERN.match(key):
            errors["key"] = (
                "Use 1-40 lower-case letters, digits and _, starting with a letter, e.g. po_number."
            )
        elif hasattr(dict, key):
            # Templates read {{ invoice.custom.<key> }}: a dict's own name would win there.
            errors["key"] = f"“{key}” is a reserved word; choose another key."
        elif session.scalar(
            select(CustomField.id).where(CustomField.entity == entity, CustomField.key == key)
        ):
            errors["key"] = "Another field of these records has this key (archived ones too)."
        elif len(definitions(session, entity, archived=True)) >= MAX_FIELDS_PER_ENTITY:
            errors["label"] = f"These records have {MAX_FIELDS_PER_ENTITY} fields already."
    else:
        field_type, key = field.field_type, field.key
    help_text = (raw.get("help_text") or "").strip()
    if len(help_text) > 255:
        errors["help_text"] = "Keep the help text to 255 characters."
    section = (raw.get("section") or "").strip()
    if len(section) > 60:
        errors["section"] = "Keep the section name to 60 characters."
    validation = _clean_validation(field_type, raw, errors)
    choices = _clean_choices(field_type, raw, field, errors)
    if errors:
        raise FieldError(errors)
    if field is None:
        position = session.scalar(
            select(func.coalesce(func.max(CustomField.position), 0)).where(
                CustomField.entity == entity
            )
        )
        field = CustomField(entity=entity, key=key, field_type=field_type, position=position + 1)
    field.label = label
    field.help_text = help_text or None
    field.section = section or None
    field.required = _checked(raw.get("required"))
    field.in_lists = _checked(raw.get("in_lists"))
    field.print_on_invoice = entity == "invoices" and _checked(raw.get("print_on_invoice"))
    field.validation = validation
    field.choices = choices
    default_raw = raw.get("default_value")
    field.default_value = None
    if default_raw not in (None, "", []):
        default, problem = parse_value(session, field, default_raw, held=None)
        if problem:
            raise FieldError({"default_value": problem})
        field.default_value = default
    if field.id is None:
        session.add(field)
    session.flush()
    if field.in_lists:
        ensure_list_index(session, field)
    return field


def _checked(value) -> bool:
    return str(value or "").strip().lower() in TRUE_WORDS


def _clean_validation(field_type: str, raw: Mapping, errors: dict) -> dict:
    rules: dict = {}
    if field_type in ("number", "money"):
        for name in ("min", "max"):
            text_value = (raw.get(name) or "").strip()
            if text_value:
                number = _decimal(text_value)
                if number is None:
                    errors[name] = "Give a number, e.g. 100 or 2.5."
                else:
                    rules[name] = str(number)
    elif field_type == "date":
        for name in ("min", "max"):
            text_value = (raw.get(name) or "").strip()
            if text_value:
                day = typed_date(text_value)
                if day is None:
                    errors[name] = f"Give a date {DATE_RANGE_TEXT}."
                else:
                    rules[name] = day.isoformat()
    elif field_type in ("text", "long_text"):
        for name in ("min_length", "max_length"):
            text_value = (raw.get(name) or "").strip()
            if text_value:
                if not text_value.isdigit() or not 1 <= int(text_value) <= MAX_LENGTH[field_type]:
                    errors[name] = f"Give a whole number from 1 to {MAX_LENGTH[field_type]}."
                else:
                    rules[name] = int(text_value)
        pattern = raw.get("pattern") or ""
        if pattern:
            problem = pattern_problem(pattern)
            if problem:
                errors["pattern"] = problem
            else:
                rules["pattern"] = pattern
    if "min" in rules and "max" in rules and _ordered(rules["min"]) > _ordered(rules["max"]):
        errors["max"] = "The highest allowed must not be below the lowest."
    if rules.get("min_length", 0) > rules.get("max_length", MAX_LENGTH.get(field_type, 0)):
        errors["max_length"] = "The longest allowed must not be below the shortest."
    return rules


def _ordered(value: str):
    return _decimal(value) if _decimal(value) is not None else value


def pattern_problem(pattern: str) -> str | None:
    """Why a pattern cannot be used, or None. Patterns run on RE2, whose matching time grows
    with the length of the value only (no backtracking), so no pattern can hang a request;
    what RE2 cannot do in that time (back-references, look-arounds) is refused here."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"Keep the pattern to {MAX_PATTERN_LENGTH} characters."
    try:
        compiled_pattern(pattern)
    except re2.error:
        return (
            "This pattern cannot be used: check its brackets, or remove look-arounds and "
            "back-references, which are not supported."
        )
    return None


@lru_cache(maxsize=512)
def compiled_pattern(pattern: str):
    """The pattern compiled by RE2 (once per process); a refusal raises re2.error without
    RE2 writing its own log line."""
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


def _clean_choices(
    field_type: str, raw: Mapping, field: CustomField | None, errors: dict
) -> list[dict]:
    if field_type not in ("choice", "choices"):
        return []
    lines = [line.strip() for line in (raw.get("choices") or "").splitlines() if line.strip()]
    kept: dict[str, dict] = {}
    for line in lines:
        label = line[:100]
        value = key_from_label(label)
        if value in kept:
            errors["choices"] = f"“{label}” is in the list twice."
            continue
        kept[value] = {"value": value, "label": label, "archived": False}
    if not kept:
        errors["choices"] = "Give at least one choice, one per line."
    elif len(kept) > MAX_CHOICES:
        errors["choices"] = f"Keep to {MAX_CHOICES} choices."
    # A choice taken off the list is archived: records that hold it keep it, shown archived.
    for old in field.choices if field is not None else []:
        if old["value"] not in kept:
            kept[old["value"]] = {**old, "archived": True}
    return list(kept.values())


def choices_text(field: CustomField) -> str:
    """The admin form's choices box: the live choices, one per line."""
    return "\n".join(c["label"] for c in field.choices if not c.get("archived"))


def archive_field(field: CustomField) -> None:
    """Out of forms, lists and files from now on; every value records hold is kept."""
    if field.archived_at is None:
        field.archived_at = datetime.now(UTC)


def restore_field(field: CustomField) -> None:
    field.archived_at = None


def move_field(session: Session, field: CustomField, step: int) -> None:
    """Swap the field with its neighbour above (step -1) or below (+1) among its entity's."""
    fields = definitions(session, field.entity, archived=True)
    for position, each in enumerate(fields, start=1):
        each.position = position
    index = fields.index(field)
    other = index + step
    if 0 <= other < len(fields):
        fields[index].position, fields[other].position = (
            fields[other].position,
            fields[index].position,
        )
    session.flush()


# Values --------------------------------------------------------------------------------------


@dataclass
class _Workspace:
    """What some kinds need to know of the workspace: its country (phone numbers written
    without +) and its members (team-member fields)."""

    country: str
    member_ids: frozenset[int]


def _workspace(session: Session) -> _Workspace:
    # Read once per session and tenant: an import checks thousands of rows against it.
    key = ("custom_fields_workspace", bound_tenant_id(session))
    if key not in session.info:
        tenant = session.get(Tenant, key[1])
        session.info[key] = _Workspace(
            country=tenant.country,
            member_ids=frozenset(member_names(session, tenant.id, active_only=True)),
        )
    return session.info[key]


def member_choices(session: Session) -> list[tuple[int, str]]:
    """The current members (user id, name), by name: a team-member field's choices."""
    return list(member_names(session, bound_tenant_id(session), active_only=True).items())


def clean_values(
    session: Session,
    entity: str,
    submitted: Mapping,
    *,
    current: Mapping | None = None,
    fields: list[CustomField] | None = None,
    required_for_client: Collection[str] = (),
) -> tuple[dict, dict[str, str]]:
    """Check what was `submitted` ({field key: value as typed, or as JSON gives it}) for the
    entity's live fields. Returns the values to store and errors by field key (plain words).

    `current` is what the record holds now (None for a new record): fields left out of
    `submitted` keep their value, or start at their default on a new record. Values of
    archived fields and archived choices are kept as they were, never dropped. `fields`: the
    entity's definitions (archived ones too) when the caller read them once for many records
    (an import). `required_for_client`: keys of fields the record's client requires on top of
    the fields required everywhere (app.clients.models.ClientRequiredField); only forms and
    the API pass them, so what an import or the accounting sync brings is not refused."""
    values = dict(current or {})
    errors: dict[str, str] = {}
    if fields is None:
        fields = definitions(session, entity, archived=True)
    fields = {field.key: field for field in fields}
    for key in submitted:
        field = fields.get(key)
        if field is None:
            errors[key] = "There is no such field."
        elif field.is_archived:
            errors[key] = f"{field.label} is archived; its values can no longer be changed."
    for key, field in fields.items():
        if field.is_archived:
            continue
        if key not in submitted:
            if current is None and field.default_value is not None:
                values[key] = field.default_value
            if values.get(key) in (None, "", []):
                missing = _missing(field, required_for_client)
                if missing:
                    errors[key] = missing
            continue
        value, problem = parse_value(session, field, submitted[key], held=values.get(key))
        if problem:
            errors[key] = problem
        elif value is None:
            missing = _missing(field, required_for_client)
            if missing:
                errors[key] = missing
            values.pop(key, None)
        else:
            values[key] = value
    return values, errors


class ValuesInvalid(ValueError):
    """Custom values that cannot be stored: messages by input name (cf.<key>)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def values_for_new_record(session: Session, entity: str, submitted: Mapping | None) -> dict:
    """The custom values a new record starts with. `submitted` (a form's or the API's) is
    checked like any change (ValuesInvalid by input name); None, for a record a machine makes
    (a gateway's payment, the daily run's notice, a plan's milestones), gives the fields'
    defaults only: a required field must not stop money or notices that arrive on their own."""
    if submitted is None:
        return {
            field.key: field.default_value
            for field in definitions(session, entity)
            if field.default_value is not None
        }
    values, errors = clean_values(session, entity, submitted, current=None)
    if errors:
        raise ValuesInvalid({custom_error_name(key): problem for key, problem in errors.items()})
    return values


def change_record_values(session: Session, entity: str, record, submitted: Mapping) -> bool:
    """Change `record`'s custom values (its `custom_fields`) to what was `submitted`, the fields
    left out keeping theirs. Raises ValuesInvalid (nothing changed); says whether anything
    changed (the audit log records the change field by field)."""
    values, errors = clean_values(session, entity, submitted, current=record.custom_fields or {})
    if errors:
        raise ValuesInvalid({custom_error_name(key): problem for key, problem in errors.items()})
    if values == (record.custom_fields or {}):
        return False
    record.custom_fields = values
    session.flush()
    return True


def _missing(field: CustomField, required_for_client: Collection[str]) -> str | None:
    """The error of an empty field that must be filled in, or None."""
    if field.required:
        return f"{field.label} is required."
    if field.key in required_for_client:
        return f"{field.label} is required for this {term('client')}."
    return None


def parse_value(session: Session, field: CustomField, raw, *, held) -> tuple[object, str | None]:
    """One value in the field's stored form (None when empty), or the reason it is refused.
    `held` is what the record holds now: an archived choice it holds may stay."""
    if raw is None or (isinstance(raw, str) and not raw.strip()) or raw == []:
        return None, None
    kind = field.field_type
    rules = field.validation or {}
    if kind in TEXT_KINDS:
        if not isinstance(raw, str):
            return None, "Give text."
        value = raw.strip() if kind != "long_text" else raw.strip().replace("\r\n", "\n")
        limit = rules.get("max_length") or MAX_LENGTH[kind]
        if len(value) > limit:
            return None, f"Keep it to {limit} characters."
        return _parse_text_kind(session, kind, value, rules)
    if kind in ("number", "money"):
        number = _decimal(raw) if not isinstance(raw, bool | float) else None
        if number is None and isinstance(raw, float):
            number = _decimal(repr(raw))
        if number is None:
            return None, "Give a number, e.g. 1500 or 12.5."
        if kind == "money":
            try:
                number = to_money(number)
            except ValueError:
                return None, "Give an amount, e.g. 1500.00."
        if "min" in rules and number < Decimal(rules["min"]):
            return None, f"Give {rules['min']} or more."
        if "max" in rules and number > Decimal(rules["max"]):
            return None, f"Give {rules['max']} or less."
        return _number_text(number), None
    if kind == "date":
        day = typed_date(raw)
        if day is None:
            return None, f"Give a date {DATE_RANGE_TEXT}, e.g. 2027-03-31."
        if "min" in rules and day.isoformat() < rules["min"]:
            return None, f"Give a date on or after {rules['min']}."
        if "max" in rules and day.isoformat() > rules["max"]:
            return None, f"Give a date on or before {rules['max']}."
        return day.isoformat(), None
    if kind == "yes_no":
        if isinstance(raw, bool):
            return raw, None
        word = str(raw).strip().lower()
        if word in TRUE_WORDS:
            return True, None
        if word in FALSE_WORDS:
            return False, None
        return None, "Answer yes or no."
    if kind == "choice":
        return _parse_choice(field, raw, held if isinstance(held, str) else None)
    if kind == "choices":
        items = raw if isinstance(raw, list) else [p for p in str(raw).split(",")]
        chosen = []
        for item in items:
            value, problem = _parse_choice(
                field, item, item if isinstance(held, list) and item in held else None
            )
            if problem:
                return None, problem
            if value is not None and value not in chosen:
                chosen.append(value)
        return chosen or None, None
    if kind == "user":
        try:
            user_id = int(str(raw).strip())
        except ValueError:
            return None, "Choose a member of this workspace."
        if user_id not in _workspace(session).member_ids and user_id != held:
            return None, "Choose a member of this workspace."
        return user_id, None
    return None, "This field cannot be filled in."


def _parse_text_kind(session: Session, kind: str, value: str, rules: dict):
    if kind in ("text", "long_text"):
        if len(value) < rules.get("min_length", 0):
            return None, f"Give at least {rules['min_length']} characters."
        if rules.get("pattern") and not compiled_pattern(rules["pattern"]).fullmatch(value):
            return None, "This is not in the expected form."
        return value, None
    if kind == "url":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
            return None, "Give a web address starting with https:// or http://."
        return value, None
    if kind == "email":
        try:
            return validate_email(value, check_deliverability=False).normalized, None
        except EmailNotValidError:
            return None, "Give an e-mail address, e.g. accounts@example.com."
    try:
        number = phonenumbers.parse(value, _workspace(session).country)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_possible_number(number):
        return None, "Give a phone number, with +country code when it is abroad."
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def _parse_choice(field: CustomField, raw, held: str | None):
    wanted = str(raw).strip()
    if not wanted:
        return None, None
    for choice in field.choices:
        if (
            wanted in (choice["value"], choice["label"])
            or wanted.lower() == choice["label"].lower()
        ):
            if choice.get("archived") and choice["value"] != held:
                return None, f"“{choice['label']}” is no longer offered."
            return choice["value"], None
    return None, f"Choose from the list ({', '.join(live_choice_labels(field))})."


def live_choice_labels(field: CustomField) -> list[str]:
    return [c["label"] for c in field.choices if not c.get("archived")]


def _decimal(raw) -> Decimal | None:
    try:
        number = Decimal(str(raw).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or abs(number) >= NUMBER_LIMIT:
        return None
    return number


def _number_text(number: Decimal) -> str:
    """Numbers are stored as their decimal text (exact; JSON numbers would pass through
    floats in Python): "1500", "12.5", "1500.00" for money."""
    text_value = format(number, "f")
    return text_value


# Showing values ------------------------------------------------------------------------------


def display_value(field: CustomField, value, people: Mapping[int, str] | None = None) -> str:
    """A stored value as a person reads it: choices by their label (an archived one marked),
    yes/no, a member by name."""
    if value is None or value == "" or value == []:
        return ""
    kind = field.field_type
    if kind == "yes_no":
        return "Yes" if value else "No"
    if kind in ("choice", "choices"):
        labels = {c["value"]: c for c in field.choices}
        items = value if isinstance(value, list) else [value]
        shown = []
        for item in items:
            choice = labels.get(item)
            if choice is None:
                shown.append(str(item))
            else:
                shown.append(choice["label"] + (" (archived)" if choice.get("archived") else ""))
        return ", ".join(shown)
    if kind == "user":
        return (people or {}).get(value, f"Member {value}")
    if kind in ("number", "money"):
        number = _decimal(value)
        if number is None:
            return str(value)
        return f"{number:,.2f}" if kind == "money" else f"{number:,}"
    return str(value)


def export_value(field: CustomField, value):
    """A stored value as an export writes it: what the import reads back to the same value
    (a choice by its label, yes/no as Yes/No, a member by id, numbers as their text)."""
    if value is None or value == []:
        return None
    if field.field_type == "yes_no":
        return "Yes" if value else "No"
    if field.field_type in ("choice", "choices"):
        labels = {c["value"]: c["label"] for c in field.choices}
        items = value if isinstance(value, list) else [value]
        return ", ".join(labels.get(item, str(item)) for item in items)
    return str(value)


def form_value(field: CustomField, value) -> str | list:
    """A stored value as the form shows it."""
    if value is None:
        return [] if field.field_type == "choices" else ""
    if field.field_type == "yes_no":
        return "yes" if value else "no"
    if field.field_type == "choices":
        return list(value)
    return str(value)


FORM_PREFIX = "cf."


def custom_error_name(key: str) -> str:
    """A field's error and value on a record's form are keyed by its input's name."""
    return FORM_PREFIX + key


def form_values(fields: list[CustomField], stored: Mapping) -> dict:
    """The record's values as its form shows them, by input name (cf.<key>)."""
    return {custom_error_name(f.key): form_value(f, stored.get(f.key)) for f in fields}


def submitted_from_form(fields: list[CustomField], form) -> dict:
    """What a page's form sent for the fields (inputs named cf.<key>; multiple choice as
    several values)."""
    submitted = {}
    for field in fields:
        name = FORM_PREFIX + field.key
        if field.field_type == "choices":
            submitted[field.key] = [v for v in form.getlist(name) if v]
        else:
            submitted[field.key] = form.get(name, "")
    return submitted


def labelled_values(
    session: Session,
    entity: str,
    stored: Mapping,
    *,
    only_printed: bool = False,
    live: Sequence[CustomField] | None = None,
    people: Mapping[int, str] | None = None,
) -> list[tuple[str, str]]:
    """(label, shown value) of the record's filled-in live fields, in their order: for its
    page and, with only_printed, the invoice PDF (the fields marked to print). `live`: the
    entity's definitions when the caller read them already (a page showing the form too);
    `people`: the members' names by id (`member_choices`), when the caller shows many
    records."""
    fields = [
        field
        for field in (live if live is not None else definitions(session, entity))
        if field.key in stored and (field.print_on_invoice or not only_printed)
    ]
    if people is None:
        people = (
            dict(member_choices(session)) if any(f.field_type == "user" for f in fields) else {}
        )
    rows = []
    for field in fields:
        shown = display_value(field, stored.get(field.key), people)
        if shown:
            rows.append((field.label, shown))
    return rows


def template_variables(session: Session, entity: str, stored: Mapping) -> dict[str, str]:
    """The record's custom fields for message templates: {key: shown value} of every live
    field ("" when empty), so a template may name any of them."""
    return {
        field.key: display_value(field, stored.get(field.key))
        for field in definitions(session, entity)
    }


# Lists: filters and sorting ------------------------------------------------------------------


def sort_sql(field: CustomField, table: str = "") -> str:
    """The SQL the lists sort this field by; the field's list index is built on exactly this
    text, so PostgreSQL matches one to the other. Never NULL (keyset pages compare tuples):
    numbers and money as numeric (text that is not a number sorts first, as -1e15), the rest
    as text. The key is a checked slug (KEY_PATTERN), safe inside a literal."""
    assert KEY_PATTERN.match(field.key)
    column = f"{table}.custom_fields" if table else "custom_fields"
    value = f"({column} ->> '{field.key}')"
    if field.field_type in ("number", "money"):
        return (
            f"(CASE WHEN {value} ~ '^-?[0-9]+(\\.[0-9]+)?$' THEN {value}::numeric ELSE -1e15 END)"
        )
    if field.field_type in ("text", "long_text", "email", "url", "choice"):
        return f"lower(coalesce({value}, ''))"
    return f"coalesce({value}, '')"


def sort_is_numeric(field: CustomField) -> bool:
    return field.field_type in ("number", "money")


def list_index_name(field: CustomField) -> str:
    return f"ix_{ENTITY_TABLES[field.entity]}_cf_{field.id}"


def ensure_list_index(session: Session, field: CustomField) -> None:
    """The btree index on the field's sort expression, so that a list sorted by it reads the
    first page from the index instead of sorting every record. Built in this transaction:
    at 100,000 records that holds writes to the table for well under a second."""
    table = qualified(bound_schema(session), ENTITY_TABLES[field.entity])
    session.execute(
        text(f"CREATE INDEX IF NOT EXISTS {list_index_name(field)} ON {table} ({sort_sql(field)})")
    )


def filter_value(session: Session, field: CustomField, raw: str):
    """A list filter's value in the stored form, or None when it cannot match anything."""
    if field.field_type == "choices":
        value, problem = _parse_choice(field, raw, held=str(raw).strip())
        return [value] if value and not problem else None
    if field.field_type == "choice":
        value, problem = _parse_choice(field, raw, held=str(raw).strip())
        return value if not problem else None
    value, problem = parse_value(session, field, raw, held=None)
    if field.field_type == "user":
        try:
            return int(str(raw).strip())
        except ValueError:
            return None
    return None if problem else value


def filter_clause(session: Session, column, field: CustomField, raw: str):
    """Records whose `column` (a custom_fields JSONB column) holds `raw` in the field: one
    containment test (`@>`) that the table's GIN index answers. Matching nothing when the
    value cannot be one of the field's."""
    value = filter_value(session, field, raw)
    if value is None:
        return text("false")
    return column.contains({field.key: value})


@dataclass(frozen=True)
class ListChoice:
    """The custom-field part of a list's address, for the lists that have nothing of their own
    to add to it (projects, payments): filters (cf.<key>=value), the order (sort=cf.<key>,
    or -cf.<key> for highest first) and the columns shown (columns=key,key), over the fields
    offered in lists. templates/custom_fields/_list.html draws its controls and cells."""

    custom: tuple[tuple[str, str], ...] = ()
    sort: str = ""
    columns: tuple[str, ...] = ()
    fields: dict[str, CustomField] = dataclass_field(default_factory=dict, compare=False)

    @classmethod
    def from_args(cls, args: Mapping, fields: Sequence[CustomField]) -> ListChoice:
        by_key = {f.key: f for f in fields}
        sort = (args.get("sort") or "").strip()
        given = args.getlist("columns") if hasattr(args, "getlist") else [args.get("columns")]
        wanted = [key for value in given for key in (value or "").split(",")]
        return cls(
            custom=tuple(
                (key, value)
                for key in by_key
                if (value := (args.get(FORM_PREFIX + key) or "").strip()[:255])
            ),
            sort=sort if sort.lstrip("-").removeprefix(FORM_PREFIX) in by_key else "",
            columns=tuple(key for key in by_key if key in wanted),
            fields=by_key,
        )

    def as_args(self) -> dict[str, str]:
        values = {
            "sort": self.sort,
            "columns": ",".join(self.columns),
            **{FORM_PREFIX + key: value for key, value in self.custom},
        }
        return {key: value for key, value in values.items() if value}

    @property
    def shown_fields(self) -> list[CustomField]:
        return [self.fields[key] for key in self.columns]

    @property
    def custom_filter(self) -> dict[str, str]:
        return dict(self.custom)

    def clauses(self, session: Session, column) -> list:
        """The filters as conditions on `column` (the listed table's custom_fields)."""
        return [
            filter_clause(session, column, self.fields[key], value) for key, value in self.custom
        ]

    def order(self, table: str):
        """The chosen field's sort expression (the one its list index is on), ascending or
        descending, or None when the list keeps its own order."""
        if not self.sort:
            return None
        expression = literal_column(
            sort_sql(self.fields[self.sort.lstrip("-").removeprefix(FORM_PREFIX)], table)
        )
        return expression.desc() if self.sort.startswith("-") else expression.asc()
