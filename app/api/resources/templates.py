"""/templates: the plan templates a project's milestones can be made from, the product's
library (the same for every workspace) and the workspace's own, read through app.library."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api.problems import Problem, invalid
from app.api.resources.money import MONEY_SCHEMA, Money, money
from app.api.rest import Answer, ListQuery, decode_cursor, encode_cursor, operation, page_by_id
from app.extensions import db
from app.library import services as library
from app.library.models import COMPLEXITIES, PROJECT_SIZES
from app.library.tenant import services as own
from app.library.tenant.models import TenantTemplate, TenantTemplateVersion


class TemplateItemOut(BaseModel):
    position: int
    name: str
    description: str
    percentage: str | None = Field(description="Of the contract value, e.g. 25.0000.")
    fixed_amount: Money | None = Field(None, json_schema_extra=MONEY_SCHEMA)
    due_rule: str
    due_days: int
    is_retention: bool


class LibraryTemplateOut(BaseModel):
    id: int
    key: str
    name: str
    industry: str
    complexity: Literal[COMPLEXITIES]
    project_size: Literal[PROJECT_SIZES]
    region: str | None
    version: int
    description: str


class LibraryTemplateWithItems(LibraryTemplateOut):
    items: list[TemplateItemOut]


class LibraryQuery(ListQuery):
    industry: str | None = Field(None, max_length=40)
    region: str | None = Field(None, max_length=8, description="A country or GST state code.")
    size: Literal[PROJECT_SIZES] | None = None
    complexity: Literal[COMPLEXITIES] | None = None
    q: str | None = Field(None, max_length=100)


class OwnTemplateOut(BaseModel):
    id: int
    name: str
    industry: str
    description: str
    source_key: str | None = Field(description="The library template it was cloned from.")
    current_version: int
    created_at: datetime


class OwnTemplateWithItems(OwnTemplateOut):
    published_version: int | None = Field(description="The newest published version's number.")
    published_version_id: int | None
    items: list[TemplateItemOut] = Field(description="The newest published version's items.")


def _item(item) -> TemplateItemOut:
    fixed = getattr(item, "fixed_amount", None)
    return TemplateItemOut(
        position=item.position,
        name=item.name,
        description=item.description,
        percentage=None if item.percentage is None else f"{item.percentage:.4f}",
        fixed_amount=None if fixed is None else money(fixed),
        due_rule=item.due_rule,
        due_days=item.due_days,
        is_retention=item.is_retention,
    )


def _library_out(template, with_items: bool) -> LibraryTemplateOut:
    facts = {name: getattr(template, name) for name in LibraryTemplateOut.model_fields}
    if with_items:
        return LibraryTemplateWithItems(**facts, items=[_item(i) for i in template.items])
    return LibraryTemplateOut(**facts)


@operation(
    "GET",
    "/templates/library",
    summary="List the template library",
    tag="templates",
    scope="projects:read",
    query=LibraryQuery,
    response=LibraryTemplateOut,
    listed=True,
)
def list_library_templates(query: LibraryQuery):
    """As the library page orders them: by industry, complexity and size, the most specific
    region first. The library is the product's: every workspace reads the same."""
    page_number = 1
    if query.cursor:
        (page_number,) = decode_cursor(query.cursor, 1)
        if not isinstance(page_number, int) or not 2 <= page_number <= 10_000:
            raise invalid(400, {"cursor": "Use the next_cursor of a previous page, unchanged."})
    found = library.search(
        db.session,
        industry=(query.industry or "").strip().lower(),
        region=(query.region or "").strip().upper(),
        size=query.size or "",
        complexity=query.complexity or "",
        q=(query.q or "").strip(),
        page=page_number,
        per_page=query.limit,
    )
    # A cursor past the last page (the library shrank) reads nothing, not the last page again.
    templates = found.templates if found.page == page_number else []
    more = found.page == page_number and found.page < found.pages
    return Answer(
        [_library_out(t, with_items=False) for t in templates],
        next_cursor=encode_cursor([page_number + 1]) if more else None,
    )


@operation(
    "GET",
    "/templates/library/<int:template_id>",
    summary="Get a library template with its milestones",
    tag="templates",
    scope="projects:read",
    response=LibraryTemplateWithItems,
)
def get_library_template(template_id: int):
    template = library.get_template(db.session, template_id)
    if template is None:
        raise Problem(404, "not_found", "There is no template in the library with this id.")
    return Answer(_library_out(template, with_items=True))


@operation(
    "GET",
    "/templates/own",
    summary="List the workspace's own templates",
    tag="templates",
    scope="projects:read",
    query=ListQuery,
    response=OwnTemplateOut,
    listed=True,
)
def list_own_templates(query: ListQuery):
    """Newest first; archived ones are left out, as on the templates page."""
    statement = select(TenantTemplate).where(TenantTemplate.deleted_at.is_(None))
    page, next_cursor = page_by_id(statement, TenantTemplate, query)
    return Answer(
        [OwnTemplateOut.model_validate(t, from_attributes=True) for t in page],
        next_cursor=next_cursor,
    )


@operation(
    "GET",
    "/templates/own/<int:tenant_template_id>",
    summary="Get one of the workspace's templates with its published milestones",
    tag="templates",
    scope="projects:read",
    response=OwnTemplateWithItems,
)
def get_own_template(tenant_template_id: int):
    """With its newest published version's items (none while only a draft exists)."""
    template = own.get_template(db.session, tenant_template_id)
    if template is None:
        raise Problem(404, "not_found", "The workspace has no template with this id.")
    version = db.session.scalar(
        select(TenantTemplateVersion)
        .where(
            TenantTemplateVersion.template_id == template.id,
            TenantTemplateVersion.published_at.is_not(None),
        )
        .order_by(TenantTemplateVersion.number.desc())
        .limit(1)
        .options(selectinload(TenantTemplateVersion.items))
    )
    return Answer(
        OwnTemplateWithItems(
            **OwnTemplateOut.model_validate(template, from_attributes=True).model_dump(),
            published_version=version.number if version else None,
            published_version_id=version.id if version else None,
            items=[_item(i) for i in version.items] if version else [],
        )
    )
