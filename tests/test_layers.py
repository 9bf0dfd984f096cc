"""The layers hold: the bottom layer (app/core) imports no business area, and invoicing never
imports payments (payments sits above it and uses the invoice's balance). Every import counts,
also one written inside a function. Read from the source with `ast`: nothing is imported."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

from app.clients.imports.limits import ImportLimits, setting_name
from app.config import IMPORT_LIMIT_SETTINGS

APP = Path(__file__).resolve().parent.parent / "app"
# The business areas: every package of app/ but the bottom layer.
AREAS = frozenset(
    {
        "aging",
        "audit",
        "auth",
        "campaigns",
        "clients",
        "collections",
        "dashboard",
        "health",
        "integrations",
        "invoicing",
        "library",
        "message_templates",
        "messaging",
        "notifications",
        "ops",
        "payments",
        "projects",
        "sandbox",
        "settings",
        "team",
    }
)
# What app/core may import of this project: itself, the unbound extensions and tenancy.
CORE_MAY_IMPORT = ("app.core", "app.extensions", "tenants")
PROJECT_PACKAGES = ("app", "jobs", "tenants")


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, relative ones made absolute; `from a import
    b` counts as a.b too, since b may be a module."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x, from ..y import z
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def area_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "app" and parts[1] in AREAS else None


def within(module: str, packages) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)


def python_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_the_area_list_names_every_package_of_app():
    packages = {p.name for p in APP.iterdir() if p.is_dir() and any(p.rglob("*.py"))}
    assert packages - {"core"} == AREAS


def test_core_imports_no_business_area():
    wrong = [
        f"{path.relative_to(APP.parent)}:{line} imports {module}"
        for path in python_files(APP / "core")
        for line, module in imported_modules(path)
        if area_of(module)
        or (
            within(module, PROJECT_PACKAGES)
            and module != "app"
            and not within(module, CORE_MAY_IMPORT)
        )
    ]
    assert not wrong, "app/core imports only itself, app.extensions and tenants:\n" + "\n".join(
        wrong
    )


def test_invoicing_never_imports_payments():
    wrong = [
        f"{path.relative_to(APP.parent)}:{line} imports {module}"
        for path in python_files(APP / "invoicing")
        for line, module in imported_modules(path)
        if area_of(module) == "payments"
    ]
    assert not wrong, "invoicing sits below payments:\n" + "\n".join(wrong)


def test_config_reads_every_import_limit_without_importing_the_area():
    # app.config lists the settings itself so that it imports no area; this keeps the two lists
    # the same.
    limits = {setting_name(f.name) for f in fields(ImportLimits)}
    assert set(IMPORT_LIMIT_SETTINGS) == limits
    assert not [m for _, m in imported_modules(APP / "config.py") if area_of(m)]
