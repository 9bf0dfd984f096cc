"""Alembic environment for the tenant history, used by Alembic's commands (autogenerate, via
`flask --app wsgi tenants revision tenant ...`). Applying revisions to tenant schemas is done
by tenants.migrate.TenantMigrator, which does not need this file.

The connection given here has a scratch tenant schema at head as its default schema, so the
models are compared as schema-less tables, the way tenant revisions are written."""

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.schema import BLANK_SCHEMA

from app.models import tenant_metadata

config = context.config
connection = config.attributes["connection"]
schema = config.attributes["schema"]

# The models name the placeholder schema; compare them without one.
schemaless = MetaData(naming_convention=tenant_metadata.naming_convention)
for table in tenant_metadata.tables.values():
    table.to_metadata(schemaless, schema=None, referred_schema_fn=lambda *a: BLANK_SCHEMA)


def include_object(obj, name, type_, reflected, compare_to):
    return not (type_ == "table" and name == "alembic_version")


context.configure(
    connection=connection,
    target_metadata=schemaless,
    version_table_schema=schema,
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
