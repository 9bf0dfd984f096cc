"""Notices after the daily run made them: approval, sending, what the channel says, the
client's response, escalation, and closing when the money came in.

    draft -> approved -> queued -> sent -> delivered -> read -> responded -> escalated
                           |         |
                           +---------+--> failed --(resend)--> queued

    and from any open status: closed (paid, written off, void) or cancelled (by a person)

- A person approves a draft (`approve`, `approve_many`). A notice of the legal rung (a demand
  letter, the MSEFC pack) commits the business to legal action, so approving, sending or
  resending one needs LEGAL_APPROVAL (owners, admins and finance), not only notices.manage;
  the views pass the person's check of it and the service refuses without it.
- Sending (`send_notices`, run by a worker) writes one outbox message per e-mail, WhatsApp or
  SMS notice, with an idempotency key made from the notice id: a retried job finds the message
  it wrote and never writes a second. A printed letter is rendered and waits ("queued") until a
  person marks it posted; a call or a visit is a collector's task and stays approved until the
  collector logs it (`mark_sent`).
- What the channel reports (sent, delivered, read) moves the notice forward only, never back
  (`follow_messages`, called by the webhook worker, the periodic sweep and when a notice is
  looked at). "failed" sits beside that line, not on it: a message that failed, bounced, was
  given up on (dead) or never sent (suppressed) takes a queued or sent notice to "failed" (a
  delivered or read message arrived: nothing takes that back, the outbox's own rule in
  app/messaging/webhooks.py); a later report that the message arrived after all (delivered,
  read) takes a failed notice forward to it, and a message retried from the messages page
  (pending again) takes it back to "queued". A failed notice still
  chases the money (it is open); a person resends it (`resend`): a new outbox message, to the
  same or another contact, the failed one kept in the audit log.
- A payment, void or write-off that leaves none of a notice's invoices owing closes the notice
  (`close_for_invoices`, called by the payment services in their transaction); a notice with
  an invoice still owing stays open. With the tenant's "thank you" on, the client gets one
  e-mail per payment, however many notices it closed.
- An archived client is chased no more: archiving closes its open notices
  (`close_for_archived_client`; closed, not cancelled, so interest they claimed stays owed), and
  no notice of an archived or deleted client is approved or sent (`check_may_send`; the send job
  cancels one approved before its client went).

Every change goes through the ORM, so each lands in the audit log and on the client's
timeline."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache

from sqlalchemy import and_, case, func, literal, literal_column, select, union_all
from sqlalchemy.orm import Session, selectinload

from app.clients.documents import check_file
from app.clients.models import Client, Contact
from app.collections.models import (
    CLIENT_ARCHIVED,
    MESSAGE_CHANNELS,
    NOTICE_CLOSE_REASONS,
    OPEN_NOTICE_STATUSES,
    TASK_CHANNELS,
    CollectionLevel,
    CollectionNotice,
    CollectionNoticeInvoice,
    CollectionSettings,
    NoticeAttachment,
)
from app.collections.notices import letters
from app.collections.notices.statement import (
    Line,
    notice_lines,
    payment_link,
    statement_text,
    totals,
)
from app.core.clock import tenant_today
from app.core.distinct_values import distinct_values
from app.core.events import emit
from app.core.handover import hand_over
from app.core.language import money_country
from app.core.money import format_money
from app.core.request_input import row_id
from app.core.signals import DeletionBlocker
from app.core.storage import save_in_transaction, tenant_key
from app.core.terminology import term, worded
from app.core.transaction_hooks import on_commit, on_rollback
from app.custom_fields.services import template_variables
from app.invoicing.models import Invoice, InvoiceLine
from app.message_templates.facts import pay_link
from app.message_templates.rendering import (
    TemplateProblem,
    email_html,
    message_context,
    notice_vars,
    render_for_channel,
)
from app.message_templates.services import language_of, template_for
from app.outbox.composing import Composed
from app.outbox.models import OutboxMessage
from app.outbox.services import queue_message, recipient_time_zone
from app.payments.models import Payment, PaymentAllocation
from app.projects.models import MILESTONE_STATUSES, Milestone, Project
from app.settings.services import workspace_settings
from tenants.binding import bound_tenant_id
from tenants.models import Tenant, User

log = logging.getLogger(__name__)

ZERO = Decimal("0.00")
# The channel moves a notice along this order, never back.
CHANNEL_ORDER = ("approved", "queued", "sent", "delivered", "read")
SETTLED_INVOICE_STATUSES = ("paid", "void", "written_off")
FAILED_MESSAGE_STATUSES = ("failed", "bounced", "dead", "suppressed")
# A sent notice nobody answered this long is due for the next rung.
CHASE_DAYS = 7
STATUS_LABELS = {
    "draft": "Draft",
    "approved": "Approved",
    "queued": "Queued",
    "sent": "Sent",
    "delivered": "Delivered",
    "read": "Read",
    "responded": "Responded",
    "escalated": "Escalated",
    "closed": "Closed",
    "cancelled": "Cancelled",
    "failed": "Failed",
}
NEXT_STEPS = {
    "approve": "Approve",
    "send": "Send",
    "log_task": "Log the call or visit",
    "mark_posted": "Mark posted",
    "await_delivery": "Await delivery",
    "resend": "Resend",
    "chase_response": "Chase a response",
    "escalate": "Escalate",
    "close": "Close",
    "none": "Nothing (closed)",
}
CHANNEL_LABELS = {
    "email": "E-mail",
    "whatsapp": "WhatsApp",
    "sms": "SMS",
    "letter": "Letter",
    "call": "Call",
    "visit": "Visit",
}
CLOSE_LABELS = {
    "paid": "Paid",
    "cancelled": "Cancelled",
    "written_off": "Written off",
    "void": "Void",
    CLIENT_ARCHIVED: "Client archived",
}
NOTE_LENGTH = 4000
# The permission (tenants/roles.py) that lets a legal-stage notice go out: approving it,
# sending it now, resending it. Earlier stages need only notices.manage.
LEGAL_APPROVAL = "notices.approve_legal"
LEGAL_APPROVAL_REFUSAL = "Only owners, admins and finance can approve or send a legal {notice}."


class NoticeError(ValueError):
    """Why this cannot be done to the notice, by form field ("" for the whole notice)."""

    def __init__(self, errors: dict[str, str] | str):
        errors = {"": errors} if isinstance(errors, str) else errors
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class LegalApprovalRequired(NoticeError):
    """The notice is at the legal stage and the person lacks LEGAL_APPROVAL."""

    def __init__(self) -> None:
        super().__init__(worded(LEGAL_APPROVAL_REFUSAL))


# Reading ------------------------------------------------------------------------------------


def get_notice(session: Session, notice_id: int) -> CollectionNotice | None:
    return session.scalar(
        select(CollectionNotice)
        .where(CollectionNotice.id == notice_id)
        .options(selectinload(CollectionNotice.items), selectinload(CollectionNotice.attachments))
    )


def next_step_expression(now: datetime):
    """What happens next to a notice, as SQL (the list filters on it) — `next_step` says the
    same in Python."""
    n = CollectionNotice
    return case(
        (n.status == "draft", literal("approve")),
        (and_(n.status == "approved", n.channel.in_(TASK_CHANNELS)), literal("log_task")),
        (n.status == "approved", literal("send")),
        (and_(n.status == "queued", n.channel == "letter"), literal("mark_posted")),
        (n.status == "queued", literal("await_delivery")),
        (n.status == "failed", literal("resend")),
        (
            and_(
                n.status.in_(("sent", "delivered", "read")),
                n.sent_at < now - timedelta(days=CHASE_DAYS),
            ),
            literal("escalate"),
        ),
        (n.status.in_(("sent", "delivered", "read")), literal("chase_response")),
        (n.status.in_(("responded", "escalated")), literal("close")),
        else_=literal("none"),
    )


def next_step(notice: CollectionNotice, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    status, channel = notice.status, notice.channel
    if status == "draft":
        return "approve"
    if status == "approved":
        return "log_task" if channel in TASK_CHANNELS else "send"
    if status == "queued":
        return "mark_posted" if channel == "letter" else "await_delivery"
    if status == "failed":
        return "resend"
    if status in ("sent", "delivered", "read"):
        late = notice.sent_at is not None and notice.sent_at < now - timedelta(days=CHASE_DAYS)
        return "escalate" if late else "chase_response"
    if status in ("responded", "escalated"):
        return "close"
    return "none"


def outbox_message(session: Session, tenant_id: int, message_id: int | None):
    """The notice's message in the shared outbox: only ever this tenant's row."""
    if message_id is None:
        return None
    return session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.id == message_id, OutboxMessage.of_tenant(tenant_id)
        )
    )


# The name under which notice messages are composed again when they go out
# (app.outbox.composing).
NOTICE_COMPOSER = "notice"


# The lifecycle ------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _today(session: Session) -> date:

    return tenant_today(session)


def _refuse_closed(notice: CollectionNotice, action: str) -> None:
    if notice.status in ("closed", "cancelled"):
        raise NoticeError(f"This {term('notice')} is {notice.status}; it cannot be {action}.")


def is_legal_stage(session: Session, notice: CollectionNotice) -> bool:
    """The notice is of the policy's legal rung: its level is marked legal, or it uses the
    legal notice's templates (a level can say either)."""
    level = session.get(CollectionLevel, notice.level_id)
    return level is not None and (level.is_legal or level.template_purpose == "notice_legal")


def client_gone(session: Session, notice: CollectionNotice) -> str | None:
    """Why the notice's client is no longer chased ("client archived", "client deleted"), or
    None while it is."""
    client = session.get(Client, notice.client_id)
    if client.deleted_at is not None:
        return "client deleted"
    if client.archived_at is not None:
        return "client archived"
    return None


def check_may_send(session: Session, notice: CollectionNotice, may_approve_legal: bool) -> None:
    """Raise NoticeError when the notice's client was archived or deleted (nobody chases it
    any more), LegalApprovalRequired when a legal-stage notice would go out on the word of
    someone without LEGAL_APPROVAL (`may_approve_legal`: the caller's check of it)."""
    gone = client_gone(session, notice)
    if gone == "client archived":
        raise NoticeError(
            worded("The {client} is archived, so this {notice} can no longer go out.")
        )
    if gone == "client deleted":
        raise NoticeError(
            worded("The {client} was deleted, so this {notice} can no longer go out.")
        )
    if not may_approve_legal and is_legal_stage(session, notice):
        raise LegalApprovalRequired()


def approve(
    session: Session,
    notice: CollectionNotice,
    user_id: int | None,
    *,
    may_approve_legal: bool = False,
) -> None:
    """A person agrees the draft may go out (who and when are kept). A legal-stage notice
    needs someone with LEGAL_APPROVAL (`may_approve_legal`)."""
    _refuse_closed(notice, "approved")
    if notice.status != "draft":
        raise NoticeError(
            f"Only a draft can be approved; this {term('notice')} is {notice.status}."
        )
    check_may_send(session, notice, may_approve_legal)
    notice.status = "approved"
    notice.approved_by, notice.approved_at = user_id, _now()
    session.flush()


def approve_many(
    session: Session,
    tenant_id: int,
    notice_ids: Sequence[int],
    user_id: int | None,
    *,
    may_approve_legal: bool = False,
) -> tuple[list[int], dict[int, str]]:
    """Approve the drafts among these notices (legal-stage ones only with
    `may_approve_legal`) and ask a worker to send them once this transaction commits.
    Returns (approved ids, {id: why not} for the others)."""
    approved, refused = [], {}
    notices = session.scalars(
        select(CollectionNotice)
        .where(CollectionNotice.id.in_(list(notice_ids)))
        .order_by(CollectionNotice.id)
        .with_for_update()
    ).all()
    for notice in notices:
        try:
            approve(session, notice, user_id, may_approve_legal=may_approve_legal)
        except NoticeError as error:
            refused[notice.id] = str(error)
        else:
            approved.append(notice.id)
    request_sending(session, tenant_id, approved)
    return approved, refused


SEND_BATCH = 100  # notices per send job


def request_sending(session: Session, tenant_id: int, notice_ids: Sequence[int]) -> None:
    """Hand the notices to the `send_notices` job after this transaction commits (a rollback
    forgets it). The durable intent is the notice itself: approved, not yet queued."""
    ids = list(notice_ids)
    for start in range(0, len(ids), SEND_BATCH):
        hand_over(session, "send_notices", ids[start : start + SEND_BATCH], tenant_id=tenant_id)


def mark_sent(session: Session, notice: CollectionNotice, at: datetime | None = None) -> None:
    """The notice went out by hand: a letter was posted, a collector called or visited."""
    _refuse_closed(notice, "marked sent")
    if notice.channel == "letter" and notice.status != "queued":
        raise NoticeError("Only a letter that was printed (queued) can be marked posted.")
    if notice.channel in TASK_CHANNELS and notice.status not in ("approved", "queued"):
        raise NoticeError(f"This {notice.channel} was already logged.")
    if notice.channel in MESSAGE_CHANNELS:
        raise NoticeError("A message is marked sent by its channel, not by hand.")
    notice.status = "sent"
    notice.sent_at = at or _now()
    session.flush()
    announce(session, notice, "notice.sent", channel=notice.channel)


def notice_status_for(message_status: str) -> str | None:
    """What a notice says while its message is in this outbox status: the channel's step,
    "failed" when it did not arrive (or was never sent), "queued" while it is (again) on its
    way."""
    if message_status in FAILED_MESSAGE_STATUSES:
        return "failed"
    if message_status in ("pending", "sending"):
        return "queued"
    return message_status if message_status in CHANNEL_ORDER else None


# The statuses a failure report takes to "failed" (a delivered or read message did arrive).
FAILABLE = ("queued", "sent")
# The notice statuses that follow their message.
FOLLOWING = (*CHANNEL_ORDER, "failed")


def follow_messages(session: Session, tenant_id: int, message_ids: Sequence[int]) -> int:
    """Move the notices carried by these outbox messages to what the channel says (sent,
    delivered, read) never back, or to "failed" (and out of it) by the rules at the top of this
    module. Returns how many notices moved."""
    ids = list(message_ids)
    if not ids:
        return 0
    messages = {
        row.id: row
        for row in session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.status,
                OutboxMessage.sent_at,
                OutboxMessage.delivered_at,
                OutboxMessage.read_at,
            ).where(OutboxMessage.id.in_(ids), OutboxMessage.of_tenant(tenant_id))
        )
    }
    if not messages:
        return 0
    notices = session.scalars(
        select(CollectionNotice).where(
            CollectionNotice.message_id.in_(list(messages)),
            CollectionNotice.status.in_(FOLLOWING),
        )
    ).all()
    moved = 0
    for notice in notices:
        message = messages[notice.message_id]
        target = notice_status_for(message.status)
        if not _may_follow(notice.status, target):
            continue
        notice.status = target
        moved += 1
        if target in ("queued", "failed"):
            continue
        if notice.sent_at is None:
            notice.sent_at = message.sent_at or _now()
            announce(session, notice, "notice.sent", channel=notice.channel)
        if target in ("delivered", "read"):
            notice.delivered_at = notice.delivered_at or message.delivered_at or _now()
        if target == "read":
            notice.read_at = notice.read_at or message.read_at or _now()
    session.flush()
    return moved


def _may_follow(current: str, target: str | None) -> bool:
    if target is None or target == current:
        return False
    if target == "failed":
        return current in FAILABLE
    if target == "queued":  # a failed message retried from the messages page
        return current == "failed"
    if current == "failed":  # it arrived after all
        return True
    return CHANNEL_ORDER.index(target) > CHANNEL_ORDER.index(current)


# Notices whose message may still change: on its way, or failed (it may yet arrive, or be
# retried from the messages page).
WAITING = ("queued", "sent", "delivered", "failed")


def follow_notices(session: Session, tenant_id: int, notices: Sequence[CollectionNotice]) -> int:
    """`follow_messages` for these notices' messages (a page catching up with delivery)."""
    ids = [n.message_id for n in notices if n.message_id and n.status in WAITING]
    return follow_messages(session, tenant_id, ids)


def follow_open_notices(session: Session, tenant_id: int) -> int:
    """`follow_messages` for every notice still waiting on its channel (the periodic sweep)."""
    ids = session.scalars(
        select(CollectionNotice.message_id).where(
            CollectionNotice.message_id.is_not(None),
            CollectionNotice.status.in_(WAITING),
        )
    ).all()
    return follow_messages(session, tenant_id, ids)


def stranded_notices(
    session: Session, older_than: timedelta = timedelta(minutes=2), limit: int = 500
) -> list[int]:
    """Approved messages and letters that no worker sent a while after approval."""
    return list(
        session.scalars(
            select(CollectionNotice.id)
            .where(
                CollectionNotice.status == "approved",
                CollectionNotice.channel.not_in(TASK_CHANNELS),
                func.coalesce(CollectionNotice.approved_at, CollectionNotice.created_at)
                < _now() - older_than,
            )
            .order_by(CollectionNotice.id)
            .limit(limit)
        )
    )


def record_response(
    session: Session,
    notice: CollectionNotice,
    *,
    responded_on: date | None,
    note: str | None,
    today: date,
) -> None:
    """The client answered (a call back, a letter, a promise): when, and what they said."""
    _refuse_closed(notice, "answered")
    errors = {}
    if notice.status in ("draft", "approved") and notice.channel not in TASK_CHANNELS:
        errors[""] = worded("The {notice} has not gone out yet.")
    if responded_on is None:
        errors["response_date"] = "Enter the date of the response."
    elif responded_on > today:
        errors["response_date"] = "The response date cannot be in the future."
    note = (note or "").strip()
    if len(note) > NOTE_LENGTH:
        errors["response_note"] = f"Keep the note to {NOTE_LENGTH:,} characters."
    if errors:
        raise NoticeError(errors)
    notice.response_date, notice.response_note = responded_on, note or None
    if notice.status != "escalated":
        notice.status = "responded"
    session.flush()


def escalate(session: Session, notice: CollectionNotice, today: date) -> None:
    """Take the next rung now: the daily run moves the notice's invoices up at once."""
    _refuse_closed(notice, "escalated")
    if notice.status in ("draft", "approved"):
        raise NoticeError(worded("Send the {notice} before escalating it."))
    if notice.status == "escalated":
        raise NoticeError(worded("This {notice} is escalated already."))
    notice.status, notice.escalated_on = "escalated", today
    session.flush()
    announce(session, notice, "notice.escalated")


def close(
    session: Session,
    notice: CollectionNotice,
    reason: str,
    note: str | None,
    user_name: str | None,
    today: date,
) -> None:
    """Close a notice by hand: cancelled (nothing more to chase; the note says why) or one of
    the settled reasons."""
    _refuse_closed(notice, "closed")
    errors = {}
    if reason not in NOTICE_CLOSE_REASONS:
        errors["reason"] = worded("Choose why the {notice} ends.")
    note = " ".join((note or "").split())
    if reason == "cancelled" and not note:
        errors["note"] = worded("Say why the {notice} is cancelled.")
    elif len(note) > 500:
        errors["note"] = "Keep the reason to 500 characters."
    if errors:
        raise NoticeError(errors)
    _close(session, notice, reason)
    if note:
        line = (
            f"{CLOSE_LABELS[reason]} on {today:%d %b %Y}"
            + (f" by {user_name}" if user_name else "")
            + f": {note}"
        )
        _add_note(notice, line)
    session.flush()


def _add_note(notice: CollectionNotice, line: str) -> None:
    notice.notes = f"{notice.notes}\n{line}" if notice.notes else line


def save_notes(session: Session, notice: CollectionNotice, notes: str | None) -> None:
    notes = (notes or "").strip()
    if len(notes) > NOTE_LENGTH:
        raise NoticeError({"notes": f"Keep the notes to {NOTE_LENGTH:,} characters."})
    notice.notes = notes or None
    session.flush()


def _close(session: Session, notice: CollectionNotice, reason: str) -> None:
    notice.status = "cancelled" if reason == "cancelled" else "closed"
    notice.close_reason = reason
    notice.closed_at = _now()
    announce(session, notice, "notice.closed", reason=reason)


def notice_facts(
    notice_id: int, client_id: int, invoice_ids: Sequence[int], level_name: str
) -> dict:
    """A notice's facts in its domain events: the invoice when it covers one."""
    return {
        "notice_id": notice_id,
        "client_id": client_id,
        "invoice_id": invoice_ids[0] if len(invoice_ids) == 1 else None,
        "level": level_name,
    }


def announce(session: Session, notice: CollectionNotice, type_: str, **facts) -> None:
    invoice_ids = [item.invoice_id for item in notice.items]
    emit(
        session,
        type_,
        "notice",
        notice.id,
        {**notice_facts(notice.id, notice.client_id, invoice_ids, notice.level_name), **facts},
    )


def close_for_archived_client(session: Session, client_id: int) -> None:
    """Close the client's open notices: an archived client is no longer chased. Closed, not
    cancelled: the interest a notice that went out claimed stays owed. Called in the
    transaction that archives it."""
    notices = session.scalars(
        select(CollectionNotice)
        .where(
            CollectionNotice.client_id == client_id,
            CollectionNotice.status.in_(OPEN_NOTICE_STATUSES),
        )
        .order_by(CollectionNotice.id)
        .with_for_update()
    ).all()
    today = _today(session)
    for notice in notices:
        _close(session, notice, CLIENT_ARCHIVED)
        _add_note(notice, f"Closed on {today:%d %b %Y}: client archived")
    session.flush()


def deletion_blockers(session: Session, client_id: int) -> list[DeletionBlocker]:
    """Collections' answer when a client is about to be deleted: its open notices hold it
    (they would go on chasing a client nobody can see)."""
    count = session.scalar(
        select(func.count())
        .select_from(CollectionNotice)
        .where(
            CollectionNotice.client_id == client_id,
            CollectionNotice.status.in_(OPEN_NOTICE_STATUSES),
        )
    )
    if not count:
        return []
    return [
        DeletionBlocker(
            holds=f"{count} open {term('notice' if count == 1 else 'notices')}",
            remedy=f"Close {'it' if count == 1 else 'them'} (with the reason)",
            tab="notices",
        )
    ]


# Closing on payment -------------------------------------------------------------------------

_THANKED = "duebook_notice_thanked_clients"


def close_for_invoices(
    session: Session, invoice_ids: Sequence[int], reason: str, user_id: int | None
) -> None:
    """Close the open notices of these invoices that have nothing left owing: every invoice on
    them paid, void or written off. A notice with an invoice still owing stays open. Called in
    the transaction of the payment (or void, write-off) that settled them."""
    ids = list(invoice_ids)
    if not ids:
        return
    notices = session.scalars(
        select(CollectionNotice)
        .where(
            CollectionNotice.status.in_(OPEN_NOTICE_STATUSES),
            CollectionNotice.id.in_(
                select(CollectionNoticeInvoice.notice_id).where(
                    CollectionNoticeInvoice.invoice_id.in_(ids)
                )
            ),
        )
        .order_by(CollectionNotice.id)
        .options(selectinload(CollectionNotice.items))
        .with_for_update(of=CollectionNotice)
    ).all()
    if not notices:
        return
    all_ids = {item.invoice_id for notice in notices for item in notice.items}
    statuses = dict(
        session.execute(select(Invoice.id, Invoice.status).where(Invoice.id.in_(all_ids))).all()
    )
    closed = []
    for notice in notices:
        if all(statuses.get(item.invoice_id) in SETTLED_INVOICE_STATUSES for item in notice.items):
            _close(session, notice, reason if reason in NOTICE_CLOSE_REASONS else "paid")
            closed.append(notice)
    session.flush()
    if reason == "paid" and closed:
        _thank(session, closed, ids, user_id)


def _thank(
    session: Session, closed: list[CollectionNotice], invoice_ids: list[int], user_id: int | None
) -> None:
    """One thank-you e-mail per client per payment: the payment services call us once per
    invoice they settle, all in one transaction, so the clients thanked in this transaction
    are remembered until it ends. The key names the first notice the payment closed: a replay
    of the same closing writes nothing new."""
    settings = session.get(CollectionSettings, 1)
    if settings is None or not settings.thank_you:
        return
    thanked = session.info.get(_THANKED)
    if thanked is None:
        thanked = session.info[_THANKED] = set()
        on_commit(session, _forget_thanked, thanked)
        on_rollback(session, _forget_thanked, thanked)
    for notice in closed:
        if notice.client_id in thanked:
            continue
        thanked.add(notice.client_id)
        _queue_thank_you(session, notice, invoice_ids, user_id)


def _settling_payment(session: Session, invoice_id: int) -> Payment | None:
    """The payment whose allocation settled the invoice (in this transaction): its latest live
    allocation's, for the receipt's `payment` variables."""
    return session.scalar(
        select(Payment)
        .join(PaymentAllocation, PaymentAllocation.payment_id == Payment.id)
        .where(PaymentAllocation.invoice_id == invoice_id, PaymentAllocation.removed_at.is_(None))
        .order_by(PaymentAllocation.id.desc())
        .limit(1)
    )


def _forget_thanked(sets: list[set]) -> None:
    for thanked in sets:
        thanked.clear()


def _queue_thank_you(
    session: Session, notice: CollectionNotice, invoice_ids: list[int], user_id: int | None
) -> None:

    tenant = session.get(Tenant, bound_tenant_id(session))
    client = session.get(Client, notice.client_id)
    contact = _contact_for(session, notice, "email")
    if contact is None:
        return
    invoice = session.get(Invoice, invoice_ids[0])
    template = template_for(session, "email", "receipt", language_of(contact, client))
    context = message_context(
        session,
        tenant,
        client,
        contact,
        invoice,
        language=template.language,
        payment=_settling_payment(session, invoice.id),
    )
    try:
        rendered = render_for_channel(template, context)
        subject, text, html = rendered.subject, rendered.text, rendered.html
    except TemplateProblem:
        # The tenant's receipt template cannot be used: a plain thank-you rather than none.

        subject = f"Thank you for your payment – {tenant.name}"
        text = (
            f"Dear {context['contact']['first_name'] or client.full_name},\n\nThank you. "
            f"We have received your payment against invoice {context['invoice']['number']}."
            f"\n\nRegards,\n{workspace_settings(session, tenant.id).legal_name or tenant.name}"
        )
        html = email_html(text)
    queue_message(
        session,
        channel="email",
        tenant_id=tenant.id,
        client_id=client.id,
        contact_id=contact.id,
        created_by=user_id,
        to=contact.email,
        subject=subject,
        text_body=text,
        html_body=html,
        payload={"purpose": "receipt", "notice_id": notice.id},
        idempotency_key=f"t{tenant.id}:notice-thanks:{notice.id}",
        recipient_time_zone=recipient_time_zone(None, client.country, tenant),
    )


# Sending ------------------------------------------------------------------------------------


def _contact_for(session: Session, notice: CollectionNotice, channel: str) -> Contact | None:
    """The notice's contact, else the client's billing contact (then any) with an address on
    the channel. Consent is the delivery's to check, at send time."""
    if notice.contact_id:
        contact = session.get(Contact, notice.contact_id)
        if contact is not None and contact.deleted_at is None:
            return contact if _address(contact, channel) else None
    contacts = session.scalars(
        select(Contact)
        .where(Contact.client_id == notice.client_id, Contact.deleted_at.is_(None))
        .order_by(Contact.id)
    ).all()
    contacts = sorted(contacts, key=lambda c: "billing" not in (c.roles or []))
    return next((c for c in contacts if _address(c, channel)), None)


def _address(contact: Contact, channel: str) -> str | None:
    return contact.email if channel in ("email", "letter") else contact.phone


def send_notices(session: Session, tenant, notice_ids: Sequence[int]) -> dict[int, str]:
    """Send the approved notices among these ids: a message through the outbox, a printed
    letter waiting to be posted, or (calls and visits) nothing — the collector's task. Run by
    a worker; running it again changes nothing. Returns {notice id: what happened}."""
    outcome: dict[int, str] = {}
    notices = session.scalars(
        select(CollectionNotice)
        .where(CollectionNotice.id.in_(list(notice_ids)))
        .order_by(CollectionNotice.id)
        .options(selectinload(CollectionNotice.items))
        .with_for_update(of=CollectionNotice)
    ).all()
    today = _today(session)
    every_notice_approved = workspace_settings(session, tenant.id).notices_need_approval
    for notice in notices:
        if notice.status != "approved":
            outcome[notice.id] = f"skipped ({notice.status})"
            continue
        if every_notice_approved and notice.approved_by is None:
            # Approved by the run before the workspace asked a person's approval of every
            # notice, and not sent yet: it waits for that approval now.
            notice.status, notice.approved_at = "draft", None
            outcome[notice.id] = "waits for approval"
            continue
        gone = client_gone(session, notice)
        if gone:
            # Approved before its client was archived or deleted: it ends here, not in the
            # client's inbox (and not stranded, retried by every sweep).
            close(session, notice, "cancelled", gone, None, today)
            outcome[notice.id] = f"cancelled ({gone})"
            continue
        if notice.channel in TASK_CHANNELS:
            outcome[notice.id] = "task for a collector"
            continue
        level = session.get(CollectionLevel, notice.level_id)
        lines = notice_lines(session, notice, today)
        _record_claimed_interest(notice, lines)
        if notice.channel == "letter":
            _store_letter(session, tenant, notice)
            outcome[notice.id] = "letter printed"
        else:
            problem = _queue_notice_message(session, tenant, notice, level, lines)
            if problem:
                outcome[notice.id] = problem
                continue
            outcome[notice.id] = "queued"
        notice.status, notice.queued_at = "queued", _now()
    session.flush()
    return outcome


def _record_claimed_interest(notice: CollectionNotice, lines: list[Line]) -> None:
    """What the notice demands as interest, per invoice and in all, as it goes out: the claim
    that stays owed after the principal is paid (app/collections/cases/interest_claims.py)."""
    for item in notice.items:
        item.interest_amount = next(
            (line.interest for line in lines if line.invoice.id == item.invoice_id), ZERO
        )
    notice.interest_amount = sum((line.interest for line in lines), ZERO)


def _store_letter(session: Session, tenant, notice: CollectionNotice) -> dict:
    if notice.letter_key is None:
        notice.letter_key = letters.store_letter(session, tenant, notice)
    return {
        "key": notice.letter_key,
        "filename": letters.letter_filename(notice),
        "content_type": "application/pdf",
    }


@dataclass(frozen=True)
class NoticeText:
    subject: str
    text: str
    html: str | None
    whatsapp: dict
    sms: dict


def _compose_notice(
    session: Session,
    tenant,
    notice: CollectionNotice,
    level: CollectionLevel | None,
    lines: list[Line],
    contact: Contact,
) -> NoticeText | str:
    """The notice's message to `contact` from these lines (what each invoice owes now, its
    interest to today); or why it cannot be written."""
    channel = notice.channel
    client = session.get(Client, notice.client_id)
    purpose = level.template_purpose if level is not None else "notice_1"
    sums = totals(lines, notice.fee_amount)

    # The template in the contact's language (else English) decides how dates and amounts
    # read: an Indian language writes them its own way, with Indian grouping.
    template = template_for(session, channel, purpose, language_of(contact, client))
    language = template.language

    def money(amount) -> str:
        return format_money(amount, notice.currency, money_country(language, tenant.country))

    context = message_context(
        session,
        tenant,
        client,
        contact,
        lines[0].invoice,
        notice_level=purpose,
        language=language,
    )
    context["notice"] = notice_vars(
        tenant,
        purpose,
        notice.currency,
        [line.invoice.number for line in lines],
        sums["total"],
        sums["interest"],
        language,
        custom=template_variables(session, "notices", notice.custom_fields or {}),
    )
    context["amount_due"] = money(sums["total"])
    workspace = workspace_settings(session, tenant.id)
    link = payment_link(tenant, workspace, notice, lines, sums["total"])
    context["payment_link"] = link or ""
    context["pay_link"] = pay_link(session, notice_id=notice.id)
    try:
        rendered = render_for_channel(template, context)
    except TemplateProblem as problem:
        return f"the {template.name} template cannot be used: {problem}"
    if channel == "whatsapp" and not rendered.whatsapp.get("name"):
        return "the WhatsApp template has no approved template name"
    text, html = rendered.text, rendered.html
    if channel == "email":
        text = text + "\n\n" + statement_text(lines, sums, money, link, language)
        html = email_html(text)
    return NoticeText(
        rendered.subject or f"{notice.level_name}: {client.full_name}",
        text,
        html,
        rendered.whatsapp,
        rendered.sms,
    )


def _queue_notice_message(
    session: Session,
    tenant,
    notice: CollectionNotice,
    level: CollectionLevel,
    lines: list[Line],
    key: str | None = None,
    created_by: int | None = None,
) -> str | None:
    """Write the notice's outbox message (under `key`, by default the notice's one key); None,
    or why it cannot be sent. It is written again with the figures of the moment it goes out
    (compose_notice_message)."""

    channel = notice.channel
    contact = _contact_for(session, notice, channel)
    if contact is None:
        return f"no contact with {'an e-mail address' if channel == 'email' else 'a phone'}"
    if not lines:
        return "no invoices"
    composed = _compose_notice(session, tenant, notice, level, lines, contact)
    if isinstance(composed, str):
        return composed
    client = session.get(Client, notice.client_id)
    payload: dict = {
        "purpose": level.template_purpose if level is not None else "notice_1",
        "notice_id": notice.id,
        "invoice_ids": [line.invoice.id for line in lines],
        "composer": NOTICE_COMPOSER,
    }
    if channel in ("email", "whatsapp"):
        payload["attachments"] = [_store_letter(session, tenant, notice)]
    if channel == "whatsapp":
        document = {k: payload["attachments"][0][k] for k in ("key", "filename")}
        payload["whatsapp"] = {**composed.whatsapp, "document": document}
    if channel == "sms":
        payload["sms"] = composed.sms
    key = key or notice_message_key(tenant.id, notice)
    if key != notice_message_key(tenant.id, notice):
        payload["replaces_message_id"] = notice.message_id
    message_id = queue_message(
        session,
        channel=channel,
        tenant_id=tenant.id,
        client_id=client.id,
        contact_id=contact.id,
        created_by=created_by or notice.approved_by,
        to=contact.email if channel == "email" else contact.phone,
        subject=composed.subject,
        text_body=composed.text,
        html_body=composed.html,
        payload=payload,
        idempotency_key=key,
        windowed=True,
        recipient_time_zone=recipient_time_zone(
            contact.phone if channel in ("whatsapp", "sms") else None, client.country, tenant
        ),
    )
    if message_id is None:  # written by an earlier try of this job: the same message
        message_id = session.scalar(
            select(OutboxMessage.id).where(
                OutboxMessage.idempotency_key == key, OutboxMessage.of_tenant(tenant.id)
            )
        )
    notice.message_id = message_id
    notice.contact_id = contact.id
    return None


def compose_notice_message(session: Session, tenant, message) -> Composed:
    """A queued notice message as it goes out: written again from what its invoices owe at
    this moment, with interest to today (and that interest recorded as the notice's claim), so
    a notice held for the sending window or retried after a failure never quotes stale
    figures. A notice closed meanwhile (its invoices paid) is withdrawn. The attached letter
    is the one stored when it was queued; a resend stores a new one."""
    notice = session.get(CollectionNotice, (message.payload or {}).get("notice_id"))
    contact = session.get(Contact, message.contact_id) if message.contact_id else None
    if notice is None or contact is None:
        return Composed(withdrawn="its notice or contact no longer exists")
    if notice.status in ("closed", "cancelled"):
        return Composed(withdrawn=f"the notice was {notice.status} meanwhile")
    lines = notice_lines(session, notice, _today(session))
    if sum((line.outstanding for line in lines), ZERO) <= 0:
        return Composed(withdrawn="its invoices owe nothing now")
    _record_claimed_interest(notice, lines)
    level = session.get(CollectionLevel, notice.level_id)
    composed = _compose_notice(session, tenant, notice, level, lines, contact)
    if isinstance(composed, str):
        return Composed(withdrawn=composed)
    changed = {}
    if message.channel == "whatsapp":
        changed["whatsapp"] = {**(message.payload or {}).get("whatsapp", {}), **composed.whatsapp}
    if message.channel == "sms":
        changed["sms"] = composed.sms
    return Composed(composed.subject, composed.text, composed.html, changed)


def notice_message_key(tenant_id: int, notice: CollectionNotice) -> str:
    """The outbox key of a notice's (first) message: one message per notice, however often the
    job runs. A resend has its own key, naming the failed message it replaces."""
    return f"t{tenant_id}:notice:{notice.id}:{notice.channel}"


def resend_contacts(session: Session, notice: CollectionNotice) -> list[Contact]:
    """The client's contacts with an address on the notice's channel (billing ones first)."""
    contacts = session.scalars(
        select(Contact)
        .where(Contact.client_id == notice.client_id, Contact.deleted_at.is_(None))
        .order_by(Contact.id)
    ).all()
    return sorted(
        (c for c in contacts if _address(c, notice.channel)),
        key=lambda c: "billing" not in (c.roles or []),
    )


def resend(
    session: Session,
    tenant,
    notice: CollectionNotice,
    user_id: int | None,
    contact_id: int | None = None,
    *,
    may_approve_legal: bool = False,
) -> int:
    """Send a failed notice again, to its contact or to `contact_id` (another contact of the
    client with an address on the channel): a new outbox message under a key of its own (the
    failed one is never reused), the notice back to "queued" and following the new message.
    The audit log keeps the failed message's id (the notice's message_id before). A
    legal-stage notice needs `may_approve_legal` (it may go to another person). Returns the
    new outbox id."""
    session.refresh(notice, with_for_update=True)
    _refuse_closed(notice, "resent")
    if notice.status != "failed" or notice.channel not in MESSAGE_CHANNELS:
        raise NoticeError(worded("Only {a notice} whose message failed can be resent."))
    check_may_send(session, notice, may_approve_legal)
    if contact_id is not None:
        contact = session.get(Contact, contact_id)
        if (
            contact is None
            or contact.client_id != notice.client_id
            or contact.deleted_at is not None
        ):
            raise NoticeError({"contact_id": worded("Choose one of the {client}'s contacts.")})
        if not _address(contact, notice.channel):
            kind = "an e-mail address" if notice.channel == "email" else "a phone number"
            raise NoticeError({"contact_id": f"{contact.full_name} has no {kind}."})
        notice.contact_id = contact.id
    level = session.get(CollectionLevel, notice.level_id)
    lines = notice_lines(session, notice, _today(session))
    _record_claimed_interest(notice, lines)
    # The failed message's letter has the figures of then; the new one states those of now
    # (the old file stays: the failed message and the audit log name it).
    notice.letter_key = None
    failed_id = notice.message_id
    key = f"{notice_message_key(tenant.id, notice)}:after:{failed_id}"
    problem = _queue_notice_message(
        session, tenant, notice, level, lines, key=key, created_by=user_id
    )
    if problem:
        raise NoticeError({"contact_id": f"Cannot resend: {problem}."})
    notice.status, notice.queued_at = "queued", _now()
    # The times were the failed message's; the new one sets its own.
    notice.sent_at = notice.delivered_at = notice.read_at = None
    session.flush()
    return notice.message_id


# Listing ------------------------------------------------------------------------------------

OVERDUE_RANGES = {
    "0-30": (0, 30),
    "31-60": (31, 60),
    "61-90": (61, 90),
    "91+": (91, None),
}
PAGE_SIZE = 50


@dataclass
class NoticeFilters:
    business_unit: str = ""
    project_id: int | None = None
    client_id: int | None = None
    status: str = ""
    next: str = ""
    overdue: str = ""
    milestone_status: str = ""
    before: int | None = None

    def as_args(self) -> dict:
        values = {
            "business_unit": self.business_unit,
            "project_id": self.project_id,
            "client_id": self.client_id,
            "status": self.status,
            "next": self.next,
            "overdue": self.overdue,
            "milestone_status": self.milestone_status,
        }
        return {k: v for k, v in values.items() if v not in (None, "")}


def clean_filters(raw) -> NoticeFilters:
    """Filters from the URL; anything unknown is dropped rather than refused (a bookmark of an
    old filter still opens the list)."""

    def number(name):
        return row_id(raw.get(name))

    def one_of(name, allowed):
        value = (raw.get(name) or "").strip()
        return value if value in allowed else ""

    return NoticeFilters(
        business_unit=" ".join((raw.get("business_unit") or "").split())[:64],
        project_id=number("project_id"),
        client_id=number("client_id"),
        status=one_of("status", STATUS_LABELS),
        next=one_of("next", NEXT_STEPS),
        overdue=one_of("overdue", OVERDUE_RANGES),
        milestone_status=one_of("milestone_status", MILESTONE_STATUSES),
        before=number("before"),
    )


@dataclass
class NoticeRow:
    notice: CollectionNotice
    client_name: str
    next_step: str
    days_overdue: int
    legal: bool  # of the legal rung: approving it needs LEGAL_APPROVAL


@dataclass
class NoticePage:
    rows: list[NoticeRow]
    next_before: int | None


def list_notices(
    session: Session, filters: NoticeFilters, today: date, now: datetime | None = None
) -> NoticePage:
    """Newest first, a keyset page of PAGE_SIZE (ids below `before`)."""

    now = now or _now()
    step = next_step_expression(now).label("next_step")
    items = CollectionNoticeInvoice
    oldest_due = (
        select(func.min(Invoice.due_date))
        .join(items, items.invoice_id == Invoice.id)
        .where(items.notice_id == CollectionNotice.id)
        .scalar_subquery()
    )
    overdue = func.greatest(literal(today) - func.coalesce(oldest_due, literal(today)), 0)
    legal = CollectionLevel.is_legal | (CollectionLevel.template_purpose == "notice_legal")
    query = (
        select(
            CollectionNotice,
            Client.full_name,
            step,
            overdue.label("days_overdue"),
            legal.label("legal"),
        )
        .join(Client, Client.id == CollectionNotice.client_id)
        .join(CollectionLevel, CollectionLevel.id == CollectionNotice.level_id)
    )

    def on_invoices(*conditions):
        return CollectionNotice.id.in_(
            select(items.notice_id).join(Invoice, Invoice.id == items.invoice_id).where(*conditions)
        )

    if filters.client_id:
        query = query.where(CollectionNotice.client_id == filters.client_id)
    if filters.status:
        query = query.where(CollectionNotice.status == filters.status)
    if filters.next:
        query = query.where(next_step_expression(now) == filters.next)
    if filters.project_id:
        query = query.where(on_invoices(Invoice.project_id == filters.project_id))
    if filters.business_unit:
        query = query.where(
            on_invoices(
                Invoice.project_id.in_(
                    select(Project.id).where(
                        func.lower(Project.business_unit) == filters.business_unit.lower()
                    )
                )
            )
        )
    if filters.milestone_status:
        query = query.where(
            on_invoices(
                Invoice.id.in_(
                    select(InvoiceLine.invoice_id)
                    .join(Milestone, Milestone.id == InvoiceLine.milestone_id)
                    .where(Milestone.status == filters.milestone_status)
                )
            )
        )
    if filters.overdue:
        low, high = OVERDUE_RANGES[filters.overdue]
        query = query.where(overdue >= low)
        if high is not None:
            query = query.where(overdue <= high)
    if filters.before:
        query = query.where(CollectionNotice.id < filters.before)
    found = session.execute(query.order_by(CollectionNotice.id.desc()).limit(PAGE_SIZE + 1)).all()
    rows = [NoticeRow(*row) for row in found[:PAGE_SIZE]]
    more = len(found) > PAGE_SIZE
    return NoticePage(rows, rows[-1].notice.id if more and rows else None)


# The dashboard counts drafts waiting for approval up to this many, then says "100+": a daily
# run that drafted a thousand was counted from a thousand table rows on every visit (2 ms at
# 1M invoices), and past a hundred the number no longer changes what a person does next.
AWAITING_APPROVAL_SHOWN = 100


def awaiting_approval_count():
    """How many notices wait for someone to approve them (drafts: what the list filtered by
    status=draft shows), counted up to AWAITING_APPROVAL_SHOWN + 1, as a scalar subquery on the
    status index, so that a page can ask it along with other counts in one round trip."""
    drafts = (
        select(CollectionNotice.id)
        .where(CollectionNotice.status == "draft")
        .limit(AWAITING_APPROVAL_SHOWN + 1)
        .subquery()
    )
    return select(func.count()).select_from(drafts).scalar_subquery()


def notices_of(
    session: Session,
    *,
    client_id: int | None = None,
    invoice_id: int | None = None,
    limit: int = 50,
) -> list[CollectionNotice]:
    """A client's (or an invoice's) notices, newest first."""
    query = select(CollectionNotice)
    if client_id is not None:
        query = query.where(CollectionNotice.client_id == client_id)
    if invoice_id is not None:
        query = query.where(
            CollectionNotice.id.in_(
                select(CollectionNoticeInvoice.notice_id).where(
                    CollectionNoticeInvoice.invoice_id == invoice_id
                )
            )
        )
    return list(session.scalars(query.order_by(CollectionNotice.id.desc()).limit(limit)))


@cache
def _business_units_query():
    """The business units in use: a handful, found on their index (a DISTINCT read every
    project: 48 ms at 100,000)."""
    return distinct_values(Project.business_unit)


def filter_choices(session: Session) -> dict:
    """What the list's filters offer: business units and projects with notices (the client
    filter is the client picker, app/clients/picker.py), read in one statement."""
    units = _business_units_query().subquery()
    unit_rows = select(
        literal_column("0").label("kind"),
        literal_column("NULL::bigint").label("id"),
        units.c.value.label("name"),
    )
    project_rows = select(literal_column("1"), Project.id, Project.name).where(
        Project.id.in_(
            select(Invoice.project_id).join(
                CollectionNoticeInvoice, CollectionNoticeInvoice.invoice_id == Invoice.id
            )
        )
    )
    rows = session.execute(
        union_all(unit_rows, project_rows).order_by(literal_column("kind"), literal_column("name"))
    ).all()
    return {
        "business_units": [name for kind, _, name in rows if kind == 0],
        "projects": [(project_id, name) for kind, project_id, name in rows if kind == 1],
        "milestone_statuses": MILESTONE_STATUSES,
    }


# Attachments --------------------------------------------------------------------------------

LINK_SCHEMES = ("https://", "http://")


def get_attachment(session: Session, notice: CollectionNotice, attachment_id: int):

    attachment = session.get(NoticeAttachment, attachment_id)
    if attachment is None or attachment.notice_id != notice.id or attachment.removed_at:
        return None
    return attachment


def _title(raw: str | None, fallback: str) -> str:
    title = " ".join((raw or "").split()) or fallback
    return title[:191]


def add_file(
    session: Session,
    storage,
    notice: CollectionNotice,
    *,
    title: str | None,
    upload,
    user_id: int | None,
):
    """Upload a document to the notice: the client documents' checks (type from the bytes,
    25 MB at most), stored in the tenant's folder (removed again on rollback)."""

    checked, problem = check_file(upload)
    if problem:
        raise NoticeError({"file": problem})
    key = tenant_key(
        bound_tenant_id(session),
        "notices",
        notice.id,
        "files",
        f"{uuid.uuid4().hex}.{checked.extension}",
    )
    checked.stream.seek(0)
    size, sha256 = save_in_transaction(session, storage, key, checked.stream)
    attachment = NoticeAttachment(
        notice_id=notice.id,
        kind="file",
        title=_title(title, checked.filename),
        storage_key=key,
        filename=checked.filename,
        content_type=checked.content_type,
        size_bytes=size,
        sha256=sha256,
        created_by=user_id,
    )
    session.add(attachment)
    session.flush()
    return attachment


def add_link(
    session: Session,
    notice: CollectionNotice,
    *,
    title: str | None,
    url: str | None,
    user_id: int | None,
):
    """A link to a document kept elsewhere (a shared drive, a courier's tracking page)."""

    url = (url or "").strip()
    errors = {}
    if not url.lower().startswith(LINK_SCHEMES) or len(url) > 2048 or any(c.isspace() for c in url):
        errors["url"] = "Enter a web address starting with https:// (at most 2,048 characters)."
    if not (title or "").strip():
        errors["title"] = "Give the link a title."
    if errors:
        raise NoticeError(errors)
    attachment = NoticeAttachment(
        notice_id=notice.id, kind="link", title=_title(title, url), url=url, created_by=user_id
    )
    session.add(attachment)
    session.flush()
    return attachment


def remove_attachment(session: Session, attachment, user_id: int | None) -> None:
    """Soft: the row (and the file) stay, listed no more."""
    attachment.removed_at, attachment.removed_by = _now(), user_id
    session.flush()


def user_names(session: Session, user_ids) -> dict[int, str]:

    ids = {i for i in user_ids if i}
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.full_name).where(User.id.in_(ids))).all())
