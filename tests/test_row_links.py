"""A list's row links, built once per page (app.core.links.RowLink), are exactly the links
url_for builds for each row: the same path, the same query string in the same order, the
same encoding."""

import pytest
from flask import url_for

from app.core.links import RowLink

ODD = "a b&c=d/é?%+#'"


@pytest.mark.parametrize(
    ("endpoint", "key", "values", "query"),
    [
        ("messages.detail", "message_id", {}, {}),
        ("aging.client_invoices", "client_id", {}, {"currency": "INR"}),
        ("aging.client_invoices", "client_id", {}, {"currency": "INR", "bucket": 3}),
        ("work.new_call", "client_id", {}, {"notice_id": None}),
        ("work.new_call", "client_id", {}, {"notice_id": 17}),
        ("clients.detail", "client_id", {}, {"tab": ODD}),
        # A filter link: the row's id is a query argument among the page's filters, which may
        # already hold one (the row's replaces it where it stood).
        ("messages.index", "client_id", {"q": ODD, "status": "failed"}, {}),
        ("messages.index", "client_id", {"client_id": "9", "channel": "email"}, {}),
        ("invoicing.index", "client_id", {"after": "123.45", "q": "INV/2026"}, {}),
    ],
)
def test_a_row_link_is_what_url_for_builds(app, endpoint, key, values, query):
    with app.test_request_context("/t/acme/"):
        link = RowLink(endpoint, key, tenant_slug="acme", **values)
        for row_id in (1, 42, 9_876_543_210):
            expected = url_for(endpoint, tenant_slug="acme", **{**values, key: row_id}, **query)
            assert link(row_id, **query) == expected


def test_a_key_the_url_does_not_carry_once_is_refused(app):
    with app.test_request_context("/t/acme/"), pytest.raises(ValueError, match="once"):
        RowLink("messages.detail", "message_id", tenant_slug="acme", after=918_273_645_546_372_819)
