"""Invoice PDFs: what the printed tax invoice says (India intra/inter-state, Australia), the UPI
QR code and its link, the worker that stores the PDF after issue (and only after commit), the
sweep, and the download (stored, rendered on demand, draft previews never stored). Credit note
PDFs (GST credit note, Australian adjustment note, plain elsewhere), their download, and the
invoice PDF listing its credit notes with the balance after them."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
from pypdf import PdfReader

from app.clients.models import Client
from app.extensions import db
from app.invoicing import credits, pdf, pdf_requests
from app.invoicing import services as invoicing
from app.invoicing.models import Invoice
from app.payments import services as payments
from app.projects.models import Milestone, Project
from app.settings.services import workspace_settings
from tenants.binding import TenantSession, bind_tenant
from tests.helpers import tenant_session

MH_GSTIN = "27AAPFU0939F1ZV"  # Maharashtra: the supplier
MH_CLIENT_GSTIN = "27AABCU9603R1ZM"
KA_GSTIN = "29AAPFU0939F1ZV"  # Karnataka
ABN = "51824753556"


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    # Line breaks fall where the layout wraps: compare with single spaces.
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def page_count(data: bytes) -> int:
    return len(PdfReader(io.BytesIO(data)).pages)


@pytest.fixture(autouse=True)
def app_context(app):
    """Rendering needs the app (templates, storage settings), as in a request or a job."""
    with app.app_context():
        yield


@pytest.fixture
def handed_over(app):
    """The (tenant_id, invoice_id) of the PDF renders handed to the workers, instead of RQ."""
    pairs: list[tuple[int, int]] = []

    def record_renders(works) -> None:
        pairs.extend((w.tenant_id, *w.args) for w in works if w.name == "render_invoice_pdf")

    real_enqueue = app.extensions["duebook.enqueue"]
    app.extensions["duebook.enqueue"] = record_renders
    yield pairs
    app.extensions["duebook.enqueue"] = real_enqueue


@pytest.fixture
def books(db_session, make_tenant, make_user, storage_root):
    """A Maharashtra tenant with its workspace settings, and a factory of invoices."""
    owner = make_user()
    tenant = make_tenant(
        owner=owner,
        region="27",
        name="Udyam Works",
        legal_name="Udyam Works Private Limited",
        address="12 Senapati Bapat Road\nPune 411016",
        gstin=MH_GSTIN,
        pan="AAPFU0939F",
        upi_vpa="udyam@okhdfc",
        payment_instructions="NEFT to HDFC Bank, A/c 50200012345678, IFSC HDFC0000001",
    )
    session = tenant_session(db_session, tenant)
    counter = iter(range(1, 1000))

    def invoice(
        lines=1,
        gstin=MH_CLIENT_GSTIN,
        country="IN",
        issue=True,
        amount="1000.00",
        currency="INR",
        for_tenant=None,
        use=None,
    ):
        owner_tenant = for_tenant or tenant
        use = use or session
        n = next(counter)
        client = Client(
            full_name=f"Kaveri Builders {n}",
            short_name=f"K{n}",
            location="local" if country == owner_tenant.country else "foreign",
            country=country,
            currency=currency,
            gstin=gstin,
            abn=ABN if country == "AU" else None,
            address_line1="4 MG Road",
            city="Bengaluru" if country == "IN" else "Sydney",
            payment_terms="net",
            payment_days=30,
        )
        use.add(client)
        use.flush()
        value = Decimal(amount) * lines
        proj = Project(
            client_id=client.id,
            name=f"Tower {n}",
            contract_value=value,
            currency=currency,
            start_date=date(2027, 1, 4),
        )
        use.add(proj)
        use.flush()
        milestones = [
            Milestone(
                project_id=proj.id,
                position=i,
                name=f"Stage {i}",
                amount=Decimal(amount),
                due_rule="date",
                due_date=date(2027, 2, 1),
                status="completed",
            )
            for i in range(1, lines + 1)
        ]
        use.add_all(milestones)
        use.flush()
        made = invoicing.draft_from_milestones(use, owner_tenant, proj, milestones, None, "998311")
        if issue:
            invoicing.issue(use, owner_tenant, made, date(2027, 2, 1))
        use.commit()
        return made

    return tenant, session, invoice, owner


def test_intra_state_tax_invoice_shows_number_gstins_cgst_sgst_and_words(books, handed_over):
    tenant, session, invoice, _ = books
    issued = invoice()
    text = pdf_text(pdf.render_pdf(session, tenant, issued))
    assert "Tax invoice" in text
    assert issued.number == "INV/26-27/00001" and "INV/26-27/00001" in text
    assert MH_GSTIN in text and MH_CLIENT_GSTIN in text
    assert "CGST" in text and "SGST" in text and "IGST" not in text
    assert text.count("₹90.00") >= 4  # 1000 at 18%: CGST 90 and SGST 90, on the line and in total
    assert "Rupees One Thousand One Hundred Eighty Only" in text
    assert "Udyam Works Private Limited" in text and "HSN/SAC" in text and "998311" in text
    assert "27 – Maharashtra" in text and "reverse charge" in text
    assert "DRAFT" not in text


def test_fifteen_lines_fit_on_one_a4_page(books, handed_over):
    tenant, session, invoice, _ = books
    data = pdf.render_pdf(session, tenant, invoice(lines=15))
    assert page_count(data) == 1
    box = PdfReader(io.BytesIO(data)).pages[0].mediabox
    assert (round(float(box.width) / 72 * 25.4), round(float(box.height) / 72 * 25.4)) == (210, 297)


def test_inter_state_invoice_shows_igst(books, handed_over):
    tenant, session, invoice, _ = books
    text = pdf_text(pdf.render_pdf(session, tenant, invoice(gstin=KA_GSTIN)))
    assert "IGST" in text and "CGST" not in text and "SGST" not in text
    assert KA_GSTIN in text and "29 – Karnataka" in text


def test_export_invoice_carries_the_lut_line(books, handed_over):
    tenant, session, invoice, _ = books
    workspace_settings(session, tenant.id).lut_reference = "AD270324000123X"
    text = pdf_text(pdf.render_pdf(session, tenant, invoice(country="US", gstin=None)))
    assert "Supply meant for export under LUT without payment of IGST" in text
    assert "AD270324000123X" in text


def test_australian_tenant_gets_a_tax_invoice_with_abn_and_gst(
    books, db_session, make_tenant, handed_over
):
    _, _, invoice, _ = books
    aussie = make_tenant(
        country="AU",
        region="NSW",
        time_zone="Australia/Sydney",
        currency="AUD",
        name="Harbour Tiles",
        abn="53004085616",
        upi_vpa="never@shown",  # not an Indian tenant: no UPI
    )
    session = tenant_session(db_session, aussie)
    issued = invoice(country="AU", gstin=None, currency="AUD", for_tenant=aussie, use=session)
    assert issued.tax_regime == "au_gst"
    text = pdf_text(pdf.render_pdf(session, aussie, issued))
    assert "Tax invoice" in text
    assert "ABN: 53 004 085 616" in text
    assert "GST" in text and "$100.00" in text  # 10% of 1,000
    assert "Total (GST inclusive)" in text and "$1,100.00" in text
    assert "UPI" not in text and "CGST" not in text


def test_other_countries_get_a_plain_invoice(db_session, make_tenant, storage_root):
    tenant = make_tenant(
        country="PH",
        time_zone="Asia/Manila",
        currency="PHP",
        name="Luzon Co",
        tax_number="123-456-789-000",
    )
    session = tenant_session(db_session, tenant)
    client = Client(
        full_name="Cebu Traders",
        short_name="Cebu",
        location="local",
        country="PH",
        currency="PHP",
        payment_terms="net",
        payment_days=30,
    )
    session.add(client)
    session.flush()
    zero = Decimal("0.00")
    draft = Invoice(
        client_id=client.id,
        currency="PHP",
        tax_regime="other",
        subtotal=Decimal("500.00"),
        cgst=zero,
        sgst=zero,
        igst=zero,
        other_tax=Decimal("60.00"),
        total=Decimal("560.00"),
        amount_in_words="Five Hundred Sixty Pesos Only",
    )
    session.add(draft)
    session.flush()
    text = pdf_text(pdf.render_pdf(session, tenant, draft))
    assert "Tax invoice" not in text and "Invoice" in text
    assert "123-456-789-000" in text and "DRAFT" in text
    # The Philippines' own names: the BIR's TIN and VAT, not India's GSTIN or GST.
    assert "TIN: 123-456-789-000" in text and "VAT" in text
    assert "GST" not in text and "Tax number" not in text


def test_upi_link_prefills_payee_amount_still_owed_and_number(books, handed_over):
    tenant, session, invoice, _ = books
    workspace = workspace_settings(session, tenant.id)
    workspace.legal_name = "Udyam Works & Sons"
    issued = invoice(amount="1000.00")  # 1,180.00 with GST
    client = session.get(Client, issued.client_id)
    values = {"amount": "400.50", "received_on": "2027-03-01", "method": "upi", "reference": "U1"}
    payment = payments.record_payment(session, client, values)
    payments.allocate(session, payment, [(issued.id, "400.50", "", "", "")])
    due = payments.outstanding(session, issued)
    assert due == Decimal("779.50")

    link = pdf.upi_link(tenant, workspace, issued, due)
    assert link.startswith("upi://pay?pa=udyam@okhdfc&pn=Udyam%20Works%20%26%20Sons&")
    assert "&tr=INV%2F26-27%2F00001" in link and "&tn=Invoice%20INV%2F26-27%2F00001" in link
    params = dict(parse_qsl(urlsplit(link).query))
    assert params == {
        "pa": "udyam@okhdfc",
        "pn": "Udyam Works & Sons",
        "am": "779.50",
        "cu": "INR",
        "tn": "Invoice INV/26-27/00001",
        "tr": "INV/26-27/00001",
    }

    document = pdf.invoice_document(session, tenant, issued)
    assert document["upi"]["link"] == link
    assert document["upi"]["qr"].startswith("data:image/png;base64,")
    text = pdf_text(pdf.render_pdf(session, tenant, issued))
    assert "Scan with any UPI app to pay ₹779.50" in text
    assert "Balance due" in text and "udyam@okhdfc" in text


def test_no_qr_without_a_vpa_or_once_paid(books, handed_over):
    tenant, session, invoice, _ = books
    issued = invoice()
    with_vpa = PdfReader(io.BytesIO(pdf.render_pdf(session, tenant, issued)))
    assert len(with_vpa.pages[0].images) == 1  # the QR code (no logo in these books)
    workspace = workspace_settings(session, tenant.id)
    workspace.upi_vpa = None
    assert pdf.invoice_document(session, tenant, issued)["upi"] is None
    data = pdf.render_pdf(session, tenant, issued)
    assert "Scan with any UPI app" not in pdf_text(data)
    assert len(PdfReader(io.BytesIO(data)).pages[0].images) == 0
    assert not pdf.shows_upi_qr(tenant, workspace, issued, Decimal("0.00"))


def test_logo_is_embedded_from_the_tenants_storage_only(books, storage_root, handed_over):
    from PIL import Image

    from app.core.storage import tenant_key

    tenant, session, invoice, _ = books
    issued = invoice()
    buffer = io.BytesIO()
    Image.new("RGB", (120, 40), (31, 95, 139)).save(buffer, format="PNG")
    key = tenant_key(tenant.id, "branding", "logo.png")
    (storage_root / key).parent.mkdir(parents=True)
    (storage_root / key).write_bytes(buffer.getvalue())
    workspace = workspace_settings(session, tenant.id)
    workspace.logo_key = key
    with_logo = PdfReader(io.BytesIO(pdf.render_pdf(session, tenant, issued)))
    assert len(with_logo.pages[0].images) == 2  # the logo and the UPI QR code
    workspace.logo_key = "tenant_999999/branding/logo.png"  # another tenant's folder: ignored
    without = PdfReader(io.BytesIO(pdf.render_pdf(session, tenant, issued)))
    assert len(without.pages[0].images) == 1


def test_the_fetcher_refuses_files_and_outside_urls(books):
    tenant, session, *_ = books
    fetch = pdf._fetcher_for(workspace_settings(session, tenant.id))
    for url in ("file:///etc/passwd", "http://example.com/logo.png", "https://x/y.css"):
        with pytest.raises(ValueError):
            fetch(url)


def test_issue_hands_the_render_to_a_worker_only_after_commit(books, handed_over, db_session):
    tenant, _, invoice, _ = books
    draft = invoice(issue=False)
    # A session that rolls back only its own savepoint, as a request's does in the tests.
    session = TenantSession(
        db, bind=db_session.connection(), join_transaction_mode="create_savepoint"
    )
    bind_tenant(session, tenant.id)
    draft = session.get(Invoice, draft.id)
    assert handed_over == []
    with session.begin_nested():  # a savepoint released is not a commit
        invoicing.issue(session, tenant, draft, date(2027, 2, 1))
    assert handed_over == []
    session.rollback()
    session.commit()
    assert handed_over == []  # rolled back: forgotten
    draft = session.get(Invoice, draft.id)
    invoicing.issue(session, tenant, draft, date(2027, 2, 1))
    session.commit()
    assert handed_over == [(tenant.id, draft.id)]


def test_the_job_stores_the_pdf_and_sets_pdf_key(books, db_session, run_jobs, storage_root):
    tenant, session, invoice, _ = books
    issued = invoice()  # the real hand-over: RQ on the test Redis
    run_jobs()
    check = tenant_session(db_session, tenant)
    stored = check.get(Invoice, issued.id)
    assert stored.pdf_key.startswith(f"{tenant.schema}/invoices/{issued.id}/INV-26-27-00001.")
    assert stored.pdf_rendered_at is not None
    data = (storage_root / stored.pdf_key).read_bytes()
    assert "INV/26-27/00001" in pdf_text(data)
    # Run again: the stored PDF is current, nothing is rendered twice.
    from jobs.tasks import render_invoice_pdf

    assert render_invoice_pdf(issued.id, tenant_id=tenant.id) == stored.pdf_key


def test_the_sweep_finds_issued_invoices_without_a_pdf(books, handed_over, db_session):
    tenant, session, invoice, _ = books
    old = invoice()
    fresh = invoice()
    draft = invoice(issue=False)
    old.issued_at = datetime.now(UTC) - timedelta(minutes=10)
    session.commit()
    assert pdf_requests.invoices_missing_pdf(session) == [old.id]
    from jobs.tasks import render_invoice_pdf, sweep_invoice_pdfs_for_tenant

    handed_over.clear()
    assert sweep_invoice_pdfs_for_tenant(tenant_id=tenant.id) == 1
    assert handed_over == [(tenant.id, old.id)]
    assert render_invoice_pdf(old.id, tenant_id=tenant.id) is not None
    assert render_invoice_pdf(draft.id, tenant_id=tenant.id) is None
    check = tenant_session(db_session, tenant)
    assert pdf_requests.invoices_missing_pdf(check) == []
    assert check.get(Invoice, fresh.id).pdf_key is None


def test_download_serves_the_pdf_and_a_draft_preview_is_never_stored(
    books, client, login, db_session, storage_root, handed_over, make_user, add_member
):
    tenant, session, invoice, owner = books
    issued = invoice()
    draft = invoice(issue=False)
    viewer = make_user()
    add_member(tenant, viewer, role="viewer")
    login(client, viewer)

    # Not rendered by a worker yet: rendered now, stored, served.
    response = client.get(f"/t/{tenant.slug}/invoices/{issued.id}/pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == "attachment; filename=INV-26-27-00001.pdf"
    assert "INV/26-27/00001" in pdf_text(response.data)
    check = tenant_session(db_session, tenant)
    key = check.get(Invoice, issued.id).pdf_key
    assert key and (storage_root / key).read_bytes() == response.data
    again = client.get(f"/t/{tenant.slug}/invoices/{issued.id}/pdf")
    assert again.data == response.data  # the stored file, not a new rendering

    preview = client.get(f"/t/{tenant.slug}/invoices/{draft.id}/pdf")
    assert preview.status_code == 200 and preview.mimetype == "application/pdf"
    assert f"filename=draft-{draft.id}.pdf" in preview.headers["Content-Disposition"]
    assert "DRAFT" in pdf_text(preview.data)
    assert check.get(Invoice, draft.id).pdf_key is None
    assert not (storage_root / tenant.schema / "invoices" / str(draft.id)).exists()

    assert client.get(f"/t/{tenant.slug}/invoices/999999/pdf").status_code == 404


def test_a_payment_makes_the_next_download_render_the_new_balance(
    books, client, login, db_session, storage_root, handed_over
):
    tenant, session, invoice, owner = books
    issued = invoice()
    login(client, owner)
    first = client.get(f"/t/{tenant.slug}/invoices/{issued.id}/pdf")
    assert "₹1,180.00" in pdf_text(first.data)
    check = tenant_session(db_session, tenant)
    first_key = check.get(Invoice, issued.id).pdf_key
    customer = check.get(Client, issued.client_id)
    values = {"amount": "180.00", "received_on": "2027-03-01", "method": "upi", "reference": "U2"}
    payment = payments.record_payment(check, customer, values)
    payments.allocate(check, payment, [(issued.id, "180.00", "", "", "")])
    check.commit()
    second = client.get(f"/t/{tenant.slug}/invoices/{issued.id}/pdf")
    assert "Scan with any UPI app to pay ₹1,000.00" in pdf_text(second.data)
    latest = tenant_session(db_session, tenant).get(Invoice, issued.id).pdf_key
    assert latest != first_key and not (storage_root / first_key).exists()


def test_fast_font_subsetting_is_reported():
    assert isinstance(pdf.fast_font_subsetting(), bool)


def test_the_invoice_page_links_to_the_pdf(books, client, login, handed_over):
    tenant, _, invoice, owner = books
    issued = invoice()
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/invoices/{issued.id}")
    assert f'href="/t/{tenant.slug}/invoices/{issued.id}/pdf"' in page.text
    assert "Download PDF" in page.text


# Credit notes --------------------------------------------------------------------------------

CREDIT_DAY = date(2027, 3, 5)


def test_credit_note_pdf_is_a_gst_credit_note_against_the_invoice(books, handed_over):
    tenant, session, invoice, _ = books
    issued = invoice()  # 1,000 + CGST 90 + SGST 90
    note = credits.issue_credit_note(session, tenant, issued, "118.00", "Late delivery", CREDIT_DAY)
    data = pdf.render_credit_note_pdf(session, tenant, note)
    assert page_count(data) == 1
    text = pdf_text(data)
    assert "Credit note" in text and "Tax invoice" not in text
    assert note.number == "CN/26-27/00001" and "Credit note number: CN/26-27/00001" in text
    assert "Date: 05 Mar 2027" in text
    assert "Original invoice: INV/26-27/00001" in text and "Invoice date: 01 Feb 2027" in text
    assert "Reason: Late delivery" in text
    assert MH_GSTIN in text and MH_CLIENT_GSTIN in text and "Udyam Works Private Limited" in text
    assert "HSN/SAC" in text and "998311" in text and "27 – Maharashtra" in text
    assert "CGST" in text and "SGST" in text and "IGST" not in text
    assert "₹100.00" in text and text.count("₹9.00") >= 4  # on the line and in the totals
    assert "Total credited ₹118.00" in text
    assert "Rupees One Hundred Eighteen Only" in text
    assert "section 34 of the CGST Act" in text
    assert "How to pay" not in text and "UPI" not in text  # a credit note asks for nothing


def test_inter_state_credit_note_shows_igst(books, handed_over):
    tenant, session, invoice, _ = books
    issued = invoice(gstin=KA_GSTIN)
    note = credits.issue_credit_note(session, tenant, issued, "", "Returned", CREDIT_DAY)
    text = pdf_text(pdf.render_credit_note_pdf(session, tenant, note))
    assert "IGST ₹180.00" in text and "SGST" not in text
    assert "CGST ₹" not in text  # "CGST" only as the Act's name
    assert "Total credited ₹1,180.00" in text and KA_GSTIN in text and "29 – Karnataka" in text


def test_australian_credit_note_is_an_adjustment_note(books, db_session, make_tenant, handed_over):
    _, _, invoice, _ = books
    aussie = make_tenant(
        country="AU",
        region="NSW",
        time_zone="Australia/Sydney",
        currency="AUD",
        name="Harbour Tiles",
        abn="53004085616",
    )
    session = tenant_session(db_session, aussie)
    issued = invoice(country="AU", gstin=None, currency="AUD", for_tenant=aussie, use=session)
    note = credits.issue_credit_note(session, aussie, issued, "220.00", "Discount", CREDIT_DAY)
    text = pdf_text(pdf.render_credit_note_pdf(session, aussie, note))
    assert "Adjustment note" in text and "Credit note" not in text
    assert "Adjustment note number:" in text and issued.number in text
    assert "ABN: 53 004 085 616" in text and "GST" in text and "$20.00" in text
    assert "Total adjustment (GST inclusive) $220.00" in text and "Reason: Discount" in text
    assert "HSN/SAC" not in text and "CGST" not in text


def test_other_countries_get_a_plain_credit_note(books, db_session, make_tenant, handed_over):
    _, _, invoice, _ = books
    luzon = make_tenant(country="PH", time_zone="Asia/Manila", currency="PHP", name="Luzon Co")
    db_session.commit()
    session = tenant_session(db_session, luzon)
    issued = invoice(country="PH", gstin=None, currency="PHP", for_tenant=luzon, use=session)
    note = credits.issue_credit_note(session, luzon, issued, "100.00", "Goodwill", CREDIT_DAY)
    text = pdf_text(pdf.render_credit_note_pdf(session, luzon, note))
    assert "Credit note" in text and "Adjustment note" not in text
    assert issued.number in text and "Total credited" in text and "Goodwill" in text
    assert "GSTIN" not in text and "section 34" not in text


def test_invoice_pdf_lists_its_credit_notes_and_the_balance_after_them(books, handed_over):
    tenant, session, invoice, _ = books
    issued = invoice()  # 1,180.00
    assert "Credit notes" not in pdf_text(pdf.render_pdf(session, tenant, issued))
    client = session.get(Client, issued.client_id)
    values = {"amount": "400.50", "received_on": "2027-03-01", "method": "upi", "reference": "U3"}
    payment = payments.record_payment(session, client, values)
    payments.allocate(session, payment, [(issued.id, "400.50", "", "", "")])
    credits.issue_credit_note(session, tenant, issued, "118.00", "Late delivery", CREDIT_DAY)
    credits.issue_credit_note(session, tenant, issued, "59.00", "Snag list", date(2027, 3, 9))
    text = pdf_text(pdf.render_pdf(session, tenant, issued))
    assert "CN/26-27/00001 05 Mar 2027 ₹118.00" in text
    assert "CN/26-27/00002 09 Mar 2027 ₹59.00" in text
    # 1,180.00 - 400.50 paid - 177.00 credited = 602.50, which the QR code asks for too.
    assert "Paid ₹400.50" in text and "Credit notes ₹177.00" in text
    assert "Balance due ₹602.50" in text
    assert "Scan with any UPI app to pay ₹602.50" in text


def test_credit_note_download_and_link_and_other_tenants_get_404(
    books, client, login, handed_over, make_user, add_member, make_tenant
):
    tenant, session, invoice, owner = books
    issued = invoice()
    note = credits.issue_credit_note(session, tenant, issued, "118.00", "Late delivery", CREDIT_DAY)
    session.commit()
    viewer = make_user()
    add_member(tenant, viewer, role="viewer")
    login(client, viewer)
    url = f"/t/{tenant.slug}/invoices/credit-notes/{note.id}/pdf"
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == "attachment; filename=CN-26-27-00001.pdf"
    assert response.headers["Cache-Control"] == "private, no-store"
    text = pdf_text(response.data)
    assert "Credit note" in text and "CN/26-27/00001" in text and "INV/26-27/00001" in text
    page = client.get(f"/t/{tenant.slug}/invoices/credit-notes/{note.id}").text
    assert f'href="{url}"' in page and "Download PDF" in page
    assert client.get(f"/t/{tenant.slug}/invoices/credit-notes/999999/pdf").status_code == 404

    stranger = make_user()
    own = make_tenant(owner=stranger)
    # Requests share the app context this module pushes, and with it `g` (the logged-in user):
    # a second browser gets an app context of its own.
    with client.application.app_context():
        other = client.application.test_client()
        login(other, stranger)
        assert other.get(url).status_code == 404  # not a member of this tenant
        # Their own workspace's URL with this note's id: their schema has no such note.
        assert other.get(f"/t/{own.slug}/invoices/credit-notes/{note.id}/pdf").status_code == 404


def test_a_credit_note_makes_the_next_invoice_download_show_it(
    books, client, login, db_session, handed_over
):
    tenant, session, invoice, owner = books
    issued = invoice()
    login(client, owner)
    first = client.get(f"/t/{tenant.slug}/invoices/{issued.id}/pdf")
    assert "Credit notes" not in pdf_text(first.data)
    check = tenant_session(db_session, tenant)
    credits.issue_credit_note(
        check, tenant, check.get(Invoice, issued.id), "180.00", "Discount", CREDIT_DAY
    )
    check.commit()
    text = pdf_text(client.get(f"/t/{tenant.slug}/invoices/{issued.id}/pdf").data)
    assert "CN/26-27/00001" in text and "Balance due ₹1,000.00" in text
