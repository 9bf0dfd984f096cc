"""What collections does when invoices or messages change: it listens to the signals of
invoicing and payments (`app.core.signals`) and reacts inside their transaction, so a notice never
outlives the debt it chased and a promise is checked against the money the moment it arrives;
to the reports on messages, so a notice follows the message that carries it; to clients:
archiving one closes its notices, and its open notices and unpaid interest claims keep it from
being deleted; and to gateways, so interest paid on the pay page settles the claim it paid and
a disputed payment opens disputes. Also fills the client page's Collections tab, tells message
templates the late-payment interest their notices show, writes a notice's message again when
it goes out (`app.outbox.composing`), names its records in the audit log, and adds the dispute
panel to the invoice page, and lets the workflow settings page choose the default policy.
Connected by `create_app`."""

from __future__ import annotations

from flask import Flask

from app.audit.wording import Wording, register_wording
from app.clients.views import register_tab
from app.collections.cases import disputes, interest_claims, promises
from app.collections.cases.interest_claims import interest_owed
from app.collections.cases.views import collections_context, invoice_dispute_panel
from app.collections.engine import services as engine
from app.collections.notices import services as notices
from app.core import signals
from app.invoicing.views import register_panel
from app.message_templates import facts
from app.outbox.composing import register_composer
from app.settings.workflow import NoticeLadders, register_notice_ladders


def init_app(app: Flask) -> None:
    signals.invoice_paid.connect(close_notices_of_paid_invoice)
    signals.invoice_balance_changed.connect(check_promises_after_payment)
    signals.invoice_voided.connect(close_notices_of_voided_invoice)
    signals.invoice_written_off.connect(close_notices_of_written_off_invoice)
    signals.messages_reported.connect(follow_notice_messages)
    signals.client_archived.connect(close_notices_of_archived_client)
    signals.client_deletion_asked.connect(notices_holding_client)
    signals.client_deletion_asked.connect(interest_holding_client)
    signals.gateway_payment_disputed.connect(open_disputes_of_disputed_payment)
    signals.gateway_interest_paid.connect(settle_interest_paid_online)
    register_tab("collections", collections_context)
    register_panel(invoice_dispute_panel)
    facts.register_interest(interest_owed)
    register_composer(notices.NOTICE_COMPOSER, notices.compose_notice_message)
    register_notice_ladders(
        NoticeLadders(
            choices=engine.policy_choices,
            default_id=default_policy_id,
            make_default=make_policy_default,
        )
    )
    # The audit log's words where the table's name does not say it (app.audit.wording).
    register_wording("promises_to_pay", Wording(noun="promise to pay"))
    register_wording(
        "collection_activities", Wording(noun="collection activity", name_field="kind")
    )


def default_policy_id(session) -> int | None:
    policy = engine.default_policy(session)
    return None if policy is None else policy.id


def make_policy_default(session, policy_id: int) -> None:
    policy = engine.get_policy(session, policy_id)
    if policy is not None:  # the workflow page offered only live policies
        engine.make_default(session, policy)


def close_notices_of_paid_invoice(
    session, *, invoice_id: int, user_id: int | None, **facts
) -> None:
    notices.close_for_invoices(session, [invoice_id], "paid", user_id)


def check_promises_after_payment(session, *, client_id: int, user_id: int | None, **facts) -> None:
    promises.check_after_payment(session, client_id, user_id)


def close_notices_of_voided_invoice(
    session, *, invoice_id: int, user_id: int | None, **facts
) -> None:
    notices.close_for_invoices(session, [invoice_id], "void", user_id)


def close_notices_of_written_off_invoice(
    session, *, invoice_id: int, user_id: int | None, **facts
) -> None:
    notices.close_for_invoices(session, [invoice_id], "written_off", user_id)


def follow_notice_messages(session, *, tenant_id: int, message_ids: list[int], **facts) -> None:
    notices.follow_messages(session, tenant_id, message_ids)


def close_notices_of_archived_client(session, *, client_id: int, **facts) -> None:
    notices.close_for_archived_client(session, client_id)


def open_disputes_of_disputed_payment(
    session, *, invoice_ids: list[int], reason: str, **facts
) -> None:
    disputes.open_for_gateway_dispute(session, invoice_ids, reason)


def settle_interest_paid_online(
    session, *, invoice_id: int, payment_id: int, amount, **facts
) -> None:
    interest_claims.settle_paid_online(
        session, invoice_id=invoice_id, payment_id=payment_id, amount=amount
    )


def notices_holding_client(session, *, client_id: int, **facts) -> list[signals.DeletionBlocker]:
    return notices.deletion_blockers(session, client_id)


def interest_holding_client(session, *, client_id: int, **facts) -> list[signals.DeletionBlocker]:
    return interest_claims.deletion_blockers(session, client_id)
