"""An SFTP client for folders a tenant points us at (a bank's host-to-host service), through
paramiko's transport over a socket that `app.core.outbound` connected: the host is checked as
public (or in OUTBOUND_ALLOWED_NETWORKS) at connect time, like a tenant's SMTP server.

The server's host key is never trusted on first use: a connection without a confirmed
fingerprint stops after the key exchange with `HostKeyUnconfirmed` (carrying the key the
server presented, for the person to confirm), and one whose server presents another key stops
with `HostKeyChanged`, before any password or key is sent. Every failure is an `SftpError`
whose message is meant for the person. Nothing here deletes or writes a remote file.

This module imports no business area."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from app.core import outbound

TIMEOUT_SECONDS = 20


class SftpError(Exception):
    """The pull could not go on; the message says why, for the person."""


class RemoteFileTooLarge(SftpError):
    """One file is over the limit; the others can still be fetched."""


class HostKeyUnconfirmed(SftpError):
    def __init__(self, key_type: str, fingerprint: str):
        self.key_type, self.fingerprint = key_type, fingerprint
        super().__init__(
            f"The server presented the {key_type} host key {fingerprint}: confirm it is your "
            "bank's before Duebook logs in."
        )


class HostKeyChanged(SftpError):
    def __init__(self, key_type: str, fingerprint: str, expected: str):
        self.key_type, self.fingerprint = key_type, fingerprint
        super().__init__(
            f"The server's host key changed: it presented {key_type} {fingerprint}, not the "
            f"confirmed {expected}. Nothing was fetched. Ask your bank whether they changed "
            "it; confirm the new key only if they did."
        )


@dataclass(frozen=True)
class SftpLogin:
    host: str
    port: int
    username: str
    password: str | None = None
    private_key: str | None = None
    private_key_passphrase: str | None = None
    host_key_fingerprint: str | None = None


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    mtime: int


@dataclass(frozen=True)
class FetchedFile:
    data: bytes
    sha256: str


def load_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    """A private key pasted as OpenSSH or PEM text. Raises SftpError in words."""
    data, password = text.strip().encode() + b"\n", (passphrase or "").encode() or None
    try:
        try:
            loaded = serialization.load_ssh_private_key(data, password=password)
        except ValueError:
            loaded = serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:  # a passphrase missing, or given for a key without one
        raise SftpError("The passphrase does not fit this key.") from exc
    except ValueError as exc:
        raise SftpError(
            "This is not a private key Duebook reads (OpenSSH or PEM: RSA, ECDSA, Ed25519), "
            "or the passphrase is wrong."
        ) from exc
    kinds = {
        rsa.RSAPrivateKey: paramiko.RSAKey,
        ed25519.Ed25519PrivateKey: paramiko.Ed25519Key,
        ec.EllipticCurvePrivateKey: paramiko.ECDSAKey,
    }
    key_class = next((cls for kind, cls in kinds.items() if isinstance(loaded, kind)), None)
    if key_class is None:
        raise SftpError("Use an RSA, ECDSA or Ed25519 key.")
    try:
        return key_class.from_private_key(io.StringIO(data.decode()), password=passphrase or None)
    except paramiko.SSHException as exc:
        raise SftpError(f"The private key could not be read: {exc}") from exc


class SftpFolder:
    def __init__(self, client: paramiko.SFTPClient, folder: str):
        self._client, self._folder = client, folder.rstrip("/") or "/"

    def _path(self, name: str) -> str:
        return f"{self._folder}/{name}" if self._folder != "/" else f"/{name}"

    def files(self, pattern: str) -> list[RemoteFile]:
        """The folder's plain files whose name matches `pattern` (case-insensitively), oldest
        first, so statements import in the order the bank wrote them."""
        try:
            entries = self._client.listdir_attr(self._folder)
        except OSError as exc:
            raise SftpError(f"The folder {self._folder} cannot be listed: {exc}") from exc
        found = [
            RemoteFile(entry.filename, entry.st_size or 0, entry.st_mtime or 0)
            for entry in entries
            if entry.st_mode is not None
            and stat.S_ISREG(entry.st_mode)
            and fnmatch.fnmatch(entry.filename.lower(), pattern.lower())
        ]
        return sorted(found, key=lambda f: (f.mtime, f.name))

    def fetch(self, name: str, max_bytes: int) -> FetchedFile:
        """The file's bytes, read only (never renamed or deleted). Raises SftpError when it is
        bigger than `max_bytes` or cannot be read."""
        try:
            with self._client.open(self._path(name), "rb") as remote:
                data = remote.read(max_bytes + 1)
        except OSError as exc:
            raise SftpError(f"{name} cannot be read: {exc}") from exc
        if len(data) > max_bytes:
            raise RemoteFileTooLarge(
                f"Larger than {max_bytes // (1024 * 1024)} MB: not read. Ask the bank for "
                "daily statements, or upload it in parts."
            )
        return FetchedFile(data, hashlib.sha256(data).hexdigest())


def _checked_host_key(transport: paramiko.Transport, expected: str | None) -> None:
    key = transport.get_remote_server_key()
    key_type, fingerprint = key.get_name(), key.fingerprint
    if not expected:
        raise HostKeyUnconfirmed(key_type, fingerprint)
    if fingerprint != expected:
        raise HostKeyChanged(key_type, fingerprint, expected)


def _log_in(transport: paramiko.Transport, login: SftpLogin) -> None:
    try:
        if login.private_key:
            transport.auth_publickey(
                login.username, load_private_key(login.private_key, login.private_key_passphrase)
            )
        else:
            transport.auth_password(login.username, login.password or "")
    except paramiko.AuthenticationException as exc:
        raise SftpError(
            f"The server refused the user name or {'key' if login.private_key else 'password'}."
        ) from exc


@contextmanager
def open_folder(login: SftpLogin, folder: str, allowed_networks=()) -> Iterator[SftpFolder]:
    """Connect (address checked), check the host key, log in and open `folder`. Raises
    SftpError (HostKeyUnconfirmed, HostKeyChanged among them)."""
    try:
        sock = outbound.connect(login.host, login.port, TIMEOUT_SECONDS, allowed_networks)
    except outbound.DestinationRefused as exc:
        raise SftpError(
            f"{login.host} cannot be reached: private and local network addresses are "
            "refused, and the name must resolve."
        ) from exc
    except OSError as exc:
        raise SftpError(f"{login.host}:{login.port} cannot be reached: {exc}") from exc
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = transport.handshake_timeout = TIMEOUT_SECONDS
        transport.auth_timeout = TIMEOUT_SECONDS
        try:
            transport.start_client(timeout=TIMEOUT_SECONDS)
        except (paramiko.SSHException, EOFError, TimeoutError, OSError) as exc:
            raise SftpError(f"{login.host}:{login.port} did not answer as an SFTP server.") from exc
        _checked_host_key(transport, login.host_key_fingerprint)
        _log_in(transport, login)
        try:
            client = paramiko.SFTPClient.from_transport(transport)
        except (paramiko.SSHException, OSError) as exc:
            raise SftpError(f"The server refused an SFTP session: {exc}") from exc
        client.get_channel().settimeout(TIMEOUT_SECONDS)
        with client:
            yield SftpFolder(client, folder)
    except (paramiko.SSHException, EOFError, TimeoutError) as exc:
        raise SftpError(f"The connection to {login.host} broke off: {exc}") from exc
    finally:
        transport.close()
