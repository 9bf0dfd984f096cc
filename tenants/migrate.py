"""Alembic with two histories: `migrations/shared` (schema public) and `migrations/tenant`
(applied to every tenant schema, each with its own alembic_version table).

Tenant revisions are written without a schema; the runner points `search_path` at one tenant
schema for the length of that schema's transaction (SET LOCAL) and records the version there.
Each schema commits on its own, so a crashed run is finished by running it again. Revisions
should be plain DDL/SQL (they are replayed from Alembic's offline rendering); see
TenantMigrator for the escape hatch.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from tenants.binding import qualified, quoted_schema

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


# Alembic renders the tenant history for this stand-in schema name once; each schema gets the
# same SQL with its own name put in.
SCHEMA_STAND_IN = "duebook_schema_stand_in"
UNKNOWN = object()  # "look the current revision up" (None means: no version yet)


@dataclass
class TenantMigrator:
    """Runs the tenant history against tenant schemas.

    Upgrading a schema replays the SQL that Alembic's offline mode renders for the history
    (cached per starting revision), as one round trip inside the caller's transaction: the
    same statements `alembic upgrade --sql` would print, without Alembic's per-schema catalog
    look-ups. A revision that needs a live connection (it reads data to decide what to write)
    says `requires_online = True` at module level, and the path through it then runs online,
    through Alembic's migration context. Downgrades always run online.
    """

    script: ScriptDirectory = field(
        default_factory=lambda: ScriptDirectory.from_config(alembic_config("tenant"))
    )
    _offline_sql: dict[tuple[str | None, str], str | None] = field(default_factory=dict)

    @property
    def head(self) -> str:
        return self.script.get_current_head()

    def current_revision(self, connection: Connection, schema: str) -> str | None:
        table = connection.execute(
            text("SELECT to_regclass(:t)"), {"t": qualified(schema, "alembic_version")}
        ).scalar()
        if table is None:
            return None
        return connection.exec_driver_sql(
            f"SELECT version_num FROM {qualified(schema, 'alembic_version')}"
        ).scalar()

    def upgrade(
        self,
        connection: Connection,
        schema: str,
        revision: str = "head",
        current: str | None | object = UNKNOWN,
    ) -> bool:
        """Bring `schema` up to `revision` inside the connection's current transaction.
        Returns False when it was there already. `current` saves a look-up when known."""
        if current is UNKNOWN:
            current = self.current_revision(connection, schema)
        target = self.head if revision == "head" else revision
        if current == target:
            return False
        sql = self.offline_sql(current, target)
        if sql is None:
            return self._run_online(connection, schema, revision, self.script._upgrade_revs)
        # One statement batch, no parameters: the DBAPI cursor sends it in one round trip.
        batch = (
            f"SET LOCAL search_path TO {quoted_schema(schema)}, public;\n"
            + sql.replace(SCHEMA_STAND_IN, quoted_schema(schema))
            + "\nSET LOCAL search_path TO DEFAULT;"
        )
        with connection.connection.cursor() as cursor:
            cursor.execute(batch)
        return True

    def downgrade(self, connection: Connection, schema: str, revision: str) -> bool:
        return self._run_online(connection, schema, revision, self.script._downgrade_revs)

    def offline_sql(self, current: str | None, target: str) -> str | None:
        """The SQL from `current` to `target` for the stand-in schema, or None when a revision
        on the way must run online."""
        key = (current, target)
        if key not in self._offline_sql:
            path = list(self.script.iterate_revisions(target, current or "base"))
            if any(getattr(r.module, "requires_online", False) for r in path):
                self._offline_sql[key] = None
            else:
                self._offline_sql[key] = self._render_offline(current, target)
        return self._offline_sql[key]

    def _render_offline(self, current: str | None, target: str) -> str:
        buffer = io.StringIO()

        def steps(rev, context):
            return self.script._upgrade_revs(target, rev)

        config = alembic_config("tenant")
        with EnvironmentContext(
            config,
            self.script,
            fn=steps,
            as_sql=True,
            starting_rev=current,
            destination_rev=target,
        ) as env:
            env.configure(
                dialect_name="postgresql",
                output_buffer=buffer,
                version_table_schema=SCHEMA_STAND_IN,
                transactional_ddl=False,
                literal_binds=True,
            )
            env.run_migrations()
        # A schema taken down to base keeps its (empty) version table.
        return buffer.getvalue().replace(
            f"CREATE TABLE {SCHEMA_STAND_IN}.alembic_version",
            f"CREATE TABLE IF NOT EXISTS {SCHEMA_STAND_IN}.alembic_version",
        )

    def _run_online(self, connection: Connection, schema: str, revision: str, plan) -> bool:
        # Alembic's own upgrade/downgrade commands plan their steps with these same calls.
        previous_path = connection.exec_driver_sql("SHOW search_path").scalar()
        connection.exec_driver_sql(f"SET LOCAL search_path TO {quoted_schema(schema)}, public")
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


_migrators: dict[Path, TenantMigrator] = {}


def tenant_migrator() -> TenantMigrator:
    """One migrator (scripts loaded, SQL rendered) per process and migrations folder."""
    location = MIGRATIONS / "tenant"
    if location not in _migrators:
        _migrators[location] = TenantMigrator()
    return _migrators[location]


@dataclass
class MigrateReport:
    migrated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: str | None = None
    error: str | None = None


def current_revisions(connection: Connection, schemas: list[str]) -> dict[str, str | None]:
    """Every schema's tenant-history version, read in a few statements for all of them."""
    found = dict.fromkeys(schemas)
    with_table = (
        connection.execute(
            text(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = 'alembic_version' AND n.nspname = ANY(:schemas)"
            ),
            {"schemas": schemas},
        )
        .scalars()
        .all()
    )
    for start in range(0, len(with_table), 500):
        batch = with_table[start : start + 500]
        union = " UNION ALL ".join(
            f"SELECT '{s}', version_num FROM \"{s}\".alembic_version" for s in batch
        )
        found.update((row[0], row[1]) for row in connection.exec_driver_sql(union))
    return found


def migrate_schemas(
    engine: Engine,
    schemas: Iterable[str],
    revision: str = "head",
    on_progress: Callable[[str], None] | None = None,
) -> MigrateReport:
    """Migrate each schema in its own transaction on one connection; stop at the first
    failure. Run again, it finishes the rest."""
    migrator = tenant_migrator()
    schemas = list(schemas)
    report = MigrateReport()
    with engine.connect() as conn:
        got_lock = conn.execute(
            text("SELECT pg_try_advisory_lock(:k)"), {"k": MIGRATE_LOCK_KEY}
        ).scalar()
        if not got_lock:
            raise RuntimeError("another `tenants migrate` is running")
        try:
            versions = current_revisions(conn, schemas)
            conn.commit()
            for schema in schemas:
                try:
                    with conn.begin():
                        changed = migrator.upgrade(conn, schema, revision, versions[schema])
                except Exception as exc:  # reported, and the run stops here
                    report.failed, report.error = schema, f"{type(exc).__name__}: {exc}"
                    break
                (report.migrated if changed else report.unchanged).append(schema)
                if on_progress:
                    on_progress(schema)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATE_LOCK_KEY})
            conn.commit()
    return report
