"""A rule that requires an invoice field for some clients: applied (set-based, one INSERT for
every matched client), the invoice form and the API refuse those clients' invoices without the
field, with "required for this client" beside it, while other clients' invoices save without
it and invoices from the books are taken as they are. Turning the rule off keeps what it set;
"stop requiring" takes it back."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from app.audit.models import AuditEntry
from app.clients.models import ClientRequiredField
from app.custom_fields import services as custom_fields
from app.integrations.connectors.accounting import BookInvoice, BookLine
from app.invoicing import services as invoicing
from app.invoicing.bulk import insert_invoices
from app.invoicing.models import Invoice
from app.rules import services as rules
from app.rules.models import RuleRun
from app.sync import mapping
from tests.helpers import csrf_token_from, tenant_session

TODAY = date(2027, 3, 1)


@pytest.fixture
def workspace(app, db_session, make_tenant, make_user, make_client):
    """Three clients, two tagged "po" (Ganga "left" too); invoices have a "PO number" field,
    optional for all."""
    owner = make_user(full_name="Asha Owner")
    tenant = make_tenant(owner=owner, region="27")
    session = tenant_session(db_session, tenant, actor_id=owner.id)
    with app.app_context():
        po_clients = [
            make_client(session, "Kaveri", region="27", tags=["po"]),
            make_client(session, "Ganga", region="27", tags=["po", "left"]),
        ]
        other = make_client(session, "Yamuna", region="27", tags=[])
        custom_fields.save_field(session, "invoices", {"label": "PO number", "field_type": "text"})
        session.commit()
    return {
        "tenant": tenant,
        "owner": owner,
        "session": session,
        "po_clients": po_clients,
        "other": other,
    }


def _require_rule(session, owner_id, kind: str = "require_invoice_field", **raw):
    values = {
        "name": "Clients who need a PO",
        "entity": "clients",
        "trigger": "schedule",
        "conditions": {"field": "tags", "op": "has_tag", "value": "po"},
        "actions": [{"type": kind, "field_key": "po_number"}],
        "priority": 100,
        **raw,
    }
    return rules.create_rule(session, values, owner_id)


def _required(session) -> set[int]:
    return set(
        session.scalars(
            select(ClientRequiredField.client_id).where(
                ClientRequiredField.field_key == "po_number"
            )
        )
    )


def _writes_to_requirements(connection, statements: list[str]):
    def seen(conn, cursor, statement, parameters, context, executemany):
        if "client_required_fields" in statement and statement.lstrip().upper().startswith(
            ("INSERT", "DELETE", "UPDATE")
        ):
            statements.append(statement)

    event.listen(connection, "before_cursor_execute", seen)
    return lambda: event.remove(connection, "before_cursor_execute", seen)


def _form_key(page: str) -> str:
    found = re.search(r'name="form_key" value="([^"]+)"', page)
    return found.group(1) if found else ""


def test_a_scheduled_rule_records_the_requirement_in_one_insert_and_once(app, workspace):
    session, owner = workspace["session"], workspace["owner"]
    with app.app_context():
        _require_rule(session, owner.id)
        statements: list[str] = []
        stop_listening = _writes_to_requirements(session.connection(), statements)
        try:
            (run,) = rules.run_scheduled_rules(session, TODAY).ran
        finally:
            stop_listening()
        assert (run.matched, run.changed, run.failures) == (2, 2, [])
        # Two clients, one statement: INSERT ... SELECT, not one per client.
        assert len(statements) == 1 and "ON CONFLICT DO NOTHING" in statements[0]
        assert _required(session) == {c.id for c in workspace["po_clients"]}
        audited = session.scalars(
            select(AuditEntry).where(AuditEntry.source == "rule", AuditEntry.entity == "clients")
        ).all()
        assert {e.entity_id for e in audited} == {str(c.id) for c in workspace["po_clients"]}
        assert all(e.changes == {"invoice_field_required": [None, "po_number"]} for e in audited)
        # Run again (another day): already required, nothing changes, no error.
        (again,) = rules.run_scheduled_rules(session, date(2027, 3, 2)).ran
        assert (again.changed, again.failures) == (0, [])


def test_the_invoice_form_requires_the_field_for_that_client_only(app, client, workspace, login):
    session, owner, tenant = workspace["session"], workspace["owner"], workspace["tenant"]
    kaveri, other = workspace["po_clients"][0], workspace["other"]
    with app.app_context():
        _require_rule(session, owner.id)
        rules.run_scheduled_rules(session, TODAY)
        session.commit()
    login(client, owner)
    url = f"/t/{tenant.slug}/invoices/new"
    page = client.get(f"{url}?client_id={kaveri.id}").text
    assert 'PO number <span class="muted">(Required for this client)</span>' in page
    assert "Required for this client" not in client.get(f"{url}?client_id={other.id}").text
    data = {
        "csrf_token": csrf_token_from(page),
        "form_key": _form_key(page),
        "client_id": kaveri.id,
        "description": "Survey",
        "hsn_sac": "998311",
        "quantity": "1",
        "unit_price": "100",
        "tax_rate": "18",
    }
    refused = client.post(url, data=data)
    assert refused.status_code == 422
    # The error is beside the field (its input points to it).
    assert 'aria-describedby="cf-po_number-error"' in refused.text
    assert (
        '<p class="error" id="cf-po_number-error" role="alert">'
        "PO number is required for this client.</p>" in refused.text
    )
    assert session.scalar(select(func.count()).select_from(Invoice)) == 0
    # Another client's invoice saves without it.
    other_page = client.get(f"{url}?client_id={other.id}").text
    saved = client.post(
        url,
        data={
            **data,
            "client_id": other.id,
            "csrf_token": csrf_token_from(other_page),
            "form_key": _form_key(other_page),
        },
    )
    assert saved.status_code == 303, saved.text
    # And Kaveri's with it.
    data.update({"cf.po_number": "4500012345", "form_key": _form_key(refused.text)})
    assert client.post(url, data=data).status_code == 303
    assert sorted(
        (i.client_id, i.custom_fields) for i in session.scalars(select(Invoice))
    ) == sorted([(other.id, {}), (kaveri.id, {"po_number": "4500012345"})])


def test_the_api_answers_422_on_the_field_for_that_clients_invoice(
    app, client, db_session, workspace, make_invoice
):
    from app.api import services as api_services
    from app.api.models import SCOPES

    session, owner, tenant = workspace["session"], workspace["owner"], workspace["tenant"]
    kaveri, other = workspace["po_clients"][0], workspace["other"]
    with app.app_context():
        theirs = make_invoice(session, tenant, kaveri)
        others = make_invoice(session, tenant, other)
        _require_rule(session, owner.id)
        rules.run_scheduled_rules(session, TODAY)
        session.commit()
    _, secret = api_services.create_key(db_session, tenant.id, "Test", sorted(SCOPES), owner.id)
    db_session.commit()
    auth = {"Authorization": f"Bearer {secret}", "If-Match": "*"}
    body = {"custom_fields": {"po_number": None}}
    refused = client.patch(f"/api/v1/invoices/{theirs.id}", json=body, headers=auth)
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
    assert {e["field"]: e["message"] for e in refused.json["errors"]} == {
        "custom_fields.po_number": "PO number is required for this client."
    }
    assert client.patch(f"/api/v1/invoices/{others.id}", json=body, headers=auth).status_code == (
        200
    )
    given = client.patch(
        f"/api/v1/invoices/{theirs.id}", json={"custom_fields": {"po_number": "PO-9"}}, headers=auth
    )
    assert given.status_code == 200 and given.json["custom_fields"] == {"po_number": "PO-9"}


def test_an_invoice_from_the_books_is_taken_without_the_field(app, workspace):
    """The accounting sync writes what the books issued: a client's requirement does not
    refuse it (only forms and the API enforce it)."""
    session, owner, tenant = workspace["session"], workspace["owner"], workspace["tenant"]
    kaveri = workspace["po_clients"][0]
    with app.app_context():
        _require_rule(session, owner.id)
        rules.run_scheduled_rules(session, TODAY)
        line = BookLine(
            "Survey",
            Decimal("1"),
            Decimal("100.00"),
            Decimal("100.00"),
            Decimal("18"),
            Decimal("18.00"),
            "998311",
        )
        record = BookInvoice(
            remote_id="tally-1",
            number="TALLY/1",
            contact_remote_id="ledger-1",
            issue_date=date(2027, 2, 1),
            due_date=date(2027, 3, 3),
            currency="INR",
            state="open",
            lines=(line,),
            subtotal=Decimal("100.00"),
            tax_total=Decimal("18.00"),
            total=Decimal("118.00"),
            amount_due=Decimal("118.00"),
            place_of_supply="27",
        )
        invoice = mapping.invoice_from(session, tenant, kaveri, record, TODAY)
        insert_invoices(session, [invoice])
        stored = session.scalar(select(Invoice).where(Invoice.number == "TALLY/1"))
        assert (stored.client_id, stored.custom_fields, stored.total) == (
            kaveri.id,
            {},
            Decimal("118.00"),
        )
        # Changing another of its values by hand is where the requirement then applies.
        with pytest.raises(invoicing.InvoiceInvalid) as refused:
            invoicing.change_custom_values(session, stored, {})
        assert refused.value.errors == {"cf.po_number": "PO number is required for this client."}


def test_turning_the_rule_off_keeps_the_requirement_and_stop_requiring_takes_it_back(
    app, workspace
):
    session, owner = workspace["session"], workspace["owner"]
    with app.app_context():
        rule = _require_rule(session, owner.id)
        rules.run_scheduled_rules(session, TODAY)
        rules.set_enabled(session, rule, False, owner.id)
        assert _required(session) == {c.id for c in workspace["po_clients"]}
        _require_rule(
            session,
            owner.id,
            kind="stop_requiring_invoice_field",
            name="Ganga no longer needs a PO",
            conditions={"field": "tags", "op": "has_tag", "value": "left"},
        )
        rules.run_scheduled_rules(session, date(2027, 3, 2))
        assert _required(session) == {workspace["po_clients"][0].id}


def test_the_builder_offers_the_action_and_the_dry_run_says_what_would_change(
    app, client, workspace, login
):
    session, owner, tenant = workspace["session"], workspace["owner"], workspace["tenant"]
    with app.app_context():
        rule = _require_rule(session, owner.id)
        session.commit()
    login(client, owner)
    form = client.get(f"/t/{tenant.slug}/settings/rules/{rule.id}/edit").text
    assert '<option value="require_invoice_field" selected>' in form
    assert '<option value="po_number" selected>PO number</option>' in form
    dry = client.get(
        f"/t/{tenant.slug}/settings/rules/{rule.id}/dry-run", headers={"HX-Request": "true"}
    ).text
    assert "Require “PO number” on the client&#39;s invoices: would change 2" in dry
    assert _required(session) == set()
    assert session.scalar(select(func.count()).select_from(RuleRun)) == 0


def test_a_rule_naming_an_archived_or_unknown_field_is_refused_or_turned_off(app, workspace):
    session, owner = workspace["session"], workspace["owner"]
    with app.app_context():
        with pytest.raises(rules.RuleInvalid) as refused:
            _require_rule(session, owner.id, actions=[{"type": "require_invoice_field"}])
        assert refused.value.action_problems == [("Action 1", "choose a field of invoices.")]
        rule = _require_rule(session, owner.id)
        (field,) = custom_fields.definitions(session, "invoices")
        custom_fields.archive_field(field)
        outcome = rules.run_scheduled_rules(session, TODAY)
        assert [rule_id for rule_id, _ in outcome.turned_off] == [rule.id]
        assert _required(session) == set()
        session.refresh(rule)
        assert not rule.enabled and "invoice field it names" in rule.disabled_reason
