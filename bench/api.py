"""Target: the API's lists at 100,000 clients and 1,000,000 invoices (clients by creation and
by name, a deep page by cursor, invoices newest first, filtered and of one client, payments)
serve in at most 5x the time of the bare tenant route doing SELECT 1."""

from __future__ import annotations

from sqlalchemy import text

from app.api import services as api_services
from app.api.models import SCOPES
from app.extensions import db
from bench import aging as aging_bench
from bench.common import (
    BenchEnvironment,
    Samples,
    Stopwatch,
    Verdict,
    print_figure,
    print_header,
    print_verdict,
)
from bench.pages import add_bare_routes, create_owner_and_tenant, log_in, time_get
from tenants.binding import qualified, schema_for_tenant_id

CLIENTS = 100_000
REQUESTS = 40
WARMUP_REQUESTS = 5
MAX_RATIO = 5.0
MEASURES = f"""
A tenant loaded by `python -m bench aging`'s loader with {CLIENTS:,} clients and
{aging_bench.INVOICES:,} invoices (and their payments; not measured), an API key with every
permission, then through Flask's test client, alternating request by request (50 a page):
  clients           GET /api/v1/clients                       by creation, first page
  clients by name   GET /api/v1/clients?sort=name             first page
  clients deep      GET /api/v1/clients?cursor=<at 90%>       a page 90% into the list
  invoices          GET /api/v1/invoices                      newest first, amounts due
  invoices overdue  GET /api/v1/invoices?status=overdue       ~250,000 match
  client invoices   GET /api/v1/invoices?client_id=<id>       one client's
  payments          GET /api/v1/payments                      newest first, allocations
  baseline          GET /t/<slug>/bench/select1               the bare tenant route (logged in)
{REQUESTS} requests each after {WARMUP_REQUESTS} of warm-up.
"""


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(f"api_lists: the API's lists at {CLIENTS:,} clients", MEASURES)
    with environment.app() as app:
        add_bare_routes(app)
        app.config["API_RATE_LIMIT"] = "1000000 per minute"
        email, slug, tenant_id = create_owner_and_tenant(app)
        schema = schema_for_tenant_id(tenant_id)
        with app.app_context():
            with Stopwatch() as load:
                aging_bench._load(schema, clients=CLIENTS)
            _, secret = api_services.create_key(db.session, tenant_id, "Bench", list(SCOPES), None)
            db.session.commit()
            client_id = db.session.execute(
                text(f"SELECT min(id) FROM {qualified(schema, 'clients')}")
            ).scalar_one()
            db.session.remove()
        http = app.test_client()
        log_in(http, email)
        key = {"Authorization": f"Bearer {secret}"}
        deep = _cursor_at(http, key, CLIENTS * 9 // 10)
        urls = {
            "clients": "/api/v1/clients?limit=50",
            "clients by name": "/api/v1/clients?limit=50&sort=name",
            "clients deep": f"/api/v1/clients?limit=50&cursor={deep}",
            "invoices": "/api/v1/invoices?limit=50",
            "invoices overdue": "/api/v1/invoices?limit=50&status=overdue",
            "client invoices": f"/api/v1/invoices?limit=50&client_id={client_id}",
            "payments": "/api/v1/payments?limit=50",
        }
        seconds = {name: [] for name in [*urls, "tenant SELECT 1"]}
        for number in range(WARMUP_REQUESTS + REQUESTS):
            for name, url in urls.items():
                elapsed = _time_api(http, url, key)
                if number >= WARMUP_REQUESTS:
                    seconds[name].append(elapsed)
            elapsed = time_get(http, f"/t/{slug}/bench/select1")
            if number >= WARMUP_REQUESTS:
                seconds["tenant SELECT 1"].append(elapsed)

    print_figure("load", f"{load.seconds:6.1f} s")
    samples = {name: Samples(values) for name, values in seconds.items()}
    for name, figures in samples.items():
        print_figure(name, figures.describe_ms())
    verdicts = [
        Verdict(
            f"api_lists: {name} / tenant SELECT 1 (medians)",
            samples[name].median,
            samples["tenant SELECT 1"].median,
            MAX_RATIO,
        )
        for name in urls
    ]
    for verdict in verdicts:
        print_verdict(verdict)
    return verdicts


def _time_api(http, url: str, headers: dict) -> float:
    with Stopwatch() as watch:
        response = http.get(url, headers=headers)
    if response.status_code != 200 or not response.json["data"]:
        raise RuntimeError(f"GET {url} answered {response.status_code}: {response.text[:300]}")
    return watch.seconds


def _cursor_at(http, headers: dict, row: int) -> str:
    """The cursor of the page starting `row` clients in, found by paging 100 at a time (the
    API's own cursors, so the deep page is reached as a client would reach it)."""
    cursor, seen = None, 0
    while seen + 100 <= row:
        url = "/api/v1/clients?limit=100&fields=id" + (f"&cursor={cursor}" if cursor else "")
        page = http.get(url, headers=headers).json
        cursor, seen = page["next_cursor"], seen + len(page["data"])
    return cursor
