"""The workspace's branding on the e-mail its clients get (Settings → Branding): the HTML part
under a band in its colour with its logo, its footer under both parts. Put on when a message
leaves, so every e-mail to a client wears the branding of the day it goes, whichever area wrote
it (invoices, notices, reminders, rules, campaigns); e-mail to the workspace's own people
(invitations, resets, tests to a user) is left as written.

The logo travels inside the message as an inline image (`cid:`), so mail programs show it
without fetching anything; it is read once per delivery batch."""

from __future__ import annotations

from functools import cached_property

from flask import current_app

from app.core.storage import get_storage
from app.integrations.connectors import InlineImage
from app.settings.branding import EMAIL_LOGO_CID, branding_of, dress_email, workspace_logo
from app.settings.models import WorkspaceSettings
from app.settings.services import sender_name


class ClientEmailDress:
    def __init__(self, tenant, workspace: WorkspaceSettings):
        self.tenant = tenant
        self.workspace = workspace

    @cached_property
    def _logo(self) -> tuple[bytes, str] | None:
        return workspace_logo(get_storage(current_app), self.workspace)

    def dress(self, text: str, html: str | None) -> tuple[str, str | None, list[InlineImage]]:
        """The message's text and HTML as they go, and the inline images the HTML shows."""
        logo = self._logo if html is not None else None
        text, html = dress_email(
            text,
            html,
            branding_of(self.workspace),
            sender_name(self.tenant, self.workspace),
            f"cid:{EMAIL_LOGO_CID}" if logo else None,
        )
        return text, html, [InlineImage(EMAIL_LOGO_CID, logo[1], logo[0])] if logo else []
