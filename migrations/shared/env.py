"""Alembic environment for the shared schema. The connection comes from the caller
(tenants.migrate) or, when run by Alembic's own CLI, from DATABASE_URL."""

import os

from alembic import context
from sqlalchemy import create_engine

from app.models import shared_metadata

config = context.config


def include_object(obj, name, type_, reflected, compare_to):
    return not (type_ == "table" and name == "alembic_version")


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=shared_metadata,
        version_table_schema="public",
        include_object=include_object,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    from app.config import _database_url

    engine = create_engine(_database_url(os.environ["DATABASE_URL"]))
    with engine.begin() as conn:
        run(conn)
