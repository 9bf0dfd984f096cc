"""New invoices aged once per statement, not once per row (issue 20's pull)

Revision ID: 0046
Revises: 0045
Create Date: 2026-12-05 14:10:00

0013's row trigger on invoices refreshes one invoice's aging at a time: for each new invoice
its day's credit sales upserted, the state row share-locked, the invoice re-read and locked, its
allocations and credit notes summed, its entry looked up and inserted, its client's summary row
upserted (and with it, by 0022/0034's trigger, a change row, the client's rows and overdue
upserted). A sync's first page of 1,700 invoices from Tally paid all of that 1,700 times inside
one INSERT, the largest part of the pull's time in PostgreSQL.

Inserts now have a statement-level trigger of their own reading the statement's new rows (a
transition table): one grouped upsert of the credit sales per day and currency, one INSERT of
the entries, one grouped upsert of the summary per client, currency and bucket (its row
trigger then fires once per summary row, not once per invoice), all in key order as the roll
writes them. A new invoice has no allocations or credit notes yet (both reference it), so what
it owes is its total less any write-off, as aging_refresh_invoice computes it. Updates and
deletes keep the row trigger: they change a few invoices at a time, each against what it had.
"""

from alembic import op

revision = "0046"
down_revision = "0045"
branch_labels = None
depends_on = None

OWING = "('issued', 'sent', 'overdue', 'partly_paid', 'disputed')"

INSERTED = f"""
CREATE FUNCTION aging_invoices_inserted() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    st record;
BEGIN
    INSERT INTO aging_sales AS s (sale_date, currency, amount, invoice_count)
    SELECT issue_date, currency, sum(total), count(*) FROM new_rows
     WHERE status NOT IN ('draft', 'void') AND issue_date IS NOT NULL
     GROUP BY issue_date, currency ORDER BY issue_date, currency
    ON CONFLICT (sale_date, currency) DO UPDATE
        SET amount = s.amount + EXCLUDED.amount,
            invoice_count = s.invoice_count + EXCLUDED.invoice_count;
    SELECT * INTO st FROM aging_state WHERE id = 1 FOR SHARE;
    WITH owed AS (
        SELECT id, client_id, currency, due_date, issue_date,
               CASE WHEN st.basis = 'issue_date' THEN coalesce(issue_date, due_date)
                    ELSE coalesce(due_date, issue_date) END AS basis_date,
               total - coalesce(written_off_amount, 0) AS amount
          FROM new_rows WHERE status IN {OWING}
    ), entered AS (
        INSERT INTO aging_entries (invoice_id, client_id, currency, due_date, issue_date,
                                   basis_date, amount, bucket)
        SELECT id, client_id, currency, due_date, issue_date, basis_date, amount,
               aging_bucket(st.as_of - basis_date, st.buckets)
          FROM owed WHERE amount > 0 AND basis_date IS NOT NULL
         ORDER BY id
        RETURNING client_id, currency, bucket, amount
    )
    INSERT INTO aging_summary AS s (client_id, currency, bucket, amount, invoice_count)
    SELECT client_id, currency, bucket, sum(amount), count(*) FROM entered
     GROUP BY client_id, currency, bucket ORDER BY client_id, currency, bucket
    ON CONFLICT (client_id, currency, bucket) DO UPDATE
        SET amount = s.amount + EXCLUDED.amount,
            invoice_count = s.invoice_count + EXCLUDED.invoice_count;
    RETURN NULL;
END
$fn$
"""

ROW_TRIGGER = """
CREATE TRIGGER aging_invoices
AFTER {events} OR UPDATE OF status, total, written_off_amount, due_date, issue_date,
    client_id, currency ON invoices
FOR EACH ROW EXECUTE FUNCTION aging_invoices_changed()
"""


def upgrade() -> None:
    op.execute("DROP TRIGGER aging_invoices ON invoices")
    op.execute(ROW_TRIGGER.format(events="DELETE"))
    op.execute(INSERTED)
    op.execute(
        "CREATE TRIGGER aging_invoices_inserted AFTER INSERT ON invoices "
        "REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION aging_invoices_inserted()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER aging_invoices_inserted ON invoices")
    op.execute("DROP FUNCTION aging_invoices_inserted()")
    op.execute("DROP TRIGGER aging_invoices ON invoices")
    op.execute(ROW_TRIGGER.format(events="INSERT OR DELETE"))
