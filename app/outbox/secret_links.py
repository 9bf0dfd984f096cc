"""One-time links in messages (invitations, password resets, sign-up confirmations): only
the recipient ever sees them.

Following such a link is what proves that someone controls the mailbox it was sent to, so
the link must exist nowhere else. The outbox row holds the message with SECRET_LINK where the
link goes, and the link itself sealed with the SECRETS_KEYS (Fernet, as integration
credentials are); the worker opens the seal only to hand the message to the mail server
(the platform's own, never a workspace's: see delivery), and the seal is erased once the
message is sent or given up on. The Messages pages show the placeholder as words, and the
access log shows the token part of these links' paths as "[hidden]"."""

from __future__ import annotations

import re
from html import escape

from app.core.crypto import decrypt_secrets, encrypt_secrets

SECRET_LINK = "[[one-time-link]]"
HIDDEN_LINK = "(link hidden: only the recipient can see it)"

# Paths whose last part is a secret: invitation, reset and sign-up links, unsubscribe links,
# pay links (/pay/<token>/...: the token opens what a client owes), and the secret parts of
# webhook addresses; also percent-encoded, as in a log-in page's
# ?next=%2Finvitations%2F<token>.
_SLASH = r"(?:/|%2[Ff])"
_SECRET_PATH = re.compile(
    rf"({_SLASH}(?:invitations|password{_SLASH}reset|signup{_SLASH}confirm|u|pay|hooks{_SLASH}msg91"
    rf"|hooks{_SLASH}email{_SLASH}bounces){_SLASH})[^/?#&%\s\"']+"
)


def seal_link(link: str) -> str:
    return encrypt_secrets({"link": link})


def open_link(sealed: str) -> str:
    """The link; raises crypto.SecretsUnreadable when no configured key opens the seal."""
    return decrypt_secrets(sealed)["link"]


def fill_in(body: str | None, link: str, *, html: bool = False) -> str | None:
    """The body as the recipient gets it, with the link where the placeholder is."""
    if body is None:
        return None
    return body.replace(SECRET_LINK, escape(link) if html else link)


def hidden(body: str | None, *, html: bool = False) -> str | None:
    """The body as anyone but the recipient may see it. In HTML a link whose address is the
    secret loses its address (it stays readable, and leads nowhere), and the title says why."""
    if body is None:
        return None
    if html:
        body = body.replace(f'href="{SECRET_LINK}"', f'title="{HIDDEN_LINK}"')
    return body.replace(SECRET_LINK, HIDDEN_LINK)


# A member's calendar feed, /calendar/<token>.ics: the token opens their calendar.
_CALENDAR_FEED = re.compile(rf"({_SLASH}calendar{_SLASH})[^/?#&%\s\"']+(?=\.ics)")


def redact_secret_paths(text: str) -> str:
    """`text` (a request line, a URL, a referrer) with the secret part of such links hidden."""
    return _CALENDAR_FEED.sub(r"\1[hidden]", _SECRET_PATH.sub(r"\1[hidden]", text))
