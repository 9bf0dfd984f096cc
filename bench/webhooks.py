"""Target (issue 21): webhook fan-out. 10,000 domain events to 3 subscribers, one of them failing
half the time: every delivery made or scheduled for retry (0 lost), in order per resource, and
the product's rate of requests at least 50% of a bare loop posting the same signed requests.

The three receivers are the sandbox's webhook receiver, each in its own process (its own
interpreter and GIL, as a subscriber's server would be); one answers every other POST with a
500. The product runs in this process as its workers would, one after the other: the events
consumer writes the deliveries, then each endpoint's send job posts what is due, until nothing
is due any more (the failed ones wait for their first retry, 5 s later, and the later events of
their resources wait behind them). The baseline posts every one of the product's requests again
(the same bodies, signed the same way, through one keep-alive httpx client) in a plain loop."""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import ExitStack, contextmanager
from itertools import groupby

import httpx
from sqlalchemy import func, select

from app.core.crypto import encrypt_secrets
from app.core.events import emit, run_consumers
from app.core.outbound import parse_networks
from app.extensions import db
from app.sandbox.standins.webhook_receiver import DEMO_SECRET
from app.webhooks import services
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.signing import signature_header
from bench.common import BenchEnvironment, Stopwatch, print_figure, print_header
from bench.messaging import PYTHON, ROOT, Check, Share, fresh_redis, print_line
from bench.pages import create_owner_and_tenant
from tenants.binding import bind_tenant

EVENTS = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "10000"))  # smaller for a quick look
RESOURCES = 1000  # events go round these clients: 10 per client, in order per client
SUBSCRIBERS = 3
FAILING_SHARE = 0.5
MIN_SHARE = 0.5
EMIT_CHUNK = 1000
MEASURES = f"""\
Events       {EVENTS:,} client.created/client.updated events over {RESOURCES:,} clients, to
             {SUBSCRIBERS} endpoints subscribed to every event (the sandbox webhook receiver, one
             process each; one answers {FAILING_SHARE:.0%} of its POSTs with 500)
Product      the events consumer, then each endpoint's send job, until nothing is due
Baseline     the same requests (bodies, headers, signatures) posted in a bare httpx loop
Checks       every delivery delivered or waiting for its retry, none lost or given up; per
             endpoint and client, deliveries made in event order and none past a waiting one"""


@contextmanager
def _receiver(failure_ratio: float):
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "app.sandbox.standins",
            "webhook_receiver",
            "--port",
            "0",
            "--secret",
            DEMO_SECRET,
            "--failure-ratio",
            str(failure_ratio),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the webhook receiver did not start ({url!r})")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _emit_events(session) -> None:
    for start in range(0, EVENTS, EMIT_CHUNK):
        for number in range(start, min(start + EMIT_CHUNK, EVENTS)):
            client_id = number % RESOURCES + 1
            if number < RESOURCES:
                data = {"client_id": client_id, "name": f"Client {client_id}"}
                emit(session, "client.created", "client", client_id, data)
            else:
                data = {"client_id": client_id, "name": f"Client {client_id}", "fields": ["name"]}
                emit(session, "client.updated", "client", client_id, data)
        session.commit()


def _run_product(session, endpoint_ids: list[int]) -> None:
    while run_consumers(session):
        pass
    while True:
        made = sum(services.send_due(session, e, budget_seconds=3600) for e in endpoint_ids)
        if not made:
            return


def _order_problems(session, endpoint_id: int) -> int:
    """Resources of the endpoint whose deliveries were made out of event order, or where one
    was delivered while an earlier one still waits."""
    first_success = (
        select(WebhookAttempt.delivery_id, func.min(WebhookAttempt.id).label("attempt_id"))
        .where(
            WebhookAttempt.endpoint_id == endpoint_id,
            WebhookAttempt.response_status.between(200, 299),
        )
        .group_by(WebhookAttempt.delivery_id)
        .subquery()
    )
    rows = session.execute(
        select(WebhookDelivery.subject, WebhookDelivery.status, first_success.c.attempt_id)
        .outerjoin(first_success, first_success.c.delivery_id == WebhookDelivery.id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.subject, WebhookDelivery.event_id)
    ).all()
    problems = 0
    for _, chain in groupby(rows, key=lambda row: row.subject):
        chain = list(chain)
        delivered = [row.status == "delivered" for row in chain]
        attempts = [row.attempt_id for row in chain if row.attempt_id is not None]
        if delivered != sorted(delivered, reverse=True) or attempts != sorted(attempts):
            problems += 1
    return problems


def _bare_loop(requests: list[tuple[str, int, str]]) -> None:
    with httpx.Client(timeout=httpx.Timeout(10, connect=5), trust_env=False) as client:
        for url, delivery_id, body in requests:
            message_id, timestamp, raw = f"msg_{delivery_id}", int(time.time()), body.encode()
            headers = {
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature_header([DEMO_SECRET], message_id, timestamp, raw),
            }
            client.post(url, content=raw, headers=headers)


def run(environment: BenchEnvironment) -> list:
    print_header("webhook_fanout", MEASURES)
    fresh_redis(environment)
    verdicts: list = []
    with ExitStack() as stack, environment.app() as app:
        urls = [
            stack.enter_context(_receiver(FAILING_SHARE if n == SUBSCRIBERS - 1 else 0.0))
            for n in range(SUBSCRIBERS)
        ]
        # The receivers listen on loopback, which production refuses (app.core.outbound).
        app.config["OUTBOUND_ALLOWED_NETWORKS"] = parse_networks("127.0.0.0/8")
        # The product runs here, in order: nothing is queued for workers.
        app.extensions["duebook.enqueue"] = lambda works: None
        _, _, tenant_id = create_owner_and_tenant(app)
        with app.app_context():
            session = db.session
            bind_tenant(session, tenant_id)
            endpoint_ids = []
            for n, url in enumerate(urls):
                endpoint, errors = services.create_endpoint(
                    session, {"url": f"{url}/subscriber-{n}", "all_events": "1"}, None
                )
                assert not errors, errors
                endpoint.secrets_ciphertext = encrypt_secrets({"current": DEMO_SECRET})
                endpoint_ids.append(endpoint.id)
            session.commit()
            _emit_events(session)

            with Stopwatch() as product:
                _run_product(session, endpoint_ids)
            made = session.scalar(select(func.count()).select_from(WebhookAttempt))
            counts = dict(
                session.execute(
                    select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
                ).all()
            )
            expected = EVENTS * SUBSCRIBERS
            lost = expected - counts.get("delivered", 0) - counts.get("pending", 0)
            disordered = sum(_order_problems(session, e) for e in endpoint_ids)
            disabled = session.scalar(
                select(func.count())
                .select_from(WebhookEndpoint)
                .where(WebhookEndpoint.status != "enabled")
            )
            # The baseline: every request the product made, again, in a bare loop.
            url_of = {
                e: f"{url}/subscriber-{n}"
                for n, (e, url) in enumerate(zip(endpoint_ids, urls, strict=True))
            }
            requests = [
                (url_of[row.endpoint_id], row.delivery_id, row.body)
                for row in session.execute(
                    select(
                        WebhookAttempt.endpoint_id, WebhookAttempt.delivery_id, WebhookDelivery.body
                    )
                    .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
                    .order_by(WebhookAttempt.id)
                )
            ]
            session.commit()
        with Stopwatch() as bare:
            _bare_loop(requests)

    print_figure("deliveries expected", f"{expected:,}")
    print_figure("delivered", f"{counts.get('delivered', 0):,}")
    print_figure("waiting for a retry", f"{counts.get('pending', 0):,}")
    print_figure("given up", f"{counts.get('failed', 0):,}")
    print_figure("requests made", f"{made:,}")
    print_figure("product", f"{product.seconds:.1f} s, {made / product.seconds:,.0f} requests/s")
    print_figure(
        "bare loop", f"{bare.seconds:.1f} s, {len(requests) / bare.seconds:,.0f} requests/s"
    )
    verdicts.append(
        Check(
            "webhook_fanout none lost",
            lost == 0 and not counts.get("failed") and not disabled,
            f"{lost} lost, {counts.get('failed', 0)} given up, {disabled} endpoints turned off",
        )
    )
    verdicts.append(
        Check("webhook_fanout order per resource", disordered == 0, f"{disordered} out of order")
    )
    verdicts.append(
        Share(
            "webhook_fanout throughput",
            made / product.seconds,
            len(requests) / bare.seconds,
            MIN_SHARE,
        )
    )
    for verdict in verdicts:
        print_line(verdict)
    return verdicts
