"""The accounting sync engine against the providers' stand-ins, as an admin uses it: connect
through the consent page, review the matches, and the books' customers, invoices (with their
GST), credit notes and payments appear in Duebook, each once; a payment recorded in Duebook
reaches the books once; a conflict waits for a person; a record the books hold that Duebook
cannot take is listed and the rest goes in; a failing page, a crash between the provider's write
and ours, a revoked token and a rate limit each leave nothing half-written or duplicated; a
full refresh finds what the books deleted and the reconciliation shows both sides agreeing.
Every request the connectors send and every answer the stand-ins give is held to the
provider's published contract (tests/*_contract.py)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from app.clients.models import Client
from app.core.events import DomainEvent
from app.integrations import connectors
from app.integrations.models import IntegrationConnection
from app.invoicing.models import CreditNote, Invoice
from app.notifications.models import Notification
from app.payments import services as payments
from app.payments.models import Payment
from app.sandbox.standins.quickbooks import DEFAULT_REALM, QuickBooksStandin
from app.sandbox.standins.xero import XeroStandin, xero_signature
from app.sandbox.standins.zoho_books import ZohoBooksStandin
from app.sync import services
from app.sync.models import SyncConflict, SyncLink, SyncProblem, SyncReport, SyncState
from tests import quickbooks_contract, zoho_books_contract
from tests.contract_openapi import ContractTransport, xero_documents
from tests.helpers import tenant_session
from tests.sync_helpers import connect_through_pages, runs, send


class Zoho:
    provider = "zoho_books"

    def __init__(self, app, monkeypatch):
        self.server = ZohoBooksStandin(seed="demo").start()
        self.exchanges = zoho_books_contract.recording(self.server)
        for key in ("ZOHO_ACCOUNTS_BASE", "ZOHO_API_BASE"):
            monkeypatch.setitem(app.config, key, self.server.url)
        self.book = next(iter(self.server.organisations))

    def check_contract(self):
        zoho_books_contract.check_exchanges(self.exchanges)

    def books(self) -> dict:
        return self.server.books(self.book)[self.book]

    def invoice_numbers(self) -> set[str]:
        return {
            invoice["invoice_number"]
            for invoice in self.books()["invoices"].values()
            if invoice["status"] != "draft"
        }

    def payments_on(self, number: str) -> list[Decimal]:
        books = self.books()
        (invoice_id,) = [
            key for key, value in books["invoices"].items() if value["invoice_number"] == number
        ]
        return [
            Decimal(str(entry["amount_applied"]))
            for payment in books["customerpayments"].values()
            for entry in payment["invoices"]
            if entry["invoice_id"] == invoice_id
        ]

    def customer_id(self, name: str) -> str:
        return next(
            key for key, value in self.books()["contacts"].items() if value["contact_name"] == name
        )

    def set_gstin(self, name: str, gstin: str) -> None:
        self.server.edit(self.book, "contacts", self.customer_id(name), {"gst_no": gstin})

    def set_email(self, name: str, email: str) -> None:
        contact = self.books()["contacts"][self.customer_id(name)]
        persons = [{**person, "email": email} for person in contact["contact_persons"]]
        self.server.edit(
            self.book,
            "contacts",
            self.customer_id(name),
            {"email": email, "contact_persons": persons},
        )

    def email_of(self, name: str) -> str:
        return self.books()["contacts"][self.customer_id(name)]["email"]

    def delete_invoice(self, number: str) -> None:
        books = self.books()
        (invoice_id,) = [
            key for key, value in books["invoices"].items() if value["invoice_number"] == number
        ]
        self.server.delete(self.book, "invoices", invoice_id)

    def stop(self):
        self.server.stop()


class QuickBooks:
    provider = "quickbooks"

    def __init__(self, app, monkeypatch):
        self.server = QuickBooksStandin(seed="demo").start()
        monkeypatch.setitem(app.config, "QBO_API_BASE", self.server.url)
        monkeypatch.setitem(
            app.config,
            "QBO_DISCOVERY_URL",
            f"{self.server.url}/.well-known/openid_configuration",
        )
        self.seen: list[dict] = []

    def check_contract(self):
        for entity, record in self.seen:
            quickbooks_contract.check_entity(entity, record)

    def books(self) -> dict:
        books = httpx.get(f"{self.server.url}/_standin/books/{DEFAULT_REALM}").json()
        for entity in ("Customer", "Invoice", "CreditMemo", "Payment"):
            for record in books[entity].values():
                self.seen.append((entity, record))
        return books

    def invoice_numbers(self) -> set[str]:
        return {invoice["DocNumber"] for invoice in self.books()["Invoice"].values()}

    def payments_on(self, number: str) -> list[Decimal]:
        books = self.books()
        (invoice_id,) = [k for k, v in books["Invoice"].items() if v["DocNumber"] == number]
        return [
            Decimal(str(line["Amount"]))
            for payment in books["Payment"].values()
            for line in payment.get("Line", [])
            for linked in line.get("LinkedTxn", [])
            if linked["TxnId"] == invoice_id
        ]

    def stop(self):
        self.server.stop()


class Xero:
    provider = "xero"

    def __init__(self, app, monkeypatch):
        self.server = XeroStandin(seed="demo").start()
        for key in ("XERO_LOGIN_BASE", "XERO_IDENTITY_BASE", "XERO_API_BASE"):
            monkeypatch.setitem(app.config, key, self.server.url)
        documents = xero_documents()
        # Every request the connector sends and every answer it reads, against Xero's documents.
        self.transport = ContractTransport(
            {
                self.server.url + "/api.xro/2.0": documents["accounting"],
                self.server.url: documents["identity"],
            },
            unchecked=("/connect/token",),
        )
        monkeypatch.setattr(connectors, "_transport", self.transport)
        self.tenant = next(iter(self.server.organisations))

    def check_contract(self):
        assert self.transport.exchanges, "no exchange went through the contract check"

    def invoice_numbers(self) -> set[str]:
        return {
            invoice["InvoiceNumber"]
            for invoice in self.server.books(self.tenant, "Invoices").values()
            if invoice["Type"] == "ACCREC"
            and invoice["Status"] not in ("DRAFT", "SUBMITTED", "DELETED")
        }

    def payments_on(self, number: str) -> list[Decimal]:
        invoices = self.server.books(self.tenant, "Invoices")
        (invoice_id,) = [k for k, v in invoices.items() if v["InvoiceNumber"] == number]
        return [
            Decimal(str(payment["Amount"]))
            for payment in self.server.books(self.tenant, "Payments").values()
            if payment["_invoice"] == invoice_id and payment.get("Status") != "DELETED"
        ]

    def stop(self):
        self.server.stop()


PROVIDERS = {"xero": Xero, "zoho_books": Zoho, "quickbooks": QuickBooks}


@pytest.fixture
def quick_engine(app, monkeypatch):
    """No pacing and no backoff sleeps in tests (the pacing has its own test)."""
    monkeypatch.setitem(app.config, "SYNC_PACING", False)
    monkeypatch.setitem(app.config, "SYNC_RETRY_DELAYS", (0, 0))


@pytest.fixture(params=list(PROVIDERS))
def books(request, app, monkeypatch, quick_engine):
    stand_in = PROVIDERS[request.param](app, monkeypatch)
    yield stand_in
    stand_in.stop()
    stand_in.check_contract()


@pytest.fixture
def zoho(app, monkeypatch, quick_engine):
    stand_in = Zoho(app, monkeypatch)
    yield stand_in
    stand_in.stop()
    stand_in.check_contract()


@pytest.fixture
def workspace(db_session, make_tenant, make_user, make_client, login, client):
    """Demo Traders' workspace in Karnataka with its client Sahyadri Textiles LLP, whom the
    books know too; its owner logged in."""
    owner = make_user()
    tenant = make_tenant(owner=owner, region="29")
    session = tenant_session(db_session, tenant)
    sahyadri = make_client(session, name="x", short_name="Sahyadri", gstin=None, region="27")
    sahyadri.full_name = "Sahyadri Textiles LLP"
    session.commit()
    login(client, owner)
    return tenant, owner, session


def first_sync(client, run_jobs, tenant, provider: str) -> IntegrationConnection:
    landed = connect_through_pages(client, tenant, provider)
    assert landed.status_code == 303
    run_jobs()
    connection_page = client.get(landed.headers["Location"])
    assert "Review the matches" in connection_page.text
    connection_id = int(landed.headers["Location"].rstrip("/").rsplit("/", 1)[-1])
    review = client.get(f"/t/{tenant.slug}/sync/{connection_id}/review")
    assert "Sahyadri Textiles LLP" in review.text and "same name" in review.text
    confirmed = send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/review", data={})
    assert confirmed.status_code == 303
    run_jobs()
    return connection_id


def test_the_books_come_into_duebook_once_each(app, client, workspace, books, run_jobs):
    tenant, _, session = workspace
    connection_id = first_sync(client, run_jobs, tenant, books.provider)
    done = runs(session)
    assert [run.status for run in done] == ["done", "done"], [(r.status, r.error) for r in done]
    # Each run ended with its sync.finished event; each client the books brought, its
    # client.created (Sahyadri, known to both, was matched: no event).
    finished = session.scalars(
        select(DomainEvent).where(DomainEvent.type == "sync.finished").order_by(DomainEvent.id)
    ).all()
    assert [(e.subject_id, e.data["status"], e.data["created"]) for e in finished] == [
        (run.id, "done", run.created) for run in done
    ]
    assert {e.data["provider"] for e in finished} == {books.provider}
    created = session.scalars(
        select(DomainEvent.subject_id).where(DomainEvent.type == "client.created")
    ).all()
    brought = session.scalars(select(Client.id).where(Client.full_name.not_like("Sahyadri%"))).all()
    assert sorted(created) == sorted(brought) and brought
    numbers = books.invoice_numbers()
    ours = session.scalars(select(Invoice.number)).all()
    assert sorted(ours) == sorted(numbers)  # each of the books' approved invoices, once
    # The customer both sides knew is one client; the others are new clients.
    assert (
        session.scalar(
            select(func.count()).select_from(Client).where(Client.full_name.like("Sahyadri%"))
        )
        == 1
    )
    # Tax as the books say it, in Duebook's words: within Karnataka CGST + SGST, else IGST.
    for invoice in session.scalars(select(Invoice).where(Invoice.status != "void")):
        tax = invoice.cgst + invoice.sgst + invoice.igst + invoice.other_tax
        if invoice.place_of_supply == "29":
            assert invoice.igst == 0 and invoice.cgst + invoice.sgst == tax
        elif tax:
            assert invoice.cgst == invoice.sgst == 0 and invoice.igst == tax
    assert session.scalar(select(func.count()).select_from(Payment)) >= 3
    assert session.scalar(select(func.count()).select_from(Invoice).where(Invoice.status == "paid"))

    # An invoice from the books says where its ledger is kept.
    from_books = session.scalar(select(Invoice.id).where(Invoice.series == "BOOKS").limit(1))
    invoice_page = client.get(f"/t/{tenant.slug}/invoices/{from_books}")
    assert 'data-testid="invoice-sync"' in invoice_page.text and "which keeps its ledger" in (
        invoice_page.text
    )

    # Again: nothing new is created on either side.
    send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
    run_jobs()
    latest = runs(session)[-1]
    assert (latest.status, latest.created, latest.failed) == ("done", 0, 0)
    assert sorted(session.scalars(select(Invoice.number)).all()) == sorted(numbers)
    page = client.get(f"/t/{tenant.slug}/sync/{connection_id}")
    assert "Sync now" in page.text and "Last synced" in page.text
    # The browser may follow "Connect" to the provider's consent page, and nowhere else.
    policy = page.headers["Content-Security-Policy"]
    assert f"form-action 'self' https: {books.server.url}" in policy


def _open_invoice(session) -> Invoice:
    return session.scalars(
        select(Invoice)
        .where(Invoice.status.in_(("issued", "sent", "overdue")), Invoice.series == "BOOKS")
        .order_by(Invoice.number)
    ).first()


def test_a_payment_recorded_in_duebook_reaches_the_books_once(
    app, client, workspace, books, run_jobs
):
    tenant, owner, session = workspace
    connection_id = first_sync(client, run_jobs, tenant, books.provider)
    invoice = _open_invoice(session)
    before = books.payments_on(invoice.number)
    payments.record_payment_for_invoice(
        session,
        invoice,
        {
            "amount": "1000.00",
            "received_on": date.today(),
            "method": "bank_transfer",
            "reference": "UTR-778899",
        },
    )
    session.commit()
    for _ in range(2):  # a second sync sends nothing more
        send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
        run_jobs()
    assert books.payments_on(invoice.number) == [*before, Decimal("1000.00")]
    assert runs(session)[-1].created == 0


def test_a_record_duebook_cannot_take_is_listed_and_the_rest_goes_in(
    app, client, workspace, zoho, run_jobs
):
    tenant, _, session = workspace
    zoho.set_gstin("Deccan Steel Works", "36AABCD9052E1ZX")  # a wrong check character
    connection_id = first_sync(client, run_jobs, tenant, "zoho_books")
    problems = session.scalars(select(SyncProblem)).all()
    assert any(p.label == "Deccan Steel Works" and "GSTIN" in p.reason.upper() for p in problems), [
        (p.label, p.reason) for p in problems
    ]
    # Deccan's invoices wait for their customer; everything else is in.
    assert "Kaveri Foods Private Limited" in session.scalars(select(Client.full_name)).all()
    assert "Deccan Steel Works" not in session.scalars(select(Client.full_name)).all()
    page = client.get(f"/t/{tenant.slug}/sync/{connection_id}")
    assert "Deccan Steel Works" in page.text and "what did not go in" in page.text


def test_a_change_on_both_sides_waits_for_a_person_then_both_agree(
    app, client, workspace, zoho, run_jobs
):
    tenant, owner, session = workspace
    connection_id = first_sync(client, run_jobs, tenant, "zoho_books")
    kaveri = session.scalar(select(Client).where(Client.full_name.like("Kaveri Foods%")))
    from app.clients.services import save_contact
    from app.sync.mapping import billing_contact

    contact = billing_contact(session, kaveri)
    save_contact(
        session,
        kaveri,
        {"full_name": contact.full_name, "roles": contact.roles, "email": "ours@kaverifoods.in"},
        "IN",
        contact,
    )
    session.commit()
    zoho.set_email("Kaveri Foods Private Limited", "theirs@kaverifoods.in")
    send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
    run_jobs()
    (conflict,) = session.scalars(select(SyncConflict)).all()
    assert conflict.status == "open" and set(conflict.fields) == {"email"}
    # Neither side was overwritten meanwhile.
    assert zoho.email_of("Kaveri Foods Private Limited") == "theirs@kaverifoods.in"
    session.expire_all()
    assert billing_contact(session, kaveri).email == "ours@kaverifoods.in"
    page = client.get(f"/t/{tenant.slug}/sync/{connection_id}/conflicts")
    assert "ours@kaverifoods.in" in page.text and "theirs@kaverifoods.in" in page.text

    kept = send(
        client,
        tenant,
        f"/t/{tenant.slug}/sync/{connection_id}/conflicts/{conflict.id}",
        data={"keep": "duebook"},
    )
    assert kept.status_code == 303
    run_jobs()
    assert zoho.email_of("Kaveri Foods Private Limited") == "ours@kaverifoods.in"
    session.expire_all()
    assert session.get(SyncConflict, conflict.id).status == "resolved"
    # The audit log names who resolved it.
    audit = client.get(f"/t/{tenant.slug}/audit/")
    assert "sync conflict" in audit.text


def test_a_page_the_books_garble_is_left_for_the_next_run_and_the_rest_goes_on(
    app, client, workspace, zoho, run_jobs
):
    tenant, _, session = workspace
    connection_id = first_sync(client, run_jobs, tenant, "zoho_books")
    # Every attempt at the first page asked (the first and two retries) is cut short.
    httpx.post(f"{zoho.server.url}/_standin/garble", json={"count": 3})
    send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
    run_jobs()
    run = runs(session)[-1]
    # That page failed, not the run: the other entities were still synced.
    assert run.status == "done" and "did not answer usefully" in run.error
    (problem,) = session.scalars(select(SyncProblem).where(SyncProblem.run_id == run.id)).all()
    assert "reads them again" in problem.reason
    page = client.get(f"/t/{tenant.slug}/sync/{connection_id}")
    assert "did not answer usefully" in page.text
    session.expire_all()
    left = session.get(SyncState, (connection_id, problem.entity))
    assert left.pass_run_id == run.id  # its pass is kept, to go on from that page
    others = [e for e in ("contact", "invoice", "credit_note", "payment") if e != problem.entity]
    assert all(session.get(SyncState, (connection_id, e)).pass_run_id is None for e in others)
    send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
    run_jobs()
    latest = runs(session)[-1]
    assert (latest.status, latest.error) == ("done", None)
    session.expire_all()
    assert session.get(SyncState, (connection_id, problem.entity)).pass_run_id is None
    assert sorted(session.scalars(select(Invoice.number)).all()) == sorted(zoho.invoice_numbers())


def test_an_invoice_written_to_the_books_before_a_crash_is_linked_not_written_again(
    app, client, workspace, zoho, run_jobs, make_invoice
):
    tenant, owner, session = workspace
    connection_id = first_sync(client, run_jobs, tenant, "zoho_books")
    kaveri = session.scalar(select(Client).where(Client.full_name.like("Kaveri Foods%")))
    ours = make_invoice(session, tenant, kaveri, ("5000.00",), issued_on=date.today())
    ours.issued_at = datetime.now(UTC)
    session.commit()
    send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
    run_jobs()
    assert ours.number in zoho.invoice_numbers()
    # The worker died after Zoho took the invoice and before our link was committed.
    link = session.scalar(
        select(SyncLink).where(SyncLink.entity == "invoice", SyncLink.local_id == ours.id)
    )
    remote_id = link.remote_id
    session.delete(link)
    session.commit()
    send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
    run_jobs()
    numbers = [invoice["invoice_number"] for invoice in zoho.books()["invoices"].values()]
    assert numbers.count(ours.number) == 1
    session.expire_all()
    relinked = session.scalar(
        select(SyncLink).where(SyncLink.entity == "invoice", SyncLink.local_id == ours.id)
    )
    assert relinked.remote_id == remote_id


def test_a_revoked_token_asks_for_reconnecting_once_and_stops_the_schedule(
    app, client, workspace, zoho, run_jobs
):
    tenant, owner, session = workspace
    connection_id = first_sync(client, run_jobs, tenant, "zoho_books")
    connection = session.get(IntegrationConnection, connection_id)
    # The admin revoked Duebook's access in Zoho: the token and its refresh are refused.
    zoho.server.revoke()
    send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
    run_jobs()
    failed = runs(session)[-1]
    assert failed.status == "failed" and "Reconnect" in failed.error
    session.expire_all()
    connection = session.get(IntegrationConnection, connection_id)
    assert connection.settings["needs_reconnect"] is True
    told = session.scalars(select(Notification.title)).all()
    assert len(told) == 1
    # The schedule starts nothing until it is reconnected; "Sync now" says why.
    assert services.sweep(session, datetime.now(UTC) + timedelta(days=1)) == 0
    answer = send(
        client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync", follow_redirects=True
    )
    assert "reconnect it first" in answer.text
    assert "Reconnect Zoho Books" in client.get(f"/t/{tenant.slug}/sync/{connection_id}").text


def test_a_long_rate_limit_pauses_the_run_until_the_provider_says(
    app, client, workspace, zoho, run_jobs
):
    tenant, _, session = workspace
    connection_id = first_sync(client, run_jobs, tenant, "zoho_books")
    zoho.server.inject_fault(429, count=1, retry_after=600)
    app.config["SYNC_MAX_WAIT"] = 5
    try:
        send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
        run_jobs()
    finally:
        app.config["SYNC_MAX_WAIT"] = 65
    paused = runs(session)[-1]
    assert paused.status == "waiting" and paused.resume_at is not None
    assert "slow down" in paused.error
    assert services.sweep(session) == 0  # not before its time
    later = paused.resume_at + timedelta(seconds=1)
    with app.app_context():
        assert services.sweep(session, later) == 1
        session.commit()
    run_jobs()
    assert runs(session)[-1].status == "done"


def test_a_full_refresh_finds_what_the_books_deleted_and_reconciles(
    app, client, workspace, zoho, run_jobs
):
    tenant, _, session = workspace
    connection_id = first_sync(client, run_jobs, tenant, "zoho_books")
    gone = next(
        invoice["invoice_number"]
        for invoice in zoho.books()["invoices"].values()
        if invoice["status"] in ("sent", "overdue")
    )
    zoho.delete_invoice(gone)
    send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync", data={"full": "1"})
    run_jobs()
    assert runs(session)[-1].status == "done"
    assert session.scalar(select(Invoice.status).where(Invoice.number == gone)) == "void"
    report = session.scalars(select(SyncReport)).one()
    assert report.differences == [], report.differences
    months = {(m["entity"], m["month"]): m for m in report.months}
    assert all(
        (m["duebook_count"], Decimal(m["duebook_total"]))
        == (m["books_count"], Decimal(m["books_total"]))
        for m in months.values()
    ), report.months
    page = client.get(f"/t/{tenant.slug}/sync/{connection_id}/reconciliation")
    assert "Both sides agree" in page.text
    exported = client.get(f"/t/{tenant.slug}/sync/{connection_id}/reconciliation?format=csv")
    assert exported.mimetype == "text/csv" and "Totals,Invoices" in exported.text
    assert session.scalar(select(func.count()).select_from(CreditNote)) == 1


def test_xero_webhooks_start_a_sync_of_the_one_workspace_they_name(
    app, client, db_session, workspace, run_jobs, monkeypatch, quick_engine
):
    xero = Xero(app, monkeypatch)
    try:
        tenant, _, _ = workspace

        def sync_runs():
            # A session of its own each time: the unrouted delivery's request leaves the test's
            # shared connection unbound.
            return runs(tenant_session(db_session, tenant))

        first_sync(client, run_jobs, tenant, "xero")
        monkeypatch.setitem(app.config, "XERO_WEBHOOK_KEY", "the-apps-webhook-key")

        def deliver(events, key="the-apps-webhook-key"):
            body = json.dumps(
                {
                    "events": events,
                    "firstEventSequence": 1,
                    "lastEventSequence": 1,
                    "entropy": "S0m3r4Nd0mt3xt",
                }
            ).encode()
            return client.post(
                "/hooks/accounting/xero",
                data=body,
                headers={
                    "x-xero-signature": xero_signature(key, body),
                    "Content-Type": "application/json",
                },
            )

        # Xero's intent-to-receive: 200 with no body when signed with our key, else 401.
        good = deliver([])
        assert (good.status_code, good.data) == (200, b"")
        assert deliver([], key="someone-elses-key").status_code == 401
        before = len(sync_runs())
        event = {
            "resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/x",
            "resourceId": "0d3c5f2e-2b0a-4f32-8d7d-6d0a9c4c5e11",
            "eventDateUtc": "2026-12-05T08:00:00.000",
            "eventType": "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": xero.tenant,
            "tenantType": "ORGANISATION",
        }
        assert deliver([event]).status_code == 200
        latest = sync_runs()[-1]
        assert len(sync_runs()) == before + 1 and latest.trigger == "webhook"
        # An organisation no workspace syncs is acknowledged and nothing runs.
        assert (
            deliver([{**event, "tenantId": "00000000-0000-0000-0000-000000000000"}]).status_code
            == 200
        )
        assert len(sync_runs()) == before + 1
        run_jobs()
        assert sync_runs()[-1].status == "done"
    finally:
        xero.stop()


def test_an_expiring_token_is_refreshed_and_the_new_one_stored_before_use(
    app, client, db_session, workspace, run_jobs, monkeypatch, quick_engine
):
    from app.core.crypto import decrypt_secrets, encrypt_secrets

    xero = Xero(app, monkeypatch)
    try:
        tenant, _, session = workspace
        connection_id = first_sync(client, run_jobs, tenant, "xero")
        connection = session.get(IntegrationConnection, connection_id)
        keys = app.config["SECRETS_KEYS"]
        stored = decrypt_secrets(connection.secrets_ciphertext, keys)
        # A minute left: the next run refreshes first (Xero's tokens last 30 minutes).
        stored["expires_at"] = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        connection.secrets_ciphertext = encrypt_secrets(stored, keys)
        session.commit()
        send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
        run_jobs()
        assert runs(session)[-1].status == "done"
        session.expire_all()
        fresh = decrypt_secrets(
            session.get(IntegrationConnection, connection_id).secrets_ciphertext, keys
        )
        assert fresh["refresh_token"] != stored["refresh_token"]  # Xero rotates them
        assert datetime.fromisoformat(fresh["expires_at"]) > datetime.now(UTC) + timedelta(
            minutes=20
        )
        # The old refresh token is spent: within Xero's grace period it only answers the same
        # new tokens again, the ones stored.
        answer = httpx.post(
            f"{xero.server.url}/connect/token",
            data={"grant_type": "refresh_token", "refresh_token": stored["refresh_token"]},
            auth=(xero.server.client_id, xero.server.client_secret),
        )
        assert answer.json()["refresh_token"] == fresh["refresh_token"]
    finally:
        xero.stop()


def test_a_second_worker_leaves_a_connection_to_the_one_running_it(
    app, client, workspace, zoho, run_jobs
):
    from sqlalchemy import text

    from app.extensions import db

    tenant, _, session = workspace
    connection_id = first_sync(client, run_jobs, tenant, "zoho_books")
    send(client, tenant, f"/t/{tenant.slug}/sync/{connection_id}/sync")
    key = f"sync:{tenant.id}:{connection_id}"
    with app.app_context():
        engine = db.engine
    with engine.connect() as other_worker:
        other_worker.execute(text("SELECT pg_advisory_lock(hashtext(:key))"), {"key": key})
        run_jobs()
        assert runs(session)[-1].status == "queued"  # untouched: the other worker has it
        other_worker.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})
    # That worker died without finishing: the sweeper hands the run over again.
    with app.app_context():
        assert services.sweep(session, datetime.now(UTC) + timedelta(minutes=5)) == 1
        session.commit()
    run_jobs()
    assert runs(session)[-1].status == "done"


def test_quickbooks_webhooks_in_either_format_start_a_sync(
    app, client, db_session, workspace, run_jobs, monkeypatch, quick_engine
):
    import base64
    import hashlib
    import hmac

    books = QuickBooks(app, monkeypatch)
    try:
        tenant, _, _ = workspace
        first_sync(client, run_jobs, tenant, "quickbooks")
        monkeypatch.setitem(app.config, "QBO_WEBHOOK_VERIFIER", "the-apps-verifier")

        def deliver(payload, key="the-apps-verifier"):
            body = json.dumps(payload).encode()
            signature = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest())
            return client.post(
                "/hooks/accounting/quickbooks",
                data=body,
                headers={
                    "intuit-signature": signature.decode(),
                    "Content-Type": "application/json",
                },
            )

        def sync_runs():
            return runs(tenant_session(db_session, tenant))

        cloud_event = [
            {
                "specversion": "1.0",
                "id": "evt-1",
                "source": "intuit.dsnmoch",
                "type": "qbo.invoice.updated.v1",
                "datacontenttype": "application/json",
                "time": "2026-12-05T08:00:00Z",
                "intuitentityid": "7",
                "intuitaccountid": DEFAULT_REALM,
                "data": {},
            }
        ]
        assert deliver(cloud_event, key="someone-elses").status_code == 401
        before = len(sync_runs())
        assert deliver(cloud_event).status_code == 200
        assert len(sync_runs()) == before + 1 and sync_runs()[-1].trigger == "webhook"
        run_jobs()
        legacy = {
            "eventNotifications": [
                {
                    "realmId": DEFAULT_REALM,
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "name": "Customer",
                                "id": "1",
                                "operation": "Update",
                                "lastUpdated": "2026-12-05T08:01:00.000Z",
                            }
                        ]
                    },
                }
            ]
        }
        assert deliver(legacy).status_code == 200
        assert len(sync_runs()) == before + 2
        run_jobs()
        assert sync_runs()[-1].status == "done"
    finally:
        books.stop()


def test_calls_to_one_set_of_books_are_spaced_under_its_limit_across_workers(
    app, workspace, zoho, monkeypatch
):
    """Zoho allows 100 calls a minute per organisation: one every 0.6 s, the slots taken
    atomically in Redis so that two workers (two Books here) share them. The waits are what
    each call is told to sleep (no clock is asserted)."""
    from app.core.crypto import encrypt_secrets
    from app.sync import books as books_module

    tenant, _, session = workspace
    tokens = {"access_token": "a", "refresh_token": "r", "expires_at": "2999-01-01T00:00:00+00:00"}
    connection = IntegrationConnection(
        provider="zoho_books",
        status="enabled",
        verification="verified",
        settings={"book_id": zoho.book, "data_centre": "in"},
        secrets_ciphertext=encrypt_secrets(tokens, app.config["SECRETS_KEYS"]),
    )
    session.add(connection)
    session.flush()
    slept: list[float] = []
    monkeypatch.setattr(books_module.time, "sleep", slept.append)
    monkeypatch.setattr(books_module.time, "time", lambda: 1_700_000_000.0)
    monkeypatch.setitem(app.config, "SYNC_PACING", True)
    with app.app_context():
        first = books_module.Books(session, connection)
        second = books_module.Books(session, connection)
        first._pace()  # the first call goes at once
        second._pace()
        first._pace()
        second._pace()
    assert slept == pytest.approx([0.6, 1.2, 1.8])


def test_a_first_sync_paced_by_the_providers_limit_goes_through(
    app, client, workspace, run_jobs, monkeypatch, quick_engine
):
    """With pacing on, as in production: the run's thread and the page fetcher's thread take
    their slots from the same Redis clock (QuickBooks: 500 calls a minute)."""
    books = QuickBooks(app, monkeypatch)
    monkeypatch.setitem(app.config, "SYNC_PACING", True)
    try:
        tenant, _, session = workspace
        first_sync(client, run_jobs, tenant, "quickbooks")
        assert [run.status for run in runs(session)] == ["done", "done"]
        assert sorted(session.scalars(select(Invoice.number)).all()) == sorted(
            books.invoice_numbers()
        )
    finally:
        books.stop()
