"""GST: regimes, per-line tax with its rounding rule, place of supply from a GSTIN."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from app.core.money import percent_of
from app.invoicing.gst import (
    LineTax,
    invoice_tax,
    line_tax,
    place_of_supply_from_gstin,
    tax_regime,
)

D = Decimal


@pytest.mark.parametrize(
    ("args", "regime"),
    [
        (("IN", "27", "IN", "27", False), "intra"),
        (("IN", "27", "IN", "29", False), "inter"),
        (("in", "28", "IN", "37", False), "intra"),  # old Andhra code 28 reads as 37
        (("IN", "26", "IN", "25", False), "intra"),
        (("IN", "27", "US", None, True), "export"),
        (("IN", "27", "AU", None, False), "inter"),  # export without LUT pays IGST
        (("AU", None, "AU", None, False), "au_gst"),
        (("AU", None, "NZ", None, False), "other"),
        (("PH", None, "PH", None, False), "other"),
        (("US", None, "IN", "27", False), "other"),
    ],
)
def test_tax_regime(args, regime):
    assert tax_regime(*args) == regime


def test_tax_regime_needs_both_states_for_a_supply_in_india():
    with pytest.raises(ValueError, match="place of supply"):
        tax_regime("IN", "27", "IN", None, False)
    with pytest.raises(ValueError, match="supplier"):
        tax_regime("IN", "", "IN", "27", False)
    with pytest.raises(ValueError, match="not a GST state code"):
        tax_regime("IN", "27", "IN", "99", False)


def test_intra_state_splits_the_full_rate_tax_with_the_odd_paisa_on_cgst():
    assert line_tax("1000", 18, "intra") == LineTax(cgst=D("90.00"), sgst=D("90.00"))
    # 0.05 at 18% = 0.009 -> 0.01 of tax: CGST 0.01, SGST 0.00 (halves rounded separately
    # would each be 0.0045 -> 0.00 and lose the paisa).
    assert line_tax("0.05", 18, "intra") == LineTax(cgst=D("0.01"), sgst=D("0.00"))
    # 10.25 at 5% = 0.5125 -> 0.51: CGST 0.26, SGST 0.25.
    assert line_tax("10.25", 5, "intra") == LineTax(cgst=D("0.26"), sgst=D("0.25"))


def test_inter_state_export_australia_and_other():
    assert line_tax("1234.56", 18, "inter") == LineTax(igst=D("222.22"))
    assert line_tax("1234.56", 18, "export") == LineTax()
    assert line_tax("99.95", 10, "au_gst") == LineTax(other=D("10.00"))  # 9.995
    assert line_tax("99.95", 0, "au_gst") == LineTax()
    assert line_tax("100", "12", "other") == LineTax(other=D("12.00"))
    assert line_tax("100", D("0.25"), "inter").igst == D("0.25")


def test_line_tax_refuses_bad_input():
    with pytest.raises(ValueError, match="unknown tax regime"):
        line_tax("1", 18, "vat")
    with pytest.raises(ValueError, match="0 to 100"):
        line_tax("1", 101, "inter")
    with pytest.raises(ValueError, match="0 to 100"):
        line_tax("1", "-1", "inter")
    with pytest.raises(ValueError, match="Australian GST"):
        line_tax("1", 18, "au_gst")
    with pytest.raises(TypeError):
        line_tax("1", 18.0, "inter")


def test_random_lines_cgst_plus_sgst_is_the_full_rate_tax_and_totals_are_line_sums():
    rng = random.Random(46)
    rates = [D(r) for r in ("0.1", "0.25", "3", "5", "12", "18", "28")]
    for _ in range(300):
        values = [D(rng.randint(-(10**5), 10**9)) / 100 for _ in range(rng.randint(1, 8))]
        rate = rng.choice(rates)
        lines = [line_tax(v, rate, "intra") for v in values]
        for value, tax in zip(values, lines, strict=True):
            assert tax.cgst + tax.sgst == percent_of(value, rate)
            assert abs(tax.cgst - tax.sgst) <= D("0.01")
            assert tax.igst == tax.other == 0
        total = invoice_tax(lines)
        assert total.cgst == sum(t.cgst for t in lines)
        assert total.total == sum(t.total for t in lines)
        igst = invoice_tax(line_tax(v, rate, "inter") for v in values)
        assert igst.igst == total.cgst + total.sgst  # same tax, other heads


@pytest.mark.parametrize(
    ("gstin", "state"),
    [
        ("27AAPFU0939F1ZV", "27"),
        (" 29aagcb7383j1z4 ", "29"),
        ("28AAAAA0000A1Z5", "37"),
        ("38AAAAA0000A1Z5", "38"),
    ],
)
def test_place_of_supply_from_gstin(gstin, state):
    assert place_of_supply_from_gstin(gstin) == state


@pytest.mark.parametrize("gstin", ["", "27AAPFU0939F1Z", "XXAAPFU0939F1ZV", "99AAPFU0939F1ZV"])
def test_place_of_supply_refuses_what_is_not_a_gstin(gstin):
    with pytest.raises(ValueError):
        place_of_supply_from_gstin(gstin)
