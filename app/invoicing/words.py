"""Amounts in words for invoices: the Indian system (thousand, lakh, crore) for rupees, the
international one (thousand, million, billion, trillion) for other currencies.

    amount_in_words(Decimal("12345678.50"))
    -> "Rupees One Crore Twenty-Three Lakh Forty-Five Thousand Six Hundred Seventy-Eight and
        Fifty Paise Only"
    amount_in_words(Decimal("1250.05"), "AUD")
    -> "Australian Dollars One Thousand Two Hundred Fifty and Five Cents Only"

Conventions: the major unit comes first and is always plural, as on a cheque ("Rupees One
Only"); the minor unit follows its number and is singular for one ("and One Paisa Only");
zero is "Rupees Zero Only"; an amount under one major unit is the minor unit only ("Fifty
Paise Only"); no "and" inside a number. Amounts are rounded half up to 2 places first.
Negative amounts are refused (a credit note shows a positive amount).
"""

from __future__ import annotations

from app.core.money import to_money

ONES = (
    "Zero One Two Three Four Five Six Seven Eight Nine Ten Eleven Twelve Thirteen Fourteen "
    "Fifteen Sixteen Seventeen Eighteen Nineteen"
).split()
TENS = "_ _ Twenty Thirty Forty Fifty Sixty Seventy Eighty Ninety".split()

# code: (major unit as written before the amount, minor unit singular, minor unit plural)
CURRENCIES = {
    "INR": ("Rupees", "Paisa", "Paise"),
    "AUD": ("Australian Dollars", "Cent", "Cents"),
    "USD": ("US Dollars", "Cent", "Cents"),
    "GBP": ("Pounds Sterling", "Penny", "Pence"),
    "EUR": ("Euros", "Cent", "Cents"),
}
INDIAN_GROUPS = ((10**7, "Crore"), (10**5, "Lakh"), (10**3, "Thousand"))
INTERNATIONAL_GROUPS = (
    (10**12, "Trillion"),
    (10**9, "Billion"),
    (10**6, "Million"),
    (10**3, "Thousand"),
)


def _below_thousand(n: int) -> list[str]:
    words = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [ONES[hundreds], "Hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(f"{TENS[tens]}-{ONES[ones]}" if ones else TENS[tens])
    elif rest:
        words.append(ONES[rest])
    return words


def _number_words(n: int, groups) -> list[str]:
    """Words for n >= 1. The largest group repeats on itself (Indian: 100 crore is "One
    Hundred Crore", 1,000 crore "One Thousand Crore")."""
    words: list[str] = []
    for size, name in groups:
        if n >= size:
            count, n = divmod(n, size)
            words += _number_words(count, groups) + [name]
    return words + _below_thousand(n)


def number_in_words(n: int, system: str = "indian") -> str:
    """A whole number >= 0 in words ("indian" or "international" grouping)."""
    if n < 0:
        raise ValueError("only numbers of 0 or more can be written in words here")
    if n == 0:
        return "Zero"
    groups = INDIAN_GROUPS if system == "indian" else INTERNATIONAL_GROUPS
    return " ".join(_number_words(n, groups))


def amount_in_words(amount, currency: str = "INR") -> str:
    currency = currency.upper()
    if currency not in CURRENCIES:
        raise ValueError(
            f"amounts in words are written for {', '.join(CURRENCIES)}, not {currency}"
        )
    amount = to_money(amount)
    if amount < 0:
        raise ValueError("a negative amount cannot be written in words; use its absolute value")
    major_name, minor_one, minor_many = CURRENCIES[currency]
    system = "indian" if currency == "INR" else "international"
    major = int(amount)
    minor = int((amount - major) * 100)
    minor_words = ""
    if minor:
        unit = minor_one if minor == 1 else minor_many
        minor_words = f"{number_in_words(minor, system)} {unit}"
    if major == 0 and minor:
        return f"{minor_words} Only"
    text = f"{major_name} {number_in_words(major, system)}"
    if minor:
        text += f" and {minor_words}"
    return f"{text} Only"


__all__ = ["CURRENCIES", "amount_in_words", "number_in_words"]
