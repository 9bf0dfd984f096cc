"""Cash not yet allocated, per day received and currency, kept in payment_days.

The payments list shows, over the payments it filters, how many there are, what they brought
and how much of it is not yet allocated to invoices. Added up over every payment and its
allocations on each view, that grew with the workspace (400,000 payments: most of a second).
payment_days already kept the first two per day; it now keeps the third:
- payments' statement-level triggers add a payment's cash less its live allocations when it
  becomes live (recorded, or moved to another day or currency) and take it away when it stops
  being live (voided, deleted, moved);
- new statement-level triggers on payment_allocations take an allocation's cash (amount and
  interest; TDS is not cash) away from its live payment's day when it is made and give it
  back when it is removed. Allocations of a voided payment change nothing: a void payment has
  nothing left to allocate.
`payment_days_rebuild()` writes the table again from the payments (the bench's bulk loads, which
run with triggers off, call it).

The list reads a page newest first: its index is now (received_on, id), so a page stops after
its rows however many payments share a day. The index's included columns served the
dashboard's cash sums, which read payment_days since 0022.
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

# Each payment's live allocated cash, for the payments of a transition table.
APPLIED = """
SELECT a.payment_id, sum(a.amount + a.interest_amount) AS cash
  FROM payment_allocations a
 WHERE a.removed_at IS NULL AND a.payment_id IN (SELECT id FROM {rows})
 GROUP BY a.payment_id
"""

FUNCTIONS = [
    """
CREATE FUNCTION payment_days_add(p_days date[], p_currencies varchar[], p_amounts numeric[],
                                 p_counts integer[], p_unapplied numeric[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    INSERT INTO payment_days AS d (received_on, currency, amount, payment_count, unapplied)
    SELECT c.day, c.currency, sum(c.amount), sum(c.n), sum(c.unapplied)
      FROM unnest(p_days, p_currencies, p_amounts, p_counts, p_unapplied)
           AS c(day, currency, amount, n, unapplied)
     GROUP BY c.day, c.currency
    HAVING sum(c.n) <> 0 OR sum(c.amount) <> 0 OR sum(c.unapplied) <> 0
     ORDER BY c.day, c.currency
    ON CONFLICT (received_on, currency) DO UPDATE
        SET amount = d.amount + EXCLUDED.amount,
            payment_count = d.payment_count + EXCLUDED.payment_count,
            unapplied = d.unapplied + EXCLUDED.unapplied;
    DELETE FROM payment_days d
     USING unnest(p_days, p_currencies) AS c(day, currency)
     WHERE d.received_on = c.day AND d.currency = c.currency AND d.payment_count = 0;
END
$fn$
""",
    f"""
CREATE OR REPLACE FUNCTION payments_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM payment_days_add(array_agg(p.received_on), array_agg(p.currency),
                                 array_agg(p.amount), array_agg(1),
                                 array_agg(p.amount - coalesce(x.cash, 0)))
           FROM new_rows p LEFT JOIN ({APPLIED.format(rows="new_rows")}) x ON x.payment_id = p.id
          WHERE p.voided_at IS NULL;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM payment_days_add(array_agg(p.received_on), array_agg(p.currency),
                                 array_agg(-p.amount), array_agg(-1),
                                 array_agg(coalesce(x.cash, 0) - p.amount))
           FROM old_rows p LEFT JOIN ({APPLIED.format(rows="old_rows")}) x ON x.payment_id = p.id
          WHERE p.voided_at IS NULL;
    ELSE
        -- The allocations are the same before and after this statement.
        PERFORM payment_days_add(array_agg(c.received_on), array_agg(c.currency),
                                 array_agg(c.amount), array_agg(c.n), array_agg(c.unapplied))
           FROM (SELECT p.received_on, p.currency, -p.amount AS amount, -1 AS n,
                        coalesce(x.cash, 0) - p.amount AS unapplied
                   FROM old_rows p
                   LEFT JOIN ({APPLIED.format(rows="old_rows")}) x ON x.payment_id = p.id
                  WHERE p.voided_at IS NULL
                 UNION ALL
                 SELECT p.received_on, p.currency, p.amount, 1, p.amount - coalesce(x.cash, 0)
                   FROM new_rows p
                   LEFT JOIN ({APPLIED.format(rows="new_rows")}) x ON x.payment_id = p.id
                  WHERE p.voided_at IS NULL) AS c;
    END IF;
    RETURN NULL;
END
$fn$
""",
    """
CREATE FUNCTION payment_allocations_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM payment_days_add(array_agg(p.received_on), array_agg(p.currency),
                                 array_agg(0::numeric), array_agg(0),
                                 array_agg(-(a.amount + a.interest_amount)))
           FROM new_rows a JOIN payments p ON p.id = a.payment_id
          WHERE a.removed_at IS NULL AND p.voided_at IS NULL;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM payment_days_add(array_agg(p.received_on), array_agg(p.currency),
                                 array_agg(0::numeric), array_agg(0),
                                 array_agg(a.amount + a.interest_amount))
           FROM old_rows a JOIN payments p ON p.id = a.payment_id
          WHERE a.removed_at IS NULL AND p.voided_at IS NULL;
    ELSE
        PERFORM payment_days_add(array_agg(p.received_on), array_agg(p.currency),
                                 array_agg(0::numeric), array_agg(0), array_agg(c.cash))
           FROM (SELECT payment_id, amount + interest_amount AS cash FROM old_rows
                  WHERE removed_at IS NULL
                 UNION ALL
                 SELECT payment_id, -(amount + interest_amount) FROM new_rows
                  WHERE removed_at IS NULL) AS c
           JOIN payments p ON p.id = c.payment_id
          WHERE p.voided_at IS NULL;
    END IF;
    RETURN NULL;
END
$fn$
""",
    """
CREATE FUNCTION payment_days_rebuild() RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    DELETE FROM payment_days;
    INSERT INTO payment_days (received_on, currency, amount, payment_count, unapplied)
    SELECT p.received_on, p.currency, sum(p.amount), count(*),
           sum(p.amount - coalesce(x.cash, 0))
      FROM payments p
      LEFT JOIN (SELECT payment_id, sum(amount + interest_amount) AS cash
                   FROM payment_allocations WHERE removed_at IS NULL
                  GROUP BY payment_id) x ON x.payment_id = p.id
     WHERE p.voided_at IS NULL
     GROUP BY p.received_on, p.currency;
END
$fn$
""",
]

TRIGGERS = [
    """
CREATE TRIGGER payment_days_allocated AFTER INSERT ON payment_allocations
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION payment_allocations_changed()
""",
    """
CREATE TRIGGER payment_days_deallocated AFTER DELETE ON payment_allocations
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION payment_allocations_changed()
""",
    """
CREATE TRIGGER payment_days_reallocated AFTER UPDATE ON payment_allocations
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION payment_allocations_changed()
""",
]


def upgrade() -> None:
    op.drop_index("ix_payments_received_on", table_name="payments")
    op.create_index("ix_payments_received_on_id", "payments", ["received_on", "id"])
    op.execute("ALTER TABLE payment_days ADD COLUMN unapplied numeric(18, 2) NOT NULL DEFAULT 0")
    op.execute("DROP FUNCTION payment_days_add(date[], varchar[], numeric[], integer[])")
    for statement in FUNCTIONS + TRIGGERS:
        op.execute(statement)
    op.execute("SELECT payment_days_rebuild()")


def downgrade() -> None:
    op.execute("DROP TRIGGER payment_days_reallocated ON payment_allocations")
    op.execute("DROP TRIGGER payment_days_deallocated ON payment_allocations")
    op.execute("DROP TRIGGER payment_days_allocated ON payment_allocations")
    op.execute("DROP FUNCTION payment_days_rebuild()")
    op.execute("DROP FUNCTION payment_allocations_changed()")
    op.execute(
        """
CREATE OR REPLACE FUNCTION payments_changed() RETURNS trigger
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
"""
    )
    op.execute("DROP FUNCTION payment_days_add(date[], varchar[], numeric[], integer[], numeric[])")
    op.execute(
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
"""
    )
    op.execute("ALTER TABLE payment_days DROP COLUMN unapplied")
    op.drop_index("ix_payments_received_on_id", table_name="payments")
    op.create_index(
        "ix_payments_received_on",
        "payments",
        ["received_on"],
        postgresql_include=["currency", "amount", "voided_at"],
    )
