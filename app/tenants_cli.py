"""`flask --app wsgi tenants migrate|create|list`."""

from __future__ import annotations

import click
from alembic import command
from flask.cli import AppGroup
from sqlalchemy import create_engine

from app.extensions import db
from app.library.services import load_library
from tenants import services
from tenants.binding import quoted_schema
from tenants.migrate import alembic_config, migrate_schemas, tenant_migrator, upgrade_shared
from tenants.models import Tenant

tenants_cli = AppGroup("tenants", help="Tenants and their schemas.")


@tenants_cli.command("migrate")
@click.option("--tenant", "slugs", multiple=True, help="Only these tenants (by slug).")
def migrate(slugs: tuple[str, ...]) -> None:
    """Bring the shared schema and every tenant schema to head. Safe to run again after a
    crash: each schema records its own version, so the rest is finished."""
    engine = db.engine
    with engine.begin() as conn:
        upgrade_shared(conn)
    # The template library ships as data files: each deploy brings the shared copy up to date.
    report = load_library(db.session)
    db.session.commit()
    click.echo(
        f"Template library: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.retired} retired."
    )
    schemas = services.tenant_schemas(db.session, list(slugs) or None)
    db.session.close()
    with click.progressbar(
        length=len(schemas),
        label=f"Migrating {len(schemas)} tenant schemas",
        show_pos=True,
        item_show_func=lambda s: s or "",
    ) as bar:
        report = migrate_schemas(engine, schemas, on_progress=lambda s: bar.update(1, s))
    click.echo(f"{len(report.migrated)} migrated, {len(report.unchanged)} already at head.")
    if report.failed:
        raise click.ClickException(
            f"{report.failed} failed: {report.error}\nFix the cause and run this again; "
            f"the schemas done so far stay done."
        )


@tenants_cli.command("revision")
@click.argument("tree", type=click.Choice(["shared", "tenant"]))
@click.option("-m", "--message", required=True, help="What the revision changes.")
@click.option("--autogenerate", is_flag=True, help="Compare the models with the database.")
def revision(tree: str, message: str, autogenerate: bool) -> None:
    """Write a new revision file. For the tenant history, autogenerate compares the models
    with a scratch schema at head, seen as the default schema of a connection of its own."""
    if tree == "shared":
        with db.engine.begin() as conn:
            command.revision(
                alembic_config("shared", conn), message=message, autogenerate=autogenerate
            )
        return
    scratch = "tenant_revision_scratch"
    with db.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quoted_schema(scratch)} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {quoted_schema(scratch)}")
        tenant_migrator().upgrade(conn, scratch, current=None)
    engine = create_engine(db.engine.url, connect_args={"options": f"-c search_path={scratch}"})
    try:
        with engine.begin() as conn:
            config = alembic_config("tenant", conn)
            config.attributes["schema"] = scratch
            command.revision(config, message=message, autogenerate=autogenerate)
    finally:
        engine.dispose()
        with db.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {quoted_schema(scratch)} CASCADE")


@tenants_cli.command("create")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--country", default="IN", show_default=True)
@click.option("--region", default=None)
@click.option("--time-zone", default=None, help="Defaults to the country's.")
@click.option("--currency", default=None, help="Defaults to the country's.")
def create(
    slug: str,
    name: str,
    country: str,
    region: str | None,
    time_zone: str | None,
    currency: str | None,
) -> None:
    """Create a tenant and its schema at head (no owner: invite one from the app)."""
    _, default_zone, default_currency = services.COUNTRIES.get(country, (None, None, None))
    try:
        tenant = services.create_tenant(
            db.session,
            slug=slug,
            name=name,
            country=country,
            region=region,
            time_zone=time_zone or default_zone,
            currency=currency or default_currency,
        )
    except services.TenantError as error:
        raise click.ClickException(str(error)) from None
    db.session.commit()
    click.echo(f"Created {tenant.slug} (schema {tenant.schema}).")


@tenants_cli.command("list")
def list_tenants() -> None:
    for tenant in db.session.scalars(db.select(Tenant).order_by(Tenant.id)):
        click.echo(f"{tenant.id:>6}  {tenant.slug:<40} {tenant.status:<10} {tenant.name}")
