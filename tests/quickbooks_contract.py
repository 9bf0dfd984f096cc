"""QuickBooks Online's contract, as Intuit publishes it: the v3 data-model XSDs (Intuit's
QuickBooks-V3-Java-SDK, copied into tests/contracts/quickbooks without their documentation,
see tests/contracts/SOURCE.txt). Intuit publishes no OpenAPI document; its JSON is the XML
of these schemas written as JSON: the same element names, an element's attributes as plain
keys (`"domain": "QBO"`, `"sparse": true`, `Fault.type`, `Error.code`), a reference's text
as `"value"` (`"CustomerRef": {"value": "58", "name": "..."}`), a repeated element as a list.

How a JSON body is checked (the robust way found): the JSON is turned into the input of
xmlschema's encoder by walking the schema itself, not by guessing: at each level, a key that
names an attribute of the element's type becomes `@key`, `"value"` of a simple-content type
becomes its text (`$`), any other key stays a child element (looked up in the type's content
model, then among the global elements for members of a substitution group such as
IntuitResponse's entities). The encoder then builds the XML element with `unordered=True`
(JSON objects have no order, XSD sequences do) and validates it strictly: an element the
schema does not declare, a wrong type ("yes" for a boolean, text for a decimal), a required
element missing, all fail. Unknown keys are passed through unchanged so that they fail too.

`check_entity("Invoice", body)` checks one entity (a request body or a record);
`check_answer(json)` checks a whole answer (IntuitResponse: an entity, QueryResponse,
CDCResponse or Fault, with its `time`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import xmlschema

NAMESPACE = "http://schema.intuit.com/finance/v3"
SCHEMA = Path(__file__).parent / "contracts" / "quickbooks" / "IntuitRestServiceDef.xsd"


@cache
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMA))


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _child(xsd_type, name: str):
    content = getattr(xsd_type, "content", None)
    if content is not None and hasattr(content, "iter_elements"):
        for element in content.iter_elements():
            if _local(element.name) == name:
                return element
    return schema().elements.get(name)


def _prepared(value, element):
    """`value` (JSON) as the xmlschema encoder's input for `element`."""
    if isinstance(value, list):
        return [_prepared(item, element) for item in value]
    xsd_type = element.type
    if not isinstance(value, dict) or xsd_type.is_simple():
        return value
    attributes = {_local(name) for name in (xsd_type.attributes or {}) if name}
    prepared = {}
    for key, inner in value.items():
        if key in attributes:
            prepared[f"@{key}"] = inner
        elif key == "value" and xsd_type.has_simple_content():
            prepared["$"] = inner
        else:
            child = _child(xsd_type, key)
            prepared[key] = _prepared(inner, child) if child is not None else inner
    return prepared


def check_entity(name: str, body: dict) -> None:
    """XMLSchemaValidationError unless `body` is a valid QBO `name` (Customer, Invoice ...)."""
    element = schema().elements[name]
    element.encode(
        _prepared(body, element), namespaces={"": NAMESPACE}, validation="strict", unordered=True
    )


def check_answer(answer: dict) -> None:
    """XMLSchemaValidationError unless `answer` is a valid IntuitResponse."""
    check_entity("IntuitResponse", answer)
