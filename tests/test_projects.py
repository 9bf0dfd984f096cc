"""Projects and milestone plans: amounts add up to the contract value to the paisa, due dates
fall on business days, status changes are recorded, and pages serve large plans in pages."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from app.audit.models import AuditEntry
from app.clients.models import Client
from app.core.clock import is_business_day, roll_forward, subdivision_for
from app.projects import services
from app.projects.models import Milestone, MilestoneTransition, Project
from tests.helpers import csrf_token_from, tenant_session

INDIA = services.Calendar("IN")


def project_with(value: str, start: date = date(2027, 1, 1), approval: bool = False) -> Project:
    project = Project(
        id=1,
        client_id=1,
        name="Tower A",
        contract_value=Decimal(value),
        currency="INR",
        start_date=start,
        requires_approval=approval,
    )
    return project


def by_percent(*shares, rule="days_after_previous", days=30):
    return [
        services.PlannedMilestone(name=f"M{i}", due_rule=rule, due_days=days, percentage=Decimal(s))
        for i, s in enumerate(shares)
    ]


@pytest.mark.parametrize("value", ["1000001.00", "3333333.33", "0.05", "99999999.99", "100.00"])
@pytest.mark.parametrize(
    "shares", [("33.3333", "33.3333", "33.3334"), ("10", "40", "45", "5"), ("12.5",) * 8, ("100",)]
)
def test_percentage_plans_add_up_to_the_contract_value_exactly(value, shares):
    rows = services.plan_rows(project_with(value), by_percent(*shares), INDIA)
    assert sum(r["amount"] for r in rows) == Decimal(value)
    assert all(r["amount"] == r["amount"].quantize(Decimal("0.01")) for r in rows)


def test_plans_that_do_not_add_up_are_refused_with_the_reason():
    with pytest.raises(services.PlanError, match="add up to 100"):
        services.plan_rows(project_with("1000"), by_percent("50", "40"), INDIA)
    amounts = [
        services.PlannedMilestone("A", "days_after_start", 0, amount=Decimal("600")),
        services.PlannedMilestone("B", "days_after_start", 30, amount=Decimal("300")),
    ]
    with pytest.raises(services.PlanError, match="₹900.00, not the contract value ₹1,000.00"):
        services.plan_rows(project_with("1000"), amounts, INDIA)
    mixed = [
        services.PlannedMilestone("A", "days_after_start", 0, percentage=Decimal("50")),
        services.PlannedMilestone("B", "days_after_start", 30, amount=Decimal("500")),
    ]
    with pytest.raises(services.PlanError, match="every one an amount"):
        services.plan_rows(project_with("1000"), mixed, INDIA)


def test_due_dates_follow_their_rules_and_roll_to_business_days():
    plan = [
        services.PlannedMilestone("Advance", "days_after_start", 0, percentage=Decimal(10)),
        services.PlannedMilestone("Stage 1", "days_after_previous", 25, percentage=Decimal(40)),
        services.PlannedMilestone(
            "Stage 2", "date", None, date(2027, 3, 6), percentage=Decimal(50)
        ),
    ]
    rows = services.plan_rows(project_with("100000"), plan, INDIA)
    assert rows[0]["due_date"] == date(2027, 1, 1)
    assert rows[1]["due_date"] == date(2027, 1, 27)  # 26 Jan is Republic Day (a Tuesday)
    assert rows[2]["due_date"] == date(2027, 3, 8)  # 6 Mar 2027 is a Saturday
    assert [r["position"] for r in rows] == [1, 2, 3]


def test_the_tenants_state_holidays_count_too():
    maharashtra = subdivision_for("IN", "Maharashtra")
    assert maharashtra == "MH" and subdivision_for("IN", "27") == "MH"
    # Shivaji Jayanti (Friday 19 Feb 2027) is a holiday in Maharashtra, not in Karnataka.
    assert not is_business_day(date(2027, 2, 19), "IN", "MH")
    assert is_business_day(date(2027, 2, 19), "IN", "KA")
    assert roll_forward(date(2027, 2, 19), "IN", "MH") == date(2027, 2, 22)  # then Monday


def test_status_workflow_records_who_and_when(db_session, make_tenant, make_user):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    session = tenant_session(db_session, tenant)
    client = Client(
        full_name="Kaveri Builders",
        short_name="Kaveri",
        location="local",
        country="IN",
        currency="INR",
        payment_terms="immediate",
    )
    session.add(client)
    session.flush()
    project = services.create_project(
        session,
        client,
        {
            "name": "Tower A",
            "contract_value": "1000",
            "start_date": "2027-01-04",
            "requires_approval": "1",
        },
        owner.id,
        "INR",
    )
    services.replace_plan(session, project, by_percent("50", "50"), INDIA)
    first = session.scalars(select(Milestone).order_by(Milestone.position)).first()
    today = date(2027, 2, 1)
    with pytest.raises(services.PlanError, match="cannot become completed"):
        services.transition(
            session, first, "completed", user_id=owner.id, project=project, today=today
        )
    for status in ("in_progress", "completed", "approved"):
        services.transition(session, first, status, user_id=owner.id, project=project, today=today)
    assert first.acceptance_date == today
    moves = session.scalars(select(MilestoneTransition).order_by(MilestoneTransition.id)).all()
    assert [(m.from_status, m.to_status, m.user_id) for m in moves] == [
        ("planned", "in_progress", owner.id),
        ("in_progress", "completed", owner.id),
        ("completed", "approved", owner.id),
    ]
    with pytest.raises(services.PlanError, match="Work has started"):
        services.replace_plan(session, project, by_percent("100"), INDIA)
    assert len(session.scalars(select(Milestone)).all()) == 2  # the started plan is kept
    [plan_entry] = session.scalars(
        select(AuditEntry).where(AuditEntry.entity == "projects", AuditEntry.action == "update")
    )
    assert plan_entry.changes["milestones"] == [0, 2]  # the whole plan, audited as one change
    assert plan_entry.subject == f"clients:{client.id}"


@pytest.fixture
def tower(db_session, make_tenant, make_user):
    """A tenant session, its owner and a project of 1,000 without milestones."""
    owner = make_user()
    session = tenant_session(db_session, make_tenant(owner=owner))
    client = Client(
        full_name="Kaveri Builders",
        short_name="Kaveri",
        location="local",
        country="IN",
        currency="INR",
        payment_terms="immediate",
    )
    session.add(client)
    session.flush()
    project = services.create_project(
        session,
        client,
        {"name": "Tower A", "contract_value": "1000", "start_date": "2027-01-04"},
        owner.id,
        "INR",
    )
    return session, project, owner


def plan_entries(session, project) -> list[AuditEntry]:
    return list(
        session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.entity == "projects",
                AuditEntry.action == "update",
                AuditEntry.entity_id == str(project.id),
            )
            .order_by(AuditEntry.id)
        )
    )


def milestones_of(session, project) -> list[tuple]:
    return session.execute(
        select(Milestone.id, Milestone.name, Milestone.amount, Milestone.status)
        .where(Milestone.project_id == project.id)
        .order_by(Milestone.position)
    ).all()


def test_a_plan_not_started_is_replaced_and_both_plans_are_audited(tower):
    session, project, owner = tower
    assert (
        services.replace_plan(
            session, project, by_percent("50", "30", "20"), INDIA, actor_user_id=owner.id
        )
        == 3
    )
    first_ids = {row.id for row in milestones_of(session, project)}
    assert (
        services.replace_plan(
            session, project, by_percent("60", "40"), INDIA, actor_user_id=owner.id
        )
        == 2
    )
    rows = milestones_of(session, project)
    assert [(r.name, r.amount, r.status) for r in rows] == [
        ("M0", Decimal("600.00"), "planned"),
        ("M1", Decimal("400.00"), "planned"),
    ]
    assert not first_ids & {r.id for r in rows}  # the old plan is gone, not kept alongside
    entries = plan_entries(session, project)
    assert [e.changes for e in entries] == [
        {"milestones": [0, 3], "planned_total": [None, "1000.00"]},
        {"milestones": [3, 2], "planned_total": [None, "1000.00"]},
    ]
    assert {(e.actor_user_id, e.subject) for e in entries} == {
        (owner.id, f"clients:{project.client_id}")
    }


@pytest.mark.parametrize("status", ["invoiced", "in_progress", "paid"])
def test_a_plan_with_a_milestone_past_planned_is_kept(tower, status):
    session, project, owner = tower
    services.replace_plan(session, project, by_percent("50", "50"), INDIA)
    # Invoicing moves a milestone by its own rules: here only the status says work started.
    session.execute(
        update(Milestone)
        .where(Milestone.project_id == project.id, Milestone.position == 2)
        .values(status=status)
    )
    before = milestones_of(session, project)
    with pytest.raises(services.PlanError, match="Work has started"):
        services.replace_plan(session, project, by_percent("100"), INDIA)
    assert milestones_of(session, project) == before
    assert [e.changes["milestones"] for e in plan_entries(session, project)] == [[0, 2]]


def test_a_plan_moved_back_to_planned_is_kept_for_its_recorded_moves(tower):
    session, project, owner = tower
    services.replace_plan(session, project, by_percent("50", "50"), INDIA)
    first = session.scalars(
        select(Milestone).where(Milestone.project_id == project.id).order_by(Milestone.position)
    ).first()
    for status in ("in_progress", "planned"):
        services.transition(
            session, first, status, user_id=owner.id, project=project, today=date(2027, 1, 5)
        )
    before = milestones_of(session, project)
    assert {row.status for row in before} == {"planned"}
    with pytest.raises(services.PlanError, match="Work has started"):
        services.replace_plan(session, project, by_percent("100"), INDIA)
    # The savepoint kept the transaction usable, and the plan as it was.
    assert milestones_of(session, project) == before
    assert len(plan_entries(session, project)) == 1


def test_the_plans_totals_follow_every_change_of_its_milestones(tower):
    """The page's counts and amounts per status come from totals the database keeps as the
    milestones change: they must equal the milestones added up, after each kind of change."""
    session, project, owner = tower

    def added_up():
        return {
            status: (count, total)
            for status, count, total in session.execute(
                select(Milestone.status, func.count(), func.sum(Milestone.amount))
                .where(Milestone.project_id == project.id)
                .group_by(Milestone.status)
            )
        }

    def kept():
        plan = services.summary(session, project)
        return {status: (plan.counts[status], plan.by_status[status]) for status in plan.counts}

    services.replace_plan(session, project, by_percent("50", "30", "20"), INDIA)
    assert kept() == added_up() == {"planned": (3, Decimal("1000.00"))}
    services.replace_plan(session, project, by_percent("60", "40"), INDIA)  # delete, insert
    assert kept() == added_up() == {"planned": (2, Decimal("1000.00"))}
    first = session.scalars(
        select(Milestone).where(Milestone.project_id == project.id).order_by(Milestone.position)
    ).first()
    services.transition(
        session, first, "in_progress", user_id=owner.id, project=project, today=date(2027, 1, 5)
    )
    session.flush()
    assert (
        kept()
        == added_up()
        == {
            "in_progress": (1, Decimal("600.00")),
            "planned": (1, Decimal("400.00")),
        }
    )
    # The page lists the statuses in the workflow's order.
    assert list(services.summary(session, project).by_status) == ["planned", "in_progress"]
    session.execute(
        update(Milestone).where(Milestone.project_id == project.id).values(status="paid")
    )
    assert kept() == added_up() == {"paid": (2, Decimal("1000.00"))}  # no empty status left
    session.execute(update(Milestone).where(Milestone.id == first.id).values(name="Renamed"))
    assert kept() == added_up()
    assert services.summaries(session, [project.id])[project.id] == services.summary(
        session, project
    )


def test_approval_only_where_the_project_asks_for_it():
    project = project_with("1000", approval=False)
    milestone = Milestone(status="completed")
    assert "approved" not in [s for s, _ in services.next_actions(milestone, project)]
    project.requires_approval = True
    assert "approved" in [s for s, _ in services.next_actions(milestone, project)]


@pytest.fixture
def owner_with_client(client, make_tenant, make_user, login):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/clients/new").text)
    response = client.post(
        f"/t/{tenant.slug}/clients/new",
        data={
            "csrf_token": token,
            "full_name": "Kaveri Builders",
            "short_name": "Kaveri",
            "location": "local",
            "payment_terms": "net",
            "payment_days": "30",
        },
    )
    client_id = int(response.headers["Location"].rsplit("/", 1)[1])
    return client, tenant, token, client_id


def test_create_and_plan_a_project_through_the_pages(owner_with_client):
    http, tenant, token, client_id = owner_with_client
    bad = http.post(
        f"/t/{tenant.slug}/projects/new",
        data={
            "csrf_token": token,
            "client_id": client_id,
            "name": "T",
            "contract_value": "-5",
            "start_date": "soon",
        },
    )
    assert bad.status_code == 422
    for field in ("name", "contract_value", "start_date"):
        assert f'id="{field}-error"' in bad.text
    created = http.post(
        f"/t/{tenant.slug}/projects/new",
        data={
            "csrf_token": token,
            "client_id": client_id,
            "name": "Tower A",
            "contract_value": "10,00,001",
            "currency": "INR",
            "start_date": "2027-01-01",
        },
    )
    url = created.headers["Location"]
    plan = {"csrf_token": token, "mode": "percentage"}
    for i, share in enumerate(("33.3333", "33.3333", "33.3334")):
        plan |= {
            f"name_{i}": f"Stage {i}",
            f"share_{i}": share,
            f"rule_{i}": "days_after_previous",
            f"days_{i}": "30",
        }
    assert http.post(url + "/plan", data=plan).status_code == 303
    page = http.get(url).text
    assert "₹10,00,001.00" in page and "does not add up" not in page
    short = {**plan, "share_2": "30"}
    refused = http.post(url + "/plan", data=short)
    assert refused.status_code == 422 and "must add up to 100" in refused.text
    projects_tab = http.get(f"/t/{tenant.slug}/clients/{client_id}?tab=projects").text
    assert "Tower A" in projects_tab


def new_project(http, tenant, token, client_id, value="1,000") -> str:
    created = http.post(
        f"/t/{tenant.slug}/projects/new",
        data={
            "csrf_token": token,
            "client_id": client_id,
            "name": "Tower A",
            "contract_value": value,
            "currency": "INR",
            "start_date": "2027-01-01",
        },
    )
    assert created.status_code == 303, created.text
    return created.headers["Location"]


def plan_form(token, mode, *rows) -> dict:
    form = {"csrf_token": token, "mode": mode}
    for i, (name, share, days) in enumerate(rows):
        form |= {f"name_{i}": name, f"share_{i}": share, f"rule_{i}": "days_after_previous"}
        form[f"days_{i}"] = days
    return form


@pytest.mark.parametrize(
    ("mode", "shares"), [("percentage", ("-50", "100")), ("amount", ("-500", "1,500"))]
)
def test_a_negative_share_is_an_error_beside_it_and_keeps_what_was_typed(
    owner_with_client, db_session, mode, shares
):
    http, tenant, token, client_id = owner_with_client
    url = new_project(http, tenant, token, client_id)
    form = plan_form(token, mode, ("Advance", shares[0], "0"), ("Handover", shares[1], "30"))
    refused = http.post(url + "/plan", data=form)
    assert refused.status_code == 422
    assert re.search(r'id="share_0"[^>]*aria-invalid="true"', refused.text)
    assert 'id="share_0-error"' in refused.text and 'id="share_1-error"' not in refused.text
    assert f'value="{shares[0]}"' in refused.text and f'value="{shares[1]}"' in refused.text
    session = tenant_session(db_session, tenant)
    assert session.scalars(select(Milestone)).all() == []


def test_an_over_long_milestone_name_is_an_error_not_cut(owner_with_client, db_session):
    http, tenant, token, client_id = owner_with_client
    url = new_project(http, tenant, token, client_id)
    page = http.get(url + "/plan").text
    assert re.search(r'id="name_0"[^>]*maxlength="191"[^>]*data-counter', page)
    form = plan_form(token, "percentage", ("M" * 10_000, "100", "30"))
    refused = http.post(url + "/plan", data=form)
    assert refused.status_code == 422
    assert "Use at most 191 characters (this has 10,000)." in refused.text
    assert 'id="name_0-error"' in refused.text
    session = tenant_session(db_session, tenant)
    assert session.scalars(select(Milestone)).all() == []


@pytest.mark.parametrize(
    ("field", "typed"),
    [
        ("share_0", "1e309"),
        ("share_0", "NaN"),
        ("share_0", "Infinity"),
        ("share_0", ""),
        ("share_0", "half"),
        ("share_0", "12.123456"),
        ("days_0", "-3"),
        ("days_0", "99999999999"),
        ("days_0", "٣"),  # an Arabic-Indic digit: isdigit() says yes, int() would too
    ],
)
def test_a_share_or_day_count_the_plan_cannot_take_is_an_error_beside_it(
    owner_with_client, field, typed
):
    http, tenant, token, client_id = owner_with_client
    url = new_project(http, tenant, token, client_id)
    form = plan_form(token, "percentage", ("Advance", "100", "30")) | {field: typed}
    refused = http.post(url + "/plan", data=form)
    assert refused.status_code == 422
    assert f'id="{field}-error"' in refused.text


@pytest.mark.parametrize("typed", ["2027-02-31", "99999-01-01", "1900-01-01", "tomorrow", ""])
def test_a_due_date_the_plan_cannot_take_is_an_error_beside_it(owner_with_client, typed):
    http, tenant, token, client_id = owner_with_client
    url = new_project(http, tenant, token, client_id)
    form = plan_form(token, "percentage", ("Advance", "100", typed)) | {"rule_0": "date"}
    refused = http.post(url + "/plan", data=form)
    assert refused.status_code == 422
    assert 'id="days_0-error"' in refused.text


def test_a_10000_milestone_plan_is_served_in_pages(owner_with_client, db_session):
    http, tenant, token, client_id = owner_with_client
    session = tenant_session(db_session, tenant)
    project = Project(
        client_id=client_id,
        name="Big plan",
        contract_value=Decimal("10000.00"),
        currency="INR",
        start_date=date(2027, 1, 4),
    )
    session.add(project)
    session.flush()
    session.execute(
        Milestone.__table__.insert(),
        [
            {
                "project_id": project.id,
                "position": i,
                "name": f"M{i}",
                "amount": Decimal("1.00"),
                "due_rule": "days_after_start",
                "due_days": i,
                "due_date": date(2027, 1, 4),
                "status": "planned",
            }
            for i in range(1, 10_001)
        ],
    )
    session.commit()
    page = http.get(f"/t/{tenant.slug}/projects/{project.id}").text
    table = page[page.index("<h2>Milestones</h2>") :].split("</section>")[0]
    assert table.count("<tr>") == services.MILESTONES_PER_PAGE + 1
    assert "10,000 milestones" in page and "₹10,000.00" in page
    assert '<span class="badge badge--project-planned" data-testid="project-status">Planned' in page
    session.execute(
        Milestone.__table__.update()
        .where(Milestone.project_id == project.id, Milestone.position <= 9_999)
        .values(status="paid")
    )
    session.commit()
    page = http.get(f"/t/{tenant.slug}/projects/{project.id}").text
    assert 'data-testid="project-status">In progress' in page  # one milestone still planned
    nxt = re.search(r'href="([^"]*after=\d+)"', page).group(1)
    assert f"M{services.MILESTONES_PER_PAGE + 1}<" in http.get(nxt).text


def test_viewer_cannot_plan_or_move_milestones(
    owner_with_client, make_user, add_member, login, app
):
    http, tenant, token, client_id = owner_with_client
    url = http.post(
        f"/t/{tenant.slug}/projects/new",
        data={
            "csrf_token": token,
            "client_id": client_id,
            "name": "Tower A",
            "contract_value": "1000",
            "start_date": "2027-01-04",
        },
    ).headers["Location"]
    viewer = make_user()
    add_member(tenant, viewer, role="viewer")
    other = app.test_client()
    login(other, viewer)
    page = other.get(url)
    assert page.status_code == 200 and "Save the plan" not in page.text
    assert (
        other.post(url + "/plan", data={"csrf_token": csrf_token_from(page.text)}).status_code
        == 403
    )


def test_a_library_template_becomes_the_projects_plan(owner_with_client, db_session):
    from app.library import services as library
    from app.library.models import LibraryTemplate

    http, tenant, token, client_id = owner_with_client
    library.load_library(db_session)
    db_session.commit()
    maharashtra_construction = select(LibraryTemplate).where(
        LibraryTemplate.industry == "construction", LibraryTemplate.region == "27"
    )
    template = db_session.scalars(maharashtra_construction).first()
    url = http.post(
        f"/t/{tenant.slug}/projects/new",
        data={
            "csrf_token": token,
            "client_id": client_id,
            "name": "Tower B",
            "contract_value": "10,00,001",
            "start_date": "2027-01-04",
        },
    ).headers["Location"]
    assert (
        http.post(
            url + "/template", data={"csrf_token": token, "template_id": template.id}
        ).status_code
        == 303
    )
    session = tenant_session(db_session, tenant)
    project = session.scalars(select(Project).where(Project.name == "Tower B")).one()
    milestones = session.scalars(
        select(Milestone).where(Milestone.project_id == project.id).order_by(Milestone.position)
    ).all()
    assert [m.name for m in milestones] == [item.name for item in template.items]
    assert sum(m.amount for m in milestones) == Decimal("1000001.00")
    assert all(is_business_day(m.due_date, "IN") for m in milestones)
    assert (project.template_key, project.template_version) == (template.key, template.version)
    assert any(m.is_retention for m in milestones)  # construction keeps a retention
    assert f"This plan came from <code>{template.key}</code>" in http.get(url + "/plan").text
