"""Targets: a logged-in tenant page costs at most 5x a bare tenant route doing SELECT 1, and
the bare tenant route at most 1.5x a bare untenanted route doing SELECT 1.

Every tenant route needs a signed-in member, so the untenanted route the target is judged
against is one for a signed-in user too: the difference between them is the tenancy machinery
(tenant, membership, session binding). The anonymous route is printed for comparison."""

from __future__ import annotations

import re
import secrets

from flask import Flask
from flask.testing import FlaskClient
from flask_login import login_required
from sqlalchemy import text

from app.auth import services as accounts
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
from tenants import services as tenants

MEASURES = """
Service time of one request through Flask's test client (the time client.get takes), logged
in as the tenant's owner through the real /login form:
  dashboard       GET /t/<slug>/                the tenant's dashboard page
  tenant SELECT 1 GET /t/<slug>/bench/select1   tenant URL processor (tenant, membership,
                                                session binding), then SELECT 1
  signed-in SELECT 1  GET /bench/signed-in/select1  login required (the user loader), then
                                                SELECT 1, no tenant in the URL
  plain SELECT 1  GET /bench/select1            SELECT 1, anonymous (for comparison)
The bare routes are added by this benchmark. The four alternate, request by request.
"""
REQUESTS = 300
WARMUP_REQUESTS = 30
PAGE_MAX_RATIO = 5.0
TENANCY_MAX_RATIO = 1.5
PASSWORD = secrets.token_urlsafe(24)
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*\bvalue="([^"]+)"')


def select_one() -> str:
    db.session.execute(text("SELECT 1"))
    return "ok"


def add_bare_routes(app: Flask) -> None:
    app.add_url_rule("/bench/select1", "bench_select1", select_one)
    app.add_url_rule(
        "/bench/signed-in/select1", "bench_signed_in_select1", login_required(select_one)
    )
    app.add_url_rule("/t/<tenant_slug>/bench/select1", "bench_tenant_select1", select_one)


def create_owner_and_tenant(app: Flask) -> tuple[str, str, int]:
    """A new owner and workspace for every run (a fresh e-mail also starts a fresh login
    rate-limit bucket): the owner's e-mail, the tenant's slug and id."""
    slug = f"bench-{secrets.token_hex(4)}"
    email = f"owner@{slug}.example.com"
    with app.app_context():
        owner = accounts.create_user(
            db.session, email=email, full_name="Bench Owner", password=PASSWORD
        )
        tenant = tenants.create_tenant(
            db.session,
            slug=slug,
            name="Bench Traders",
            country="IN",
            time_zone="Asia/Kolkata",
            currency="INR",
            owner=owner,
        )
        db.session.commit()
        return email, slug, tenant.id


def log_in(client: FlaskClient, email: str) -> None:
    form = CSRF_FIELD.search(client.get("/login").text)
    if form is None:
        raise RuntimeError("no CSRF token on /login")
    response = client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": form.group(1)}
    )
    if response.status_code != 302:
        raise RuntimeError(f"log-in answered {response.status_code}, not a redirect")


def time_get(client: FlaskClient, url: str) -> float:
    with Stopwatch() as watch:
        response = client.get(url)
    # A redirect to /login or a 404 would be timed as if it were the page.
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return watch.seconds


def timed_in_turn(
    client: FlaskClient, urls: dict[str, str], warmups: int, requests: int
) -> dict[str, list[float]]:
    """Each URL once in turn, `warmups + requests` rounds, so that whatever else the machine
    does falls on every page alike; the seconds of each after the warm-up rounds, by name."""
    seconds: dict[str, list[float]] = {name: [] for name in urls}
    for number in range(warmups + requests):
        for name, url in urls.items():
            elapsed = time_get(client, url)
            if number >= warmups:
                seconds[name].append(elapsed)
    return seconds


def verdicts_against_bare(
    benchmark: str, seconds: dict[str, list[float]], names, max_ratio: float
) -> list[Verdict]:
    """Every page's figures printed, then each named page's median over the bare tenant
    route's ("tenant SELECT 1") as a verdict, printed and returned."""
    samples = {name: Samples(values) for name, values in seconds.items()}
    for name, figures in samples.items():
        print_figure(name, figures.describe_ms())
    verdicts = [
        Verdict(
            f"{benchmark}: {name} / tenant SELECT 1 (medians)",
            samples[name].median,
            samples["tenant SELECT 1"].median,
            max_ratio,
        )
        for name in names
    ]
    for verdict in verdicts:
        print_verdict(verdict)
    return verdicts


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(f"pages: service time, {REQUESTS} requests each", MEASURES)
    with environment.app() as app:
        add_bare_routes(app)
        email, slug, _ = create_owner_and_tenant(app)
        client = app.test_client()
        log_in(client, email)
        urls = {
            "dashboard": f"/t/{slug}/",
            "tenant SELECT 1": f"/t/{slug}/bench/select1",
            "signed-in SELECT 1": "/bench/signed-in/select1",
            "plain SELECT 1": "/bench/select1",
        }
        seconds = timed_in_turn(client, urls, WARMUP_REQUESTS, REQUESTS)

    samples = {name: Samples(values) for name, values in seconds.items()}
    for name, figures in samples.items():
        print_figure(name, figures.describe_ms())
    verdicts = [
        Verdict(
            "pages: dashboard / tenant SELECT 1 (medians)",
            samples["dashboard"].median,
            samples["tenant SELECT 1"].median,
            PAGE_MAX_RATIO,
        ),
        Verdict(
            "pages: tenant SELECT 1 / signed-in SELECT 1 (medians)",
            samples["tenant SELECT 1"].median,
            samples["signed-in SELECT 1"].median,
            TENANCY_MAX_RATIO,
        ),
    ]
    anonymous_ratio = samples["tenant SELECT 1"].median / samples["plain SELECT 1"].median
    print(
        f"  (for comparison: tenant SELECT 1 / anonymous plain SELECT 1 = {anonymous_ratio:.2f}x)"
    )
    for verdict in verdicts:
        print_verdict(verdict)
    return verdicts
