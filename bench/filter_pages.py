"""Target: the notices, payments and projects lists of a tenant with 5,000 clients (every one
with notices, payments and projects, so each list's client filter could offer them all) each
cost at most 5x the bare tenant route, measured in the same run."""

from __future__ import annotations

import re

from app.extensions import db
from bench.aging import CLIENTS
from bench.aging import LOAD as AGING_LOAD
from bench.common import (
    BenchEnvironment,
    Samples,
    Verdict,
    print_figure,
    print_header,
    print_verdict,
)
from bench.dashboard import LOAD_NOTICES, LOAD_PAYMENTS
from bench.pages import add_bare_routes, create_owner_and_tenant, log_in, timed_in_turn
from tenants.binding import bind_tenant, quoted_schema, schema_for_tenant_id

PAYMENTS = 20_000
NOTICES = 20_000
PROJECTS = 10_000
BUSINESS_UNITS = 8
REQUESTS = 150
WARMUP_REQUESTS = 15
MAX_RATIO = 5.0
OPTION = re.compile(r"<option\b")
MEASURES = f"""
Load         {CLIENTS:,} clients, each with payments ({PAYMENTS:,}), collection notices
             ({NOTICES:,}) and projects ({PROJECTS:,}, in {BUSINESS_UNITS} business units):
             every client could be offered by every list's client filter. Set-based
             INSERT ... SELECT, then VACUUM ANALYZE.
notices      GET /t/<slug>/notices/ as the owner (filters and the first page of notices)
payments     GET /t/<slug>/payments/
projects     GET /t/<slug>/projects/
payments, searched  GET /t/<slug>/payments/?client_q=client 4321 (a filter searched without
             JavaScript: the picker's options narrowed to the one match)
picker       GET /t/<slug>/clients/pick?client_q=client 4321&any=1 (the options as typed)
tenant SELECT 1  GET /t/<slug>/bench/select1 (tenant resolution, then SELECT 1).
They alternate, request by request; {REQUESTS} each after {WARMUP_REQUESTS} warm-ups.
Each page's count of <option> elements is printed with it.
"""

LOAD = [
    AGING_LOAD[0],  # the clients
    LOAD_PAYMENTS,  # the dashboard benchmark's, in its proportions
    LOAD_NOTICES,
    """INSERT INTO {s}.projects (client_id, name, contract_value, currency, start_date,
           business_unit)
       SELECT c.first + g % {clients}, 'Project ' || g, 100000, 'INR',
              CURRENT_DATE - (g % 700)::int, 'Unit ' || (g % {units})
         FROM generate_series(1, {projects}) g
        CROSS JOIN (SELECT min(id) AS first FROM {s}.clients) c""",
]
TABLES = ("clients", "payments", "collection_notices", "projects")


def _load(schema: str) -> None:
    s = quoted_schema(schema)
    connection = db.session.connection()
    sizes = {
        "clients": CLIENTS,
        "payments": PAYMENTS,
        "notices": NOTICES,
        "projects": PROJECTS,
        "units": BUSINESS_UNITS,
    }
    for statement in LOAD:
        sql = statement.format(s=s, **sizes)
        connection.exec_driver_sql(sql.replace("%", "%%"))  # a driver-level placeholder
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in TABLES:
            connection.exec_driver_sql(f"VACUUM ANALYZE {s}.{table}")


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(f"filter_pages: list pages at {CLIENTS:,} clients", MEASURES)
    with environment.app() as app:
        add_bare_routes(app)
        email, slug, tenant_id = create_owner_and_tenant(app)
        with app.app_context():
            bind_tenant(db.session, tenant_id)
            _load(schema_for_tenant_id(tenant_id))
            db.session.remove()

        http = app.test_client()
        log_in(http, email)
        pages = {
            "notices": f"/t/{slug}/notices/",
            "payments": f"/t/{slug}/payments/",
            "projects": f"/t/{slug}/projects/",
        }
        searches = {
            "payments, searched": f"/t/{slug}/payments/?client_q=client+4321",
            "picker": f"/t/{slug}/clients/pick?client_q=client+4321&any=1",
        }
        urls = {**pages, **searches, "tenant SELECT 1": f"/t/{slug}/bench/select1"}
        options = {
            name: len(OPTION.findall(http.get(url).text))
            for name, url in {**pages, **searches}.items()
        }
        seconds = timed_in_turn(http, urls, WARMUP_REQUESTS, REQUESTS)

    samples = {name: Samples(values) for name, values in seconds.items()}
    for name, figures in samples.items():
        shown = f"   {options[name]:,} options" if name in options else ""
        print_figure(name, figures.describe_ms() + shown)
    verdicts = [
        Verdict(
            f"filter_pages: {name} at {CLIENTS:,} clients / tenant SELECT 1 (medians)",
            samples[name].median,
            samples["tenant SELECT 1"].median,
            MAX_RATIO,
        )
        for name in {**pages, **searches}
    ]
    for verdict in verdicts:
        print_verdict(verdict)
    return verdicts
