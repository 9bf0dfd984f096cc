"""Day one on a phone (390 px), as issue 16 puts it: a new owner signs up, completes the setup,
imports the opening balances of the old books from an Excel file, sees them on the dashboard,
records a part payment from the invoice page and sends a reminder, whose e-mail asks for what
is still owed, not the invoice's total. Only clicks and typing: the worker runs the queued jobs
(the upload's reading, the import, the e-mail) as it would beside the web server."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from decimal import Decimal

import openpyxl
import pytest

from app.core.money import format_money
from tests.browser.test_phone_layout import PHONE, overflow_of
from tests.browser.test_team_journey import sign_up
from tests.helpers import unique
from tests.test_opening_balances import HEADER
from tests.test_settings import KA_GSTIN

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
Page, expect = sync_api.Page, sync_api.expect

pytestmark = pytest.mark.browser

CLIENT = "Meera Textiles Pvt Ltd"
# One invoice a month past due and unpaid, one not yet due and partly paid in the old books.
OVERDUE_TOTAL, PART_PAYMENT = Decimal("11800.00"), Decimal("5000.00")
NOT_DUE_TOTAL, NOT_DUE_PAID = Decimal("5900.00"), Decimal("900.00")


def money(amount: Decimal) -> str:
    return format_money(amount, "INR", "IN")


def open_invoices_xlsx(today: date) -> bytes:
    """The open invoices as Tally or Excel exports them (the columns of
    tests/test_opening_balances.py): real dates and numbers in the cells."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    sheet.append(
        ["OB-701", today - timedelta(days=60), today - timedelta(days=30), CLIENT,
         10000.0, 1800.0, float(OVERDUE_TOTAL), None, "PO-44"]
    )  # fmt: skip
    sheet.append(
        ["OB-702", today - timedelta(days=5), today + timedelta(days=25), CLIENT,
         5000.0, 900.0, float(NOT_DUE_TOTAL), float(NOT_DUE_PAID), None]
    )  # fmt: skip
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def go_by_menu(page: Page, name: str) -> None:
    page.get_by_role("button", name="Menu").click()
    page.get_by_role("navigation", name="Workspace").get_by_role(
        "link", name=name, exact=True
    ).click()


def test_day_one_from_sign_up_to_a_reminder_for_what_is_still_owed(
    new_page, console, signup_mail, run_jobs, received_mail, screenshots_dir
):
    page = new_page()
    page.set_viewport_size(PHONE)
    wide: dict[str, str] = {}

    def fits(name: str) -> None:
        scroll_width, client_width, sticking_out = overflow_of(page)
        if scroll_width > client_width + 1:
            wide[name] = f"{scroll_width}px wide: {', '.join(sticking_out)}"

    slug = unique("meera")
    owner_email = f"{unique('ravi')}@example.com"
    sign_up(
        page,
        signup_mail,
        organisation="Ravi Fabrics",
        slug=slug,
        full_name="Ravi Iyer",
        email=owner_email,
    )

    # The setup: four steps saved; the fifth (first clients) is done by the import below.
    expect(page).to_have_url(re.compile(rf"/t/{slug}/setup/identity$"))
    fits("setup: identity")
    page.get_by_label("Legal name").fill("Ravi Fabrics LLP")
    page.get_by_label("GSTIN").fill(KA_GSTIN)
    page.get_by_role("button", name="Save and continue").click()
    expect(page.get_by_text("Step 2 of 5: Logo and colour.")).to_be_visible()
    fits("setup: brand")
    page.get_by_role("button", name="Save and continue").click()
    expect(page.get_by_text("Step 3 of 5: Getting paid.")).to_be_visible()
    fits("setup: payment")
    page.get_by_label("UPI ID").fill("ravi@okhdfcbank")
    page.get_by_role("button", name="Save and continue").click()
    expect(page.get_by_text("Step 4 of 5: E-mail to your clients.")).to_be_visible()
    fits("setup: e-mail")
    page.get_by_label("Sender name").fill("Ravi Fabrics Accounts")
    page.get_by_label("Reply-to address").fill("accounts@ravi.example")
    page.get_by_role("button", name="Save and continue").click()
    expect(page.get_by_text("Step 5 of 5: Your first clients.")).to_be_visible()
    fits("setup: clients")
    page.get_by_role("button", name="Skip for now").click()

    # The dashboard points to the opening balances.
    expect(page).to_have_url(re.compile(rf"/t/{slug}/$"))
    fits("dashboard, before the import")
    page.locator("#first-steps").get_by_role("link", name="Import opening balances").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Opening balances")
    fits("opening balances")
    today = date.today()
    page.get_by_label(re.compile("file", re.I)).set_input_files(
        files=[
            {
                "name": "tally-open-invoices.xlsx",
                "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "buffer": open_invoices_xlsx(today),
            }
        ]
    )
    page.get_by_role("button", name="Upload and check the columns").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("tally-open-invoices.xlsx")
    run_jobs()  # the worker reads the file and its first rows
    # The page asks every second and reloads itself once the file is read (HX-Refresh), as a
    # person sees it: reloading by hand as well raced with that reload.
    expect(page.get_by_role("heading", name="Which column holds what?")).to_be_visible(
        timeout=15_000
    )
    page.get_by_role("button", name="Save the columns").click()
    preview = page.get_by_test_id("opening-preview")
    expect(preview.locator("tbody tr")).to_have_count(2)
    expect(preview.locator("ul.error")).to_have_count(0)  # no row with a problem
    fits("opening balances: columns and preview")
    page.get_by_role("button", name="Import the rows without problems").click()
    run_jobs()  # the worker imports the rows; the page reloads itself when it is done
    counts = page.get_by_test_id("import-counts")
    expect(counts.locator('[data-count="inserted"]')).to_have_text("2", timeout=15_000)
    expect(counts.locator('[data-count="failed"]')).to_have_text("0")
    fits("opening balances: imported")

    # The dashboard shows what the clients owe, and the setup is complete.
    go_by_menu(page, "Dashboard")
    expect(page).to_have_url(re.compile(rf"/t/{slug}/$"))
    outstanding = OVERDUE_TOTAL + NOT_DUE_TOTAL - NOT_DUE_PAID
    receivables = page.locator("#receivables")
    expect(receivables).to_contain_text(f"{money(outstanding)} outstanding")
    expect(receivables).to_contain_text(f"{money(OVERDUE_TOTAL)} overdue")
    expect(page.locator("#top-overdue")).to_contain_text(CLIENT)
    expect(page.locator("#setup-left")).to_have_count(0)
    fits("dashboard, after the import")
    page.screenshot(path=str(screenshots_dir / "day-one-dashboard.png"), full_page=True)

    # Whom the reminder goes to: a contact of the imported client.
    page.locator("#top-overdue").get_by_role("link", name=CLIENT).click()
    fits("client aging")
    page.get_by_role("link", name="Client", exact=True).click()
    page.get_by_role("link", name="Contacts").click()
    add_contact = page.locator("form", has=page.get_by_role("button", name="Add contact"))
    add_contact.get_by_label("Name", exact=True).fill("Meera Nair")
    contact_email = f"{unique('meera-accounts')}@example.com"
    add_contact.get_by_label("E-mail").fill(contact_email)
    add_contact.get_by_label("Billing").check()
    add_contact.get_by_role("button", name="Add contact").click()
    expect(page.locator("#tab-body")).to_contain_text(contact_email)
    fits("client contacts")

    # Reminders wait for the sending window; this owner lets them go at any hour, any day.
    go_by_menu(page, "Settings")
    page.get_by_label("From").fill("00:00")
    page.get_by_label("Until").fill("23:59")
    page.get_by_label(re.compile("Only on business days")).uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("alert")).to_have_count(0)
    fits("settings")

    # The overdue invoice: a part payment from its page.
    go_by_menu(page, "Invoices")
    page.get_by_role("link", name="OB-701").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("OB-701")
    fits("invoice")
    page.locator("#invoice-payments").get_by_role("link", name="+ Record payment").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Record a payment of invoice OB-701")
    fits("record a payment")
    page.get_by_label(re.compile(r"^Amount received")).fill(str(PART_PAYMENT))
    page.get_by_label("Received on").fill(today.isoformat())
    page.get_by_label("Reference").fill("UTR 4471")
    page.get_by_role("button", name="Record payment").click()
    expect(page.get_by_text("Payment recorded against invoice OB-701.")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("OB-701")
    still_owed = OVERDUE_TOTAL - PART_PAYMENT
    statement = page.locator("#invoice-statement")
    expect(statement.locator("dt:text-is('Still owed') + dd")).to_have_text(money(still_owed))
    expect(page.locator("#invoice-payments")).to_contain_text(money(PART_PAYMENT))
    fits("invoice, part paid")

    # The reminder, from the invoice page's "Send to the client".
    send = page.locator("#invoice-send")
    send.get_by_label("What").select_option(label="1st notice (reminder)")
    to = send.get_by_label("To")
    to.select_option(label=to.locator("option", has_text="Meera Nair").inner_text().strip())
    send.get_by_label("By").select_option(label="E-mail")
    send.get_by_role("button", name="Send").click()
    expect(page.get_by_text(re.compile("queued for E-mail"))).to_be_visible()
    fits("invoice, reminder queued")
    run_jobs()  # the worker sends the e-mail

    reminders = [m for m in received_mail() if contact_email in m["To"]]
    assert len(reminders) == 1, [m["To"] for m in received_mail()]
    body = reminders[0].get_body(("plain",)).get_content()
    assert "OB-701" in body, body
    assert money(still_owed) in body, f"the reminder does not ask for {money(still_owed)}:\n{body}"
    assert money(OVERDUE_TOTAL) not in body, f"the reminder asks for the total:\n{body}"

    assert wide == {}, wide
    assert not console.about_csp(), console.about_csp()
    assert not console.exceptions, console.exceptions
