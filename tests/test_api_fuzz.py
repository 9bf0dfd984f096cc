"""The API against its own OpenAPI document, by Schemathesis: every operation with generated
valid and invalid input, with a real key, over data that exists. No answer may be a server
error, and every answer must be one the document describes (status, content type, headers,
body schema). `make test` runs a bounded number of examples per operation; `make fuzz` sets
API_FUZZ_EXAMPLES for the full run."""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api import services as api_services
from app.api.models import SCOPES
from tests.helpers import tenant_session

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "6"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_every_operation_answers_as_its_document_says(
    app, client, db_session, make_tenant, make_user, make_api_records
):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    existing = make_api_records(tenant_session(db_session, tenant), tenant, owner)
    _, secret = api_services.create_key(db_session, tenant.id, "Fuzz", sorted(SCOPES), owner.id)
    db_session.commit()
    auth = {"Authorization": f"Bearer {secret}"}
    usual, app.config["API_RATE_LIMIT"] = app.config["API_RATE_LIMIT"], "1000000 per minute"
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    tried = 0
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            names = {p.name for p in operation.path_parameters}
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                # Random ids (mostly nobody's) and the ids of records that exist.
                for path_parameters in (None, {n: existing[n] for n in names} or None):
                    strategy = operation.as_strategy(mode, path_parameters=path_parameters)

                    @given(case=strategy)
                    @settings(
                        max_examples=EXAMPLES,
                        deadline=None,
                        database=None,
                        derandomize="API_FUZZ_EXAMPLES" not in os.environ,
                        suppress_health_check=list(HealthCheck),
                    )
                    def answers_as_documented(case):
                        case.call_and_validate(headers=auth, checks=CHECKS)

                    answers_as_documented()
                    tried += 1
    finally:
        app.config["API_RATE_LIMIT"] = usual
    assert tried >= 2 * len(list(schema.get_all_operations()))
