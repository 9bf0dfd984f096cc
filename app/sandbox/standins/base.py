"""What every stand-in shares: a loopback HTTP/1.1 server, counters, fault injection, recording
and an asynchronous webhook emitter.

Nothing here is provider-specific. A provider module subclasses `StandinServer`, implements
`handle()` for its own routes and `fault_response()` for its error body, and calls
`accept_key()`, `record()` and `webhooks.post()` as its contract requires.

Design notes:
- stdlib `ThreadingHTTPServer` with `protocol_version = "HTTP/1.1"`: one thread per connection,
  keep-alive, every answer carries Content-Length; request logging is off and Nagle is off
  (`disable_nagle_algorithm`) so a small response is not held back by delayed ACKs.
- One lock per stand-in guards its state; each request holds it for a few dictionary operations.
- Webhooks go through a queue and one worker thread, so a send answer never waits for them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import queue
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

RECENT_LIMIT = 1000


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self):
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        """Form-encoded body; the last value wins for a repeated name."""
        pairs = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {name: values[-1] for name, values in pairs.items()}

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(status: int, payload, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, body, [("Content-Type", "application/json"), *(headers or [])])


def now_ns() -> int:
    return time.time_ns()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "standin"
    sys_version = ""
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    def _serve(self) -> None:
        standin: StandinServer = self.server.standin  # type: ignore[attr-defined]
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._write(Response(411, b"Content-Length required"))
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        try:
            response = standin.dispatch(request)
        except Exception as exc:  # an answer, never a dropped connection
            response = json_response(500, {"error": f"stand-in failure: {exc!r}"})
        self._write(response)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


class Stats:
    """Thread-safe counters; `snapshot()` gives the JSON of `GET /_standin/stats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.accepted = 0
            self.throttled = 0
            self.failed = 0
            self.rejected = 0
            self.duplicate_keys = 0
            self.per_key: dict[str, int] = {}

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def snapshot(self, per_key: bool = True) -> dict:
        with self._lock:
            data = {
                "requests": self.requests,
                "accepted": self.accepted,
                "throttled": self.throttled,
                "failed": self.failed,
                "rejected": self.rejected,
                "unique_keys": len(self.per_key),
                "duplicate_keys": self.duplicate_keys,
            }
            if per_key:
                data["per_key"] = dict(self.per_key)
            return data


@dataclass(slots=True)
class Fault:
    status: int
    remaining: int
    retry_after: int | None = None
    message: str | None = None


class Recorder:
    """Keeps the last 1,000 accepted messages in memory and, with a folder, one JSON file each,
    named `<time_ns>-<8 hex>.json` and written atomically (a reader never sees half a file)."""

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.folder = Path(folder) if folder else None
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)
        self._recent: deque[dict] = deque(maxlen=RECENT_LIMIT)
        self._lock = threading.Lock()

    def add(self, entry: dict) -> dict:
        stamp = now_ns()
        entry = {
            **entry,
            "time": datetime.fromtimestamp(stamp / 1e9, UTC).isoformat(),
            "time_ns": stamp,
        }
        if self.folder:
            name = f"{stamp}-{secrets.token_hex(4)}.json"
            entry["file"] = name
            temporary = self.folder / f".{name}.tmp"
            temporary.write_text(json.dumps(entry, ensure_ascii=False, indent=1))
            os.replace(temporary, self.folder / name)
        with self._lock:
            self._recent.append(entry)
        return entry

    def recent(self) -> list[dict]:
        with self._lock:
            return list(self._recent)

    def clear(self) -> None:
        with self._lock:
            self._recent.clear()


@dataclass(slots=True)
class _Delivery:
    url: str
    body: bytes
    headers: dict[str, str]
    not_before: float


class WebhookEmitter:
    """POSTs callbacks from one background thread, in order. A delivery that fails (connection
    error or non-2xx) is retried `retries` times, `retry_delay` seconds apart, then dropped and
    counted. `delivered`, `dropped` and `attempts` are exposed through the stand-in's stats."""

    def __init__(self, retries: int = 3, retry_delay: float = 0.2, timeout: float = 5.0) -> None:
        self.retries = retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.delivered = 0
        self.dropped = 0
        self.attempts = 0
        self._queue: queue.Queue[_Delivery | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="standin-webhooks")
                self._thread.daemon = True
                self._thread.start()

    def post(self, url: str, body: bytes, headers: dict[str, str], delay: float = 0.0) -> None:
        self.start()
        self._queue.put(_Delivery(url, body, headers, time.monotonic() + delay))

    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once every queued callback was delivered or dropped (tests use this)."""
        deadline = time.monotonic() + timeout
        condition = self._queue.all_tasks_done
        with condition:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                condition.wait(remaining)
        return True

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=5)

    def counters(self) -> dict:
        return {
            "webhooks_delivered": self.delivered,
            "webhooks_dropped": self.dropped,
            "webhook_attempts": self.attempts,
            "webhooks_pending": self.pending(),
        }

    def reset(self) -> None:
        self.delivered = self.dropped = self.attempts = 0

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            while True:
                item = self._queue.get()
                try:
                    if item is None:
                        return
                    self._deliver(client, item)
                finally:
                    self._queue.task_done()

    def _deliver(self, client: httpx.Client, item: _Delivery) -> None:
        wait = item.not_before - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.retry_delay)
            self.attempts += 1
            try:
                answer = client.post(item.url, content=item.body, headers=item.headers)
            except httpx.HTTPError:
                continue
            if 200 <= answer.status_code < 300:
                self.delivered += 1
                return
        self.dropped += 1


def parse_script(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """`"sent,delivered"` → ("sent", "delivered"); `"none"`/`""`/None → () (no callbacks)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [] if value.strip().lower() in ("", "none") else value.split(",")
    return tuple(part.strip() for part in value if part.strip())


def check_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"stand-ins bind a loopback address only, not {host!r}")


class StandinServer:
    """Base class. Usable as `with WhatsAppStandin() as s: ... s.url`, or `start()`/`stop()`.

    Common endpoints (all stand-ins):
      GET  /_standin/stats         counters (JSON); `?per_key=0` leaves the per-key map out
      POST /_standin/reset         clears counters, recordings, idempotency and rate state
      POST /_standin/faults        {"status": 500|429|400, "count": N, "retry_after": S}
      GET  /_standin/messages      the recent recordings (last 1,000), oldest first
    """

    name = "standin"
    default_status_script: tuple[str, ...] = ("sent", "delivered")

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record_dir: str | os.PathLike | None = None,
        webhook_url: str | None = None,
        rate: float | None = None,
        status_script: str | list[str] | tuple[str, ...] | None = "default",
        status_delay: float = 0.0,
        webhook_retries: int = 3,
        webhook_retry_delay: float = 0.2,
        clock=time.time,
    ) -> None:
        check_loopback(host)
        self.webhook_url = webhook_url
        self.rate = rate or None
        self.status_script = (
            self.default_status_script
            if status_script == "default"
            else parse_script(status_script)
        )
        self.status_delay = status_delay
        self.clock = clock
        self.stats_counters = Stats()
        self.recorder = Recorder(record_dir)
        self.webhooks = WebhookEmitter(webhook_retries, webhook_retry_delay)
        self._lock = threading.RLock()
        self._faults: deque[Fault] = deque()
        self._windows: dict[str, tuple[int, int]] = {}
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.standin = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"standin-{self.name}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        self.webhooks.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- counters, faults, recordings ------------------------------------------------------

    def stats(self, per_key: bool = True) -> dict:
        return {**self.stats_counters.snapshot(per_key), **self.webhooks.counters()}

    def reset(self) -> None:
        with self._lock:
            self.stats_counters.reset()
            self.webhooks.reset()
            self.recorder.clear()
            self._faults.clear()
            self._windows.clear()
            self.reset_state()

    def reset_state(self) -> None:
        """Provider state cleared by `reset()` (idempotency maps, sessions); override."""

    def inject_fault(
        self,
        status: int,
        count: int = 1,
        retry_after: int | None = None,
        message: str | None = None,
    ) -> None:
        """The next `count` send requests answer `status` with the provider's error body
        (and `Retry-After` when given); faults queue up in the order injected."""
        if status < 400:
            raise ValueError("a fault is an error status (4xx/5xx)")
        with self._lock:
            self._faults.append(Fault(status, count, retry_after, message))

    def take_fault(self) -> Response | None:
        """Called by a send route first: the injected answer, if one is due."""
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.popleft()
        self.stats_counters.add("failed")
        if fault.status == 429:
            self.stats_counters.add("throttled")
        response = self.fault_response(fault)
        if fault.retry_after is not None:
            response.headers.append(("Retry-After", str(fault.retry_after)))
        return response

    def fault_response(self, fault: Fault) -> Response:
        return json_response(fault.status, {"error": fault.message or "injected fault"})

    def recorded(self) -> list[dict]:
        return self.recorder.recent()

    def record(self, entry: dict) -> dict:
        return self.recorder.add({"provider": self.name, **entry})

    # -- helpers for provider routes -------------------------------------------------------

    def over_rate(self, scope: str, rate: float | None = None) -> bool:
        """Counts one send for `scope` in the current one-second window; True when that goes
        over `rate` (then the send is not counted)."""
        limit = rate if rate is not None else self.rate
        if not limit:
            return False
        second = int(time.monotonic())
        with self._lock:
            window, count = self._windows.get(scope, (second, 0))
            if window != second:
                count = 0
            if count >= limit:
                return True
            self._windows[scope] = (second, count + 1)
        return False

    def count_key(self, key: str) -> int:
        """Adds one request for `key` to the per-key counter; returns the new count."""
        counters = self.stats_counters
        with counters._lock:
            count = counters.per_key.get(key, 0) + 1
            counters.per_key[key] = count
            return count

    # -- dispatch --------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        if request.path.startswith("/_standin/"):
            return self._admin(request)
        self.stats_counters.add("requests")
        return self.handle(request)

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def admin(self, request: Request) -> Response | None:
        """Provider-specific `/_standin/...` routes; None when not one of them."""
        return None

    def _admin(self, request: Request) -> Response:
        route = (request.method, request.path.rstrip("/"))
        if route == ("GET", "/_standin/stats"):
            return json_response(200, self.stats(per_key=request.arg("per_key") != "0"))
        if route == ("POST", "/_standin/reset"):
            self.reset()
            return json_response(200, {"reset": True})
        if route == ("POST", "/_standin/faults"):
            spec = request.json() or {}
            self.inject_fault(
                int(spec["status"]),
                int(spec.get("count", 1)),
                spec.get("retry_after"),
                spec.get("message"),
            )
            return json_response(200, {"queued": True})
        if route == ("GET", "/_standin/messages"):
            return json_response(200, {"messages": self.recorded()})
        answer = self.admin(request)
        return answer or json_response(404, {"error": "no such stand-in route"})


def random_digits(length: int) -> str:
    return str(secrets.randbelow(9) + 1) + "".join(
        str(secrets.randbelow(10)) for _ in range(length - 1)
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
