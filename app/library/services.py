"""The template library: loading the shipped data files, browsing, and previewing a plan.

Data files (`data/<industry>.json`, `data/<industry>_<country>.json`) are compact: phase sets
per complexity level, project sizes that scale durations and repeat running bills, and regional
variants that change a few numbers and add notes. A note is text, or {"text", "source"} when it
states a legal fact: the source it was checked against is printed with it. `expand_file` turns
one file into full template definitions; `load_library` upserts them by key (idempotent: the
version goes up only when the content changed, and a template no longer shipped is retired,
never deleted, as a tenant may have cloned it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, selectinload

from app.core.money import format_money, split_by_percentages
from app.core.regions import region_for
from app.library.models import (
    COMPLEXITIES,
    DUE_RULES,
    PROJECT_SIZES,
    LibraryTemplate,
    LibraryTemplateItem,
)

DATA_DIR = Path(__file__).parent / "data"
HUNDRED = Decimal(100)
PCT_UNIT = Decimal("0.0001")  # NUMERIC(7,4)
PER_PAGE = 20
COUNTRIES = {"IN": "India", "AU": "Australia", "PH": "Philippines"}
GUIDANCE = (
    "Guidance only, not legal or tax advice: rates, thresholds and practice change and differ "
    "by contract; check the current rules and your contract with your adviser."
)


class LibraryDataError(ValueError):
    """A data file does not describe valid templates."""


# Expanding the data files ---------------------------------------------------------------------


@dataclass
class ItemDef:
    name: str
    percentage: Decimal
    due_rule: str
    due_days: int
    description: str = ""
    deliverables: str = ""
    is_retention: bool = False

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "percentage": f"{self.percentage:.4f}",
            "due_rule": self.due_rule,
            "due_days": self.due_days,
            "description": self.description,
            "deliverables": self.deliverables,
            "is_retention": self.is_retention,
        }


@dataclass
class TemplateDef:
    key: str
    name: str
    industry: str
    complexity: str
    project_size: str
    region: str | None
    description: str
    notes: str
    items: list[ItemDef] = field(default_factory=list)

    def content_hash(self) -> str:
        content = {
            "name": self.name,
            "industry": self.industry,
            "complexity": self.complexity,
            "project_size": self.project_size,
            "region": self.region,
            "description": self.description,
            "notes": self.notes,
            "items": [i.as_dict() for i in self.items],
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    def check(self) -> None:
        where = f"template {self.key}"
        if self.complexity not in COMPLEXITIES:
            raise LibraryDataError(f"{where}: unknown complexity {self.complexity!r}")
        if self.project_size not in PROJECT_SIZES:
            raise LibraryDataError(f"{where}: unknown project size {self.project_size!r}")
        if not self.items:
            raise LibraryDataError(f"{where}: no milestones")
        total = sum((i.percentage for i in self.items), Decimal(0))
        if total != HUNDRED:
            raise LibraryDataError(f"{where}: percentages add up to {total}, not 100")
        for item in self.items:
            if item.percentage <= 0 or item.percentage != item.percentage.quantize(PCT_UNIT):
                raise LibraryDataError(f"{where}: bad percentage {item.percentage} ({item.name})")
            if item.due_rule not in DUE_RULES or item.due_days < 0:
                raise LibraryDataError(f"{where}: bad due rule for {item.name}")


def _split_percentage(total: Decimal, parts: int) -> list[Decimal]:
    """`total` per cent in `parts` near-equal shares of 0.0001 % that add up exactly (the
    leftover units go to the first shares)."""
    units = int(total / PCT_UNIT)
    if Decimal(units) * PCT_UNIT != total:
        raise LibraryDataError(f"percentage {total} has more than 4 decimal places")
    base, left = divmod(units, parts)
    return [Decimal(base + (1 if i < left else 0)) * PCT_UNIT for i in range(parts)]


def _phases_with_overrides(phases: list[dict], overrides: dict) -> list[dict] | None:
    """The phases with a variant's `set` applied: {"advance": "10", "retention": "5",
    "retention_days": 730}. The change in percentage goes to (or comes from) the phase marked
    role "balance". None when the phase set lacks a role the variant sets."""
    phases = [dict(p) for p in phases]
    by_role = {p.get("role"): p for p in phases if p.get("role")}
    delta = Decimal(0)
    for role in ("advance", "retention"):
        if role in overrides:
            if role not in by_role or "balance" not in by_role:
                return None
            new = Decimal(str(overrides[role]))
            delta += Decimal(str(by_role[role]["pct"])) - new
            by_role[role]["pct"] = str(new)
    if "retention_days" in overrides:
        if "retention" not in by_role:
            return None
        by_role["retention"]["days"] = overrides["retention_days"]
    if delta:
        balance = by_role["balance"]
        balance["pct"] = str(Decimal(str(balance["pct"])) + delta)
        if Decimal(balance["pct"]) <= 0:
            raise LibraryDataError("a variant leaves nothing for the balancing phase")
    return phases


def _items(phases: list[dict], size: dict) -> list[ItemDef]:
    items: list[ItemDef] = []
    factor = Decimal(str(size.get("days", 1)))
    for phase in phases:
        pct = Decimal(str(phase["pct"]))
        days = int(phase.get("days", 0))
        if not phase.get("fixed") and phase.get("rule", "on_start") != "on_start":
            days = int((Decimal(days) * factor).to_integral_value())
        common = {
            "due_rule": phase.get("rule", "on_start"),
            "description": phase.get("description", ""),
            "deliverables": phase.get("deliverables", ""),
            "is_retention": bool(phase.get("retention", False)),
        }
        if phase.get("repeat"):
            count = int(size.get("repeat", 1))
            for n, share in enumerate(_split_percentage(pct, count), start=1):
                name = phase["name"].replace("{n}", str(n)).replace("{count}", str(count))
                items.append(ItemDef(name=name, percentage=share, due_days=days, **common))
        else:
            items.append(ItemDef(name=phase["name"], percentage=pct, due_days=days, **common))
    return items


def _note_text(note: str | dict) -> str:
    if isinstance(note, str):
        return note
    return f"{note['text']} (Source: {note['source']})"


def _notes(*groups: list) -> str:
    lines = [_note_text(note) for group in groups for note in group]
    return "\n".join([*lines, GUIDANCE])


def expand_file(data: dict) -> list[TemplateDef]:
    """Every template one industry file describes: each level × each size, then the regional
    variants (for the levels and sizes they name). Keys start with the file's `key` (a
    country's file of an industry: "construction-au"), else the industry."""
    industry, label = data["industry"], data["name"]
    prefix = data.get("key", industry)
    templates: list[TemplateDef] = []
    for level_name, level in data["levels"].items():
        for size_name, size in data["sizes"].items():
            sizes = level.get("sizes")
            if sizes and size_name not in sizes:
                continue
            templates.append(
                TemplateDef(
                    key=f"{prefix}/{level_name}/{size_name}",
                    name=f"{label}: {level.get('title', level_name.capitalize())}, "
                    f"{size['label'].lower()} project",
                    industry=industry,
                    complexity=level_name,
                    project_size=size_name,
                    region=data.get("region"),
                    description=f"{level['summary']} {size.get('summary', '')}".strip(),
                    notes=_notes(data.get("notes", []), level.get("notes", [])),
                    items=_items(level["phases"], size),
                )
            )
    for variant in data.get("variants", []):
        for level_name in variant["levels"]:
            level = data["levels"][level_name]
            phases = _phases_with_overrides(level["phases"], variant.get("set", {}))
            if phases is None:
                raise LibraryDataError(
                    f"{industry} variant {variant['slug']}: level {level_name} lacks a role it sets"
                )
            for size_name in variant["sizes"]:
                size = data["sizes"][size_name]
                templates.append(
                    TemplateDef(
                        key=f"{prefix}/{level_name}/{size_name}/{variant['slug']}",
                        name=f"{label}: {level.get('title', level_name.capitalize())}, "
                        f"{size['label'].lower()} project — {variant['state']}",
                        industry=industry,
                        complexity=level_name,
                        project_size=size_name,
                        region=variant["region"],
                        description=f"{level['summary']} {variant.get('summary', '')}".strip(),
                        notes=_notes(
                            variant.get("notes", []), data.get("notes", []), level.get("notes", [])
                        ),
                        items=_items(phases, size),
                    )
                )
    for template in templates:
        template.check()
    return templates


def read_library(directory: Path = DATA_DIR) -> list[TemplateDef]:
    """All templates of all data files, checked; keys unique across files."""
    templates: list[TemplateDef] = []
    for path in sorted(directory.glob("*.json")):
        try:
            templates.extend(expand_file(json.loads(path.read_text(encoding="utf-8"))))
        except (KeyError, TypeError, ArithmeticError) as error:
            raise LibraryDataError(f"{path.name}: {error!r}") from error
        except LibraryDataError as error:
            raise LibraryDataError(f"{path.name}: {error}") from error
    keys = [t.key for t in templates]
    if len(keys) != len(set(keys)):
        raise LibraryDataError(f"duplicate keys: {sorted({k for k in keys if keys.count(k) > 1})}")
    return templates


@cache
def industry_labels(directory: Path = DATA_DIR) -> dict[str, str]:
    """Industry key -> its name as shown ("it_services" -> "IT services")."""
    labels = {}
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        labels[data["industry"]] = data["name"]
    return labels


# Loading ------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    retired: int = 0


def _fill(row: LibraryTemplate, definition: TemplateDef, digest: str, items: bool) -> None:
    for name in (
        "name",
        "industry",
        "complexity",
        "project_size",
        "region",
        "description",
        "notes",
    ):
        setattr(row, name, getattr(definition, name))
    row.content_hash = digest
    row.retired = False
    row.updated_at = datetime.now(UTC)
    if not items:
        return
    row.items = [
        LibraryTemplateItem(position=n, **item.__dict__)
        for n, item in enumerate(definition.items, start=1)
    ]


def load_library(session: Session, definitions: list[TemplateDef] | None = None) -> LoadReport:
    """Upsert the shipped templates by key; flushes, the caller commits. Running it again
    changes nothing; a changed template gets version + 1; one no longer shipped is retired."""
    definitions = read_library() if definitions is None else definitions
    existing = {
        t.key: t
        for t in session.scalars(
            select(LibraryTemplate).options(selectinload(LibraryTemplate.items))
        )
    }
    report = LoadReport()
    for definition in definitions:
        digest = definition.content_hash()
        row = existing.pop(definition.key, None)
        if row is None:
            row = LibraryTemplate(key=definition.key, version=1)
            _fill(row, definition, digest, items=True)
            session.add(row)
            report.added += 1
        elif row.content_hash != digest:
            row.items.clear()
            session.flush()  # the old items go before new ones take their positions
            row.version += 1
            _fill(row, definition, digest, items=True)
            report.updated += 1
        elif row.retired:  # shipped again, unchanged
            _fill(row, definition, digest, items=False)
            report.updated += 1
        else:
            report.unchanged += 1
    for row in existing.values():
        if not row.retired:
            row.retired = True
            row.updated_at = datetime.now(UTC)
            report.retired += 1
    session.flush()
    return report


# Browsing -----------------------------------------------------------------------------------


@dataclass
class LibraryFilters:
    industry: str = ""
    region: str = ""
    size: str = ""
    complexity: str = ""
    q: str = ""
    page: int = 1

    @classmethod
    def from_args(cls, args) -> LibraryFilters:
        def pick(key, allowed):
            value = (args.get(key) or "").strip()
            return value if value in allowed else ""

        page = (args.get("page") or "").strip()
        region = (args.get("region") or "").strip().upper()
        return cls(
            industry=(args.get("industry") or "").strip().lower()[:40],
            region=region if region.replace("-", "").isalnum() and len(region) <= 8 else "",
            size=pick("size", PROJECT_SIZES),
            complexity=pick("complexity", COMPLEXITIES),
            q=(args.get("q") or "").strip()[:100],
            page=min(int(page), 10_000) if page.isdigit() and int(page) >= 1 else 1,
        )

    def as_args(self, **changes) -> dict[str, str]:
        values = {
            "industry": self.industry,
            "region": self.region,
            "size": self.size,
            "complexity": self.complexity,
            "q": self.q,
            "page": self.page,
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v and not (k == "page" and v == 1)}

    @property
    def active(self) -> bool:
        return bool(self.industry or self.region or self.size or self.complexity or self.q)


@dataclass
class LibraryPage:
    templates: list[LibraryTemplate]
    total: int
    page: int
    pages: int


def region_country(region: str | None) -> str | None:
    """The country of a template region: an Indian state's GST code ("29") is India's, a state
    or region elsewhere is named with its country ("AU-NSW", "PH-NCR")."""
    if not region:
        return None
    if region.isdigit():
        return "IN"
    return region.split("-", 1)[0] if "-" in region else region


def library_region(country: str, region: str | None) -> str:
    """A workspace's state or region as the library names template regions ("" when none):
    an Indian state by its GST code, elsewhere the country and the state's code ("AU-NSW")."""
    code = region_for(country, region)
    if not code:
        return ""
    country = country.upper()
    return code if country == "IN" else f"{country}-{code}"


def region_matches(region: str) -> list[str | None]:
    """The template regions that apply in `region`: a state's own templates, its country's
    and the global ones; a country's own and the global ones."""
    country = region_country(region)
    if country != region:
        return [region, country, None]
    return [region, None]


def _of_country(country: str):
    """SQL: the template is the country's own or one of its states' (India's by GST code)."""
    column = LibraryTemplate.region
    if country == "IN":
        return or_(column == "IN", column.regexp_match("^[0-9]+$"))
    return or_(column == country, column.like(f"{country}-%"))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(
    session: Session,
    industry: str = "",
    region: str = "",
    size: str = "",
    complexity: str = "",
    q: str = "",
    page: int = 1,
    per_page: int = PER_PAGE,
    home_region: str = "",
    home_country: str = "",
) -> LibraryPage:
    """Templates in use (not retired), filtered; the most specific region first within each
    industry, level and size. With the workspace's own state (`home_region`, as
    `library_region` names it) that state's variants come first and the other states' after
    its country's and the global templates; with its country (`home_country`, else the home
    state's) other countries' templates come after all of these. Offset pages: the library
    holds hundreds of rows, not millions."""
    query = select(LibraryTemplate).where(LibraryTemplate.retired.is_(False))
    if industry:
        query = query.where(LibraryTemplate.industry == industry)
    if region:
        places = region_matches(region)
        named = [p for p in places if p is not None]
        query = query.where(
            or_(LibraryTemplate.region.in_(named), LibraryTemplate.region.is_(None))
        )
    if size:
        query = query.where(LibraryTemplate.project_size == size)
    if complexity:
        query = query.where(LibraryTemplate.complexity == complexity)
    if q:
        pattern = f"%{_escape_like(q)}%"
        query = query.where(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (
                        LibraryTemplate.name,
                        LibraryTemplate.description,
                        LibraryTemplate.notes,
                        LibraryTemplate.key,
                    )
                )
            )
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages)
    level = case({c: n for n, c in enumerate(COMPLEXITIES)}, value=LibraryTemplate.complexity)
    size_order = case(
        {s: n for n, s in enumerate(PROJECT_SIZES)}, value=LibraryTemplate.project_size
    )
    # Another country's templates after all of the workspace's country's and the global ones;
    # within each industry, level and size a state's own variants, then its country's, then
    # the global ones, and with a home state the other states' variants after all of them.
    home_country = home_country.upper() or (region_country(home_region) or "")
    foreign = (
        [case((LibraryTemplate.region.is_(None), 0), (_of_country(home_country), 0), else_=1)]
        if home_country
        else []
    )
    ranks = [(LibraryTemplate.region == home_region, 0)] if home_region else []
    specific = case(
        *ranks,
        (LibraryTemplate.region.is_(None), 2),
        (LibraryTemplate.region.in_(list(COUNTRIES)), 1),
        else_=3 if home_region else 0,
    )
    query = query.order_by(
        *foreign,
        LibraryTemplate.industry,
        level,
        size_order,
        specific,
        LibraryTemplate.region,
        LibraryTemplate.id,
    )
    rows = session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    return LibraryPage(templates=list(rows), total=total, page=page, pages=pages)


def state_rules(session: Session, region: str) -> tuple[int, list[str]]:
    """How many templates the library has for this state (a `library_region`), and the first
    note of each, once: the rule that is the state's own (its security of payment Act, its
    welfare board)."""
    notes = session.scalars(
        select(LibraryTemplate.notes)
        .where(LibraryTemplate.region == region, LibraryTemplate.retired.is_(False))
        .order_by(LibraryTemplate.key)
    ).all()
    return len(notes), list(dict.fromkeys(note.split("\n", 1)[0] for note in notes))


def industries(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(LibraryTemplate.industry)
            .where(LibraryTemplate.retired.is_(False))
            .distinct()
            .order_by(LibraryTemplate.industry)
        )
    )


def regions(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(LibraryTemplate.region)
            .where(LibraryTemplate.retired.is_(False), LibraryTemplate.region.is_not(None))
            .distinct()
            .order_by(LibraryTemplate.region)
        )
    )


def get_template(session: Session, template_id: int) -> LibraryTemplate | None:
    return session.scalar(
        select(LibraryTemplate)
        .where(LibraryTemplate.id == template_id, LibraryTemplate.retired.is_(False))
        .options(selectinload(LibraryTemplate.items))
    )


# Previewing ---------------------------------------------------------------------------------


@dataclass
class PreviewItem:
    position: int
    name: str
    description: str
    deliverables: str
    percentage: Decimal | None  # None: a fixed amount (tenant templates)
    amount: Decimal
    due_rule: str
    due_days: int
    offset_days: int  # days from the start of the contract
    is_retention: bool


class PlanShapeError(ValueError):
    """A template's shares cannot make a plan on this contract value."""


def plan_amounts(contract_value: Decimal, items: Sequence, currency: str) -> list[Decimal]:
    """Each item's amount on `contract_value` (in `currency`, for the errors' figures), adding
    up to it exactly. Fixed amounts come
    first; the percentages share what is left (largest remainder, to the paisa), so they must
    add up to 100. Items are anything with `percentage` and `fixed_amount` (one of them None):
    the library's items and a tenant's."""
    fixed = [item.fixed_amount for item in items]
    rest = contract_value - sum((f for f in fixed if f is not None), Decimal(0))
    if rest < 0:
        raise PlanShapeError(
            f"The fixed amounts add up to {format_money(contract_value - rest, currency)}, "
            f"more than the contract value {format_money(contract_value, currency)}."
        )
    shares = [item.percentage for item in items if item.fixed_amount is None]
    if not shares:
        if rest:
            raise PlanShapeError(
                f"The fixed amounts add up to {format_money(contract_value - rest, currency)}, "
                f"not the contract value {format_money(contract_value, currency)}."
            )
        return list(fixed)
    try:
        split = iter(split_by_percentages(rest, shares))
    except ValueError as error:
        raise PlanShapeError(f"{str(error).capitalize()}.") from None
    return [f if f is not None else next(split) for f in fixed]


def preview(template, contract_value: Decimal, currency: str) -> list[PreviewItem]:
    """The plan of `template` (a library template or a tenant's version: anything with
    `items`) on `contract_value`: amounts that add up to it exactly and each milestone's due
    day counted from the start."""
    items = sorted(template.items, key=lambda i: i.position)
    amounts = plan_amounts(contract_value, items, currency)
    out: list[PreviewItem] = []
    previous = 0
    for item, amount in zip(items, amounts, strict=True):
        if item.due_rule == "on_start":
            offset = 0
        elif item.due_rule == "days_after_start":
            offset = item.due_days
        else:
            offset = previous + item.due_days
        previous = offset
        out.append(
            PreviewItem(
                position=item.position,
                name=item.name,
                description=item.description,
                deliverables=item.deliverables,
                percentage=item.percentage,
                amount=amount,
                due_rule=item.due_rule,
                due_days=item.due_days,
                offset_days=offset,
                is_retention=item.is_retention,
            )
        )
    return out
