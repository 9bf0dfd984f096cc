"""The outbox: intents survive Redis being down, a message is sent once even when two workers
race for it, failures are retried with backoff and give up on permanent rejections."""

from __future__ import annotations

import smtplib
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from app.core.handover import Work, hand_over_now
from app.extensions import db
from app.integrations.connectors import smtp
from app.messaging.delivery import (
    OutcomeNotRecorded,
    OutcomeWriter,
    backoff_seconds,
    claim_batch,
    deliver_batch,
)
from app.outbox import services as outbox
from app.outbox.models import OutboxMessage
from jobs.tasks import sweep_outbox
from tenants.binding import TenantSession
from tests.helpers import commit_without_hand_over, csrf_token_from, unique


def queue_test_email(db_session, app, key=None) -> int:
    with app.app_context():
        message_id = outbox.queue_email(
            db_session,
            to="someone@example.com",
            subject="Hello",
            text_body="Body",
            idempotency_key=key or unique("test:"),
        )
        db_session.commit()
    return message_id


def test_redis_down_loses_nothing_the_sweeper_delivers_it(
    app, client, db_session, make_tenant, make_user, login, run_jobs, received_mail
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)

    def redis_is_down(works):
        raise ConnectionError("Redis is down")

    real_enqueue = app.extensions["duebook.enqueue"]
    app.extensions["duebook.enqueue"] = redis_is_down
    try:
        page = client.get(f"/t/{tenant.slug}/team/")
        response = client.post(
            f"/t/{tenant.slug}/team/invitations",
            data={
                "email": "kept@example.com",
                "role": "viewer",
                "csrf_token": csrf_token_from(page.text),
            },
        )
    finally:
        app.extensions["duebook.enqueue"] = real_enqueue
    assert response.status_code == 303  # the user's action succeeded
    run_jobs()
    assert received_mail() == []  # nothing reached the queue

    # Two minutes later the sweeper finds the intent that never reached a worker.
    db_session.execute(
        update(OutboxMessage).values(created_at=datetime.now(UTC) - timedelta(minutes=3))
    )
    db_session.commit()
    with app.app_context():
        assert sweep_outbox() == 1
        assert sweep_outbox() == 0  # handed out once, not at every sweep
    run_jobs()
    assert [m["To"] for m in received_mail()] == ["kept@example.com"]


def test_a_hand_over_of_several_tenants_lets_them_take_turns(app, redis):
    from jobs.queues import get_queue

    size = outbox.BATCH_SIZE
    rows = (
        [(number, 1, "messages") for number in range(1, 2 * size + 51)]  # a backlog: 3 jobs
        + [(number, 2, "messages") for number in range(1000, 1000 + size)]
        + [(number, 3, "bulk") for number in range(2000, 2010)]
        + [(number, 4, "messages") for number in range(3000, 3005)]
    )
    with app.app_context():
        hand_over_now(outbox.delivery_jobs(rows))
        jobs = get_queue("messages").jobs
        bulk = get_queue("bulk").jobs
    assert [job.kwargs["tenant_id"] for job in jobs] == [1, 2, 4, 1, 1]
    assert [len(job.args[0]) for job in jobs] == [size, size, 5, size, 50]
    assert sorted(i for job in jobs for i in job.args[0]) == sorted(
        number for number, _, queue in rows if queue == "messages"
    )
    assert [(job.kwargs["tenant_id"], len(job.args[0])) for job in bulk] == [(3, 10)]


def test_an_outcome_the_database_refuses_stops_the_batch(app):
    """Outcomes are sent without waiting for the answer; a refused one still surfaces, at
    the next write or when the batch ends, and nothing after it is taken as recorded."""
    with app.app_context():
        engine = db.engine
        with TenantSession(db, bind=engine) as setup:
            message_id = outbox.queue_email(
                setup,
                to="o@example.com",
                subject="Outcome",
                text_body="Body",
                idempotency_key=unique("outcome:"),
            )
            # Claimed, as a worker writes outcomes only of the messages it is sending.
            setup.execute(
                update(OutboxMessage).where(OutboxMessage.id == message_id).values(status="sending")
            )
            commit_without_hand_over(app, setup)
        try:
            writer = OutcomeWriter(TenantSession(db, bind=engine))
            writer.write(message_id, {"status": "no such status"})  # the CHECK refuses it
            with pytest.raises(OutcomeNotRecorded, match="status"):
                writer.write(message_id, {"status": "sent", "locked_until": None})
            writer.close()
            with TenantSession(db, bind=engine) as check:
                assert check.get(OutboxMessage, message_id).status == "sending"
            writer = OutcomeWriter(TenantSession(db, bind=engine))
            writer.write(message_id, {"status": "no such status"})
            with pytest.raises(OutcomeNotRecorded):
                writer.close()
        finally:
            with TenantSession(db, bind=engine) as cleanup:
                cleanup.execute(delete(OutboxMessage).where(OutboxMessage.id == message_id))
                cleanup.commit()


def test_outcomes_are_recorded_after_the_connections_statements_were_deallocated(app):
    """A pooled connection that also served a page with prepared statements loses every
    prepared statement when psycopg clears them (DEALLOCATE ALL after a rollback): the next
    batch on it prepares its outcome statement again instead of failing on a missing one."""
    with app.app_context():
        engine = db.engine
        ids = []
        with TenantSession(db, bind=engine) as setup:
            for number in range(2):
                ids.append(
                    outbox.queue_email(
                        setup,
                        to="d@example.com",
                        subject="Outcome",
                        text_body="Body",
                        idempotency_key=unique(f"dealloc{number}:"),
                    )
                )
            setup.execute(
                update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(status="sending")
            )
            commit_without_hand_over(app, setup)
        try:
            writer = OutcomeWriter(TenantSession(db, bind=engine))
            writer.write(ids[0], {"status": "sent", "locked_until": None})
            writer.wait_for_answer()
            writer.connection.exec_driver_sql("DEALLOCATE ALL")  # as psycopg's clearing does
            writer.close()
            writer = OutcomeWriter(TenantSession(db, bind=engine))  # the same pooled connection
            writer.write(ids[1], {"status": "sent", "locked_until": None})
            writer.close()
            with TenantSession(db, bind=engine) as check:
                assert {check.get(OutboxMessage, i).status for i in ids} == {"sent"}
        finally:
            with TenantSession(db, bind=engine) as cleanup:
                cleanup.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))
                cleanup.commit()


def test_the_same_intent_twice_is_one_message(app, db_session):
    key = unique("same:")
    first = queue_test_email(db_session, app, key)
    second = queue_test_email(db_session, app, key)
    assert first is not None and second is None
    assert (
        len(
            db_session.scalars(
                select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
            ).all()
        )
        == 1
    )


def test_two_workers_racing_for_a_message_send_it_once(app):
    """Two real connections: the second claim waits for the first's row lock, then finds the
    message taken. Committed data, removed afterwards."""
    with app.app_context():
        engine = db.engine
        key = unique("race:")
        with TenantSession(db, bind=engine) as setup:
            message_id = outbox.queue_email(
                setup, to="r@example.com", subject="Race", text_body="Body", idempotency_key=key
            )
            commit_without_hand_over(app, setup)
        results = {}
        first = TenantSession(db, bind=engine)
        lease = timedelta(minutes=5)
        results["first"] = claim_batch(first, [message_id], None, lease) != []  # row lock

        def second_worker():
            with TenantSession(db, bind=engine) as second:
                results["second"] = claim_batch(second, [message_id], None, lease) != []
                second.commit()

        racer = threading.Thread(target=second_worker)
        racer.start()
        racer.join(0.5)
        assert racer.is_alive()  # blocked on the first worker's claim
        first.commit()
        first.close()
        racer.join(10)
        with TenantSession(db, bind=engine) as cleanup:
            cleanup.execute(delete(OutboxMessage).where(OutboxMessage.id == message_id))
            cleanup.commit()
    assert results == {"first": True, "second": False}


def test_delivery_to_a_dead_server_is_retried_later_with_backoff(app, db_session, redis):
    message_id = queue_test_email(db_session, app)
    app.config["SMTP_URL"], real_url = "smtp://127.0.0.1:9", app.config["SMTP_URL"]
    try:
        with app.app_context():
            outcome = deliver_batch(db_session, [message_id], redis)
            message = db_session.get(OutboxMessage, message_id, populate_existing=True)
            assert outcome["pending"] == 1
            assert message.attempts == 1 and "Connection" in message.last_error
            assert message.next_attempt_at > datetime.now(UTC)
            # not due yet: nobody sends it again now
            assert deliver_batch(db_session, [message_id], redis)["skipped"] == 1
    finally:
        app.config["SMTP_URL"] = real_url


def test_permanent_rejection_is_dead_lettered_at_once(app, db_session, redis, monkeypatch):
    message_id = queue_test_email(db_session, app)

    def reject(*args, **kwargs):
        raise smtplib.SMTPDataError(554, b"Message refused as spam")

    monkeypatch.setattr(smtp, "send_over_smtp", reject)
    with app.app_context():
        assert deliver_batch(db_session, [message_id], redis)["dead"] == 1
    message = db_session.get(OutboxMessage, message_id, populate_existing=True)
    assert message.attempts == 1 and "refused as spam" in message.last_error
    assert message.status == "dead" and message.failed_at is not None


def test_a_refused_recipient_is_a_hard_bounce(app, db_session, redis, monkeypatch):
    message_id = queue_test_email(db_session, app)

    def reject(*args, **kwargs):
        raise smtplib.SMTPRecipientsRefused({"someone@example.com": (550, b"No such user")})

    monkeypatch.setattr(smtp, "send_over_smtp", reject)
    with app.app_context():
        assert deliver_batch(db_session, [message_id], redis)["bounced"] == 1
    message = db_session.get(OutboxMessage, message_id, populate_existing=True)
    assert (message.status, message.attempts) == ("bounced", 1)
    assert "No such user" in message.last_error


def test_backoff_grows_and_stays_capped():
    assert all(1 <= backoff_seconds(1) <= 30 for _ in range(50))
    assert max(backoff_seconds(4) for _ in range(200)) > 30
    assert all(backoff_seconds(30) <= 3600 for _ in range(50))


def test_intents_wait_for_the_real_commit_not_a_savepoint(app, db_session):
    handed_over = []
    real_enqueue = app.extensions["duebook.enqueue"]
    app.extensions["duebook.enqueue"] = handed_over.extend
    try:
        with app.app_context():
            with db_session.begin_nested():
                message_id = outbox.queue_email(
                    db_session,
                    to="a@example.com",
                    subject="S",
                    text_body="B",
                    idempotency_key=unique("nested:"),
                )
            assert handed_over == []  # the savepoint is released, nothing is committed yet
            db_session.commit()
    finally:
        app.extensions["duebook.enqueue"] = real_enqueue
    assert handed_over == [Work("deliver_outbox_messages", ([message_id],), None, queue="messages")]


def test_the_outbox_scope_sees_one_workspace_or_only_the_platforms_own_mail(
    app, db_session, make_tenant
):
    """The outbox is one shared table: OutboxMessage.of_tenant is the one filter every
    workspace's query uses, and the platform's own mail (no workspace) is seen by none."""
    a, b = make_tenant(), make_tenant()
    ids = {}
    with app.app_context():
        for owner in (a.id, b.id, None):
            ids[owner] = outbox.queue_email(
                db_session,
                to="scope@example.com",
                subject="Scope",
                text_body="Body",
                tenant_id=owner,
                idempotency_key=unique("scope:"),
            )
    for owner in (a.id, b.id, None):
        seen = set(
            db_session.scalars(
                select(OutboxMessage.id).where(
                    OutboxMessage.of_tenant(owner), OutboxMessage.id.in_(ids.values())
                )
            )
        )
        assert seen == {ids[owner]}
