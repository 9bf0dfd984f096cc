"""Targets: the aging page of a tenant with 1,000,000 invoices inside half the 500 ms page
budget (≤ 250 ms), and ≤ 10% of the full-scan aging SQL over the same tenant."""

from __future__ import annotations

import os
from datetime import timedelta

from app.aging import services
from app.core.clock import local_date
from app.extensions import db
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
from tenants.binding import bind_tenant, qualified, quoted_schema, schema_for_tenant_id
from tenants.models import Tenant

INVOICES = 1_000_000
# BENCH_AGING_CLIENTS=100000 measures the pages as the clients grow (issue 17).
CLIENTS = int(os.environ.get("BENCH_AGING_CLIENTS", "5000"))
FULL_SCANS = 7
REQUESTS = 40
PAGE_BUDGET = 0.5
MEASURES = f"""
Load         {CLIENTS:,} clients and {INVOICES:,} invoices (due dates over 4 years; 50% paid,
             10% partly paid, 25% overdue, 10% issued, 5% void; 3% of the open ones with a
             credit note), payments and allocations, written by set-based INSERT ... SELECT
             with the triggers disabled (the invoice list's kept totals rebuilt after);
             then the summary rebuilt (aging_rebuild) and
             checked equal to the full recomputation.
full scan    the aging query over invoices + live allocations + credit notes, grouped by
             client, currency and bucket (services.full_recomputation), {FULL_SCANS} runs.
page         GET /t/<slug>/aging/ (the dashboard: bucket totals, top overdue clients, trend,
             DSO) through Flask's test client, logged in as the owner; {REQUESTS} requests.
queries      the page's service calls alone (ensure_current, bucket_totals, top clients,
             trend, settings), same count.
report       GET /t/<slug>/aging/report (first page of the client rows), for information.
"""

LOAD = [
    """INSERT INTO {s}.clients (full_name, short_name, location, country, currency,
           payment_terms)
       SELECT 'Bench client ' || g, 'BC' || g, 'local', 'IN', 'INR', 'immediate'
         FROM generate_series(1, {clients}) g""",
    """INSERT INTO {s}.invoices (client_id, number, status, issue_date, due_date, currency,
           tax_regime, subtotal, cgst, sgst, igst, other_tax, total, amount_in_words)
       SELECT c.first + g % {clients}, 'B' || g,
              CASE WHEN g % 20 < 10 THEN 'paid' WHEN g % 20 < 12 THEN 'partly_paid'
                   WHEN g % 20 < 17 THEN 'overdue' WHEN g % 20 < 19 THEN 'issued'
                   ELSE 'void' END,
              d - 30, d, 'INR', 'other', t, 0, 0, 0, 0, t, ''
         FROM generate_series(1::bigint, {invoices}) g
        CROSS JOIN (SELECT min(id) AS first FROM {s}.clients) c
        CROSS JOIN LATERAL (SELECT CURRENT_DATE - 1400 + ((g * 7919) % 1460)::int AS d,
                                   (100 + (g * 37) % 100000)::numeric(18, 2) AS t) x""",
    """INSERT INTO {s}.payments (client_id, received_on, amount, currency, method)
       SELECT id, CURRENT_DATE, 1000000000, 'INR', 'bank_transfer' FROM {s}.clients""",
    """INSERT INTO {s}.payment_allocations (payment_id, invoice_id, amount, tds_amount)
       SELECT p.id, i.id,
              CASE WHEN i.status = 'paid' THEN i.total ELSE round(i.total / 2, 2) END, 0
         FROM {s}.invoices i JOIN {s}.payments p ON p.client_id = i.client_id
        WHERE i.status IN ('paid', 'partly_paid')""",
    """INSERT INTO {s}.credit_notes (invoice_id, client_id, number, series, fiscal_year,
           issue_date, reason, currency, subtotal, cgst, sgst, igst, other_tax, total,
           amount_in_words)
       SELECT id, client_id, 'CN' || id, 'CN', '2026-27', CURRENT_DATE, 'discount', 'INR',
              round(total / 10, 2), 0, 0, 0, 0, round(total / 10, 2), ''
         FROM {s}.invoices WHERE status IN ('overdue', 'issued') AND id % 33 = 0""",
]
AGING_TABLES = ("invoices", "payment_allocations", "credit_notes")


def _load(schema: str, *, clients: int = CLIENTS, invoices: int = INVOICES) -> None:
    s = quoted_schema(schema)
    connection = db.session.connection()
    for table in AGING_TABLES:
        connection.exec_driver_sql(f"ALTER TABLE {s}.{table} DISABLE TRIGGER USER")
    for statement in LOAD:
        sql = statement.format(s=s, clients=clients, invoices=invoices)
        connection.exec_driver_sql(sql.replace("%", "%%"))  # a driver-level placeholder
    for table in AGING_TABLES:
        connection.exec_driver_sql(f"ALTER TABLE {s}.{table} ENABLE TRIGGER USER")
    # The allocations went in with their triggers off: the cash kept per day, again.
    connection.exec_driver_sql(f"SELECT {s}.payment_days_rebuild()")
    connection.exec_driver_sql(f"SELECT {s}.invoice_totals_rebuild()")  # the list's totals
    db.session.commit()
    for table in ("clients", "invoices", "payments", "payment_allocations", "credit_notes"):
        db.session.connection().exec_driver_sql(f"ANALYZE {s}.{table}")
    db.session.commit()


def _page_queries(today) -> None:
    buckets = services.ensure_current(db.session, today)
    services.bucket_totals(db.session, buckets, today)
    services.top_overdue_clients(db.session, buckets)
    services.trend(db.session, today)
    services.settings_of(db.session)
    db.session.commit()


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(
        f"aging: {INVOICES:,} invoices, {CLIENTS:,} clients, the summary page against a full scan",
        MEASURES,
    )
    with environment.app() as app:
        add_bare_routes(app)
        email, slug, tenant_id = create_owner_and_tenant(app)
        schema = schema_for_tenant_id(tenant_id)
        with app.app_context():
            bind_tenant(db.session, tenant_id)
            tenant = db.session.get(Tenant, tenant_id)
            today = local_date(tenant.time_zone)
            with Stopwatch() as load:
                _load(schema)
            with Stopwatch() as rebuild:
                services.rebuild(db.session, today, "due_date", (30, 60, 90))
                db.session.commit()
            db.session.connection().exec_driver_sql(f"ANALYZE {qualified(schema, 'aging_entries')}")
            db.session.connection().exec_driver_sql(f"ANALYZE {qualified(schema, 'aging_summary')}")
            db.session.commit()
            summary = services.maintained_summary(db.session)
            full_times = []
            for _ in range(FULL_SCANS):
                with Stopwatch() as watch:
                    recomputed = services.full_recomputation(db.session, today)
                full_times.append(watch.seconds)
            db.session.commit()
            if summary != recomputed:
                raise RuntimeError("the maintained aging summary differs from the recomputation")
            open_invoices = sum(count for _, count in summary.values())
            with Stopwatch() as roll:  # tomorrow's roll (what the daily job does), undone
                moved = services.roll(db.session, today + timedelta(days=1))
            db.session.rollback()
            query_times = []
            for _ in range(REQUESTS):
                with Stopwatch() as watch:
                    _page_queries(today)
                query_times.append(watch.seconds)
            db.session.remove()

        http = app.test_client()
        log_in(http, email)
        urls = {
            "page": f"/t/{slug}/aging/",
            "report": f"/t/{slug}/aging/report",
            "tenant SELECT 1": f"/t/{slug}/bench/select1",
        }
        if "outstanding" not in http.get(urls["page"]).text:
            raise RuntimeError("the aging page does not show the aging")
        seconds = {name: [] for name in urls}
        for number in range(5 + REQUESTS):
            for name, url in urls.items():
                elapsed = time_get(http, url)
                if number >= 5:
                    seconds[name].append(elapsed)

    print_figure("load (triggers off)", f"{load.seconds:6.1f} s")
    print_figure("rebuild of the summary", f"{rebuild.seconds:6.1f} s")
    print_figure("open invoices aged", f"{open_invoices:,} in {len(summary):,} summary rows")
    print_figure("summary = recomputation", "yes")
    print_figure("roll to tomorrow", f"{roll.seconds * 1e3:6.1f} ms ({moved:,} entries moved)")
    full, page = Samples(full_times), Samples(seconds["page"])
    queries, report = Samples(query_times), Samples(seconds["report"])
    print_figure("full scan SQL (baseline)", full.describe_ms())
    print_figure("aging page", page.describe_ms())
    print_figure("page queries alone", queries.describe_ms())
    print_figure("report page (info)", report.describe_ms())
    bare = Samples(seconds["tenant SELECT 1"])
    print_figure("tenant SELECT 1 (info)", bare.describe_ms())
    ratios = f"page {page.median / bare.median:.2f}x, report {report.median / bare.median:.2f}x"
    print_figure("ratio to tenant SELECT 1", ratios)
    verdicts = [
        Verdict(
            "aging: 1M-invoice aging page / 500 ms page budget (median)",
            page.median,
            PAGE_BUDGET,
            0.5,
        ),
        Verdict(
            "aging: 1M-invoice aging page / full-scan aging SQL (medians)",
            page.median,
            full.median,
            0.10,
        ),
    ]
    for verdict in verdicts:
        print_verdict(verdict)
    return verdicts
