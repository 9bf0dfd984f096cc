"""`flask secrets rotate`: re-encrypt every stored credential with the newest key.
`flask secrets verify`: have the provider check the credentials of every connection saved
before provider accounts were verified.

Rotation: put a new key first in SECRETS_KEYS (the old ones stay after it), deploy, run this,
then drop the old keys. Until it has run, the old keys must stay: they still open the
credentials written before."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select, update

from app.core.crypto import SecretsUnreadable, rotate_ciphertext
from app.extensions import db
from app.integrations import services
from app.integrations.models import IntegrationConnection
from tenants.base import TenantModel
from tenants.binding import tenant_context
from tenants.models import Tenant

SECRETS_COLUMN = "secrets_ciphertext"

secrets_cli = AppGroup("secrets", help="Connector credentials stored encrypted.")


def _tables_with_secrets():
    """Every tenant table that keeps encrypted secrets in a `secrets_ciphertext` column (the
    integration connections, a bank account's SFTP source...), found from the models so that
    an area above this one adds its secrets to rotation by naming its column so."""
    return [table for table in TenantModel.metadata.sorted_tables if SECRETS_COLUMN in table.c]


@secrets_cli.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored secret of every workspace with the first key of SECRETS_KEYS."""
    tenants = db.session.execute(select(Tenant.id, Tenant.slug).order_by(Tenant.id)).all()
    db.session.remove()
    rotated = unreadable = 0
    for tenant_id, slug in tenants:
        # One session per tenant (a session is bound to one tenant), committed per tenant.
        with tenant_context(db.session, tenant_id) as session:
            for table in _tables_with_secrets():
                column = table.c[SECRETS_COLUMN]
                rows = session.execute(select(table.c.id, column).where(column.is_not(None))).all()
                for row_id, ciphertext in rows:
                    try:
                        fresh = rotate_ciphertext(ciphertext)
                    except SecretsUnreadable:
                        unreadable += 1
                        click.echo(
                            f"{slug}: the secrets of {table.name} {row_id} open with no "
                            "configured key; left as they are",
                            err=True,
                        )
                        continue
                    session.execute(
                        update(table).where(table.c.id == row_id).values({column: fresh})
                    )
                    rotated += 1
    click.echo(f"Re-encrypted {rotated} credential(s) in {len(tenants)} workspace(s).")
    if unreadable:
        raise click.ClickException(
            f"{unreadable} credential(s) could not be read: keep the old keys until they are "
            "entered again or the missing key is put back."
        )


@secrets_cli.command("verify")
def verify() -> None:
    """Queue a provider check of every connection saved before accounts were verified (they
    keep working until it answers; credentials the provider refuses lose their account)."""
    tenants = db.session.execute(select(Tenant.id).order_by(Tenant.id)).scalars().all()
    db.session.remove()
    queued = 0
    for tenant_id in tenants:
        with tenant_context(db.session, tenant_id) as session:
            legacy = session.scalars(
                select(IntegrationConnection).where(
                    IntegrationConnection.verification == "legacy",
                    IntegrationConnection.status != "disconnected",
                )
            ).all()
            for connection in legacy:
                services.request_test(session, connection)
                queued += 1
    click.echo(f"Queued {queued} check(s) in {len(tenants)} workspace(s); a worker runs them.")
