"""The pay page's gateway section, behind two functions so that the page knows no gateway:
the one place the gateways area (`app.gateways.services`) is called from the pay page."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

from app.gateways import services as gateways


@dataclass(frozen=True)
class PayOption:
    provider: str  # the connector's key, as in /pay/<token>/checkout/<provider>
    label: str  # the button's words: "Pay with UPI, card or netbanking (Razorpay)"


class CheckoutUnavailable(Exception):
    """The gateway could not start a checkout; the page says so and offers bank and UPI."""


def pay_options(session: Session, *, currency: str) -> list[PayOption]:
    """The connected gateways that take `currency`, one Pay button each."""
    return [
        PayOption(option.provider, option.title)
        for option in gateways.checkout_options(session)
        if currency in option.currencies
    ]


def start_gateway_checkout(
    session: Session,
    *,
    provider: str,
    client_id: int,
    invoice_amounts: dict[int, Decimal],
    interest_amounts: dict[int, Decimal],
    currency: str,
    return_url: str,
    pay_link_id: int,
) -> str:
    """The gateway's checkout URL for these amounts (of each, `interest_amounts` the part
    that pays the interest its notice claimed), the payer's way back being `return_url`;
    CheckoutUnavailable with the gateway's reason, in words for the payer, when it refuses."""
    try:
        return gateways.start_checkout(
            session,
            provider=provider,
            client_id=client_id,
            invoice_amounts=invoice_amounts,
            interest_amounts=interest_amounts,
            currency=currency,
            return_url=return_url,
            pay_link_id=pay_link_id,
        )
    except gateways.CheckoutRefused as refused:
        raise CheckoutUnavailable(str(refused)) from refused
