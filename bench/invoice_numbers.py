"""Issuing 1,000 invoice numbers from 8 concurrent workers: 0 gaps, 0 duplicates, and the
issue rate. No ratio target: the verdict is correctness, printed here (Verdict is a ratio)."""

from __future__ import annotations

import itertools
import threading

from sqlalchemy import text

from app.core.number_formats import NumberFormat
from app.extensions import db
from app.invoicing.numbering import next_invoice_number
from bench.common import BenchEnvironment, Stopwatch, Verdict, print_figure, print_header
from tenants.binding import TenantSession, bind_tenant, qualified, schema_for_tenant_id
from tenants.services import provision_schema

MEASURES = """
app.invoicing.numbering.next_invoice_number (INSERT ... ON CONFLICT DO UPDATE ... RETURNING on
the series' counter row) from 8 threads, each with its own pooled connection and tenant-bound
session, each issue in its own short transaction: take the number, insert a row with it into a
scratch table, commit. 1,000 issues in all, one series and financial year (every issuer
contends for the same row lock). Counted afterwards from the scratch table: gaps and
duplicates in 1..N; the rate is issues per second of wall time. PASS when both are 0.
"""
WORKERS = 8
ISSUES = 1_000
WARMUP_ISSUES = 20
TENANT_ID = 999_000_001
FORMAT = NumberFormat("{series}/{fy_short}/{seq:05d}", series_length=4)  # 16 characters


def _issue(engine, tenant_id: int, schema: str, series: str, worker: int) -> str:
    with TenantSession(db, bind=engine) as session:
        bind_tenant(session, tenant_id)
        number = next_invoice_number(session, series, "2026-27", FORMAT)
        session.execute(
            text(
                f"INSERT INTO {qualified(schema, 'bench_issued')} (number, worker) VALUES (:n, :w)"
            ),
            {"n": number, "w": worker},
        )
        session.commit()
    return number


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(f"invoice_numbers: {ISSUES:,} numbers from {WORKERS} concurrent workers", MEASURES)
    schema = schema_for_tenant_id(TENANT_ID)
    with environment.app() as app, app.app_context():
        engine = db.engine
        with engine.begin() as conn:
            provision_schema(conn, schema)
            conn.exec_driver_sql(
                f"CREATE TABLE {qualified(schema, 'bench_issued')} "
                "(number varchar(16) NOT NULL, worker int)"
            )
        for _ in range(WARMUP_ISSUES):  # warm-up on another series: connections, caches
            _issue(engine, TENANT_ID, schema, "WARM", -1)

        tickets = itertools.count()
        ticket_lock = threading.Lock()
        errors: list[BaseException] = []
        start = threading.Barrier(WORKERS + 1)

        def worker(index: int) -> None:
            try:
                start.wait(30)
                while True:
                    with ticket_lock:
                        if next(tickets) >= ISSUES:
                            return
                    _issue(engine, TENANT_ID, schema, "BNCH", index)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
        for thread in threads:
            thread.start()
        with Stopwatch() as watch:
            start.wait(30)
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]

        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT number, worker FROM {qualified(schema, 'bench_issued')} "
                    "WHERE worker >= 0"
                )
            ).all()
    numbers = [int(number.rsplit("/", 1)[1]) for number, _ in rows]
    issued = len(numbers)
    distinct = set(numbers)
    duplicates = issued - len(distinct)
    gaps = len(set(range(1, max(distinct, default=0) + 1)) - distinct)
    per_worker = sorted(sum(1 for _, w in rows if w == i) for i in range(WORKERS))
    print_figure("issued (committed)", f"{issued:,} (expected {ISSUES:,})")
    print_figure("highest number", f"{max(distinct, default=0):,}")
    print_figure("gaps", f"{gaps}")
    print_figure("duplicates", f"{duplicates}")
    print_figure("issues per worker", f"min {per_worker[0]}   max {per_worker[-1]}")
    print_figure("wall time", f"{watch.seconds:.2f} s")
    print_figure("issue rate", f"{issued / watch.seconds:,.0f} issues/s")
    passed = gaps == 0 and duplicates == 0 and issued == ISSUES
    outcome = "PASS" if passed else "MISS  <<<"
    print(f"  -> invoice_numbers: gaps {gaps}, duplicates {duplicates}   {outcome}", flush=True)
    return []  # no ratio to judge: Verdict expresses only ratios
