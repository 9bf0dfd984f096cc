"""What every payment gateway connector tells the payments spine (app.gateways), in one
provider-neutral shape, so that the spine applies Razorpay's and Stripe's money the same way
and knows neither's JSON.

A gateway connector:
- `read_webhook(body, headers) -> PaymentEvent`: checks the provider's signature over the exact
  bytes first (WebhookRefused when it does not prove the provider sent it; BadWebhookBody when
  the body is not an event), then reads it;
- `event_from_stored(body, event_id) -> PaymentEvent`: the same reading of a body already
  verified and stored (in the job that applies it);
- `start_checkout(...) -> (reference, url)`: one pay request at the provider (GatewayRefusal
  with the provider's reason, in words for the payer);
- `payments_on(start, end) -> list[PaymentEvent]`: what the provider says happened in the
  window, for the daily reconciliation (DeliveryError when it cannot answer);
- `payouts_on(start, end) -> list[PayoutReport]`: the money it sent to the merchant's bank
  in the window (Stripe's payouts, Razorpay's settlements), for matching to bank statements.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from decimal import Decimal

from app.integrations.connectors.wire import BadWebhookBody

# paid: money taken; failed: an attempt failed; refunded: money given back (`refund_id` and
# either `refund_amount`, this refund, or `refunded_total`, all refunds of the payment so far);
# disputed: the payer's bank took the money back pending a dispute; other: nothing to apply.
KINDS = ("paid", "failed", "refunded", "disputed", "other")


class WebhookRefused(BadWebhookBody):
    """A webhook whose signature does not prove the provider sent it (forged, tampered, or
    outside the provider's replay tolerance): refused with 403, nothing stored."""

    def __init__(self, reason: str):
        super().__init__(reason, status=403)


class GatewayRefusal(Exception):
    """The gateway did not take a pay request; the message is its reason, for the page."""


@dataclass(frozen=True)
class DisputeFacts:
    dispute_id: str
    amount: Decimal | None
    reason: str
    evidence_due_by: datetime | None


@dataclass(frozen=True)
class PaymentEvent:
    """One event of a gateway about one payment. Money in major units of `currency` (upper
    case); a field the provider did not send is None. `payment_id` is the provider's key of
    the payment (Razorpay pay_…, Stripe's payment intent pi_…): the spine applies a payment
    once per (provider, payment_id). The pay request is named by the provider's id of it
    (`provider_checkout`: plink_…, cs_…) when the event carries it, else by our checkout id
    that the request put in the provider's notes or metadata (`checkout_id`)."""

    provider: str
    event_id: str
    event_type: str
    kind: str
    payment_id: str | None = None
    checkout_id: int | None = None
    provider_checkout: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    fee: Decimal | None = None  # the gateway's fee including its tax
    fee_tax: Decimal | None = None
    method: str | None = None  # the provider's word (upi, card, netbanking ...)
    book_method: str = "other"  # the same as a Duebook payment method
    failure_reason: str | None = None
    refund_id: str | None = None
    refund_amount: Decimal | None = None
    refunded_total: Decimal | None = None
    dispute: DisputeFacts | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class PayoutReport:
    """A transfer from the gateway to the merchant's bank, in major units of `currency`;
    `status` is the provider's own word, `bank_reference` the transfer's UTR when given."""

    payout_id: str
    amount: Decimal
    currency: str
    arrival_date: date
    status: str
    bank_reference: str | None = None


def checkout_number(value) -> int | None:
    """Our checkout id as a provider's notes or metadata carry it (a string), if it is one."""
    text = str(value or "").strip()
    return int(text) if text.isdigit() and len(text) < 19 else None


def event_to_json(event: PaymentEvent) -> str:
    """The event as JSON (money as strings, times as ISO 8601), to keep and apply later."""
    return json.dumps(asdict(event), default=str, sort_keys=True)


def event_from_json(text: str) -> PaymentEvent:
    """The event `event_to_json` wrote."""
    data = json.loads(text)
    money = ("amount", "fee", "fee_tax", "refund_amount", "refunded_total")
    for name in money:
        data[name] = Decimal(data[name]) if data.get(name) is not None else None
    if data.get("occurred_at"):
        data["occurred_at"] = datetime.fromisoformat(data["occurred_at"])
    dispute = data.get("dispute")
    if dispute:
        due = dispute.get("evidence_due_by")
        data["dispute"] = DisputeFacts(
            dispute["dispute_id"],
            Decimal(dispute["amount"]) if dispute.get("amount") is not None else None,
            dispute["reason"],
            datetime.fromisoformat(due) if due else None,
        )
    known = {field.name for field in fields(PaymentEvent)}
    return PaymentEvent(**{key: value for key, value in data.items() if key in known})
