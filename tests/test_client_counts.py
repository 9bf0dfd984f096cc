"""The clients list's size as the database keeps it (client_counts and client_count_changes,
tenant migration 0050): the same as counting the clients after every kind of change and after a
fold, exact past the cap, and still counted (and capped) under the filters it does not answer;
writers of clients of the same status do not wait on each other."""

from __future__ import annotations

import random
import re

from sqlalchemy import delete, func, select, text, union_all, update

from app.aging import services as aging
from app.clients import services
from app.clients.models import STATUSES, Client, ClientCount, ClientCountChange
from app.core.clock import local_date
from app.extensions import db
from tenants.binding import TenantSession, bind_tenant, bound_schema, qualified
from tests.helpers import tenant_session
from tests.test_client_import import MIXED_CSV, import_file
from tests.test_clients import new_client, owner_client  # noqa: F401


def counted(session) -> dict[tuple[str, bool], int]:
    """The clients not deleted, counted afresh per status and archived or not."""
    archived = Client.archived_at.is_not(None)
    rows = session.execute(
        select(Client.status, archived, func.count())
        .where(Client.deleted_at.is_(None))
        .group_by(Client.status, archived)
    )
    return {(status, is_archived): n for status, is_archived, n in rows}


def kept(session) -> dict[tuple[str, bool], int]:
    """The folded counts plus the changes since, per status and archived or not (none at 0)."""
    both = union_all(
        *(
            select(table.status, table.archived, table.client_count)
            for table in (ClientCount, ClientCountChange)
        )
    ).subquery()
    rows = session.execute(
        select(both.c.status, both.c.archived, func.sum(both.c.client_count)).group_by(
            both.c.status, both.c.archived
        )
    )
    return {(status, archived): n for status, archived, n in rows if n}


def folded(session) -> dict[tuple[str, bool], int]:
    rows = session.execute(
        select(ClientCount.status, ClientCount.archived, ClientCount.client_count)
    )
    return {(status, archived): n for status, archived, n in rows}


def change_rows(session) -> int:
    return session.scalar(select(func.count()).select_from(ClientCountChange))


def rebuild(session) -> None:
    session.execute(text(f"SELECT {qualified(bound_schema(session), 'client_counts_rebuild')}()"))


def shown_count(http, tenant, query: str = "") -> str:
    """What the list page says of its size ("3", "10,000+")."""
    page = http.get(f"/t/{tenant.slug}/clients/{query}").text
    return re.search(r'aria-live="polite">([\d,]+\+?) (?:clients?|prospects?)\b', page).group(1)


LIST_QUERIES = ("", "?prospects=1", "?archived=1", *(f"?status={s}" for s in STATUSES))


def every_built_in_list() -> list[services.ClientFilters]:
    return [
        services.ClientFilters(archived=archived, **which)
        for archived in (False, True)
        for which in ({}, {"prospects": True}, *({"status": s} for s in STATUSES))
    ]


def assert_kept_counts_true(session) -> None:
    """The oracle: the kept rows equal a fresh count, and every list the kept rows answer
    says the size that counting its query gives."""
    session.expire_all()
    assert kept(session) == counted(session)
    for filters in every_built_in_list():
        assert services.kept_count_answers(filters)
        page = services.list_clients(session, filters)
        fresh = session.scalar(
            select(func.count()).select_from(services.filtered_clients(filters).subquery())
        )
        assert (page.total, page.total_is_capped) == (fresh, False), filters


def test_the_lists_size_follows_every_change_of_the_clients(owner_client, db_session):  # noqa: F811
    http, tenant, _, token = owner_client
    session = tenant_session(db_session, tenant)
    urls = [
        new_client(http, tenant, token, full_name=f"Client {n} Ltd", short_name=f"C{n}").headers[
            "Location"
        ]
        for n in range(3)
    ]
    prospect = new_client(
        http, tenant, token, full_name="Lead Ltd", short_name="Lead", status="prospect"
    ).headers["Location"]
    assert shown_count(http, tenant) == "3"
    assert shown_count(http, tenant, "?prospects=1") == "1"
    assert_kept_counts_true(session)

    http.post(prospect + "/convert", data={"csrf_token": token})
    assert shown_count(http, tenant) == "4"
    assert shown_count(http, tenant, "?prospects=1") == "0"
    assert_kept_counts_true(session)

    http.post(urls[0] + "/archive", data={"csrf_token": token})
    assert shown_count(http, tenant) == "3"
    assert shown_count(http, tenant, "?archived=1") == "1"
    http.post(urls[0] + "/restore", data={"csrf_token": token})
    assert shown_count(http, tenant) == "4"
    assert shown_count(http, tenant, "?archived=1") == "0"
    assert_kept_counts_true(session)

    ids = [int(url.rsplit("/", 1)[1]) for url in urls[1:]]
    response = http.post(
        f"/t/{tenant.slug}/clients/bulk",
        data={"csrf_token": token, "client_ids": ids, "action": "status", "status": "on_hold"},
    )
    assert response.status_code == 303
    assert shown_count(http, tenant, "?status=on_hold") == "2"
    assert shown_count(http, tenant, "?status=active") == "2"
    assert_kept_counts_true(session)

    http.post(urls[1] + "/delete", data={"csrf_token": token})
    assert shown_count(http, tenant) == "3"
    assert shown_count(http, tenant, "?status=on_hold") == "1"
    assert_kept_counts_true(session)

    before = change_rows(session)
    renamed = session.get(Client, ids[1])
    renamed.full_name = "Renamed Traders Ltd"
    session.flush()
    assert change_rows(session) == before  # an edit that moves no client appends no change

    rebuild(session)
    assert kept(session) == counted(session) == {("active", False): 2, ("on_hold", False): 1}
    session.close()


def test_bulk_update_moves_clients_between_statuses(owner_client, db_session):  # noqa: F811
    _, tenant, _, _ = owner_client
    session = tenant_session(db_session, tenant)
    clients = [
        client_named(f"Bulk {n}", status="prospect" if n % 2 else "active") for n in range(6)
    ]
    session.add_all(clients)
    session.flush()
    changed = services.bulk_update(session, [c.id for c in clients[:4]], status="inactive")
    assert changed == 4
    assert kept(session) == {("inactive", False): 4, ("active", False): 1, ("prospect", False): 1}
    assert_kept_counts_true(session)
    session.close()


def test_an_import_counts_the_clients_it_adds_and_changes(
    client, db_session, make_user, make_tenant, login, run_jobs, storage_root
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    session = tenant_session(db_session, tenant)
    import_file(client, tenant, run_jobs, "clients.csv", MIXED_CSV)
    assert shown_count(client, tenant) == "2"
    import_file(client, tenant, run_jobs, "clients.csv", MIXED_CSV.replace(b"Net;60;", b"Net;90;"))
    assert shown_count(client, tenant) == "2"  # the second run updates, it adds no client
    assert_kept_counts_true(session)
    session.close()


def test_the_list_is_exact_past_the_cap_but_counted_and_capped_under_a_tag(
    owner_client,  # noqa: F811
    db_session,
    monkeypatch,
):
    http, tenant, _, _ = owner_client
    session = tenant_session(db_session, tenant)
    session.add_all(client_named(f"Many {n}", tags=["north"] if n < 7 else []) for n in range(8))
    session.commit()
    monkeypatch.setattr(services, "COUNT_CAP", 5)
    assert shown_count(http, tenant) == "8"
    assert not services.kept_count_answers(services.ClientFilters(tag="north"))
    assert shown_count(http, tenant, "?tag=north") == "5+"
    assert shown_count(http, tenant, "?status=active&sort=-name") == "8"
    session.close()


def test_kept_counts_equal_a_fresh_count_after_a_mix_of_set_based_changes(db_session, make_tenant):
    """Statements of many rows each, moving clients every way at once (in and out of the
    statuses, archived, deleted and back, hard deleted): the kept rows stay a fresh count."""
    session = tenant_session(db_session, make_tenant())
    schema = bound_schema(session)
    session.execute(
        text(
            f"INSERT INTO {qualified(schema, 'clients')} (full_name, short_name, location, "
            "country, currency, payment_terms, payment_days, status) "
            "SELECT 'Mixed ' || g, 'M' || g, 'local', 'IN', 'INR', 'net', 30, "
            "(ARRAY['prospect', 'active', 'on_hold', 'inactive'])[1 + g % 4] "
            "FROM generate_series(1, 400) g"
        )
    )
    assert_kept_counts_true(session)
    chance = random.Random(50)
    ids = session.scalars(select(Client.id)).all()

    def some() -> list[int]:
        return chance.sample(ids, 60)

    changes = [
        update(Client).where(Client.id.in_(some())).values(status="inactive"),
        update(Client).where(Client.id.in_(some())).values(archived_at=func.now()),
        update(Client).where(Client.id.in_(some())).values(deleted_at=func.now()),
        update(Client)
        .where(Client.id.in_(some()))
        .values(status="active", archived_at=None, deleted_at=None),
        update(Client).where(Client.id.in_(some())).values(full_name=Client.full_name + " Ltd"),
        update(Client).where(Client.id.in_(some())).values(archived_at=None),
        delete(Client).where(Client.id.in_(chance.sample(ids[:200], 30))),
        update(Client).where(Client.id.in_(some())).values(deleted_at=func.now()),
        update(Client).where(Client.id.in_(some())).values(status="prospect"),
    ]
    for change in changes:
        session.execute(change)
        assert_kept_counts_true(session)
    services.fold_counts(session)
    assert change_rows(session) == 0
    assert_kept_counts_true(session)
    assert all(n > 0 for n in folded(session).values())  # no row left at zero
    rebuilt_from = kept(session)
    rebuild(session)
    assert kept(session) == rebuilt_from
    session.close()


def test_a_fold_moves_the_changes_into_the_counts_and_the_lists_say_the_same(
    owner_client,  # noqa: F811
    db_session,
):
    http, tenant, _, _ = owner_client
    session = tenant_session(db_session, tenant)
    clients = [client_named(f"Fold {n}", status=STATUSES[n % len(STATUSES)]) for n in range(9)]
    session.add_all(clients)
    session.flush()
    services.bulk_update(session, [c.id for c in clients[:3]], status="on_hold")
    clients[4].archived_at = func.now()
    session.delete(clients[5])
    session.commit()
    assert change_rows(session) > 0
    shown = {query: shown_count(http, tenant, query) for query in LIST_QUERIES}
    before = kept(session)

    services.fold_counts(session)
    assert change_rows(session) == 0
    assert folded(session) == before == counted(session)
    assert {query: shown_count(http, tenant, query) for query in LIST_QUERIES} == shown
    assert_kept_counts_true(session)

    session.delete(clients[6])
    session.commit()
    aging.roll(session, local_date(tenant.time_zone))  # the daily beat folds them too
    assert change_rows(session) == 0
    assert folded(session) == counted(session)
    session.close()


def test_an_edit_that_moves_no_client_appends_no_change(db_session, make_tenant):
    session = tenant_session(db_session, make_tenant())
    client = client_named("Still")
    session.add(client)
    session.flush()
    before = change_rows(session)
    client.full_name = "Still Renamed Pvt Ltd"
    session.flush()
    session.execute(update(Client).values(status=Client.status, archived_at=Client.archived_at))
    assert change_rows(session) == before
    client.status = "on_hold"
    session.flush()
    assert change_rows(session) == before + 2  # -1 active, +1 on hold
    session.close()


def test_two_transactions_adding_clients_of_the_same_status_do_not_wait_on_each_other(
    app, db_session, make_tenant
):
    """The first transaction stays open (the test's own, never committed) while a second, on a
    connection of its own, adds a client of the same status: it must not wait for the first
    (a shared counted row would hold it until the first commits; lock_timeout turns that wait
    into an error instead of a hang)."""
    tenant = make_tenant()
    first = tenant_session(db_session, tenant)
    first.add(client_named("First", status="active"))
    first.flush()
    with app.app_context():
        second_connection = db.engine.connect()
    second = TenantSession(db, bind=second_connection)
    bind_tenant(second, tenant.id)
    try:
        second.execute(text("SET LOCAL lock_timeout = '2s'"))
        before = kept(second)
        second.add(client_named("Second", status="active"))
        second.flush()
        assert kept(second)[("active", False)] == before.get(("active", False), 0) + 1
    finally:
        second.rollback()
        second.close()
        second_connection.close()
    first.close()


def client_named(name: str, **fields) -> Client:
    """A client not yet added (the `make_client` factory flushes each one on its own): several
    added together go in one INSERT, which is what the triggers group by status."""
    return Client(
        full_name=f"{name} Pvt Ltd",
        short_name=name,
        location="local",
        country="IN",
        currency="INR",
        payment_terms="net",
        payment_days=30,
        **fields,
    )
