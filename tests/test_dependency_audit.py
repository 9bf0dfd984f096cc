"""`make audit`: a vulnerable release is named, a clean one passes, and a release that no
reachable source can answer for is reported as not checked, never as clean."""

from __future__ import annotations

import io
import json
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools.dependency_audit import OsvExport, PypiAdvisories, audit, report


def _osv_export(tmp_path):
    records = [
        {
            "id": "PYSEC-0000-1",
            "aliases": ["CVE-0000-0001"],
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "Example_Pkg"},
                    "ranges": [
                        {
                            "type": "ECOSYSTEM",
                            "events": [
                                {"introduced": "0"},
                                {"fixed": "2.0"},
                                {"introduced": "3.0"},
                                {"last_affected": "3.1"},
                            ],
                        }
                    ],
                }
            ],
        },
        {
            "id": "GHSA-xxxx",
            "affected": [
                {"package": {"ecosystem": "PyPI", "name": "listed"}, "versions": ["1.0.1"]}
            ],
        },
        {
            "id": "WITHDRAWN-1",
            "withdrawn": "2024-01-01T00:00:00Z",
            "affected": [
                {"package": {"ecosystem": "PyPI", "name": "listed"}, "versions": ["1.0.0"]}
            ],
        },
    ]
    path = tmp_path / "all.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for record in records:
            archive.writestr(f"{record['id']}.json", json.dumps(record))
    return OsvExport(path)


@pytest.mark.parametrize(
    ("name", "version", "status"),
    [
        ("example-pkg", "1.9", "vulnerable"),
        ("example-pkg", "2.0", "clean"),
        ("example-pkg", "3.1", "vulnerable"),
        ("example-pkg", "3.2", "clean"),
        ("listed", "1.0.1", "vulnerable"),
        ("listed", "1.0.0", "clean"),  # only a withdrawn advisory names it
        ("unknown", "1.0", "clean"),
    ],
)
def test_osv_export_ranges_decide_each_version(tmp_path, name, version, status):
    verdict = audit({name: version}, _osv_export(tmp_path), None)[0]
    assert verdict.status == status


class _PypiStandIn(BaseHTTPRequestHandler):
    """PyPI's JSON API as seen from a network that answers only the project endpoint."""

    projects = {
        "latest-vulnerable": {
            "info": {"version": "2.0"},
            "vulnerabilities": [{"id": "GHSA-aaaa", "aliases": ["CVE-1"], "fixed_in": ["2.1"]}],
        },
        "latest-clean": {"info": {"version": "5.0"}, "vulnerabilities": []},
        "old-release": {"info": {"version": "9.0"}, "vulnerabilities": []},
    }

    def do_GET(self):  # noqa: N802 - the name http.server calls
        parts = self.path.strip("/").split("/")
        body = self.projects.get(parts[1]) if len(parts) == 3 else None
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body or {"message": "Not Found"}).encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def pypi_base():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PypiStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/pypi"
    server.shutdown()


def test_pypi_project_advisories_settle_only_the_latest_release(pypi_base):
    installed = {"latest-vulnerable": "2.0", "latest-clean": "5.0", "old-release": "1.0"}
    verdicts = {v.name: v for v in audit(installed, None, PypiAdvisories(pypi_base))}
    assert verdicts["latest-vulnerable"].status == "vulnerable"
    assert verdicts["latest-vulnerable"].advisories[0].fixed_in == ("2.1",)
    assert verdicts["latest-clean"].status == "clean"
    assert verdicts["old-release"].status == "unchecked"
    assert "9.0" in verdicts["old-release"].reason


def test_unreachable_source_is_reported_not_checked_and_fails(unused_tcp_port):
    pypi = PypiAdvisories(f"http://127.0.0.1:{unused_tcp_port}/pypi", timeout=2)
    out = io.StringIO()
    status = report(audit({"anything": "1.0"}, None, pypi), out)
    assert status == 2
    text = out.getvalue()
    assert "NOT CHECKED  anything 1.0" in text
    assert "0 with no known vulnerabilities" in text
    assert "INCOMPLETE" in text


def test_a_vulnerable_release_fails_the_audit(tmp_path):
    out = io.StringIO()
    status = report(audit({"example-pkg": "1.0"}, _osv_export(tmp_path), None), out)
    assert status == 1
    assert "VULNERABLE   example-pkg 1.0" in out.getvalue()
    assert "CVE-0000-0001" in out.getvalue()


@pytest.fixture
def unused_tcp_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
