"""client profiles: clients, contacts, sites, documents, imports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 07:19:47.612499
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_imports",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="uploaded", nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("file_format", sa.String(length=8), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("mapping", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("total_rows", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("processed_rows", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("inserted_rows", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_rows", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("failed_rows", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('uploaded', 'mapped', 'queued', 'running', 'done', 'failed')",
            name=op.f("ck_client_imports_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_imports")),
    )
    industries = op.create_table(
        "industries",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_industries")),
    )
    op.bulk_insert(
        industries,
        [
            {"name": name}
            for name in (
                "Agriculture",
                "Construction",
                "Education",
                "Energy",
                "Financial services",
                "Government",
                "Healthcare",
                "Hospitality",
                "IT services",
                "Logistics",
                "Manufacturing",
                "Media",
                "Pharmaceuticals",
                "Professional services",
                "Real estate",
                "Retail",
                "Telecom",
                "Textiles",
            )
        ],
    )
    op.create_index(
        "uq_industries_name", "industries", [sa.literal_column("lower(name)")], unique=True
    )
    op.create_table(
        "client_import_errors",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("import_id", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["client_imports.id"],
            name=op.f("fk_client_import_errors_import_id_client_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_import_errors")),
    )
    op.create_index(
        op.f("ix_client_import_errors_import_id"),
        "client_import_errors",
        ["import_id"],
        unique=False,
    )
    op.create_table(
        "clients",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("full_name", sa.String(length=191), nullable=False),
        sa.Column("short_name", sa.String(length=191), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("location", sa.String(length=8), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("address_line1", sa.String(length=191), nullable=True),
        sa.Column("address_line2", sa.String(length=191), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("postal_code", sa.String(length=16), nullable=True),
        sa.Column("gstin", sa.String(length=15), nullable=True),
        sa.Column("pan", sa.String(length=10), nullable=True),
        sa.Column("abn", sa.String(length=11), nullable=True),
        sa.Column("vat_number", sa.String(length=20), nullable=True),
        sa.Column("tin", sa.String(length=32), nullable=True),
        sa.Column("tax_registration", sa.Text(), nullable=True),
        sa.Column("remittance_details", sa.Text(), nullable=True),
        sa.Column("payment_terms", sa.String(length=16), server_default="net", nullable=False),
        sa.Column("payment_days", sa.SmallInteger(), nullable=True),
        sa.Column("payment_terms_note", sa.String(length=255), nullable=True),
        sa.Column("engagement_manager_user_id", sa.BigInteger(), nullable=True),
        sa.Column("new_business_year", sa.SmallInteger(), nullable=True),
        sa.Column("industry_id", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("credit_limit", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("preferred_language", sa.String(length=8), server_default="en", nullable=False),
        sa.Column(
            "preferred_channel", sa.String(length=16), server_default="email", nullable=False
        ),
        sa.Column(
            "tags",
            postgresql.ARRAY(sa.String(length=40)),
            server_default=sa.text("'{}'::varchar[]"),
            nullable=False,
        ),
        sa.Column("converted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(payment_terms IN ('net', 'mfi')) = (payment_days IS NOT NULL)",
            name=op.f("ck_clients_payment_days"),
        ),
        sa.CheckConstraint("location IN ('local', 'foreign')", name=op.f("ck_clients_location")),
        sa.CheckConstraint(
            "payment_terms IN ('net', 'mfi', 'custom', 'immediate')",
            name=op.f("ck_clients_payment_terms"),
        ),
        sa.CheckConstraint(
            "preferred_channel IN ('email', 'whatsapp', 'sms', 'letter')",
            name=op.f("ck_clients_preferred_channel"),
        ),
        sa.CheckConstraint(
            "status IN ('prospect', 'active', 'on_hold', 'inactive')",
            name=op.f("ck_clients_status"),
        ),
        sa.CheckConstraint("credit_limit >= 0", name=op.f("ck_clients_credit_limit")),
        sa.CheckConstraint("new_business_year >= 2015", name=op.f("ck_clients_new_business_year")),
        sa.ForeignKeyConstraint(
            ["industry_id"],
            ["industries.id"],
            name=op.f("fk_clients_industry_id_industries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
    )
    op.create_index(
        "ix_clients_engagement_manager", "clients", ["engagement_manager_user_id"], unique=False
    )
    op.create_index("ix_clients_list_created", "clients", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_clients_list_name",
        "clients",
        [sa.literal_column("lower(full_name)"), "id"],
        unique=False,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_clients_search",
        "clients",
        [
            sa.literal_column(
                "lower(full_name || ' ' || short_name || ' ' || coalesce(gstin, '') || ' ' || coalesce(external_id, '') || ' ' || coalesce(city, '')) gin_trgm_ops"
            )
        ],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index("ix_clients_tags", "clients", ["tags"], unique=False, postgresql_using="gin")
    op.create_index(
        "uq_clients_external_id",
        "clients",
        ["external_id"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL AND external_id IS NOT NULL"),
    )
    op.create_index(
        "uq_clients_full_name",
        "clients",
        [sa.literal_column("lower(full_name)")],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "uq_clients_short_name",
        "clients",
        [sa.literal_column("lower(short_name)")],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "client_contacts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("full_name", sa.String(length=191), nullable=False),
        sa.Column("job_title", sa.String(length=100), nullable=True),
        sa.Column(
            "roles",
            postgresql.ARRAY(sa.String(length=16)),
            server_default=sa.text("'{}'::varchar[]"),
            nullable=False,
        ),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("preferred_language", sa.String(length=8), nullable=True),
        sa.Column("email_consent", sa.String(length=10), nullable=True),
        sa.Column("email_consent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("email_consent_source", sa.String(length=100), nullable=True),
        sa.Column("sms_consent", sa.String(length=10), nullable=True),
        sa.Column("sms_consent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sms_consent_source", sa.String(length=100), nullable=True),
        sa.Column("whatsapp_consent", sa.String(length=10), nullable=True),
        sa.Column("whatsapp_consent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("whatsapp_consent_source", sa.String(length=100), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "email_consent IN ('opted_in', 'opted_out')",
            name=op.f("ck_client_contacts_email_consent"),
        ),
        sa.CheckConstraint(
            "sms_consent IN ('opted_in', 'opted_out')", name=op.f("ck_client_contacts_sms_consent")
        ),
        sa.CheckConstraint(
            "whatsapp_consent IN ('opted_in', 'opted_out')",
            name=op.f("ck_client_contacts_whatsapp_consent"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_client_contacts_client_id_clients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_contacts")),
    )
    op.create_index(
        op.f("ix_client_contacts_client_id"), "client_contacts", ["client_id"], unique=False
    )
    op.create_table(
        "client_documents",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=191), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("expiry_notice_for", sa.Date(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_client_documents_client_id_clients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_documents")),
    )
    op.create_index(
        op.f("ix_client_documents_client_id"), "client_documents", ["client_id"], unique=False
    )
    op.create_index(
        op.f("ix_client_documents_expires_on"), "client_documents", ["expires_on"], unique=False
    )
    op.create_table(
        "client_document_versions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("document_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by_user_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "uploaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["client_documents.id"],
            name=op.f("fk_client_document_versions_document_id_client_documents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_document_versions")),
        sa.UniqueConstraint(
            "document_id", "version", name=op.f("uq_client_document_versions_document_id_version")
        ),
    )
    op.create_table(
        "client_sites",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=191), nullable=False),
        sa.Column("address_line1", sa.String(length=191), nullable=True),
        sa.Column("address_line2", sa.String(length=191), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("postal_code", sa.String(length=16), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("latitude", sa.Numeric(precision=9, scale=6), nullable=True),
        sa.Column("longitude", sa.Numeric(precision=9, scale=6), nullable=True),
        sa.Column("site_contact_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(latitude IS NULL) = (longitude IS NULL)", name=op.f("ck_client_sites_coordinates")
        ),
        sa.CheckConstraint("latitude BETWEEN -90 AND 90", name=op.f("ck_client_sites_latitude")),
        sa.CheckConstraint(
            "longitude BETWEEN -180 AND 180", name=op.f("ck_client_sites_longitude")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_client_sites_client_id_clients"),
        ),
        sa.ForeignKeyConstraint(
            ["site_contact_id"],
            ["client_contacts.id"],
            name=op.f("fk_client_sites_site_contact_id_client_contacts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_sites")),
    )
    op.create_index(op.f("ix_client_sites_client_id"), "client_sites", ["client_id"], unique=False)
    op.add_column("audit_log", sa.Column("subject", sa.String(length=80), nullable=True))
    op.create_index("ix_audit_log_subject", "audit_log", ["subject", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_log_subject", table_name="audit_log")
    op.drop_column("audit_log", "subject")
    op.drop_index(op.f("ix_client_sites_client_id"), table_name="client_sites")
    op.drop_table("client_sites")
    op.drop_table("client_document_versions")
    op.drop_index(op.f("ix_client_documents_expires_on"), table_name="client_documents")
    op.drop_index(op.f("ix_client_documents_client_id"), table_name="client_documents")
    op.drop_table("client_documents")
    op.drop_index(op.f("ix_client_contacts_client_id"), table_name="client_contacts")
    op.drop_table("client_contacts")
    op.drop_index(
        "uq_clients_short_name",
        table_name="clients",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.drop_index(
        "uq_clients_full_name", table_name="clients", postgresql_where=sa.text("deleted_at IS NULL")
    )
    op.drop_index(
        "uq_clients_external_id",
        table_name="clients",
        postgresql_where=sa.text("deleted_at IS NULL AND external_id IS NOT NULL"),
    )
    op.drop_index("ix_clients_tags", table_name="clients", postgresql_using="gin")
    op.drop_index("ix_clients_search", table_name="clients", postgresql_using="gin")
    op.drop_index(
        "ix_clients_list_name", table_name="clients", postgresql_where=sa.text("deleted_at IS NULL")
    )
    op.drop_index("ix_clients_list_created", table_name="clients")
    op.drop_index("ix_clients_engagement_manager", table_name="clients")
    op.drop_table("clients")
    op.drop_index(op.f("ix_client_import_errors_import_id"), table_name="client_import_errors")
    op.drop_table("client_import_errors")
    op.drop_index("uq_industries_name", table_name="industries")
    op.drop_table("industries")
    op.drop_table("client_imports")
