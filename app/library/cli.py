"""`flask --app wsgi library load`: bring the shared template library up to the data files."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.extensions import db
from app.library.services import LibraryDataError, load_library

library_cli = AppGroup("library", help="The global template library.")


@library_cli.command("load")
def load() -> None:
    """Add new templates, update changed ones (version + 1), retire ones no longer shipped."""
    try:
        report = load_library(db.session)
    except LibraryDataError as error:
        db.session.rollback()
        raise click.ClickException(f"the library data is not valid: {error}") from error
    db.session.commit()
    click.echo(
        f"Template library: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.retired} retired."
    )
