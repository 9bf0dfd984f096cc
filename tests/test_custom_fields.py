"""Custom fields: every kind of value checked the same way wherever it comes from (form, import,
API), errors by field in plain words; archiving a field or a choice keeps what records hold;
lists filter and sort by a field; the admin page is for admins."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest
from sqlalchemy import select, text

from app.clients.models import Client
from app.custom_fields import services
from app.custom_fields.models import CustomField
from app.invoicing.models import Invoice
from tenants.binding import bound_tenant_id, schema_for_tenant_id
from tests.helpers import csrf_token_from, tenant_session


@pytest.fixture
def workspace(db_session, make_tenant, make_user):
    owner = make_user(full_name="Owner Asha")
    tenant = make_tenant(owner=owner)
    session = tenant_session(db_session, tenant, owner.id)
    return tenant, owner, session


def add_field(session, entity="clients", **raw) -> CustomField:
    return services.save_field(session, entity, {"field_type": "text", **raw})


# Definitions --------------------------------------------------------------------------------


def test_a_field_gets_a_key_from_its_name_unique_per_kind_of_record(workspace):
    _, _, session = workspace
    field = add_field(session, label="PO number")
    assert (field.key, field.position) == ("po_number", 1)
    with pytest.raises(services.FieldError) as refused:
        add_field(session, label="P.O. number", key="po_number")
    assert "key" in refused.value.errors
    # The same key on another kind of record is another field.
    assert add_field(session, "invoices", label="PO number").key == "po_number"


@pytest.mark.parametrize(
    ("raw", "where", "words"),
    [
        ({"label": ""}, "label", "name"),
        ({"label": "X", "field_type": "colour"}, "field_type", "kind"),
        ({"label": "X", "key": "9lives"}, "key", "starting with a letter"),
        ({"label": "X", "pattern": "(a)\\1"}, "pattern", "back-references"),
        ({"label": "X", "pattern": "(?=a)b"}, "pattern", "look-arounds"),
        ({"label": "X", "pattern": "[unclosed"}, "pattern", "brackets"),
        ({"label": "X", "pattern": "a" * 201}, "pattern", "200 characters"),
        ({"label": "X", "field_type": "number", "min": "10", "max": "5"}, "max", "below"),
        ({"label": "X", "field_type": "date", "min": "2027-02-31"}, "min", "date"),
        ({"label": "X", "field_type": "choice", "choices": ""}, "choices", "at least one"),
        ({"label": "X", "field_type": "choice", "choices": "Gold\ngold"}, "choices", "twice"),
        (
            {"label": "X", "field_type": "number", "default_value": "many"},
            "default_value",
            "number",
        ),
    ],
)
def test_a_field_that_cannot_work_is_refused_with_the_reason_by_its_input(
    workspace, raw, where, words
):
    _, _, session = workspace
    with pytest.raises(services.FieldError) as refused:
        add_field(session, **raw)
    assert words in refused.value.errors[where]
    assert session.scalars(select(CustomField)).all() == []


# Values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "typed", "stored"),
    [
        ({"field_type": "text"}, "  PO-1 ", "PO-1"),
        ({"field_type": "long_text"}, "line 1\r\nline 2", "line 1\nline 2"),
        ({"field_type": "number"}, "1,500.5", "1500.5"),
        ({"field_type": "money"}, "1500.005", "1500.01"),
        ({"field_type": "date"}, "2027-03-31", "2027-03-31"),
        ({"field_type": "yes_no"}, "yes", True),
        ({"field_type": "yes_no"}, "no", False),
        ({"field_type": "choice", "choices": "Gold\nSilver"}, "Silver", "silver"),
        (
            {"field_type": "choices", "choices": "North\nSouth"},
            ["north", "South"],
            ["north", "south"],
        ),
        ({"field_type": "url"}, "https://example.com/po", "https://example.com/po"),
        ({"field_type": "email"}, "Accounts@Example.COM", "Accounts@example.com"),
        ({"field_type": "phone"}, "098450 12345", "+919845012345"),
        ({"field_type": "text", "pattern": "PO-[0-9]{3}"}, "PO-123", "PO-123"),
    ],
)
def test_each_kind_stores_its_value_in_one_form(workspace, field, typed, stored):
    _, _, session = workspace
    add_field(session, label="Extra", **field)
    values, errors = services.clean_values(session, "clients", {"extra": typed})
    assert errors == {}
    assert values == {"extra": stored}


@pytest.mark.parametrize(
    ("field", "typed", "words"),
    [
        ({"field_type": "number", "min": "1", "max": "10"}, "11", "10 or less"),
        ({"field_type": "number"}, "NaN", "number"),
        ({"field_type": "money", "min": "0"}, "-1", "0 or more"),
        ({"field_type": "date", "max": "2027-12-31"}, "2028-01-01", "on or before"),
        ({"field_type": "date"}, "31/03/2027", "date"),
        ({"field_type": "yes_no"}, "maybe", "yes or no"),
        ({"field_type": "choice", "choices": "Gold\nSilver"}, "Bronze", "Gold, Silver"),
        ({"field_type": "url"}, "javascript:alert(1)", "https://"),
        ({"field_type": "email"}, "not-an-address", "e-mail"),
        ({"field_type": "phone"}, "12", "phone"),
        ({"field_type": "text", "max_length": "5"}, "toolong", "5 characters"),
        ({"field_type": "text", "min_length": "3"}, "ab", "at least 3"),
        ({"field_type": "text", "pattern": "PO-[0-9]{3}"}, "PO-12x", "expected form"),
        ({"field_type": "user"}, "999999", "member"),
    ],
)
def test_a_bad_value_gets_a_plain_error_under_its_field(workspace, field, typed, words):
    _, _, session = workspace
    add_field(session, label="Extra", **field)
    values, errors = services.clean_values(session, "clients", {"extra": typed})
    assert words in errors["extra"]
    assert "extra" not in values


def test_a_pattern_cannot_hang_on_a_long_value(workspace):
    """(a+)+b backtracks exponentially on "aaa…!" in Python's re; RE2 answers at once, and
    the value is cut at the field's length before any pattern sees it."""
    _, _, session = workspace
    add_field(session, label="Code", pattern="(a+)+b")
    _, errors = services.clean_values(session, "clients", {"code": "a" * 250 + "!"})
    assert errors["code"] == "This is not in the expected form."
    _, errors = services.clean_values(session, "clients", {"code": "a" * 100_000})
    assert "255 characters" in errors["code"]


def test_required_fields_defaults_and_unknown_keys(workspace):
    _, owner, session = workspace
    add_field(session, label="PO number", required="1")
    add_field(
        session, label="Region", field_type="choice", choices="North\nSouth", default_value="South"
    )
    add_field(session, label="Manager", field_type="user")
    values, errors = services.clean_values(session, "clients", {})
    assert errors == {"po_number": "PO number is required."}
    assert values == {"region": "south"}
    values, errors = services.clean_values(
        session, "clients", {"po_number": "PO-1", "manager": str(owner.id), "colour": "red"}
    )
    assert errors == {"colour": "There is no such field."}
    assert values == {"po_number": "PO-1", "region": "south", "manager": owner.id}
    # An edit that leaves a field out keeps its value; emptying an optional one clears it.
    current = {"po_number": "PO-1", "region": "north"}
    values, errors = services.clean_values(session, "clients", {"region": ""}, current=current)
    assert (values, errors) == ({"po_number": "PO-1"}, {})


def test_archiving_a_field_keeps_the_values_records_hold(workspace):
    _, _, session = workspace
    field = add_field(session, label="PO number")
    current = {"po_number": "PO-1"}
    services.archive_field(field)
    values, errors = services.clean_values(session, "clients", {}, current=current)
    assert (values, errors) == ({"po_number": "PO-1"}, {})
    _, errors = services.clean_values(session, "clients", {"po_number": "PO-2"}, current=current)
    assert "archived" in errors["po_number"]
    assert services.definitions(session, "clients") == []
    services.restore_field(field)
    assert services.definitions(session, "clients") == [field]


def test_a_removed_choice_stays_on_the_records_that_hold_it_shown_archived(workspace):
    _, _, session = workspace
    field = add_field(session, label="Tier", field_type="choice", choices="Gold\nSilver")
    services.save_field(session, "clients", {"label": "Tier", "choices": "Gold"}, field)
    assert {c["value"]: c["archived"] for c in field.choices} == {"gold": False, "silver": True}
    held = {"tier": "silver"}
    # A record holding it may keep it; nobody may choose it anew.
    assert services.clean_values(session, "clients", {"tier": "silver"}, current=held) == (
        held,
        {},
    )
    _, errors = services.clean_values(session, "clients", {"tier": "silver"}, current={})
    assert errors["tier"] == "“Silver” is no longer offered."
    assert services.display_value(field, "silver") == "Silver (archived)"
    # Offered again, it comes back as a live choice.
    services.save_field(session, "clients", {"label": "Tier", "choices": "Gold\nSilver"}, field)
    assert not any(c["archived"] for c in field.choices)


def test_fields_keep_their_order_and_move_up_and_down(workspace):
    _, _, session = workspace
    first, second, third = (add_field(session, label=name) for name in ("A", "B", "C"))
    services.move_field(session, third, -1)
    assert [f.key for f in services.definitions(session, "clients")] == ["a", "c", "b"]
    services.move_field(session, first, -1)  # already first: nothing moves
    assert [f.key for f in services.definitions(session, "clients")] == ["a", "c", "b"]
    assert second.position == 3


# The admin page -------------------------------------------------------------------------------


def test_admins_add_edit_archive_and_reorder_fields_on_the_settings_page(
    client, workspace, login, add_member, make_user
):
    tenant, owner, session = workspace
    login(client, owner)
    url = f"/t/{tenant.slug}/settings/custom-fields/"
    page = client.get(url + "?entity=invoices")
    assert page.status_code == 200 and "Add a field to invoices" in page.text
    token = csrf_token_from(page.text)
    refused = client.post(
        url,
        data={
            "csrf_token": token,
            "entity": "invoices",
            "label": "PO",
            "field_type": "text",
            "pattern": "(?=x)",
        },
        headers={"HX-Request": "true"},
    )
    assert refused.status_code == 422
    assert "look-arounds" in refused.text and 'id="field-list"' in refused.text
    added = client.post(
        url,
        data={
            "csrf_token": token,
            "entity": "invoices",
            "label": "PO number",
            "field_type": "text",
            "required": "1",
            "print_on_invoice": "1",
        },
        headers={"HX-Request": "true"},
    )
    assert added.status_code == 200 and "po_number" in added.text
    field = session.scalar(select(CustomField).where(CustomField.key == "po_number"))
    assert (field.entity, field.required, field.print_on_invoice) == ("invoices", True, True)
    edit_url = f"/t/{tenant.slug}/settings/custom-fields/{field.id}"
    assert "Save field" in client.get(edit_url, headers={"HX-Request": "true"}).text
    saved = client.post(
        edit_url, data={"csrf_token": token, "label": "Purchase order"}, follow_redirects=True
    )
    assert saved.status_code == 200
    session.refresh(field)
    assert (field.label, field.required) == ("Purchase order", False)
    client.post(edit_url + "/archive", data={"csrf_token": token})
    session.refresh(field)
    assert field.archived_at is not None
    # Viewers and collectors do not reach it.
    viewer = make_user()
    add_member(tenant, viewer, role="finance")
    client.get("/logout")
    login(client, viewer)
    assert client.get(url).status_code == 403


def test_a_field_in_lists_gets_an_index_on_its_sort_expression(workspace):
    tenant, _, session = workspace
    field = add_field(session, label="Credit score", field_type="number", in_lists="1")
    definition = session.scalar(
        text(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = :schema AND indexname = :name"
        ).bindparams(schema=schema_for_tenant_id(tenant.id), name=services.list_index_name(field))
    )
    assert "clients" in definition and "credit_score" in definition


# Forms ----------------------------------------------------------------------------------------

MH_GSTIN = "27AAPFU0939F1ZV"


def form_key(page: str) -> str:
    found = re.search(r'name="form_key" value="([^"]+)"', page)
    return found.group(1) if found else ""


def test_the_client_form_shows_the_fields_and_their_errors_beside_them(client, workspace, login):
    tenant, owner, session = workspace
    add_field(session, label="PO number", required="1", pattern="PO-[0-9]{3}", section="Buying")
    add_field(session, label="Tier", field_type="choice", choices="Gold\nSilver")
    add_field(session, label="Since", field_type="date")
    session.commit()
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/clients/new").text
    assert "Buying" in page and 'name="cf.po_number"' in page and "More details" in page
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": form_key(page),
        "full_name": "Kaveri Builders Pvt Ltd",
        "short_name": "Kaveri",
        "status": "active",
        "location": "local",
        "country": "IN",
        "region": "27",
        "payment_terms": "net",
        "payment_days": "30",
        "currency": "INR",
        "preferred_language": "en",
        "preferred_channel": "email",
        "cf.po_number": "PO-12",
        "cf.tier": "gold",
        "cf.since": "2027-02-30",
    }
    refused = client.post(f"/t/{tenant.slug}/clients/new", data=data)
    assert refused.status_code == 422
    assert 'id="cf-po_number-error"' in refused.text and "expected form" in refused.text
    assert 'id="cf-since-error"' in refused.text
    assert 'value="PO-12"' in refused.text  # what was typed comes back
    assert session.scalars(select(Client)).all() == []
    page = refused.text
    data.update({"cf.po_number": "PO-123", "cf.since": "2027-02-28", "form_key": form_key(page)})
    saved = client.post(f"/t/{tenant.slug}/clients/new", data=data)
    assert saved.status_code == 303, saved.text
    kaveri = session.scalar(select(Client).where(Client.short_name == "Kaveri"))
    assert kaveri.custom_fields == {"po_number": "PO-123", "tier": "gold", "since": "2027-02-28"}
    profile = client.get(saved.headers["Location"]).text
    assert "PO-123" in profile and "Gold" in profile
    # Edited in place on the profile: an emptied required field is refused, beside it.
    url = f"/t/{tenant.slug}/clients/{kaveri.id}/custom-fields"
    token = csrf_token_from(profile)
    refused = client.post(url, data={"csrf_token": token, "cf.po_number": ""})
    assert refused.status_code == 422 and "PO number is required." in refused.text
    changed = client.post(
        url, data={"csrf_token": token, "cf.po_number": "PO-777", "cf.tier": "silver"}
    )
    assert changed.status_code == 200 and "PO-777" in changed.text
    session.refresh(kaveri)
    assert kaveri.custom_fields == {"po_number": "PO-777", "tier": "silver"}


@pytest.fixture
def books(db_session, make_tenant, make_user):
    owner = make_user(full_name="Owner Asha")
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant, owner.id)
    customer = Client(
        full_name="Kaveri Builders",
        short_name="Kaveri",
        location="local",
        country="IN",
        region="27",
        currency="INR",
        gstin=MH_GSTIN,
        payment_terms="net",
        payment_days=30,
    )
    session.add(customer)
    session.commit()
    return tenant, owner, session, customer


def test_the_invoice_form_takes_the_invoice_fields_and_the_page_shows_them(client, books, login):
    tenant, owner, session, customer = books
    add_field(session, "invoices", label="PO number", required="1")
    add_field(session, "invoices", label="Approved", field_type="yes_no")
    session.commit()
    login(client, owner)
    url = f"/t/{tenant.slug}/invoices/new"
    page = client.get(f"{url}?client_id={customer.id}").text
    assert 'name="cf.po_number"' in page
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": form_key(page),
        "client_id": customer.id,
        "description": "Survey",
        "hsn_sac": "998311",
        "quantity": "1",
        "unit_price": "100",
        "tax_rate": "18",
        "cf.approved": "maybe",
    }
    refused = client.post(url, data=data)
    assert refused.status_code == 422
    assert "PO number is required." in refused.text and "Answer yes or no." in refused.text
    assert session.scalars(select(Invoice)).all() == []
    data.update(
        {"cf.po_number": "4500012345", "cf.approved": "yes", "form_key": form_key(refused.text)}
    )
    saved = client.post(url, data=data)
    assert saved.status_code == 303, saved.text
    invoice = session.scalar(select(Invoice))
    assert invoice.custom_fields == {"po_number": "4500012345", "approved": True}
    shown = client.get(saved.headers["Location"]).text
    assert "4500012345" in shown and "Approved" in shown


# Lists, export ----------------------------------------------------------------------------


def _client(session, name, **custom) -> Client:
    record = Client(
        full_name=f"{name} Traders",
        short_name=name,
        location="local",
        country="IN",
        currency="INR",
        payment_terms="net",
        payment_days=30,
        custom_fields=custom,
    )
    session.add(record)
    return record


def test_the_client_list_filters_sorts_and_shows_columns_of_custom_fields(client, workspace, login):
    tenant, owner, session = workspace
    add_field(session, label="Score", field_type="number", in_lists="1")
    add_field(session, label="Tier", field_type="choice", choices="Gold\nSilver", in_lists="1")
    _client(session, "Alpha", score="9", tier="gold")
    _client(session, "Bravo", score="10.5", tier="gold")
    _client(session, "Charlie", score="-2", tier="silver")
    _client(session, "Delta", tier="gold")
    session.commit()
    login(client, owner)
    url = f"/t/{tenant.slug}/clients/"
    page = client.get(url, query_string={"cf.tier": "gold", "sort": "cf.score", "columns": "score"})
    text_ = page.text
    # Numbers sort as numbers (9 before 10.5), an empty value first; Silver is filtered out.
    assert [text_.index(n) for n in ("Delta Traders", "Alpha Traders", "Bravo Traders")] == sorted(
        text_.index(n) for n in ("Delta Traders", "Alpha Traders", "Bravo Traders")
    )
    assert "Charlie Traders" not in text_
    assert 'data-label="Score">10.5<' in text_
    # Descending, one per page: the Next link carries a numeric cursor that works.
    from app.clients import services as clients

    filters = clients.ClientFilters.from_args(
        {"sort": "-cf.score"}, services.list_fields(session, "clients")
    )
    first = clients.list_clients(session, filters, page_size=1)
    second = clients.list_clients(session, filters, after=first.next_cursor, page_size=1)
    back = clients.list_clients(session, filters, before=second.previous_cursor, page_size=1)
    assert [first.clients[0].short_name, second.clients[0].short_name] == ["Bravo", "Alpha"]
    assert back.clients[0].short_name == "Bravo"
    # A field not offered in lists is neither a filter nor a sort.
    add_field(session, label="Secret")
    filters = clients.ClientFilters.from_args(
        {"sort": "cf.secret", "cf.secret": "x"}, services.list_fields(session, "clients")
    )
    assert (filters.sort, filters.custom) == ("name", {})


def test_a_count_over_a_custom_filter_stops_sooner_and_says_so(
    client, workspace, login, monkeypatch
):
    """Counting a custom filter reads each record's JSON, so it stops at a lower cap ("2+"
    here, 1,000 in the product); the plain list keeps its own cap."""
    from app.clients import services as clients

    tenant, owner, session = workspace
    add_field(session, label="Tier", field_type="choice", choices="Gold\nSilver", in_lists="1")
    for name in ("Alpha", "Bravo", "Delta"):
        _client(session, name, tier="gold")
    session.commit()
    monkeypatch.setattr(clients, "CUSTOM_FILTER_COUNT_CAP", 2)
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/clients/", query_string={"cf.tier": "gold"}).text
    assert "2+ clients" in page and "Delta Traders" in page
    every = client.get(f"/t/{tenant.slug}/clients/").text
    assert "3 clients" in every


def test_the_export_has_the_custom_fields_in_the_form_the_import_reads(client, workspace, login):
    tenant, owner, session = workspace
    add_field(session, label="PO number")
    add_field(session, label="Tier", field_type="choice", choices="Gold\nSilver", in_lists="1")
    add_field(session, label="Key account", field_type="yes_no")
    _client(session, "Alpha", po_number="=HYPERLINK(1)", tier="gold", key_account=True)
    _client(session, "Bravo", tier="silver")
    session.commit()
    login(client, owner)
    exported = client.get(f"/t/{tenant.slug}/clients/export.csv", query_string={"cf.tier": "gold"})
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert rows[0][-3:] == ["PO number", "Tier", "Key account"]
    assert [row[-3:] for row in rows[1:]] == [["'=HYPERLINK(1)", "Gold", "Yes"]]


def test_the_invoice_list_filters_sorts_and_shows_columns_of_custom_fields(
    client, books, login, make_invoice
):
    tenant, owner, session, customer = books
    add_field(session, "invoices", label="PO number", in_lists="1")
    add_field(
        session,
        "invoices",
        label="Cost centre",
        field_type="choice",
        choices="North\nSouth",
        in_lists="1",
    )
    made = {}
    for po, centre in (("PO-2", "north"), ("PO-10", "north"), ("PO-3", "south")):
        invoice = make_invoice(session, tenant, customer)
        invoice.custom_fields = {"po_number": po, "cost_centre": centre}
        made[po] = invoice
    session.commit()
    login(client, owner)
    url = f"/t/{tenant.slug}/invoices/"
    page = client.get(
        url,
        query_string={
            "cf.cost_centre": "north",
            "sort": "-cf.po_number",
            "columns": "po_number,cost_centre",
        },
    ).text
    # Text sorts as text: PO-2 after PO-10, highest first; the south invoice is filtered out.
    assert page.index(">PO-2<") < page.index(">PO-10<")
    assert ">PO-3<" not in page and 'data-label="Cost centre">North<' in page
    assert "2 invoices" in page  # the totals are the filtered set's
    from app.invoicing import listing

    filters = listing.InvoiceFilters.from_args(
        {"sort": "cf.po_number"}, services.list_fields(session, "invoices")
    )
    today = date(2027, 3, 1)
    first = listing.list_invoices(session, filters, today, page_size=2)
    rest = listing.list_invoices(session, filters, today, after=first.next_cursor, page_size=2)
    assert [r.invoice.custom_fields["po_number"] for r in first.rows + rest.rows] == [
        "PO-10",
        "PO-2",
        "PO-3",
    ]


def _plan(session, query) -> str:
    """EXPLAIN of a list's query as the page runs it (text() SQL is not schema-translated)."""
    schema = schema_for_tenant_id(bound_tenant_id(session))
    sql = str(query.compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
    sql = sql.replace("tenant.", f"{schema}.")
    # A handful of rows would be read whole anyway: the index must be there to be chosen.
    session.execute(text("SET LOCAL enable_seqscan = off"))
    return "\n".join(session.execute(text("EXPLAIN " + sql)).scalars())


def test_search_finds_clients_and_invoices_by_their_custom_values_through_an_index(
    client, books, login, make_invoice
):
    """A PO number or a site code typed in the search box finds its record, as a name does; a
    field's key ("po") finds nothing by itself."""
    tenant, owner, session, customer = books
    add_field(session, "invoices", label="PO number")
    add_field(session, label="Site code")
    customer.custom_fields = {"site_code": "BLR-WHITEFIELD-7"}
    wanted = make_invoice(session, tenant, customer)
    wanted.custom_fields = {"po_number": "PO-88431"}
    other = make_invoice(session, tenant, customer)
    other.custom_fields = {"po_number": "PO-12000"}
    session.commit()
    login(client, owner)

    invoices = client.get(f"/t/{tenant.slug}/invoices/", query_string={"q": "88431"}).text
    assert wanted.number in invoices and other.number not in invoices
    clients = client.get(f"/t/{tenant.slug}/clients/", query_string={"q": "whitefield-7"}).text
    assert "Kaveri Builders" in clients
    assert (
        "Kaveri Builders"
        not in client.get(f"/t/{tenant.slug}/clients/", query_string={"q": "site_code"}).text
    )

    # The clients' side is test_clients' search test (their search text now holds the values).
    from app.invoicing import listing

    searched = listing._filtered(
        select(Invoice.id), listing.InvoiceFilters(q="88431"), date(2027, 3, 1), session
    )
    invoice_plan = _plan(session, searched)
    assert "ix_invoices_custom_search" in invoice_plan


# Import ---------------------------------------------------------------------------------------


def test_the_client_import_maps_columns_to_custom_fields_reporting_bad_rows_by_line(
    client, workspace, login, run_jobs, storage_root
):
    from tests.test_client_import import errors_of, import_id_of, save_mapping, start, upload

    tenant, owner, session = workspace
    add_field(session, label="PO number", pattern="PO-[0-9]+")
    add_field(session, label="Tier", field_type="choice", choices="Gold\nSilver")
    _client(session, "Kaveri", po_number="PO-1", tier="silver")
    session.commit()
    login(client, owner)
    content = (
        b"Full name,Short name,PO number,Tier\n"
        b"Alpha Traders,Alpha,PO-7,Gold\n"  # line 2: in
        b"Bravo Traders,Bravo,PX-7,Gold\n"  # line 3: the pattern refuses it
        b"Charlie Traders,Charlie,PO-9,Bronze\n"  # line 4: no such choice
        b"Kaveri Traders,Kaveri,,Gold\n"  # line 5: updates Kaveri; the empty cell keeps PO-1
    )
    import_id = import_id_of(upload(client, tenant, "clients.csv", content))
    page = client.get(f"/t/{tenant.slug}/clients/imports/{import_id}").text
    assert "Your fields" in page and 'name="map_cf_po_number"' in page
    assert "expected form" in page  # the preview already says why line 3 will not go in
    assert save_mapping(client, tenant, import_id).status_code == 303
    assert start(client, tenant, import_id).status_code == 303
    run_jobs()
    assert errors_of(session, import_id) == {(3, "cf.po_number"), (4, "cf.tier")}
    imported = {
        c.short_name: c.custom_fields
        for c in session.scalars(select(Client).execution_options(populate_existing=True))
    }
    assert imported == {
        "Alpha": {"po_number": "PO-7", "tier": "gold"},
        "Kaveri": {"po_number": "PO-1", "tier": "gold"},
    }
    report = client.get(f"/t/{tenant.slug}/clients/imports/{import_id}/errors.csv").text
    assert "PO number" in report and "Choose from the list (Gold, Silver)." in report


# Audit ----------------------------------------------------------------------------------------


def test_the_audit_log_says_a_custom_value_change_with_the_fields_name(client, workspace, login):
    tenant, owner, session = workspace
    add_field(session, label="PO number")
    tier = add_field(session, label="Tier", field_type="choice", choices="Gold\nSilver")
    kaveri = _client(session, "Kaveri", po_number="PO-1", tier="silver")
    session.commit()
    # Silver is taken off the list afterwards: the log still names it, marked archived.
    services.save_field(session, "clients", {"label": "Tier", "choices": "Gold"}, tier)
    session.commit()
    login(client, owner)
    url = f"/t/{tenant.slug}/clients/{kaveri.id}/custom-fields"
    token = csrf_token_from(client.get(url + "?edit=1").text)
    saved = client.post(url, data={"csrf_token": token, "cf.po_number": "PO-2", "cf.tier": "gold"})
    assert saved.status_code == 200
    page = client.get(f"/t/{tenant.slug}/audit/?action=update").text
    said = page.split("Owner Asha updated client Kaveri: ", 1)[1].split("<", 1)[0]
    assert "po number PO-1 → PO-2" in said
    assert "tier Silver (archived) → Gold" in said


# JSON API -------------------------------------------------------------------------------------


@pytest.fixture
def api_auth(db_session, workspace):
    from app.api import services as api_services
    from app.api.models import SCOPES

    tenant, owner, _ = workspace
    _, secret = api_services.create_key(db_session, tenant.id, "Test", sorted(SCOPES), owner.id)
    db_session.commit()
    return {"Authorization": f"Bearer {secret}"}


def problem_fields(response) -> dict[str, str]:
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    return {e["field"]: e["message"] for e in response.json["errors"]}


def test_the_api_reads_and_writes_client_custom_fields_refusing_bad_ones_per_field(
    client, workspace, api_auth
):
    _, _, session = workspace
    add_field(session, label="PO number", required="1")
    add_field(session, label="Score", field_type="number", max="100")
    add_field(session, label="Tier", field_type="choice", choices="Gold\nSilver")
    session.commit()
    new = {"full_name": "Acme Industries Pvt Ltd", "short_name": "Acme", "location": "local"}
    refused = client.post(
        "/api/v1/clients",
        json={**new, "custom_fields": {"score": 101, "tier": "Bronze", "colour": "red"}},
        headers=api_auth,
    )
    assert problem_fields(refused) == {
        "custom_fields.po_number": "PO number is required.",
        "custom_fields.score": "Give 100 or less.",
        "custom_fields.tier": "Choose from the list (Gold, Silver).",
        "custom_fields.colour": "There is no such field.",
    }
    assert session.scalars(select(Client)).all() == []
    created = client.post(
        "/api/v1/clients",
        json={**new, "custom_fields": {"po_number": "PO-1", "score": 99.5, "tier": "Gold"}},
        headers=api_auth,
    )
    assert created.status_code == 201, created.json
    assert created.json["custom_fields"] == {"po_number": "PO-1", "score": "99.5", "tier": "gold"}
    url = created.headers["Location"]
    changed = client.patch(
        url,
        json={"custom_fields": {"tier": None}},
        headers={**api_auth, "If-Match": client.get(url, headers=api_auth).headers["ETag"]},
    )
    assert changed.status_code == 200
    assert changed.json["custom_fields"] == {"po_number": "PO-1", "score": "99.5"}
    refused = client.patch(
        url,
        json={"custom_fields": {"po_number": None}},
        headers={**api_auth, "If-Match": changed.headers["ETag"]},
    )
    assert problem_fields(refused) == {"custom_fields.po_number": "PO number is required."}


def test_the_api_changes_an_invoices_custom_fields_and_nothing_else(
    client, books, make_invoice, db_session
):
    from app.api import services as api_services
    from app.api.models import SCOPES

    tenant, owner, session, customer = books
    add_field(session, "invoices", label="PO number")
    add_field(session, "invoices", label="Received", field_type="date")
    invoice = make_invoice(session, tenant, customer)
    session.commit()
    _, secret = api_services.create_key(db_session, tenant.id, "Test", sorted(SCOPES), owner.id)
    db_session.commit()
    auth = {"Authorization": f"Bearer {secret}"}
    url = f"/api/v1/invoices/{invoice.id}"
    read = client.get(url, headers=auth)
    assert read.json["custom_fields"] == {}
    refused = client.patch(
        url,
        json={"custom_fields": {"received": "2027-02-30"}},
        headers={**auth, "If-Match": read.headers["ETag"]},
    )
    assert "custom_fields.received" in problem_fields(refused)
    total = client.patch(url, json={"total": "1.00"}, headers={**auth, "If-Match": "*"})
    assert total.status_code == 422  # only custom fields may change
    changed = client.patch(
        url,
        json={"custom_fields": {"po_number": "4500012345", "received": "2027-02-03"}},
        headers={**auth, "If-Match": read.headers["ETag"]},
    )
    assert changed.status_code == 200
    assert changed.json["custom_fields"] == {"po_number": "4500012345", "received": "2027-02-03"}
    assert changed.json["total"] == read.json["total"]


# The invoice PDF and messages ------------------------------------------------------------------


def test_the_invoice_pdf_prints_the_fields_marked_to_print(app, books, make_invoice, storage_root):
    from pypdf import PdfReader

    from app.invoicing import pdf
    from app.invoicing import services as invoicing

    tenant, _, session, customer = books
    add_field(session, "invoices", label="PO number", print_on_invoice="1")
    add_field(session, "invoices", label="Internal note")  # not printed
    invoice = make_invoice(session, tenant, customer)
    invoice.pdf_key = "tenant_x/invoices/1/stored.pdf"
    invoicing.change_custom_values(
        session, invoice, {"po_number": "4500012345", "internal_note": "slow payer"}
    )
    assert invoice.pdf_key is None  # the stored PDF no longer shows what is printed
    with app.app_context():
        data = pdf.render_pdf(session, tenant, invoice)
    text_ = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages).split())
    assert "PO number: 4500012345" in text_
    assert "slow payer" not in text_


def test_message_templates_read_custom_fields_as_variables(app, books, make_invoice):
    from app.message_templates.models import MessageTemplate
    from app.message_templates.rendering import (
        message_context,
        render_for_channel,
        template_errors,
    )

    tenant, _, session, customer = books
    add_field(session, "invoices", label="PO number")
    add_field(session, label="Tier", field_type="choice", choices="Gold\nSilver")
    customer.custom_fields = {"tier": "gold"}
    invoice = make_invoice(session, tenant, customer)
    invoice.custom_fields = {"po_number": "4500012345"}
    session.flush()
    body = (
        "Your PO {{ invoice.custom.po_number }} ({{ client.custom.tier }})"
        "{{ invoice.custom.gone }}."
    )
    assert template_errors("email", "PO {{ invoice.custom.po_number }}", body) == {}
    with app.app_context():
        context = message_context(session, tenant, customer, None, invoice)
    rendered = render_for_channel(
        MessageTemplate(channel="email", subject="PO", body=body), context
    )
    # A field that is not there (archived since, never filled) reads as empty.
    assert rendered.text == "Your PO 4500012345 (Gold)."
    with pytest.raises(services.FieldError) as refused:
        add_field(session, "invoices", label="Items")  # {{ invoice.custom.items }} is a dict's
    assert "reserved" in refused.value.errors["key"]


def test_the_contact_forms_take_contact_fields(client, workspace, login):
    from app.clients.models import Contact

    tenant, owner, session = workspace
    add_field(session, "contacts", label="Birthday", field_type="date", required="1")
    kaveri = _client(session, "Kaveri")
    session.commit()
    login(client, owner)
    tab = client.get(f"/t/{tenant.slug}/clients/{kaveri.id}?tab=contacts").text
    assert 'name="cf.birthday"' in tab
    data = {
        "csrf_token": csrf_token_from(tab),
        "form_key": form_key(tab),
        "full_name": "Ravi Kumar",
        "email": "ravi@example.com",
        "roles": "billing",
    }
    refused = client.post(f"/t/{tenant.slug}/clients/{kaveri.id}/contacts", data=data)
    assert refused.status_code == 422 and "Birthday is required." in refused.text
    data.update({"cf.birthday": "2004-02-29", "form_key": form_key(refused.text)})
    added = client.post(f"/t/{tenant.slug}/clients/{kaveri.id}/contacts", data=data)
    assert added.status_code == 303, added.text
    ravi = session.scalar(select(Contact).where(Contact.full_name == "Ravi Kumar"))
    assert ravi.custom_fields == {"birthday": "2004-02-29"}
    page = client.get(f"/t/{tenant.slug}/clients/{kaveri.id}/contacts/{ravi.id}").text
    assert 'value="2004-02-29"' in page


@pytest.mark.parametrize("typed", ["1e309", "1e30", "NaN", "Infinity", "lots", "1" * 400])
def test_the_admin_and_record_forms_answer_bad_numbers_beside_the_field(
    client, workspace, login, typed
):
    tenant, owner, session = workspace
    login(client, owner)
    url = f"/t/{tenant.slug}/settings/custom-fields/"
    token = csrf_token_from(client.get(url).text)
    form = {"csrf_token": token, "entity": "clients", "label": "Limit", "field_type": "money"}
    refused = client.post(url, data={**form, "max": typed})
    assert refused.status_code == 422 and 'id="max-error"' in refused.text
    assert session.scalars(select(CustomField)).all() == []
    assert client.post(url, data=form).status_code == 303
    page = client.get(f"/t/{tenant.slug}/clients/new").text
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": form_key(page),
        "full_name": "Kaveri Builders Pvt Ltd",
        "short_name": "Kaveri",
        "location": "local",
        "country": "IN",
        "currency": "INR",
        "payment_terms": "net",
        "payment_days": "30",
        "cf.limit": typed,
    }
    refused = client.post(f"/t/{tenant.slug}/clients/new", data=data)
    assert refused.status_code == 422 and 'id="cf-limit-error"' in refused.text
    assert session.scalars(select(Client)).all() == []
