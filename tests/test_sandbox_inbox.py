"""The sandbox inbox of `make run` shows every workspace's mail (reset links included), so it
needs a login there too; without a sandbox (production) it does not exist at all."""

from __future__ import annotations

import pytest


@pytest.fixture
def sandbox(app, tmp_path, monkeypatch):
    maildir = tmp_path / "sandbox-mail"
    maildir.mkdir()
    (maildir / "1700000000000000000-0123abcd.eml").write_text(
        "From: Duebook <no-reply@duebook.local>\nTo: ravi@example.com\n"
        "Subject: Reset your Duebook password\nDate: Tue, 14 Nov 2023 22:13:20 +0000\n\nA link\n"
    )
    monkeypatch.setitem(app.config, "SANDBOX_MAILDIR", str(maildir))
    return maildir


def test_the_inbox_asks_a_visitor_to_log_in(client, sandbox):
    for path in ("/sandbox/inbox", "/sandbox/inbox/1700000000000000000-0123abcd.eml",
                 "/sandbox/inbox/1700000000000000000-0123abcd.eml/html"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"]


def test_a_logged_in_user_reads_the_inbox(client, sandbox, make_user, login):
    login(client, make_user())
    page = client.get("/sandbox/inbox")
    assert page.status_code == 200 and "Reset your Duebook password" in page.text


def test_without_a_sandbox_the_inbox_does_not_exist_logged_in_or_not(client, make_user, login):
    assert client.get("/sandbox/inbox").status_code == 404
    login(client, make_user())
    assert client.get("/sandbox/inbox").status_code == 404
