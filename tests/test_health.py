"""Probes for load balancers."""

from __future__ import annotations

from unittest import mock

from app import create_app


def test_healthz_answers_without_touching_backends(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_checks_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_says_which_backend_is_down(app_config, db_session):
    config = dict(app_config, REDIS_URL="redis://127.0.0.1:9/0", RATELIMIT_STORAGE_URI="memory://")
    broken = create_app(config)
    response = broken.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == "ok"
    assert response.json["checks"]["redis"].startswith("error")


def test_production_refuses_to_start_without_its_settings():
    with mock.patch.dict("os.environ", {"DUEBOOK_ENV": "production"}, clear=True):
        try:
            create_app()
        except RuntimeError as error:
            assert "SECRET_KEY" in str(error)
        else:
            raise AssertionError("started without SECRET_KEY")


def test_unknown_page_gets_the_friendly_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Not found" in response.text and "<nav" not in response.text


def test_a_crash_shows_the_friendly_500_and_keeps_nothing_half_written(app_config):
    from sqlalchemy import select

    from app.auth import services as accounts
    from app.extensions import db
    from tenants.models import User
    from tests.helpers import PASSWORD, unique

    crashing = create_app(dict(app_config, TESTING=False))
    email = f"{unique('crash')}@example.com"

    def create_user_then_crash():
        accounts.create_user(db.session, email=email, full_name="Half", password=PASSWORD)
        raise RuntimeError("boom")

    crashing.add_url_rule("/crash", "crash", create_user_then_crash)
    response = crashing.test_client().get("/crash")
    assert response.status_code == 500
    assert "Something went wrong" in response.text and "boom" not in response.text
    with crashing.app_context():
        assert db.session.scalar(select(User).where(User.email == email)) is None
