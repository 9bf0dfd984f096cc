"""OData v4's `$filter` (the part a BI tool sends: comparisons, `and`/`or`/`not`, brackets,
`contains`/`startswith`/`endswith` on strings; string, number, date, date-time, boolean and
null literals) read by a small recursive-descent parser into a SQLAlchemy expression over the
entity set's declared properties. No text of the request reaches SQL: a property name picks a
declared column, a literal becomes a bound parameter of that property's type, and anything
else (an unknown property or function, a literal of the wrong type) is an ODataError naming
what is wrong and where."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import and_, literal, not_, or_
from sqlalchemy.sql.elements import ColumnElement


class ODataError(Exception):
    """A request the feed refuses, answered as OData's JSON error body."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.target = status, code, message, target


@dataclass(frozen=True)
class Property:
    """One property of an entity type: its OData name and type, and the SQL expression it
    reads (None for one worked out per page, which cannot be filtered or sorted on). `scale`
    is a number of places, or "variable" for decimals that keep the places they were given."""

    name: str
    edm_type: str
    column: ColumnElement | None
    nullable: bool = True
    max_length: int | None = None
    precision: int | None = None
    scale: int | str | None = None


# A $filter longer than this, or nested deeper, is refused rather than parsed.
MAX_FILTER_LENGTH = 4000
MAX_DEPTH = 32

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<string>'(?:[^']|'')*')
    |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,12})?)?(?:Z|[-+\ ]\d{2}:\d{2}))
    |(?P<date>\d{4}-\d{2}-\d{2})
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<punct>[(),])""",
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_STRING_FUNCTIONS = {"contains", "startswith", "endswith"}
_NUMERIC = {"Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Decimal"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokens(text: str) -> list[_Token]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _error(f"Unexpected “{text[position]}” at position {position + 1}.")
        if match.lastgroup != "space":
            tokens.append(_Token(match.lastgroup, match.group(), position + 1))
        position = match.end()
    return tokens


def _error(message: str) -> ODataError:
    return ODataError(400, "invalid_filter", message, "$filter")


def parse_filter(text: str, properties: dict[str, Property]) -> ColumnElement:
    if len(text) > MAX_FILTER_LENGTH:
        raise _error(f"The filter is longer than {MAX_FILTER_LENGTH} characters.")
    parser = _Parser(_tokens(text), properties)
    expression = parser.expression(0)
    if parser.peek() is not None:
        token = parser.peek()
        raise _error(f"Unexpected “{token.text}” at position {token.position}.")
    return expression


class _Parser:
    def __init__(self, tokens: list[_Token], properties: dict[str, Property]):
        self.tokens, self.index, self.properties = tokens, 0, properties

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> _Token:
        token = self.peek()
        if token is None:
            raise _error(
                f"The filter ends where “{expected}” was expected."
                if expected
                else "The filter ends too soon."
            )
        if expected is not None and token.text != expected:
            raise _error(f"Expected “{expected}” at position {token.position}, not “{token.text}”.")
        self.index += 1
        return token

    def _is_word(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text == word

    # expression := conjunction ('or' conjunction)*
    def expression(self, depth: int) -> ColumnElement:
        if depth > MAX_DEPTH:
            raise _error(f"The filter is nested more than {MAX_DEPTH} levels deep.")
        terms = [self.conjunction(depth)]
        while self._is_word("or"):
            self.take()
            terms.append(self.conjunction(depth))
        return terms[0] if len(terms) == 1 else or_(*terms)

    # conjunction := negation ('and' negation)*
    def conjunction(self, depth: int) -> ColumnElement:
        terms = [self.negation(depth)]
        while self._is_word("and"):
            self.take()
            terms.append(self.negation(depth))
        return terms[0] if len(terms) == 1 else and_(*terms)

    # negation := 'not' negation | '(' expression ')' | function [eq true|false] | comparison
    def negation(self, depth: int) -> ColumnElement:
        if self._is_word("not"):
            self.take()
            return not_(self.negation(depth + 1))
        token = self.peek()
        if token is not None and token.text == "(":
            self.take()
            inner = self.expression(depth + 1)
            self.take(")")
            return inner
        if token is not None and token.kind == "word":
            following = self.tokens[self.index + 1] if self.index + 1 < len(self.tokens) else None
            if following is not None and following.text == "(":
                return self.function()
        return self.comparison()

    def function(self) -> ColumnElement:
        name = self.take()
        if name.text not in _STRING_FUNCTIONS:
            raise _error(
                f"“{name.text}” (position {name.position}) is not a function this feed offers; "
                "use contains, startswith or endswith."
            )
        self.take("(")
        prop = self.property(self.take())
        if prop.edm_type != "Edm.String":
            raise _error(f"{name.text} works on text; {prop.name} is not text.")
        self.take(",")
        literal = self.take()
        if literal.kind != "string":
            raise _error(
                f"{name.text} needs a quoted text as its second argument "
                f"(position {literal.position})."
            )
        self.take(")")
        value = literal.text[1:-1].replace("''", "'")
        column = prop.column
        matched = {
            "contains": lambda: column.contains(value, autoescape=True),
            "startswith": lambda: column.startswith(value, autoescape=True),
            "endswith": lambda: column.endswith(value, autoescape=True),
        }[name.text]()
        # Power Query writes a function's test in full: contains(Name,'x') eq true.
        if self._is_word("eq") or self._is_word("ne"):
            operator = self.take().text
            wanted = self.take()
            if wanted.text not in ("true", "false"):
                raise _error(f"Compare {name.text}(…) with true or false only.")
            if (wanted.text == "true") != (operator == "eq"):
                return not_(matched)
        return matched

    def property(self, token: _Token) -> Property:
        prop = self.properties.get(token.text) if token.kind == "word" else None
        if prop is None:
            raise _error(
                f"“{token.text}” (position {token.position}) is not a property here. "
                f"Properties: {', '.join(self.properties)}."
            )
        if prop.column is None:
            raise _error(f"{prop.name} is worked out for each page and cannot be filtered on.")
        return prop

    # comparison := operand op operand, a property on one side and a literal on the other
    def comparison(self) -> ColumnElement:
        left = self.take()
        operator = self.take()
        if operator.text not in _COMPARISONS:
            raise _error(
                f"Expected a comparison (eq, ne, gt, ge, lt, le) at position "
                f"{operator.position}, not “{operator.text}”."
            )
        right = self.take()
        if left.kind == "word" and left.text in self.properties:
            prop, literal, op = self.property(left), right, operator.text
        elif right.kind == "word" and right.text in self.properties:
            # 5 lt Amount reads as Amount gt 5.
            flipped = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}
            prop, literal, op = (
                self.property(right),
                left,
                flipped.get(operator.text, operator.text),
            )
        else:
            named = left if left.kind == "word" else right
            if named.kind == "word":
                self.property(named)  # not a property: refused, by name
            raise _error(f"A comparison needs a property on one side (position {left.position}).")
        if literal.kind == "word" and literal.text == "null":
            if op not in ("eq", "ne"):
                raise _error(f"Only eq and ne compare with null (position {literal.position}).")
            return prop.column.is_(None) if op == "eq" else prop.column.is_not(None)
        value = _literal(prop, literal)
        column = prop.column
        return {
            "eq": lambda: column == value,
            "ne": lambda: column != value,
            "gt": lambda: column > value,
            "ge": lambda: column >= value,
            "lt": lambda: column < value,
            "le": lambda: column <= value,
        }[op]()


def _literal(prop: Property, token: _Token):
    """The literal as a value of the property's type, or why it is not one."""
    kind, text = token.kind, token.text
    wrong = _error(
        f"{prop.name} is {_TYPE_WORDS[prop.edm_type]}; “{text}” (position {token.position}) is not."
    )
    if prop.edm_type == "Edm.String":
        if kind != "string":
            raise wrong
        return text[1:-1].replace("''", "'")
    if prop.edm_type == "Edm.Boolean":
        if text not in ("true", "false"):
            raise wrong
        # A bound value: a bare Python bool (or SQL's TRUE) compares by IS only, not gt or lt.
        return literal(text == "true")
    if prop.edm_type in _NUMERIC:
        if kind != "number":
            raise wrong
        if prop.edm_type == "Edm.Decimal":
            try:
                return Decimal(text)
            except InvalidOperation:
                raise wrong from None
        if "." in text or not -(2**63) <= int(text) < 2**63:
            raise wrong
        return int(text)
    if prop.edm_type == "Edm.Date":
        if kind != "date":
            raise wrong
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise wrong from None
    if prop.edm_type == "Edm.DateTimeOffset":
        if kind != "datetime":
            raise wrong
        try:
            # A "+" typed into an address unencoded arrives as a space: read it as the "+".
            return datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
        except ValueError:
            raise wrong from None
    raise wrong


_TYPE_WORDS = {
    "Edm.String": "text (in single quotes, e.g. 'Acme')",
    "Edm.Boolean": "true or false",
    "Edm.Int16": "a whole number",
    "Edm.Int32": "a whole number",
    "Edm.Int64": "a whole number",
    "Edm.Decimal": "a number (e.g. 1500.50)",
    "Edm.Date": "a date (e.g. 2026-03-31)",
    "Edm.DateTimeOffset": "a date and time (e.g. 2026-03-31T00:00:00Z)",
}
