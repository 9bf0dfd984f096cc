"""The notice pages: the list's filters (a normal link and an htmx fragment), bulk approval that
sends, the notice page's actions and their refusals, attachments (upload, link, remove,
download), the letters as PDFs, the client and invoice fragments, and who may do what."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from app.collections.models import CollectionNotice, NoticeAttachment
from app.collections.notices import services as notices
from app.outbox.models import OutboxMessage
from app.projects.models import Project
from tests.helpers import csrf_token_from, tenant_session
from tests.test_notices import make_books, pdf_text

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
def books(app, db_session, make_tenant, make_user, storage_root, request):
    return make_books(app, db_session, make_tenant, make_user, request)


def token(client, books, notice_id=None) -> str:
    url = f"/t/{books.tenant.slug}/notices/" + (str(notice_id) if notice_id else "")
    return csrf_token_from(client.get(url).text)


def test_filters_by_business_unit_status_and_next_step(books, client, login):
    north = books.notice([books.invoice(business_unit="North")])
    south = books.notice([books.invoice(business_unit="South")], position=2, status="sent")
    books.session.commit()
    login(client, books.owner)
    signed_in = client
    base = f"/t/{books.tenant.slug}/notices/"
    page = signed_in.get(base + "?business_unit=North")
    assert f">#{north.id}<" in page.text and f">#{south.id}<" not in page.text
    page = signed_in.get(base + "?status=sent")
    assert f">#{south.id}<" in page.text and f">#{north.id}<" not in page.text
    # htmx asks for the results only; the answer is the fragment, not the page.
    fragment = signed_in.get(base + "?next=approve", headers={"HX-Request": "true"})
    assert f">#{north.id}<" in fragment.text and f">#{south.id}<" not in fragment.text
    assert "<html" not in fragment.text
    page = signed_in.get(base + "?overdue=91%2B")
    assert f">#{north.id}<" in page.text  # due 30 Jun 2026: long overdue


def test_the_business_unit_filter_offers_each_unit_in_use_once_in_order(books, client, login):
    for unit in ("South", "North", "East", None, "North"):
        books.invoice(business_unit=unit)
    books.session.commit()
    assert notices.filter_choices(books.session)["business_units"] == ["East", "North", "South"]
    login(client, books.owner)
    page = client.get(f"/t/{books.tenant.slug}/notices/").text
    offered = page[page.index('id="f-business_unit"') :].split("</select>")[0]
    assert offered.count(">North<") == 1 and offered.index(">East<") < offered.index(">South<")


def test_the_project_filter_offers_the_projects_with_notices_in_name_order(books):
    zeta, alpha, beta = (books.invoice(business_unit="North") for _ in range(3))
    for invoice, name in ((zeta, "Zeta tower"), (alpha, "Alpha villas"), (beta, "Beta mall")):
        books.session.get(Project, invoice.project_id).name = name
    books.notice([zeta])
    books.notice([alpha], position=2)
    books.session.commit()
    choices = notices.filter_choices(books.session)
    # Beta's invoice has no notice: nothing to filter for.
    assert choices["projects"] == [
        (alpha.project_id, "Alpha villas"),
        (zeta.project_id, "Zeta tower"),
    ]
    assert choices["business_units"] == ["North"]


def test_bulk_approve_sends_the_drafts(app, books, client, login, db_session, run_jobs):
    one = books.notice([books.invoice()])
    two = books.notice([books.invoice()], position=2)
    sent = books.notice([books.invoice()], position=3, status="sent")
    books.session.commit()
    login(client, books.owner)
    signed_in = client
    response = signed_in.post(
        f"/t/{books.tenant.slug}/notices/approve",
        data={
            "csrf_token": token(signed_in, books),
            "notice_ids": [str(one.id), str(two.id), str(sent.id)],
        },
    )
    assert response.status_code == 303
    run_jobs()
    assert books.reload(one).status == books.reload(two).status == "queued"
    # Delivery marked the messages sent; the list catches the notices up when it is shown.
    signed_in.get(f"/t/{books.tenant.slug}/notices/")
    assert books.reload(one).status == books.reload(two).status == "sent"
    assert books.reload(one).approved_by == books.owner.id
    assert books.reload(sent).approved_by is None
    rows = db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.tenant_id == books.tenant.id)
    ).all()
    assert sorted(r.payload["notice_id"] for r in rows) == [one.id, two.id]


def test_page_actions_and_errors_next_to_the_field(books, client, login):
    notice = books.notice([books.invoice("1234.00")], status="sent")
    books.session.commit()
    login(client, books.owner)
    signed_in = client
    url = f"/t/{books.tenant.slug}/notices/{notice.id}"
    page = signed_in.get(url)
    assert page.status_code == 200 and "₹1,234.00" in page.text
    csrf = csrf_token_from(page.text)
    bad = signed_in.post(url + "/response", data={"csrf_token": csrf, "response_date": "soon"})
    assert bad.status_code == 422 and 'id="response_date-error"' in bad.text
    ok = signed_in.post(
        url + "/response",
        data={
            "csrf_token": csrf,
            "response_date": "2026-09-02",
            "response_note": "Cheque next week",
        },
    )
    assert ok.status_code == 303 and books.reload(notice).status == "responded"
    refused = signed_in.post(url + "/close", data={"csrf_token": csrf, "reason": "cancelled"})
    assert refused.status_code == 422 and 'id="note-error"' in refused.text
    assert books.reload(notice).status == "responded"
    closed = signed_in.post(
        url + "/close",
        data={"csrf_token": csrf, "reason": "cancelled", "note": "Settled in person"},
    )
    assert closed.status_code == 303 and books.reload(notice).status == "cancelled"
    # A closed notice cannot be approved or escalated.
    again = signed_in.post(url + "/escalate", data={"csrf_token": csrf})
    assert again.status_code == 409 and books.reload(notice).status == "cancelled"


def test_attachments_upload_link_remove_and_download(books, client, login, db_session):
    notice = books.notice([books.invoice()])
    books.session.commit()
    login(client, books.owner)
    signed_in = client
    url = f"/t/{books.tenant.slug}/notices/{notice.id}"
    csrf = token(signed_in, books, notice.id)
    wrong = signed_in.post(
        url + "/attachments",
        data={"csrf_token": csrf, "file": (io.BytesIO(b"MZ not a pdf"), "proof.pdf")},
    )
    assert wrong.status_code == 422 and "not a valid .pdf" in wrong.text
    upload = {
        "csrf_token": csrf,
        "title": "Courier receipt",
        "file": (io.BytesIO(PDF), "receipt.pdf"),
    }
    uploaded = signed_in.post(url + "/attachments", data=upload)
    assert uploaded.status_code == 303
    link = signed_in.post(
        url + "/links", data={"csrf_token": csrf, "title": "Tracking", "url": "javascript:alert(1)"}
    )
    assert link.status_code == 422 and 'id="url-error"' in link.text
    link = signed_in.post(
        url + "/links",
        data={"csrf_token": csrf, "title": "Tracking", "url": "https://track.example/123"},
    )
    assert link.status_code == 303
    file_row, link_row = db_session.scalars(
        select(NoticeAttachment)
        .where(NoticeAttachment.notice_id == notice.id)
        .order_by(NoticeAttachment.id)
    ).all()
    download = signed_in.get(f"{url}/attachments/{file_row.id}/download")
    assert download.status_code == 200 and download.data == PDF
    page = signed_in.get(url)
    assert "Courier receipt" in page.text and "https://track.example/123" in page.text
    removed = signed_in.post(f"{url}/attachments/{file_row.id}/remove", data={"csrf_token": csrf})
    assert removed.status_code == 303
    assert ">Courier receipt</a>" not in signed_in.get(url).text
    assert signed_in.get(f"{url}/attachments/{file_row.id}/download").status_code == 404
    assert signed_in.get(f"{url}/attachments/{link_row.id}/download").status_code == 404


def test_letter_download_and_msefc_only_for_the_legal_level(books, client, login):
    invoice = books.invoice("4200.00")
    notice = books.notice([invoice])
    books.session.commit()
    login(client, books.owner)
    signed_in = client
    url = f"/t/{books.tenant.slug}/notices/{notice.id}"
    letter = signed_in.get(url + "/letter.pdf")
    assert letter.status_code == 200 and letter.mimetype == "application/pdf"
    text = pdf_text(letter.data)
    assert invoice.number in text and "4,200.00" in text
    assert signed_in.get(url + "/msefc-pack.pdf").status_code == 404


def test_fragments_for_the_client_and_invoice_pages(books, client, login):
    invoice = books.invoice()
    notice = books.notice([invoice])
    books.session.commit()
    login(client, books.owner)
    signed_in = client
    base = f"/t/{books.tenant.slug}/notices"
    assert f"#{notice.id}" in signed_in.get(f"{base}/client/{books.client.id}").text
    assert f"#{notice.id}" in signed_in.get(f"{base}/invoice/{invoice.id}").text
    assert signed_in.get(f"{base}/client/999999").status_code == 404


def test_a_viewer_sees_but_cannot_act(books, client, login, make_user, add_member):
    notice = books.notice([books.invoice()])
    books.session.commit()
    viewer = make_user()
    add_member(books.tenant, viewer, "viewer")
    login(client, viewer)
    url = f"/t/{books.tenant.slug}/notices/{notice.id}"
    page = client.get(url)
    assert page.status_code == 200 and "Approve and send" not in page.text
    csrf = csrf_token_from(page.text)
    assert client.post(url + "/approve", data={"csrf_token": csrf}).status_code == 403
    bulk = {"csrf_token": csrf, "notice_ids": str(notice.id)}
    assert client.post(f"/t/{books.tenant.slug}/notices/approve", data=bulk).status_code == 403
    assert books.reload(notice).status == "draft"


def test_another_tenants_notice_is_not_found(
    app, books, db_session, client, login, make_tenant, make_user, storage_root
):
    invoice = books.invoice()
    notice = books.notice([invoice])
    notice_id, invoice_id = notice.id, invoice.id
    books.session.commit()
    stranger = make_user()
    other = make_tenant(owner=stranger)
    login(client, stranger)
    base = f"/t/{other.slug}/notices"
    assert client.get(f"{base}/{notice_id}").status_code == 404
    assert client.get(f"{base}/{notice_id}/letter.pdf").status_code == 404
    assert client.get(f"{base}/invoice/{invoice_id}").status_code == 404
    mine = tenant_session(db_session, books.tenant)
    assert mine.get(CollectionNotice, notice_id).status == "draft"


def test_only_owners_admins_and_finance_approve_legal_notices(
    app, books, client, login, make_user, add_member
):
    assert books.level(4).is_legal
    legal = books.notice([books.invoice()], position=4)
    legal_failed = books.notice([books.invoice()], position=4, status="failed")
    first = books.notice([books.invoice()])
    books.session.commit()
    collector = make_user()
    add_member(books.tenant, collector, "collector")
    login(client, collector)
    base = f"/t/{books.tenant.slug}/notices"

    # The collector sees the legal notice, without the button, and is refused by the server.
    page = client.get(f"{base}/{legal.id}")
    assert page.status_code == 200 and "Approve and send" not in page.text
    assert 'id="legal-approval-note"' in page.text
    csrf = csrf_token_from(page.text)
    for action in ("approve", "send"):
        response = client.post(f"{base}/{legal.id}/{action}", data={"csrf_token": csrf})
        assert response.status_code == 403
    assert ">Resend</button>" not in client.get(f"{base}/{legal_failed.id}").text
    resend = client.post(f"{base}/{legal_failed.id}/resend", data={"csrf_token": csrf})
    assert resend.status_code == 403
    listing = client.get(f"{base}/")
    assert f'id="select-{first.id}"' in listing.text
    assert f'id="select-{legal.id}"' not in listing.text
    bulk = {"csrf_token": csrf, "notice_ids": [str(legal.id), str(first.id)]}
    assert client.post(f"{base}/approve", data=bulk).status_code == 303
    assert books.reload(legal).status == "draft"
    assert books.reload(legal_failed).status == "failed"
    # An earlier stage: as before, the collector approves it.
    assert books.reload(first).status == "approved"

    finance = make_user()
    add_member(books.tenant, finance, "finance")
    as_finance = app.test_client()
    login(as_finance, finance)
    page = as_finance.get(f"{base}/{legal.id}")
    assert "Approve and send" in page.text
    done = as_finance.post(
        f"{base}/{legal.id}/approve", data={"csrf_token": csrf_token_from(page.text)}
    )
    assert done.status_code == 303
    approved = books.reload(legal)
    assert (approved.status, approved.approved_by) == ("approved", finance.id)


def test_the_service_refuses_a_legal_notice_without_the_permission(books):
    from app.collections.notices import services as notices
    from tenants.roles import role_grants

    legal = books.notice([books.invoice()], position=4)
    with pytest.raises(notices.LegalApprovalRequired):
        notices.approve(books.session, legal, books.owner.id)
    assert legal.status == "draft"
    notices.approve(books.session, legal, books.owner.id, may_approve_legal=True)
    assert legal.status == "approved"
    granted = {
        role
        for role in ("owner", "admin", "finance", "collector", "viewer")
        if role_grants(role, notices.LEGAL_APPROVAL)
    }
    assert granted == {"owner", "admin", "finance"}
