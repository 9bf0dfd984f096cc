"""Target: provisioning a tenant costs at most 2x the raw DDL of its schema."""

from __future__ import annotations

from sqlalchemy import Connection

from app.extensions import db
from bench.common import (
    BenchEnvironment,
    Samples,
    Stopwatch,
    Verdict,
    print_figure,
    print_header,
    print_verdict,
    require_same_shape,
    tenant_tables_ddl,
)
from tenants.services import provision_schema

MEASURES = """
What sign-up does to make a tenant's schema: tenants.services.provision_schema (CREATE SCHEMA,
then the tenant history to head through Alembic, version table included) in one transaction,
committed. Baseline: CREATE SCHEMA plus the same tables and indexes as plain SQL compiled
from the models, sent as one batch (as the product sends its migrations) in one transaction,
committed (DDL only: that is the target's definition).
Product and baseline alternate on one connection, each into a fresh schema.
"""
RUNS = 30
WARMUP_RUNS = 3
MAX_RATIO = 2.0


def time_provision(conn: Connection, schema: str) -> float:
    with Stopwatch() as watch, conn.begin():
        provision_schema(conn, schema)
    return watch.seconds


def time_plain_ddl(conn: Connection, schema: str) -> float:
    # Compiled before the clock starts, and sent as one batch in one round trip, as the product
    # sends its migrations (tenants.migrate): statement by statement, the baseline paid a round
    # trip each and ran slower than the product, so the target guarded nothing.
    batch = ";\n".join(tenant_tables_ddl(schema)) + ";"
    with Stopwatch() as watch, conn.begin(), conn.connection.cursor() as cursor:
        cursor.execute(batch)
    return watch.seconds


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(f"provision: a tenant's schema, {RUNS} times each", MEASURES)
    product, baseline = [], []
    contenders = [
        (product, time_provision, "bench_provision"),
        (baseline, time_plain_ddl, "bench_ddl"),
    ]
    with environment.app() as app, app.app_context(), db.engine.connect() as conn:
        for number in range(WARMUP_RUNS + RUNS):
            # Who goes first alternates, so that neither always runs in the other's wake.
            for samples, measure, prefix in contenders[:: 1 if number % 2 else -1]:
                seconds = measure(conn, f"{prefix}_{number}")
                if number >= WARMUP_RUNS:
                    samples.append(seconds)
        with conn.begin():
            require_same_shape(
                conn, "bench_provision_0", "bench_ddl_0", skip_tables=("alembic_version",)
            )

    product_samples, baseline_samples = Samples(product), Samples(baseline)
    print_figure("product  provision_schema", product_samples.describe_ms())
    print_figure("baseline plain DDL", baseline_samples.describe_ms())
    verdict = Verdict(
        "provision (medians)", product_samples.median, baseline_samples.median, MAX_RATIO
    )
    print_verdict(verdict)
    return [verdict]
