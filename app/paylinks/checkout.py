"""The pay page's gateway section, behind two functions so that the page knows no gateway.

The gateways area (`app.gateways.services`: `checkout_options(session)` and
`start_checkout(session, *, provider, client_id, invoice_amounts, currency, return_url,
pay_link_id)`) is wired in here, and only here, when it joins: until then the page offers no
Pay button and shows bank details and the UPI QR only."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class PayOption:
    provider: str  # the connector's key, as in /pay/<token>/checkout/<provider>
    label: str  # the button's words: "Pay by card, UPI or netbanking"


class CheckoutUnavailable(Exception):
    """The gateway could not start a checkout; the page says so and offers bank and UPI."""


def pay_options(session: Session, *, currency: str) -> list[PayOption]:
    """The connected gateways that take `currency`, one Pay button each. None yet."""
    return []


def start_gateway_checkout(
    session: Session,
    *,
    provider: str,
    client_id: int,
    invoice_amounts: dict[int, Decimal],
    currency: str,
    return_url: str,
    pay_link_id: int,
) -> str:
    """The gateway's checkout URL for these amounts, the payer's way back being `return_url`.
    The one call into the gateways area (`start_checkout`), wired when it joins."""
    raise CheckoutUnavailable(provider)
