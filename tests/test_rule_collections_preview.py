"""Issue 22's journey through the collections preview: a rule puts every client of a tag on a
softer collection policy, and today's preview ("what goes out today, and why") follows it: the
tagged client's overdue invoice waits for the softer ladder while the others are chased as
before."""

from __future__ import annotations

from datetime import timedelta

from app.collections.engine import run as engine
from app.collections.models import CollectionLevel, CollectionPolicy
from app.rules import services as rules
from tests.test_collections_run import DUE, ledger, tenant_of  # noqa: F401  (the ledger fixture)
from tests.test_payments import books  # noqa: F401  (the ledger's own fixture)


def test_a_rule_moves_a_tagged_client_to_a_softer_policy_and_the_preview_follows(
    app,
    ledger,  # noqa: F811  (the fixture imported above)
):
    session, client, invoice, new_client = ledger
    gentle = new_client()
    gentle.tags = ["long-standing"]
    softer = CollectionPolicy(name="Softer")
    session.add(softer)
    session.flush()
    session.add(
        CollectionLevel(
            policy_id=softer.id,
            position=1,
            name="A friendly word",
            trigger="after_due",
            trigger_days=30,
            channels=["email"],
            template_purpose="notice_1",
        )
    )
    chased, waiting = invoice(), invoice(client=gentle)
    session.flush()
    today = DUE + timedelta(days=3)
    before = engine.plan(session, tenant_of(session), today)
    assert {n.invoices[0].invoice_id for n in before.notices} == {chased.id, waiting.id}

    with app.app_context():
        rules.create_rule(
            session,
            {
                "name": "Long-standing clients get the softer ladder",
                "entity": "clients",
                "trigger": "schedule",
                "conditions": {"field": "tags", "op": "has_tag", "value": "long-standing"},
                "actions": [{"type": "switch_policy", "policy_id": softer.id}],
                "priority": 100,
            },
            None,
        )
        (ran,) = rules.run_scheduled_rules(session, today).ran
    assert (ran.matched, ran.failures) == (1, [])
    session.refresh(gentle)
    assert gentle.collection_policy_id == softer.id

    after = engine.plan(session, tenant_of(session), today)
    assert [n.invoices[0].invoice_id for n in after.notices] == [chased.id]
    (held,) = [s for s in after.skipped if s.invoice_id == waiting.id]
    assert "not yet due" in held.reason and "31 Mar 2027" in held.reason
