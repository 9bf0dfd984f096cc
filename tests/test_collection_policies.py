"""Collection policies and settings pages: policies created, renamed, made default, deleted
(soft), levels added with their errors next to the field, edited, reordered and removed
through htmx; only admins edit, everyone sees; the settings page (automatic sending recorded,
Udyam number checked); `policy_for` picks the invoice's, the client's or the default policy;
the preview page and Send me a test."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.clients.models import Client
from app.collections.engine import services
from app.collections.models import CollectionLevel, CollectionPolicy
from app.invoicing.models import Invoice
from app.outbox.models import OutboxMessage
from tests.helpers import csrf_token_from, tenant_session

LEVEL = {
    "name": "Friendly reminder",
    "trigger": "before_due",
    "trigger_days": "2",
    "channels": ["email", "sms"],
    "template_purpose": "notice_1",
    "min_gap_days": "1",
    "fee_amount": "",
}


@pytest.fixture
def admin_site(client, make_tenant, make_user, login, db_session):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    base = f"/t/{tenant.slug}/collections"
    token = csrf_token_from(client.get(f"{base}/policies").text)
    session = tenant_session(db_session, tenant)
    return client, base, token, session, owner, tenant


def policy_named(session, name):
    session.expire_all()
    return session.scalar(select(CollectionPolicy).where(CollectionPolicy.name == name))


def test_create_rename_make_default_and_delete_a_policy(admin_site):
    client, base, token, session, *_ = admin_site
    page = client.get(f"{base}/policies")
    assert page.status_code == 200 and "Standard" in page.text and "default" in page.text
    refused = client.post(f"{base}/policies", data={"csrf_token": token, "name": "standard"})
    assert refused.status_code == 422 and "Another policy has this name." in refused.text
    assert 'aria-describedby="name-error"' in refused.text
    made = client.post(f"{base}/policies", data={"csrf_token": token, "name": "Strict"})
    assert made.status_code == 303
    strict = policy_named(session, "Strict")
    assert strict is not None and not strict.is_default
    renamed = client.post(
        f"{base}/policies/{strict.id}",
        data={"csrf_token": token, "name": "Strict B2B", "description": "x"},
    )
    assert renamed.status_code == 303
    client.post(f"{base}/policies/{strict.id}/default", data={"csrf_token": token})
    assert policy_named(session, "Strict B2B").is_default
    assert not policy_named(session, "Standard").is_default
    standard = policy_named(session, "Standard")
    client.post(f"{base}/policies/{strict.id}/delete", data={"csrf_token": token})
    assert policy_named(session, "Strict B2B").deleted_at is None  # the default cannot go
    client.post(f"{base}/policies/{standard.id}/delete", data={"csrf_token": token})
    assert policy_named(session, "Standard").deleted_at is not None  # soft
    assert client.get(f"{base}/policies/{standard.id}").status_code == 404
    assert services.policy_choices(session) == [(strict.id, "Strict B2B (default)")]


def test_levels_added_with_errors_next_to_fields_edited_reordered_and_removed(admin_site):
    client, base, token, session, *_ = admin_site
    policy = policy_named(session, "Standard")
    url = f"{base}/policies/{policy.id}/levels"
    bad = client.post(
        url,
        data={
            "csrf_token": token,
            **LEVEL,
            "name": "",
            "trigger_days": "x",
            "channels": ["fax"],
            "fee_amount": "-1",
        },
    )
    assert bad.status_code == 422
    for field, message in (
        ("new-name", "Enter a name."),
        ("new-trigger_days", "whole number"),
        ("new-channels", "at least one channel"),
        ("new-fee_amount", "zero or more"),
    ):
        assert f'id="{field}-error"' in bad.text and message in bad.text
    assert client.post(url, data={"csrf_token": token, **LEVEL}).status_code == 303
    levels = policy_named(session, "Standard").levels
    assert [level.position for level in levels] == [1, 2, 3, 4, 5]
    added = levels[-1]
    assert (added.name, added.channels, added.trigger) == (
        "Friendly reminder",
        ["email", "sms"],
        "before_due",
    )

    edit = f"{url}/{added.id}"
    assert client.get(edit).status_code == 200
    saved = client.post(
        edit, data={"csrf_token": token, **LEVEL, "fee_amount": "250.00", "requires_approval": "1"}
    )
    assert saved.status_code == 303
    session.expire_all()
    assert session.get(CollectionLevel, added.id).fee_amount == 250
    assert session.get(CollectionLevel, added.id).requires_approval

    moved = client.post(
        f"{edit}/move",
        data={"csrf_token": token, "direction": "up"},
        headers={"HX-Request": "true"},
    )
    assert moved.status_code == 200 and "<html" not in moved.text
    assert "4. Friendly reminder" in moved.text
    session.expire_all()
    names = [level.name for level in policy_named(session, "Standard").levels]
    assert names == [
        "1st notice",
        "2nd notice",
        "Final notice",
        "Friendly reminder",
        "Legal action",
    ]
    first = policy_named(session, "Standard").levels[0]
    removed = client.post(
        f"{url}/{first.id}/delete", data={"csrf_token": token}, headers={"HX-Request": "true"}
    )
    assert removed.status_code == 200
    session.expire_all()
    ladder = policy_named(session, "Standard").levels
    assert [(level.position, level.name) for level in ladder][:2] == [
        (1, "2nd notice"),
        (2, "Final notice"),
    ]
    assert ladder[0].trigger == "after_due"  # a first level counts from the due date


@pytest.mark.parametrize("role", ["viewer", "collector", "finance"])
def test_only_admins_edit_policies_everyone_sees_them(
    client, make_tenant, make_user, add_member, login, db_session, role
):
    tenant = make_tenant()
    member = make_user()
    add_member(tenant, member, role)
    login(client, member)
    base = f"/t/{tenant.slug}/collections"
    page = client.get(f"{base}/policies")
    assert page.status_code == 200 and "New policy" not in page.text
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/").text)
    policy = policy_named(tenant_session(db_session, tenant), "Standard")
    assert (
        client.post(f"{base}/policies", data={"csrf_token": token, "name": "X"}).status_code == 403
    )
    assert (
        client.post(
            f"{base}/policies/{policy.id}/levels", data={"csrf_token": token, **LEVEL}
        ).status_code
        == 403
    )
    assert client.get(f"{base}/settings").status_code == 403
    assert client.get(f"{base}/").status_code == 200


def test_settings_record_who_switched_automatic_sending_and_check_udyam(admin_site):
    client, base, token, session, owner, _ = admin_site
    form = {
        "csrf_token": token,
        "run_hour": "8",
        "tolerance_amount": "10.00",
        "grouping": "invoice",
        "visit_radius_m": "250",
        "msme_rate_basis": "per_rest",
    }
    bad = client.post(
        f"{base}/settings",
        data={
            **form,
            "udyam_number": "UDYAM-MH-1-12",
            "msme_category": "small",
            "run_hour": "24",
            "interest_rounding": "sometimes",
        },
    )
    assert bad.status_code == 422
    assert 'id="interest_rounding-error"' in bad.text
    assert 'id="udyam_number-error"' in bad.text and "UDYAM-XX-00-0000000" in bad.text
    assert 'id="run_hour-error"' in bad.text
    ok = client.post(
        f"{base}/settings",
        data={
            **form,
            "auto_send": "1",
            "udyam_number": "udyam-mh-19-0001234",
            "msme_category": "micro",
            "interest_rounding": "at_end",
        },
    )
    assert ok.status_code == 303
    session.expire_all()
    settings = services.settings_of(session)
    assert settings.auto_send and settings.auto_send_changed_by == owner.id
    assert settings.auto_send_changed_at is not None
    assert (settings.udyam_number, settings.msme_category, settings.grouping) == (
        "UDYAM-MH-19-0001234",
        "micro",
        "invoice",
    )
    assert str(settings.tolerance_amount) == "10.00" and settings.run_hour == 8
    assert settings.interest_rounding == "at_end"


def test_policy_for_prefers_the_invoice_then_the_client_then_the_default(db_session, make_tenant):
    session = tenant_session(db_session, make_tenant())
    standard = services.default_policy(session)
    strict = services.save_policy(session, {"name": "Strict"})
    gentle = services.save_policy(session, {"name": "Gentle"})
    client, invoice = Client(collection_policy_id=None), Invoice(collection_policy_id=None)
    assert services.policy_for(session, invoice, client) == standard
    client.collection_policy_id = strict.id
    assert services.policy_for(session, invoice, client) == strict
    invoice.collection_policy_id = gentle.id
    assert services.policy_for(session, invoice, client) == gentle
    services.delete_policy(session, gentle)
    assert services.policy_for(session, invoice, client) == strict


def test_send_me_a_test_goes_to_me_only_and_records_nothing(admin_site):
    from datetime import date

    from app.clients.models import Contact
    from tests.test_collections_run import notice_count

    client, base, token, session, owner, tenant = admin_site
    customer = Client(
        full_name="Test Client",
        short_name="TC",
        location="local",
        country="IN",
        currency="INR",
        payment_terms="net",
        payment_days=30,
    )
    session.add(customer)
    session.flush()
    session.add(
        Contact(
            client_id=customer.id, full_name="Ravi", roles=["billing"], email="ravi@example.com"
        )
    )
    level = services.default_policy(session).levels[0]
    session.commit()
    form = {"csrf_token": token, "level_id": level.id, "client_id": customer.id}
    nothing = client.post(f"{base}/test", data=form)
    assert nothing.status_code == 422 and "owes nothing" in nothing.text
    missing = client.post(f"{base}/test", data={"csrf_token": token})
    assert 'id="level_id-error"' in missing.text and 'id="client_id-error"' in missing.text

    session.add(
        Invoice(
            client_id=customer.id,
            number="TST-1",
            status="overdue",
            issue_date=date(2026, 1, 1),
            due_date=date(2026, 1, 31),
            currency="INR",
            tax_regime="intra",
            subtotal=5000,
            cgst=0,
            sgst=0,
            igst=0,
            other_tax=0,
            total=5000,
            amount_in_words="Five thousand",
        )
    )
    session.commit()
    sent = client.post(f"{base}/test", data=form)
    assert sent.status_code == 303
    messages = session.scalars(select(OutboxMessage).where(OutboxMessage.tenant_id == tenant.id))
    (message,) = messages.all()
    assert message.recipient == owner.email and message.subject.startswith("[TEST]")
    assert "TST-1" in message.body_text and message.client_id is None
    assert notice_count(session) == 0


def test_the_preview_page_says_why_and_run_now_records_a_run(admin_site):
    from datetime import timedelta

    from app.clients.models import Contact
    from app.collections.engine.run import tenant_today

    client, base, token, session, owner, tenant = admin_site
    customer = Client(
        full_name="Preview Client",
        short_name="PC",
        location="local",
        country="IN",
        currency="INR",
        payment_terms="net",
        payment_days=30,
    )
    session.add(customer)
    session.flush()
    session.add(
        Contact(
            client_id=customer.id, full_name="Asha", roles=["billing"], email="asha@example.com"
        )
    )
    today = tenant_today(tenant)
    for number, due in (("PRV-1", today - timedelta(days=3)), ("PRV-2", today + timedelta(days=9))):
        session.add(
            Invoice(
                client_id=customer.id,
                number=number,
                status="overdue",
                issue_date=due - timedelta(days=30),
                due_date=due,
                currency="INR",
                tax_regime="intra",
                subtotal=100,
                cgst=0,
                sgst=0,
                igst=0,
                other_tax=0,
                total=100,
                amount_in_words="Hundred",
            )
        )
    session.commit()
    page = client.get(f"{base}/")
    assert page.status_code == 200
    assert "not yet due: 1st notice on" in page.text
    assert "3 days after due" in page.text or "not a business day" in page.text
    ran = client.post(f"{base}/run", data={"csrf_token": token})
    assert ran.status_code == 303 and "/collections/runs/" in ran.headers["Location"]
    assert client.get(ran.headers["Location"]).status_code == 200
