"""Amounts in words: the Indian system for rupees, the international one elsewhere."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.invoicing.words import amount_in_words, number_in_words

D = Decimal


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        (
            "12345678.50",
            "Rupees One Crore Twenty-Three Lakh Forty-Five Thousand Six Hundred "
            "Seventy-Eight and Fifty Paise Only",
        ),
        ("0", "Rupees Zero Only"),
        ("0.00", "Rupees Zero Only"),
        ("1", "Rupees One Only"),
        ("100000", "Rupees One Lakh Only"),
        ("10000000", "Rupees One Crore Only"),
        (
            "999999999.99",
            "Rupees Ninety-Nine Crore Ninety-Nine Lakh Ninety-Nine Thousand Nine "
            "Hundred Ninety-Nine and Ninety-Nine Paise Only",
        ),
        ("0.50", "Fifty Paise Only"),
        ("0.01", "One Paisa Only"),
        ("0.99", "Ninety-Nine Paise Only"),
        ("1.01", "Rupees One and One Paisa Only"),
        ("10", "Rupees Ten Only"),
        ("11", "Rupees Eleven Only"),
        ("20", "Rupees Twenty Only"),
        ("101", "Rupees One Hundred One Only"),
        ("1000", "Rupees One Thousand Only"),
        ("100100", "Rupees One Lakh One Hundred Only"),
        ("1500000", "Rupees Fifteen Lakh Only"),
        ("10000001", "Rupees One Crore One Only"),
        ("1000000000", "Rupees One Hundred Crore Only"),
        ("10000000000", "Rupees One Thousand Crore Only"),
        (
            "1234567890123",
            "Rupees One Lakh Twenty-Three Thousand Four Hundred Fifty-Six Crore "
            "Seventy-Eight Lakh Ninety Thousand One Hundred Twenty-Three Only",
        ),
        ("1.005", "Rupees One and One Paisa Only"),  # rounded half up first
        ("0.004", "Rupees Zero Only"),
    ],
)
def test_rupees_in_the_indian_system(amount, words):
    assert amount_in_words(D(amount)) == words


@pytest.mark.parametrize(
    ("amount", "currency", "words"),
    [
        ("1250.05", "AUD", "Australian Dollars One Thousand Two Hundred Fifty and Five Cents Only"),
        (
            "12345678.50",
            "AUD",
            "Australian Dollars Twelve Million Three Hundred Forty-Five "
            "Thousand Six Hundred Seventy-Eight and Fifty Cents Only",
        ),
        ("100000", "USD", "US Dollars One Hundred Thousand Only"),
        ("1000000", "usd", "US Dollars One Million Only"),
        ("2000000000.01", "EUR", "Euros Two Billion and One Cent Only"),
        ("1000000000000", "USD", "US Dollars One Trillion Only"),
        ("0.01", "GBP", "One Penny Only"),
        ("0.02", "GBP", "Two Pence Only"),
        ("3.30", "GBP", "Pounds Sterling Three and Thirty Pence Only"),
        ("0", "EUR", "Euros Zero Only"),
        (
            "999999999.99",
            "AUD",
            "Australian Dollars Nine Hundred Ninety-Nine Million Nine "
            "Hundred Ninety-Nine Thousand Nine Hundred Ninety-Nine and Ninety-Nine Cents Only",
        ),
    ],
)
def test_other_currencies_in_the_international_system(amount, currency, words):
    assert amount_in_words(D(amount), currency) == words


def test_every_number_below_a_thousand_is_written_without_gaps_or_doubles():
    seen = set()
    for n in range(1000):
        words = number_in_words(n)
        assert "  " not in words and not words.endswith("-") and words not in seen
        seen.add(words)
    assert number_in_words(0) == "Zero"
    assert number_in_words(99) == "Ninety-Nine"
    assert number_in_words(1000, "international") == "One Thousand"


def test_refusals():
    with pytest.raises(ValueError, match="negative"):
        amount_in_words(D("-1"))
    with pytest.raises(ValueError, match="JPY"):
        amount_in_words(D("1"), "JPY")
    with pytest.raises(ValueError):
        amount_in_words(D("NaN"))
    with pytest.raises(ValueError):
        number_in_words(-1)
