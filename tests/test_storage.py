"""File storage: what goes in comes out, writes are atomic, keys stay inside their tenant's
folder under the root, and two tenants never share a path."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from sqlalchemy import select

from app.clients.models import Client, DocumentVersion
from app.core.storage import InvalidKey, LocalStorage, check_key, get_storage, tenant_key
from tests.helpers import csrf_token_from, tenant_session

PDF = b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n"


@pytest.fixture
def storage(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


def test_what_is_saved_comes_back_with_its_size_and_digest(storage):
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one chunk
    key = tenant_key(7, "documents", 1, "1-abc.pdf")
    assert key == "tenant_7/documents/1/1-abc.pdf"
    size, sha256 = storage.save(key, io.BytesIO(data))
    assert (size, sha256) == (len(data), hashlib.sha256(data).hexdigest())
    with storage.open(key) as stream:
        assert stream.read() == data
    assert storage.path_for(key) == storage.root / "tenant_7" / "documents" / "1" / "1-abc.pdf"

    storage.save(key, io.BytesIO(b"replaced"))
    with storage.open(key) as stream:
        assert stream.read() == b"replaced"
    storage.delete(key)
    storage.delete(key)  # deleting what is not there is fine
    with pytest.raises(FileNotFoundError):
        storage.open(key)


def test_a_failed_write_leaves_neither_half_a_file_nor_a_temporary_one(storage):
    key = "tenant_7/documents/1/1-abc.pdf"
    storage.save(key, io.BytesIO(b"the good version"))

    class Broken(io.RawIOBase):
        def __init__(self):
            self.calls = 0

        def read(self, size=-1):
            self.calls += 1
            if self.calls > 1:
                raise OSError("connection reset")
            return b"half of the new"

    with pytest.raises(OSError):
        storage.save(key, Broken())
    with storage.open(key) as stream:
        assert stream.read() == b"the good version"
    assert [p.name for p in storage.path_for(key).parent.iterdir()] == ["1-abc.pdf"]


@pytest.mark.parametrize(
    "key",
    [
        "../outside.pdf",
        "tenant_1/../tenant_2/documents/1.pdf",
        "tenant_1/documents/../../etc/passwd",
        "tenant_1/..",
        "/etc/passwd",
        "/tenant_1/documents/1.pdf",
        "tenant_1\\..\\tenant_2\\x.pdf",
        "tenant_1/.hidden",
        "tenant_1//x.pdf",
        "tenant_1/",
        "tenant_1",
        "documents/1.pdf",  # no tenant folder
        "tenant_x/documents/1.pdf",
        "public/1.pdf",
        "tenant_1/documents/naïve.pdf",
        "tenant_1/documents/a b.pdf",
        "tenant_1/documents/x.pdf\x00.png",
        "",
        "tenant_1/" + "a" * 300,
    ],
)
def test_keys_that_could_leave_their_folder_are_refused(storage, key):
    with pytest.raises(InvalidKey):
        check_key(key)
    with pytest.raises(InvalidKey):
        storage.save(key, io.BytesIO(b"x"))
    with pytest.raises(InvalidKey):
        storage.open(key)
    with pytest.raises(InvalidKey):
        storage.delete(key)
    assert not storage.root.exists() or not any(storage.root.rglob("*"))


def test_a_symbolic_link_out_of_the_root_is_refused(storage, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    storage.root.mkdir(parents=True)
    (storage.root / "tenant_1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKey):
        storage.save("tenant_1/documents/1.pdf", io.BytesIO(b"x"))
    assert list(outside.iterdir()) == []


def test_get_storage_reads_the_configuration_each_time(app, tmp_path):
    previous = {key: app.config.get(key) for key in ("STORAGE_ROOT", "STORAGE_BACKEND")}
    try:
        app.config["STORAGE_ROOT"] = str(tmp_path / "one")
        assert get_storage(app).root == (tmp_path / "one").resolve()
        app.config["STORAGE_ROOT"] = str(tmp_path / "two")
        assert get_storage(app).root == (tmp_path / "two").resolve()
        app.config["STORAGE_BACKEND"] = "s3"
        with pytest.raises(RuntimeError, match="STORAGE_BACKEND"):
            get_storage(app)
    finally:
        app.config.update(previous)


def test_files_of_two_tenants_never_share_a_path(
    app, client, db_session, make_tenant, make_user, login, tmp_path
):
    previous = app.config.get("STORAGE_ROOT")
    app.config["STORAGE_ROOT"] = str(tmp_path / "storage")
    try:
        owner = make_user()
        tenants = [make_tenant(owner=owner), make_tenant(owner=owner)]
        login(client, owner)
        paths = []
        for tenant in tenants:
            session = tenant_session(db_session, tenant)
            # The same client id and document id in both schemas: only the folder differs.
            customer = Client(
                full_name="Same Name Pvt Ltd",
                short_name="Same",
                location="local",
                country="IN",
                currency="INR",
                payment_terms="immediate",
            )
            session.add(customer)
            session.commit()
            token = csrf_token_from(client.get(f"/t/{tenant.slug}/").text)
            response = client.post(
                f"/t/{tenant.slug}/clients/{customer.id}/documents/",
                data={
                    "csrf_token": token,
                    "title": "Contract",
                    "file": (io.BytesIO(PDF), "contract.pdf"),
                },
                content_type="multipart/form-data",
            )
            assert response.status_code == 303
            version = session.scalars(select(DocumentVersion)).one()
            assert version.storage_key.startswith(f"tenant_{tenant.id}/documents/")
            paths.append(get_storage(app).path_for(version.storage_key))
            session.close()
        first, second = paths
        assert first != second and first.read_bytes() == second.read_bytes() == PDF
        assert first.relative_to(tmp_path / "storage").parts[0] == f"tenant_{tenants[0].id}"
        assert second.relative_to(tmp_path / "storage").parts[0] == f"tenant_{tenants[1].id}"
    finally:
        app.config["STORAGE_ROOT"] = previous
