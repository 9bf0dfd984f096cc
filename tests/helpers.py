"""Small helpers shared by the tests."""

from __future__ import annotations

import itertools
import os

PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{next(_counter)}"


def csrf_token_from(html: str) -> str:
    marker = 'name="csrf_token" type="hidden" value="'
    start = html.find(marker)
    if start == -1:
        marker = 'name="csrf_token" value="'
        start = html.find(marker)
    assert start != -1, "no CSRF token in the page"
    start += len(marker)
    return html[start : html.index('"', start)]


def mail_link(message, path_prefix: str) -> str:
    body = message.get_body(preferencelist=("plain",)).get_content()
    for word in body.split():
        if path_prefix in word:
            return word[word.index(path_prefix) :]
    raise AssertionError(f"no link with {path_prefix} in:\n{body}")
