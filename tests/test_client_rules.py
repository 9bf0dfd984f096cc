"""Every data rule of the client record, one test each (app/clients/rules.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from stdnum.eu import vat as eu_vat
from werkzeug.datastructures import MultiDict

from app.clients.rules import ClientContext, clean_client, clean_contact, clean_site

CONTEXT = ClientContext(
    tenant_country="IN",
    tenant_currency="INR",
    today=date(2026, 11, 22),
    industries={"construction": 3, "retail": 4},
    industry_ids=frozenset({3, 4}),
    member_ids=frozenset({11, 12}),
)
VALID_GSTIN = "27AAPFU0939F1ZV"  # Maharashtra (27)
VALID = {
    "full_name": "Kaveri Builders Private Limited",
    "short_name": "Kaveri",
    "location": "local",
    "region": "Maharashtra",
    "gstin": VALID_GSTIN,
    "payment_terms": "net",
    "payment_days": "30",
}


def errors_for(**changes) -> dict[str, str]:
    return clean_client({**VALID, **changes}, CONTEXT)[1]


def values_for(**changes) -> dict:
    values, errors = clean_client({**VALID, **changes}, CONTEXT)
    assert errors == {}, errors
    return values


def test_a_complete_valid_record_passes_with_defaults_filled_in():
    values = values_for()
    assert values["country"] == "IN" and values["currency"] == "INR"
    assert values["status"] == "active" and values["preferred_channel"] == "email"
    assert values["region"] == "27" and values["pan"] == "AAPFU0939F"


@pytest.mark.parametrize("field", ["full_name", "short_name"])
@pytest.mark.parametrize(
    ("value", "message"),
    [("", "is required"), ("K", "2 to 191"), ("x" * 192, "2 to 191"), ("   ", "is required")],
)
def test_names_are_required_and_2_to_191_characters(field, value, message):
    assert message in errors_for(**{field: value})[field]


def test_names_are_tidied_and_191_characters_are_fine():
    assert values_for(full_name="  Kaveri   Builders  ")["full_name"] == "Kaveri Builders"
    assert values_for(short_name="k" * 191)["short_name"] == "k" * 191


def test_location_is_required_and_must_be_local_or_foreign():
    assert "Local or Foreign" in errors_for(location="")["location"]
    assert "Local or Foreign" in errors_for(location="abroad")["location"]


def test_local_means_the_tenants_country_and_foreign_another_one():
    assert "choose Foreign" in errors_for(country="AU", gstin="", region="NSW")["country"]
    assert "is Local" in errors_for(location="foreign", country="IN")["country"]
    foreign = values_for(location="foreign", country="AU", gstin="", region="NSW")
    assert foreign["country"] == "AU" and foreign["region"] == "NSW"
    assert "required" in errors_for(location="foreign", country="", gstin="")["country"]


def test_indian_states_are_kept_by_gst_code():
    assert values_for(region="27")["region"] == "27"
    assert values_for(region="27-Maharashtra")["region"] == "27"
    assert "GST code" in errors_for(region="Atlantis", gstin="")["region"]
    # An older code still found on registrations is read as today's state.
    assert values_for(region="28", gstin="")["region"] == "37"


def test_gstin_checksum_is_checked():
    assert "check digit" in errors_for(gstin="27AAPFU0939F1ZW")["gstin"]
    assert "number of characters" in errors_for(gstin="27AAPFU0939F1Z")["gstin"]


def test_gstin_state_must_match_the_billing_state():
    message = errors_for(region="29")["gstin"]
    assert "Maharashtra (27)" in message and "Karnataka (29)" in message


def test_gstin_fills_an_empty_state_and_the_pan():
    values = values_for(region="", pan="")
    assert values["region"] == "27" and values["pan"] == "AAPFU0939F"


def test_pan_must_match_the_gstin_and_be_valid():
    assert "does not match" in errors_for(pan="ABCPE1234F")["pan"]
    assert "PAN" in errors_for(gstin="", pan="12345")["pan"]
    assert values_for(gstin="", pan="ABCPE1234F")["pan"] == "ABCPE1234F"


def test_indian_tax_ids_belong_to_indian_clients():
    foreign = {"location": "foreign", "country": "AU", "region": ""}
    assert "India" in errors_for(**foreign)["gstin"]
    assert "India" in errors_for(**foreign, gstin="", pan="ABCPE1234F")["pan"]


def test_abn_checksum_for_australian_clients():
    australian = {"location": "foreign", "country": "AU", "gstin": "", "region": "NSW"}
    assert values_for(**australian, abn="51 824 753 556")["abn"] == "51824753556"
    assert "check digit" in errors_for(**australian, abn="51 824 753 557")["abn"]
    assert "Australia" in errors_for(abn="51824753556")["abn"]


def test_eu_vat_numbers_are_checked():
    german = {"location": "foreign", "country": "DE", "gstin": "", "region": ""}
    valid = "DE136695976"
    assert eu_vat.is_valid(valid)
    assert values_for(**german, vat_number="de 136695976")["vat_number"] == valid
    assert "VAT number" in errors_for(**german, vat_number="DE136695977")["vat_number"]


def test_philippine_tin_format_and_a_free_tin_elsewhere():
    filipino = {"location": "foreign", "country": "PH", "gstin": "", "region": ""}
    assert values_for(**filipino, tin="123-456-789-000")["tin"] == "123456789000"
    assert "9 digits" in errors_for(**filipino, tin="12345")["tin"]
    assert values_for(tin="ANY-FREE-ID 42")["tin"] == "ANY-FREE-ID 42"
    assert "32" in errors_for(tin="x" * 33)["tin"]


@pytest.mark.parametrize("terms", ["net", "mfi"])
def test_payment_days_are_required_for_net_and_mfi(terms):
    assert "how many days" in errors_for(payment_terms=terms, payment_days="")["payment_days"]
    assert "1 to 365" in errors_for(payment_terms=terms, payment_days="0")["payment_days"]
    assert "1 to 365" in errors_for(payment_terms=terms, payment_days="400")["payment_days"]
    assert values_for(payment_terms=terms, payment_days="45")["payment_days"] == 45


@pytest.mark.parametrize("terms", ["custom", "immediate"])
def test_payment_days_are_refused_for_custom_and_immediate(terms):
    note = {"payment_terms_note": "50% advance"} if terms == "custom" else {}
    assert (
        "Net and MFI" in errors_for(payment_terms=terms, payment_days="30", **note)["payment_days"]
    )
    assert values_for(payment_terms=terms, payment_days="", **note)["payment_days"] is None


def test_custom_terms_need_a_description():
    assert "Describe" in errors_for(payment_terms="custom", payment_days="")["payment_terms_note"]
    assert "Net, MFI, Custom or Immediate" in errors_for(payment_terms="weekly")["payment_terms"]


def test_engagement_manager_must_be_a_member():
    assert values_for(engagement_manager_user_id="11")["engagement_manager_user_id"] == 11
    assert "member" in errors_for(engagement_manager_user_id="99")["engagement_manager_user_id"]


@pytest.mark.parametrize(
    ("year", "ok"),
    [
        ("2015", True),
        ("2026", True),
        ("2014", False),
        ("2027", False),
        ("15", False),
        ("20x5", False),
    ],
)
def test_new_business_year_is_four_digits_from_2015_and_not_in_the_future(year, ok):
    if ok:
        assert values_for(new_business_year=year)["new_business_year"] == int(year)
    else:
        assert "new_business_year" in errors_for(new_business_year=year)


def test_industry_comes_from_the_managed_list():
    assert values_for(industry="Construction")["industry_id"] == 3
    assert values_for(industry_id="4")["industry_id"] == 4
    assert "from the list" in errors_for(industry="Space mining")["industry_id"]


def test_currency_and_credit_limit():
    assert values_for(currency="usd")["currency"] == "USD"
    assert "three-letter" in errors_for(currency="RUPEES")["currency"]
    assert values_for(credit_limit="1,00,000.5")["credit_limit"] == Decimal("100000.50")
    assert "two decimals" in errors_for(credit_limit="10.001")["credit_limit"]
    assert "positive" in errors_for(credit_limit="-5")["credit_limit"]
    assert "amount" in errors_for(credit_limit="lots")["credit_limit"]


def test_language_channel_and_status_come_from_their_lists():
    assert "language" in errors_for(preferred_language="xx")["preferred_language"]
    assert "WhatsApp" in errors_for(preferred_channel="pigeon")["preferred_channel"]
    assert values_for(status="On hold")["status"] == "on_hold"
    assert "prospect" in errors_for(status="lost")["status"]


def test_tags_are_tidied_and_bounded():
    assert values_for(tags=" Key Account, north,key account ")["tags"] == ["key account", "north"]
    assert "At most 20" in errors_for(tags=",".join(f"t{i}" for i in range(21)))["tags"]
    assert "letters, digits" in errors_for(tags="ok, bad!tag")["tags"]


def test_contact_email_phone_and_roles():
    values, errors = clean_contact(
        MultiDict(
            [
                ("full_name", "Ravi Kumar"),
                ("email", "Ravi@Example.com"),
                ("phone", "098765 43210"),
                ("roles", "billing"),
                ("roles", "primary"),
            ]
        ),
        "IN",
    )
    assert errors == {}
    assert values["phone"] == "+919876543210" and values["roles"] == ["billing", "primary"]
    assert values["email"] == "Ravi@example.com"
    _, errors = clean_contact({"full_name": "R", "email": "not-an-email", "phone": "12"}, "IN")
    assert set(errors) == {"full_name", "email", "phone"}
    _, errors = clean_contact({"full_name": "Ravi Kumar"}, "IN")
    assert "e-mail address or a phone" in errors["email"]
    _, errors = clean_contact(
        MultiDict([("full_name", "Ravi"), ("email", "r@example.com"), ("roles", "boss")]), "IN"
    )
    assert "billing, primary and escalation" in errors["roles"]


def test_phone_default_region_is_the_tenants_country():
    values, _ = clean_contact({"full_name": "Jo", "phone": "0412 345 678"}, "AU")
    assert values["phone"] == "+61412345678"


def test_site_coordinates_are_in_range_and_come_in_pairs():
    values, errors = clean_site(
        {"name": "Pune works", "latitude": "18.520430", "longitude": "73.856744"}
    )
    assert errors == {} and values["latitude"] == Decimal("18.520430")
    assert (
        "-90 to 90"
        in clean_site({"name": "X site", "latitude": "91", "longitude": "0"})[1]["latitude"]
    )
    assert "both" in clean_site({"name": "X site", "latitude": "18.5"})[1]["longitude"]
    assert (
        "decimal degrees"
        in clean_site({"name": "X site", "latitude": "north", "longitude": "1"})[1]["latitude"]
    )


def test_our_check_character_agrees_with_python_stdnum():
    from stdnum.in_ import gstin

    from app.core.tax_ids import gstin_check_character

    for body in ("27AAPFU0939F1Z", "29AAPFU0939F1Z", "07AAACR5055K1Z", "33AAACH7409R2Z"):
        assert gstin.is_valid(body + gstin_check_character(body))


def test_ladakh_gstins_are_accepted_with_the_right_check_character():
    from app.core.tax_ids import gstin_check_character

    body = "38AAPFU0939F1Z"
    ladakh = body + gstin_check_character(body)
    assert values_for(region="38", gstin=ladakh)["region"] == "38"
    wrong = body + ("A" if ladakh[-1] != "A" else "B")
    assert "check digit" in errors_for(region="38", gstin=wrong)["gstin"]
