"""Every model, imported once so that both metadata collections are complete."""

from app.aging.models import AgingEntry, AgingSales, AgingSnapshot, AgingState, AgingSummary
from app.api.models import ApiIdempotentRequest, ApiKey
from app.audit.models import AuditEntry
from app.auth.models import PendingSignup
from app.banking.models import BankAccount, BankingSettings, StatementImport, StatementLine
from app.calendars.models import (
    CalendarConnection,
    CalendarEntryVersion,
    CalendarFeed,
    CalendarPushedEvent,
)
from app.campaigns.models import Campaign
from app.clients.models import (
    Client,
    ClientImport,
    ClientImportError,
    Contact,
    Document,
    DocumentVersion,
    Industry,
    Site,
)
from app.clients.timeline import ClientTimelineEntry
from app.collections.models import (
    BankRate,
    CollectionActivity,
    CollectionHold,
    CollectionLevel,
    CollectionNotice,
    CollectionNoticeInvoice,
    CollectionPolicy,
    CollectionRun,
    CollectionSettings,
    Dispute,
    InterestSettlement,
    NoticeAttachment,
    PromiseToPay,
)
from app.core.events import DomainEvent, EventConsumer
from app.core.form_once import FormSubmission
from app.custom_fields.models import CustomField
from app.gateways.models import (
    Checkout,
    CheckoutInvoice,
    GatewayEvent,
    GatewayPayment,
    GatewayRefund,
    ParkedGatewayWebhook,
)
from app.integrations.models import IntegrationConnection, ProviderAccount
from app.invoicing.models import Invoice, InvoiceLine, InvoiceNumberSequence
from app.library.tenant.models import TenantTemplate, TenantTemplateItem, TenantTemplateVersion
from app.message_templates.models import MessageTemplate
from app.messaging.models import WebhookEvent
from app.notifications.models import Notification, NotificationPreference
from app.outbox.models import OutboxMessage
from app.paylinks.models import PayLink, PayPageSettings
from app.payments.models import Payment, PaymentAllocation
from app.payments.opening.models import OpeningBalanceImport, OpeningBalanceImportError
from app.projects.models import Milestone, MilestoneTransition, Project
from app.rules.models import Rule, RuleCausedEvent, RuleRun, RuleVersion
from app.settings.models import WorkspaceSettings
from app.sync.models import (
    SyncConflict,
    SyncLink,
    SyncMatch,
    SyncProblem,
    SyncReport,
    SyncRun,
    SyncState,
)
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tenants.base import SharedModel, TenantModel
from tenants.models import Invitation, LoginSession, Membership, Tenant, User

shared_metadata = SharedModel.metadata
tenant_metadata = TenantModel.metadata

__all__ = [
    "Rule",
    "RuleCausedEvent",
    "RuleRun",
    "RuleVersion",
    "CalendarConnection",
    "CalendarEntryVersion",
    "CalendarFeed",
    "CalendarPushedEvent",
    "ApiIdempotentRequest",
    "ApiKey",
    "BankAccount",
    "BankingSettings",
    "StatementImport",
    "StatementLine",
    "AgingEntry",
    "AgingSales",
    "AgingSnapshot",
    "AgingState",
    "AgingSummary",
    "BankRate",
    "ClientTimelineEntry",
    "CollectionActivity",
    "CollectionHold",
    "CollectionLevel",
    "CollectionNotice",
    "CollectionNoticeInvoice",
    "CollectionPolicy",
    "CollectionRun",
    "CollectionSettings",
    "CustomField",
    "Dispute",
    "DomainEvent",
    "EventConsumer",
    "FormSubmission",
    "InterestSettlement",
    "NoticeAttachment",
    "PromiseToPay",
    "Milestone",
    "MilestoneTransition",
    "Project",
    "Client",
    "ClientImport",
    "ClientImportError",
    "Contact",
    "Document",
    "DocumentVersion",
    "Industry",
    "Site",
    "AuditEntry",
    "Campaign",
    "Checkout",
    "CheckoutInvoice",
    "GatewayEvent",
    "GatewayPayment",
    "GatewayRefund",
    "ParkedGatewayWebhook",
    "IntegrationConnection",
    "MessageTemplate",
    "Notification",
    "NotificationPreference",
    "ProviderAccount",
    "WebhookEvent",
    "Invoice",
    "InvoiceLine",
    "InvoiceNumberSequence",
    "Invitation",
    "LoginSession",
    "Membership",
    "OutboxMessage",
    "PendingSignup",
    "OpeningBalanceImport",
    "OpeningBalanceImportError",
    "PayLink",
    "PayPageSettings",
    "Payment",
    "PaymentAllocation",
    "SyncConflict",
    "SyncLink",
    "SyncMatch",
    "SyncProblem",
    "SyncReport",
    "SyncRun",
    "SyncState",
    "Tenant",
    "TenantTemplate",
    "TenantTemplateItem",
    "TenantTemplateVersion",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WorkspaceSettings",
    "shared_metadata",
    "tenant_metadata",
]
