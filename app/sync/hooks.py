"""The accounting sync on lower areas' pages: its figures and links on the integrations page's
accounting cards, and how its records are said in the audit log; and its trigger on the domain
events (a push once Duebook records what the books lack). Connected by `create_app`."""

from __future__ import annotations

from flask import Flask, url_for

from app.audit.wording import Wording, register_wording
from app.core.events import register_consumer
from app.extensions import db
from app.integrations.services import register_card_details
from app.invoicing.views import register_panel
from app.sync import services
from app.sync.books import connector_class
from app.sync.engine import source_label


def init_app(app: Flask) -> None:
    register_consumer("sync", services.push_after_events)
    register_card_details("accounting", card_details)
    register_panel(invoice_sync_panel)
    register_wording(
        "sync_conflicts",
        Wording(
            noun="sync conflict",
            name_field="label",
            labels={
                "status": "status",
                "resolution": "kept",
                "resolved_at": "resolved",
                "resolved_by": "resolved by",
            },
            choices={
                "status": {"open": "open", "resolved": "resolved"},
                "resolution": {"duebook": "Duebook's values", "books": "the books' values"},
            },
            people_fields=frozenset({"resolved_by"}),
        ),
    )


def card_details(session, provider: str, connection) -> dict | None:
    """Health and the way in for an accounting card; None for one that cannot be synced here
    (coming later, or not installed on this server)."""
    if provider not in services.ACCOUNTING_PROVIDERS or connector_class(provider) is None:
        return None
    if provider == "tally":
        return {
            "health": services.health(session, connection)
            if connection is not None and (connection.settings or {}).get("book_id")
            else None,
            "url": url_for("sync.tally_page"),
            "action": "Open Tally" if connection is not None else "Set up",
        }
    if connection is None:
        return {"health": None, "url": url_for("sync.index"), "action": "Connect"}
    return {
        "health": services.health(session, connection),
        "url": url_for("sync.connection", connection_id=connection.id),
        "action": "Open sync",
    }


def invoice_sync_panel(invoice) -> dict:
    """The invoice page's line about the books it is in, when it is linked to them."""
    found = services.invoice_link(db.session, invoice.id)
    if found is None:
        return {}
    link, connection = found
    return {
        "sync_panel": {
            "template": "sync/_invoice_panel.html",
            "link": link,
            "title": source_label(connection.provider),
            "number": (link.books or {}).get("number"),
        }
    }
