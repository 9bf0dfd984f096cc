"""A tenant's own templates: cloned exactly from the library or started blank, edited as a draft
of the next version (published versions never change), reordered in one statement, published
only when the plan adds up, applied to projects that keep the version they were made from, and
archived (out of the lists, read-only) and restored."""

from __future__ import annotations

import re
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.library import services as library
from app.library.models import LibraryTemplate
from app.library.tenant import services
from app.library.tenant.models import TenantTemplate, TenantTemplateItem, TenantTemplateVersion
from app.projects.models import Milestone, Project
from tests.helpers import csrf_token_from, tenant_session

SOURCE_KEY = "construction/standard/medium/in-mh"


@pytest.fixture
def workspace(client, db_session, make_tenant, make_user, login):
    """An owner logged in to a fresh tenant, with the library loaded and one client."""
    library.load_library(db_session)
    db_session.commit()
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/clients/new").text)
    response = client.post(
        f"/t/{tenant.slug}/clients/new",
        data={
            "csrf_token": token,
            "full_name": "Kaveri Builders",
            "short_name": "Kaveri",
            "location": "local",
            "payment_terms": "net",
            "payment_days": "30",
        },
    )
    client_id = int(response.headers["Location"].rsplit("/", 1)[1])
    source = db_session.scalar(select(LibraryTemplate).where(LibraryTemplate.key == SOURCE_KEY))
    hx = {"HX-Request": "true", "X-CSRFToken": token}
    return SimpleNamespace(
        http=client,
        tenant=tenant,
        token=token,
        client_id=client_id,
        source=source,
        base=f"/t/{tenant.slug}/library/mine",
        db=db_session,
        hx=hx,
        owner=owner,
    )


def _session(ws):
    return tenant_session(ws.db, ws.tenant)


def _clone(ws) -> int:
    response = ws.http.post(f"{ws.base}/from-library/{ws.source.id}", data={"csrf_token": ws.token})
    assert response.status_code == 303
    return int(response.headers["Location"].rsplit("/", 1)[1])


def _items(session, template_id: int, number: int) -> list[TenantTemplateItem]:
    version = session.scalar(
        select(TenantTemplateVersion).where(
            TenantTemplateVersion.template_id == template_id, TenantTemplateVersion.number == number
        )
    )
    return sorted(version.items, key=lambda i: i.position)


def _snapshot(items) -> list[tuple]:
    return [
        (
            i.position,
            i.name,
            i.description,
            i.percentage,
            i.fixed_amount,
            i.due_rule,
            i.due_days,
            i.deliverables,
            i.is_retention,
        )
        for i in items
    ]


def _draft(ws, template_id: int) -> list[TenantTemplateItem]:
    assert (
        ws.http.post(f"{ws.base}/{template_id}/draft", data={"csrf_token": ws.token}).status_code
        == 303
    )
    session = _session(ws)
    template = session.get(TenantTemplate, template_id)
    return sorted(services.get_draft(session, template).items, key=lambda i: i.position)


def _item_form(ws, **changes) -> dict:
    form = {
        "csrf_token": ws.token,
        "name": "Handover",
        "share_kind": "percentage",
        "share": "5",
        "due_rule": "days_after_previous",
        "due_days": "30",
    }
    return form | changes


def _publish(ws, template_id: int, note: str = ""):
    return ws.http.post(
        f"{ws.base}/{template_id}/draft/publish", data={"csrf_token": ws.token, "note": note}
    )


def _project(ws, name: str, value: str = "10,00,001") -> str:
    response = ws.http.post(
        f"/t/{ws.tenant.slug}/projects/new",
        data={
            "csrf_token": ws.token,
            "client_id": ws.client_id,
            "name": name,
            "contract_value": value,
            "start_date": "2027-01-04",
        },
    )
    return response.headers["Location"]


# Cloning ------------------------------------------------------------------------------------


def test_clone_copies_the_library_template_exactly(workspace):
    ws = workspace
    template_id = _clone(ws)
    session = _session(ws)
    template = session.get(TenantTemplate, template_id)
    assert (template.source_key, template.source_version) == (SOURCE_KEY, ws.source.version)
    assert (template.name, template.industry, template.current_version) == (
        ws.source.name,
        "construction",
        1,
    )
    [version] = template.versions
    assert version.number == 1 and version.is_published
    copied = _items(session, template_id, 1)
    assert [
        (
            i.position,
            i.name,
            i.description,
            i.percentage,
            i.due_rule,
            i.due_days,
            i.deliverables,
            i.is_retention,
        )
        for i in copied
    ] == [
        (
            i.position,
            i.name,
            i.description,
            i.percentage,
            i.due_rule,
            i.due_days,
            i.deliverables,
            i.is_retention,
        )
        for i in ws.source.items
    ]
    assert all(i.fixed_amount is None for i in copied)
    listing = ws.http.get(ws.base + "/")
    assert ws.source.name in listing.text and 'aria-current="page">My templates' in listing.text
    page = ws.http.get(f"{ws.base}/{template_id}")
    assert (
        page.status_code == 200 and SOURCE_KEY in page.text and "Edit: make version 2" in page.text
    )
    assert ws.source.items[0].name in page.text
    library_page = ws.http.get(f"/t/{ws.tenant.slug}/library/{ws.source.id}").text
    assert "Clone into my workspace" in library_page


# Editing ------------------------------------------------------------------------------------


def test_editing_works_on_a_draft_and_never_changes_a_published_version(workspace):
    ws = workspace
    template_id = _clone(ws)
    published = _snapshot(_items(_session(ws), template_id, 1))
    draft_items = _draft(ws, template_id)
    assert _snapshot(draft_items) == published  # the draft starts as a copy
    first, second = draft_items[0], draft_items[1]

    edited = ws.http.post(
        f"{ws.base}/{template_id}/draft/items/{first.id}",
        headers=ws.hx,
        data=_item_form(
            ws,
            name="Mobilisation advance (revised)",
            share=f"{first.percentage}",
            due_rule="on_start",
            due_days="0",
            is_retention="",
        ),
    )
    assert edited.status_code == 200
    assert edited.headers["HX-Retarget"] == "#draft-body"
    assert "Mobilisation advance (revised)" in edited.text and "<html" not in edited.text
    removed = ws.http.post(f"{ws.base}/{template_id}/draft/items/{second.id}/delete", headers=ws.hx)
    assert removed.status_code == 200
    extra = _item_form(ws, name="Extra stage", share=f"{second.percentage}")
    added = ws.http.post(f"{ws.base}/{template_id}/draft/items", headers=ws.hx, data=extra)
    assert added.status_code == 200 and "Extra stage" in added.text

    session = _session(ws)
    assert _snapshot(_items(session, template_id, 1)) == published
    draft = _items(session, template_id, 2)
    assert draft[0].name == "Mobilisation advance (revised)"
    assert [i.position for i in draft] == list(range(1, len(draft) + 1))
    assert draft[-1].name == "Extra stage" and second.name not in [i.name for i in draft]
    # a second "edit" continues the same draft
    assert (
        ws.http.post(f"{ws.base}/{template_id}/draft", data={"csrf_token": ws.token}).status_code
        == 303
    )
    versions = session.scalars(
        select(TenantTemplateVersion.number).where(TenantTemplateVersion.template_id == template_id)
    ).all()
    assert sorted(versions) == [1, 2]
    # published items cannot be reached through the draft's routes
    first_published = _items(session, template_id, 1)[0]
    assert (
        ws.http.post(
            f"{ws.base}/{template_id}/draft/items/{first_published.id}", data=_item_form(ws)
        ).status_code
        == 404
    )


def test_a_bad_row_shows_its_errors_next_to_the_fields(workspace):
    ws = workspace
    template_id = _clone(ws)
    item = _draft(ws, template_id)[0]
    url = f"{ws.base}/{template_id}/draft/items/{item.id}"
    form = ws.http.get(url + "?edit=1", headers=ws.hx)
    assert form.status_code == 200 and f'id="item-{item.id}-name"' in form.text
    bad = ws.http.post(
        url, headers=ws.hx, data=_item_form(ws, name="", share="120", due_days="soon")
    )
    assert bad.status_code == 422
    for field in ("name", "share", "due_days"):
        assert f'id="item-{item.id}-{field}-error"' in bad.text
        assert f'aria-describedby="item-{item.id}-{field}-error"' in bad.text
    assert "at most 100" in bad.text
    fixed = ws.http.post(
        url, headers=ws.hx, data=_item_form(ws, share_kind="amount", share="10.005")
    )
    assert fixed.status_code == 422 and "two decimal places" in fixed.text
    new = ws.http.post(
        f"{ws.base}/{template_id}/draft/items", headers=ws.hx, data=_item_form(ws, share="0")
    )
    assert new.status_code == 422 and 'id="new-share-error"' in new.text
    session = _session(ws)
    assert session.get(TenantTemplateItem, item.id).name == item.name


def test_reorder_is_saved_in_one_statement_and_persists(workspace):
    ws = workspace
    template_id = _clone(ws)
    items = _draft(ws, template_id)
    ids = [i.id for i in items]
    url = f"{ws.base}/{template_id}/draft/order"
    reordered = ids[1:] + ids[:1]
    response = ws.http.post(url, headers=ws.hx, data={"item": reordered})
    assert response.status_code == 200
    assert response.text.index(f'id="item-{ids[0]}"') > response.text.index(f'id="item-{ids[1]}"')
    session = _session(ws)
    draft = _items(session, template_id, 2)
    assert [i.id for i in draft] == reordered and [i.position for i in draft] == list(
        range(1, len(ids) + 1)
    )
    # one item a place down, with the buttons
    assert (
        ws.http.post(
            url, data={"csrf_token": ws.token, "move": reordered[0], "direction": "down"}
        ).status_code
        == 303
    )
    expected = [reordered[1], reordered[0], *reordered[2:]]
    assert [i.id for i in _items(_session(ws), template_id, 2)] == expected
    # a stale or forged list changes nothing
    stale = ws.http.post(url, headers=ws.hx, data={"item": expected[:-1]})
    assert stale.status_code == 422 and "reload the page" in stale.text
    assert [i.id for i in _items(_session(ws), template_id, 2)] == expected
    # the published version kept its order
    assert [i.name for i in _items(_session(ws), template_id, 1)] == [i.name for i in items]


def test_publish_refuses_a_plan_that_does_not_add_up(workspace):
    ws = workspace
    template_id = _clone(ws)
    item = _draft(ws, template_id)[0]
    short = item.percentage - 1
    ws.http.post(
        f"{ws.base}/{template_id}/draft/items/{item.id}",
        headers=ws.hx,
        data=_item_form(ws, name=item.name, share=f"{short}"),
    )
    refused = _publish(ws, template_id)
    assert refused.status_code == 422
    assert "The percentages add up to 99%, not 100%" in refused.text
    assert 'id="publish-errors"' in refused.text
    session = _session(ws)
    assert session.get(TenantTemplate, template_id).current_version == 1
    assert not services.get_draft(session, session.get(TenantTemplate, template_id)).is_published

    ws.http.post(
        f"{ws.base}/{template_id}/draft/items",
        headers=ws.hx,
        data=_item_form(ws, name="Top-up", share="1"),
    )
    published = _publish(ws, template_id, note="Advance one point lower")
    assert published.status_code == 303
    session = _session(ws)
    template = session.get(TenantTemplate, template_id)
    assert template.current_version == 2 and services.get_draft(session, template) is None
    page = ws.http.get(f"{ws.base}/{template_id}").text
    assert "Advance one point lower" in page and "Top-up" in page
    old = ws.http.get(f"{ws.base}/{template_id}/versions/1").text
    assert "Top-up" not in old and "the newest is" in old


def test_check_plan_with_fixed_amounts():
    def item(pct=None, fixed=None):
        return SimpleNamespace(
            percentage=None if pct is None else Decimal(pct),
            fixed_amount=None if fixed is None else Decimal(fixed),
        )

    assert services.check_plan([item("60"), item("40")]).problem is None
    assert services.check_plan([item(fixed="50000"), item("100")]).problem is None
    assert services.check_plan([item(fixed="50000")]).problem is None
    assert (
        "of what the fixed amounts leave"
        in services.check_plan([item(fixed="50000"), item("90")]).problem
    )
    assert services.check_plan([]).problem == "Add at least one milestone."
    # fixed first, the percentages share the rest to the paisa
    shares = [item(fixed="10000"), item("33.3333"), item("33.3333"), item("33.3334")]
    amounts = library.plan_amounts(Decimal("100000.01"), shares, "INR")
    assert amounts[0] == Decimal("10000") and sum(amounts) == Decimal("100000.01")
    with pytest.raises(
        library.PlanShapeError,
        match="add up to ₹5,000.00, more than the contract value ₹1,000.00",
    ):
        library.plan_amounts(Decimal("1000"), [item(fixed="5000"), item("100")], "INR")
    with pytest.raises(library.PlanShapeError, match=r"not the contract value A\$1,000\.00"):
        library.plan_amounts(Decimal("1000"), [item(fixed="500")], "AUD")


# Applying -----------------------------------------------------------------------------------


def _milestones(session, project: Project) -> list[Milestone]:
    return list(
        session.scalars(
            select(Milestone).where(Milestone.project_id == project.id).order_by(Milestone.position)
        )
    )


def test_a_version_applied_to_a_project_adds_up_and_the_project_keeps_it(workspace):
    ws = workspace
    template_id = _clone(ws)
    session = _session(ws)
    v1 = session.scalar(
        select(TenantTemplateVersion).where(TenantTemplateVersion.template_id == template_id)
    )
    v1_names = [i.name for i in _items(session, template_id, 1)]
    url = _project(ws, "Tower C", "10,00,001")
    plan_page = ws.http.get(url + "/plan").text
    assert f'<option value="{v1.id}">' in _own_template_picker(plan_page)
    assert (
        ws.http.post(
            url + "/template", data={"csrf_token": ws.token, "version_id": v1.id}
        ).status_code
        == 303
    )
    session = _session(ws)
    project = session.scalars(select(Project).where(Project.name == "Tower C")).one()
    milestones = _milestones(session, project)
    assert [m.name for m in milestones] == v1_names
    assert sum(m.amount for m in milestones) == Decimal("1000001.00")
    assert project.tenant_template_version_id == v1.id and project.template_key is None
    before = [(m.name, m.amount, m.due_date) for m in milestones]

    # version 2: a fixed mobilisation fee, the first stage renamed, the last two swapped
    items = _draft(ws, template_id)
    renamed = _item_form(ws, name="Renamed stage", share=f"{items[0].percentage}")
    ws.http.post(f"{ws.base}/{template_id}/draft/items/{items[0].id}", headers=ws.hx, data=renamed)
    ws.http.post(
        f"{ws.base}/{template_id}/draft/items",
        headers=ws.hx,
        data=_item_form(ws, name="Mobilisation fee", share_kind="amount", share="25,000.50"),
    )
    ids = [i.id for i in _items(_session(ws), template_id, 2)]
    ws.http.post(
        f"{ws.base}/{template_id}/draft/order", headers=ws.hx, data={"item": [ids[-1], *ids[:-1]]}
    )
    assert _publish(ws, template_id).status_code == 303

    session = _session(ws)
    project = session.get(Project, project.id)
    assert project.tenant_template_version_id == v1.id
    assert [(m.name, m.amount, m.due_date) for m in _milestones(session, project)] == before
    assert f"{ws.source.name}, version 1" in ws.http.get(url + "/plan").text

    v2 = session.scalar(
        select(TenantTemplateVersion).where(
            TenantTemplateVersion.template_id == template_id, TenantTemplateVersion.number == 2
        )
    )
    other = _project(ws, "Tower D", "7,77,777.77")
    assert (
        ws.http.post(
            other + "/template", data={"csrf_token": ws.token, "version_id": v2.id}
        ).status_code
        == 303
    )
    session = _session(ws)
    tower_d = session.scalars(select(Project).where(Project.name == "Tower D")).one()
    milestones = _milestones(session, tower_d)
    assert tower_d.tenant_template_version_id == v2.id
    assert [m.name for m in milestones[:2]] == ["Mobilisation fee", "Renamed stage"]
    assert milestones[0].amount == Decimal("25000.50")
    assert sum(m.amount for m in milestones) == Decimal("777777.77")
    # the older version can still be chosen and gives its own plan
    assert (
        ws.http.post(
            other + "/template", data={"csrf_token": ws.token, "version_id": v1.id}
        ).status_code
        == 303
    )
    session = _session(ws)
    assert [m.name for m in _milestones(session, tower_d)] == v1_names


def test_a_draft_cannot_be_applied(workspace):
    ws = workspace
    template_id = _clone(ws)
    _draft(ws, template_id)
    session = _session(ws)
    draft = services.get_draft(session, session.get(TenantTemplate, template_id))
    url = _project(ws, "Tower E")
    ws.http.post(url + "/template", data={"csrf_token": ws.token, "version_id": draft.id})
    session = _session(ws)
    project = session.scalars(select(Project).where(Project.name == "Tower E")).one()
    assert project.tenant_template_version_id is None and not _milestones(session, project)


# Archiving ----------------------------------------------------------------------------------


def _project_named(session, name: str) -> Project:
    return session.scalars(select(Project).where(Project.name == name)).one()


def test_an_archived_template_leaves_the_lists_and_its_projects_keep_their_version(workspace):
    ws = workspace
    template_id = _clone(ws)
    session = _session(ws)
    v1 = session.scalar(
        select(TenantTemplateVersion).where(TenantTemplateVersion.template_id == template_id)
    )
    url = _project(ws, "Tower F")
    assert (
        ws.http.post(
            url + "/template", data={"csrf_token": ws.token, "version_id": v1.id}
        ).status_code
        == 303
    )
    session = _session(ws)
    plan = [
        (m.name, m.amount, m.due_date)
        for m in _milestones(session, _project_named(session, "Tower F"))
    ]
    draft_items = _draft(ws, template_id)  # a draft in progress waits for the restore
    page = ws.http.get(f"{ws.base}/{template_id}").text
    assert f'action="{ws.base}/{template_id}/archive" class="row-form confirm"' in page

    archived = ws.http.post(f"{ws.base}/{template_id}/archive", data={"csrf_token": ws.token})
    assert archived.status_code == 303 and archived.headers["Location"].endswith(ws.base + "/")
    session = _session(ws)
    template = session.get(TenantTemplate, template_id)
    assert template.deleted_at is not None
    entry = session.scalars(
        select(AuditEntry).where(
            AuditEntry.entity == "tenant_templates",
            AuditEntry.entity_id == str(template_id),
            AuditEntry.action == "update",
        )
    ).one()
    assert entry.changes["deleted_at"][0] is None and entry.actor_user_id == ws.owner.id
    assert "is archived" in ws.http.get(ws.base + "/").text  # the flash message
    listing = ws.http.get(ws.base + "/").text
    in_use, archived_part = listing.split('data-testid="archived-templates"')
    assert ws.source.name not in in_use and "No templates of your own yet" in in_use
    assert "Archived (1)" in archived_part and f"{ws.base}/{template_id}/restore" in archived_part

    # not offered for a new plan, and refused if posted anyway
    plan_page = ws.http.get(url + "/plan").text
    assert f'<option value="{v1.id}">' not in _own_template_picker(plan_page)
    other = _project(ws, "Tower G")
    ws.http.post(other + "/template", data={"csrf_token": ws.token, "version_id": v1.id})
    session = _session(ws)
    assert not _milestones(session, _project_named(session, "Tower G"))
    # the project made from it keeps its plan, and still shows (and links to) its version
    tower_f = _project_named(session, "Tower F")
    assert tower_f.tenant_template_version_id == v1.id
    assert [(m.name, m.amount, m.due_date) for m in _milestones(session, tower_f)] == plan
    assert f"{ws.source.name}, version 1" in plan_page
    assert f'href="{ws.base}/{template_id}/versions/1"' in plan_page
    version_page = ws.http.get(f"{ws.base}/{template_id}/versions/1")
    assert version_page.status_code == 200 and 'data-testid="archived-note"' in version_page.text
    assert ws.source.items[0].name in version_page.text
    assert "Continue editing" not in version_page.text and "/archive" not in version_page.text

    # its draft cannot be edited, with or without htmx, and says why
    editor = ws.http.get(f"{ws.base}/{template_id}/draft")
    assert editor.status_code == 409 and f"{ws.source.name} is archived" in editor.text
    added = ws.http.post(
        f"{ws.base}/{template_id}/draft/items",
        headers=ws.hx,
        data=_item_form(ws, name="Sneaked in"),
    )
    assert added.status_code == 409 and "restore it to edit it" in added.headers["HX-Trigger"]
    for path in ("/draft", "/draft/publish", "/draft/discard", "/details"):
        refused = ws.http.post(
            f"{ws.base}/{template_id}{path}", data={"csrf_token": ws.token, "name": "Renamed"}
        )
        assert refused.status_code == 409, path
    session = _session(ws)
    template = session.get(TenantTemplate, template_id)
    draft = services.get_draft(session, template)
    assert template.name == ws.source.name and template.current_version == 1
    assert _snapshot(draft.items) == _snapshot(draft_items)

    restored = ws.http.post(f"{ws.base}/{template_id}/restore", data={"csrf_token": ws.token})
    assert restored.status_code == 303
    assert restored.headers["Location"].endswith(f"{ws.base}/{template_id}")
    assert _session(ws).get(TenantTemplate, template_id).deleted_at is None
    listing = ws.http.get(ws.base + "/").text
    assert ws.source.name in listing and 'data-testid="archived-templates"' not in listing
    assert f'<option value="{v1.id}">' in _own_template_picker(ws.http.get(url + "/plan").text)
    assert ws.http.get(f"{ws.base}/{template_id}/draft").status_code == 200


# Starting blank -----------------------------------------------------------------------------


def test_a_template_started_blank_is_filled_in_the_editor_and_published_when_it_adds_up(
    workspace,
):
    ws = workspace
    form = ws.http.get(ws.base + "/new")
    assert form.status_code == 200 and '<option value="construction"' in form.text
    assert f'href="{ws.base}/new"' in ws.http.get(ws.base + "/").text
    bad = ws.http.post(
        ws.base + "/new",
        data={
            "csrf_token": ws.token,
            "name": " x ",
            "industry": "astrology",
            "description": "d" * 2001,
        },
    )
    assert bad.status_code == 422
    for field in ("name", "industry", "description"):
        assert f'id="{field}-error"' in bad.text and f'aria-describedby="{field}-error"' in bad.text
    assert "2 to 191 characters" in bad.text
    assert not _session(ws).scalars(select(TenantTemplate)).all()

    created = ws.http.post(
        ws.base + "/new",
        data={
            "csrf_token": ws.token,
            "name": "  Fit-out,   3 stages ",
            "industry": "construction",
            "description": "Interiors for offices",
        },
    )
    assert created.status_code == 303
    found = re.fullmatch(rf".*{ws.base}/(\d+)/draft", created.headers["Location"])
    assert found, created.headers["Location"]
    template_id = int(found[1])
    session = _session(ws)
    template = session.get(TenantTemplate, template_id)
    assert (template.name, template.industry, template.description, template.source_key) == (
        "Fit-out, 3 stages",
        "construction",
        "Interiors for offices",
        None,
    )
    [draft] = template.versions
    assert (draft.number, draft.is_published, draft.items) == (1, False, [])

    editor = ws.http.get(created.headers["Location"])
    assert editor.status_code == 200 and "Editing version 1 of Fit-out, 3 stages" in editor.text
    assert "No milestones yet" in editor.text
    detail = ws.http.get(f"{ws.base}/{template_id}")
    assert detail.status_code == 200 and 'data-testid="not-published"' in detail.text
    assert "Continue editing version 1 (draft)" in detail.text
    assert "not published yet" in ws.http.get(ws.base + "/").text
    url = _project(ws, "Tower H")
    assert "Fit-out, 3 stages" not in ws.http.get(url + "/plan").text

    # the existing check refuses an empty plan
    empty = _publish(ws, template_id)
    assert empty.status_code == 422 and "Add at least one milestone." in empty.text
    assert not services.get_draft(_session(ws), template).is_published

    for name, share in (("Design", "40"), ("Handover", "60")):
        added = ws.http.post(
            f"{ws.base}/{template_id}/draft/items",
            headers=ws.hx,
            data=_item_form(ws, name=name, share=share),
        )
        assert added.status_code == 200
    assert _publish(ws, template_id, note="First plan").status_code == 303
    session = _session(ws)
    template = session.get(TenantTemplate, template_id)
    [version] = template.versions
    assert version.is_published and template.current_version == 1
    assert [i.name for i in version.items] == ["Design", "Handover"]
    assert f'<option value="{version.id}">' in _own_template_picker(ws.http.get(url + "/plan").text)
    page = ws.http.get(f"{ws.base}/{template_id}").text
    assert "Handover" in page and "Edit: make version 2" in page and "started blank" in page


# Permissions --------------------------------------------------------------------------------


def test_a_viewer_reads_templates_but_cannot_edit_them(
    workspace, app, make_user, add_member, login
):
    ws = workspace
    template_id = _clone(ws)
    viewer = make_user()
    add_member(ws.tenant, viewer, role="viewer")
    other = app.test_client()
    login(other, viewer)
    page = other.get(f"{ws.base}/{template_id}")
    assert page.status_code == 200 and "Edit: make version" not in page.text
    assert "/archive" not in page.text
    assert other.get(f"{ws.base}/{template_id}/versions/1").status_code == 200
    assert other.get(ws.base + "/").status_code == 200
    token = csrf_token_from(page.text)
    assert (
        other.post(f"{ws.base}/{template_id}/draft", data={"csrf_token": token}).status_code == 403
    )
    assert (
        other.post(f"{ws.base}/from-library/{ws.source.id}", data={"csrf_token": token}).status_code
        == 403
    )
    assert f'href="{ws.base}/new"' not in other.get(ws.base + "/").text
    assert other.get(ws.base + "/new").status_code == 403
    assert (
        other.post(ws.base + "/new", data={"csrf_token": token, "name": "Mine"}).status_code == 403
    )
    for action in ("archive", "restore"):
        assert (
            other.post(f"{ws.base}/{template_id}/{action}", data={"csrf_token": token}).status_code
            == 403
        )
    assert _session(ws).get(TenantTemplate, template_id).deleted_at is None
    assert (
        "Clone into my workspace"
        not in other.get(f"/t/{ws.tenant.slug}/library/{ws.source.id}").text
    )


def _own_template_picker(plan_page: str) -> str:
    """The project plan page's picker of the tenant's own template versions ("" when it has
    none): the library's picker beside it has options whose ids may be the same numbers."""
    start = plan_page.find('name="version_id"')
    return "" if start < 0 else plan_page[start : plan_page.index("</select>", start)]
