"""The amount a payer types on the pay page: more than zero, no more than owed."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from app.core.money import to_money


def clean_amount(
    raw: str | None, owed: Decimal, owed_text: str, allow_partial: bool
) -> tuple[Decimal | None, str]:
    """(the amount to pay, "") or (None, why not). Without part payments, the whole amount
    owed (whatever was typed: the field is not shown then)."""
    if not allow_partial:
        return owed, ""
    text = (raw or "").replace(",", "").strip()
    if not text:
        return owed, ""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None, "Type an amount in numbers, e.g. 2500 or 2500.50."
    if not amount.is_finite() or amount <= 0:
        return None, "The amount must be more than zero."
    if amount != amount.quantize(Decimal("0.01")):
        return None, "At most two decimal places."
    if amount > owed:
        return None, f"At most {owed_text}, what is owed now."
    return to_money(amount), ""
