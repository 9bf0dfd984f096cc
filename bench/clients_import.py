"""Target: importing 50,000 client rows through the real import path (parse, validate, write)
reaches at least 40% of the rows/second of a plain PostgreSQL COPY of the same rows into the
same table (that is: it takes at most 2.5x as long)."""

from __future__ import annotations

import io
import logging
import random
import secrets
import tempfile
from pathlib import Path

from flask import Flask
from psycopg import sql
from sqlalchemy import text
from stdnum import luhn
from stdnum.in_ import gstin as in_gstin

from app.auth import services as accounts
from app.clients.imports import services as imports
from app.clients.imports import writer as import_writer
from app.clients.models import ClientImport
from app.core.regions import GST_STATES
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
)
from jobs.tasks import run_client_import
from tenants import services as tenants
from tenants.binding import bind_tenant, qualified

ROWS = 50_000
WARMUP_ROWS = 2_000
ROUNDS = 5
MIN_SHARE = 0.40  # of the plain COPY's rows/s
MEASURES = f"""
Product: jobs.tasks.run_client_import (what the worker runs for a started import) on a stored
{ROWS:,}-row CSV (UTF-8, 16 columns as an accounting export has them; 90% Indian clients with
valid GSTINs, 10% foreign; net, MFI, immediate and custom terms; half with an external id):
read and parse the file, check every row with rules.clean_client, look up matches; per chunk
of {imports.CHUNK_SIZE:,} rows COPY into a temporary table, INSERT ... SELECT into clients,
the counters, commit (each chunk is written while the next one is checked); finally the audit
entry. The job's app context, claim and commits are inside the clock; the upload is not.
Baseline: COPY clients (29 columns) FROM STDIN of the very rows the product wrote (read back
before the clock), into the clients table of a second tenant schema with the same indexes
(checked), committed.
Both tables are emptied (TRUNCATE) before each run. One warm-up of {WARMUP_ROWS:,} rows each,
then {ROUNDS} rounds alternating who goes first; verdict on the medians (the same rows: the
target of >= {MIN_SHARE:.0%} of COPY's rows/s is a time ratio of <= {1 / MIN_SHARE:g}x).
"""

CITIES = {
    "27": ("Mumbai", "Pune", "Nagpur"),
    "29": ("Bengaluru", "Mysuru"),
    "33": ("Chennai", "Coimbatore"),
    "07": ("New Delhi",),
    "24": ("Ahmedabad", "Surat"),
    "36": ("Hyderabad",),
    "19": ("Kolkata",),
    "08": ("Jaipur", "Udaipur"),
    "09": ("Lucknow", "Noida"),
    "32": ("Kochi",),
}
FOREIGN = (
    ("US", "USD", "New York"),
    ("GB", "GBP", "London"),
    ("AE", "AED", "Dubai"),
    ("SG", "SGD", "Singapore"),
    ("AU", "AUD", "Sydney"),
)
WORDS = (
    "Shree",
    "Ganesh",
    "Lakshmi",
    "Kaveri",
    "Sagar",
    "Everest",
    "Vardhman",
    "Apex",
    "Bharat",
    "Sunrise",
    "Orchid",
    "Trident",
    "Nirmal",
    "Pragati",
    "Sai",
    "Tirupati",
)
TRADES = (
    "Traders",
    "Logistics",
    "Textiles",
    "Steel",
    "Pharma",
    "Foods",
    "Infotech",
    "Constructions",
    "Agencies",
    "Exports",
    "Polymers",
    "Motors",
)
INDUSTRIES = ("Logistics", "Manufacturing", "IT services", "Construction", "")
HEADER = [
    "Client name",
    "Short name",
    "External ID",
    "GSTIN",
    "Address",
    "City",
    "State",
    "Postal code",
    "Country",
    "Currency",
    "Payment terms",
    "Payment days",
    "Payment terms note",
    "Credit limit",
    "Tags",
    "Industry",
]
GSTIN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _gstin(rng: random.Random, state: str) -> str:
    pan = (
        "".join(rng.choices(LETTERS, k=3))
        + rng.choice("PCFHAT")
        + rng.choice(LETTERS)
        + f"{rng.randrange(1, 10_000):04d}"
        + rng.choice(LETTERS)
    )
    body = f"{state}{pan}{rng.choice('123456789')}Z"
    return body + luhn.calc_check_digit(body, GSTIN_ALPHABET)


def client_csv(rows: int, seed: int = 7) -> bytes:
    """A realistic client export; every row valid, every name unique."""
    rng = random.Random(seed)
    # State codes python-stdnum accepts in a GSTIN (it does not know 38, Ladakh, yet).
    states = [code for code in GST_STATES if code in in_gstin._STATE_CODES]
    out = io.StringIO()
    out.write(",".join(HEADER) + "\n")
    for n in range(rows):
        name = f"{rng.choice(WORDS)} {rng.choice(TRADES)} {n:06d} Pvt Ltd"
        short = f"{name[:3].upper()}{n:06d}"
        external = f"ERP-{n:07d}" if n % 2 == 0 else ""
        if n % 10 == 9:
            country, currency, city = rng.choice(FOREIGN)
            gstin, state, postal = "", "", ""
        else:
            country, currency = "IN", "INR"
            state = rng.choice(states)
            city = rng.choice(CITIES.get(state, ("",)))
            gstin = _gstin(rng, state)
            postal = f"{rng.randrange(110_000, 855_999)}"
            state = state if n % 3 else ""  # a third leave the state to the GSTIN
        terms = rng.choices(("Net", "MFI", "Immediate", "Custom"), (60, 15, 15, 10))[0]
        days = str(rng.choice((15, 30, 45, 60, 90))) if terms in ("Net", "MFI") else ""
        note = "50% advance, rest on delivery" if terms == "Custom" else ""
        limit = f"{rng.randrange(1, 500) * 10_000}" if n % 4 else ""
        tags = rng.choice(("", "", "key account", "north, retail", "export"))
        row = [
            name,
            short,
            external,
            gstin,
            f"{rng.randrange(1, 400)}, Main Road",
            city,
            state,
            postal,
            country,
            currency,
            terms,
            days,
            note,
            limit,
            tags,
            rng.choice(INDUSTRIES),
        ]
        out.write(",".join(f'"{v}"' if "," in v else v for v in row) + "\n")
    return out.getvalue().encode()


def _stored_import(app: Flask, tenant_id: int, owner_id: int, content: bytes) -> int:
    """The state an import is in once uploaded, mapped and started (nothing of it timed)."""
    with app.app_context():
        bind_tenant(db.session, tenant_id)
        record = imports.create_import(
            db.session, tenant_id, "clients.csv", io.BytesIO(content), owner_id
        )
        db.session.commit()
        imports.read_import_file(db.session, record.id)  # what the upload's read job does
        record.status = "queued"
        db.session.commit()
        return record.id


def _truncate(app: Flask, *schemas: str) -> None:
    with app.app_context(), db.engine.begin() as conn:
        for schema in schemas:
            conn.execute(text(f"TRUNCATE {qualified(schema, 'clients')} RESTART IDENTITY CASCADE"))


def run_product(app: Flask, tenant_id: int, owner_id: int, content: bytes, rows: int) -> float:
    import_id = _stored_import(app, tenant_id, owner_id, content)
    with app.app_context(), Stopwatch() as watch:
        outcome = run_client_import(import_id, tenant_id=tenant_id)
    with app.app_context():
        bind_tenant(db.session, tenant_id)
        record = db.session.get(ClientImport, import_id)
        figures = (outcome, record.inserted_rows, record.failed_rows)
        db.session.remove()
    if figures != ("done", rows, 0):
        raise RuntimeError(f"the import did not write every row: {figures}, {record.error}")
    return watch.seconds


def written_rows(app: Flask, schema: str) -> list[tuple]:
    columns = ", ".join(import_writer.CLIENT_COLUMNS)
    with app.app_context(), db.engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.exec_driver_sql(
                f"SELECT {columns} FROM {qualified(schema, 'clients')} ORDER BY id"
            )
        ]


def run_baseline(app: Flask, schema: str, rows: list[tuple]) -> float:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.SQL(qualified(schema, "clients")),
        sql.SQL(", ").join(map(sql.Identifier, import_writer.CLIENT_COLUMNS)),
    )
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            with Stopwatch() as watch:
                with raw.cursor() as cursor, cursor.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)
                raw.commit()
        finally:
            raw.close()
    return watch.seconds


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(f"clients_import: {ROWS:,} client rows, import against plain COPY", MEASURES)
    quiet = [logging.getLogger(name) for name in ("jobs", "rq", "app.clients.imports.services")]
    levels = [logger.level for logger in quiet]
    with environment.app() as app, tempfile.TemporaryDirectory() as storage_root:
        app.config["STORAGE_ROOT"] = str(Path(storage_root))
        for logger in quiet:
            logger.setLevel(logging.WARNING)
        try:
            product, baseline = _run(app)
        finally:
            for logger, level in zip(quiet, levels, strict=True):
                logger.setLevel(level)

    product_samples, baseline_samples = Samples(product), Samples(baseline)
    print_figure("import (product)", product_samples.describe_ms())
    print_figure("plain COPY (baseline)", baseline_samples.describe_ms())
    product_rate = ROWS / product_samples.median
    baseline_rate = ROWS / baseline_samples.median
    print_figure("import rows/s", f"{product_rate:10,.0f}")
    print_figure("plain COPY rows/s", f"{baseline_rate:10,.0f}")
    print(
        f"  import reaches {product_rate / baseline_rate:.0%} of COPY's rows/s "
        f"(target >= {MIN_SHARE:.0%})"
    )
    verdict = Verdict(
        "clients_import: import / plain COPY, time for the same rows (medians)",
        product_samples.median,
        baseline_samples.median,
        1 / MIN_SHARE,
    )
    print_verdict(verdict)
    return [verdict]


def _run(app: Flask) -> tuple[list[float], list[float]]:
    slug = f"bench-{secrets.token_hex(4)}"
    with app.app_context():
        owner = accounts.create_user(
            db.session,
            email=f"owner@{slug}.example.com",
            full_name="Bench Owner",
            password=secrets.token_urlsafe(16),
        )
        made = [
            tenants.create_tenant(
                db.session,
                slug=f"{slug}-{side}",
                name=f"Bench {side}",
                country="IN",
                time_zone="Asia/Kolkata",
                currency="INR",
                owner=owner,
            )
            for side in ("product", "baseline")
        ]
        db.session.commit()
        owner_id = owner.id
        (product_id, product_schema), (_, baseline_schema) = ((t.id, t.schema) for t in made)
        with db.engine.connect() as conn:
            require_same_shape(conn, product_schema, baseline_schema)
        db.session.remove()

    content = client_csv(ROWS)
    warmup = client_csv(WARMUP_ROWS, seed=1)
    print(f"  file: {len(content) / 1e6:.1f} MB, {ROWS:,} rows", flush=True)

    _truncate(app, product_schema, baseline_schema)
    run_product(app, product_id, owner_id, warmup, WARMUP_ROWS)
    run_baseline(app, baseline_schema, written_rows(app, product_schema))

    product, baseline = [], []
    prepared = None
    for round_number in range(ROUNDS):
        _truncate(app, product_schema, baseline_schema)
        order = ("product", "baseline") if round_number % 2 == 0 else ("baseline", "product")
        if prepared is None:  # the baseline's rows: what the product writes (the first time)
            run_product(app, product_id, owner_id, content, ROWS)
            prepared = written_rows(app, product_schema)
            _truncate(app, product_schema)
        for side in order:
            if side == "product":
                product.append(run_product(app, product_id, owner_id, content, ROWS))
            else:
                baseline.append(run_baseline(app, baseline_schema, prepared))
        print(
            f"  round {round_number + 1}: import {product[-1]:.2f} s, COPY {baseline[-1]:.2f} s",
            flush=True,
        )
    return product, baseline
