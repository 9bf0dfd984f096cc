"""Money as `Decimal`, never float: rounding to the cent/paisa, splits that add up exactly, and
amounts written for people (`format_money`).

Every helper works in whole minor units (paise, cents) internally, so that the parts of a split
always add up to the total to the last minor unit.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from decimal import ROUND_HALF_UP, Decimal, Inexact, InvalidOperation, localcontext
from fractions import Fraction
from functools import cache
from typing import TypeVar

from babel.core import Locale, UnknownLocaleError
from babel.numbers import (
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    list_currencies,
)

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
K = TypeVar("K", bound=Hashable)
CURRENCIES = frozenset(list_currencies())  # ISO 4217 codes


def to_money(value) -> Decimal:
    """`value` (Decimal, int or str; a float is refused) rounded to 2 places, half up (away from
    zero: 0.005 -> 0.01, -0.005 -> -0.01). NaN, infinities and amounts past 26 digits are
    refused with ValueError."""
    if isinstance(value, float):
        raise TypeError("money must not be a float; pass a Decimal, an int or a string")
    if isinstance(value, bool):
        raise TypeError("money must be a Decimal, an int or a string, not a bool")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount of money") from None
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite amount of money")
    try:
        return amount.quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than the context holds, e.g. 1e30 typed in a form
        raise ValueError(f"{value!r} is too large to be an amount of money") from None


MAX_PRECISION = 1000  # digits: enough to add any percentages a person writes, exactly


def _to_minor(amount: Decimal) -> int:
    return int(to_money(amount) * 100)


def _from_minor(minor: int) -> Decimal:
    return Decimal(minor).scaleb(-2)  # exact, two places: 12345 -> 123.45, 100 -> 1.00


def _largest_remainder(total_minor: int, weights: Sequence[Decimal]) -> list[int]:
    """Whole minor units proportional to `weights` (non-negative, not all zero), adding up to
    `total_minor` exactly: each part gets the floor of its exact share, then the units left over
    go one each to the parts with the largest fractional remainders; among equal remainders the
    earlier part comes first. A negative total is split as its absolute value, sign restored."""
    sign = -1 if total_minor < 0 else 1
    magnitude = abs(total_minor)
    # The weights as whole numbers at one scale (they are finite decimals): exact integer
    # arithmetic. A plan of thousands of parts repeats a few shares (monthly instalments), so
    # each distinct weight is scaled and divided once; equal values scale to the same integer
    # whatever their written places (0.1 and 0.10).
    distinct = set(weights)
    places = max(max(-w.as_tuple().exponent, 0) for w in distinct)
    scaled = {w: int(w.scaleb(places)) for w in distinct}
    weight_sum = sum(map(scaled.__getitem__, weights))
    shares = {w: divmod(magnitude * s, weight_sum) for w, s in scaled.items()}
    parts = [shares[w] for w in weights]
    floors = [part for part, _ in parts]
    left = magnitude - sum(floors)
    if left:
        remainders = [remainder for _, remainder in parts]
        # sorted() is stable, also in reverse: among equal remainders the earlier part first.
        order = sorted(range(len(parts)), key=remainders.__getitem__, reverse=True)
        for index in order[:left]:
            floors[index] += 1
    return floors if sign > 0 else [-part for part in floors]


def _from_minor_all(minors: Sequence[int]) -> list[Decimal]:
    """`_from_minor` of each; a split repeats a few amounts, each made once (Decimals are
    immutable, so the parts may share them)."""
    made = {minor: _from_minor(minor) for minor in set(minors)}
    return [made[minor] for minor in minors]


def _percentage(value) -> Decimal:
    if isinstance(value, float):
        raise TypeError("percentages must not be floats; pass Decimals, ints or strings")
    try:
        decimal = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a percentage") from None
    if not decimal.is_finite() or decimal < 0:
        raise ValueError(f"each percentage must be a number of 0 or more, not {value!r}")
    return decimal


def split_by_weights(total, weights: Sequence[Decimal]) -> list[Decimal]:
    """`total` in one part per weight (Decimals >= 0), proportional to the weights, each rounded
    to the cent/paisa, adding up to `total` EXACTLY. The one splitter: percentages, equal parts
    and a credit note over its invoice's lines all split through it.

    Method (largest remainder, a.k.a. Hamilton): each part first gets its exact share rounded
    down to the minor unit; the minor units this leaves over (fewer than the number of parts) go
    one each to the parts whose exact share lost the most in rounding down. Ties go to the
    earlier part first, so 100.00 split 1/3 each gives 33.34, 33.33, 33.33. A negative total
    (a credit) is split the same way with every part negative. With every weight zero there is
    nothing to be proportional to: every part is zero.
    """
    if not any(weights):
        return [Decimal("0.00") for _ in weights]
    return _from_minor_all(_largest_remainder(_to_minor(total), weights))


def split_by_percentages(total, percentages: Sequence) -> list[Decimal]:
    """`total` split into one part per percentage (e.g. milestones of 30/40/30), each rounded to
    the cent/paisa, adding up to `total` EXACTLY (`split_by_weights`).

    The percentages (Decimal, int or str; no floats) must each be >= 0 and add up to exactly
    100, otherwise ValueError.
    """
    if not percentages:
        raise ValueError("give at least one percentage")
    weights = [_percentage(p) for p in percentages]
    with localcontext() as exact:  # the sum of decimals is exact, or this raises Inexact
        exact.prec = MAX_PRECISION
        exact.traps[Inexact] = True
        total_percent = sum(weights, Decimal(0))
    if total_percent != 100:
        raise ValueError(f"the percentages must add up to 100, not {total_percent.normalize():f}")
    return split_by_weights(total, weights)


def split_evenly(total, n: int) -> list[Decimal]:
    """`total` in `n` equal parts to the cent/paisa, adding up exactly; the leftover minor units
    go to the first parts (100.00 / 3 -> 33.34, 33.33, 33.33)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of parts must be a whole number of 1 or more, not {n!r}")
    return split_by_weights(total, [Decimal(1)] * n)


def allocate_oldest_first(
    amount, open_items: Sequence[tuple[K, Decimal]]
) -> tuple[list[tuple[K, Decimal]], Decimal]:
    """Apply a payment of `amount` to open items (invoices) in the order given — the caller
    passes them oldest first — each up to its outstanding balance and never more.

    Returns ([(key, allocated), ...] for the items that receive something, in the same order,
    left_over): left_over is what remains once every item is paid in full (an over-payment,
    kept as the client's credit). sum(allocated) + left_over == amount, always.
    `amount` must be >= 0; outstanding balances must be >= 0 (a zero one receives nothing).
    """
    remaining = to_money(amount)
    if remaining < 0:
        raise ValueError("a payment to allocate cannot be negative")
    allocations: list[tuple[K, Decimal]] = []
    seen = set()
    for key, outstanding in open_items:
        if key in seen:
            raise ValueError(f"item {key!r} is listed twice")
        seen.add(key)
        outstanding = to_money(outstanding)
        if outstanding < 0:
            raise ValueError(f"item {key!r} has a negative outstanding balance")
        if remaining == 0 or outstanding == 0:
            continue
        allocated = min(remaining, outstanding)
        allocations.append((key, allocated))
        remaining -= allocated
    return allocations, remaining


def percent_of(amount, rate) -> Decimal:
    """`rate` per cent of `amount`, rounded half up to the cent/paisa (computed exactly first)."""
    if isinstance(rate, float):
        raise TypeError("rates must not be floats; pass Decimals, ints or strings")
    rate = rate if isinstance(rate, Decimal) else Decimal(str(rate))
    exact = Fraction(to_money(amount)) * Fraction(rate) / 100
    # Round the exact fraction half up (away from zero) to whole minor units.
    minor = exact * 100
    sign = -1 if minor < 0 else 1
    magnitude = abs(minor)
    whole = int(magnitude)
    if magnitude - whole >= Fraction(1, 2):
        whole += 1
    return _from_minor(sign * whole)


def format_money(amount, currency: str, country: str | None = None) -> str:
    """`amount` with the symbol of `currency`, written as in `country` (the tenant's): Indian
    grouping for India (₹1,00,000.00), and for no country or one with no English locale.
    Written as Babel's `format_currency` writes it (tests/test_invoicing_money.py holds the two
    side by side), by a writer made once per currency and country; except that Swiss grouping
    keeps its apostrophes (1'234.00), which Babel strips along with the pattern's quotes.
    """
    return _money_writer(currency, (country or "IN").upper())(amount)


@cache
def _money_writer(currency: str, country: str):
    """A function writing amounts of `currency` as `country` does. Babel parses the locale's
    pattern and looks up symbols, digits and grouping on every call (~40 µs an amount, a third
    of a report page's time); these are the same for every amount of a currency, so they are
    read from Babel once here and only the digits are worked out per amount."""
    locale = _locale_of(country)
    pattern = locale.currency_formats["standard"]
    symbol = get_currency_symbol(currency, locale)

    def affix(text: str) -> str:
        # Babel's currency placeholder and quoting, resolved as `NumberPattern.apply` does.
        text = text.replace("¤¤¤", currency).replace("¤¤", currency.upper())
        return re.sub(r"'([^']*)'", lambda m: m.group(1) or "'", text.replace("¤", symbol))

    prefixes = tuple(affix(text) for text in pattern.prefix)
    suffixes = tuple(affix(text) for text in pattern.suffix)
    digits = get_currency_precision(currency)
    quantum = Decimal(1).scaleb(-digits)
    group, decimal_point = get_group_symbol(locale), get_decimal_symbol(locale)
    first_group, other_groups = pattern.grouping
    least_digits = pattern.int_prec[0]

    def write(amount) -> str:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
        negative = int(value.is_signed())
        # Rounded half to even, in the current decimal context, as Babel rounds.
        whole, _, fraction = f"{abs(value).normalize().quantize(quantum):f}".partition(".")
        whole = whole.rjust(least_digits, "0")
        grouped, size = "", first_group
        while len(whole) > size:
            grouped = group + whole[-size:] + grouped
            whole, size = whole[:-size], other_groups
        number = whole + grouped
        if digits:
            number += decimal_point + fraction.ljust(digits, "0")
        return prefixes[negative] + number + suffixes[negative]

    return write


@cache
def _locale_of(country: str) -> Locale:
    """The English locale of `country` (India's for a country with none), parsed once: a page
    formats dozens of amounts."""
    try:
        return Locale.parse("en_IN" if country == "IN" else f"en_{country}")
    except (ValueError, UnknownLocaleError):
        return Locale.parse("en_IN")


__all__ = [
    "CENT",
    "CURRENCIES",
    "allocate_oldest_first",
    "format_money",
    "percent_of",
    "split_by_percentages",
    "split_by_weights",
    "split_evenly",
    "to_money",
]
