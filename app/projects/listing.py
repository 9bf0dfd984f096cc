"""The projects list: every project of the workspace with its client, contract value, how far
its plan has come and what of it was paid, filtered by client and status (in the URL), in
numbered pages.

A project has no stored status: it is read from its milestones, in one aggregate per page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import case, func, select, true
from sqlalchemy.orm import Session

from app.clients.models import Client
from app.core.money import to_money
from app.core.request_input import row_id
from app.custom_fields.models import CustomField
from app.custom_fields.services import ListChoice
from app.projects.models import Milestone, Project

PAGE_SIZE = 50
COUNT_CAP = 10_000  # beyond this the list says "10,000+" instead of counting every project
STATUSES = {
    "not_started": "Not started",
    "in_progress": "In progress",
    "done": "Work done",
    "paid": "Paid",
}
# Milestones whose work is over (done, billed or paid) or that will not be done.
FINISHED = ("completed", "approved", "invoiced", "partly_paid", "paid", "cancelled")
SETTLED = ("paid", "cancelled")


@dataclass(frozen=True)
class ProjectFilters:
    """What the list shows, in the URL: a client, a status, and the projects' own fields
    offered in lists (filters, the order, columns: `listed`)."""

    client_id: int | None = None
    status: str = ""
    listed: ListChoice = field(default_factory=ListChoice)

    @classmethod
    def from_args(cls, args: Mapping, fields: Sequence[CustomField] = ()) -> ProjectFilters:
        status = (args.get("status") or "").strip()
        return cls(
            client_id=row_id(args.get("client_id")),
            status=status if status in STATUSES else "",
            listed=ListChoice.from_args(args, fields),
        )

    def as_args(self) -> dict[str, str]:
        values = {"client_id": str(self.client_id) if self.client_id else "", "status": self.status}
        return {key: value for key, value in values.items() if value} | self.listed.as_args()


def _progress():
    """Per project row: its status from its milestones, and the amounts paid. Asked for each
    project the page lists (an index walk of its milestones), not grouped over every
    project's milestones on each view."""
    count = func.count(Milestone.id)
    planned = func.count(Milestone.id).filter(Milestone.status == "planned")
    finished = func.count(Milestone.id).filter(Milestone.status.in_(FINISHED))
    settled = func.count(Milestone.id).filter(Milestone.status.in_(SETTLED))
    status = case(
        (count == planned, "not_started"),
        (count == settled, "paid"),
        (count == finished, "done"),
        else_="in_progress",
    )
    return (
        select(
            status.label("status"),
            count.label("milestones"),
            func.coalesce(func.sum(Milestone.amount).filter(Milestone.status == "paid"), 0).label(
                "paid"
            ),
        )
        .where(Milestone.project_id == Project.id)
        .lateral("progress")
    )


@dataclass(frozen=True)
class ProjectRow:
    project: Project
    client_name: str
    status: str
    milestones: int
    paid: Decimal


@dataclass
class ProjectPage:
    rows: list[ProjectRow]
    page: int
    pages: int
    count: int
    count_is_capped: bool = False


def _order(filters: ProjectFilters) -> tuple:
    """Newest start first, or by the chosen field (its indexed sort expression), then id."""
    custom = filters.listed.order("projects")
    if custom is None:
        return Project.start_date.desc(), Project.id.desc()
    return custom, Project.id.desc() if filters.listed.sort.startswith("-") else Project.id.asc()


def list_projects(
    session: Session, filters: ProjectFilters, page: int = 1, page_size: int = PAGE_SIZE
) -> ProjectPage:
    """One page of the filtered projects (not deleted, of clients not deleted), newest start
    first; counted up to COUNT_CAP ("10,000+" beyond)."""
    progress = _progress()
    conditions = [Project.deleted_at.is_(None), Client.deleted_at.is_(None)]
    if filters.client_id:
        conditions.append(Project.client_id == filters.client_id)
    conditions.extend(filters.listed.clauses(session, Project.custom_fields))
    matching = select(Project.id).join(Client, Client.id == Project.client_id)
    if filters.status:
        # Only a status filter needs each project's milestones to count it.
        matching = matching.join(progress, true())
        conditions.append(progress.c.status == filters.status)
    counted = session.scalar(
        select(func.count()).select_from(
            matching.where(*conditions).limit(COUNT_CAP + 1).subquery()
        )
    )
    pages = max(1, -(-counted // page_size))
    page = min(max(page, 1), pages)
    rows = session.execute(
        select(
            Project, Client.short_name, progress.c.status, progress.c.milestones, progress.c.paid
        )
        .join(Client, Client.id == Project.client_id)
        .join(progress, true())
        .where(*conditions)
        .order_by(*_order(filters))
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return ProjectPage(
        [ProjectRow(p, name, status, n, to_money(paid)) for p, name, status, n, paid in rows],
        page,
        pages,
        min(counted, COUNT_CAP),
        counted > COUNT_CAP,
    )
