"""Tax ids checked alike wherever they are entered (a client's record, the workspace's settings):
India's GSTIN and PAN, Australia's ABN. Each check returns the id as stored (compact) and what
is wrong with it in words a user can act on; whether the id belongs to the country at all is
the caller's rule."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stdnum import exceptions as stdnum_errors
from stdnum.au import abn as au_abn
from stdnum.in_ import gstin as in_gstin
from stdnum.in_ import pan as in_pan

from app.core.regions import GST_STATE_ALIASES, GST_STATES

GSTIN_FORMAT = re.compile(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$")
BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def gstin_check_character(first_14: str) -> str:
    """GSTN's check character: base 36, factors 1 and 2 alternating, digits of each product
    (in base 36) added, then the complement to 36."""
    total = 0
    for position, character in enumerate(first_14):
        product = BASE36.index(character) * (2 if position % 2 else 1)
        total += product // 36 + product % 36
    return BASE36[(36 - total % 36) % 36]


def validate_gstin(gstin: str) -> None:
    """python-stdnum's check, and ours for state codes its table lacks (38, Ladakh; 97)."""
    if gstin[:2] in GST_STATES and gstin[:2] not in in_gstin._STATE_CODES:
        if len(gstin) != 15:
            raise stdnum_errors.InvalidLength()
        if not GSTIN_FORMAT.match(gstin):
            raise stdnum_errors.InvalidFormat()
        in_pan.validate(gstin[2:12])
        if gstin_check_character(gstin[:14]) != gstin[14]:
            raise stdnum_errors.InvalidChecksum()
        return
    in_gstin.validate(gstin)


def stdnum_message(error: Exception, what: str) -> str:
    if isinstance(error, stdnum_errors.InvalidChecksum):
        return f"This {what} has a wrong check digit; check it for a typo."
    if isinstance(error, stdnum_errors.InvalidLength):
        return f"This {what} has the wrong number of characters."
    return f"This is not a valid {what}."


@dataclass
class IndianTaxIds:
    """A GSTIN and a PAN as entered together: compact, the PAN taken from inside the GSTIN when
    none was given, the state the GSTIN is registered in (None unless it is valid), and the
    errors by field ("gstin", "pan")."""

    gstin: str
    pan: str
    gstin_state: str | None = None
    errors: dict[str, str] = field(default_factory=dict)


def check_gstin_and_pan(gstin_text: str, pan_text: str) -> IndianTaxIds:
    ids = IndianTaxIds(
        in_gstin.compact(gstin_text) if gstin_text else "",
        in_pan.compact(pan_text) if pan_text else "",
    )
    if ids.gstin:
        try:
            validate_gstin(ids.gstin)
        except stdnum_errors.ValidationError as error:
            ids.errors["gstin"] = stdnum_message(error, "GSTIN")
        else:
            ids.gstin_state = GST_STATE_ALIASES.get(ids.gstin[:2], ids.gstin[:2])
            if not ids.pan:
                ids.pan = ids.gstin[2:12]
            elif ids.pan != ids.gstin[2:12]:
                ids.errors["pan"] = "The PAN does not match the one inside the GSTIN."
    if ids.pan and "pan" not in ids.errors:
        try:
            in_pan.validate(ids.pan)
        except stdnum_errors.ValidationError as error:
            ids.errors["pan"] = stdnum_message(error, "PAN")
    return ids


def check_abn(text: str) -> tuple[str, str | None]:
    """The ABN compact, and what is wrong with it (None when it is valid or empty)."""
    abn = au_abn.compact(text) if text else ""
    if abn:
        try:
            au_abn.validate(abn)
        except stdnum_errors.ValidationError as error:
            return abn, stdnum_message(error, "ABN")
    return abn, None
