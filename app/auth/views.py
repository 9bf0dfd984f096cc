from __future__ import annotations

import hashlib
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy.exc import IntegrityError

from app.access_log import HideSecretLinks
from app.auth import AWAITING_MAIL_FOR, devices, services
from app.auth.forms import (
    AcceptInvitationForm,
    ChangePasswordForm,
    ConfirmSignupForm,
    ForgotPasswordForm,
    LoginForm,
    NewWorkspaceForm,
    ResetPasswordForm,
    SignupForm,
)
from app.extensions import db, limiter
from app.outbox.secret_links import SECRET_LINK
from app.outbox.services import queue_email
from app.team import services as team
from tenants import services as tenants
from tenants.models import Tenant

blueprint = Blueprint("auth", __name__)


def _submitted_email() -> str:
    return (request.form.get("email") or "").strip().lower()


def _login_attempt_key() -> str:
    # Every attempt at one account from one browser it knows, or else from one address.
    email = _submitted_email()
    device = devices.known_device(email)
    return f"login:device:{device}" if device else f"login:{request.remote_addr}:{email}"


def _login_rate_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _login_address_key() -> str:
    # Failures from one address at any account: slows down trying one password on many.
    return f"login-address:{request.remote_addr}"


def _login_address_rate_limit() -> str:
    return current_app.config["LOGIN_ADDRESS_RATE_LIMIT"]


def _login_account_key() -> str:
    # Failures at one account from browsers it does not know, wherever they are (guessing from
    # many addresses); a browser it knows has a budget of its own, so the owner still gets in.
    email = _submitted_email()
    device = devices.known_device(email)
    return f"login-account:device:{device}" if device else f"login-account:{email}"


def _login_account_rate_limit() -> str:
    return current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"]


def _from_known_device() -> bool:
    return devices.known_device(_submitted_email()) is not None


def _login_failed(response) -> bool:
    return response.status_code != 302


def _safe_next(default: str) -> str:
    target = request.values.get("next") or ""
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.netloc:
        return target
    return default


def _sign_in(user) -> None:
    """A fresh server-side session and a fresh cookie: nothing from before log-in survives."""
    session.clear()
    services.start_login_session(
        db.session, user, ip=request.remote_addr, user_agent=request.user_agent.string
    )
    session.permanent = True
    login_user(user)


def _home_for(user) -> str:
    memberships = tenants.memberships_of(db.session, user)
    preferred = session.get("last_tenant")
    for membership in memberships:
        if membership.tenant.slug == preferred:
            return url_for("dashboard.home", tenant_slug=preferred)
    if len(memberships) == 1:
        return url_for("dashboard.home", tenant_slug=memberships[0].tenant.slug)
    return url_for("auth.workspaces")


def _workspace_from_form(form, owner) -> Tenant | None:
    """Create the workspace described by `form`, or put the reason next to the field."""
    slug = (form.slug.data or "").strip().lower() or tenants.slug_from_name(form.organisation.data)
    try:
        with db.session.begin_nested():
            return tenants.create_tenant(
                db.session,
                slug=slug,
                name=form.organisation.data,
                country=form.country.data,
                region=form.region.data,
                time_zone=form.time_zone.data,
                currency=form.currency.data,
                owner=owner,
            )
    except tenants.TenantError as error:
        field = getattr(form, error.field or "slug")
        field.errors = [*field.errors, str(error)]
    except IntegrityError:  # the same address taken a moment ago by someone else
        form.slug.errors = [*form.slug.errors, "That address is taken. Choose another."]
    return None


@blueprint.get("/")
def index():
    if current_user.is_authenticated:
        return redirect(_home_for(current_user))
    return redirect(url_for("auth.login"))


def _awaiting_mail_for(email: str) -> None:
    """Remember, in this browser's signed session only, the addresses it was told to look in
    for a link: the sandbox inbox of `make run` shows a visitor who is not logged in the mail
    sent to them and nothing else (they typed the address themselves, so nothing leaks)."""
    addresses = [a for a in session.get(AWAITING_MAIL_FOR, []) if a != email.strip().lower()]
    session[AWAITING_MAIL_FOR] = [email.strip().lower(), *addresses][:3]


@blueprint.route("/signup", methods=["GET", "POST"])
def signup():
    """Sign-up answers the same whatever the e-mail or workspace address: everything is
    done by e-mail (services.request_signup), so the page reveals no account or workspace."""
    form = SignupForm()
    if request.method == "GET" and not form.time_zone.data:
        form.time_zone.data = "Asia/Kolkata"
    if form.validate_on_submit():
        slug = (form.slug.data or "").strip().lower()
        problem = services.workspace_address_format_problem(slug)
        if problem:
            form.slug.errors = [*form.slug.errors, problem]
        else:
            services.request_signup(
                db.session,
                email=form.email.data,
                full_name=form.full_name.data,
                password=form.password.data,
                workspace={
                    "organisation": form.organisation.data.strip(),
                    "slug": slug or None,
                    "country": form.country.data,
                    "region": form.region.data or None,
                    "time_zone": form.time_zone.data,
                    "currency": form.currency.data,
                },
                links=services.SignupLinks(
                    confirm=lambda token: url_for(
                        "auth.confirm_signup", token=token, _external=True
                    ),
                    login=url_for("auth.login", _external=True),
                    forgot_password=url_for("auth.forgot_password", _external=True),
                ),
                valid_for=timedelta(seconds=current_app.config["TOKEN_MAX_AGE_SECONDS"]),
            )
            _awaiting_mail_for(form.email.data)
            return redirect(url_for("auth.signup_sent"))
    status = 422 if form.errors else 200
    return render_template("auth/signup.html", form=form), status


@blueprint.get("/signup/sent")
def signup_sent():
    hours = current_app.config["TOKEN_MAX_AGE_SECONDS"] // 3600
    return render_template("auth/signup_sent.html", hours=hours)


@blueprint.route("/signup/confirm/<token>", methods=["GET", "POST"])
def confirm_signup(token: str):
    """Following the link proves the mailbox; the password chosen at sign-up, asked again,
    proves that its owner is the one who signed up. Only then are account and workspace made;
    a workspace address taken in the meantime is explained here, with a free one offered."""
    try:
        pending = services.pending_signup_for_token(db.session, token)
    except services.AccountError as error:
        return render_template(
            "auth/token_problem.html", message=str(error), retry_url=url_for("auth.signup")
        ), 400
    form = ConfirmSignupForm()
    if request.method == "GET":
        form.slug.data = services.suggested_slug(db.session, pending)
    if form.validate_on_submit():
        slug = form.slug.data.strip().lower()
        try:
            with db.session.begin_nested():
                user, tenant = services.confirm_signup(
                    db.session, pending, password=form.password.data, slug=slug
                )
        except services.AccountError as error:
            form.password.errors = [*form.password.errors, str(error)]
        except tenants.TenantError as error:
            form.slug.errors = [*form.slug.errors, str(error)]
        except IntegrityError:  # the same address taken a moment ago by someone else
            form.slug.errors = [*form.slug.errors, "That address is taken. Choose another."]
        else:
            _sign_in(user)
            session["last_tenant"] = tenant.slug
            flash(f"Welcome to Duebook. {tenant.name} is ready.", "success")
            # A new workspace starts with the short guided setup (it can be skipped).
            return redirect(url_for("setup.index", tenant_slug=tenant.slug))
    return render_template(
        "auth/confirm_signup.html", form=form, pending=pending
    ), 422 if form.errors else 200


@blueprint.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, key_func=_login_attempt_key, methods=["POST"])
@limiter.limit(
    _login_address_rate_limit,
    key_func=_login_address_key,
    methods=["POST"],
    deduct_when=_login_failed,
    exempt_when=_from_known_device,
)
@limiter.limit(
    _login_account_rate_limit,
    key_func=_login_account_key,
    methods=["POST"],
    deduct_when=_login_failed,
)
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = services.authenticate(db.session, form.email.data, form.password.data)
        if user is not None:
            _sign_in(user)
            response = redirect(_safe_next(_home_for(user)))
            devices.remember_device(response, user.email)
            return response
        form.password.errors = ["That e-mail and password do not match an account."]
    status = 422 if form.errors else 200
    return render_template("auth/login.html", form=form), status


@blueprint.post("/logout")
@login_required
def logout():
    services.end_login_session(db.session, current_user.session_token)
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@blueprint.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"])
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        reset = services.password_reset_for(db.session, form.email.data)
        if reset is not None:
            context = {
                "name": reset.name,
                "url": SECRET_LINK,
                "hours": current_app.config["TOKEN_MAX_AGE_SECONDS"] // 3600,
            }
            queue_email(
                db.session,
                to=reset.to,
                subject="Reset your Duebook password",
                text_body=render_template("email/password_reset.txt", **context),
                html_body=render_template("email/password_reset.html", **context),
                # A hash: the key is stored in clear and is the e-mail's Message-ID.
                idempotency_key=f"password-reset:{hashlib.sha256(reset.token.encode()).hexdigest()}",
                secret_link=url_for("auth.reset_password", token=reset.token, _external=True),
            )
        _awaiting_mail_for(form.email.data)
        # The same answer whether or not the address has an account.
        flash("If that address has an account, a reset link is on its way.", "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot_password.html", form=form), 422 if form.errors else 200


@blueprint.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    try:
        user = services.user_for_reset_token(db.session, token)
    except services.AccountError as error:
        return render_template(
            "auth/token_problem.html", message=str(error), retry_url=url_for("auth.forgot_password")
        ), 400
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            services.set_password(db.session, user, form.password.data)
        except services.AccountError as error:  # the rules that need the e-mail address
            form.password.errors = [*form.password.errors, str(error)]
        else:
            flash("Your password is changed. Log in with the new one.", "success")
            return redirect(url_for("auth.login"))
    return render_template("auth/reset_password.html", form=form), 422 if form.errors else 200


@blueprint.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            services.change_password(
                db.session,
                current_user,
                form.current.data,
                form.password.data,
                keep_token=current_user.session_token,
            )
        except services.AccountError as error:
            form.current.errors = [str(error)]
        else:
            flash("Your password is changed. Other browsers were logged out.", "success")
            return redirect(_home_for(current_user))
    return render_template("auth/change_password.html", form=form), 422 if form.errors else 200


@blueprint.route("/invitations/<token>", methods=["GET", "POST"])
def accept_invitation(token: str):
    """Joining by an invitation's link. For an address with no account, the link is all
    the proof of the mailbox there is, and it is enough only because nobody but the mailbox
    ever sees it: see team.services.accept_invitation for why that holds."""
    try:
        invitation = team.invitation_for_token(db.session, token)
    except team.TeamError as error:
        return render_template(
            "auth/token_problem.html", message=str(error), retry_url=url_for("auth.login")
        ), 400
    existing = services.find_user_by_email(db.session, invitation.email)
    form = AcceptInvitationForm()
    if current_user.is_authenticated:
        if request.method == "POST":
            try:
                team.accept_invitation(db.session, invitation, current_user)
            except team.TeamError as error:
                flash(str(error), "error")
                return redirect(url_for("auth.accept_invitation", token=token))
            session["last_tenant"] = invitation.tenant.slug
            flash(f"You have joined {invitation.tenant.name}.", "success")
            return redirect(url_for("dashboard.home", tenant_slug=invitation.tenant.slug))
        return render_template(
            "auth/accept_invitation.html", invitation=invitation, form=None, existing=existing
        )
    if existing is not None:
        flash(f"Log in as {invitation.email} to accept the invitation.", "info")
        return redirect(url_for("auth.login", next=url_for("auth.accept_invitation", token=token)))
    if form.validate_on_submit():
        try:
            user = services.create_user(
                db.session,
                email=invitation.email,
                full_name=form.full_name.data,
                password=form.password.data,
            )
        except services.AccountError as error:  # the rules that need the e-mail address
            form.password.errors = [*form.password.errors, str(error)]
        else:
            team.accept_invitation(db.session, invitation, user)
            _sign_in(user)
            session["last_tenant"] = invitation.tenant.slug
            flash(f"Welcome to {invitation.tenant.name}.", "success")
            return redirect(url_for("dashboard.home", tenant_slug=invitation.tenant.slug))
    return (
        render_template(
            "auth/accept_invitation.html", invitation=invitation, form=form, existing=None
        ),
        422 if form.errors else 200,
    )


@blueprint.get("/tenants")
@login_required
def workspaces():
    memberships = tenants.memberships_of(db.session, current_user)
    return render_template("auth/workspaces.html", memberships=memberships)


@blueprint.route("/tenants/new", methods=["GET", "POST"])
@login_required
def new_workspace():
    form = NewWorkspaceForm()
    if form.validate_on_submit():
        tenant = _workspace_from_form(form, current_user)
        if tenant is not None:
            session["last_tenant"] = tenant.slug
            flash(f"{tenant.name} is ready.", "success")
            return redirect(url_for("dashboard.home", tenant_slug=tenant.slug))
    return render_template("auth/new_workspace.html", form=form), 422 if form.errors else 200


@blueprint.get("/tenants/<slug>/open")
@login_required
def switch_workspace(slug: str):
    """Remember the choice so that the next log-in lands in the same workspace."""
    if slug not in {m.tenant.slug for m in tenants.memberships_of(db.session, current_user)}:
        abort(404)
    session["last_tenant"] = slug
    return redirect(url_for("dashboard.home", tenant_slug=slug))


@blueprint.record_once
def _hide_secret_links_in_the_log(state) -> None:
    # The links these views serve carry their secret in the path, which Flask's error log
    # ("Exception on /invitations/<token>") would print.
    state.app.logger.addFilter(HideSecretLinks())
