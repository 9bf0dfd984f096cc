"""E-mail over SMTP: the tenant's own server, or the platform's (SMTP_URL) by default.

Each message leaves with a VERP envelope sender (connectors.verp) so that bounce reports
find it (app.messaging.bounces reads them), and, when a DKIM key is set up (the connection's,
or the platform's DKIM_* settings), with a DKIM signature whose h= covers the
List-Unsubscribe headers, as RFC 8058 requires for one-click unsubscribe."""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from urllib.parse import parse_qs, quote, unquote, urlsplit

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.core import outbound
from app.integrations.connectors import Connector, DeliveryError, Field, Outgoing, Sent
from app.integrations.connectors.verp import verp_address

# No folding below the RFC 5322 limit: the default policy folds a header with a long word
# (the unsubscribe link) into RFC 2047 encoded words, which breaks List-Unsubscribe.
WIRE_POLICY = policy.SMTP.clone(max_line_length=998)
DKIM_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)
MIN_DKIM_KEY_BITS = 1024  # what verifiers accept (RFC 8301); 2048 is the usual size


class RecipientRefused(DeliveryError):
    """The recipient's server refused the address with a 5xx reply while we were sending: a
    hard bounce now rather than a report later. `bounced` tells delivery to treat it so."""

    bounced = True


def build_email(outgoing: Outgoing, sender: str, platform: bool = False) -> EmailMessage:
    email = EmailMessage()
    email["From"] = from_header(sender, outgoing, platform)
    email["To"] = outgoing.recipient
    email["Subject"] = outgoing.subject
    email["Date"] = formatdate(localtime=False)
    # Derived from the idempotency key: a resend after a crash carries the same Message-ID.
    local_part = re.sub(r"[^A-Za-z0-9._-]", ".", outgoing.idempotency_key)
    email["Message-ID"] = f"<{local_part}@duebook.local>"
    for name, value in outgoing.headers.items():
        email[name] = value
    email.set_content(outgoing.text)
    if outgoing.html:
        email.add_alternative(outgoing.html, subtype="html")
        html_part = email.get_payload()[-1]
        for image in outgoing.inline_images:
            # multipart/related around the HTML part: the image belongs to it, not to the text.
            maintype, _, subtype = image.content_type.partition("/")
            html_part.add_related(
                image.data, maintype=maintype, subtype=subtype, cid=f"<{image.content_id}>"
            )
    for attachment in outgoing.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        email.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return email


def from_header(sender: str, outgoing: Outgoing, platform: bool) -> str:
    """The From of a workspace's message: the connector's address (the platform's, or the
    mail account the workspace connected) under the sender name the workspace chose; without
    one, under its own mail account's name, else the workspace's name. The platform's own
    name ("Duebook") never fronts a workspace's message. Only the name is the workspace's: the
    platform never sends from a domain it does not control (an address at the workspace's
    domain sent through our server would fail SPF and DMARC, and land in spam or be refused)."""
    own_name, address = parseaddr(sender)
    name = outgoing.sender_name or (None if platform else own_name) or outgoing.workspace_name
    if not name:
        return sender
    return formataddr((name, address))


def normalise_dkim_key(text: str) -> str:
    """A PKCS#1 PEM that dkimpy reads, from a pasted PEM (PKCS#1 or PKCS#8). A password
    field turns the key's line breaks into nothing or spaces, so the lines are rebuilt.
    Raises ValueError with a sentence for the form."""
    found = re.search(r"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", text, re.DOTALL)
    if found is None:
        raise ValueError("Paste the whole private key, from -----BEGIN to -----END.")
    body = "".join(found.group(2).split())
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    pem = f"-----BEGIN {found.group(1)}-----\n{lines}\n-----END {found.group(1)}-----\n"
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            "That is not a readable private key (an unencrypted RSA key in PEM form is needed)."
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("DKIM signing here needs an RSA key.")
    if key.key_size < MIN_DKIM_KEY_BITS:
        raise ValueError(
            f"The key has {key.key_size} bits; receivers need at least "
            f"{MIN_DKIM_KEY_BITS} (2048 is usual)."
        )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def dkim_sign(data: bytes, domain: str, selector: str, private_key_pem: str) -> bytes:
    """The message with a DKIM-Signature header in front."""
    signature = dkim.sign(
        data,
        selector.encode(),
        domain.encode(),
        private_key_pem.encode(),
        include_headers=list(DKIM_HEADERS),
    )
    return signature + data


@dataclass(frozen=True)
class Envelope:
    """One message on the wire: MAIL FROM, RCPT TO and the exact bytes (a DKIM signature is
    over these bytes, so nothing may serialise the message again)."""

    sender: str
    recipient: str
    data: bytes


# All a tenant learns when its server cannot be reached: whether the address was refused, the
# port closed or filtered, or something else answered, is not for it to tell apart.
UNREACHABLE = "Could not connect to the mail server at that address and port."


class ServerUnreachable(OSError):
    """A tenant's mail server could not be connected to (UNREACHABLE, the cause chained)."""


class _CheckedSMTP(smtplib.SMTP):
    """smtplib's client connecting through app.core.outbound: to an address checked as public (or
    in OUTBOUND_ALLOWED_NETWORKS) and to no other, even if the name resolves anew."""

    def __init__(self, *args, allowed_networks, **kwargs):
        self.allowed_networks = allowed_networks
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        return outbound.connect(host, port, timeout, self.allowed_networks)


class _CheckedSMTPSSL(smtplib.SMTP_SSL, _CheckedSMTP):
    """The same over implicit TLS: SMTP_SSL wraps the socket _CheckedSMTP connected."""

    def __init__(self, *args, allowed_networks, **kwargs):
        self.allowed_networks = allowed_networks
        smtplib.SMTP_SSL.__init__(self, *args, **kwargs)


def open_smtp(smtp_url: str, timeout: float, allowed_networks=None) -> smtplib.SMTP:
    """A client connected to smtp://[user:password@]host[:port][?starttls=1] or smtps://...
    (implicit TLS), greeting read. With `allowed_networks` (a tenant's server) the address is
    checked (app.core.outbound), and any failure to connect is ServerUnreachable; without (the
    platform's SMTP_URL) it is not."""
    parts = urlsplit(smtp_url)
    host, implicit_tls = parts.hostname or "127.0.0.1", parts.scheme == "smtps"
    port = parts.port or (465 if implicit_tls else 25)
    options = {"timeout": timeout}
    if implicit_tls:
        options["context"] = ssl.create_default_context()
    if allowed_networks is None:
        return (smtplib.SMTP_SSL if implicit_tls else smtplib.SMTP)(host, port, **options)
    client_class = _CheckedSMTPSSL if implicit_tls else _CheckedSMTP
    try:
        return client_class(host, port, allowed_networks=allowed_networks, **options)
    except (smtplib.SMTPException, OSError) as exc:
        raise ServerUnreachable(UNREACHABLE) from exc


def send_over_smtp(
    smtp_url: str, envelope: Envelope, timeout: float = 30, allowed_networks=None
) -> None:
    """Send one envelope through the server of `smtp_url` (see `open_smtp`)."""
    parts = urlsplit(smtp_url)
    options = parse_qs(parts.query)
    with open_smtp(smtp_url, timeout, allowed_networks) as client:
        if options.get("starttls", ["0"])[0] in {"1", "true"}:
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.ehlo_or_helo_if_needed()
        # Servers that speak DSN (RFC 3461) return only the headers of a bounced message,
        # which keeps reports (and the stored webhook bodies) small.
        mail_options = ["RET=HDRS"] if client.has_extn("dsn") else []
        # One recipient: a refusal raises SMTPRecipientsRefused rather than returning it.
        client.sendmail(
            envelope.sender, [envelope.recipient], envelope.data, mail_options=mail_options
        )


def is_permanent_rejection(exc: Exception) -> bool:
    """5xx answers are final (RFC 5321); 4xx and network errors are worth another try."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(500 <= code < 600 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600


class SmtpConnector(Connector):
    provider = "smtp"
    channel = "email"
    title = "E-mail (your SMTP server)"
    description = (
        "Send e-mail from your own mail server, so messages come from your domain. Without "
        "it, Duebook's own server sends them."
    )
    fields = (
        Field("host", "SMTP server", placeholder="smtp.example.com"),
        Field("port", "Port", help="587 with STARTTLS, 465 with TLS.", placeholder="587"),
        Field("security", "Security", help="starttls, tls or none.", placeholder="starttls"),
        Field("username", "User name", required=False),
        Field("password", "Password", secret=True, required=False),
        Field("from_address", "From", placeholder="Accounts <accounts@example.com>"),
        Field(
            "dkim_domain",
            "DKIM domain",
            required=False,
            placeholder="example.com",
            help="Optional: sign mail with your domain's DKIM key (d=).",
        ),
        Field(
            "dkim_selector",
            "DKIM selector",
            required=False,
            placeholder="duebook",
            help="Publish the public key as <selector>._domainkey.<domain> TXT.",
        ),
        Field(
            "dkim_private_key",
            "DKIM private key",
            secret=True,
            required=False,
            help="The RSA private key in PEM form (-----BEGIN ... PRIVATE KEY-----).",
        ),
    )

    @classmethod
    def clean(cls, raw):
        settings, secrets, errors = super().clean(raw)
        if settings.get("port") and not (
            settings["port"].isdigit() and 0 < int(settings["port"]) < 65536
        ):
            errors["port"] = "The port is a number, such as 587."
        if settings.get("security", "starttls") not in {"starttls", "tls", "none"}:
            errors["security"] = "Choose starttls, tls or none."
        if secrets.get("dkim_private_key"):
            try:
                secrets["dkim_private_key"] = normalise_dkim_key(secrets["dkim_private_key"])
            except ValueError as exc:
                errors["dkim_private_key"] = str(exc)
            for name, label in (("dkim_domain", "domain"), ("dkim_selector", "selector")):
                if not settings.get(name):
                    errors[name] = f"Signing with the key needs the DKIM {label} too."
        elif settings.get("dkim_domain") or settings.get("dkim_selector"):
            errors["dkim_private_key"] = "Paste the private key that goes with this DKIM domain."
        return settings, secrets, errors

    @classmethod
    def platform(cls, config) -> SmtpConnector:
        """The platform's own server (SMTP_URL, MAIL_FROM): e-mail works with nothing set up."""
        settings = {"url": config["SMTP_URL"], "from_address": config["MAIL_FROM"]}
        secrets = {}
        if config.get("DKIM_DOMAIN") and config.get("DKIM_PRIVATE_KEY_FILE"):
            with open(config["DKIM_PRIVATE_KEY_FILE"], encoding="ascii") as key_file:
                secrets["dkim_private_key"] = normalise_dkim_key(key_file.read())
            settings.update(
                dkim_domain=config["DKIM_DOMAIN"],
                dkim_selector=config.get("DKIM_SELECTOR") or "duebook",
            )
        return cls(settings=settings, secrets=secrets, config=config)

    def allowed_networks(self):
        """None for the platform's server (its SMTP_URL is the operator's, not checked); for a
        tenant's, the networks let through besides public addresses."""
        if self.settings.get("url"):
            return None
        return self.config.get("OUTBOUND_ALLOWED_NETWORKS", ())

    def destination_errors(self) -> dict[str, str]:
        if outbound.obvious_refusal(self.settings.get("host", ""), self.allowed_networks() or ()):
            return {
                "host": "Enter the address of a mail server on the internet; private and "
                "local network addresses cannot be used."
            }
        return {}

    def smtp_url(self) -> str:
        if self.settings.get("url"):
            return self.settings["url"]
        security = self.settings.get("security", "starttls")
        scheme = "smtps" if security == "tls" else "smtp"
        credentials = ""
        if self.settings.get("username"):
            credentials = (
                f"{quote(self.settings['username'], safe='')}:"
                f"{quote(self.secrets.get('password', ''), safe='')}@"
            )
        port = f":{self.settings['port']}" if self.settings.get("port") else ""
        query = "?starttls=1" if security == "starttls" else ""
        host = self.settings["host"]
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address, written bare in the form
        return f"{scheme}://{credentials}{host}{port}{query}"

    def bounce_domain(self) -> str:
        """BOUNCE_DOMAIN (where the platform receives bounce reports), else the From domain."""
        if self.config.get("BOUNCE_DOMAIN"):
            return self.config["BOUNCE_DOMAIN"]
        return parseaddr(self.settings["from_address"])[1].rpartition("@")[2] or "localhost"

    def wire_bytes(self, email: EmailMessage) -> bytes:
        """The message as it goes on the wire, DKIM-signed when a key is set up."""
        data = email.as_bytes(policy=WIRE_POLICY)
        if self.secrets.get("dkim_private_key"):
            data = dkim_sign(
                data,
                self.settings["dkim_domain"],
                self.settings["dkim_selector"],
                self.secrets["dkim_private_key"],
            )
        return data

    def send(self, outgoing: Outgoing) -> Sent:
        email = build_email(
            outgoing, self.settings["from_address"], platform=bool(self.settings.get("url"))
        )
        envelope_from = verp_address(
            self.config["SECRET_KEY"], outgoing.tenant_id, outgoing.message_id, self.bounce_domain()
        )
        try:
            send_over_smtp(
                self.smtp_url(),
                Envelope(envelope_from, outgoing.recipient, self.wire_bytes(email)),
                allowed_networks=self.allowed_networks(),
            )
        except ServerUnreachable as exc:
            raise DeliveryError(str(exc)) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            if is_permanent_rejection(exc):
                raise RecipientRefused(f"{type(exc).__name__}: {exc}", permanent=True) from exc
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"{type(exc).__name__}: {exc}", permanent=is_permanent_rejection(exc)
            ) from exc
        return Sent(provider_message_id=email["Message-ID"].strip("<>"))

    def test_connection(self) -> str:
        url = self.smtp_url()
        parts = urlsplit(url)
        try:
            with open_smtp(url, timeout=10, allowed_networks=self.allowed_networks()) as client:
                if "starttls=1" in parts.query:
                    client.starttls(context=ssl.create_default_context())
                if parts.username:
                    client.login(unquote(parts.username), unquote(parts.password or ""))
                client.noop()
        except ServerUnreachable as exc:
            raise DeliveryError(str(exc)) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError("The mail server refused the user name or password.") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        return f"Connected to {parts.hostname} and logged in."
