"""Settings → Workflow (issue 22's workflow defaults): each setting saved from the page,
audited, and honoured where it matters: new projects take the billing defaults, every notice
waits for a person's approval when the workspace asks it (at the run and again at sending),
clients that name no policy are chased by the chosen default ladder; wrong input answered
with an error beside its field and nothing saved; admins only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.collections.engine import services as engine
from app.collections.models import CollectionNotice
from app.collections.notices import services as notices
from app.settings import workflow
from app.settings.services import workspace_settings
from tenants.binding import bound_tenant_id
from tenants.models import Membership, Tenant, User
from tests.helpers import csrf_token_from, tenant_session
from tests.test_collections_run import DUE, ledger, run_on  # noqa: F401  (fixture)
from tests.test_notices import make_books
from tests.test_payments import books  # noqa: F401  (the ledger's fixture)


def gentle_policy(session):
    """A second ladder: one e-mail a week after the due date."""
    policy = engine.save_policy(session, {"name": "Gentle", "description": "One reminder"})
    engine.save_level(
        session,
        policy,
        {
            "name": "Friendly reminder",
            "trigger": "after_due",
            "trigger_days": "7",
            "channels": ["email"],
            "template_purpose": "notice_1",
            "min_gap_days": "0",
        },
    )
    return policy


@pytest.fixture
def admin_page(client, make_tenant, make_user, login, db_session):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    session = tenant_session(db_session, tenant)
    gentle = gentle_policy(session)
    session.commit()
    url = f"/t/{tenant.slug}/settings/workflow"
    return tenant, session, gentle, url


def test_the_page_saves_each_setting_and_the_audit_log_names_the_changes(
    client, admin_page, db_session
):
    tenant, session, gentle, url = admin_page
    page = client.get(url)
    assert page.status_code == 200
    assert "Existing projects keep what they have" in page.text  # says which records change
    assert f'<option value="{gentle.id}">Gentle</option>' in page.text
    assert f'href="/t/{tenant.slug}/collections/policies"' in page.text
    standard_id = engine.default_policy(session).id
    saved = client.post(
        url,
        data={
            "csrf_token": csrf_token_from(page.text),
            "approval_required": "1",
            "auto_invoice": "issue",
            "notices_need_approval": "1",
            "default_policy": str(gentle.id),
        },
    )
    assert saved.status_code == 303
    session.expire_all()
    stored = workspace_settings(session, tenant.id)
    assert (stored.approval_required, stored.auto_invoice, stored.notices_need_approval) == (
        True,
        "issue",
        True,
    )
    assert engine.default_policy(session).id == gentle.id
    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    settings_change = next(e for e in entries if e.entity == "workspace_settings")
    assert settings_change.changes["notices_need_approval"] == [False, True]
    assert settings_change.changes["auto_invoice"] == ["off", "issue"]
    defaults = {
        int(e.entity_id): e.changes["is_default"]
        for e in entries
        if e.entity == "collection_policies" and "is_default" in e.changes
    }
    assert defaults == {standard_id: [True, False], gentle.id: [False, True]}
    audit_log = client.get(f"/t/{tenant.slug}/audit/")
    assert audit_log.status_code == 200 and "workspace setting" in audit_log.text
    shown = client.get(url).text  # the page shows what is stored
    assert 'name="notices_need_approval" value="1" checked' in shown
    assert f'<option value="{gentle.id}" selected>Gentle (default)</option>' in shown


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("auto_invoice", "always", "Choose one of the options."),
        ("default_policy", "999999", "Choose one of your collection policies."),
        ("default_policy", "", "Choose one of your collection policies."),
        ("default_policy", "gentle", "Choose one of your collection policies."),
    ],
)
def test_wrong_input_is_named_beside_its_field_and_nothing_is_saved(
    client, admin_page, field, value, message
):
    tenant, session, gentle, url = admin_page
    form = {
        "csrf_token": csrf_token_from(client.get(url).text),
        "auto_invoice": "draft",
        "notices_need_approval": "1",
        "default_policy": str(gentle.id),
        field: value,
    }
    refused = client.post(url, data=form)
    assert refused.status_code == 422
    assert f'id="{field}-error"' in refused.text and message in refused.text
    assert 'name="notices_need_approval" value="1" checked' in refused.text  # what was typed
    session.expire_all()
    stored = workspace_settings(session, tenant.id)
    assert (stored.auto_invoice, stored.notices_need_approval) == ("off", False)
    assert engine.default_policy(session).name == "Standard"


@pytest.mark.parametrize("role", ["finance", "collector", "viewer"])
def test_only_admins_change_the_workflow(
    client, make_tenant, make_user, add_member, login, db_session, role
):
    tenant = make_tenant()
    member = make_user()
    add_member(tenant, member, role)
    login(client, member)
    url = f"/t/{tenant.slug}/settings/workflow"
    assert client.get(url).status_code == 403
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/").text)
    form = {"csrf_token": token, "notices_need_approval": "1", "auto_invoice": "issue"}
    assert client.post(url, data=form).status_code == 403
    assert client.post(f"{url}/dashboard", data={"csrf_token": token}).status_code == 403
    assert workspace_settings(db_session, tenant.id).notices_need_approval is False


def test_the_moved_billing_defaults_still_reach_new_projects(
    client, admin_page, make_client, db_session
):
    tenant, session, gentle, url = admin_page
    made = make_client(session)
    session.commit()
    form = {
        "csrf_token": csrf_token_from(client.get(url).text),
        "approval_required": "1",
        "auto_invoice": "issue",
        "default_policy": str(gentle.id),
    }
    assert client.post(url, data=form).status_code == 303
    page = client.get(f"/t/{tenant.slug}/projects/new?client_id={made.id}").text
    assert 'name="requires_approval" value="1" checked' in page
    assert '<option value="issue" selected>' in page
    # ... and the main settings page no longer carries them, so saving it keeps them.
    assert 'name="auto_invoice"' not in client.get(f"/t/{tenant.slug}/settings/").text


def test_under_the_workspace_approval_every_notice_of_the_run_waits(
    ledger,  # noqa: F811
    app,
    login,
):
    session, client, invoice, _ = ledger
    invoice()
    engine.settings_of(session).auto_send = True  # the level itself needs no approval
    workspace = workspace_settings(session, bound_tenant_id(session))
    workspace.notices_need_approval = True
    session.flush()
    run_on(session, DUE + timedelta(days=3))
    notice = session.scalars(select(CollectionNotice)).one()
    assert (notice.status, notice.approved_at) == ("draft", None)
    session.commit()
    tenant_id = bound_tenant_id(session)
    # Memberships are shared by every workspace: this one's owner, not the first found.
    owner = session.scalar(
        select(Membership.user_id).where(
            Membership.tenant_id == tenant_id, Membership.role == "owner"
        )
    )
    slug = session.get(Tenant, tenant_id).slug
    with app.test_client() as browser:  # the Collections page says why nothing goes out
        login(browser, session.get(User, owner))
        page = browser.get(f"/t/{slug}/collections/")
    assert "but every notice waits for a person's approval" in page.text


@pytest.fixture
def notice_books(app, db_session, make_tenant, make_user, storage_root, request):
    return make_books(app, db_session, make_tenant, make_user, request)


def test_an_unsent_notice_the_run_approved_waits_once_the_workspace_asks_approval(
    app, notice_books
):
    made = notice_books
    session = made.session
    by_the_run = made.notice([made.invoice("1000.00")], status="approved")
    by_a_person = made.notice([made.invoice("2000.00")], channel="whatsapp")
    notices.approve(session, by_a_person, made.owner.id)
    workspace_settings(session, made.tenant.id).notices_need_approval = True
    session.flush()
    with app.app_context():
        outcome = notices.send_notices(session, made.tenant, [by_the_run.id, by_a_person.id])
    assert outcome[by_the_run.id] == "waits for approval"
    assert (by_the_run.status, by_the_run.approved_at) == ("draft", None)
    assert outcome[by_a_person.id] != "waits for approval"
    assert by_a_person.status != "draft"


def test_new_clients_are_chased_by_the_chosen_default_ladder(ledger):  # noqa: F811
    session, client, invoice, new_reachable_client = ledger
    gentle = gentle_policy(session)
    standard = engine.default_policy(session)
    client.collection_policy_id = standard.id  # this one named its policy: it keeps it
    assert (
        workflow.save_workflow(
            session, bound_tenant_id(session), {"default_policy": str(gentle.id)}
        )
        == {}
    )
    newcomer = new_reachable_client()
    assert newcomer.collection_policy_id is None  # it follows whatever the default is
    theirs, ours = invoice(newcomer), invoice(client)
    assert engine.policy_for(session, theirs, newcomer).id == gentle.id
    assert engine.policy_for(session, ours, client).id == standard.id
    run_on(session, DUE + timedelta(days=7))
    by_client = {
        n.client_id: (n.policy_id, n.level_name) for n in session.scalars(select(CollectionNotice))
    }
    assert by_client[newcomer.id] == (gentle.id, "Friendly reminder")
    assert by_client[client.id][0] == standard.id
