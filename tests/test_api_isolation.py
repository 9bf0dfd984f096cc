"""The API's isolation walk: every operation of the OpenAPI document, called with another
workspace's key and this workspace's ids, finds nothing (404) and changes nothing; every list
read with that key shows none of this workspace's records, whatever its filters name."""

from __future__ import annotations

import io
import re

from app.api import services as api_services
from app.api.models import SCOPES
from app.clients.models import Client, Contact, Document, Site
from app.collections.models import CollectionNotice, Dispute, PromiseToPay
from app.invoicing.models import CreditNote
from app.projects.models import Milestone
from tests.helpers import tenant_session

BODIES = {
    ("post", "/api/v1/clients/{client_id}/contacts"): {
        "full_name": "Intruder",
        "email": "intruder@example.com",
    },
    ("patch", "/api/v1/clients/{client_id}"): {"city": "Elsewhere"},
    ("patch", "/api/v1/clients/{client_id}/contacts/{contact_id}"): {"job_title": "Intruder"},
    ("post", "/api/v1/invoices/{invoice_id}/credit-notes"): {"reason": "Intruder"},
    ("patch", "/api/v1/invoices/{invoice_id}"): {"custom_fields": {}},
    ("patch", "/api/v1/projects/{project_id}"): {"custom_fields": {}},
    ("patch", "/api/v1/payments/{payment_id}"): {"custom_fields": {}},
    ("put", "/api/v1/projects/{project_id}/plan"): {
        "milestones": [{"name": "Intruder", "share": "100"}]
    },
    ("patch", "/api/v1/projects/{project_id}/milestones/{milestone_id}"): {"status": "cancelled"},
    ("patch", "/api/v1/promises/{promise_id}"): {"status": "cancelled"},
    ("patch", "/api/v1/clients/{client_id}/invoice-settings"): {"payment_days": 99},
    ("post", "/api/v1/clients/{client_id}/sites"): {"name": "Intruder"},
    ("patch", "/api/v1/notices/{notice_id}"): {"close_reason": "cancelled", "note": "Intruder"},
    ("post", "/api/v1/notices/{notice_id}/links"): {
        "title": "Intruder",
        "url": "https://example.com/x",
    },
    ("put", "/api/v1/clients/{client_id}/sites/{site_id}"): {"name": "Intruder"},
    ("patch", "/api/v1/disputes/{dispute_id}"): {
        "status": "resolved",
        "resolution_note": "Intruder",
    },
}
# The product's template library is the same for every workspace: read, not isolated.
SHARED = {"/api/v1/templates/library", "/api/v1/templates/library/{template_id}"}
# Lists that take a client filter are read with A's client's id too: B must still see nothing.
BY_CLIENT = {
    "/api/v1/invoices",
    "/api/v1/payments",
    "/api/v1/projects",
    "/api/v1/credit-notes",
    "/api/v1/promises",
    "/api/v1/disputes",
    "/api/v1/notices",
}


def test_another_workspaces_key_reaches_nothing_by_any_id(
    client, db_session, make_tenant, make_user, make_api_records
):
    owner_a, owner_b = make_user(), make_user()
    tenant_a = make_tenant(owner=owner_a, region="27")
    tenant_b = make_tenant(owner=owner_b, region="27")
    session = tenant_session(db_session, tenant_a)
    a_ids = make_api_records(session, tenant_a, owner_a)
    buyer_id, contact_id = a_ids["client_id"], a_ids["contact_id"]
    milestone_status = (
        tenant_session(db_session, tenant_a).get(Milestone, a_ids["milestone_id"]).status
    )
    keys = {}
    for name, tenant, owner in (("a", tenant_a, owner_a), ("b", tenant_b, owner_b)):
        _, secret = api_services.create_key(
            db_session, tenant.id, f"Key of {name}", sorted(SCOPES), owner.id
        )
        keys[name] = {"Authorization": f"Bearer {secret}", "If-Match": "*"}
    db_session.commit()

    document = client.get("/api/v1/openapi.json").json
    walked = 0
    for path, operations in document["paths"].items():
        names = re.findall(r"{(\w+)}", path)
        url = path.format(**{name: a_ids[name] for name in names})
        for method in operations:
            body = BODIES.get((method, path))
            if not names:
                continue  # the lists: below
            # The walk can tell: A's own key reads A's records by these ids.
            if method == "get":
                assert client.get(url, headers=keys["a"]).status_code == 200, url
            if path in SHARED:
                assert client.get(url, headers=keys["b"]).status_code == 200, url
                walked += 1
                continue
            if path.endswith(("/documents", "/attachments")) and method == "post":
                upload = {"title": "Intruder", "file": (io.BytesIO(b"Hello\n"), "x.txt")}
                answer = client.post(url, data=upload, headers=keys["b"])
            else:
                answer = client.open(url, method=method, json=body, headers=keys["b"])
            assert answer.status_code == 404, f"{method.upper()} {url}: {answer.status_code}"
            assert answer.mimetype == "application/problem+json"
            walked += 1
    assert walked == sum(
        1 for path, operations in document["paths"].items() if "{" in path for _ in operations
    )

    lists = [
        path
        for path, operations in document["paths"].items()
        if "get" in operations
        and "{" not in path
        and "next_cursor" in str(operations["get"]["responses"]["200"])
    ]
    assert {"/api/v1/clients", "/api/v1/events", *BY_CLIENT, "/api/v1/templates/own"} <= set(lists)
    for path in set(lists) - SHARED:
        params = {"client_id": buyer_id} if path in BY_CLIENT else {}
        own = client.get(path, query_string=params, headers=keys["a"]).json["data"]
        assert own, f"{path}: A's own key lists A's records"
        assert client.get(path, query_string=params, headers=keys["b"]).json["data"] == [], path

    session = tenant_session(db_session, tenant_a)
    assert session.get(Client, buyer_id).deleted_at is None
    assert session.get(Client, buyer_id).city is None
    assert session.get(Contact, contact_id).deleted_at is None
    assert session.get(Contact, contact_id).job_title is None
    assert len(session.get(Client, buyer_id).contacts) == 1
    assert session.get(PromiseToPay, a_ids["promise_id"]).status == "open"
    assert session.get(Dispute, a_ids["dispute_id"]).status == "open"
    assert session.get(Milestone, a_ids["milestone_id"]).status == milestone_status
    assert session.query(CreditNote).count() == 1
    assert session.get(Site, a_ids["site_id"]).deleted_at is None
    assert session.get(Document, a_ids["document_id"]).deleted_at is None
    assert session.query(Document).count() == 1
    notice = session.get(CollectionNotice, a_ids["notice_id"])
    assert (notice.status, len(notice.attachments)) == ("draft", 1)
    assert notice.attachments[0].removed_at is None
