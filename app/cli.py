"""`flask demo seed` and `flask users ...`."""

from __future__ import annotations

from datetime import time, timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.auth import services as accounts
from app.clients.models import Client, Contact
from app.clients.services import set_consent
from app.collections.models import CollectionSettings
from app.core.clock import local_date, subdivision_for
from app.extensions import db
from app.invoicing import credits
from app.invoicing import services as invoicing
from app.library.models import LibraryTemplate
from app.message_templates.models import MessageTemplate
from app.payments import services as payments
from app.projects import services as projects
from app.projects.models import Milestone
from app.sandbox.providers import connect_demo_providers
from app.settings.services import workspace_settings
from tenants import services as tenants
from tenants.binding import TenantSession, tenant_context
from tenants.models import Membership, Tenant

demo_cli = AppGroup("demo", help="Demo data for make run.")
users_cli = AppGroup("users", help="Platform-level user administration.")

DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "paid-on-time-2026"


@demo_cli.command("seed")
def seed_demo() -> None:
    """A demo workspace and its owner's login; whatever of them exists already is kept."""
    user = accounts.find_user_by_email(db.session, DEMO_EMAIL)
    if user is None:
        user = accounts.create_user(
            db.session, email=DEMO_EMAIL, full_name="Asha Demo", password=DEMO_PASSWORD
        )
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
    if tenant is None:
        tenant = tenants.create_tenant(
            db.session,
            slug=DEMO_SLUG,
            name="Demo Traders Pvt Ltd",
            country="IN",
            region="Karnataka",
            time_zone="Asia/Kolkata",
            currency="INR",
        )
    membership = db.session.scalar(
        select(Membership).where(Membership.user_id == user.id, Membership.tenant_id == tenant.id)
    )
    if membership is None:
        db.session.add(Membership(user_id=user.id, tenant_id=tenant.id, role="owner"))
    db.session.commit()
    _seed_demo_books(tenant.id, user.id)
    _seed_demo_messaging(tenant.id, user.id)
    _seed_demo_collections(tenant.id, user.id)
    _seed_demo_foreign_client(tenant.id, user.id)
    click.echo(f"Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")


def _seed_demo_books(tenant_id: int, user_id: int) -> None:
    """Once, for an empty demo workspace: its GST and payment settings, a client, a project
    planned from the library's construction template, the first milestone invoiced, part paid
    with TDS and reduced by a credit note, so every billing page has something to show."""

    with tenant_context(
        TenantSession(db, bind=db.engine), tenant_id, actor_user_id=user_id
    ) as session:
        if session.scalar(select(Client.id).limit(1)) is not None:
            return
        template = session.scalar(
            select(LibraryTemplate).where(LibraryTemplate.key == "construction/standard/medium")
        )
        if template is None:
            return  # the library is loaded by `tenants migrate`; nothing to plan from yet
        tenant = session.get(Tenant, tenant_id)
        workspace = workspace_settings(session, tenant_id)
        workspace.legal_name, workspace.gstin, workspace.pan = (
            "Demo Traders Private Limited",
            "29AAPFU0939F1ZR",
            "AAPFU0939F",
        )
        workspace.address = "12 Residency Road\nBengaluru 560025"
        workspace.upi_vpa = "demotraders@okhdfcbank"
        workspace.payment_instructions = "HDFC Bank, A/c 50200012345678, IFSC HDFC0000123"
        client = Client(
            full_name="Kaveri Builders Pvt Ltd",
            short_name="Kaveri",
            location="local",
            country="IN",
            currency="INR",
            region="29",
            payment_terms="net",
            payment_days=30,
        )
        session.add(client)
        session.flush()
        today = local_date(tenant.time_zone)
        project = projects.create_project(
            session,
            client,
            {
                "name": "Whitefield Tower A",
                "contract_value": "2,50,00,000",
                "start_date": (today - timedelta(days=60)).isoformat(),
            },
            user_id,
            tenant.currency,
        )
        calendar = projects.Calendar(tenant.country, subdivision_for(tenant.country, tenant.region))
        projects.apply_template(session, project, template, calendar, actor_user_id=user_id)
        first = session.scalars(
            select(Milestone)
            .where(Milestone.project_id == project.id)
            .order_by(Milestone.position)
            .limit(1)
        ).one()
        for status in ("in_progress", "completed"):
            projects.transition(
                session, first, status, user_id=user_id, project=project, today=today
            )
        invoice = invoicing.draft_from_milestones(
            session, tenant, project, [first], hsn_sac=invoicing.DEFAULT_SAC
        )
        invoicing.issue(session, tenant, invoice, today - timedelta(days=45), user_id=user_id)
        tds = (invoice.subtotal * 2 / 100).quantize(invoice.subtotal)  # 194C, 2%
        cash = (invoice.total / 2).quantize(invoice.total)
        payment = payments.record_payment(
            session,
            client,
            {
                "amount": str(cash),
                "received_on": (today - timedelta(days=10)).isoformat(),
                "method": "bank_transfer",
                "reference": "UTR HDFCR52026112200417",
            },
        )
        payments.allocate(
            session, payment, [(invoice.id, str(cash), str(tds), "194C", "2")], user_id=user_id
        )
        credits.issue_credit_note(
            session,
            tenant,
            invoice,
            "59,000",
            "Shuttering rate revised at the joint site review",
            today - timedelta(days=5),
            user_id=user_id,
        )


def _seed_demo_messaging(tenant_id: int, user_id: int) -> None:
    """The demo client's billing contact (e-mail, and WhatsApp and SMS opt-ins) and, when
    `make run` started the sandbox providers, connections to them; the demo workspace sends
    reminders at any hour and on any day so that they show in the sandbox inbox at once.
    Idempotent."""

    with tenant_context(
        TenantSession(db, bind=db.engine), tenant_id, actor_user_id=user_id
    ) as session:
        client = session.scalar(select(Client).where(Client.short_name == "Kaveri"))
        if (
            client is not None
            and session.scalar(select(Contact.id).where(Contact.client_id == client.id).limit(1))
            is None
        ):
            contact = Contact(
                client_id=client.id,
                full_name="Ravi Kumar",
                job_title="Accounts",
                roles=["billing", "primary"],
                email="ravi.kumar@kaveri.example",
                phone="+919845012345",
                preferred_language="en",
            )
            for channel in ("email", "sms", "whatsapp"):
                set_consent(contact, channel, True, "signed onboarding form")
            session.add(contact)
        _seed_demo_campaign_template(session)
        if current_app.config.get("SANDBOX_MESSAGES_DIR"):
            tenant = session.get(Tenant, tenant_id)
            workspace = workspace_settings(session, tenant_id)
            workspace.send_window_start, workspace.send_window_end = time(0), time(23, 59, 59)
            workspace.send_on_business_days_only = False
            connect_demo_providers(session, tenant, user_id)


# Demo clients owing money at different ages, so that aging, the daily run's preview and the
# collector's queue have something to show: (name, short name, city, [(days ago issued,
# amount)]).
DEMO_DEBTORS = (
    ("Sahyadri Textiles LLP", "Sahyadri", "Pune", "27", [(125, "4,80,000"), (70, "2,15,000")]),
    ("Godavari Foods Pvt Ltd", "Godavari", "Hyderabad", "36", [(95, "1,90,000"), (48, "75,000")]),
    ("Nilgiri Logistics", "Nilgiri", "Coimbatore", "33", [(40, "3,10,000"), (10, "55,000")]),
)


def _seed_demo_collections(tenant_id: int, user_id: int) -> None:
    """Once: the demo workspace is a registered micro enterprise (MSMED interest), the demo
    user collects from every client, and three more clients owe invoices of different ages
    with a billing contact each. Automatic sending stays off: the daily run's preview shows
    what would go out, and the notices wait for approval."""

    with tenant_context(
        TenantSession(db, bind=db.engine), tenant_id, actor_user_id=user_id
    ) as session:
        settings = session.get(CollectionSettings, 1)
        if settings is None or settings.udyam_number is not None:
            return
        settings.udyam_number, settings.msme_category = "UDYAM-KR-03-0012345", "micro"
        tenant = session.get(Tenant, tenant_id)
        today = local_date(tenant.time_zone)
        kaveri = session.scalar(select(Client).where(Client.short_name == "Kaveri"))
        if kaveri is not None:
            kaveri.collector_user_id, kaveri.late_interest_mode = user_id, "msmed"
        for full_name, short_name, city, region, invoices in DEMO_DEBTORS:
            client = Client(
                full_name=full_name,
                short_name=short_name,
                location="local",
                country="IN",
                currency="INR",
                city=city,
                region=region,
                address_line1="Plot 7, Industrial Area",
                payment_terms="net",
                payment_days=30,
                collector_user_id=user_id,
                late_interest_mode="msmed",
            )
            session.add(client)
            session.flush()
            first = short_name.lower()
            contact = Contact(
                client_id=client.id,
                full_name=f"Accounts, {short_name}",
                roles=["billing"],
                email=f"accounts@{first}.example",
                preferred_language="en",
            )
            set_consent(contact, "email", True, "signed onboarding form")
            session.add(contact)
            for days_ago, amount in invoices:
                line = invoicing.ManualLine(
                    description="Services as per work order",
                    hsn_sac=invoicing.DEFAULT_SAC,
                    unit_price=amount.replace(",", ""),
                )
                invoice = invoicing.draft_by_hand(session, tenant, client, [line])
                issued = today - timedelta(days=days_ago)
                invoicing.issue(session, tenant, invoice, issued, user_id=user_id)
                invoice.accepted_on = issued
        invoicing.mark_overdue(session, today)


def _seed_demo_foreign_client(tenant_id: int, user_id: int) -> None:
    """Once: a client abroad billed in US dollars (an export of services under the workspace's
    LUT, zero-rated), with one invoice issued a week ago: its pay link offers Stripe's
    checkout in dollars, where a rupee gateway cannot take the payment."""

    with tenant_context(
        TenantSession(db, bind=db.engine), tenant_id, actor_user_id=user_id
    ) as session:
        if session.scalar(select(Client.id).where(Client.short_name == "Harbour Lane")):
            return
        tenant = session.get(Tenant, tenant_id)
        workspace_settings(session, tenant_id).lut_reference = "AD2904260012345"
        client = Client(
            full_name="Harbour Lane Imports LLC",
            short_name="Harbour Lane",
            location="foreign",
            country="US",
            currency="USD",
            city="Seattle",
            address_line1="1201 Western Avenue",
            payment_terms="net",
            payment_days=30,
            collector_user_id=user_id,
        )
        session.add(client)
        session.flush()
        contact = Contact(
            client_id=client.id,
            full_name="Megan Ortiz",
            roles=["billing"],
            email="ap@harbourlane.example",
            preferred_language="en",
        )
        set_consent(contact, "email", True, "signed master services agreement")
        session.add(contact)
        line = invoicing.ManualLine(
            description="Export of design services: catalogue shoot, November",
            hsn_sac=invoicing.DEFAULT_SAC,
            unit_price="2400",
        )
        invoice = invoicing.draft_by_hand(session, tenant, client, [line])
        issued = local_date(tenant.time_zone) - timedelta(days=7)
        invoicing.issue(session, tenant, invoice, issued, user_id=user_id)
        invoice.accepted_on = issued


def _seed_demo_campaign_template(session) -> None:
    """A campaign e-mail (no invoice in it) so that a campaign can be launched at once."""

    name = "New bank account for payments"
    if session.scalar(select(MessageTemplate.id).where(MessageTemplate.name == name)):
        return
    session.add(
        MessageTemplate(
            name=name,
            channel="email",
            purpose="campaign",
            language="en",
            subject="{{ tenant.name }}: please note our new bank account",
            body="Dear {{ contact.first_name }},\n\nFrom 1 December our payments go to a new "
            "account:\n\nHDFC Bank, A/c 50200012345678, IFSC HDFC0000123\n\nPlease update "
            "your vendor master before your next payment to {{ tenant.legal_name }}. Payments "
            "to the old account will be returned.\n\nRegards,\nAccounts team",
        )
    )


@users_cli.command("disable")
@click.argument("email")
def disable_user(email: str) -> None:
    """Switch a user off everywhere and end all their login sessions at once."""
    user = accounts.find_user_by_email(db.session, email)
    if user is None:
        raise click.ClickException(f"no user {email}")
    user.active = False
    accounts.end_all_login_sessions(db.session, user.id)
    db.session.commit()
    click.echo(f"{email} is disabled and logged out everywhere.")
