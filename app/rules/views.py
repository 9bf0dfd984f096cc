"""Settings → Rules (admins): the list with on/off and priority, the rule form with its
condition and actions builders, a rule's page with the dry run, its runs and its versions."""

from __future__ import annotations

from flask import Blueprint, abort, g, redirect, request, url_for
from flask_login import current_user

from app.clients.models import PAYMENT_TERMS
from app.clients.services import members_for_choice
from app.collections.engine.services import policy_choices
from app.core.pages import render_page, toast
from app.core.terminology import worded
from app.extensions import db
from app.message_templates.services import list_templates
from app.rules import conditions, forms, services
from app.rules.actions import SETTABLE_FIELDS, describe, invoice_fields
from app.rules.models import ENTITIES
from app.webhooks.services import list_endpoints
from tenants.context import require_permission
from tenants.roles import ROLE_LABELS

blueprint = Blueprint("rules", __name__, url_prefix="/t/<tenant_slug>/settings/rules")


def _rule_or_404(rule_id: int):
    rule = services.get_rule(db.session, rule_id)
    if rule is None:
        abort(404)
    return rule


def _choices(entity: str) -> dict:
    """What the builders offer: fields by entity, operators by type, triggers, and what the
    actions may name."""
    entity = entity if entity in ENTITIES else "clients"
    return {
        "entities": [(e, worded(services.ENTITY_LABELS[e])) for e in ENTITIES],
        "triggers": services.trigger_choices(entity),
        "fields": conditions.fields_of(entity),
        "operators": conditions.OPERATORS,
        "operator_labels": conditions.OPERATOR_LABELS,
        "no_value": conditions.NO_VALUE,
        "group_kinds": forms.GROUP_KINDS,
        "action_choices": forms.action_choices(),
        "settable_fields": SETTABLE_FIELDS,
        "members": members_for_choice(db.session, g.tenant.id),
        "roles": list(ROLE_LABELS.items()),
        "policies": policy_choices(db.session),
        "templates": [(t.id, t.name) for t in list_templates(db.session)],
        "endpoints": [(e.id, e.url) for e in list_endpoints(db.session)],
        "invoice_fields": list(invoice_fields(db.session).items()),
        "payment_terms": PAYMENT_TERMS,
    }


def _form_page(values: dict, rule=None, errors=None, status: int = 200, block=None):
    errors = errors or {}
    return render_page(
        "rules/form.html",
        block=block,
        status=status,
        rule=rule,
        action_url=url_for("rules.update", rule_id=rule.id) if rule else url_for("rules.create"),
        values=values,
        errors=errors.get("fields", {}),
        condition_problems=errors.get("conditions", []),
        action_problems=errors.get("actions", []),
        choices=_choices(values["entity"]),
        field_of=lambda path: conditions.resolve(
            values["entity"] if values["entity"] in ENTITIES else "clients", path
        ),
    )


def _save(rule=None):
    values = forms.read_values(request.form)
    edit = request.form.get("builder")
    if edit is not None:
        # A builder button or a changed choice: the form again, nothing saved.
        forms.apply_edit(values, edit)
        return _form_page(values, rule, block="builder")
    try:
        if rule is None:
            rule = services.create_rule(db.session, forms.rule_input(values), current_user.id)
        else:
            services.update_rule(db.session, rule, forms.rule_input(values), current_user.id)
    except services.RuleInvalid as invalid:
        errors = {
            "fields": invalid.errors,
            "conditions": invalid.condition_problems,
            "actions": invalid.action_problems,
        }
        return _form_page(values, rule, errors, status=422)
    toast("The rule was saved.")
    return redirect(url_for("rules.show", rule_id=rule.id))


@blueprint.get("/")
@require_permission("settings.manage")
def index():
    # A rule whose field, member, template... is gone is turned off here with the reason, so
    # the list says why before the next run finds it.
    services.check_all(db.session)
    return render_page(
        "rules/index.html",
        rules=services.list_rules(db.session),
        last_runs=services.last_runs(db.session),
        trigger_label=services.trigger_label,
        entity_labels=services.ENTITY_LABELS,
    )


@blueprint.get("/new")
@require_permission("settings.manage")
def new():
    entity = request.args.get("entity", "clients")
    return _form_page(forms.new_rule_values(entity if entity in ENTITIES else "clients"))


@blueprint.post("/new")
@require_permission("settings.manage")
def create():
    return _save()


@blueprint.get("/<int:rule_id>")
@require_permission("settings.manage")
def show(rule_id: int):
    rule = _rule_or_404(rule_id)
    names = services.names(db.session)
    return render_page(
        "rules/show.html",
        rule=rule,
        trigger_label=services.trigger_label(rule),
        entity_label=worded(services.ENTITY_LABELS[rule.entity]),
        conditions_in_words=_in_words(rule.entity, rule.conditions, names),
        actions_in_words=[describe(action, names) for action in rule.actions],
        versions=services.versions_of(db.session, rule),
        runs=services.recent_runs(db.session, rule),
        people=names["members"],
    )


def _in_words(entity: str, tree: dict, names: dict) -> str:
    if "all" in tree or "any" in tree:
        kind = "all" if "all" in tree else "any"
        parts = [_in_words(entity, child, names) for child in tree[kind]]
        if not parts:
            return "every record"
        joined = (" and " if kind == "all" else " or ").join(parts)
        return f"({joined})" if len(parts) > 1 else joined
    if "not" in tree:
        return f"not {_in_words(entity, tree['not'], names)}"
    found = conditions.resolve(entity, tree["field"])
    label = found.label if found else f"{tree['field']} (gone)"
    value = tree.get("value")
    if found is not None and found.type == "user" and value is not None:
        value = names["members"].get(value, "a member who left")
    said = services.describe_value(tree["op"], value)
    return f"{label} {conditions.OPERATOR_LABELS.get(tree['op'], tree['op'])} {said}".strip()


@blueprint.get("/<int:rule_id>/edit")
@require_permission("settings.manage")
def edit(rule_id: int):
    rule = _rule_or_404(rule_id)
    return _form_page(forms.values_of(rule), rule)


@blueprint.post("/<int:rule_id>/edit")
@require_permission("settings.manage")
def update(rule_id: int):
    return _save(_rule_or_404(rule_id))


@blueprint.post("/<int:rule_id>/toggle")
@require_permission("settings.manage")
def toggle(rule_id: int):
    rule = _rule_or_404(rule_id)
    turn_on = request.form.get("enabled") == "1"
    refused = services.set_enabled(db.session, rule, turn_on, current_user.id)
    if refused:
        toast(f"“{rule.name}” cannot be turned on: {refused}", "error")
    else:
        toast(f"“{rule.name}” is {'on' if turn_on else 'off'}.")
    return redirect(url_for("rules.index"))


@blueprint.post("/<int:rule_id>/priority")
@require_permission("settings.manage")
def priority(rule_id: int):
    rule = _rule_or_404(rule_id)
    refused = services.set_priority(db.session, rule, request.form.get("priority"), current_user.id)
    if refused:
        toast(f"Priority of “{rule.name}”: {refused}", "error")
    return redirect(url_for("rules.index"))


@blueprint.get("/<int:rule_id>/dry-run")
@require_permission("settings.manage")
def dry_run(rule_id: int):
    rule = _rule_or_404(rule_id)
    return render_page(
        "rules/dry_run.html",
        block="dry_run",
        rule=rule,
        outcome=services.dry_run(db.session, rule),
        shown=services.DRY_RUN_SHOWN,
    )
