"""the public API's OAuth 2 clients (client credentials): a kind of API key with a public client
id, and the short-lived access tokens issued to them (digests only)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 12:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("kind", sa.String(length=16), server_default="key", nullable=False),
    )
    op.add_column("api_keys", sa.Column("client_id", sa.String(length=64), nullable=True))
    op.create_unique_constraint(op.f("uq_api_keys_client_id"), "api_keys", ["client_id"])
    op.create_table(
        "api_access_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("api_key_id", sa.BigInteger(), nullable=False),
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_access_tokens_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_access_tokens")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_api_access_tokens_token_digest")),
    )
    op.create_index(op.f("ix_api_access_tokens_api_key_id"), "api_access_tokens", ["api_key_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_api_access_tokens_api_key_id"), table_name="api_access_tokens")
    op.drop_table("api_access_tokens")
    op.drop_constraint(op.f("uq_api_keys_client_id"), "api_keys", type_="unique")
    op.drop_column("api_keys", "client_id")
    op.drop_column("api_keys", "kind")
