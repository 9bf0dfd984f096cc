"""A rule's condition tree: what it may say (the fields of each entity and of its related
records, the operators fitting each field's type), how it is checked when saved, and its two
readings, which must agree:

- `matching_ids`: the whole tree as ONE SQL select of the matching records' ids (scheduled
  rules run set-based over every record at once);
- `evaluate`: the tree in Python over one record's facts (event-triggered rules), the facts
  read by `record_facts` with the very SQL expressions the select uses, so the two differ only
  in how the operators are applied, which tests/test_rules.py compares on the same data.

A condition tree is data: {"all": [...]}, {"any": [...]}, {"not": node}, and leaves
{"field": "client.tags", "op": "has_tag", "value": "vip"}. Nothing in it is ever evaluated as
code or as a template; values reach SQL as bound parameters.

NULL: a leaf about a missing value is false (a missing due date is not "before" anything), and
its negations ("not equals", "has no tag", `not`) are true. In SQL a leaf may yield NULL, which
WHERE, AND and OR treat as false already; `not` turns its operand two-valued first
(`NOT coalesce(x, false)`), so NULL never flips into "matches".

Custom fields: a path "custom.<key>" (or "client.custom.<key>" on invoices) is answered by the
resolver set with `set_custom_field_resolver` (the custom fields area's), which returns a
`Field` like the built-in ones, or None when the field is unknown or archived."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from sqlalchemy import (
    Date,
    Integer,
    Select,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.clients.models import PAYMENT_TERMS, STATUSES, Client
from app.core.terminology import reworded, title_term
from app.invoicing.models import INVOICE_STATUSES, OWING_STATUSES, Invoice

TYPES = ("text", "choice", "number", "money", "date", "tags", "user", "bool")
OPERATORS: dict[str, tuple[str, ...]] = {
    "text": ("equals", "not_equals", "in", "contains", "is_empty", "is_not_empty"),
    "choice": ("equals", "not_equals", "in", "is_empty", "is_not_empty"),
    "number": (
        "equals",
        "not_equals",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "is_empty",
        "is_not_empty",
    ),
    "date": ("equals", "before", "after", "between", "is_empty", "is_not_empty"),
    "tags": ("has_tag", "not_has_tag", "is_empty", "is_not_empty"),
    "user": ("equals", "not_equals", "is_empty", "is_not_empty"),
    "bool": ("is_true", "is_false"),
}
OPERATORS["money"] = OPERATORS["number"]
OPERATOR_LABELS = {
    "equals": "is",
    "not_equals": "is not",
    "in": "is one of",
    "contains": "contains",
    "gt": "is more than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "between": "is between",
    "before": "is before",
    "after": "is after",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "has_tag": "has the tag",
    "not_has_tag": "does not have the tag",
    "is_true": "is yes",
    "is_false": "is no",
}
# Operators that take no value, and those that take two (low, high) or a list.
NO_VALUE = frozenset({"is_empty", "is_not_empty", "is_true", "is_false"})
TWO_VALUES = frozenset({"between"})
LIST_VALUE = frozenset({"in"})
# Limits that keep a rule readable and its query small.
MAX_DEPTH = 5
MAX_LEAVES = 50
MAX_TEXT = 200
MAX_LIST = 50


@dataclass(frozen=True)
class Field:
    """A field a condition may name: its path, label and type, and its SQL expression over the
    entity's query (the record's table, joined to its client for invoices), given the day the
    rule runs on. `choices` are (value, label) for "choice" fields."""

    path: str
    label: str
    type: str
    expression: Callable[[date], ColumnElement]
    choices: tuple[tuple[str, str], ...] = field(default=())


class CustomFieldResolver(Protocol):
    """What the custom fields area gives the rules: the fields of an entity ("clients",
    "invoices") as `Field`s with path "custom.<key>", and one field by its key, None when it
    does not exist or was archived (a rule naming it is then turned off with the reason)."""

    def fields(self, entity: str) -> Sequence[Field]: ...

    def resolve(self, entity: str, key: str) -> Field | None: ...


class _NoCustomFields:
    def fields(self, entity: str) -> Sequence[Field]:
        return ()

    def resolve(self, entity: str, key: str) -> Field | None:
        return None


_custom_fields: CustomFieldResolver = _NoCustomFields()


def set_custom_field_resolver(resolver: CustomFieldResolver | None) -> None:
    """Connected when the app is made (None: no custom fields)."""
    global _custom_fields
    _custom_fields = resolver or _NoCustomFields()


def _days_overdue(today: date) -> ColumnElement:
    """Days past due of an invoice that still owes (0 when not due or not owing)."""
    late = cast(literal(today, Date) - Invoice.due_date, Integer)
    return case((and_(Invoice.status.in_(OWING_STATUSES), Invoice.due_date < today), late), else_=0)


def _owing_late(today: date):
    return and_(
        Invoice.client_id == Client.id,
        Invoice.status.in_(OWING_STATUSES),
        Invoice.due_date < today,
    )


def _choices(values) -> tuple[tuple[str, str], ...]:
    return tuple((value, value.replace("_", " ").capitalize()) for value in values)


def _client_fields(prefix: str, label_prefix: str) -> list[Field]:
    def f(path, label, type_, expression, choices=()):
        return Field(f"{prefix}{path}", f"{label_prefix}{label}", type_, expression, choices)

    return [
        f("name", "name", "text", lambda today: Client.full_name),
        f("status", "status", "choice", lambda today: Client.status, _choices(STATUSES)),
        f("region", "state / region", "text", lambda today: Client.region),
        f("city", "city", "text", lambda today: Client.city),
        f("country", "country", "text", lambda today: Client.country),
        f(
            "payment_terms",
            "payment terms",
            "choice",
            lambda today: Client.payment_terms,
            _choices(PAYMENT_TERMS),
        ),
        f("payment_days", "payment days", "number", lambda today: Client.payment_days),
        f("credit_limit", "credit limit", "money", lambda today: Client.credit_limit),
        f("tags", "tags", "tags", lambda today: Client.tags),
        f(
            "engagement_manager",
            "engagement manager",
            "user",
            lambda today: Client.engagement_manager_user_id,
        ),
        f("collector", "collector", "user", lambda today: Client.collector_user_id),
        f("preferred_channel", "preferred channel", "text", lambda today: Client.preferred_channel),
        f(
            "preferred_language",
            "preferred language",
            "text",
            lambda today: Client.preferred_language,
        ),
    ]


def _client_only_fields() -> list[Field]:
    """A client's figures from its invoices (related records), as correlated subqueries."""
    return [
        Field(
            "overdue_invoices",
            "overdue invoices (count)",
            "number",
            lambda today: (
                select(func.count()).where(_owing_late(today)).correlate(Client).scalar_subquery()
            ),
        ),
        Field(
            "days_overdue",
            "days overdue (oldest invoice)",
            "number",
            lambda today: func.coalesce(
                select(func.max(cast(literal(today, Date) - Invoice.due_date, Integer)))
                .where(_owing_late(today))
                .correlate(Client)
                .scalar_subquery(),
                0,
            ),
        ),
        Field("created_on", "added on", "date", lambda today: cast(Client.created_at, Date)),
    ]


def _invoice_fields() -> list[Field]:
    return [
        Field("number", "Invoice number", "text", lambda today: Invoice.number),
        Field(
            "status",
            "Invoice status",
            "choice",
            lambda today: Invoice.status,
            _choices(INVOICE_STATUSES),
        ),
        Field("currency", "Currency", "text", lambda today: Invoice.currency),
        Field("total", "Total", "money", lambda today: Invoice.total),
        Field("issue_date", "Issue date", "date", lambda today: Invoice.issue_date),
        Field("due_date", "Due date", "date", lambda today: Invoice.due_date),
        Field("days_overdue", "Days overdue", "number", _days_overdue),
        Field("sent", "Sent to the client", "bool", lambda today: Invoice.sent_at.is_not(None)),
        Field("disputed", "Disputed", "bool", lambda today: Invoice.status == "disputed"),
    ]


def _capitalised(fields: list[Field]) -> list[Field]:
    return [
        Field(f.path, f.label[:1].upper() + f.label[1:], f.type, f.expression, f.choices)
        for f in fields
    ]


_BUILT_IN: dict[str, dict[str, Field]] = {
    "clients": {f.path: f for f in _capitalised(_client_fields("", "") + _client_only_fields())},
    "invoices": {f.path: f for f in _invoice_fields() + _client_fields("client.", "Client's ")},
}


def _in_workspace_words(built_in: Field) -> Field:
    """A built-in field's label ("Client's status", "Sent to the client") in the workspace's
    words; the labels of custom fields are the workspace's own and stay as written."""
    return replace(built_in, label=reworded(built_in.label))


def fields_of(entity: str) -> list[Field]:
    """Every field a condition on `entity` may name, the built-in ones first."""
    fields = [_in_workspace_words(f) for f in _BUILT_IN[entity].values()]
    fields += list(_custom_fields.fields(entity))
    if entity == "invoices":
        owner = title_term("client")
        fields += [
            Field(f"client.{f.path}", f"{owner}'s {f.label}", f.type, f.expression, f.choices)
            for f in _custom_fields.fields("clients")
        ]
    return fields


def resolve(entity: str, path: str) -> Field | None:
    """The field `path` names on `entity`, None when there is no such field (any more)."""
    if path.startswith("custom."):
        found = _custom_fields.resolve(entity, path.removeprefix("custom."))
        return found
    if entity == "invoices" and path.startswith("client.custom."):
        found = _custom_fields.resolve("clients", path.removeprefix("client.custom."))
        return (
            Field(f"client.{found.path}", found.label, found.type, found.expression, found.choices)
            if found
            else None
        )
    found = _BUILT_IN[entity].get(path)
    return _in_workspace_words(found) if found else None


# -- checking a tree when it is saved ---------------------------------------------------------


class ConditionError(ValueError):
    """A tree that cannot be saved: `problems` are (where, what) in plain words."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{where}: {what}" for where, what in problems))
        self.problems = problems


def check(entity: str, tree: Any) -> dict:
    """The tree as it will be stored (values normalised: numbers and dates as their ISO text,
    lists as lists), or ConditionError naming each problem by its place ("Condition 2.1")."""
    problems: list[tuple[str, str]] = []
    leaves = [0]
    checked = _check_node(entity, tree, "Conditions", 1, problems, leaves)
    if leaves[0] > MAX_LEAVES:
        problems.append(("Conditions", f"A rule may have at most {MAX_LEAVES} conditions."))
    if problems:
        raise ConditionError(problems)
    return checked


def _check_node(entity, node, where, depth, problems, leaves):
    if not isinstance(node, dict) or len(node) == 0:
        problems.append((where, "This is not a condition or a group."))
        return None
    if depth > MAX_DEPTH:
        problems.append((where, f"Groups may be nested at most {MAX_DEPTH} deep."))
        return None
    if set(node) <= {"all", "any"} and len(node) == 1:
        (kind,) = node
        children = node[kind]
        if not isinstance(children, list):
            problems.append((where, "A group holds a list of conditions."))
            return None
        return {
            kind: [
                _check_node(entity, child, f"{_place(where)}{i}", depth + 1, problems, leaves)
                for i, child in enumerate(children, start=1)
            ]
        }
    if set(node) == {"not"}:
        return {"not": _check_node(entity, node["not"], where, depth + 1, problems, leaves)}
    if not set(node) <= {"field", "op", "value"} or "field" not in node or "op" not in node:
        problems.append((where, "A condition names a field, an operator and a value."))
        return None
    leaves[0] += 1
    return _check_leaf(entity, node, where, problems)


def _place(where: str) -> str:
    return "Condition " if where == "Conditions" else f"{where}."


def _check_leaf(entity, node, where, problems):
    path, op = node["field"], node["op"]
    found = resolve(entity, path) if isinstance(path, str) else None
    if found is None:
        problems.append((where, f"There is no field {path!r} on {entity} (any more)."))
        return node
    if op not in OPERATORS[found.type]:
        problems.append((where, f"{found.label} cannot be compared with {op!r}."))
        return node
    try:
        value = normalised_value(found, op, node.get("value"))
    except ValueError as problem:
        problems.append((where, f"{found.label}: {problem}"))
        return node
    leaf = {"field": path, "op": op}
    if op not in NO_VALUE:
        leaf["value"] = value
    return leaf


def normalised_value(found: Field, op: str, raw: Any) -> Any:
    """The value as stored, or ValueError saying what is expected."""
    if op in NO_VALUE:
        return None
    if op in TWO_VALUES:
        if not isinstance(raw, list | tuple) or len(raw) != 2:
            raise ValueError("give a lowest and a highest value.")
        low, high = (_one_value(found, op, part) for part in raw)
        if _typed(found.type, low) > _typed(found.type, high):
            raise ValueError("the lowest value is above the highest.")
        return [low, high]
    if op in LIST_VALUE:
        items = raw if isinstance(raw, list) else str(raw or "").split(",")
        items = [_one_value(found, op, item) for item in items if str(item).strip()]
        if not items or len(items) > MAX_LIST:
            raise ValueError(f"give between 1 and {MAX_LIST} values, separated by commas.")
        return items
    return _one_value(found, op, raw)


def _one_value(found: Field, op: str, raw: Any) -> Any:
    text = str(raw if raw is not None else "").strip()
    if found.type in ("number", "money"):
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError("give a number, e.g. 30 or 2500.50.") from None
        if not number.is_finite() or abs(number) >= Decimal("1e15"):
            raise ValueError("give a number, e.g. 30 or 2500.50.")
        return str(number)
    if found.type == "date":
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError("give a date as YYYY-MM-DD.") from None
    if found.type == "user":
        if not text.isdigit():
            raise ValueError("choose a member.")
        return int(text)
    if not text:
        raise ValueError("give a value.")
    if len(text) > MAX_TEXT:
        raise ValueError(f"at most {MAX_TEXT} characters.")
    if found.type == "choice" and found.choices and text not in dict(found.choices):
        raise ValueError("choose one of the listed values.")
    return text


def _as_stored(type_: str, actual: Any) -> Any:
    """A fact read from the database in the form a stored value takes."""
    if type_ == "date":
        return actual.isoformat()
    if type_ == "user":
        return int(actual)
    return str(actual)


def _typed(type_: str, value: Any) -> Any:
    if type_ in ("number", "money"):
        return Decimal(value)
    if type_ == "date":
        return date.fromisoformat(value)
    if type_ == "text":
        return value.lower()
    return value


def paths_in(tree: dict) -> set[str]:
    """The field paths a tree names."""
    if "all" in tree or "any" in tree:
        return set().union(*(paths_in(child) for child in tree.get("all", tree.get("any", []))))
    if "not" in tree:
        return paths_in(tree["not"])
    return {tree["field"]}


# -- SQL: one select per rule ----------------------------------------------------------------


def scope(entity: str) -> Select:
    """The records a rule on `entity` looks at: clients not deleted or archived; invoices
    issued (not drafts), of such a client."""
    if entity == "clients":
        return select(Client.id).where(Client.deleted_at.is_(None), Client.archived_at.is_(None))
    return (
        select(Invoice.id)
        .join(Client, Client.id == Invoice.client_id)
        .where(Invoice.status != "draft", Client.deleted_at.is_(None))
    )


def matching_ids(entity: str, tree: dict, today: date) -> Select:
    """The ids of the records of `entity` the tree matches on `today`: one select."""
    return scope(entity).where(compile_tree(entity, tree, today))


def compile_tree(entity: str, tree: dict, today: date) -> ColumnElement:
    if "all" in tree:
        children = [compile_tree(entity, child, today) for child in tree["all"]]
        return and_(true(), *children)
    if "any" in tree:
        children = [compile_tree(entity, child, today) for child in tree["any"]]
        return or_(false(), *children)
    if "not" in tree:
        return not_(func.coalesce(compile_tree(entity, tree["not"], today), false()))
    found = resolve(entity, tree["field"])
    if found is None:
        raise FieldGone(tree["field"])
    return _compile_leaf(found, tree["op"], tree.get("value"), found.expression(today))


class FieldGone(LookupError):
    """A stored tree names a field that no longer exists (archived, removed)."""

    def __init__(self, path: str):
        super().__init__(path)
        self.path = path


def _compile_leaf(found: Field, op: str, value: Any, expr: ColumnElement) -> ColumnElement:
    type_ = found.type
    # Text compares regardless of case; a choice is a code checked against its list when the
    # rule was saved, compared as it is (so an index on it can serve).
    subject = func.lower(expr) if type_ == "text" else expr
    if op == "equals":
        return subject == _typed(type_, value)
    if op == "not_equals":
        return subject.is_distinct_from(_typed(type_, value))
    if op == "in":
        return subject.in_([_typed(type_, item) for item in value])
    if op == "contains":
        return expr.icontains(value, autoescape=True)
    if op in ("gt", "after"):
        return expr > _typed(type_, value)
    if op == "gte":
        return expr >= _typed(type_, value)
    if op in ("lt", "before"):
        return expr < _typed(type_, value)
    if op == "lte":
        return expr <= _typed(type_, value)
    if op == "between":
        return expr.between(_typed(type_, value[0]), _typed(type_, value[1]))
    if op == "is_empty":
        return _is_empty(type_, expr)
    if op == "is_not_empty":
        return not_(_is_empty(type_, expr))
    if op == "has_tag":
        return expr.contains([value])
    if op == "not_has_tag":
        return not_(func.coalesce(expr.contains([value]), false()))
    if op == "is_true":
        return expr.is_(True)
    if op == "is_false":
        return expr.is_not(True)
    raise ValueError(f"unknown operator {op!r}")


def _is_empty(type_: str, expr: ColumnElement) -> ColumnElement:
    if type_ == "text":
        return func.coalesce(expr, "") == ""
    if type_ == "tags":
        return func.coalesce(func.cardinality(expr), 0) == 0
    return expr.is_(None)


# -- Python: one record at a time ------------------------------------------------------------


def record_facts(
    session: Session, entity: str, record_id: int, paths: set[str], today: date
) -> dict[str, Any] | None:
    """The values of `paths` for one record (None when it is out of scope: deleted, a draft),
    read with the same expressions the select uses, in one query."""
    fields = [resolve(entity, path) for path in sorted(paths)]
    for path, found in zip(sorted(paths), fields, strict=True):
        if found is None:
            raise FieldGone(path)
    base = Client if entity == "clients" else Invoice
    query = scope(entity).where(base.id == record_id)
    query = query.add_columns(*(f.expression(today).label(f"f{i}") for i, f in enumerate(fields)))
    row = session.execute(query).first()
    if row is None:
        return None
    return {f.path: row[i + 1] for i, f in enumerate(fields)}


def evaluate(entity: str, tree: dict, facts: dict[str, Any]) -> bool:
    """The tree over one record's facts (from `record_facts`): the answer `matching_ids`
    gives for that record."""
    if "all" in tree:
        return all(evaluate(entity, child, facts) for child in tree["all"])
    if "any" in tree:
        return any(evaluate(entity, child, facts) for child in tree["any"])
    if "not" in tree:
        return not evaluate(entity, tree["not"], facts)
    found = resolve(entity, tree["field"])
    if found is None:
        raise FieldGone(tree["field"])
    return _evaluate_leaf(found, tree["op"], tree.get("value"), facts[found.path])


def _evaluate_leaf(found: Field, op: str, value: Any, actual: Any) -> bool:
    type_ = found.type
    if op == "not_equals":
        return not _evaluate_leaf(found, "equals", value, actual)
    if op == "is_not_empty":
        return not _evaluate_leaf(found, "is_empty", value, actual)
    if op == "not_has_tag":
        return not _evaluate_leaf(found, "has_tag", value, actual)
    if op == "is_empty":
        return actual is None or actual == "" or (type_ == "tags" and len(actual) == 0)
    if op == "is_true":
        return actual is True
    if op == "is_false":
        return actual is not True
    if actual is None:
        return False
    if op == "has_tag":
        return value in actual
    if op == "contains":
        return value.lower() in actual.lower()
    mine = _typed(type_, _as_stored(type_, actual))
    if op == "equals":
        return mine == _typed(type_, value)
    if op == "in":
        return mine in {_typed(type_, item) for item in value}
    if op in ("gt", "after"):
        return mine > _typed(type_, value)
    if op == "gte":
        return mine >= _typed(type_, value)
    if op in ("lt", "before"):
        return mine < _typed(type_, value)
    if op == "lte":
        return mine <= _typed(type_, value)
    if op == "between":
        return _typed(type_, value[0]) <= mine <= _typed(type_, value[1])
    raise ValueError(f"unknown operator {op!r}")
