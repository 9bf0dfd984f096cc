"""A local DNS server for tests and the sandbox: answers from a zone held in memory, over UDP
and TCP on one loopback port, as an authoritative server would (NXDOMAIN for a name it does
not hold, an empty answer for a type the name does not have).

The zone is a dict of name → type → values in presentation form, except TXT values, which are
the text itself (split here into the 255-byte strings the wire needs):

    {"example.com": {"TXT": ["v=spf1 ip4:192.0.2.10 -all"], "MX": ["10 mx.example.com."]},
     "mx.example.com": {"A": ["192.0.2.10"]}}

or the same as a JSON file (`python -m app.sandbox.standins dns --zone-file zone.json`).
Every message is parsed and built by dnspython; a name in `silent` is never answered (a
resolver's time-out, for tests). An answer too long for UDP is sent truncated, and the
resolver asks again over TCP."""

from __future__ import annotations

import json
import os
import socketserver
import threading

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.TXT import TXT

from .base import check_loopback

TTL = 60
UDP_PLAIN_LIMIT = 512  # RFC 1035: without EDNS, a UDP answer holds at most this


def _rdata(rdtype: int, value: str) -> dns.rdata.Rdata:
    """One record; a TXT text is cut into the strings of at most 255 bytes the wire holds."""
    if rdtype == dns.rdatatype.TXT:
        data = value.encode()
        strings = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
        return TXT(dns.rdataclass.IN, rdtype, strings)
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, value)


def load_zone(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as zone_file:
        return json.load(zone_file)


class DnsStandin:
    """`with DnsStandin(zone) as server: server.address` ("127.0.0.1:port", what DNS_RESOLVER
    takes), or `start()` / `stop()`. `set_zone()` replaces the zone while it runs."""

    name = "dns"

    def __init__(self, zone: dict | None = None, *, host: str = "127.0.0.1", port: int = 0):
        check_loopback(host)
        self._lock = threading.Lock()
        self._records: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
        self.silent: set[str] = set()
        self.queries: list[tuple[str, str]] = []  # (name, type) asked, for tests
        self.set_zone(zone or {})
        self._tcp = _TCPServer((host, port), _TCPHandler)
        # The UDP server takes the port the TCP one was given (port 0 picks a free one).
        self._udp = _UDPServer((host, self._tcp.server_address[1]), _UDPHandler)
        self._tcp.standin = self._udp.standin = self  # type: ignore[attr-defined]
        self._threads: list[threading.Thread] = []

    # -- zone ---------------------------------------------------------------------------------

    def set_zone(self, zone: dict) -> None:
        records: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
        for owner, types in zone.items():
            name = dns.name.from_text(owner)
            for type_text, values in types.items():
                rdtype = dns.rdatatype.from_text(type_text)
                records.setdefault(name, {})[rdtype] = dns.rrset.from_rdata_list(
                    name, TTL, [_rdata(rdtype, value) for value in values]
                )
        with self._lock:
            self._records = records
            self.queries.clear()

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        """The response to `query`, or None when it is to go unanswered."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        qname = question.name.to_text(omit_final_dot=True).lower()
        with self._lock:
            self.queries.append((qname, dns.rdatatype.to_text(question.rdtype)))
            if qname in self.silent:
                return None
            types = self._records.get(question.name)
        if types is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype in types:
            response.answer.append(types[question.rdtype])
        return response

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._tcp.server_address[0]

    @property
    def port(self) -> int:
        return self._tcp.server_address[1]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> DnsStandin:
        if not self._threads:
            for kind, server in (("udp", self._udp), ("tcp", self._tcp)):
                thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name=f"standin-dns-{kind}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        return self

    def serve_forever(self) -> None:
        self.start()
        for thread in self._threads:
            thread.join()

    def stop(self) -> None:
        for server in (self._udp, self._tcp):
            if self._threads:
                server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> DnsStandin:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _UDPServer(socketserver.ThreadingUDPServer):
    daemon_threads = True
    allow_reuse_address = True


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _UDPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        response = self.server.standin.answer(query)  # type: ignore[attr-defined]
        if response is None:
            return
        limit = max(query.payload, UDP_PLAIN_LIMIT) if query.edns >= 0 else UDP_PLAIN_LIMIT
        try:
            wire = response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            wire = truncated.to_wire()
        sock.sendto(wire, self.client_address)


class _TCPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            query, _ = dns.query.receive_tcp(self.request)
        except (dns.exception.DNSException, EOFError, OSError):
            return
        response = self.server.standin.answer(query)  # type: ignore[attr-defined]
        if response is not None:
            dns.query.send_tcp(self.request, response)
