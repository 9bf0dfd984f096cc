"""The "Your domain" check of a workspace that sends e-mail through its own mail server: does
its domain's DNS let that server send for it (SPF), publish the DKIM key the connection signs
with, and state a DMARC policy?

Only DNS is read, through the resolver of DNS_RESOLVER (or the system's), all lookups of one
check within CHECK_SECONDS; nothing is cached beyond one check. A lookup that fails or runs
out of time makes that line "could not check now", never an exception for the page.

SPF is evaluated by pyspf (RFC 7208's check_host: include, a, mx, ip4, ip6, redirect, and the
limit of 10 lookups) rather than by hand. pyspf asks DNS through its module-level
`DNSLookup`, the seam its own test suite replaces too: here it is replaced once by a function
that asks the resolver of the check under way (a context variable, so threads do not mix)."""

from __future__ import annotations

import base64
import contextvars
import ipaddress
import re
import time
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.resolver
import spf
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

CHECK_SECONDS = 2.0  # all lookups of one check together

OK, WARN, BAD, UNKNOWN, INFO = "ok", "warn", "bad", "unknown", "info"
COULD_NOT_CHECK = "Could not check this now (the DNS lookup did not answer in time)."


class LookupFailed(Exception):
    """DNS did not answer (time-out, server failure, no resolver): "could not check now"."""


@dataclass(frozen=True)
class Finding:
    """One line of the panel: a state (OK, WARN, BAD, UNKNOWN, INFO), a sentence, and where a
    record is to be published, the name and the full value to publish there."""

    topic: str  # "SPF", "DKIM", "DMARC"
    state: str
    says: str
    found: tuple[str, ...] = ()  # the records as published now, when they matter
    record_name: str | None = None
    record_value: str | None = None


@dataclass(frozen=True)
class DomainReport:
    domain: str
    server: str
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def could_not_check(self) -> bool:
        return any(finding.state == UNKNOWN for finding in self.findings)


# DNS ----------------------------------------------------------------------------------------


class Lookups:
    """The resolver of one check and what is left of its time."""

    def __init__(self, resolver_address: str, seconds: float = CHECK_SECONDS):
        self.deadline = time.monotonic() + seconds
        try:
            if resolver_address:
                host, _, port = resolver_address.rpartition(":")
                self.resolver = dns.resolver.Resolver(configure=False)
                self.resolver.nameservers = [host.strip("[]")]
                self.resolver.port = int(port)
            else:
                self.resolver = dns.resolver.Resolver()
        except (ValueError, dns.exception.DNSException) as exc:
            raise LookupFailed(str(exc)) from exc
        self.resolver.cache = None

    def resolve(self, name: str, rdtype: str) -> list:
        """The answer's records; [] when the name or the type does not exist."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise LookupFailed("out of time")
        try:
            return list(self.resolver.resolve(name, rdtype, lifetime=left, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.DNSException, OSError) as exc:
            raise LookupFailed(str(exc)) from exc

    def txt(self, name: str) -> list[str]:
        return [
            b"".join(record.strings).decode("utf-8", "replace")
            for record in self.resolve(name, "TXT")
        ]

    def addresses(self, host: str) -> list[str]:
        """The IP addresses of a host name (or the address itself, written as one)."""
        try:
            return [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            pass
        found = [record.address for record in self.resolve(host, "A")]
        return found + [record.address for record in self.resolve(host, "AAAA")]


_current: contextvars.ContextVar[Lookups] = contextvars.ContextVar("mail_domain_lookups")


def _spf_lookup(name, qtype, strict=True, timeout=None):
    """pyspf's DNSLookup contract: [((name, type), value)], TXT values as lists of bytes, MX as
    (preference, exchange); a DNS failure is spf.TempError."""
    lookups = _current.get()
    try:
        records = lookups.resolve(name, qtype)
    except LookupFailed as exc:
        raise spf.TempError(f"DNS {exc}") from exc
    answer = []
    for record in records:
        if qtype in ("A", "AAAA"):
            value = record.address
        elif qtype == "MX":
            value = (record.preference, record.exchange)
        elif qtype == "PTR":
            value = record.target.to_text(True)
        else:
            value = record.strings
        answer.append(((name, qtype), value))
    return answer


spf.DNSLookup = _spf_lookup


# SPF ----------------------------------------------------------------------------------------

SPF_START = re.compile(r"^v=spf1(\s|$)", re.IGNORECASE)
ALL_OR_REDIRECT = re.compile(r"^([-~?+]?all|redirect=.*)$", re.IGNORECASE)


def _mechanism_for(address: str) -> str:
    return f"ip{ipaddress.ip_address(address).version}:{address}"


def with_mechanisms(record: str, mechanisms: list[str]) -> str:
    """The record with `mechanisms` added before its closing `all` (or `redirect=`)."""
    terms = record.split()
    at = next((i for i, term in enumerate(terms) if ALL_OR_REDIRECT.match(term)), len(terms))
    return " ".join(terms[:at] + mechanisms + terms[at:])


def check_spf(lookups: Lookups, domain: str, server: str) -> Finding:
    try:
        records = [text for text in lookups.txt(domain) if SPF_START.match(text)]
        addresses = lookups.addresses(server)
    except LookupFailed:
        return Finding("SPF", UNKNOWN, COULD_NOT_CHECK)
    if not addresses:
        return Finding("SPF", UNKNOWN, f"Could not find the address of your mail server {server}.")
    mechanisms = [_mechanism_for(address) for address in addresses]
    if not records:
        return Finding(
            "SPF",
            WARN,
            f"{domain} has no SPF record, so receivers cannot tell that {server} may send its "
            "mail. Publish this TXT record (add the servers your other mail leaves from too):",
            record_name=domain,
            record_value=" ".join(["v=spf1", *mechanisms, "~all"]),
        )
    if len(records) > 1:
        return Finding(
            "SPF",
            BAD,
            f"{domain} has {len(records)} SPF records; receivers treat that as an error "
            "(RFC 7208) and trust none of them. Merge them into one TXT record.",
            found=tuple(records),
        )
    record = records[0]
    refused = []
    token = _current.set(lookups)
    try:
        for address in addresses:
            result, explanation = spf.check2(
                i=address, s=f"postmaster@{domain}", h=server, timeout=CHECK_SECONDS
            )
            if result == "temperror":
                return Finding("SPF", UNKNOWN, COULD_NOT_CHECK, found=(record,))
            if result == "permerror":
                return Finding(
                    "SPF",
                    BAD,
                    f"The SPF record of {domain} is broken, so receivers ignore it: {explanation}.",
                    found=(record,),
                )
            if result != "pass":
                refused.append(address)
    finally:
        _current.reset(token)
    if not refused:
        return Finding(
            "SPF", OK, f"The SPF record of {domain} lets {server} send its mail.", found=(record,)
        )
    missing = [_mechanism_for(address) for address in refused]
    sender = server if refused == [server] else f"{server} ({', '.join(refused)})"
    return Finding(
        "SPF",
        BAD,
        f"The SPF record of {domain} does not let {sender} send its "
        f"mail, so receivers may reject it or file it as spam. Add {' '.join(missing)} to the "
        "record; with it, the record reads:",
        found=(record,),
        record_name=domain,
        record_value=with_mechanisms(record, missing),
    )


# DKIM ---------------------------------------------------------------------------------------


def dkim_record_value(private_key_pem: str) -> str:
    """The TXT value that publishes the public half of the key (RFC 6376, 3.6.1)."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def _published_key(record: str) -> rsa.RSAPublicKey | None:
    """The RSA key a DKIM record publishes (as SubjectPublicKeyInfo or, as some publish it,
    a bare RSAPublicKey); None when it holds none that can be read."""
    try:
        data = base64.b64decode(_tags(record).get("p", ""), validate=True)
    except ValueError:
        return None
    for load in (
        lambda: serialization.load_der_public_key(data),
        lambda: serialization.load_pem_public_key(
            b"-----BEGIN RSA PUBLIC KEY-----\n"
            + base64.encodebytes(data)
            + b"-----END RSA PUBLIC KEY-----\n"
        ),
    ):
        try:
            key = load()
        except (ValueError, TypeError):
            continue
        return key if isinstance(key, rsa.RSAPublicKey) else None
    return None


def check_dkim(lookups: Lookups, domain: str, selector: str, private_key_pem: str) -> Finding:
    name = f"{selector}._domainkey.{domain}"
    expected = dkim_record_value(private_key_pem)
    ours = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    our_numbers = ours.public_key().public_numbers()
    try:
        records = [text for text in lookups.txt(name) if "p=" in text]
    except LookupFailed:
        return Finding("DKIM", UNKNOWN, COULD_NOT_CHECK)
    if not records:
        return Finding(
            "DKIM",
            BAD,
            f"No DKIM key is published at {name}, so receivers cannot check the signature on "
            "your mail. Publish this TXT record:",
            record_name=name,
            record_value=expected,
        )
    for record in records:
        published = _published_key(record)
        if published is not None and published.public_numbers() == our_numbers:
            return Finding(
                "DKIM", OK, f"{name} publishes the key your mail is signed with.", found=(record,)
            )
    return Finding(
        "DKIM",
        BAD,
        f"{name} publishes a different key from the one your mail is signed with, so "
        "signatures fail. Replace the record with:",
        found=tuple(records),
        record_name=name,
        record_value=expected,
    )


# DMARC --------------------------------------------------------------------------------------


def check_dmarc(lookups: Lookups, domain: str) -> Finding:
    name = f"_dmarc.{domain}"
    try:
        records = [text for text in lookups.txt(name) if text.upper().startswith("V=DMARC1")]
    except LookupFailed:
        return Finding("DMARC", UNKNOWN, COULD_NOT_CHECK)
    if not records:
        return Finding(
            "DMARC",
            WARN,
            f"{domain} states no DMARC policy. Not required, but large mailbox providers ask "
            "senders for one; this one only asks for reports and changes no delivery:",
            record_name=name,
            record_value="v=DMARC1; p=none",
        )
    policy = _tags(records[0]).get("p", "none")
    return Finding("DMARC", OK, f"{domain} has a DMARC policy (p={policy}).", found=tuple(records))


# The whole check ----------------------------------------------------------------------------


def check_mail_domain(
    resolver_address: str,
    domain: str,
    server: str,
    dkim_domain: str = "",
    dkim_selector: str = "",
    dkim_private_key: str = "",
    seconds: float = CHECK_SECONDS,
) -> DomainReport:
    """SPF of `domain` for the mail server `server`, the DKIM key when the connection signs
    with one, and DMARC. Never raises for DNS trouble: such a line says it could not check."""
    try:
        lookups = Lookups(resolver_address, seconds)
    except LookupFailed:
        unknown = Finding("DNS", UNKNOWN, COULD_NOT_CHECK)
        return DomainReport(domain, server, (unknown,))
    findings = [check_spf(lookups, domain, server)]
    if dkim_private_key and dkim_selector and dkim_domain:
        findings.append(check_dkim(lookups, dkim_domain, dkim_selector, dkim_private_key))
    else:
        findings.append(
            Finding(
                "DKIM",
                INFO,
                "This connection signs no mail with DKIM. If your mail server signs it itself, "
                "there is nothing to do; otherwise add a DKIM key to the connection.",
            )
        )
    findings.append(check_dmarc(lookups, domain))
    return DomainReport(domain, server, tuple(findings))
