"""Tenant isolation, enforced by the framework: the URL decides the tenant, membership decides
access, and a tenant table cannot be read without a tenant bound."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from flask import url_for
from sqlalchemy import create_engine, func, select, text

from app.audit.models import AuditEntry
from app.clients.models import (
    Client,
    ClientImport,
    Contact,
    Document,
    DocumentVersion,
    Site,
)
from app.extensions import db
from app.payments.opening.models import OpeningBalanceImport
from app.projects.models import Milestone, Project
from tenants.binding import (
    TenantNotBound,
    TenantSession,
    bind_tenant,
    qualified,
    quoted_schema,
    recycle_connections_after,
    schema_for_tenant_id,
)
from tenants.models import Invitation, Membership
from tests.helpers import tenant_session, unique

# Every URL argument of every route must be listed here, so that a new route cannot escape the
# walk: record ids get tenant A's records, the rest a fixed value.
NON_RECORD_ARGS = {
    "state": "off",
    "token": "forged-token",
    "name": "0-00000000.eml",
    "filename": "css/app.css",
    "section": "identity",
    "step_name": "identity",
    "fmt": "csv",
    "kind": "csv",
    "template_id": 1,
    "provider": "whatsapp_cloud",
    "job_id": "forged-job",
    # An agent's request id: the agent API takes no workspace in its address; its token names
    # the one connection whose requests it may answer (tests/test_tally_agent.py).
    "work_id": "forged-work",
    # The OData feed's entity set: its key names the workspace, as /api/v1's does; another
    # workspace's key reading every set is tests/test_api_odata.py's.
    "entity_set_name": "Clients",
}
RECORD_ARGS = (
    "tenant_slug",
    "slug",
    "membership_id",
    "invitation_id",
    "client_id",
    "contact_id",
    "site_id",
    "document_id",
    "version",
    "import_id",
    "opening_import_id",
    "project_id",
    "milestone_id",
    "invoice_id",
    "payment_id",
    "allocation_id",
    "tenant_template_id",
    "item_id",
    "credit_note_id",
    "message_id",
    "connection_id",
    "message_template_id",
    "campaign_id",
    "notification_id",
    "notice_id",
    "policy_id",
    "level_id",
    "run_id",
    "promise_id",
    "dispute_id",
    "hold_id",
    "activity_id",
    "attachment_id",
    "bank_rate_id",
    "pay_link_id",
    "difference_id",
    "gateway_event_id",
    "bank_account_id",
    "statement_import_id",
    "statement_line_id",
    "sync_run_id",
    "conflict_id",
    "api_key_id",
    "webhook_endpoint_id",
    "webhook_delivery_id",
    "report_schedule_id",
    "rule_id",
    "custom_field_id",
)
# The JSON API takes no workspace in its address: its key names the workspace. Its operations
# are walked with another workspace's key by tests/test_api_isolation.py (every operation of
# the OpenAPI document); here their arguments must still be known ones.
KEY_ADDRESSED_PREFIX = "/api/v1/"


def _draft_invoice_of(session, client_id):
    from app.invoicing.models import Invoice

    zero = Decimal("0.00")
    invoice = Invoice(
        client_id=client_id,
        currency="INR",
        tax_regime="intra",
        subtotal=zero,
        cgst=zero,
        sgst=zero,
        igst=zero,
        other_tax=zero,
        total=zero,
        amount_in_words="Rupees Zero Only",
    )
    session.add(invoice)
    session.commit()
    return invoice


def _tenant_template_of(session) -> tuple[int, int]:
    """A template of the tenant's own: version 1 published, version 2 a draft with one item."""
    from app.library.tenant.models import (
        TenantTemplate,
        TenantTemplateItem,
        TenantTemplateVersion,
    )

    def item():
        return TenantTemplateItem(
            position=1, name="Item of A", percentage=Decimal(100), due_rule="on_start"
        )

    template = TenantTemplate(name="Template of A", current_version=1)
    template.versions = [
        TenantTemplateVersion(number=1, published_at=date(2027, 1, 1), items=[item()]),
        TenantTemplateVersion(number=2, items=[item()]),
    ]
    session.add(template)
    session.commit()
    return template.id, template.versions[1].items[0].id


def _credit_note_of(session, invoice):
    from app.invoicing.models import CreditNote

    one, zero = Decimal("1.00"), Decimal("0.00")
    note = CreditNote(
        invoice_id=invoice.id,
        client_id=invoice.client_id,
        number="CN/26-27/00001",
        series="CN",
        fiscal_year="2026-27",
        issue_date=date(2027, 2, 1),
        reason="Credit of A",
        currency="INR",
        subtotal=one,
        cgst=zero,
        sgst=zero,
        igst=zero,
        other_tax=zero,
        total=one,
        amount_in_words="Rupees One Only",
    )
    session.add(note)
    session.commit()
    return note.id


def _payment_of(session, client_id):
    from app.payments.models import Payment

    payment = Payment(
        client_id=client_id,
        received_on=date(2027, 2, 1),
        amount=Decimal("10.00"),
        currency="INR",
        method="cash",
    )
    session.add(payment)
    session.commit()
    return payment.id


@pytest.fixture
def tenant_a_records(app, db_session, make_tenant, make_user, add_member):
    owner = make_user(full_name="Owner A")
    tenant = make_tenant(owner=owner, name="Tenant A")
    member = add_member(tenant, make_user(full_name="Member A"), role="finance")
    invitation = Invitation(
        tenant_id=tenant.id,
        email="invitee-a@example.com",
        role="viewer",
        token_hash=unique("hash").ljust(64, "0"),
        invited_by_user_id=owner.id,
        expires_at=db_session.scalar(select(text("now() + interval '1 day'"))),
    )
    db_session.add(invitation)
    db_session.commit()
    session = tenant_session(db_session, tenant)
    client = Client(
        full_name="Client of A",
        short_name="A-client",
        location="local",
        country="IN",
        currency="INR",
        payment_terms="net",
        payment_days=30,
    )
    session.add(client)
    session.flush()
    contact = Contact(client_id=client.id, full_name="Contact of A", email="a@example.com")
    site = Site(client_id=client.id, name="Site of A")
    document = Document(client_id=client.id, title="Contract of A")
    client_import = ClientImport(filename="a.csv", storage_key="tenant_x/a.csv", file_format="csv")
    opening_import = OpeningBalanceImport(
        filename="a.csv", storage_key="tenant_x/a.csv", file_format="csv", status="done"
    )
    session.add_all([contact, site, document, client_import, opening_import])
    session.flush()
    project = Project(
        client_id=client.id,
        name="Project of A",
        contract_value=Decimal("1000"),
        currency="INR",
        start_date=date(2027, 1, 4),
    )
    session.add(project)
    session.flush()
    milestone = Milestone(
        project_id=project.id,
        position=1,
        name="Milestone of A",
        amount=Decimal("1000"),
        due_rule="date",
        due_date=date(2027, 2, 1),
    )
    session.add(milestone)
    key = f"{tenant.schema}/documents/{document.id}/1-x.pdf"
    session.add(
        DocumentVersion(
            document_id=document.id,
            version=1,
            storage_key=key,
            filename="a.pdf",
            content_type="application/pdf",
            size_bytes=1,
            sha256="0" * 64,
        )
    )
    session.commit()
    records = {
        "tenant": tenant,
        "membership_id": member.id,
        "invitation_id": invitation.id,
        "tenant_slug": tenant.slug,
        "slug": tenant.slug,
        "client_id": client.id,
        "contact_id": contact.id,
        "site_id": site.id,
        "document_id": document.id,
        "version": 1,
        "import_id": client_import.id,
        "opening_import_id": opening_import.id,
        "project_id": project.id,
        "milestone_id": milestone.id,
        "invoice_id": (invoice := _draft_invoice_of(session, client.id)).id,
        "credit_note_id": _credit_note_of(session, invoice),
        "payment_id": _payment_of(session, client.id),
        "allocation_id": 1,
    }
    records["tenant_template_id"], records["item_id"] = _tenant_template_of(session)
    records.update(_messaging_records_of(session, tenant, owner, client.id, contact.id))
    records.update(_collections_records_of(session, owner, client.id, records["invoice_id"]))
    records["pay_link_id"] = _pay_link_of(session, client.id)
    records["difference_id"] = _reconciliation_difference_of(session)
    records["gateway_event_id"] = _parked_event_of(session)
    records.update(_banking_records_of(session))
    records.update(_webhook_records_of(session, app.config["SECRETS_KEYS"]))
    records["report_schedule_id"] = _report_schedule_of(session, owner)
    records["rule_id"] = _rule_of(session, owner)
    records["custom_field_id"] = _custom_field_of(session)
    session.close()
    from app.api import services as api_services

    key, _ = api_services.create_key(db_session, tenant.id, "Key of A", ["clients:read"], owner.id)
    db_session.commit()
    records["api_key_id"] = key.id
    return records


def _reconciliation_difference_of(session) -> int:
    """An open difference A's gateway reconciliation found."""
    from app.gateways.models import ReconciliationItem, ReconciliationRun

    now = datetime.now(UTC)
    run = ReconciliationRun(provider="stripe", window_start=now, window_end=now, status="done")
    session.add(run)
    session.flush()
    item = ReconciliationItem(
        run_id=run.id,
        provider="stripe",
        kind="not_at_gateway",
        reference="pi_of_a",
        detail="Difference of A",
    )
    session.add(item)
    session.commit()
    return item.id


def _parked_event_of(session) -> int:
    """A gateway event of A that was parked (it named a pay request A does not know)."""
    from app.gateways.models import GatewayEvent

    event = GatewayEvent(
        provider="razorpay",
        event_id="evt_parked_of_a",
        event_type="payment_link.paid",
        body="{}",
        status="parked",
        reason="Parked event of A",
    )
    session.add(event)
    session.commit()
    return event.id


def _pay_link_of(session, client_id) -> int:
    """A's "everything the client owes" link."""
    from app.paylinks.models import PayLink

    link = PayLink(
        kind="client",
        client_id=client_id,
        nonce="nonce-of-a",
        expires_at=datetime.now(UTC) + timedelta(days=60),
    )
    session.add(link)
    session.commit()
    return link.id


def _webhook_records_of(session, secrets_keys) -> dict:
    """A webhook endpoint of A (its secret, its URL) and a delivery that failed for good."""
    from app.core.crypto import encrypt_secrets
    from app.webhooks.models import WebhookDelivery, WebhookEndpoint

    endpoint = WebhookEndpoint(
        url="https://hooks.a.example/duebook",
        secrets_ciphertext=encrypt_secrets(
            {"current": "whsec_c2VjcmV0LW9mLWEtc2VjcmV0LW9mLWE="}, secrets_keys
        ),
    )
    session.add(endpoint)
    session.flush()
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        event_id=1,
        event_type="client.created",
        subject="client:1",
        body="{}",
        status="failed",
        attempts=8,
    )
    session.add(delivery)
    session.commit()
    return {"webhook_endpoint_id": endpoint.id, "webhook_delivery_id": delivery.id}


def _report_schedule_of(session, owner) -> int:
    from datetime import time

    from app.reports.models import ReportSchedule

    schedule = ReportSchedule(
        report="aging",
        format="xlsx",
        frequency="daily",
        send_at=time(8),
        member_ids=[owner.id],
        created_by=owner.id,
    )
    session.add(schedule)
    session.commit()
    return schedule.id


def _rule_of(session, owner) -> int:
    """A rule of A: tag its VIP clients every day."""
    from app.rules import services as rules_services

    rule = rules_services.create_rule(
        session,
        {
            "name": "Rule of A",
            "entity": "clients",
            "trigger": "schedule",
            "conditions": {"field": "tags", "op": "has_tag", "value": "vip"},
            "actions": [{"type": "add_tag", "tag": "seen-by-a"}],
        },
        owner.id,
    )
    session.commit()
    return rule.id


def _custom_field_of(session) -> int:
    from app.custom_fields.models import CustomField

    field = CustomField(entity="clients", key="po_of_a", label="PO of A", field_type="text")
    session.add(field)
    session.commit()
    return field.id


def _banking_records_of(session) -> dict:
    """A bank account of A with an SFTP source whose host key waits for confirmation, a
    statement import and a credit line waiting for review."""
    from app.banking.models import BankAccount, SftpSource, StatementImport, StatementLine

    account = BankAccount(name="Bank of A", account_number="A-000111", currency="INR")
    session.add(account)
    session.flush()
    statement = StatementImport(bank_account_id=account.id, filename="a.csv", file_format="csv")
    session.add(statement)
    session.flush()
    line = StatementLine(
        bank_account_id=account.id,
        import_id=statement.id,
        source_line=2,
        booked_on=date(2027, 2, 1),
        amount=Decimal("10.00"),
        direction="credit",
        currency="INR",
        narration="Line of A",
        fingerprint="a" * 64,
        status="unmatched",
    )
    session.add(line)
    session.add(
        SftpSource(
            bank_account_id=account.id,
            host="h2h.bank-of-a.example",
            username="a",
            folder="/outbox",
            file_pattern="*.sta",
            presented_key_type="ssh-ed25519",
            presented_key_fingerprint="SHA256:key-of-a",
        )
    )
    session.commit()
    return {
        "bank_account_id": account.id,
        "statement_import_id": statement.id,
        "statement_line_id": line.id,
    }


def _messaging_records_of(session, tenant, owner, client_id, contact_id) -> dict:
    """A message, a connection, a message template, a campaign and a notification of A."""
    from app.campaigns.models import Campaign
    from app.integrations.models import IntegrationConnection
    from app.message_templates.models import MessageTemplate
    from app.notifications.models import Notification
    from app.outbox.services import queue_message

    connection = IntegrationConnection(provider="whatsapp_cloud", settings={"phone_number_id": "1"})
    template = MessageTemplate(
        name="Template of A",
        channel="email",
        purpose="campaign",
        subject="Hello",
        body="Hello {{ contact.name }}",
    )
    session.add_all([connection, template])
    session.flush()
    campaign = Campaign(name="Campaign of A", channel="email", template_id=template.id)
    notification = Notification(user_id=owner.id, kind="info", title="Note of A")
    session.add_all([campaign, notification])
    message_id = queue_message(
        session,
        channel="email",
        to="a@example.com",
        subject="Of A",
        text_body="Body of A",
        idempotency_key=unique("a-message:"),
        tenant_id=tenant.id,
        client_id=client_id,
        contact_id=contact_id,
        not_before=datetime.now(UTC) + timedelta(days=30),
    )
    # The connection the walk uses is A's accounting sync with Xero (the integrations routes
    # take any provider's): a run and an open conflict of it.
    from app.sync.models import SyncConflict, SyncRun

    books = IntegrationConnection(
        provider="xero",
        settings={"book_id": "org-of-a", "book_name": "Books of A", "matched_at": "2027-01-01"},
    )
    session.add(books)
    session.flush()
    sync_run = SyncRun(connection_id=books.id, trigger="manual", status="done")
    conflict = SyncConflict(
        connection_id=books.id,
        entity="contact",
        local_id=client_id,
        remote_id="contact-of-a",
        label="Client of A",
        fields={"email": {"agreed": None, "duebook": "a@a.example", "books": "b@a.example"}},
    )
    session.add_all([sync_run, conflict])
    # A's Tally, its agent paired: B's pairing, revoking, uploads and import file touch only B's.
    tally = IntegrationConnection(
        provider="tally",
        settings={
            "book_id": "company-of-a",
            "book_name": "Company of A",
            "matched_at": "2027-01-01",
            "agent": {"machine": "office-of-a"},
        },
    )
    session.add(tally)
    session.commit()
    return {
        "tally_connection_id": tally.id,
        "message_id": message_id,
        "connection_id": books.id,
        "sync_run_id": sync_run.id,
        "conflict_id": conflict.id,
        "message_template_id": template.id,
        "campaign_id": campaign.id,
        "notification_id": notification.id,
    }


def _collections_records_of(session, owner, client_id, invoice_id) -> dict:
    """A notice with an invoice and an attachment, a policy and level, a run, a promise, a
    dispute, a hold, a call and a bank rate of A."""
    from app.collections.models import (
        BankRate,
        CollectionActivity,
        CollectionHold,
        CollectionLevel,
        CollectionNotice,
        CollectionNoticeInvoice,
        CollectionPolicy,
        CollectionRun,
        Dispute,
        NoticeAttachment,
        PromiseToPay,
    )

    policy = CollectionPolicy(name="Policy of A")
    policy.levels = [
        CollectionLevel(
            position=1,
            name="Level of A",
            trigger="after_due",
            trigger_days=1,
            channels=["email"],
            template_purpose="notice_1",
        )
    ]
    run = CollectionRun(run_date=date(2027, 2, 1))
    session.add_all([policy, run])
    session.flush()
    level = policy.levels[0]
    notice = CollectionNotice(
        client_id=client_id,
        policy_id=policy.id,
        level_id=level.id,
        level_number=1,
        level_name="Level of A",
        channel="email",
        currency="INR",
        run_id=run.id,
        run_date=date(2027, 2, 1),
        amount_due=Decimal("10.00"),
    )
    session.add(notice)
    session.flush()
    session.add(
        CollectionNoticeInvoice(
            notice_id=notice.id,
            invoice_id=invoice_id,
            level_number=1,
            channel="email",
            amount_due=Decimal("10.00"),
            days_overdue=3,
        )
    )
    attachment = NoticeAttachment(
        notice_id=notice.id, kind="link", title="Link of A", url="https://example.com/a"
    )
    promise = PromiseToPay(
        client_id=client_id, amount=Decimal("10.00"), currency="INR", promised_on=date(2027, 3, 1)
    )
    dispute = Dispute(client_id=client_id, invoice_id=invoice_id, reason="Dispute of A")
    hold = CollectionHold(client_id=client_id, reason="Hold of A", starts_on=date(2027, 2, 1))
    activity = CollectionActivity(
        client_id=client_id,
        notice_id=notice.id,
        kind="call",
        outcome="no_answer",
        user_id=owner.id,
        occurred_at=datetime(2027, 2, 1, tzinfo=UTC),
    )
    bank_rate = BankRate(effective_from=date(2027, 1, 1), rate=Decimal("5.25"))
    session.add_all([attachment, promise, dispute, hold, activity, bank_rate])
    session.commit()
    return {
        "notice_id": notice.id,
        "policy_id": policy.id,
        "level_id": level.id,
        "run_id": run.id,
        "attachment_id": attachment.id,
        "promise_id": promise.id,
        "dispute_id": dispute.id,
        "hold_id": hold.id,
        "activity_id": activity.id,
        "bank_rate_id": bank_rate.id,
    }


def _urls_for(app, values_for) -> list[tuple[str, str, str]]:
    adapter = app.url_map.bind("localhost")
    urls = []
    for rule in app.url_map.iter_rules():
        args = set(rule.arguments)
        unknown = args - set(RECORD_ARGS) - set(NON_RECORD_ARGS)
        assert not unknown, (
            f"route {rule.rule} has arguments {unknown} the isolation walk does "
            f"not know: add them to RECORD_ARGS or NON_RECORD_ARGS"
        )
        if not args & set(RECORD_ARGS) or rule.rule.startswith(KEY_ADDRESSED_PREFIX):
            continue
        values = values_for(args)
        if values is None:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            urls.append((method, adapter.build(rule.endpoint, values, method=method), rule.rule))
    return urls


def test_member_of_b_gets_nothing_of_a_by_any_route(
    app, client, db_session, tenant_a_records, make_tenant, make_user, login
):
    a = tenant_a_records
    b_owner = make_user(full_name="Owner B")
    tenant_b = make_tenant(owner=b_owner, name="Tenant B")
    login(client, b_owner)
    # CSRF is checked after the tenant is resolved; switched off here so that POSTs reach the
    # view and the view's own lookups are what the walk tests.
    app.config["WTF_CSRF_ENABLED"] = False
    try:
        walked = []
        # 1) tenant A's URL, A's ids
        for method, url, rule in _urls_for(
            app, lambda args: {arg: a[arg] if arg in a else NON_RECORD_ARGS[arg] for arg in args}
        ):
            response = client.open(url, method=method, data={"role": "owner", "email": "x@y.z"})
            assert response.status_code in (403, 404), (
                f"{method} {url} ({rule}) answered {response.status_code}"
            )
            walked.append(rule)

        # 2) tenant B's own URL with A's record ids
        def b_slug_with_a_ids(args):
            if not args & (set(RECORD_ARGS) - {"tenant_slug", "slug", "version"}):
                return None
            values = {arg: a[arg] if arg in a else NON_RECORD_ARGS[arg] for arg in args}
            values.update({k: tenant_b.slug for k in ("tenant_slug", "slug") if k in args})
            return values

        for method, url, rule in _urls_for(app, b_slug_with_a_ids):
            response = client.open(url, method=method, data={"role": "owner"})
            assert response.status_code in (403, 404), (
                f"{method} {url} ({rule}) answered {response.status_code}"
            )
            walked.append(rule)
    finally:
        app.config["WTF_CSRF_ENABLED"] = True

    tenant_routes = {r.rule for r in app.url_map.iter_rules() if "tenant_slug" in r.arguments}
    assert tenant_routes <= set(walked), f"not walked: {tenant_routes - set(walked)}"
    session = tenant_session(db_session, a["tenant"])
    client = session.get(Client, a["client_id"])
    assert (client.full_name, client.deleted_at, client.status) == ("Client of A", None, "active")
    assert session.get(Contact, a["contact_id"]).deleted_at is None
    assert session.get(Site, a["site_id"]).deleted_at is None
    assert session.get(Document, a["document_id"]).deleted_at is None
    assert session.get(Milestone, a["milestone_id"]).status == "planned"
    from app.banking.models import SftpSource, StatementLine

    assert session.get(StatementLine, a["statement_line_id"]).status == "unmatched"
    source = session.scalar(
        select(SftpSource).where(SftpSource.bank_account_id == a["bank_account_id"])
    )
    assert (source.host, source.host_key_fingerprint) == ("h2h.bank-of-a.example", None)
    assert session.get(Project, a["project_id"]).deleted_at is None
    from app.library.tenant.models import TenantTemplate, TenantTemplateItem

    assert session.get(TenantTemplateItem, a["item_id"]).name == "Item of A"
    assert session.get(TenantTemplate, a["tenant_template_id"]).deleted_at is None  # not archived
    session.close()
    from app.paylinks.models import PayLink

    assert session.get(PayLink, a["pay_link_id"]).revoked_at is None
    from app.gateways.models import ReconciliationItem

    assert session.get(ReconciliationItem, a["difference_id"]).state == "open"
    from app.core.crypto import decrypt_secrets
    from app.webhooks.models import WebhookDelivery, WebhookEndpoint

    endpoint = session.get(WebhookEndpoint, a["webhook_endpoint_id"])
    assert (endpoint.status, endpoint.url) == ("enabled", "https://hooks.a.example/duebook")
    assert decrypt_secrets(endpoint.secrets_ciphertext, app.config["SECRETS_KEYS"]) == {
        "current": "whsec_c2VjcmV0LW9mLWEtc2VjcmV0LW9mLWE="
    }
    assert session.get(WebhookDelivery, a["webhook_delivery_id"]).status == "failed"
    from app.gateways.models import GatewayEvent

    assert session.get(GatewayEvent, a["gateway_event_id"]).status == "parked"
    from app.integrations.models import IntegrationConnection
    from app.sync.models import SyncConflict

    assert session.get(SyncConflict, a["conflict_id"]).status == "open"
    assert session.get(IntegrationConnection, a["connection_id"]).status == "enabled"
    tally = session.get(IntegrationConnection, a["tally_connection_id"])
    assert tally.settings["agent"] == {"machine": "office-of-a"}
    assert "upload" not in tally.settings and "pairing" not in tally.settings
    member = db_session.get(Membership, a["membership_id"], populate_existing=True)
    assert (member.role, member.active) == ("finance", True)
    invitation = db_session.get(Invitation, a["invitation_id"], populate_existing=True)
    assert invitation.revoked_at is None
    from app.api.models import ApiKey

    assert db_session.get(ApiKey, a["api_key_id"], populate_existing=True).revoked_at is None
    from app.reports.models import ReportRun, ReportSchedule

    schedule = session.get(ReportSchedule, a["report_schedule_id"])
    assert schedule is not None and schedule.paused is False  # neither deleted nor paused
    assert session.scalars(select(ReportRun)).all() == []  # nobody pressed Send now
    from app.rules.models import Rule, RuleRun

    rule = session.get(Rule, a["rule_id"])
    assert (rule.enabled, rule.priority, rule.version, rule.name) == (True, 100, 1, "Rule of A")
    assert session.scalars(select(RuleRun)).all() == []
    from app.custom_fields.models import CustomField

    field = session.get(CustomField, a["custom_field_id"])
    assert (field.label, field.archived_at, field.position) == ("PO of A", None, 0)


def test_the_public_pay_routes_show_nothing_to_a_forged_or_crossed_token(
    app, client, db_session, tenant_a_records, make_tenant
):
    """The pay page's routes carry no workspace in the URL: the signed token is the key. Every
    one of them, for a forged token and for a genuinely signed one naming another workspace
    with A's link id and nonce, answers 404 and names neither workspace."""
    from types import SimpleNamespace

    from app.paylinks.models import PayLink
    from app.paylinks.services import make_token

    a = tenant_a_records
    tenant_b = make_tenant(name="Tenant B")
    session_a = tenant_session(db_session, a["tenant"])
    link = session_a.get(PayLink, a["pay_link_id"])
    with app.app_context():
        crossed = make_token(tenant_b.id, SimpleNamespace(id=link.id, nonce=link.nonce))
    link_id = link.id
    session_a.close()
    # B has a link of the same id (each schema numbers its own): only the nonce tells them apart.
    session_b = tenant_session(db_session, tenant_b)
    client_b = Client(
        full_name="Client of B",
        short_name="B-client",
        location="local",
        country="IN",
        currency="INR",
        payment_terms="net",
        payment_days=30,
    )
    session_b.add(client_b)
    session_b.flush()
    session_b.add(
        PayLink(
            id=link_id,
            kind="client",
            client_id=client_b.id,
            nonce="nonce-of-b",
            expires_at=datetime.now(UTC) + timedelta(days=60),
        )
    )
    session_b.commit()
    session_b.close()
    public = [r for r in app.url_map.iter_rules() if r.rule.startswith("/pay/")]
    assert {r.endpoint for r in public} >= {"pay_page.page", "pay_page.invoice_pdf"}
    app.config["WTF_CSRF_ENABLED"] = False
    adapter = app.url_map.bind("localhost")
    try:
        for token in ("forged-token", crossed):
            for rule in public:
                values = {
                    arg: token if arg == "token" else a.get(arg, NON_RECORD_ARGS.get(arg))
                    for arg in rule.arguments
                }
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                    url = adapter.build(rule.endpoint, values, method=method)
                    response = client.open(url, method=method, data={"currency": "INR"})
                    assert response.status_code == 404, f"{method} {url} answered {response}"
                    for name in ("Tenant A", "Tenant B", "Client of A", "Client of B"):
                        assert name not in response.text
    finally:
        app.config["WTF_CSRF_ENABLED"] = True


def test_the_public_gateway_webhook_reaches_only_the_workspace_its_token_names(
    app, client, db_session, make_tenant
):
    """/hooks/razorpay/<token> has no tenant in its URL (the walk above does not reach it):
    the token names one workspace, whose own secret must have signed the body."""
    from app.core.crypto import encrypt_secrets
    from app.gateways.models import GatewayEvent
    from app.integrations.models import IntegrationConnection, ProviderAccount
    from app.sandbox.standins.razorpay import webhook_signature

    tokens = {}
    for name, secret in (("a", "secret of A"), ("b", "secret of B")):
        tenant = make_tenant()
        session = tenant_session(db_session, tenant)
        connection = IntegrationConnection(
            provider="razorpay",
            settings={"key_id": "rzp_test_ABCDEF123456", "webhook_token": name * 32},
            secrets_ciphertext=encrypt_secrets(
                {"key_secret": "k", "webhook_secret": secret}, app.config["SECRETS_KEYS"]
            ),
            verification="verified",
        )
        session.add(connection)
        session.flush()
        session.add(
            ProviderAccount(
                provider="razorpay",
                account_key=name * 32,
                tenant_id=tenant.id,
                connection_id=connection.id,
            )
        )
        session.commit()
        tokens[name] = (tenant, name * 32)
    body = b'{"entity":"event","event":"payment.failed","payload":{}}'
    signed_by_a = {"X-Razorpay-Signature": webhook_signature(body, "secret of A")}
    assert (
        client.post(f"/hooks/razorpay/{tokens['b'][1]}", data=body, headers=signed_by_a).status_code
        == 403
    )
    assert (
        client.post(f"/hooks/razorpay/{tokens['a'][1]}", data=body, headers=signed_by_a).status_code
        == 200
    )
    stored = {
        name: tenant_session(db_session, tenant).scalar(
            select(func.count()).select_from(GatewayEvent)
        )
        for name, (tenant, _) in tokens.items()
    }
    assert stored == {"a": 1, "b": 0}


def test_unknown_tenant_and_non_member_look_the_same(client, make_tenant, make_user, login):
    tenant = make_tenant()
    outsider = make_user()
    login(client, outsider)
    not_member = client.get(f"/t/{tenant.slug}/")
    no_such_tenant = client.get("/t/no-such-tenant-here/")
    assert not_member.status_code == no_such_tenant.status_code == 404
    assert not_member.text == no_such_tenant.text


def test_anonymous_visitor_is_sent_to_log_in_without_a_lookup(client, db_session):
    response = client.get("/t/whatever-slug/team/")
    assert response.status_code == 302
    assert "/login?next=/t/whatever-slug/team/" in response.headers["Location"]


def test_removed_member_loses_access_at_once(
    client, db_session, make_tenant, make_user, add_member, login
):
    tenant = make_tenant()
    user = make_user()
    membership = add_member(tenant, user, role="finance")
    login(client, user)
    assert client.get(f"/t/{tenant.slug}/").status_code == 200
    membership.active = False
    db_session.commit()
    assert client.get(f"/t/{tenant.slug}/").status_code == 404


def test_suspended_tenant_is_not_served(client, db_session, make_tenant, make_user, login):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    tenant.status = "suspended"
    db_session.commit()
    assert client.get(f"/t/{tenant.slug}/").status_code == 404


def test_url_for_fills_in_the_current_tenant(app, client, make_tenant, make_user, login):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/")
    assert f'href="/t/{tenant.slug}/team/"' in page.text
    with app.test_request_context(), pytest.raises(Exception, match="tenant_slug"):
        url_for("team.index")  # outside a tenant request the slug must be given


def test_tenant_table_without_a_bound_tenant_raises(db_session):
    with pytest.raises(TenantNotBound):
        db_session.scalars(select(AuditEntry)).all()


def test_tenant_table_in_plain_sql_without_a_tenant_raises(db_session):
    with pytest.raises(TenantNotBound):
        db_session.execute(text("SELECT count(*) FROM tenant.audit_log"))


def test_bound_session_reads_only_its_own_schema(app, db_session, make_tenant):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    connection = db_session.connection()
    for tenant, entity in ((tenant_a, "only-in-a"), (tenant_b, "only-in-b")):
        connection.exec_driver_sql(
            f"INSERT INTO {tenant.schema}.audit_log (action, entity, entity_id, changes) "
            f"VALUES ('insert', '{entity}', '1', '{{}}')"
        )
    session = TenantSession(db, bind=connection, join_transaction_mode="rollback_only")
    bind_tenant(session, tenant_a.id)
    entities = set(session.scalars(select(AuditEntry.entity)))
    assert "only-in-a" in entities and "only-in-b" not in entities
    with pytest.raises(RuntimeError, match="already bound"):
        bind_tenant(session, tenant_b.id)
    session.close()


def test_connections_are_replaced_after_touching_many_tenant_schemas(app_config):
    # Committed schemas of their own (ids far above real tenants'), on an engine of their own.
    engine = create_engine(app_config["SQLALCHEMY_DATABASE_URI"], pool_size=1, max_overflow=0)
    tenant_ids = [990_001, 990_002, 990_003]
    with engine.begin() as conn:
        for tenant_id in tenant_ids:
            conn.exec_driver_sql(f"CREATE SCHEMA tenant_{tenant_id}")
    recycle_connections_after(engine, 2)
    backend_pids = []
    try:
        for tenant_id in tenant_ids:
            session = TenantSession(db, bind=engine)
            bind_tenant(session, tenant_id)
            backend_pids.append(session.execute(text("SELECT pg_backend_pid()")).scalar())
            session.close()
    finally:
        with engine.begin() as conn:
            for tenant_id in tenant_ids:
                conn.exec_driver_sql(f"DROP SCHEMA tenant_{tenant_id} CASCADE")
        engine.dispose()
    assert backend_pids[0] == backend_pids[1]  # reused while under the limit
    assert backend_pids[2] != backend_pids[1]  # replaced once it had touched two schemas


def test_raw_sql_names_a_schema_only_when_it_is_a_plain_name():
    assert qualified(schema_for_tenant_id(7), "clients") == '"tenant_7".clients'
    for name in ('tenant_7"; DROP SCHEMA public; --', "Tenant_7", "", "tenant 7"):
        with pytest.raises(ValueError, match="not a schema name"):
            quoted_schema(name)


def test_the_public_calendar_routes_show_nothing_to_a_forged_token_or_another_member(
    app, client, db_session, make_tenant, make_user, add_member, login
):
    """/calendar/<token>.ics is public (a calendar app has no log-in): only a live token of an
    active member opens it, and it shows that member's workspace. The OAuth callback hands back
    only to the workspace whose consent this browser started."""
    from app.calendars import feeds
    from tenants.models import Membership

    public = {r.rule for r in app.url_map.iter_rules() if r.rule.startswith("/calendar/")}
    assert public == {"/calendar/<token>.ics", "/calendar/oauth/<provider>/callback"}
    owner_a, owner_b = make_user(full_name="Owner A"), make_user(full_name="Owner B")
    tenant_a = make_tenant(owner=owner_a, name="Tenant A")
    make_tenant(owner=owner_b, name="Tenant B")
    member = make_user(full_name="Member A")
    add_member(tenant_a, member, role="finance")
    with app.app_context():
        token = feeds.new_address(db_session, tenant_a.id, member.id)
    db_session.commit()
    assert client.get(f"/calendar/{token}.ics").status_code == 200
    for forged in (token[:-1], token + "x", "forged-token"):
        assert client.get(f"/calendar/{forged}.ics").status_code == 404
    login(client, owner_b)
    assert client.get("/calendar/oauth/google_calendar/callback?code=x&state=y").status_code == 404
    membership = db_session.scalar(select(Membership).where(Membership.user_id == member.id))
    membership.active = False
    db_session.commit()
    assert client.get(f"/calendar/{token}.ics").status_code == 404
