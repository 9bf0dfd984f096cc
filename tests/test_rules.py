"""Business rules (app/rules): a condition tree compiled to one SQL select answers exactly as
the Python evaluator over one record does, for every operator and for NULLs under `not`;
actions change what they say (in one UPDATE for many records), a failing one is reported while
the others still run; a rule never retriggers itself; a rule whose member, template or field
is gone is turned off with the reason and the daily run goes on; every change is a version;
the dry run changes nothing; only admins reach the pages."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from app.audit.models import AuditEntry
from app.clients.models import Client
from app.collections.models import CollectionHold, CollectionPolicy
from app.core.crypto import encrypt_secrets
from app.core.events import DomainEvent, consume, emit
from app.extensions import db
from app.invoicing.models import Invoice
from app.message_templates.models import MessageTemplate
from app.notifications.models import Notification
from app.outbox.models import OutboxMessage
from app.rules import conditions, services
from app.rules.conditions import Field
from app.rules.custom import WorkspaceCustomFields
from app.rules.models import Rule, RuleCausedEvent, RuleRun
from app.webhooks.models import WebhookEndpoint
from tenants.binding import tenant_context
from tenants.models import Membership
from tests.helpers import csrf_token_from, tenant_session

TODAY = date(2027, 3, 1)


@pytest.fixture
def workspace(app, db_session, make_tenant, make_user, make_client, make_invoice, add_member):
    """Six clients and their invoices, with empty values where a condition could trip on a
    NULL: no region, no credit limit, no collector, no tags."""
    owner = make_user(full_name="Asha Owner")
    collector = make_user(full_name="Kiran Collector")
    tenant = make_tenant(owner=owner, region="27")
    add_member(tenant, collector, "collector")
    session = tenant_session(db_session, tenant, actor_id=owner.id)
    with app.app_context():
        clients = [
            make_client(
                session,
                "Kaveri",
                tags=["vip", "export"],
                region="MH",
                credit_limit=Decimal("500000.00"),
                collector_user_id=collector.id,
            ),
            make_client(
                session, "Ganga", tags=["vip"], region="KA", credit_limit=Decimal("100000.00")
            ),
            make_client(
                session,
                "Yamuna",
                tags=[],
                region=None,
                credit_limit=None,
                payment_terms="immediate",
                payment_days=None,
            ),
            make_client(
                session,
                "Narmada",
                tags=["slow"],
                region="MH",
                credit_limit=None,
                collector_user_id=collector.id,
            ),
            make_client(session, "Tapti", tags=[], region="", credit_limit=Decimal("0.00")),
            make_client(
                session,
                "Godavari",
                tags=["export"],
                region="TN",
                credit_limit=Decimal("250000.50"),
                city="Chennai",
            ),
        ]
        invoices = []
        for i, client in enumerate(clients):
            for j, (amount, due) in enumerate(
                [
                    ("1000.00", TODAY - timedelta(days=40 + i)),
                    ("250000.00", TODAY + timedelta(days=5)),
                ]
            ):
                if (i + j) % 3 == 2:
                    continue
                invoices.append(
                    make_invoice(
                        session,
                        tenant,
                        client,
                        (amount,),
                        issued_on=due - timedelta(days=30),
                        due_on=due,
                    )
                )
        session.flush()
    return {
        "tenant": tenant,
        "owner": owner,
        "collector": collector,
        "session": session,
        "clients": clients,
        "invoices": invoices,
    }


def _both_ways(session, entity: str, tree: dict) -> set[int]:
    """The ids the select matches, after checking that the evaluator says the same of every
    record in scope."""
    checked = conditions.check(entity, tree)
    by_sql = set(session.scalars(conditions.matching_ids(entity, checked, TODAY)))
    by_python = set()
    for record_id in session.scalars(conditions.scope(entity)):
        facts = conditions.record_facts(
            session, entity, record_id, conditions.paths_in(checked), TODAY
        )
        if conditions.evaluate(entity, checked, facts):
            by_python.add(record_id)
    assert by_sql == by_python, (tree, by_sql, by_python)
    return by_sql


def _names(session, ids) -> set[str]:
    return {
        name.rsplit(" ", 1)[0]
        for name in session.scalars(select(Client.full_name).where(Client.id.in_(ids)))
    }


CLIENT_CASES = [
    ({"field": "name", "op": "equals", "value": "kaveri 1"}, {"Kaveri"}),
    ({"field": "name", "op": "contains", "value": "AVE"}, {"Kaveri"}),
    ({"field": "name", "op": "contains", "value": "%"}, set()),  # a LIKE wildcard is a letter
    (
        {"field": "region", "op": "not_equals", "value": "mh"},
        {"Ganga", "Yamuna", "Tapti", "Godavari"},
    ),
    ({"field": "region", "op": "in", "value": "MH, TN"}, {"Kaveri", "Narmada", "Godavari"}),
    ({"field": "region", "op": "is_empty"}, {"Yamuna", "Tapti"}),
    ({"field": "region", "op": "is_not_empty"}, {"Kaveri", "Ganga", "Narmada", "Godavari"}),
    (
        {"field": "status", "op": "equals", "value": "active"},
        {"Kaveri", "Ganga", "Yamuna", "Narmada", "Tapti", "Godavari"},
    ),
    ({"field": "payment_terms", "op": "in", "value": ["immediate"]}, {"Yamuna"}),
    ({"field": "credit_limit", "op": "gt", "value": "100000"}, {"Kaveri", "Godavari"}),
    ({"field": "credit_limit", "op": "gte", "value": "100000"}, {"Kaveri", "Ganga", "Godavari"}),
    ({"field": "credit_limit", "op": "lt", "value": "100000"}, {"Tapti"}),
    ({"field": "credit_limit", "op": "lte", "value": "0"}, {"Tapti"}),
    ({"field": "credit_limit", "op": "equals", "value": "250000.5"}, {"Godavari"}),
    (
        {"field": "credit_limit", "op": "not_equals", "value": "0"},
        {"Kaveri", "Ganga", "Yamuna", "Narmada", "Godavari"},
    ),
    ({"field": "credit_limit", "op": "between", "value": ["0", "100000"]}, {"Ganga", "Tapti"}),
    ({"field": "credit_limit", "op": "is_empty"}, {"Yamuna", "Narmada"}),
    ({"field": "tags", "op": "has_tag", "value": "vip"}, {"Kaveri", "Ganga"}),
    (
        {"field": "tags", "op": "not_has_tag", "value": "vip"},
        {"Yamuna", "Narmada", "Tapti", "Godavari"},
    ),
    ({"field": "tags", "op": "is_empty"}, {"Yamuna", "Tapti"}),
    ({"field": "tags", "op": "is_not_empty"}, {"Kaveri", "Ganga", "Narmada", "Godavari"}),
    ({"field": "payment_days", "op": "is_empty"}, {"Yamuna"}),
    # Yamuna pays on receipt: its second invoice fell due on its (business) issue day.
    (
        {"field": "overdue_invoices", "op": "gte", "value": "1"},
        {"Kaveri", "Ganga", "Yamuna", "Narmada", "Tapti"},
    ),
    ({"field": "days_overdue", "op": "gte", "value": "42"}, {"Narmada", "Tapti"}),
    ({"field": "days_overdue", "op": "lt", "value": "41"}, {"Kaveri", "Yamuna", "Godavari"}),
    (
        {"field": "created_on", "op": "after", "value": "2000-01-01"},
        {"Kaveri", "Ganga", "Yamuna", "Narmada", "Tapti", "Godavari"},
    ),
    ({"field": "created_on", "op": "before", "value": "2000-01-01"}, set()),
    ({"field": "created_on", "op": "is_empty"}, set()),
    # NULLs under not: a client with no region is "not in MH", never dropped by the NULL.
    (
        {"not": {"field": "region", "op": "equals", "value": "MH"}},
        {"Ganga", "Yamuna", "Tapti", "Godavari"},
    ),
    (
        {
            "not": {
                "any": [
                    {"field": "credit_limit", "op": "gt", "value": "1"},
                    {"field": "tags", "op": "has_tag", "value": "slow"},
                ]
            }
        },
        {"Yamuna", "Tapti"},
    ),
    (
        {
            "all": [
                {
                    "any": [
                        {"field": "tags", "op": "has_tag", "value": "export"},
                        {"field": "city", "op": "equals", "value": "chennai"},
                    ]
                },
                {"not": {"all": [{"field": "region", "op": "equals", "value": "TN"}]}},
            ]
        },
        {"Kaveri"},
    ),
    ({"all": []}, {"Kaveri", "Ganga", "Yamuna", "Narmada", "Tapti", "Godavari"}),
    ({"any": []}, set()),
]


@pytest.mark.parametrize(("tree", "expected"), CLIENT_CASES)
def test_the_select_and_the_evaluator_agree_on_clients(app, workspace, tree, expected):
    session = workspace["session"]
    with app.app_context():
        assert _names(session, _both_ways(session, "clients", tree)) == expected


def test_the_select_and_the_evaluator_agree_on_invoices_and_their_clients(app, workspace):
    session = workspace["session"]
    collector = workspace["collector"].id
    cases = [
        ({"field": "days_overdue", "op": "gte", "value": "42"}, 2),
        ({"field": "days_overdue", "op": "equals", "value": "0"}, 3),
        ({"field": "status", "op": "in", "value": "overdue, issued"}, 8),
        ({"field": "status", "op": "equals", "value": "overdue"}, 5),
        ({"field": "total", "op": "between", "value": ["999.99", "1000.00"]}, 4),
        ({"field": "due_date", "op": "after", "value": TODAY.isoformat()}, 3),
        ({"field": "sent", "op": "is_false"}, 8),
        ({"field": "sent", "op": "is_true"}, 0),
        ({"field": "disputed", "op": "is_false"}, 8),
        ({"field": "client.collector", "op": "equals", "value": str(collector)}, 4),
        ({"field": "client.collector", "op": "not_equals", "value": str(collector)}, 4),
        ({"field": "client.collector", "op": "is_empty"}, 4),
        ({"field": "client.tags", "op": "has_tag", "value": "export"}, 3),
        ({"field": "number", "op": "is_not_empty"}, 8),
        ({"not": {"field": "client.region", "op": "in", "value": "MH"}}, 4),
    ]
    with app.app_context():
        for invoice in workspace["invoices"]:
            if invoice.due_date < TODAY:  # what the hourly job would have done by now
                invoice.status = "overdue"
        session.flush()
        assert len(workspace["invoices"]) == 8
        for tree, count in cases:
            assert len(_both_ways(session, "invoices", tree)) == count, tree


def test_a_tree_that_makes_no_sense_is_refused_with_its_place(app):
    with app.app_context(), pytest.raises(conditions.ConditionError) as refused:
        conditions.check(
            "clients",
            {
                "all": [
                    {"field": "credit_limit", "op": "gt", "value": "lots"},
                    {"any": [{"field": "tags", "op": "gt", "value": "1"}]},
                    {"field": "__class__", "op": "equals", "value": "x"},
                    {"field": "credit_limit", "op": "between", "value": ["9", "1"]},
                    {"eval": "1"},
                ]
            },
        )
    places = [where for where, _ in refused.value.problems]
    assert places == [
        "Condition 1",
        "Condition 2.1",
        "Condition 3",
        "Condition 4",
        "Condition 5",
    ]
    deep: dict = {"field": "name", "op": "is_empty"}
    for _ in range(conditions.MAX_DEPTH + 1):
        deep = {"all": [deep]}
    with app.app_context(), pytest.raises(conditions.ConditionError):
        conditions.check("clients", deep)


class _FakeCustomFields:
    """A stand-in for the custom fields area: "po_number" on clients, read from the short
    name (the real resolver reads the record's custom_fields column)."""

    def fields(self, entity):
        return [self.resolve(entity, "po_number")] if entity == "clients" else []

    def resolve(self, entity, key):
        if entity != "clients" or key != "po_number":
            return None
        return Field("custom.po_number", "PO number", "text", lambda today: Client.short_name)


def test_the_workspaces_own_fields_are_conditions_read_alike_by_select_and_evaluator(
    app, db_session, workspace
):
    """The app's resolver over real custom fields: a choice, a number, a multiple choice and
    yes/no on clients, read from their JSONB the same way by both readings; an archived field
    is no condition any more."""
    from app.custom_fields import services as custom_fields

    session = workspace["session"]
    with app.app_context(), tenant_context(db.session, workspace["tenant"].id):
        tier = custom_fields.save_field(
            session, "clients", {"label": "Tier", "field_type": "choice", "choices": "Gold\nSilver"}
        )
        seats = custom_fields.save_field(
            session, "clients", {"label": "Seats", "field_type": "number"}
        )
        regions = custom_fields.save_field(
            session,
            "clients",
            {"label": "Regions", "field_type": "choices", "choices": "North\nSouth"},
        )
        custom_fields.save_field(
            session, "clients", {"label": "Key account", "field_type": "yes_no"}
        )
        session.commit()
        kaveri, ganga = (
            session.scalar(select(Client).where(Client.full_name.like(f"{name}%")))
            for name in ("Kaveri", "Ganga")
        )
        kaveri.custom_fields = {
            "tier": "gold",
            "seats": "12",
            "regions": ["north", "south"],
            "key_account": True,
        }
        ganga.custom_fields = {"tier": "silver", "seats": "3", "regions": ["south"]}
        session.commit()
        assert {f.path for f in conditions.fields_of("clients")} >= {
            "custom.tier",
            "custom.seats",
            "custom.regions",
            "custom.key_account",
        }
        assert _names(
            session,
            _both_ways(
                session, "clients", {"field": "custom.tier", "op": "equals", "value": "gold"}
            ),
        ) == {"Kaveri"}
        assert _names(
            session,
            _both_ways(session, "clients", {"field": "custom.seats", "op": "gte", "value": "3"}),
        ) == {"Kaveri", "Ganga"}
        assert _names(
            session,
            _both_ways(
                session, "clients", {"field": "custom.regions", "op": "has_tag", "value": "north"}
            ),
        ) == {"Kaveri"}
        assert _names(
            session,
            _both_ways(session, "clients", {"field": "custom.key_account", "op": "is_true"}),
        ) == {"Kaveri"}
        on_invoices = _both_ways(
            session, "invoices", {"field": "client.custom.tier", "op": "equals", "value": "silver"}
        )
        assert on_invoices and all(
            session.get(Invoice, i).client_id == ganga.id for i in on_invoices
        )
        with pytest.raises(conditions.ConditionError):  # not one of its choices
            conditions.check("clients", {"field": "custom.tier", "op": "equals", "value": "bronze"})
        custom_fields.archive_field(tier)
        session.commit()
        assert conditions.resolve("clients", "custom.tier") is None
        assert seats.key == "seats" and regions.key == "regions"


def test_a_custom_field_is_answered_by_the_resolver_in_both_readings(app, workspace):
    session = workspace["session"]
    conditions.set_custom_field_resolver(_FakeCustomFields())
    try:
        with app.app_context():
            found = _both_ways(
                session, "clients", {"field": "custom.po_number", "op": "equals", "value": "c2"}
            )
            assert _names(session, found) == {"Ganga"}
            on_invoices = _both_ways(
                session,
                "invoices",
                {"field": "client.custom.po_number", "op": "in", "value": "C1, C2"},
            )
            assert len(on_invoices) == 3
    finally:
        conditions.set_custom_field_resolver(WorkspaceCustomFields())  # the app's own
    with app.app_context(), pytest.raises(conditions.ConditionError):
        conditions.check("clients", {"field": "custom.po_number", "op": "equals", "value": "x"})


# -- actions ----------------------------------------------------------------------------------


def _rule(session, owner_id, **raw):
    values = {
        "name": "Rule",
        "entity": "clients",
        "trigger": "schedule",
        "conditions": {"all": []},
        "priority": 100,
        **raw,
    }
    return services.create_rule(session, values, owner_id)


def _endpoint(app, session) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(
        url="https://hooks.example.com/duebook",
        secrets_ciphertext=encrypt_secrets(
            {"current": "whsec_c2VjcmV0LW9mLWEtc2VjcmV0LW9mLWE="}, app.config["SECRETS_KEYS"]
        ),
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def _template(session, **fields) -> MessageTemplate:
    template = MessageTemplate(
        name="Key account note",
        channel="email",
        purpose="campaign",
        subject="A note for {{ client.name }}",
        body="Dear {{ contact.name }}, thank you.",
        **fields,
    )
    session.add(template)
    session.flush()
    return template


def _updates_of_clients(connection, statements: list[str]):
    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE") and ".clients SET" in statement:
            statements.append(statement)

    event.listen(connection, "before_cursor_execute", seen)
    return lambda: event.remove(connection, "before_cursor_execute", seen)


def test_a_scheduled_rule_applies_every_action_and_each_field_change_is_one_update(
    app, db_session, workspace, make_contact
):
    session, owner, collector = workspace["session"], workspace["owner"], workspace["collector"]
    kaveri, ganga = workspace["clients"][:2]
    with app.app_context():
        for client in (kaveri, ganga):
            make_contact(session, client, email=f"accounts@{client.short_name.lower()}.example")
        softer = CollectionPolicy(name="Softer")
        session.add(softer)
        template, endpoint = _template(session), _endpoint(app, session)
        _rule(
            session,
            owner.id,
            name="Key accounts",
            conditions={"all": [{"field": "tags", "op": "has_tag", "value": "vip"}]},
            actions=[
                {"type": "set_field", "field": "preferred_channel", "value": "whatsapp"},
                {"type": "add_tag", "tag": "key"},
                {"type": "assign_manager", "user_id": owner.id},
                {"type": "assign_collector", "user_id": collector.id},
                {"type": "switch_policy", "policy_id": softer.id},
                {"type": "change_payment_terms", "terms": "net", "days": "45"},
                {"type": "put_on_hold", "reason": "Key account review", "days": "10"},
                {"type": "notify", "role": "owner"},
                {"type": "send_message", "template_id": template.id},
                {"type": "call_webhook", "endpoint_id": endpoint.id},
            ],
        )
        statements: list[str] = []
        stop_listening = _updates_of_clients(session.connection(), statements)
        try:
            outcome = services.run_scheduled_rules(session, TODAY)
        finally:
            stop_listening()
        (run,) = outcome.ran
        assert (run.matched, run.failures) == (2, [])
        # Six field changes over two clients: six UPDATE statements, not twelve.
        assert len(statements) == 6
        for client in (kaveri, ganga):
            session.refresh(client)
            assert client.preferred_channel == "whatsapp"
            assert client.tags[-1] == "key" and client.tags.count("key") == 1
            assert (client.engagement_manager_user_id, client.collector_user_id) == (
                owner.id,
                collector.id,
            )
            assert (client.collection_policy_id, client.payment_terms) == (softer.id, "net")
            assert client.payment_days == 45
            (hold,) = session.scalars(
                select(CollectionHold).where(CollectionHold.client_id == client.id)
            ).all()
            assert hold.ends_on == TODAY + timedelta(days=10)
            assert "Key account review" in hold.reason
        # The changes are in the audit log and announced, as a person's would be.
        audited = session.scalars(
            select(AuditEntry).where(AuditEntry.source == "rule", AuditEntry.entity == "clients")
        ).all()
        assert {e.entity_id for e in audited} == {str(kaveri.id), str(ganga.id)}
        assert any(e.changes.get("payment_days") == [30, 45] for e in audited)
        updated = session.scalars(
            select(DomainEvent).where(DomainEvent.type == "client.updated")
        ).all()
        assert {e.subject_id for e in updated} == {kaveri.id, ganga.id}
        # A daily rule tells people once per run, not once per record.
        (note,) = session.scalars(select(Notification).where(Notification.user_id == owner.id))
        assert "matched 2 clients" in note.title
        messages = session.scalars(
            select(OutboxMessage).where(OutboxMessage.tenant_id == workspace["tenant"].id)
        ).all()
        assert sorted(m.recipient for m in messages) == sorted(
            f"accounts@{c.short_name.lower()}.example" for c in (kaveri, ganga)
        )
        assert all(m.subject.startswith("A note for") for m in messages)
        calls = session.scalars(select(DomainEvent).where(DomainEvent.type == "rule.matched"))
        assert {(e.data["endpoint_id"], e.data["record_id"]) for e in calls} == {
            (endpoint.id, kaveri.id),
            (endpoint.id, ganga.id),
        }
        # The same day again: each scheduled rule runs once a day.
        assert services.run_scheduled_rules(session, TODAY).ran == []


def test_one_failing_action_is_reported_and_the_others_still_run(app, workspace):
    """A rule on invoices: the second action cannot send (no contact) and is rolled back
    alone; the tag and the invoice's own policy switch before and after it are kept."""
    session, owner = workspace["session"], workspace["owner"]
    with app.app_context():
        softer = CollectionPolicy(name="Softer")
        session.add(softer)
        template = _template(session)
        _rule(
            session,
            owner.id,
            entity="invoices",
            conditions={"all": [{"field": "days_overdue", "op": "gte", "value": "42"}]},
            actions=[
                {"type": "add_tag", "tag": "late"},
                {"type": "send_message", "template_id": template.id},
                {"type": "switch_policy", "policy_id": softer.id},
            ],
        )
        (run,) = services.run_scheduled_rules(session, TODAY).ran
        assert run.matched == 2
        assert [(f["action"], f["type"]) for f in run.failures] == [(2, "send_message")]
        assert "has no contact" in run.failures[0]["message"]
        late = session.scalars(
            select(Invoice).where(Invoice.collection_policy_id == softer.id)
        ).all()
        assert len(late) == 2
        for invoice in late:
            assert "late" in session.get(Client, invoice.client_id).tags
        # Nothing went out (the outbox is shared: only this workspace's messages count).
        sent = select(OutboxMessage.id).where(OutboxMessage.tenant_id == workspace["tenant"].id)
        assert session.scalar(sent) is None


def _drain(session) -> int:
    total = 0
    while taken := consume(session, services.CONSUMER, services.apply_events):
        total += taken
    return total


def test_an_action_never_retriggers_its_own_rule_even_through_another_rule(app, workspace):
    """Two rules that would undo each other for ever on client.updated: A makes the owner the
    manager, B the collector. Each runs on a person's change and on the other's change, but
    never on a change its own run caused, directly or through the other: the chain ends."""
    session, owner, collector = workspace["session"], workspace["owner"], workspace["collector"]
    client = workspace["clients"][2]
    with app.app_context():
        _drain(session)  # what the fixture's own writes announced
        a = _rule(
            session,
            owner.id,
            name="A",
            trigger="client.updated",
            priority=1,
            conditions={"not": {"field": "engagement_manager", "op": "equals", "value": owner.id}},
            actions=[{"type": "assign_manager", "user_id": owner.id}],
        )
        b = _rule(
            session,
            owner.id,
            name="B",
            trigger="client.updated",
            priority=2,
            conditions={"field": "engagement_manager", "op": "equals", "value": owner.id},
            actions=[{"type": "assign_manager", "user_id": collector.id}],
        )
        person = emit(
            session,
            "client.updated",
            "client",
            client.id,
            {"client_id": client.id, "name": client.short_name, "fields": ["city"]},
        )
        _drain(session)
        runs = session.scalars(select(RuleRun).order_by(RuleRun.id)).all()
        # On the person's change A, then B (it reads A's change); B's change runs A again
        # (not A's own); A's change then, caused by B's run and its own, runs neither.
        assert [(r.rule_id, r.event_id == person) for r in runs] == [
            (a.id, True),
            (b.id, True),
            (a.id, False),
        ]
        session.refresh(client)
        assert client.engagement_manager_user_id == owner.id
        chains: dict[int, set[int]] = {}
        for event_id, rule_id in session.execute(
            select(RuleCausedEvent.event_id, RuleCausedEvent.rule_id)
        ):
            chains.setdefault(event_id, set()).add(rule_id)
        assert sorted(map(sorted, chains.values())) == [[a.id], [a.id, b.id], [b.id]]
        assert _drain(session) == 0


def test_a_rule_that_stops_keeps_later_rules_off_its_records(app, workspace):
    session, owner = workspace["session"], workspace["owner"]
    with app.app_context():
        _rule(
            session,
            owner.id,
            priority=1,
            stop_after=True,
            conditions={"field": "tags", "op": "has_tag", "value": "vip"},
            actions=[{"type": "add_tag", "tag": "first"}],
        )
        _rule(session, owner.id, priority=2, actions=[{"type": "add_tag", "tag": "second"}])
        services.run_scheduled_rules(session, TODAY)
        tagged = {
            name.rsplit(" ", 1)[0]: tags
            for name, tags in session.execute(select(Client.full_name, Client.tags))
        }
        assert "second" not in tagged["Kaveri"] and "first" in tagged["Kaveri"]
        assert "second" in tagged["Yamuna"] and "first" not in tagged["Yamuna"]


def test_a_rule_whose_member_template_or_field_is_gone_is_turned_off_and_the_run_goes_on(
    app, db_session, workspace
):
    session, owner, collector = workspace["session"], workspace["owner"], workspace["collector"]
    with app.app_context():
        template = _template(session)
        conditions.set_custom_field_resolver(_FakeCustomFields())
        try:
            by_field = _rule(
                session,
                owner.id,
                name="By PO",
                priority=1,
                conditions={"field": "custom.po_number", "op": "is_not_empty"},
                actions=[{"type": "add_tag", "tag": "po"}],
            )
        finally:
            # The field was archived since: the workspace's own fields have no po_number.
            conditions.set_custom_field_resolver(WorkspaceCustomFields())
        by_member = _rule(
            session,
            owner.id,
            name="Assign",
            priority=2,
            actions=[{"type": "assign_collector", "user_id": collector.id}],
        )
        by_template = _rule(
            session,
            owner.id,
            name="Say hello",
            priority=3,
            actions=[{"type": "send_message", "template_id": template.id}],
        )
        still_fine = _rule(
            session, owner.id, priority=4, actions=[{"type": "add_tag", "tag": "ok"}]
        )
        membership = db_session.scalars(
            select(Membership).where(Membership.user_id == collector.id)
        ).one()
        membership.active = False
        db_session.flush()
        template.deleted_at = func.now()
        session.flush()
        outcome = services.run_scheduled_rules(session, TODAY)
        turned = dict(outcome.turned_off)
        assert "custom.po_number" in turned[by_field.id]
        assert "no longer in this workspace" in turned[by_member.id]
        assert "template it sends was deleted" in turned[by_template.id]
        assert not any(r.enabled for r in (by_field, by_member, by_template))
        assert still_fine.enabled and by_member.disabled_reason == turned[by_member.id]
        assert session.scalar(select(func.count()).where(Client.tags.contains(["ok"]))) == 6
        history = services.versions_of(session, by_member)
        assert (
            history[0].change.startswith("Turned off by Duebook") and history[0].changed_by is None
        )
        # Turning it on again is refused while the member is gone.
        assert "no longer" in services.set_enabled(session, by_member, True, owner.id)
        assert not by_member.enabled


def test_every_change_is_a_version_with_who_and_what(app, workspace):
    session, owner = workspace["session"], workspace["owner"]
    with app.app_context():
        rule = _rule(session, owner.id, actions=[{"type": "add_tag", "tag": "a"}])
        raw = {
            "name": "Renamed",
            "entity": "clients",
            "trigger": "schedule",
            "conditions": rule.conditions,
            "actions": [{"type": "add_tag", "tag": "b"}],
            "priority": 100,
            "enabled": True,
        }
        services.update_rule(session, rule, raw, owner.id)
        services.update_rule(session, rule, raw, owner.id)  # no change, no version
        services.set_enabled(session, rule, False, owner.id)
        assert services.set_priority(session, rule, "x", owner.id) is not None
        services.set_priority(session, rule, "7", owner.id)
        history = services.versions_of(session, rule)
        assert [(v.version, v.change) for v in history] == [
            (4, "Priority set to 7"),
            (3, "Turned off"),
            (2, "Changed: name, actions"),
            (1, "Created"),
        ]
        assert {v.changed_by for v in history} == {owner.id}
        assert history[2].actions == [{"type": "add_tag", "tag": "b"}]
        assert history[3].name == "Rule" and rule.version == 4


def test_bad_rules_are_refused_per_field_and_nothing_is_saved(app, workspace):
    session, owner = workspace["session"], workspace["owner"]
    with app.app_context(), pytest.raises(services.RuleInvalid) as refused:
        services.create_rule(
            session,
            {
                "name": "",
                "entity": "invoices",
                "trigger": "overdue",
                "overdue_days": "0",
                "priority": "-1",
                "conditions": {"all": [{"field": "tags", "op": "equals", "value": "x"}]},
                "actions": [
                    {"type": "assign_manager", "user_id": "999999"},
                    {"type": "change_payment_terms", "terms": "net"},
                    {"type": "exec", "code": "1"},
                ],
            },
            owner.id,
        )
    problem = refused.value
    assert set(problem.errors) == {"name", "overdue_days", "priority"}
    assert [where for where, _ in problem.condition_problems] == ["Condition 1"]
    assert [where for where, _ in problem.action_problems] == ["Action 1", "Action 2", "Action 3"]
    assert session.scalar(select(func.count()).select_from(Rule)) == 0


# -- pages ------------------------------------------------------------------------------------


def _rules_url(tenant, tail: str = "") -> str:
    return f"/t/{tenant.slug}/settings/rules/{tail}"


def test_only_admins_reach_the_rules_pages(
    app, client, db_session, workspace, make_user, add_member, login
):
    tenant = workspace["tenant"]
    finance = make_user()
    add_member(tenant, finance, "finance")
    login(client, finance)
    assert client.get(_rules_url(tenant)).status_code == 403
    assert client.get(_rules_url(tenant, "new")).status_code == 403
    client.post("/logout")
    login(client, workspace["owner"])
    page = client.get(_rules_url(tenant))
    assert page.status_code == 200 and "No rules yet" in page.text


def test_the_condition_builder_adds_conditions_and_offers_operators_by_type(
    app, client, workspace, login
):
    tenant = workspace["tenant"]
    workspace["session"].commit()
    login(client, workspace["owner"])
    form = client.get(_rules_url(tenant, "new"))
    token = csrf_token_from(form.text)
    base = {
        "csrf_token": token,
        "name": "Soft policy for exporters",
        "entity": "clients",
        "trigger": "schedule",
        "node": ["n", "n.0"],
        "kind.n": "all",
        "field.n.0": "credit_limit",
        "op.n.0": "equals",
        "value.n.0": "",
        "action": ["0"],
        "type.0": "add_tag",
        "tag.0": "export-soft",
        "priority": "100",
        "enabled": "1",
    }
    htmx = {"HX-Request": "true"}
    added = client.post(
        _rules_url(tenant, "new"), data={**base, "builder": "add-group:n"}, headers=htmx
    )
    assert added.status_code == 200
    assert "<html" not in added.text  # only the builder comes back
    assert 'name="kind.n.1"' in added.text and 'name="field.n.1.0"' in added.text
    # A money field offers comparisons, not tag operators; a tags field the reverse.
    assert (
        '<option value="between"' in added.text
        and "has_tag" not in added.text.split('name="field.n.1.0"')[0]
    )
    refreshed = client.post(
        _rules_url(tenant, "new"),
        data={**base, "field.n.0": "tags", "op.n.0": "gt", "builder": "refresh"},
        headers=htmx,
    )
    assert '<option value="has_tag" selected' in refreshed.text
    # Saving nonsense: the place of each problem, nothing saved, no server error.
    bad = client.post(_rules_url(tenant, "new"), data={**base, "value.n.0": "lots"})
    assert bad.status_code == 422
    assert "Condition 1: Credit limit: give a number" in bad.text
    assert workspace["session"].scalar(select(func.count()).select_from(Rule)) == 0
    saved = client.post(
        _rules_url(tenant, "new"),
        data={**base, "op.n.0": "gt", "value.n.0": "100000"},
    )
    assert saved.status_code == 302
    rule = workspace["session"].scalars(select(Rule)).one()
    assert rule.conditions == {"all": [{"field": "credit_limit", "op": "gt", "value": "100000"}]}
    assert rule.actions == [{"type": "add_tag", "tag": "export-soft"}]
    shown = client.get(saved.headers["Location"])
    assert "Credit limit is more than 100000" in shown.text and "Created" in shown.text


def test_the_dry_run_shows_what_would_change_and_changes_nothing(app, client, workspace, login):
    session, owner, tenant = workspace["session"], workspace["owner"], workspace["tenant"]
    with app.app_context():
        rule = _rule(
            session,
            owner.id,
            name="Exporters",
            conditions={"field": "tags", "op": "has_tag", "value": "export"},
            actions=[{"type": "add_tag", "tag": "vip"}, {"type": "notify", "user_id": owner.id}],
        )
        session.commit()
    login(client, owner)
    page = client.get(_rules_url(tenant, f"{rule.id}/dry-run"), headers={"HX-Request": "true"})
    assert page.status_code == 200
    assert "<strong>2</strong> records match today" in page.text
    assert "Add the tag “vip”: would change 1" in page.text  # Kaveri has it already
    assert "Godavari" in page.text and "Nothing: already so" not in page.text.split("Godavari")[1]
    assert session.scalar(select(func.count()).where(Client.tags.contains(["vip"]))) == 2
    assert session.scalar(select(func.count()).select_from(RuleRun)) == 0


def test_the_list_turns_off_a_rule_whose_template_was_deleted_and_says_why(
    app, client, workspace, login
):
    session, owner, tenant = workspace["session"], workspace["owner"], workspace["tenant"]
    with app.app_context():
        template = _template(session)
        rule = _rule(
            session,
            owner.id,
            name="Hello",
            actions=[{"type": "send_message", "template_id": template.id}],
        )
        template.deleted_at = func.now()
        session.commit()
    login(client, owner)
    page = client.get(_rules_url(tenant))
    assert (
        "Turned off by Duebook: Action 1: The message template it sends was deleted." in page.text
    )
    session.refresh(rule)
    assert not rule.enabled
    token = csrf_token_from(page.text)
    client.post(_rules_url(tenant, f"{rule.id}/toggle"), data={"csrf_token": token, "enabled": "1"})
    session.refresh(rule)
    assert not rule.enabled  # refused: the template is still gone
