"""Target: under closed-loop load, the 7-page mix reaches >= 30% of the bare tenant route's
throughput at saturation; and the serving model (gunicorn.conf.py) keeps the p95 slowdown at
half load within 2x of the unloaded median, with users spread evenly over its processes."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import psutil
from flask import Flask
from sqlalchemy import text

from app.core.clock import local_date
from app.devserver import free_port, wait_for_port
from app.extensions import db
from bench import aging
from bench.common import BenchEnvironment, Stopwatch, Verdict, print_figure, print_header
from bench.dashboard import rebuild_aging
from bench.messaging import PYTHON, _log_dir, process_env, spawn, stop, webhook_app
from bench.pages import CSRF_FIELD, PASSWORD, create_owner_and_tenant
from tenants.binding import bind_tenant, quoted_schema, schema_for_tenant_id
from tenants.models import Tenant

CLIENTS = int(os.environ.get("LOAD_CLIENTS", "5000"))
INVOICES = int(os.environ.get("LOAD_INVOICES", "100000"))
USERS = (1, 2, 5, 10, 20, 50)
STEP_SECONDS = float(os.environ.get("LOAD_STEP_SECONDS", "6"))
WARMUP_SECONDS = 1.0
WARM_VISITS = 3
WARM_SECONDS = 90.0
MIX_MIN_SHARE = 0.30
SLOWDOWN_MAX = 2.0
HALF_LOAD = 0.5
# Serving models tried, as gunicorn command-line settings on top of gunicorn.conf.py (what
# GUNICORN_CMD_ARGS does in production). By default the chosen one (the file as it is) and the
# one `make run` uses (2 x 4 threads, gunicorn's keep-alive of 2 s); LOAD_CONFIGS=all tries
# every one, LOAD_CONFIGS="a,b" those named.
CONFIGS = {
    "the file": [],
    "2x4 ka 2 (before)": [
        "--worker-class=gthread",
        "--workers=2",
        "--threads=4",
        "--keep-alive=2",
    ],
    "2x4 ka 0": [
        "--worker-class=gthread",
        "--workers=2",
        "--threads=4",
        "--keep-alive=0",
    ],
    "4x2 ka 2": [
        "--worker-class=gthread",
        "--workers=4",
        "--threads=2",
        "--keep-alive=2",
    ],
    "4x2 ka 0": [
        "--worker-class=gthread",
        "--workers=4",
        "--threads=2",
        "--keep-alive=0",
    ],
    "4x2 ka 2 max-req": [
        "--worker-class=gthread",
        "--workers=4",
        "--threads=2",
        "--keep-alive=2",
        "--max-requests=1000",
        "--max-requests-jitter=100",
    ],
    "2x4 ka 2 reuse-port": [
        "--worker-class=gthread",
        "--workers=2",
        "--threads=4",
        "--keep-alive=2",
        "--reuse-port",
    ],
    "sync 4": ["--worker-class=sync", "--workers=4"],
    "2x2 ka 0": [
        "--worker-class=gthread",
        "--workers=2",
        "--threads=2",
        "--keep-alive=0",
    ],
    "2x1 ka 0": [
        "--worker-class=gthread",
        "--workers=2",
        "--threads=1",
        "--keep-alive=0",
    ],
    "sync 2": ["--worker-class=sync", "--workers=2"],
}
DEFAULT_CONFIGS = ("the file", "2x4 ka 2 (before)")
MEASURES = f"""
Server       gunicorn as production starts it (gunicorn.conf.py from the clone's root, no
             access log), on 127.0.0.1, serving the product's app plus bench/pages.py's bare
             routes and a response header naming the worker process (bench only).
Tenant       {CLIENTS:,} clients, {INVOICES:,} invoices with payments, allocations and credit
             notes (bench/aging.py's set-based loader), the aging summary rebuilt.
Users        each logged in through /login with a session cookie of its own, on a keep-alive
             connection of its own (re-opened when the server closes it), opened at the start
             of each step; closed loop: the next request leaves when the previous one answered.
mix          each user walks dashboard, clients list, invoices list, aging page, notices list,
             a client page, an invoice page (a different client and invoice each time), each
             user starting at another page.
bare         GET /t/<slug>/bench/select1: tenant, membership, session bound, SELECT 1.
Warm-up      every worker process serves every page 3 times before anything is measured.
Curve        users {", ".join(map(str, USERS))}, mix and bare alternating, {STEP_SECONDS:g} s each
             after {WARMUP_SECONDS:g} s of warm-up: req/s, p50, p95, CPU of gunicorn (% of 2
             cores), of PostgreSQL, of the load generator (one asyncio thread, raw HTTP/1.1),
             requests per worker process.
Half load    50 users with a random think time (exponential) chosen so that they ask for half
             the saturated throughput; slowdown = a request's latency / the unloaded median of
             the same page (1 user); its p95 is the serving model's figure.
"""
PAGES = ("dashboard", "clients", "invoices", "aging", "notices", "client", "invoice")
PID_HEADER = "X-Bench-Worker"


def load_app() -> Flask:
    """gunicorn's app for this benchmark: the product, the bare routes, and each answer naming
    the worker process that served it (how the spread over processes is counted)."""
    app = webhook_app()

    @app.after_request
    def name_the_worker(response):
        response.headers[PID_HEADER] = str(os.getpid())
        return response

    return app


# The tenant ---------------------------------------------------------------------------------


@dataclass
class Tenancy:
    email: str
    slug: str
    client_ids: list[int]
    invoice_ids: list[int]


def _set_up_tenant(app: Flask) -> Tenancy:
    email, slug, tenant_id = create_owner_and_tenant(app)
    schema = schema_for_tenant_id(tenant_id)
    with app.app_context():
        bind_tenant(db.session, tenant_id)
        today = local_date(db.session.get(Tenant, tenant_id).time_zone)
        aging._load(schema, clients=CLIENTS, invoices=INVOICES)
        # The kept totals analyzed too, as autovacuum would within the minute (without their
        # statistics the dashboard and aging pages planned as if they were empty).
        rebuild_aging(schema, today)
        bind_tenant(db.session, tenant_id)
        s = quoted_schema(schema)
        # Spread over the whole tenant, so that no one row stays in every cache.
        client_ids = db.session.execute(
            text(f"SELECT id FROM {s}.clients WHERE id % 25 = 0 ORDER BY id")
        ).scalars()
        invoice_ids = db.session.execute(
            text(f"SELECT id FROM {s}.invoices WHERE id % 500 = 0 ORDER BY id")
        ).scalars()
        tenancy = Tenancy(email, slug, list(client_ids), list(invoice_ids))
        db.session.commit()
        db.session.remove()
    return tenancy


def _urls(tenancy: Tenancy, page: str, number: int) -> str:
    base = f"/t/{tenancy.slug}"
    if page == "client":
        return f"{base}/clients/{tenancy.client_ids[number % len(tenancy.client_ids)]}"
    if page == "invoice":
        return f"{base}/invoices/{tenancy.invoice_ids[number % len(tenancy.invoice_ids)]}"
    return (
        base
        + {
            "dashboard": "/",
            "clients": "/clients/",
            "invoices": "/invoices/",
            "aging": "/aging/",
            "notices": "/notices/",
            "bare": "/bench/select1",
        }[page]
    )


def _log_in(base: str, email: str) -> str:
    """A session of its own (the real /login form): the Cookie header that carries it."""
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
        form = CSRF_FIELD.search(client.get("/login").text)
        answer = client.post(
            "/login", data={"email": email, "password": PASSWORD, "csrf_token": form.group(1)}
        )
        if answer.status_code != 302:
            raise RuntimeError(f"log-in answered {answer.status_code}")
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


# The load generator --------------------------------------------------------------------------


@dataclass
class Answer:
    page: str
    started: float
    seconds: float
    worker: str


class User:
    """One browser: its session cookie and one keep-alive connection, HTTP/1.1 by hand (the
    generator shares two cores with the server, so every microsecond it spends is the
    server's loss; a client library costs several times more per request)."""

    def __init__(self, port: int, cookie: str):
        self.port = port
        self.cookie = cookie
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, str]:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {self.cookie}\r\n\r\n"
        reused = self.writer is not None
        try:
            head = await self._send(request.encode())
        except (asyncio.IncompleteReadError, ConnectionError):
            # The server closed an idle keep-alive connection: a browser asks again on a new one.
            self.close()
            if not reused:
                raise
            head = await self._send(request.encode())
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
                if name.lower() == "set-cookie":
                    self._keep_cookie(value)
        if "content-length" not in headers:
            raise RuntimeError(f"GET {path}: no Content-Length ({headers})")
        await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers.get(PID_HEADER.lower(), "?")

    async def _send(self, request: bytes) -> list[str]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(request)
        return (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")

    def _keep_cookie(self, value: str) -> None:
        name, _, rest = value.strip().partition("=")
        cookies = dict(part.split("=", 1) for part in self.cookie.split("; "))
        cookies[name] = rest.split(";", 1)[0]
        self.cookie = "; ".join(f"{key}={val}" for key, val in cookies.items())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _drive(
    users: list[User],
    tenancy: Tenancy,
    pages: tuple[str, ...],
    window: tuple[float, float],
    think: float,
    snapshot,
) -> tuple[list[Answer], list]:
    """Users walk `pages` from now until the end of `window` (seconds from now); the answers to
    the requests sent inside the window, and `snapshot()` taken at its start and at its end."""
    answers: list[Answer] = []
    now = time.perf_counter()
    start, end = now + window[0], now + window[1]
    snapshots = []
    seen: set[str] = set()

    async def take_snapshots() -> None:
        for moment in (start, end):
            await asyncio.sleep(moment - time.perf_counter())
            snapshots.append(snapshot())

    async def walk(index: int, user: User) -> None:
        number = index
        chance = random.Random(index)
        if think:  # users who think do not all click at the same instant
            await asyncio.sleep(chance.uniform(0, think))
        # Every page at least once inside the window, however slow the machine is today.
        while time.perf_counter() < end or len(seen) < len(pages):
            page = pages[number % len(pages)]
            started = time.perf_counter()
            status, worker = await user.get(_urls(tenancy, page, number))
            elapsed = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"{page} answered {status}")
            if started >= start:
                answers.append(Answer(page, started, elapsed, worker))
                seen.add(page)
            number += 1
            if think:
                await asyncio.sleep(chance.expovariate(1 / think))

    try:
        await asyncio.gather(
            take_snapshots(), *(walk(index, user) for index, user in enumerate(users))
        )
    finally:
        for user in users:
            user.close()
    return answers, snapshots


# CPU accounting ------------------------------------------------------------------------------


def _tree_seconds(root: psutil.Process | None) -> float:
    """CPU seconds of a process and its children, those already reaped included."""
    if root is None:
        return 0.0
    times = root.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in root.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += child_times.user + child_times.system
    return total


def _postgres(app: Flask) -> psutil.Process | None:
    """PostgreSQL's postmaster when it runs on this machine (its backends are its children)."""
    with app.app_context():
        backend = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        db.session.remove()
    try:
        return psutil.Process(backend).parent()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


@dataclass
class Step:
    config: str
    kind: str
    users: int
    answers: list[Answer]
    seconds: float
    server_cpu: float
    postgres_cpu: float
    generator_cpu: float
    machine_cpu: float
    load_average: float
    think: float = 0.0
    workers: Counter = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return len(self.answers) / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(answer.seconds for answer in self.answers)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def slowdowns(self, unloaded: dict[str, float]) -> list[float]:
        return [answer.seconds / unloaded[answer.page] for answer in self.answers]

    def spread(self) -> str:
        counts = sorted(self.workers.values(), reverse=True)
        return "/".join(map(str, counts))


def _measure(
    config: str,
    kind: str,
    users: list[User],
    tenancy: Tenancy,
    server: psutil.Process,
    postgres: psutil.Process | None,
    think: float = 0.0,
) -> Step:
    pages = ("bare",) if kind == "bare" else PAGES
    # Thinking users need a few of their think times before they all click at their pace.
    warmup = max(WARMUP_SECONDS, think)
    seconds = max(STEP_SECONDS, 3 * think)

    def snapshot() -> tuple:
        return (
            time.perf_counter(),
            _tree_seconds(server),
            _tree_seconds(postgres),
            time.process_time(),
            psutil.cpu_times(),
        )

    answers, (before, after) = asyncio.run(
        _drive(users, tenancy, pages, (warmup, warmup + seconds), think, snapshot)
    )
    wall, server_seconds, postgres_seconds, generator = (
        end - begin for end, begin in zip(after[:4], before[:4], strict=True)
    )
    busy = sum(after[4]) - after[4].idle - (sum(before[4]) - before[4].idle)
    cores = psutil.cpu_count()
    return Step(
        config,
        kind,
        len(users),
        answers,
        wall,
        server_seconds / (wall * cores),
        postgres_seconds / (wall * cores),
        generator / (wall * cores),
        busy / (sum(after[4]) - sum(before[4])),
        os.getloadavg()[0],
        think,
        Counter(answer.worker for answer in answers),
    )


def _print_step(step: Step) -> None:
    think = f" think {step.think * 1e3:.0f} ms" if step.think else ""
    print(
        f"  {step.config:<20}{step.kind:<5}{step.users:>3} users{think:<16} {step.rate:7.1f} req/s"
        "   "
        f"p50 {step.percentile(0.5) * 1e3:6.1f} ms   p95 {step.percentile(0.95) * 1e3:6.1f} ms   "
        f"gunicorn {step.server_cpu:4.0%}  postgres {step.postgres_cpu:4.0%}  "
        f"generator {step.generator_cpu:4.0%}  machine {step.machine_cpu:4.0%}  "
        f"load {step.load_average:4.1f}   per process {step.spread()}",
        flush=True,
    )


def _serve(environment: BenchEnvironment, arguments: list[str], port: int, log):
    env = process_env(environment, DB_POOL_SIZE="10", LOGIN_RATE_LIMIT="1000 per minute")
    command = [
        PYTHON,
        "-m",
        "gunicorn",
        "--config",
        "gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        *arguments,
        "bench.load:load_app()",
    ]
    return spawn(command, env, log)


@dataclass
class Server:
    config: str
    port: int
    process: object
    master: psutil.Process | None = None


def _curves(environment, app, tenancy, configs, logs) -> dict[str, dict]:
    """Every serving model up at once, each step measured on each in turn: the machine's other
    work falls on all of them alike."""
    servers = []
    try:
        for number, config in enumerate(configs):
            port = free_port()
            log = logs / f"gunicorn-{number}.log"
            servers.append(Server(config, port, _serve(environment, CONFIGS[config], port, log)))
        for server in servers:
            wait_for_port(server.port, 60, server.process)
            server.master = psutil.Process(server.process.pid)
        postgres = _postgres(app)
        # The login session lives in the database: one log-in serves on every server.
        base = f"http://127.0.0.1:{servers[0].port}"
        cookies = [_log_in(base, tenancy.email) for _ in range(max(USERS))]
        for server in servers:
            print(f"  {server.config}: {' '.join(CONFIGS[server.config]) or '(the file as it is)'}")
        for server in servers:
            asyncio.run(_warm(server, tenancy, cookies))
        steps: dict[tuple[str, str, int], Step] = {}
        for count in USERS:
            for kind in ("mix", "bare"):
                for server in servers:
                    users = [User(server.port, cookie) for cookie in cookies[:count]]
                    step = _measure(server.config, kind, users, tenancy, server.master, postgres)
                    steps[server.config, kind, count] = step
                    _print_step(step)
        results = {server.config: {} for server in servers}
        for kind in ("mix", "bare"):
            for server in servers:
                config = server.config
                curve = [steps[config, kind, count] for count in USERS]
                saturated = max(curve, key=lambda step: step.rate)
                think = max(
                    0.0, max(USERS) / (saturated.rate * HALF_LOAD) - curve[0].percentile(0.5)
                )
                users = [User(server.port, cookie) for cookie in cookies]
                paced = _measure(config, kind, users, tenancy, server.master, postgres, think)
                _print_step(paced)
                slowdown = paced.slowdowns(_unloaded(curve[0]))
                p95_slowdown = statistics.quantiles(slowdown, n=20, method="inclusive")[-1]
                print(f"        p95 slowdown at half load {p95_slowdown:.2f}x the unloaded median")
                results[config][kind] = (saturated, paced, p95_slowdown)
        for server in servers:
            medians = _unloaded(steps[server.config, "mix", 1])
            rss = [child.memory_info().rss >> 20 for child in server.master.children()]
            print(
                f"  {server.config}: unloaded medians "
                + ", ".join(f"{page} {medians[page] * 1e3:.1f} ms" for page in PAGES)
                + f"; worker memory after the run {', '.join(f'{mib} MiB' for mib in rss)}"
            )
        return results
    finally:
        for server in servers:
            stop(server.process)


async def _warm(server: Server, tenancy: Tenancy, cookies: list[str]) -> None:
    """Each worker process builds its statements and templates on first use: every process
    serves every page a few times (a new connection for each request, so that the kernel deals
    them out) before anything is measured."""
    processes = len(server.master.children())
    served: Counter = Counter()
    deadline = time.perf_counter() + WARM_SECONDS

    async def visit(index: int) -> None:
        user = User(server.port, cookies[index])
        number = index
        while time.perf_counter() < deadline and (
            len({worker for worker, _ in served}) < processes
            or min(served.values()) < WARM_VISITS
            or len(served) < processes * (len(PAGES) + 1)
        ):
            page = ("bare", *PAGES)[number % (len(PAGES) + 1)]
            _, worker = await user.get(_urls(tenancy, page, number))
            served[worker, page] += 1
            user.close()
            number += 1

    await asyncio.gather(*(visit(index) for index in range(8)))


def _unloaded(step: Step) -> dict[str, float]:
    by_page: dict[str, list[float]] = {}
    for answer in step.answers:
        by_page.setdefault(answer.page, []).append(answer.seconds)
    return {page: statistics.median(values) for page, values in by_page.items()}


def run(environment: BenchEnvironment) -> list[Verdict]:
    chosen = os.environ.get("LOAD_CONFIGS", "")
    if chosen == "all":
        configs = list(CONFIGS)
    else:
        configs = chosen.split(",") if chosen else list(DEFAULT_CONFIGS)
    print_header(
        f"load: {CLIENTS:,} clients / {INVOICES:,} invoices, closed-loop users against gunicorn",
        MEASURES,
    )
    verdicts = []
    with environment.app() as app, _log_dir("load") as logs:
        with Stopwatch() as setup:
            tenancy = _set_up_tenant(app)
        print_figure("tenant loaded", f"{setup.seconds:6.1f} s")
        results = _curves(environment, app, tenancy, configs, logs)
    for config, result in results.items():
        mix, mix_paced, mix_slowdown = result["mix"]
        bare, _, _ = result["bare"]
        print_figure(
            f"saturation [{config}]",
            f"mix {mix.rate:.0f} req/s ({mix.users} users), bare "
            f"{bare.rate:.0f} req/s ({bare.users} users)",
        )
        verdicts += [
            Verdict(
                f"load [{config}]: bare-route req/s / mix req/s at saturation "
                f"(mix at {mix.rate / bare.rate:.0%} of the bare route)",
                bare.rate,
                mix.rate,
                1 / MIX_MIN_SHARE,
            ),
            Verdict(
                f"load [{config}]: mix p95 at half load / unloaded median "
                f"(50 users, gunicorn {mix_paced.server_cpu:.0%} CPU, "
                f"per process {mix_paced.spread()})",
                mix_slowdown,
                1.0,
                SLOWDOWN_MAX,
            ),
        ]
    for verdict in verdicts:
        print(f"  -> {verdict.line()}", flush=True)
    return verdicts
