"""Pay links (a row per link: what it is for, until when, revoked by whom) and the pay page's
settings (part payments allowed, how long a new link works)."""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pay_links",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("invoice_id", sa.BigInteger()),
        sa.Column("notice_id", sa.BigInteger()),
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_by", sa.BigInteger()),
        sa.Column("created_by", sa.BigInteger()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "(kind = 'invoice' AND invoice_id IS NOT NULL AND notice_id IS NULL)"
            " OR (kind = 'notice' AND notice_id IS NOT NULL AND invoice_id IS NULL)"
            " OR (kind = 'client' AND invoice_id IS NULL AND notice_id IS NULL)",
            name=op.f("ck_pay_links_pay_link_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_pay_links_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_pay_links_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["notice_id"],
            ["collection_notices.id"],
            name=op.f("fk_pay_links_notice_id_collection_notices"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pay_links")),
    )
    op.create_index("ix_pay_links_client_id", "pay_links", ["client_id"])
    op.create_index(
        "ix_pay_links_invoice_id",
        "pay_links",
        ["invoice_id"],
        postgresql_where=sa.text("invoice_id IS NOT NULL"),
    )
    op.create_index(
        "ix_pay_links_notice_id",
        "pay_links",
        ["notice_id"],
        postgresql_where=sa.text("notice_id IS NOT NULL"),
    )
    op.create_table(
        "pay_page_settings",
        sa.Column("id", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "allow_partial_payment", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("link_days", sa.SmallInteger(), server_default=sa.text("60"), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_pay_page_settings_one_row")),
        sa.CheckConstraint(
            "link_days BETWEEN 1 AND 365", name=op.f("ck_pay_page_settings_link_days")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pay_page_settings")),
    )


def downgrade() -> None:
    op.drop_table("pay_page_settings")
    op.drop_table("pay_links")
