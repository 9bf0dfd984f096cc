"""Targets (issue 22): a scheduled rule with 10 conditions (two on custom fields) over
100,000 invoices selects its records in at most 2x the time of a hand-written SQL query
selecting the same rows, and its actions are applied in bulk; with 20 enabled event-triggered
rules, the request that causes the event takes at most 10% longer than with none."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import func, select, text, update

from app.clients.models import Client
from app.clients.services import announce_client_updated
from app.collections.models import CollectionPolicy
from app.core.clock import local_date
from app.core.events import DomainEvent, consume
from app.custom_fields import services as custom_fields
from app.extensions import db
from app.rules import conditions, services
from app.rules.models import Rule
from bench import aging as aging_bench
from bench.common import (
    BenchEnvironment,
    Samples,
    Stopwatch,
    Verdict,
    print_figure,
    print_header,
    print_verdict,
)
from bench.pages import add_bare_routes, create_owner_and_tenant, log_in, time_get
from tenants.binding import bind_tenant, qualified, quoted_schema, schema_for_tenant_id
from tenants.models import Membership, Tenant

INVOICES = 100_000
CLIENTS = 5_000
SELECT_RUNS = 15
REQUESTS = 60
WARMUP_REQUESTS = 5
EVENT_RULES = 20
MAX_SELECT_RATIO = 2.0
MAX_EVENT_RATIO = 1.10
MEASURES = f"""
Load         {CLIENTS:,} clients and {INVOICES:,} invoices (bench/aging.py's loader); the
             clients given tags, states, credit limits and collectors by their id.
select       the rule's ONE compiled select (10 conditions over the invoice and its client:
             status, days overdue, total range, the invoice's custom field "PO number" not
             empty, the client's custom choice "Segment", tag, state, credit limit, status,
             and an any-of group) against a hand-written SQL query of the same rows,
             alternating, {SELECT_RUNS} runs each (same ids checked).
actions      the daily run of that rule: add a tag to the matched invoices' clients and
             switch the invoices' policy, one UPDATE each (rolled back after).
event        POST-free request GET /t/<slug>/bench/rules-touch: a client's city changed and
             client.updated written, as the client form does; {REQUESTS} requests with
             {EVENT_RULES} enabled client.updated rules, alternating with the same rules off
             (the rules run in the "rules" consumer's job, after the request's commit; its
             time per event is shown apart).
"""

TREE = {
    "all": [
        {"field": "status", "op": "in", "value": ["overdue", "issued", "partly_paid"]},
        {"field": "days_overdue", "op": "gte", "value": "30"},
        {"field": "total", "op": "between", "value": ["500", "90000"]},
        {"field": "custom.po_number", "op": "is_not_empty"},
        {"field": "client.custom.segment", "op": "in", "value": ["retail", "export"]},
        {"field": "client.tags", "op": "has_tag", "value": "key"},
        {"field": "client.region", "op": "in", "value": ["27", "29", "33"]},
        {"field": "client.credit_limit", "op": "gte", "value": "10000"},
        {"not": {"field": "client.status", "op": "equals", "value": "on_hold"}},
        {
            "any": [
                {"field": "client.collector", "op": "is_empty"},
                {"field": "client.payment_terms", "op": "equals", "value": "immediate"},
            ]
        },
    ]
}
HAND_WRITTEN = """
SELECT i.id FROM {s}.invoices i JOIN {s}.clients c ON c.id = i.client_id
 WHERE i.status IN ('overdue', 'issued', 'partly_paid') AND i.due_date <= :late
   AND i.total BETWEEN 500 AND 90000 AND coalesce(i.custom_fields ->> 'po_number', '') <> ''
   AND c.custom_fields ->> 'segment' IN ('retail', 'export')
   AND c.tags @> ARRAY['key']::varchar[] AND c.region IN ('27', '29', '33')
   AND c.credit_limit >= 10000 AND c.status <> 'on_hold'
   AND (c.collector_user_id IS NULL OR c.payment_terms = 'immediate')
   AND c.deleted_at IS NULL
"""
SHAPE_CLIENTS = """
UPDATE {s}.clients SET
  tags = CASE WHEN id % 3 = 0 THEN ARRAY['key', 'export'] WHEN id % 3 = 1 THEN ARRAY['key']
              ELSE '{{}}' END::varchar[],
  region = (ARRAY['27', '29', '33', '07', '09'])[1 + id % 5],
  credit_limit = CASE WHEN id % 7 = 0 THEN NULL ELSE (id % 50) * 1000 END,
  status = CASE WHEN id % 11 = 0 THEN 'on_hold' ELSE 'active' END,
  custom_fields = jsonb_build_object('segment', (ARRAY['retail', 'export', 'services'])[1 + id % 3])
"""
# Three invoices in four carry a purchase order number.
SHAPE_INVOICES = """
UPDATE {s}.invoices SET custom_fields = jsonb_build_object('po_number', 'PO-' || id)
 WHERE id % 4 <> 0
"""
CUSTOM_FIELDS = (
    ("invoices", {"label": "PO number", "key": "po_number", "field_type": "text"}),
    (
        "clients",
        {
            "label": "Segment",
            "key": "segment",
            "field_type": "choice",
            "choices": "Retail\nExport\nServices",
        },
    ),
)


def _touch():
    """The event's request: a client's detail changed and announced, as the client form does
    (committed by the request's end)."""
    client = db.session.scalars(select(Client).order_by(Client.id).limit(1)).one()
    client.city = f"City {secrets.token_hex(3)}"
    db.session.flush()
    announce_client_updated(db.session, client, ["city"])
    return "ok"


def run(environment: BenchEnvironment) -> list[Verdict]:
    print_header(f"rules: a 10-condition rule over {INVOICES:,} invoices; 20 event rules", MEASURES)
    with environment.app() as app:
        add_bare_routes(app)
        app.add_url_rule("/t/<tenant_slug>/bench/rules-touch", "bench_rules_touch", _touch)
        email, slug, tenant_id = create_owner_and_tenant(app)
        schema = schema_for_tenant_id(tenant_id)
        with app.app_context():
            bind_tenant(db.session, tenant_id)
            today = local_date(db.session.get(Tenant, tenant_id).time_zone)
            with Stopwatch() as load:
                aging_bench._load(schema, clients=CLIENTS, invoices=INVOICES)
                db.session.execute(text(SHAPE_CLIENTS.format(s=quoted_schema(schema))))
                db.session.execute(text(SHAPE_INVOICES.format(s=quoted_schema(schema))))
                for entity, definition in CUSTOM_FIELDS:
                    custom_fields.save_field(db.session, entity, definition)
                db.session.commit()
                for table in ("clients", "invoices"):
                    db.session.connection().exec_driver_sql(f"ANALYZE {qualified(schema, table)}")
                db.session.commit()
            checked = conditions.check("invoices", TREE)
            compiled = conditions.matching_ids("invoices", checked, today)
            hand = text(HAND_WRITTEN.format(s=quoted_schema(schema)))
            late = today - timedelta(days=30)
            by_rule = set(db.session.scalars(compiled))
            by_hand = set(db.session.scalars(hand, {"late": late}))
            if by_rule != by_hand or not by_rule:
                raise RuntimeError(f"the rule selects {len(by_rule)}, by hand {len(by_hand)}")
            rule_times, hand_times = [], []
            for _ in range(SELECT_RUNS):
                with Stopwatch() as watch:
                    db.session.scalars(compiled).all()
                rule_times.append(watch.seconds)
                with Stopwatch() as watch:
                    db.session.scalars(hand, {"late": late}).all()
                hand_times.append(watch.seconds)
            db.session.commit()
            owner_id = db.session.scalar(
                select(Membership.user_id).where(Membership.tenant_id == tenant_id)
            )
            policy = CollectionPolicy(name="Softer")
            db.session.add(policy)
            db.session.flush()
            services.create_rule(
                db.session,
                {
                    "name": "Key accounts late",
                    "entity": "invoices",
                    "trigger": "schedule",
                    "conditions": checked,
                    "actions": [
                        {"type": "add_tag", "tag": "late-key"},
                        {"type": "switch_policy", "policy_id": policy.id},
                    ],
                },
                owner_id,
            )
            with Stopwatch() as bulk:
                (scheduled,) = services.run_scheduled_rules(db.session, today).ran
            if scheduled.failures:
                raise RuntimeError(f"the rule's actions failed: {scheduled.failures}")
            matched, changed = scheduled.matched, scheduled.changed
            db.session.rollback()
            _event_rules(owner_id)
            db.session.commit()
            db.session.remove()

        http = app.test_client()
        log_in(http, email)
        url = f"/t/{slug}/bench/rules-touch"
        seconds = {"rules on": [], "rules off": []}
        for number in range(WARMUP_REQUESTS + REQUESTS):
            for state in ("rules on", "rules off"):
                _switch_event_rules(app, tenant_id, state == "rules on")
                elapsed = time_get(http, url)
                if number >= WARMUP_REQUESTS:
                    seconds[state].append(elapsed)
        _switch_event_rules(app, tenant_id, True)
        with app.app_context():
            bind_tenant(db.session, tenant_id)
            pending = db.session.scalar(
                select(func.count())
                .select_from(DomainEvent)
                .where(DomainEvent.type == "client.updated")
            )
            with Stopwatch() as consumer:
                applied = 0
                while taken := consume(db.session, services.CONSUMER, services.apply_events):
                    applied += taken
            db.session.remove()

    rule_samples, hand_samples = Samples(rule_times), Samples(hand_times)
    on, off = Samples(seconds["rules on"]), Samples(seconds["rules off"])
    print_figure("load", f"{load.seconds:6.1f} s")
    print_figure("rows selected", f"{len(by_rule):,} (same ids both ways)")
    print_figure("rule's select", rule_samples.describe_ms())
    print_figure("hand-written SQL", hand_samples.describe_ms())
    print_figure(
        "actions in bulk",
        f"{bulk.seconds * 1e3:7.1f} ms for {matched:,} invoices, {changed:,} rows changed "
        "(2 UPDATEs, their audit entries and client.updated events)",
    )
    print_figure("request, 20 rules on", on.describe_ms())
    print_figure("request, rules off", off.describe_ms())
    print_figure(
        "consumer, 20 rules",
        f"{consumer.seconds * 1e3 / max(applied, 1):7.2f} ms per event "
        f"({applied:,} events of which {pending:,} client.updated, in the worker)",
    )
    verdicts = [
        Verdict(
            "rules: 10-condition select / hand-written SQL (medians)",
            rule_samples.median,
            hand_samples.median,
            MAX_SELECT_RATIO,
        ),
        Verdict(
            "rules: event request with 20 rules / without (medians)",
            on.median,
            off.median,
            MAX_EVENT_RATIO,
        ),
    ]
    for verdict in verdicts:
        print_verdict(verdict)
    return verdicts


def _event_rules(owner_id: int) -> None:
    for number in range(EVENT_RULES):
        services.create_rule(
            db.session,
            {
                "name": f"Event rule {number}",
                "entity": "clients",
                "trigger": "client.updated",
                "priority": number,
                "conditions": {
                    "all": [
                        {"field": "tags", "op": "has_tag", "value": f"never-{number}"},
                        {"field": "credit_limit", "op": "gte", "value": "1000"},
                        {"field": "overdue_invoices", "op": "gte", "value": "1"},
                    ]
                },
                "actions": [{"type": "add_tag", "tag": f"seen-{number}"}],
            },
            owner_id,
        )


def _switch_event_rules(app, tenant_id: int, enabled: bool) -> None:
    with app.app_context():
        bind_tenant(db.session, tenant_id)
        db.session.execute(
            update(Rule).where(Rule.trigger == "client.updated").values(enabled=enabled)
        )
        db.session.commit()
        db.session.remove()
