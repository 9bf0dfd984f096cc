"""Job functions. Each is a few lines that call a service."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from flask import current_app

from app.clients import documents
from app.clients.imports.services import read_import_file, run_import
from app.core.clock import tenant_today
from app.core.handover import Work, enqueue, hand_over_now, redis_connection
from app.invoicing.pdf import render_and_store
from app.invoicing.pdf_requests import invoices_missing_pdf
from app.invoicing.services import mark_overdue
from app.messaging.delivery import deliver_batch
from app.messaging.webhooks import process_event, processing_jobs, unprocessed_events
from app.outbox import services as outbox
from app.payments.opening import services as opening_balances
from jobs.context import job
from jobs.queues import fan_out, tenants_past_midnight
from tenants.binding import bound_tenant_id
from tenants.models import Tenant


@job("messages", timeout=600)
def deliver_outbox_messages(session, message_ids: list[int]) -> dict:
    """Deliver a batch of one tenant's outbox messages (the tenant bound by the wrapper from
    the tenant_id keyword; None for platform e-mail). Returns the outcome counts."""

    return dict(deliver_batch(session, message_ids, redis_connection()))


@job("messages")
def sweep_outbox(session) -> int:
    """Hand out what no worker has: intents written while Redis was down, retries and
    put-back messages now due, messages whose worker died mid-send; and webhook events no
    worker processed."""

    rows = outbox.due_for_delivery(session)
    events = unprocessed_events(session)
    session.commit()
    hand_over_now(outbox.delivery_jobs(rows) + processing_jobs(events))
    return len(rows)


@job("messages")
def process_webhook_event(session, event_id: int) -> int:
    """Apply one stored provider webhook (status reports, inbound messages) of the bound
    tenant. Returns how many messages it moved."""

    return process_event(session, event_id, bound_tenant_id(session))


# Client documents: the daily announcement of documents about to expire ----------------------
# (imports inside the functions keep this block self-contained at the end of the module)


@job("default")
def announce_expiring_documents_all(session) -> int:
    """Daily: one announcement job per active tenant, each in its own transaction and with
    "today" in its own time zone. Returns how many tenant jobs were queued."""
    return fan_out(session, "announce_expiring_documents_for_tenant")


@job("default")
def announce_expiring_documents_for_tenant(session) -> int:
    """E-mail each engagement manager of this tenant (bound by the job wrapper from the
    tenant_id keyword) the documents of their clients about to expire, once per expiry date.
    Returns how many e-mails were queued."""

    tenant = session.get(Tenant, bound_tenant_id(session))
    if tenant is None or not tenant.is_active:
        return 0

    def document_url(document) -> str:
        return _external_url(
            "clients.detail", tenant_slug=tenant.slug, client_id=document.client_id, tab="documents"
        )

    return documents.announce_expiring_documents(
        session, tenant, tenant_today(session), document_url
    )


def _external_url(endpoint: str, **values) -> str:
    """A link for an e-mail written outside any request: BASE_URL (the address users reach
    the product at) or, when unset, the local development server."""

    base = urlsplit(
        current_app.config.get("BASE_URL") or f"http://127.0.0.1:{os.environ.get('PORT', '5000')}"
    )
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "https"
    )
    return adapter.build(endpoint, values, force_external=True)


# Client imports: a job reads each upload, one job per started (or retried) import; "bulk" ----


@job("bulk")
def read_client_import_file(session, import_id: int) -> str | None:
    """Read an uploaded client file within the import limits (never in the request): its
    headers, row count and first rows for the preview. Returns "uploaded" or "unreadable",
    or None if it was not waiting to be read."""

    return read_import_file(session, import_id)


@job("bulk")
def run_client_import(session, import_id: int) -> str | None:
    """Check and write an uploaded client file in committed chunks; resumes after the chunks
    an earlier attempt wrote. Returns "done", "failed", or None if it was not queued."""

    return run_import(session, import_id)


# Opening balances: the open invoices of the old books, read and imported as client files are ---


@job("bulk")
def read_opening_balance_file(session, import_id: int) -> str | None:
    """Read an uploaded file of open invoices within the import limits, for the preview."""

    return opening_balances.read_import_file(session, import_id)


@job("bulk")
def run_opening_balance_import(session, import_id: int) -> str | None:
    """Check and write an uploaded file of open invoices. Returns "done", "failed", or None
    if it was not queued."""

    return opening_balances.run_import(session, import_id)


# Invoice PDFs: rendered and stored after issue; a sweep renders what no worker did ------------


@job("default")
def render_invoice_pdf(session, invoice_id: int) -> str | None:
    """Render and store an issued invoice's PDF (tenant bound by the wrapper from the
    tenant_id keyword). Returns the storage key, or None for a draft, void or missing one."""

    tenant = session.get(Tenant, bound_tenant_id(session))
    if tenant is None or not tenant.is_active:
        return None
    return render_and_store(session, tenant, invoice_id)


@job("bulk")
def sweep_invoice_pdfs_all(session) -> int:
    """Periodic: one sweep job per active tenant. Returns how many were queued."""
    return fan_out(session, "sweep_invoice_pdfs_for_tenant")


@job("bulk")
def sweep_invoice_pdfs_for_tenant(session) -> int:
    """Queue a render for each issued invoice of this tenant that has no PDF yet (Redis was
    down at issue, or a worker died). Returns how many were queued."""

    tenant_id = bound_tenant_id(session)
    ids = invoices_missing_pdf(session)
    enqueue([Work("render_invoice_pdf", (invoice_id,), tenant_id) for invoice_id in ids])
    return len(ids)


# Invoices: overdue is a stored status, set once a day per tenant just after its midnight ------


@job("default")
def mark_overdue_invoices_all(session, every_tenant: bool = False) -> int:
    """Hourly: one job per active tenant whose local time is now between 00:00 and 00:59, so
    each tenant's invoices turn overdue on the tenant's own calendar day (`every_tenant`: all
    of them, e.g. after the scheduler was down). Returns how many tenant jobs were queued."""
    due = tenants_past_midnight(session, every_tenant)
    return fan_out(session, "mark_overdue_invoices_for_tenant", due)


@job("default")
def mark_overdue_invoices_for_tenant(session) -> int:
    """Issued and sent invoices of this tenant past their due date become overdue (each change
    audited). Running it again the same day changes nothing. Returns how many changed."""

    return mark_overdue(session, tenant_today(session))
