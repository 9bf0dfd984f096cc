"""The side navigation: each role sees the links of what it may open, the page the user is on
is marked, and the navigation rendered once for a role is never another workspace's."""

from __future__ import annotations

import re

import pytest

NAV = re.compile(r'<nav class="sidenav".*?</nav>', re.S)
LINK = re.compile(r'<a href="([^"]+)"\s*(aria-current="page")?>([^<]+)</a>')


def _links(page_text: str) -> list[tuple[str, bool, str]]:
    [nav] = NAV.findall(page_text)
    return [(href, bool(current), label) for href, current, label in LINK.findall(nav)]


@pytest.fixture
def workspaces(client, make_tenant, make_user, add_member, login):
    owner = make_user()
    first, second = make_tenant(owner=owner), make_tenant(owner=owner)
    viewer = make_user()
    add_member(first, viewer, "viewer")
    return {"owner": owner, "viewer": viewer, "first": first, "second": second}


def test_each_role_sees_only_what_it_may_open(client, login, workspaces):
    login(client, workspaces["viewer"])
    labels = [label for _, _, label in _links(client.get(f"/t/{workspaces['first'].slug}/").text)]
    assert "Invoices" in labels and "Notices" in labels
    for hidden in ("Settings", "Team", "Audit log", "My work", "Opening balances", "Campaigns"):
        assert hidden not in labels
    assert "Settings &amp; team" not in client.get(f"/t/{workspaces['first'].slug}/").text

    client.post("/logout")
    login(client, workspaces["owner"])
    labels = [label for _, _, label in _links(client.get(f"/t/{workspaces['first'].slug}/").text)]
    for shown in ("Settings", "Team", "Audit log", "My work", "Opening balances", "Campaigns"):
        assert shown in labels


def test_the_current_page_is_marked_and_links_stay_in_their_workspace(client, login, workspaces):
    login(client, workspaces["owner"])
    for tenant in (workspaces["first"], workspaces["second"]):
        for path, label in (
            ("/", "Dashboard"),
            ("/invoices/", "Invoices"),
            ("/clients/?prospects=1", "Prospects"),
            ("/clients/", "Clients"),
            ("/clients/industries", "Industries"),
            ("/message-templates/", "Message templates"),
            ("/campaigns/", "Campaigns"),
        ):
            links = _links(client.get(f"/t/{tenant.slug}{path}").text)
            assert [name for _, current, name in links if current] == [label]
            assert all(href.startswith(f"/t/{tenant.slug}/") for href, _, _ in links)
