"""The aging report's rows kept: one per client and currency owing anything (issue 17)

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-05 09:00:00

The report counts its rows (client and currency) up to 10,000 on every view. Counted from the
summary (a row per bucket), that grouped some 20,000 index entries: ~6 ms at 100,000 clients.
aging_client_rows holds one row per client and currency with how many summary rows (buckets)
it has, kept by the summary's trigger as those rows come and go (the client's row, as
contended as the summary's own), so the count reads at most 10,001 rows and groups nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None

# aging_summary_changed as revision 0022 wrote it, and with the rows kept. A summary row is
# deleted once its count reaches 0 (amount and count unchanged by the delete): the rows are
# kept before the function returns early on "nothing changed".
BODY = """
CREATE OR REPLACE FUNCTION aging_summary_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    row_ aging_summary;
    d_amount numeric;
    d_count integer;
    left_rows integer;
BEGIN
    IF TG_OP = 'INSERT' THEN
        row_ := NEW; d_amount := NEW.amount; d_count := NEW.invoice_count;
    ELSIF TG_OP = 'DELETE' THEN
        row_ := OLD; d_amount := -OLD.amount; d_count := -OLD.invoice_count;
    ELSE
        row_ := NEW; d_amount := NEW.amount - OLD.amount;
        d_count := NEW.invoice_count - OLD.invoice_count;
    END IF;
    {rows}
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
"""
KEEP_ROWS = """IF TG_OP = 'INSERT' THEN
        INSERT INTO aging_client_rows AS r (client_id, currency, bucket_rows)
        VALUES (NEW.client_id, NEW.currency, 1)
        ON CONFLICT (client_id, currency) DO UPDATE SET bucket_rows = r.bucket_rows + 1;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE aging_client_rows SET bucket_rows = bucket_rows - 1
         WHERE client_id = OLD.client_id AND currency = OLD.currency
        RETURNING bucket_rows INTO left_rows;
        IF left_rows = 0 THEN
            DELETE FROM aging_client_rows
             WHERE client_id = OLD.client_id AND currency = OLD.currency;
        END IF;
    END IF;"""


def upgrade() -> None:
    op.create_table(
        "aging_client_rows",
        sa.Column("client_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("bucket_rows", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "currency", name=op.f("pk_aging_client_rows")),
    )
    op.execute(BODY.replace("{rows}", KEEP_ROWS))
    op.execute(
        "INSERT INTO aging_client_rows (client_id, currency, bucket_rows) "
        "SELECT client_id, currency, count(*) FROM aging_summary GROUP BY client_id, currency"
    )


def downgrade() -> None:
    op.execute(BODY.replace("{rows}", ""))
    op.drop_table("aging_client_rows")
