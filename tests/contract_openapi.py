"""Checks an HTTP exchange against a provider's official OpenAPI 3 document (copied trimmed into
tests/contracts/): the operation exists, its path and query parameters are declared and fit
their schemas, its required headers are sent, and the JSON request and response bodies fit the
operation's schemas. jsonschema (Draft 2020-12, refs resolved inside the document) is the
oracle: a mock server such as Prism skips body checks for shared schemas (see the shared specs'
xero/SOURCE.txt).

`strict` documents also refuse any property an object schema does not declare, so neither the
connector nor a stand-in can drift into a private dialect through an extra field.

`ContractTransport` is an httpx transport that checks every request a connector sends and every
answer it gets; a test installs it as the connectors' shared transport:

    transport = ContractTransport({standin.url + "/api.xro/2.0": XERO_ACCOUNTING})
    monkeypatch.setattr(connectors, "_transport", transport)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
from jsonschema import Draft202012Validator, ValidationError

CONTRACTS = Path(__file__).parent / "contracts"


class ContractBroken(AssertionError):
    """The exchange is not one the document describes."""


def _as_json_schema(node, strict: bool):
    """OpenAPI 3.0's `nullable: true` as JSON Schema's `type: [t, "null"]`; with `strict`,
    objects that declare properties admit no others."""
    if isinstance(node, list):
        return [_as_json_schema(value, strict) for value in node]
    if not isinstance(node, dict):
        return node
    node = {key: _as_json_schema(value, strict) for key, value in node.items()}
    if node.pop("nullable", False) and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    properties = node.get("properties")
    if (
        strict
        and isinstance(properties, dict)
        and "additionalProperties" not in node
        and all(isinstance(value, dict) for value in properties.values())
    ):
        node["additionalProperties"] = False
    return node


@dataclass
class OpenAPIDocument:
    path: Path
    strict: bool = True
    spec: dict = field(init=False)

    def __post_init__(self):
        self.spec = _as_json_schema(json.loads(Path(self.path).read_text()), self.strict)

    # -- schemas -------------------------------------------------------------------------------

    def validate(self, schema: dict, instance) -> None:
        try:
            Draft202012Validator({**schema, "components": self.spec["components"]}).validate(
                instance
            )
        except ValidationError as error:
            where = "/".join(str(part) for part in error.absolute_path) or "(the whole body)"
            raise ContractBroken(f"{where}: {error.message}") from None

    def check_component(self, name: str, instance) -> None:
        self.validate({"$ref": f"#/components/schemas/{name}"}, instance)

    def _resolve(self, node: dict) -> dict:
        while "$ref" in node:
            _, _, kind, name = node["$ref"].split("/", 3)
            node = self.spec["components"][kind][name]
        return node

    # -- operations ----------------------------------------------------------------------------

    def operation(self, method: str, path: str) -> tuple[str, dict, dict[str, str]]:
        """(template, operation, path parameter values) for a request path, or ContractBroken."""
        method = method.lower()
        for template, item in self.spec["paths"].items():
            pattern = re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            match = re.fullmatch(pattern, path, flags=re.IGNORECASE)
            if match and method in item:
                return template, item, match.groupdict()
        raise ContractBroken(f"{method.upper()} {path} is not an operation of {self.path.name}")

    def parameters(self, item: dict, method: str) -> list[dict]:
        shared = [self._resolve(p) for p in item.get("parameters", [])]
        own = [self._resolve(p) for p in item[method.lower()].get("parameters", [])]
        return shared + own

    def check_request(self, method: str, path: str, query: str, headers, body: bytes) -> None:
        template, item, path_values = self.operation(method, path)
        declared = self.parameters(item, method)
        by_place = {
            place: {p["name"].lower(): p for p in declared if p["in"] == place}
            for place in ("path", "query", "header")
        }
        for name, value in path_values.items():
            self._check_value(by_place["path"][name.lower()], value)
        for name, value in parse_qsl(query, keep_blank_values=True):
            parameter = by_place["query"].get(name.lower())
            if parameter is None:
                raise ContractBroken(f"{method} {template} takes no query parameter {name}")
            if parameter["name"] != name:
                raise ContractBroken(f"{name} is spelled {parameter['name']} in the document")
            self._check_value(parameter, value)
        sent = {name.lower() for name in headers}
        for name, parameter in by_place["header"].items():
            if parameter.get("required") and name not in sent:
                raise ContractBroken(f"{method} {template} needs the header {parameter['name']}")
        operation = item[method.lower()]
        if "requestBody" in operation:
            content = self._resolve(operation["requestBody"])["content"]
            if "application/json" in content:
                self.validate(content["application/json"]["schema"], json.loads(body or b"null"))
        elif body:
            raise ContractBroken(f"{method} {template} takes no body")

    def check_response(self, method: str, path: str, status: int, body: bytes) -> None:
        """The answer fits the operation's schema for its status. Statuses the document does not
        describe (401, 403, 429, 5xx: described in Xero's prose, not in its schema) have no body
        shape to check."""
        _, item, _ = self.operation(method, path)
        responses = item[method.lower()]["responses"]
        described = responses.get(str(status))
        if described is None:
            return
        content = self._resolve(described).get("content") or {}
        if "application/json" in content and "schema" in content["application/json"]:
            self.validate(content["application/json"]["schema"], json.loads(body))

    def _check_value(self, parameter: dict, text: str) -> None:
        schema = parameter.get("schema") or {}
        kind = schema.get("type")
        value: object = text
        if kind == "integer" and re.fullmatch(r"-?\d+", text):
            value = int(text)
        elif kind == "boolean" and text in ("true", "false"):
            value = text == "true"
        elif kind == "array":
            value = text.split(",")
        self.validate(schema, value)
        if schema.get("format") == "uuid" and not re.fullmatch(
            r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", text
        ):
            raise ContractBroken(f"{parameter['name']}: {text!r} is not a uuid")


class ContractTransport(httpx.HTTPTransport):
    """Sends like the shared transport; checks every exchange whose URL starts with one of the
    bases (the longest that fits) against that base's document, and keeps them all for
    assertions. `unchecked` paths (the OAuth token endpoint, described by the identity
    document's components rather than an operation) are kept but not checked here; neither is
    an answer that is not JSON (a body cut short is the connector's to refuse)."""

    def __init__(
        self, documents: dict[str, OpenAPIDocument], unchecked: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        self.documents = documents
        self.unchecked = unchecked
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url).split("?")[0]
        document, path = None, ""
        for base in sorted(self.documents, key=len, reverse=True):
            if url.startswith(base):
                document, path = self.documents[base], url[len(base) :] or "/"
                break
        if path in self.unchecked:
            document = None
        body = request.read()
        if document:
            document.check_request(
                request.method, path, request.url.query.decode(), request.headers, body
            )
        response = super().handle_request(request)
        response.read()
        if document and response.headers.get("content-type", "").startswith("application/json"):
            try:
                json.loads(response.content)
            except ValueError:
                document = None
        if document and response.headers.get("content-type", "").startswith("application/json"):
            document.check_response(request.method, path, response.status_code, response.content)
        self.exchanges.append((request, response))
        return response

    def sent(self, method: str | None = None, path_part: str = "") -> list[httpx.Request]:
        return [
            request
            for request, _ in self.exchanges
            if (method is None or request.method == method) and path_part in request.url.path
        ]


def xero_documents() -> dict[str, OpenAPIDocument]:
    folder = CONTRACTS / "xero"
    return {
        "accounting": OpenAPIDocument(folder / "xero_accounting.openapi.json"),
        "identity": OpenAPIDocument(folder / "xero_identity.openapi.json"),
        "webhooks": OpenAPIDocument(folder / "xero_webhooks.openapi.json"),
    }
