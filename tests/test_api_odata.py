"""The OData v4 feed (/api/odata/) read as Excel's and Power BI's "OData feed" connectors read
it: the service document, $metadata (valid CSDL XML by the OASIS schemas), then each entity set
page by page following @odata.nextLink, with the key as the password of HTTP Basic. $filter,
$select, $orderby, $top, $skip and $count do what OData says; bad queries get OData's error
body with a 4xx, never a 500; another workspace's key sees nothing."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api import odata
from app.api import services as api_services
from app.api.models import SCOPES
from tests.helpers import tenant_session

CONTRACTS = Path(__file__).parent / "contracts" / "odata"
ROOT = "/api/odata/"


def basic(secret: str, user: str = "powerbi") -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def read(response) -> dict:
    """An OData JSON answer, numbers kept exact."""
    return json.loads(response.get_data(as_text=True), parse_float=Decimal)


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


@pytest.fixture
def books(db_session, make_tenant, make_user, make_client, make_invoice, make_payment):
    """A workspace with five live clients (one archived, one with a quote in its name), one
    deleted client, three invoices (one part-paid), and a key reading everything."""
    owner = make_user()
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)
    clients = [make_client(session, name="Acme"), make_client(session, name="Bharat")]
    clients.append(make_client(session, name="O'Brien", city="Pune"))
    clients.append(make_client(session, name="Zenith", archived_at=datetime.now(UTC)))
    clients.append(make_client(session, name="Acme West", credit_limit=Decimal("250000.50")))
    gone = make_client(session, name="Gone", deleted_at=datetime.now(UTC))
    invoices = [
        make_invoice(session, tenant, clients[0], ["1000.00"]),
        make_invoice(session, tenant, clients[0], ["2500.75", "100.00"]),
        make_invoice(session, tenant, clients[1], ["999.99"]),
    ]
    payment = make_payment(session, clients[0], "400.25", allocate_to=[invoices[0]])
    session.commit()
    _, secret = api_services.create_key(db_session, tenant.id, "BI", sorted(SCOPES), owner.id)
    db_session.commit()
    # Plain copies: the test's requests end the session these records were read in.
    return {
        "tenant": tenant,
        "owner": owner,
        "clients": [SimpleNamespace(id=c.id, full_name=c.full_name) for c in clients],
        "gone": SimpleNamespace(id=gone.id),
        "invoices": [SimpleNamespace(id=i.id) for i in invoices],
        "payment": SimpleNamespace(id=payment.id),
        "secret": secret,
    }


def test_power_bi_reads_the_service_document_metadata_and_every_page(client, books, monkeypatch):
    monkeypatch.setattr(odata, "PAGE_SIZE", 2)  # so that five clients take three pages
    headers = basic(books["secret"])

    service = client.get("/api/odata", headers=headers)
    assert service.status_code == 200
    assert service.headers["OData-Version"] == "4.0"
    assert service.mimetype == "application/json"
    assert "odata.metadata=minimal" in service.headers["Content-Type"]
    document = read(service)
    assert document["@odata.context"] == "http://localhost/api/odata/$metadata"
    assert [s["name"] for s in document["value"]] == [
        "Clients",
        "Invoices",
        "InvoiceLines",
        "Payments",
    ]
    assert all(s["kind"] == "EntitySet" and s["url"] == s["name"] for s in document["value"])

    metadata = client.get(ROOT + "$metadata", headers=headers)
    assert metadata.status_code == 200 and metadata.mimetype == "application/xml"
    schema = xmlschema.XMLSchema(str(CONTRACTS / "edmx.xsd"))
    schema.validate(metadata.get_data(as_text=True))
    edm = "{http://docs.oasis-open.org/odata/ns/edm}"
    csdl = ElementTree.fromstring(metadata.get_data())
    types = {
        t.get("Name"): {p.get("Name"): p.attrib for p in t.iter(edm + "Property")}
        for t in csdl.iter(edm + "EntityType")
    }
    assert types["Invoice"]["Total"] == {
        "Name": "Total",
        "Type": "Edm.Decimal",
        "Nullable": "false",
        "Precision": "18",
        "Scale": "2",
    }
    assert types["Invoice"]["DueDate"]["Type"] == "Edm.Date"
    assert types["Client"]["Id"]["Nullable"] == "false"
    sets = {s.get("Name"): s.get("EntityType") for s in csdl.iter(edm + "EntitySet")}
    assert sets == {
        "Clients": "Duebook.Client",
        "Invoices": "Duebook.Invoice",
        "InvoiceLines": "Duebook.InvoiceLine",
        "Payments": "Duebook.Payment",
    }

    rows, url, pages = [], ROOT + document["value"][0]["url"], 0
    while url:
        page = client.get(url, headers=headers)
        assert page.status_code == 200, page.text
        body = read(page)
        assert body["@odata.context"] == "http://localhost/api/odata/$metadata#Clients"
        rows += body["value"]
        url = local(body["@odata.nextLink"]) if "@odata.nextLink" in body else None
        assert url is None or url.startswith(ROOT + "Clients?") and "%24skiptoken=" in url
        pages += 1
    assert pages == 3
    monkeypatch.undo()
    assert [row["Id"] for row in rows] == sorted(c.id for c in books["clients"])
    assert books["gone"].id not in [row["Id"] for row in rows]
    by_name = {row["FullName"]: row for row in rows}
    west = next(row for name, row in by_name.items() if name.startswith("Acme West"))
    assert west["CreditLimit"] == Decimal("250000.50")
    assert next(r for n, r in by_name.items() if n.startswith("Zenith"))["Archived"] is True
    assert west["CreatedAt"].endswith("Z")

    invoices = read(client.get(ROOT + "Invoices", headers=headers))["value"]
    first = next(row for row in invoices if row["Id"] == books["invoices"][0].id)
    assert first["Total"] == Decimal("1000.00")
    assert first["AmountDue"] == Decimal("599.75")
    assert first["IssueDate"] == "2027-02-01"
    # Exact decimal text on the wire, never a float's rounding.
    raw = client.get(
        ROOT + "Invoices?$select=Id,Total&$filter=Total ne 1000", headers=headers
    ).get_data(as_text=True)
    assert '"Total":2600.75' in raw and '"Total":999.99' in raw
    lines = read(client.get(ROOT + "InvoiceLines", headers=headers))["value"]
    assert len(lines) == 4 and {line["InvoiceId"] for line in lines} == {
        i.id for i in books["invoices"]
    }
    payments = read(client.get(ROOT + "Payments", headers=headers))["value"]
    assert payments == [
        {
            "Id": books["payment"].id,
            "ClientId": books["clients"][0].id,
            "ReceivedOn": "2027-03-01",
            "Amount": Decimal("400.25"),
            "Currency": "INR",
            "Method": "upi",
            "Reference": "UTR1",
            "Voided": False,
            "VoidReason": None,
            "CreatedAt": payments[0]["CreatedAt"],
        }
    ]


def ids(client, query: str, secret: str, entity_set: str = "Clients") -> list[int]:
    answer = client.get(ROOT + entity_set + "?" + query, headers=basic(secret))
    assert answer.status_code == 200, answer.text
    return [row["Id"] for row in read(answer)["value"]]


def test_filter_select_orderby_top_skip_and_count(client, books):
    secret, c, inv = books["secret"], books["clients"], books["invoices"]
    assert ids(client, f"$filter=FullName eq '{c[0].full_name}'", secret) == [c[0].id]
    assert ids(client, "$filter=startswith(FullName,'Acme')", secret) == [c[0].id, c[4].id]
    assert ids(client, "$filter=contains(FullName,'West')", secret) == [c[4].id]
    assert ids(client, "$filter=contains(FullName,'West') eq false", secret) == [
        c[0].id,
        c[1].id,
        c[2].id,
        c[3].id,
    ]
    assert ids(client, "$filter=endswith(FullName,'%')", secret) == []  # % is no wildcard
    quoted = c[2].full_name.replace("'", "''")
    assert ids(client, f"$filter=FullName eq '{quoted}'", secret) == [c[2].id]
    assert ids(client, "$filter=FullName eq 'x'' or 1 eq 1 or ''a'' eq ''a'", secret) == []
    assert ids(client, "$filter=City eq 'Pune' or Archived eq true", secret) == [c[2].id, c[3].id]
    assert ids(client, "$filter=City ne null and not (Archived eq true)", secret) == [c[2].id]
    assert ids(client, "$filter=Archived gt false", secret) == [c[3].id]
    assert ids(client, "$filter=CreditLimit gt 250000.49", secret) == [c[4].id]
    assert ids(client, "$filter=250000.50 le CreditLimit", secret) == [c[4].id]
    assert ids(client, f"$filter=Id ge {c[3].id} and Id lt {c[4].id}", secret) == [c[3].id]
    assert ids(client, "$filter=CreatedAt gt 2000-01-01T00:00:00Z", secret) == [x.id for x in c]
    assert ids(client, "$filter=CreatedAt lt 2000-01-01T00:00:00+05:30", secret) == []
    assert ids(client, "$filter=Total gt 1000 and IssueDate eq 2027-02-01", secret, "Invoices") == [
        inv[1].id
    ]
    assert ids(client, "$filter=DueDate lt 2027-02-02", secret, "Invoices") == []
    assert ids(client, "$filter=DueDate gt 2027-02-01", secret, "Invoices") == [i.id for i in inv]

    selected = read(client.get(ROOT + "Clients?$select=FullName,Id&$top=1", headers=basic(secret)))
    assert selected["@odata.context"].endswith("$metadata#Clients(Id,FullName)")
    assert selected["value"] == [{"Id": c[0].id, "FullName": c[0].full_name}]

    newest_first = ids(client, "$orderby=FullName desc", secret)
    assert newest_first == [x.id for x in sorted(c, key=lambda x: x.full_name, reverse=True)]
    assert ids(client, "$orderby=City,Id desc&$top=2", secret) == [c[4].id, c[3].id]
    assert ids(client, "$skip=1&$top=2", secret) == [c[1].id, c[2].id]
    assert ids(client, "$top=0", secret) == []

    counted = read(
        client.get(
            ROOT + "Clients?$count=true&$top=1&$filter=Archived eq false", headers=basic(secret)
        )
    )
    assert counted["@odata.count"] == 4 and len(counted["value"]) == 1
    # $top=1 asked for one: no next page is offered beyond it.
    assert list(counted) == ["@odata.context", "@odata.count", "value"]
    plain = client.get(ROOT + "Invoices/$count?$filter=Total lt 1000", headers=basic(secret))
    assert plain.status_code == 200 and plain.text == "1"


def walk(client, url: str, secret: str, page_size: int, between_pages=None) -> list[int]:
    """Every row of `url`, a page at a time, following @odata.nextLink."""
    headers = {**basic(secret), "Prefer": f"odata.maxpagesize={page_size}"}
    seen = []
    while url:
        page = client.get(url, headers=headers)
        assert page.status_code == 200, page.text
        assert page.headers["Preference-Applied"] == f"odata.maxpagesize={page_size}"
        body = read(page)
        seen += [row["Id"] for row in body["value"]]
        url = local(body["@odata.nextLink"]) if "@odata.nextLink" in body else None
        if between_pages:
            between_pages()
    return seen


def test_pages_in_a_chosen_order_and_within_top_follow_next_links(
    client, books, db_session, make_client
):
    secret, c = books["secret"], books["clients"]
    in_order = [x.id for x in sorted(c, key=lambda x: x.full_name, reverse=True)]
    url = ROOT + "Clients?$orderby=FullName desc&$top=3&$skip=1"
    assert walk(client, url, secret, 2) == in_order[1:4]
    # OData sorts null below any value: first going up, last going down.
    assert ids(client, "$orderby=City", secret) == [c[0].id, c[1].id, c[3].id, c[4].id, c[2].id]
    for orderby in ("City,FullName desc", "City desc,Id desc", "CreditLimit desc,Archived"):
        whole = ids(client, f"$orderby={orderby}", secret)
        assert walk(client, ROOT + f"Clients?$orderby={orderby}", secret, 1) == whole, orderby

    # A client added between two pages, sorting before where the walk is, neither repeats a
    # row nor hides one: each page starts after the last row sent.
    session = tenant_session(db_session, books["tenant"])
    added = []

    def add_a_client():
        if not added:
            added.append(make_client(session, name="Aardvark").id)
            session.commit()

    walked = walk(client, ROOT + "Clients?$orderby=FullName", secret, 2, add_a_client)
    assert walked == [x.id for x in sorted(c, key=lambda x: x.full_name)]


@pytest.mark.parametrize(
    ("query", "status", "code", "target", "words"),
    [
        ("$filter=Nickname eq 'x'", 400, "invalid_filter", "$filter", "“Nickname”"),
        ("$filter=length(FullName) eq 3", 400, "invalid_filter", "$filter", "“length”"),
        ("$filter=PaymentDays eq 'thirty'", 400, "invalid_filter", "$filter", "whole number"),
        ("$filter=CreatedAt gt 2026-01-01", 400, "invalid_filter", "$filter", "date and time"),
        ("$filter=FullName eq 'open", 400, "invalid_filter", "$filter", "position 13"),
        ("$filter=FullName eq", 400, "invalid_filter", "$filter", "ends too soon"),
        ("$filter=(City eq 'Pune'", 400, "invalid_filter", "$filter", "“)”"),
        ("$filter=City gt null", 400, "invalid_filter", "$filter", "null"),
        ("$filter=" + "(" * 40 + "Id eq 1" + ")" * 40, 400, "invalid_filter", "$filter", "32"),
        ("$filter=Id eq 1; DROP TABLE clients", 400, "invalid_filter", "$filter", "“;”"),
        ("$select=FullName,Secret", 400, "invalid_select", "$select", "Secret"),
        ("$orderby=FullName sideways", 400, "invalid_orderby", "$orderby", "sideways"),
        ("$top=-1", 400, "invalid_option", "$top", "whole number"),
        ("$skip=99999999999999999999", 400, "invalid_option", "$skip", "whole number"),
        ("$count=yes", 400, "invalid_option", "$count", "true or false"),
        ("$skiptoken=bm90IGEgdG9rZW4", 400, "invalid_skiptoken", "$skiptoken", "nextLink"),
        ("$expand=Contacts", 501, "not_implemented", "$expand", "$expand"),
        ("$levels=2", 501, "not_implemented", "$levels", "$levels"),
        ("$frobnicate=1", 400, "invalid_option", "$frobnicate", "not an OData option"),
        ("$format=xml", 406, "not_acceptable", "$format", "JSON"),
    ],
)
def test_a_bad_query_gets_an_odata_error_naming_what_is_wrong(
    client, books, query, status, code, target, words
):
    answer = client.get(ROOT + "Clients?" + query, headers=basic(books["secret"]))
    assert answer.status_code == status, answer.text
    assert answer.mimetype == "application/json"
    error = answer.json["error"]
    assert (error["code"], error["target"]) == (code, target)
    assert words in error["message"]


def test_a_nul_character_in_a_filter_is_refused_in_odatas_words(client, books):
    answer = client.get(
        ROOT + "Clients?$filter=FullName eq 'a%00b'", headers=basic(books["secret"])
    )
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "bad_request"


def test_amount_due_is_worked_out_and_cannot_be_filtered_or_sorted(client, books):
    for query in ("$filter=AmountDue gt 0", "$orderby=AmountDue"):
        answer = client.get(ROOT + "Invoices?" + query, headers=basic(books["secret"]))
        assert answer.status_code == 400
        assert "AmountDue" in answer.json["error"]["message"]


def test_who_may_read_the_feed(client, books, db_session, make_user):
    for headers in ({}, basic("dbk_live_forged"), basic(books["secret"])["Authorization"][:12]):
        headers = headers if isinstance(headers, dict) else {"Authorization": headers}
        refused = client.get(ROOT, headers=headers)
        assert refused.status_code == 401
        assert refused.json["error"]["code"] == "unauthorized"
        assert any(c.startswith("Basic") for c in refused.headers.getlist("WWW-Authenticate"))
    bearer = {"Authorization": f"Bearer {books['secret']}"}
    assert client.get(ROOT + "Clients", headers=bearer).status_code == 200
    _, narrow = api_services.create_key(
        db_session, books["tenant"].id, "Clients only", ["clients:read"], books["owner"].id
    )
    db_session.commit()
    service = read(client.get(ROOT, headers=basic(narrow)))
    assert [s["name"] for s in service["value"]] == ["Clients"]
    refused = client.get(ROOT + "Payments", headers=basic(narrow))
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "insufficient_scope"
    assert client.get(ROOT + "Nothing", headers=basic(narrow)).status_code == 404
    assert client.post(ROOT + "Clients", headers=basic(narrow)).status_code == 405
    assert client.post(ROOT + "Clients", headers=basic(narrow)).json["error"]["code"]


def test_another_workspaces_key_sees_nothing_of_this_one(
    client, books, db_session, make_tenant, make_user
):
    other_owner = make_user()
    other = make_tenant(owner=other_owner, region="27")
    _, theirs = api_services.create_key(
        db_session, other.id, "Theirs", sorted(SCOPES), other_owner.id
    )
    db_session.commit()
    mine = books["clients"][0].id
    for entity_set in ("Clients", "Invoices", "InvoiceLines", "Payments"):
        assert ids(client, "", books["secret"], entity_set), entity_set
        assert ids(client, "", theirs, entity_set) == [], entity_set
        assert ids(client, f"$filter=Id ge 1 or Id eq {mine}", theirs, entity_set) == []
        counted = client.get(ROOT + entity_set + "/$count", headers=basic(theirs))
        assert counted.text == "0", entity_set


def test_a_javascript_client_asking_for_ieee754_compatibility_gets_exact_strings(client, books):
    headers = {
        **basic(books["secret"]),
        "Accept": "application/json;odata.metadata=minimal;IEEE754Compatible=true",
    }
    answer = client.get(ROOT + "Invoices?$select=Id,Total,Currency&$top=1", headers=headers)
    assert "IEEE754Compatible=true" in answer.headers["Content-Type"]
    assert answer.json["value"] == [
        {"Id": str(books["invoices"][0].id), "Total": "1000.00", "Currency": "INR"}
    ]


PIECES = [
    *("Id", "FullName", "City", "CreditLimit", "Archived", "CreatedAt", "PaymentDays", "Nope"),
    *("eq", "ne", "gt", "ge", "lt", "le", "and", "or", "not", "(", ")", ","),
    *("contains(", "startswith(", "endswith(", "length(", "true", "false", "null"),
    *("'Acme'", "'it''s'", "'", "1", "-5", "250000.50", "2027-02-01", "2027-02-01T00:00:00Z"),
    *("99999999999999999999", "2027-13-45", "%", "$", ";", "--", "\\", "é"),
]


@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=12),
    orderby=st.sampled_from(["", "City", "FullName desc,Id", "Nope", "Archived desc"]),
)
@settings(
    max_examples=80,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_filter_is_a_server_error(client, books, pieces, orderby):
    query = {"$filter": " ".join(pieces)} | ({"$orderby": orderby} if orderby else {})
    answer = client.get(ROOT + "Clients", query_string=query, headers=basic(books["secret"]))
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 400:
        assert answer.json["error"]["target"] in ("$filter", "$orderby")
