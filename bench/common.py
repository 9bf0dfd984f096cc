"""What every benchmark shares: the servers and a fresh database, timing, the tenant DDL as
plain SQL, and how a figure, its baseline and the verdict are printed."""

from __future__ import annotations

import os
import secrets
import statistics
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from unittest import mock
from urllib.parse import urlsplit

import psycopg
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import URL, Connection, MetaData, make_url, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from app import create_app
from app.config import from_environment
from app.devserver import start_services
from app.extensions import db
from app.models import tenant_metadata
from jobs import load_jobs
from tenants.binding import quoted_schema
from tenants.migrate import upgrade_shared

POSTGRESQL = postgresql.dialect()
# Bench keys (rate limits) stay out of the database `make run` uses when Redis is shared.
BENCH_REDIS_DB = 14


@dataclass
class BenchEnvironment:
    """The configuration of a fresh bench database; each benchmark builds its own app on it."""

    config: dict

    @contextmanager
    def app(self) -> Iterator[Flask]:
        """A new app (so routes may still be added before its first request); its pooled
        connections are closed afterwards so that the next benchmark starts from none."""
        app = create_app(self.config)
        load_jobs()
        try:
            yield app
        finally:
            with app.app_context():
                db.engine.dispose()


def _admin_connection(url: URL) -> psycopg.Connection:
    admin = url.set(drivername="postgresql", database="postgres")
    return psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True)


def _fresh_database(url: str) -> str:
    """A database of our own next to the configured one, emptied at the start of the run."""
    parsed = make_url(url)
    bench_url = parsed.set(database=f"{parsed.database}_bench")
    with _admin_connection(parsed) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_url.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{bench_url.database}"')
    return bench_url.render_as_string(hide_password=False)


def _drop_database(url: str) -> None:
    parsed = make_url(url)
    with _admin_connection(parsed) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


@contextmanager
def bench_environment() -> Iterator[BenchEnvironment]:
    """Embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set, a fresh
    `<db>_bench` database with the shared schema at head; everything is removed afterwards."""
    services = start_services("bench")
    database_url = None
    try:
        database_url = _fresh_database(services.env["DATABASE_URL"])
        redis_url = urlsplit(services.env["REDIS_URL"])._replace(path=f"/{BENCH_REDIS_DB}")
        # Production settings, except that the test client speaks plain http, so the session
        # cookie must not be marked Secure.
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url.geturl(),
            "SECRET_KEY": secrets.token_urlsafe(32),
            "DUEBOOK_ENV": "production",
            "COOKIE_SECURE": "0",
            # Production requires integration secrets keys; a throwaway one for the run.
            "SECRETS_KEYS": Fernet.generate_key().decode(),
        }
        with mock.patch.dict(os.environ, env):
            environment = BenchEnvironment(from_environment())
        with environment.app() as app, app.app_context(), db.engine.begin() as conn:
            upgrade_shared(conn)
        yield environment
    finally:
        if database_url:
            _drop_database(database_url)
        services.stop()


# Timing ------------------------------------------------------------------------------------


class Stopwatch:
    """`with Stopwatch() as watch:` ... then `watch.seconds` is how long the block took;
    `watch.started` is its start on the time.perf_counter() clock."""

    started: float
    seconds: float

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        self.seconds = time.perf_counter() - self.started


@dataclass(frozen=True)
class Samples:
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.seconds, n=20, method="inclusive")[-1]

    @property
    def best(self) -> float:
        return min(self.seconds)

    def describe_ms(self) -> str:
        return (
            f"median {self.median * 1e3:6.2f} ms   p95 {self.p95 * 1e3:6.2f} ms   "
            f"best {self.best * 1e3:6.2f} ms   n={len(self.seconds)}"
        )


# Tenant DDL as plain SQL ---------------------------------------------------------------------


def tenant_tables_ddl(schema: str) -> list[str]:
    """CREATE SCHEMA and the tenant tables with their indexes, as the models declare them,
    for `schema`: compiled here so that running them costs only the database's work."""
    copy = MetaData(naming_convention=tenant_metadata.naming_convention)
    statements = [f"CREATE SCHEMA {quoted_schema(schema)}"]
    for table in tenant_metadata.sorted_tables:
        table = table.to_metadata(copy, schema=schema)
        statements.append(str(CreateTable(table).compile(dialect=POSTGRESQL)).strip())
        statements += [
            str(CreateIndex(index).compile(dialect=POSTGRESQL))
            for index in sorted(table.indexes, key=lambda index: index.name)
        ]
    return statements


def schema_shape(conn: Connection, schema: str, *, skip_tables: tuple[str, ...] = ()) -> tuple:
    """Columns and index definitions of `schema`, without its name: equal shapes mean a
    baseline built the same tables as the product."""
    columns = conn.execute(
        text(
            "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable,"
            " column_default, is_identity FROM information_schema.columns"
            " WHERE table_schema = :schema AND NOT table_name = ANY(:skip) ORDER BY 1, 2"
        ),
        {"schema": schema, "skip": list(skip_tables)},
    ).all()
    indexes = conn.execute(
        text(
            "SELECT tablename, indexname, replace(indexdef, schemaname || '.', '')"
            " FROM pg_indexes WHERE schemaname = :schema AND NOT tablename = ANY(:skip)"
            " ORDER BY 1, 2"
        ),
        {"schema": schema, "skip": list(skip_tables)},
    ).all()
    return tuple(map(tuple, columns)), tuple(map(tuple, indexes))


def require_same_shape(
    conn: Connection,
    product_schema: str,
    baseline_schema: str,
    *,
    skip_tables: tuple[str, ...] = (),
) -> None:
    """A baseline that builds something else than the product would make the ratio a lie."""
    product = schema_shape(conn, product_schema, skip_tables=skip_tables)
    baseline = schema_shape(conn, baseline_schema, skip_tables=skip_tables)
    if product != baseline:
        raise RuntimeError(
            f"{baseline_schema} does not have the shape of {product_schema}:\n"
            f"  product:  {product}\n  baseline: {baseline}"
        )


# Reporting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The product's figure against the baseline measured in the same run."""

    name: str
    product_seconds: float
    baseline_seconds: float
    max_ratio: float

    @property
    def ratio(self) -> float:
        return self.product_seconds / self.baseline_seconds

    @property
    def passed(self) -> bool:
        return self.ratio <= self.max_ratio

    def line(self) -> str:
        outcome = "PASS" if self.passed else "MISS  <<<"
        return f"{self.name}: ratio {self.ratio:.2f}x   target <= {self.max_ratio:g}x   {outcome}"


def print_header(title: str, measures: str) -> None:
    print(f"\n=== {title} ===")
    print(textwrap.indent(textwrap.dedent(measures).strip("\n"), "  "), end="\n\n", flush=True)


def print_figure(label: str, figure: str) -> None:
    print(f"  {label:<30} {figure}", flush=True)


def print_verdict(verdict: Verdict) -> None:
    print(f"  -> {verdict.line()}", flush=True)
