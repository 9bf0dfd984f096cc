"""Domain factories as fixtures (a pytest plugin named in conftest's `pytest_plugins`): a client
with its contact, an issued invoice that owes money, a payment against invoices, a collection
notice. Invoices and payments go through the services the app uses (draft from milestones,
issue, record and allocate); clients, contacts, projects and notices are the rows those
services start from. Each factory takes the tenant session to write with (see
tests.helpers.tenant_session), so one test can fill several tenants."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.clients import documents
from app.clients import services as clients
from app.clients.models import Client, Contact
from app.collections.cases import disputes, promises
from app.collections.models import (
    CollectionLevel,
    CollectionNotice,
    CollectionNoticeInvoice,
    CollectionPolicy,
)
from app.collections.notices import services as notices
from app.core.storage import get_storage
from app.invoicing import credits
from app.invoicing import services as invoicing
from app.invoicing.models import Invoice
from app.library import services as library
from app.library.models import LibraryTemplate
from app.library.tenant import services as my_templates
from app.payments import services as payments
from app.payments.models import Payment
from app.projects.models import Milestone, Project

MH_GSTIN = "27AAPFU0939F1ZV"  # Maharashtra, the state of the tenants the factories bill from


@pytest.fixture
def numbering() -> Iterator[int]:
    """One count per test for the names of what the factories make ("Client 1", "Project 2")."""
    return itertools.count(1)


@pytest.fixture
def make_client(numbering) -> Callable[..., Client]:
    def make(session, name: str = "Client", short_name: str = "C", **fields) -> Client:
        """A client in India on 30 days' terms with Maharashtra's GSTIN; `fields` override."""
        n = next(numbering)
        country = fields.get("country", "IN")
        values = {
            "full_name": f"{name} {n}",
            "short_name": f"{short_name}{n}",
            "location": "local" if country == "IN" else "foreign",
            "country": country,
            "currency": "INR",
            "gstin": MH_GSTIN,
            "payment_terms": "net",
            "payment_days": 30,
            **fields,
        }
        client = Client(**values)
        session.add(client)
        session.flush()
        return client

    return make


@pytest.fixture
def make_contact() -> Callable[..., Contact]:
    def make(session, client: Client, **fields) -> Contact:
        """The client's billing contact, reachable by e-mail; `fields` override."""
        values = {
            "full_name": "Ravi Kumar",
            "roles": ["billing"],
            "email": "ravi@kaveri.example",
            **fields,
        }
        contact = Contact(client_id=client.id, **values)
        session.add(contact)
        session.flush()
        return contact

    return make


@pytest.fixture
def make_invoice(numbering) -> Callable[..., Invoice]:
    def make(
        session,
        tenant,
        client: Client,
        amounts: Sequence[str] = ("1000.00",),
        *,
        issued_on: date = date(2027, 2, 1),
        due_on: date | None = None,
        started_on: date = date(2027, 1, 4),
        tax_rate: str = "0",
        sac: str = "9983",
        currency: str = "INR",
        **project_fields,
    ) -> Invoice:
        """An invoice issued on `issued_on` for a project of `client` whose milestones (one
        per amount, due on `due_on`, default the issue day) are done: it owes their sum plus
        tax at `tax_rate` (none by default, so that its total is the amounts' sum)."""
        project = Project(
            client_id=client.id,
            name=f"Project {next(numbering)}",
            contract_value=sum(Decimal(a) for a in amounts),
            currency=currency,
            start_date=started_on,
            **project_fields,
        )
        session.add(project)
        session.flush()
        milestones = [
            Milestone(
                project_id=project.id,
                position=position,
                name=f"Stage {position}",
                amount=Decimal(amount),
                due_rule="date",
                due_date=due_on or issued_on,
                status="completed",
            )
            for position, amount in enumerate(amounts, start=1)
        ]
        session.add_all(milestones)
        session.flush()
        invoice = invoicing.draft_from_milestones(
            session, tenant, project, milestones, tax_rate, sac
        )
        return invoicing.issue(session, tenant, invoice, issued_on)

    return make


def invoice_milestones(session, invoice: Invoice) -> list[Milestone]:
    """The milestones `invoice` bills, in their order."""
    ids = [line.milestone_id for line in invoice.lines]
    milestones = session.scalars(select(Milestone).where(Milestone.id.in_(ids)))
    return sorted(milestones, key=lambda m: m.position)


@pytest.fixture
def make_payment() -> Callable[..., Payment]:
    def make(
        session,
        client: Client,
        amount: str,
        received_on: str = "2027-03-01",
        *,
        allocate_to: Sequence[Invoice] = (),
        reference: str = "UTR1",
    ) -> Payment:
        """A UPI payment from `client`, applied to `allocate_to` in their order, each
        invoice getting what it still owes until the amount is used up."""
        payment = payments.record_payment(
            session,
            client,
            {"amount": amount, "received_on": received_on, "method": "upi", "reference": reference},
        )
        if allocate_to:
            left, rows = Decimal(amount), []
            for invoice in allocate_to:
                part = min(left, payments.outstanding(session, invoice))
                rows.append((invoice.id, part, "0", None, None))
                left -= part
            payments.allocate(session, payment, rows)
        return payment

    return make


def default_level(session, position: int = 1) -> CollectionLevel:
    """The level at `position` of the tenant's default collection policy."""
    policy = session.scalar(select(CollectionPolicy).where(CollectionPolicy.is_default))
    return session.scalar(
        select(CollectionLevel).where(
            CollectionLevel.policy_id == policy.id, CollectionLevel.position == position
        )
    )


@pytest.fixture
def make_notice() -> Callable[..., CollectionNotice]:
    def make(
        session,
        client: Client,
        invoices: Sequence[Invoice],
        *,
        contact: Contact | None = None,
        position: int = 1,
        channel: str = "email",
        status: str = "draft",
        run_date: date = date(2026, 9, 1),
    ) -> CollectionNotice:
        """A notice of the default policy's level `position` for `invoices`, 30 days overdue,
        as the daily run makes it."""
        level = default_level(session, position)
        notice = CollectionNotice(
            client_id=client.id,
            policy_id=level.policy_id,
            level_id=level.id,
            level_number=level.position,
            level_name=level.name,
            channel=channel,
            currency="INR",
            status=status,
            run_date=run_date,
            amount_due=sum((Decimal(i.total) for i in invoices), Decimal("0")),
            contact_id=contact.id if contact else None,
        )
        session.add(notice)
        session.flush()
        for invoice in invoices:
            session.add(
                CollectionNoticeInvoice(
                    notice_id=notice.id,
                    invoice_id=invoice.id,
                    level_number=level.position,
                    channel=channel,
                    amount_due=invoice.total,
                    days_overdue=30,
                )
            )
        session.flush()
        session.expire(notice, ["items"])
        return notice

    return make


@pytest.fixture
def make_api_records(
    app,
    db_session,
    storage_root,
    make_client,
    make_contact,
    make_invoice,
    make_payment,
    make_notice,
):
    """One of every record the JSON API reaches by id, in `tenant`: the ids by the name of the
    path parameter that takes them (what the API's fuzz and isolation walk call with)."""

    def make(session, tenant, owner) -> dict[str, int]:
        buyer = make_client(session)
        contact = make_contact(session, buyer)
        invoice = make_invoice(session, tenant, buyer, ("1000.00",))
        disputed = make_invoice(session, tenant, buyer, ("500.00",))
        payment = make_payment(session, buyer, "100.00", allocate_to=[invoice])
        today = date(2027, 2, 1)
        note = credits.issue_credit_note(session, tenant, invoice, "100.00", "Discount", today)
        promise = promises.create_promise(
            session, buyer, {"amount": "200.00", "promised_on": "2099-01-31"}, today
        )
        dispute = disputes.open_dispute(session, disputed, {"reason": "Not delivered"}, owner.id)
        own = my_templates.start_blank(session, {"name": "Our standard plan"}, owner.id)
        site = clients.save_site(session, buyer, {"name": "Head office"})
        document = documents.upload_document(
            session,
            get_storage(app),
            buyer,
            title="Master agreement",
            upload=documents.UploadedFile("agreement.txt", io.BytesIO(b"Signed.\n")),
            today=today,
        )
        notice = make_notice(session, buyer, [invoice], contact=contact)
        link = notices.add_link(
            session, notice, title="Delivery note", url="https://example.com/dn", user_id=None
        )
        session.commit()
        if db_session.scalar(select(LibraryTemplate.id).limit(1)) is None:
            library.load_library(db_session, library.read_library()[:1])
            db_session.commit()
        return {
            "client_id": buyer.id,
            "contact_id": contact.id,
            "invoice_id": invoice.id,
            "payment_id": payment.id,
            "project_id": invoice.project_id,
            "milestone_id": invoice_milestones(session, invoice)[0].id,
            "credit_note_id": note.id,
            "promise_id": promise.id,
            "dispute_id": dispute.id,
            "tenant_template_id": own.id,
            "site_id": site.id,
            "document_id": document.id,
            "notice_id": notice.id,
            "attachment_id": link.id,
            "template_id": db_session.scalar(select(LibraryTemplate.id).limit(1)),
        }

    return make
