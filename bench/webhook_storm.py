"""Target (issue 18): a storm of gateway webhooks is acknowledged about as fast as a bare
tenant route (acknowledgement p99 <= 2x its p99) while every genuine event applies once,
every forged one is refused, and the money on the invoices equals the gateway's own ledger.

The gateway is the Razorpay stand-in, in this process: the product creates a Payment Link per
invoice through it (`gateways.services.start_checkout`), the stand-in's payer pays each, and
the signed events it would send are kept. They are then posted to gunicorn (2 workers, as
`make run` serves) three times each in a shuffled order, with forgeries among them, while
the same client threads alternate with the bare tenant route. The jobs the webhooks handed
over run afterwards in this process (an RQ SimpleWorker in burst mode)."""

from __future__ import annotations

import json
import random
import threading
import time
from decimal import Decimal
from itertools import count

import httpx
from sqlalchemy import func, select

from app.aging.models import AgingEntry
from app.core.clock import tenant_today
from app.core.crypto import encrypt_secrets
from app.core.handover import QUEUE_NAMES, get_queue
from app.devserver import free_port, wait_for_port
from app.extensions import db
from app.gateways import services as gateways
from app.gateways.models import GatewayEvent, GatewayPayment
from app.integrations.connectors.razorpay import WEBHOOK_PATH, RazorpayConnector
from app.integrations.models import IntegrationConnection, ProviderAccount
from app.invoicing.balance import outstanding_of
from app.invoicing.models import Invoice
from app.sandbox.standins.razorpay import RazorpayStandin, webhook_signature
from bench.common import BenchEnvironment, Verdict, print_figure, print_header, print_verdict
from bench.dashboard import load_tenant, rebuild_aging
from bench.messaging import (
    PYTHON,
    Check,
    _log_dir,
    _percentile,
    fresh_redis,
    print_line,
    process_env,
    spawn,
    stop,
)
from bench.pages import CSRF_FIELD, PASSWORD, create_owner_and_tenant
from tenants.binding import bind_tenant, schema_for_tenant_id
from tenants.models import User

LINKS = 500  # paid links: a payment.captured and a payment_link.paid each, 1,000 events
DELIVERIES = 3
FORGED_SHARE = 0.10  # forgeries among the deliveries
THREADS = 8
MAX_P99_RATIO = 2.0
MEASURES = f"""\
Events       {LINKS} Payment Links paid through the Razorpay stand-in: {LINKS * 2:,} signed events
             (payment.captured, payment_link.paid), each posted {DELIVERIES} times, shuffled, plus
             forgeries ({FORGED_SHARE:.0%} of the posts: a genuine event with its amount raised,
             signed with another secret) to /hooks/razorpay/<token>
Server       gunicorn, 2 workers x 4 threads (the product plus the bench's bare routes)
Baseline     GET /t/<slug>/bench/select1 as the signed-in owner, the same {THREADS} client threads
             alternating with the webhooks
Checks       after the jobs ran: each payment applied once, every forgery answered 403 and
             applied nowhere, the invoices' money equal to the stand-in's ledger"""


def _connect(app, tenant_id: int, standin: RazorpayStandin) -> str:
    """The workspace's Razorpay connection as the integrations page makes it; its token."""
    settings, secrets, errors = RazorpayConnector.clean(
        {
            "key_id": standin.key_id,
            "key_secret": standin.key_secret,
            "webhook_secret": standin.webhook_secret,
        }
    )
    if errors:
        raise RuntimeError(f"the Razorpay connection was refused: {errors}")
    connection = IntegrationConnection(
        provider="razorpay",
        settings=settings,
        secrets_ciphertext=encrypt_secrets(secrets),
        verification="verified",
    )
    db.session.add(connection)
    db.session.flush()
    token = settings["webhook_token"]
    db.session.add(
        ProviderAccount(
            provider="razorpay",
            account_key=token,
            tenant_id=tenant_id,
            connection_id=connection.id,
        )
    )
    return token


def _set_up(app, standin: RazorpayStandin) -> tuple[str, str, int, list[tuple[bytes, dict]]]:
    """A workspace with invoices, a link per invoice paid at the stand-in; the owner's e-mail,
    the webhook token, the tenant id and the events the stand-in signed."""
    email, slug, tenant_id = create_owner_and_tenant(app)
    with app.app_context():
        bind_tenant(db.session, tenant_id)
        owner_id = db.session.scalar(select(User.id).where(User.email == email))
        values = {
            "tenant": tenant_id,
            "clients": 200,
            "invoices": LINKS * 4,
            "payments": LINKS,
            "notices": 50,
            "promises": 1_000,
        }
        load_tenant(schema_for_tenant_id(tenant_id), owner_id, values)
        rebuild_aging(schema_for_tenant_id(tenant_id), tenant_today(db.session))
        bind_tenant(db.session, tenant_id)
        token = _connect(app, tenant_id, standin)
        owing = db.session.scalars(
            select(Invoice)
            .join(AgingEntry, AgingEntry.invoice_id == Invoice.id)
            .where(Invoice.currency == "INR")
            .order_by(Invoice.id)
            .limit(LINKS)
        ).all()
        if len(owing) < LINKS:
            raise RuntimeError(f"only {len(owing)} open INR invoices to pay, not {LINKS}")
        owed = outstanding_of(db.session, owing)
        for invoice in owing:
            gateways.start_checkout(
                db.session,
                provider="razorpay",
                client_id=invoice.client_id,
                invoice_amounts={invoice.id: owed[invoice.id]},
                currency="INR",
                return_url="http://127.0.0.1/paid",
            )
        db.session.commit()
        db.session.remove()
    for link in list(standin.links.values()):
        standin.pay(link["id"])
    return email, slug, token, list(standin.sent)


def _forged(event: tuple[bytes, dict], chosen: random.Random) -> tuple[bytes, dict]:
    """A genuine event with its payment's amount raised, signed with a secret not the
    workspace's: what an attacker who saw one event could send."""
    body, headers = event
    data = json.loads(body)
    payment = data["payload"]["payment"]["entity"]
    payment["amount"] += 100 * chosen.randrange(1, 1000)
    forged = json.dumps(data, separators=(",", ":")).encode()
    return forged, {**headers, "X-Razorpay-Signature": webhook_signature(forged, "not-the-secret")}


def _storm(
    base: str, email: str, slug: str, token: str, deliveries: list
) -> tuple[dict[str, list[float]], list[tuple[bool, int]], list[str]]:
    latencies: dict[str, list[float]] = {"webhook": [], "tenant": []}
    answers: list[tuple[bool, int]] = []
    failures: list[str] = []
    lock = threading.Lock()
    order = iter(range(len(deliveries)))
    hook = f"{WEBHOOK_PATH}/{token}"
    tenant_url = f"/t/{slug}/bench/select1"
    limits = httpx.Limits(max_connections=THREADS * 2)
    with httpx.Client(base_url=base, trust_env=False, limits=limits, timeout=30) as client:
        form = CSRF_FIELD.search(client.get("/login").text)
        answer = client.post(
            "/login", data={"email": email, "password": PASSWORD, "csrf_token": form.group(1)}
        )
        if answer.status_code != 302:
            raise RuntimeError(f"log-in answered {answer.status_code}")

        def one_webhook(number: int) -> None:
            genuine, body, headers = deliveries[number]
            started = time.perf_counter()
            response = client.post(hook, content=body, headers=headers)
            latencies["webhook"].append(time.perf_counter() - started)
            answers.append((genuine, response.status_code))

        def one_tenant() -> None:
            started = time.perf_counter()
            response = client.get(tenant_url)
            latencies["tenant"].append(time.perf_counter() - started)
            if response.status_code != 200:
                failures.append(f"tenant route {response.status_code}")

        def drive(index: int) -> None:
            for turn in count():
                with lock:
                    number = next(order, None)
                if number is None:
                    return
                if (turn + index) % 2:
                    one_webhook(number)
                    one_tenant()
                else:
                    one_tenant()
                    one_webhook(number)

        threads = [threading.Thread(target=drive, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return latencies, answers, failures


def _run_jobs(app) -> None:
    from rq import SimpleWorker

    with app.app_context():
        queues = [get_queue(name) for name in QUEUE_NAMES]
        SimpleWorker(queues, connection=queues[0].connection).work(burst=True, with_scheduler=False)


def run(environment: BenchEnvironment) -> list:
    print_header(
        f"webhook_storm: {LINKS * 2:,} gateway events x {DELIVERIES}, forgeries among them",
        MEASURES,
    )
    fresh_redis(environment)
    chosen = random.Random(18)
    standin = RazorpayStandin(webhook_url="http://127.0.0.1:9/kept").start()
    standin.sent = []
    # The events are kept for the storm rather than sent as they happen.
    standin.webhooks.post = lambda url, body, headers, delay=0: standin.sent.append((body, headers))
    port = free_port()
    command = [
        PYTHON,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--threads",
        "4",
        "bench.messaging:webhook_app()",
    ]
    try:
        with environment.app() as app, _log_dir("webhook-storm") as logs:
            app.config["RAZORPAY_API_BASE"] = standin.url
            started = time.perf_counter()
            email, slug, token, events = _set_up(app, standin)
            print_figure(
                "set-up", f"{time.perf_counter() - started:5.1f} s, {len(events):,} events"
            )
            genuine = [(True, body, headers) for body, headers in events] * DELIVERIES
            forged_count = round(len(genuine) * FORGED_SHARE)
            forged = [(False, *_forged(chosen.choice(events), chosen)) for _ in range(forged_count)]
            deliveries = genuine + forged
            chosen.shuffle(deliveries)
            server = spawn(command, process_env(environment), logs / "gunicorn.log")
            try:
                wait_for_port(port, 60, server)
                stormed = time.perf_counter()
                latencies, answers, failures = _storm(
                    f"http://127.0.0.1:{port}", email, slug, token, deliveries
                )
                storm_seconds = time.perf_counter() - stormed
            finally:
                stop(server)
            applied = time.perf_counter()
            _run_jobs(app)
            applied = time.perf_counter() - applied
            with app.app_context():
                bind_tenant(db.session, _tenant_id(slug))
                events_stored = db.session.scalar(select(func.count()).select_from(GatewayEvent))
                rows = db.session.execute(
                    select(GatewayPayment.provider_payment_id, GatewayPayment.amount)
                ).all()
                db.session.remove()
    finally:
        standin.stop()
    if failures:
        raise RuntimeError(f"{len(failures)} failed requests, e.g. {failures[:3]}")
    ledger = {
        payment["id"]: Decimal(payment["amount"]) / 100
        for payment in standin.payments.values()
        if payment["status"] == "captured"
    }
    booked = {payment_id: amount for payment_id, amount in rows}
    genuine_codes = [code for is_genuine, code in answers if is_genuine]
    forged_codes = [code for is_genuine, code in answers if not is_genuine]
    print_figure("posts", f"{len(answers):,} in {storm_seconds:.1f} s ({len(forged_codes)} forged)")
    print_figure("jobs run afterwards", f"{applied:.1f} s")
    for name, label in (("webhook", "acknowledgement"), ("tenant", "bare tenant route")):
        values = latencies[name]
        print_figure(
            label,
            f"p50 {_percentile(values, 0.5) * 1e3:6.2f} ms   "
            f"p99 {_percentile(values, 0.99) * 1e3:6.2f} ms   n={len(values)}",
        )
    print_figure("events stored", f"{events_stored:,} of {len(events):,} distinct")
    print_figure(
        "payments booked",
        f"{len(booked)} for {sum(booked.values()):,.2f}; the stand-in's ledger: "
        f"{len(ledger)} for {sum(ledger.values()):,.2f}",
    )
    verdicts = [
        Verdict(
            "webhook_storm: acknowledgement p99 / bare tenant route p99",
            _percentile(latencies["webhook"], 0.99),
            _percentile(latencies["tenant"], 0.99),
            MAX_P99_RATIO,
        ),
        Check(
            "webhook_storm: every genuine post acknowledged, every forgery refused",
            all(code == 200 for code in genuine_codes) and all(c == 403 for c in forged_codes),
            f"genuine {sorted(set(genuine_codes))}, forged {sorted(set(forged_codes))}",
        ),
        Check(
            "webhook_storm: each payment once, money equal to the gateway's ledger",
            booked == ledger and events_stored == len(events),
            f"{len(booked)} booked, {len(ledger)} in the ledger, "
            f"{sum(1 for k in booked if booked[k] != ledger.get(k))} differing",
        ),
    ]
    print_verdict(verdicts[0])
    for check in verdicts[1:]:
        print_line(check)
    return verdicts


def _tenant_id(slug: str) -> int:
    from tenants.models import Tenant

    return db.session.scalar(select(Tenant.id).where(Tenant.slug == slug))
