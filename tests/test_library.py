"""The template library: the shipped data files, the loader (idempotent, versions), search,
previews that add up exactly, and the pages."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.library import services
from app.library.models import COMPLEXITIES, LibraryTemplate, LibraryTemplateItem
from app.library.views import parse_value

REQUIRED_INDUSTRIES = {
    "construction",
    "manufacturing",
    "it_services",
    "healthcare",
    "education",
    "retail",
    "financial_services",
    "logistics",
    "agriculture",
    "textiles",
}


@pytest.fixture(scope="module")
def definitions():
    return services.read_library()


@pytest.fixture
def loaded(db_session):
    """The library as the shared migration left it (it loads at upgrade), brought up to date."""
    services.load_library(db_session)
    db_session.commit()
    return db_session


def by_key(session, key: str) -> LibraryTemplate:
    return session.scalar(select(LibraryTemplate).where(LibraryTemplate.key == key))


# The data files -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(services.DATA_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_data_file_loads(path):
    templates = services.expand_file(json.loads(path.read_text(encoding="utf-8")))
    assert len(templates) >= 8
    assert all(t.notes.endswith(services.GUIDANCE) for t in templates)


def test_every_template_adds_up_to_exactly_100(definitions):
    assert len(definitions) >= 80
    for template in definitions:
        assert sum(i.percentage for i in template.items) == Decimal(100), template.key
        assert all(i.percentage > 0 for i in template.items), template.key


def test_stored_templates_add_up_to_exactly_100_too(loaded):
    totals = loaded.execute(
        select(LibraryTemplateItem.template_id, func.sum(LibraryTemplateItem.percentage)).group_by(
            LibraryTemplateItem.template_id
        )
    ).all()
    assert len(totals) >= 80
    assert {total for _, total in totals} == {Decimal("100.0000")}


def test_required_industries_at_every_complexity_and_two_sizes(definitions):
    found = {
        (t.industry, t.complexity, t.project_size) for t in definitions if t.region in (None, "IN")
    }
    for industry in REQUIRED_INDUSTRIES:
        for complexity in COMPLEXITIES:
            sizes = {s for i, c, s in found if (i, c) == (industry, complexity)}
            assert len(sizes) >= 2, (industry, complexity, sizes)


def test_regional_variants_for_at_least_three_states(definitions):
    states = {t.region for t in definitions if t.region and t.region.isdigit()}
    assert len(states) >= 3 and {"27", "29", "33"} <= states
    maharashtra = next(t for t in definitions if t.key == "construction/standard/medium/in-mh")
    assert "Maharashtra" in maharashtra.notes and "not legal" in maharashtra.notes
    karnataka = next(t for t in definitions if t.key == "construction/standard/medium/in-ka")
    assert karnataka.items[-1].is_retention and karnataka.items[-1].due_days == 730
    tamil_nadu = next(t for t in definitions if t.key == "construction/standard/medium/in-tn")
    assert tamil_nadu.items[0].percentage == Decimal(5)


def test_construction_has_mobilisation_running_bills_and_retention(definitions):
    template = next(t for t in definitions if t.key == "construction/standard/medium")
    names = [i.name for i in template.items]
    assert names[0] == "Mobilisation advance" and template.items[0].due_rule == "on_start"
    assert sum(1 for n in names if n.startswith("Running account bill")) == 6
    retention = template.items[-1]
    assert retention.is_retention and retention.percentage == 5 and retention.due_days == 365


def test_a_file_that_does_not_add_up_is_refused():
    data = {
        "industry": "x",
        "name": "X",
        "sizes": {"small": {"label": "Small"}},
        "levels": {
            "simple": {
                "summary": "s",
                "phases": [{"name": "a", "pct": "60"}, {"name": "b", "pct": "30"}],
            }
        },
    }
    with pytest.raises(services.LibraryDataError, match="add up to 90"):
        services.expand_file(data)


# Loading ------------------------------------------------------------------------------------


def test_loading_again_changes_nothing(loaded, definitions):
    versions = dict(loaded.execute(select(LibraryTemplate.key, LibraryTemplate.version)).all())
    report = services.load_library(loaded)
    assert (report.added, report.updated, report.retired) == (0, 0, 0)
    assert report.unchanged == len(definitions)
    assert dict(loaded.execute(select(LibraryTemplate.key, LibraryTemplate.version)).all()) == (
        versions
    )


def test_a_changed_item_bumps_the_version_and_a_dropped_template_is_retired(loaded, definitions):
    key = "construction/simple/small"
    before = by_key(loaded, key)
    version, template_id = before.version, before.id
    changed = [
        services.TemplateDef(**{**t.__dict__, "items": list(t.items)})
        for t in definitions
        if t.key != "retail/simple/small"
    ]
    target = next(t for t in changed if t.key == key)
    target.items[1] = services.ItemDef(**{**target.items[1].__dict__, "name": "Completion bill"})
    report = services.load_library(loaded, changed)
    assert (report.added, report.updated, report.retired) == (0, 1, 1)
    loaded.expire_all()
    after = by_key(loaded, key)
    assert after.id == template_id and after.version == version + 1
    assert [i.name for i in after.items][1] == "Completion bill"
    retired = by_key(loaded, "retail/simple/small")
    assert retired is not None and retired.retired  # kept: a tenant may have cloned it
    assert services.search(loaded, q="retail/simple/small").total == 0
    # shipped again: back in the library
    report = services.load_library(loaded, definitions)
    assert report.updated == 2 and report.retired == 0
    loaded.expire_all()
    assert not by_key(loaded, "retail/simple/small").retired


def test_load_command_reports_counts_and_a_second_run_changes_nothing(app, db_session):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["library", "load"])
    assert first.exit_code == 0, first.output
    assert re.search(r"\d+ added", first.output)
    again = runner.invoke(args=["library", "load"])
    assert re.search(r"0 added, 0 updated, \d+ unchanged, 0 retired", again.output)


# Search -------------------------------------------------------------------------------------


def test_search_by_each_filter(loaded):
    everything = services.search(loaded, per_page=500)
    assert everything.total >= 80 and len(everything.templates) == everything.total

    health = services.search(loaded, industry="healthcare", per_page=100)
    assert health.total == 8 and {t.industry for t in health.templates} == {"healthcare"}

    large = services.search(loaded, size="large", per_page=500)
    assert large.total > 0 and {t.project_size for t in large.templates} == {"large"}

    enterprise = services.search(loaded, complexity="enterprise", per_page=500)
    assert {t.complexity for t in enterprise.templates} == {"enterprise"}
    assert {t.industry for t in enterprise.templates} >= REQUIRED_INDUSTRIES

    maharashtra = services.search(loaded, region="27", industry="construction", per_page=100)
    regions = {t.region for t in maharashtra.templates}
    assert "27" in regions and "IN" in regions and not regions & {"29", "33"}
    # the state's own templates come before the country-wide ones of the same level and size
    standard_medium = [
        t.region
        for t in maharashtra.templates
        if (t.complexity, t.project_size) == ("standard", "medium")
    ]
    assert standard_medium == ["27", "IN"]

    retention = services.search(loaded, q="defects liability", per_page=500)
    assert retention.total > 0
    assert all(
        "defects liability" in (t.name + t.description + t.notes).lower()
        for t in retention.templates
    )
    assert services.search(loaded, q="100%_no such thing").total == 0

    combined = services.search(
        loaded, industry="textiles", region="33", size="small", complexity="standard"
    )
    assert [t.key for t in combined.templates] == [
        "textiles/standard/small/in-tn",
        "textiles/standard/small",
    ]


def test_search_pages(loaded):
    first = services.search(loaded, per_page=10)
    second = services.search(loaded, page=2, per_page=10)
    assert first.pages == -(-first.total // 10) and len(first.templates) == 10
    assert not {t.id for t in first.templates} & {t.id for t in second.templates}
    last = services.search(loaded, page=999, per_page=10)
    assert last.page == last.pages  # past the end: the last page


# Preview ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1000001", "3333333.33", "0.01", "999.99", "1000000"])
def test_preview_adds_up_exactly_for_awkward_values(loaded, value):
    total = Decimal(value)
    for template in loaded.scalars(select(LibraryTemplate)):
        items = services.preview(template, total, "INR")
        assert sum(i.amount for i in items) == total, template.key
        assert all(i.amount == i.amount.quantize(Decimal("0.01")) for i in items)


def test_preview_counts_due_days_from_the_start(loaded):
    template = by_key(loaded, "construction/standard/medium")
    items = services.preview(template, Decimal("1000001"), "INR")
    assert items[0].offset_days == 0 and items[0].amount == Decimal("100000.10")
    assert [i.offset_days for i in items[1:7]] == [30, 60, 90, 120, 150, 180]
    assert items[-1].offset_days == 180 + 30 + 365


def test_parse_value():
    assert parse_value(None) == (Decimal("1000000"), None)
    assert parse_value("10,00,001") == (Decimal("1000001"), None)
    assert parse_value("₹ 33,33,333.33") == (Decimal("3333333.33"), None)
    for bad in ("abc", "-5", "0", "1.234", "NaN", "1e30"):
        value, error = parse_value(bad)
        assert value == Decimal("1000000") and error, bad


# Pages --------------------------------------------------------------------------------------


@pytest.fixture
def viewer_client(client, loaded, make_tenant, make_user, add_member, login):
    tenant = make_tenant()
    viewer = make_user(full_name="Vik Viewer")
    add_member(tenant, viewer, role="viewer")
    login(client, viewer)
    return client, tenant


def test_viewer_browses_the_library_with_filters(viewer_client):
    http, tenant = viewer_client
    page = http.get(f"/t/{tenant.slug}/library/")
    assert page.status_code == 200
    assert "Template library" in page.text and "Construction: Standard, medium project" in page.text
    assert 'aria-current="page">Template library' in page.text

    filtered = http.get(
        f"/t/{tenant.slug}/library/?industry=construction&region=29&size=large&complexity=complex"
    )
    assert "Construction: Complex, large project — Karnataka" in filtered.text
    assert "Maharashtra" not in filtered.text.split('id="library-results"')[1]
    assert 'value="29" selected' in filtered.text

    fragment = http.get(f"/t/{tenant.slug}/library/?q=hypercare", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "IT services" in fragment.text and "Construction:" not in fragment.text

    empty = http.get(f"/t/{tenant.slug}/library/?q=nothing-like-this")
    assert "No templates match these filters" in empty.text and "Clear the filters" in empty.text


def test_detail_previews_on_a_sample_value(viewer_client, loaded):
    http, tenant = viewer_client
    template = by_key(loaded, "construction/standard/medium/in-mh")
    page = http.get(f"/t/{tenant.slug}/library/{template.id}")
    assert page.status_code == 200
    assert "Running account bill 1 of 6" in page.text
    assert "₹10,00,000.00" in page.text  # the default value, Indian grouping
    assert "Guidance, not legal advice" in page.text and "MahaRERA" in page.text

    preview = http.get(
        f"/t/{tenant.slug}/library/{template.id}?value=33,33,333.33", headers={"HX-Request": "true"}
    )
    assert preview.status_code == 200 and "<html" not in preview.text
    assert 'data-testid="preview-total">₹33,33,333.33<' in preview.text

    bad = http.get(f"/t/{tenant.slug}/library/{template.id}?value=lots")
    assert bad.status_code == 422 and 'id="value-error"' in bad.text
    assert http.get(f"/t/{tenant.slug}/library/999999999").status_code == 404


def test_non_member_gets_404(client, loaded, make_tenant, make_user, login):
    tenant = make_tenant()
    outsider = make_user()
    make_tenant(owner=outsider)
    login(client, outsider)
    template = by_key(loaded, "healthcare/simple/small")
    assert client.get(f"/t/{tenant.slug}/library/").status_code == 404
    assert client.get(f"/t/{tenant.slug}/library/{template.id}").status_code == 404
