"""/projects and their milestones: made, planned and moved on through app.projects.services,
with the same rules and messages as the project pages."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from flask import g, url_for
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from app.api.problems import Problem, invalid
from app.api.resources.clients import (
    CUSTOM_IN,
    CUSTOM_OUT,
    CustomChange,
    CustomValue,
    api_errors,
    change_custom_values,
    rule_code,
)
from app.api.resources.money import MONEY_SCHEMA, Money, money
from app.api.rest import (
    Answer,
    ListQuery,
    decode_cursor,
    encode_cursor,
    operation,
    page_by_id,
    require_match,
)
from app.clients import services as clients
from app.core.clock import subdivision_for, tenant_today
from app.extensions import db
from app.projects import services
from app.projects.models import AUTO_INVOICE, DUE_RULES, MILESTONE_STATUSES, Milestone, Project
from app.settings.services import workspace_settings

_AMOUNT_PATTERN = r"^\d{1,16}(\.\d{1,2})?$"
_TERMS = Literal["net", "mfi", "custom", "immediate"]


class ProjectOut(BaseModel):
    id: int
    client_id: int
    name: str
    contract_value: Money = Field(json_schema_extra=MONEY_SCHEMA)
    currency: str
    start_date: date
    payment_terms: _TERMS | None = Field(description="None: the client's terms apply.")
    payment_days: int | None
    requires_approval: bool
    auto_invoice: Literal[AUTO_INVOICE]
    milestones: int = Field(description="How many milestones the plan has.")
    planned_total: Money = Field(json_schema_extra=MONEY_SCHEMA)
    status: Literal["planned", "in_progress", "delivered", "paid", "cancelled"] = Field(
        description="What its milestones say: planned (none started), in_progress, delivered "
        "(every milestone's work done), paid, or cancelled (every milestone cancelled). The "
        "project.status_changed event tells when it moves."
    )
    created_at: datetime
    custom_fields: dict[str, Any] = Field(description=CUSTOM_OUT)


class NewProject(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "client_id": 1,
                    "name": "Warehouse fit-out",
                    "contract_value": "1500000.00",
                    "start_date": "2026-04-01",
                }
            ]
        },
    )

    client_id: int = Field(ge=1, le=2**63 - 1)
    name: str = Field(max_length=191)
    contract_value: str = Field(pattern=_AMOUNT_PATTERN, description="e.g. 1500000.00")
    currency: str | None = Field(None, max_length=3, description="The client's when not given.")
    start_date: date | None = Field(None, description="The workspace's today when not given.")
    payment_terms: _TERMS | None = Field(None, description="Not given: the client's terms.")
    payment_days: int | None = Field(None, ge=1, le=365)
    requires_approval: bool | None = Field(None, description="The workspace's if not given.")
    auto_invoice: Literal[AUTO_INVOICE] | None = Field(
        None, description="The workspace's setting when not given."
    )
    custom_fields: dict[str, CustomValue] | None = Field(
        None, max_length=100, description=CUSTOM_IN
    )


class ProjectQuery(ListQuery):
    client_id: int | None = Field(None, ge=1, le=2**63 - 1)


class MilestoneOut(BaseModel):
    id: int
    project_id: int
    position: int
    name: str
    amount: Money = Field(json_schema_extra=MONEY_SCHEMA)
    percentage: str | None = Field(description="Of the contract value, e.g. 25.0000.")
    due_rule: Literal[DUE_RULES]
    due_days: int | None
    due_date: date
    acceptance_date: date | None
    is_retention: bool
    status: Literal[MILESTONE_STATUSES]
    next_statuses: list[Literal[MILESTONE_STATUSES]] = Field(
        description="The statuses a person may move it to now."
    )
    custom_fields: dict[str, Any] = Field(description=CUSTOM_OUT)


class PlannedMilestoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=191)
    share: str = Field(
        max_length=32, description="A percentage (mode percentage) or an amount (mode amount)."
    )
    due_rule: Literal[DUE_RULES] = "days_after_previous"
    due_days: int | None = Field(None, ge=0, le=services.MAX_DUE_DAYS)
    due_date: date | None = Field(None, description="With due_rule `date`.")
    is_retention: bool = False


class PlanIn(BaseModel):
    """A whole plan, replacing the one there is while no milestone has started."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["percentage", "amount"] = "percentage"
    milestones: list[PlannedMilestoneIn] = Field(min_length=1, max_length=services.PLAN_FORM_ROWS)


class MilestoneMove(BaseModel):
    """A move to another status, a change of the milestone's custom fields, or both (the
    custom fields first: a refused value moves nothing)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal[tuple(services.ACTION_LABELS)] | None = None
    note: str | None = Field(None, max_length=255)
    custom_fields: dict[str, CustomValue] | None = Field(
        None, max_length=100, description=CUSTOM_IN
    )


def project_out(project: Project, plan: services.PlanSummary | None = None) -> ProjectOut:
    plan = plan or services.summary(db.session, project)
    return ProjectOut(
        **{
            name: getattr(project, name)
            for name in ProjectOut.model_fields
            if name not in ("contract_value", "milestones", "planned_total", "status")
        },
        contract_value=money(project.contract_value),
        milestones=plan.milestones,
        planned_total=money(plan.planned_total),
        status=plan.status,
    )


def milestone_out(milestone: Milestone, project: Project) -> MilestoneOut:
    return MilestoneOut(
        **{
            name: getattr(milestone, name)
            for name in MilestoneOut.model_fields
            if name not in ("amount", "percentage", "next_statuses")
        },
        amount=money(milestone.amount),
        percentage=None if milestone.percentage is None else f"{milestone.percentage:.4f}",
        next_statuses=[status for status, _ in services.next_actions(milestone, project)],
    )


def _project(project_id: int) -> Project:
    project = services.get_project(db.session, project_id)
    if project is None:
        raise Problem(404, "not_found", "There is no project with this id.")
    return project


def _milestone(project: Project, milestone_id: int) -> Milestone:
    milestone = services.get_milestone(db.session, project, milestone_id)
    if milestone is None:
        raise Problem(404, "not_found", "This project has no milestone with this id.")
    return milestone


def _calendar() -> services.Calendar:
    tenant = g.api_caller.tenant
    return services.Calendar(tenant.country, subdivision_for(tenant.country, tenant.region))


@operation(
    "GET",
    "/projects",
    summary="List projects",
    tag="projects",
    scope="projects:read",
    query=ProjectQuery,
    response=ProjectOut,
    listed=True,
)
def list_projects(query: ProjectQuery):
    """Newest first."""
    statement = select(Project).where(Project.deleted_at.is_(None))
    if query.client_id:
        statement = statement.where(Project.client_id == query.client_id)
    page, next_cursor = page_by_id(statement, Project, query)
    plans = services.summaries(db.session, [p.id for p in page])
    return Answer([project_out(p, plans[p.id]) for p in page], next_cursor=next_cursor)


@operation(
    "POST",
    "/projects",
    summary="Create a project",
    tag="projects",
    scope="projects:write",
    body=NewProject,
    response=ProjectOut,
    status=201,
)
def create_project(body: NewProject):
    """Checked by the same rules as the new-project page; then give it a plan (PUT …/plan)."""
    client = clients.get_client(db.session, body.client_id)
    if client is None:
        raise invalid(422, {"client_id": "There is no client with this id."})
    workspace = workspace_settings(db.session, g.api_caller.tenant.id)
    approval = (
        workspace.approval_required if body.requires_approval is None else body.requires_approval
    )
    raw = {
        "name": body.name,
        "contract_value": body.contract_value,
        "currency": body.currency or client.currency,
        "start_date": (body.start_date or tenant_today(db.session)).isoformat(),
        "payment_terms": body.payment_terms or "",
        "payment_days": "" if body.payment_days is None else str(body.payment_days),
        "requires_approval": "1" if approval else "",
        "auto_invoice": body.auto_invoice or workspace.auto_invoice,
    }
    try:
        project = services.create_project(
            db.session,
            client,
            raw,
            g.api_caller.acting_user_id,
            g.api_caller.tenant.currency,
            body.custom_fields,
        )
    except services.PlanError as error:
        raise invalid(422, api_errors(error.errors), rule_code) from None
    return Answer(
        project_out(project),
        status=201,
        location=url_for("api.get_project", project_id=project.id),
    )


@operation(
    "GET",
    "/projects/<int:project_id>",
    summary="Get a project",
    tag="projects",
    scope="projects:read",
    response=ProjectOut,
)
def get_project(project_id: int):
    return Answer(project_out(_project(project_id)))


@operation(
    "PATCH",
    "/projects/<int:project_id>",
    summary="Change a project's custom fields",
    tag="projects",
    scope="projects:write",
    body=CustomChange,
    response=ProjectOut,
    conditional=True,
)
def update_project(project_id: int, body: CustomChange):
    """Only the custom fields sent change, each checked by its rules (422 per field)."""
    project = _project(project_id)
    require_match(project_out(project))
    change_custom_values("projects", project, body.custom_fields)
    return Answer(project_out(project))


@operation(
    "PUT",
    "/projects/<int:project_id>/plan",
    summary="Set a project's plan",
    tag="projects",
    scope="projects:write",
    body=PlanIn,
    response=ProjectOut,
    conditional=True,
    refusals=(409,),
)
def replace_plan(project_id: int, body: PlanIn):
    """The plan page's rules: every share a percentage adding up to 100, or every one an
    amount adding up to the contract value; refused (409) once work on a milestone started.
    If-Match takes the project's ETag (its milestone count and planned total change with it)."""
    project = _project(project_id)
    require_match(project_out(project))
    if any(status != "planned" for status in services.summary(db.session, project).by_status):
        raise Problem(
            409,
            "plan_started",
            "Work has started on this plan.",
            "Move its milestones one by one (PATCH a milestone) instead.",
        )
    form = {"mode": body.mode}
    for i, row in enumerate(body.milestones):
        form |= {
            f"name_{i}": row.name,
            f"share_{i}": row.share,
            f"rule_{i}": row.due_rule,
            f"days_{i}": row.due_date.isoformat()
            if row.due_rule == "date" and row.due_date
            else ("" if row.due_days is None else str(row.due_days)),
            f"retention_{i}": "1" if row.is_retention else "",
        }
    plan, errors = services.read_plan(form)
    if errors:
        raise invalid(422, {_plan_field(key, body): message for key, message in errors.items()})
    try:
        services.replace_plan(
            db.session, project, plan, _calendar(), actor_user_id=g.api_caller.acting_user_id
        )
    except services.PlanError as error:
        raise invalid(422, {_plan_field(k, body): v for k, v in error.errors.items()}) from None
    return Answer(project_out(project))


_PLAN_FIELDS = {"name": "name", "share": "share", "rule": "due_rule"}


def _plan_field(key: str, body: PlanIn) -> str:
    """The plan form's field (`share_2`) as the body's (`milestones.2.share`); the form's one
    day field is the body's due_date or due_days, by the row's rule."""
    name, _, row = key.rpartition("_")
    if not row.isdigit():
        return "milestones" if key == "plan" else key
    if name == "days":
        rule = body.milestones[int(row)].due_rule
        return f"milestones.{row}.{'due_date' if rule == 'date' else 'due_days'}"
    return f"milestones.{row}.{_PLAN_FIELDS.get(name, name)}"


@operation(
    "GET",
    "/projects/<int:project_id>/milestones",
    summary="List a project's milestones",
    tag="projects",
    scope="projects:read",
    query=ListQuery,
    response=MilestoneOut,
    listed=True,
)
def list_milestones(project_id: int, query: ListQuery):
    """In the plan's order."""
    project = _project(project_id)
    after = 0
    if query.cursor:
        (after,) = decode_cursor(query.cursor, 1)
        if not isinstance(after, int) or not 0 <= after < 2**31:
            raise invalid(400, {"cursor": "Use the next_cursor of a previous page, unchanged."})
    rows, next_after = services.milestone_page(db.session, project, after, query.limit)
    return Answer(
        [milestone_out(m, project) for m in rows],
        next_cursor=None if next_after is None else encode_cursor([next_after]),
    )


@operation(
    "GET",
    "/projects/<int:project_id>/milestones/<int:milestone_id>",
    summary="Get a milestone",
    tag="projects",
    scope="projects:read",
    response=MilestoneOut,
)
def get_milestone(project_id: int, milestone_id: int):
    project = _project(project_id)
    return Answer(milestone_out(_milestone(project, milestone_id), project))


@operation(
    "PATCH",
    "/projects/<int:project_id>/milestones/<int:milestone_id>",
    summary="Move a milestone on, or change its custom fields",
    tag="projects",
    scope="projects:write",
    body=MilestoneMove,
    response=MilestoneOut,
    conditional=True,
)
def move_milestone(project_id: int, milestone_id: int, body: MilestoneMove):
    """To one of its `next_statuses`, as on the project page; a milestone becoming done raises
    its invoice when the project asks for that."""
    project = _project(project_id)
    milestone = _milestone(project, milestone_id)
    require_match(milestone_out(milestone, project))
    if body.status is None and body.custom_fields is None:
        raise invalid(422, {"status": "Send a status to move to, custom_fields, or both."})
    if body.custom_fields is not None:
        change_custom_values("milestones", milestone, body.custom_fields)
    if body.status is None:
        return Answer(milestone_out(milestone, project))
    try:
        services.transition(
            db.session,
            milestone,
            body.status,
            user_id=g.api_caller.acting_user_id,
            project=project,
            today=tenant_today(db.session),
            note=body.note,
        )
    except services.PlanError as error:
        raise invalid(422, error.errors) from None
    return Answer(milestone_out(milestone, project))
