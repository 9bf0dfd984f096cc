"""The audit log records every change to a tenant's records by itself: who, when, old → new."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from app.audit import services as audit
from app.audit import wording
from app.audit.models import AuditEntry
from tenants.models import Membership
from tests.helpers import csrf_token_from, tenant_session


def test_role_change_is_logged_with_actor_and_old_and_new_value(
    client, db_session, make_tenant, make_user, add_member, login
):
    owner, member = make_user(full_name="Meera Owner"), make_user()
    tenant = make_tenant(owner=owner)
    membership = add_member(tenant, member, role="viewer")
    login(client, owner)
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/team/").text)
    client.post(
        f"/t/{tenant.slug}/team/members/{membership.id}/role",
        data={"role": "finance", "csrf_token": token},
    )

    session = tenant_session(db_session, tenant)
    [entry] = session.scalars(
        select(AuditEntry).where(AuditEntry.entity == "memberships", AuditEntry.action == "update")
    ).all()
    assert entry.actor_user_id == owner.id
    assert entry.entity_id == str(membership.id)
    assert entry.changes == {"role": ["viewer", "finance"]}
    assert entry.actor_ip == "127.0.0.1"

    page = client.get(f"/t/{tenant.slug}/audit/?action=update")
    assert page.status_code == 200
    assert "Meera Owner" in page.text and "viewer" in page.text and "finance" in page.text
    other = client.get(f"/t/{tenant.slug}/audit/?action=delete")
    assert "No changes match" in other.text


def test_inserts_and_deletes_of_tenant_records_are_logged(db_session, make_tenant, make_user):
    tenant = make_tenant()
    actor = make_user()
    session = tenant_session(db_session, tenant, actor_id=actor.id)
    member = Membership(user_id=actor.id, tenant_id=tenant.id, role="collector")
    session.add(member)
    session.flush()
    session.delete(member)
    session.flush()
    actions = [
        (e.action, e.changes.get("role"))
        for e in session.scalars(
            select(AuditEntry)
            .where(AuditEntry.entity == "memberships", AuditEntry.entity_id == str(member.id))
            .order_by(AuditEntry.id)
        )
    ]
    assert actions == [("insert", [None, "collector"]), ("delete", ["collector", None])]
    # The log's filter offers each kind of record in it once, in order.
    kinds = audit.audited_entities(session)
    assert "memberships" in kinds and kinds == sorted(set(kinds))
    assert kinds == list(session.scalars(select(AuditEntry.entity).distinct().order_by("entity")))
    session.close()


def test_another_tenants_records_never_land_in_this_log(db_session, make_tenant, make_user):
    tenant_a, tenant_b = make_tenant(), make_tenant()
    session = tenant_session(db_session, tenant_a)
    session.add(Membership(user_id=make_user().id, tenant_id=tenant_b.id, role="viewer"))
    session.flush()
    assert session.scalars(select(AuditEntry).where(AuditEntry.action == "insert")).all() == []
    session.close()


def test_secrets_are_not_copied_into_the_log(db_session, make_tenant, make_user):
    from app.audit.services import _shown

    assert _shown("password_hash", "$argon2id$...") == "(hidden)"
    assert _shown("token_hash", "abc") == "(hidden)"
    assert _shown("role", "admin") == "admin"


def test_audit_page_pages_through_older_entries(client, db_session, make_tenant, make_user, login):
    from app.audit.services import PAGE_SIZE

    owner = make_user()
    tenant = make_tenant(owner=owner)
    session = tenant_session(db_session, tenant, actor_id=owner.id)
    session.connection().exec_driver_sql(
        f"INSERT INTO {tenant.schema}.audit_log (occurred_at, action, entity, entity_id, changes) "
        f"SELECT now() - g * interval '1 second', 'update', 'memberships', g::text, '{{}}' "
        f"FROM generate_series(1, {PAGE_SIZE + 5}) g"
    )
    session.commit()
    session.close()
    login(client, owner)
    first = client.get(f"/t/{tenant.slug}/audit/")
    assert first.text.count('class="audit-action"') == PAGE_SIZE  # one page
    older = first.text.split("Older entries")[0].rsplit('href="', 1)[1].split('"')[0]
    second = client.get(older.replace("&amp;", "&"))
    assert second.text.count('class="audit-action"') == 5
    assert "Older entries" not in second.text


# In words (issue 16, finding 10) ---------------------------------------------------------------


def _client_with_terms(client, make_tenant, make_user, login):
    owner = make_user(full_name="Asha Rao")
    tenant = make_tenant(owner=owner)
    login(client, owner)
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/clients/new").text)
    created = client.post(
        f"/t/{tenant.slug}/clients/new",
        data={
            "csrf_token": token,
            "full_name": "Kaveri Builders Pvt Ltd",
            "short_name": "Kaveri",
            "status": "prospect",
            "location": "local",
            "country": "IN",
            "payment_terms": "net",
            "payment_days": "30",
            "currency": "INR",
            "preferred_language": "en",
            "preferred_channel": "email",
        },
    )
    return tenant, created.headers["Location"], token


def test_the_audit_page_says_a_change_in_words_with_the_raw_diff_a_click_away(
    client, db_session, make_tenant, make_user, login
):
    tenant, url, token = _client_with_terms(client, make_tenant, make_user, login)
    terms = {"csrf_token": token, "payment_terms": "net", "payment_days": "45"}
    assert client.post(url + "/sections/terms", data=terms).status_code in (200, 303)

    page = client.get(f"/t/{tenant.slug}/audit/?action=update").text
    assert "Asha Rao changed the payment terms of client Kaveri from Net 30 to Net 45" in page
    # The recorded row itself, behind a disclosure.
    raw = page.split('class="audit-raw"', 1)[1].split("</details>", 1)[0]
    assert "payment_days" in raw and "<del>30</del>" in raw and "<ins>45</ins>" in raw


def test_one_requests_changes_are_one_entry_with_values_as_people_read_them(
    client, db_session, make_tenant, make_user, login
):
    tenant, url, token = _client_with_terms(client, make_tenant, make_user, login)
    identity = {
        "csrf_token": token,
        "full_name": "Kaveri Infra Projects Private Limited, formerly Kaveri Builders Pvt Ltd",
        "short_name": "Kaveri",
        "status": "active",
        "external_id": "",
    }
    assert client.post(url + "/sections/identity", data=identity).status_code in (200, 303)

    page = client.get(f"/t/{tenant.slug}/audit/?action=update").text
    said = page.split("Asha Rao updated client Kaveri: ", 1)[1].split("<", 1)[0]
    assert "full name Kaveri Builders Pvt Ltd → Kaveri Infra" in said
    assert "status Prospect → Active" in said  # the choice's label, not its value
    assert "…" in said and "formerly Kaveri Builders Pvt Ltd" not in said  # cut in the sentence
    assert "formerly Kaveri Builders Pvt Ltd" in page  # whole in the raw diff
    everything = client.get(f"/t/{tenant.slug}/audit/").text
    assert everything.count('class="audit-action"') == 2  # the creation, and the update


def test_money_dates_people_and_records_are_said_as_people_read_them(
    app, db_session, make_tenant, make_user, make_client
):
    asha, ravi = make_user(full_name="Asha Rao"), make_user(full_name="Ravi Kumar")
    tenant = make_tenant(owner=asha)
    session = tenant_session(db_session, tenant)
    kaveri = make_client(session, short_name="Kaveri")
    moment = datetime(2026, 9, 1, 6, 30, tzinfo=UTC)
    invoice = AuditEntry(
        id=2,
        occurred_at=moment,
        actor_user_id=asha.id,
        action="update",
        entity="invoices",
        entity_id="999999",
        changes={
            "number": ["INV/26-27/00007", "INV/26-27/00007"],
            "currency": ["INR", "INR"],
            "written_off_amount": ["0.00", "100000.00"],
            "due_date": ["2026-09-01", "2026-10-15"],
            "client_id": [None, kaveri.id],
            "token_hash": ["(hidden)", "(hidden)"],
        },
    )
    client_entry = AuditEntry(
        id=1,
        occurred_at=moment,
        actor_user_id=asha.id,
        action="update",
        entity="clients",
        entity_id=str(kaveri.id),
        changes={"engagement_manager_user_id": [None, ravi.id], "notes": ["", "x" * 500]},
    )
    people = {asha.id: "Asha Rao", ravi.id: "Ravi Kumar"}
    with app.app_context():
        [action] = wording.describe(session, [invoice, client_entry], people, "IN", "Asia/Kolkata")
    sentence = action.sentence
    assert sentence.startswith(f"Asha Rao updated client {kaveri.short_name}: ")  # done first
    assert "engagement manager (none) → Ravi Kumar" in sentence
    assert "notes (none) → " + "x" * 59 + "…" in sentence
    assert "invoice INV/26-27/00007: " in sentence
    assert "written off amount ₹0.00 → ₹1,00,000.00" in sentence
    assert "due date 01 Sep 2026 → 15 Oct 2026" in sentence
    assert f"client (none) → {kaveri.short_name}" in sentence
    assert "token hash (hidden) → (hidden)" in sentence  # changed, and not shown
    assert "currency" not in sentence  # recorded beside the amounts, not changed


def test_an_action_that_wrote_many_records_is_counted_and_file_keys_are_not_spelled_out(
    app, db_session, make_tenant, make_user
):
    asha = make_user(full_name="Asha Rao")
    tenant = make_tenant(owner=asha)
    session = tenant_session(db_session, tenant)
    moment = datetime(2026, 9, 1, 6, 30, tzinfo=UTC)
    added = [
        AuditEntry(
            id=10 + n,
            occurred_at=moment,
            actor_user_id=asha.id,
            action="insert",
            entity="invoices",
            entity_id=str(900 + n),
            changes={"number": [None, f"OB-{n}"]},
        )
        for n in range(6)
    ]
    stored = AuditEntry(
        id=1,
        occurred_at=datetime(2026, 9, 1, 7, 0, tzinfo=UTC),
        actor_user_id=None,
        action="update",
        entity="invoices",
        entity_id="900",
        changes={"pdf_key": [None, "tenant_7/invoices/900/OB-0.due-100.00.ab12.pdf"]},
    )
    with app.app_context():
        pdf, seeded = wording.describe(
            session, [stored, *reversed(added)], {asha.id: "Asha Rao"}, "IN", "Asia/Kolkata"
        )
    # One import of six invoices is one line of counts, not six clauses (the details list all).
    assert seeded.sentence == "Asha Rao made 6 changes: added 6 invoices"
    assert len(seeded.parts) == 6
    # Where a file is stored is bookkeeping: said as a file, the path only in the details.
    assert pdf.sentence == "System changed the pdf of invoice #900 from (none) to a stored file"
    assert "tenant_7/" not in pdf.sentence
