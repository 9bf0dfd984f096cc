"""Target: the dashboard of a tenant with 1,000,000 invoices costs at most 5x the bare tenant
route (SELECT 1 behind the same tenant resolution), measured in the same run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select

from app.aging import services as aging
from app.clients import documents
from app.collections.work import services as work
from app.core.clock import local_date
from app.dashboard import services
from app.extensions import db
from app.payments import listing as payments
from bench.aging import AGING_TABLES, CLIENTS, INVOICES
from bench.aging import LOAD as AGING_LOAD
from bench.common import (
    BenchEnvironment,
    Samples,
    Stopwatch,
    Verdict,
    print_figure,
    print_header,
    print_verdict,
)
from bench.pages import add_bare_routes, create_owner_and_tenant, log_in, timed_in_turn
from tenants.binding import bind_tenant, quoted_schema, schema_for_tenant_id
from tenants.models import Tenant, User

PAYMENTS = 400_000
NOTICES = 50_000
PROMISES = 20_000
OWNER_CLIENTS = 50  # clients the owner collects from: their queue is on the dashboard
REQUESTS = 200
WARMUP_REQUESTS = 20
PART_ROUNDS = 30
MAX_RATIO = 5.0
MEASURES = f"""
Load         the aging benchmark's {CLIENTS:,} clients and {INVOICES:,} invoices (with their
             payments, allocations and credit notes), plus {PAYMENTS:,} payments over 4 years,
             {NOTICES:,} notices (1 in 50 a draft waiting for approval) and {PROMISES:,}
             promises (open, kept, broken; dates a year either side of today); the owner is
             the collector of {OWNER_CLIENTS} clients. Set-based INSERT ... SELECT, aging
             triggers off, then the aging summary rebuilt; VACUUM ANALYZE.
dashboard    GET /t/<slug>/ as the owner (every tile: receivables, top overdue clients,
             cash, collections, the owner's work, documents).
tenant SELECT 1  GET /t/<slug>/bench/select1 (tenant resolution, then SELECT 1).
The two alternate, request by request; {REQUESTS} each after {WARMUP_REQUESTS} warm-ups.
Then, for information, each tile's service calls alone ({PART_ROUNDS} rounds).
"""

LOAD_PAYMENTS = """INSERT INTO {s}.payments (client_id, received_on, amount, currency, method)
       SELECT c.first + g % {clients}, CURRENT_DATE - (g * 7 % 1460)::int,
              (100 + g % 50000)::numeric(18, 2), 'INR', 'upi'
         FROM generate_series(1, {payments}) g
        CROSS JOIN (SELECT min(id) AS first FROM {s}.clients) c"""
LOAD_NOTICES = """INSERT INTO {s}.collection_notices (client_id, policy_id, level_id, level_number,
           level_name, channel, currency, status, run_date, amount_due, closed_at)
       SELECT c.first + g % {clients}, l.policy_id, l.id, l.position, l.name, 'email', 'INR',
              x.status, CURRENT_DATE - (g % 700)::int, 1000,
              CASE WHEN x.status = 'closed' THEN now() END
         FROM generate_series(1, {notices}) g
        CROSS JOIN (SELECT min(id) AS first FROM {s}.clients) c
        CROSS JOIN (SELECT l.* FROM {s}.collection_levels l
                      JOIN {s}.collection_policies p ON p.id = l.policy_id AND p.is_default
                     ORDER BY l.position LIMIT 1) l
        CROSS JOIN LATERAL (SELECT CASE WHEN g % 50 = 0 THEN 'draft' WHEN g % 5 = 0
                                        THEN 'sent' ELSE 'closed' END AS status) x"""
LOAD_PROMISES = """INSERT INTO {s}.promises_to_pay (client_id, amount, currency, promised_on,
           status)
       SELECT c.first + g % {clients}, 1000, 'INR', CURRENT_DATE - 365 + (g % 730)::int,
              CASE WHEN g % 730 >= 365 THEN 'open' WHEN g % 3 = 0 THEN 'broken'
                   ELSE 'kept' END
         FROM generate_series(1, {promises}) g
        CROSS JOIN (SELECT min(id) AS first FROM {s}.clients) c"""
LOAD = [LOAD_PAYMENTS, LOAD_NOTICES, LOAD_PROMISES]
TABLES = ("payments", "payment_days", "collection_notices", "promises_to_pay", "clients")
# What the rebuilds rewrote (autovacuum would have analyzed them within the minute).
AGING_SUMMARY_TABLES = (
    "aging_entries",
    "aging_summary",
    "aging_totals",
    "aging_total_changes",
    "aging_client_overdue",
    "aging_sales",
    "payment_days",
    "invoice_totals",
    "invoice_total_changes",
)


ROWS = {  # how many of each the load writes
    "clients": CLIENTS,
    "invoices": INVOICES,
    "payments": PAYMENTS,
    "notices": NOTICES,
    "promises": PROMISES,
}


def load_tenant(
    schema: str,
    owner_id: int,
    values: Mapping[str, int],
    statements: Sequence[str] = (),
    tables: Sequence[str] = (),
) -> None:
    """The aging benchmark's rows and this one's, then `statements` (more of the same kind),
    the aging triggers off; then VACUUM ANALYZE of every table written, `tables` too. The
    statements are formatted with {s} (the schema), {owner} (the owner's id) and `values`:
    how many rows of each ({clients}, {invoices}, {payments}, {notices}, {promises}) and
    whatever else `statements` name."""
    s = quoted_schema(schema)
    connection = db.session.connection()
    for table in AGING_TABLES:
        connection.exec_driver_sql(f"ALTER TABLE {s}.{table} DISABLE TRIGGER USER")
    for statement in (*AGING_LOAD, *LOAD, *statements):
        sql = statement.format(s=s, owner=int(owner_id), **values)
        connection.exec_driver_sql(sql.replace("%", "%%"))  # a driver-level placeholder
    for table in AGING_TABLES:
        connection.exec_driver_sql(f"ALTER TABLE {s}.{table} ENABLE TRIGGER USER")
    # The allocations went in with their triggers off: the cash kept per day, again.
    connection.exec_driver_sql(f"SELECT {s}.payment_days_rebuild()")
    connection.exec_driver_sql(f"SELECT {s}.invoice_totals_rebuild()")  # the list's totals
    connection.exec_driver_sql(
        f"UPDATE {s}.clients SET collector_user_id = {int(owner_id)} "
        f"WHERE id < (SELECT min(id) FROM {s}.clients) + {OWNER_CLIENTS}"
    )
    db.session.commit()
    # VACUUM as autovacuum would have long since done in a workspace that grew to this size:
    # it marks the pages all-visible, so index-only scans (the cash sums) read no table rows.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in (*AGING_TABLES, *TABLES, *tables):
            connection.exec_driver_sql(f"VACUUM ANALYZE {s}.{table}")


def rebuild_aging(schema: str, today) -> Stopwatch:
    """The bound tenant's aging summary rebuilt from the loaded rows (their triggers were off),
    then the tables it rewrote analyzed, as autovacuum would within the minute; returns how long
    the rebuild took. Leaves the session unbound."""
    with Stopwatch() as rebuild:
        aging.rebuild(db.session, today, "due_date", (30, 60, 90))
        db.session.commit()
    db.session.remove()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in AGING_SUMMARY_TABLES:
            connection.exec_driver_sql(f"VACUUM ANALYZE {quoted_schema(schema)}.{table}")
    return rebuild


def _time_parts(owner_id: int, today) -> dict[str, Samples]:
    """Each tile's service calls alone, for information: where the page's time goes."""
    parts = {
        "counts (one query)": lambda: services.counts(db.session, today, with_collections=True),
        "receivables": lambda: services.receivables(
            db.session, aging.ensure_current(db.session, today), today
        ),
        "top overdue": lambda: services.top_overdue(
            db.session, aging.ensure_current(db.session, today)
        ),
        "cash by month": lambda: payments.cash_by_month(db.session, today),
        "owner's queue counts": lambda: work.queue_counts(db.session, owner_id, today),
        "expiring documents": lambda: documents.expiring_documents(db.session, today),
    }
    seconds = {name: [] for name in parts}
    for _ in range(PART_ROUNDS):
        for name, call in parts.items():
            with Stopwatch() as watch:
                call()
            seconds[name].append(watch.seconds)
        db.session.commit()
    return {name: Samples(values) for name, values in seconds.items()}


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(f"dashboard: {INVOICES:,} invoices, against the bare tenant route", MEASURES)
    with environment.app() as app:
        add_bare_routes(app)
        email, slug, tenant_id = create_owner_and_tenant(app)
        schema = schema_for_tenant_id(tenant_id)
        with app.app_context():
            bind_tenant(db.session, tenant_id)
            tenant = db.session.get(Tenant, tenant_id)
            owner_id = db.session.scalar(select(User.id).where(User.email == email))
            today = local_date(tenant.time_zone)
            with Stopwatch() as load:
                load_tenant(schema, owner_id, ROWS)
            rebuild = rebuild_aging(schema, today)
            bind_tenant(db.session, tenant_id)
            parts = _time_parts(owner_id, today)
            db.session.remove()

        http = app.test_client()
        log_in(http, email)
        urls = {"dashboard": f"/t/{slug}/", "tenant SELECT 1": f"/t/{slug}/bench/select1"}
        page = http.get(urls["dashboard"]).text
        if 'id="receivables"' not in page or 'id="my-work"' not in page:
            raise RuntimeError("the dashboard does not show the receivables and the owner's work")
        seconds = timed_in_turn(http, urls, WARMUP_REQUESTS, REQUESTS)

    print_figure("load (triggers off)", f"{load.seconds:6.1f} s")
    print_figure("rebuild of the aging summary", f"{rebuild.seconds:6.1f} s")
    samples = {name: Samples(values) for name, values in seconds.items()}
    for name, figures in samples.items():
        print_figure(name, figures.describe_ms())
    verdict = Verdict(
        "dashboard: 1M-invoice dashboard / tenant SELECT 1 (medians)",
        samples["dashboard"].median,
        samples["tenant SELECT 1"].median,
        MAX_RATIO,
    )
    for name, figures in parts.items():
        print_figure(f"  {name}", figures.describe_ms())
    print_verdict(verdict)
    return [verdict]
