"""Both Alembic histories: one head each, up from empty and back down, and `tenants migrate`
over many tenants, finishing the rest after a failure."""

from __future__ import annotations

import shutil
from datetime import time

import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, make_url, text

from app.extensions import db
from tenants.migrate import (
    TenantMigrator,
    alembic_config,
    downgrade_shared,
    migrate_schemas,
    upgrade_shared,
)
from tenants.models import Tenant

SHARED_TABLES = {
    "tenants",
    "users",
    "memberships",
    "login_sessions",
    "invitations",
    "outbox_messages",
    "workspace_settings",
}


@pytest.fixture
def empty_database(app_config):
    """A database of its own, empty, dropped afterwards."""
    url = make_url(app_config["SQLALCHEMY_DATABASE_URI"])
    name = f"{url.database}_migrations"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = create_engine(url.set(database=name))
    yield engine
    engine.dispose()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.mark.parametrize("tree", ["shared", "tenant"])
def test_each_history_has_a_single_head(tree):
    assert len(ScriptDirectory.from_config(alembic_config(tree)).get_heads()) == 1


def test_shared_schema_from_empty_to_head_and_back(empty_database):
    with empty_database.begin() as conn:
        upgrade_shared(conn)
    assert set(inspect(empty_database).get_table_names(schema="public")) >= SHARED_TABLES
    with empty_database.begin() as conn:
        downgrade_shared(conn, "base")
    assert set(inspect(empty_database).get_table_names(schema="public")) <= {"alembic_version"}
    with empty_database.begin() as conn:
        upgrade_shared(conn)
    assert set(inspect(empty_database).get_table_names(schema="public")) >= SHARED_TABLES


def test_workspace_settings_move_to_their_own_table_and_back_with_their_values(empty_database):
    """Revision 0007 takes each tenant's settings off `tenants` into `workspace_settings`; its
    downgrade puts them back."""
    values = {
        "legal_name": "Udyam Works Private Limited",
        "gstin": "27AAPFU0939F1ZV",
        "upi_vpa": "udyam@okhdfc",
        "brand_colour": "#7a2e8c",
        "auto_invoice": "issue",
        "send_window_start": time(8, 30),
        "send_on_business_days_only": False,
    }
    names = ", ".join(values)
    with empty_database.begin() as conn:
        upgrade_shared(conn, "0006")
        conn.execute(
            text(
                "INSERT INTO tenants (slug, name, country, time_zone, currency, "
                f"{names}) VALUES ('udyam', 'Udyam', 'IN', 'Asia/Kolkata', 'INR', "
                + ", ".join(f":{name}" for name in values)
                + ")"
            ),
            values,
        )
        conn.execute(
            text(
                "INSERT INTO tenants (slug, name, country, time_zone, currency)"
                " VALUES ('plain', 'Plain', 'IN', 'Asia/Kolkata', 'INR')"
            )
        )
        upgrade_shared(conn, "0007")
        moved = conn.execute(
            text(
                f"SELECT t.slug, {names}, s.send_window_end FROM workspace_settings s"
                " JOIN tenants t ON t.id = s.tenant_id ORDER BY t.slug"
            )
        ).all()
    assert [tuple(row) for row in moved] == [
        ("plain", None, None, None, "#1f5f8b", "off", time(9), True, time(19)),
        ("udyam", *values.values(), time(19)),
    ]
    assert "gstin" not in {c["name"] for c in inspect(empty_database).get_columns("tenants")}
    with empty_database.begin() as conn:
        downgrade_shared(conn, "0006")
        back = conn.execute(text(f"SELECT {names} FROM tenants WHERE slug = 'udyam'")).one()
    assert tuple(back) == tuple(values.values())
    assert "workspace_settings" not in inspect(empty_database).get_table_names(schema="public")


def test_tenant_schema_from_empty_to_head_and_back(empty_database):
    migrator = TenantMigrator()
    with empty_database.begin() as conn:
        upgrade_shared(conn)  # the tenant history builds on it (pg_trgm)
        conn.exec_driver_sql("CREATE SCHEMA tenant_1")
        assert migrator.upgrade(conn, "tenant_1") is True
        assert migrator.upgrade(conn, "tenant_1") is False  # at head already
        # the runner leaves the connection's search_path as it found it
        assert conn.exec_driver_sql("SHOW search_path").scalar() == '"$user", public'
    tables = set(inspect(empty_database).get_table_names(schema="tenant_1"))
    assert {"audit_log", "alembic_version"} <= tables
    assert "audit_log" not in inspect(empty_database).get_table_names(schema="public")
    with empty_database.begin() as conn:
        migrator.downgrade(conn, "tenant_1", "base")
    assert inspect(empty_database).get_table_names(schema="tenant_1") == ["alembic_version"]
    assert "audit_log" not in inspect(empty_database).get_table_names(schema="public")
    with empty_database.begin() as conn:
        migrator.upgrade(conn, "tenant_1")
        version = conn.execute(text("SELECT version_num FROM tenant_1.alembic_version")).scalar()
    assert version == migrator.head


def test_migrate_command_brings_50_tenants_to_head_and_resumes_after_a_failure(empty_database):
    with empty_database.begin() as conn:
        upgrade_shared(conn)
        for i in range(1, 51):
            conn.execute(
                text(
                    "INSERT INTO public.tenants (slug, name, country, time_zone, currency)"
                    " VALUES (:s, :n, 'IN', 'Asia/Kolkata', 'INR')"
                ),
                {"s": f"tenant-{i:02d}", "n": f"Tenant {i}"},
            )
        ids = conn.execute(text("SELECT id FROM public.tenants ORDER BY id")).scalars().all()
        schemas = [f"tenant_{i}" for i in ids]
        for schema in schemas:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        # A schema that will break the run half-way: its audit_log already exists.
        conn.exec_driver_sql(f"CREATE TABLE {schemas[24]}.audit_log (id int)")

    progress = []
    report = migrate_schemas(empty_database, schemas, on_progress=progress.append)
    assert report.failed == schemas[24] and "audit_log" in report.error
    assert report.migrated == schemas[:24] and progress == schemas[:24]

    with empty_database.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {schemas[24]}.audit_log")
    report = migrate_schemas(empty_database, schemas)
    assert report.failed is None
    assert report.unchanged == schemas[:24] and report.migrated == schemas[24:]
    head = TenantMigrator().head
    with empty_database.connect() as conn:
        versions = {
            conn.execute(text(f"SELECT version_num FROM {s}.alembic_version")).scalar()
            for s in schemas
        }
    assert versions == {head}


def test_flask_tenants_migrate_reports_progress(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["tenants", "migrate"])
    assert result.exit_code == 0, result.output
    assert "already at head" in result.output


def test_tenants_create_command_makes_a_tenant_at_head(app, app_config):
    runner = app.test_cli_runner()
    slug = "cli-made-tenant"
    result = runner.invoke(args=["tenants", "create", slug, "--name", "CLI Made"])
    try:
        assert result.exit_code == 0, result.output
        with app.app_context():
            tenant = db.session.scalar(db.select(Tenant).where(Tenant.slug == slug))
            assert "audit_log" in inspect(db.engine).get_table_names(schema=tenant.schema)
        again = runner.invoke(args=["tenants", "create", slug, "--name", "CLI Made"])
        assert again.exit_code != 0 and "taken" in again.output
    finally:
        with app.app_context():
            tenant = db.session.scalar(db.select(Tenant).where(Tenant.slug == slug))
            if tenant is not None:
                db.session.execute(text(f"DROP SCHEMA {tenant.schema} CASCADE"))
                db.session.delete(tenant)
                db.session.commit()


# Alembic cannot compare an expression index with an operator class (the trigram search
# index); that index's SQL comes from one constant, clients.models.SEARCH_EXPRESSION.
@pytest.mark.filterwarnings("ignore:Expression #1.*gin_trgm_ops:UserWarning")
def test_models_and_migrations_agree(app, tmp_path, monkeypatch):
    """Autogenerate finds nothing to write: every model change came with its revision."""
    import tenants.migrate

    source = tenants.migrate.MIGRATIONS
    monkeypatch.setattr(tenants.migrate, "MIGRATIONS", tmp_path)
    for tree in ("shared", "tenant"):
        copy = tmp_path / tree
        shutil.copytree(source / tree, copy)
        result = app.test_cli_runner().invoke(
            args=["tenants", "revision", tree, "-m", "drift check", "--autogenerate"]
        )
        assert result.exit_code == 0, result.output
        [written] = [p for p in (copy / "versions").glob("*drift_check*.py")]
        body = written.read_text()
        assert "op." not in body.split("def upgrade")[1], f"{tree} models drifted:\n{body}"


def test_demo_seed_gives_a_working_login_and_can_run_again(app):
    from app.cli import DEMO_EMAIL, DEMO_PASSWORD
    from tests.helpers import csrf_token_from

    runner = app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["demo", "seed"])
        assert result.exit_code == 0, result.output
        assert f"Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}" in result.output
    client = app.test_client()
    token = csrf_token_from(client.get("/login").text)
    response = client.post(
        "/login", data={"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "csrf_token": token}
    )
    assert response.headers["Location"] == "/t/demo/"
    assert client.get("/t/demo/").status_code == 200
    # Clients owing at different ages, for aging and the collections pages to show.
    overdue = client.get("/t/demo/invoices/?status=overdue").text
    for short_name in ("Sahyadri", "Godavari", "Nilgiri"):
        assert short_name in overdue
    # A client abroad, billed in dollars under the LUT (zero-rated), for Stripe's checkout.
    dollars = client.get("/t/demo/invoices/?q=Harbour").text
    assert "Harbour Lane" in dollars and "$2,400.00" in dollars
