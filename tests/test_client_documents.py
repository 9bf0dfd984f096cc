"""Client documents through the real routes: upload, versions, download, validation, roles,
soft delete, the dashboard's expiring list, and the scheduled announcement to the engagement
manager through the outbox, the worker and the SMTP server."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.clients import documents
from app.clients.models import Client, Document, DocumentVersion
from app.core.clock import local_date
from app.core.storage import get_storage
from jobs.queues import get_queue
from jobs.tasks import announce_expiring_documents_all
from tests.helpers import csrf_token_from, tenant_session

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17


def docx_bytes() -> bytes:
    """The same bytes at every call: zip entries stamped with a fixed time, not the clock."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in (
            ("[Content_Types].xml", "<Types/>"),
            ("word/document.xml", "<w:document/>"),
        ):
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), content)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _own_storage(storage_root):
    """Files of this test go to a folder of its own."""
    return storage_root


def add_client(db_session, tenant, short_name="Kaveri", manager=None) -> int:
    session = tenant_session(db_session, tenant)
    client = Client(
        full_name=f"{short_name} Builders Pvt Ltd",
        short_name=short_name,
        location="local",
        country="IN",
        currency="INR",
        payment_terms="immediate",
        engagement_manager_user_id=manager.id if manager else None,
    )
    session.add(client)
    session.commit()
    client_id = client.id
    session.close()
    return client_id


def add_document(db_session, tenant, client_id, title, expires_on, notice_for=None) -> int:
    session = tenant_session(db_session, tenant)
    document = Document(
        client_id=client_id, title=title, expires_on=expires_on, expiry_notice_for=notice_for
    )
    session.add(document)
    session.flush()
    session.add(
        DocumentVersion(
            document_id=document.id,
            version=1,
            storage_key=f"{tenant.schema}/documents/{document.id}/1-x.pdf",
            filename="x.pdf",
            content_type="application/pdf",
            size_bytes=1,
            sha256="0" * 64,
        )
    )
    session.commit()
    document_id = document.id
    session.close()
    return document_id


@pytest.fixture
def owner(client, make_tenant, make_user, login):
    """A logged-in owner of a fresh tenant: (test client, tenant, owner, CSRF token)."""
    user = make_user(full_name="Meera Owner")
    tenant = make_tenant(owner=user)
    login(client, user)
    token = csrf_token_from(client.get(f"/t/{tenant.slug}/").text)
    return client, tenant, user, token


def docs_url(tenant, client_id) -> str:
    return f"/t/{tenant.slug}/clients/{client_id}/documents/"


def upload(
    http,
    tenant,
    client_id,
    token,
    *,
    title="Master services agreement",
    filename="contract.pdf",
    content=PDF,
    expires_on="",
    category="Contract",
    headers=None,
    with_file=True,
):
    data = {"csrf_token": token, "title": title, "category": category, "expires_on": expires_on}
    if with_file:
        data["file"] = (io.BytesIO(content), filename)
    return http.post(
        docs_url(tenant, client_id),
        data=data,
        headers=headers or {},
        content_type="multipart/form-data",
    )


def upload_version(http, tenant, client_id, document_id, token, content, filename, **fields):
    data = {
        "csrf_token": token,
        f"v{document_id}-file": (io.BytesIO(content), filename),
        **{f"v{document_id}-{k}": v for k, v in fields.items()},
    }
    return http.post(
        f"{docs_url(tenant, client_id)}{document_id}/versions",
        data=data,
        content_type="multipart/form-data",
    )


def download_url(tenant, client_id, document_id, version) -> str:
    return f"{docs_url(tenant, client_id)}{document_id}/versions/{version}/download"


def only_document(db_session, tenant) -> Document:
    return tenant_session(db_session, tenant).scalars(select(Document)).one()


def stored_files(root) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_upload_then_download_returns_the_same_bytes(owner, db_session, storage_root):
    http, tenant, user, token = owner
    client_id = add_client(db_session, tenant)
    expires = local_date(tenant.time_zone) + timedelta(days=12)
    response = upload(http, tenant, client_id, token, expires_on=expires.isoformat())
    assert response.status_code == 303

    page = http.get(docs_url(tenant, client_id))
    assert page.status_code == 200 and "<html" in page.text
    assert "Master services agreement" in page.text and "expires in 12 days" in page.text
    document = only_document(db_session, tenant)
    [version] = document.versions
    assert (version.version, version.filename, version.uploaded_by_user_id) == (
        1,
        "contract.pdf",
        user.id,
    )
    assert version.storage_key.startswith(f"{tenant.schema}/documents/{document.id}/1-")
    assert (storage_root / version.storage_key).read_bytes() == PDF

    download = http.get(download_url(tenant, client_id, document.id, 1))
    assert download.status_code == 200
    assert download.data == PDF
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"] == "attachment; filename=contract.pdf"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in download.headers["Cache-Control"]


def test_tab_is_a_fragment_for_htmx_and_keeps_the_original_file_name(owner, db_session):
    http, tenant, _, token = owner
    client_id = add_client(db_session, tenant)
    htmx = {"HX-Request": "true"}
    response = upload(
        http,
        tenant,
        client_id,
        token,
        title="Angebot",
        filename="Angebot für Kunde.pdf",
        headers=htmx,
    )
    assert response.status_code == 303
    fragment = http.get(response.headers["Location"], headers=htmx)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'id="client-documents"' in fragment.text and "Angebot für Kunde.pdf" in fragment.text
    assert "Angebot uploaded." in fragment.headers["HX-Trigger"]
    document = only_document(db_session, tenant)
    download = http.get(download_url(tenant, client_id, document.id, 1))
    assert (
        "filename*=UTF-8''Angebot%20f%C3%BCr%20Kunde.pdf"
        in (download.headers["Content-Disposition"])
    )


def test_new_version_becomes_latest_and_old_versions_stay_downloadable(owner, db_session):
    http, tenant, _, token = owner
    client_id = add_client(db_session, tenant)
    upload(http, tenant, client_id, token, title="Site plan", filename="plan.pdf")
    document_id = only_document(db_session, tenant).id
    response = upload_version(http, tenant, client_id, document_id, token, PNG, "plan-v2.png")
    assert response.status_code == 303
    response = upload_version(
        http, tenant, client_id, document_id, token, docx_bytes(), "plan-v3.docx"
    )
    assert response.status_code == 303

    document = only_document(db_session, tenant)
    assert [v.version for v in document.versions] == [3, 2, 1]
    page = http.get(docs_url(tenant, client_id)).text
    assert "plan-v3.docx" in page and "3 versions" in page
    latest = http.get(download_url(tenant, client_id, document_id, 3))
    assert latest.data == docx_bytes() and latest.headers["Content-Type"] == (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    )
    assert http.get(download_url(tenant, client_id, document_id, 2)).data == PNG
    assert http.get(download_url(tenant, client_id, document_id, 1)).data == PDF
    assert http.get(download_url(tenant, client_id, document_id, 4)).status_code == 404


def test_viewer_can_download_but_not_upload_or_delete(
    app, owner, db_session, make_user, add_member, login
):
    http, tenant, _, token = owner
    client_id = add_client(db_session, tenant)
    upload(http, tenant, client_id, token)
    document_id = only_document(db_session, tenant).id
    viewer_user = make_user()
    add_member(tenant, viewer_user, role="viewer")
    viewer = app.test_client()
    login(viewer, viewer_user)
    viewer_token = csrf_token_from(viewer.get(f"/t/{tenant.slug}/").text)

    page = viewer.get(docs_url(tenant, client_id))
    assert page.status_code == 200 and "Master services agreement" in page.text
    assert "Upload a document" not in page.text and "Upload a new version" not in page.text
    assert viewer.get(download_url(tenant, client_id, document_id, 1)).data == PDF
    assert upload(viewer, tenant, client_id, viewer_token).status_code == 403
    assert (
        upload_version(
            viewer, tenant, client_id, document_id, viewer_token, PDF, "x.pdf"
        ).status_code
        == 403
    )
    deleted = viewer.post(
        f"{docs_url(tenant, client_id)}{document_id}/delete", data={"csrf_token": viewer_token}
    )
    assert deleted.status_code == 403
    document = only_document(db_session, tenant)
    assert document.deleted_at is None and len(document.versions) == 1


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"content": b""}, "file", "The file is empty."),
        ({"with_file": False}, "file", "Choose a file to upload."),
        (
            {"filename": "setup.exe", "content": b"MZ\x90\x00"},
            "file",
            "Upload a PDF, PNG, JPG, DOCX, XLSX, CSV or TXT file.",
        ),
        (
            {"filename": "invoice.pdf", "content": b"<html><script>alert(1)</script>"},
            "file",
            "This file&#39;s content is not a valid .pdf file.",
        ),
        (
            {"filename": "sheet.xlsx", "content": docx_bytes()},
            "file",
            "This file&#39;s content is not a valid .xlsx file.",
        ),
        (
            {"filename": "notes.txt", "content": b"\x00\x01binary"},
            "file",
            "This file&#39;s content is not a valid .txt file.",
        ),
        (
            {"content": b"%PDF-" + b"0" * (documents.MAX_FILE_BYTES - 4)},
            "file",
            "The file is larger than 25 MB.",
        ),
        ({"expires_on": "past"}, "expires_on", "The expiry date cannot be in the past."),
        ({"expires_on": "31/12/2030"}, "expires_on", "Enter the date as YYYY-MM-DD."),
        ({"title": " x "}, "title", "The title needs 2 to 191 characters."),
        ({"title": ""}, "title", "Give the document a title."),
    ],
    ids=[
        "empty",
        "missing",
        "wrong-type",
        "pdf-that-is-not",
        "docx-named-xlsx",
        "binary-txt",
        "oversized",
        "past-expiry",
        "unreadable-date",
        "short-title",
        "no-title",
    ],
)
def test_validation_errors_are_shown_next_to_the_field(
    owner, db_session, storage_root, fields, field, message
):
    http, tenant, _, token = owner
    client_id = add_client(db_session, tenant)
    if fields.get("expires_on") == "past":
        fields = {
            **fields,
            "expires_on": (local_date(tenant.time_zone) - timedelta(days=1)).isoformat(),
        }
    response = upload(http, tenant, client_id, token, **fields)
    assert response.status_code == 422
    error = response.text.split(f'id="{field}-error"', 1)[1].split("</p>", 1)[0]
    assert message in error
    assert f'aria-describedby="{field}-hint {field}-error"' in response.text or (
        f'aria-describedby="{field}-error"' in response.text
    )
    assert tenant_session(db_session, tenant).scalars(select(Document)).all() == []
    assert stored_files(storage_root) == []


def test_a_body_over_the_limit_is_refused_unread_and_explained(owner, db_session, storage_root):
    http, tenant, _, token = owner
    client_id = add_client(db_session, tenant)
    huge = b"%PDF-" + b"0" * (documents.MAX_FILE_BYTES + 2 * 1024 * 1024)
    response = upload(http, tenant, client_id, token, content=huge)
    assert response.status_code == 422
    assert "The file is larger than 25 MB." in response.text.split('id="file-error"', 1)[1]
    assert tenant_session(db_session, tenant).scalars(select(Document)).all() == []
    assert stored_files(storage_root) == []


def test_version_errors_are_shown_next_to_that_documents_field(owner, db_session):
    http, tenant, _, token = owner
    client_id = add_client(db_session, tenant)
    upload(http, tenant, client_id, token)
    document_id = only_document(db_session, tenant).id
    response = upload_version(http, tenant, client_id, document_id, token, b"", "empty.pdf")
    assert response.status_code == 422
    assert "The file is empty." in response.text.split(f'id="v{document_id}-file-error"')[1]
    assert len(only_document(db_session, tenant).versions) == 1


def test_another_clients_document_through_this_clients_url_is_404(owner, db_session):
    http, tenant, _, token = owner
    mine, other = add_client(db_session, tenant, "Mine"), add_client(db_session, tenant, "Other")
    upload(http, tenant, other, token)
    document_id = only_document(db_session, tenant).id
    base = f"{docs_url(tenant, mine)}{document_id}"
    assert http.get(download_url(tenant, mine, document_id, 1)).status_code == 404
    assert upload_version(http, tenant, mine, document_id, token, PDF, "x.pdf").status_code == 404
    assert http.post(f"{base}/delete", data={"csrf_token": token}).status_code == 404
    assert http.get(docs_url(tenant, 987654321)).status_code == 404
    assert upload(http, tenant, 987654321, token).status_code == 404
    assert only_document(db_session, tenant).deleted_at is None


def test_soft_deleted_document_disappears_but_is_kept(owner, db_session, storage_root):
    http, tenant, _, token = owner
    client_id = add_client(db_session, tenant)
    upload(http, tenant, client_id, token, title="Old lease")
    document_id = only_document(db_session, tenant).id
    response = http.post(
        f"{docs_url(tenant, client_id)}{document_id}/delete", data={"csrf_token": token}
    )
    assert response.status_code == 303
    page = http.get(docs_url(tenant, client_id)).text
    assert "Old lease deleted." in page  # the flash message
    assert f'id="document-{document_id}"' not in page and "No documents yet." in page
    assert http.get(download_url(tenant, client_id, document_id, 1)).status_code == 404
    kept = only_document(db_session, tenant)
    assert kept.deleted_at is not None
    assert (storage_root / kept.versions[0].storage_key).read_bytes() == PDF


def test_dashboard_lists_documents_expiring_within_30_days(owner, db_session):
    http, tenant, _, token = owner
    client_id = add_client(db_session, tenant, "Godavari")
    today = local_date(tenant.time_zone)
    for title, days in (("Insurance soon", 10), ("Licence later", 60)):
        response = upload(
            http,
            tenant,
            client_id,
            token,
            title=title,
            expires_on=(today + timedelta(days=days)).isoformat(),
        )
        assert response.status_code == 303
    page = http.get(f"/t/{tenant.slug}/").text
    tile = page.split('id="expiring-documents"', 1)[1].split("</article>", 1)[0]
    assert "Godavari" in tile and "Insurance soon" in tile and "expires in 10 days" in tile
    assert "Licence later" not in tile
    assert f'/clients/{client_id}?tab=documents"' in tile  # opens the client's documents


def test_a_duplicate_version_number_takes_the_next_one(app, db_session, make_tenant):
    tenant = make_tenant()
    client_id = add_client(db_session, tenant)
    document_id = add_document(db_session, tenant, client_id, "Contract", None)
    session = tenant_session(db_session, tenant)
    storage = get_storage(app)
    document = session.get(Document, document_id)
    session.add(
        DocumentVersion(
            document_id=document_id,
            version=2,
            storage_key="tenant_1/x",
            filename="x.pdf",
            content_type="application/pdf",
            size_bytes=1,
            sha256="0" * 64,
        )
    )
    session.flush()
    # Another upload committed version 2 after this one read the latest number (1).
    real_scalar, stale = session.scalar, iter([1])
    session.scalar = lambda statement: next(stale, None) or real_scalar(statement)
    with app.app_context():
        version = documents.upload_version(
            session,
            storage,
            document,
            today=local_date(tenant.time_zone),
            upload=documents.UploadedFile("v.pdf", io.BytesIO(PDF)),
        )
    assert version.version == 3
    assert [p.name.split("-")[0] for p in stored_files(storage.root)] == ["3"]  # no orphan
    session.rollback()  # the transaction's files go with it
    assert stored_files(storage.root) == []
    session.close()


def enqueue_daily_announcement(app):
    with app.app_context():
        get_queue("default").enqueue(announce_expiring_documents_all)


def test_scheduled_announcement_mails_the_engagement_manager_once(
    app, db_session, make_tenant, make_user, add_member, run_jobs, received_mail
):
    owner = make_user(full_name="Meera Owner")
    tenant = make_tenant(owner=owner, name="Kaveri Traders")
    manager = make_user(full_name="Ravi Manager")
    add_member(tenant, manager, role="finance")
    today = local_date(tenant.time_zone)
    managed = add_client(db_session, tenant, "Godavari", manager=manager)
    unmanaged = add_client(db_session, tenant, "Krishna")
    soon = add_document(db_session, tenant, managed, "Insurance policy", today + timedelta(10))
    add_document(db_session, tenant, managed, "Trade licence", today + timedelta(60))
    add_document(
        db_session,
        tenant,
        managed,
        "Told already",
        today + timedelta(5),
        notice_for=today + timedelta(5),
    )
    add_document(db_session, tenant, unmanaged, "Unmanaged lease", today + timedelta(3))

    enqueue_daily_announcement(app)
    run_jobs()
    [message] = received_mail()
    assert message["To"] == manager.email
    assert message["Subject"] == "1 client document about to expire · Kaveri Traders"
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "Godavari: Insurance policy" in body and "in 10 days" in body
    assert f"/t/{tenant.slug}/clients/{managed}" in body
    for absent in ("Trade licence", "Told already", "Unmanaged lease"):
        assert absent not in body

    enqueue_daily_announcement(app)  # the same day again: nothing new to say
    run_jobs()
    assert len(received_mail()) == 1
    session = tenant_session(db_session, tenant)
    assert session.get(Document, soon).expiry_notice_for == today + timedelta(10)

    # The unmanaged lease is on the dashboard all the same.
    with app.app_context():
        listed = [e.document.title for e in documents.expiring_documents(session, today)]
    assert listed == ["Unmanaged lease", "Told already", "Insurance policy"]
    session.close()


def test_a_new_expiry_date_is_announced_again(
    app, db_session, make_tenant, make_user, add_member, run_jobs, received_mail
):
    tenant = make_tenant()
    manager = make_user()
    add_member(tenant, manager, role="admin")
    today = local_date(tenant.time_zone)
    client_id = add_client(db_session, tenant, manager=manager)
    add_document(
        db_session,
        tenant,
        client_id,
        "Fire NOC",
        today + timedelta(2),
        notice_for=today + timedelta(2),
    )
    renewed = add_document(
        db_session,
        tenant,
        client_id,
        "Pollution certificate",
        today + timedelta(20),
        notice_for=today + timedelta(1),
    )
    enqueue_daily_announcement(app)
    run_jobs()
    [message] = received_mail()
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "Pollution certificate" in body and "Fire NOC" not in body
    session = tenant_session(db_session, tenant)
    assert session.get(Document, renewed).expiry_notice_for == today + timedelta(20)
    session.close()


def test_a_manager_who_left_the_workspace_is_not_told(
    app, db_session, make_tenant, make_user, add_member, run_jobs, received_mail
):
    tenant = make_tenant()
    manager = make_user()
    membership = add_member(tenant, manager, role="finance")
    membership.active = False
    db_session.commit()
    client_id = add_client(db_session, tenant, manager=manager)
    document_id = add_document(
        db_session, tenant, client_id, "Contract", local_date(tenant.time_zone) + timedelta(7)
    )
    enqueue_daily_announcement(app)
    run_jobs()
    assert received_mail() == []
    session = tenant_session(db_session, tenant)
    assert session.get(Document, document_id).expiry_notice_for is None
    session.close()
