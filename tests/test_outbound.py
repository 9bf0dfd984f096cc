"""Destinations a tenant sets (its SMTP server) are connected only at public addresses: a
private, loopback, link-local or metadata address is refused before any connection is tried,
the name is resolved once and the checked address is the one connected (DNS rebinding), the
tests' allow-list (OUTBOUND_ALLOWED_NETWORKS = loopback) lets the sandbox server through, and
the test result does not tell a refused address, a closed port and a non-mail port apart."""

from __future__ import annotations

import ipaddress
import socket
import threading
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from app.core import outbound
from app.devserver import free_port
from app.integrations.connectors import DeliveryError, Outgoing
from app.integrations.connectors.smtp import UNREACHABLE, SmtpConnector
from app.integrations.models import IntegrationConnection
from tests.helpers import csrf_token_from, tenant_session

LOOPBACK = outbound.parse_networks("127.0.0.0/8,::1")
REFUSED_HOSTS = [
    "127.0.0.1",
    "10.0.0.1",
    "169.254.169.254",
    "[::1]",
    "::1",
    "localhost",
    "metadata.google.internal",
    "::ffff:127.0.0.1",
    "100.64.0.1",
]


class Listener:
    """A socket on 127.0.0.1 that records the connections it accepts (and says `greeting`)."""

    def __init__(self, greeting: bytes = b""):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.greeting = greeting
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                if self.greeting:
                    conn.sendall(self.greeting)

    def close(self):
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def connects(monkeypatch):
    """Every socket connect the code under test tries."""
    attempts = []
    guarded = socket.socket.connect

    def recording(sock, address):
        attempts.append(address)
        return guarded(sock, address)

    monkeypatch.setattr(socket.socket, "connect", recording)
    return attempts


def tenant_smtp(app, host: str, port: int, allowed=()) -> SmtpConnector:
    return SmtpConnector(
        settings={
            "host": host,
            "port": str(port),
            "security": "none",
            "from_address": "Acme <a@acme.example>",
        },
        secrets={},
        config={**app.config, "OUTBOUND_ALLOWED_NETWORKS": allowed},
    )


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_a_private_or_local_smtp_host_is_refused_without_connecting(app, host, listener, connects):
    connector = tenant_smtp(app, host, listener.port)
    with pytest.raises(DeliveryError) as refused:
        connector.test_connection()
    assert str(refused.value) == UNREACHABLE
    outgoing = Outgoing(
        message_id=1,
        idempotency_key="k1",
        tenant_id=1,
        channel="email",
        recipient="someone@example.com",
        subject="Hi",
        text="Hello",
    )
    with pytest.raises(DeliveryError) as not_sent:
        connector.send(outgoing)
    assert str(not_sent.value) == UNREACHABLE
    assert connects == [] and listener.accepted == 0


def test_the_allow_list_lets_the_sandbox_server_through(app, mailbox):
    port = urlsplit(mailbox.url).port
    assert (
        tenant_smtp(app, "127.0.0.1", port, LOOPBACK)
        .test_connection()
        .startswith("Connected to 127.0.0.1")
    )
    assert tenant_smtp(app, "localhost", port, LOOPBACK).test_connection()
    # The tests' own configuration is that allow-list.
    assert tenant_smtp(app, "127.0.0.1", port, app.config["OUTBOUND_ALLOWED_NETWORKS"])


def test_refused_closed_and_non_mail_ports_read_the_same(app):
    closed = free_port()
    not_mail = Listener(greeting=b"-ERR wrong protocol\r\n")
    try:
        messages = set()
        for host, port, allowed in (
            ("10.255.255.1", 25, ()),  # unroutable and refused
            ("169.254.169.254", 80, ()),
            ("127.0.0.1", closed, LOOPBACK),  # closed port
            ("127.0.0.1", not_mail.port, LOOPBACK),
        ):
            with pytest.raises(DeliveryError) as failed:
                tenant_smtp(app, host, port, allowed).test_connection()
            messages.add(str(failed.value))
        assert messages == {UNREACHABLE}
        assert not_mail.accepted == 1
    finally:
        not_mail.close()


def test_the_name_is_resolved_once_and_the_checked_address_connected(
    listener, monkeypatch, connects
):
    """DNS rebinding: a name that answers loopback (allowed here) when checked and a private
    address afterwards gets the checked address; nothing resolves it a second time."""
    answers = [("127.0.0.1", listener.port), ("10.0.0.9", listener.port)]
    lookups = []

    def rebinding_dns(host, port, *args, **kwargs):
        lookups.append(host)
        address = answers[min(len(lookups) - 1, 1)]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", address)]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    with outbound.connect("mail.rebinding.example", listener.port, 5, LOOPBACK):
        pass
    assert lookups == ["mail.rebinding.example"]
    assert connects == [("127.0.0.1", listener.port)]

    # A name with one refused address among others is refused whole, before connecting.
    answers[0] = ("10.0.0.9", listener.port)
    lookups.clear()
    with pytest.raises(outbound.DestinationRefused):
        outbound.connect("mail.rebinding.example", listener.port, 5, LOOPBACK)
    assert connects == [("127.0.0.1", listener.port)]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "2002:a00:1::",
        "64:ff9b::a9fe:a9fe",
    ],
)
def test_non_public_addresses_in_every_form_are_refused(address):
    assert not outbound.is_public(ipaddress.ip_address(address))


def test_public_addresses_pass():
    for address in ("8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert outbound.is_public(ipaddress.ip_address(address))


def test_the_allow_list_setting_is_read_and_checked():
    assert outbound.parse_networks("") == ()
    assert [str(n) for n in outbound.parse_networks(" 127.0.0.0/8 , ::1")] == [
        "127.0.0.0/8",
        "::1/128",
    ]
    with pytest.raises(ValueError, match="not a network"):
        outbound.parse_networks("127.0.0.0/8,localhost")


def test_the_form_refuses_an_obviously_private_host_next_to_the_field(
    app, client, db_session, make_user, make_tenant, login, monkeypatch
):
    owner = make_user()
    tenant = make_tenant(owner=owner)
    login(client, owner)
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOWED_NETWORKS", ())
    page = client.get(f"/t/{tenant.slug}/integrations/smtp/connect")
    for host in ("10.0.0.1", "169.254.169.254", "localhost", "metadata.google.internal"):
        answer = client.post(
            f"/t/{tenant.slug}/integrations/smtp/connect",
            data={
                "host": host,
                "port": "587",
                "security": "starttls",
                "from_address": "Acme <a@acme.example>",
                "csrf_token": csrf_token_from(page.text),
            },
        )
        assert answer.status_code == 422
        assert "private and local network addresses cannot be used" in answer.text
    saved = tenant_session(db_session, tenant).scalars(select(IntegrationConnection)).all()
    assert saved == []
