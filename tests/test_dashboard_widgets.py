"""The dashboard's widgets (issue 22): by default every widget shows, in the product's order;
an admin chooses which show and in what order for the whole workspace, the dashboard follows,
and a hidden widget's queries do not run; a stored choice naming a widget that no longer
exists (or malformed) is ignored, never an error; wrong places are named beside their field."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.settings.services import workspace_settings
from tests.helpers import csrf_token_from
from tests.test_dashboard import books_open  # noqa: F401  (fixture)

EVERY_TILE = [
    "receivables",
    "top-overdue",
    "cash",
    "collections",
    "my-work",
    "expiring-documents",
    "invite-team",
]


def tiles(html: str) -> list[str]:
    return re.findall(r'<article class="tile" id="([^"]+)">', html)


@contextmanager
def statements():
    """The SQL statements run meanwhile, on any connection."""
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", note)


def choose(client, tenant, places: dict[str, int], shown: set[str]):
    url = f"/t/{tenant.slug}/settings/workflow"
    form = {"csrf_token": csrf_token_from(client.get(url).text)}
    for name, place in places.items():
        form[f"position.{name}"] = str(place)
        if name in shown:
            form[f"show.{name}"] = "1"
    return client.post(f"{url}/dashboard", data=form)


ALL_PLACES = {
    "receivables": 1,
    "top_overdue": 2,
    "cash": 3,
    "collections": 4,
    "my_work": 5,
    "documents": 6,
    "invite_team": 7,
}


def test_by_default_every_widget_shows_in_our_order(client, login, books_open):  # noqa: F811
    tenant, owner, *_ = books_open
    login(client, owner)
    assert tiles(client.get(f"/t/{tenant.slug}/").text) == EVERY_TILE
    page = client.get(f"/t/{tenant.slug}/settings/workflow").text
    for place, name in enumerate(ALL_PLACES, start=1):
        assert f'name="show.{name}" value="1" checked' in page
        assert re.search(rf'name="position\.{name}"[^>]*value="{place}"', page)


def test_the_dashboard_shows_the_chosen_widgets_in_order_and_skips_hidden_ones_queries(
    app,
    client,
    login,
    books_open,  # noqa: F811
):
    tenant, owner, *_ = books_open
    login(client, owner)
    home = f"/t/{tenant.slug}/"
    client.get(home)  # the first visit of the day brings the aging summary to today
    with statements() as every_widget:
        assert tiles(client.get(home).text) == EVERY_TILE

    places = {**ALL_PLACES, "cash": 1, "invite_team": 2, "receivables": 3, "top_overdue": 7}
    saved = choose(client, tenant, places, shown={"cash", "receivables", "invite_team"})
    assert saved.status_code == 303
    with statements() as chosen:
        assert tiles(client.get(home).text) == ["cash", "invite-team", "receivables"]

    assert len(chosen) < len(every_widget)
    for table in ("promises_to_pay", "client_documents", "collection_notices"):
        assert any(table in sql for sql in every_widget), table
        assert not any(table in sql for sql in chosen), table
    top_overdue = [sql for sql in every_widget if "aging_client_overdue" in sql]
    assert top_overdue and not any("aging_client_overdue" in sql for sql in chosen)

    # Everyone in the workspace sees the choice, within what their role allows.
    collector = books_open[2]
    with app.test_client() as theirs:
        login(theirs, collector)
        assert tiles(theirs.get(home).text) == ["cash", "receivables"]


def test_a_stored_choice_naming_unknown_widgets_is_ignored(
    client,
    login,
    books_open,  # noqa: F811
    db_session,
):
    tenant, owner, *_ = books_open
    workspace = workspace_settings(db_session, tenant.id)
    workspace.dashboard_widgets = [
        {"widget": "weather", "shown": True},  # removed since, or never ours
        "junk",
        {"widget": ["cash"]},
        {"widget": "cash", "shown": True},
        {"widget": "receivables", "shown": False},
        {"widget": "cash", "shown": False},  # named twice: the first one counts
    ]
    db_session.commit()
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/")
    assert page.status_code == 200
    # Cash first, receivables hidden, the widgets it does not name after, in our order.
    assert tiles(page.text) == ["cash"] + [
        tile for tile in EVERY_TILE if tile not in ("cash", "receivables")
    ]
    assert client.get(f"/t/{tenant.slug}/settings/workflow").status_code == 200


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"cash": "0"}, "cash", "A whole number from 1 to 7."),
        ({"cash": "8"}, "cash", "A whole number from 1 to 7."),
        ({"cash": "first"}, "cash", "A whole number from 1 to 7."),
        ({"cash": ""}, "cash", "A whole number from 1 to 7."),
        ({"cash": "1"}, "cash", "1 is already the place of another widget."),
    ],
)
def test_wrong_places_are_named_beside_their_field_and_nothing_is_saved(
    client,
    login,
    books_open,  # noqa: F811
    db_session,
    changes,
    field,
    message,
):
    tenant, owner, *_ = books_open
    login(client, owner)
    url = f"/t/{tenant.slug}/settings/workflow"
    form = {"csrf_token": csrf_token_from(client.get(url).text), "show.cash": "1"}
    form.update({f"position.{name}": str(place) for name, place in ALL_PLACES.items()})
    form.update({f"position.{name}": value for name, value in changes.items()})
    refused = client.post(f"{url}/dashboard", data=form)
    assert refused.status_code == 422
    assert f'id="position-{field}-error"' in refused.text and message in refused.text
    assert 'name="show.receivables" value="1" checked' not in refused.text  # as it was sent
    db_session.expire_all()
    assert workspace_settings(db_session, tenant.id).dashboard_widgets is None
    assert tiles(client.get(f"/t/{tenant.slug}/").text) == EVERY_TILE
