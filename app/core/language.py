"""How a message in a language writes dates and money: each Indian language reads dates in its
own words (Babel's CLDR data, e.g. "15 நவ., 2026" in Tamil) and amounts in Indian grouping
(₹1,23,45,678.00), whatever the workspace's country; Filipino writes dates its own way
("Nob 15, 2026") and amounts as the workspace's country does."""

from __future__ import annotations

from datetime import date
from functools import cache

from babel.core import Locale, UnknownLocaleError
from babel.dates import format_date

# The languages Duebook has message templates in besides English, with the Babel locale each
# writes dates in.
INDIAN_LANGUAGE_LOCALES = {
    "hi": "hi_IN",
    "mr": "mr_IN",
    "ta": "ta_IN",
    "te": "te_IN",
    "kn": "kn_IN",
    "bn": "bn_IN",
    "gu": "gu_IN",
    "ml": "ml_IN",
}
# Every language a message writes dates in besides English: India's, and Filipino (CLDR's "fil";
# Babel reads "tl" as the same locale).
DATE_LOCALES = {**INDIAN_LANGUAGE_LOCALES, "fil": "fil_PH"}
# Each language's name in English and in its own script.
LANGUAGE_NAMES = {
    "hi": ("Hindi", "हिन्दी"),
    "mr": ("Marathi", "मराठी"),
    "ta": ("Tamil", "தமிழ்"),
    "te": ("Telugu", "తెలుగు"),
    "kn": ("Kannada", "ಕನ್ನಡ"),
    "bn": ("Bengali", "বাংলা"),
    "gu": ("Gujarati", "ગુજરાતી"),
    "ml": ("Malayalam", "മലയാളം"),
    "fil": ("Filipino", "Filipino"),
}
ENGLISH_DAY = "%d %b %Y"  # 15 Nov 2026: how English messages and PDFs have always written a day


@cache
def _locale(language: str) -> Locale | None:
    name = DATE_LOCALES.get(language)
    try:
        return Locale.parse(name) if name else None
    except (ValueError, UnknownLocaleError):
        return None


def day_in(value: date | None, language: str | None = "en") -> str:
    """`value` as a reader of `language` writes it ("" for no date); English and any
    language without a locale here: 15 Nov 2026."""
    if value is None:
        return ""
    locale = _locale(language or "en")
    if locale is None:
        return value.strftime(ENGLISH_DAY)
    return format_date(value, "medium", locale=locale)


def money_country(language: str | None, country: str | None) -> str:
    """The country whose way of writing amounts a message in `language` uses: India's for an
    Indian language (lakh and crore grouping), else the workspace's own."""
    if (language or "en") in INDIAN_LANGUAGE_LOCALES:
        return "IN"
    return (country or "IN").upper()


def language_label(language: str) -> str:
    """A language as pages offer it: "Tamil (தமிழ்)" (the code itself when unknown)."""
    english, native = LANGUAGE_NAMES.get(language, (language, ""))
    return f"{english} ({native})" if native and native != english else english
