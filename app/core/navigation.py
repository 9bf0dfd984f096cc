"""The workspace's side navigation: links grouped by area, each shown to the roles that hold
the permissions it needs, one of them marked as the page the user is on.

What a role sees never changes between requests, and neither do the links' addresses within a
workspace, so the navigation is rendered once per workspace, role and current link and then
reused: building its ~30 addresses and links was about a millisecond of every page view."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from flask import Flask, g, render_template, request, url_for
from markupsafe import Markup

from app.core.terminology import Vocabulary, vocabulary
from tenants.roles import role_grants


@dataclass(frozen=True)
class NavLink:
    endpoint: str
    label: str  # "{Clients}": the workspace's word for it (app.core.terminology)
    needs: tuple[str, ...]  # every one of these permissions
    current: Callable[[], bool]  # is the request on this link's page?
    params: tuple[tuple[str, object], ...] = ()

    def url(self) -> str:
        return url_for(self.endpoint, **dict(self.params))


def _blueprint(*names: str) -> Callable[[], bool]:
    return lambda: request.blueprint in names


def _endpoint(*names: str) -> Callable[[], bool]:
    return lambda: request.endpoint in names


def _on_settings() -> bool:
    """The settings page itself: its regional, terminology and workflow pages have links of
    their own."""
    return request.blueprint == "settings" and not request.endpoint.endswith(
        (
            "regional_settings",
            "terminology_settings",
            "save_terminology",
            "workflow_settings",
            "save_workflow",
            "save_dashboard_widgets",
        )
    )


def _on_client_list(prospects: bool) -> bool:
    if request.endpoint == "clients.industries":
        return False
    if prospects:
        return request.blueprint == "clients" and request.args.get("prospects") == "1"
    return (
        request.blueprint in ("clients", "client_files", "client_documents")
        and request.args.get("prospects") != "1"
    )


def _on_campaigns(campaigns: bool) -> bool:
    """Campaigns and message templates share a blueprint; their addresses tell them apart."""
    if request.blueprint != "campaigns":
        return False
    return request.path.startswith(url_for("campaigns.index")) == campaigns


INVOICES = ("invoices.view", "clients.view")
NOTICES = ("notices.view",)
GROUPS: tuple[tuple[str | None, tuple[NavLink, ...]], ...] = (
    (
        None,
        (
            NavLink("dashboard.home", "Dashboard", (), _endpoint("dashboard.home")),
            NavLink("calendars.index", "My calendar", (), _blueprint("calendars")),
        ),
    ),
    (
        "{Clients}",
        (
            NavLink(
                "clients.index", "{Clients}", ("clients.view",), lambda: _on_client_list(False)
            ),
            NavLink(
                "clients.index",
                "Prospects",
                ("clients.view",),
                lambda: _on_client_list(True),
                (("prospects", 1),),
            ),
            NavLink("projects.index", "{Projects}", ("clients.view",), _blueprint("projects")),
        ),
    ),
    (
        "Money",
        (
            NavLink("invoicing.index", "Invoices", INVOICES, _blueprint("invoicing")),
            NavLink("payments.index", "Payments", INVOICES, _blueprint("payments")),
            NavLink(
                "gateway_reconciliation.index",
                "Reconciliation",
                INVOICES,
                _blueprint("gateway_reconciliation"),
            ),
            NavLink(
                "opening_balances.index",
                "Opening balances",
                (*INVOICES, "invoices.edit"),
                _blueprint("opening_balances"),
            ),
            NavLink("aging.index", "Aging", ("invoices.view", *NOTICES), _blueprint("aging")),
            NavLink(
                "reports.index", "Scheduled reports", ("invoices.view",), _blueprint("reports")
            ),
        ),
    ),
    (
        "Collections",
        (
            NavLink("collections.index", "Collections", NOTICES, _blueprint("collections")),
            NavLink("notices.index", "{Notices}", NOTICES, _blueprint("notices")),
            NavLink("cases.promise_list", "Promises", NOTICES, _endpoint("cases.promise_list")),
            NavLink("cases.dispute_list", "Disputes", NOTICES, _endpoint("cases.dispute_list")),
            NavLink(
                "work.index",
                "My work",
                ("collections.work",),
                lambda: request.blueprint == "work" and request.endpoint != "work.to_verify",
            ),
            NavLink(
                "work.to_verify",
                "Visits to verify",
                ("collections.work", "collections.supervise"),
                _endpoint("work.to_verify"),
            ),
        ),
    ),
    (
        "Messages",
        (
            NavLink("messages.index", "Messages", ("messages.view",), _blueprint("messages")),
            NavLink(
                "campaigns.index",
                "Campaigns",
                ("campaigns.manage",),
                lambda: _on_campaigns(True),
            ),
            NavLink(
                "campaigns.templates",
                "Message templates",
                ("templates.manage",),
                lambda: _on_campaigns(False),
            ),
        ),
    ),
    (
        "{Project} templates",
        (
            NavLink("library.index", "Template library", ("clients.view",), _blueprint("library")),
            NavLink(
                "my_templates.index", "My templates", ("clients.view",), _blueprint("my_templates")
            ),
        ),
    ),
    (
        "Settings & team",
        (
            NavLink("settings.index", "Settings", ("settings.manage",), _on_settings),
            NavLink("branding.index", "Branding", ("settings.manage",), _blueprint("branding")),
            NavLink(
                "settings.regional_settings",
                "Regional settings",
                ("settings.manage",),
                _endpoint("settings.regional_settings", "settings.save_regional_settings"),
            ),
            NavLink(
                "settings.terminology_settings",
                "Terminology",
                ("settings.manage",),
                _endpoint("settings.terminology_settings", "settings.save_terminology"),
            ),
            NavLink(
                "settings.workflow_settings",
                "Workflow",
                ("settings.manage",),
                _endpoint(
                    "settings.workflow_settings",
                    "settings.save_workflow",
                    "settings.save_dashboard_widgets",
                ),
            ),
            NavLink(
                "custom_fields.index",
                "Custom fields",
                ("settings.manage",),
                _blueprint("custom_fields"),
            ),
            NavLink("team.index", "Team", ("users.manage",), _blueprint("team")),
            NavLink(
                "integrations.index",
                "Integrations",
                ("integrations.manage",),
                _blueprint("integrations"),
            ),
            NavLink("sync.index", "Accounting sync", ("integrations.manage",), _blueprint("sync")),
            NavLink("api_keys.index", "API keys", ("settings.manage",), _blueprint("api_keys")),
            NavLink("webhooks.index", "Webhooks", ("integrations.manage",), _blueprint("webhooks")),
            NavLink("rules.index", "Rules", ("settings.manage",), _blueprint("rules")),
            NavLink(
                "clients.industries",
                "Industries",
                ("settings.manage",),
                _endpoint("clients.industries"),
            ),
            NavLink(
                "cases.bank_rates", "Bank rate", ("settings.manage",), _endpoint("cases.bank_rates")
            ),
            NavLink("audit.index", "Audit log", ("audit.view",), _blueprint("audit")),
            NavLink("ops.view", "Operations", ("ops.view",), _blueprint("ops")),
        ),
    ),
)
LINKS = tuple(link for _, links in GROUPS for link in links)
PERMISSIONS = frozenset(permission for link in LINKS for permission in link.needs)


@lru_cache(maxsize=4096)
def _rendered(
    granted: frozenset[str],
    current: int | None,
    tenant_slug: str,
    script_root: str,
    words: Vocabulary,
) -> Markup:
    """The navigation for a person `granted` these permissions, link number `current` marked.
    Keyed by the permissions rather than the role's name, so that a role whose grants change
    gets its new navigation; the workspace and the app's mount point are in the key because
    the links' addresses carry them, and its words because the labels do."""
    forms = words.forms()
    groups = []
    for heading, links in GROUPS:
        shown = [
            (link, link.label.format_map(forms), LINKS.index(link) == current)
            for link in links
            if granted.issuperset(link.needs)
        ]
        if shown:
            groups.append((heading and heading.format_map(forms), shown))
    return Markup(render_template("_navigation.html", groups=groups))


def workspace_navigation() -> Markup:
    """The side navigation of the workspace the request is in (empty outside one); without a
    membership, only what needs no permission."""
    tenant = g.get("tenant")
    if tenant is None:
        return Markup("")
    membership = g.get("membership")
    granted = frozenset(
        permission
        for permission in PERMISSIONS
        if membership is not None and role_grants(membership.role, permission)
    )
    current = next((number for number, link in enumerate(LINKS) if link.current()), None)
    return _rendered(granted, current, tenant.slug, request.script_root, vocabulary())


def init_app(app: Flask) -> None:
    app.jinja_env.globals["workspace_navigation"] = workspace_navigation
