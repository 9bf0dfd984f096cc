"""Campaigns: recipients by client filters, launch as outbox rows spaced by the throttle,
cancel, progress counted from the outbox. Their templates are `app.message_templates`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.campaigns.models import Campaign
from app.clients.models import CONTACT_ROLES, Client, Contact
from app.clients.services import ClientFilters, filtered_clients, may_contact
from app.core.handover import hand_over
from app.invoicing.models import Invoice
from app.message_templates.models import TEMPLATE_CHANNELS, MessageTemplate
from app.message_templates.rendering import (
    INVOICE_VARIABLES,
    TemplateProblem,
    message_context,
    render_for_channel,
    variables_used,
)
from app.message_templates.services import CHANNEL_LABELS, get_template, list_templates
from app.outbox.models import OutboxMessage
from app.outbox.services import deliver_after_commit, recipient_time_zone

# Templates in use ---------------------------------------------------------------------------


def delete_template(session: Session, template: MessageTemplate) -> str | None:
    """Soft-delete; refused (with the reason) while an unfinished campaign uses it."""
    in_use = session.scalar(
        select(Campaign.name).where(
            Campaign.template_id == template.id,
            Campaign.status.in_(("draft", "scheduled", "running")),
        )
    )
    if in_use:
        return f"The campaign “{in_use}” uses this template; cancel it or pick another first."
    template.deleted_at = datetime.now(UTC)
    return None


def _int(value) -> int | None:
    value = (value or "").strip() if isinstance(value, str) else value
    return int(value) if isinstance(value, str) and value.isdigit() else None


# Campaigns: recipients ---------------------------------------------------------------------

FILTER_KEYS = (
    "status",
    "location",
    "industry",
    "manager",
    "tag",
    "city",
    "region",
    "overdue",
    "role",
)


def clean_filters(raw: Mapping) -> dict[str, str]:
    """The campaign's filters as stored: only known keys with a value."""
    client_filters = ClientFilters.from_args(raw).as_args()
    filters = {
        k: client_filters[k]
        for k in ("status", "location", "industry", "manager", "tag")
        if k in client_filters
    }
    city = (raw.get("city") or "").strip()[:100]
    region = (raw.get("region") or "").strip()[:64]
    role = raw.get("role") or ""
    filters.update(
        {
            "city": city,
            "region": region,
            "overdue": "1" if raw.get("overdue") == "1" else "",
            "role": role if role in CONTACT_ROLES else "",
        }
    )
    return {k: v for k, v in filters.items() if v}


def recipients_query(filters: Mapping):
    """(Contact, Client) of the clients the filters pick (the client list's filters, plus city,
    state, has overdue invoices) and, optionally, of one contact role; oldest contact first."""

    client_filters = ClientFilters.from_args(filters)
    clients = filtered_clients(client_filters)
    if filters.get("status") == "prospect":
        clients = filtered_clients(ClientFilters.from_args({**filters, "prospects": "1"}))
    if filters.get("city"):
        clients = clients.where(func.lower(Client.city) == filters["city"].lower())
    if filters.get("region"):
        clients = clients.where(Client.region == filters["region"])
    if filters.get("overdue"):
        clients = clients.where(
            exists().where(Invoice.client_id == Client.id, Invoice.status == "overdue")
        )
    picked = clients.with_only_columns(Client.id).scalar_subquery()
    query = (
        select(Contact, Client)
        .join(Client, Client.id == Contact.client_id)
        .where(Contact.client_id.in_(picked), Contact.deleted_at.is_(None))
        .order_by(Contact.id)
    )
    if filters.get("role"):
        query = query.where(Contact.roles.contains([filters["role"]]))
    return query


def address_of(contact: Contact, channel: str) -> str | None:
    return contact.email if channel == "email" else contact.phone


@dataclass
class Audience:
    contacts: int = 0
    sendable: int = 0
    no_address: int = 0
    no_consent: int = 0
    clients: int = 0
    skipped_sample: tuple = ()


def audience(session: Session, filters: Mapping, channel: str) -> Audience:
    """How many contacts the filters pick, and who would be skipped (no address for the channel,
    or no consent as `may_contact` decides today; consent is checked again at send time)."""
    result = Audience()
    clients, skipped = set(), []
    for contact, client in session.execute(recipients_query(filters)):
        result.contacts += 1
        clients.add(client.id)
        if not address_of(contact, channel):
            result.no_address += 1
            reason = "no " + ("e-mail address" if channel == "email" else "phone number")
        elif not may_contact(contact, channel):
            result.no_consent += 1
            reason = "no consent" if channel != "email" else "opted out"
        else:
            result.sendable += 1
            continue
        if len(skipped) < 20:
            skipped.append((contact.full_name, client.short_name, reason))
    result.clients, result.skipped_sample = len(clients), tuple(skipped)
    return result


def region_choices(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(Client.region)
            .where(Client.region.is_not(None), Client.deleted_at.is_(None))
            .distinct()
            .order_by(Client.region)
        )
    )


# Campaigns: lifecycle ----------------------------------------------------------------------


def campaign_templates(session: Session, channel: str | None = None) -> list[MessageTemplate]:
    """Templates a campaign may use: those that need no invoice (campaign ones first)."""
    templates = [t for t in list_templates(session) if channel in (None, t.channel)]
    usable = [t for t in templates if not _needs_invoice(t)]
    return sorted(usable, key=lambda t: (t.purpose != "campaign", t.channel, t.name.lower()))


def _needs_invoice(template: MessageTemplate) -> bool:
    used = variables_used(template.body) | variables_used(template.subject or "")
    return bool(used & set(INVOICE_VARIABLES))


def get_campaign(session: Session, campaign_id: int) -> Campaign | None:
    return session.get(Campaign, campaign_id)


def campaign_names(session: Session, campaign_ids) -> dict[int, str]:
    """{id: name} of these campaigns of the bound tenant (the Messages page names them)."""
    ids = {i for i in campaign_ids if i is not None}
    if not ids:
        return {}
    return dict(
        session.execute(select(Campaign.id, Campaign.name).where(Campaign.id.in_(ids))).all()
    )


def list_campaigns(session: Session) -> list[Campaign]:
    return list(
        session.scalars(select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc()))
    )


def campaign_values(campaign: Campaign | None, tenant) -> dict[str, str]:
    if campaign is None:
        return {"channel": "email", "throttle_per_minute": "60", "schedule": "now"}
    values = {
        "name": campaign.name,
        "channel": campaign.channel,
        "template_id": str(campaign.template_id),
        "throttle_per_minute": str(campaign.throttle_per_minute),
        "schedule": "later" if campaign.scheduled_at else "now",
        "scheduled_at": campaign.scheduled_at.astimezone(ZoneInfo(tenant.time_zone)).strftime(
            "%Y-%m-%dT%H:%M"
        )
        if campaign.scheduled_at
        else "",
    }
    values.update(campaign.filters or {})
    return values


def save_campaign(
    session: Session,
    tenant,
    raw: Mapping,
    campaign: Campaign | None = None,
    user_id: int | None = None,
    now: datetime | None = None,
) -> tuple[Campaign | None, dict[str, str]]:
    """Create or edit a draft campaign. The schedule is now, or a date-time in the tenant's
    time zone that is not in the past."""
    now = now or datetime.now(UTC)
    errors: dict[str, str] = {}
    name = (raw.get("name") or "").strip()
    if not 2 <= len(name) <= 191:
        errors["name"] = "Give the campaign a name of 2 to 191 characters."
    channel = raw.get("channel") or ""
    if channel not in TEMPLATE_CHANNELS:
        errors["channel"] = "Choose e-mail, WhatsApp or SMS."
    template = get_template(session, _int(raw.get("template_id")) or 0)
    if template is None:
        errors["template_id"] = "Choose a template."
    elif template.channel != channel:
        errors["template_id"] = f"This is a {CHANNEL_LABELS[template.channel]} template."
    elif _needs_invoice(template):
        errors["template_id"] = "This template speaks of an invoice; a campaign has none."
    throttle = _int(raw.get("throttle_per_minute"))
    if throttle is None or not 1 <= throttle <= 6000:
        errors["throttle_per_minute"] = "Between 1 and 6,000 messages a minute."
    scheduled_at = None
    if raw.get("schedule") == "later":
        try:
            local = datetime.fromisoformat((raw.get("scheduled_at") or "").strip())
            scheduled_at = local.replace(tzinfo=ZoneInfo(tenant.time_zone)).astimezone(UTC)
        except ValueError:
            errors["scheduled_at"] = "Pick a date and time."
        else:
            if scheduled_at < now - timedelta(minutes=1):
                errors["scheduled_at"] = "That time has passed; pick a later one or send now."
    if errors:
        return None, errors
    if campaign is None:
        campaign = Campaign(created_by=user_id)
        session.add(campaign)
    campaign.name, campaign.channel, campaign.template_id = name, channel, template.id
    campaign.filters = clean_filters(raw)
    campaign.throttle_per_minute, campaign.scheduled_at = throttle, scheduled_at
    session.flush()
    return campaign, {}


def launch(session: Session, tenant, campaign: Campaign) -> str | None:
    """Schedule the campaign: a worker writes its messages after commit. Refused (with the
    reason) unless it is a draft."""
    if campaign.status != "draft":
        return f"This campaign is {campaign.status}; only a draft can be launched."
    campaign.status = "scheduled"
    hand_over(session, "launch_campaign", campaign.id, tenant_id=tenant.id)
    return None


def campaigns_to_launch(session: Session) -> list[int]:
    """Scheduled campaigns whose messages are not all written yet: the durable intent of a
    launch. The sweeper hands them to the workers again (Redis was down at launch, or a worker
    died); a second run writes no message twice (the outbox's unique idempotency key)."""
    return list(session.scalars(select(Campaign.id).where(Campaign.status == "scheduled")))


CHUNK = 1000


def write_messages(session: Session, tenant, campaign_id: int, now: datetime | None = None) -> int:
    """One outbox row per recipient contact (with an address for the channel), spaced by the
    throttle from the scheduled time, in committed chunks; then the campaign is running.
    The idempotency key carries the tenant: campaign and contact ids are per tenant schema and
    the outbox is shared.
    Idempotency keys and the start time kept from the first run make a second run (a relaunch
    after a crash) add nothing. Returns the number of recipients."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != "scheduled":
        return 0
    now = now or datetime.now(UTC)
    if campaign.started_at is None:
        campaign.started_at = max(campaign.scheduled_at or now, now)
    start, template, channel = campaign.started_at, campaign.template, campaign.channel
    spacing = timedelta(minutes=1) / campaign.throttle_per_minute
    filters, created_by = dict(campaign.filters or {}), campaign.created_by
    session.commit()
    rows, position = [], 0
    for contact, client in session.execute(recipients_query(filters)).all():
        address = address_of(contact, channel)
        if not address:
            continue
        row = dict(
            tenant_id=tenant.id,
            channel=channel,
            queue="bulk",
            windowed=True,
            idempotency_key=f"t{tenant.id}:campaign:{campaign_id}:contact:{contact.id}:{channel}",
            recipient=address,
            client_id=client.id,
            contact_id=contact.id,
            campaign_id=campaign_id,
            created_by=created_by,
            recipient_time_zone=recipient_time_zone(contact.phone, client.country, tenant),
            next_attempt_at=start + position * spacing,
        )
        try:
            rendered = render_for_channel(
                template,
                message_context(session, tenant, client, contact, language=template.language),
            )
        except TemplateProblem as problem:
            # This contact's message is not sent (too long or too slow with their details):
            # the row says why, and the others still go.
            row.update(
                status="suppressed",
                subject="",
                body_text="",
                body_html=None,
                payload=None,
                last_error=f"The {template.name} template cannot be used: {problem}",
            )
        else:  # (a multi-row insert needs the same keys in every row)
            row.update(
                status="pending",
                subject=rendered.subject[:255],
                body_text=rendered.text,
                body_html=rendered.html,
                payload=rendered.payload(),
                last_error=None,
            )
        rows.append(row)
        position += 1
        if len(rows) == CHUNK:
            if not _insert_chunk(session, campaign_id, rows, tenant.id, now):
                return 0
            rows = []
    if rows and not _insert_chunk(session, campaign_id, rows, tenant.id, now):
        return 0
    campaign = _locked_campaign(session, campaign_id)
    if campaign.status == "scheduled":
        campaign.status, campaign.recipients_count = "running", position
    return position


def _locked_campaign(session: Session, campaign_id: int) -> Campaign:
    # The row lock orders a chunk's insert and a cancel: rows written before a cancel are
    # suppressed by it; after it, nothing more is written.
    return session.scalars(
        select(Campaign).where(Campaign.id == campaign_id).with_for_update(),
        execution_options={"populate_existing": True},
    ).one()


def _insert_chunk(
    session: Session, campaign_id: int, rows: list[dict], tenant_id: int, now: datetime
) -> bool:
    """One INSERT for the chunk; rows due now go to the workers after commit, later ones are
    found by the sweeper when their time comes. False when the campaign was cancelled."""
    if _locked_campaign(session, campaign_id).status != "scheduled":
        session.commit()
        return False
    inserted = session.execute(
        insert(OutboxMessage)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OutboxMessage.id, OutboxMessage.next_attempt_at, OutboxMessage.status)
    ).all()
    for row_id, at, status in inserted:
        if status == "pending" and at <= now:
            deliver_after_commit(session, row_id, tenant_id, "bulk")
    session.commit()
    return True


def cancel(session: Session, tenant_id: int, campaign: Campaign) -> int | None:
    """Stop what has not been sent: pending messages become suppressed. None when there is
    nothing to cancel (done or cancelled already)."""
    if campaign.status in ("done", "cancelled"):
        return None
    campaign = _locked_campaign(session, campaign.id)
    campaign.status, campaign.finished_at = "cancelled", datetime.now(UTC)
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.of_tenant(tenant_id),
            OutboxMessage.campaign_id == campaign.id,
            OutboxMessage.status == "pending",
        )
        .values(status="suppressed", last_error="campaign cancelled", locked_until=None),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount


RESULT_ORDER = ("queued", "sent", "delivered", "read", "failed", "suppressed", "replied")


def progress(session: Session, tenant_id: int, campaign: Campaign) -> dict[str, int]:
    """Counts of the campaign's messages from the outbox: queued (pending or sending), sent,
    delivered, read, failed (failed, bounced or dead), suppressed, and replied."""
    buckets = {"pending": "queued", "sending": "queued", "bounced": "failed", "dead": "failed"}
    counts = dict.fromkeys(RESULT_ORDER, 0)
    where = (OutboxMessage.of_tenant(tenant_id), OutboxMessage.campaign_id == campaign.id)
    for status, n in session.execute(
        select(OutboxMessage.status, func.count()).where(*where).group_by(OutboxMessage.status)
    ):
        counts[buckets.get(status, status)] += n
    counts["replied"] = session.scalar(
        select(func.count()).where(*where, OutboxMessage.replied_at.is_not(None))
    )
    counts["total"] = sum(counts[k] for k in RESULT_ORDER if k != "replied")
    return counts


def refresh_status(
    session: Session, tenant_id: int, campaign: Campaign, counts: dict[str, int] | None = None
) -> None:
    """A running campaign (all its messages written) is done when none of them is pending or
    sending."""
    if campaign.status != "running":
        return
    counts = counts or progress(session, tenant_id, campaign)
    if counts["queued"] == 0:
        campaign.status, campaign.finished_at = "done", datetime.now(UTC)
