from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from app.audit.views import changes_in_words
from app.clients import services, timeline
from app.clients.forms import CONTACT_FIELDS, SECTIONS, SITE_FIELDS
from app.clients.models import CONSENT_CHANNELS, CONTACT_ROLES, Client
from app.clients.picker import SEARCH_FIELD, client_picker
from app.clients.rules import GST_STATES, clean_tags
from app.core.form_once import once_per_form_key
from app.core.pages import render_page, toast
from app.core.prepared import prepared_statements
from app.core.request_input import row_id
from app.core.terminology import term, worded
from app.custom_fields import services as custom_fields
from app.custom_fields.views import section_context
from app.extensions import db
from tenants.context import can, require_permission

blueprint = Blueprint("clients", __name__, url_prefix="/t/<tenant_slug>/clients")
blueprint.context_processor(lambda: {"gst_states": GST_STATES})
TABS = (
    "profile",
    "contacts",
    "sites",
    "documents",
    "timeline",
    "projects",
    "invoices",
    "notices",
    "payments",
    "aging",
    "collections",
)
# Tabs whose content an area above clients provides (projects, payments, collections): it
# registers a function of the client giving the tab's template context when the app is
# created, so this page shows it without importing that area.
_TAB_CONTEXTS: dict[str, Callable[[Client], dict]] = {}
# What areas above clients add to the client's timeline (messaging: the messages sent to it),
# each a function of the client giving (kind, moment, entry) triples; the timeline template
# shows each kind its own way.
TimelineSource = Callable[[Client], list[tuple[str, datetime, object]]]
_TIMELINE_SOURCES: list[TimelineSource] = []


def register_tab(tab: str, context: Callable[[Client], dict]) -> None:
    if tab not in TABS:
        raise ValueError(f"the client page has no tab {tab!r}")
    _TAB_CONTEXTS[tab] = context


def register_timeline_source(source: TimelineSource) -> None:
    if source not in _TIMELINE_SOURCES:
        _TIMELINE_SOURCES.append(source)


def _client_or_404(client_id: int):
    client = services.get_client(db.session, client_id)
    if client is None:
        abort(404)
    return client


def _choices() -> dict:
    return {
        "industries": [("", "—"), *((str(i.id), i.name) for i in services.industries(db.session))],
        "members": [
            ("", "Nobody yet"),
            *((str(uid), name) for uid, name in _members()),
        ],
    }


def _members() -> list[tuple[int, str]]:
    """The workspace's members, read once per request: the list's filters and its rows, the
    client page's form and its people all name them."""
    if "client_members" not in g:
        g.client_members = services.members_for_choice(db.session, g.tenant.id)
    return g.client_members


def _notice() -> services.ManagerNotice:
    return services.ManagerNotice(
        tenant=g.tenant,
        client_url=lambda client_id: url_for("clients.detail", client_id=client_id, _external=True),
    )


def _people() -> dict[int, str]:
    return dict(_members())


# The list -----------------------------------------------------------------------------------


@blueprint.get("/")
@require_permission("clients.view")
def index():
    filters = services.ClientFilters.from_args(
        request.args, custom_fields.list_fields(db.session, "clients")
    )
    with prepared_statements(db.session, enabled=not (filters.q or filters.custom)):
        page = services.list_clients(
            db.session, filters, after=request.args.get("after"), before=request.args.get("before")
        )
        return render_page(
            "clients/index.html",
            block="client_results",
            page=page,
            filters=filters,
            choices=_choices(),
            people=_people(),
        )


@blueprint.get("/pick")
@require_permission("clients.view")
def pick_options():
    """The client picker's options for what was typed (htmx, search as you type), the chosen
    client kept. Every role may see the client list, and every page with a picker names
    clients anyway, so the list's permission fits them all."""
    field = request.args.get("field") or "client_id"
    offer_any = request.args.get("any") == "1"
    picker = client_picker(
        db.session,
        request.args.get(SEARCH_FIELD),
        row_id(request.args.get(field)),
        every_client=offer_any,
    )
    return render_template("clients/_picker_options.html", picker=picker, offer_any=offer_any)


@blueprint.post("/bulk")
@require_permission("clients.edit")
def bulk():
    ids = [found for found in map(row_id, request.form.getlist("client_ids")) if found]
    action = request.form.get("action", "")
    back = url_for("clients.index", **services.ClientFilters.from_args(request.form).as_args())
    if not ids:
        toast(worded("Select at least one {client} first."), "error")
        return redirect(back, 303)
    options = {}
    if action == "tag":
        tags, problem = clean_tags(request.form.get("tag", ""))
        if problem or len(tags) != 1:
            toast(problem or "Give one tag to add.", "error")
            return redirect(back, 303)
        options["tag"] = tags[0]
    elif action == "manager" and row_id(request.form.get("manager")):
        options["manager_id"] = row_id(request.form.get("manager"))
    elif action == "status":
        options["status"] = request.form.get("status", "")
    else:
        toast(worded("Choose what to do with the selected {clients}."), "error")
        return redirect(back, 303)
    try:
        changed = services.bulk_update(
            db.session, ids, context=services.client_context(db.session, g.tenant), **options
        )
    except services.ClientError as error:
        toast(" ".join(error.errors.values()), "error")
        return redirect(back, 303)
    toast(f"{changed} {term('client' if changed == 1 else 'clients')} updated.")
    return redirect(back, 303)


# Creating and editing -----------------------------------------------------------------------


@blueprint.route("/new", methods=["GET", "POST"])
@require_permission("clients.edit")
@once_per_form_key
def new():
    fields = custom_fields.definitions(db.session, "clients")
    values = {
        **services.new_client_defaults(g.tenant),
        **custom_fields.form_values(fields, {f.key: f.default_value for f in fields}),
    }
    if request.args.get("prospect") == "1":
        values["status"] = "prospect"
    errors = {}
    if request.method == "POST":
        submitted = custom_fields.submitted_from_form(fields, request.form)
        values = {**request.form.to_dict(), **custom_fields.form_values(fields, submitted)}
        context = services.client_context(db.session, g.tenant)
        raw = {**request.form.to_dict(), services.CUSTOM: submitted}
        try:
            client = services.create_client(db.session, context, raw, _notice())
        except services.ClientError as error:
            errors = error.errors
        else:
            toast(f"{client.short_name} is saved.")
            return redirect(url_for("clients.detail", client_id=client.id), 303)
    return render_page(
        "clients/new.html",
        status=422 if errors else 200,
        values=values,
        errors=errors,
        sections=SECTIONS,
        choices=_choices(),
        custom_fields=fields,
        people=_members(),
    )


@blueprint.get("/<int:client_id>")
@require_permission("clients.view")
def detail(client_id: int):
    tab = request.args.get("tab", "profile")
    if tab not in TABS:
        abort(404)
    # Each tab reads by the client's id (and the workspace's lists of choices): statements of
    # a fixed shape, none a search, so planned once per connection.
    with prepared_statements(db.session):
        client = _client_or_404(client_id)
        return render_page("clients/detail.html", block="tab_body", **_detail_context(client, tab))


def _detail_context(client: Client, tab: str) -> dict:
    context = {
        "client": client,
        "tab": tab,
        "sections": SECTIONS,
        "choices": _choices(),
        "people": _people(),
        "values": services.client_form_values(client),
    }
    if tab == "profile":
        context.update(_custom_section_context(client, editing=False))
    if tab == "contacts":
        fields = custom_fields.definitions(db.session, "contacts")
        context.update(
            contact_fields=CONTACT_FIELDS,
            roles=CONTACT_ROLES,
            channels=CONSENT_CHANNELS,
            new_contact=custom_fields.form_values(fields, {f.key: f.default_value for f in fields}),
            contact_errors={},
            contact_custom_fields=fields,
            members=_members(),
        )
    elif tab == "sites":
        context.update(
            sites=services.list_sites(db.session, client),
            site_fields=SITE_FIELDS,
            new_site={},
            site_errors={},
        )
    elif tab == "timeline":
        # Changes, happenings (the domain events filed under the client) and what the other
        # areas add (messages) in one story, newest first.
        entries = [("change", e.occurred_at, e) for e in services.timeline(db.session, client)]
        entries += [("event", e.occurred_at, e) for e in timeline.events_of(db.session, client.id)]
        for source in _TIMELINE_SOURCES:
            entries.extend(source(client))
        story = changes_in_words(sorted(entries, key=lambda e: e[1], reverse=True))
        context["entries"] = timeline.told(db.session, story, g.tenant.country)
    elif tab in _TAB_CONTEXTS:
        context.update(_TAB_CONTEXTS[tab](client))
    return context


@blueprint.route("/<int:client_id>/sections/<section>", methods=["GET", "POST"])
@require_permission("clients.view")
def section(client_id: int, section: str):
    """One section of the profile: shown, or (?edit=1 / POST) edited in place."""
    client = _client_or_404(client_id)
    if section not in SECTIONS:
        abort(404)
    editing = request.method == "POST" or request.args.get("edit") == "1"
    if editing and not can("clients.edit"):
        abort(403)
    values, errors = services.client_form_values(client), {}
    if request.method == "POST":
        submitted = {spec.name: request.form.get(spec.name, "") for spec in SECTIONS[section][1]}
        context = services.client_context(db.session, g.tenant)
        try:
            services.update_client(db.session, context, client, submitted, _notice())
        except services.ClientError as error:
            values, errors = {**values, **submitted}, error.errors
        else:
            toast(f"{worded(SECTIONS[section][0])} saved.")
            values, editing = services.client_form_values(client), False
    return render_page(
        "clients/_section.html",
        status=422 if errors else 200,
        client=client,
        section=section,
        editing=editing,
        values=values,
        errors=errors,
        sections=SECTIONS,
        choices=_choices(),
        people=_people(),
    )


def _custom_section_context(client: Client, editing: bool, submitted=None, errors=None) -> dict:
    return {
        "custom_section": section_context(
            "clients",
            client,
            url=url_for("clients.custom_section", client_id=client.id),
            may_edit=can("clients.edit"),
            editing=editing,
            submitted=submitted,
            errors=errors,
        )
    }


@blueprint.route("/<int:client_id>/custom-fields", methods=["GET", "POST"])
@require_permission("clients.view")
def custom_section(client_id: int):
    """The client's own fields (Settings → Custom fields): shown, or edited in place."""
    client = _client_or_404(client_id)
    editing = request.method == "POST" or request.args.get("edit") == "1"
    if editing and not can("clients.edit"):
        abort(403)
    submitted, errors = None, {}
    if request.method == "POST":
        fields = custom_fields.definitions(db.session, "clients")
        submitted = custom_fields.submitted_from_form(fields, request.form)
        context = services.client_context(db.session, g.tenant)
        try:
            services.update_client(db.session, context, client, {services.CUSTOM: submitted})
        except services.ClientError as error:
            errors = error.errors
        else:
            toast("Details saved.")
            submitted, editing = None, False
    return render_page(
        "clients/_custom_section.html",
        status=422 if errors else 200,
        client=client,
        **_custom_section_context(client, editing, submitted, errors),
    )


@blueprint.post("/<int:client_id>/convert")
@require_permission("clients.edit")
def convert(client_id: int):
    client = _client_or_404(client_id)
    try:
        services.convert_prospect(db.session, client)
    except services.ClientError as error:
        toast(" ".join(error.errors.values()), "error")
    else:
        toast(f"{client.short_name} is now {term('a client')}.")
    return redirect(url_for("clients.detail", client_id=client.id), 303)


@blueprint.post("/<int:client_id>/delete")
@require_permission("clients.edit")
def delete(client_id: int):
    client = _client_or_404(client_id)
    try:
        services.delete_client(db.session, client)
    except services.ClientStillHeld as refusal:
        # The client's page again, saying what holds it and where to settle each thing.
        return render_page(
            "clients/detail.html",
            status=409,
            delete_blockers=refusal.blockers,
            **_detail_context(client, "profile"),
        )
    toast(f"{client.short_name} is deleted.")
    return redirect(url_for("clients.index"), 303)


@blueprint.post("/<int:client_id>/archive")
@require_permission("clients.edit")
def archive(client_id: int):
    client = _client_or_404(client_id)
    try:
        services.archive_client(db.session, client, current_user.id)
    except services.ClientError as error:
        toast(" ".join(error.errors.values()), "error")
    else:
        toast(f"{client.short_name} is archived; its open {term('notices')} are closed.")
    return redirect(url_for("clients.detail", client_id=client.id), 303)


@blueprint.post("/<int:client_id>/restore")
@require_permission("clients.edit")
def restore(client_id: int):
    client = _client_or_404(client_id)
    try:
        services.restore_client(db.session, client)
    except services.ClientError as error:
        toast(" ".join(error.errors.values()), "error")
    else:
        toast(f"{client.short_name} is back in the list and will be chased again.")
    return redirect(url_for("clients.detail", client_id=client.id), 303)


# Contacts -----------------------------------------------------------------------------------


def _contacts_tab(client, status=200, new_contact=None, contact_errors=None):
    fields = custom_fields.definitions(db.session, "contacts")
    if new_contact is None:
        new_contact = custom_fields.form_values(fields, {f.key: f.default_value for f in fields})
    return render_page(
        "clients/detail.html",
        block="tab_body",
        status=status,
        client=client,
        tab="contacts",
        contact_fields=CONTACT_FIELDS,
        roles=CONTACT_ROLES,
        channels=CONSENT_CHANNELS,
        new_contact=new_contact,
        contact_errors=contact_errors or {},
        people=_people(),
        contact_custom_fields=fields,
        members=_members(),
    )


@blueprint.post("/<int:client_id>/contacts")
@require_permission("clients.edit")
@once_per_form_key
def add_contact(client_id: int):
    client = _client_or_404(client_id)
    fields = custom_fields.definitions(db.session, "contacts")
    custom = custom_fields.submitted_from_form(fields, request.form)
    try:
        services.save_contact(db.session, client, request.form, g.tenant.country, custom=custom)
    except services.ClientError as error:
        submitted = request.form.to_dict() | custom_fields.form_values(fields, custom)
        submitted["roles"] = request.form.getlist("roles")
        return _contacts_tab(client, 422, submitted, error.errors)
    toast("Contact added.")
    return redirect(url_for("clients.detail", client_id=client.id, tab="contacts"), 303)


@blueprint.route("/<int:client_id>/contacts/<int:contact_id>", methods=["GET", "POST"])
@require_permission("clients.view")
def edit_contact(client_id: int, contact_id: int):
    client = _client_or_404(client_id)
    contact = services.get_contact(db.session, client, contact_id)
    if contact is None:
        abort(404)
    if request.method == "POST" and not can("clients.edit"):
        abort(403)
    fields = custom_fields.definitions(db.session, "contacts")
    values = {spec.name: getattr(contact, spec.name) or "" for spec in CONTACT_FIELDS}
    values |= custom_fields.form_values(fields, contact.custom_fields or {})
    values["roles"] = contact.roles
    errors = {}
    if request.method == "POST":
        custom = custom_fields.submitted_from_form(fields, request.form)
        try:
            services.save_contact(
                db.session, client, request.form, g.tenant.country, contact, custom=custom
            )
        except services.ClientError as error:
            values = {**request.form.to_dict(), "roles": request.form.getlist("roles")}
            values |= custom_fields.form_values(fields, custom)
            errors = error.errors
        else:
            toast("Contact saved.")
            return redirect(url_for("clients.detail", client_id=client.id, tab="contacts"), 303)
    return render_page(
        "clients/contact.html",
        status=422 if errors else 200,
        client=client,
        contact=contact,
        values=values,
        errors=errors,
        fields=CONTACT_FIELDS,
        roles=CONTACT_ROLES,
        channels=CONSENT_CHANNELS,
        contact_custom_fields=fields,
        members=_members(),
    )


@blueprint.post("/<int:client_id>/contacts/<int:contact_id>/consent")
@require_permission("clients.edit")
def contact_consent(client_id: int, contact_id: int):
    client = _client_or_404(client_id)
    contact = services.get_contact(db.session, client, contact_id)
    if contact is None:
        abort(404)
    try:
        services.set_consent(
            contact,
            request.form.get("channel", ""),
            request.form.get("state") == "opted_in",
            request.form.get("source", ""),
        )
    except services.ClientError as error:
        toast(" ".join(error.errors.values()), "error")
    else:
        toast("Consent recorded.")
    return redirect(
        url_for("clients.edit_contact", client_id=client.id, contact_id=contact.id), 303
    )


@blueprint.post("/<int:client_id>/contacts/<int:contact_id>/delete")
@require_permission("clients.edit")
def delete_contact(client_id: int, contact_id: int):
    client = _client_or_404(client_id)
    contact = services.get_contact(db.session, client, contact_id)
    if contact is None:
        abort(404)
    services.delete_contact(db.session, contact)
    toast(f"{contact.full_name} removed.")
    return redirect(url_for("clients.detail", client_id=client.id, tab="contacts"), 303)


# Sites --------------------------------------------------------------------------------------


@blueprint.post("/<int:client_id>/sites")
@require_permission("clients.edit")
@once_per_form_key
def add_site(client_id: int):
    client = _client_or_404(client_id)
    try:
        services.save_site(db.session, client, request.form)
    except services.ClientError as error:
        return render_page(
            "clients/detail.html",
            block="tab_body",
            status=422,
            client=client,
            tab="sites",
            sites=services.list_sites(db.session, client),
            site_fields=SITE_FIELDS,
            new_site=request.form.to_dict(),
            site_errors=error.errors,
        )
    toast("Site added.")
    return redirect(url_for("clients.detail", client_id=client.id, tab="sites"), 303)


@blueprint.route("/<int:client_id>/sites/<int:site_id>", methods=["GET", "POST"])
@require_permission("clients.view")
def edit_site(client_id: int, site_id: int):
    client = _client_or_404(client_id)
    site = services.get_site(db.session, client, site_id)
    if site is None:
        abort(404)
    if request.method == "POST" and not can("clients.edit"):
        abort(403)
    values = {
        spec.name: "" if getattr(site, spec.name) is None else str(getattr(site, spec.name))
        for spec in SITE_FIELDS
    }
    values["site_contact_id"] = str(site.site_contact_id or "")
    errors = {}
    if request.method == "POST":
        try:
            services.save_site(db.session, client, request.form, site)
        except services.ClientError as error:
            values, errors = request.form.to_dict(), error.errors
        else:
            toast("Site saved.")
            return redirect(url_for("clients.detail", client_id=client.id, tab="sites"), 303)
    return render_page(
        "clients/site.html",
        status=422 if errors else 200,
        client=client,
        site=site,
        values=values,
        errors=errors,
        fields=SITE_FIELDS,
    )


@blueprint.post("/<int:client_id>/sites/<int:site_id>/delete")
@require_permission("clients.edit")
def delete_site(client_id: int, site_id: int):
    client = _client_or_404(client_id)
    site = services.get_site(db.session, client, site_id)
    if site is None:
        abort(404)
    services.delete_site(db.session, site)
    toast(f"{site.name} removed.")
    return redirect(url_for("clients.detail", client_id=client.id, tab="sites"), 303)


# The managed list of industries ---------------------------------------------------------------


@blueprint.route("/industries", methods=["GET", "POST"])
@require_permission("settings.manage")
def industries():
    errors = {}
    if request.method == "POST":
        try:
            industry = services.add_industry(db.session, request.form.get("name", ""))
        except services.ClientError as error:
            errors = error.errors
        else:
            toast(f"{industry.name} is on the list.")
            return redirect(url_for("clients.industries"), 303)
    return render_page(
        "clients/industries.html",
        status=422 if errors else 200,
        industries=services.industries(db.session),
        errors=errors,
        values=MultiDict(request.form),
    )
