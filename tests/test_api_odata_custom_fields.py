"""The workspace's custom fields in the OData feed, as Excel and Power BI meet them: $metadata
(still valid CSDL by the OASIS schemas) declares each live field of clients, invoices and
payments as a typed `Custom_<key>` property of this workspace only; rows carry the values (null
when a record has none, and when what is stored is not of the field's kind); $select, $filter
and $orderby work on them, pages included; an archived field leaves the feed; a bad filter on
one gets OData's error body, never a 500."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from xml.etree import ElementTree

import pytest
import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api import odata
from app.api import services as api_services
from app.api.models import SCOPES
from app.custom_fields import services as custom_fields
from tests.helpers import tenant_session
from tests.test_api_odata import CONTRACTS, ROOT, basic, read, walk

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
CLIENT_FIELDS = [
    {"label": "Credit score", "field_type": "number"},
    {"label": "Tier", "field_type": "choice", "choices": "Gold\nSilver\nBronze"},
    {"label": "Segments", "field_type": "choices", "choices": "Retail\nExport\nGovernment"},
    {"label": "Account manager", "field_type": "user"},
    {"label": "Onboarded", "field_type": "date"},
    {"label": "Key account", "field_type": "yes_no"},
    {"label": "Website", "field_type": "url"},
    {"label": "Old note", "field_type": "long_text"},
]


def give(session, entity: str, record, submitted: dict) -> None:
    """Values as a form would give them: through the one check every form and API call uses."""
    values, errors = custom_fields.clean_values(
        session, entity, submitted, current=record.custom_fields
    )
    assert not errors, errors
    record.custom_fields = values


@pytest.fixture
def books(db_session, make_tenant, make_user, make_client, make_invoice, make_payment):
    """A workspace with custom fields on clients, invoices and payments: Acme and Bharat have
    values, Chola none, Deccan holds Bronze (then taken off Tier's list) and Old note (then
    archived). Another workspace, with no custom fields, has a client of its own."""
    owner = make_user(full_name="Priya Raman")
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant)
    fields = {f["label"]: custom_fields.save_field(session, "clients", f) for f in CLIENT_FIELDS}
    custom_fields.save_field(session, "invoices", {"label": "PO number", "field_type": "text"})
    custom_fields.save_field(session, "invoices", {"label": "Approved", "field_type": "money"})
    custom_fields.save_field(session, "payments", {"label": "Slip", "field_type": "text"})
    acme, bharat, chola, deccan = (
        make_client(session, name=name) for name in ("Acme", "Bharat", "Chola", "Deccan")
    )
    give(
        session,
        "clients",
        acme,
        {
            "credit_score": "720",
            "tier": "Gold",
            "segments": ["Export", "Retail"],
            "account_manager": str(owner.id),
            "onboarded": "2026-04-01",
            "key_account": "yes",
            "website": "https://acme.example",
        },
    )
    give(
        session,
        "clients",
        bharat,
        {"credit_score": "650.5", "tier": "Silver", "segments": ["Retail"], "key_account": "no"},
    )
    give(session, "clients", deccan, {"tier": "Bronze", "old_note": "kept, not shown"})
    invoice = make_invoice(session, tenant, acme, ["1000.00"])
    give(session, "invoices", invoice, {"po_number": "PO-7", "approved": "1000"})
    payment = make_payment(session, acme, "400.00", allocate_to=[invoice])
    give(session, "payments", payment, {"slip": "SLIP-1"})
    session.flush()
    custom_fields.save_field(
        session, "clients", {"label": "Tier", "choices": "Gold\nSilver"}, fields["Tier"]
    )
    custom_fields.archive_field(fields["Old note"])
    session.commit()

    other_owner = make_user()
    other = make_tenant(owner=other_owner, region="27")
    theirs = tenant_session(db_session, other)
    their_client = make_client(theirs, name="Elsewhere")
    theirs.commit()

    _, secret = api_services.create_key(db_session, tenant.id, "BI", sorted(SCOPES), owner.id)
    _, other_secret = api_services.create_key(
        db_session, other.id, "BI", sorted(SCOPES), other_owner.id
    )
    db_session.commit()
    return SimpleNamespace(
        tenant=tenant,
        other=other,
        acme=acme.id,
        bharat=bharat.id,
        chola=chola.id,
        deccan=deccan.id,
        invoice=invoice.id,
        payment=payment.id,
        their_client=their_client.id,
        secret=secret,
        other_secret=other_secret,
    )


def entity_types(document: bytes) -> dict[str, dict[str, dict]]:
    csdl = ElementTree.fromstring(document)
    return {
        t.get("Name"): {p.get("Name"): dict(p.attrib) for p in t.iter(EDM + "Property")}
        for t in csdl.iter(EDM + "EntityType")
    }


def metadata(client, secret: str) -> bytes:
    answer = client.get(ROOT + "$metadata", headers=basic(secret))
    assert answer.status_code == 200 and answer.mimetype == "application/xml"
    xmlschema.XMLSchema(str(CONTRACTS / "edmx.xsd")).validate(answer.get_data(as_text=True))
    return answer.get_data()


def test_metadata_declares_the_workspaces_live_fields_with_their_types(client, books):
    types = entity_types(metadata(client, books.secret))
    client_type = types["Client"]
    custom = {name: attrs for name, attrs in client_type.items() if name.startswith("Custom_")}
    assert custom == {
        "Custom_credit_score": {
            "Name": "Custom_credit_score",
            "Type": "Edm.Decimal",
            "Scale": "variable",
        },
        "Custom_tier": {"Name": "Custom_tier", "Type": "Edm.String", "MaxLength": "100"},
        "Custom_segments": {"Name": "Custom_segments", "Type": "Edm.String"},
        "Custom_account_manager": {
            "Name": "Custom_account_manager",
            "Type": "Edm.String",
            "MaxLength": "191",
        },
        "Custom_onboarded": {"Name": "Custom_onboarded", "Type": "Edm.Date"},
        "Custom_key_account": {"Name": "Custom_key_account", "Type": "Edm.Boolean"},
        "Custom_website": {"Name": "Custom_website", "Type": "Edm.String", "MaxLength": "500"},
    }
    # After the feed's own properties, in the fields' order; the archived Old note is not there.
    assert list(client_type)[-len(custom) :] == list(custom)
    assert list(client_type)[: -len(custom)] == [p.name for p in odata.ENTITY_SETS[0].properties]
    assert types["Invoice"]["Custom_po_number"]["Type"] == "Edm.String"
    assert types["Invoice"]["Custom_approved"] == {
        "Name": "Custom_approved",
        "Type": "Edm.Decimal",
        "Precision": "18",
        "Scale": "2",
    }
    assert types["Payment"]["Custom_slip"]["Type"] == "Edm.String"
    assert not any(name.startswith("Custom_") for name in types["InvoiceLine"])


def test_another_workspace_gets_the_feeds_own_document_and_none_of_these_fields(client, books):
    theirs = metadata(client, books.other_secret)
    assert theirs == odata.metadata_document(odata.ENTITY_SETS)
    assert b"Custom_" not in theirs
    rows = read(client.get(ROOT + "Clients", headers=basic(books.other_secret)))["value"]
    assert [row["Id"] for row in rows] == [books.their_client]
    assert not any(name.startswith("Custom_") for name in rows[0])
    refused = client.get(ROOT + "Clients?$select=Custom_tier", headers=basic(books.other_secret))
    assert refused.status_code == 400 and refused.json["error"]["code"] == "invalid_select"


def test_rows_carry_the_values_and_null_where_a_record_has_none(client, books):
    rows = read(client.get(ROOT + "Clients", headers=basic(books.secret)))["value"]
    by_id = {row["Id"]: row for row in rows}
    custom = {
        row_id: {k: v for k, v in row.items() if k.startswith("Custom_")}
        for row_id, row in by_id.items()
    }
    assert custom[books.acme] == {
        "Custom_credit_score": Decimal("720"),
        "Custom_tier": "Gold",
        "Custom_segments": "Export, Retail",
        "Custom_account_manager": "Priya Raman",
        "Custom_onboarded": "2026-04-01",
        "Custom_key_account": True,
        "Custom_website": "https://acme.example",
    }
    assert custom[books.bharat]["Custom_credit_score"] == Decimal("650.5")
    assert custom[books.bharat]["Custom_key_account"] is False
    assert custom[books.chola] == dict.fromkeys(custom[books.acme])
    # Bronze was taken off the list: the client still holds it, under its label.
    assert custom[books.deccan]["Custom_tier"] == "Bronze"
    raw = client.get(
        ROOT + f"Clients?$filter=Id eq {books.bharat}", headers=basic(books.secret)
    ).get_data(as_text=True)
    assert '"Custom_credit_score":650.5' in raw  # digit for digit, never a float's rounding

    invoice = read(client.get(ROOT + "Invoices", headers=basic(books.secret)))["value"][0]
    assert (invoice["Custom_po_number"], invoice["Custom_approved"]) == ("PO-7", Decimal("1000.00"))
    payment = read(client.get(ROOT + "Payments", headers=basic(books.secret)))["value"][0]
    assert payment["Custom_slip"] == "SLIP-1"


def ids(client, query: str, secret: str) -> list[int]:
    answer = client.get(ROOT + "Clients?" + query, headers=basic(secret))
    assert answer.status_code == 200, answer.text
    return [row["Id"] for row in read(answer)["value"]]


def test_filter_on_custom_fields_with_the_operators_of_their_type(client, books):
    s, acme, bharat, chola, deccan = (
        books.secret,
        books.acme,
        books.bharat,
        books.chola,
        books.deccan,
    )
    assert ids(client, "$filter=Custom_credit_score gt 700", s) == [acme]
    assert ids(client, "$filter=Custom_credit_score le 650.5", s) == [bharat]
    assert ids(client, "$filter=600 lt Custom_credit_score", s) == [acme, bharat]
    assert ids(client, "$filter=Custom_credit_score eq null", s) == [chola, deccan]
    assert ids(client, "$filter=Custom_tier eq 'Gold'", s) == [acme]
    assert ids(client, "$filter=Custom_tier eq 'Gold' or Custom_tier eq 'Bronze'", s) == [
        acme,
        deccan,
    ]
    assert ids(client, "$filter=startswith(Custom_tier,'S')", s) == [bharat]
    assert ids(client, "$filter=Custom_tier ne null and Custom_credit_score eq null", s) == [deccan]
    assert ids(client, "$filter=contains(Custom_segments,'Retail')", s) == [acme, bharat]
    assert ids(client, "$filter=Custom_key_account eq false", s) == [bharat]
    assert ids(client, "$filter=Custom_onboarded lt 2026-05-01", s) == [acme]
    assert ids(client, "$filter=Custom_account_manager eq 'Priya Raman'", s) == [acme]
    assert ids(client, "$filter=endswith(Custom_website,'.example')", s) == [acme]
    counted = client.get(
        ROOT + "Invoices/$count?$filter=Custom_approved ge 1000.00", headers=basic(s)
    )
    assert counted.text == "1"


def test_orderby_on_custom_fields_and_pages_through_them(client, books):
    s, acme, bharat, chola, deccan = (
        books.secret,
        books.acme,
        books.bharat,
        books.chola,
        books.deccan,
    )
    # OData sorts null below any value: first going up, last going down.
    assert ids(client, "$orderby=Custom_credit_score desc", s) == [acme, bharat, chola, deccan]
    assert ids(client, "$orderby=Custom_credit_score", s) == [chola, deccan, bharat, acme]
    assert ids(client, "$orderby=Custom_tier", s) == [chola, deccan, acme, bharat]
    assert ids(client, "$orderby=Custom_tier desc,Id", s) == [bharat, acme, deccan, chola]
    for orderby in ("Custom_credit_score desc", "Custom_tier,Custom_key_account desc"):
        whole = ids(client, f"$orderby={orderby}", s)
        assert walk(client, ROOT + f"Clients?$orderby={orderby}", s, 1) == whole, orderby
    for orderby in ("Custom_onboarded desc", "Custom_segments", "Custom_account_manager"):
        whole = ids(client, f"$orderby={orderby}", s)
        assert walk(client, ROOT + f"Clients?$orderby={orderby}", s, 2) == whole, orderby


def test_select_a_custom_property(client, books):
    answer = read(
        client.get(
            ROOT + f"Clients?$select=Custom_tier,Id&$filter=Id eq {books.acme}",
            headers=basic(books.secret),
        )
    )
    assert answer["@odata.context"].endswith("$metadata#Clients(Id,Custom_tier)")
    assert answer["value"] == [{"Id": books.acme, "Custom_tier": "Gold"}]


def test_an_archived_field_leaves_the_feed_and_its_values_stay(client, books, db_session):
    s = books.secret
    for query in ("$select=Custom_old_note", "$filter=Custom_old_note eq 'x'"):
        refused = client.get(ROOT + "Clients?" + query, headers=basic(s))
        assert refused.status_code == 400, query
        assert "Custom_old_note" in refused.json["error"]["message"]
    assert "Custom_old_note" not in entity_types(metadata(client, s))["Client"]

    session = tenant_session(db_session, books.tenant)
    tier = next(f for f in custom_fields.definitions(session, "clients") if f.key == "tier")
    custom_fields.archive_field(tier)
    session.commit()
    assert "Custom_tier" not in entity_types(metadata(client, s))["Client"]
    row = read(client.get(ROOT + f"Clients?$filter=Id eq {books.acme}", headers=basic(s)))
    assert "Custom_tier" not in row["value"][0]
    custom_fields.restore_field(tier)
    session.commit()
    row = read(client.get(ROOT + f"Clients?$filter=Id eq {books.acme}", headers=basic(s)))
    assert row["value"][0]["Custom_tier"] == "Gold"


@pytest.mark.parametrize(
    ("query", "code", "target", "words"),
    [
        ("$filter=Custom_credit_score gt 'high'", "invalid_filter", "$filter", "a number"),
        ("$filter=contains(Custom_credit_score,'7')", "invalid_filter", "$filter", "not text"),
        ("$filter=Custom_tier eq 5", "invalid_filter", "$filter", "text"),
        ("$filter=Custom_onboarded eq 2026-04-01T00:00:00Z", "invalid_filter", "$filter", "date"),
        ("$filter=Custom_key_account eq 1", "invalid_filter", "$filter", "true or false"),
        ("$filter=Custom_nope eq 1", "invalid_filter", "$filter", "“Custom_nope”"),
        ("$filter=Custom_tier eq 'Gold", "invalid_filter", "$filter", "position 16"),
        ("$orderby=Custom_tier sideways", "invalid_orderby", "$orderby", "Custom_tier"),
        ("$select=Id,Custom_Tier", "invalid_select", "$select", "Custom_Tier"),
    ],
)
def test_a_bad_query_on_a_custom_property_gets_an_odata_error(
    client, books, query, code, target, words
):
    answer = client.get(ROOT + "Clients?" + query, headers=basic(books.secret))
    assert answer.status_code == 400, answer.text
    assert answer.mimetype == "application/json"
    assert answer.headers["OData-Version"] == "4.0"
    error = answer.json["error"]
    assert (error["code"], error["target"]) == (code, target)
    assert words in error["message"]


def test_a_stored_value_not_of_the_fields_kind_reads_as_null(
    client, books, db_session, make_client
):
    """Values arrive through clean_values; one written around it (a script, an old bug) must
    not fail a BI tool's whole refresh."""
    session = tenant_session(db_session, books.tenant)
    odd = make_client(session, name="Odd")
    odd.custom_fields = {
        "credit_score": "lots",
        "onboarded": "someday",
        "key_account": "maybe",
        "segments": "retail",
        "account_manager": "nobody",
        "tier": "platinum",
    }
    odd_id = odd.id
    session.commit()
    answer = client.get(
        ROOT + f"Clients?$filter=Id eq {odd_id}&$orderby=Custom_credit_score,Custom_onboarded",
        headers=basic(books.secret),
    )
    assert answer.status_code == 200, answer.text
    row = read(answer)["value"][0]
    assert row["Custom_credit_score"] is None
    assert row["Custom_onboarded"] is None
    assert row["Custom_key_account"] is None
    assert row["Custom_segments"] is None
    assert row["Custom_account_manager"] is None
    assert row["Custom_tier"] == "platinum"  # a value no longer among the choices, as it is


def test_a_member_of_another_workspace_is_not_named(
    client, books, db_session, make_user, make_client, add_member
):
    stranger = make_user(full_name="Someone Else")
    add_member(books.other, stranger)
    session = tenant_session(db_session, books.tenant)
    held = make_client(session, name="Held")
    held.custom_fields = {"account_manager": stranger.id}
    held_id = held.id
    session.commit()
    row = read(client.get(ROOT + f"Clients?$filter=Id eq {held_id}", headers=basic(books.secret)))[
        "value"
    ][0]
    assert row["Custom_account_manager"] == f"Member {stranger.id}"


PIECES = [
    *("Custom_credit_score", "Custom_tier", "Custom_segments", "Custom_onboarded"),
    *("Custom_key_account", "Custom_account_manager", "Custom_old_note", "Id"),
    *("eq", "ne", "gt", "le", "and", "or", "not", "(", ")", ","),
    *("contains(", "startswith(", "true", "null", "'Gold'", "'", "720", "-1.5"),
    *("2026-04-01", "2026-04-01T00:00:00Z", "99999999999999999999", "%", ";"),
]


@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=10),
    orderby=st.sampled_from(["", "Custom_tier", "Custom_credit_score desc,Id", "Custom_old_note"]),
)
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_filter_on_custom_properties_is_a_server_error(client, books, pieces, orderby):
    query = {"$filter": " ".join(pieces)} | ({"$orderby": orderby} if orderby else {})
    answer = client.get(ROOT + "Clients", query_string=query, headers=basic(books.secret))
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 400:
        assert answer.json["error"]["target"] in ("$filter", "$orderby")
