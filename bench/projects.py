"""Targets: applying a 1,000-milestone plan ≤ 1.5x the time of a COPY of the same 1,000 rows;
a project page with 10,000 milestones ≤ 5x the bare tenant route doing SELECT 1."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import delete

from app.clients.models import Client
from app.core.bulk import copy_rows
from app.extensions import db
from app.projects import services
from app.projects.models import Milestone, Project
from bench.common import (
    BenchEnvironment,
    Samples,
    Stopwatch,
    Verdict,
    print_figure,
    print_header,
    print_verdict,
)
from bench.pages import create_owner_and_tenant, log_in, select_one, time_get
from tenants.binding import bind_tenant, qualified, schema_for_tenant_id

PLAN_SIZE = 1_000
BIG_PLAN = 10_000
ROUNDS = 15
REQUESTS = 150
MEASURES = f"""
apply plan   services.replace_plan with a {PLAN_SIZE:,}-milestone plan by percentage on a
             project without milestones (amounts split to the paisa, due dates rolled to
             business days, rows written by COPY, one audit entry), committed; against a plain
             COPY of the very same {PLAN_SIZE:,} rows into the same table, committed.
             {ROUNDS} rounds each.
plan page    GET /t/<slug>/projects/<id> of a project with {BIG_PLAN:,} milestones (a page of
             {services.MILESTONES_PER_PAGE}, totals by status kept by the milestones' triggers;
             the milestones analyzed once the plan is in), against the bare tenant route doing
             SELECT 1; {REQUESTS} requests each.
"""


def _plan(size: int, step_days: int = 7) -> list[services.PlannedMilestone]:
    share = Decimal(100) / size
    return [
        services.PlannedMilestone(
            name=f"Stage {i + 1}",
            due_rule="days_after_previous",
            due_days=step_days,
            percentage=share,
        )
        for i in range(size)
    ]


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header("projects: applying a large plan, and a large plan's page", MEASURES)
    with environment.app() as app:
        app.add_url_rule("/t/<tenant_slug>/bench/select1", "bench_tenant_select1", select_one)
        email, slug, tenant_id = create_owner_and_tenant(app)
        with app.app_context():
            bind_tenant(db.session, tenant_id)
            client = Client(
                full_name="Bench Client",
                short_name="Bench",
                location="local",
                country="IN",
                currency="INR",
                payment_terms="immediate",
            )
            db.session.add(client)
            db.session.flush()
            projects = [
                Project(
                    client_id=client.id,
                    name=name,
                    currency="INR",
                    contract_value=Decimal("123456789.01"),
                    start_date=date(2027, 1, 4),
                )
                for name in ("plan", "copy", "big")
            ]
            db.session.add_all(projects)
            db.session.commit()
            plan_project, copy_project, big_project = (p.id for p in projects)
            calendar = services.Calendar("IN", "MH")
            plan = _plan(PLAN_SIZE)
            # The rows the product writes, prepared once for the baseline's COPY.
            prepared = services.plan_rows(db.session.get(Project, copy_project), plan, calendar)
            copy_values = [[row[c] for c in services.PLAN_COLUMNS] for row in prepared]
            apply_times, copy_times = [], []
            for _ in range(ROUNDS):
                # Both sides start from a project without milestones: applying, not replacing.
                db.session.execute(delete(Milestone).where(Milestone.project_id == plan_project))
                db.session.commit()
                project = db.session.get(Project, plan_project)
                with Stopwatch() as watch:
                    services.replace_plan(db.session, project, plan, calendar)
                    db.session.commit()
                apply_times.append(watch.seconds)
                db.session.execute(delete(Milestone).where(Milestone.project_id == copy_project))
                db.session.commit()
                with Stopwatch() as watch:
                    copy_rows(db.session, Milestone.__table__, services.PLAN_COLUMNS, copy_values)
                    db.session.commit()
                copy_times.append(watch.seconds)
            big = db.session.get(Project, big_project)
            # A day apart: 10,000 weekly steps would fall due after 2099, which plans refuse.
            services.replace_plan(db.session, big, _plan(BIG_PLAN, step_days=1), calendar)
            db.session.commit()
            # As autovacuum would soon after a plan this size: without statistics the page's
            # 50 rows were read by sorting all 10,000 (a 13-row estimate; 5 of its ~15 ms).
            db.session.connection().exec_driver_sql(
                f"ANALYZE {qualified(schema_for_tenant_id(tenant_id), 'milestones')}"
            )
            db.session.commit()
            db.session.remove()

        http = app.test_client()
        log_in(http, email)
        urls = {
            "plan page": f"/t/{slug}/projects/{big_project}",
            "tenant SELECT 1": f"/t/{slug}/bench/select1",
        }
        page = http.get(urls["plan page"]).text
        if "10,000 milestones" not in page:
            raise RuntimeError("the plan page does not show the 10,000-milestone plan")
        seconds = {name: [] for name in urls}
        for number in range(20 + REQUESTS):
            for name, url in urls.items():
                elapsed = time_get(http, url)
                if number >= 20:
                    seconds[name].append(elapsed)

    apply_samples, copy_samples = Samples(apply_times), Samples(copy_times)
    print_figure("apply plan (product)", apply_samples.describe_ms())
    print_figure("plain COPY (baseline)", copy_samples.describe_ms())
    pages = {name: Samples(values) for name, values in seconds.items()}
    for name, figures in pages.items():
        print_figure(name, figures.describe_ms())
    verdicts = [
        Verdict(
            "projects: apply a 1,000-milestone plan / COPY of its rows (medians)",
            apply_samples.median,
            copy_samples.median,
            1.5,
        ),
        Verdict(
            "projects: 10,000-milestone plan page / tenant SELECT 1 (medians)",
            pages["plan page"].median,
            pages["tenant SELECT 1"].median,
            5.0,
        ),
    ]
    for verdict in verdicts:
        print_verdict(verdict)
    return verdicts
