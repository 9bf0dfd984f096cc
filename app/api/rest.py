"""The rails every API operation runs on: one declaration (`operation`) makes the Flask route
and the operation's entry in the OpenAPI document (app.api.openapi), so the two cannot drift.

A request is authenticated by its bearer key (which names one workspace: the session is bound
to it), its scope checked, its query and JSON body validated by the declared pydantic models
(unknown fields refused), a POST with an Idempotency-Key answered once, and every answer is
JSON or a problem (app.api.problems), never an HTML page or a 500 for anything a client
sends."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Blueprint, Response, current_app, g, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException

from app.api import services
from app.api.problems import FieldError, Problem, invalid, standard
from app.audit.services import SOURCE_KEY
from app.extensions import csrf, db, limiter
from tenants.binding import bind_tenant

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(blueprint)  # no cookies: a call proves itself by its key
# The largest JSON body the API reads.
MAX_BODY_BYTES = 1024 * 1024
# PostgreSQL's bigint: a larger id names no record (and must not reach the database).
MAX_ID = 2**63 - 1
_PATH_ARG = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass
class Operation:
    method: str
    rule: str
    name: str
    summary: str
    tag: str
    scope: str
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    # A multipart/form-data body instead: these fields and one file part, `file`, of at most
    # `upload_bytes` (the area's own limit).
    upload: type[BaseModel] | None = None
    upload_bytes: int = 0
    # The answer: a model, a list of a model (a page), None (204), or "pdf".
    response: type[BaseModel] | str | None = None
    listed: bool = False
    status: int = 200
    # Changes a record a client may have read: If-Match with its ETag is required.
    conditional: bool = False
    # Refusals of this operation's own beyond the ones every operation may give (a 409).
    refusals: tuple[int, ...] = ()
    description: str = ""
    path_args: list[str] = field(default_factory=list)


OPERATIONS: list[Operation] = []


@dataclass
class Answer:
    data: BaseModel | list[BaseModel] | None
    status: int = 200
    next_cursor: str | None = None
    location: str | None = None


def operation(
    method: str,
    rule: str,
    *,
    summary: str,
    tag: str,
    scope: str,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    upload: type[BaseModel] | None = None,
    upload_bytes: int = 0,
    response: type[BaseModel] | str | None = None,
    listed: bool = False,
    status: int = 200,
    conditional: bool = False,
    refusals: tuple[int, ...] = (),
) -> Callable:
    """Declare an operation. The view gets the path's ids, `query` and `body` (validated
    models; for an `upload`, its form fields, the file being `request.files["file"]`) and
    returns an Answer (or, for a file, a Response)."""

    def declare(view: Callable) -> Callable:
        op = Operation(
            method=method,
            rule=rule,
            name=view.__name__,
            summary=summary,
            tag=tag,
            scope=scope,
            query=query,
            body=body,
            upload=upload,
            upload_bytes=upload_bytes,
            response=response,
            listed=listed,
            status=status,
            conditional=conditional,
            refusals=refusals,
            description=(view.__doc__ or "").strip(),
            path_args=[name for _, name in _PATH_ARG.findall(rule)],
        )
        OPERATIONS.append(op)

        def endpoint(**path_values):
            return _run(op, view, path_values)

        blueprint.add_url_rule(rule, view.__name__, endpoint, methods=[method])
        return view

    return declare


# Authentication, scope and rate ---------------------------------------------------------------


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else ""


def _rate_bucket() -> str:
    # Keyed by the key (or the OAuth client) itself, not the address: many integrations share
    # a proxy's address, and one key's burst must not slow another's.
    return "api:" + services.rate_subject(db.session, _bearer())


limiter.limit(
    lambda: current_app.config["API_RATE_LIMIT"],
    key_func=_rate_bucket,
)(blueprint)


@blueprint.before_request
def _authenticate():
    request.max_content_length = MAX_BODY_BYTES
    caller = services.caller_of(db.session, _bearer())
    if caller is None:
        raise standard(
            401,
            "Send `Authorization: Bearer <key>` with a live key made under the workspace's "
            "Settings → API keys, or an access token from /api/v1/oauth/token.",
            headers={"WWW-Authenticate": 'Bearer realm="duebook"'},
        )
    g.api_caller = caller
    bind_tenant(db.session, caller.tenant.id, actor_user_id=caller.acting_user_id)
    db.session.info["actor_ip"] = request.remote_addr
    db.session.info[SOURCE_KEY] = f"API key “{caller.key_name}”"


@blueprint.errorhandler(Problem)
def _problem(problem: Problem):
    return problem.response()


@blueprint.errorhandler(HTTPException)
def http_problem(error: HTTPException) -> Response:
    """An HTTP error as a problem document (the app's error pages send the API's here too)."""
    code = getattr(error, "code", None) or 500
    headers = {}
    if code == 429:
        limit = limiter.current_limit
        wait = int(limit.reset_at - time.time()) + 1 if limit else 60
        headers["Retry-After"] = str(max(wait, 1))
    return standard(code, headers=headers).response()


@blueprint.errorhandler(DataError)
def _database_refused(error: DataError):
    # A value past the models' checks that the database refused: the request was wrong.
    db.session.rollback()
    return standard(400, "A value is out of the range the API accepts.").response()


# One operation --------------------------------------------------------------------------------


def _run(op: Operation, view: Callable, path_values: dict) -> Response:
    caller = g.api_caller
    if op.scope not in caller.scopes:
        raise standard(403, f"This key needs the `{op.scope}` permission for this.")
    for name in op.path_args:
        if not 1 <= path_values[name] <= MAX_ID:
            raise standard(404)
    query = _validated_query(op.query)
    if op.upload:
        body = _validated_upload(op.upload, op.upload_bytes)
    else:
        body = _validated_body(op.body) if op.body else None
    idempotency = _idempotency(op) if op.method == "POST" else None
    if idempotency and (replay := _earlier_answer(caller.key_id, *idempotency)):
        return replay
    given = {"query": query} if op.query else {}
    given |= {"body": body} if op.body or op.upload else {}
    answer = view(**path_values, **given)
    if isinstance(answer, Response):
        return answer
    response = _render(op, answer)
    if idempotency and not services.keep_answer(
        db.session,
        caller.key_id,
        *idempotency,
        response.status_code,
        response.get_data(as_text=True),
        answer.location,
    ):
        raise standard(409)
    return response


def _validated_query(model: type[BaseModel] | None) -> BaseModel | None:
    args = request.args
    repeated = [name for name in args if len(args.getlist(name)) > 1]
    if repeated:
        raise invalid(400, {name: "Give this parameter once." for name in repeated})
    if model is None:
        if args:
            raise _unknown(list(args))
        return None
    try:
        return model.model_validate(args.to_dict())
    except ValidationError as error:
        raise _from_validation(error, 400) from None


def _validated_body(model: type[BaseModel]) -> BaseModel:
    if not request.is_json:
        raise standard(415)
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise standard(400, "The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _from_validation(error, 422) from None


def _validated_upload(model: type[BaseModel], limit: int) -> BaseModel:
    if request.mimetype != "multipart/form-data":
        raise standard(415, "Send the file and its fields as multipart/form-data.")
    # Room for the fields and the part headers besides the file itself.
    request.max_content_length = limit + 64 * 1024
    # Read whole first: the Idempotency-Key's digest covers the file too, and the form is then
    # parsed from these bytes.
    request.get_data(cache=True, parse_form_data=False)
    form = request.form
    repeated = [name for name in form if len(form.getlist(name)) > 1]
    if repeated:
        raise invalid(422, {name: "Give this field once." for name in repeated})
    try:
        return model.model_validate(form.to_dict())
    except ValidationError as error:
        raise _from_validation(error, 422) from None


_PYDANTIC_CODES = {"extra_forbidden": "unknown_field", "missing": "required"}


def _from_validation(error: ValidationError, status: int) -> Problem:
    errors = [
        FieldError(
            field=".".join(str(part) for part in item["loc"]) or "(body)",
            code=_PYDANTIC_CODES.get(item["type"], item["type"]),
            message="This field is not known here."
            if item["type"] == "extra_forbidden"
            else item["msg"],
        )
        for item in error.errors(include_url=False)
    ]
    return Problem(
        status,
        "validation_failed" if status == 422 else "invalid_parameters",
        "Some fields are not valid." if status == 422 else "Some parameters are not valid.",
        "See `errors`: one entry per field.",
        errors,
    )


def _unknown(names: list[str]) -> Problem:
    return Problem(
        400,
        "invalid_parameters",
        "Some parameters are not valid.",
        errors=[
            FieldError(field=name, code="unknown_field", message="This parameter is not known.")
            for name in names
        ],
    )


# Idempotency-Key ------------------------------------------------------------------------------


def _idempotency(op: Operation) -> tuple[str, str] | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise invalid(400, {"Idempotency-Key": "Use 1 to 255 printable characters."})
    digest = hashlib.sha256(
        f"{op.method} {request.path}\n".encode() + request.get_data(cache=True)
    ).hexdigest()
    return key, digest


def _earlier_answer(key_id: int, idempotency_key: str, digest: str) -> Response | None:
    try:
        stored = services.earlier_answer(db.session, key_id, idempotency_key, digest)
    except services.IdempotencyKeyReused:
        raise Problem(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used for another request.",
            "Use a new key for a new request; the same key only repeats the same request.",
        ) from None
    if stored is None:
        return None
    response = Response(stored.body, status=stored.status_code, mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    if stored.location:
        response.headers["Location"] = stored.location
    return response


# Answers --------------------------------------------------------------------------------------


def representation(model: BaseModel) -> str:
    return json.dumps(model.model_dump(mode="json"), separators=(",", ":"))


def etag_of(model: BaseModel) -> str:
    return '"' + hashlib.sha256(representation(model).encode()).hexdigest()[:32] + '"'


def require_match(current: BaseModel) -> None:
    """A change to a record needs If-Match with the ETag of the record as it is now: two
    writers cannot overwrite each other's change unseen."""
    sent = request.headers.get("If-Match")
    if sent is None:
        raise standard(428)
    tags = {tag.strip() for tag in sent.split(",")}
    if "*" not in tags and etag_of(current) not in tags:
        raise standard(412, "Read the record again (GET) and apply your change to what it is now.")


def _render(op: Operation, answer: Answer) -> Response:
    if answer.data is None:
        return Response(status=204)
    if op.listed:
        items = [item.model_dump(mode="json") for item in answer.data]
        wanted = fields_wanted(op)
        if wanted:
            items = [{k: v for k, v in item.items() if k in wanted} for item in items]
        body = json.dumps({"data": items, "next_cursor": answer.next_cursor})
        return Response(body, status=answer.status, mimetype="application/json")
    response = Response(
        representation(answer.data), status=answer.status, mimetype="application/json"
    )
    response.headers["ETag"] = etag_of(answer.data)
    if answer.location:
        response.headers["Location"] = answer.location
    return response


def fields_wanted(op: Operation) -> set[str] | None:
    text = request.args.get("fields")
    if not text:
        return None
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(op.response.model_fields))
    if unknown:
        raise invalid(
            400,
            {"fields": f"Not a field of this list: {', '.join(unknown)}."},
            lambda *_: "unknown_field",
        )
    return names | {"id"}


# Lists ----------------------------------------------------------------------------------------


class ListQuery(BaseModel):
    """What every list takes: a page size, the cursor of the page before, and `fields`."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(25, ge=1, le=100, description="Items per page.")
    cursor: str | None = Field(
        None, max_length=500, description="The `next_cursor` of the page before."
    )
    fields: str | None = Field(
        None,
        max_length=500,
        description="Only these fields of each item (comma-separated); `id` always comes.",
    )


def encode_cursor(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, length: int) -> list:
    """The values an opaque cursor carries; a cursor not made here is a field error."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != length:
        raise invalid(
            400,
            {"cursor": "Use the next_cursor of a previous page, unchanged."},
            lambda *_: "invalid_cursor",
        )
    return values


def page_by_id(statement, model, query: ListQuery):
    """Newest first, by id: a page after the cursor's id, and the cursor of the next one."""
    last_id = None
    if query.cursor is not None:
        (last_id,) = decode_cursor(query.cursor, 1)
        if not isinstance(last_id, int):
            raise invalid(400, {"cursor": "Use the next_cursor of a previous page, unchanged."})
        statement = statement.where(model.id < last_id)
    rows = db.session.scalars(statement.order_by(model.id.desc()).limit(query.limit + 1)).all()
    page = rows[: query.limit]
    return page, encode_cursor([page[-1].id]) if len(rows) > query.limit else None
