"""Parked gateway events dismissed with a note; gateway payouts matched to the bank (issue 18)

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-05 07:30:00

- gateway_events.status may be "dismissed" (a person looked at a parked event);
  gateway_event_dismissals keeps who dismissed it and why (audited), once per event.
- gateway_payouts: each Stripe payout and Razorpay settlement, once per (provider, payout
  id), with the bank statement line it was found as (at most one payout per line).
- statement_lines.status may be "settlement" (a gateway's payout: nothing to book).
"""

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

EVENTS_BEFORE = "'received', 'applied', 'ignored', 'parked'"
EVENTS_AFTER = "'received', 'applied', 'ignored', 'parked', 'dismissed'"
LINES_BEFORE = "'debit', 'unmatched', 'suggested', 'applied', 'recorded', 'credited', 'ignored'"
LINES_AFTER = f"{LINES_BEFORE}, 'settlement'"


def _check(table: str, allowed: str) -> None:
    op.drop_constraint(op.f(f"ck_{table}_status"), table, type_="check")
    op.create_check_constraint(op.f(f"ck_{table}_status"), table, f"status IN ({allowed})")


def upgrade() -> None:
    _check("gateway_events", EVENTS_AFTER)
    _check("statement_lines", LINES_AFTER)
    op.create_table(
        "gateway_event_dismissals",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("gateway_event_id", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("dismissed_by", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["gateway_event_id"],
            ["gateway_events.id"],
            name=op.f("fk_gateway_event_dismissals_gateway_event_id_gateway_events"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_event_dismissals")),
        sa.UniqueConstraint(
            "gateway_event_id", name=op.f("uq_gateway_event_dismissals_gateway_event_id")
        ),
    )
    op.create_table(
        "gateway_payouts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("payout_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("arrival_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("bank_reference", sa.String(length=64), nullable=True),
        sa.Column("statement_line_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_gateway_payouts_amount_positive")),
        sa.ForeignKeyConstraint(
            ["statement_line_id"],
            ["statement_lines.id"],
            name=op.f("fk_gateway_payouts_statement_line_id_statement_lines"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_payouts")),
        sa.UniqueConstraint(
            "provider", "payout_id", name=op.f("uq_gateway_payouts_provider_payout_id")
        ),
        sa.UniqueConstraint("statement_line_id", name=op.f("uq_gateway_payouts_statement_line_id")),
    )


def downgrade() -> None:
    op.drop_table("gateway_payouts")
    op.drop_table("gateway_event_dismissals")
    op.execute("UPDATE statement_lines SET status = 'unmatched' WHERE status = 'settlement'")
    _check("statement_lines", LINES_BEFORE)
    op.execute("UPDATE gateway_events SET status = 'parked' WHERE status = 'dismissed'")
    _check("gateway_events", EVENTS_BEFORE)
