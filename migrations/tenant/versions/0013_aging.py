"""aging: entries, sums per client/currency/bucket, credit sales per day, snapshots, kept by
triggers on invoices, payment allocations and credit notes

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22 12:00:00

The functions carry `SET search_path FROM CURRENT`: the migration runs with the tenant schema
on the search path, so each schema's functions and triggers find that schema's tables at run
time, while the application binds schemas by schema_translate_map (never search_path).

What an invoice owes (the same rule as app.invoicing.balance.outstanding): total - live
allocations (cash + TDS) - credit notes - written off; only invoices in an owing status
(issued, sent, overdue, partly paid, disputed) with something left are aged.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

OWING = "('issued', 'sent', 'overdue', 'partly_paid', 'disputed')"

FUNCTIONS = [
    # Bucket of an invoice `days` past its basis date: 0 = current (not past it), then one per
    # boundary (1-30, 31-60, 61-90 for 30,60,90), the last open-ended (90+).
    """
CREATE FUNCTION aging_bucket(days integer, bounds smallint[]) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT CASE WHEN days <= 0 THEN 0
                ELSE 1 + (SELECT count(*) FROM unnest(bounds) AS b WHERE b < days) END::smallint
$fn$
""",
    """
CREATE FUNCTION aging_add(p_client bigint, p_currency varchar, p_bucket smallint,
                          p_amount numeric, p_count integer) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    left_count integer;
BEGIN
    INSERT INTO aging_summary AS s (client_id, currency, bucket, amount, invoice_count)
    VALUES (p_client, p_currency, p_bucket, p_amount, p_count)
    ON CONFLICT (client_id, currency, bucket) DO UPDATE
        SET amount = s.amount + EXCLUDED.amount,
            invoice_count = s.invoice_count + EXCLUDED.invoice_count
    RETURNING s.invoice_count INTO left_count;
    IF left_count = 0 THEN
        DELETE FROM aging_summary
         WHERE client_id = p_client AND currency = p_currency AND bucket = p_bucket;
    END IF;
END
$fn$
""",
    """
CREATE FUNCTION aging_add_sale(p_day date, p_currency varchar, p_amount numeric,
                               p_count integer) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    left_count integer;
BEGIN
    INSERT INTO aging_sales AS s (sale_date, currency, amount, invoice_count)
    VALUES (p_day, p_currency, p_amount, p_count)
    ON CONFLICT (sale_date, currency) DO UPDATE
        SET amount = s.amount + EXCLUDED.amount,
            invoice_count = s.invoice_count + EXCLUDED.invoice_count
    RETURNING s.invoice_count INTO left_count;
    IF left_count = 0 THEN
        DELETE FROM aging_sales WHERE sale_date = p_day AND currency = p_currency;
    END IF;
END
$fn$
""",
    # The entry of one invoice recomputed from the base tables, and the sums moved by the
    # difference. The invoice row is locked (as payments and credit notes lock it) so that two
    # writers of one invoice take turns; the state row is share-locked so that a roll waits for
    # writers in flight and writers wait for a roll.
    f"""
CREATE FUNCTION aging_refresh_invoice(p_invoice bigint) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    st record;
    old_entry record;
    had_entry boolean;
    inv record;
    new_amount numeric(18, 2);
    new_basis date;
    new_bucket smallint;
BEGIN
    SELECT * INTO st FROM aging_state WHERE id = 1 FOR SHARE;
    SELECT id, client_id, currency, status, total, written_off_amount, due_date, issue_date
      INTO inv FROM invoices WHERE id = p_invoice FOR NO KEY UPDATE;
    IF FOUND AND inv.status IN {OWING} THEN
        new_basis := CASE WHEN st.basis = 'issue_date' THEN coalesce(inv.issue_date, inv.due_date)
                          ELSE coalesce(inv.due_date, inv.issue_date) END;
        new_amount := inv.total - coalesce(inv.written_off_amount, 0)
            - coalesce((SELECT sum(a.amount + a.tds_amount) FROM payment_allocations a
                         WHERE a.invoice_id = p_invoice AND a.removed_at IS NULL), 0)
            - coalesce((SELECT sum(c.total) FROM credit_notes c
                         WHERE c.invoice_id = p_invoice), 0);
        IF new_amount <= 0 OR new_basis IS NULL THEN
            new_amount := NULL;
        ELSE
            new_bucket := aging_bucket(st.as_of - new_basis, st.buckets);
        END IF;
    END IF;
    SELECT * INTO old_entry FROM aging_entries WHERE invoice_id = p_invoice FOR UPDATE;
    had_entry := FOUND;
    IF had_entry THEN
        -- (nested: `inv` has no fields when the invoice is gone)
        IF new_amount IS NOT NULL THEN
            IF old_entry.amount = new_amount AND old_entry.client_id = inv.client_id
               AND old_entry.currency = inv.currency AND old_entry.basis_date = new_basis
               AND old_entry.bucket = new_bucket
               AND old_entry.due_date IS NOT DISTINCT FROM inv.due_date
               AND old_entry.issue_date IS NOT DISTINCT FROM inv.issue_date THEN
                RETURN;
            END IF;
        END IF;
        PERFORM aging_add(old_entry.client_id, old_entry.currency, old_entry.bucket,
                          -old_entry.amount, -1);
    END IF;
    IF new_amount IS NULL THEN
        IF had_entry THEN
            DELETE FROM aging_entries WHERE invoice_id = p_invoice;
        END IF;
        RETURN;
    END IF;
    INSERT INTO aging_entries (invoice_id, client_id, currency, due_date, issue_date,
                               basis_date, amount, bucket)
    VALUES (p_invoice, inv.client_id, inv.currency, inv.due_date, inv.issue_date, new_basis,
            new_amount, new_bucket)
    ON CONFLICT (invoice_id) DO UPDATE
        SET client_id = EXCLUDED.client_id, currency = EXCLUDED.currency,
            due_date = EXCLUDED.due_date, issue_date = EXCLUDED.issue_date,
            basis_date = EXCLUDED.basis_date, amount = EXCLUDED.amount,
            bucket = EXCLUDED.bucket;
    PERFORM aging_add(inv.client_id, inv.currency, new_bucket, new_amount, 1);
END
$fn$
""",
    # Credit sales count an invoice from its issue on, at its issue date, until it is voided.
    """
CREATE FUNCTION aging_invoices_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    old_sale boolean := TG_OP <> 'INSERT' AND OLD.status NOT IN ('draft', 'void')
                        AND OLD.issue_date IS NOT NULL;
    new_sale boolean := TG_OP <> 'DELETE' AND NEW.status NOT IN ('draft', 'void')
                        AND NEW.issue_date IS NOT NULL;
BEGIN
    IF TG_OP = 'UPDATE' AND old_sale AND new_sale AND OLD.issue_date = NEW.issue_date
       AND OLD.currency = NEW.currency AND OLD.total = NEW.total THEN
        NULL;  -- the same sale: leave the day's row alone (no contention on it)
    ELSE
        IF old_sale THEN
            PERFORM aging_add_sale(OLD.issue_date, OLD.currency, -OLD.total, -1);
        END IF;
        IF new_sale THEN
            PERFORM aging_add_sale(NEW.issue_date, NEW.currency, NEW.total, 1);
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM aging_refresh_invoice(OLD.id);
    ELSE
        PERFORM aging_refresh_invoice(NEW.id);
    END IF;
    RETURN NULL;
END
$fn$
""",
    """
CREATE FUNCTION aging_invoice_parts_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM aging_refresh_invoice(OLD.invoice_id);
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.invoice_id <> OLD.invoice_id) THEN
        PERFORM aging_refresh_invoice(NEW.invoice_id);
    END IF;
    RETURN NULL;
END
$fn$
""",
    # Age the entries to `p_today`: only entries whose basis date lies where a boundary is
    # crossed between as_of and p_today can change bucket, i.e. for each boundary k (0 and the
    # bucket bounds) basis dates in [min - k, max - k) of the two days. A long gap ages all.
    """
CREATE FUNCTION aging_roll(p_today date) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    st record;
    lo date;
    hi date;
    k integer;
    thresholds integer[];
    moved integer := 0;
    moved_now integer;
BEGIN
    SELECT * INTO st FROM aging_state WHERE id = 1 FOR UPDATE;
    IF st.as_of = p_today THEN
        RETURN 0;
    END IF;
    lo := least(st.as_of, p_today);
    hi := greatest(st.as_of, p_today);
    thresholds := array_prepend(0, st.buckets::integer[]);
    IF (hi - lo) * cardinality(thresholds) > 400 THEN
        SELECT min(basis_date), max(basis_date) + 1 INTO lo, hi FROM aging_entries;
        thresholds := ARRAY[0];
    END IF;
    IF lo IS NOT NULL THEN
        FOREACH k IN ARRAY thresholds LOOP
            WITH candidates AS (
                SELECT invoice_id, client_id, currency, amount, bucket AS old_bucket,
                       aging_bucket(p_today - basis_date, st.buckets) AS new_bucket
                  FROM aging_entries
                 WHERE basis_date >= lo - k AND basis_date < hi - k
            ), moved_entries AS (
                UPDATE aging_entries e SET bucket = c.new_bucket
                  FROM candidates c
                 WHERE e.invoice_id = c.invoice_id AND c.old_bucket <> c.new_bucket
                RETURNING c.client_id, c.currency, c.amount, c.old_bucket, c.new_bucket
            ), deltas AS (
                SELECT client_id, currency, old_bucket AS bucket, -amount AS amount, -1 AS n
                  FROM moved_entries
                UNION ALL
                SELECT client_id, currency, new_bucket, amount, 1 FROM moved_entries
            ), summed AS (
                INSERT INTO aging_summary AS s (client_id, currency, bucket, amount,
                                                invoice_count)
                SELECT client_id, currency, bucket, sum(amount), sum(n)
                  FROM deltas GROUP BY client_id, currency, bucket
                ON CONFLICT (client_id, currency, bucket) DO UPDATE
                    SET amount = s.amount + EXCLUDED.amount,
                        invoice_count = s.invoice_count + EXCLUDED.invoice_count
                RETURNING 1
            )
            SELECT count(*) INTO moved_now FROM moved_entries;
            moved := moved + moved_now;
        END LOOP;
        DELETE FROM aging_summary WHERE invoice_count = 0;
    END IF;
    UPDATE aging_state SET as_of = p_today WHERE id = 1;
    RETURN moved;
END
$fn$
""",
    # Everything again from the base tables, aged to `p_today` on a basis and boundaries:
    # after a change of settings, after a bulk load with the triggers off, and at migration.
    f"""
CREATE FUNCTION aging_rebuild(p_today date, p_basis varchar, p_buckets smallint[])
RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    PERFORM 1 FROM aging_state WHERE id = 1 FOR UPDATE;
    UPDATE aging_state SET as_of = p_today, basis = p_basis, buckets = p_buckets,
                           rebuilt_at = now() WHERE id = 1;
    DELETE FROM aging_entries;
    DELETE FROM aging_summary;
    DELETE FROM aging_sales;
    INSERT INTO aging_entries (invoice_id, client_id, currency, due_date, issue_date,
                               basis_date, amount, bucket)
    SELECT o.id, o.client_id, o.currency, o.due_date, o.issue_date, o.basis_date, o.amount,
           aging_bucket(p_today - o.basis_date, p_buckets)
      FROM (SELECT i.id, i.client_id, i.currency, i.due_date, i.issue_date,
                   CASE WHEN p_basis = 'issue_date' THEN coalesce(i.issue_date, i.due_date)
                        ELSE coalesce(i.due_date, i.issue_date) END AS basis_date,
                   i.total - coalesce(i.written_off_amount, 0)
                       - coalesce(a.applied, 0) - coalesce(c.credited, 0) AS amount
              FROM invoices i
              LEFT JOIN (SELECT invoice_id, sum(amount + tds_amount) AS applied
                           FROM payment_allocations WHERE removed_at IS NULL
                          GROUP BY invoice_id) a ON a.invoice_id = i.id
              LEFT JOIN (SELECT invoice_id, sum(total) AS credited FROM credit_notes
                          GROUP BY invoice_id) c ON c.invoice_id = i.id
             WHERE i.status IN {OWING}) o
     WHERE o.amount > 0 AND o.basis_date IS NOT NULL;
    INSERT INTO aging_summary (client_id, currency, bucket, amount, invoice_count)
    SELECT client_id, currency, bucket, sum(amount), count(*)
      FROM aging_entries GROUP BY client_id, currency, bucket;
    INSERT INTO aging_sales (sale_date, currency, amount, invoice_count)
    SELECT issue_date, currency, sum(total), count(*) FROM invoices
     WHERE status NOT IN ('draft', 'void') AND issue_date IS NOT NULL
     GROUP BY issue_date, currency;
END
$fn$
""",
]

TRIGGERS = [
    """
CREATE TRIGGER aging_invoices
AFTER INSERT OR DELETE OR UPDATE OF status, total, written_off_amount, due_date, issue_date,
    client_id, currency ON invoices
FOR EACH ROW EXECUTE FUNCTION aging_invoices_changed()
""",
    """
CREATE TRIGGER aging_payment_allocations
AFTER INSERT OR DELETE OR UPDATE OF amount, tds_amount, removed_at, invoice_id
    ON payment_allocations
FOR EACH ROW EXECUTE FUNCTION aging_invoice_parts_changed()
""",
    """
CREATE TRIGGER aging_credit_notes
AFTER INSERT OR DELETE OR UPDATE OF total, invoice_id ON credit_notes
FOR EACH ROW EXECUTE FUNCTION aging_invoice_parts_changed()
""",
]


def upgrade() -> None:
    op.create_table(
        "aging_entries",
        sa.Column("invoice_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("basis_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_aging_entries_amount_positive")),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_aging_entries")),
    )
    op.create_index(
        op.f("ix_aging_entries_basis_date"), "aging_entries", ["basis_date"], unique=False
    )
    op.create_index(
        "ix_aging_entries_client_bucket", "aging_entries", ["client_id", "bucket"], unique=False
    )
    op.create_table(
        "aging_sales",
        sa.Column("sale_date", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("invoice_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("sale_date", "currency", name=op.f("pk_aging_sales")),
    )
    op.create_table(
        "aging_snapshots",
        sa.Column("snapshot_on", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("buckets", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("amounts", postgresql.ARRAY(sa.Numeric(precision=18, scale=2)), nullable=False),
        sa.Column("outstanding", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("overdue", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("credit_sales_90", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("dso", sa.Numeric(precision=8, scale=1), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("snapshot_on", "currency", name=op.f("pk_aging_snapshots")),
    )
    op.create_table(
        "aging_state",
        sa.Column("id", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("basis", sa.String(length=16), server_default="due_date", nullable=False),
        sa.Column(
            "buckets",
            postgresql.ARRAY(sa.SmallInteger()),
            server_default=sa.text("'{30,60,90}'"),
            nullable=False,
        ),
        sa.Column(
            "rebuilt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_aging_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aging_state")),
    )
    op.create_table(
        "aging_summary",
        sa.Column("client_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("invoice_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "currency", "bucket", name=op.f("pk_aging_summary")),
    )
    for statement in FUNCTIONS + TRIGGERS:
        op.execute(statement)
    # Built once from what the schema holds, aged to the server's date: the first page view or
    # the daily job rolls it to the tenant's own date.
    op.execute("INSERT INTO aging_state (id, as_of) VALUES (1, CURRENT_DATE)")
    op.execute(
        "SELECT aging_rebuild(CURRENT_DATE, s.aging_basis, s.aging_buckets) "
        "FROM collection_settings s WHERE s.id = 1"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER aging_credit_notes ON credit_notes")
    op.execute("DROP TRIGGER aging_payment_allocations ON payment_allocations")
    op.execute("DROP TRIGGER aging_invoices ON invoices")
    op.execute("DROP FUNCTION aging_rebuild(date, varchar, smallint[])")
    op.execute("DROP FUNCTION aging_roll(date)")
    op.execute("DROP FUNCTION aging_invoice_parts_changed()")
    op.execute("DROP FUNCTION aging_invoices_changed()")
    op.execute("DROP FUNCTION aging_refresh_invoice(bigint)")
    op.execute("DROP FUNCTION aging_add_sale(date, varchar, numeric, integer)")
    op.execute("DROP FUNCTION aging_add(bigint, varchar, smallint, numeric, integer)")
    op.execute("DROP FUNCTION aging_bucket(integer, smallint[])")
    op.drop_table("aging_summary")
    op.drop_table("aging_state")
    op.drop_table("aging_snapshots")
    op.drop_table("aging_sales")
    op.drop_index("ix_aging_entries_client_bucket", table_name="aging_entries")
    op.drop_index(op.f("ix_aging_entries_basis_date"), table_name="aging_entries")
    op.drop_table("aging_entries")
