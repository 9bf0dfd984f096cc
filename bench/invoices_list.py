"""Target: the invoice list of a tenant with 1,000,000 invoices over 5,000 clients (first page,
a filtered view, a client's invoices, a search) serves in at most 5x the time of the bare tenant
route doing SELECT 1."""

from __future__ import annotations

from sqlalchemy import text

from app.aging import services as aging
from app.core.clock import local_date
from app.extensions import db
from bench import aging as aging_bench
from bench.common import (
    BenchEnvironment,
    Stopwatch,
    Verdict,
    print_figure,
    print_header,
)
from bench.pages import (
    add_bare_routes,
    create_owner_and_tenant,
    log_in,
    timed_in_turn,
    verdicts_against_bare,
)
from tenants.binding import bind_tenant, qualified, schema_for_tenant_id
from tenants.models import Tenant

REQUESTS = 40
WARMUP_REQUESTS = 5
MAX_RATIO = 5.0
MEASURES = f"""
The tenant of `python -m bench aging` ({aging_bench.INVOICES:,} invoices over
{aging_bench.CLIENTS:,} clients, its loader; the aging summary rebuilt; not measured), then
through Flask's test client, logged in as the owner, alternating request by request:
  first page   GET /t/<slug>/invoices/                  newest 50, totals per currency
  overdue      GET /t/<slug>/invoices/?status=overdue   a filter keeping ~250,000 invoices
  client       GET /t/<slug>/invoices/?client_id=<id>   one client's ~200 invoices
  search, one  GET /t/<slug>/invoices/?q=B777777        a number one invoice has
  search, many GET /t/<slug>/invoices/?q=B12            a number ~11,000 invoices share
  baseline     GET /t/<slug>/bench/select1              the bare tenant route, SELECT 1
{REQUESTS} requests each after {WARMUP_REQUESTS} of warm-up.
"""


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(f"invoices_list: the invoice list at {aging_bench.INVOICES:,} invoices", MEASURES)
    with environment.app() as app:
        add_bare_routes(app)
        email, slug, tenant_id = create_owner_and_tenant(app)
        with app.app_context():
            bind_tenant(db.session, tenant_id)
            today = local_date(db.session.get(Tenant, tenant_id).time_zone)
            with Stopwatch() as load:
                aging_bench._load(schema_for_tenant_id(tenant_id))
                aging.rebuild(db.session, today, "due_date", (30, 60, 90))
                db.session.commit()
            client_id = db.session.execute(
                text(f"SELECT min(id) FROM {qualified(schema_for_tenant_id(tenant_id), 'clients')}")
            ).scalar_one()
            db.session.remove()
        http = app.test_client()
        log_in(http, email)
        urls = {
            "first page": f"/t/{slug}/invoices/",
            "overdue": f"/t/{slug}/invoices/?status=overdue",
            "client": f"/t/{slug}/invoices/?client_id={client_id}",
            "search, one": f"/t/{slug}/invoices/?q=B777777",
            "search, many": f"/t/{slug}/invoices/?q=B12",
            "tenant SELECT 1": f"/t/{slug}/bench/select1",
        }
        if "outstanding" not in http.get(urls["first page"]).text:
            raise RuntimeError("the invoice list does not show its totals")
        seconds = timed_in_turn(http, urls, WARMUP_REQUESTS, REQUESTS)

    print_figure("load and rebuild", f"{load.seconds:6.1f} s")
    return verdicts_against_bare(
        "invoices_list",
        seconds,
        ("first page", "overdue", "client", "search, one", "search, many"),
        MAX_RATIO,
    )
