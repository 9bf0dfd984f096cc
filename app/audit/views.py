from __future__ import annotations

from flask import Blueprint, g, request
from sqlalchemy import select

from app.audit import services, wording
from app.audit.forms import AuditFilterForm
from app.core.pages import render_page
from app.core.terminology import reworded
from app.extensions import db
from app.form_choices import as_choices
from tenants.context import require_permission
from tenants.models import User
from tenants.services import member_names

blueprint = Blueprint("audit", __name__, url_prefix="/t/<tenant_slug>/audit")


@blueprint.get("/")
@require_permission("audit.view")
def index():
    form = AuditFilterForm(request.args)
    people = member_names(db.session, g.tenant.id)
    form.entity.choices += as_choices(
        (e, reworded(e.replace("_", " "))) for e in services.audited_entities(db.session)
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
        actions=_in_words(entries, people),
        people=people,
        next_args=next_args,
    )


def _in_words(entries, people) -> list[wording.Action]:
    return wording.describe(db.session, entries, people, g.tenant.country, g.tenant.time_zone)


@blueprint.app_template_global()
def changes_in_words(timeline: list[tuple]) -> list[tuple]:
    """A page's (kind, moment, entry) timeline with its audit entries ("change") grouped into
    actions in words ("action", moment, wording.Action); the rest as it is. The people named
    are the workspace's members and former members."""
    entries = [entry for kind, _, entry in timeline if kind == "change"]
    ids = {e.actor_user_id for e in entries} | {
        value
        for e in entries
        for key, pair in e.changes.items()
        if key in wording.wording_of(e.entity).people_fields
        for value in pair
        if isinstance(value, int)
    }
    ids.discard(None)
    people = dict(db.session.execute(select(User.id, User.full_name).where(User.id.in_(ids))).all())
    action_of = {
        part.entry.id: action for action in _in_words(entries, people) for part in action.parts
    }
    out, shown = [], set()
    for kind, moment, entry in timeline:
        if kind != "change":
            out.append((kind, moment, entry))
        elif id(action_of[entry.id]) not in shown:
            shown.add(id(action_of[entry.id]))
            out.append(("action", moment, action_of[entry.id]))
    return out
