"""milestone_totals: a project's milestones counted and added up per status, kept by triggers

Revision ID: 0049
Revises: 0048
Create Date: 2026-12-05 20:00:00

The project page shows its plan's total, its milestones' count and the amount in each status.
Grouped from the milestones on every view, that cost a scan of the whole plan (3 ms for
10,000 milestones, most of what the page's statements cost). Statement-level triggers on
milestones now keep a row per project and status (one grouped upsert per statement, in key
order; rows whose count falls to zero are removed), and the page reads those few rows.
`milestone_totals_rebuild()` writes the table again from the milestones.
"""

from alembic import op

revision = "0049"
down_revision = "0048"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE milestone_totals (
    project_id bigint NOT NULL,
    status varchar(16) NOT NULL,
    milestone_count integer NOT NULL,
    amount numeric(18, 2) NOT NULL,
    CONSTRAINT pk_milestone_totals PRIMARY KEY (project_id, status)
)
"""

FUNCTIONS = [
    """
CREATE FUNCTION milestone_totals_add(p_projects bigint[], p_statuses varchar[],
                                     p_counts integer[], p_amounts numeric[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    INSERT INTO milestone_totals AS t (project_id, status, milestone_count, amount)
    SELECT c.project_id, c.status, sum(c.n), sum(c.amount)
      FROM unnest(p_projects, p_statuses, p_counts, p_amounts) AS c(project_id, status, n, amount)
     GROUP BY c.project_id, c.status
    HAVING sum(c.n) <> 0 OR sum(c.amount) <> 0
     ORDER BY c.project_id, c.status
    ON CONFLICT (project_id, status) DO UPDATE
        SET milestone_count = t.milestone_count + EXCLUDED.milestone_count,
            amount = t.amount + EXCLUDED.amount;
    DELETE FROM milestone_totals t
     USING unnest(p_projects, p_statuses) AS c(project_id, status)
     WHERE t.project_id = c.project_id AND t.status = c.status AND t.milestone_count = 0;
END
$fn$
""",
    """
CREATE FUNCTION milestones_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM milestone_totals_add(array_agg(project_id), array_agg(status),
                                     array_agg(1), array_agg(amount))
           FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM milestone_totals_add(array_agg(project_id), array_agg(status),
                                     array_agg(-1), array_agg(-amount))
           FROM old_rows;
    ELSE
        -- A row whose project, status and amount stayed adds nothing (its -1 and +1 cancel).
        PERFORM milestone_totals_add(array_agg(c.project_id), array_agg(c.status),
                                     array_agg(c.n), array_agg(c.amount))
           FROM (SELECT project_id, status, -1 AS n, -amount AS amount FROM old_rows
                 UNION ALL
                 SELECT project_id, status, 1, amount FROM new_rows) AS c;
    END IF;
    RETURN NULL;
END
$fn$
""",
    """
CREATE FUNCTION milestone_totals_rebuild() RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    DELETE FROM milestone_totals;
    INSERT INTO milestone_totals (project_id, status, milestone_count, amount)
    SELECT project_id, status, count(*), sum(amount) FROM milestones
     GROUP BY project_id, status;
END
$fn$
""",
]

TRIGGERS = [
    """
CREATE TRIGGER milestone_totals_inserted AFTER INSERT ON milestones
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION milestones_changed()
""",
    """
CREATE TRIGGER milestone_totals_deleted AFTER DELETE ON milestones
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION milestones_changed()
""",
    """
CREATE TRIGGER milestone_totals_updated AFTER UPDATE ON milestones
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION milestones_changed()
""",
]


def upgrade() -> None:
    for statement in (TABLE, *FUNCTIONS, *TRIGGERS):
        op.execute(statement)
    op.execute("SELECT milestone_totals_rebuild()")


def downgrade() -> None:
    op.execute("DROP TRIGGER milestone_totals_updated ON milestones")
    op.execute("DROP TRIGGER milestone_totals_deleted ON milestones")
    op.execute("DROP TRIGGER milestone_totals_inserted ON milestones")
    op.execute("DROP FUNCTION milestone_totals_rebuild()")
    op.execute("DROP FUNCTION milestones_changed()")
    op.execute("DROP FUNCTION milestone_totals_add(bigint[], varchar[], integer[], numeric[])")
    op.execute("DROP TABLE milestone_totals")
