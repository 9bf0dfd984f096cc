"""Target: the client list with 100,000 clients (or BENCH_CLIENTS) in the tenant (first page,
a search, a deep page) serves in at most 5x the time of the bare tenant route doing SELECT 1."""

from __future__ import annotations

import os

from flask import Flask
from sqlalchemy import text

from app.extensions import db
from bench.common import (
    BenchEnvironment,
    Verdict,
    print_header,
)
from bench.pages import (
    create_owner_and_tenant,
    log_in,
    select_one,
    timed_in_turn,
    verdicts_against_bare,
)
from tenants.binding import qualified, schema_for_tenant_id

# BENCH_CLIENTS=10000 measures another size (the search's plan changed with it: issue 17).
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "100000"))
REQUESTS = 150
WARMUP_REQUESTS = 20
MAX_RATIO = 5.0
MEASURES = f"""
Service time through Flask's test client, logged in as the tenant's owner, with {CLIENTS:,}
clients in the tenant (loaded with COPY before timing; not measured):
  first page   GET /t/<slug>/clients/                   the list's first 25, by name
  search       GET /t/<slug>/clients/?q=<term>          search as you type (trigram index)
  deep page    GET /t/<slug>/clients/?after=<cursor>    the page after 90% of the rows, by its URL
  baseline     GET /t/<slug>/bench/select1              the bare tenant route, SELECT 1
Each page also counts its rows (capped at 10,000) for the "N clients" line.
"""


def load_clients(app: Flask, schema: str) -> None:
    """100,000 realistic clients, written by COPY (setup, not the thing measured)."""
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            columns = (
                "full_name",
                "short_name",
                "status",
                "location",
                "country",
                "city",
                "region",
                "currency",
                "payment_terms",
                "payment_days",
                "tags",
            )
            copy_sql = f"COPY {qualified(schema, 'clients')} ({', '.join(columns)}) FROM STDIN"
            cities = ("Mumbai", "Pune", "Bengaluru", "Chennai", "Delhi", "Kolkata", "Jaipur")
            with cursor.copy(copy_sql) as copy:
                for i in range(CLIENTS):
                    copy.write_row(
                        (
                            f"Client {i:06d} {cities[i % 7]} Traders Pvt Ltd",
                            f"CL{i:06d}",
                            "prospect" if i % 20 == 0 else "active",
                            "local",
                            "IN",
                            cities[i % 7],
                            "27",
                            "INR",
                            "net",
                            30,
                            ["north"] if i % 3 == 0 else [],
                        )
                    )
            cursor.execute(f"ANALYZE {qualified(schema, 'clients')}")
            raw.commit()
        finally:
            raw.close()


def deep_cursor(app: Flask, schema: str, row: int) -> str:
    """The list's cursor after `row` rows in name order, as the Next link would carry it."""
    from app.clients.services import _encode_cursor

    with app.app_context():
        key, client_id = db.session.execute(
            text(
                f"SELECT lower(full_name), id FROM {qualified(schema, 'clients')} "
                "WHERE deleted_at IS NULL AND status <> 'prospect' "
                "ORDER BY lower(full_name), id OFFSET :row LIMIT 1"
            ),
            {"row": row},
        ).one()
        db.session.remove()
    return _encode_cursor(key, client_id)


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(f"clients_list: the client list at {CLIENTS:,} clients", MEASURES)
    with environment.app() as app:
        app.add_url_rule("/t/<tenant_slug>/bench/select1", "bench_tenant_select1", select_one)
        email, slug, tenant_id = create_owner_and_tenant(app)
        schema = schema_for_tenant_id(tenant_id)
        load_clients(app, schema)
        client = app.test_client()
        log_in(client, email)
        urls = {
            "first page": f"/t/{slug}/clients/",
            "search": f"/t/{slug}/clients/?q=004217",
            "deep page": f"/t/{slug}/clients/?after={deep_cursor(app, schema, CLIENTS * 9 // 10)}",
            "tenant SELECT 1": f"/t/{slug}/bench/select1",
        }
        page = client.get(urls["search"]).text
        if "Client 004217" not in page:
            raise RuntimeError("the search did not find the client it looks for")
        seconds = timed_in_turn(client, urls, WARMUP_REQUESTS, REQUESTS)

    return verdicts_against_bare(
        "clients_list", seconds, ("first page", "search", "deep page"), MAX_RATIO
    )
