"""What PostgreSQL cannot take never reaches it: a NUL character in text (it refuses it), an id
past its integer range (it raises instead of finding nothing). Either is the sender's mistake,
so it is answered as one (400, or 404 for an id in the URL), never as a server error."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

POSTGRES_INTEGER_MAX = 2**31 - 1
NUL = "\x00"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def row_id(raw) -> int | None:
    """The id in a query string or form field, or None when the text cannot be one: empty, not
    a positive whole number, or past PostgreSQL's integer range (no row has such an id)."""
    text = str(raw or "").strip()
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text) if len(text) <= 10 else 0
    return value if 0 < value <= POSTGRES_INTEGER_MAX else None


class RowIdConverter(IntegerConverter):
    """`<int:…>` in URLs: an id past PostgreSQL's integer range matches no route (404)."""

    def __init__(self, map, fixed_digits=0, min=None, max=POSTGRES_INTEGER_MAX, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class UnsavableCharacter(BadRequest):
    """A NUL character in a query string or form: shown as its own clear 400 page."""

    title = "Unusual character"
    text = (
        "Something you sent contains an invisible NUL character, which cannot be saved. "
        "It usually comes from copying out of another program: type the text again."
    )


def _has_nul(values) -> bool:
    return any(NUL in key or any(NUL in value for value in values.getlist(key)) for key in values)


def refuse_nul_bytes() -> None:
    if _has_nul(request.args):
        raise UnsavableCharacter()
    if request.mimetype == "application/x-www-form-urlencoded":
        # Kept, so that a view checking a signature over the raw body still gets it.
        request.get_data(cache=True, parse_form_data=False)
    if request.mimetype in FORM_TYPES and _has_nul(request.form):
        raise UnsavableCharacter()


def init_app(app: Flask) -> None:
    """Before any blueprint: converters are looked up when a rule is added."""
    app.url_map.converters["int"] = RowIdConverter
    app.before_request(refuse_nul_bytes)
