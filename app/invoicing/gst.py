"""Tax on invoice lines: which regime applies (Indian GST intra/inter-state, export under LUT,
Australian GST, or a plain tax line) and the tax of one line, rounded per line.

Rounding rule (per line, to the paisa/cent, half up): the line's full tax is computed first,
`tax = round(taxable_value * rate / 100)`. For an intra-state supply that tax is then split
into CGST = round(tax / 2) and SGST = tax - CGST, so CGST + SGST always equals the full-rate
tax (two half-rate taxes rounded separately could lose or gain a paisa against it); when the
tax is an odd number of paise, CGST carries the extra paisa. Invoice totals are the sums of the
rounded line amounts (`invoice_tax`), so the total on the invoice equals the sum of its lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from app.core.money import CENT, percent_of, to_money
from app.core.regions import GST_STATE_ALIASES, GST_STATES

REGIMES = ("intra", "inter", "export", "au_gst", "other")
AU_GST_RATE = Decimal("10")
ZERO = Decimal("0.00")
GSTIN_SHAPE = re.compile(r"^[0-9]{2}[0-9A-Z]{13}$")


def normalise_state(code: str | None) -> str | None:
    """A GST state code as two digits, old codes read as today's state (25 -> 26, 28 -> 37)."""
    if code is None or not str(code).strip():
        return None
    code = str(code).strip().zfill(2)
    code = GST_STATE_ALIASES.get(code, code)
    if code not in GST_STATES:
        raise ValueError(f"{code!r} is not a GST state code")
    return code


def tax_regime(
    supplier_country: str,
    supplier_state: str | None,
    client_country: str,
    place_of_supply_state: str | None,
    is_export_with_lut: bool = False,
) -> str:
    """Which tax applies to a supply.

    - Indian supplier, Indian place of supply in the supplier's own state: "intra" (CGST + SGST,
      each at half the rate); in another state: "inter" (IGST). States are GST state codes.
    - Indian supplier, client outside India: "export" when made under a Letter of Undertaking
      (zero-rated, no tax), otherwise "inter" (an export is an inter-State supply: IGST paid,
      refundable to the exporter).
    - Australian supplier, Australian client: "au_gst" (GST, 10%).
    - Anything else: "other" — one plain tax line at the rate the invoice gives (0 for a
      GST-free export from Australia: whether an export of services is GST-free depends on
      conditions of GST Act s.38-190 that the code cannot check).
    """
    supplier_country = supplier_country.upper()
    client_country = client_country.upper()
    if supplier_country == "IN":
        if client_country != "IN":
            return "export" if is_export_with_lut else "inter"
        supplier = normalise_state(supplier_state)
        place = normalise_state(place_of_supply_state)
        if supplier is None:
            raise ValueError("the supplier's GST state is needed to choose CGST+SGST or IGST")
        if place is None:
            raise ValueError("the place of supply (a GST state) is needed for a supply in India")
        return "intra" if place == supplier else "inter"
    if supplier_country == "AU" and client_country == "AU":
        return "au_gst"
    return "other"


@dataclass(frozen=True)
class LineTax:
    cgst: Decimal = ZERO
    sgst: Decimal = ZERO
    igst: Decimal = ZERO
    other: Decimal = ZERO  # Australian GST, or the plain tax of the "other" regime

    @property
    def total(self) -> Decimal:
        return self.cgst + self.sgst + self.igst + self.other

    def __add__(self, other: LineTax) -> LineTax:
        return LineTax(
            self.cgst + other.cgst,
            self.sgst + other.sgst,
            self.igst + other.igst,
            self.other + other.other,
        )


def _rate(rate) -> Decimal:
    if isinstance(rate, float):
        raise TypeError("a tax rate must not be a float; pass a Decimal, an int or a string")
    rate = rate if isinstance(rate, Decimal) else Decimal(str(rate).strip())
    if not rate.is_finite() or not 0 <= rate <= 100:
        raise ValueError(f"a tax rate is a percentage from 0 to 100, not {rate}")
    return rate


def line_tax(taxable_value, rate, regime: str) -> LineTax:
    """The tax of one line of `taxable_value` at `rate` per cent (the full GST rate, e.g. 18),
    rounded per line as the module describes. "export" is zero-rated: no tax whatever the rate.
    "au_gst" is Australian GST: the rate must be 10 (or 0 for a GST-free line)."""
    if regime not in REGIMES:
        raise ValueError(f"unknown tax regime {regime!r}; one of {', '.join(REGIMES)}")
    taxable_value = to_money(taxable_value)
    rate = _rate(rate)
    if regime == "export":
        return LineTax()
    if regime == "au_gst" and rate not in (AU_GST_RATE, 0):
        raise ValueError(f"Australian GST is {AU_GST_RATE}% (or 0 for a GST-free line)")
    tax = percent_of(taxable_value, rate)
    if regime == "intra":
        cgst = (tax / 2).quantize(CENT, rounding=ROUND_HALF_UP)
        return LineTax(cgst=cgst, sgst=tax - cgst)
    if regime == "inter":
        return LineTax(igst=tax)
    return LineTax(other=tax)


def invoice_tax(lines: Iterable[LineTax]) -> LineTax:
    """The invoice's tax: the sum of its lines' rounded taxes."""
    total = LineTax()
    for line in lines:
        total = total + line
    return total


def place_of_supply_from_gstin(gstin: str) -> str:
    """The GST state code a GSTIN is registered in (its first two digits; old codes 25 and 28
    read as 26 and 37), e.g. "27" for "27AAPFU0939F1ZV". The check character is the tax ids'
    check's business (`app.core.tax_ids.validate_gstin`); here the shape and state are checked."""
    value = (gstin or "").strip().upper()
    if not GSTIN_SHAPE.match(value):
        raise ValueError(f"{gstin!r} is not a GSTIN (15 characters, starting with a state code)")
    code = GST_STATE_ALIASES.get(value[:2], value[:2])
    if code not in GST_STATES:
        raise ValueError(f"{gstin!r} starts with {value[:2]}, which is not a GST state code")
    return code
