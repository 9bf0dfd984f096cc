"""Every page on a phone (390 px wide, as an iPhone 14 shows it): nothing wider than the
screen, the navigation behind its Menu button; and at desktop width the navigation in full.

The pages are those of the demo workspace of `make run` (`flask demo seed`: clients owing
invoices of different ages, a project, a part payment, a credit note), after a collections run
so that notices exist too."""

from __future__ import annotations

import re

import pytest

from app.cli import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SLUG

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
Page, expect = sync_api.Page, sync_api.expect

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
OUTSIDE_WORKSPACE = ("workspaces", "sandbox-inbox")  # no workspace, so no navigation
SIGNED_OUT = {"login": "/login", "signup": "/signup", "forgot-password": "/password/forgot"}
SHOTS = ("dashboard", "clients", "client-invoices", "invoices", "notice", "work")

# The elements that first stick out to the right of the screen (their parent does not), left
# out those inside a box that scrolls or clips them: for the failure message.
WHAT_OVERFLOWS = """() => {
  const width = document.documentElement.clientWidth;
  const right = el => el.getBoundingClientRect().right;
  const clipped = el => {
    for (let box = el.parentElement; box && box !== document.body; box = box.parentElement) {
      if (getComputedStyle(box).overflowX !== 'visible') return true;
    }
    return false;
  };
  return [...document.querySelectorAll('body *')]
    .filter(el => right(el) > width + 1 && right(el.parentElement) <= width + 1 && !clipped(el))
    .slice(0, 5)
    .map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + (el.className ? '.' + String(el.className).split(' ').join('.') : '')
      + ' (' + Math.round(right(el)) + 'px)');
}"""


@pytest.fixture(scope="module")
def demo_workspace(app, library_loaded):
    """The demo workspace of `make run`, committed for the server (the command is idempotent)."""
    result = app.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code == 0, result.output


def log_in(page: Page) -> None:
    page.goto("/login")
    page.get_by_label("E-mail").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/t/{DEMO_SLUG}/$"))


def href_of(page: Page, path: str, pattern: str) -> str:
    """The first link on `path` whose address matches `pattern` (the page must have one)."""
    page.goto(path)
    page.wait_for_load_state("networkidle")  # a client's tabs load their body with htmx
    for href in page.locator("main a[href]").evaluate_all("links => links.map(a => a.href)"):
        if re.search(pattern, href):
            return href
    raise AssertionError(f"no link matching {pattern} on {path}")


def demo_pages(page: Page) -> dict[str, str]:
    """Name -> address of every main page, the detail pages found as a person finds them."""
    t = f"/t/{DEMO_SLUG}"
    # A run of the collections engine, as the Run now button does it, so notices exist.
    page.goto(f"{t}/collections/")
    page.get_by_role("button", name=re.compile("^Run now")).click()
    expect(page).to_have_url(re.compile(r"/collections/runs/\d+$"))
    run = page.url
    client = href_of(page, f"{t}/clients/?q=Kaveri", r"/clients/\d+$")
    pages = {
        "dashboard": f"{t}/",
        "clients": f"{t}/clients/",
        "prospects": f"{t}/clients/?prospects=1",
        "client-new": f"{t}/clients/new",
        "client-import": f"{t}/clients/imports/new",
        "invoices": f"{t}/invoices/",
        "invoice-new": f"{t}/invoices/new",
        "invoice": href_of(page, f"{client}?tab=invoices", r"/invoices/\d+$"),
        "credit-note": None,
        "project": href_of(page, f"{client}?tab=projects", r"/projects/\d+$"),
        "payment": href_of(page, f"{client}?tab=payments", r"/payments/\d+$"),
        "payment-new": None,
        "payments": f"{t}/payments/",
        "projects": f"{t}/projects/",
        "opening-balances": f"{t}/opening-balances/",
        "aging": f"{t}/aging/",
        "aging-report": f"{t}/aging/report",
        "collections": f"{t}/collections/",
        "collections-run": run,
        "collection-policies": f"{t}/collections/policies",
        "notices": f"{t}/notices/",
        "notice": href_of(page, f"{t}/notices/", r"/notices/\d+$"),
        "promises": f"{t}/promises/",
        "disputes": f"{t}/disputes/",
        "work": f"{t}/work/",
        "visits-to-verify": f"{t}/work/visits/to-verify",
        "messages": f"{t}/messages/",
        "campaigns": f"{t}/campaigns/",
        "campaign-new": f"{t}/campaigns/new",
        "message-templates": f"{t}/message-templates/",
        "library": f"{t}/library/",
        "my-templates": f"{t}/library/mine/",
        "settings": f"{t}/settings/",
        "regional": f"{t}/settings/regional",
        "terminology": f"{t}/settings/terminology",
        "custom-fields": f"{t}/settings/custom-fields/",
        "rules": f"{t}/settings/rules/",
        "rule-new": f"{t}/settings/rules/new",
        "api-keys": f"{t}/settings/api-keys/",
        "webhooks": f"{t}/webhooks/",
        "webhook-new": f"{t}/webhooks/new",
        "notification-settings": f"{t}/notifications/settings",
        "workflow": f"{t}/settings/workflow",
        "branding": f"{t}/settings/branding/",
        "setup": f"{t}/setup/",
        "team": f"{t}/team/",
        "audit": f"{t}/audit/",
        "integrations": f"{t}/integrations/",
        "notifications": f"{t}/notifications/",
        "industries": f"{t}/clients/industries",
        "bank-rates": f"{t}/bank-rates/",
        "ops": f"{t}/ops/",
        "workspaces": "/tenants",
        "sandbox-inbox": "/sandbox/inbox",
    }
    pages["credit-note"] = href_of(page, pages["invoice"], r"/credit-notes/\d+$")
    pages["payment-new"] = href_of(page, f"{client}?tab=payments", r"/payments/new")
    pages["library-template"] = href_of(page, f"{t}/library/", r"/library/\d+$")
    for tab in (
        "profile",
        "contacts",
        "sites",
        "documents",
        "timeline",
        "projects",
        "invoices",
        "notices",
        "payments",
        "aging",
        "collections",
    ):
        pages[f"client-{tab}"] = f"{client}?tab={tab}"
    return pages


def overflow_of(page: Page) -> tuple[int, int, list[str]]:
    page.wait_for_load_state("networkidle")  # tabs load their body with htmx
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    return widths[0], widths[1], page.evaluate(WHAT_OVERFLOWS)


def visit_all(page: Page, check) -> dict[str, str]:
    """check(name) on every page; the pages that are wider than the screen, and why."""
    wide = {}
    for name, url in demo_pages(page).items():
        response = page.goto(url)
        assert response.status == 200, f"{name}: {url} answered {response.status}"
        scroll_width, client_width, sticking_out = overflow_of(page)
        if scroll_width > client_width + 1:
            wide[name] = f"{scroll_width}px wide: {', '.join(sticking_out)}"
        check(name)
    return wide


def test_every_page_fits_a_phone_screen(new_page, demo_workspace, console, screenshots_dir):
    page = new_page()
    page.set_viewport_size(PHONE)
    log_in(page)
    toggle = page.get_by_role("button", name="Menu")

    def check(name):
        if name not in OUTSIDE_WORKSPACE:
            expect(toggle).to_be_visible()
            expect(page.get_by_role("navigation", name="Workspace")).to_be_hidden()
        if name in SHOTS:
            page.screenshot(path=str(screenshots_dir / f"phone-{name}.png"), full_page=True)

    wide = visit_all(page, check)
    signed_out = new_page()
    signed_out.set_viewport_size(PHONE)
    for name, url in SIGNED_OUT.items():
        signed_out.goto(url)
        scroll_width, client_width, sticking_out = overflow_of(signed_out)
        if scroll_width > client_width + 1:
            wide[name] = f"{scroll_width}px wide: {', '.join(sticking_out)}"
    assert wide == {}, "\n".join(f"{name} is {why}" for name, why in wide.items())
    assert console.about_csp() == [], console.about_csp()


def test_the_menu_button_opens_the_navigation_on_a_phone(new_page, demo_workspace, screenshots_dir):
    page = new_page()
    page.set_viewport_size(PHONE)
    log_in(page)
    toggle = page.get_by_role("button", name="Menu")
    nav = page.get_by_role("navigation", name="Workspace")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(nav).to_be_hidden()

    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(nav.get_by_text("Money", exact=True)).to_be_visible()
    page.keyboard.press("Escape")  # closes it again, the focus back on the button
    expect(nav).to_be_hidden()
    expect(toggle).to_be_focused()

    toggle.click()
    page.screenshot(path=str(screenshots_dir / "phone-menu.png"))
    invoices = nav.get_by_role("link", name="Invoices", exact=True)
    box = invoices.bounding_box()
    assert box["height"] >= 44 and box["x"] + box["width"] <= PHONE["width"], box
    invoices.click()
    expect(page).to_have_url(re.compile(rf"/t/{DEMO_SLUG}/invoices/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Invoices")
    expect(nav).to_be_hidden()  # the next page starts with the menu folded


def test_without_javascript_the_navigation_stays_open_on_a_phone(
    browser, live_server, demo_workspace
):
    context = browser.new_context(
        base_url=live_server.url, viewport=PHONE, java_script_enabled=False
    )
    try:
        page = context.new_page()
        log_in(page)
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
        expect(
            page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Invoices")
        ).to_be_visible()
    finally:
        context.close()


def test_desktop_pages_show_the_whole_navigation_grouped(new_page, demo_workspace, screenshots_dir):
    page = new_page()
    page.set_viewport_size(DESKTOP)
    log_in(page)
    nav = page.get_by_role("navigation", name="Workspace")
    groups = [
        "Clients",
        "Money",
        "Collections",
        "Messages",
        "Project templates",
        "Settings & team",
    ]

    def check(name):
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
        if name in OUTSIDE_WORKSPACE:
            return
        headings = nav.locator(".nav-heading")
        expect(headings).to_have_text(groups)
        for heading in headings.all():
            expect(heading).to_be_visible()
        shown = nav.get_by_role("link").evaluate_all(
            "links => links.map(a => a.getBoundingClientRect().width > 0)"
        )
        assert len(shown) > 20 and all(shown), f"{name}: {shown.count(False)} links hidden"
        if name == "invoices":
            page.screenshot(path=str(screenshots_dir / "desktop-invoices.png"))

    wide = visit_all(page, check)
    assert wide == {}, "\n".join(f"{name} is {why}" for name, why in wide.items())
