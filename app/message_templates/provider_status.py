"""The approval state of WhatsApp templates at Meta, mirrored onto the tenant's templates:
from template status webhooks (`set_template_status`, applied by app.messaging.inbound) and
from the periodic sync (`sync_templates`, jobs.whatsapp), which backfills lost webhooks. The
connector (app.integrations.connectors.whatsapp) fetches and parses; this decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.integrations.connectors.whatsapp import TEMPLATE_STATES, RemoteTemplate
from app.message_templates.models import MessageTemplate


def _language_matches(ours: str, theirs: str) -> bool:
    """Our template language ("en", "en_US") against Meta's ("en_US"): exact, or the same
    base language when ours names no region."""
    ours, theirs = ours.replace("-", "_"), theirs.replace("-", "_")
    return ours == theirs or ("_" not in ours and theirs.split("_")[0] == ours)


def _whatsapp_templates(session: Session, name: str | None = None):
    query = select(MessageTemplate).where(
        MessageTemplate.channel == "whatsapp",
        MessageTemplate.deleted_at.is_(None),
        MessageTemplate.provider_template_name.is_not(None),
    )
    if name is not None:
        query = query.where(MessageTemplate.provider_template_name == name)
    return session.scalars(query).all()


def set_template_status(session: Session, name: str, language: str, state: str) -> int:
    """A template status webhook: the bound tenant's templates of that name and language."""
    now, changed = datetime.now(UTC), 0
    for template in _whatsapp_templates(session, name):
        if not language or _language_matches(template.language, language):
            template.provider_status, template.provider_synced_at = state, now
            changed += 1
    session.flush()
    return changed


@dataclass
class SyncResult:
    updated: int = 0
    # Names of our templates with no template of that name and language at Meta: their
    # provider_status is cleared (provider_synced_at set), so the page can say "not found".
    missing: list[str] = field(default_factory=list)


def sync_templates(session: Session, remote: list[RemoteTemplate]) -> SyncResult:
    """Mirror Meta's approval state (`remote`: the business account's templates, as the
    connector fetched them) onto the bound tenant's WhatsApp templates, matched by
    provider_template_name and language (an exact language first, else the same base
    language)."""
    now, result = datetime.now(UTC), SyncResult()
    for template in _whatsapp_templates(session):
        same_name = [r for r in remote if r.name == template.provider_template_name]
        match = next((r for r in same_name if r.language == template.language), None) or next(
            (r for r in same_name if _language_matches(template.language, r.language)), None
        )
        template.provider_synced_at = now
        if match is None:
            template.provider_status = None
            result.missing.append(template.name)
            continue
        state = TEMPLATE_STATES.get(match.status)
        if state:
            template.provider_status = state
        result.updated += 1
    session.flush()
    return result
