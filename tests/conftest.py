"""Fixtures: real PostgreSQL, Redis and SMTP for the whole run; a rolled-back transaction per
test; small factories for tenants (on schemas provisioned once per run), users and logins."""

from __future__ import annotations

import os
import socket
from email import message_from_bytes, policy
from unittest import mock
from urllib.parse import urlsplit

import psycopg
import pytest
from redis import Redis
from rq import SimpleWorker
from sqlalchemy import make_url, text

from app import create_app
from app.auth import services as accounts
from app.config import from_environment
from app.devserver import SandboxMailbox, start_services
from app.extensions import db
from app.sandbox.standins.dns import DnsStandin
from app.settings.models import WorkspaceSettings
from app.settings.services import workspace_settings
from jobs import load_jobs
from jobs.queues import QUEUE_NAMES, get_queue
from tenants import services as tenants
from tenants.binding import TenantSession, schema_for_tenant_id
from tenants.migrate import upgrade_shared
from tenants.models import Membership, Tenant
from tests.helpers import PASSWORD, csrf_token_from, unique

pytest_plugins = ["tests.factories"]  # clients, invoices, payments, notices


@pytest.fixture(scope="session")
def service_env():
    services = start_services("test")
    yield services.env
    services.stop()


def _fresh_test_database(url: str) -> str:
    """Tests get their own database next to the configured one, emptied at the start."""
    parsed = make_url(url)
    test_name = f"{parsed.database}_test"
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{test_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{test_name}"')
    return parsed.set(database=test_name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def mailbox(tmp_path_factory):
    box = SandboxMailbox(tmp_path_factory.mktemp("mail")).start()
    yield box
    box.stop()


@pytest.fixture(scope="session")
def dns_server():
    """The DNS the app asks (DNS_RESOLVER): empty until a test gives it a zone
    (tests/test_mail_domain.py's `zone`), so a page that looks a domain up answers at once."""
    server = DnsStandin().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def app_config(service_env, mailbox, dns_server) -> dict:
    redis_url = urlsplit(service_env["REDIS_URL"])._replace(path="/15").geturl()
    env = {
        "DATABASE_URL": _fresh_test_database(service_env["DATABASE_URL"]),
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret-key",
        "DUEBOOK_ENV": "test",
        "SMTP_URL": mailbox.url,
        # The sandbox SMTP server and stand-ins a tenant's connection may point at.
        "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8,::1",
        "DNS_RESOLVER": dns_server.address,
        # argon2's cheapest cost: at the production cost every user made and every log-in
        # took a quarter of a second. test_accounts checks the production cost.
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_COST": "8",
        "PASSWORD_HASH_PARALLELISM": "1",
    }
    with mock.patch.dict(os.environ, env):
        config = from_environment()
    config["TESTING"] = True
    return config


@pytest.fixture(scope="session")
def app(app_config):
    app = create_app(app_config)
    load_jobs()  # as the web and worker entry points do
    with app.app_context(), db.engine.begin() as conn:
        upgrade_shared(conn)
    return app


@pytest.fixture
def redis(app) -> Redis:
    with app.app_context():
        connection = get_queue("default").connection
    connection.flushdb()  # rate-limit buckets and queued jobs start empty in every test
    return connection


@pytest.fixture
def db_session(app, redis):
    """A session for the test's own reads and writes. Requests and jobs get their own sessions
    (each in its own app context, as in production) on the same connection, inside one outer
    transaction that is rolled back at the end: nothing a test writes survives it."""
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        db.session.configure(bind=connection, join_transaction_mode="create_savepoint")
    session = TenantSession(db, bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield session
    finally:
        session.close()
        with app.app_context():
            db.session.configure(bind=None, join_transaction_mode="conditional_savepoint")
        outer.rollback()
        connection.close()


@pytest.fixture
def client(app, db_session):
    return app.test_client()


@pytest.fixture
def make_user(app, db_session):
    def make(email: str | None = None, full_name: str = "Test User", password: str = PASSWORD):
        with app.app_context():  # the app's password hashing settings
            user = accounts.create_user(
                db_session,
                email=email or f"{unique('user')}@example.com",
                full_name=full_name,
                password=password,
            )
        db_session.commit()
        return user

    return make


@pytest.fixture(scope="session")
def tenant_schema_pool(app) -> list[int]:
    """Ids of tenant schemas provisioned once for the whole run and shared by the tests.

    Provisioning a schema (the head DDL batch) costs about 0.4 s, and most tests only need some
    tenant at head. Each pooled schema is committed with no tenant row: the id is taken from
    the tenants' identity sequence, so no tenant made otherwise ever gets it. `make_tenant`
    writes the row inside the test's rolled-back transaction, so walks over tenants (sweepers,
    fan-outs, `tenants migrate`) see exactly the tenants the test made, and whatever the test
    writes into the schema is rolled back with it. The pool grows to the most tenants any one
    test makes."""
    return []


def _provision_pooled_schema(app) -> int:
    # Its own committed transaction, beside the test's: the schema outlives the test.
    with app.app_context(), db.engine.begin() as conn:
        tenant_id = conn.scalar(text("SELECT nextval(pg_get_serial_sequence('tenants', 'id'))"))
        tenants.provision_schema(conn, schema_for_tenant_id(tenant_id))
    return tenant_id


@pytest.fixture
def make_tenant(app, db_session, make_user, tenant_schema_pool):
    """A new active tenant, its owner a member, on a pooled schema this test has not used yet."""
    handed_out = 0

    def make(owner=None, slug: str | None = None, name: str | None = None, **fields):
        nonlocal handed_out
        owner = owner or make_user()
        fields = {"country": "IN", "time_zone": "Asia/Kolkata", "currency": "INR", **fields}
        # Identity goes to the tenant, the rest (legal name, GSTIN...) to its settings row.
        settings = {f: fields.pop(f) for f in list(fields) if f in WorkspaceSettings.__table__.c}
        if handed_out == len(tenant_schema_pool):
            tenant_schema_pool.append(_provision_pooled_schema(app))
        tenant_id = tenant_schema_pool[handed_out]
        handed_out += 1
        # The rows tenants.create_tenant writes, on the pooled schema (sign-up tests cover
        # create_tenant itself: its checks and the schema it provisions).
        tenant = Tenant(
            id=tenant_id, slug=slug or unique("t"), name=name or "Test Traders", **fields
        )
        db_session.add(tenant)
        db_session.add(Membership(user_id=owner.id, tenant_id=tenant.id, role="owner"))
        if settings:
            workspace = workspace_settings(db_session, tenant.id)
            for field, value in settings.items():
                setattr(workspace, field, value)
        db_session.commit()
        return tenant

    return make


@pytest.fixture
def add_member(db_session):
    def add(tenant, user, role: str = "viewer") -> Membership:
        membership = Membership(user_id=user.id, tenant_id=tenant.id, role=role)
        db_session.add(membership)
        db_session.commit()
        return membership

    return add


@pytest.fixture
def login(app):
    def log_in(client, user, password: str = PASSWORD):
        page = client.get("/login")
        response = client.post(
            "/login",
            data={
                "email": user.email,
                "password": password,
                "csrf_token": csrf_token_from(page.text),
            },
        )
        assert response.status_code == 302, response.text
        return response

    return log_in


@pytest.fixture
def storage_root(app, tmp_path, monkeypatch):
    """Files written by this test (documents, PDFs, logos) go to a folder of its own."""
    monkeypatch.setitem(app.config, "STORAGE_ROOT", str(tmp_path / "storage"))
    return tmp_path / "storage"


@pytest.fixture
def run_jobs(app):
    """Run every queued job in this process, as a worker would, until the queues are empty."""

    def run(queues=QUEUE_NAMES) -> None:
        with app.app_context():
            queue_objects = [get_queue(name) for name in queues]
            SimpleWorker(queue_objects, connection=queue_objects[0].connection).work(
                burst=True, with_scheduler=False
            )

    return run


@pytest.fixture
def received_mail(mailbox):
    """The messages the SMTP server received during this test, oldest first."""
    before = set(mailbox.maildir.glob("*.eml"))

    def read():
        paths = sorted(set(mailbox.maildir.glob("*.eml")) - before)
        return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in paths]

    return read


@pytest.fixture(autouse=True)
def no_outside_network(monkeypatch):
    """Tests talk to 127.0.0.1 only; anything else is a bug in the test or the code."""
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (
            host.startswith("127.") or host in {"::1", "localhost"} or host.startswith("/")
        ):
            raise RuntimeError(f"test tried to reach {address}; only loopback is allowed")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
