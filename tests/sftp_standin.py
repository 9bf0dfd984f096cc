"""A bank's SFTP server for the tests: paramiko's server side on 127.0.0.1 over a temporary
folder, read-only (listing, stat, reading; removing, renaming and writing are refused and
counted), with one user who logs in by password or by public key, and a host key the test can
replace to play a server whose key changed."""

from __future__ import annotations

import io
import os
import socket
import threading
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def new_ed25519_key() -> tuple[paramiko.Ed25519Key, str]:
    """A fresh key and its private half as OpenSSH text (what a person pastes)."""
    text = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )
    return paramiko.Ed25519Key.from_private_key(io.StringIO(text)), text


class _Handle(paramiko.SFTPHandle):
    def stat(self):
        return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))


class _ReadOnlyFolder(paramiko.SFTPServerInterface):
    def __init__(self, server, *, standin: SftpStandin, **kwargs):
        super().__init__(server, **kwargs)
        self.standin = standin

    def _local(self, path: str) -> Path:
        local = (self.standin.root / path.lstrip("/")).resolve()
        if self.standin.root.resolve() not in (local, *local.parents):
            raise PermissionError(path)
        return local

    def list_folder(self, path):
        try:
            folder = self._local(path)
            found = []
            for entry in sorted(folder.iterdir()):
                attributes = paramiko.SFTPAttributes.from_stat(entry.stat())
                attributes.filename = entry.name
                found.append(attributes)
            return found
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 2)

    def stat(self, path):
        try:
            return paramiko.SFTPAttributes.from_stat(self._local(path).stat())
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 2)

    lstat = stat

    def open(self, path, flags, attr):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
            self.standin.refused_changes += 1
            return paramiko.SFTP_PERMISSION_DENIED
        try:
            handle = _Handle(flags)
            handle.readfile = self._local(path).open("rb")
            handle.filename = path
            return handle
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 2)

    def _refuse(self, *args):
        self.standin.refused_changes += 1
        return paramiko.SFTP_PERMISSION_DENIED

    remove = rename = posix_rename = mkdir = rmdir = chattr = symlink = _refuse


class _Authority(paramiko.ServerInterface):
    def __init__(self, standin: SftpStandin):
        self.standin = standin

    def get_allowed_auths(self, username):
        return "password,publickey"

    def check_auth_password(self, username, password):
        if username == self.standin.username and password == self.standin.password:
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_auth_publickey(self, username, key):
        known = self.standin.client_public_key
        if username == self.standin.username and known is not None and key == known:
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class SftpStandin:
    def __init__(self, root: Path, username: str = "duebook", password: str = "bank-h2h-pass"):
        self.root, self.username, self.password = root, username, password
        self.host_key, _ = new_ed25519_key()
        self.client_public_key: paramiko.PKey | None = None
        self.refused_changes = 0
        self.logins = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        # accept() wakes up now and then to see whether the stand-in was closed (closing a
        # listening socket does not wake a thread blocked in accept on Linux).
        self._listener.settimeout(0.1)
        self._closed = threading.Event()
        self.port = self._listener.getsockname()[1]
        self._transports: list[paramiko.Transport] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def fingerprint(self) -> str:
        return self.host_key.fingerprint

    def change_host_key(self) -> None:
        self.host_key, _ = new_ed25519_key()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            transport = paramiko.Transport(sock)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler(
                "sftp", paramiko.SFTPServer, _ReadOnlyFolder, standin=self
            )
            self._transports.append(transport)
            try:
                transport.start_server(server=_Authority(self))
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for transport in self._transports:
            transport.close()
