"""Issue 20's measured targets (Tally through the connector agent), against the stand-in
TallyPrime in its own process, the real agent (`duebook-tally-agent run`) in its own, gunicorn
serving /api/agent/v1 as `make run` does, and a real RQ worker process on the `sync` queue:

- tally_pull: 5,000 debtor ledgers and 20,000 sales vouchers pulled on connecting. Duebook's
  side (parse, map, write: the same connect in-process, the waits for Tally taken out)
  against a plain COPY of the rows it wrote: >= 40% of COPY's rows/s. The agent's peak RSS after the
  pull (a month an answer) against a fresh agent relaying the whole year in one answer: flat.
- tally_push_drill: 2,000 invoices issued in Duebook after the review pushed through the agent
  while it is SIGKILLed 3 times and started again: each invoice once in Tally, every one linked.

`BENCH_SYNC_SCALE=0.1` runs both at a tenth of their records (a quick check)."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import httpx
import psycopg
from flask import Flask
from rq import SimpleWorker
from sqlalchemy import func, select, text

from app import create_app
from app.core.handover import get_queue
from app.devserver import free_port, wait_for_port
from app.extensions import db
from app.integrations import agent_relay
from app.integrations.connectors.tally import TallyConnector
from app.integrations.connectors.tally_xml import vouchers_request
from app.integrations.models import IntegrationConnection
from app.sandbox.standins.tally import DEMO_COMPANY
from app.sync import services, tally
from app.sync.books import build_connector
from app.sync.models import SyncLink
from bench.accounting import (
    Worker,
    Workspace,
    _issue_invoices,
    bound,
    confirm_review,
    latest_run,
    linked_invoices,
    new_workspace,
    scaled,
    sync_now,
    wait_for,
)
from bench.common import BenchEnvironment, Stopwatch, print_figure, print_header
from bench.messaging import (
    PYTHON,
    ROOT,
    Check,
    Share,
    _log_dir,
    print_line,
    process_env,
    spawn,
    stop,
)
from tenants.binding import schema_for_tenant_id

AGENT = str(Path(PYTHON).with_name("duebook-tally-agent"))
# The pull's target: Duebook's rows/s as a share of a plain COPY of the same rows.
PULL_MIN_SHARE = 0.4
# The agent's peak RSS may differ by this much between a month an answer and a year in one.
FLAT_RSS_MB = 8
COPY_ROUNDS = 3


# The processes -------------------------------------------------------------------------------


@contextmanager
def tally_standin(ledgers: int, vouchers: int) -> Iterator[str]:
    """The stand-in TallyPrime in its own process with the bulk company's books; its URL."""
    process = subprocess.Popen(
        [PYTHON, "-m", "app.sandbox.standins", "tally", "--port", "0"]
        + ["--ledgers", str(ledgers), "--vouchers", str(vouchers)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the Tally stand-in did not start ({url!r})")
        yield url
    finally:
        stop(process)


@contextmanager
def web(environment: BenchEnvironment, logs: Path) -> Iterator[str]:
    """gunicorn as `make run` and production start it (gunicorn.conf.py): the agent's API."""
    port = free_port()
    process = spawn(
        [PYTHON, "-m", "gunicorn", "--config", "gunicorn.conf.py"]
        + ["--bind", f"127.0.0.1:{port}", "wsgi:app"],
        process_env(environment, DB_POOL_SIZE="4"),
        logs / "gunicorn.log",
    )
    try:
        wait_for_port(port, 60, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


class Agent:
    """`duebook-tally-agent`, paired with a code from the Tally page, then run as a person
    runs it on the Tally computer; restartable, killable."""

    def __init__(self, server: str, tally_url: str, logs: Path, name: str = "agent"):
        self.server, self.tally_url, self.logs, self.name = server, tally_url, logs, name
        self.home = Path(tempfile.mkdtemp(prefix="agent-", dir=logs))
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
        }
        self.env.update(DUEBOOK_AGENT_HOME=str(self.home), DUEBOOK_AGENT_NO_KEYRING="1")
        self.started = 0
        self.process: subprocess.Popen | None = None

    def pair(self, code: str) -> None:
        subprocess.run(
            [AGENT, "pair", "--server", self.server, "--code", code],
            env=self.env,
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self.started += 1
        self.process = spawn(
            [AGENT, "run", "--tally", self.tally_url],
            self.env,
            self.logs / f"{self.name}-{self.started}.log",
        )

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


def pairing_code(app: Flask, workspace: Workspace, replace: bool = False) -> str:
    """What "Make a pairing code" on the Tally page does."""
    with bound(app, workspace) as session:
        connection = tally.set_up(session, workspace.user_id)
        code = tally.pairing_code(session, connection, replace)
        session.commit()
        workspace.connection_id = connection.id
        return code


def wait_for_agent(app: Flask, workspace: Workspace, timeout: float = 30) -> None:
    """Until the agent has reported its health (its first call after starting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with bound(app, workspace) as session:
            connection = session.get(IntegrationConnection, workspace.connection_id)
            if ((connection.settings or {}).get("agent") or {}).get("seen_at"):
                return
        time.sleep(0.2)
    raise RuntimeError("the agent did not report to Duebook")


def choose_company(app: Flask, workspace: Workspace) -> None:
    """ "Choose the company in Tally": its companies asked through the agent, the one open
    chosen; the review run is handed to the worker on commit."""
    with bound(app, workspace) as session:
        connection = session.get(IntegrationConnection, workspace.connection_id)
        offered = tally.find_companies(session, connection)
        services.choose_book(session, connection, offered[0]["id"], workspace.user_id)
        session.commit()


def connect(app: Flask, workspace: Workspace, timeout: float) -> float:
    """Company chosen, review, review confirmed at once, first sync to "done": seconds
    (without the moment between the review being ready and its confirmation)."""
    with Stopwatch() as to_review:
        choose_company(app, workspace)
        wait_for(app, workspace, ("review",), timeout)
    with Stopwatch() as after_review:
        confirm_review(app, workspace)
        time.sleep(0.2)  # the confirmation's run, not the review's, is the latest now
        wait_for(app, workspace, ("done",), timeout, every=0.5)
    return to_review.seconds + after_review.seconds


# Duebook's side, in this process -----------------------------------------------------------


class DirectTally:
    """The connector's `ask` answered by the stand-in directly (the bytes the agent streams
    through unchanged), the time spent waiting for Tally's answers added up."""

    def __init__(self, tally_url: str):
        self.tally_url = tally_url
        self.answers = 0
        self.bytes = 0
        self.waiting = 0.0

    def ask(self, request: bytes) -> bytes:
        with Stopwatch() as watch:
            answer = httpx.post(
                self.tally_url,
                content=request,
                headers={"Content-Type": "text/xml;charset=utf-8"},
                timeout=300,
                trust_env=False,
            ).content
        self.waiting += watch.seconds
        self.answers += 1
        self.bytes += len(answer)
        return answer


class BurstWorker(SimpleWorker):
    """A worker that runs the queue's jobs in this process and takes no commands: RQ's worker
    listens for them on a thread that its teardown then waits a whole second for (join with a
    one-second timeout on a thread that sleeps for a minute), and that second, twice a connect,
    is not Duebook's processing."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


def run_in_process(app: Flask) -> None:
    """The sync queue's jobs, run in this process as the worker would run them."""
    with app.app_context():
        queue = get_queue("sync")
        BurstWorker([queue], connection=queue.connection).work(
            burst=True, with_scheduler=False, logging_level="WARNING"
        )


def in_process_sync(app: Flask, workspace: Workspace, ask) -> float:
    """The same connect as through the agent, in a fresh workspace, with the connector's
    `ask` answered by `ask`: seconds from choosing the company to the first sync done (the
    app's pages are fetched in turn, SYNC_FETCH_AHEAD 0, so that the waits can be taken out)."""
    with bound(app, workspace) as session:
        connection = tally.set_up(session, workspace.user_id)
        # What a paired agent leaves in the settings (the connector asks nothing of it here).
        connection.settings = {**(connection.settings or {}), "agent": {"machine": "in-process"}}
        session.commit()
        workspace.connection_id = connection.id
    with mock.patch.object(TallyConnector, "ask", ask), Stopwatch() as watch:
        choose_company(app, workspace)
        run_in_process(app)
        confirm_review(app, workspace)
        run_in_process(app)
    run = latest_run(app, workspace)
    if run.status != "done":
        raise RuntimeError(f"the in-process sync ended {run.status}: {run.error}")
    return watch.seconds


def disconnect(app: Flask, workspace: Workspace) -> None:
    """A company syncs with one workspace at a time: the next workspace may choose it."""
    with bound(app, workspace) as session:
        services.disconnect(session, session.get(IntegrationConnection, workspace.connection_id))
        session.commit()


def current_xid(app: Flask) -> int:
    with app.app_context():
        xid = db.session.scalar(text("SELECT txid_current() % 4294967296"))
        db.session.commit()
        return int(xid)


def written_rows(app: Flask, workspace: Workspace, since_xid: int) -> dict[str, bytes]:
    """Each of the workspace's tables' rows written since `since_xid`, as COPY text."""
    schema = schema_for_tenant_id(workspace.tenant_id)
    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg", "postgresql")
    found: dict[str, bytes] = {}
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            (schema,),
        ).fetchall()
        for (table,) in tables:
            query = (
                f'COPY (SELECT * FROM "{schema}"."{table}"'
                f" WHERE xmin::text::bigint >= {since_xid}) TO STDOUT"
            )
            with conn.cursor().copy(query) as copy:
                data = b"".join(bytes(block) for block in copy)
            if data:
                found[table] = data
    return found


def copy_seconds(app: Flask, workspace: Workspace, rows: dict[str, bytes]) -> float:
    """Median of COPY_ROUNDS plain COPYs of `rows` into copies of their tables made LIKE the
    real ones (columns, defaults, indexes), in a transaction rolled back."""
    schema = schema_for_tenant_id(workspace.tenant_id)
    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg", "postgresql")
    rounds = []
    with psycopg.connect(url) as conn:
        for _ in range(COPY_ROUNDS + 1):  # the first is a warm-up
            with conn.transaction(force_rollback=True):
                for table in rows:
                    conn.execute(
                        f'CREATE TEMP TABLE "copy_{table}" (LIKE "{schema}"."{table}"'
                        " INCLUDING DEFAULTS INCLUDING INDEXES INCLUDING CONSTRAINTS)"
                    )
                with Stopwatch() as watch:
                    for table, data in rows.items():
                        with conn.cursor().copy(f'COPY "copy_{table}" FROM STDIN') as copy:
                            copy.write(data)
                rounds.append(watch.seconds)
    return statistics.median(rounds[1:])


# The tables a pull writes itself, parents first; the rest of what it wrote (the aging summary,
# its changes, the day's sales) its INSERTs' triggers derive.
WRITTEN_BY_THE_PULL = (
    "integration_connections",
    "sync_runs",
    "sync_states",
    "sync_matches",
    "clients",
    "client_contacts",
    "invoices",
    "invoice_lines",
    "sync_links",
    "audit_log",
    "domain_events",
)


def write_floor_seconds(app: Flask, rows: dict[str, bytes]) -> float:
    """What writing the pull's rows costs PostgreSQL alone, done the cheapest way SQL allows:
    the rows the pull wrote itself, already in TEMP tables, INSERTed ... SELECTed into a fresh
    workspace's real tables in one statement a table (indexes, constraints and triggers: the
    aging rows derived as in the pull), in a transaction rolled back; median of COPY_ROUNDS.
    No parsing, mapping or round trips: the share no pull can beat."""
    url = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg", "postgresql")
    tables = [table for table in WRITTEN_BY_THE_PULL if table in rows]
    rounds = []
    for number in range(COPY_ROUNDS + 1):  # the first is a warm-up
        schema = schema_for_tenant_id(new_workspace(app, f"floor-{number}").tenant_id)
        with psycopg.connect(url) as conn, conn.transaction(force_rollback=True):
            for table in tables:
                conn.execute(f'CREATE TEMP TABLE "staged_{table}" (LIKE "{schema}"."{table}")')
                with conn.cursor().copy(f'COPY "staged_{table}" FROM STDIN') as copy:
                    copy.write(rows[table])
            with Stopwatch() as watch:
                for table in tables:
                    conn.execute(
                        f'INSERT INTO "{schema}"."{table}" OVERRIDING SYSTEM VALUE'
                        f' SELECT * FROM "staged_{table}"'
                    )
            rounds.append(watch.seconds)
    return statistics.median(rounds[1:])


def relay_ask(app: Flask, workspace: Workspace, request: bytes, timeout: float = 300) -> bytes:
    """A request passed to the workspace's agent and its answer, as a connector asks it."""
    with app.app_context():
        work = agent_relay.post_work(workspace.tenant_id, workspace.connection_id, request)
        answer = agent_relay.wait_answer(
            workspace.tenant_id, workspace.connection_id, work, timeout
        )
    if answer is None:
        raise RuntimeError("the agent did not answer")
    return answer


def whole_period_request(app: Flask, workspace: Workspace, tally_url: str) -> bytes:
    """Every sales voucher of the books' period in one request (what the pull never asks)."""
    with bound(app, workspace) as session:
        connection = session.get(IntegrationConnection, workspace.connection_id)
        settings = connection.settings
    with app.app_context(), mock.patch.object(TallyConnector, "ask", DirectTally(tally_url).ask):
        connector = build_connector("tally", settings, {})
        period = connector.books_period(settings["book_id"])
    return vouchers_request(DEMO_COMPANY, ("Sales",), period=period)


# tally_pull ------------------------------------------------------------------------------------

PULL_MEASURES = """
The stand-in TallyPrime in its own process holding {ledgers:,} debtor ledgers and {vouchers:,}
sales vouchers (18% GST, over the last year); the agent (duebook-tally-agent run, paired with a
code from the Tally page) in its own process; gunicorn serving /api/agent/v1; one worker
process (python -m jobs.worker sync). Connected as the Tally page does it: companies asked
through the agent, the company chosen, the review (every debtor), confirmed at once, the first
sync (the vouchers, a month an answer) to "done": the wall time through the agent.
  Duebook-side  the same connect in this process in a fresh workspace (same path: Books ->
                connector -> readers -> engine -> commits), the connector's `ask` posting to the
                stand-in directly, pages in turn (no fetching ahead): its time less the time
                spent waiting for Tally's answers
  COPY          the rows that run wrote (every table of the workspace, read back by xmin),
                COPYed into TEMP tables made LIKE the real ones (indexes included), rolled
                back; median of {rounds}
  write alone   the rows the pull wrote itself (not those its triggers derive), staged in TEMP
                tables, INSERTed ... SELECTed into a fresh workspace's real tables, one
                statement a table, triggers firing, rolled back; median of {rounds}: what
                PostgreSQL alone needs for the same rows, with no parsing, mapping or round trip
  share         Duebook-side rows/s / COPY rows/s (target >= {share:.0%})
  agent memory  its peak RSS (VmHWM) after relaying the whole pull, against a fresh agent's
                after relaying the whole period's vouchers in ONE answer: flat when within
                {flat} MB (the answers' sizes printed: streaming means no growth with them)
"""


def run_pull(environment: BenchEnvironment) -> list:
    ledgers, vouchers = scaled(5_000), scaled(20_000)
    print_header(
        f"tally_pull: {ledgers:,} ledgers and {vouchers:,} vouchers from Tally through the agent",
        PULL_MEASURES.format(
            ledgers=ledgers,
            vouchers=vouchers,
            rounds=COPY_ROUNDS,
            share=PULL_MIN_SHARE,
            flat=FLAT_RSS_MB,
        ),
    )
    with (
        tally_standin(ledgers, vouchers) as tally_url,
        _log_dir("tally-pull") as logs,
        environment.app() as app,
        web(environment, logs) as server,
    ):
        workspace = new_workspace(app, "tally")
        worker = Worker(environment, None, logs)
        agent = Agent(server, tally_url, logs)
        try:
            agent.pair(pairing_code(app, workspace))
            agent.start()
            wait_for_agent(app, workspace)
            cpu_before = worker.cpu_seconds()
            wall = connect(app, workspace, timeout=1200)
            worker_cpu = worker.cpu_seconds() - cpu_before
            pull_rss = agent.peak_rss_mb()
            agent.stop()
            # A fresh agent, paired with a workspace of its own (the first agent's last long
            # poll may still be waiting on the first's queue), relays the whole period at once.
            alone = new_workspace(app, "tally-memory")
            fresh = Agent(server, tally_url, logs, name="fresh-agent")
            fresh.pair(pairing_code(app, alone))
            fresh.start()
            wait_for_agent(app, alone)
            whole = relay_ask(app, alone, whole_period_request(app, workspace, tally_url))
            whole_rss = fresh.peak_rss_mb()
            fresh.stop()
        finally:
            agent.stop()
            worker.stop()
        through_agent = latest_run(app, workspace)
        disconnect(app, workspace)

        # Duebook's side: the same connect in this process, Tally asked directly and the
        # waits for its answers taken out; pages in turn (no fetching ahead in a thread).
        in_turn = create_app({**environment.config, "SYNC_FETCH_AHEAD": 0})
        direct = DirectTally(tally_url)
        direct_workspace = new_workspace(app, "direct")
        since = current_xid(app)
        try:
            wall_in_turn = in_process_sync(in_turn, direct_workspace, direct.ask)
        finally:
            with in_turn.app_context():
                db.engine.dispose()
        seconds = wall_in_turn - direct.waiting
        rows = written_rows(app, direct_workspace, since)
        copy = copy_seconds(app, direct_workspace, rows)
        floor = write_floor_seconds(app, rows)
        with bound(app, direct_workspace) as session:
            links = session.scalar(select(func.count()).select_from(SyncLink))

    counts = {table: data.count(b"\n") for table, data in rows.items()}
    total = sum(counts.values())
    shown = ", ".join(
        f"{table} {count:,}" for table, count in sorted(counts.items(), key=lambda i: -i[1])
    )
    print_figure("first sync through the agent", f"{wall:.1f} s (companies to done)")
    print_figure("  its run", f"{through_agent.read:,} read, {through_agent.created:,} created")
    print_figure(
        "  the worker's CPU",
        f"{worker_cpu:.1f} s; the rest waiting (on the agent and Tally, and on PostgreSQL)",
    )
    print_figure(
        "in this process, in turn",
        f"{wall_in_turn:.1f} s = {direct.waiting:.1f} s waiting for Tally's {direct.answers} "
        f"answers ({direct.bytes / 1e6:.1f} MB) + {seconds:.1f} s Duebook-side",
    )
    print_figure("rows written (in-process run)", f"{total:,}: {shown}")
    print_figure("  of which links", f"{links:,}")
    print_figure("Duebook-side", f"{seconds:.2f} s, {total / seconds:,.0f} rows/s")
    print_figure("plain COPY", f"{copy:.2f} s, {total / copy:,.0f} rows/s")
    print_figure(
        "  the write alone, set-based",
        f"{floor:.2f} s: {total / floor:,.0f} rows/s, {copy / floor:.0%} of COPY's (the most "
        "any pull could reach)",
    )
    share = Share(
        "tally_pull: Duebook-side rows/s vs COPY", total / seconds, total / copy, PULL_MIN_SHARE
    )
    print_line(share)
    print_figure(
        "agent peak RSS",
        f"{pull_rss:.1f} MB after the pull (a month an answer); {whole_rss:.1f} MB for the "
        f"whole period in one answer of {len(whole) / 1e6:.1f} MB",
    )
    flat = Check(
        "tally_pull: the agent's memory is flat",
        abs(whole_rss - pull_rss) <= FLAT_RSS_MB,
        f"peak RSS {pull_rss:.1f} MB (months) vs {whole_rss:.1f} MB (one answer of "
        f"{len(whole) / 1e6:.1f} MB)",
    )
    print_line(flat)
    return [share, flat]


# tally_push_drill ------------------------------------------------------------------------------

DRILL_MEASURES = """
A workspace connected through the agent to the stand-in ({ledgers} debtor ledgers, no
vouchers), its review confirmed; then {invoices:,} invoices issued in Duebook on the linked
clients (written by SQL, one 18% line each) and "Sync now" pushes them as sales vouchers. The
agent process is SIGKILLed {kills} times, each time another quarter of the invoices is linked
(so every kill lands in the push), and started again a second later, as a person would; the
worker waits {wait} s for an answer (TALLY_ANSWER_SECONDS), so a run whose agent is gone fails
quickly; "Sync now" again after a failed run, until nothing is waiting. Then Tally's books
(/_standin/books): each invoice number once as a Sales voucher, every invoice linked.
"""
DRILL_KILLS = 3
DRILL_WAIT = 5


def run_push_drill(environment: BenchEnvironment) -> list:
    invoices, ledgers = scaled(2_000), 50
    print_header(
        f"tally_push_drill: {invoices:,} invoices pushed through the agent, {DRILL_KILLS} SIGKILLs",
        DRILL_MEASURES.format(
            ledgers=ledgers, invoices=invoices, kills=DRILL_KILLS, wait=DRILL_WAIT
        ),
    )
    events: list[str] = []
    with (
        tally_standin(ledgers, 0) as tally_url,
        _log_dir("tally-drill") as logs,
        environment.app() as app,
        web(environment, logs) as server,
    ):
        workspace = new_workspace(app, "tally-drill")
        worker = Worker(environment, None, logs, TALLY_ANSWER_SECONDS=str(DRILL_WAIT))
        agent = Agent(server, tally_url, logs)
        runs = 0
        try:
            agent.pair(pairing_code(app, workspace))
            agent.start()
            wait_for_agent(app, workspace)
            connect(app, workspace, timeout=300)
            _issue_invoices(app, workspace, invoices)
            kills = 0
            with Stopwatch() as watch:
                sync_now(app, workspace)
                runs += 1
                deadline = time.perf_counter() + 1800
                time.sleep(0.5)
                while True:
                    now = time.perf_counter() - watch.started
                    linked = linked_invoices(app, workspace)
                    if kills < DRILL_KILLS and linked >= (kills + 1) * invoices / (DRILL_KILLS + 1):
                        agent.kill()
                        kills += 1
                        time.sleep(1)
                        agent.start()
                        events.append(f"{now:6.1f}s SIGKILL at {linked:,} linked, agent restarted")
                    run = latest_run(app, workspace)
                    if run.status in ("done", "failed"):
                        if run.status == "failed":
                            events.append(f"{now:6.1f}s run {run.id} failed: {run.error}")
                        if linked == invoices and run.status == "done":
                            break
                        sync_now(app, workspace)
                        runs += 1
                        time.sleep(0.2)
                    if time.perf_counter() > deadline:
                        raise RuntimeError("the push did not finish within half an hour")
                    time.sleep(0.5)
            linked = linked_invoices(app, workspace)
        finally:
            agent.stop()
            worker.stop()
        books = httpx.get(
            f"{tally_url}/_standin/books", params={"company": DEMO_COMPANY}, trust_env=False
        ).json()

    numbers = [
        v["number"]
        for v in books["vouchers"]
        if v["kind"] == "Sales" and v["number"].startswith("DRL-")
    ]
    duplicates = len(numbers) - len(set(numbers))
    print_figure("events", "\n" + "\n".join(f"{'':34}{line}" for line in events))
    print_figure("push time", f"{watch.seconds:.1f} s (first Sync now to done, kills included)")
    print_figure("runs", f"{runs} (Sync now pressed {runs} times)")
    print_figure("kills", f"{kills} SIGKILLs, {agent.started - 1} restarts")
    print_figure("in Tally", f"{len(set(numbers)):,} invoice numbers, {duplicates} duplicates")
    print_figure("linked", f"{linked:,} of {invoices:,}")
    passed = (
        kills == DRILL_KILLS
        and duplicates == 0
        and len(set(numbers)) == invoices
        and linked == invoices
    )
    verdict = Check(
        f"tally_push_drill: {invoices:,} invoices through {kills} agent kills",
        passed,
        f"{len(set(numbers)):,} in Tally, {duplicates} duplicates, {linked:,} linked, "
        f"{runs} runs, {watch.seconds:.0f} s",
    )
    print_line(verdict)
    return [verdict]
