"""Sign-up, log in and out, sessions ended on the server, passwords, reset tokens, CSRF, rate
limits: each with the clear message a user gets when it goes wrong."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta
from unittest import mock

import argon2
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select, update

from app.auth import services as accounts
from app.auth.models import PendingSignup
from app.config import from_environment
from tenants.models import LoginSession, Membership, Tenant, User
from tests.helpers import PASSWORD, csrf_token_from, mail_link, unique


def signup_form(client, **overrides):
    page = client.get("/signup")
    data = {
        "organisation": "Sharma Engineering",
        "slug": unique("sharma"),
        "country": "IN",
        "region": "Maharashtra",
        "time_zone": "Asia/Kolkata",
        "currency": "INR",
        "full_name": "Priya Sharma",
        "email": f"{unique('priya')}@example.com",
        "password": PASSWORD,
        "csrf_token": csrf_token_from(page.text),
    }
    data.update(overrides)
    return data


def mailed_link(run_jobs, received_mail, to: str, path_prefix: str) -> str:
    run_jobs()
    [message] = [m for m in received_mail() if m["To"] == to]
    return mail_link(message, path_prefix)


def confirm(client, link, slug, password=PASSWORD):
    page = client.get(link)
    assert page.status_code == 200, page.text
    return client.post(
        link, data={"slug": slug, "password": password, "csrf_token": csrf_token_from(page.text)}
    )


def sign_up(client, run_jobs, received_mail, **overrides):
    """Sign up through the form and follow the link of the confirmation e-mail: the form
    data and the answer to the confirmation."""
    data = signup_form(client, **overrides)
    response = client.post("/signup", data=data)
    assert response.status_code == 302 and response.headers["Location"] == "/signup/sent"
    link = mailed_link(run_jobs, received_mail, data["email"], "/signup/confirm/")
    return data, confirm(client, link, data["slug"], data["password"])


def test_signup_creates_tenant_schema_and_owner_then_lands_in_it(
    client, db_session, run_jobs, received_mail
):
    data, response = sign_up(client, run_jobs, received_mail)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/t/{data['slug']}/setup/")
    tenant = db_session.scalar(select(Tenant).where(Tenant.slug == data["slug"]))
    membership = db_session.scalar(select(Membership).where(Membership.tenant_id == tenant.id))
    assert membership.role == "owner"
    assert membership.user.email == data["email"]
    tables = (
        db_session.connection()
        .exec_driver_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (tenant.schema,),
        )
        .scalars()
        .all()
    )
    assert "audit_log" in tables
    setup = client.get(response.headers["Location"], follow_redirects=True)
    assert setup.status_code == 200
    assert "Set up Sharma Engineering" in setup.text


def test_signup_answers_the_same_whether_or_not_the_email_has_an_account(
    client, db_session, make_user, run_jobs, received_mail
):
    user = make_user()
    answers = []
    for email in (user.email.upper(), f"{unique('fresh')}@example.com"):
        response = client.post("/signup", data=signup_form(client, email=email))
        followed = client.get(response.headers["Location"])
        page = re.sub(r'"X-CSRFToken": "[^"]*"', "", followed.text)  # new on every page
        answers.append(
            (response.status_code, response.headers["Location"], followed.status_code, page)
        )
    assert answers[0] == answers[1]
    assert "Check your e-mail" in answers[0][3]

    run_jobs()
    to_user = [m for m in received_mail() if m["To"] == user.email]
    assert [m["Subject"] for m in to_user] == ["You already have a Duebook account"]
    body = to_user[0].get_body(preferencelist=("plain",)).get_content()
    assert "/login" in body and "/password/forgot" in body and "/signup/confirm/" not in body
    assert (
        db_session.scalar(
            select(func.count())
            .select_from(User)
            .where(func.lower(User.email) == user.email.lower())
        )
        == 1
    )


def test_a_taken_workspace_address_is_explained_only_after_the_email_is_confirmed(
    client, make_tenant, run_jobs, received_mail
):
    taken = make_tenant().slug
    data = signup_form(client, slug=taken)
    response = client.post("/signup", data=data)
    assert response.status_code == 302 and response.headers["Location"] == "/signup/sent"

    link = mailed_link(run_jobs, received_mail, data["email"], "/signup/confirm/")
    page = client.get(link)
    assert f"<strong>{taken}</strong> is taken" in page.text
    assert f'value="{taken}-2"' in page.text
    refused = confirm(client, link, taken)
    assert refused.status_code == 422
    assert "That address is taken" in refused.text and 'id="slug-error"' in refused.text
    created = confirm(client, link, f"{taken}-2")
    assert created.status_code == 302 and created.headers["Location"].endswith(
        f"/t/{taken}-2/setup/"
    )


def test_confirming_a_signup_needs_the_password_chosen_at_signup(
    client, db_session, run_jobs, received_mail
):
    """Someone signing up with another person's address cannot have that person confirm an
    account whose password the impostor knows."""
    data = signup_form(client)
    client.post("/signup", data=data)
    link = mailed_link(run_jobs, received_mail, data["email"], "/signup/confirm/")
    response = confirm(client, link, data["slug"], password="not the chosen one")
    assert response.status_code == 422
    assert "not the password you chose" in response.text
    assert db_session.scalar(select(User).where(User.email == data["email"])) is None


def test_an_expired_signup_link_is_refused_clearly(client, db_session, run_jobs, received_mail):
    data = signup_form(client)
    client.post("/signup", data=data)
    link = mailed_link(run_jobs, received_mail, data["email"], "/signup/confirm/")
    pending = db_session.scalar(select(PendingSignup).where(PendingSignup.email == data["email"]))
    pending.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    pending_id = pending.id
    db_session.commit()
    response = client.get(link)
    assert response.status_code == 400 and "expired" in response.text
    # The next sign-up purges it.
    client.post("/signup", data=signup_form(client))
    db_session.expunge_all()
    assert db_session.get(PendingSignup, pending_id) is None


def test_signup_rejects_a_weak_password_and_keeps_nothing(client, db_session):
    data = signup_form(client, password="password1")
    response = client.post("/signup", data=data)
    assert response.status_code == 422
    assert "Use at least 10 characters" in response.text
    assert db_session.scalar(select(User).where(User.email == data["email"])) is None
    assert db_session.scalar(select(Tenant).where(Tenant.slug == data["slug"])) is None


def test_bad_slug_format_is_explained(client):
    response = client.post("/signup", data=signup_form(client, slug="9 Bad Slug!"))
    assert response.status_code == 422
    assert "lowercase letters, digits or hyphens" in response.text


def test_form_without_csrf_token_gets_a_clear_400(client, make_user):
    user = make_user()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "This form has expired" in response.text


def test_login_renews_session_and_logout_ends_it_on_the_server(
    client, make_user, login, db_session
):
    user = make_user()
    make_tenant_free_page = "/account/password"
    client.get("/login")
    cookie_before_login = client.get_cookie("duebook")
    login(client, user)
    cookie = client.get_cookie("duebook")
    assert cookie is not None and (
        cookie_before_login is None or cookie.value != cookie_before_login.value
    )
    assert client.get(make_tenant_free_page).status_code == 200
    stolen = cookie.value

    page = client.get(make_tenant_free_page)
    client.post("/logout", data={"csrf_token": csrf_token_from(page.text)})
    assert (
        db_session.scalar(
            select(func.count()).select_from(LoginSession).where(LoginSession.user_id == user.id)
        )
        == 0
    )

    replay = client.application.test_client()
    replay.set_cookie("duebook", stolen)
    response = replay.get(make_tenant_free_page)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_disabled_user_is_logged_out_at_once(client, make_user, login, db_session):
    user = make_user()
    login(client, user)
    assert client.get("/account/password").status_code == 200
    user.active = False
    db_session.commit()
    response = client.get("/account/password")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_login_session_ends_when_it_outlives_its_lifetime(client, make_user, login, db_session):
    user = make_user()
    login(client, user)
    assert client.get("/account/password").status_code == 200
    lifetime = client.application.permanent_session_lifetime
    db_session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user.id)
        .values(created_at=func.now() - lifetime + timedelta(minutes=1))
    )
    db_session.commit()
    assert client.get("/account/password").status_code == 200  # a minute left
    db_session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user.id)
        .values(created_at=func.now() - lifetime - timedelta(minutes=1))
    )
    db_session.commit()
    response = client.get("/account/password")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_production_hashes_passwords_at_argon2s_own_default_cost():
    environment = {
        "DUEBOOK_ENV": "production",
        "SECRET_KEY": "k",
        "SECRETS_KEYS": "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleS0=",
        "DATABASE_URL": "postgresql://db/duebook",
        "REDIS_URL": "redis://redis/0",
    }
    with mock.patch.dict(os.environ, environment, clear=True):
        config = from_environment()
    strong = argon2.profiles.RFC_9106_LOW_MEMORY
    assert config["PASSWORD_HASH_TIME_COST"] == strong.time_cost == 3
    assert config["PASSWORD_HASH_MEMORY_COST"] == strong.memory_cost == 64 * 1024
    assert config["PASSWORD_HASH_PARALLELISM"] == strong.parallelism == 4


def test_a_hash_made_at_a_weaker_cost_is_made_again_at_the_next_login(
    app, client, make_user, login, db_session, monkeypatch
):
    user = make_user()  # at the tests' cost, argon2's cheapest
    weak_hash = user.password_hash
    monkeypatch.setitem(app.config, "PASSWORD_HASH_TIME_COST", 2)
    monkeypatch.setitem(app.extensions, "duebook.password_hashing", None)
    accounts.init_app(app)
    login(client, user)
    db_session.refresh(user)
    assert user.password_hash != weak_hash
    assert argon2.extract_parameters(user.password_hash).time_cost == 2
    login(app.test_client(), user)  # the new hash opens the account


def test_wrong_password_gets_one_message_for_any_reason(client, make_user):
    user = make_user()
    page = client.get("/login")
    token = csrf_token_from(page.text)
    wrong_password = client.post(
        "/login", data={"email": user.email, "password": "nope-nope-nope", "csrf_token": token}
    )
    no_account = client.post(
        "/login",
        data={"email": "nobody@example.com", "password": "nope-nope-nope", "csrf_token": token},
    )
    for response in (wrong_password, no_account):
        assert response.status_code == 422
        assert "do not match an account" in response.text


def test_login_is_rate_limited_per_address_and_email_with_retry_after(app, client, make_user):
    user = make_user()
    token = csrf_token_from(client.get("/login").text)
    limit = int(app.config["LOGIN_RATE_LIMIT"].split()[0])
    for _ in range(limit):
        response = client.post(
            "/login", data={"email": user.email, "password": "wrong-wrong-1", "csrf_token": token}
        )
        assert response.status_code == 422
    blocked = client.post(
        "/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token}
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "Too many attempts" in blocked.text

    # Someone failing on purpose from elsewhere does not lock the owner out.
    owner = client.application.test_client()
    token = csrf_token_from(owner.get("/login").text)
    response = owner.post(
        "/login",
        data={"email": user.email, "password": PASSWORD, "csrf_token": token},
        environ_overrides={"REMOTE_ADDR": "127.0.0.9"},
    )
    assert response.status_code == 302


def test_password_reset_by_email_link_works_once(client, make_user, run_jobs, received_mail):
    user = make_user()
    page = client.get("/password/forgot")
    response = client.post(
        "/password/forgot", data={"email": user.email, "csrf_token": csrf_token_from(page.text)}
    )
    assert response.status_code == 302
    run_jobs()
    [message] = received_mail()
    assert message["To"] == user.email
    link = mail_link(message, "/password/reset/")
    form = client.get(link)
    assert form.status_code == 200
    new_password = "a brand new long passphrase"
    response = client.post(
        link,
        data={
            "password": new_password,
            "confirm": new_password,
            "csrf_token": csrf_token_from(form.text),
        },
    )
    assert response.status_code == 302
    again = client.get(link)
    assert again.status_code == 400
    assert "used already" in again.text
    token = csrf_token_from(client.get("/login").text)
    assert (
        client.post(
            "/login", data={"email": user.email, "password": new_password, "csrf_token": token}
        ).status_code
        == 302
    )


def test_reset_request_for_unknown_email_looks_the_same_and_sends_nothing(
    client, run_jobs, received_mail
):
    page = client.get("/password/forgot")
    response = client.post(
        "/password/forgot",
        data={"email": "ghost@example.com", "csrf_token": csrf_token_from(page.text)},
    )
    assert response.status_code == 302
    run_jobs()
    assert received_mail() == []


def test_forged_and_expired_reset_tokens_are_refused_clearly(app, client, make_user):
    user = make_user()
    forged = URLSafeTimedSerializer("not-our-secret", salt="password-reset").dumps(
        {"u": user.id, "p": user.password_hash[-12:]}
    )
    response = client.get(f"/password/reset/{forged}")
    assert response.status_code == 400 and "not valid" in response.text

    with app.test_request_context():
        token = accounts.make_password_reset_token(user)
    app.config["TOKEN_MAX_AGE_SECONDS"] = 1
    try:
        time.sleep(2.1)
        response = client.get(f"/password/reset/{token}")
    finally:
        app.config["TOKEN_MAX_AGE_SECONDS"] = 86400
    assert response.status_code == 400 and "expired" in response.text


def test_change_password_logs_out_other_browsers(client, app, make_user, login):
    user = make_user()
    other_browser = app.test_client()
    login(other_browser, user)
    login(client, user)
    page = client.get("/account/password")
    new_password = "another long passphrase here"
    response = client.post(
        "/account/password",
        data={
            "current": PASSWORD,
            "password": new_password,
            "confirm": new_password,
            "csrf_token": csrf_token_from(page.text),
        },
    )
    assert response.status_code == 302
    assert client.get("/account/password").status_code == 200
    assert other_browser.get("/account/password").status_code == 302


def test_change_password_with_wrong_current_password_says_so(client, make_user, login):
    user = make_user()
    login(client, user)
    page = client.get("/account/password")
    response = client.post(
        "/account/password",
        data={
            "current": "not my password",
            "password": "another long passphrase",
            "confirm": "another long passphrase",
            "csrf_token": csrf_token_from(page.text),
        },
    )
    assert response.status_code == 422
    assert "current password is not right" in response.text


def test_security_headers_and_cookie_flags(client, make_user, login):
    user = make_user()
    response = login(client, user)
    cookie_header = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie_header and "SameSite=Lax" in cookie_header
    page = client.get("/login")
    csp = page.headers["Content-Security-Policy"]
    assert (
        "script-src 'self'" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_a_reset_password_containing_the_email_is_refused_next_to_the_field(app, client, make_user):
    user = make_user()
    with app.test_request_context():
        link = f"/password/reset/{accounts.make_password_reset_token(user)}"
    form = client.get(link)
    password = f"my {user.email.split('@')[0]} passphrase"
    response = client.post(
        link,
        data={"password": password, "confirm": password, "csrf_token": csrf_token_from(form.text)},
    )
    assert response.status_code == 422
    assert "Do not use your e-mail address" in response.text
    assert 'id="password-error"' in response.text
