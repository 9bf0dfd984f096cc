"""Regions a tenant or a client is in: India's states and union territories by their GST codes
(the first two characters of a GSTIN), as invoices, tax ids and holiday calendars name them."""

from __future__ import annotations

# GST state codes (first two characters of a GSTIN), current names.
GST_STATES = {
    "01": "Jammu and Kashmir",
    "02": "Himachal Pradesh",
    "03": "Punjab",
    "04": "Chandigarh",
    "05": "Uttarakhand",
    "06": "Haryana",
    "07": "Delhi",
    "08": "Rajasthan",
    "09": "Uttar Pradesh",
    "10": "Bihar",
    "11": "Sikkim",
    "12": "Arunachal Pradesh",
    "13": "Nagaland",
    "14": "Manipur",
    "15": "Mizoram",
    "16": "Tripura",
    "17": "Meghalaya",
    "18": "Assam",
    "19": "West Bengal",
    "20": "Jharkhand",
    "21": "Odisha",
    "22": "Chhattisgarh",
    "23": "Madhya Pradesh",
    "24": "Gujarat",
    "26": "Dadra and Nagar Haveli and Daman and Diu",
    "27": "Maharashtra",
    "29": "Karnataka",
    "30": "Goa",
    "31": "Lakshadweep",
    "32": "Kerala",
    "33": "Tamil Nadu",
    "34": "Puducherry",
    "35": "Andaman and Nicobar Islands",
    "36": "Telangana",
    "37": "Andhra Pradesh",
    "38": "Ladakh",
    "97": "Other Territory",
}
# Codes still found on older registrations, read as today's state.
GST_STATE_ALIASES = {"25": "26", "28": "37"}
# GST state code -> ISO 3166-2 subdivision, as python-holidays names Indian states.
GST_TO_ISO = {
    "01": "JK",
    "02": "HP",
    "03": "PB",
    "04": "CH",
    "05": "UK",
    "06": "HR",
    "07": "DL",
    "08": "RJ",
    "09": "UP",
    "10": "BR",
    "11": "SK",
    "12": "AR",
    "13": "NL",
    "14": "MN",
    "15": "MZ",
    "16": "TR",
    "17": "ML",
    "18": "AS",
    "19": "WB",
    "20": "JH",
    "21": "OD",
    "22": "CG",
    "23": "MP",
    "24": "GJ",
    "26": "DH",
    "27": "MH",
    "29": "KA",
    "30": "GA",
    "31": "LD",
    "32": "KL",
    "33": "TN",
    "34": "PY",
    "35": "AN",
    "36": "TS",
    "37": "AP",
    "38": "LA",
}


def region_code(text: str) -> str | None:
    """An Indian state by GST code ('29', '29-Karnataka') or name ('Karnataka')."""
    candidate = text.strip()
    code = candidate.split("-", 1)[0].strip().zfill(2) if candidate[:2].isdigit() else None
    if code:
        code = GST_STATE_ALIASES.get(code, code)
        return code if code in GST_STATES else None
    lowered = candidate.lower()
    return next((c for c, name in GST_STATES.items() if name.lower() == lowered), None)


def state_name(code: str | None) -> str:
    """An Indian state's name by its GST state code ("" when unknown)."""
    return GST_STATES.get(code or "", "")


# Australia's states and territories, by the codes python-holidays and addresses use.
AU_STATES = {
    "ACT": "Australian Capital Territory",
    "NSW": "New South Wales",
    "NT": "Northern Territory",
    "QLD": "Queensland",
    "SA": "South Australia",
    "TAS": "Tasmania",
    "VIC": "Victoria",
    "WA": "Western Australia",
}
# The Philippines' administrative regions (PSGC). python-holidays keeps one national calendar
# for the Philippines, so a region decides wording and nothing of the holidays.
PH_REGIONS = {
    "NCR": "National Capital Region",
    "CAR": "Cordillera Administrative Region",
    "01": "Ilocos Region (Region I)",
    "02": "Cagayan Valley (Region II)",
    "03": "Central Luzon (Region III)",
    "4A": "Calabarzon (Region IV-A)",
    "MIMAROPA": "Mimaropa Region",
    "05": "Bicol Region (Region V)",
    "06": "Western Visayas (Region VI)",
    "NIR": "Negros Island Region",
    "07": "Central Visayas (Region VII)",
    "08": "Eastern Visayas (Region VIII)",
    "09": "Zamboanga Peninsula (Region IX)",
    "10": "Northern Mindanao (Region X)",
    "11": "Davao Region (Region XI)",
    "12": "Soccsksargen (Region XII)",
    "13": "Caraga (Region XIII)",
    "BARMM": "Bangsamoro (BARMM)",
}
# The languages a business in an Indian state most often writes to its clients in, besides
# English and Hindi (offered first when it adds templates in other languages).
STATE_LANGUAGES = {
    "07": ("hi",),
    "06": ("hi",),
    "08": ("hi",),
    "09": ("hi",),
    "10": ("hi",),
    "20": ("hi",),
    "22": ("hi",),
    "23": ("hi",),
    "05": ("hi",),
    "02": ("hi",),
    "04": ("hi",),
    "19": ("bn",),
    "16": ("bn",),
    "24": ("gu", "hi"),
    "26": ("gu", "hi"),
    "27": ("mr", "hi"),
    "30": ("mr",),
    "29": ("kn",),
    "33": ("ta",),
    "34": ("ta",),
    "36": ("te",),
    "37": ("te",),
}


def regions_of(country: str) -> dict[str, str]:
    """The regions a workspace of `country` chooses from, code -> name (empty: none known)."""
    return {"IN": GST_STATES, "AU": AU_STATES, "PH": PH_REGIONS}.get(country.upper(), {})


def region_for(country: str, text: str | None) -> str | None:
    """The code of the region `text` names (a code or a name, any case) in `country`; None
    when it names none. India keeps its GST state codes (region_code)."""
    if not text or not text.strip():
        return None
    if country.upper() == "IN":
        return region_code(text)
    wanted = text.strip().casefold()
    return next(
        (
            code
            for code, name in regions_of(country).items()
            if wanted in (code.casefold(), name.casefold())
        ),
        None,
    )


# Countries whose clients often read one language besides English wherever they are: the
# Philippines writes Filipino in every region.
COUNTRY_LANGUAGES = {"PH": ("fil",)}


def state_languages(country: str, region: str | None) -> tuple[str, ...]:
    """The languages a workspace's clients often read besides English: its Indian state's, or
    its country's (Filipino in the Philippines); empty elsewhere."""
    country = country.upper()
    if country in COUNTRY_LANGUAGES:
        return COUNTRY_LANGUAGES[country]
    if country != "IN" or not region:
        return ()
    return STATE_LANGUAGES.get(region_code(region) or "", ())
