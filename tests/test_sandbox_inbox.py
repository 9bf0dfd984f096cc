"""The sandbox inbox of `make run` shows every workspace's mail (reset links included), so it
needs a login there too; without a sandbox (production) it does not exist at all."""

from __future__ import annotations

import pytest

from tests.helpers import csrf_token_from


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
    for path in (
        "/sandbox/inbox",
        "/sandbox/inbox/1700000000000000000-0123abcd.eml",
        "/sandbox/inbox/1700000000000000000-0123abcd.eml/html",
    ):
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


def test_a_visitor_who_asked_for_a_link_sees_only_their_own_mail(client, sandbox):
    """Someone who just asked for a reset (or signed up) in `make run` can read the link sent
    to the address they typed, and nothing sent to anyone else."""
    (sandbox / "1700000000000000001-0123abce.eml").write_text(
        "From: Duebook <no-reply@duebook.local>\nTo: Someone Else <other@example.com>\n"
        "Subject: You are invited\nDate: Tue, 14 Nov 2023 22:13:21 +0000\n\nAnother link\n"
    )
    token = csrf_token_from(client.get("/password/forgot").text)
    client.post("/password/forgot", data={"csrf_token": token, "email": "Ravi@example.com"})
    inbox = client.get("/sandbox/inbox")
    assert inbox.status_code == 200
    assert "Reset your Duebook password" in inbox.text
    assert "You are invited" not in inbox.text
    assert client.get("/sandbox/inbox/1700000000000000000-0123abcd.eml").status_code == 200
    for path in (
        "/sandbox/inbox/1700000000000000001-0123abce.eml",
        "/sandbox/inbox/1700000000000000001-0123abce.eml/html",
    ):
        assert client.get(path).status_code == 404, path
