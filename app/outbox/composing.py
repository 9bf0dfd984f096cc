"""Messages composed when they go out: the port through which delivery (app.messaging) asks
the area that wrote a message to write it again from today's figures, without importing that
area. A message about money owed (a reminder, a notice) may wait hours for its sending
window, days for a retry, or be sent again by a person; the client must read what is owed
when it arrives, not what was owed when it was queued. The area names its composer in the
message's payload (`payload["composer"]`) and registers it when the app is made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Composed:
    """A message as it is to go now. `withdrawn`: why it is no longer to be sent at all (the
    invoice was paid in the meantime); the rest is then empty."""

    subject: str = ""
    text: str = ""
    html: str | None = None
    # Payload entries that changed with the figures (WhatsApp or SMS parameters).
    payload: dict = field(default_factory=dict)
    withdrawn: str | None = None


# (session bound to the message's tenant, the tenant, the outbox row) -> the message now.
Composer = Callable[[Session, object, object], Composed]

_composers: dict[str, Composer] = {}


def register_composer(name: str, composer: Composer) -> None:
    _composers[name] = composer


def compose_now(session: Session, tenant, message) -> Composed | None:
    """The message as its composer writes it now; None for a message written once for all
    (no composer named, or none registered under that name)."""
    name = (message.payload or {}).get("composer")
    composer = _composers.get(name) if name else None
    if composer is None:
        return None
    return composer(session, tenant, message)
