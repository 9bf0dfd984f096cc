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
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.clients.models import Client
from app.collections.models import CollectionHold, CollectionPolicy
from app.core.events import DomainEvent, consume, emit
from app.invoicing.models import Invoice
from app.message_templates.models import MessageTemplate
from app.notifications.models import Notification
from app.outbox.models import OutboxMessage
from app.rules import conditions, services
from app.rules.conditions import Field
from app.rules.models import Rule, RuleCausedEvent, RuleRun, RuleVersion
from app.webhooks.models import WebhookEndpoint
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
        conditions.set_custom_field_resolver(None)
    with app.app_context(), pytest.raises(conditions.ConditionError):
        conditions.check("clients", {"field": "custom.po_number", "op": "equals", "value": "x"})
