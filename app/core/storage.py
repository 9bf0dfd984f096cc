"""Where uploaded files live: one small interface, a local-disk backend by default.

Every file is addressed by a *key*, a relative path whose first segment is the tenant's schema
(``tenant_12/documents/345/2-9f1c....pdf``), so two tenants never share a path and a key
taken from one tenant's records can only ever name that tenant's files. Keys are checked
before any file system call: ASCII letters, digits, ``.``, ``_`` and ``-`` in ``/``-separated
segments, no segment starting with a dot (so no ``..``), no absolute paths, no backslashes;
the local backend also checks that the resolved path stays under its root.

``save`` writes to a temporary file next to the target and renames it into place, so a
reader never sees half a file and a crash leaves at most a stray ``.tmp-`` file; it returns the
size and the SHA-256 of what it wrote, computed while streaming (files are never held in
memory whole).

The backend is chosen by ``STORAGE_BACKEND`` (``local``, the default) and, for ``local``,
``STORAGE_ROOT`` (default ``<repo>/var/storage``, git-ignored). Every web and worker process
of a deployment must see the same root: one machine, or a shared volume.

An S3-compatible backend (AWS S3, MinIO, Cloudflare R2, Backblaze B2) plugs in behind the same
three methods, with the key used unchanged as the object key in one bucket:

- ``save``: stream through ``hashlib.sha256`` into ``upload_fileobj`` (multipart for large
  files; an object appears whole or not at all, which is the atomicity the local rename
  gives), return the counted size and the digest;
- ``open``: ``get_object(...)["Body"]`` (a streaming, file-like body);
- ``delete``: ``delete_object`` (already idempotent).

It would read its bucket, endpoint URL and credentials from configuration, be returned by
``get_storage`` for ``STORAGE_BACKEND=s3``, and call ``check_key`` like the local backend.
Nothing that uses storage would change.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy.orm import Session

from app.core.transaction_hooks import on_commit, on_rollback
from tenants.binding import schema_for_tenant_id

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "var" / "storage"
CHUNK = 1024 * 1024
MAX_KEY_LENGTH = 255  # the storage_key columns are VARCHAR(255)
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_KEY = re.compile(rf"^tenant_[0-9]+(/{_SEGMENT})+$")


class InvalidKey(ValueError):
    """A key that could name a file outside its tenant's folder (or outside the root)."""


class Storage(Protocol):
    def save(self, key: str, stream: BinaryIO) -> tuple[int, str]:
        """Store everything `stream` yields under `key` (replacing what was there);
        return (size in bytes, SHA-256 hex digest)."""

    def open(self, key: str) -> BinaryIO:
        """A binary stream of the file (the caller closes it); FileNotFoundError if none."""

    def delete(self, key: str) -> None:
        """Remove the file; no error if it is not there."""


def check_key(key: str) -> str:
    if (
        not isinstance(key, str)
        or len(key) > MAX_KEY_LENGTH
        or ".." in key
        or not _KEY.fullmatch(key)
    ):
        raise InvalidKey(f"not a storage key: {key!r}")
    return key


def tenant_key(tenant_id: int, *parts: str | int) -> str:
    """A key inside the tenant's folder: tenant_key(12, "documents", 345, "1-ab.pdf")."""
    return check_key("/".join([schema_for_tenant_id(tenant_id), *(str(p) for p in parts)]))


class LocalStorage:
    """Files under a root folder on local disk (or a shared volume)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def path_for(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        # Resolving follows symbolic links: a link inside the root that points elsewhere is
        # refused like a "..".
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidKey(f"key {key!r} leaves the storage root")
        return path

    def save(self, key: str, stream: BinaryIO) -> tuple[int, str]:
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        _fsync_directory(path.parent)
        return size, digest.hexdigest()

    def open(self, key: str) -> BinaryIO:
        return self.path_for(key).open("rb")

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_for(key).unlink()


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (the directory entry), where the OS allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# Files written or dropped inside a database transaction --------------------------------------
# A file and the row that names it must live and die together: a file written for a
# transaction that rolls back is removed, and a file replaced or dropped by a transaction is
# deleted only once that transaction has committed.


def save_in_transaction(
    session: Session, storage: Storage, key: str, stream: BinaryIO
) -> tuple[int, str]:
    """`storage.save`, undone if the session's transaction rolls back."""
    result = storage.save(key, stream)
    on_rollback(session, _delete_files, (storage, key))
    return result


def delete_after_commit(session: Session, storage: Storage, key: str) -> None:
    """Delete the file once the session's transaction has committed (never if it rolls back)."""
    on_commit(session, _delete_files, (storage, key))


def _delete_files(files: list[tuple[Storage, str]]) -> None:
    for storage, key in files:
        storage.delete(key)


def get_storage(app) -> Storage:
    """The configured backend. Reads the configuration on every call, so a test (or a
    command) that points STORAGE_ROOT elsewhere takes effect at once."""
    return storage_for(app.config)


def storage_for(config) -> Storage:
    """The backend `config` names (for code handed the configuration, not the app)."""
    backend = config.get("STORAGE_BACKEND") or os.environ.get("STORAGE_BACKEND") or "local"
    if backend != "local":
        raise RuntimeError(f"unknown STORAGE_BACKEND {backend!r} (only 'local' exists so far)")
    root = config.get("STORAGE_ROOT") or os.environ.get("STORAGE_ROOT") or DEFAULT_ROOT
    return LocalStorage(root)
