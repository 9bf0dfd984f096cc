"""A tenant's own plan templates: clone from the library or start one blank, edit a draft of the
next version, publish it (frozen from then on), archive and restore, and find the published
versions a project can be made from.

Published versions are never changed: every edit goes to the template's one draft, which
starts as a copy of the newest published version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.types import BigInteger, Integer

from app.audit.models import AuditEntry
from app.core.terminology import term, worded
from app.library import services as library
from app.library.models import DUE_RULES, LibraryTemplate
from app.library.tenant.models import TenantTemplate, TenantTemplateItem, TenantTemplateVersion

HUNDRED = Decimal(100)
PCT_UNIT = Decimal("0.0001")
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("9999999999999999.99")
MAX_ITEMS = 2000
MAX_DAYS = 3650
MAX_TEXT = 2000
ITEM_FIELDS = (
    "name",
    "description",
    "percentage",
    "fixed_amount",
    "due_rule",
    "due_days",
    "deliverables",
    "is_retention",
)


class TemplateError(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# Reading ------------------------------------------------------------------------------------


def list_templates(session: Session) -> list[TenantTemplate]:
    return list(
        session.scalars(
            select(TenantTemplate)
            .where(TenantTemplate.deleted_at.is_(None))
            .order_by(func.lower(TenantTemplate.name), TenantTemplate.id)
        )
    )


def archived_templates(session: Session) -> list[TenantTemplate]:
    """Archived templates, the most recently archived first."""
    return list(
        session.scalars(
            select(TenantTemplate)
            .where(TenantTemplate.deleted_at.is_not(None))
            .order_by(TenantTemplate.deleted_at.desc(), TenantTemplate.id)
        )
    )


def templates_with_drafts(session: Session) -> set[int]:
    return set(
        session.scalars(
            select(TenantTemplateVersion.template_id).where(
                TenantTemplateVersion.published_at.is_(None)
            )
        )
    )


def templates_published(session: Session) -> set[int]:
    """Templates with at least one published version (one started blank has none at first)."""
    return set(
        session.scalars(
            select(TenantTemplateVersion.template_id)
            .distinct()
            .where(TenantTemplateVersion.published_at.is_not(None))
        )
    )


def get_template(
    session: Session, template_id: int, include_archived: bool = False
) -> TenantTemplate | None:
    query = select(TenantTemplate).where(TenantTemplate.id == template_id)
    if not include_archived:
        query = query.where(TenantTemplate.deleted_at.is_(None))
    return session.scalar(query)


def get_version(
    session: Session, template: TenantTemplate, number: int
) -> TenantTemplateVersion | None:
    """A published version by its number (a draft is reached through `get_draft`)."""
    return session.scalar(
        select(TenantTemplateVersion)
        .where(
            TenantTemplateVersion.template_id == template.id,
            TenantTemplateVersion.number == number,
            TenantTemplateVersion.published_at.is_not(None),
        )
        .options(selectinload(TenantTemplateVersion.items))
    )


def get_draft(session: Session, template: TenantTemplate) -> TenantTemplateVersion | None:
    return session.scalar(
        select(TenantTemplateVersion)
        .where(
            TenantTemplateVersion.template_id == template.id,
            TenantTemplateVersion.published_at.is_(None),
        )
        .options(selectinload(TenantTemplateVersion.items))
    )


def get_draft_item(
    session: Session, draft: TenantTemplateVersion, item_id: int
) -> TenantTemplateItem | None:
    return session.scalar(
        select(TenantTemplateItem).where(
            TenantTemplateItem.id == item_id, TenantTemplateItem.version_id == draft.id
        )
    )


def published_versions(session: Session) -> list[TenantTemplateVersion]:
    """Every published version of every template in use, newest first within a template: what
    the plan page offers."""
    return list(
        session.scalars(
            select(TenantTemplateVersion)
            .join(TenantTemplateVersion.template)
            .where(
                TenantTemplate.deleted_at.is_(None), TenantTemplateVersion.published_at.is_not(None)
            )
            .order_by(
                func.lower(TenantTemplate.name),
                TenantTemplate.id,
                TenantTemplateVersion.number.desc(),
            )
        )
    )


def get_published_version(session: Session, version_id: int) -> TenantTemplateVersion | None:
    version = session.scalar(
        select(TenantTemplateVersion)
        .where(
            TenantTemplateVersion.id == version_id, TenantTemplateVersion.published_at.is_not(None)
        )
        .options(selectinload(TenantTemplateVersion.items))
    )
    if version is None or version.template.deleted_at is not None:
        return None
    return version


def version_of(session: Session, version_id: int | None) -> TenantTemplateVersion | None:
    """The version a project was made from (whatever became of its template since)."""
    return session.get(TenantTemplateVersion, version_id) if version_id else None


# Starting, archiving, drafts ----------------------------------------------------------------


def _copy_items(items: Sequence) -> list[TenantTemplateItem]:
    return [
        TenantTemplateItem(position=n, **{name: getattr(item, name) for name in ITEM_FIELDS})
        for n, item in enumerate(sorted(items, key=lambda i: i.position), start=1)
    ]


def clone_from_library(
    session: Session, source: LibraryTemplate, user_id: int | None
) -> TenantTemplate:
    """The library template as the tenant's own, version 1 (published: it is the library's
    plan exactly), remembering the source key and version."""
    if source.retired:
        raise TemplateError({"template": "This template is no longer offered."})
    template = TenantTemplate(
        name=source.name,
        industry=source.industry,
        description=source.description,
        source_key=source.key,
        source_version=source.version,
        current_version=1,
        created_by_user_id=user_id,
    )
    now = datetime.now(UTC)
    version = TenantTemplateVersion(
        number=1,
        note=f"Cloned from the library ({source.key}, v{source.version}).",
        created_by_user_id=user_id,
        published_at=now,
        published_by_user_id=user_id,
        items=_copy_items(source.items),
    )
    template.versions.append(version)
    session.add(template)
    session.flush()
    return template


def start_blank(session: Session, raw: Mapping, user_id: int | None) -> TenantTemplate:
    """A template of the tenant's own from nothing: its version 1 is an empty draft, to be
    filled in the editor and published once the plan adds up. Until then `current_version`
    stays at 1 (the column's floor) with no published version behind it, so the template is
    listed but not offered to projects."""
    values, errors = _clean_details(raw)
    industry = str(raw.get("industry") or "").strip()
    if industry and industry not in library.industry_labels():
        errors["industry"] = "Choose an industry from the list, or none."
    if errors:
        raise TemplateError(errors)
    template = TenantTemplate(
        **values, industry=industry, current_version=1, created_by_user_id=user_id
    )
    template.versions.append(TenantTemplateVersion(number=1, created_by_user_id=user_id))
    session.add(template)
    session.flush()
    return template


def archive(session: Session, template: TenantTemplate) -> None:
    """Take a template out of use: it leaves the list and the plan page's choices. Nothing is
    deleted: projects made from its versions keep their plan and their link to the version, and
    a draft in progress waits for a restore. The flush writes the audit entry."""
    if template.deleted_at is None:
        template.deleted_at = datetime.now(UTC)
        session.flush()


def restore(session: Session, template: TenantTemplate) -> None:
    if template.deleted_at is not None:
        template.deleted_at = None
        session.flush()


def start_draft(
    session: Session, template: TenantTemplate, user_id: int | None
) -> TenantTemplateVersion:
    """The template's draft: the existing one, or a new one copied from the newest published
    version (number + 1). The published version itself is left as it is."""
    draft = get_draft(session, template)
    if draft is not None:
        return draft
    current = get_version(session, template, template.current_version)
    newest = session.scalar(
        select(func.max(TenantTemplateVersion.number)).where(
            TenantTemplateVersion.template_id == template.id
        )
    )
    number = (newest or 0) + 1
    draft = TenantTemplateVersion(
        template_id=template.id,
        number=number,
        created_by_user_id=user_id,
        items=_copy_items(current.items if current else []),
    )
    try:
        with session.begin_nested():
            session.add(draft)
            session.flush()
    except IntegrityError:  # someone else started it at the same moment: use theirs
        draft = get_draft(session, template)
        if draft is None:
            raise
    return draft


def discard_draft(session: Session, draft: TenantTemplateVersion) -> None:
    session.delete(draft)
    session.flush()


# Editing items ------------------------------------------------------------------------------


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.replace(",", "").replace("%", "").replace("₹", "").strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def clean_item(raw: Mapping) -> tuple[dict, dict[str, str]]:
    """One milestone of a template from a form: (values, errors by field)."""
    errors: dict[str, str] = {}
    name = " ".join(str(raw.get("name") or "").split())
    if not 1 <= len(name) <= 191:
        errors["name"] = worded("Name the {milestone} (up to 191 characters).")
    kind = str(raw.get("share_kind") or "percentage")
    share = _decimal(str(raw.get("share") or ""))
    percentage = fixed = None
    if kind == "amount":
        if share is None or not CENT <= share <= MAX_AMOUNT:
            errors["share"] = "Give a positive amount, e.g. 50,000."
        elif share != share.quantize(CENT):
            errors["share"] = "Use at most two decimal places."
        else:
            fixed = share
    elif kind == "percentage":
        if share is None or not 0 < share <= HUNDRED:
            errors["share"] = "Give a percentage above 0 and at most 100."
        elif share != share.quantize(PCT_UNIT):
            errors["share"] = "Use at most four decimal places."
        else:
            percentage = share
    else:
        errors["share"] = "Choose a percentage or a fixed amount."
    rule = str(raw.get("due_rule") or "")
    days_text = str(raw.get("due_days") or "0").strip()
    days = 0
    if rule not in DUE_RULES:
        errors["due_rule"] = "Choose when it falls due."
    elif rule != "on_start":
        if not days_text.isdigit() or int(days_text) > MAX_DAYS:
            errors["due_days"] = f"Give a whole number of days from 0 to {MAX_DAYS}."
        else:
            days = int(days_text)
    texts = {}
    for field in ("description", "deliverables"):
        texts[field] = str(raw.get(field) or "").strip()
        if len(texts[field]) > MAX_TEXT:
            errors[field] = f"Keep it to {MAX_TEXT:,} characters (it has {len(texts[field]):,})."
    retention = str(raw.get("is_retention") or "") in ("1", "on", "true")
    return {
        "name": name,
        "percentage": percentage,
        "fixed_amount": fixed,
        "due_rule": rule,
        "due_days": days,
        "is_retention": retention,
        **texts,
    }, errors


def add_item(session: Session, draft: TenantTemplateVersion, raw: Mapping) -> TenantTemplateItem:
    values, errors = clean_item(raw)
    if len(draft.items) >= MAX_ITEMS:
        errors["name"] = f"A template holds at most {MAX_ITEMS:,} {term('milestones')}."
    if errors:
        raise TemplateError(errors)
    item = TenantTemplateItem(position=len(draft.items) + 1, **values)
    draft.items.append(item)
    session.flush()
    return item


def update_item(session: Session, item: TenantTemplateItem, raw: Mapping) -> None:
    values, errors = clean_item(raw)
    if errors:
        raise TemplateError(errors)
    for name, value in values.items():
        setattr(item, name, value)
    session.flush()


def remove_item(session: Session, draft: TenantTemplateVersion, item: TenantTemplateItem) -> None:
    """Remove an item; the ones after it move up a place (one statement)."""
    position = item.position
    draft.items.remove(item)
    session.flush()
    table = TenantTemplateItem.__table__
    session.execute(
        update(table)
        .where(table.c.version_id == draft.id, table.c.position > position)
        .values(position=table.c.position - 1)
    )
    _reload_items(session, draft)


def _reload_items(session: Session, draft: TenantTemplateVersion) -> None:
    """After a bulk UPDATE the loaded items hold old positions: read them again."""
    for item in draft.items:
        session.expire(item)
    session.expire(draft, ["items"])


def reorder(
    session: Session,
    draft: TenantTemplateVersion,
    item_ids: Sequence[int],
    actor_user_id: int | None = None,
) -> None:
    """Put the draft's items in the order of `item_ids` (every item once), in one UPDATE; the
    position constraint is checked at the end of the statement. Audited as one change."""
    current = [item.id for item in sorted(draft.items, key=lambda i: i.position)]
    if sorted(item_ids) != sorted(current) or len(set(item_ids)) != len(item_ids):
        raise TemplateError({"order": "The list changed meanwhile: reload the page and try again."})
    if list(item_ids) == current:
        return
    table = TenantTemplateItem.__table__
    order = (
        func.unnest(
            bindparam("ids", type_=ARRAY(BigInteger)), bindparam("positions", type_=ARRAY(Integer))
        )
        .table_valued("id", "position")
        .render_derived(name="new_order")
    )
    session.execute(
        update(table)
        .where(table.c.version_id == draft.id, table.c.id == order.c.id)
        .values(position=order.c.position),
        {"ids": list(item_ids), "positions": list(range(1, len(item_ids) + 1))},
    )
    session.execute(
        insert(AuditEntry).values(
            actor_user_id=actor_user_id,
            action="update",
            entity="tenant_template_versions",
            entity_id=str(draft.id),
            subject=f"tenant_templates:{draft.template_id}",
            changes={"order": [current, list(item_ids)]},
        )
    )
    _reload_items(session, draft)


# Publishing ---------------------------------------------------------------------------------


@dataclass
class PlanCheck:
    percentage_total: Decimal
    fixed_total: Decimal
    shares: int  # items with a percentage
    fixed: int  # items with a fixed amount
    problem: str | None


def check_plan(items: Sequence) -> PlanCheck:
    """Whether a version can be published: the percentages add up to exactly 100 (of the
    contract value, or of what the fixed amounts leave of it); a plan of fixed amounts only
    fits a contract of exactly their total."""
    percentages = [i.percentage for i in items if i.fixed_amount is None]
    fixed = [i.fixed_amount for i in items if i.fixed_amount is not None]
    pct_total = sum(percentages, Decimal(0))
    problem = None
    if not items:
        problem = worded("Add at least one {milestone}.")
    elif percentages and pct_total != HUNDRED:
        whole = "of what the fixed amounts leave " if fixed else ""
        problem = (
            f"The percentages add up to {pct_total.normalize():f}%, not 100%: they "
            f"share 100% {whole}of the contract value. Change them before "
            "publishing."
        )
    return PlanCheck(
        percentage_total=pct_total,
        fixed_total=sum(fixed, Decimal(0)),
        shares=len(percentages),
        fixed=len(fixed),
        problem=problem,
    )


def publish(
    session: Session,
    template: TenantTemplate,
    draft: TenantTemplateVersion,
    user_id: int | None,
    note: str = "",
) -> TenantTemplateVersion:
    """Freeze the draft as the template's newest version. Projects made from older versions
    keep theirs."""
    check = check_plan(draft.items)
    if check.problem:
        raise TemplateError({"plan": check.problem})
    note = " ".join(str(note or "").split())
    if len(note) > 500:
        raise TemplateError({"note": "Keep the note under 500 characters."})
    draft.note = note
    draft.published_at = datetime.now(UTC)
    draft.published_by_user_id = user_id
    template.current_version = draft.number
    session.flush()
    return draft


def _clean_details(raw: Mapping) -> tuple[dict, dict[str, str]]:
    errors = {}
    name = " ".join(str(raw.get("name") or "").split())
    if not 2 <= len(name) <= 191:
        errors["name"] = "Name the template (2 to 191 characters)."
    description = str(raw.get("description") or "").strip()
    if len(description) > MAX_TEXT:
        errors["description"] = f"Keep it to {MAX_TEXT:,} characters (it has {len(description):,})."
    return {"name": name, "description": description}, errors


def update_details(session: Session, template: TenantTemplate, raw: Mapping) -> None:
    values, errors = _clean_details(raw)
    if errors:
        raise TemplateError(errors)
    template.name, template.description = values["name"], values["description"]
    session.flush()
