"""The accounting sync on lower areas' pages: its figures and links on the integrations page's
accounting cards, and how its records are said in the audit log. Connected by `create_app`."""

from __future__ import annotations

from flask import Flask, url_for

from app.audit.wording import Wording, register_wording
from app.integrations.services import register_card_details
from app.sync import services
from app.sync.books import connector_class


def init_app(app: Flask) -> None:
    register_card_details("accounting", card_details)
    register_wording(
        "sync_conflicts",
        Wording(
            noun="sync conflict",
            name_field="label",
            labels={"status": "status", "resolution": "kept"},
            choices={
                "status": {"open": "open", "resolved": "resolved"},
                "resolution": {"duebook": "Duebook's values", "books": "the books' values"},
            },
        ),
    )


def card_details(session, provider: str, connection) -> dict | None:
    """Health and the way in for an accounting card; None for one that cannot be synced here
    (coming later, or not installed on this server)."""
    if provider not in services.ACCOUNTING_PROVIDERS or connector_class(provider) is None:
        return None
    if connection is None:
        return {"health": None, "url": url_for("sync.index"), "action": "Connect"}
    return {
        "health": services.health(session, connection),
        "url": url_for("sync.connection", connection_id=connection.id),
        "action": "Open sync",
    }
