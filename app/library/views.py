"""The template library: browse and search the global templates, preview one on a value."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flask import Blueprint, abort, g, request

from app.core.money import format_money
from app.core.pages import render_page
from app.core.regions import GST_STATES, regions_of
from app.extensions import db
from app.library import services
from app.library.models import COMPLEXITIES, PROJECT_SIZES
from tenants.context import require_permission

blueprint = Blueprint("library", __name__, url_prefix="/t/<tenant_slug>/library")

DEFAULT_VALUE = Decimal("1000000")  # ₹10,00,000
MAX_VALUE = Decimal("1000000000000")  # ₹1 lakh crore: past this a typo is likelier
DUE_RULE_LABELS = {
    "on_start": "At the start",
    "days_after_start": "{days} days after the start",
    "days_after_previous": "{days} days after the previous {milestone}",
}


def region_label(region: str | None) -> str:
    if region is None:
        return "Anywhere"
    if region in services.COUNTRIES:
        return services.COUNTRIES[region]
    if region.isdigit():
        return GST_STATES.get(region, region)
    country, _, code = region.partition("-")
    return regions_of(country).get(code, region)


def money(amount: Decimal) -> str:
    """An amount in the tenant's currency, as its country writes it (rupees outside a tenant)."""
    tenant = g.get("tenant")
    if tenant is None:
        return format_money(amount, "INR")
    return format_money(amount, tenant.currency, tenant.country)


@blueprint.app_template_filter("library_region")
def _region_filter(region):
    return region_label(region)


def _choices() -> dict:
    labels = services.industry_labels()
    return {
        "industries": [(i, labels.get(i, i)) for i in services.industries(db.session)],
        "regions": [(r, region_label(r)) for r in services.regions(db.session)],
        "sizes": [(s, s.capitalize()) for s in PROJECT_SIZES],
        "complexities": [(c, c.capitalize()) for c in COMPLEXITIES],
        "industry_labels": labels,
    }


@blueprint.get("/")
@require_permission("clients.view")
def index():
    filters = services.LibraryFilters.from_args(request.args)
    page = services.search(
        db.session,
        industry=filters.industry,
        region=filters.region,
        size=filters.size,
        complexity=filters.complexity,
        q=filters.q,
        page=filters.page,
        # The workspace's own state's (or region's) variants first, then its country's.
        home_region=services.library_region(g.tenant.country, g.tenant.region),
        home_country=g.tenant.country,
    )
    return render_page(
        "library/index.html",
        block="library_results",
        page=page,
        filters=filters,
        choices=_choices(),
    )


def parse_value(raw: str | None) -> tuple[Decimal, str | None]:
    """The sample contract value from ?value= ("10,00,000", "1000000.50", "₹ 5,00,000"):
    (value, error); on an error the default value is used."""
    if raw is None or not raw.strip():
        return DEFAULT_VALUE, None
    cleaned = raw.strip().replace(",", "").replace("₹", "").replace(" ", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return DEFAULT_VALUE, "Enter the contract value as a number, e.g. 10,00,000."
    if not value.is_finite() or value <= 0:
        return DEFAULT_VALUE, "Enter a contract value greater than zero."
    if value > MAX_VALUE:
        return DEFAULT_VALUE, "That value is larger than a preview allows."
    if value != value.quantize(Decimal("0.01")):
        return DEFAULT_VALUE, "Use at most two decimal places."
    return value, None


@blueprint.get("/<int:template_id>")
@require_permission("clients.view")
def detail(template_id: int):
    template = services.get_template(db.session, template_id)
    if template is None:
        abort(404)
    raw = request.args.get("value")
    value, error = parse_value(raw)
    items = services.preview(template, value, g.tenant.currency)
    return render_page(
        "library/detail.html",
        block="library_preview",
        status=422 if error else 200,
        entry=template,
        items=items,
        value=value,
        raw_value=raw if error else None,
        error=error,
        total=sum((i.amount for i in items), Decimal(0)),
        money=money,
        rule_labels=DUE_RULE_LABELS,
        industry_label=services.industry_labels().get(template.industry, template.industry),
    )
