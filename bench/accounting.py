"""Issue 19's measured targets (the accounting sync), against the Xero stand-in run as its own
process and a real RQ worker process on the `sync` queue:

- accounting_first_sync: 10,000 contacts and 50,000 invoices at Xero's real limits (60 calls
  a minute, 5,000 a day, 5 at once), the engine's pacing on: total time <= 1.1x the floor the
  rate limit sets (the fewest calls the connector's page size allows, one a second).
- accounting_incremental: after a first sync, 100 changes in the books and 100 in Duebook,
  then one "Sync now": calls the stand-in received <= 2x the fewest needed.
- accounting_fault_drill: 5,000 invoices issued in Duebook pushed to the books while the worker
  is SIGKILLed 5 times and 10% of writes fail (429 or 500): each invoice once in the books,
  every one linked, a full refresh's reconciliation with 0 differences.

`BENCH_SYNC_SCALE=0.1` runs all three at a tenth of their records (a quick check); the
figures in bench/README.md are at scale 1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from flask import Flask
from sqlalchemy import func, select, text

from app import create_app
from app.auth import services as accounts
from app.clients.models import Client
from app.extensions import db
from app.integrations.models import IntegrationConnection
from app.invoicing.models import Invoice
from app.payments import services as payments
from app.settings.services import workspace_settings
from app.sync import services
from app.sync.mapping import billing_contact
from app.sync.models import SyncLink, SyncReport, SyncRun
from bench.common import (
    BenchEnvironment,
    Stopwatch,
    Verdict,
    print_figure,
    print_header,
    print_verdict,
)
from bench.messaging import PYTHON, ROOT, Check, _log_dir, print_line, process_env, spawn, stop
from bench.pages import PASSWORD
from tenants import services as tenants
from tenants.binding import bind_tenant, schema_for_tenant_id

SCALE = float(os.environ.get("BENCH_SYNC_SCALE", "1"))
PAGE = 100  # the Xero connector's page size (XeroConnector.page_size)
REDIRECT_URI = "http://127.0.0.1/sync/oauth/xero/callback"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def scaled(count: int) -> int:
    return max(1, round(count * SCALE))


def pages(records: int) -> int:
    """Pages of the connector's size to read `records` (an empty answer ends a pass too)."""
    return max(1, -(-records // PAGE))


# The stand-in, the worker and the workspace ---------------------------------------------------


@contextmanager
def xero_standin(*options: str) -> Iterator[str]:
    """The Xero stand-in in its own process (its own interpreter, as Xero would be); its URL."""
    process = subprocess.Popen(
        [PYTHON, "-m", "app.sandbox.standins", "xero", "--port", "0", *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the Xero stand-in did not start ({url!r})")
        yield url
    finally:
        stop(process)


def standin_stats(url: str) -> dict:
    return httpx.get(f"{url}/_standin/stats", params={"per_key": "0"}, trust_env=False).json()


def xero_settings(url: str) -> dict[str, str]:
    return {"XERO_LOGIN_BASE": url, "XERO_IDENTITY_BASE": url, "XERO_API_BASE": url}


def sync_app(environment: BenchEnvironment, url: str, **settings) -> Flask:
    return create_app({**environment.config, **xero_settings(url), **settings})


class Worker:
    """`python -m jobs.worker sync`, the sync queue's worker, as a process; restartable.
    `url`: the Xero stand-in's (None for books reached otherwise)."""

    def __init__(self, environment: BenchEnvironment, url: str | None, logs, **env: str):
        self.env = process_env(environment, **(xero_settings(url) if url else {}), **env)
        self.logs = logs
        self.started = 0
        self.process = self.start()

    def start(self) -> subprocess.Popen:
        self.started += 1
        self.process = spawn(
            [PYTHON, "-m", "jobs.worker", "sync"],
            self.env,
            self.logs / f"worker-{self.started}.log",
        )
        return self.process

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker process so far (from /proc)."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        stop(self.process)


@dataclass
class Workspace:
    tenant_id: int
    slug: str
    user_id: int
    connection_id: int | None = None


def new_workspace(app: Flask, name: str) -> Workspace:
    """Demo Traders' workspace as in the demo: India, Karnataka (29), INR."""
    slug = f"bench-{name}-{os.urandom(3).hex()}"
    with app.app_context():
        owner = accounts.create_user(
            db.session, email=f"owner@{slug}.example.com", full_name="Owner", password=PASSWORD
        )
        tenant = tenants.create_tenant(
            db.session,
            slug=slug,
            name="Demo Traders Private Limited",
            country="IN",
            time_zone="Asia/Kolkata",
            currency="INR",
            region="29",
            owner=owner,
        )
        settings = workspace_settings(db.session, tenant.id)
        settings.legal_name = "Demo Traders Private Limited"
        settings.gstin = "29AAPFU0939F1ZR"
        db.session.commit()
        return Workspace(tenant.id, slug, owner.id)


@contextmanager
def bound(app: Flask, workspace: Workspace) -> Iterator:
    with app.app_context():
        bind_tenant(db.session, workspace.tenant_id, actor_user_id=workspace.user_id)
        try:
            yield db.session
        finally:
            db.session.remove()


def allow_access(consent_url: str) -> dict[str, str]:
    """A person on the stand-in's consent page presses "Allow access" (its one organisation
    is checked already); the query the provider sends them back with."""
    with httpx.Client(trust_env=False) as browser:
        page = browser.get(consent_url).text
        fields = {
            unescape(name): unescape(value)
            for name, value in re.findall(
                r'<input type="hidden" name="([^"]*)" value="([^"]*)"', page
            )
        }
        fields["tenant"] = re.search(r'name="tenant" value="([^"]+)" checked', page).group(1)
        fields["decision"] = "allow"
        answer = browser.post(urlsplit(consent_url)._replace(query="").geturl(), data=fields)
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    return {key: values[-1] for key, values in query.items()}


def connect(app: Flask, workspace: Workspace) -> None:
    """The connect flow as the pages run it (consent, code exchange, the organisation chosen):
    the review run is handed to the worker on commit."""
    with bound(app, workspace) as session:
        consent_url, pending = services.begin_consent("xero", workspace.slug, REDIRECT_URI)
        callback = allow_access(consent_url)
        connection, books = services.finish_consent(
            session, "xero", pending, callback, REDIRECT_URI, workspace.user_id
        )
        services.choose_book(session, connection, books[0].remote_id, workspace.user_id)
        session.commit()
        workspace.connection_id = connection.id


def latest_run(app: Flask, workspace: Workspace) -> SyncRun:
    with bound(app, workspace) as session:
        run = session.scalar(
            select(SyncRun)
            .where(SyncRun.connection_id == workspace.connection_id)
            .order_by(SyncRun.id.desc())
        )
        session.expunge(run)
        return run


def wait_for(
    app: Flask, workspace: Workspace, statuses: tuple[str, ...], timeout: float, every=0.2
):
    deadline = time.monotonic() + timeout
    while True:
        run = latest_run(app, workspace)
        if run.status in statuses:
            return run
        if run.status == "failed" or time.monotonic() > deadline:
            raise RuntimeError(f"run {run.id}: {run.status} ({run.error}), not {statuses}")
        time.sleep(every)


def confirm_review(app: Flask, workspace: Workspace) -> None:
    """The review confirmed as proposed (what "Confirm" with no change does)."""
    with bound(app, workspace) as session:
        connection = session.get(IntegrationConnection, workspace.connection_id)
        services.confirm_matches(session, connection, {}, workspace.user_id)
        session.commit()


def sync_now(app: Flask, workspace: Workspace, full: bool = False) -> None:
    with bound(app, workspace) as session:
        connection = session.get(IntegrationConnection, workspace.connection_id)
        services.start_run(session, connection, "manual", workspace.user_id, full=full)
        session.commit()


def first_sync(app: Flask, workspace: Workspace, timeout: float) -> float:
    """Connect, review (confirmed at once), first run to "done": seconds, without the moment
    between the review being ready and its confirmation (a person's pause)."""
    with Stopwatch() as to_review:
        connect(app, workspace)
        wait_for(app, workspace, ("review",), timeout)
    with Stopwatch() as after_review:
        confirm_review(app, workspace)
        time.sleep(0.2)  # the confirmation's run, not the review's, is the latest now
        wait_for(app, workspace, ("done",), timeout)
    return to_review.seconds + after_review.seconds


# accounting_first_sync -----------------------------------------------------------------------

FIRST_MEASURES = """
The Xero stand-in in its own process holding {contacts:,} contacts and {invoices:,} invoices
(approved, open, in INR with 18% GST) in one organisation, at Xero's limits: 60 calls a
minute, 5,000 a day, 5 at once. One worker process (python -m jobs.worker sync), the engine's
pacing on (one call a second for the organisation, taken in Redis). Timed: the consent (code
exchange, the organisation's list and details), the review run (every contact, a page of 100
at a time), the review confirmed at once (the pause a person takes is not timed), and the run
after it (the contacts changed since, the invoices, credit notes and payments) to "done".
  floor   the fewest calls: the token, the connections list and the organisation, a page of
          100 per 100 contacts and per 100 invoices, one page each for the contacts changed
          since the review, the credit notes and the payments; at one call a second
  ratio   total time / floor (target <= 1.1: the sync is bound by the rate limit, not the CPU)
Printed too: the calls the stand-in received (its own count) and the worker's CPU time per
record (from /proc).
"""


def run_first_sync(environment: BenchEnvironment) -> list:
    contacts, invoices = scaled(10_000), scaled(50_000)
    print_header(
        f"accounting_first_sync: {contacts:,} contacts and {invoices:,} invoices from Xero",
        FIRST_MEASURES.format(contacts=contacts, invoices=invoices),
    )
    floor_calls = 3 + pages(contacts) + 1 + pages(invoices) + 1 + 1
    seed = ("--seed-contacts", str(contacts), "--seed-invoices", str(invoices))
    with xero_standin(*seed) as url, _log_dir("first-sync") as logs:
        app = sync_app(environment, url)
        workspace = new_workspace(app, "first")
        worker = Worker(environment, url, logs)
        try:
            time.sleep(2)  # the worker loads the app
            cpu_before = worker.cpu_seconds()
            seconds = first_sync(app, workspace, timeout=floor_calls * 3 + 120)
            cpu = worker.cpu_seconds() - cpu_before
        finally:
            worker.stop()
        stats = standin_stats(url)
        run = latest_run(app, workspace)
        with bound(app, workspace) as session:
            counts = {
                "clients": session.scalar(select(func.count()).select_from(Client)),
                "invoices": session.scalar(select(func.count()).select_from(Invoice)),
            }
        with app.app_context():
            db.engine.dispose()

    records = contacts + invoices
    print_figure(
        "calls the stand-in received", f"{stats['requests']:,} ({stats['throttled']} 429s)"
    )
    print_figure("floor", f"{floor_calls:,} calls = {floor_calls} s at one a second")
    print_figure("total time", f"{seconds:.1f} s")
    print_figure("in Duebook", f"{counts['clients']:,} clients, {counts['invoices']:,} invoices")
    print_figure("last run", f"{run.read:,} read, {run.created:,} created, {run.failed} failed")
    print_figure(
        "worker CPU", f"{cpu:.1f} s, {cpu / records * 1e3:.2f} ms per record ({records:,})"
    )
    complete = counts["clients"] >= contacts and counts["invoices"] == invoices
    if not complete:
        print_figure("!", "not every record came in: the ratio below means nothing")
    verdict = Verdict(
        "accounting_first_sync: total / rate-limit floor", seconds, float(floor_calls), 1.1
    )
    print_verdict(verdict)
    return [verdict]


# accounting_incremental ----------------------------------------------------------------------

INCREMENTAL_MEASURES = """
After a first sync of {contacts:,} contacts and {invoices:,} invoices (at Xero's limits, pacing
on): {changes} changes in the books, made through the stand-in's admin edit as an accountant
would ({half} invoices' due dates, {half} other contacts' e-mails), and {changes} in Duebook
that must reach the books ({half} payments recorded on linked invoices, {half} clients'
e-mails changed); then one "Sync now" run to "done".
  calls     what the stand-in received during that run (its own count)
  minimum   the pages to read the changed records (100 a page; an empty page for credit
            notes and payments) + one write per Duebook change
  ratio     calls / minimum (target <= 2); the run's time printed
"""


def run_incremental(environment: BenchEnvironment) -> list:
    contacts, invoices = scaled(1_000), scaled(5_000)
    changes = 100 if SCALE >= 1 else max(2, scaled(100) // 2 * 2)
    half = changes // 2
    print_header(
        f"accounting_incremental: {changes} changes on each side, then one run",
        INCREMENTAL_MEASURES.format(
            contacts=contacts, invoices=invoices, changes=changes, half=half
        ),
    )
    seed = ("--seed-contacts", str(contacts), "--seed-invoices", str(invoices))
    with xero_standin(*seed) as url, _log_dir("incremental") as logs:
        app = sync_app(environment, url)
        workspace = new_workspace(app, "incremental")
        worker = Worker(environment, url, logs)
        try:
            time.sleep(2)
            first_sync(app, workspace, timeout=900)
            remote_contacts, remote_invoices = _edit_in_books(app, workspace, url, half)
            _change_in_duebook(app, workspace, half, skip=remote_contacts)
            before = standin_stats(url)["requests"]
            with Stopwatch() as watch:
                sync_now(app, workspace)
                time.sleep(0.2)
                run = wait_for(app, workspace, ("done",), 600)
            calls = standin_stats(url)["requests"] - before
        finally:
            worker.stop()
        with app.app_context():
            db.engine.dispose()

    # The edited contacts and invoices (a page each), the empty pages, a write per change.
    minimum = pages(half) + pages(half) + 1 + 1 + changes
    print_figure("remote changes", f"{half} contacts, {half} invoices edited in the books")
    print_figure("local changes", f"{half} payments, {half} client e-mails")
    print_figure("the run", f"{run.read} read, {run.created} created, {run.updated} updated")
    print_figure("calls (stand-in's count)", f"{calls}")
    print_figure("minimum", f"{minimum}")
    print_figure("time", f"{watch.seconds:.1f} s (at one call a second)")
    verdict = Verdict("accounting_incremental: calls / minimum", float(calls), float(minimum), 2.0)
    print_verdict(verdict)
    return [verdict]


def _edit_in_books(app: Flask, workspace: Workspace, url: str, count: int):
    """`count` contacts' e-mails and `count` invoices' due dates changed in the books (not
    the contacts of the invoices Duebook will pay, so no change meets another)."""
    books = httpx.get(f"{url}/_standin/xero/books", trust_env=False).json()
    (organisation,) = books.values()
    contacts = sorted(organisation["Contacts"], key=lambda c: c["Name"])[-count:]
    invoices = sorted(organisation["Invoices"], key=lambda i: i["InvoiceNumber"])[-count:]
    with httpx.Client(base_url=f"{url}/_standin/xero", trust_env=False) as admin:
        for contact in contacts:
            admin.post(
                "/edit",
                json={
                    "entity": "contact",
                    "id": contact["ContactID"],
                    "changes": {
                        "EmailAddress": f"accounts+{contact['ContactID'][:8]}@books.example"
                    },
                },
            ).raise_for_status()
        for invoice in invoices:
            admin.post(
                "/edit",
                json={
                    "entity": "invoice",
                    "id": invoice["InvoiceID"],
                    "changes": {"DueDate": "2027-03-31"},
                },
            ).raise_for_status()
    return {c["ContactID"] for c in contacts}, {i["InvoiceID"] for i in invoices}


def _change_in_duebook(app: Flask, workspace: Workspace, count: int, skip: set[str]) -> None:
    """`count` payments on linked open invoices, `count` linked clients' e-mails changed."""
    with bound(app, workspace) as session:
        links = session.execute(
            select(SyncLink.local_id, SyncLink.remote_id)
            .where(SyncLink.connection_id == workspace.connection_id, SyncLink.entity == "contact")
            .order_by(SyncLink.local_id)
        ).all()
        local = [local_id for local_id, remote_id in links if remote_id not in skip]
        for client_id in local[:count]:
            client = session.get(Client, client_id)
            contact = billing_contact(session, client)
            contact.email = f"finance+{client_id}@duebook.example"
        invoice_ids = session.scalars(
            select(SyncLink.local_id)
            .where(SyncLink.connection_id == workspace.connection_id, SyncLink.entity == "invoice")
            .order_by(SyncLink.local_id)
            .limit(count)
        ).all()
        for invoice_id in invoice_ids:
            payments.record_payment_for_invoice(
                session,
                session.get(Invoice, invoice_id),
                {
                    "amount": "500.00",
                    "received_on": date.today(),
                    "method": "bank_transfer",
                    "reference": f"UTR{invoice_id}",
                },
            )
        session.commit()


# accounting_fault_drill ------------------------------------------------------------------------

DRILL_MEASURES = """
A workspace connected to the Xero stand-in ({contacts} contacts, no invoices), its review
confirmed; then {invoices:,} invoices issued in Duebook on the linked clients (written by SQL,
one line each, intra-state GST) and one "Sync now" pushes them. The stand-in answers {share:.0%}
of writes at random with a 429 (Retry-After 1, nothing written) or a 500 (half of those after
the write was made: the answer is lost). Its rate limits are raised and the engine's pacing is
off (at Xero's 60 a minute a push of {invoices:,} invoices, a look-up and a write each, would
take ~3 hours and need two days' quota). One worker process, SIGKILLed {kills} times, each time
another sixth of the invoices is linked (so every kill lands in the push), and started
again; SYNC_STALE_SECONDS={stale}, the sweep (jobs.tasks' sweep_accounting_sync) run every
second from the bench hands the orphaned run over again. At the end: every invoice number
once in the books, every invoice linked; then a full refresh ("Sync now" with full) and its
reconciliation report: 0 differences.
"""
DRILL_KILLS = 5
DRILL_FAULTS = 0.1
DRILL_STALE = 3


def run_fault_drill(environment: BenchEnvironment) -> list:
    invoices = scaled(5_000)
    contacts = 50
    print_header(
        f"accounting_fault_drill: {invoices:,} invoices pushed, {DRILL_KILLS} SIGKILLs, "
        f"{DRILL_FAULTS:.0%} of writes failing",
        DRILL_MEASURES.format(
            contacts=contacts,
            invoices=invoices,
            share=DRILL_FAULTS,
            kills=DRILL_KILLS,
            stale=DRILL_STALE,
        ),
    )
    options = (
        "--seed-contacts",
        str(contacts),
        "--per-minute",
        "1000000",
        "--per-day",
        "10000000",
        "--write-faults",
        str(DRILL_FAULTS),
    )
    settings = {"SYNC_PACING": False, "SYNC_STALE_SECONDS": DRILL_STALE}
    events: list[str] = []
    with xero_standin(*options) as url, _log_dir("sync-drill") as logs:
        app = sync_app(environment, url, **settings)
        workspace = new_workspace(app, "drill")
        worker = Worker(
            environment,
            url,
            logs,
            SYNC_PACING="0",
            SYNC_STALE_SECONDS=str(DRILL_STALE),
            SYNC_RETRY_DELAYS="0.2,0.5,1,2",
        )
        done = threading.Event()
        sweeps = {"runs": 0, "handed": 0, "errors": 0}

        def sweeper() -> None:
            while not done.wait(1.0):
                try:
                    with bound(app, workspace) as session:
                        sweeps["handed"] += services.sweep(session)
                        session.commit()
                    sweeps["runs"] += 1
                except Exception:
                    sweeps["errors"] += 1

        try:
            time.sleep(2)
            first_sync(app, workspace, timeout=300)
            _issue_invoices(app, workspace, invoices)
            sweeping = threading.Thread(target=sweeper, daemon=True)
            kills = 0
            with Stopwatch() as watch:
                sync_now(app, workspace)
                sweeping.start()
                deadline = time.perf_counter() + 3600
                time.sleep(0.5)
                while True:
                    now = time.perf_counter()
                    linked = linked_invoices(app, workspace)
                    if kills < DRILL_KILLS and linked >= (kills + 1) * invoices / (DRILL_KILLS + 1):
                        worker.kill()
                        worker.start()
                        kills += 1
                        events.append(
                            f"{now - watch.started:6.1f}s SIGKILL at {linked:,} linked, "
                            "worker restarted"
                        )
                    elif worker.process.poll() is not None:
                        events.append(f"{now - watch.started:6.1f}s worker exited by itself")
                        worker.start()
                    run = latest_run(app, workspace)
                    if kills == DRILL_KILLS and run.status in ("done", "failed"):
                        break
                    if run.status == "failed":  # a failed run is resumed by the next one
                        events.append(f"{now - watch.started:6.1f}s run failed: {run.error}")
                        sync_now(app, workspace)
                    if now > deadline:
                        raise RuntimeError("the push did not finish within an hour")
                    time.sleep(0.5)
            done.set()
            sweeping.join(5)
            faults = standin_stats(url)["write_faults"]
            sync_now(app, workspace, full=True)
            time.sleep(0.2)
            wait_for(app, workspace, ("done",), 900, every=1)
            linked = linked_invoices(app, workspace)
            with bound(app, workspace) as session:
                report = session.scalar(
                    select(SyncReport)
                    .where(SyncReport.connection_id == workspace.connection_id)
                    .order_by(SyncReport.id.desc())
                )
                differences = report.difference_count if report else None
                shown = report.differences[:5] if report else []
        finally:
            done.set()
            worker.stop()
        books = httpx.get(f"{url}/_standin/xero/books", trust_env=False).json()
        with app.app_context():
            db.engine.dispose()

    (organisation,) = books.values()
    numbers = [
        i["InvoiceNumber"]
        for i in organisation["Invoices"]
        if i["InvoiceNumber"].startswith("DRL-") and i["Status"] != "DELETED"
    ]
    duplicates = len(numbers) - len(set(numbers))
    print_figure("events", "\n" + "\n".join(f"{'':34}{line}" for line in events))
    print_figure("push time", f"{watch.seconds:.1f} s (hand-over to done, kills included)")
    print_figure("kills", f"{kills} SIGKILLs, {worker.started - 1} restarts")
    print_figure("write faults answered", f"{faults} (429 or 500)")
    print_figure(
        "sweeper",
        f"{sweeps['runs']} sweeps, {sweeps['handed']} hand-overs, {sweeps['errors']} errors",
    )
    print_figure("in the books", f"{len(set(numbers)):,} invoice numbers, {duplicates} duplicates")
    print_figure("linked", f"{linked:,} of {invoices:,}")
    print_figure("reconciliation", f"{differences} differences {shown or ''}")
    passed = (
        kills == DRILL_KILLS
        and duplicates == 0
        and len(set(numbers)) == invoices
        and linked == invoices
        and differences == 0
    )
    verdict = Check(
        f"accounting_fault_drill: {invoices:,} invoices through {kills} kills and {faults} faults",
        passed,
        f"{len(set(numbers)):,} in the books, {duplicates} duplicates, {linked:,} linked, "
        f"{differences} differences, {watch.seconds:.0f} s",
    )
    print_line(verdict)
    return [verdict]


def linked_invoices(app: Flask, workspace: Workspace) -> int:
    with bound(app, workspace) as session:
        return session.scalar(
            select(func.count())
            .select_from(SyncLink)
            .where(SyncLink.connection_id == workspace.connection_id, SyncLink.entity == "invoice")
        )


def _issue_invoices(app: Flask, workspace: Workspace, count: int) -> None:
    """`count` invoices issued now on the linked clients, one 18% intra-state line each,
    written by SQL (the push is measured, not the issuing)."""
    schema = schema_for_tenant_id(workspace.tenant_id)
    with app.app_context():
        db.session.execute(
            text(
                f"""
                WITH linked AS (
                    SELECT local_id AS client_id, row_number() OVER (ORDER BY local_id) - 1 AS n,
                           count(*) OVER () AS total
                      FROM "{schema}".sync_links
                     WHERE connection_id = :connection AND entity = 'contact'
                ), made AS (
                    INSERT INTO "{schema}".invoices (client_id, number, series, fiscal_year,
                           status, issue_date, due_date, currency, tax_regime, place_of_supply,
                           subtotal, cgst, sgst, igst, other_tax, total, amount_in_words,
                           issued_at)
                    SELECT l.client_id, 'DRL-' || lpad(g::text, 5, '0'), 'INV', '2026-27',
                           'issued', CURRENT_DATE, CURRENT_DATE + 30, 'INR', 'intra', '29',
                           1000 + g % 500, round((1000 + g % 500) * 0.09, 2),
                           round((1000 + g % 500) * 0.09, 2), 0, 0,
                           1000 + g % 500 + 2 * round((1000 + g % 500) * 0.09, 2), '', now()
                      FROM generate_series(1, :count) g
                      JOIN linked l ON l.n = g % l.total
                    RETURNING id, subtotal, cgst, sgst
                )
                INSERT INTO "{schema}".invoice_lines (invoice_id, position, description,
                       hsn_sac, quantity, unit_price, taxable_value, tax_rate, cgst, sgst,
                       igst, other_tax, total)
                SELECT id, 1, 'Goods', '9983', 1, subtotal, subtotal, 18, cgst, sgst, 0, 0,
                       subtotal + cgst + sgst
                  FROM made
                """
            ),
            {"connection": workspace.connection_id, "count": count},
        )
        db.session.commit()
