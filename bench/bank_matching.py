"""Target (issue 18): a 20,000-line bank statement matched against 50,000 open invoices and
queued in ≤ 3× the time of one set-based SQL join on exact amount + reference over the same
data; at least 95% of the lines whose narration carries the invoice number matched to the
right invoice, and no wrong automatic (sure) match."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import func, select, update

from app.banking import matching, services
from app.banking.models import StatementLine
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
from bench.pages import create_owner_and_tenant
from tenants.binding import bind_tenant, qualified, quoted_schema, schema_for_tenant_id
from tenants.models import Tenant

CLIENTS = 5_000
INVOICES = 50_000
LINES = 20_000
RUNS = 5
SUFFIXES = ("Traders", "Builders", "Exports", "Textiles", "Logistics")
MAX_RATIO = 3.0
MEASURES = f"""
Load         {CLIENTS:,} clients and {INVOICES:,} open invoices (INV/26-27/NNNNN, each its own
             amount), by INSERT ... SELECT; a {LINES:,}-line HDFC CSV statement imported through
             the product (parsed, each line fingerprinted and inserted once, matched): 50% of
             the lines NEFT credits with the invoice number in the narration as banks cut it
             ('INV-26-27-00042', 'INV 26 27 00042') and in the reference column, 10% of
             them part payments; 15% UPI credits with the number in the note without
             separators; 15% credits of exactly an invoice's amount with the client's name
             only; 10% credits that fit nothing.
product      matching.match_lines over the import's {LINES:,} waiting lines (recorded-payment
             rule, reference rule, amount + name rule, ranking, the queue written), {RUNS} runs,
             the lines reset to waiting before each.
baseline     one UPDATE ... FROM joining the lines with the invoices on exact amount and
             reference (the reference column = the invoice number), writing the match,
             {RUNS} runs, same reset.
precision    of the lines whose narration carries the invoice number: matched to the right
             invoice; sure (automatic) matches that are wrong, over every line.
"""


def _load(schema: str) -> None:
    s = quoted_schema(schema)
    connection = db.session.connection()
    connection.exec_driver_sql(
        f"""INSERT INTO {s}.clients (full_name, short_name, location, country, currency,
               payment_terms)
            SELECT 'Bench Client ' || g || ' ' || (ARRAY['Traders', 'Builders', 'Exports',
                   'Textiles', 'Logistics'])[1 + g %% 5], 'BC' || g, 'local', 'IN', 'INR',
                   'immediate'
              FROM generate_series(1, {CLIENTS}) g"""
    )
    connection.exec_driver_sql(
        f"""INSERT INTO {s}.invoices (client_id, number, status, issue_date, due_date, currency,
               tax_regime, subtotal, cgst, sgst, igst, other_tax, total, amount_in_words)
            SELECT c.first + g %% {CLIENTS}, 'INV/26-27/' || lpad(g::text, 5, '0'), 'issued',
                   CURRENT_DATE - 60, CURRENT_DATE - 30, 'INR', 'other', t, 0, 0, 0, 0, t, ''
              FROM generate_series(1, {INVOICES}) g
             CROSS JOIN (SELECT min(id) AS first FROM {s}.clients) c
             CROSS JOIN LATERAL (SELECT (1000 + g * 7 + (g %% 100) / 100.0)::numeric(18, 2)
                                 AS t) x"""
    )
    db.session.commit()
    for table in ("clients", "invoices"):
        db.session.connection().exec_driver_sql(f"ANALYZE {s}.{table}")
    db.session.commit()


def _statement(today) -> tuple[bytes, dict[int, int]]:
    """The CSV, and for each line number whose narration carries an invoice number, the
    invoice id it pays (invoice ids follow the numbers: first id + n - 1)."""
    first_id = db.session.scalar(select(func.min(matching.Invoice.id)))
    rng = random.Random(18)
    numbers = rng.sample(range(1, INVOICES + 1), LINES)
    rows = ["Date,Narration,Chq./Ref.No.,Value Dt,Withdrawal Amt.,Deposit Amt.,Closing Balance"]
    expected: dict[int, int] = {}
    day = today.strftime("%d/%m/%y")
    for index, n in enumerate(numbers):
        number = f"INV/26-27/{n:05d}"
        total = 1000 + n * 7 + (n % 100) / 100
        g = n % CLIENTS + 1  # the client the load gave invoice n
        client = f"BENCH CLIENT {g} {SUFFIXES[g % 5]}"
        share = index % 20
        line_number = index + 2
        if share < 10:
            amount = total if share else round(total / 2, 2)  # 1 in 10 a part payment
            cut = rng.choice([number.replace("/", "-"), number.replace("/", " "), number])
            narration = f"NEFT CR-HDFC0000001-{client}-{cut}-HDFCN5{today:%Y%m%d}{index:08d}"
            reference = number
            expected[line_number] = first_id + n - 1
        elif share < 13:
            amount = total
            compact = "".join(ch for ch in number if ch.isalnum())
            narration = f"UPI/{index:012d}/{client}/payer{index}@okhdfc/{compact}"
            reference = f"{index:012d}"
            expected[line_number] = first_id + n - 1
        elif share < 18:
            amount = total
            narration = f"IMPS-{index:012d}-{client}-PAYMENT"
            reference = f"IMPS{index}"
        else:
            amount = 17 + index / 100  # fits no invoice (all are ≥ 1,007)
            narration = f"CASH DEPOSIT {index}"
            reference = f"CSH{index}"
        rows.append(f'{day},{narration},{reference},{day},,"{amount:,.2f}",')
    return ("\n".join(rows) + "\n").encode(), expected


def _reset(import_id: int) -> None:
    db.session.execute(
        update(StatementLine)
        .where(StatementLine.import_id == import_id)
        .values(
            status="unmatched", invoice_id=None, client_id=None, confidence=None, match_reason=None
        )
    )
    db.session.commit()


def _baseline(schema: str, import_id: int) -> None:
    lines, invoices = qualified(schema, "statement_lines"), qualified(schema, "invoices")
    db.session.connection().exec_driver_sql(
        f"""UPDATE {lines} l SET status = 'suggested', invoice_id = i.id, client_id = i.client_id
              FROM {invoices} i
             WHERE l.import_id = %(import_id)s AND l.status = 'unmatched'
               AND i.number = l.bank_reference AND i.total = l.amount""",
        {"import_id": import_id},
    )
    db.session.commit()


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(
        f"bank_matching: a {LINES:,}-line statement against {INVOICES:,} open invoices",
        MEASURES,
    )
    with environment.app() as app:
        _, _, tenant_id = create_owner_and_tenant(app)
        schema = schema_for_tenant_id(tenant_id)
        with app.app_context():
            bind_tenant(db.session, tenant_id)
            tenant = db.session.get(Tenant, tenant_id)
            today = local_date(tenant.time_zone) - timedelta(days=1)
            with Stopwatch() as load:
                _load(schema)
            data, expected = _statement(today)
            account = services.add_bank_account(db.session, "Bench HDFC", "50100000000001", "INR")
            with Stopwatch() as imported:
                statement = services.import_statement(db.session, account, "bench.csv", data, "csv")
                db.session.commit()
            db.session.connection().exec_driver_sql(
                f"ANALYZE {qualified(schema, 'statement_lines')}"
            )
            db.session.commit()
            product_times, baseline_times = [], []
            for _ in range(RUNS):
                _reset(statement.id)
                with Stopwatch() as watch:
                    matching.match_lines(db.session, statement.id)
                    db.session.commit()
                product_times.append(watch.seconds)
            found = dict(
                db.session.execute(
                    select(StatementLine.source_line, StatementLine.invoice_id).where(
                        StatementLine.import_id == statement.id
                    )
                ).all()
            )
            sure = db.session.execute(
                select(StatementLine.source_line, StatementLine.invoice_id).where(
                    StatementLine.import_id == statement.id,
                    StatementLine.confidence >= matching.SURE,
                )
            ).all()
            queued = db.session.scalar(
                select(func.count()).where(
                    StatementLine.import_id == statement.id,
                    StatementLine.status.in_(("suggested", "unmatched")),
                )
            )
            for _ in range(RUNS):
                _reset(statement.id)
                with Stopwatch() as watch:
                    _baseline(schema, statement.id)
                baseline_times.append(watch.seconds)
            added = statement.lines_added
            db.session.remove()

    right = sum(1 for line, invoice_id in expected.items() if found.get(line) == invoice_id)
    wrong_sure = sum(1 for line, invoice_id in sure if expected.get(line) != invoice_id)
    product, baseline = Samples(product_times), Samples(baseline_times)
    print_figure("load", f"{load.seconds:6.1f} s")
    print_figure(
        "import (parse, insert, match)",
        f"{imported.seconds:6.2f} s ({added:,} lines)",
    )
    print_figure("product: match and queue", product.describe_ms())
    print_figure("baseline: amount + reference", baseline.describe_ms())
    print_figure(
        "with the number: right invoice",
        f"{right:,} of {len(expected):,} ({right / len(expected):.1%})",
    )
    print_figure("sure (would book by itself)", f"{len(sure):,}, wrong: {wrong_sure}")
    print_figure("queued for review", f"{queued:,}")
    if right < 0.95 * len(expected) or wrong_sure:
        raise RuntimeError("bank matching precision below target or a wrong sure match")
    verdict = Verdict(
        "bank_matching: 20k lines x 50k invoices, match+queue / amount+reference join (medians)",
        product.median,
        baseline.median,
        MAX_RATIO,
    )
    print_verdict(verdict)
    return [verdict]
