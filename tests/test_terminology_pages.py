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

from sqlalchemy import update

from app.clients.models import Client, Contact
from app.invoicing.models import Invoice
from app.projects.models import Milestone, Project
from tests.helpers import tenant_session
from tests.test_tenancy import NON_RECORD_ARGS, _urls_for, tenant_a_records  # noqa: F401

WORDS = {
    "client": ("Customer", "Customers"),
    "project": ("Engagement", "Engagements"),
    "milestone": ("Stage", "Stages"),
    "notice": ("Reminder", "Reminders"),
}
# A default word as a whole word; "client.created" (an event's name, for integrators) and
# "client_id" (a column's) are identifiers, not wording.
DEFAULT_WORD = re.compile(
    r"(?<![\w.])(clients?|projects?|milestones?|notices?)(?![\w-]|\.\w)", re.IGNORECASE
)
WRONG_ARTICLE = re.compile(r"\ba (engagement|engagements)\b", re.IGNORECASE)

# Files (exports, PDFs) are not pages: their columns are read by other programs.
FILE = re.compile(r"\.(\w+|<[^>]+>)$|/download$|/file$")
# Pages allowed to name a default word, each with why.
ALLOWED_PAGES = {
    # The terminology page names Duebook's own words beside the workspace's, as its labels.
    "/t/<tenant_slug>/settings/terminology",
}
SHOWN_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt", "hx-confirm", "data-confirm")


class _VisibleText(HTMLParser):
    """The text a user reads: text outside <script> and <style>, plus the attributes a
    browser shows (tooltips, placeholders, confirmation questions, button values)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "template"):
            self._hidden += 1
        shown = dict(attrs)
        self.parts += [shown[name] or "" for name in SHOWN_ATTRIBUTES if name in shown]
        if tag == "input" and shown.get("type") in ("submit", "button"):
            self.parts.append(shown.get("value") or "")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def visible_text(page: str) -> str:
    parser = _VisibleText()
    parser.feed(page)
    return " ".join(" ".join(parser.parts).split())


def default_words_in(page: str) -> list[str]:
    """Each default word (or wrong article) with the words around it, to find it in the page."""
    text = visible_text(page)
    found = [m for pattern in (DEFAULT_WORD, WRONG_ARTICLE) for m in pattern.finditer(text)]
    return [text[max(m.start() - 40, 0) : m.end() + 40] for m in found]


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
    # The credit note's invoice was issued (a credit note's page shows the invoice's date).
    session.execute(
        update(Invoice)
        .where(Invoice.id == records["invoice_id"])
        .values(number="INV/26-27/00001", issue_date=date(2027, 1, 15), status="issued")
    )
    session.commit()
    session.close()


def test_no_page_says_the_default_words_once_a_workspace_chose_its_own(
    app,
    client,
    db_session,
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
        return {arg: records.get(arg, NON_RECORD_ARGS.get(arg)) for arg in args}

    read, offending = set(), {}
    for method, url, rule in _urls_for(app, own_records):
        if method != "GET" or FILE.search(rule):
            continue
        response = client.get(url)
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        read.add(rule)
        if rule in ALLOWED_PAGES:
            continue
        if found := default_words_in(response.text):
            offending[f"{rule} ({url})"] = found
    assert not offending, "\n".join(f"{page}: {found}" for page, found in offending.items())
    # The walk reached the pages that matter (a broken record would make them 404 unread).
    for page in (
        "/t/<tenant_slug>/clients/<int:client_id>",
        "/t/<tenant_slug>/projects/<int:project_id>",
        "/t/<tenant_slug>/notices/<int:notice_id>",
        "/t/<tenant_slug>/",
    ):
        assert page in read, f"{page} was not read"


def _owner_of(db_session, tenant):
    from sqlalchemy import select

    from tenants.models import Membership

    return db_session.scalar(
        select(Membership).where(Membership.tenant_id == tenant.id, Membership.role == "owner")
    ).user
