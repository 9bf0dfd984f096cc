"""The client picker every page uses to choose one client (list filters, the invoice form, the
collections test): a search box and a <select> of at most PICKER_SIZE clients, first by name
or those matching what was typed, so a page costs the same at 50 clients as at 100,000.

The search box is an ordinary field of its form (`client_q`): with JavaScript it refreshes the
options as the user types (clients.pick_options); without, submitting the form narrows them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlalchemy import BigInteger, Select, String, bindparam, func, select
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.clients.services import SEARCH_HAYSTACK, search_pattern

PICKER_SIZE = 50  # clients offered at once, the chosen one included
SEARCH_FIELD = "client_q"
QUERY_MAX_CHARS = 100

PATTERN = bindparam("pattern", type_=String)
CLIENT_ID = bindparam("client_id", type_=BigInteger)


@dataclass(frozen=True)
class Choice:
    id: int
    label: str


@dataclass(frozen=True)
class ClientPicker:
    q: str
    selected: Choice | None
    # At most PICKER_SIZE, the selected client among them even when it does not match q.
    choices: list[Choice]


def _label(full_name: str, short_name: str) -> str:
    return full_name if full_name == short_name else f"{full_name} ({short_name})"


@cache
def _choices(searching: bool, every_client: bool) -> Select:
    query = (
        select(Client.id, Client.full_name, Client.short_name)
        .where(Client.deleted_at.is_(None))
        .order_by(func.lower(Client.full_name), Client.id)
        .limit(PICKER_SIZE)
    )
    if not every_client:
        # What the client list shows by default: no prospects, nothing archived.
        query = query.where(Client.archived_at.is_(None), Client.status != "prospect")
    if searching:
        query = query.where(SEARCH_HAYSTACK.like(PATTERN))
    return query


@cache
def _one_client() -> Select:
    return select(Client.id, Client.full_name, Client.short_name).where(Client.id == CLIENT_ID)


def client_picker(
    session: Session, q: str | None, selected_id: int | None, *, every_client: bool
) -> ClientPicker:
    """The first PICKER_SIZE clients by name matching `q` (name, short name, GSTIN, external
    id, city), with the selected client kept even when it does not match. `every_client`: a
    list filter looks among every client on record, archived ones and prospects included
    (their history is still listed); a form picks among current clients."""
    q = " ".join((q or "").split())[:QUERY_MAX_CHARS]
    values = {"pattern": search_pattern(q)} if q else {}
    rows = session.execute(_choices(bool(q), every_client), values).all()
    choices = [Choice(row.id, _label(row.full_name, row.short_name)) for row in rows]
    selected = next((choice for choice in choices if choice.id == selected_id), None)
    if selected_id and selected is None:
        # Chosen earlier (or in a bookmarked URL) and not among the matches: still shown,
        # first, so the form keeps what it holds. Archived or deleted too: the page the
        # picker sits on names the client already (a filtered list, a draft's client).
        row = session.execute(_one_client(), {"client_id": selected_id}).first()
        if row is not None:
            selected = Choice(row.id, _label(row.full_name, row.short_name))
            choices = [selected, *choices[: PICKER_SIZE - 1]]
    return ClientPicker(q=q, selected=selected, choices=choices)
