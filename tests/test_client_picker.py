"""The client picker (app/clients/picker.py, templates/clients/_picker.html): every page that
chooses one client offers at most PICKER_SIZE of them however many the workspace has, keeps
the chosen one, finds the others by name, short name or GSTIN as the user types, and without
JavaScript narrows them when its form is submitted."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest

from app.clients.picker import PICKER_SIZE
from app.payments.models import Payment
from app.projects.models import Project
from tests.helpers import csrf_token_from, tenant_session

CLIENTS = PICKER_SIZE + 10
GSTIN = "29AAGCB7383J1Z4"  # Karnataka


def label(client) -> str:
    return f"{client.full_name} ({client.short_name})"


def options_of(page: str, select_id: str) -> list[tuple[str, str, bool]]:
    """(value, label, selected) of each <option> of the <select> with this id."""
    select = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', page, re.S)
    assert select, f"no <select id={select_id!r}> on the page"
    return [
        (value, label.strip(), bool(selected))
        for value, selected, label in re.findall(
            r'<option value="([^"]*)"( selected)?>([^<]*)</option>', select.group(1)
        )
    ]


@pytest.fixture
def crowd(db_session, make_tenant, make_user, make_client, make_notice):
    """A workspace whose CLIENTS clients all have a payment, a notice and a project, so every
        list's client filter could offer them all; the last by name is "Zenith Works <n>" (short
    name "ZW<n>"), with a GSTIN of its own."""
    owner = make_user()
    tenant = make_tenant(owner=owner)
    session = tenant_session(db_session, tenant)
    clients = [make_client(session, "Client", "C") for _ in range(CLIENTS - 1)]
    clients.append(make_client(session, "Zenith Works", "ZW", gstin=GSTIN))
    for client in clients:
        session.add(
            Payment(
                client_id=client.id,
                received_on=date(2027, 3, 1),
                amount=Decimal("100.00"),
                currency="INR",
                method="upi",
            )
        )
        session.add(
            Project(
                client_id=client.id,
                name=f"Project of {client.short_name}",
                contract_value=Decimal("1000.00"),
                currency="INR",
                start_date=date(2027, 1, 1),
            )
        )
        make_notice(session, client, [])
    session.commit()
    return tenant, owner, session, clients


FILTER_PAGES = [
    ("notices", "f-client_id"),
    ("payments", "client_id"),
    ("projects", "client_id"),
]


@pytest.mark.parametrize(("page", "select_id"), FILTER_PAGES)
def test_a_list_filter_offers_a_capped_number_of_clients_and_keeps_the_chosen_one(
    crowd, client, login, page, select_id
):
    tenant, owner, _, clients = crowd
    zenith = clients[-1]
    login(client, owner)
    listed = client.get(f"/t/{tenant.slug}/{page}/")
    options = options_of(listed.text, select_id)
    assert options[0] == ("", "Any", False)
    assert len(options) <= PICKER_SIZE + 1
    # The last client by name is past the cap until it is chosen or searched for.
    assert str(zenith.id) not in [value for value, _, _ in options]
    chosen = client.get(f"/t/{tenant.slug}/{page}/?client_id={zenith.id}")
    options = options_of(chosen.text, select_id)
    assert len(options) <= PICKER_SIZE + 1
    assert (str(zenith.id), label(zenith), True) in options


@pytest.mark.parametrize(("page", "select_id"), FILTER_PAGES)
def test_without_javascript_a_typed_search_narrows_the_filter_then_the_choice_filters(
    crowd, client, login, page, select_id
):
    tenant, owner, _, clients = crowd
    zenith, other = clients[-1], clients[0]
    login(client, owner)
    searched = client.get(f"/t/{tenant.slug}/{page}/?client_q=zenith")
    assert options_of(searched.text, select_id) == [
        ("", "Any", False),
        (str(zenith.id), label(zenith), False),
    ]
    assert 'name="client_q" type="search" value="zenith"' in searched.text
    # Both lists' rows name their client; the filter then shows Zenith's alone.
    filtered = client.get(f"/t/{tenant.slug}/{page}/?client_q=zenith&client_id={zenith.id}")
    results = filtered.text.split(f'<select id="{select_id}"', 1)[1].split("</form>", 1)[1]
    assert zenith.full_name + "<" in results or zenith.short_name + "<" in results
    assert other.short_name + "<" not in results and other.full_name + "<" not in results


@pytest.mark.parametrize("typed", ["zenith", "ZW", GSTIN.lower()])
def test_the_picker_finds_a_client_by_name_short_name_or_gstin(crowd, client, login, typed):
    tenant, owner, _, clients = crowd
    zenith = clients[-1]
    login(client, owner)
    answer = client.get(
        f"/t/{tenant.slug}/clients/pick?client_q={typed}&any=1", headers={"HX-Request": "true"}
    )
    assert answer.status_code == 200 and "<html" not in answer.text
    options = options_of(f'<select id="x">{answer.text}</select>', "x")
    assert options == [("", "Any", False), (str(zenith.id), label(zenith), False)]


def test_the_picker_keeps_the_chosen_client_first_when_it_does_not_match(crowd, client, login):
    tenant, owner, _, clients = crowd
    login(client, owner)
    first = clients[0]
    answer = client.get(
        f"/t/{tenant.slug}/clients/pick?client_q=zenith&field=client_id&client_id={first.id}"
    )
    options = options_of(f'<select id="x">{answer.text}</select>', "x")
    assert options[0] == ("", "Choose a client…", False)
    assert options[1] == (str(first.id), label(first), True)
    assert [value for value, _, _ in options[2:]] == [str(clients[-1].id)]
    # Without a search, the chosen client among the first PICKER_SIZE is not repeated.
    answer = client.get(f"/t/{tenant.slug}/clients/pick?client_id={first.id}")
    values = [value for value, _, _ in options_of(f'<select id="x">{answer.text}</select>', "x")]
    assert len(values) == PICKER_SIZE + 1 and values.count(str(first.id)) == 1


def test_every_role_may_pick_a_client_and_only_a_member_of_the_workspace(
    crowd, app, client, login, make_user, add_member, make_tenant
):
    tenant, _, _, clients = crowd
    viewer = make_user()
    add_member(tenant, viewer, role="viewer")
    url = f"/t/{tenant.slug}/clients/pick?client_q=zenith"
    anonymous = app.test_client().get(url)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    login(client, viewer)
    assert "Zenith Works" in client.get(url).text
    # A member of another workspace: not found, and their own picker never names our client
    # although its id is sent as the chosen one.
    stranger = make_user()
    theirs = make_tenant(owner=stranger)
    other = app.test_client()
    login(other, stranger)
    assert other.get(url).status_code == 404
    own = other.get(f"/t/{theirs.slug}/clients/pick?client_id={clients[-1].id}")
    assert own.status_code == 200 and "Zenith" not in own.text


def test_the_collections_test_form_finds_any_client_and_keeps_what_was_typed(crowd, client, login):
    tenant, owner, _, clients = crowd
    zenith = clients[-1]
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/collections/")
    assert len(options_of(page.text, "client_id")) <= PICKER_SIZE + 1
    # No level chosen: refused next to that field, the search and the chosen client kept.
    refused = client.post(
        f"/t/{tenant.slug}/collections/test",
        data={
            "csrf_token": csrf_token_from(page.text),
            "level_id": "",
            "client_q": "zen",
            "client_id": zenith.id,
        },
    )
    assert refused.status_code == 422
    assert 'name="client_q" type="search" value="zen"' in refused.text
    options = options_of(refused.text, "client_id")
    assert options == [
        ("", "Choose a client…", False),
        (str(zenith.id), label(zenith), True),
    ]
    assert 'id="level_id-error"' in refused.text
