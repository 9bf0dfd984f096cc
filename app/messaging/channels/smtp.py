"""E-mail over SMTP: the tenant's own server, or the platform's (SMTP_URL) by default."""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import parse_qs, quote, unquote, urlsplit

from app.messaging.channels import Connector, DeliveryError, Field, Outgoing, Sent


def build_email(outgoing: Outgoing, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
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
    for attachment in outgoing.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        email.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return email


def send_over_smtp(smtp_url: str, email: EmailMessage, timeout: float = 30) -> None:
    """smtp://[user:password@]host[:port][?starttls=1] or smtps://... (implicit TLS)."""
    parts = urlsplit(smtp_url)
    options = parse_qs(parts.query)
    host, port = parts.hostname or "127.0.0.1", parts.port
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(
            host, port or 465, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(host, port or 25, timeout=timeout)
    with client:
        if options.get("starttls", ["0"])[0] in {"1", "true"}:
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(email)


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
    )

    @classmethod
    def clean(cls, raw):
        settings, secrets, errors = super().clean(raw)
        if settings.get("port") and not settings["port"].isdigit():
            errors["port"] = "The port is a number, such as 587."
        if settings.get("security", "starttls") not in {"starttls", "tls", "none"}:
            errors["security"] = "Choose starttls, tls or none."
        return settings, secrets, errors

    @classmethod
    def platform(cls, config) -> SmtpConnector:
        """The platform's own server (SMTP_URL, MAIL_FROM): e-mail works with nothing set up."""
        return cls(settings={"url": config["SMTP_URL"], "from_address": config["MAIL_FROM"]},
                   secrets={}, config=config)  # fmt: skip

    def smtp_url(self) -> str:
        if self.settings.get("url"):
            return self.settings["url"]
        security = self.settings.get("security", "starttls")
        scheme = "smtps" if security == "tls" else "smtp"
        credentials = ""
        if self.settings.get("username"):
            credentials = (f"{quote(self.settings['username'], safe='')}:"
                           f"{quote(self.secrets.get('password', ''), safe='')}@")  # fmt: skip
        port = f":{self.settings['port']}" if self.settings.get("port") else ""
        query = "?starttls=1" if security == "starttls" else ""
        return f"{scheme}://{credentials}{self.settings['host']}{port}{query}"

    def send(self, outgoing: Outgoing) -> Sent:
        email = build_email(outgoing, self.settings["from_address"])
        try:
            send_over_smtp(self.smtp_url(), email)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"{type(exc).__name__}: {exc}", permanent=is_permanent_rejection(exc)
            ) from exc
        return Sent(provider_message_id=email["Message-ID"].strip("<>"))

    def test_connection(self) -> str:
        parts = urlsplit(self.smtp_url())
        try:
            if parts.scheme == "smtps":
                client = smtplib.SMTP_SSL(parts.hostname, parts.port or 465, timeout=10,
                                          context=ssl.create_default_context())  # fmt: skip
            else:
                client = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=10)
            with client:
                if "starttls=1" in parts.query:
                    client.starttls(context=ssl.create_default_context())
                if parts.username:
                    client.login(unquote(parts.username), unquote(parts.password or ""))
                client.noop()
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        return f"Connected to {parts.hostname} and logged in."
