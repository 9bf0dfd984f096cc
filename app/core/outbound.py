"""Connections to destinations a tenant sets (its own SMTP server, and any later one): only to
public addresses, so a workspace cannot use the platform to reach its private network, the
machine itself or a cloud's metadata service.

The check happens at connect time: the host name is resolved once, every address it resolves
to must be public, and the socket connects to one of exactly those addresses; nothing
resolves the name a second time, so a name that answers with a public address to the check
and a private one to the connection (DNS rebinding) gets nowhere. Refusals are one coarse
error, `DestinationRefused`, an `OSError`: callers already treat unreachable servers that way,
and a tenant learns nothing more from a refused address than from a closed port.

OUTBOUND_ALLOWED_NETWORKS (CIDRs; empty by default) lets chosen networks through anyway:
`make run` and the tests allow loopback, where their sandbox servers listen. Destinations that
come from the platform's own settings (SMTP_URL, the providers' API bases) are the operator's
and do not come through here.

This module imports nothing of the business areas: any area may use it."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names that reach a cloud's instance metadata service without an address in them.
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
        "kubernetes.default",
        "kubernetes.default.svc",
    }
)
# Beyond what `is_global` already excludes: shared address space (CGNAT, RFC 6598) is not
# global in Python's table either, but spell out the ones this rule exists for.
_NEVER_PUBLIC = tuple(
    ipaddress.ip_network(cidr)
    for cidr in ("100.64.0.0/10", "169.254.0.0/16", "fe80::/10", "fc00::/7", "0.0.0.0/8")
)


class DestinationRefused(OSError):
    """The destination is not a public address (or does not resolve)."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """OUTBOUND_ALLOWED_NETWORKS: comma-separated CIDRs or single addresses. Raises ValueError
    naming the entry that is not one."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"OUTBOUND_ALLOWED_NETWORKS: {entry!r} is not a network") from None
    return tuple(networks)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (::ffff:a.b.c.d, 6to4 2002:ab:cd::, Teredo,
    the NAT64 well-known prefix), which is where a connection to it ends up."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: Address) -> bool:
    """A unicast address on the internet: not private, loopback, link-local, unique-local,
    shared (CGNAT), multicast, reserved or unspecified, in any IPv6 form of an IPv4 one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    if any(address in network for network in _NEVER_PUBLIC):
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved)


def _allowed(address: Address, allowed: Iterable[Network]) -> bool:
    if is_public(address):
        return True
    plain = address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        plain = address.ipv4_mapped
    return any(plain.version == net.version and plain in net for net in allowed)


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def obvious_refusal(host: str, allowed: Iterable[Network] = ()) -> bool:
    """True for a host refused without asking DNS: a metadata host name, or a literal address
    (or `localhost`) that is not public and not allowed. For forms; `connect` decides."""
    name = _normal_host(host)
    if name in METADATA_HOSTS:
        return True
    if name == "localhost" or name.endswith(".localhost"):
        name = "127.0.0.1"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return not _allowed(address, tuple(allowed))


def resolve(host: str, port: int, allowed: Iterable[Network] = ()) -> list[tuple]:
    """Every (family, type, proto, canonname, sockaddr) `host` resolves to, after checking all
    of them; raises DestinationRefused if any one is refused (a name with one private address
    among public ones is refused whole: which one a connection gets is the resolver's choice)."""
    allowed = tuple(allowed)
    name = _normal_host(host)
    if not name or name in METADATA_HOSTS:
        raise DestinationRefused(f"refused destination {host!r}")
    try:
        found = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationRefused(f"cannot resolve {host!r}") from exc
    if not found:
        raise DestinationRefused(f"cannot resolve {host!r}")
    for *_, sockaddr in found:
        address = ipaddress.ip_address(sockaddr[0].partition("%")[0])
        if not _allowed(address, allowed) or (len(sockaddr) > 3 and sockaddr[3]):
            raise DestinationRefused(f"refused destination {host!r}")
    return found


def connect(host: str, port: int, timeout: float | None, allowed: Iterable[Network] = ()):
    """A TCP socket connected to one of the checked addresses of `host` (tried in order).
    Raises DestinationRefused, or the OSError of the last attempt."""
    last_error: OSError | None = None
    for family, kind, proto, _, sockaddr in resolve(host, port, allowed):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    raise last_error or DestinationRefused(f"cannot connect to {host!r}")
