"""Target (issue 18): the client's pay page within 5x the bare tenant route.

The pay page is opened without a login, by its signed link: the workspace is found from the
token, the link's row checked, and what the client owes read at that moment (invoice by
invoice, with notice interest), the UPI QR drawn. Measured on the "everything you owe" link of
the client owing the most open invoices in a workspace of 1,000 clients and 10,000 invoices
(the dashboard benchmark's load), against the bare tenant route (`SELECT 1` as the signed-in
owner), request by request in turn."""

from __future__ import annotations

import html
import re

from sqlalchemy import func, select

from app.aging.models import AgingEntry
from app.core.clock import local_date
from app.extensions import db
from app.paylinks import services as paylinks
from app.paylinks import statement
from app.settings.services import workspace_settings
from bench.common import (
    BenchEnvironment,
    Samples,
    Verdict,
    print_figure,
    print_header,
    print_verdict,
)
from bench.dashboard import load_tenant, rebuild_aging
from bench.pages import add_bare_routes, create_owner_and_tenant, log_in, time_get
from tenants.binding import bind_tenant, schema_for_tenant_id
from tenants.models import Tenant, User

QR_IMAGE = re.compile(r'<img class="pay-qr" src="([^"]+)"')
MAX_RATIO = 5.0
REQUESTS = 200
WARMUP_REQUESTS = 20
SIZE = {"clients": 1_000, "invoices": 10_000}
MEASURES = f"""\
Pay page     GET /pay/<token> of the "everything you owe" link of the client with the most
             open invoices, no login ({SIZE["clients"]:,} clients, {SIZE["invoices"]:,} invoices
             in the workspace, the dashboard benchmark's load), the rate limit raised for the run
Baseline     GET /t/<slug>/bench/select1 as the signed-in owner
Rounds       {WARMUP_REQUESTS} warm-ups, then {REQUESTS} of each, in turn; ratio of medians
Also shown   the page's UPI QR, an image of its own: drawn (the encoder tries all eight
             masks) and asked for again (kept per UPI request)"""


def _values(tenant_id: int) -> dict[str, int]:
    invoices = SIZE["invoices"]
    return {
        "tenant": tenant_id,
        "clients": SIZE["clients"],
        "invoices": invoices,
        "payments": invoices * 2 // 5,
        "notices": invoices // 20,
        "promises": 1_000,
    }


def _pay_path(app, email: str, tenant_id: int) -> tuple[str, int]:
    """The link's path and how many open invoices its page lists."""
    with app.app_context():
        bind_tenant(db.session, tenant_id)
        tenant = db.session.get(Tenant, tenant_id)
        owner_id = db.session.scalar(select(User.id).where(User.email == email))
        load_tenant(schema_for_tenant_id(tenant_id), owner_id, _values(tenant_id))
        rebuild_aging(schema_for_tenant_id(tenant_id), local_date(tenant.time_zone))
        bind_tenant(db.session, tenant_id)
        workspace = workspace_settings(db.session, tenant_id)
        workspace.upi_vpa = "benchtraders@okhdfcbank"
        workspace.payment_instructions = "HDFC Bank, A/c 50200012345678, IFSC HDFC0000123"
        client_id, open_count = db.session.execute(
            select(AgingEntry.client_id, func.count())
            .group_by(AgingEntry.client_id)
            .order_by(func.count().desc(), AgingEntry.client_id)
            .limit(1)
        ).one()
        link = paylinks.link_for_client(db.session, client_id)
        path = "/pay/" + paylinks.make_token(tenant_id, link)
        db.session.commit()
        db.session.remove()
    return path, open_count


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header("pay_page: the client's pay page / bare tenant route", MEASURES)
    with environment.app() as app:
        add_bare_routes(app)
        # The limiter still runs (its Redis round trip is part of the page); it must not refuse.
        app.config["PAY_PAGE_RATE_LIMIT"] = "1000000 per minute"
        email, slug, tenant_id = create_owner_and_tenant(app)
        path, open_count = _pay_path(app, email, tenant_id)
        owner, payer = app.test_client(), app.test_client()
        log_in(owner, email)
        page = payer.get(path)
        qr = QR_IMAGE.search(page.text)
        if page.status_code != 200 or "upi://pay" not in page.text or qr is None:
            raise RuntimeError(f"the pay page answered {page.status_code} without its UPI QR")
        qr_path = html.unescape(qr.group(1))
        print_figure("open invoices on the page", f"{open_count}")
        seconds = {"pay page": [], "bare": [], "its QR image, drawn": [], "its QR image, again": []}
        for number in range(WARMUP_REQUESTS + REQUESTS):
            pay = time_get(payer, path)
            bare = time_get(owner, f"/t/{slug}/bench/select1")
            statement.qr_svg.cache_clear()
            drawn = time_get(payer, qr_path)
            again = time_get(payer, qr_path)
            if number >= WARMUP_REQUESTS:
                seconds["pay page"].append(pay)
                seconds["bare"].append(bare)
                seconds["its QR image, drawn"].append(drawn)
                seconds["its QR image, again"].append(again)
    samples = {name: Samples(values) for name, values in seconds.items()}
    for name, figures in samples.items():
        print_figure(name, figures.describe_ms())
    verdict = Verdict(
        "pay_page: pay page / tenant SELECT 1 (medians)",
        samples["pay page"].median,
        samples["bare"].median,
        MAX_RATIO,
    )
    print_verdict(verdict)
    return [verdict]
