"""Log-in limits behind the TLS proxy of the README's production: guessing is throttled per
account and per address, and nobody can lock an account's owner out by failing on purpose."""

from __future__ import annotations

import os
from unittest import mock

import pytest

from app import create_app
from app.config import from_environment
from tests.helpers import PASSWORD, csrf_token_from, unique

HTTPS = "https://duebook.example"
OWNER_ADDRESS = "198.51.100.7"


def production_environment(app_config, **overrides) -> dict:
    environment = {
        "DUEBOOK_ENV": "production",
        "DATABASE_URL": app_config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app_config["REDIS_URL"],
        "SECRET_KEY": app_config["SECRET_KEY"],
        "SECRETS_KEYS": ",".join(app_config["SECRETS_KEYS"]),
        "SMTP_URL": app_config["SMTP_URL"],
    }
    return {**environment, **overrides}


def app_for(app_config, **settings):
    with mock.patch.dict(os.environ, production_environment(app_config, **settings), clear=True):
        config = from_environment()
    return create_app(config)


@pytest.fixture
def production_app(app_config, db_session):
    """The app with production's defaults (nothing about proxies set), reached through the TLS
    proxy: every request comes from the proxy, which names the client in X-Forwarded-For."""
    return app_for(app_config)


@pytest.fixture
def one_proxy_app(app_config, db_session):
    """The same with the proxy declared, as the README asked before it was the default."""
    return app_for(app_config, TRUSTED_PROXY_HOPS="1")


class Browser:
    def __init__(self, app, address: str):
        self.client, self.address = app.test_client(), address
        self.token = csrf_token_from(self._send("GET", {}).text)

    def _send(self, method: str, data: dict):
        return self.client.open(
            "/login",
            method=method,
            data=data,
            base_url=HTTPS,
            environ_base={"REMOTE_ADDR": "10.0.0.2"},  # the proxy
            headers={
                "X-Forwarded-For": self.address,
                "X-Forwarded-Proto": "https",
                "Referer": f"{HTTPS}/login",
            },
        )

    def log_in(self, email: str, password: str) -> int:
        data = {"email": email, "password": password, "csrf_token": self.token}
        return self._send("POST", data).status_code

    def log_out(self) -> None:
        proxied = {
            "X-Forwarded-For": self.address,
            "X-Forwarded-Proto": "https",
            "Referer": f"{HTTPS}/",
        }
        page = self.client.get("/account/password", base_url=HTTPS, headers=proxied)
        response = self.client.post(
            "/logout",
            data={"csrf_token": csrf_token_from(page.text)},
            base_url=HTTPS,
            headers=proxied,
        )
        assert response.status_code == 302
        self.token = csrf_token_from(self._send("GET", {}).text)


def test_an_attacker_behind_the_proxy_does_not_stop_the_owner_logging_in(production_app, make_user):
    owner = make_user()
    attacker = Browser(production_app, "203.0.113.66")
    tries = [attacker.log_in(owner.email, f"wrong-guess-{i}") for i in range(12)]
    assert tries[-1] == 429  # the attacker is slowed down ...
    assert Browser(production_app, OWNER_ADDRESS).log_in(owner.email, PASSWORD) == 302  # not her


def test_guessing_at_one_account_from_five_addresses_is_throttled(one_proxy_app, make_user):
    owner = make_user()
    tries = []
    for n in range(5):
        attacker = Browser(one_proxy_app, f"203.0.113.{n + 10}")
        tries += [attacker.log_in(owner.email, f"wrong-guess-{n}-{i}") for i in range(10)]
    assert 429 in tries and tries[-1] == 429
    assert tries.count(422) < 50


def test_trying_thirty_accounts_from_one_address_is_throttled(production_app, db_session):
    # Whether an address has an account does not matter: the answer is the same either way.
    attacker = Browser(production_app, "203.0.113.99")
    tries = [attacker.log_in(f"{unique('staff')}@example.com", "Summer2026!") for _ in range(30)]
    assert 429 in tries and tries[-1] == 429
    assert tries[0] == 422


def test_the_owners_known_browser_logs_in_while_the_account_is_attacked(production_app, make_user):
    owner = make_user()
    her_browser = Browser(production_app, OWNER_ADDRESS)
    assert her_browser.log_in(owner.email, PASSWORD) == 302  # she has logged in here before
    her_browser.log_out()

    # Guesses at her account from her own office's address (one NAT) and from elsewhere ...
    for address in (OWNER_ADDRESS, "203.0.113.20", "203.0.113.21"):
        attacker = Browser(production_app, address)
        for i in range(12):
            attacker.log_in(owner.email, f"wrong-guess-{i}")
    # ... throttle every browser that never logged in to her account, hers included,
    assert Browser(production_app, OWNER_ADDRESS).log_in(owner.email, PASSWORD) == 429
    # but not the browser she has used before.
    assert her_browser.log_in(owner.email, PASSWORD) == 302


def test_a_known_browser_cookie_names_one_account_only(production_app, make_user):
    owner, other = make_user(), make_user()
    browser = Browser(production_app, OWNER_ADDRESS)
    assert browser.log_in(owner.email, PASSWORD) == 302
    browser.log_out()
    # Someone else's account is guessed at from elsewhere until it is throttled ...
    for n in range(3):
        attacker = Browser(production_app, f"203.0.113.{n + 30}")
        for i in range(10):
            attacker.log_in(other.email, f"wrong-guess-{i}")
    # ... and this browser, known to the first account only, is throttled there too.
    assert browser.log_in(other.email, PASSWORD) == 429


def test_production_trusts_one_proxy_by_default_and_development_none(app_config):
    with mock.patch.dict(os.environ, production_environment(app_config), clear=True):
        assert from_environment()["TRUSTED_PROXY_HOPS"] == 1
    development = production_environment(app_config, DUEBOOK_ENV="development")
    with mock.patch.dict(os.environ, development, clear=True):
        assert from_environment()["TRUSTED_PROXY_HOPS"] == 0


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("TRUSTED_PROXY_HOPS", "-1"),
        ("TRUSTED_PROXY_HOPS", "one"),
        ("DUEBOOK_ENV", "prod"),
        ("BASE_URL", "http://duebook.example"),
        ("LOGIN_ACCOUNT_RATE_LIMIT", "twenty"),
    ],
)
def test_production_refuses_to_start_with_an_inconsistent_setting(app_config, setting, value):
    environment = production_environment(app_config, **{setting: value})
    with (
        mock.patch.dict(os.environ, environment, clear=True),
        pytest.raises(RuntimeError, match=setting),
    ):
        create_app()
