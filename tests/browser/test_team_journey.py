"""A business signs up, invites a colleague, the colleague joins, logs in again and opens a
second workspace: in chromium, against the app under gunicorn, with the real e-mail."""

from __future__ import annotations

import re

import pytest

from tests.helpers import PASSWORD, unique

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
Page, expect = sync_api.Page, sync_api.expect

pytestmark = pytest.mark.browser


def fill_workspace_fields(
    page: Page,
    *,
    organisation: str,
    slug: str,
    country: str = "India",
    region: str = "",
    time_zone: str = "Asia/Kolkata",
    currency: str = "INR",
) -> None:
    page.get_by_label("Organisation name").fill(organisation)
    page.get_by_label("Workspace address").fill(slug)
    page.get_by_label("Country").select_option(label=country)
    page.get_by_label("State or region").fill(region)
    page.get_by_label("Time zone").select_option(time_zone)
    page.get_by_label("Currency").select_option(currency)


def fill_sign_up_form(
    page: Page,
    *,
    organisation: str,
    slug: str,
    full_name: str,
    email: str,
    password: str = PASSWORD,
    **workspace,
) -> None:
    page.goto("/signup")
    expect(page.get_by_role("heading", name="Create your Duebook workspace")).to_be_visible()
    fill_workspace_fields(page, organisation=organisation, slug=slug, **workspace)
    page.get_by_label("Your name").fill(full_name)
    page.get_by_label("Work e-mail").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Create workspace").click()


def confirm_sign_up(
    page: Page, signup_mail, *, organisation: str, email: str, password: str = PASSWORD
) -> None:
    """Follow the link of the confirmation e-mail and finish with the password chosen."""
    page.goto(signup_mail.link(email))
    expect(page.get_by_role("heading", name=f"Finish creating {organisation}")).to_be_visible()
    page.get_by_label("The password you chose").fill(password)
    page.get_by_role("button", name="Create workspace").click()


def sign_up(
    page: Page, signup_mail, *, organisation: str, email: str, password: str = PASSWORD, **fields
) -> None:
    """Sign up as a person does: the form, then the link in the e-mail."""
    fill_sign_up_form(page, organisation=organisation, email=email, password=password, **fields)
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
    confirm_sign_up(page, signup_mail, organisation=organisation, email=email, password=password)


def expect_dashboard_of(page: Page, slug: str, name: str) -> None:
    expect(page).to_have_url(re.compile(rf"/t/{re.escape(slug)}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.locator(".tenant-switcher > summary")).to_have_text(name)


def expect_setup_of(page: Page, slug: str, name: str) -> None:
    """A new workspace's owner lands on the first step of the setup."""
    expect(page).to_have_url(re.compile(rf"/t/{re.escape(slug)}/setup/identity$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Set up {name}")


def open_tenant_switcher(page: Page) -> None:
    page.get_by_test_id("tenant-switcher").locator("summary").click()


def invitation_link(message, base_url: str) -> str:
    """The acceptance link from the plain-text body, as the colleague's mail program shows it."""
    body = message.get_body(preferencelist=("plain",)).get_content()
    links = re.findall(r"https?://\S+/invitations/\S+", body)
    assert len(links) == 1, f"expected one invitation link in:\n{body}"
    assert links[0].startswith(f"{base_url}/"), f"the link leads elsewhere: {links[0]}"
    return links[0]


def test_sign_up_invite_join_log_in_again_and_switch_workspaces(
    new_page, live_server, run_jobs, received_mail, console, screenshots_dir, signup_mail
):
    first = {
        "organisation": "Sharma Engineering",
        "slug": unique("sharma"),
        "full_name": "Priya Sharma",
        "email": f"{unique('priya')}@example.com",
    }
    colleague_email = f"{unique('arjun')}@example.com"
    colleague_password = "ledger lanterns by the river"

    # (1) The owner signs up, lands on the setup and goes on to the dashboard.
    owner = new_page()
    sign_up(owner, signup_mail, **first, region="Maharashtra")
    expect_setup_of(owner, first["slug"], "Sharma Engineering")
    expect(
        owner.get_by_role("status").filter(
            has_text="Welcome to Duebook. Sharma Engineering is ready."
        )
    ).to_be_visible()
    owner.get_by_role("navigation", name="Workspace").get_by_role("link", name="Dashboard").click()
    expect_dashboard_of(owner, first["slug"], "Sharma Engineering")
    expect(owner.get_by_text("Asia/Kolkata · INR")).to_be_visible()

    # (2) Team: invite a colleague as Finance; a message confirms it, the invitation is listed.
    owner.get_by_role("navigation", name="Workspace").get_by_role("link", name="Team").click()
    expect(owner).to_have_url(re.compile(rf"/t/{first['slug']}/team/$"))
    expect(owner.get_by_role("heading", name="Team", level=1)).to_be_visible()
    owner.get_by_label("E-mail").fill("arjun at example")  # a slip first: said by the field
    owner.get_by_role("button", name="Send invitation").click()
    expect(
        owner.locator(".field", has=owner.locator("#email")).locator("#email-error")
    ).to_have_text(re.compile("Invalid email address"))
    owner.get_by_label("E-mail").fill(colleague_email)
    owner.get_by_label("Role", exact=True).select_option(label="Finance")
    owner.get_by_role("button", name="Send invitation").click()
    expect(
        owner.get_by_role("status").filter(has_text=f"Invitation sent to {colleague_email}.")
    ).to_be_visible()
    invitations = owner.locator(
        "section", has=owner.get_by_role("heading", name="Open invitations")
    )
    invited_row = invitations.get_by_role("row").filter(has_text=colleague_email)
    expect(invited_row).to_contain_text("Finance")
    expect(owner.get_by_label("E-mail")).to_have_value("")  # ready for the next invitation
    expect(owner.locator("#email-error")).to_have_count(0)
    members = owner.locator("section", has=owner.get_by_role("heading", name="Members"))
    expect(members.get_by_role("row").filter(has_text=first["email"])).to_contain_text("Owner")
    owner.screenshot(path=str(screenshots_dir / "team.png"), full_page=True)

    # (3) The e-mail goes out; the colleague opens its link in their own browser and joins.
    run_jobs()
    mail = [m for m in received_mail() if colleague_email in m["To"]]
    assert len(mail) == 1, [m["To"] for m in received_mail()]
    assert mail[0]["Subject"] == "Priya Sharma invited you to Sharma Engineering on Duebook"
    link = invitation_link(mail[0], live_server.url)

    colleague = new_page()
    colleague.goto(link)
    expect(colleague.get_by_role("heading", name="Join Sharma Engineering")).to_be_visible()
    expect(colleague.get_by_text("You are invited as Finance")).to_contain_text("Priya Sharma")
    expect(colleague.get_by_text(colleague_email)).to_be_visible()
    colleague.get_by_label("Your name").fill("Arjun Mehta")
    colleague.get_by_label("Choose a password").fill(colleague_password)
    colleague.get_by_role("button", name="Join Sharma Engineering").click()
    expect_dashboard_of(colleague, first["slug"], "Sharma Engineering")
    expect(
        colleague.get_by_role("status").filter(has_text="Welcome to Sharma Engineering.")
    ).to_be_visible()
    expect(colleague.locator(".user-menu > summary")).to_have_text("Arjun Mehta")
    # Finance works with the books, not the team.
    expect(
        colleague.get_by_role("navigation", name="Workspace").get_by_role("link", name="Team")
    ).to_have_count(0)

    # The owner sees the colleague among the members, and the invitation no longer open.
    owner.reload()
    expect(members.get_by_role("row").filter(has_text=colleague_email)).to_contain_text(
        "Arjun Mehta"
    )
    expect(owner.get_by_role("heading", name="Open invitations")).to_have_count(0)

    # (4) The colleague logs out, then logs in again with e-mail and password.
    colleague.locator(".user-menu > summary").click()
    colleague.get_by_role("button", name="Log out").click()
    expect(colleague).to_have_url(re.compile(r"/login$"))
    expect(colleague.get_by_role("status").filter(has_text="You are logged out.")).to_be_visible()
    colleague.goto(f"/t/{first['slug']}/")  # the workspace is closed to a logged-out browser
    expect(colleague).to_have_url(re.compile(r"/login\?next="))
    colleague.get_by_label("E-mail").fill(colleague_email)
    colleague.get_by_label("Password").fill(colleague_password)
    colleague.get_by_role("button", name="Log in").click()
    expect_dashboard_of(colleague, first["slug"], "Sharma Engineering")

    # (5) A second workspace from the tenant switcher, then back to the first one.
    second_slug = unique("kapoor")
    open_tenant_switcher(colleague)
    colleague.get_by_role("link", name="+ New workspace").click()
    expect(colleague.get_by_role("heading", name="New workspace")).to_be_visible()
    fill_workspace_fields(
        colleague,
        organisation="Kapoor Exports",
        slug=second_slug,
        country="Singapore",
        time_zone="Asia/Singapore",
        currency="SGD",
    )
    colleague.get_by_role("button", name="Create workspace").click()
    expect_dashboard_of(colleague, second_slug, "Kapoor Exports")
    expect(
        colleague.get_by_role("status").filter(has_text="Kapoor Exports is ready.")
    ).to_be_visible()
    # The colleague owns this one: the Team page is theirs.
    expect(
        colleague.get_by_role("navigation", name="Workspace").get_by_role("link", name="Team")
    ).to_be_visible()

    open_tenant_switcher(colleague)
    switcher = colleague.get_by_test_id("tenant-switcher")
    expect(switcher.get_by_role("link", name="Kapoor Exports")).to_have_attribute(
        "aria-current", "true"
    )
    switcher.get_by_role("link", name="Sharma Engineering").click()
    expect_dashboard_of(colleague, first["slug"], "Sharma Engineering")

    assert not console.about_csp(), console.about_csp()
    assert not console.exceptions, console.exceptions


def test_sign_up_mistakes_are_explained_next_to_the_field(new_page, console, signup_mail):
    taken = unique("taken")
    first = new_page()
    sign_up(
        first,
        signup_mail,
        organisation="Taken Traders",
        slug=taken,
        full_name="Meera Iyer",
        email=f"{unique('meera')}@example.com",
    )
    expect_setup_of(first, taken, "Taken Traders")

    page = new_page()
    email = f"{unique('ravi')}@example.com"

    # A weak password: said under the password field, the rest kept.
    fill_sign_up_form(
        page,
        organisation="Rao Textiles",
        slug=unique("rao"),
        full_name="Ravi Rao",
        email=email,
        password="password1",
    )
    password_field = page.locator(".field", has=page.locator("#password"))
    expect(password_field.locator("#password-error")).to_have_text(
        re.compile("Use at least 10 characters")
    )
    expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#slug-error")).to_have_count(0)
    expect(page.get_by_label("Organisation name")).to_have_value("Rao Textiles")
    expect(page.get_by_label("Work e-mail")).to_have_value(email)

    # The address belongs to someone else: the sign-up form does not tell (it would tell
    # anyone which workspaces exist), the confirmation page does, under the address field.
    fill_sign_up_form(
        page, organisation="Rao Textiles", slug=taken, full_name="Ravi Rao", email=email
    )
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
    page.goto(signup_mail.link(email))
    expect(page.get_by_label("Workspace address")).to_have_value(f"{taken}-2")  # a free one
    page.get_by_label("Workspace address").fill(taken)
    page.get_by_label("The password you chose").fill(PASSWORD)
    page.get_by_role("button", name="Create workspace").click()
    slug_field = page.locator(".field", has=page.locator("#slug"))
    expect(slug_field.locator("#slug-error")).to_have_text(re.compile("That address is taken"))
    expect(page.locator("#slug")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#slug")).to_have_attribute(
        "aria-describedby", re.compile(r"\bslug-error\b")
    )
    expect(page.locator("#password-error")).to_have_count(0)

    # Nothing was kept: the same e-mail gets its workspace once the address is free.
    rao = unique("rao")
    page.get_by_label("Workspace address").fill(rao)
    page.get_by_label("The password you chose").fill(PASSWORD)
    page.get_by_role("button", name="Create workspace").click()
    expect_setup_of(page, rao, "Rao Textiles")

    assert not console.about_csp(), console.about_csp()
    assert not console.exceptions, console.exceptions
