"""Derives tests/contracts/zoho_books/schemas.json (JSON Schemas of the Zoho Books records the
connector writes and the stand-in answers) from Zoho's official .NET wrapper. Zoho publishes no
OpenAPI document for Books; the wrapper's model classes are the only machine-readable list of
the JSON keys Zoho's own client reads and writes, with their types (Newtonsoft maps each
snake_case property to the key of the same name).

Run once, output committed (see SOURCE.txt):

    git clone https://github.com/zoho/books-dotnet-wrappers /tmp/books-dotnet-wrappers
    python tests/contracts/zoho_books/derive_schemas.py /tmp/books-dotnet-wrappers

The wrapper dates from 2014, before India's GST (2017), and its payment class lacks the
times every record carries. The few keys of that kind the connector uses are added from Zoho's
API reference pages (`FROM_REFERENCE` below, each with the page that documents it) and marked
`x-source` in the output, so no key is taken on faith.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

COMMIT = "022d3250ce9094f125d39be0fe7ec089c5156750"
MODELS = "books-dotnet/model"
# schema name -> the wrapper's class
RECORDS = {
    "contact": "Contact",
    "contact_person": "ContactPerson",
    "invoice": "Invoice",
    "creditnote": "Creditnote",
    "customerpayment": "Customerpayment",
    "line_item": "LineItem",
    "address": "Address",
    "tax": "Tax",
    "page_context": "PageContext",
    "organization": "Organization",
}
CLASS_TO_SCHEMA = {cls: name for name, cls in RECORDS.items()}
SCALARS = {"string": "string", "bool": "boolean", "int": "integer", "double": "number"}
PROPERTY = re.compile(r"public\s+([\w<>]+)\s+(\w+)\s*\{\s*get;\s*set;\s*\}")
INDIA = "https://www.zoho.com/in/books/api/v3/"
PAYMENTS = "https://www.zoho.com/books/api/v3/customer-payments/"
FROM_REFERENCE = {
    "contact": {
        "gst_no": ("string", INDIA + "contacts/"),
        "gst_treatment": ("string", INDIA + "contacts/"),
        "place_of_contact": ("string", INDIA + "contacts/"),
    },
    "invoice": {
        "gst_no": ("string", INDIA + "invoices/"),
        "gst_treatment": ("string", INDIA + "invoices/"),
        "place_of_supply": ("string", INDIA + "invoices/"),
    },
    "creditnote": {
        "gst_no": ("string", INDIA + "creditnotes/"),
        "gst_treatment": ("string", INDIA + "creditnotes/"),
        "place_of_supply": ("string", INDIA + "creditnotes/"),
        "invoice_id": ("string", INDIA + "creditnotes/"),
    },
    "line_item": {"hsn_or_sac": ("string", INDIA + "invoices/")},
    "tax": {"tax_specific_type": ("string", INDIA + "taxes/")},
    "organization": {"address": ("address", INDIA + "organizations/")},
    "customerpayment": {
        "currency_code": ("string", PAYMENTS),
        "created_time": ("string", PAYMENTS),
        "last_modified_time": ("string", PAYMENTS),
    },
}


def type_schema(declared: str) -> dict:
    if declared in SCALARS:
        return {"type": SCALARS[declared]}
    if declared.startswith("List<"):
        return {"type": "array", "items": type_schema(declared[5:-1])}
    if declared in CLASS_TO_SCHEMA:
        return {"$ref": f"#/$defs/{CLASS_TO_SCHEMA[declared]}"}
    # A class the connector never reads or writes (custom fields, templates): any object.
    return {"type": "object"} if declared != "object" else {}


def model(repo: Path, cls: str) -> dict:
    source = subprocess.run(
        ["git", "-C", str(repo), "show", f"{COMMIT}:{MODELS}/{cls}.cs"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    properties = {name: type_schema(declared) for declared, name in PROPERTY.findall(source)}
    return {
        "type": "object",
        "x-source": f"zoho/books-dotnet-wrappers {MODELS}/{cls}.cs @ {COMMIT}",
        "properties": properties,
        "additionalProperties": False,
    }


def main(repo: Path) -> None:
    definitions = {name: model(repo, cls) for name, cls in RECORDS.items()}
    for name, extra in FROM_REFERENCE.items():
        for key, (kind, page) in extra.items():
            schema = {"$ref": f"#/$defs/{kind}"} if kind in RECORDS else {"type": kind}
            definitions[name]["properties"][key] = {**schema, "x-source": page}
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": "Derived from zoho/books-dotnet-wrappers' model classes (see SOURCE.txt);"
        " not a document Zoho publishes.",
        "$defs": definitions,
    }
    out = Path(__file__).with_name("schemas.json")
    out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out} ({len(definitions)} schemas)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
