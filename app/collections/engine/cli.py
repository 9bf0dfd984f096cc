"""`flask --app wsgi collections run [--date YYYY-MM-DD] [--dry-run] [--tenant SLUG]`."""

from __future__ import annotations

from datetime import date

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.collections.engine import run as engine
from app.collections.engine.run import SKIP_LABELS
from app.collections.models import CollectionNotice
from app.extensions import db
from tenants.binding import tenant_context
from tenants.models import Tenant

collections_cli = AppGroup("collections", help="The daily collection run.")


@collections_cli.command("run")
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The day to run for (default: each tenant's today in its time zone).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be created; write nothing.")
@click.option("--tenant", "slug", default=None, help="Only this tenant (its slug).")
def run_command(day, dry_run: bool, slug: str | None) -> None:
    """Run (or preview) the daily collection run of every active tenant, or of one."""

    query = select(Tenant.id).where(Tenant.status == "active").order_by(Tenant.id)
    if slug:
        query = select(Tenant.id).where(Tenant.slug == slug)
    tenant_ids = list(db.session.scalars(query))
    db.session.remove()
    if slug and not tenant_ids:
        raise click.ClickException(f"no tenant {slug!r}")
    for tenant_id in tenant_ids:
        with tenant_context(db.session, tenant_id) as session:
            tenant = session.get(Tenant, tenant_id)
            today = day.date() if day else engine.tenant_today(tenant)
            plan = engine.plan(session, tenant, today) if dry_run else None
            record = engine.run(session, tenant, today=today, dry_run=dry_run, trigger="command")
            session.commit()
            _report(tenant, today, record, plan)


def _report(tenant, today: date, record, plan) -> None:

    verb = "would create" if plan is not None else "created"
    click.echo(
        f"{tenant.slug} {today.isoformat()}: {verb} {record.notices_created} notice(s)"
        f" from {record.invoices_considered} owing invoice(s)"
    )
    if plan is not None:
        lines = [
            (
                n.client_name,
                n.level_name,
                n.channel,
                n.currency,
                n.amount_due,
                len(n.invoices),
                n.reason,
            )
            for n in plan.notices
        ]
    else:
        notices = db.session.scalars(
            select(CollectionNotice)
            .where(CollectionNotice.run_id == record.id)
            .order_by(CollectionNotice.id)
        )
        lines = [
            (n.client_id, n.level_name, n.channel, n.currency, n.amount_due, len(n.items), n.reason)
            for n in notices
        ]
    for client, level, channel, currency, amount, count, reason in lines:
        click.echo(
            f"  {client} · {level} · {channel} · {amount} {currency} · "
            f"{count} invoice(s) · {reason}"
        )
    for code, count in sorted(record.skipped.items()):
        click.echo(f"  skipped {count}: {engine_label(code)}")


def engine_label(code: str) -> str:

    return SKIP_LABELS.get(code, code)
