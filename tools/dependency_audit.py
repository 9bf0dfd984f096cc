"""`make audit`: check the installed dependency set (what `make` resolved into `.venv` from
pyproject.toml) against known vulnerabilities, and say plainly what could not be checked.

pip-audit asks PyPI for each release's advisories (`/pypi/<name>/<version>/json`) or OSV's
API; neither is reachable from every network this project is built on. So each installed
distribution is checked against the first source that can answer for it:

1. An OSV export of the PyPI ecosystem (the `all.zip` that OSV publishes per ecosystem), when
   one is given with `--osv-export` or `OSV_EXPORT`: a complete, offline check of every
   version against OSV's affected ranges.
2. PyPI's JSON API: a release's own advisories (`/pypi/<name>/<version>/json`); where only
   the project endpoint answers (`/pypi/<name>/json`), its advisories are those of the latest
   release, so they settle the question only for a distribution installed at that release.

A distribution that no source could answer for is reported as NOT CHECKED with the reason,
never as free of known vulnerabilities. Exit status: 0 all checked and none vulnerable,
1 some vulnerable, 2 none vulnerable but some not checked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

PYPI_JSON_BASE = "https://pypi.org/pypi"
OWN_DISTRIBUTION = "duebook"


@dataclass(frozen=True)
class Advisory:
    id: str
    fixed_in: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def describe(self) -> str:
        names = ", ".join((self.id, *self.aliases))
        fixed = f"fixed in {', '.join(self.fixed_in)}" if self.fixed_in else "no fixed release"
        return f"{names} ({fixed})"


@dataclass
class Verdict:
    name: str
    version: str
    status: str  # clean | vulnerable | unchecked
    source: str = ""
    advisories: list[Advisory] = field(default_factory=list)
    reason: str = ""


def installed_distributions() -> dict[str, str]:
    """Canonical name -> version of every distribution in this interpreter's environment,
    the project itself left out."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonicalize_name(name) != OWN_DISTRIBUTION:
            found[canonicalize_name(name)] = dist.version
    return found


def _parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _range_affects(events: list[Mapping[str, str]], version: Version) -> bool:
    """OSV's ECOSYSTEM range: walk the events in version order; an `introduced` at or below
    the version turns it affected, a `fixed`/`limit` at or below (or a `last_affected`
    below) turns it back."""

    def order(event: Mapping[str, str]) -> Version:
        kind, value = next(iter(event.items()))
        if kind == "introduced" and value == "0":
            return Version("0")
        return _parse_version(value) or Version("0")

    affected = False
    for event in sorted(events, key=order):
        kind, value = next(iter(event.items()))
        bound = Version("0") if value == "0" else _parse_version(value)
        if bound is None:
            continue
        past_fix = (kind in ("fixed", "limit") and version >= bound) or (
            kind == "last_affected" and version > bound
        )
        if kind == "introduced" and version >= bound:
            affected = True
        elif past_fix:
            affected = False
    return affected


def osv_affects(entry: Mapping, name: str, version: str) -> bool:
    """Whether one OSV record says `name==version` is affected."""
    parsed = _parse_version(version)
    for affected in entry.get("affected", []):
        package = affected.get("package", {})
        if package.get("ecosystem") != "PyPI":
            continue
        if canonicalize_name(package.get("name", "")) != name:
            continue
        if version in affected.get("versions", []):
            return True
        if parsed is None:
            continue
        for osv_range in affected.get("ranges", []):
            if osv_range.get("type") == "ECOSYSTEM" and _range_affects(
                osv_range.get("events", []), parsed
            ):
                return True
    return False


def _osv_fixed_versions(entry: Mapping, name: str) -> tuple[str, ...]:
    fixed = []
    for affected in entry.get("affected", []):
        if canonicalize_name(affected.get("package", {}).get("name", "")) != name:
            continue
        for osv_range in affected.get("ranges", []):
            fixed += [e["fixed"] for e in osv_range.get("events", []) if "fixed" in e]
    return tuple(fixed)


class OsvExport:
    """OSV records of the PyPI ecosystem read from an export zip (one JSON file a record)."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, list[dict]] = {}
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".json"):
                    continue
                record = json.loads(archive.read(info))
                if record.get("withdrawn"):
                    continue
                for affected in record.get("affected", []):
                    package = affected.get("package", {})
                    if package.get("ecosystem") == "PyPI":
                        key = canonicalize_name(package.get("name", ""))
                        self.records.setdefault(key, []).append(record)

    def check(self, name: str, version: str) -> Verdict:
        advisories = [
            Advisory(
                record["id"], _osv_fixed_versions(record, name), tuple(record.get("aliases", []))
            )
            for record in self.records.get(name, [])
            if osv_affects(record, name, version)
        ]
        source = f"OSV export {self.path.name}"
        return Verdict(name, version, "vulnerable" if advisories else "clean", source, advisories)


class PypiAdvisories:
    """PyPI's JSON API, the source pip-audit uses by default."""

    def __init__(self, base: str = PYPI_JSON_BASE, timeout: float = 15.0):
        self.base = base.rstrip("/")
        self.client = httpx.Client(timeout=timeout, follow_redirects=True)

    @staticmethod
    def _advisories(body: Mapping) -> list[Advisory]:
        return [
            Advisory(
                item["id"], tuple(item.get("fixed_in") or ()), tuple(item.get("aliases") or ())
            )
            for item in body.get("vulnerabilities") or []
            if not item.get("withdrawn")
        ]

    def _get(self, path: str) -> dict | None:
        """The JSON at `path`, or None when PyPI does not answer it from here."""
        try:
            response = self.client.get(f"{self.base}/{path}")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        try:
            return response.json()
        except ValueError:
            return None

    def check(self, name: str, version: str) -> Verdict:
        release = self._get(f"{name}/{version}/json")
        if release is not None:
            found = self._advisories(release)
            return Verdict(
                name, version, "vulnerable" if found else "clean", "PyPI release advisories", found
            )
        project = self._get(f"{name}/json")
        if project is None:
            return Verdict(
                name, version, "unchecked", reason="PyPI's JSON API did not answer for this project"
            )
        latest = project.get("info", {}).get("version", "")
        if latest != version:
            return Verdict(
                name,
                version,
                "unchecked",
                reason=f"PyPI answers here only for the latest release ({latest}), "
                "not for this one; give an OSV export to check it",
            )
        found = self._advisories(project)
        return Verdict(
            name,
            version,
            "vulnerable" if found else "clean",
            "PyPI advisories of the latest release",
            found,
        )


def audit(
    installed: Mapping[str, str], osv: OsvExport | None, pypi: PypiAdvisories | None
) -> list[Verdict]:
    def one(item: tuple[str, str]) -> Verdict:
        name, version = item
        if osv is not None:
            return osv.check(name, version)
        if pypi is not None:
            return pypi.check(name, version)
        return Verdict(name, version, "unchecked", reason="no vulnerability source given")

    with ThreadPoolExecutor(max_workers=8) as pool:
        return sorted(pool.map(one, sorted(installed.items())), key=lambda v: v.name)


def report(verdicts: Iterable[Verdict], out=sys.stdout) -> int:
    verdicts = list(verdicts)
    vulnerable = [v for v in verdicts if v.status == "vulnerable"]
    unchecked = [v for v in verdicts if v.status == "unchecked"]
    clean = [v for v in verdicts if v.status == "clean"]
    for verdict in vulnerable:
        print(f"VULNERABLE   {verdict.name} {verdict.version}  [{verdict.source}]", file=out)
        for advisory in verdict.advisories:
            print(f"             {advisory.describe()}", file=out)
    for verdict in unchecked:
        print(f"NOT CHECKED  {verdict.name} {verdict.version}: {verdict.reason}", file=out)
    sources = sorted({v.source for v in clean + vulnerable})
    print(
        f"audit: {len(verdicts)} installed distributions: {len(clean)} with no known "
        f"vulnerabilities, {len(vulnerable)} vulnerable, {len(unchecked)} not checked"
        + (f" (sources: {'; '.join(sources)})" if sources else ""),
        file=out,
    )
    if vulnerable:
        return 1
    if unchecked:
        print(
            "audit: INCOMPLETE: the distributions above marked NOT CHECKED have not been "
            "checked against any vulnerability database. Download OSV's PyPI export "
            "(PyPI/all.zip from OSV's public bucket) where the network allows and run "
            "`make audit OSV_EXPORT=/path/to/all.zip`.",
            file=out,
        )
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--osv-export",
        default=os.environ.get("OSV_EXPORT") or None,
        help="path to OSV's PyPI all.zip export (offline, complete)",
    )
    parser.add_argument(
        "--pypi-json",
        default=os.environ.get("PYPI_JSON_BASE", PYPI_JSON_BASE),
        help="base of PyPI's JSON API",
    )
    args = parser.parse_args(argv)
    osv = OsvExport(Path(args.osv_export)) if args.osv_export else None
    pypi = None if osv else PypiAdvisories(args.pypi_json)
    return report(audit(installed_distributions(), osv, pypi))


if __name__ == "__main__":
    sys.exit(main())
