"""totals for the dashboard: aging per currency and bucket, per client past due, cash per day;
an index for a collector's overdue clients

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 03:00:00

The dashboard summed the aging summary (a row per client, currency and bucket) on every
visit. A trigger on the summary now keeps, as it changes:
- aging_total_changes: each change's amount and count per currency and bucket, appended
  (never an update of a shared row: writers to different clients' invoices do not wait on
  each other); `aging_fold_totals` folds them into aging_totals when nothing writes (a roll
  or a rebuild holds the state row), so the totals are aging_totals plus the changes since.
- aging_client_overdue: per client and currency, the past-due buckets added up (the row of
  the client the summary row belongs to, as contended as the summary itself), indexed by
  amount for "the clients owing most past due".
ix_invoices_owing_client_due: a collector's clients with an owing invoice past due, one index
probe per client.
payment_days: live cash per day received and currency, kept by statement-level triggers on
payments (one grouped upsert per statement, in day order; a day's row is shared by that day's
payments as aging_sales' is by that day's invoices); the dashboard's cash of two months adds
up some sixty rows instead of every payment.
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

OWING = "('issued', 'sent', 'overdue', 'partly_paid', 'disputed')"

FUNCTIONS = [
    """
CREATE FUNCTION aging_add_client_overdue(p_client bigint, p_currency varchar,
                                         p_amount numeric, p_count integer) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    left_count integer;
BEGIN
    INSERT INTO aging_client_overdue AS o (client_id, currency, amount, invoice_count)
    VALUES (p_client, p_currency, p_amount, p_count)
    ON CONFLICT (client_id, currency) DO UPDATE
        SET amount = o.amount + EXCLUDED.amount,
            invoice_count = o.invoice_count + EXCLUDED.invoice_count
    RETURNING o.invoice_count INTO left_count;
    IF left_count = 0 THEN
        DELETE FROM aging_client_overdue WHERE client_id = p_client AND currency = p_currency;
    END IF;
END
$fn$
""",
    # A row's change of amount and count: its key never changes (the summary is written by
    # upsert on it), so an update is one difference.
    """
CREATE FUNCTION aging_summary_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    row_ aging_summary;
    d_amount numeric;
    d_count integer;
BEGIN
    IF TG_OP = 'INSERT' THEN
        row_ := NEW; d_amount := NEW.amount; d_count := NEW.invoice_count;
    ELSIF TG_OP = 'DELETE' THEN
        row_ := OLD; d_amount := -OLD.amount; d_count := -OLD.invoice_count;
    ELSE
        row_ := NEW; d_amount := NEW.amount - OLD.amount;
        d_count := NEW.invoice_count - OLD.invoice_count;
    END IF;
    IF d_amount = 0 AND d_count = 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO aging_total_changes (currency, bucket, amount, invoice_count)
    VALUES (row_.currency, row_.bucket, d_amount, d_count);
    IF row_.bucket >= 1 THEN
        PERFORM aging_add_client_overdue(row_.client_id, row_.currency, d_amount, d_count);
    END IF;
    RETURN NULL;
END
$fn$
""",
    # Each change as arrays of day, currency, amount and count (+1 a live payment in, -1 out).
    """
CREATE FUNCTION payment_days_add(p_days date[], p_currencies varchar[], p_amounts numeric[],
                                 p_counts integer[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    INSERT INTO payment_days AS d (received_on, currency, amount, payment_count)
    SELECT c.day, c.currency, sum(c.amount), sum(c.n)
      FROM unnest(p_days, p_currencies, p_amounts, p_counts) AS c(day, currency, amount, n)
     GROUP BY c.day, c.currency
    HAVING sum(c.n) <> 0 OR sum(c.amount) <> 0
     ORDER BY c.day, c.currency
    ON CONFLICT (received_on, currency) DO UPDATE
        SET amount = d.amount + EXCLUDED.amount,
            payment_count = d.payment_count + EXCLUDED.payment_count;
    DELETE FROM payment_days d
     USING unnest(p_days, p_currencies) AS c(day, currency)
     WHERE d.received_on = c.day AND d.currency = c.currency AND d.payment_count = 0;
END
$fn$
""",
    """
CREATE FUNCTION payments_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM payment_days_add(array_agg(received_on), array_agg(currency),
                                 array_agg(amount), array_agg(1))
           FROM new_rows WHERE voided_at IS NULL;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM payment_days_add(array_agg(received_on), array_agg(currency),
                                 array_agg(-amount), array_agg(-1))
           FROM old_rows WHERE voided_at IS NULL;
    ELSE
        PERFORM payment_days_add(array_agg(received_on), array_agg(currency),
                                 array_agg(amount), array_agg(n))
           FROM (SELECT received_on, currency, -amount AS amount, -1 AS n
                   FROM old_rows WHERE voided_at IS NULL
                 UNION ALL
                 SELECT received_on, currency, amount, 1 FROM new_rows
                  WHERE voided_at IS NULL) AS c;
    END IF;
    RETURN NULL;
END
$fn$
""",
    # Called by a roll or a rebuild, which hold the state row: no writer is in flight.
    """
CREATE FUNCTION aging_fold_totals() RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    PERFORM 1 FROM aging_state WHERE id = 1 FOR UPDATE;
    DELETE FROM aging_total_changes;
    DELETE FROM aging_totals;
    INSERT INTO aging_totals (currency, bucket, amount, invoice_count)
    SELECT currency, bucket, sum(amount), sum(invoice_count)
      FROM aging_summary GROUP BY currency, bucket;
END
$fn$
""",
]

TRIGGERS = [
    """
CREATE TRIGGER aging_summary_totals
AFTER INSERT OR DELETE OR UPDATE ON aging_summary
FOR EACH ROW EXECUTE FUNCTION aging_summary_changed()
""",
    # A trigger with transition tables has one event: three of them.
    """
CREATE TRIGGER payment_days_inserted AFTER INSERT ON payments
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION payments_changed()
""",
    """
CREATE TRIGGER payment_days_deleted AFTER DELETE ON payments
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION payments_changed()
""",
    """
CREATE TRIGGER payment_days_updated AFTER UPDATE ON payments
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION payments_changed()
""",
]


def upgrade() -> None:
    op.create_table(
        "aging_totals",
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("invoice_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("currency", "bucket", name=op.f("pk_aging_totals")),
    )
    op.create_table(
        "aging_total_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("invoice_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aging_total_changes")),
    )
    op.create_table(
        "aging_client_overdue",
        sa.Column("client_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("invoice_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "currency", name=op.f("pk_aging_client_overdue")),
    )
    op.create_index(
        "ix_aging_client_overdue_rank",
        "aging_client_overdue",
        ["currency", sa.text("amount DESC"), "client_id"],
        unique=False,
    )
    op.create_table(
        "payment_days",
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("payment_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("received_on", "currency", name=op.f("pk_payment_days")),
    )
    op.create_index(
        "ix_invoices_owing_client_due",
        "invoices",
        ["client_id", "due_date"],
        unique=False,
        postgresql_where=sa.text(f"status IN {OWING}"),
    )
    for statement in FUNCTIONS + TRIGGERS:
        op.execute(statement)
    op.execute(
        "INSERT INTO payment_days (received_on, currency, amount, payment_count) "
        "SELECT received_on, currency, sum(amount), count(*) FROM payments "
        "WHERE voided_at IS NULL GROUP BY received_on, currency"
    )
    op.execute(
        "INSERT INTO aging_client_overdue (client_id, currency, amount, invoice_count) "
        "SELECT client_id, currency, sum(amount), sum(invoice_count) FROM aging_summary "
        "WHERE bucket >= 1 GROUP BY client_id, currency"
    )
    op.execute("SELECT aging_fold_totals()")


def downgrade() -> None:
    op.execute("DROP TRIGGER payment_days_updated ON payments")
    op.execute("DROP TRIGGER payment_days_deleted ON payments")
    op.execute("DROP TRIGGER payment_days_inserted ON payments")
    op.execute("DROP TRIGGER aging_summary_totals ON aging_summary")
    op.execute("DROP FUNCTION aging_fold_totals()")
    op.execute("DROP FUNCTION aging_summary_changed()")
    op.execute("DROP FUNCTION payments_changed()")
    op.execute("DROP FUNCTION payment_days_add(date[], varchar[], numeric[], integer[])")
    op.execute("DROP FUNCTION aging_add_client_overdue(bigint, varchar, numeric, integer)")
    op.drop_index("ix_invoices_owing_client_due", table_name="invoices")
    op.drop_index("ix_aging_client_overdue_rank", table_name="aging_client_overdue")
    op.drop_table("payment_days")
    op.drop_table("aging_client_overdue")
    op.drop_table("aging_total_changes")
    op.drop_table("aging_totals")
