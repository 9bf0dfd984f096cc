"""Settings → Branding: each choice saved is applied where clients see it (the e-mail footer in
the mail the SMTP server receives, the PDF's paper size, payment details and page note in the
PDF read back with pypdf), the live preview shows unsaved choices and saves nothing, bad input
gets an error beside its field, never a 500, and a save is in the audit log."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.core.storage import get_storage
from app.invoicing import pdf
from app.outbox.services import queue_email
from app.settings import branding, services
from tenants.models import Tenant
from tests.helpers import csrf_token_from, tenant_session

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99"
    b"=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)
A4_POINTS = (595, 842)
LETTER_POINTS = (612, 792)


@pytest.fixture(autouse=True)
def _own_storage(storage_root):
    return storage_root


def form(**changes) -> dict:
    return {
        "brand_colour": "#1f5f8b",
        "pdf_paper_size": "A4",
        "pdf_logo_position": "left",
        "pdf_payment_details": "1",
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"brand_colour": "blue"}, "brand_colour", "#rrggbb"),
        ({"brand_colour": "#12345g"}, "brand_colour", "#rrggbb"),
        ({"email_footer": "x" * 501}, "email_footer", "500 characters"),
        ({"email_footer": "\n".join("line" for _ in range(7))}, "email_footer", "6 lines"),
        ({"pdf_footer_note": "n" * 121}, "pdf_footer_note", "120 characters"),
        ({"pdf_paper_size": "A3"}, "pdf_paper_size", "A4 or US Letter"),
        ({"pdf_logo_position": "centre"}, "pdf_logo_position", "left or right"),
    ],
)
def test_bad_choices_are_named_by_field(changes, field, message):
    _, errors = branding.clean_branding(form(**changes))
    assert set(errors) == {field}
    assert message in errors[field]


def test_the_defaults_print_the_pdf_as_before(make_tenant, db_session):
    workspace = services.workspace_settings(db_session, make_tenant().id)
    assert branding.branding_of(workspace) == branding.Branding()
    assert (workspace.pdf_paper_size, workspace.pdf_payment_details) == ("A4", True)


@pytest.fixture
def admin(client, make_tenant, make_user, login):
    owner = make_user()
    tenant = make_tenant(owner=owner, upi_vpa="udyam@okhdfc", payment_instructions="NEFT to HDFC")
    login(client, owner)
    page = client.get(f"/t/{tenant.slug}/settings/branding/")
    assert page.status_code == 200
    return tenant, owner, csrf_token_from(page.text)


def test_the_page_saves_all_or_nothing_and_the_audit_log_records_it(client, admin, db_session):
    tenant, owner, token = admin
    url = f"/t/{tenant.slug}/settings/branding/"
    refused = client.post(
        url, data=form(csrf_token=token, brand_colour="teal", email_footer="f" * 600)
    )
    assert refused.status_code == 422
    assert "#rrggbb" in refused.text and "At most 500 characters" in refused.text
    db_session.expire_all()
    assert services.workspace_settings(db_session, tenant.id).email_footer is None

    footer = "Udyam Works Pvt Ltd\nPune 411016"
    saved = client.post(
        url,
        data=form(
            csrf_token=token,
            brand_colour="#AA3300",
            email_footer=footer,
            pdf_paper_size="letter",
            pdf_logo_position="right",
            pdf_payment_details="",
            pdf_footer_note="Subject to Pune jurisdiction",
        ),
    )
    assert saved.status_code == 303
    db_session.expire_all()
    assert branding.branding_of(services.workspace_settings(db_session, tenant.id)) == (
        branding.Branding(
            "#aa3300", footer, "letter", "right", False, "Subject to Pune jurisdiction"
        )
    )
    session = tenant_session(db_session, tenant)
    (entry,) = session.scalars(
        select(AuditEntry).where(
            AuditEntry.entity == "workspace_settings", AuditEntry.action == "update"
        )
    ).all()
    assert entry.actor_user_id == owner.id
    assert entry.changes["email_footer"] == [None, footer]
    assert entry.changes["pdf_paper_size"] == ["A4", "letter"]


def test_the_preview_shows_unsaved_choices_and_changes_nothing(client, admin, db_session):
    tenant, _, token = admin
    base = f"/t/{tenant.slug}/settings/branding"
    answer = client.post(
        f"{base}/preview",
        data=form(csrf_token=token, brand_colour="#aa3300", pdf_paper_size="letter"),
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200
    frames = [
        part.split('"', 1)[0].replace("&amp;", "&") for part in answer.text.split('src="')[1:]
    ]
    invoice_url = next(url for url in frames if "/preview/invoice" in url)
    assert parse_qs(urlsplit(invoice_url).query)["brand_colour"] == ["#aa3300"]
    invoice = client.get(invoice_url)
    assert invoice.status_code == 200
    assert "#aa3300" in invoice.text and "215.9mm" in invoice.text  # US Letter's sheet
    assert "sandbox" in invoice.headers["Content-Security-Policy"]
    email = client.get(next(url for url in frames if "/preview/email" in url))
    assert email.status_code == 200 and "6px solid #aa3300" in email.text
    db_session.expire_all()
    workspace = services.workspace_settings(db_session, tenant.id)
    assert (workspace.brand_colour, workspace.pdf_paper_size) == ("#1f5f8b", "A4")


def test_bad_input_in_the_preview_shows_the_fields_error_and_the_saved_choice(client, admin):
    tenant, _, token = admin
    base = f"/t/{tenant.slug}/settings/branding"
    answer = client.post(
        f"{base}/preview",
        data=form(csrf_token=token, brand_colour="#zzz", email_footer="<b>Udyam</b> & Co"),
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200
    assert 'id="brand_colour-error"' in answer.text and "#rrggbb" in answer.text
    assert 'id="email_footer-error" role="alert" hx-swap-oob="true" hidden' in answer.text
    # The preview goes on with the saved colour; the footer as typed, escaped.
    email_url = answer.text.split('src="')[1].split('"', 1)[0].replace("&amp;", "&")
    email = client.get(email_url)
    assert "#1f5f8b" in email.text
    assert "&lt;b&gt;Udyam&lt;/b&gt; &amp; Co" in email.text and "<b>Udyam" not in email.text
    # A garbled query string to the frames is the saved branding, never an error.
    assert client.get(f"{base}/preview/invoice?pdf_paper_size=A0&brand_colour=x").status_code == 200


def test_only_admins_brand_the_workspace(client, make_tenant, make_user, add_member, login):
    tenant = make_tenant()
    finance = make_user()
    add_member(tenant, finance, "finance")
    login(client, finance)
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/").text)
    base = f"/t/{tenant.slug}/settings/branding"
    assert client.get(f"{base}/").status_code == 403
    assert client.post(f"{base}/", data=form(csrf_token=token)).status_code == 403
    assert client.post(f"{base}/preview", data=form(csrf_token=token)).status_code == 403
    assert client.get(f"{base}/preview/invoice").status_code == 403


def test_brand_and_logo_moved_from_the_settings_page_to_branding(client, admin):
    tenant, _, _ = admin
    page = client.get(f"/t/{tenant.slug}/settings/")
    assert 'name="brand_colour"' not in page.text and 'name="logo"' not in page.text
    assert f'href="/t/{tenant.slug}/settings/branding/"' in page.text
    # The navigation links to it, and the main settings form still saves without a colour.
    assert ">Branding</a>" in page.text
    token = csrf_token_from(page.text)
    saved = client.post(
        f"/t/{tenant.slug}/settings/",
        data={
            "csrf_token": token,
            "auto_invoice": "off",
            "send_window_start": "09:00",
            "send_window_end": "19:00",
        },
    )
    assert saved.status_code == 303


@pytest.fixture
def branded(app, db_session, make_tenant, make_client, make_contact):
    """A tenant with a logo, a client and its contact, and a way to set its branding."""
    tenant = make_tenant(
        region="27",
        legal_name="Udyam Works Private Limited",
        upi_vpa="udyam@okhdfc",
        payment_instructions="NEFT to HDFC Bank, A/c 50200012345678",
    )
    session = tenant_session(db_session, tenant)
    with app.app_context():
        services.save_logo(
            session, get_storage(app), session.get(Tenant, tenant.id), io.BytesIO(PNG)
        )
    client = make_client(session)
    contact = make_contact(session, client)
    session.commit()

    def brand(**choices):
        workspace = services.workspace_settings(session, tenant.id)
        assert branding.save_branding(session, workspace, form(**choices)) == {}
        session.commit()

    return tenant, session, client, contact, brand


def test_client_email_carries_the_footer_colour_and_logo_through_smtp(
    app, branded, run_jobs, received_mail
):
    tenant, session, client, contact, brand = branded
    brand(brand_colour="#aa3300", email_footer="Udyam Works <accounts>\nPune & Mumbai")
    with app.app_context():  # the outbox hands the messages to RQ when this commits
        queue_email(
            session,
            to=contact.email,
            subject="Invoice INV-1",
            text_body="Dear Ravi,\n\nYour invoice.",
            html_body="<div><p>Dear Ravi,</p><p>Your invoice.</p></div>",
            tenant_id=tenant.id,
            client_id=client.id,
            contact_id=contact.id,
            idempotency_key=f"t{tenant.id}:branding-test:client",
        )
        # E-mail to one of the workspace's own people is not dressed as a client's.
        queue_email(
            session,
            to="owner@udyam.example",
            subject="Test message",
            text_body="Only for you.",
            html_body="<div><p>Only for you.</p></div>",
            tenant_id=tenant.id,
            idempotency_key=f"t{tenant.id}:branding-test:user",
        )
        session.commit()
    run_jobs()
    mails = {mail["To"]: mail for mail in received_mail()}
    to_client = mails[contact.email]
    text = to_client.get_body(preferencelist=("plain",)).get_content()
    assert text.endswith("-- \nUdyam Works <accounts>\nPune & Mumbai\n")
    html = to_client.get_body(preferencelist=("html",)).get_content()
    assert "Udyam Works &lt;accounts&gt;<br>\nPune &amp; Mumbai" in html
    assert "6px solid #aa3300" in html and f'src="cid:{branding.EMAIL_LOGO_CID}"' in html
    (logo,) = [
        part for part in to_client.walk() if part["Content-ID"] == f"<{branding.EMAIL_LOGO_CID}>"
    ]
    assert logo.get_content() == PNG
    own = mails["owner@udyam.example"]
    assert "Udyam Works" not in own.get_body(preferencelist=("plain",)).get_content()
    assert "solid #aa3300" not in own.get_body(preferencelist=("html",)).get_content()


def _pdf(app, session, tenant, make_invoice, client) -> PdfReader:
    with app.app_context():
        invoice = make_invoice(session, tenant, client, ("1000.00",))
        data = pdf.render_pdf(session, session.get(Tenant, tenant.id), invoice)
    return PdfReader(io.BytesIO(data))


def _text(reader: PdfReader) -> str:
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def _size(reader: PdfReader) -> tuple[int, int]:
    box = reader.pages[0].mediabox
    return round(float(box.width)), round(float(box.height))


def test_the_invoice_pdf_honours_paper_size_payment_details_and_page_note(
    app, branded, make_invoice
):
    tenant, session, client, _, brand = branded
    before = _pdf(app, session, tenant, make_invoice, client)
    assert _size(before) == A4_POINTS
    assert "How to pay" in _text(before) and "NEFT to HDFC Bank" in _text(before)
    assert "Subject to Pune" not in _text(before)

    brand(pdf_paper_size="letter", pdf_payment_details="", pdf_footer_note="Subject to Pune")
    after = _pdf(app, session, tenant, make_invoice, client)
    assert _size(after) == LETTER_POINTS
    shown = _text(after)
    assert "How to pay" not in shown and "NEFT" not in shown and "UPI" not in shown
    assert "Subject to Pune" in shown


def test_the_logo_sits_where_the_workspace_chose(app, branded):
    tenant, session, _, _, _ = branded
    workspace = services.workspace_settings(session, tenant.id)
    bound = session.get(Tenant, tenant.id)
    with app.test_request_context():
        left = pdf.invoice_preview_html(bound, workspace, branding.Branding())
        right = pdf.invoice_preview_html(
            bound, workspace, branding.Branding(pdf_logo_position="right")
        )
    assert '<div class="meta"><h1>' in left and '<img class="logo"' in left
    assert '<div class="meta"><img class="logo"' in right
