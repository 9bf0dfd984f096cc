"""Domain events (app.core.events): written in the transaction of the change and only with it,
checked against their type's payload schema, and read by each consumer at its own position in
an order no late-committing transaction can jump: every committed event once, none twice."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from app.core import events as events_module
from app.core.event_types import EVENT_TYPES, check_payload
from app.core.events import DomainEvent, EventConsumer, consume, emit, run_consumers
from app.core.handover import get_queue
from app.extensions import db
from tenants.binding import TenantSession, bind_tenant, schema_for_tenant_id
from tests.conftest import _provision_pooled_schema
from tests.helpers import tenant_session
from tests.test_message_templates import add_client, issue_invoice


def _client_created(session, client_id: int) -> None:
    emit(session, "client.created", "client", client_id, {"client_id": client_id, "name": "X"})


def test_a_payload_that_does_not_match_its_schema_is_refused():
    with pytest.raises(ValueError, match="amount_due"):
        check_payload("invoice.paid", 1, {"invoice_id": 1, "client_id": 2, "amount_due": 10.5})
    with pytest.raises(ValueError, match="Additional properties"):
        check_payload("client.created", 1, {"client_id": 1, "name": "A", "secret": "x"})
    with pytest.raises(KeyError, match="unknown event type"):
        emit(None, "client.exploded", "client", 1, {})
    # Every schema is itself a valid JSON Schema object with its facts required.
    for (name, _version), schema in EVENT_TYPES.items():
        assert schema["type"] == "object" and schema["additionalProperties"] is False, name


def test_an_event_commits_and_rolls_back_with_the_change(app, db_session, make_tenant):
    tenant = make_tenant(region="27")
    session = tenant_session(db_session, tenant)
    client = add_client(session)
    session.commit()
    with pytest.raises(RuntimeError), session.begin_nested():
        issue_invoice(session, tenant, client, day=date(2026, 10, 16))
        raise RuntimeError("the change failed after the invoice was issued")
    assert session.scalars(select(DomainEvent.type)).all() == []  # nor was its event
    invoice = issue_invoice(session, tenant, client, day=date(2026, 10, 16))
    session.commit()
    # Issuing moved the milestone on too (milestone.status_changed).
    (event,) = session.scalars(select(DomainEvent).where(DomainEvent.type == "invoice.issued"))
    assert (event.type, event.version, event.subject_type) == ("invoice.issued", 1, "invoice")
    assert event.data["client_id"] == client.id and event.data["currency"] == "INR"
    assert event.subject_id == invoice.id and event.data["number"] == invoice.number


def test_consumers_keep_their_own_position_and_apply_each_event_once(app, db_session, make_tenant):
    tenant = make_tenant()
    session = tenant_session(db_session, tenant)
    for client_id in (1, 2, 3):
        _client_created(session, client_id)
    session.commit()
    seen: dict[str, list[int]] = {"webhooks": [], "timeline": []}

    def recorder(name):
        return lambda s, events: seen[name].extend(e.data["client_id"] for e in events)

    assert consume(session, "webhooks", recorder("webhooks"), limit=2) == 2
    assert consume(session, "webhooks", recorder("webhooks"), limit=2) == 1
    assert consume(session, "webhooks", recorder("webhooks")) == 0
    # Another consumer starts from the beginning, whatever the first has read.
    assert consume(session, "timeline", recorder("timeline")) == 3
    assert seen == {"webhooks": [1, 2, 3], "timeline": [1, 2, 3]}


def test_a_failing_consumer_keeps_its_place_and_holds_no_other_back(
    app, db_session, make_tenant, monkeypatch
):
    tenant = make_tenant()
    session = tenant_session(db_session, tenant)
    for client_id in (1, 2):
        _client_created(session, client_id)
    session.commit()
    seen = []

    def broken(s, events):
        raise RuntimeError("a bug in one consumer")

    monkeypatch.setattr(
        events_module,
        "_CONSUMERS",
        {"a_broken": broken, "b_fine": lambda s, found: seen.extend(e.id for e in found)},
    )
    assert run_consumers(session) == 2  # the fine one applied both, after the broken one
    assert len(seen) == 2
    positions = dict(session.execute(select(EventConsumer.name, EventConsumer.event_id)).all())
    assert positions["a_broken"] == 0  # still before the first event: it retries them all
    assert positions["b_fine"] == max(seen)


def test_an_event_committed_late_is_not_skipped(app):
    """Transaction A writes an event (lower id) and commits after B (higher id) has been read:
    a consumer reading by id would have moved past A's event; this one waits for A. (Real
    transactions, on connections of their own.)"""
    # No test transaction around this one: the consumer must see real commits only.
    tenant_id = _provision_pooled_schema(app)
    with app.app_context():
        engine = db.engine
        first = engine.connect()
        second = engine.connect()
        third = engine.connect()
    sessions = []
    for connection in (first, second, third):
        s = TenantSession(db, bind=connection)
        bind_tenant(s, tenant_id)
        sessions.append(s)
    a, b, reader = sessions
    try:
        _client_created(a, 10)
        a.flush()  # A holds the lower id, uncommitted
        _client_created(b, 20)
        b.commit()
        seen = []
        consume(reader, "late", lambda s, events: seen.extend(e.data["client_id"] for e in events))
        assert seen == []  # B's event waits while A, older, may still commit
        a.commit()
        consume(reader, "late", lambda s, events: seen.extend(e.data["client_id"] for e in events))
        assert seen == [10, 20]

        # A consumer that fails applies nothing and keeps its position.
        _client_created(a, 30)
        a.commit()

        def broken(s, events):
            seen.append("half-applied")
            raise RuntimeError("down")

        with pytest.raises(RuntimeError):
            consume(reader, "late", broken)
        reader.rollback()
        consume(reader, "late", lambda s, events: seen.extend(e.data["client_id"] for e in events))
        assert seen == [10, 20, "half-applied", 30]  # 30 once more, then never again
        assert consume(reader, "late", lambda s, events: seen.extend(events)) == 0
    finally:
        for s in sessions:
            s.rollback()
            s.close()
        for connection in (first, second, third):
            connection.close()
        with app.app_context(), db.engine.begin() as connection:
            connection.execute(db.text(f"DROP SCHEMA {schema_for_tenant_id(tenant_id)} CASCADE"))


def test_a_commit_with_events_hands_their_delivery_over_once(
    app, db_session, make_tenant, run_jobs, monkeypatch
):
    from app.core import events as events_module

    applied = []
    monkeypatch.setitem(
        events_module._CONSUMERS, "probe", lambda s, batch: applied.extend(e.id for e in batch)
    )
    tenant = make_tenant()
    session = tenant_session(db_session, tenant)
    with app.app_context():
        for client_id in (1, 2):
            _client_created(session, client_id)
        session.commit()  # one transaction, one delivery job
        _client_created(session, 3)
        session.commit()  # the first job not started yet: no second one
        queued = [job.func_name for job in get_queue("default").jobs]
    assert queued.count("jobs.events.deliver_events") == 1, queued
    run_jobs()
    assert len(applied) == 3
    with app.app_context():
        _client_created(session, 4)
        session.commit()  # the job started since: this one queues the next
        assert len(get_queue("default").jobs) == 1
    run_jobs()
    assert len(applied) == 4
