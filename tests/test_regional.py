"""Regional settings: message templates in India's languages (installed per workspace, picked
by the contact's language, dates in the language, amounts in lakh and crore), PDFs that print
India's scripts, and the state's holidays moving due dates."""

from __future__ import annotations

import io
from datetime import date, time
from decimal import Decimal
from string import Formatter

import pytest
from babel.dates import format_date
from jinja2 import nodes
from pypdf import PdfReader
from sqlalchemy import select

from app.collections.notices import services as notices
from app.collections.notices.statement import STATEMENT_WORDS
from app.core.language import day_in, money_country
from app.core.money import format_money
from app.invoicing.pdf import html_to_pdf
from app.library import services as library
from app.message_templates import defaults, translations
from app.message_templates.defaults import PURPOSES
from app.message_templates.models import MessageTemplate
from app.message_templates.rendering import (
    TEXT_ENV,
    message_context,
    template_errors,
    whatsapp_parts,
)
from app.message_templates.services import language_of, template_for
from app.settings.models import WorkspaceSettings
from tenants.models import Tenant
from tests.helpers import csrf_token_from, tenant_session


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def pdf_fonts(data: bytes) -> set[str]:
    return {
        str(font.get_object()["/BaseFont"])
        for page in PdfReader(io.BytesIO(data)).pages
        for font in page["/Resources"]["/Font"].values()
    }


def test_a_pdf_prints_tamil_and_devanagari_in_their_own_fonts(app):
    html = "<p>அன்புள்ள ரவி அவர்களுக்கு ₹1,23,456.00</p><p><b>प्रिय रवि जी</b></p>"
    with app.app_context():
        first = html_to_pdf(html, WorkspaceSettings())
        again = html_to_pdf(html, WorkspaceSettings())
    text = pdf_text(first)
    assert "அன்புள்ள" in text and "ரவி" in text and "₹1,23,456.00" in text
    assert "प्रिय" in text
    fonts = pdf_fonts(first)
    assert any("Noto-Sans-Tamil" in f for f in fonts), fonts
    assert any("Noto-Sans-Devanagari-Bold" in f for f in fonts), fonts
    assert pdf_text(again) == text  # the thread's font configuration, kept, still has them


# Templates in India's languages -------------------------------------------------------------


def _variables(source: str) -> set[str]:
    """The dotted variables a template text uses (contact.first_name, notice.total ...)."""
    tree = TEXT_ENV.parse(source)
    found = {
        f"{node.node.name}.{node.attr}"
        for node in tree.find_all(nodes.Getattr)
        if isinstance(node.node, nodes.Name)
    }
    names = {node.name for node in tree.find_all(nodes.Name) if node.ctx == "load"}
    return found | {name for name in names if name not in {n.split(".")[0] for n in found}}


TRANSLATED = ["hi", "mr", "ta", "te", "kn", "bn", "gu", "fil"]


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_english_default_has_a_translation_with_the_same_variables(language):
    # Each follows the English of its country: Filipino the Philippine texts (no UPI link).
    country = translations.english_country(language)
    assert country == ("PH" if language == "fil" else "IN")
    for channel in ("email", "whatsapp", "sms"):
        for purpose in PURPOSES:
            english = defaults.default_template(channel, purpose, country)
            translated = translations.translated_template(language, channel, purpose)
            assert translated.language == language
            assert _variables(translated.body) == _variables(english.body), (channel, purpose)
            if channel == "email":
                assert _variables(translated.subject) == _variables(english.subject), purpose
                subject_column = MessageTemplate.__table__.c.subject.type.length
                assert len(translated.subject) <= subject_column, purpose
            # Each renders on the sample values, within its channel's limits.
            assert not template_errors(channel, translated.subject, translated.body)
            if channel == "whatsapp":
                assert translated.provider_template_name == english.provider_template_name
                assert len(whatsapp_parts(translated.body)[1]) == len(
                    whatsapp_parts(english.body)[1]
                )


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_statement_under_a_notice_has_the_same_fields_in_every_language(language):
    words = translations.statement_words(language)
    assert words.keys() == STATEMENT_WORDS.keys()
    for key, english in STATEMENT_WORDS.items():
        fields = {name for _, name, _, _ in Formatter().parse(english) if name}
        assert {name for _, name, _, _ in Formatter().parse(words[key]) if name} == fields, key
    assert translations.statement_words("xx") is None


def test_templates_are_added_per_language_and_once(app, db_session, make_tenant):
    tenant = make_tenant(region="Tamil Nadu")
    session = tenant_session(db_session, tenant)
    with app.app_context():
        assert translations.install_language(session, "ta") == 18  # 3 channels x 6 purposes
        assert translations.install_language(session, "ta") == 0
        tamil = session.scalars(
            select(MessageTemplate).where(MessageTemplate.language == "ta")
        ).all()
        assert {(t.channel, t.purpose) for t in tamil} == {
            (c, p) for c in ("email", "whatsapp", "sms") for p in PURPOSES
        }
        assert "நினைவூட்டுகிறோம்" in template_for(session, "email", "notice_1", "ta").body
        # Hindi is not installed: a Hindi contact still gets English.
        assert template_for(session, "email", "notice_1", "hi").language == "en"
        with pytest.raises(ValueError):
            translations.install_language(session, "xx")
    # A Tamil Nadu workspace is offered Tamil first, then Hindi.
    offered = translations.offered_languages("IN", "Tamil Nadu")
    assert offered[:2] == ["ta", "hi"] and set(offered) == set(TRANSLATED)
    assert translations.offered_languages("IN", "27")[:2] == ["mr", "hi"]


def test_the_templates_page_adds_a_language_its_states_first(
    app, client, db_session, make_tenant, make_user, login
):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="Karnataka")
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/message-templates/")
    assert page.status_code == 200
    buttons = page.text[page.text.index('data-testid="add-languages"') :]
    assert buttons.index("Kannada (ಕನ್ನಡ)") < buttons.index("Hindi (हिन्दी)")
    assert buttons.index("Hindi (हिन्दी)") < buttons.index("Tamil (தமிழ்)")
    token = csrf_token_from(page.text)
    answer = client.post(
        f"/t/{tenant.slug}/message-templates/languages",
        data={"language": "kn", "csrf_token": token},
    )
    assert answer.status_code == 303
    page = client.get(f"/t/{tenant.slug}/message-templates/")
    assert "Added 18 templates in Kannada" in page.text
    assert "1st notice (Kannada)" in page.text
    assert "Add the templates in Kannada" not in page.text  # it has them now
    refused = client.post(
        f"/t/{tenant.slug}/message-templates/languages",
        data={"language": "../en", "csrf_token": token},
    )
    assert refused.status_code == 303
    assert (
        "Choose one of the languages offered."
        in client.get(f"/t/{tenant.slug}/message-templates/").text
    )


# A Tamil notice to a Tamil Nadu client ---------------------------------------------------------


def test_a_tamil_preferring_contact_gets_the_notice_in_tamil_with_indian_grouping(
    app, db_session, make_tenant, make_user, storage_root, request, run_jobs, received_mail
):
    tenant = make_tenant(
        region="Tamil Nadu",
        name="Kaveri Textiles",
        legal_name="Kaveri Textiles Private Limited",
        send_window_start=time(0),
        send_window_end=time(23, 59, 59),
        send_on_business_days_only=False,
    )
    session = tenant_session(db_session, tenant)
    make = request.getfixturevalue
    buyer = make("make_client")(
        session, name="Madurai Mills", short_name="MM", region="33", gstin=None
    )
    contact = make("make_contact")(
        session,
        buyer,
        full_name="Senthil Kumar",
        email="senthil@madurai.example",
        preferred_language="ta",
    )
    with app.app_context():
        translations.install_language(session, "ta")
        invoice = make("make_invoice")(
            session,
            tenant,
            buyer,
            ("1234567.00",),
            issued_on=date(2026, 7, 1),
            due_on=date(2026, 6, 30),
            started_on=date(2026, 6, 1),
        )
        notice = make("make_notice")(session, buyer, [invoice], contact=contact, status="approved")
        session.commit()
        notices.send_notices(session, tenant, [notice.id])
        session.commit()
    run_jobs()
    (mail,) = received_mail()
    assert mail["To"] == "senthil@madurai.example"
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert body.startswith("அன்புள்ள Senthil அவர்களுக்கு,")
    assert "என்பதைப் பணிவுடன் நினைவூட்டுகிறோம்" in body
    assert "₹12,34,567.00" in body  # lakh grouping, not 1,234,567.00
    due = format_date(invoice.due_date, "medium", locale="ta_IN")
    assert f"{invoice.due_date:%b}" not in due  # the month in Tamil
    assert due in body
    assert "நினைவூட்டல்" in str(mail["Subject"])
    # The statement under it is in Tamil too.
    assert "இந்த அறிவிப்பில் உள்ள விலைப்பட்டியல்களின் விவரம்:" in body
    assert "இப்போது செலுத்த வேண்டிய மொத்தம்: ₹12,34,567.00" in body
    assert "Total now due" not in body and "Dear" not in body
    # The statement of account goes with it, and prints the client's name.
    (attachment,) = list(mail.iter_attachments())
    assert "12,34,567.00" in pdf_text(attachment.get_content())


def test_without_templates_in_the_language_the_notice_is_in_english(
    app, db_session, make_tenant, storage_root, request
):
    tenant = make_tenant(region="Tamil Nadu")
    session = tenant_session(db_session, tenant)
    make = request.getfixturevalue
    buyer = make("make_client")(session, region="33", gstin=None, preferred_language="ta")
    contact = make("make_contact")(session, buyer)  # no language of their own: the client's
    with app.app_context():
        invoice = make("make_invoice")(
            session,
            tenant,
            buyer,
            ("1234567.00",),
            issued_on=date(2026, 7, 1),
            due_on=date(2026, 6, 30),
            started_on=date(2026, 6, 1),
        )
        english = message_context(session, tenant, buyer, contact, invoice, language="en")
        tamil = message_context(session, tenant, buyer, contact, invoice, language="ta")
    assert english["invoice"]["due_date"] == f"{invoice.due_date:%d %b %Y}"
    assert tamil["invoice"]["due_date"] == format_date(invoice.due_date, "medium", locale="ta_IN")
    assert english["invoice"]["total"] == tamil["invoice"]["total"] == "₹12,34,567.00"
    assert language_of(contact, buyer) == "ta"
    assert language_of(None, None) == "en"


def test_an_indian_language_writes_amounts_in_lakh_and_crore_whatever_the_country():
    assert money_country("ta", "AU") == "IN"
    assert money_country("en", "AU") == "AU"
    assert format_money(Decimal("12345678"), "INR", money_country("hi", "AU")) == "₹1,23,45,678.00"
    assert day_in(date(2026, 11, 15), "hi") == format_date(
        date(2026, 11, 15), "medium", locale="hi_IN"
    )
    assert day_in(date(2026, 11, 15), "en") == "15 Nov 2026"
    assert day_in(None, "ta") == ""


# Holidays per state, and the regional settings page ----------------------------------------


def _due_date_of_an_invoice_issued_16_december_2025(app, db_session, tenant, request):
    """Net 30 from 16 Dec 2025 is Thursday 15 Jan 2026: Thiruvalluvar Day in Tamil Nadu, a
    working day in Maharashtra and Karnataka."""
    session = tenant_session(db_session, tenant)
    buyer = request.getfixturevalue("make_client")(session, region="27")
    with app.app_context():
        invoice = request.getfixturevalue("make_invoice")(
            session,
            tenant,
            buyer,
            ("1000.00",),
            issued_on=date(2025, 12, 16),
            started_on=date(2025, 12, 1),
        )
    return invoice.due_date


def test_the_states_holidays_move_a_due_date(app, db_session, make_tenant, request):
    in_tamil_nadu = make_tenant(region="Tamil Nadu")
    in_maharashtra = make_tenant(region="Maharashtra")
    # 15 and 16 Jan are Tamil Nadu's holidays, then the weekend: Monday the 19th.
    assert _due_date_of_an_invoice_issued_16_december_2025(
        app, db_session, in_tamil_nadu, request
    ) == date(2026, 1, 19)
    assert _due_date_of_an_invoice_issued_16_december_2025(
        app, db_session, in_maharashtra, request
    ) == date(2026, 1, 15)


def test_the_regional_page_lists_the_states_holidays_and_changes_the_state(
    app, client, db_session, make_tenant, make_user, login, request
):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="Tamil Nadu")
    login(client, owner)
    url = f"/t/{tenant.slug}/settings/regional"
    page = client.get(url, query_string={"year": "2026"})
    assert page.status_code == 200
    assert "Thiruvalluvar Day" in page.text and "15 Jan 2026" in page.text
    assert '<option value="33" selected>Tamil Nadu</option>' in page.text
    assert "Tamil (தமிழ்)" in page.text  # the state's language, offered for messages
    token = csrf_token_from(page.text)

    bad = client.post(url, data={"region": "Atlantis", "csrf_token": token})
    assert bad.status_code == 422 and "Choose a state or union territory" in bad.text
    assert db_session.get(Tenant, tenant.id).region == "Tamil Nadu"

    saved = client.post(url, data={"region": "29", "csrf_token": token})
    assert saved.status_code == 303
    db_session.expire_all()
    assert db_session.get(Tenant, tenant.id).region == "Karnataka"
    page = client.get(url, query_string={"year": "2026"})
    assert "Thiruvalluvar Day" not in page.text and "Makar Sankranti" in page.text
    # Due dates follow the new state at once.
    assert _due_date_of_an_invoice_issued_16_december_2025(
        app, db_session, db_session.get(Tenant, tenant.id), request
    ) == date(2026, 1, 15)


def test_the_state_must_match_the_gstin(app, client, db_session, make_tenant, make_user, login):
    owner = make_user()
    tenant = make_tenant(owner=owner, region="Maharashtra", gstin="27AAPFU0939F1ZV")
    login(client, owner)
    url = f"/t/{tenant.slug}/settings/regional"
    token = csrf_token_from(client.get(url).text)
    refused = client.post(url, data={"region": "33", "csrf_token": token})
    assert refused.status_code == 422
    assert "Your GSTIN is registered in Maharashtra" in refused.text
    db_session.expire_all()
    assert db_session.get(Tenant, tenant.id).region == "Maharashtra"


def test_australia_by_state_and_the_philippines_by_region(
    app, client, db_session, make_tenant, make_user, login
):
    owner = make_user()
    sydney = make_tenant(
        owner=owner, country="AU", time_zone="Australia/Sydney", currency="AUD", region="NSW"
    )
    login(client, owner)
    page = client.get(f"/t/{sydney.slug}/settings/regional", query_string={"year": "2026"})
    assert '<option value="NSW" selected>New South Wales</option>' in page.text
    assert "Easter Saturday" in page.text  # kept in NSW, not in WA
    token = csrf_token_from(page.text)
    client.post(
        f"/t/{sydney.slug}/settings/regional",
        data={"region": "Western Australia", "csrf_token": token},
    )
    db_session.expire_all()
    assert db_session.get(Tenant, sydney.id).region == "WA"
    page = client.get(f"/t/{sydney.slug}/settings/regional", query_string={"year": "2026"})
    assert "Western Australia Day" in page.text and "Easter Saturday" not in page.text

    manila = make_tenant(
        owner=owner, country="PH", time_zone="Asia/Manila", currency="PHP", region="NCR"
    )
    page = client.get(f"/t/{manila.slug}/settings/regional", query_string={"year": "2026"})
    assert '<option value="NCR" selected>National Capital Region</option>' in page.text
    assert "Rizal Day" in page.text
    assert "regional and local holidays" in page.text  # said plainly: the calendar is national


def test_the_library_offers_the_workspaces_state_variants_first(db_session):
    library.load_library(db_session)
    found = library.search(db_session, industry="construction", per_page=1000, home_region="29")
    regions = [t.region for t in found.templates]
    groups: dict[tuple, list] = {}
    for template in found.templates:
        groups.setdefault((template.complexity, template.project_size), []).append(template.region)
    with_variants = [g for g in groups.values() if "29" in g and "27" in g]
    assert with_variants, regions
    for group in with_variants:
        # Karnataka's own first, then India's and the global ones, other states last.
        assert group[0] == "29"
        assert group.index("27") > max(i for i, r in enumerate(group) if r in ("IN", None))
    # Without a home state the order is the library's own: every state's variant first.
    plain = library.search(db_session, industry="construction", per_page=1000)
    assert [t.id for t in plain.templates] != [t.id for t in found.templates]
