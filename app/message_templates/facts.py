"""Facts about invoices that messages show but a higher area works out: the ports through which
message templates learn an invoice's late-payment interest without importing collections,
which registers its calculation when the app is made (`app.collections.hooks`), and the link
to the client's pay page without importing pay links (`app.paylinks.hooks`). With nothing
registered, invoices carry no interest and messages no pay link."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Protocol

from sqlalchemy.orm import Session

from app.core.money import to_money


class HasAmount(Protocol):
    amount: Decimal


# (session, invoices, as of) -> {invoice id: its interest, with an `amount`}; an invoice that
# earns none may be left out.
InterestCalculation = Callable[[Session, Sequence, date], Mapping[int, HasAmount]]

_interest_calculation: InterestCalculation | None = None


def register_interest(calculation: InterestCalculation) -> None:
    global _interest_calculation
    _interest_calculation = calculation


def late_interest(session: Session, invoices: Sequence, as_of: date) -> dict[int, Decimal]:
    """Each invoice's late-payment interest as of `as_of`, in money (0.00 when it earns none)."""
    interest = _interest_calculation(session, invoices, as_of) if _interest_calculation else {}
    return {
        invoice.id: to_money(interest[invoice.id].amount)
        if invoice.id in interest
        else Decimal("0.00")
        for invoice in invoices
    }


# (session, invoice_id=..., notice_id=...) -> the URL of the live pay link of the notice, else
# of the invoice (made when there is none); "" for none.
PayLinkMaker = Callable[..., str]

_pay_link_maker: PayLinkMaker | None = None


def register_pay_link(maker: PayLinkMaker) -> None:
    global _pay_link_maker
    _pay_link_maker = maker


def pay_link(
    session: Session, *, invoice_id: int | None = None, notice_id: int | None = None
) -> str:
    """The pay page link a message about this invoice (or notice) carries, "" without one."""
    if _pay_link_maker is None:
        return ""
    return _pay_link_maker(session, invoice_id=invoice_id, notice_id=notice_id)
