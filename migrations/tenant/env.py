"""Alembic environment for the tenant history, used by Alembic's commands (autogenerate).
Applying revisions to tenant schemas is done by tenants.migrate.TenantMigrator, which does not
need this file. Autogenerate compares the models with the schema named in
config.attributes["schema"] (a scratch schema brought to head first)."""

from alembic import context
from sqlalchemy import MetaData

from app.models import tenant_metadata

config = context.config
connection = config.attributes["connection"]
schema = config.attributes["schema"]


def include_object(obj, name, type_, reflected, compare_to):
    return not (type_ == "table" and name == "alembic_version")


# The models name the placeholder schema; compare them as schema-less tables, the way the
# revisions are written.
schemaless = MetaData(naming_convention=tenant_metadata.naming_convention)
for table in tenant_metadata.tables.values():
    table.to_metadata(schemaless, schema=None)

connection.exec_driver_sql(f'SET LOCAL search_path TO "{schema}", public')
context.configure(
    connection=connection,
    target_metadata=schemaless,
    version_table_schema=schema,
    include_object=include_object,
    include_schemas=False,
    render_as_batch=False,
)
with context.begin_transaction():
    context.run_migrations()
