"""The embedded services start from a clone in any directory, as root or not (issue 16, 12).

As root PostgreSQL runs as `postgres` (or `nobody`), which cannot reach a clone inside a
mode-700 home such as /root: its data then goes to a per-clone folder under the temp
directory. These tests need no database of the suite: they start their own servers.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile

import psycopg
import pytest

from app import devserver

needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="PostgreSQL runs as another user only when we are root (the project's CI runs as "
    "root, where this is checked); as a normal user the data simply stays under var/",
)

SOMEONE = pwd.struct_passwd(("someone", "x", 54321, 54321, "", "/nonexistent", "/bin/false"))


@pytest.fixture
def clone_in_closed_home(tmp_path, monkeypatch):
    """A clone at <home>/clone where <home> has mode 700, as /root has; no URLs set."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o700)
    root = home / "clone"
    monkeypatch.setattr(devserver, "ROOT", root)
    monkeypatch.setattr(devserver, "VAR", root / "var")
    for name in ("DATABASE_URL", "REDIS_URL", "SMTP_URL"):
        monkeypatch.delenv(name, raising=False)
    yield root
    if hasattr(devserver, "_clone_tag"):  # computed while ROOT is still the fake clone
        for parent in ("/tmp", "/var/tmp", tempfile.gettempdir()):
            shutil.rmtree(os.path.join(parent, devserver._clone_tag()), ignore_errors=True)


def _data_directory(url: str) -> str:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        return conn.execute("SELECT current_setting('data_directory')").fetchone()[0]


@needs_root
def test_tests_services_start_from_a_clone_in_a_mode_700_home(clone_in_closed_home):
    """Before the fix initdb, run as `postgres`, could not reach var/ under the clone and every
    test errored. Now the data goes outside the clone and is removed at stop."""
    services = devserver.start_services("test")
    try:
        datadir = _data_directory(services.env["DATABASE_URL"])
    finally:
        services.stop()
    assert not datadir.startswith(str(clone_in_closed_home))
    assert devserver._clone_tag() in datadir
    assert not os.path.exists(datadir)  # thrown away with the test run


@needs_root
def test_make_run_keeps_its_data_outside_the_clone_and_says_where(clone_in_closed_home):
    first = devserver.start_services("run")
    try:
        datadir = _data_directory(first.env["DATABASE_URL"])
        with psycopg.connect(first.env["DATABASE_URL"].replace("+psycopg", "")) as conn:
            conn.execute("CREATE TABLE kept (id int)")
    finally:
        first.stop()
    location = clone_in_closed_home / "var" / "run" / "postgres-location"
    assert location.read_text().strip() == datadir
    assert not datadir.startswith(str(clone_in_closed_home))

    second = devserver.start_services("run")  # the same folder again: the demo data lives on
    try:
        assert _data_directory(second.env["DATABASE_URL"]) == datadir
        with psycopg.connect(second.env["DATABASE_URL"].replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT to_regclass('kept')").fetchone()[0] == "kept"
    finally:
        second.stop()


def test_a_normal_user_keeps_postgres_data_under_var(tmp_path, monkeypatch):
    """Not root: PostgreSQL runs as ourselves, so var/ is always reachable."""
    monkeypatch.setattr(devserver, "VAR", tmp_path / "var")
    base = tmp_path / "var" / "test" / "123"
    assert devserver.postgres_base(base, "test", None) == base
    assert base.is_dir()


def test_data_stays_under_var_when_the_server_user_reaches_it(tmp_path, monkeypatch):
    monkeypatch.setattr(devserver, "VAR", tmp_path / "var")
    base = tmp_path / "var" / "run"
    assert devserver.postgres_base(base, "run", SOMEONE, reaches=lambda p, a: True) == base


def _directories(**modes):
    """A fake os.stat over directories given as path=(mode, uid, gid)."""
    table = {
        path: os.stat_result((0o040000 | m, 0, 0, 2, u, g, 0, 0, 0, 0))
        for path, (m, u, g) in modes.items()
    }

    def lookup(path):
        try:
            return table[str(path)]
        except KeyError:
            raise FileNotFoundError(path) from None

    return lookup


def test_traversal_is_judged_by_the_mode_bits_of_every_parent():
    lookup = _directories(
        **{
            "/": (0o755, 0, 0),
            "/root": (0o700, 0, 0),
            "/root/c": (0o755, 0, 0),
            "/srv": (0o751, 0, 0),
            "/srv/c": (0o750, 0, 50),  # group 50 may pass
            "/srv/own": (0o070, 54321, 54321),  # the owner's bits rule for the owner
        }
    )
    someone, groups = 54321, {54321}
    assert not devserver.traversable("/root/c", someone, groups, lookup)
    assert devserver.traversable("/root/c", 0, set(), lookup)  # root passes everywhere
    assert devserver.traversable("/srv", someone, groups, lookup)
    assert not devserver.traversable("/srv/c", someone, groups, lookup)
    assert devserver.traversable("/srv/c", someone, {*groups, 50}, lookup)
    assert not devserver.traversable("/srv/own", someone, groups, lookup)
    assert not devserver.traversable("/missing", someone, groups, lookup)


@needs_root
def test_the_server_user_is_asked_when_we_are_root(tmp_path):
    """`test -x` as `postgres`/`nobody` agrees with the mode bits on a mode-700 folder."""
    account = devserver._unprivileged_user()
    closed = tmp_path / "closed"
    (closed / "inner").mkdir(parents=True)
    closed.chmod(0o700)
    assert not devserver.server_user_reaches(closed / "inner", account)
    assert devserver.server_user_reaches(devserver.Path("/usr/bin"), account)


def test_each_clone_gets_its_own_stable_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(devserver, "ROOT", tmp_path / "one")
    one = devserver._clone_tag()
    assert devserver._clone_tag() == one
    monkeypatch.setattr(devserver, "ROOT", tmp_path / "two")
    assert devserver._clone_tag() != one


def test_when_no_folder_is_reachable_the_error_says_why_and_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(devserver, "ROOT", tmp_path / "clone")
    with pytest.raises(RuntimeError) as error:
        devserver.server_user_folder(SOMEONE, "run", reaches=lambda p, a: False)
    message = str(error.value)
    assert "'someone'" in message and "cannot reach" in message
    assert str(tmp_path / "clone") in message
    assert "/tmp" in message and "/var/tmp" in message
    assert "chmod o+x" in message and "DATABASE_URL" in message
