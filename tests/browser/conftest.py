"""Page tests: Debian's chromium, driven by Playwright, against the app served by gunicorn.

The browser needs a real HTTP server and committed data: the rolled-back transaction of
tests/conftest.py cannot be shared with another process. So the app runs in a gunicorn
subprocess on the test database, everything the browser creates is committed (unique slugs
and e-mails keep runs apart), and the tests here never use `db_session`. Queued e-mails are
delivered with `run_jobs` (it depends on `app` only: its jobs use the ordinary, unbound
db.session and commit their own work).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.devserver import ROOT, free_port

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags chromium tries to reach Google; the network here
# refuses that, and the tests must only ever talk to 127.0.0.1.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "var" / "screenshots"
PYTHON = ROOT / ".venv" / "bin" / "python"


MISSING_CHROMIUM = (
    f"{CHROMIUM} is missing: the page tests need Debian's chromium. Install it "
    "with `make browser` or, as root, `apt-get update && apt-get install -y "
    "chromium`."
)


def pytest_collection_modifyitems(config, items):
    """Without chromium the page tests are skipped before any server starts, saying why."""
    if CHROMIUM.exists():
        return
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.skip(reason=MISSING_CHROMIUM))


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _wait_for_health(server: LiveServer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"gunicorn exited with code {server.process.returncode}:\n{server.log_tail()}"
            )
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{server.url}/healthz", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(
        f"gunicorn did not answer /healthz within {timeout:.0f}s:\n{server.log_tail()}"
    )


@pytest.fixture(scope="session")
def live_server(app, app_config, mailbox, tmp_path_factory) -> LiveServer:
    """The app under gunicorn on a free port, on the test database, Redis and SMTP sandbox
    (whose mail its sandbox inbox shows, as under `make run`). Depends on `app` so that the
    shared schema is migrated before the first request."""
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=app_config["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=app_config["REDIS_URL"],
        SMTP_URL=app_config["SMTP_URL"],
        SECRET_KEY=app_config["SECRET_KEY"],
        DUEBOOK_ENV="test",
        PYTHONUNBUFFERED="1",
        # The sandbox SMTP server and stand-ins listen on loopback, as in the in-process app.
        OUTBOUND_ALLOWED_NETWORKS=",".join(
            str(net) for net in app_config["OUTBOUND_ALLOWED_NETWORKS"]
        ),
        # DNS lookups (the "Your domain" check) go to the DNS stand-in, as in-process.
        DNS_RESOLVER=app_config["DNS_RESOLVER"],
    )
    for name in ("BASE_URL", "SANDBOX_MAILDIR", "COOKIE_SECURE", "TRUSTED_PROXY_HOPS"):
        env.pop(name, None)
    env["SANDBOX_MAILDIR"] = str(mailbox.maildir)
    log = tmp_path_factory.mktemp("live-server") / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(PYTHON),
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "4",
                "--access-logfile",
                "-",
                "wsgi:app",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        _wait_for_health(server)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@pytest.fixture(scope="package")
def browser():
    """One headless chromium for the page tests (closed before the other tests run);
    skipped, saying why, when it is missing."""
    if not CHROMIUM.exists():
        pytest.skip(MISSING_CHROMIUM)
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="the 'playwright' Python package is missing: pip install -e '.[dev]'",
    )
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class ConsoleLog:
    """What the pages said on the console (errors only) and the exceptions they raised."""

    errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)

    def about_csp(self) -> list[str]:
        """Errors about the Content-Security-Policy: chromium reports every blocked inline
        script, style or outside resource this way."""
        return [e for e in self.errors if "content security policy" in e.lower()]


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def new_page(browser, live_server, console):
    """new_page() opens a page in a fresh browser context: its own cookies, as another person
    on another computer would have. What every page says on the console goes to `console`."""
    contexts = []

    def open_page():
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()

        def on_console(message):
            if message.type == "error":
                console.errors.append(f"{page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: console.exceptions.append(f"{page.url}: {error}"))
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed page test shows the end of the server's log: a 500 is explained there."""
    report = yield
    server = getattr(item, "funcargs", {}).get("live_server")
    if report.failed and isinstance(server, LiveServer):
        report.sections.append(("gunicorn log (last lines)", server.log_tail()))
    return report


@pytest.fixture
def screenshots_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def library_loaded(app):
    """The shipped templates in the shared schema, committed (loading is idempotent)."""
    from app.extensions import db
    from app.library.services import load_library

    with app.app_context():
        load_library(db.session)
        db.session.commit()
        db.session.remove()


@dataclass
class SignupMail:
    """Reads the sign-up confirmation e-mail from the sandbox mailbox, as the person would."""

    run_jobs: object
    maildir: Path

    def link(self, to: str, path_prefix: str = "/signup/confirm/") -> str:
        """The path of the newest e-mailed link to `to` that starts with `path_prefix`."""
        from email import message_from_bytes, policy

        from tests.helpers import mail_link

        self.run_jobs()
        for path in sorted(
            self.maildir.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True
        ):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            body = message.get_body(preferencelist=("plain",)).get_content()
            if to in message["To"] and path_prefix in body:
                return mail_link(message, path_prefix)
        raise AssertionError(f"no e-mail to {to} with a {path_prefix} link")


@pytest.fixture
def signup_mail(run_jobs, mailbox) -> SignupMail:
    return SignupMail(run_jobs, mailbox.maildir)
