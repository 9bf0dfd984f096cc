"""Invoice PDFs: (a) the product's PDF of a 15-line invoice against WeasyPrint rendering a
plain one-page 15-line invoice in the same process (target <= 1.25x); (b) two PDF worker
processes against one, rendering and storing the same invoices (target >= 1.8x throughput)."""

from __future__ import annotations

import io
import logging
import multiprocessing
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import update

from app.clients.models import Client
from app.extensions import db
from app.invoicing import pdf
from app.invoicing import services as invoicing
from app.invoicing.models import Invoice
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
from bench.pages import create_owner_and_tenant
from tenants.binding import TenantSession, bind_tenant
from tenants.models import Tenant

MEASURES = """
(a) Product: app.invoicing.pdf.render_pdf for an issued 15-line intra-state invoice (CGST +
SGST) of an Indian tenant with every setting filled in: a 600x200 PNG logo from its storage,
brand colour, address, payment instructions and a UPI QR code; it reads the invoice, client and
amount due from the database, builds the QR code, renders the Jinja template and has WeasyPrint
write the PDF (with the parsed stylesheet and font configuration the process keeps from its
first PDF, as a worker does). Baseline: WeasyPrint writing a plain one-page 15-line invoice
(the same words and amounts, a table with header cells, no styles but A4 and a small font, one
page) from an HTML string built before the clock starts, as WeasyPrint does by default (a new
font configuration for each PDF). 20 of each after 3 warm-ups, in turn; ratio of medians.
Printed for information, not judged: the same plain HTML with a font configuration kept, and
the product's ratio to that.
(b) Product: jobs.tasks.render_invoice_pdf (render + store + set pdf_key, committed) for the
same 24 invoices of 15 lines, run by rq.SimpleWorker processes (as jobs/worker.py runs them)
draining one queue: 2 processes against 1. Each process is spawned, builds its app and
renders a warm-up invoice before the clock starts; the clock runs from the release of the
workers until the last one finds the queue empty. pdf_key is cleared before each round. 3
rounds each, alternating; throughput ratio (1 worker's time / 2 workers' time) of medians.
"""
LINES = 15
RUNS, WARMUPS = 20, 3
WORKER_INVOICES = 24
WORKER_ROUNDS = 3
QUEUE = "bench-invoice-pdf"
MIN_SPEEDUP = 1.8
SUPPLIER_GSTIN = "27AAPFU0939F1ZV"
CLIENT_GSTIN = "27AABCU9603R1ZM"


@dataclass(frozen=True)
class Speedup:
    """A throughput verdict: how many times faster the product's setup is than the baseline."""

    name: str
    baseline_seconds: float
    product_seconds: float
    min_ratio: float

    @property
    def ratio(self) -> float:
        return self.baseline_seconds / self.product_seconds

    @property
    def passed(self) -> bool:
        return self.ratio >= self.min_ratio

    def line(self) -> str:
        outcome = "PASS" if self.passed else "MISS  <<<"
        return (
            f"{self.name}: speed-up {self.ratio:.2f}x   target >= {self.min_ratio:g}x   {outcome}"
        )


def _logo_png() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (600, 200), "white")
    ImageDraw.Draw(image).rectangle((20, 20, 180, 180), fill=(31, 95, 139))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _set_up(session, tenant: Tenant, invoices: int) -> list[int]:
    """A fully configured tenant and `invoices` issued 15-line invoices."""
    from flask import current_app

    from app.core.storage import get_storage, tenant_key
    from app.settings.services import workspace_settings

    key = tenant_key(tenant.id, "branding", "logo.png")
    get_storage(current_app).save(key, io.BytesIO(_logo_png()))
    tenant.region = "27"
    workspace = workspace_settings(session, tenant.id)
    workspace.legal_name = "Bench Traders Private Limited"
    workspace.address = "12 Senapati Bapat Road\nPune 411016\nMaharashtra"
    workspace.gstin, workspace.pan, workspace.upi_vpa = SUPPLIER_GSTIN, "AAPFU0939F", "bench@okhdfc"
    workspace.payment_instructions = "NEFT to HDFC Bank, A/c 50200012345678, IFSC HDFC0000001"
    workspace.brand_colour, workspace.logo_key = "#7a2e8c", key
    client = Client(
        full_name="Kaveri Builders Private Limited",
        short_name="Kaveri",
        location="local",
        country="IN",
        currency="INR",
        gstin=CLIENT_GSTIN,
        address_line1="4 MG Road",
        city="Pune",
        region="27",
        payment_terms="net",
        payment_days=30,
    )
    session.add(client)
    session.flush()
    ids = []
    for n in range(invoices):
        project = Project(
            client_id=client.id,
            name=f"Tower {n}",
            currency="INR",
            contract_value=Decimal("123456.78") * LINES,
            start_date=date(2027, 1, 4),
        )
        session.add(project)
        session.flush()
        milestones = [
            Milestone(
                project_id=project.id,
                position=i,
                amount=Decimal("123456.78"),
                name=f"Stage {i}: structural works, level {i}",
                due_rule="date",
                due_date=date(2027, 2, 1),
                status="completed",
            )
            for i in range(1, LINES + 1)
        ]
        session.add_all(milestones)
        session.flush()
        invoice = invoicing.draft_from_milestones(
            session, tenant, project, milestones, "18", "998311"
        )
        invoicing.issue(session, tenant, invoice, date(2027, 2, 1))
        ids.append(invoice.id)
    session.commit()
    return ids


def _plain_html(document: dict) -> str:
    """The same words and amounts as the product's invoice, as plain HTML without styles."""
    from markupsafe import escape

    rows = "".join(
        f"<tr><td>{line['position']}</td><td>{escape(line['description'])}</td>"
        f"<td>{line['hsn_sac']}</td><td>{line['quantity']}</td><td>{line['taxable_value']}</td>"
        f"<td>{line['rate']}</td>{''.join(f'<td>{t}</td>' for t in line['taxes'])}"
        f"<td>{line['total']}</td></tr>"
        for line in document["lines"]
    )
    supplier, recipient = document["supplier"], document["recipient"]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Invoice</title>"
        # Only what keeps it on one A4 page: the page size and a small body font.
        "<style>@page { size: A4; margin: 14mm } body { font-size: 7.5pt }</style></head><body>"
        f"<h1>{document['title']} {document['number']}</h1>"
        f"<p>{escape(supplier['name'])}<br>{escape(supplier['address'])}</p>"
        f"<p>{''.join(f'{k}: {v}<br>' for k, v in supplier['ids'])}</p>"
        f"<p>Bill to: {escape(recipient['name'])}<br>{'<br>'.join(recipient['address'])}</p>"
        f"<p>Invoice date {document['issue_date']}, due {document['due_date']}. "
        f"Place of supply {document['place_of_supply']}.</p>"
        "<table><tr><th>#</th><th>Description</th><th>HSN/SAC</th><th>Qty</th>"
        "<th>Taxable value</th><th>Rate</th>"
        f"{''.join(f'<th>{t}</th>' for t in document['tax_labels'])}<th>Total</th></tr>"
        f"{rows}</table>"
        f"<p>{''.join(f'{k}: {v}<br>' for k, v in document['totals'])}"
        f"Total: {document['total']}</p>"
        f"<p>Amount in words: {document['amount_in_words']}</p>"
        f"<p>{escape(document['payment_instructions'])}</p></body></html>"
    )


def _pages(data: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(data)).pages)


def _single_render(app, tenant_id: int, invoice_id: int) -> tuple[Samples, Samples, Samples, dict]:
    from weasyprint import HTML
    from weasyprint.text.fonts import FontConfiguration

    with app.app_context():
        session = TenantSession(db, bind=db.engine)
        bind_tenant(session, tenant_id)
        tenant = session.get(Tenant, tenant_id)
        invoice = session.get(Invoice, invoice_id)
        plain = _plain_html(pdf.invoice_document(session, tenant, invoice))

        def product() -> bytes:
            data = pdf.render_pdf(session, tenant, invoice)
            session.rollback()  # each rendering reads afresh, as a job or request would
            return data

        def baseline() -> bytes:
            return HTML(string=plain).write_pdf()

        kept_fonts = FontConfiguration()

        def baseline_kept_fonts() -> bytes:
            # For information: plain WeasyPrint given the same advantage the product takes (a
            # font configuration kept between PDFs instead of made for each).
            return HTML(string=plain).write_pdf(font_config=kept_fonts)

        for _ in range(WARMUPS):
            product_pdf, baseline_pdf, _ = product(), baseline(), baseline_kept_fonts()
        product_times, baseline_times, kept_times = [], [], []
        for i in range(RUNS):
            contenders = [
                (product, product_times),
                (baseline, baseline_times),
                (baseline_kept_fonts, kept_times),
            ]
            for func, times in contenders[i % 3 :] + contenders[: i % 3]:
                with Stopwatch() as watch:
                    func()
                times.append(watch.seconds)
        session.close()
    facts = {
        "product pages / size": f"{_pages(product_pdf)} / {len(product_pdf) / 1024:.0f} KiB",
        "baseline pages / size": f"{_pages(baseline_pdf)} / {len(baseline_pdf) / 1024:.0f} KiB",
    }
    return Samples(product_times), Samples(baseline_times), Samples(kept_times), facts


def _quiet() -> None:
    for name in ("weasyprint", "jobs", "rq", "fontTools"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _worker_process(config, tenant_id, warm_invoice_id, ready, go, finished) -> None:
    """One PDF worker: the app, a warm-up rendering, then rq.SimpleWorker draining the queue."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    from app import create_app

    _quiet()
    app = create_app(config)
    with app.app_context():
        with TenantSession(db, bind=db.engine) as session:
            bind_tenant(session, tenant_id)
            pdf.render_pdf(
                session, session.get(Tenant, tenant_id), session.get(Invoice, warm_invoice_id)
            )
        connection = Redis.from_url(config["REDIS_URL"])
        worker = SimpleWorker([Queue(QUEUE, connection=connection)], connection=connection)
        ready.set()
        go.wait()
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
        finished.put((time.perf_counter(),))


def _worker_round(context, config, tenant_id, warm_id, invoice_ids, processes: int) -> float:
    from redis import Redis
    from rq import Queue

    from jobs.tasks import render_invoice_pdf

    with db.engine.begin() as conn, TenantSession(db, bind=conn) as session:
        bind_tenant(session, tenant_id)
        session.execute(
            update(Invoice)
            .where(Invoice.id.in_(invoice_ids))
            .values(pdf_key=None, pdf_rendered_at=None)
        )
        session.commit()
    queue = Queue(QUEUE, connection=Redis.from_url(config["REDIS_URL"]))
    queue.empty()
    queue.enqueue_many(
        [
            Queue.prepare_data(render_invoice_pdf, args=(i,), kwargs={"tenant_id": tenant_id})
            for i in invoice_ids
        ]
    )
    go, finished = context.Event(), context.Queue()
    readies = [context.Event() for _ in range(processes)]
    workers = [
        context.Process(
            target=_worker_process, args=(config, tenant_id, warm_id, ready, go, finished)
        )
        for ready in readies
    ]
    for worker in workers:
        worker.start()
    for ready in readies:
        if not ready.wait(120):
            raise RuntimeError("a PDF worker did not start")
    started = time.perf_counter()
    go.set()
    results = [finished.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join(60)
    if queue.failed_job_registry.count or len(queue):
        raise RuntimeError(f"{queue.failed_job_registry.count} PDF jobs failed, {len(queue)} left")
    with db.engine.connect() as conn, TenantSession(db, bind=conn) as session:
        bind_tenant(session, tenant_id)
        stored = (
            session.query(Invoice)
            .filter(Invoice.id.in_(invoice_ids), Invoice.pdf_key.is_not(None))
            .count()
        )
    if stored != len(invoice_ids):
        raise RuntimeError(f"only {stored} of {len(invoice_ids)} PDFs stored")
    return max(r[0] for r in results) - started


def run(environment: BenchEnvironment) -> list:
    print_header(f"invoice_pdf: a {LINES}-line invoice PDF, and PDF workers in parallel", MEASURES)
    _quiet()
    storage = tempfile.TemporaryDirectory(prefix="bench-pdf-")
    config = {**environment.config, "STORAGE_ROOT": storage.name}
    environment = BenchEnvironment(config)
    verdicts: list = []
    with storage, environment.app() as app:
        _, _, tenant_id = create_owner_and_tenant(app)
        with app.app_context():
            session = TenantSession(db, bind=db.engine)
            bind_tenant(session, tenant_id)
            ids = _set_up(session, session.get(Tenant, tenant_id), WORKER_INVOICES + 2)
            session.close()
            print_figure(
                "fast font subsetting",
                "yes (HarfBuzz)"
                if pdf.fast_font_subsetting()
                else "NO: fontTools fallback, ~4x slower",
            )
        product, baseline, kept_fonts, facts = _single_render(app, tenant_id, ids[0])
        for label, figure in facts.items():
            print_figure(label, figure)
        print_figure("product", product.describe_ms())
        print_figure("baseline (plain HTML)", baseline.describe_ms())
        print_figure("plain HTML, font config kept", kept_fonts.describe_ms())
        print_figure("product / that (information)", f"{product.median / kept_fonts.median:.2f}x")
        verdict = Verdict(
            "invoice_pdf render vs plain WeasyPrint", product.median, baseline.median, 1.25
        )
        print_verdict(verdict)
        verdicts.append(verdict)

        context = multiprocessing.get_context("spawn")
        warm_id, invoice_ids = ids[1], ids[2:]
        one, two = [], []
        with app.app_context():
            for round_ in range(WORKER_ROUNDS):
                order = ((1, one), (2, two)) if round_ % 2 == 0 else ((2, two), (1, one))
                for processes, times in order:
                    times.append(
                        _worker_round(context, config, tenant_id, warm_id, invoice_ids, processes)
                    )
        for label, times in (("1 worker", one), ("2 workers", two)):
            rates = ", ".join(f"{len(invoice_ids) / t:.1f}" for t in times)
            print_figure(
                label,
                f"median {statistics.median(times):.2f} s for {len(invoice_ids)} "
                f"PDFs   ({rates} PDFs/s per round)",
            )
        speedup = Speedup(
            "invoice_pdf 2 workers vs 1",
            statistics.median(one),
            statistics.median(two),
            MIN_SPEEDUP,
        )
        print(f"  -> {speedup.line()}", flush=True)
        verdicts.append(speedup)
    return verdicts
