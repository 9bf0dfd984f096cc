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
