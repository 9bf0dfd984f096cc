"""The HTTP side of a delivery: one POST to a workspace's receiver, through httpx, to an address
app.core.outbound allows (the name is resolved once, checked, and that address is connected to:
no DNS rebinding), with short timeouts, no redirects followed and at most 64 KB of the answer
read. Whatever the receiver does (hangs, answers 500, redirects, sends gigabytes) ends as an
`Outcome`, never as an exception: it costs the product an attempt and nothing more."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpcore
import httpx

from app.core import outbound

RESPONSE_BODY_LIMIT = 64 * 1024
USER_AGENT = "Duebook-Webhooks/1"
_HEADERS_KEPT = 50  # a receiver's answer headers kept in the log, at most


class _CheckedBackend(httpcore.SyncBackend):
    """httpcore's sockets, connected only to an address app.core.outbound checked. TLS still
    verifies the certificate against the URL's host name (httpcore passes it separately)."""

    def __init__(self, allowed_networks) -> None:
        self.allowed_networks = tuple(allowed_networks)

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            found = outbound.resolve(host, port, self.allowed_networks)
        except outbound.DestinationRefused as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        last_error: Exception | None = None
        for *_, sockaddr in found:
            try:
                return super().connect_tcp(
                    sockaddr[0], port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore.ConnectError(f"cannot connect to {host!r}")


class _CheckedTransport(httpx.HTTPTransport):
    def __init__(self, allowed_networks) -> None:
        super().__init__(retries=0)
        # httpx builds its connection pool with the default network backend and offers no
        # argument for another one: the pool is made again with the checked backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=_CheckedBackend(allowed_networks),
        )


def http_client(allowed_networks, connect_seconds: float, read_seconds: float) -> httpx.Client:
    """A client for one run of deliveries (connections kept alive between them)."""
    return httpx.Client(
        transport=_CheckedTransport(allowed_networks),
        timeout=httpx.Timeout(read_seconds, connect=connect_seconds, pool=connect_seconds),
        follow_redirects=False,
        trust_env=False,  # a proxy from the environment would connect unchecked
        headers={"User-Agent": USER_AGENT},
    )


@dataclass(frozen=True)
class Outcome:
    status: int | None
    headers: dict | None
    body: str | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(client: httpx.Client, url: str, headers: dict, body: bytes) -> Outcome:
    started = time.perf_counter()
    status = answer_headers = text = error = None
    try:
        with client.stream("POST", url, content=body, headers=headers) as response:
            status = response.status_code
            answer_headers = dict(list(response.headers.items())[:_HEADERS_KEPT])
            text = _read_some(response).decode("utf-8", "replace")
            if response.is_redirect:
                error = "Redirected elsewhere; redirects are not followed"
    except httpx.TimeoutException:
        error = "Timed out"
    except (httpx.HTTPError, OSError) as exc:
        error = _connection_error(exc)
    duration_ms = int((time.perf_counter() - started) * 1000)
    return Outcome(status, answer_headers, text, error, duration_ms)


def _read_some(response: httpx.Response) -> bytes:
    """Up to RESPONSE_BODY_LIMIT bytes as sent (not decompressed: a small gzip can unpack to
    gigabytes); the rest is never read, and the connection is closed rather than drained."""
    kept = bytearray()
    for chunk in response.iter_raw():
        kept += chunk
        if len(kept) >= RESPONSE_BODY_LIMIT:
            break
    return bytes(kept[:RESPONSE_BODY_LIMIT])


def _connection_error(exc: BaseException) -> str:
    causes = []
    while exc is not None and len(causes) < 10:
        causes.append(exc)
        exc = exc.__cause__ or exc.__context__
    refusal = next((c for c in causes if isinstance(c, outbound.DestinationRefused)), None)
    if refusal is not None:
        if "cannot resolve" in str(refusal):
            return "The host name does not resolve"
        return "Refused: the address is private or local"
    return f"Could not connect: {type(causes[0]).__name__}"
