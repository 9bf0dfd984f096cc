"""Alembic environment for the tenant history, used by Alembic's commands (autogenerate, via
`flask --app wsgi tenants revision tenant ...`). Applying revisions to tenant schemas is done
by tenants.migrate.TenantMigrator, which does not need this file.

Autogenerate compares the models with the schema named in config.attributes["schema"] (a
scratch schema brought to head first), then writes the operations without a schema name,
the way tenant revisions are written."""

from alembic import context
from sqlalchemy import MetaData

from app.models import tenant_metadata

config = context.config
connection = config.attributes["connection"]
schema = config.attributes["schema"]

# The models name the placeholder schema; compare them as tables of the scratch schema.
scratch_metadata = MetaData(naming_convention=tenant_metadata.naming_convention)
for table in tenant_metadata.tables.values():
    table.to_metadata(scratch_metadata, schema=schema)


def include_name(name, type_, parent_names):
    return type_ != "schema" or name == schema


def include_object(obj, name, type_, reflected, compare_to):
    return not (type_ == "table" and name == "alembic_version")


def drop_schema_names(migration_context, revision, directives):
    def clear(operation):
        if hasattr(operation, "schema"):
            operation.schema = None
        for child in getattr(operation, "ops", []):
            clear(child)

    for directive in directives:
        clear(directive.upgrade_ops)
        clear(directive.downgrade_ops)


context.configure(
    connection=connection,
    target_metadata=scratch_metadata,
    version_table_schema=schema,
    include_schemas=True,
    include_name=include_name,
    include_object=include_object,
    process_revision_directives=drop_schema_names,
)
with context.begin_transaction():
    context.run_migrations()
