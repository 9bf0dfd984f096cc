"""Issue 4's journey in chromium: a finance owner sets up the workspace's GSTIN, creates a
client and a project that needs approvals, applies a library template, completes and
approves the first milestone, issues its invoice, downloads the PDF, records a part payment
with TDS, and sees the balances right to the paisa."""

from __future__ import annotations

import io
import re

import pytest

from tests.browser.test_team_journey import sign_up
from tests.helpers import unique

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
)
expect = sync_api.expect

pytestmark = pytest.mark.browser
SUPPLIER_GSTIN = "27AAPFU0939F1ZV"  # Maharashtra
TEMPLATE = "IT services: Simple, small project"  # advance 20%, delivery 70%, hypercare 10%


def test_template_to_invoice_to_part_payment_with_tds(
    library_loaded, new_page, console, screenshots_dir, signup_mail
):
    page = new_page()
    slug = unique("bill")
    sign_up(
        page,
        signup_mail,
        organisation="Deccan Software LLP",
        slug=slug,
        full_name="Neha Rao",
        email=f"{slug}@example.com",
        region="Maharashtra",
    )

    page.get_by_role("link", name="Settings", exact=True).click()
    page.get_by_label("GSTIN", exact=True).fill(SUPPLIER_GSTIN)
    page.get_by_label("UPI ID").fill("deccan@okhdfcbank")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved")).to_be_visible()

    page.get_by_role("link", name="Clients", exact=True).click()
    page.get_by_role("link", name="+ New client").click()
    page.get_by_label("Full name").fill("Sahyadri Constructions Pvt Ltd")
    page.get_by_label("Short name").fill("Sahyadri")
    page.get_by_label("State or region").fill("Maharashtra")
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(r"/clients/\d+$"))
    client_url = page.url

    page.get_by_role("navigation", name="Client").get_by_role("link", name="Projects").click()
    page.get_by_role("link", name="+ New project").click()
    page.get_by_label("Project name").fill("ERP roll-out")
    page.get_by_label("Contract value").fill("10,00,000")
    page.get_by_label("Completed milestones need an approval").check()
    page.get_by_role("button", name="Save project").click()
    page.get_by_role("link", name="Plan the milestones").click()
    page.get_by_label("Template").select_option(label=TEMPLATE)
    page.get_by_role("button", name="Apply").first.click()

    advance = page.get_by_role("row", name=re.compile("Advance on signing"))
    expect(advance).to_contain_text("₹2,00,000.00")  # 20% of ₹10,00,000
    advance.get_by_role("button", name="Start").click()
    advance.get_by_role("button", name="Complete").click()
    expect(advance.get_by_role("button", name="Raise invoice")).to_have_count(0)  # needs approval
    advance.get_by_role("button", name="Approve").click()
    advance.get_by_role("button", name="Raise invoice").click()

    expect(page.get_by_text("Draft — not a tax invoice yet")).to_be_visible()
    page.get_by_role("button", name="Issue").click()
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(re.compile(r"^Tax invoice INV/\d\d-\d\d/00001$"))
    number = heading.inner_text().removeprefix("Tax invoice ")
    expect(page.get_by_text(f"{SUPPLIER_GSTIN}")).to_be_visible()
    totals = page.locator(".totals").first
    expect(totals).to_contain_text("Taxable value₹2,00,000.00")
    expect(totals).to_contain_text("CGST₹18,000.00SGST₹18,000.00")  # 9% + 9%: intra-state
    expect(totals).to_contain_text("Total₹2,36,000.00")
    page.screenshot(path=str(screenshots_dir / "journey-invoice.png"), full_page=True)

    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile("Download PDF")).click()
    download = download_info.value
    assert download.suggested_filename == number.replace("/", "-") + ".pdf"
    pdf = download.path().read_bytes()
    assert pdf.startswith(b"%PDF")
    from pypdf import PdfReader

    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert number in text and SUPPLIER_GSTIN in text

    page.goto(client_url + "?tab=payments")
    page.get_by_role("link", name="+ Record payment").click()
    page.get_by_label(re.compile("Amount received")).fill("1,00,000")
    page.get_by_label("Reference").fill("UTR 4471")
    page.get_by_role("button", name="Record payment").click()
    page.get_by_label(f"TDS for {number}", exact=True).fill("20000")
    page.get_by_label(f"TDS section for {number}").fill("194J")
    page.get_by_label(f"TDS rate for {number}").fill("10")
    expect(page.get_by_label(f"Cash for {number}")).to_have_value("100000.00")
    page.get_by_role("button", name="Allocate").click()
    expect(page.locator("#unapplied")).to_have_text("₹0.00")

    page.goto(client_url + "?tab=payments")
    balance = page.locator("#client-balance")
    # 2,36,000 - 1,00,000 cash - 20,000 TDS
    expect(balance).to_contain_text("Outstanding on invoices₹1,16,000.00")
    expect(balance).to_contain_text("TDS awaiting certificates₹20,000.00")
    expect(balance).to_contain_text("Balance₹1,16,000.00")
    page.screenshot(path=str(screenshots_dir / "journey-balance.png"), full_page=True)
    page.get_by_role("link", name=number).click()
    expect(page.get_by_text("partly paid").first).to_be_visible()
    assert console.about_csp() == [], console.about_csp()
    assert console.exceptions == [], console.exceptions
