"""The agent's loop: ask Duebook for work (a long poll), pass each request to Tally on this
computer, and send Tally's answer back as it arrives (streamed both ways, so a large day book
never sits in the agent's memory); every minute, tell Duebook whether Tally answers.

It stops, saying why, when Duebook answers 401 (the token was revoked, or the workspace paired
another agent in its place). When Duebook or Tally cannot be reached it waits and tries again,
longer each time up to a minute, and never gives up."""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable

import httpx

from duebook_tally_agent import __version__

log = logging.getLogger("duebook_tally_agent")

API = "/api/agent/v1"
HEALTH_EVERY = 60.0
LONG_POLL = 25
LONGEST_BACKOFF = 60.0


class Revoked(Exception):
    """Duebook no longer accepts this agent's token."""


class PairingRefused(Exception):
    """Duebook refused the pairing code; the message is Duebook's."""


def pair(server: str, code: str, transport: httpx.BaseTransport | None = None) -> str:
    """The agent's token for a one-time code from Duebook's Tally page."""
    with httpx.Client(base_url=server, transport=transport, timeout=30) as client:
        answer = client.post(
            f"{API}/pair", json={"code": code, "machine": platform.node() or "this computer"}
        )
    if answer.status_code != 200:
        try:
            message = answer.json()["error"]
        except (ValueError, KeyError, TypeError):
            message = f"Duebook answered {answer.status_code}."
        raise PairingRefused(message)
    return answer.json()["token"]


class Agent:
    def __init__(
        self,
        server: str,
        token: str,
        tally_url: str = "http://localhost:9000",
        transport: httpx.BaseTransport | None = None,
        tally_transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.duebook = httpx.Client(
            base_url=server,
            transport=transport,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"duebook-tally-agent/{__version__}",
            },
            timeout=httpx.Timeout(30, read=LONG_POLL + 15),
        )
        self.tally = httpx.Client(base_url=tally_url, transport=tally_transport, timeout=120)
        self.sleep = sleep
        self.last_health = 0.0
        self.handled = 0

    def close(self) -> None:
        self.duebook.close()
        self.tally.close()

    def _check(self, answer: httpx.Response) -> httpx.Response:
        if answer.status_code == 401:
            try:
                message = answer.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = "Duebook no longer accepts this agent."
            raise Revoked(message)
        return answer

    def tally_health(self) -> dict:
        """Whether Tally answers on its port (TallyPrime answers a GET with a line saying it
        runs)."""
        try:
            answer = self.tally.get("/", timeout=5)
        except httpx.HTTPError as error:
            return {"reachable": False, "problem": f"Tally does not answer: {error}"}
        return {
            "reachable": answer.status_code == 200,
            "software_version": answer.text.strip()[:80] or None,
            "problem": None
            if answer.status_code == 200
            else f"Tally answered {answer.status_code}",
        }

    def report_health(self) -> None:
        facts = {"version": __version__, **self.tally_health()}
        self._check(self.duebook.post(f"{API}/health", json=facts))
        self.last_health = time.monotonic()

    def handle(self, item: dict) -> None:
        """Pass one request to Tally; its answer (or what went wrong) back to Duebook."""
        request = item["request"].encode("utf-8")
        try:
            with self.tally.stream(
                "POST", "/", content=request, headers={"Content-Type": "text/xml;charset=utf-8"}
            ) as answer:
                self._check(
                    self.duebook.post(
                        f"{API}/answers/{item['id']}",
                        content=answer.iter_bytes(),
                        headers={"Content-Type": answer.headers.get("Content-Type", "text/xml")},
                    )
                )
        except httpx.TransportError as error:
            # Tally is closed or not answering: Duebook hears it as an answer it can read.
            message = f"<AGENTERROR>Tally did not answer: {error}</AGENTERROR>".encode()
            self._check(
                self.duebook.post(
                    f"{API}/answers/{item['id']}",
                    content=message,
                    headers={"Content-Type": "text/xml"},
                )
            )
        self.handled += 1

    def step(self, wait: float = LONG_POLL) -> bool:
        """One round: health when due, then one long poll and its work. True when work came."""
        if time.monotonic() - self.last_health >= HEALTH_EVERY:
            self.report_health()
        answer = self._check(self.duebook.get(f"{API}/work", params={"wait": wait}))
        if answer.status_code == 204:
            return False
        answer.raise_for_status()
        self.handle(answer.json())
        return True

    def run(self, rounds: int | None = None) -> None:
        """Until revoked (Revoked propagates) or `rounds` rounds are done (tests)."""
        backoff = 1.0
        done = 0
        while rounds is None or done < rounds:
            done += 1
            try:
                self.step()
                backoff = 1.0
            except (httpx.TransportError, httpx.HTTPStatusError) as error:
                log.warning(
                    "Duebook could not be reached (%s); trying again in %.0f s", error, backoff
                )
                self.sleep(backoff)
                backoff = min(backoff * 2, LONGEST_BACKOFF)
