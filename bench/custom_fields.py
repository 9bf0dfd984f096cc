"""Target: the client list filtered and sorted on custom fields, with 100,000 clients (or
BENCH_CLIENTS) holding custom values, serves in at most 5x the time of the bare tenant route."""

from __future__ import annotations

import json
import os

from flask import Flask

from app.custom_fields import services
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
from tenants.binding import bind_tenant, qualified, schema_for_tenant_id

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "100000"))
REQUESTS = 150
WARMUP_REQUESTS = 20
MAX_RATIO = 5.0
TIERS = ("gold", "silver", "bronze", "steel", "iron")
MEASURES = f"""
Service time through Flask's test client, logged in as the tenant's owner, with {CLIENTS:,}
clients each holding custom values (tier: one of 5 choices; score: a number; region code:
text), both fields offered in lists (so each has its sort-expression index), loaded with COPY
before timing (not measured):
  filter + sort     GET /t/<slug>/clients/?cf.tier=silver&sort=-cf.score&columns=tier,score
                    a fifth of the clients, highest score first, both as columns
  filter + sort 2   GET /t/<slug>/clients/?cf.tier=silver&cf.region=R07&sort=cf.score
                    two filters (one matching 1 in 5, one 1 in 20), lowest score first
  sort only         GET /t/<slug>/clients/?sort=-cf.score    every client, by the field
  baseline          GET /t/<slug>/bench/select1              the bare tenant route, SELECT 1
Each page also counts its rows for the "N clients" line (capped at 1,000 under a custom filter,
at 10,000 otherwise).
"""


def load_clients(app: Flask, schema: str) -> None:
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
                "currency",
                "payment_terms",
                "payment_days",
                "custom_fields",
            )
            copy_sql = f"COPY {qualified(schema, 'clients')} ({', '.join(columns)}) FROM STDIN"
            with cursor.copy(copy_sql) as copy:
                for i in range(CLIENTS):
                    custom = {
                        "tier": TIERS[i % 5],
                        "score": str((i * 7919) % 100_000 / 100),
                        "region": f"R{i % 20:02d}",
                    }
                    copy.write_row(
                        (
                            f"Client {i:06d} Traders Pvt Ltd",
                            f"CL{i:06d}",
                            "active",
                            "local",
                            "IN",
                            "INR",
                            "net",
                            30,
                            json.dumps(custom),
                        )
                    )
            raw.commit()
        finally:
            raw.close()


def define_fields(app: Flask, tenant_id: int, schema: str) -> None:
    """The three fields, as an admin adds them (the list indexes are built here)."""
    with app.app_context():
        bind_tenant(db.session, tenant_id)
        for raw in (
            {"label": "Tier", "field_type": "choice", "choices": "\n".join(TIERS).title()},
            {"label": "Score", "field_type": "number"},
            {"label": "Region", "field_type": "text"},
        ):
            services.save_field(db.session, "clients", {**raw, "in_lists": "1"})
        db.session.commit()
        db.session.connection().exec_driver_sql(f"ANALYZE {qualified(schema, 'clients')}")
        db.session.commit()
        db.session.remove()


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(
        f"custom_fields: the client list by custom fields at {CLIENTS:,} clients", MEASURES
    )
    with environment.app() as app:
        app.add_url_rule("/t/<tenant_slug>/bench/select1", "bench_tenant_select1", select_one)
        email, slug, tenant_id = create_owner_and_tenant(app)
        schema = schema_for_tenant_id(tenant_id)
        load_clients(app, schema)
        define_fields(app, tenant_id, schema)
        client = app.test_client()
        log_in(client, email)
        base = f"/t/{slug}/clients/"
        urls = {
            "filter + sort": f"{base}?cf.tier=silver&sort=-cf.score&columns=tier,score",
            "filter + sort 2": f"{base}?cf.tier=silver&cf.region=R06&sort=cf.score",
            "sort only": f"{base}?sort=-cf.score",
            "tenant SELECT 1": f"/t/{slug}/bench/select1",
        }
        page = client.get(urls["filter + sort"]).text
        if "1,000+ clients" not in page or 'data-label="Tier">Silver<' not in page:
            raise RuntimeError("the filtered list did not show the clients it looks for")
        seconds = timed_in_turn(client, urls, WARMUP_REQUESTS, REQUESTS)

    return verdicts_against_bare(
        "custom_fields", seconds, ("filter + sort", "filter + sort 2", "sort only"), MAX_RATIO
    )
