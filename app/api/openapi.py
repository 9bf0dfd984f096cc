"""The OpenAPI 3.1 document, generated from the operations' declarations (app.api.rest) and
their pydantic models: JSON Schema 2020-12 is OpenAPI 3.1's own schema language, so a model's
schema goes into the document as pydantic writes it."""

from __future__ import annotations

import copy
import re
from functools import cache

from pydantic import BaseModel

from app.api.models import SCOPES
from app.api.oauth import OAuthError, TokenAnswer, TokenRequest
from app.api.oauth import blueprint as oauth_blueprint
from app.api.problems import PROBLEM_TYPE, STANDARD, ProblemDetails
from app.api.rest import MAX_ID, OPERATIONS, Operation, blueprint

_REF = "#/components/schemas/{model}"


@cache
def document() -> dict:
    schemas: dict = {}

    def ref(model: type[BaseModel], mode: str) -> dict:
        schema = model.model_json_schema(ref_template=_REF, mode=mode)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": _REF.format(model=model.__name__)}

    ref(ProblemDetails, "serialization")
    paths: dict = {}
    for op in OPERATIONS:
        path = _openapi_path(blueprint.url_prefix + op.rule)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op, ref, schemas)
    paths[oauth_blueprint.url_prefix + "/token"] = {"post": _token_operation(ref)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Duebook API",
            "version": "1",
            "description": (
                "A workspace's clients, invoices, payments and events. Authenticate with "
                "`Authorization: Bearer <key>` (a key made by an admin under Settings → API "
                "keys). Errors are RFC 9457 problem details. Lists page with an opaque "
                "`cursor`. POSTs take an `Idempotency-Key`; changes need `If-Match`. Server-"
                "to-server integrations may instead use an OAuth client (client credentials): "
                "its access tokens from `/api/v1/oauth/token` are sent as a key is."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}, {"oauth2": []}],
        "tags": [{"name": tag} for tag in sorted({op.tag for op in OPERATIONS})],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Permissions: "
                    + "; ".join(f"`{name}` {text.lower()}" for name, text in SCOPES.items()),
                },
                "oauth2": {
                    "type": "oauth2",
                    "description": "An OAuth client's access token, sent as `Authorization: "
                    "Bearer <token>`.",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": oauth_blueprint.url_prefix + "/token",
                            "scopes": SCOPES,
                        }
                    },
                },
            },
        },
    }


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def _operation(op: Operation, ref, schemas: dict) -> dict:
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        }
        for name in op.path_args
    ]
    if op.query:
        query = op.query.model_json_schema(ref_template=_REF, mode="validation")
        schemas.update(query.pop("$defs", {}))
        for name, schema in query["properties"].items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in query.get("required", []),
                    "description": schema.pop("description", ""),
                    "schema": schema,
                }
            )
    if op.method == "POST":
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Send the same request again with the same key: it is done "
                "once, and the first answer comes back.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": "^[ -~]+$",
                },
            }
        )
    if op.conditional:
        parameters.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": True,
                "description": "The ETag of the record as you read it.",
                "schema": {"type": "string"},
            }
        )
    described = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": [op.tag],
        "description": (op.description + f"\n\nNeeds the `{op.scope}` permission.").strip(),
        "parameters": parameters,
        "responses": {str(op.status): _success(op, ref, schemas), **_problems(op)},
        "security": [{"apiKey": []}, {"oauth2": [op.scope]}],
        "x-scope": op.scope,
    }
    if op.body:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(op.body, "validation")}},
        }
    if op.upload:
        fields = op.upload.model_json_schema(ref_template=_REF, mode="validation")
        schemas.update(fields.pop("$defs", {}))
        fields["properties"]["file"] = {
            "type": "string",
            "format": "binary",
            "description": f"The file, at most {op.upload_bytes // (1024 * 1024)} MB.",
        }
        fields["required"] = [*fields.get("required", []), "file"]
        described["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": fields}},
        }
    return described


def _success(op: Operation, ref, schemas: dict) -> dict:
    if op.response is None:
        return {"description": "Done."}
    if op.response == "pdf":
        return {
            "description": "The PDF.",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        }
    ref(op.response, "serialization")
    if op.listed:
        # `fields=` leaves fields out: in a list no item field is required.
        item = copy.deepcopy(schemas[op.response.__name__])
        item.pop("required", None)
        name = f"{op.response.__name__}ListItem"
        item["title"] = name
        schemas[name] = item
        return {
            "description": "A page of the list.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["data", "next_cursor"],
                        "properties": {
                            "data": {"type": "array", "items": {"$ref": _REF.format(model=name)}},
                            "next_cursor": {
                                "type": ["string", "null"],
                                "description": "The cursor of the next page; null on the last.",
                            },
                        },
                    }
                }
            },
        }
    headers = {"ETag": {"schema": {"type": "string"}, "description": "Send it as If-Match."}}
    if op.status == 201:
        headers["Location"] = {"schema": {"type": "string"}}
    return {
        "description": "The record.",
        "headers": headers,
        "content": {
            "application/json": {"schema": {"$ref": _REF.format(model=op.response.__name__)}}
        },
    }


def _problems(op: Operation) -> dict:
    statuses = [400, 401, 403, 404, 405, 413, 415, 422, 429]
    if op.method == "POST":
        statuses.append(409)
    if op.conditional:
        statuses += [412, 428]
    statuses += [status for status in op.refusals if status not in statuses]
    answers = {}
    for status in sorted(statuses):
        answer = {
            "description": STANDARD[status][1],
            "content": {PROBLEM_TYPE: {"schema": {"$ref": _REF.format(model="ProblemDetails")}}},
        }
        if status == 429:
            answer["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        answers[str(status)] = answer
    return answers


def _token_operation(ref) -> dict:
    refusal = {"application/json": {"schema": ref(OAuthError, "serialization")}}
    return {
        "operationId": "oauth_token",
        "summary": "Get an access token (OAuth 2 client credentials)",
        "tags": ["oauth"],
        "description": (
            "An OAuth client (made by an admin under Settings → API keys) sends its id and "
            "secret by HTTP Basic (or as `client_id` and `client_secret` in the form) and gets "
            "a bearer token with its permissions, good for an hour. Refusals follow RFC 6749 "
            "§5.2."
        ),
        "security": [],
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {"schema": ref(TokenRequest, "validation")}
            },
        },
        "responses": {
            "200": {
                "description": "The token.",
                "headers": {"Cache-Control": {"schema": {"type": "string", "const": "no-store"}}},
                "content": {"application/json": {"schema": ref(TokenAnswer, "serialization")}},
            },
            "400": {"description": "A bad request, grant type or scope.", "content": refusal},
            "401": {
                "description": "Unknown client, wrong secret or revoked client.",
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                "content": refusal,
            },
            **{
                str(status): {
                    "description": STANDARD[status][1],
                    "content": {
                        PROBLEM_TYPE: {"schema": {"$ref": _REF.format(model="ProblemDetails")}}
                    },
                }
                for status in (413, 429)
            },
        },
    }
