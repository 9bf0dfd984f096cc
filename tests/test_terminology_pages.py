"""Terminology across the product: with a workspace calling its clients "customers", its
projects "engagements", its milestones "stages" and its notices "reminders", no page an admin
can open says client, project, milestone or notice, and "an engagement" keeps its article.

The walk reuses the isolation walk's route enumeration and records (tests/test_tenancy.py), so a
new page is walked as soon as it exists; the records are renamed first so that what users
typed holds none of the default words, and the page's visible text (text, titles, placeholders,
labels for screen readers, confirmation questions) is what is read."""

from __future__ import annotations

import re
from datetime import date
from html.parser import HTMLParser

import pytest
from sqlalchemy import String, cast, select, update

from app.clients.models import Client, Contact
from app.clients.views import TABS as CLIENT_TABS
from app.collections.models import CollectionLevel, CollectionNotice
from app.custom_fields.models import CustomField
from app.custom_fields.services import ENTITY_LABELS
from app.invoicing.models import Invoice
from app.library.models import LibraryTemplate
from app.library.services import load_library
from app.message_templates.models import MessageTemplate
from app.projects.models import Milestone, Project
from app.sync.models import SyncConflict
from tests.helpers import tenant_session
from tests.test_tenancy import (  # noqa: F401 (tenant_a_records: a fixture)
    NON_RECORD_ARGS,
    _draft_invoice_of,
    _urls_for,
    tenant_a_records,
)

WORDS = {
    "client": ("Customer", "Customers"),
    "project": ("Engagement", "Engagements"),
    "milestone": ("Stage", "Stages"),
    "notice": ("Reminder", "Reminders"),
}
# A default word as a whole word; "client.created" (an event's name, for integrators) and
# "client_id" (a column's) are identifiers, not wording.
DEFAULT_WORD = re.compile(
    r"(?<![\w.])(clients?|projects?|milestones?|notices?)(?![\w-]|[.:]\w)", re.IGNORECASE
)
# "a engagement" mid-sentence (a label "Engagement" after a name ending in "A" is not one).
WRONG_ARTICLE = re.compile(r"\b[aA] engagements?\b")

# Files (exports, PDFs) are not pages: their columns are read by other programs.
FILE = re.compile(r"\.(\w+|<[^>]+>)$|/(download|file|pdf)$")
# Pages allowed to name a default word, each with why.
ALLOWED_PAGES = {
    # The terminology page names Duebook's own words beside the workspace's, as its labels.
    "/t/<tenant_slug>/settings/terminology",
}
# Routes that answer no page of their own here, each with why; any other route that does not
# answer a page fails the walk, so that no page is left unread without a reason.
NOT_PAGES = {
    # Redirects: to the import's page once it has run, to the first open step, to the sync.
    "/t/<tenant_slug>/clients/imports/<int:import_id>/progress": "redirects to the import",
    "/t/<tenant_slug>/opening-balances/<int:opening_import_id>/progress": "redirects",
    "/t/<tenant_slug>/setup/": "redirects to the first step (read as setup/<step_name>)",
    "/t/<tenant_slug>/sync/<int:connection_id>/organisation": "redirects (a matched book)",
    # Read with the arguments they need (see _pages_behind_arguments).
    "/t/<tenant_slug>/projects/new": "needs ?client_id",
    "/t/<tenant_slug>/payments/new": "needs ?client_id or ?invoice_id",
    "/t/<tenant_slug>/invoices/<int:invoice_id>/edit": "the walk's invoice is issued",
    # Not pages: a message's own HTML body (what its recipient got), an uploaded logo, the
    # library's shared templates (none in the test database), a job's progress by its id,
    # OAuth providers' return addresses, and Tally's import file (XML).
    "/t/<tenant_slug>/messages/<int:message_id>/html": "the message's body, as sent",
    "/t/<tenant_slug>/settings/logo": "an image",
    "/t/<tenant_slug>/integrations/<int:connection_id>/tests/<job_id>": "a job's progress",
    "/t/<tenant_slug>/sync/<provider>/finish": "an OAuth return address",
    "/t/<tenant_slug>/calendar/<provider>/finish": "an OAuth return address",
    "/t/<tenant_slug>/sync/tally/import-file": "an XML file for Tally",
}
# Words that are another thing's name on one page, not the workspace's clients.
ALLOWED_PHRASES = {
    # OAuth 2's own terms for an API credential and its grant.
    "/t/<tenant_slug>/settings/api-keys/": re.compile(r"OAuth clients?('s)?|client credentials"),
}
SHOWN_ATTRIBUTES = (
    "title",
    "placeholder",
    "aria-label",
    "alt",
    "hx-confirm",
    "data-confirm",
    "data-label",  # a table cell's heading on a phone (CSS shows it)
)


# Not read: scripts, and <code>: names as programs read them (an API scope `clients:read`, an
# event `client.created`, a template variable `client.name`).
HIDDEN = {"script", "style", "template", "code"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class _VisibleText(HTMLParser):
    """The text a user reads: text outside <script> and <style>, plus the attributes a
    browser shows (tooltips, placeholders, confirmation questions, button values). Content
    marked translate="no" is data shown as stored (the audit log's recorded values), which no
    wording rewrites, and is left out."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._open: list[tuple[str, bool]] = []  # open elements: (tag, hides its content)

    def handle_starttag(self, tag, attrs):
        shown = dict(attrs)
        if tag not in VOID:
            hides = tag in HIDDEN or shown.get("translate") == "no"
            self._open.append((tag, hides))
            self._hidden += hides
        if self._hidden:
            return
        self.parts += [shown[name] or "" for name in SHOWN_ATTRIBUTES if name in shown]
        if tag == "input" and shown.get("type") in ("submit", "button"):
            self.parts.append(shown.get("value") or "")

    def handle_endtag(self, tag):
        # Up to the element this tag closes: elements left open inside it (<li>, <p>) end too.
        if any(open_tag == tag for open_tag, _ in self._open):
            while True:
                open_tag, hides = self._open.pop()
                self._hidden -= hides
                if open_tag == tag:
                    break

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def visible_text(page: str) -> str:
    parser = _VisibleText()
    parser.feed(page)
    return " ".join(" ".join(parser.parts).split())


def default_words_in(page: str, allowed: re.Pattern | None = None) -> list[str]:
    """Each default word (or wrong article) with the words around it, to find it in the page."""
    text = visible_text(page)
    if allowed is not None:
        text = allowed.sub("…", text)
    found = [m for pattern in (DEFAULT_WORD, WRONG_ARTICLE) for m in pattern.finditer(text)]
    return [text[max(m.start() - 40, 0) : m.end() + 40] for m in found]


def _rename_seeded_levels(session):
    """What a workspace is seeded with is its own to rename, as its records are: the default
    policy's levels ("1st notice") and, below, the message templates' names and texts."""
    session.execute(
        update(CollectionLevel).values(name="Level " + cast(CollectionLevel.position, String))
    )


def _rename_records_of(db_session, records):
    """The walk's records are named "Client of A" and the like: names users give, which the
    words never rewrite; renamed here so that the page's own wording is all that is read."""
    session = tenant_session(db_session, records["tenant"])
    session.execute(
        update(Client)
        .where(Client.id == records["client_id"])
        .values(full_name="Acme of A", short_name="Acme")
    )
    session.execute(update(Contact).values(full_name="Asha of A"))
    session.execute(update(Project).values(name="Build of A"))
    session.execute(update(Milestone).values(name="Step of A"))
    session.execute(update(SyncConflict).values(label="Acme of A"))
    _rename_seeded_levels(session)
    session.execute(update(CollectionNotice).values(level_name="Level 1"))
    # A field of every kind of record, offered in lists: each record page's own-fields section
    # and each list's filter, order and column controls are read with something in them.
    session.add_all(
        CustomField(entity=entity, key="ref_no", label="Ref no", field_type="text", in_lists=True)
        for entity in ENTITY_LABELS
        if entity != "clients"  # the isolation walk's records have one already
    )
    session.execute(
        update(MessageTemplate).values(
            name="Text " + cast(MessageTemplate.id, String),
            subject="Hello",
            body="Hello {{ contact.name }}",
        )
    )
    # The credit note's invoice was issued (a credit note's page shows the invoice's date).
    session.execute(
        update(Invoice)
        .where(Invoice.id == records["invoice_id"])
        .values(number="INV/26-27/00001", issue_date=date(2027, 1, 15), status="issued")
    )
    session.commit()
    session.close()


@pytest.fixture
def library(db_session):
    """The shipped template library, whatever earlier tests left: its names ("Standard, medium
    project") are Duebook's words and must read in the workspace's."""
    load_library(db_session)
    db_session.commit()
    # A template's page by the id the library got in this test's transaction: the walk's
    # usual id (1) is another's once an earlier test loaded the library (ids are not rolled
    # back with it).
    return db_session.scalar(
        select(LibraryTemplate.id).where(LibraryTemplate.retired.is_(False)).order_by("id")
    )


def test_no_page_says_the_default_words_once_a_workspace_chose_its_own(
    app,
    client,
    db_session,
    library,
    tenant_a_records,  # noqa: F811 (the isolation walk's fixture, imported above)
    login,
):
    records = tenant_a_records
    tenant = records["tenant"]
    tenant.terminology = {noun: list(words) for noun, words in WORDS.items()}
    db_session.commit()
    _rename_records_of(db_session, records)
    login(client, _owner_of(db_session, tenant))

    def own_records(args):
        if "tenant_slug" not in args:
            return None
        known = {**NON_RECORD_ARGS, "template_id": library}
        return {arg: records.get(arg, known.get(arg)) for arg in args}

    pages = [
        (url, rule)
        for method, url, rule in _urls_for(app, own_records)
        if method == "GET" and not FILE.search(rule)
    ]
    pages += _pages_behind_arguments(db_session, records)
    read, unread, offending = set(), set(), {}
    for url, rule in pages:
        response = client.get(url)
        if response.status_code != 200 or response.mimetype != "text/html":
            unread.add(rule)
            continue
        read.add(rule)
        if rule in ALLOWED_PAGES:
            continue
        if found := default_words_in(response.text, ALLOWED_PHRASES.get(rule)):
            offending[f"{rule} ({url})"] = found
    assert not offending, "\n".join(f"{page}: {found}" for page, found in offending.items())
    assert unread == set(NOT_PAGES), f"not read without a reason: {unread - set(NOT_PAGES)}"
    # The walk reached the pages that matter (a broken record would make them 404 unread).
    for page in (
        "/t/<tenant_slug>/clients/<int:client_id>",
        "/t/<tenant_slug>/projects/new?client_id",
        "/t/<tenant_slug>/invoices/<draft invoice>/edit",
        "/t/<tenant_slug>/clients/<id>?tab=projects",
        "/t/<tenant_slug>/projects/<int:project_id>",
        "/t/<tenant_slug>/notices/<int:notice_id>",
        "/t/<tenant_slug>/",
    ):
        assert page in read, f"{page} was not read"


def _pages_behind_arguments(db_session, records) -> list[tuple[str, str]]:
    """Pages the route walk reaches only with a query argument or another record: each tab of
    the client page, the new project and payment forms, and a draft invoice's edit form (the
    walk's invoice is issued)."""
    base = f"/t/{records['tenant'].slug}"
    client_id = records["client_id"]
    session = tenant_session(db_session, records["tenant"])
    draft = _draft_invoice_of(session, client_id).id
    session.close()
    pages = [
        (f"{base}/clients/{client_id}?tab={tab}", f"/t/<tenant_slug>/clients/<id>?tab={tab}")
        for tab in CLIENT_TABS
    ]
    return pages + [
        (f"{base}/projects/new?client_id={client_id}", "/t/<tenant_slug>/projects/new?client_id"),
        (f"{base}/payments/new?client_id={client_id}", "/t/<tenant_slug>/payments/new?client_id"),
        (
            f"{base}/payments/new?invoice_id={records['invoice_id']}",
            "/t/<tenant_slug>/payments/new?invoice_id",
        ),
        (f"{base}/invoices/{draft}/edit", "/t/<tenant_slug>/invoices/<draft invoice>/edit"),
    ]


def _owner_of(db_session, tenant):
    from sqlalchemy import select

    from tenants.models import Membership

    return db_session.scalar(
        select(Membership).where(Membership.tenant_id == tenant.id, Membership.role == "owner")
    ).user


def test_an_empty_workspace_says_its_own_words_in_every_empty_state(
    app, client, db_session, library, make_tenant, make_user, login
):
    """The lists before anything is in them ("No engagements yet…"), the first-day dashboard
    and the setup steps: every page that needs no record, in a new workspace."""
    owner = make_user()
    tenant = make_tenant(owner=owner)
    tenant.terminology = {noun: list(words) for noun, words in WORDS.items()}
    db_session.commit()
    session = tenant_session(db_session, tenant)
    _rename_seeded_levels(session)
    session.commit()
    session.close()
    login(client, owner)

    def workspace_only(args):
        return {"tenant_slug": tenant.slug} if args == {"tenant_slug"} else None

    offending, read = {}, set()
    for method, url, rule in _urls_for(app, workspace_only):
        if method != "GET" or FILE.search(rule) or rule in ALLOWED_PAGES:
            continue
        response = client.get(url)
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        read.add(rule)
        if found := default_words_in(response.text, ALLOWED_PHRASES.get(rule)):
            offending[rule] = found
    assert not offending, "\n".join(f"{page}: {found}" for page, found in offending.items())
    assert {"/t/<tenant_slug>/projects/", "/t/<tenant_slug>/notices/"} <= read
