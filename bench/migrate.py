"""Target: `tenants migrate` of one added column + index over 1,000 schemas costs at most 3x
the raw per-schema DDL floor."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

from sqlalchemy import Connection

import tenants.migrate
from app.extensions import db
from bench.common import (
    BenchEnvironment,
    Stopwatch,
    Verdict,
    print_figure,
    print_header,
    print_verdict,
    require_same_shape,
    tenant_tables_ddl,
)
from tenants.binding import qualified
from tenants.migrate import TenantMigrator, migrate_schemas
from tenants.services import provision_schema

MEASURES = """
A new tenant revision that adds a column and its index to audit_log, applied by
tenants.migrate.migrate_schemas (what `flask tenants migrate` runs: one transaction per schema)
to 1,000 schemas at head. Baseline: for 1,000 other schemas at head, one transaction each
doing only ALTER TABLE ... ADD COLUMN and CREATE INDEX, on one connection of the same engine.
The revision exists for this run only, in a temporary copy of migrations/.
"""
SCHEMAS = 1000
WARMUP_SCHEMAS = 10
MAX_RATIO = 3.0
SETUP_BATCH = 50
REVISION_ID = "bench_add_column"
REVISION_FILE = '''"""bench: one added column and its index (written by bench/migrate.py)"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("bench_note", sa.Text()))
    op.create_index("ix_audit_log_bench_note", "audit_log", ["bench_note"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_bench_note", table_name="audit_log")
    op.drop_column("audit_log", "bench_note")
'''


def create_schemas_at_head(conn: Connection, schemas: list[str], head: str) -> None:
    """Schemas as provisioning leaves them, made with plain SQL in batches: provisioning 2,000
    one by one through Alembic would take most of the time budget."""
    for first in range(0, len(schemas), SETUP_BATCH):
        with conn.begin():
            for schema in schemas[first : first + SETUP_BATCH]:
                for statement in tenant_tables_ddl(schema):
                    conn.exec_driver_sql(statement)
                # The table Alembic creates for its version, stamped at head.
                version_table = qualified(schema, "alembic_version")
                conn.exec_driver_sql(
                    f"CREATE TABLE {version_table} (version_num VARCHAR(32) NOT NULL,"
                    f" CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
                )
                conn.exec_driver_sql(f"INSERT INTO {version_table} (version_num) VALUES ('{head}')")


def add_column_and_index(conn: Connection, schema: str) -> None:
    with conn.begin():
        audit_log = qualified(schema, "audit_log")
        conn.exec_driver_sql(f"ALTER TABLE {audit_log} ADD COLUMN bench_note text")
        conn.exec_driver_sql(f"CREATE INDEX ix_audit_log_bench_note ON {audit_log} (bench_note)")


def copy_migrations_with_bench_revision(into: Path, head: str) -> Path:
    copy = into / "migrations"
    shutil.copytree(tenants.migrate.MIGRATIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "tenant" / "versions" / f"{REVISION_ID}.py").write_text(
        REVISION_FILE.format(revision=REVISION_ID, down_revision=head)
    )
    return copy


def describe_run(watch: Stopwatch, finish_times: list[float]) -> str:
    """Total and per-schema figures; each schema's own time is the gap between the moments
    consecutive schemas finished."""
    each = [
        end - begin
        for begin, end in zip([watch.started, *finish_times[:-1]], finish_times, strict=True)
    ]
    return (
        f"{watch.seconds:6.2f} s total   mean {watch.seconds / len(each) * 1e3:5.2f} ms/schema"
        f"   median {statistics.median(each) * 1e3:5.2f} ms/schema"
    )


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(f"migrate: one added column + index over {SCHEMAS:,} schemas", MEASURES)
    product_schemas = [f"bench_migrate_{n}" for n in range(SCHEMAS)]
    baseline_schemas = [f"bench_alter_{n}" for n in range(SCHEMAS)]
    warmup_product = [f"bench_migrate_warmup_{n}" for n in range(WARMUP_SCHEMAS)]
    warmup_baseline = [f"bench_alter_warmup_{n}" for n in range(WARMUP_SCHEMAS)]
    head = TenantMigrator().head

    with environment.app() as app, app.app_context():
        engine = db.engine
        with Stopwatch() as setup, engine.connect() as conn:
            with conn.begin():
                provision_schema(conn, "bench_migrate_reference")
            create_schemas_at_head(
                conn, [*warmup_product, *product_schemas, *warmup_baseline, *baseline_schemas], head
            )
            # The plain-SQL schemas must be what the product would have made, version included.
            with conn.begin():
                require_same_shape(conn, "bench_migrate_reference", product_schemas[0])
        print_figure(
            "setup",
            f"{2 * (SCHEMAS + WARMUP_SCHEMAS) + 1:,} schemas at head in "
            f"{setup.seconds:.1f} s (not measured)",
        )
        # Every run below starts on fresh connections: a backend keeps the catalog of each
        # schema it touched, and the setup's connection has touched them all.
        engine.dispose()

        with engine.connect() as conn:
            for schema in warmup_baseline:
                add_column_and_index(conn, schema)
            baseline_finished = []
            with Stopwatch() as baseline:
                for schema in baseline_schemas:
                    add_column_and_index(conn, schema)
                    baseline_finished.append(time.perf_counter())
        engine.dispose()

        with (
            tempfile.TemporaryDirectory(prefix="duebook-bench-") as scratch,
            mock.patch.object(
                tenants.migrate,
                "MIGRATIONS",
                copy_migrations_with_bench_revision(Path(scratch), head),
            ),
        ):
            migrate_schemas(engine, warmup_product)
            product_finished = []

            def note_finish(_schema: str) -> None:
                product_finished.append(time.perf_counter())

            with Stopwatch() as product:
                report = migrate_schemas(engine, product_schemas, on_progress=note_finish)
        if report.failed or len(report.migrated) != SCHEMAS:
            raise RuntimeError(
                f"migrate_schemas migrated {len(report.migrated)} of {SCHEMAS}; "
                f"{report.failed} failed: {report.error}"
            )
        with engine.connect() as conn, conn.begin():
            require_same_shape(
                conn, product_schemas[-1], baseline_schemas[-1], skip_tables=("alembic_version",)
            )

    print_figure("product  migrate_schemas", describe_run(product, product_finished))
    print_figure("baseline ALTER + CREATE INDEX", describe_run(baseline, baseline_finished))
    verdict = Verdict(
        f"migrate (totals over {SCHEMAS:,} schemas)", product.seconds, baseline.seconds, MAX_RATIO
    )
    print_verdict(verdict)
    return [verdict]
