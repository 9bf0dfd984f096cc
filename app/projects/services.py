"""Project and milestone rules: the plan adds up to the contract value to the paisa, due dates
fall on business days of the tenant's calendar, and every status change is recorded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Protocol

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    bindparam,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from app.audit.models import AuditEntry
from app.clients.models import Client
from app.core import signals
from app.core.bulk import copy_rows
from app.core.clock import DATE_RANGE_TEXT, LATEST_DATE, roll_forward, typed_date
from app.core.events import emit
from app.core.money import CURRENCIES, format_money, split_by_percentages, to_money
from app.core.terminology import term, worded
from app.custom_fields.services import ValuesInvalid, values_for_new_record
from app.library.services import PlanShapeError, plan_amounts
from app.projects.models import (
    DUE_RULES,
    MILESTONE_STATUSES,
    Milestone,
    MilestoneTotal,
    MilestoneTransition,
    Project,
)

MAX_VALUE = Decimal("9999999999999999.99")
MILESTONES_PER_PAGE = 50
PLAN_FORM_ROWS = 50  # the most rows the plan form offers
MILESTONE_NAME_LIMIT = 191
PERCENT_UNIT = Decimal("0.0001")  # a milestone's percentage is kept to four places
MAX_DUE_DAYS = 3650

# Which status may follow which, and who moves it: people move the work along; invoicing
# and payments (later) move a milestone from approved/completed to invoiced, partly paid, paid.
TRANSITIONS = {
    "planned": ("in_progress", "cancelled"),
    "in_progress": ("completed", "planned", "cancelled"),
    "completed": ("approved", "in_progress", "cancelled"),
    "approved": ("completed",),
}
ACTION_LABELS = {
    "in_progress": "Start",
    "completed": "Complete",
    "approved": "Approve",
    "planned": "Back to planned",
    "cancelled": "Cancel",
}


class PlanError(ValueError):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Calendar:
    """The tenant's business days: its country and, where known, its state."""

    country: str
    subdivision: str | None = None

    def roll(self, day: date) -> date:
        return roll_forward(day, self.country, self.subdivision)


def _money(text: str, field: str, errors: dict) -> Decimal | None:
    try:
        value = to_money(str(text).replace(",", "").strip())
    except (InvalidOperation, ValueError):
        errors[field] = "Use an amount, e.g. 1500000 or 15,00,000.50."
        return None
    if not Decimal("0.01") <= value <= MAX_VALUE:
        errors[field] = "Use a positive amount."
        return None
    return value


def clean_project(raw: Mapping, tenant_currency: str) -> tuple[dict, dict[str, str]]:
    errors: dict[str, str] = {}
    name = " ".join(str(raw.get("name") or "").split())
    if not 2 <= len(name) <= 191:
        errors["name"] = worded("Name the {project} (2 to 191 characters).")
    value = _money(raw.get("contract_value") or "", "contract_value", errors)
    currency = str(raw.get("currency") or tenant_currency).upper().strip()
    if currency not in CURRENCIES:
        errors["currency"] = "Use a three-letter currency code, e.g. INR."
    start = typed_date(raw.get("start_date"))
    if start is None:
        errors["start_date"] = f"Give the start date {DATE_RANGE_TEXT}."
    terms = str(raw.get("payment_terms") or "").lower()
    days_text = str(raw.get("payment_days") or "").strip()
    days = None
    if terms and terms not in ("net", "mfi", "custom", "immediate"):
        errors["payment_terms"] = worded(
            "Choose Net, MFI, Custom or Immediate, or leave it to the {client}."
        )
    elif terms in ("net", "mfi"):
        if not days_text.isdigit() or not 1 <= int(days_text) <= 365:
            errors["payment_days"] = "Use a whole number of days from 1 to 365."
        else:
            days = int(days_text)
    elif days_text:
        errors["payment_days"] = "Payment days apply to Net and MFI terms only."
    auto_invoice = str(raw.get("auto_invoice") or "off")
    if auto_invoice not in ("off", "draft", "issue"):
        errors["auto_invoice"] = "Choose off, draft or issue."
    return {
        "name": name,
        "contract_value": value,
        "currency": currency,
        "start_date": start,
        "payment_terms": terms or None,
        "payment_days": days,
        "requires_approval": str(raw.get("requires_approval") or "") in ("1", "on", "true"),
        "auto_invoice": auto_invoice,
    }, errors


def effective_terms(project: Project) -> tuple[str, int | None]:
    """The project's own terms when it has them, else its client's."""
    if project.payment_terms:
        return project.payment_terms, project.payment_days
    return project.client.payment_terms, project.client.payment_days


def create_project(
    session: Session,
    client: Client,
    raw: Mapping,
    owner_user_id: int | None,
    tenant_currency: str,
    custom: Mapping | None = None,
) -> Project:
    """A project of `client` from the form's (or the API's) values, with its own fields'
    values in `custom` ({key: value}; errors as "cf.<key>", all of them with the others')."""
    values, errors = clean_project(raw, tenant_currency)
    try:
        values["custom_fields"] = values_for_new_record(session, "projects", custom or {})
    except ValuesInvalid as invalid:
        errors.update(invalid.errors)
    if errors:
        raise PlanError(errors)
    project = Project(client_id=client.id, owner_user_id=owner_user_id, **values)
    session.add(project)
    session.flush()
    return project


# The plan -----------------------------------------------------------------------------------


@dataclass
class PlannedMilestone:
    """One line of a plan as given: an amount or a percentage of the contract, and a due rule."""

    name: str
    due_rule: str
    due_days: int | None = None
    due_date: date | None = None
    amount: Decimal | None = None
    percentage: Decimal | None = None
    description: str | None = None
    deliverables: str | None = None
    is_retention: bool = False


def read_plan(form: Mapping, rows: int = PLAN_FORM_ROWS) -> tuple[list[PlannedMilestone], dict]:
    """The plan form's filled rows (name_<i>, share_<i>, rule_<i>, days_<i>, retention_<i>, and
    mode: percentage or amount) as milestones, and the errors keyed by the field beside which
    they are shown. Nothing is cut or guessed: a share, day count or date the plan cannot take
    is an error on its row."""
    by_percentage = form.get("mode") != "amount"
    plan, errors = [], {}
    for i in range(rows):
        name = " ".join(str(form.get(f"name_{i}") or "").split())
        if not name:
            continue
        row_errors = {}
        if len(name) > MILESTONE_NAME_LIMIT:
            row_errors[f"name_{i}"] = (
                f"Use at most {MILESTONE_NAME_LIMIT} characters (this has {len(name):,})."
            )
        share = _share(str(form.get(f"share_{i}") or ""), by_percentage)
        if isinstance(share, str):
            row_errors[f"share_{i}"] = share
        rule = str(form.get(f"rule_{i}") or "days_after_previous")
        days_text = str(form.get(f"days_{i}") or "").strip()
        due_days = due_date = None
        if rule not in DUE_RULES:
            row_errors[f"rule_{i}"] = "Choose when it falls due."
        elif rule == "date":
            due_date = typed_date(days_text)
            if due_date is None:
                row_errors[f"days_{i}"] = f"Give a date {DATE_RANGE_TEXT}, as YYYY-MM-DD."
        elif not (days_text.isascii() and days_text.isdigit()) or int(days_text) > MAX_DUE_DAYS:
            row_errors[f"days_{i}"] = f"Give a whole number of days from 0 to {MAX_DUE_DAYS:,}."
        else:
            due_days = int(days_text)
        errors.update(row_errors)
        if row_errors:
            continue
        plan.append(
            PlannedMilestone(
                name=name,
                due_rule=rule,
                due_days=due_days,
                due_date=due_date,
                percentage=share if by_percentage else None,
                amount=None if by_percentage else share,
                is_retention=form.get(f"retention_{i}") == "1",
            )
        )
    return plan, errors


def _share(text: str, by_percentage: bool) -> Decimal | str:
    """A milestone's share as typed (a percentage, or an amount with grouping commas), or
    the reason it cannot be one."""
    cleaned = text.replace(",", "").replace("%", "").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        value = None
    if by_percentage:
        if value is None or not value.is_finite() or not 0 < value <= 100:
            return "Give a percentage above 0 and at most 100, e.g. 25 or 12.5."
        if value != value.quantize(PERCENT_UNIT):
            return "Use at most four decimal places."
        return value
    if value is None or not value.is_finite() or not Decimal("0.01") <= value <= MAX_VALUE:
        return "Give an amount above zero, e.g. 5,00,000."
    if value != value.quantize(Decimal("0.01")):
        return "Use at most two decimal places."
    return value


def plan_rows(
    project: Project,
    plan: Sequence[PlannedMilestone],
    calendar: Calendar,
    first_position: int = 1,
    previous_due: date | None = None,
) -> list[dict]:
    """The milestone rows of a whole plan: amounts that add up to the contract value exactly
    (percentages split by largest remainder, to the last paisa) and business-day due dates."""
    values, _ = _plan_values(project, plan, calendar, first_position, previous_due)
    return [dict(zip(PLAN_COLUMNS, row, strict=True)) for row in values]


PLAN_COLUMNS = (
    "project_id",
    "position",
    "name",
    "description",
    "amount",
    "percentage",
    "due_rule",
    "due_days",
    "due_date",
    "deliverables",
    "is_retention",
    "status",
)


def _plan_values(
    project: Project,
    plan: Sequence[PlannedMilestone],
    calendar: Calendar,
    first_position: int = 1,
    previous_due: date | None = None,
) -> tuple[list[tuple], Decimal]:
    """`plan_rows` as tuples in PLAN_COLUMNS order, as COPY takes them, and their total: one
    tuple per milestone and nothing else (a plan may have thousands)."""
    if not plan:
        raise PlanError({"plan": worded("A plan needs at least one {milestone}.")})
    percentages = [m.percentage for m in plan]
    by_percentage = [p is not None for p in percentages]
    if any(by_percentage) and not all(by_percentage):
        raise PlanError(
            {"plan": worded("Give every {milestone} a percentage, or every one an amount.")}
        )
    if all(by_percentage):
        if any(p <= 0 for p in percentages):
            raise PlanError({"plan": worded("Give every {milestone} a percentage above 0.")})
        if sum(percentages) != 100:
            raise PlanError({"plan": "The percentages must add up to 100."})
        amounts = split_by_percentages(project.contract_value, percentages)
        total = sum(amounts)
    else:
        amounts = [to_money(m.amount) for m in plan]
        if any(amount <= 0 for amount in amounts):
            raise PlanError({"plan": worded("Give every {milestone} an amount above zero.")})
        total = sum(amounts)
        if total != project.contract_value:
            currency = project.currency
            raise PlanError(
                {
                    "plan": f"The amounts add up to {format_money(total, currency)}, not the "
                    f"contract value {format_money(project.contract_value, currency)}."
                }
            )
    project_id, start = project.id, project.start_date
    roll, steps = calendar.roll, {}
    rows, previous = [], previous_due or start
    for position, (milestone, amount) in enumerate(zip(plan, amounts, strict=True), first_position):
        rule = milestone.due_rule
        if rule == "date":
            if milestone.due_date is None:
                raise PlanError({"due_date": f"{milestone.name}: give the due date."})
            days, due = None, milestone.due_date
        elif rule in DUE_RULES:
            days = milestone.due_days or 0
            step = steps.get(days)
            if step is None:
                step = steps[days] = timedelta(days=days)
            due = (start if rule == "days_after_start" else previous) + step
        else:
            raise PlanError({"due_rule": f"Unknown due rule {rule!r}."})
        previous = due = roll(due)
        if due > LATEST_DATE:
            raise PlanError(
                {"plan": f"{milestone.name}: falls due after {LATEST_DATE:%d %b %Y}; plan less."}
            )
        if len(milestone.name) > MILESTONE_NAME_LIMIT:
            limit = MILESTONE_NAME_LIMIT
            raise PlanError(
                {"plan": f"Name each {term('milestone')} in at most {limit} characters."}
            )
        rows.append(
            (
                project_id,
                position,
                milestone.name,
                milestone.description,
                amount,
                milestone.percentage,
                rule,
                days,
                due,
                milestone.deliverables,
                milestone.is_retention,
                "planned",
            )
        )
    return rows, total


def replace_plan(
    session: Session,
    project: Project,
    plan: Sequence[PlannedMilestone],
    calendar: Calendar,
    actor_user_id: int | None = None,
) -> int:
    """Set the project's milestones from a plan, only while no milestone has started. Written
    with COPY (a template may make thousands of milestones) and audited as one change."""
    rows, total = _plan_values(project, plan, calendar)
    entry = (
        literal(actor_user_id, BigInteger),
        literal("update"),
        literal("projects"),
        literal(str(project.id)),
        literal(f"clients:{project.client_id}"),
    )
    changes = literal({"milestones": [0, len(rows)], "planned_total": [None, str(total)]}, JSONB)
    mine = Milestone.project_id == project.id
    # A project without milestones (a first plan) has nothing to remove or protect: its audit
    # entry, written only while that is so, is the one statement before the COPY.
    first_plan = select(*entry, changes).where(~exists().where(mine))
    if session.execute(_audit(first_plan)).first() is None:
        # The old plan's size, from the DELETE, replaces the 0.
        old_size = func.jsonb_build_object(
            "milestones", func.jsonb_build_array(func.count(), len(rows))
        )
        _replace_old_plan(session, mine, select(*entry, changes.op("||")(old_size)))
    copy_rows(session, Milestone.__table__, PLAN_COLUMNS, rows)
    # The milestones' own fields start at their defaults (one statement for the whole plan).
    defaults = values_for_new_record(session, "milestones", None)
    if defaults:
        session.execute(update(Milestone).where(mine).values(custom_fields=defaults))
    return len(rows)


def _audit(entry: Select):
    """INSERT … SELECT of one audit entry: (actor, action, entity, entity id, subject, changes)."""
    columns = ("actor_user_id", "action", "entity", "entity_id", "subject", "changes")
    return insert(AuditEntry).from_select(columns, entry).returning(AuditEntry.id)


def _replace_old_plan(session: Session, mine, entry: Select) -> None:
    """Remove the old plan and write its audit entry in one statement, refused when work on it
    had started: a status past planned (then no entry is written), or a recorded transition
    the foreign key protects; either way the savepoint puts the old plan back."""
    old = Milestone.__table__.delete().where(mine).returning(Milestone.status).cte("old")
    not_started = func.count().filter(old.c.status != "planned") == 0
    started = PlanError(
        {"plan": worded("Work has started on this plan; change {milestones} one by one.")}
    )
    try:
        with session.begin_nested():
            if session.execute(_audit(entry.select_from(old).having(not_started))).first() is None:
                raise started
    except IntegrityError:
        raise started from None


class PlanTemplate(Protocol):
    """What a plan can be made from: a library template or a version of a tenant's own.
    `items` have name, description, deliverables, percentage, fixed_amount, due_rule (the
    library's: on_start, days_after_start, days_after_previous), due_days and is_retention."""

    name: str
    items: Sequence

    def unavailable_reason(self) -> str | None: ...

    def provenance(self) -> dict[str, object]: ...


def apply_template(
    session: Session,
    project: Project,
    template: PlanTemplate,
    calendar: Calendar,
    actor_user_id: int | None = None,
) -> int:
    """The template's milestones on this project's contract value and start date; the project
    records where the plan came from (library key and version, or the tenant template's
    version), so later changes to the template leave it as it was."""
    reason = template.unavailable_reason()
    if reason:
        raise PlanError({"template": reason})
    items = sorted(template.items, key=lambda item: item.position)
    amounts: list = [None] * len(items)
    if any(item.fixed_amount is not None for item in items):
        # Fixed amounts first, percentages share the rest: the plan is given in amounts.
        try:
            amounts = plan_amounts(project.contract_value, items, project.currency)
        except PlanShapeError as error:
            raise PlanError({"plan": str(error)}) from None
    plan = [
        PlannedMilestone(
            name=item.name,
            description=item.description or None,
            deliverables=item.deliverables or None,
            percentage=item.percentage if amount is None else None,
            amount=amount,
            # the library's "on_start" is day 0 after the start
            due_rule="days_after_start" if item.due_rule == "on_start" else item.due_rule,
            due_days=item.due_days or 0,
            is_retention=item.is_retention,
        )
        for item, amount in zip(items, amounts, strict=True)
    ]
    count = replace_plan(session, project, plan, calendar, actor_user_id=actor_user_id)
    for column, value in template.provenance().items():
        setattr(project, column, value)
    session.flush()
    return count


def transition(
    session: Session,
    milestone: Milestone,
    to_status: str,
    *,
    user_id: int | None,
    project: Project,
    today: date,
    note: str | None = None,
) -> signals.MilestoneInvoice | None:
    """Move a milestone on; `today` is the tenant's date (the acceptance date on completion).
    A milestone that becomes done is announced (`signals.milestone_done`): the invoice raised
    for it by itself, when its project asks for that, is returned."""
    allowed = TRANSITIONS.get(milestone.status, ())
    if to_status not in allowed:
        raise PlanError(
            {
                "status": f"A {milestone.status.replace('_', ' ')} {term('milestone')} cannot "
                f"become {to_status.replace('_', ' ')}."
            }
        )
    if to_status == "approved" and not project.requires_approval:
        raise PlanError({"status": worded("This {project} does not need approvals.")})
    if to_status == "completed" and milestone.acceptance_date is None:
        milestone.acceptance_date = today
    record_move(session, milestone, to_status, user_id, note)
    if to_status != done_status(project):
        return None
    return signals.announce_milestone_done(
        session, project_id=project.id, milestone_id=milestone.id, user_id=user_id
    )


def done_status(project: Project) -> str:
    """The status at which a milestone is done and its invoice is raised from."""
    return "approved" if project.requires_approval else "completed"


def record_move(
    session: Session,
    milestone: Milestone,
    to_status: str,
    user_id: int | None,
    note: str | None = None,
) -> None:
    """Set a milestone's status and record the move (from, to, who, when). `transition`
    checks a person's move first; invoicing and payments move milestones by their own rules."""
    previous = milestone.status
    session.add(
        MilestoneTransition(
            milestone_id=milestone.id,
            from_status=previous,
            to_status=to_status,
            user_id=user_id,
            note=(note or "").strip()[:255] or None,
        )
    )
    milestone.status = to_status
    session.flush()
    project = session.get(Project, milestone.project_id)
    emit(
        session,
        "milestone.status_changed",
        "milestone",
        milestone.id,
        {
            "milestone_id": milestone.id,
            "project_id": milestone.project_id,
            "status": to_status,
            "previous": previous,
            "client_id": project.client_id,
            "name": milestone.name,
        },
        user_id,
    )
    counts = Counter(
        dict(
            session.execute(
                select(Milestone.status, func.count())
                .where(Milestone.project_id == project.id)
                .group_by(Milestone.status)
            ).all()
        )
    )
    before = counts.copy()
    before[to_status] -= 1
    before[previous] += 1
    was, now = project_status(before), project_status(counts)
    if was != now:
        emit(
            session,
            "project.status_changed",
            "project",
            project.id,
            {
                "project_id": project.id,
                "client_id": project.client_id,
                "status": now,
                "previous": was,
                "name": project.name,
            },
            user_id,
        )


# Milestones whose work is done, whether or not it is invoiced or paid yet.
WORK_DONE = frozenset({"completed", "approved", "invoiced", "partly_paid", "paid"})


def project_status(counts: Mapping[str, int]) -> str:
    """What a project's milestones (how many in each status) say about it: a project keeps no
    status of its own, so this is the one its events and pages use. Cancelled milestones do
    not count, unless there is nothing else."""
    live = {status for status, count in counts.items() if count > 0 and status != "cancelled"}
    if not live:
        return "cancelled" if counts.get("cancelled", 0) > 0 else "planned"
    if live == {"planned"}:
        return "planned"
    if live == {"paid"}:
        return "paid"
    if live <= WORK_DONE:
        return "delivered"
    return "in_progress"


def next_actions(milestone: Milestone, project: Project) -> list[tuple[str, str]]:
    return [
        (status, ACTION_LABELS[status])
        for status in TRANSITIONS.get(milestone.status, ())
        if status != "approved" or project.requires_approval
    ]


# Reading ------------------------------------------------------------------------------------


def get_project(session: Session, project_id: int) -> Project | None:
    """The project with its client (every page of a project shows, or checks, the client)."""
    return session.scalar(
        select(Project)
        .options(joinedload(Project.client))
        .where(Project.id == project_id, Project.deleted_at.is_(None))
    )


def get_milestone(session: Session, project: Project, milestone_id: int) -> Milestone | None:
    return session.scalar(
        select(Milestone).where(Milestone.id == milestone_id, Milestone.project_id == project.id)
    )


def client_projects(session: Session, client: Client) -> list[Project]:
    return list(
        session.scalars(
            select(Project)
            .where(Project.client_id == client.id, Project.deleted_at.is_(None))
            .order_by(Project.start_date)
        )
    )


@dataclass
class PlanSummary:
    milestones: int
    planned_total: Decimal
    by_status: dict[str, Decimal]
    # How many milestones in each status, and what they say of the project (project_status).
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return project_status(self.counts)


@cache
def _summary_query():
    """Built once (the page asks on every view), the project bound at execution."""
    return select(
        MilestoneTotal.status, MilestoneTotal.milestone_count, MilestoneTotal.amount
    ).where(MilestoneTotal.project_id == bindparam("project_id", type_=BigInteger))


def summary(session: Session, project: Project) -> PlanSummary:
    """The plan's totals as the milestones' triggers keep them: a few rows, however long the
    plan."""
    rows = session.execute(_summary_query(), {"project_id": project.id}).all()
    return _summary_of(rows)


def summaries(session: Session, project_ids: Sequence[int]) -> dict[int, PlanSummary]:
    """`summary` of many projects in one query (a list of projects)."""
    rows = session.execute(
        select(
            MilestoneTotal.project_id,
            MilestoneTotal.status,
            MilestoneTotal.milestone_count,
            MilestoneTotal.amount,
        ).where(MilestoneTotal.project_id.in_(project_ids))
    ).all()
    per_project: dict[int, list] = {project_id: [] for project_id in project_ids}
    for project_id, *row in rows:
        per_project[project_id].append(row)
    return {project_id: _summary_of(found) for project_id, found in per_project.items()}


def _summary_of(rows) -> PlanSummary:
    # In the workflow's order (planned first, paid last), whatever order the rows came in.
    rows = sorted(rows, key=lambda row: MILESTONE_STATUSES.index(row[0]))
    by_status = {status: total for status, _, total in rows}
    return PlanSummary(
        milestones=sum(count for _, count, _ in rows),
        planned_total=sum(by_status.values(), Decimal("0.00")),
        by_status=by_status,
        counts={status: count for status, count, _ in rows},
    )


@cache
def _milestone_page_query():
    return (
        select(Milestone)
        .where(
            Milestone.project_id == bindparam("project_id", type_=BigInteger),
            Milestone.position > bindparam("after_position", type_=Integer),
        )
        .order_by(Milestone.position)
        .limit(bindparam("rows", type_=Integer))
    )


def milestone_page(
    session: Session, project: Project, after_position: int = 0, size: int = MILESTONES_PER_PAGE
) -> tuple[list[Milestone], int | None]:
    """One page of the plan in order; the position to continue after, or None at the end."""
    values = {"project_id": project.id, "after_position": after_position, "rows": size + 1}
    rows = list(session.scalars(_milestone_page_query(), values))
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1].position if more else None)
