"""The floor plan holds: the import contracts of pyproject.toml (run by `make lint` and `make
test`) name every area of app/, and they refuse an area that imports one above it, also when
the import is written inside a function or in a page."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

from app.clients.imports.limits import ImportLimits, setting_name
from app.config import IMPORT_LIMIT_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"
LAYERS_CONTRACT = "Areas are layered"


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def layered_areas() -> set[str]:
    (layers,) = [c for c in contracts() if c["name"].startswith(LAYERS_CONTRACT)]
    return {
        module.strip().removeprefix("app.")
        for layer in layers["layers"]
        for module in layer.split("|")
    }


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_package_of_app_has_its_place_in_the_layers():
    packages = {p.name for p in APP.iterdir() if p.is_dir() and any(p.rglob("*.py"))}
    assert packages == layered_areas()


def test_an_area_importing_one_above_it_breaks_the_contract(tmp_path):
    for part in ("app", "jobs", "tenants"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    assert lint_imports(tmp_path).returncode == 0

    # Clients (low) reaching into collections (high) from inside a function: still refused.
    rules = tmp_path / "app" / "clients" / "rules.py"
    rules.write_text(
        rules.read_text()
        + "\n\ndef _overdue_rate():\n    from app.collections.models import BankRate\n\n"
        + "    return BankRate\n"
    )
    # A page is no exception: the client page reaching into payments (above clients).
    views = tmp_path / "app" / "clients" / "views.py"
    views.write_text(views.read_text() + "\nfrom app.payments import services as payments\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "app.clients.rules -> app.collections.models" in result.stdout
    assert "app.clients.views -> app.payments.services" in result.stdout


def test_config_reads_every_import_limit_without_importing_the_area():
    # app.config lists the settings itself so that it imports no area; this keeps the two lists
    # the same.
    limits = {setting_name(f.name) for f in fields(ImportLimits)}
    assert set(IMPORT_LIMIT_SETTINGS) == limits
    imported = [
        node.module
        for node in ast.walk(ast.parse((APP / "config.py").read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
    ]
    assert not [m for m in imported if m.startswith("app.") and not m.startswith("app.core")]
