"""Money helpers: rounding, exact splits, allocation of payments."""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction

import pytest

from app.core.money import (
    allocate_oldest_first,
    percent_of,
    split_by_percentages,
    split_evenly,
    to_money,
)

D = Decimal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.005", "1.01"),
        ("1.004", "1.00"),
        ("-1.005", "-1.01"),
        (D("2.675"), "2.68"),
        (7, "7.00"),
        (" 12.3 ", "12.30"),
        ("0", "0.00"),
    ],
)
def test_to_money_rounds_half_up_to_two_places(value, expected):
    assert to_money(value) == D(expected)
    assert to_money(value).as_tuple().exponent == -2


@pytest.mark.parametrize("value", [D("NaN"), "nan", D("Infinity"), "-inf", "abc", ""])
def test_to_money_refuses_what_is_not_a_finite_amount(value):
    with pytest.raises(ValueError):
        to_money(value)


def test_to_money_refuses_floats():
    with pytest.raises(TypeError, match="float"):
        to_money(1.1)


def test_split_gives_the_leftover_paise_to_the_largest_remainders_earlier_first():
    assert split_by_percentages(D("100.00"), [D("33.3333"), D("33.3333"), D("33.3334")]) == [
        D("33.33"),
        D("33.33"),
        D("33.34"),
    ]
    # Equal remainders: the earlier parts get the extra paisa.
    assert split_by_percentages("100", ["25", "25", "25", "25"]) == [D("25.00")] * 4
    assert split_by_percentages("0.03", [50, 50]) == [D("0.02"), D("0.01")]
    assert split_by_percentages("10.00", [30, 40, 30]) == [D("3.00"), D("4.00"), D("3.00")]
    assert split_by_percentages("0.10", [33, 33, 34]) == [D("0.03"), D("0.03"), D("0.04")]


def test_split_of_a_negative_total_mirrors_the_positive_one():
    assert split_by_percentages("-100.00", ["50", "50"]) == [D("-50.00"), D("-50.00")]
    assert split_by_percentages("-0.03", [50, 50]) == [D("-0.02"), D("-0.01")]


@pytest.mark.parametrize(
    ("percentages", "message"),
    [
        ([50, 49], "add up to 100, not 99"),
        (["50", "50.01"], "add up to 100, not 100.01"),
        ([], "at least one"),
        ([110, -10], "0 or more"),
        (["x", 100], "not a percentage"),
    ],
)
def test_split_refuses_percentages_that_do_not_make_100(percentages, message):
    with pytest.raises(ValueError, match=message):
        split_by_percentages("100", percentages)


def test_split_refuses_float_percentages():
    with pytest.raises(TypeError):
        split_by_percentages("100", [50.0, 50.0])


def test_random_splits_add_up_exactly_and_stay_within_a_paisa_of_the_exact_share():
    rng = random.Random(20261122)
    for _ in range(2000):
        total = D(rng.randint(-(10**9), 10**11)) / 100
        n = rng.randint(1, 12)
        # Random percentages with up to 4 decimals that add up to exactly 100.
        cuts = sorted(rng.randint(0, 1_000_000) for _ in range(n - 1))
        bounds = [0, *cuts, 1_000_000]
        percentages = [D(b - a) / 10_000 for a, b in zip(bounds, bounds[1:], strict=False)]
        assert sum(percentages) == 100
        parts = split_by_percentages(total, percentages)
        assert len(parts) == n
        assert sum(parts) == total
        for part, pct in zip(parts, percentages, strict=True):
            assert part.as_tuple().exponent == -2
            assert abs(part - total * pct / 100) < D("0.01")


def exact_largest_remainder(total: Decimal, percentages: list[Decimal]) -> list[Decimal]:
    """The method as stated, on exact fractions, one part at a time: the reference."""
    minor = int(total * 100)
    shares = [Fraction(abs(minor)) * Fraction(p) / 100 for p in percentages]
    parts = [int(share) for share in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for index in by_remainder[: abs(minor) - sum(parts)]:
        parts[index] += 1
    sign = -1 if minor < 0 else 1
    return [D(sign * part).scaleb(-2) for part in parts]


def test_long_plans_of_repeated_shares_split_like_the_method_says():
    # Plans of thousands of parts repeat a few shares, written in different ways (0.1, 0.10):
    # equal shares get equal treatment, and leftovers go to the earlier parts first.
    rng = random.Random(20261122)
    for _ in range(40):
        total = D(rng.randint(-(10**9), 10**13)) / 100
        n = rng.choice([3, 7, 400, 1000, 1500])
        step = D(100) / n
        if Fraction(step) * n != 100:  # no exact share: a few kinds, the rest in the last
            kinds = [D("0.05"), D("0.050"), D("0.0500"), D("0.07"), D("0.1"), D("0.10")]
            percentages = [rng.choice(kinds) for _ in range(n - 1)]
            rest = 100 - sum(percentages)
            if rest < 0:
                continue
            percentages.append(rest)
        else:
            percentages = [rng.choice([step, step.quantize(D("0.0001"))]) for _ in range(n)]
        parts = split_by_percentages(total, percentages)
        assert parts == exact_largest_remainder(total, percentages)
        assert sum(parts) == total
        assert all(part.as_tuple().exponent == -2 for part in parts)


def test_split_evenly():
    assert split_evenly("100", 3) == [D("33.34"), D("33.33"), D("33.33")]
    assert split_evenly("0.02", 3) == [D("0.01"), D("0.01"), D("0.00")]
    assert split_evenly("5", 1) == [D("5.00")]
    rng = random.Random(7)
    for _ in range(500):
        total, n = D(rng.randint(0, 10**8)) / 100, rng.randint(1, 40)
        parts = split_evenly(total, n)
        assert sum(parts) == total and max(parts) - min(parts) <= D("0.01")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            split_evenly("10", bad)


def test_allocation_pays_the_oldest_first_and_keeps_the_over_payment_as_credit():
    items = [("INV-1", D("100.00")), ("INV-2", D("50.00")), ("INV-3", D("25.00"))]
    assert allocate_oldest_first("120", items) == (
        [("INV-1", D("100.00")), ("INV-2", D("20.00"))],
        D("0.00"),
    )
    assert allocate_oldest_first("200.50", items) == (
        [("INV-1", D("100.00")), ("INV-2", D("50.00")), ("INV-3", D("25.00"))],
        D("25.50"),
    )
    assert allocate_oldest_first("0", items) == ([], D("0.00"))
    assert allocate_oldest_first("10", []) == ([], D("10.00"))
    # A fully paid item receives nothing.
    assert allocate_oldest_first("10", [("A", D("0")), ("B", D("5"))]) == (
        [("B", D("5.00"))],
        D("5.00"),
    )


@pytest.mark.parametrize(
    ("amount", "items", "message"),
    [
        ("-1", [("A", D("1"))], "negative"),
        ("1", [("A", D("-1"))], "negative outstanding"),
        ("1", [("A", D("1")), ("A", D("2"))], "twice"),
    ],
)
def test_allocation_refuses_nonsense(amount, items, message):
    with pytest.raises(ValueError, match=message):
        allocate_oldest_first(amount, items)


def test_random_allocations_conserve_the_amount_and_never_exceed_outstanding():
    rng = random.Random(99)
    for _ in range(2000):
        items = [(i, D(rng.randint(0, 10**7)) / 100) for i in range(rng.randint(0, 10))]
        amount = D(rng.randint(0, 5 * 10**7)) / 100
        allocations, left_over = allocate_oldest_first(amount, items)
        assert sum(a for _, a in allocations) + left_over == amount
        assert left_over >= 0
        outstanding = dict(items)
        for key, allocated in allocations:
            assert D("0.01") <= allocated <= outstanding[key]
        # Oldest first: every item before the last one paid is paid in full.
        paid = dict(allocations)
        keys = [k for k, _ in items]
        if allocations:
            last = keys.index(allocations[-1][0])
            for key in keys[:last]:
                assert paid.get(key, D("0.00")) == outstanding[key]
        # Left over only once everything is paid.
        if left_over > 0:
            assert all(paid.get(k, D("0")) == o for k, o in items)


def test_percent_of_rounds_the_exact_product_half_up():
    assert percent_of("0.05", 18) == D("0.01")  # 0.009
    assert percent_of("2.5", 18) == D("0.45")
    assert percent_of("100.03", "12.5") == D("12.50")  # 12.50375
    assert percent_of("-0.25", 18) == D("-0.05")  # -0.045


# The countries a workspace can be in today and a few beyond, with currencies of 0, 2 and 3
# decimals; amounts with every rounding case, signs, zeros and long integer parts.
FORMAT_COUNTRIES = ("IN", "AU", "PH", "US", "GB", "DE", "FR", "JP", "ZZ", None)
FORMAT_CURRENCIES = ("INR", "AUD", "PHP", "USD", "EUR", "GBP", "JPY", "KWD", "CHF")


def _amounts() -> list:
    chosen = random.Random(17)
    fixed = ["0", "-0", "0.005", "0.015", "-0.005", "0.5", "2.5", "-2.5", "1.005", "999.995"]
    fixed += ["1", "12", "123", "1234", "12345", "123456", "1234567", "123456789012.34"]
    fixed += ["-1234567.891", "0.0001", "1E+3", "100.10", 7, "-99999.999"]
    drawn = [
        str(Decimal(chosen.randrange(-(10**12), 10**12)).scaleb(-chosen.randrange(0, 5)))
        for _ in range(400)
    ]
    return [*fixed, *drawn]


@pytest.mark.parametrize("country", FORMAT_COUNTRIES)
def test_money_is_written_exactly_as_babel_writes_it(country):
    """format_money keeps a writer per currency and country instead of asking Babel for each
    amount; Babel stays the oracle: every amount of every currency comes out character for
    character as `babel.numbers.format_currency` writes it for the country's locale."""
    from babel.numbers import format_currency

    from app.core.money import _locale_of, format_money

    locale = _locale_of((country or "IN").upper())
    for currency in FORMAT_CURRENCIES:
        for amount in _amounts():
            value = D(str(amount))
            assert format_money(value, currency, country) == format_currency(
                value, currency, locale=locale
            ), (amount, currency, country)


def test_swiss_grouping_keeps_its_apostrophes():
    """Switzerland groups thousands with an apostrophe. Babel's format_currency strips it (its
    removal of pattern quotes runs over the finished number too): 1234567.00. Ours keeps it."""
    from app.core.money import format_money

    assert format_money(D("1234567"), "CHF", "CH") == "CHF\xa01'234'567.00"
    assert format_money(D("-1234.5"), "INR", "CH") == "₹-1'234.50"
