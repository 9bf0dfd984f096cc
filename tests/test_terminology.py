"""Terminology: an admin's words for the product's nouns ("Customer" for "Client") are what the
navigation, the client pages' titles, headings and buttons say in that workspace only; what
users named their records is never rewritten; a bad word is refused beside its field and
nothing is saved."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from flask import g
from sqlalchemy import select

from app.core.terminology import Vocabulary, forget_vocabulary, term, worded
from tenants.models import Tenant
from tests.helpers import csrf_token_from, tenant_session

NAV = re.compile(r'<nav class="sidenav".*?</nav>', re.S)
H1 = re.compile(r"<h1>\s*(.*?)\s*</h1>", re.S)
TITLE = re.compile(r"<title>\s*(.*?)\s*</title>", re.S)


def _nav_labels(page: str) -> list[str]:
    [nav] = NAV.findall(page)
    return re.findall(r"<a [^>]*>([^<]+)</a>", nav) + re.findall(r'"nav-heading">([^<]+)<', nav)


@pytest.fixture
def workspaces(client, make_tenant, make_user, login):
    owner = make_user()
    customers, clients = make_tenant(owner=owner), make_tenant(owner=owner)
    login(client, owner)
    return owner, customers, clients


def _save(client, tenant, **words):
    url = f"/t/{tenant.slug}/settings/terminology"
    token = csrf_token_from(client.get(url).text)
    return client.post(url, data={"csrf_token": token, **words})


def test_the_workspace_words_replace_client_where_a_newcomer_reads_it(
    client, db_session, make_client, workspaces
):
    owner, customers, clients = workspaces
    saved = _save(client, customers, client_singular="Customer", client_plural=" Customers ")
    assert saved.status_code == 303
    session = tenant_session(db_session, customers, owner.id)
    named_client = make_client(session, name="Client 1 Pvt Ltd", short_name="Client")
    session.commit()
    base = f"/t/{customers.slug}"

    listing = client.get(f"{base}/clients/").text
    labels = _nav_labels(listing)
    assert "Customers" in labels and "Clients" not in labels
    assert H1.search(listing).group(1) == "Customers"
    assert "+ New customer</a>" in listing

    new = client.get(f"{base}/clients/new").text
    assert H1.search(new).group(1) == "New customer"

    page = client.get(f"{base}/clients/{named_client.id}").text
    assert TITLE.search(page).group(1).startswith(f"{named_client.short_name} · Customer")
    assert "← Customers</a>" in page
    # The record's own name, typed by a user, stays as written.
    assert named_client.full_name.startswith("Client 1 Pvt Ltd")
    assert H1.search(page).group(1) == named_client.full_name

    # The other workspace, under the same login, still says Client.
    other = client.get(f"/t/{clients.slug}/clients/").text
    assert "Clients" in _nav_labels(other) and "Customers" not in _nav_labels(other)
    assert H1.search(other).group(1) == "Clients"
    assert "+ New client</a>" in other


def test_the_page_shows_the_words_in_use_and_blank_means_ours(client, db_session, workspaces):
    owner, customers, _ = workspaces
    _save(client, customers, milestone_singular="Stage", milestone_plural="Stages")
    page = client.get(f"/t/{customers.slug}/settings/terminology").text
    assert 'value="Stage"' in page and 'value="Client"' in page

    saved = db_session.scalar(select(Tenant.terminology).where(Tenant.id == customers.id))
    assert saved == {"milestone": ["Stage", "Stages"]}
    _save(client, customers, milestone_singular="", milestone_plural="")
    assert db_session.scalar(select(Tenant.terminology).where(Tenant.id == customers.id)) == {}


@pytest.mark.parametrize(
    ("field", "word", "error"),
    [
        ("client_singular", "C", "Use 2 to 30 characters."),
        ("client_plural", "x" * 31, "Use 2 to 30 characters."),
        ("notice_singular", "Reminder1", "Use letters and spaces only."),
        ("project_plural", "<b>Jobs</b>", "Use letters and spaces only."),
    ],
)
def test_a_bad_word_is_refused_beside_its_field_and_nothing_is_saved(
    client, db_session, workspaces, field, word, error
):
    owner, customers, _ = workspaces
    words = {"client_singular": "Customer", "client_plural": "Customers", field: word}
    answer = _save(client, customers, **words)
    assert answer.status_code == 422
    assert f'<p class="error" id="{field}-error">{error}</p>' in answer.text
    assert answer.text.count('class="error"') == 1
    assert db_session.scalar(select(Tenant.terminology).where(Tenant.id == customers.id)) == {}
    assert H1.search(client.get(f"/t/{customers.slug}/clients/").text).group(1) == "Clients"


def test_only_admins_change_the_words(client, make_user, add_member, login, workspaces):
    _, customers, _ = workspaces
    viewer = make_user()
    add_member(customers, viewer, "viewer")
    client.post("/logout")
    login(client, viewer)
    assert client.get(f"/t/{customers.slug}/settings/terminology").status_code == 403


def test_words_read_in_lower_case_mid_sentence_except_acronyms():
    words = Vocabulary(
        (
            ("client", "Customer", "Customers"),
            ("project", "GST Job", "GST Jobs"),
            ("milestone", "milestone", "milestones"),
            ("notice", "Reminder", "Reminders"),
        )
    )
    assert (words.word("client"), words.title("clients")) == ("customer", "Customers")
    assert (words.word("projects"), words.title("project")) == ("GST Jobs", "GST Job")
    assert words.forms()["Clients"] == "Customers" and words.forms()["client"] == "customer"


def test_stage_reminder_and_job_head_their_pages(client, workspaces):
    _, customers, _ = workspaces
    _save(
        client,
        customers,
        project_singular="Job",
        project_plural="Jobs",
        milestone_singular="Stage",
        milestone_plural="Stages",
        notice_singular="Reminder",
        notice_plural="Reminders",
    )
    base = f"/t/{customers.slug}"
    assert H1.search(client.get(f"{base}/projects/").text).group(1) == "Jobs"
    assert H1.search(client.get(f"{base}/notices/").text).group(1) == "Reminders"
    labels = _nav_labels(client.get(f"{base}/").text)
    assert {"Jobs", "Reminders"} <= set(labels) and not {"Projects", "Notices"} & set(labels)


ENGAGEMENTS = Vocabulary(
    (
        ("client", "Customer", "Customers"),
        ("project", "Engagement", "Engagements"),
        ("milestone", "Stage", "Stages"),
        ("notice", "MSME Reminder", "MSME Reminders"),
    )
)


def test_the_article_follows_the_workspaces_word():
    assert ENGAGEMENTS.word("a client") == "a customer"
    assert ENGAGEMENTS.word("a project") == "an engagement"
    assert ENGAGEMENTS.title("a project") == "An engagement"
    assert ENGAGEMENTS.word("a notice") == "an MSME Reminder"  # said "em-es-em-ee"
    assert Vocabulary((("client", "Unit", "Units"),)).word("a client") == "a unit"
    assert Vocabulary((("client", "Hour", "Hours"),)).word("a client") == "an hour"


def test_placeholders_and_duebooks_own_phrases_in_the_workspaces_words():
    said = ENGAGEMENTS.worded("No {clients} for {a project}; {A milestone} is {x} {}.")
    assert said == "No customers for an engagement; A stage is {x} {}."
    # Duebook's own phrases: nouns as whole words with their article; names stay as they are.
    assert ENGAGEMENTS.reworded("A project moved; see client.created and client_id.") == (
        "An engagement moved; see client.created and client_id."
    )
    assert ENGAGEMENTS.reworded("collection notice invoices") == (
        "collection MSME Reminder invoices"
    )


def test_a_refused_form_and_a_toast_say_the_workspaces_words(
    client, db_session, make_client, workspaces
):
    owner, customers, _ = workspaces
    _save(
        client,
        customers,
        client_singular="Customer",
        client_plural="Customers",
        project_singular="Engagement",
        project_plural="Engagements",
        notice_singular="Reminder",
        notice_plural="Reminders",
    )
    session = tenant_session(db_session, customers, owner.id)
    customer = make_client(session, name="Tapti Pvt Ltd", short_name="Tapti")
    session.commit()
    base = f"/t/{customers.slug}"
    token = csrf_token_from(client.get(f"{base}/projects/new?client_id={customer.id}").text)
    refused = client.post(
        f"{base}/projects/new",
        data={"csrf_token": token, "client_id": customer.id, "name": "T"},
    )
    assert refused.status_code == 422
    assert "Name the engagement (2 to 191 characters)." in refused.text
    archived = client.post(
        f"{base}/clients/{customer.id}/archive", data={"csrf_token": token}, follow_redirects=True
    )
    assert f"{customer.short_name} is archived; its open reminders are closed." in archived.text


def test_each_workspace_gets_its_words_from_the_same_compiled_template(
    client, db_session, workspaces
):
    """A template's `'Choose {a client}…'|worded` is filled per request, never once for all
    (Jinja would fold a plain filter of a literal when it compiles the template)."""
    _, customers, clients = workspaces
    _save(client, customers, client_singular="Customer", client_plural="Customers")
    for tenant, said in ((clients, "Choose a client…"), (customers, "Choose a customer…")):
        assert said in client.get(f"/t/{tenant.slug}/clients/pick").text
    assert "Choose a client…" in client.get(f"/t/{clients.slug}/clients/pick").text


def test_words_changed_during_a_request_show_after_forget_and_each_workspace_keeps_its_own(app):
    """Each vocabulary remembers the words it worked out (a page asks ~150 times): the words
    saved in a request show once it forgets them, and another workspace's never leak in."""
    with app.test_request_context():
        g.tenant = SimpleNamespace(id=1, terminology={"client": ["Customer", "Customers"]})
        assert (term("a client"), worded("All {Clients}")) == ("a customer", "All Customers")
        g.tenant.terminology = {"client": ["Patron", "Patrons"]}
        assert term("client") == "customer"  # kept for the request...
        forget_vocabulary()
        assert (term("a client"), worded("All {Clients}")) == ("a patron", "All Patrons")
        g.tenant = SimpleNamespace(id=2, terminology={})
        assert (term("a client"), worded("All {Clients}")) == ("a client", "All Clients")
    with app.test_request_context():
        g.tenant = SimpleNamespace(id=1, terminology={"client": ["Customer", "Customers"]})
        assert worded("All {Clients}") == "All Customers"
