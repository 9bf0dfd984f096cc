"""Target: the daily collection run over 100 tenants x 2,000 overdue invoices takes at most 3x
the time of hand-written set-based SQL (INSERT ... SELECT) producing the same notice rows; a
second run creates nothing."""

from __future__ import annotations

from datetime import date

from sqlalchemy import text

from app.collections.engine import run as engine
from app.extensions import db
from bench.common import (
    BenchEnvironment,
    Stopwatch,
    Verdict,
    print_figure,
    print_header,
    print_verdict,
)
from tenants.binding import TenantSession, bind_tenant, quoted_schema, schema_for_tenant_id
from tenants.models import Tenant
from tenants.services import provision_schema

TENANTS = 100
CLIENTS = 200
INVOICES_PER_CLIENT = 10  # 2,000 overdue invoices per tenant
TODAY = date(2027, 3, 4)  # a Thursday, a business day in Maharashtra
MAX_RATIO = 3.0
WARM_UP_TENANTS = 10
MEASURES = f"""
product   app.collections.engine.run.run for each of {TENANTS} tenants ({CLIENTS} clients with a
          consenting billing contact, {CLIENTS * INVOICES_PER_CLIENT:,} overdue invoices each):
          advisory lock, broken promises, the set-based plan (owing, policy, rung, holds,
          disputes, promises, last contact), contacts by consent, notices + items (ON CONFLICT
          DO NOTHING) + audit entries, the run record; one transaction per tenant, committed.
          The default ladder's 1st notice (e-mail and WhatsApp): 400 notices, 4,000 items each.
baseline  per tenant, one hand-written INSERT ... SELECT of the same notices (same rules) and
          one of their items, committed. Both start from the same data (the other's rows
          deleted), and the notices they make are compared.
"""

SEED_SQL = """
INSERT INTO {s}.clients (full_name, short_name, location, country, currency, payment_terms,
  payment_days, address_line1)
SELECT 'Client ' || g, 'C' || g, 'local', 'IN', 'INR', 'net', 30, 'Street ' || g
FROM generate_series(1, {clients}) g;
INSERT INTO {s}.client_contacts (client_id, full_name, roles, email, phone, whatsapp_consent)
SELECT id, 'Billing ' || id, ARRAY['billing'], 'b' || id || '@example.com',
  '+9198' || lpad(id::text, 8, '0'), 'opted_in' FROM {s}.clients;
INSERT INTO {s}.invoices (client_id, number, status, issue_date, due_date, currency, tax_regime,
  subtotal, cgst, sgst, igst, other_tax, total, amount_in_words)
SELECT c.id, 'B' || c.id || '-' || k, 'overdue', DATE '{today}' - 40 - k,
  DATE '{today}' - 10 - k, 'INR', 'intra', 1000 + k, 0, 0, 0, 0, 1000 + k, 'words'
FROM {s}.clients c, generate_series(1, {per_client}) k;
ANALYZE {s}.invoices; ANALYZE {s}.clients; ANALYZE {s}.client_contacts;
"""

# The same rules as the engine, written once as set-based SQL for this benchmark's data (one
# policy, grouping per client, automatic sending off).
BASELINE_SQL = """
WITH owing AS (
  SELECT i.id, i.client_id, i.currency, i.due_date,
         i.total - coalesce((SELECT sum(a.amount + a.tds_amount) FROM {s}.payment_allocations a
                             WHERE a.invoice_id = i.id AND a.removed_at IS NULL), 0)
                 - coalesce((SELECT sum(cn.total) FROM {s}.credit_notes cn
                             WHERE cn.invoice_id = i.id), 0)
                 - coalesce(i.written_off_amount, 0) AS owing,
         coalesce((SELECT max(ni.level_number) FROM {s}.collection_notice_invoices ni
                   WHERE ni.invoice_id = i.id), 0) AS rung
  FROM {s}.invoices i JOIN {s}.clients c ON c.id = i.client_id
  WHERE i.status IN ('issued', 'sent', 'overdue', 'partly_paid') AND c.deleted_at IS NULL
    AND c.status <> 'on_hold'
), due AS (
  SELECT o.*, l.id AS level_id, l.position, l.name, l.channels, l.trigger_days, l.fee_amount,
         l.policy_id
  FROM owing o
  JOIN {s}.collection_policies p ON p.is_default AND p.deleted_at IS NULL
  JOIN {s}.collection_levels l ON l.policy_id = p.id AND l.position = o.rung + 1
  CROSS JOIN {s}.collection_settings st
  WHERE o.owing >= st.tolerance_amount AND l.trigger = 'after_due'
    AND DATE '{today}' >= o.due_date + l.trigger_days
    AND NOT EXISTS (SELECT 1 FROM {s}.disputes d WHERE d.invoice_id = o.id AND d.status = 'open')
    AND NOT EXISTS (SELECT 1 FROM {s}.collection_holds h WHERE h.client_id = o.client_id
                    AND (h.invoice_id IS NULL OR h.invoice_id = o.id) AND h.released_at IS NULL
                    AND h.starts_on <= DATE '{today}'
                    AND (h.ends_on IS NULL OR h.ends_on >= DATE '{today}'))
    AND NOT EXISTS (SELECT 1 FROM {s}.promises_to_pay pp WHERE pp.client_id = o.client_id
                    AND pp.status = 'open' AND pp.promised_on >= DATE '{today}'
                    AND (cardinality(pp.invoice_ids) = 0 OR o.id = ANY (pp.invoice_ids)))
    AND NOT EXISTS (SELECT 1 FROM {s}.collection_notices n WHERE n.client_id = o.client_id
                    AND n.status <> 'cancelled'
                    AND n.run_date > DATE '{today}' - l.min_gap_days)
), reach AS (
  SELECT DISTINCT ON (ct.client_id, ch.channel) ct.client_id, ch.channel, ct.id AS contact_id
  FROM {s}.client_contacts ct
  CROSS JOIN (VALUES ('email'), ('whatsapp'), ('sms')) ch(channel)
  WHERE ct.deleted_at IS NULL AND ct.client_id IN (SELECT client_id FROM due)
    AND CASE ch.channel
          WHEN 'email' THEN ct.email IS NOT NULL AND ct.email_bounced_at IS NULL
                            AND ct.email_consent IS DISTINCT FROM 'opted_out'
          WHEN 'whatsapp' THEN ct.phone IS NOT NULL AND ct.whatsapp_consent = 'opted_in'
          ELSE ct.phone IS NOT NULL AND ct.sms_consent = 'opted_in' END
  ORDER BY ct.client_id, ch.channel, NOT ('billing' = ANY (ct.roles)),
           NOT ('primary' = ANY (ct.roles)), ct.id
), lines AS (
  SELECT due.*, ch.channel, r.contact_id FROM due
  CROSS JOIN LATERAL unnest(due.channels) ch(channel)
  JOIN reach r ON r.client_id = due.client_id AND r.channel = ch.channel
), made AS (
  INSERT INTO {s}.collection_notices (client_id, policy_id, level_id, level_number, level_name,
    channel, currency, grouping, status, run_date, reason, amount_due, fee_amount, contact_id)
  SELECT client_id, policy_id, level_id, position, name, channel, currency, 'client', 'draft',
    DATE '{today}', format('%s days after due (%s)', trigger_days, min(due_date)), sum(owing),
    coalesce(fee_amount, 0), contact_id
  FROM lines GROUP BY client_id, policy_id, level_id, position, name, channel, currency,
    trigger_days, fee_amount, contact_id
  RETURNING id, client_id, level_id, channel, currency
)
INSERT INTO {s}.collection_notice_invoices (notice_id, invoice_id, level_number, channel,
  amount_due, days_overdue)
SELECT made.id, lines.id, lines.position, lines.channel, lines.owing,
  DATE '{today}' - lines.due_date
FROM lines JOIN made ON made.client_id = lines.client_id AND made.level_id = lines.level_id
  AND made.channel = lines.channel AND made.currency = lines.currency
ON CONFLICT (invoice_id, level_number, channel) DO NOTHING
"""

CLEAR_SQL = """
DELETE FROM {s}.collection_notice_invoices; DELETE FROM {s}.collection_notices;
DELETE FROM {s}.collection_runs; DELETE FROM {s}.audit_log;
UPDATE {s}.collection_settings SET last_run_on = NULL;
"""

FINGERPRINT_SQL = """
SELECT n.client_id, n.level_number, n.channel, n.currency, n.amount_due, n.status, n.contact_id,
       count(ni.id) AS items, sum(ni.amount_due) AS items_amount
FROM {s}.collection_notices n JOIN {s}.collection_notice_invoices ni ON ni.notice_id = n.id
GROUP BY n.id ORDER BY n.client_id, n.channel
"""


def _sql(statement: str, tenant_id: int) -> str:
    return statement.format(
        s=quoted_schema(schema_for_tenant_id(tenant_id)),
        today=TODAY.isoformat(),
        clients=CLIENTS,
        per_client=INVOICES_PER_CLIENT,
    )


def _provision(app) -> list[int]:
    ids = []
    with app.app_context():
        for number in range(TENANTS):
            with db.engine.begin() as conn:
                tenant_id = conn.execute(
                    text(
                        "INSERT INTO public.tenants (slug, name, country, region, time_zone,"
                        " currency) VALUES (:slug, :name, 'IN', '27', 'Asia/Kolkata', 'INR')"
                        " RETURNING id"
                    ),
                    {"slug": f"bench-coll-{number}", "name": f"Bench {number}"},
                ).scalar_one()
                provision_schema(conn, schema_for_tenant_id(tenant_id))
                conn.exec_driver_sql(_sql(SEED_SQL, tenant_id))
            ids.append(tenant_id)
    return ids


def _each_tenant(app, tenant_ids: list[int], work) -> list:
    """`work(session, tenant)` for each tenant in a session of its own, committed."""
    results = []
    with app.app_context():
        for tenant_id in tenant_ids:
            with TenantSession(db, bind=db.engine) as session:
                bind_tenant(session, tenant_id)
                tenant = session.get(Tenant, tenant_id)
                results.append(work(session, tenant))
                session.commit()
    return results


def _raw(app, tenant_ids: list[int], statement: str, fetch: bool = False) -> list:
    results = []
    with app.app_context(), db.engine.connect() as conn:
        for tenant_id in tenant_ids:
            with conn.begin():
                result = conn.exec_driver_sql(_sql(statement, tenant_id))
                results.append(result.all() if fetch else None)
    return results


def _product(session, tenant) -> int:
    return engine.run(session, tenant, today=TODAY).notices_created


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(
        f"collections_run: the daily run over {TENANTS} tenants x "
        f"{CLIENTS * INVOICES_PER_CLIENT:,} overdue invoices",
        MEASURES,
    )
    with environment.app() as app:
        with Stopwatch() as setup:
            tenant_ids = _provision(app)
        print_figure("set-up (schemas + data)", f"{setup.seconds:6.1f} s for {TENANTS} tenants")
        # A first pass of each over a few tenants warms the process (compiled statements,
        # imports) and the database (plans), within the time a bench may take.
        warm = tenant_ids[:WARM_UP_TENANTS]
        _raw(app, warm, BASELINE_SQL)
        _raw(app, warm, CLEAR_SQL)
        _each_tenant(app, warm, _product)
        _raw(app, warm, CLEAR_SQL)

        with Stopwatch() as baseline:
            _raw(app, tenant_ids, BASELINE_SQL)
        expected = _raw(app, tenant_ids, FINGERPRINT_SQL, fetch=True)
        _raw(app, tenant_ids, CLEAR_SQL)
        with Stopwatch() as product:
            created = _each_tenant(app, tenant_ids, _product)
        made = _raw(app, tenant_ids, FINGERPRINT_SQL, fetch=True)
        if made != expected:
            raise RuntimeError("the product's notices differ from the baseline's")
        with Stopwatch() as again:
            second = _each_tenant(app, tenant_ids, _product)

    notices = sum(created)
    items = sum(row.items for rows in made for row in rows)
    print_figure(
        "product  engine.run",
        f"{product.seconds:6.2f} s  ({notices:,} notices, {items:,} items, same as the baseline's)",
    )
    print_figure("baseline INSERT ... SELECT", f"{baseline.seconds:6.2f} s")
    print_figure("second product run", f"{again.seconds:6.2f} s, created {sum(second)} notices")
    verdict = Verdict("collections_run (100 tenants)", product.seconds, baseline.seconds, MAX_RATIO)
    print_verdict(verdict)
    if sum(second):
        raise RuntimeError(f"the second run created {sum(second)} notices")
    return [verdict]
