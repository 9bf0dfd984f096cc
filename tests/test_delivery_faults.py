"""Faults during delivery: a worker process killed mid-batch, a provider that fails before it
accepts. Every message reaches the WhatsApp stand-in exactly once, counted by its idempotency
key (which the stand-in honours like a provider's idempotency key)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update

from app.core.crypto import encrypt_secrets
from app.extensions import db
from app.integrations.models import IntegrationConnection
from app.outbox import services as outbox
from app.outbox.models import OutboxMessage
from app.sandbox.standins.whatsapp import WhatsAppStandin
from jobs.tasks import sweep_outbox
from tenants import services as tenants
from tenants.binding import bind_tenant
from tests.helpers import commit_without_hand_over, tenant_session, unique

ROOT = Path(__file__).resolve().parent.parent
PHONE_NUMBER_ID = "100000000000777"
TOKEN = "fault-test-token"
TEMPLATE = {"name": "reminder", "body": "Hello {{1}}"}


class KillingStandin(WhatsAppStandin):
    """Accepts the `kill_at`-th message, then SIGKILLs the worker before answering it: the
    provider has the message, the worker never learns so."""

    kill_at: int | None = None
    worker_pid: int | None = None

    def _send(self, request, phone_number_id):
        response = super()._send(request, phone_number_id)
        if self.worker_pid and self.stats_counters.accepted == self.kill_at:
            os.kill(self.worker_pid, signal.SIGKILL)
            self.worker_pid = None
        return response


def _standin(cls=WhatsAppStandin) -> WhatsAppStandin:
    return cls(
        phone_number_id=PHONE_NUMBER_ID, token=TOKEN, status_script="none", templates=[TEMPLATE]
    ).start()


def _connection(app) -> IntegrationConnection:
    return IntegrationConnection(
        provider="whatsapp_cloud",
        status="enabled",
        settings={"phone_number_id": PHONE_NUMBER_ID, "waba_id": "200000000000777"},
        secrets_ciphertext=encrypt_secrets({"access_token": TOKEN}, app.config["SECRETS_KEYS"]),
        verification="verified",
    )


def _queue(session, tenant_id: int, prefix: str, count: int) -> None:
    for number in range(count):
        outbox.queue_message(
            session,
            channel="whatsapp",
            to=f"+9198{number:08d}",
            subject="Reminder",
            text_body="Hello",
            idempotency_key=f"{prefix}:{number}",
            tenant_id=tenant_id,
            payload={
                "whatsapp": {
                    "type": "template",
                    "name": "reminder",
                    "body_params": [f"Client {number}"],
                }
            },
        )


def _statuses(prefix: str) -> dict[str, int]:
    return dict(
        db.session.execute(
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.idempotency_key.like(f"{prefix}:%"))
            .group_by(OutboxMessage.status)
        ).all()
    )


@pytest.fixture
def committed_tenant(app, redis):
    """A tenant whose rows are committed (a worker process must see them), removed after."""
    with app.app_context():
        tenant = tenants.create_tenant(
            db.session,
            slug=unique("faults"),
            name="Fault Co",
            country="IN",
            time_zone="Asia/Kolkata",
            currency="INR",
        )
        tenant_id, schema = tenant.id, tenant.schema
        db.session.commit()
        db.session.remove()
    try:
        yield tenant_id
    finally:
        with app.app_context(), db.engine.begin() as conn:
            conn.execute(delete(OutboxMessage).where(OutboxMessage.tenant_id == tenant_id))
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(text("DELETE FROM tenants WHERE id = :id"), {"id": tenant_id})


def test_worker_killed_mid_batch_every_message_delivered_once(app, committed_tenant, run_jobs):
    standin = _standin(KillingStandin)
    prefix, count = unique("kill"), 12
    try:
        with app.app_context():
            bind_tenant(db.session, committed_tenant)
            db.session.add(_connection(app))
            _queue(db.session, committed_tenant, prefix, count)
            db.session.commit()  # hands one batch of 12 ids to RQ
            db.session.remove()
        env = _worker_env(app, WHATSAPP_API_BASE=standin.url, MESSAGE_LEASE_SECONDS="1")
        worker = subprocess.Popen(
            [sys.executable, "-m", "jobs.worker", "messages"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        standin.kill_at, standin.worker_pid = 5, worker.pid
        try:
            assert worker.wait(timeout=15) == -signal.SIGKILL
        finally:
            if worker.poll() is None:
                worker.kill()
        with app.app_context():
            statuses = _statuses(prefix)
            # Four recorded, the fifth accepted but not recorded, the rest claimed: stranded.
            assert statuses == {"sent": 4, "sending": count - 4}
            time.sleep(1.1)  # the dead worker's lease runs out
            assert sweep_outbox() == count - 4
            app.config["WHATSAPP_API_BASE"] = standin.url
            try:
                run_jobs(["messages"])
            finally:
                app.config["WHATSAPP_API_BASE"] = "https://graph.facebook.com"
            assert _statuses(prefix) == {"sent": count}
            db.session.remove()
        stats = standin.stats()
        assert stats["unique_keys"] == count
        assert stats["accepted"] == count  # every message reached WhatsApp once...
        assert stats["duplicate_keys"] == 1  # ...the fifth twice, absorbed by its key
    finally:
        standin.stop()


def _worker_env(app, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app.config["REDIS_URL"],
        "SECRET_KEY": app.config["SECRET_KEY"],
        "DUEBOOK_ENV": "test",
        **extra,
    }


# A worker that sends an outcome and is killed before it reads PostgreSQL's answer.
WRITE_THEN_DIE = """
import os, signal, sys
from datetime import UTC, datetime
from app import create_app
from app.extensions import db
from app.messaging.delivery import OutcomeWriter
from tenants.binding import TenantSession

with create_app().app_context():
    writer = OutcomeWriter(TenantSession(db, bind=db.engine))
    writer.write(int(sys.argv[1]), {"status": "sent", "sent_at": datetime.now(UTC),
                                    "provider": "whatsapp_cloud",
                                    "provider_message_id": sys.argv[2], "locked_until": None})
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_an_outcome_sent_is_recorded_though_the_worker_dies_before_the_answer(
    app, committed_tenant
):
    """The outcome writer does not wait for PostgreSQL's answer before the next send: what
    it wrote to the socket must be committed even if the worker is killed at once."""
    prefix = unique("die")
    with app.app_context():
        bind_tenant(db.session, committed_tenant)
        _queue(db.session, committed_tenant, prefix, 1)
        commit_without_hand_over(app, db.session)
        message_id = db.session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.idempotency_key == f"{prefix}:0")
        )
        # Claimed, as a worker writes outcomes only of the messages it is sending.
        db.session.execute(
            update(OutboxMessage).where(OutboxMessage.id == message_id).values(status="sending")
        )
        db.session.commit()
        db.session.remove()
    worker = subprocess.run(
        [sys.executable, "-c", WRITE_THEN_DIE, str(message_id), f"wamid.{prefix}"],
        cwd=ROOT,
        env=_worker_env(app),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr
    with app.app_context():
        row = db.session.get(OutboxMessage, message_id)
        assert (row.status, row.provider_message_id) == ("sent", f"wamid.{prefix}")
        db.session.remove()


def test_provider_500_then_429_then_200_delivers_once(app, db_session, make_tenant, run_jobs):
    tenant = make_tenant()
    session = tenant_session(db_session, tenant)
    session.add(_connection(app))
    session.flush()
    standin = _standin()
    standin.inject_fault(500)
    standin.inject_fault(429, retry_after=1)
    prefix = unique("flaky")
    app.config["WHATSAPP_API_BASE"] = standin.url
    try:
        with app.app_context():
            _queue(db_session, tenant.id, prefix, 1)
            db_session.commit()
        seen = []
        for _ in range(3):
            before = datetime.now(UTC)
            run_jobs(["messages"])
            after = datetime.now(UTC)
            message = db_session.scalar(
                select(OutboxMessage)
                .where(OutboxMessage.idempotency_key == f"{prefix}:0")
                .execution_options(populate_existing=True)
            )
            # The retry's delay, bounded by when the attempt could have failed.
            delay = (message.next_attempt_at - before, message.next_attempt_at - after)
            seen.append((message.status, message.attempts, delay))
            if message.status == "sent":
                break
            # Time passes: the retry is due now (the sweeper hands due retries out).
            db_session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message.id)
                .values(next_attempt_at=datetime.now(UTC))
            )
            db_session.commit()
            with app.app_context():
                assert sweep_outbox() == 1
    finally:
        app.config["WHATSAPP_API_BASE"] = "https://graph.facebook.com"
        standin.stop()
    (first, one, _), (second, two, (at_most, at_least)), (third, three, _) = seen
    assert (first, one) == ("pending", 1)  # 500: temporary, retried with backoff
    assert (second, two) == ("pending", 2)  # 429: throttled, retried ...
    assert at_least <= timedelta(seconds=1) <= at_most  # ... when its Retry-After says
    assert (third, three) == ("sent", 3)
    stats = standin.stats()
    assert stats["requests"] == 3 and stats["accepted"] == 1 and stats["unique_keys"] == 1
