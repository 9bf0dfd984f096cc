"""Driving the accounting sync as a person does: "Connect" on the sync page, "Allow access" on
the provider's consent page (a stand-in's), back through the one callback address, the review
of the matches, and the runs done by the workers."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from sqlalchemy import select

from app.sync.models import SyncRun
from tests.helpers import csrf_token_from


class _Form(HTMLParser):
    """The consent page's form: its action, its fields, the first choice of each radio group
    and the "allow" button."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attrs.get("action") or ""
        elif tag == "input" and attrs.get("name"):
            kind = attrs.get("type", "text")
            if kind == "radio":
                if attrs["name"] not in self.fields or "checked" in attrs:
                    self.fields[attrs["name"]] = attrs.get("value", "")
            elif kind != "submit":
                self.fields[attrs["name"]] = attrs.get("value", "")
        elif tag == "button" and attrs.get("name") and attrs.get("value") == "allow":
            self.fields[attrs["name"]] = "allow"


def allow_access(consent_url: str) -> str:
    """A person on the provider's consent page presses "Allow access"; where it sends them."""
    with httpx.Client() as browser:
        page = browser.get(consent_url)
        assert page.status_code == 200 and "Allow access" in page.text, page.text[:300]
        form = _Form()
        form.feed(page.text)
        answer = browser.post(urljoin(consent_url, form.action or ""), data=form.fields)
    assert answer.status_code in (302, 303), answer.text[:300]
    return answer.headers["location"]


def send(client, tenant, url: str, data: dict | None = None, **options):
    """Submit a form of the workspace's pages, with the session's CSRF token as a page has it."""
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/sync/").text)
    return client.post(url, data={"csrf_token": token, **(data or {})}, **options)


def connect_through_pages(client, tenant, provider: str):
    """Connect `provider` from the sync page; the page the person lands on after consent."""
    answer = send(client, tenant, f"/t/{tenant.slug}/sync/{provider}/connect")
    assert answer.status_code == 303, answer.text[:300]
    back = allow_access(answer.headers["Location"])
    parts = urlsplit(back)
    assert parts.path == f"/sync/oauth/{provider}/callback"
    callback = client.get(f"{parts.path}?{parts.query}")
    assert callback.status_code == 303
    return client.get(callback.headers["Location"], follow_redirects=False)


def query_of(url: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlsplit(url).query).items()}


def runs(session) -> list[SyncRun]:
    session.expire_all()
    return list(session.scalars(select(SyncRun).order_by(SyncRun.id)))
