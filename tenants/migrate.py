"""Alembic with two histories: `migrations/shared` (schema public) and `migrations/tenant`
(applied to every tenant schema, each with its own alembic_version table).

Tenant revisions are written without a schema; the runner points `search_path` at one tenant
schema for the length of that schema's transaction (SET LOCAL) and records the version there.
Each schema commits on its own, so a crashed run is finished by running it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# One migrate run at a time: two would race on the same schemas.
MIGRATE_LOCK_KEY = 0x6475656D  # "duem"


def alembic_config(tree: str, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS / tree))
    config.attributes["connection"] = connection
    return config


def upgrade_shared(connection: Connection, revision: str = "head") -> None:
    command.upgrade(alembic_config("shared", connection), revision)


def downgrade_shared(connection: Connection, revision: str) -> None:
    command.downgrade(alembic_config("shared", connection), revision)


@dataclass
class TenantMigrator:
    """Runs the tenant history against one schema at a time, reusing the loaded scripts."""

    script: ScriptDirectory = field(
        default_factory=lambda: ScriptDirectory.from_config(alembic_config("tenant"))
    )

    @property
    def head(self) -> str:
        return self.script.get_current_head()

    def upgrade(self, connection: Connection, schema: str, revision: str = "head") -> bool:
        """Bring `schema` up to `revision` inside the connection's current transaction.
        Returns False when it was there already."""
        return self._run(connection, schema, revision, self.script._upgrade_revs)

    def downgrade(self, connection: Connection, schema: str, revision: str) -> bool:
        return self._run(connection, schema, revision, self.script._downgrade_revs)

    def _run(self, connection: Connection, schema: str, revision: str, plan) -> bool:
        # Alembic's own upgrade/downgrade commands plan their steps with these same calls.
        previous_path = connection.exec_driver_sql("SHOW search_path").scalar()
        connection.exec_driver_sql(f'SET LOCAL search_path TO "{schema}", public')
        steps_taken = []

        def steps(current, context):
            planned = plan(revision, current)
            steps_taken.extend(planned)
            return planned

        config = alembic_config("tenant", connection)
        with EnvironmentContext(config, self.script, fn=steps) as env:
            env.configure(
                connection=connection, version_table_schema=schema, transactional_ddl=True
            )
            env.run_migrations()
        connection.execute(text("SELECT set_config('search_path', :p, true)"), {"p": previous_path})
        return bool(steps_taken)


@dataclass
class MigrateReport:
    migrated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: str | None = None
    error: str | None = None


def migrate_schemas(
    engine: Engine,
    schemas: Iterable[str],
    revision: str = "head",
    on_progress: Callable[[str], None] | None = None,
) -> MigrateReport:
    """Migrate each schema in its own transaction; stop at the first failure."""
    migrator = TenantMigrator()
    report = MigrateReport()
    with engine.connect() as lock_conn:
        got_lock = lock_conn.execute(
            text("SELECT pg_try_advisory_lock(:k)"), {"k": MIGRATE_LOCK_KEY}
        ).scalar()
        if not got_lock:
            raise RuntimeError("another `tenants migrate` is running")
        try:
            for schema in schemas:
                try:
                    with engine.begin() as conn:
                        changed = migrator.upgrade(conn, schema, revision)
                except Exception as exc:  # reported, and the run stops here
                    report.failed, report.error = schema, f"{type(exc).__name__}: {exc}"
                    break
                (report.migrated if changed else report.unchanged).append(schema)
                if on_progress:
                    on_progress(schema)
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATE_LOCK_KEY})
            lock_conn.commit()
    return report
