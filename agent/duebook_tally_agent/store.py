"""Where the agent keeps what pairing gave it: Duebook's address and the agent's token. The
token goes to the operating system's credential store when `keyring` is installed and has a
usable backend; otherwise to a file in the user's configuration folder that only the user can
read (created with mode 0600; on Windows the profile folder is the user's own)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

SERVICE = "duebook-tally-agent"


def config_folder() -> Path:
    base = os.environ.get("DUEBOOK_AGENT_HOME")
    if base:
        return Path(base)
    if os.name == "nt":
        return Path(os.environ.get("APPDATA", Path.home())) / "Duebook Tally Agent"
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / SERVICE


def _keyring():
    if os.environ.get("DUEBOOK_AGENT_NO_KEYRING"):
        return None
    try:
        import keyring  # optional: the `keyring` extra
        from keyring.errors import KeyringError
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except KeyringError:
        return None
    # The fail and null backends store nothing: fall back to the file.
    if type(backend).__module__.startswith(("keyring.backends.fail", "keyring.backends.null")):
        return None
    return keyring


class Store:
    def __init__(self, folder: Path | None = None):
        self.folder = folder or config_folder()
        self.settings_file = self.folder / "agent.json"
        self.token_file = self.folder / "token"

    def save(self, server: str, token: str) -> str:
        """Keep the pairing; says where the token went."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(json.dumps({"server": server}))
        ring = _keyring()
        if ring is not None:
            ring.set_password(SERVICE, server, token)
            self.token_file.unlink(missing_ok=True)
            return "the system's credential store"
        descriptor = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(token)
        return str(self.token_file)

    def load(self) -> tuple[str, str] | None:
        if not self.settings_file.exists():
            return None
        server = json.loads(self.settings_file.read_text())["server"]
        ring = _keyring()
        token = ring.get_password(SERVICE, server) if ring is not None else None
        if token is None and self.token_file.exists():
            token = self.token_file.read_text().strip()
        return (server, token) if token else None

    def forget(self) -> None:
        found = self.load()
        ring = _keyring()
        if found and ring is not None:
            from keyring.errors import PasswordDeleteError

            with contextlib.suppress(PasswordDeleteError):  # nothing stored there is fine too
                ring.delete_password(SERVICE, found[0])
        self.token_file.unlink(missing_ok=True)
        self.settings_file.unlink(missing_ok=True)
