from __future__ import annotations

from flask import Blueprint, g, request
from sqlalchemy import select

from app.audit import services
from app.audit.forms import AuditFilterForm
from app.core.pages import render_page
from app.extensions import db
from app.form_choices import as_choices
from tenants.context import require_permission
from tenants.models import User
from tenants.services import members

blueprint = Blueprint("audit", __name__, url_prefix="/t/<tenant_slug>/audit")


@blueprint.get("/")
@require_permission("audit.view")
def index():
    form = AuditFilterForm(request.args)
    people = {m.user_id: m.user.full_name for m in members(db.session, g.tenant.id)}
    form.entity.choices += as_choices(
        (e, e.replace("_", " ")) for e in services.audited_entities(db.session)
    )
    form.actor.choices += as_choices((str(uid), name) for uid, name in people.items())
    entries = []
    if form.validate():
        entries = services.search_entries(
            db.session,
            entity=form.entity.data or None,
            action=form.action.data or None,
            actor_user_id=int(form.actor.data) if form.actor.data else None,
            since=form.since.data,
            until=form.until.data,
            before_id=form.before.data,
        )
    unknown = {e.actor_user_id for e in entries} - people.keys() - {None}
    if unknown:  # former members keep their name in the log
        people.update(
            db.session.execute(select(User.id, User.full_name).where(User.id.in_(unknown)))
        )
    next_args = None
    if len(entries) == services.PAGE_SIZE:
        next_args = {**request.args.to_dict(), "before": entries[-1].id}
    return render_page(
        "audit/index.html",
        block="audit_results",
        form=form,
        entries=entries,
        people=people,
        next_args=next_args,
    )
