"""Zoho Books' contract for tests: the JSON Schemas derived from Zoho's official .NET wrapper
(tests/contracts/zoho_books/schemas.json; how and from what in tests/contracts/SOURCE.txt).

- `check_request(method, path, body)`: a body the connector sends to /books/v3 holds only keys
  Zoho's own client writes, with their JSON types;
- `check_answer(path, body)`: an answer the stand-in gives is Zoho's envelope (`code`,
  `message`) around records of those schemas;
- `recording(standin)`: every exchange the stand-in serves from now on, for `check_exchanges`
  (the engine's tests can record and check their runs the same way).

Unknown keys are refused: that is what keeps the connector and the stand-in from agreeing on a
private dialect."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from jsonschema import Draft202012Validator, validators

SCHEMAS = json.loads((Path(__file__).parent / "contracts/zoho_books/schemas.json").read_text())
# The key of an answer (or a request path's first part) -> the schema of its records.
ANSWER_KEYS = {
    "contact": "contact",
    "contacts": "contact",
    "invoice": "invoice",
    "invoices": "invoice",
    "creditnote": "creditnote",
    "creditnotes": "creditnote",
    "payment": "customerpayment",
    "customerpayments": "customerpayment",
    "organization": "organization",
    "organizations": "organization",
    "taxes": "tax",
    "page_context": "page_context",
}


# Zoho's amounts are read as exact decimals (parse_float=Decimal): JSON numbers all the same.
_NUMBERS = Draft202012Validator.TYPE_CHECKER.redefine(
    "number",
    lambda _, value: isinstance(value, int | float | Decimal) and not isinstance(value, bool),
)
_Validator = validators.extend(Draft202012Validator, type_checker=_NUMBERS)


def _validator(kind: str):
    return _Validator({"$defs": SCHEMAS["$defs"], "$ref": f"#/$defs/{kind}"})


def check_record(kind: str, record) -> None:
    errors = sorted(_validator(kind).iter_errors(record), key=lambda e: list(e.path))
    if errors:
        lines = [f"{'/'.join(map(str, e.path)) or '(record)'}: {e.message}" for e in errors]
        raise AssertionError(f"not a Zoho Books {kind}:\n" + "\n".join(lines))


def check_request(method: str, path: str, body) -> None:
    """A write the connector sends: POST/PUT /books/v3/<entity>[/<id>] with a record body."""
    entity = path.removeprefix("/books/v3/").split("/")[0]
    if method in ("POST", "PUT") and body is not None:
        check_record(ANSWER_KEYS[entity], body)


def check_answer(path: str, body: bytes) -> None:
    data = json.loads(body, parse_float=Decimal)
    assert isinstance(data, dict), f"{path}: the answer is not an object"
    if path.startswith("/oauth/"):
        return
    assert isinstance(data.get("code"), int), f"{path}: no integer code"
    assert isinstance(data.get("message"), str), f"{path}: no message"
    for key, value in data.items():
        if key in ("code", "message"):
            continue
        assert key in ANSWER_KEYS, f"{path}: {key!r} is not a key of Zoho's answers"
        for record in value if isinstance(value, list) else [value]:
            check_record(ANSWER_KEYS[key], record)


def recording(standin) -> list[tuple]:
    """Records (method, path, request body, status, answer body) of every exchange the
    stand-in's provider routes serve (faults included), before any garbling."""
    exchanges: list[tuple] = []
    handle = standin.handle

    def recorded(request):
        response = handle(request)
        exchanges.append(
            (request.method, request.path, request.body, response.status, response.body)
        )
        return response

    standin.handle = recorded
    return exchanges


def check_exchanges(exchanges: list[tuple], requests: bool = True) -> int:
    """Every recorded answer (and, with `requests`, every request: off where a test sends bad
    bodies on purpose) against the contract; returns how many exchanges were checked."""
    for method, path, request_body, _status, answer in exchanges:
        if requests and path.startswith("/books/v3/"):
            body = json.loads(request_body, parse_float=Decimal) if request_body else None
            check_request(method, path, body)
        # The consent page is a page for a person (HTML, a redirect): no JSON to check.
        if path != "/oauth/v2/auth":
            check_answer(path, answer)
    return len(exchanges)
