"""`flask gateways parked`: the webhooks sent to a gateway URL no workspace has (a shared
table; a workspace's own parked events are on its reconciliation page), for the operators:
grouped by gateway and a digest of the URL's token (never the token), optionally purged."""

from __future__ import annotations

from datetime import timedelta

import click
from flask.cli import AppGroup

from app.extensions import db
from app.gateways import services

gateways_cli = AppGroup("gateways", help="Payment gateways: what the platform holds of them.")


@gateways_cli.command("parked")
@click.option(
    "--purge-older-than",
    "days",
    type=click.IntRange(min=1),
    help="Delete the parked webhooks received more than this many days ago.",
)
def parked(days: int | None) -> None:
    """List the webhooks parked for unknown tokens; with --purge-older-than, delete the old."""
    if days is not None:
        purged = services.purge_parked_webhooks(db.session, timedelta(days=days))
        db.session.commit()
        click.echo(f"Purged {purged} parked webhook(s) older than {days} day(s).")
    groups = services.parked_webhooks(db.session)
    if not groups:
        click.echo("No parked webhooks.")
        return
    click.echo(f"{sum(g.count for g in groups)} parked webhook(s):")
    for group in groups:
        click.echo(
            f"{group.count:>6}  {group.provider:<10} token {group.token_digest[:16]}…  "
            f"first {group.first_received:%Y-%m-%d %H:%M} UTC, "
            f"last {group.last_received:%Y-%m-%d %H:%M} UTC"
        )
