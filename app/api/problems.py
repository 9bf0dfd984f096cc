"""Errors as RFC 9457 problem details (`application/problem+json`): a title people read, a
`code` programs branch on, and for bad input one entry per field with its own code."""

from __future__ import annotations

import json

from flask import Response
from pydantic import BaseModel, ConfigDict, Field

PROBLEM_TYPE = "application/problem+json"


class FieldError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="The field, as a dotted path (`contacts.0.email`).")
    code: str = Field(description="What is wrong, for programs: `required`, `unknown_field`…")
    message: str = Field(description="What is wrong, in words a person can act on.")


class ProblemDetails(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    code: str = Field(description="The kind of problem, for programs.")
    errors: list[FieldError] = Field(default_factory=list)


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail or title)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.errors = errors or []
        self.headers = headers or {}

    def response(self) -> Response:
        body = ProblemDetails(
            title=self.title,
            status=self.status,
            detail=self.detail,
            code=self.code,
            errors=self.errors,
        )
        response = Response(
            json.dumps(body.model_dump(mode="json")), status=self.status, mimetype=PROBLEM_TYPE
        )
        response.headers.update(self.headers)
        return response


def invalid(status: int, errors: dict[str, str], code_of=None) -> Problem:
    """Bad input, by field: `errors` maps each field to its message."""
    code_of = code_of or (lambda field, message: "invalid")
    return Problem(
        status,
        "validation_failed",
        "Some fields are not valid.",
        "Correct the fields listed in `errors` and send the request again.",
        [
            FieldError(field=field or "(request)", code=code_of(field, message), message=message)
            for field, message in errors.items()
        ],
    )


# The problems every operation may answer, by status.
STANDARD = {
    400: ("bad_request", "The request cannot be read."),
    401: ("unauthorized", "A valid API key is needed."),
    403: ("insufficient_scope", "This key may not do that."),
    404: ("not_found", "There is nothing here, or this key has no access to it."),
    405: ("method_not_allowed", "That method is not available here."),
    409: ("conflict", "Another request with this Idempotency-Key is being handled."),
    412: ("precondition_failed", "The record changed since you read it."),
    413: ("too_large", "The request is larger than the API accepts."),
    415: ("unsupported_media_type", "Send a JSON body (Content-Type: application/json)."),
    422: ("validation_failed", "Some fields are not valid."),
    428: ("precondition_required", "Send If-Match with the record's ETag to change it."),
    429: ("rate_limited", "Too many requests for this key: wait and try again."),
    500: ("server_error", "Something went wrong on our side; nothing was half-saved."),
}


def standard(status: int, detail: str | None = None, **kwargs) -> Problem:
    code, title = STANDARD.get(status, STANDARD[500])
    return Problem(status, code, title, detail, **kwargs)
