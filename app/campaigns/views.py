"""Pages for message templates (list, edit with a live preview on real data, WhatsApp approval
state) and campaigns (create, audience preview, launch, progress, cancel)."""

from __future__ import annotations

from flask import Blueprint, abort, g, redirect, request, url_for
from flask_login import current_user

from app.campaigns import forms, services
from app.core.form_once import once_per_form_key
from app.core.handover import hand_over
from app.core.pages import render_page, toast
from app.core.regions import state_languages
from app.extensions import db
from app.message_templates import services as message_templates
from app.message_templates import translations
from app.message_templates.models import TEMPLATE_CHANNELS, TEMPLATE_PURPOSES
from tenants.context import require_permission

blueprint = Blueprint("campaigns", __name__, url_prefix="/t/<tenant_slug>")


# Message templates ---------------------------------------------------------------------------


@blueprint.get("/message-templates/")
@require_permission("templates.manage")
def templates():
    installed = translations.installed_languages(db.session)
    offered = translations.offered_languages(g.tenant.country, g.tenant.region)
    return render_page(
        "campaigns/templates.html",
        templates=message_templates.list_templates(db.session),
        channels=message_templates.CHANNEL_LABELS,
        purposes=message_templates.PURPOSE_LABELS,
        languages=translations.available_languages(),
        # The workspace's state's languages first; those it has already are not offered again.
        addable_languages=[code for code in offered if code not in installed],
        state_languages=state_languages(g.tenant.country, g.tenant.region),
    )


@blueprint.post("/message-templates/languages")
@require_permission("templates.manage")
def add_language():
    """Add the default templates in one of India's languages (every channel and purpose)."""
    language = request.form.get("language", "")
    languages = translations.available_languages()
    if language not in languages:
        toast("Choose one of the languages offered.", "error")
        return redirect(url_for("campaigns.templates"), 303)
    added = translations.install_language(db.session, language)
    name = languages[language]
    if added:
        toast(f"Added {added} templates in {name}. Contacts who prefer it now get them.")
    else:
        toast(f"You have every template in {name} already.", "info")
    return redirect(url_for("campaigns.templates"), 303)


def _template_page(template, values, errors=None, status=200):
    shown = message_templates.preview(db.session, g.tenant, values, template)
    invoices, contacts = message_templates.preview_choices(db.session, shown.client)
    return render_page(
        "campaigns/template_form.html",
        status=status,
        message_template=template,
        values=values,
        errors=errors or {},
        shown=shown,
        invoices=invoices,
        contacts=contacts,
        channels=message_templates.CHANNEL_LABELS,
        purposes=message_templates.PURPOSE_LABELS,
        purpose_choices=TEMPLATE_PURPOSES,
    )


def _owned_template(message_template_id: int):
    template = message_templates.get_template(db.session, message_template_id)
    if template is None:
        abort(404)
    return template


@blueprint.get("/message-templates/new")
@require_permission("templates.manage")
def new_template():
    channel = request.args.get("channel", "email")
    if channel not in TEMPLATE_CHANNELS:
        abort(404)
    values = {**message_templates.template_values(None), "channel": channel}
    return _template_page(None, values)


@blueprint.post("/message-templates/")
@require_permission("templates.manage")
@once_per_form_key
def create_template():
    template, errors = message_templates.save_template(db.session, request.form)
    if errors:
        return _template_page(None, request.form.to_dict(), errors, status=422)
    toast(f"Template “{template.name}” saved.")
    return redirect(url_for("campaigns.templates"), 303)


@blueprint.get("/message-templates/<int:message_template_id>")
@require_permission("templates.manage")
def edit_template(message_template_id: int):
    template = _owned_template(message_template_id)
    return _template_page(template, message_templates.template_values(template))


@blueprint.post("/message-templates/<int:message_template_id>")
@require_permission("templates.manage")
def update_template(message_template_id: int):
    template = _owned_template(message_template_id)
    saved, errors = message_templates.save_template(db.session, request.form, template)
    if errors:
        return _template_page(template, request.form.to_dict(), errors, status=422)
    toast(f"Template “{saved.name}” saved.")
    return redirect(url_for("campaigns.templates"), 303)


@blueprint.post("/message-templates/preview")
@require_permission("templates.manage")
def preview_new_template():
    return _preview(None)


@blueprint.post("/message-templates/<int:message_template_id>/preview")
@require_permission("templates.manage")
def preview_template(message_template_id: int):
    return _preview(_owned_template(message_template_id))


def _preview(template):
    shown = message_templates.preview(db.session, g.tenant, request.form, template)
    invoices, contacts = message_templates.preview_choices(db.session, shown.client)
    return render_page(
        "campaigns/template_form.html",
        "preview",
        shown=shown,
        values=request.form.to_dict(),
        invoices=invoices,
        contacts=contacts,
        message_template=template,
    )


@blueprint.post("/message-templates/<int:message_template_id>/delete")
@require_permission("templates.manage")
def delete_template(message_template_id: int):
    template = _owned_template(message_template_id)
    refusal = services.delete_template(db.session, template)
    if refusal:
        toast(refusal, "error")
    else:
        toast(f"Template “{template.name}” deleted.")
    return redirect(url_for("campaigns.templates"), 303)


@blueprint.post("/message-templates/sync-whatsapp")
@require_permission("templates.manage")
def sync_whatsapp():
    # The job talks to Meta; the request only asks for it (the periodic sync catches up when
    # Redis is down).
    hand_over(db.session, "sync_whatsapp_templates", tenant_id=g.tenant.id)
    toast("Asked Meta for the approval state of your WhatsApp templates; refresh in a minute.")
    return redirect(url_for("campaigns.templates"), 303)


# Campaigns -----------------------------------------------------------------------------------


@blueprint.get("/campaigns/")
@require_permission("campaigns.manage")
def index():
    campaigns = services.list_campaigns(db.session)
    return render_page(
        "campaigns/index.html", campaigns=campaigns, channels=message_templates.CHANNEL_LABELS
    )


def _campaign_form(campaign, values, errors=None, status=200):
    return render_page(
        "campaigns/campaign_form.html",
        status=status,
        campaign=campaign,
        values=values,
        errors=errors or {},
        audience=_audience(values),
        **forms.campaign_choices(db.session, g.tenant),
    )


def _audience(values):
    channel = values.get("channel") if values.get("channel") in TEMPLATE_CHANNELS else "email"
    return services.audience(db.session, services.clean_filters(values), channel)


def _owned_campaign(campaign_id: int):
    campaign = services.get_campaign(db.session, campaign_id)
    if campaign is None:
        abort(404)
    return campaign


@blueprint.get("/campaigns/new")
@require_permission("campaigns.manage")
def new_campaign():
    return _campaign_form(None, services.campaign_values(None, g.tenant))


@blueprint.post("/campaigns/")
@require_permission("campaigns.manage")
@once_per_form_key
def create_campaign():
    campaign, errors = services.save_campaign(
        db.session, g.tenant, request.form, user_id=current_user.id
    )
    if errors:
        return _campaign_form(None, request.form.to_dict(), errors, status=422)
    toast("Campaign saved as a draft. Check the audience, then launch it.")
    return redirect(url_for("campaigns.show", campaign_id=campaign.id), 303)


@blueprint.post("/campaigns/audience")
@require_permission("campaigns.manage")
def audience():
    return render_page(
        "campaigns/campaign_form.html",
        "audience",
        audience=_audience(request.form),
        values=request.form.to_dict(),
    )


@blueprint.get("/campaigns/<int:campaign_id>")
@require_permission("campaigns.manage")
def show(campaign_id: int):
    campaign = _owned_campaign(campaign_id)
    counts = services.progress(db.session, g.tenant.id, campaign)
    services.refresh_status(db.session, g.tenant.id, campaign, counts)
    audience = None
    if campaign.status == "draft":
        audience = services.audience(db.session, campaign.filters or {}, campaign.channel)
    return render_page(
        "campaigns/show.html",
        "progress",
        campaign=campaign,
        counts=counts,
        audience=audience,
        channels=message_templates.CHANNEL_LABELS,
        labels=forms.RESULT_LABELS,
        filters=forms.describe_filters(db.session, g.tenant, campaign.filters or {}),
    )


@blueprint.get("/campaigns/<int:campaign_id>/edit")
@require_permission("campaigns.manage")
def edit_campaign(campaign_id: int):
    campaign = _owned_campaign(campaign_id)
    if campaign.status != "draft":
        abort(409)
    return _campaign_form(campaign, services.campaign_values(campaign, g.tenant))


@blueprint.post("/campaigns/<int:campaign_id>")
@require_permission("campaigns.manage")
def update_campaign(campaign_id: int):
    campaign = _owned_campaign(campaign_id)
    if campaign.status != "draft":
        abort(409)
    saved, errors = services.save_campaign(db.session, g.tenant, request.form, campaign)
    if errors:
        return _campaign_form(campaign, request.form.to_dict(), errors, status=422)
    toast("Campaign saved.")
    return redirect(url_for("campaigns.show", campaign_id=saved.id), 303)


@blueprint.post("/campaigns/<int:campaign_id>/launch")
@require_permission("campaigns.manage")
def launch(campaign_id: int):
    campaign = _owned_campaign(campaign_id)
    refusal = services.launch(db.session, g.tenant, campaign)
    if refusal:
        toast(refusal, "error")
    else:
        toast("Launched: the messages are being written and go out inside your sending window.")
    return redirect(url_for("campaigns.show", campaign_id=campaign.id), 303)


@blueprint.post("/campaigns/<int:campaign_id>/cancel")
@require_permission("campaigns.manage")
def cancel(campaign_id: int):
    campaign = _owned_campaign(campaign_id)
    stopped = services.cancel(db.session, g.tenant.id, campaign)
    if stopped is None:
        toast(f"This campaign is {campaign.status} already.", "error")
    else:
        toast(f"Campaign cancelled; {stopped:,} message(s) not yet sent will not go.")
    return redirect(url_for("campaigns.show", campaign_id=campaign.id), 303)
