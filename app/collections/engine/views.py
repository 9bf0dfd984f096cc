"""Collections pages: today's preview ("what goes out today, and why"), Run now, the runs
history, Send me a test; collection policies and their ladders; the collection settings."""

from __future__ import annotations

from flask import Blueprint, abort, g, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.clients.models import Client
from app.clients.picker import SEARCH_FIELD, client_picker
from app.collections.engine import forms, services
from app.collections.engine import run as engine
from app.collections.models import CollectionLevel, CollectionNotice, CollectionRun
from app.core.form_once import once_per_form_key
from app.core.pages import render_page, toast
from app.core.request_input import row_id
from app.core.terminology import term
from app.extensions import db
from tenants.context import require_permission

blueprint = Blueprint("collections", __name__, url_prefix="/t/<tenant_slug>/collections")

CHOICES = {
    "channels": forms.CHANNEL_LABELS,
    "triggers": forms.TRIGGER_LABELS,
    "purposes": forms.PURPOSE_LABELS,
    "groupings": forms.GROUPING_LABELS,
    "msme_categories": forms.MSME_CATEGORY_LABELS,
    "rate_bases": forms.RATE_BASIS_LABELS,
    "interest_roundings": forms.INTEREST_ROUNDING_LABELS,
    "skip_labels": engine.SKIP_LABELS,
}


def _policy_or_404(policy_id: int):
    policy = services.get_policy(db.session, policy_id)
    if policy is None:
        abort(404)
    return policy


def _level_or_404(policy, level_id: int) -> CollectionLevel:
    level = services.get_level(db.session, policy, level_id)
    if level is None:
        abort(404)
    return level


# Today's run --------------------------------------------------------------------------------


def _index(test_values=None, test_errors=None, status=200):
    today = engine.tenant_today(g.tenant)
    plan = engine.plan(db.session, g.tenant, today, any_day=True)
    runs = db.session.scalars(
        select(CollectionRun)
        .where(CollectionRun.dry_run.is_(False))
        .order_by(CollectionRun.id.desc())
        .limit(20)
    )
    levels = db.session.execute(
        select(CollectionLevel.id, CollectionLevel.name, CollectionLevel.position)
        .join(CollectionLevel.policy)
        .where(CollectionLevel.policy.has(deleted_at=None))
        .order_by(CollectionLevel.policy_id, CollectionLevel.position)
    ).all()
    return render_page(
        "collections/index.html",
        status=status,
        plan=plan,
        today=today,
        runs=list(runs),
        settings=services.settings_of(db.session),
        every_notice_waits=services.every_notice_waits(db.session, g.tenant.id),
        levels=levels,
        picker=client_picker(
            db.session,
            (test_values or {}).get(SEARCH_FIELD),
            row_id((test_values or {}).get("client_id")),
            every_client=False,
        ),
        test_values=test_values or {},
        test_errors=test_errors or {},
        **CHOICES,
    )


@blueprint.get("/")
@require_permission("notices.view")
def index():
    return _index()


@blueprint.post("/run")
@require_permission("notices.manage")
def run_now():
    # A person pressing the button means today, even on a weekend or holiday.
    record = engine.run(
        db.session, g.tenant, trigger="manual", user_id=current_user.id, any_day=True
    )
    toast(
        f"Run for {record.run_date:%d %b %Y}: {record.notices_created} {term('notice')}(s) created."
    )
    return redirect(url_for("collections.run_detail", run_id=record.id), 303)


@blueprint.get("/runs/<int:run_id>")
@require_permission("notices.view")
def run_detail(run_id: int):
    record = db.session.get(CollectionRun, run_id)
    if record is None:
        abort(404)
    notices = db.session.execute(
        select(CollectionNotice, Client.short_name)
        .join(Client, Client.id == CollectionNotice.client_id)
        .where(CollectionNotice.run_id == record.id)
        .order_by(CollectionNotice.id)
    ).all()
    return render_page("collections/run.html", record=record, notices=notices, **CHOICES)


@blueprint.post("/test")
@require_permission("notices.manage")
def send_test():
    values = request.form.to_dict()
    try:
        services.send_test(
            db.session, g.tenant, current_user, values.get("level_id"), values.get("client_id")
        )
    except services.CollectionsInvalid as error:
        return _index(test_values=values, test_errors=error.errors, status=422)
    toast(f"Test queued to {current_user.email}. Nothing was recorded on the ladder.")
    return redirect(url_for("collections.index"), 303)


# Policies -----------------------------------------------------------------------------------


def _policies(values=None, errors=None, status=200):
    return render_page(
        "collections/policies.html",
        status=status,
        policies=services.list_policies(db.session),
        values=values or {},
        errors=errors or {},
        **CHOICES,
    )


@blueprint.get("/policies")
@require_permission("notices.view")
def policies():
    return _policies()


@blueprint.post("/policies")
@require_permission("settings.manage")
@once_per_form_key
def create_policy():
    try:
        policy = services.save_policy(db.session, request.form)
    except services.CollectionsInvalid as error:
        return _policies(values=request.form.to_dict(), errors=error.errors, status=422)
    toast(f"Policy {policy.name} created. Add its levels.")
    return redirect(url_for("collections.policy", policy_id=policy.id), 303)


def _policy_page(
    policy,
    values=None,
    errors=None,
    level_values=None,
    level_errors=None,
    editing=None,
    status=200,
    block=None,
):
    return render_page(
        "collections/policy.html",
        block=block,
        status=status,
        policy=policy,
        values=values or {"name": policy.name, "description": policy.description or ""},
        errors=errors or {},
        level_values=level_values
        or {
            "channels": ["email"],
            "trigger": "after_due",
            "trigger_days": "3",
            "min_gap_days": "3",
            "template_purpose": "notice_1",
        },
        level_errors=level_errors or {},
        editing=editing,
        **CHOICES,
    )


@blueprint.get("/policies/<int:policy_id>")
@require_permission("notices.view")
def policy(policy_id: int):
    return _policy_page(_policy_or_404(policy_id))


@blueprint.post("/policies/<int:policy_id>")
@require_permission("settings.manage")
def save_policy(policy_id: int):
    policy = _policy_or_404(policy_id)
    try:
        services.save_policy(db.session, request.form, policy)
    except services.CollectionsInvalid as error:
        return _policy_page(policy, values=request.form.to_dict(), errors=error.errors, status=422)
    toast("Policy saved.")
    return redirect(url_for("collections.policy", policy_id=policy.id), 303)


@blueprint.post("/policies/<int:policy_id>/default")
@require_permission("settings.manage")
def make_default(policy_id: int):
    policy = _policy_or_404(policy_id)
    services.make_default(db.session, policy)
    toast(f"{policy.name} is now the default policy.")
    return redirect(url_for("collections.policies"), 303)


@blueprint.post("/policies/<int:policy_id>/delete")
@require_permission("settings.manage")
def delete_policy(policy_id: int):
    policy = _policy_or_404(policy_id)
    try:
        services.delete_policy(db.session, policy)
    except services.CollectionsInvalid as error:
        toast(error.errors["policy"], "error")
        return redirect(url_for("collections.policy", policy_id=policy.id), 303)
    toast(
        f"Policy {policy.name} deleted; its {term('clients')} and invoices follow the default now."
    )
    return redirect(url_for("collections.policies"), 303)


@blueprint.post("/policies/<int:policy_id>/levels")
@require_permission("settings.manage")
@once_per_form_key
def add_level(policy_id: int):
    policy = _policy_or_404(policy_id)
    try:
        services.save_level(db.session, policy, request.form)
    except services.CollectionsInvalid as error:
        return _policy_page(
            policy, level_values=_form_values(), level_errors=error.errors, status=422
        )
    toast("Level added.")
    return redirect(url_for("collections.policy", policy_id=policy.id), 303)


def _form_values() -> dict:
    values = request.form.to_dict()
    values["channels"] = request.form.getlist("channels")
    return values


@blueprint.get("/policies/<int:policy_id>/levels/<int:level_id>")
@require_permission("settings.manage")
def edit_level(policy_id: int, level_id: int):
    policy = _policy_or_404(policy_id)
    level = _level_or_404(policy, level_id)
    return render_page(
        "collections/level_edit.html",
        policy=policy,
        level=level,
        values=forms.level_values(level),
        errors={},
        **CHOICES,
    )


@blueprint.post("/policies/<int:policy_id>/levels/<int:level_id>")
@require_permission("settings.manage")
def save_level(policy_id: int, level_id: int):
    policy = _policy_or_404(policy_id)
    level = _level_or_404(policy, level_id)
    try:
        services.save_level(db.session, policy, request.form, level)
    except services.CollectionsInvalid as error:
        return render_page(
            "collections/level_edit.html",
            status=422,
            policy=policy,
            level=level,
            values=_form_values(),
            errors=error.errors,
            **CHOICES,
        )
    toast(f"{level.name} saved.")
    return redirect(url_for("collections.policy", policy_id=policy.id), 303)


@blueprint.post("/policies/<int:policy_id>/levels/<int:level_id>/delete")
@require_permission("settings.manage")
def delete_level(policy_id: int, level_id: int):
    policy = _policy_or_404(policy_id)
    level = _level_or_404(policy, level_id)
    try:
        services.delete_level(db.session, level)
    except services.CollectionsInvalid as error:
        toast(error.errors["level"], "error")
        return _policy_page(policy, block="ladder")
    toast("Level removed.")
    return _policy_page(policy, block="ladder")


@blueprint.post("/policies/<int:policy_id>/levels/<int:level_id>/move")
@require_permission("settings.manage")
def move_level(policy_id: int, level_id: int):
    policy = _policy_or_404(policy_id)
    level = _level_or_404(policy, level_id)
    direction = request.form.get("direction")
    if direction not in ("up", "down"):
        abort(400)
    services.move_level(db.session, level, direction)
    return _policy_page(policy, block="ladder")


# Settings -----------------------------------------------------------------------------------


@blueprint.get("/settings")
@require_permission("settings.manage")
def settings():
    current = services.settings_of(db.session)
    return render_page(
        "collections/settings.html",
        settings=current,
        values=forms.settings_values(current),
        errors={},
        **CHOICES,
    )


@blueprint.post("/settings")
@require_permission("settings.manage")
def save_settings():
    try:
        services.save_settings(db.session, request.form, current_user.id)
    except services.CollectionsInvalid as error:
        return render_page(
            "collections/settings.html",
            status=422,
            settings=services.settings_of(db.session),
            values=request.form.to_dict(),
            errors=error.errors,
            **CHOICES,
        )
    toast("Collection settings saved.")
    return redirect(url_for("collections.settings"), 303)
