from __future__ import annotations

from flask import Blueprint, abort, current_app, g, redirect, url_for

from app.core.pages import render_page, toast
from app.extensions import db
from app.form_choices import as_choices
from app.team import services
from app.team.forms import InviteForm, RoleForm
from tenants.context import require_permission
from tenants.roles import ROLE_LABELS, roles_assignable_by
from tenants.services import members

blueprint = Blueprint("team", __name__, url_prefix="/t/<tenant_slug>/team")


def _page(invite_form=None, status=200):
    invite_form = invite_form or InviteForm()
    assignable = roles_assignable_by(g.membership.role)
    invite_form.role.choices = as_choices((r, ROLE_LABELS[r]) for r in assignable)
    return render_page(
        "team/index.html",
        block="team_body",
        status=status,
        members=members(db.session, g.tenant.id),
        invitations=services.open_invitations(db.session, g.tenant.id),
        invite_form=invite_form,
        role_labels=ROLE_LABELS,
        assignable=assignable,
    )


def _membership_or_404(membership_id: int):
    membership = services.get_membership(db.session, g.tenant.id, membership_id)
    if membership is None:
        abort(404)
    return membership


@blueprint.get("/")
@require_permission("users.manage")
def index():
    return _page()


@blueprint.post("/invitations")
@require_permission("users.manage")
def invite():
    form = InviteForm()
    form.role.choices = as_choices(
        (r, ROLE_LABELS[r]) for r in roles_assignable_by(g.membership.role)
    )
    if form.validate_on_submit():
        try:
            services.invite(
                db.session,
                tenant=g.tenant,
                inviter=g.membership,
                email=form.email.data,
                role=form.role.data,
                valid_days=current_app.config["INVITATION_DAYS"],
                accept_url=lambda token: url_for(
                    "auth.accept_invitation", token=token, _external=True
                ),
            )
        except services.TeamError as error:
            form.email.errors = [*form.email.errors, str(error)]
        else:
            toast(f"Invitation sent to {form.email.data}.")
            return redirect(url_for("team.index"), 303)
    return _page(invite_form=form, status=422)


@blueprint.post("/invitations/<int:invitation_id>/revoke")
@require_permission("users.manage")
def revoke_invitation(invitation_id: int):
    invitation = services.get_invitation(db.session, g.tenant.id, invitation_id)
    if invitation is None:
        abort(404)
    services.revoke_invitation(invitation)
    toast(f"Invitation to {invitation.email} withdrawn.")
    return redirect(url_for("team.index"), 303)


@blueprint.post("/members/<int:membership_id>/role")
@require_permission("users.manage")
def change_role(membership_id: int):
    target = _membership_or_404(membership_id)
    form = RoleForm()
    if form.validate_on_submit():
        try:
            services.change_role(db.session, g.membership, target, form.role.data)
        except services.TeamError as error:
            toast(str(error), "error")
        else:
            toast(f"{target.user.full_name} is now {ROLE_LABELS[target.role]}.")
    return redirect(url_for("team.index"), 303)


@blueprint.post("/members/<int:membership_id>/access/<any(on, off):state>")
@require_permission("users.manage")
def set_access(membership_id: int, state: str):
    target = _membership_or_404(membership_id)
    try:
        services.set_access(db.session, g.membership, target, active=state == "on")
    except services.TeamError as error:
        toast(str(error), "error")
    else:
        verb = "can use" if target.active else "can no longer use"
        toast(f"{target.user.full_name} {verb} {g.tenant.name}.")
    return redirect(url_for("team.index"), 303)
