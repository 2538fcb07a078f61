"""The layering rules of DESIGN.md, checked over the source with `ast`.

domain imports nothing from adapters, services or entrypoints; services never import
entrypoints; only bootstrap and the CLI may import stripe_sandbox.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "meterbill"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    if source is None:
        source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def _sources(*parts: str) -> list[Path]:
    return sorted(PACKAGE.joinpath(*parts).rglob("*.py"))


def _violations(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in paths:
        for name in imported_modules(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return bad


def test_the_layers_exist() -> None:
    # Guards the checks below against passing vacuously on a moved package.
    assert _sources("domain") and _sources("services")


def test_domain_imports_no_outer_layer() -> None:
    forbidden = ("meterbill.adapters", "meterbill.entrypoints", "meterbill.services",
                 "meterbill.bootstrap", "stripe", "sqlalchemy", "stripe_sandbox")
    assert _violations(_sources("domain"), forbidden) == []


def test_services_never_import_entrypoints_or_stripe() -> None:
    forbidden = ("meterbill.entrypoints", "meterbill.bootstrap", "stripe", "stripe_sandbox")
    assert _violations(_sources("services"), forbidden) == []


def test_only_bootstrap_and_the_sandbox_command_import_the_sandbox() -> None:
    allowed = set(_sources("bootstrap"))
    allowed.update(_sources("entrypoints", "cli"))
    assert allowed
    others = [p for p in PACKAGE.rglob("*.py") if p not in allowed]
    assert _violations(others, ("stripe_sandbox",)) == []


@pytest.mark.parametrize("source, expected", [
    ("from ..adapters.db import models", "meterbill.adapters.db.models"),
    ("import stripe_sandbox.engine", "stripe_sandbox.engine"),
    ("from . import money", "meterbill.domain.money"),
])
def test_import_resolution(source: str, expected: str) -> None:
    # The checker must see relative imports for what they are, or the rules above prove nothing.
    assert expected in imported_modules(PACKAGE / "domain" / "plans.py", source)


def test_a_violation_is_reported() -> None:
    path = PACKAGE / "domain" / "plans.py"
    names = imported_modules(path, "from ..entrypoints.api import app")
    assert any(n.startswith("meterbill.entrypoints") for n in names)
