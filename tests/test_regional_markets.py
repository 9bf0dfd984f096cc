"""Australia by state and territory, the Philippines by region: the template library's plans for
them (each Australian state's variant with its security of payment Act's payment terms, offered
first for a workspace in that state; Philippine plans with national notes), the default messages
worded for the country (no UPI, UTR or MSMED in them), Filipino messages, and what the regional
settings page says follows from the chosen state or region."""

from __future__ import annotations

import json
import re
from datetime import date, time

import pytest
from babel.dates import format_date
from sqlalchemy import select

from app.collections.notices import services as notices
from app.library import services as library
from app.library.models import LibraryTemplate
from app.message_templates import defaults, translations
from app.message_templates.models import MessageTemplate
from app.message_templates.rendering import message_context, render_for_channel
from tests.helpers import tenant_session

# Words that belong to India's receivables and must not reach an Australian or Philippine client.
INDIA_ONLY = re.compile(r"\b(UPI|UTR|MSMED|GSTIN|GST|lakh|crore|TDS)\b|₹")

# Each state's Act and the payment terms its variant states (the numbers checked against the
# sources the data file names).
AU_STATES = {
    "NSW": ("Building and Construction Industry Security of Payment Act 1999", "15 business days"),
    "VIC": ("Building and Construction Industry Security of Payment Act 2002", "10 business days"),
    "QLD": ("Building Industry Fairness (Security of Payment) Act 2017", "25 business days"),
    "WA": ("Building and Construction Industry (Security of Payment) Act 2021", "25"),
    "SA": ("Building and Construction Industry Security of Payment Act 2009", "15 business days"),
    "TAS": ("Building and Construction Industry Security of Payment Act 2009", "20 days"),
    "ACT": ("Building and Construction Industry (Security of Payment) Act 2009", "15 business"),
    "NT": ("Construction Contracts (Security of Payments) Act 2004", "65 working days"),
}
MARKET_FILES = ("construction_au", "it_services_au", "construction_ph", "it_services_ph")


@pytest.fixture
def loaded(db_session):
    library.load_library(db_session)
    db_session.commit()
    return db_session


def groups_of(templates) -> dict[tuple, list]:
    """The regions of the templates of each level and size, in the order the search gave."""
    groups: dict[tuple, list] = {}
    for template in templates:
        groups.setdefault((template.complexity, template.project_size), []).append(template.region)
    return groups


# The template library -------------------------------------------------------------------------


def test_an_australian_states_variant_comes_first_with_its_acts_payment_terms(loaded):
    home = library.library_region("AU", "Queensland")
    assert home == "AU-QLD" and library.library_region("AU", "qld") == "AU-QLD"
    found = library.search(
        loaded, industry="construction", per_page=1000, home_region=home, home_country="AU"
    )
    regions = [t.region for t in found.templates]
    # India's and the Philippines' plans come after every Australian and global one.
    first_foreign = min(i for i, r in enumerate(regions) if r in ("IN", "PH") or str(r).isdigit())
    assert all(r is None or r.startswith("AU") for r in regions[:first_foreign])
    with_variants = [g for g in groups_of(found.templates).values() if "AU-QLD" in g]
    assert len(with_variants) == 4, regions  # standard and complex, medium and large
    for group in with_variants:
        ours = [r for r in group if r is None or r.startswith("AU")]
        # Queensland's own, then Australia's, then the global ones, then the other states.
        assert ours[:2] == ["AU-QLD", "AU"], group
        assert set(ours[-7:]) == {f"AU-{s}" for s in AU_STATES if s != "QLD"}, group

    qld = next(t for t in found.templates if t.region == "AU-QLD")
    assert qld.name.endswith("— Queensland")
    assert "15 business days" in qld.notes and "25 business days" in qld.notes
    assert "Guidance only" in qld.notes  # worded as guidance, like every plan


@pytest.mark.parametrize("state", AU_STATES)
def test_every_australian_state_has_a_variant_naming_its_act_and_terms(loaded, state):
    variants = loaded.scalars(
        select(LibraryTemplate).where(
            LibraryTemplate.region == f"AU-{state}", LibraryTemplate.industry == "construction"
        )
    ).all()
    assert len(variants) == 4
    act, terms = AU_STATES[state]
    first_note = variants[0].notes.split("\n")[0]
    assert act in first_note and "(Source: http" in first_note
    assert terms in variants[0].notes


def test_every_legal_figure_in_the_australian_and_philippine_data_names_its_source():
    for name in MARKET_FILES:
        data = json.loads((library.DATA_DIR / f"{name}.json").read_text(encoding="utf-8"))
        notes = [*data["notes"], *(n for v in data.get("variants", []) for n in v["notes"])]
        for note in notes:
            if isinstance(note, str):  # a note without a source states no figure
                assert not re.search(r"\d", note), (name, note)
            else:
                assert note["source"].startswith(("https://", "http://")), (name, note)


def test_philippine_plans_carry_national_notes_and_say_none_differ_by_region(loaded):
    philippine = loaded.scalars(
        select(LibraryTemplate).where(LibraryTemplate.region.like("PH%"))
    ).all()
    assert {t.industry for t in philippine} == {"construction", "it_services"}
    assert {t.region for t in philippine} == {"PH"}  # no regional variants
    construction = next(t for t in philippine if t.key == "construction-ph/standard/medium")
    assert "2% creditable withholding tax" in construction.notes
    assert "BIR Form 2307" in construction.notes and "12% VAT" in construction.notes
    assert "none of them differs by region" in construction.notes
    assert "Progress billing 1 of 6" in [i.name for i in construction.items]
    # A workspace in Metro Manila gets the Philippine plans first, then the global ones, then
    # other countries'.
    home = library.library_region("PH", "NCR")
    assert home == "PH-NCR"
    found = library.search(
        loaded, industry="it_services", per_page=1000, home_region=home, home_country="PH"
    )
    assert list(groups_of(found.templates).values())[0] == ["PH", None, "AU"]
    found = library.search(
        loaded, industry="construction", per_page=1000, home_region=home, home_country="PH"
    )
    groups = [g for g in groups_of(found.templates).values() if "PH" in g]
    assert len(groups) == 9 and all(g[0] == "PH" for g in groups), groups


def test_an_australian_workspace_sees_its_states_plans_first_on_the_library_page(
    loaded, client, make_tenant, make_user, login
):
    owner = make_user()
    tenant = make_tenant(
        owner=owner, country="AU", time_zone="Australia/Sydney", currency="AUD", region="NSW"
    )
    login(client, owner)
    page = client.get(
        f"/t/{tenant.slug}/library/",
        query_string={"industry": "construction", "complexity": "standard", "size": "medium"},
    )
    text = page.text.split('id="library-results"')[1]
    assert text.index("— New South Wales") < text.index("— Victoria") < text.index("Karnataka")
    key = "construction-au/standard/medium/au-nsw"
    variant = loaded.scalar(select(LibraryTemplate).where(LibraryTemplate.key == key))
    # The region filter names a state as the library does, and keeps its country's plans.
    only_nsw = client.get(
        f"/t/{tenant.slug}/library/",
        query_string={"industry": "construction", "region": "AU-NSW", "size": "large"},
    )
    results = only_nsw.text.split('id="library-results"')[1]
    assert '<option value="AU-NSW" selected>New South Wales</option>' in only_nsw.text
    assert "— New South Wales" in results and "Australia" in results
    assert "Victoria" not in results and "Karnataka" not in results
    detail = client.get(f"/t/{tenant.slug}/library/{variant.id}")
    assert "Progress claim 1 of 6" in detail.text and "20 business days" in detail.text


# Messages -------------------------------------------------------------------------------------


def _defaults_of(app, db_session, tenant) -> list[MessageTemplate]:
    session = tenant_session(db_session, tenant)
    with app.app_context():
        defaults.ensure_defaults(session)
    return session.scalars(select(MessageTemplate).where(MessageTemplate.language == "en")).all()


def test_a_philippine_workspaces_default_messages_have_no_indian_wording(
    app, db_session, make_tenant, request
):
    tenant = make_tenant(country="PH", time_zone="Asia/Manila", currency="PHP", region="NCR")
    templates = _defaults_of(app, db_session, tenant)
    assert len(templates) == 18
    for template in templates:
        assert not INDIA_ONLY.search(f"{template.subject or ''} {template.body}"), template.name
    receipt = next(t for t in templates if (t.channel, t.purpose) == ("email", "receipt"))
    assert "BIR Form 2307" in receipt.body
    # Written out for a real invoice, the notice asks in pesos and for a bank reference.
    session = tenant_session(db_session, tenant)
    make = request.getfixturevalue
    buyer = make("make_client")(session, country="PH", currency="PHP", gstin=None)
    contact = make("make_contact")(session, buyer, full_name="Maria Santos")
    notice = next(t for t in templates if (t.channel, t.purpose) == ("email", "notice_1"))
    with app.app_context():
        invoice = make("make_invoice")(
            session, tenant, buyer, ("1234567.00",), due_on=date(2026, 6, 30), currency="PHP"
        )
        context = message_context(session, tenant, buyer, contact, invoice)
        rendered = render_for_channel(notice, context)
    subject, body = rendered.subject, rendered.text
    assert body.startswith("Dear Maria,") and "₱1,234,567.00" in body
    assert "bank transfer reference or deposit slip" in body
    assert not INDIA_ONLY.search(subject + body)


def test_an_australian_workspace_sends_tax_invoices_and_india_keeps_upi(
    app, db_session, make_tenant
):
    sydney = make_tenant(country="AU", time_zone="Australia/Sydney", currency="AUD", region="NSW")
    for template in _defaults_of(app, db_session, sydney):
        assert not INDIA_ONLY.search(f"{template.subject or ''} {template.body}"), template.name
        if (template.channel, template.purpose) == ("email", "invoice"):
            assert template.subject.startswith("Tax invoice {{ invoice.number }}")
            assert "Please find our tax invoice" in template.body
    pune = make_tenant(region="Maharashtra")
    indian = {(t.channel, t.purpose): t for t in _defaults_of(app, db_session, pune)}
    assert "You can pay by UPI" in indian["email", "notice_1"].body
    assert "share the UTR" in indian["whatsapp", "notice_1"].body


def test_philippine_workspaces_are_offered_filipino_first(
    app, client, make_tenant, make_user, login
):
    assert translations.offered_languages("PH", "NCR")[0] == "fil"
    assert translations.offered_languages("PH", None)[0] == "fil"
    assert translations.offered_languages("AU", "NSW")[0] != "fil"
    owner = make_user()
    tenant = make_tenant(
        owner=owner, country="PH", time_zone="Asia/Manila", currency="PHP", region="CAR"
    )
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/message-templates/")
    buttons = page.text[page.text.index('data-testid="add-languages"') :]
    assert buttons.index("Add the templates in Filipino") < buttons.index("Hindi (हिन्दी)")
    assert 'class="button small primary">Add the templates in Filipino' in buttons


def test_a_filipino_preferring_contact_gets_the_notice_in_filipino_by_email(
    app, db_session, make_tenant, storage_root, request, run_jobs, received_mail
):
    tenant = make_tenant(
        country="PH",
        time_zone="Asia/Manila",
        currency="PHP",
        region="NCR",
        name="Bayanihan Builders",
        legal_name="Bayanihan Builders Inc.",
        send_window_start=time(0),
        send_window_end=time(23, 59, 59),
        send_on_business_days_only=False,
    )
    session = tenant_session(db_session, tenant)
    make = request.getfixturevalue
    buyer = make("make_client")(
        session, name="Makati Towers", country="PH", currency="PHP", gstin=None
    )
    contact = make("make_contact")(
        session,
        buyer,
        full_name="Jose Reyes",
        email="jose@makati.example",
        preferred_language="fil",
    )
    with app.app_context():
        assert translations.install_language(session, "fil") == 18
        invoice = make("make_invoice")(
            session,
            tenant,
            buyer,
            ("1234567.00",),
            issued_on=date(2026, 7, 1),
            due_on=date(2026, 6, 30),
            started_on=date(2026, 6, 1),
            currency="PHP",
        )
        notice = make("make_notice")(session, buyer, [invoice], contact=contact, status="approved")
        notice.currency = "PHP"
        session.commit()
        notices.send_notices(session, tenant, [notice.id])
        session.commit()
    run_jobs()
    (mail,) = received_mail()
    assert mail["To"] == "jose@makati.example"
    assert str(mail["Subject"]).startswith("Paalala:")
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert body.startswith("Magandang araw, Jose,")
    assert "Isang magalang na paalala" in body
    assert "₱1,234,567.00" in body  # the Philippines' grouping, not lakh and crore
    due = format_date(invoice.due_date, "medium", locale="fil_PH")
    assert f"{invoice.due_date:%d %b %Y}" not in body and due in body  # the date in Filipino
    assert "Ang mga invoice sa abisong ito:" in body  # the statement under it too
    assert "Dear" not in body and not INDIA_ONLY.search(body)


# The regional settings page -------------------------------------------------------------------


def test_the_regional_page_says_what_follows_from_an_australian_state(
    loaded, client, make_tenant, make_user, login
):
    owner = make_user()
    tenant = make_tenant(
        owner=owner, country="AU", time_zone="Australia/Perth", currency="AUD", region="WA"
    )
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/settings/regional", query_string={"year": "2026"})
    assert page.status_code == 200
    assert "Western Australia Day" in page.text  # the state's holidays, as before
    effects = page.text[page.text.index('data-testid="regional-effect"') :]
    assert "plans with notes for Western Australia come first" in effects
    assert "Building and Construction Industry (Security of Payment) Act 2021" in effects
    assert "New South Wales" not in effects
    assert "&#34;tax invoice&#34;" in effects or '"tax invoice"' in effects
    assert "Filipino" not in page.text


def test_the_regional_page_says_what_follows_from_a_philippine_region(
    loaded, client, make_tenant, make_user, login
):
    owner = make_user()
    tenant = make_tenant(
        owner=owner, country="PH", time_zone="Asia/Manila", currency="PHP", region="NCR"
    )
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/settings/regional")
    assert "often read Filipino" in page.text and "lakh" not in page.text
    effects = page.text[page.text.index('data-testid="regional-effect"') :]
    assert "No plan&#39;s notes differ for National Capital Region" in effects
    assert "the plans for the Philippines come first" in effects
    assert "BIR Form 2307" in effects and "UPI" in effects  # "offer no UPI link"
