"""Target (issue 17): every page a user opens daily within 5x the bare tenant route at every
tenant size, and none growing faster than logarithmically with the tenant.

`BENCH_SWEEP_SIZES=small,medium python -m bench sweep` runs only those sizes (a small size
alone takes about a minute, the 1M-invoice ones a few minutes each)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from app.core.clock import local_date
from app.extensions import db
from bench.common import (
    BenchEnvironment,
    Samples,
    Stopwatch,
    Verdict,
    print_figure,
    print_header,
    print_verdict,
)
from bench.dashboard import OWNER_CLIENTS, load_tenant, rebuild_aging
from bench.pages import add_bare_routes, create_owner_and_tenant, log_in, time_get
from tenants.binding import bind_tenant, quoted_schema, schema_for_tenant_id
from tenants.models import Tenant, User


@dataclass(frozen=True)
class Size:
    clients: int
    invoices: int

    @property
    def label(self) -> str:
        return f"{_short(self.clients)} clients / {_short(self.invoices)} invoices"

    @property
    def rows(self) -> int:
        return self.clients + self.invoices

    def values(self, tenant_id: int) -> dict[str, int]:
        """What the load statements are formatted with: every other table in the dashboard
        benchmark's proportions to the invoices (400k payments, 50k notices, 20k promises at
        1M), messages and audit entries likewise."""
        return {
            "tenant": tenant_id,
            "clients": self.clients,
            "invoices": self.invoices,
            "payments": self.invoices * 2 // 5,
            "notices": self.invoices // 20,
            # At least 730, one a day over two years: only the second year's are open.
            "promises": max(self.invoices // 50, 1_000),
            "messages": self.invoices // 10,
            "audit_entries": self.invoices // 2,
            "milestones": MILESTONES,
        }


def _short(count: int) -> str:
    return f"{count // 1_000_000}M" if count >= 1_000_000 else f"{count // 1_000}k"


SIZES = {
    "small": Size(clients=1_000, invoices=10_000),
    "medium": Size(clients=10_000, invoices=100_000),
    "large": Size(clients=5_000, invoices=1_000_000),
    "huge": Size(clients=100_000, invoices=1_000_000),
}
SIZES_VARIABLE = "BENCH_SWEEP_SIZES"
MILESTONES = 10_000
REQUESTS = 30
WARMUP_REQUESTS = 5
# A page whose first view takes longer than this (at 10x the bare route or more, well past
# the target) is timed fewer times, so that the whole sweep stays within ~15 minutes.
SLOW_SECONDS = 0.25
SLOW_REQUESTS = 10
SLOW_WARMUP_REQUESTS = 2
MAX_RATIO = 5.0
SEARCH = "777"  # in a client number at every size: "Bench client 777", "Bench client 1777"
SIZE_LINES = "\n             ".join(f"{name:<7} {size.label}" for name, size in SIZES.items())
MEASURES = f"""
Sizes        {SIZE_LINES}
             (a subset: {SIZES_VARIABLE}=small,medium). One new workspace per size, dropped
             once measured.
Load         the dashboard benchmark's rows (clients, invoices with payments, allocations and
             credit notes; payments, notices with drafts, promises; the owner collects for
             {OWNER_CLIENTS} clients) in its proportions to the invoices, plus messages in the
             outbox (1 per 10 invoices), audit entries (1 per 2 invoices) and a project of
             {MILESTONES:,} milestones. Set-based INSERT ... SELECT with the aging triggers
             off, the aging summary rebuilt, VACUUM ANALYZE.
Pages        each page's GET as the owner, checked once for 200 and a sign it shows its rows,
             then {WARMUP_REQUESTS} warm-ups and {REQUESTS} requests (if the first view took over
             {SLOW_SECONDS * 1e3:.0f} ms: {SLOW_WARMUP_REQUESTS} and {SLOW_REQUESTS}), each followed
             by one of the bare tenant route (GET /t/<slug>/bench/select1); the ratio is the
             page's median over the bare route's median at that size.
Verdicts     per page: PASS when <= {MAX_RATIO:g}x at every size (the worst size is judged);
             "growth": the ratio at the largest size over the smallest, allowed
             1 + log10(growth of clients + invoices) / 2 (2x when the data grew 100x).
"""

# The rows the dashboard benchmark does not load, in its style: {s} the tenant's schema,
# {owner} the owner's user id, {tenant} the tenant's id, counts by Size.values.
LOAD = [
    """INSERT INTO public.outbox_messages (tenant_id, channel, queue, idempotency_key,
           recipient, subject, body_text, client_id, status, created_at)
       SELECT {tenant}, CASE WHEN g % 4 = 0 THEN 'whatsapp' ELSE 'email' END, 'messages',
              'bench-{tenant}-' || g, 'accounts' || g % {clients} || '@client.example.com',
              'Payment reminder ' || g, 'Your invoice is due.', c.first + g % {clients},
              CASE WHEN g % 10 < 6 THEN 'delivered' WHEN g % 10 = 6 THEN 'read'
                   WHEN g % 10 = 7 THEN 'sent' WHEN g % 10 = 8 THEN 'failed'
                   ELSE 'suppressed' END,
              now() - make_interval(mins => ({messages} - g)::int)
         FROM generate_series(1, {messages}) g
        CROSS JOIN (SELECT min(id) AS first FROM {s}.clients) c""",
    """INSERT INTO {s}.audit_log (occurred_at, actor_user_id, action, entity, entity_id,
           subject, changes)
       SELECT now() - make_interval(mins => ({audit_entries} - g)::int), {owner},
              CASE WHEN g % 10 = 0 THEN 'insert' WHEN g % 10 = 9 THEN 'delete'
                   ELSE 'update' END,
              x.entity, (c.first + g % {clients})::text,
              'clients:' || (c.first + g % {clients}),
              CASE WHEN g % 10 BETWEEN 1 AND 8
                   THEN jsonb_build_object('note', jsonb_build_array('before', 'after'))
                   ELSE '{{}}'::jsonb END
         FROM generate_series(1, {audit_entries}) g
        CROSS JOIN (SELECT min(id) AS first FROM {s}.clients) c
        CROSS JOIN LATERAL (SELECT (ARRAY['invoices', 'payments', 'clients',
                                          'collection_notices', 'promises_to_pay'])[1 + g % 5]
                                   AS entity) x""",
    """INSERT INTO {s}.projects (client_id, name, contract_value, currency, start_date)
       SELECT min(id), 'Bench plan', 123456789.01, 'INR', CURRENT_DATE - 365
         FROM {s}.clients""",
    """INSERT INTO {s}.milestones (project_id, position, name, amount, percentage, due_rule,
           due_days, due_date)
       SELECT p.id, g, 'Stage ' || g, 12345.68, 0.01, 'days_after_previous', 7,
              CURRENT_DATE - 365 + g
         FROM generate_series(1, {milestones}) g CROSS JOIN {s}.projects p""",
]
TABLES = ("audit_log", "projects", "milestones")


@dataclass(frozen=True)
class Page:
    name: str
    path: str  # after /t/<slug>; {project} is the loaded project's id
    # What only the real page with its rows shows (a regular expression): most often a link
    # to one of its rows, which an empty list, a redirect or an error page do not have.
    sign: str


PAGES = [
    Page("clients list", "/clients/", r'/clients/\d+"'),
    Page("clients search", f"/clients/?q={SEARCH}", rf"Bench client \d*{SEARCH}\d*<"),
    Page("invoices list", "/invoices/", r'/invoices/\d+"'),
    Page("payments list", "/payments/", r'/payments/\d+"'),
    Page("notices list", "/notices/", r'/notices/\d+"'),
    Page("promises list", "/promises/", r"/clients/\d+"),
    Page("messages list", "/messages/", r'/messages/\d+"'),
    Page("audit log", "/audit/", "Bench Owner (added|changed|removed)"),
    Page("aging page", "/aging/", r"/aging/clients/\d+/invoices"),
    Page("aging report", "/aging/report", r"/aging/clients/\d+/invoices"),
    Page("dashboard", "/", r"/aging/clients/\d+/invoices"),
    Page("project page", "/projects/{project}", f"{MILESTONES:,} milestones"),
    Page("work queue", "/work/", "Log call"),
]
BARE = "/bench/select1"


def _chosen_sizes() -> dict[str, Size]:
    names = [n.strip() for n in os.environ.get(SIZES_VARIABLE, "").split(",") if n.strip()]
    unknown = [name for name in names if name not in SIZES]
    if unknown:
        choices = ", ".join(SIZES)
        raise ValueError(f"{SIZES_VARIABLE}: no size {', '.join(unknown)}; one of {choices}")
    return {name: SIZES[name] for name in names} if names else SIZES


def _load(app: Flask, size: Size) -> tuple[str, str, str, int]:
    """A new workspace loaded to `size`: the owner's e-mail, its slug, schema, and project."""
    email, slug, tenant_id = create_owner_and_tenant(app)
    schema = schema_for_tenant_id(tenant_id)
    with app.app_context():
        bind_tenant(db.session, tenant_id)
        today = local_date(db.session.get(Tenant, tenant_id).time_zone)
        owner_id = db.session.scalar(select(User.id).where(User.email == email))
        with Stopwatch() as load:
            load_tenant(schema, owner_id, size.values(tenant_id), LOAD, TABLES)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE public.outbox_messages")
        rebuild = rebuild_aging(schema, today)
        project = db.session.scalar(
            text(f"SELECT id FROM {quoted_schema(schema)}.projects WHERE name = 'Bench plan'")
        )
        db.session.remove()
    print_figure(
        f"{size.label}: load", f"{load.seconds:6.1f} s, aging rebuild {rebuild.seconds:5.1f} s"
    )
    return email, slug, schema, project


def _drop(app: Flask, schema: str, slug: str) -> None:
    """The size's workspace goes once measured, so each size is measured on its own data."""
    with app.app_context(), db.engine.begin() as connection:
        connection.exec_driver_sql(f"DROP SCHEMA {quoted_schema(schema)} CASCADE")
        connection.execute(
            text(
                "DELETE FROM public.outbox_messages WHERE tenant_id ="
                " (SELECT id FROM public.tenants WHERE slug = :slug)"
            ),
            {"slug": slug},
        )


class PageFailure(Exception):
    """A page that is not itself at a size: reported in its table, the other pages measured."""


def _check(http: FlaskClient, page: Page, url: str) -> float:
    """How long the page's first view took, once it is seen to be the real page."""
    with Stopwatch() as watch:
        response = http.get(url)
    if response.status_code != 200:
        raise PageFailure(f"GET {url} answered {response.status_code}")
    if not re.search(page.sign, response.text):
        raise PageFailure(f"GET {url} shows nothing matching {page.sign!r}")
    return watch.seconds


def _measure(
    http: FlaskClient, urls: dict[str, str], first_views: dict[str, float], bare: str
) -> dict[str, Samples]:
    """Each page's samples and, under BARE, the bare route's, request by request."""
    seconds = {name: [] for name in (*first_views, BARE)}
    for name, first_view in first_views.items():
        slow = first_view > SLOW_SECONDS
        warmups = SLOW_WARMUP_REQUESTS if slow else WARMUP_REQUESTS
        for number in range(warmups + (SLOW_REQUESTS if slow else REQUESTS)):
            page_seconds = time_get(http, urls[name])
            bare_seconds = time_get(http, bare)
            if number >= warmups:
                seconds[name].append(page_seconds)
                seconds[BARE].append(bare_seconds)
    return {name: Samples(values) for name, values in seconds.items()}


def _page_report(
    page: Page, results: dict[str, dict[str, Samples]], failures: dict[str, dict[str, str]]
) -> list[Verdict]:
    """The page's table (size, median, p95, ratio, growth from the smallest size) and its
    verdicts: the worst size against the target, the growth against a logarithm's."""
    print(f"\n  {page.name}")
    print(f"    {'size':<32} {'median':>9}  {'p95':>9}  {'ratio':>7}  {'growth':>7}")
    ratios, verdicts = {}, []
    for name, samples in results.items():
        label = SIZES[name].label
        if page.name in failures[name]:
            print(f"    {label:<32} FAILED: {failures[name][page.name]}")
            verdicts.append(
                Verdict(f"sweep: {page.name} FAILED at {label}", math.inf, 1, MAX_RATIO)
            )
            continue
        figures = samples[page.name]
        ratios[name] = figures.median / samples[BARE].median
        growth = ratios[name] / next(iter(ratios.values()))
        print(
            f"    {label:<32} {figures.median * 1e3:6.1f} ms  {figures.p95 * 1e3:6.1f} ms  "
            f"{ratios[name]:6.2f}x  {growth:6.2f}x"
        )
    if ratios:
        worst = max(ratios, key=ratios.__getitem__)
        verdicts.append(
            Verdict(
                f"sweep: {page.name}, worst size ({worst}) / tenant SELECT 1",
                results[worst][page.name].median,
                results[worst][BARE].median,
                MAX_RATIO,
            )
        )
    first, last = next(iter(results)), list(results)[-1]
    data_growth = SIZES[last].rows / SIZES[first].rows
    measured = list(ratios)
    if len(measured) == len(results) > 1 and data_growth > 1:
        verdicts.append(
            Verdict(
                f"sweep: {page.name}, growth {first} -> {last} (data {data_growth:.0f}x)",
                ratios[measured[-1]],
                ratios[measured[0]],
                round(1 + math.log10(data_growth) / 2, 2),
            )
        )
    for verdict in verdicts:
        print_verdict(verdict)
    return verdicts


def run(environment: BenchEnvironment) -> list[Verdict]:
    sizes = _chosen_sizes()
    print_header(f"sweep: {len(PAGES)} pages at {len(sizes)} tenant sizes", MEASURES)
    print_figure("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    results, failures = {}, {}
    with environment.app() as app:
        add_bare_routes(app)
        for name, size in sizes.items():
            with Stopwatch() as whole:
                email, slug, schema, project = _load(app, size)
                http = app.test_client()
                log_in(http, email)
                urls = {p.name: f"/t/{slug}{p.path.format(project=project)}" for p in PAGES}
                first_views, failures[name] = {}, {}
                for page in PAGES:
                    try:
                        first_views[page.name] = _check(http, page, urls[page.name])
                    except PageFailure as failure:
                        failures[name][page.name] = str(failure)
                results[name] = _measure(http, urls, first_views, f"/t/{slug}{BARE}")
                _drop(app, schema, slug)
            print_figure(f"{size.label}: all", f"{whole.seconds:6.1f} s")
    print_figure("load average at end", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print()
    for name, samples in results.items():
        print_figure(f"bare route at {SIZES[name].label}", samples[BARE].describe_ms())
    return [verdict for page in PAGES for verdict in _page_report(page, results, failures)]
